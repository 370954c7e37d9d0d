//! Procedural macros for braid. Use them through `braid` (or `braid-core`):
//! `#[braid::task]`.

use proc_macro::TokenStream;
use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Expr, ExprLit, FnArg, GenericArgument, ItemFn, Lit, Meta, PathArguments, ReturnType, Token,
    Type,
};

/// Registers a function as a task: a named function taking and returning serde values
/// that any braid executor, worker or pool can run by name.
///
/// Options: `name = "..."` (default: the function's module path, e.g. `my_crate::jobs::add`).
/// The function may be `async`; it may return a plain value or a `Result<T, E>` whose error
/// implements `Display` (an `Err` becomes a task error carrying its text). Its argument and
/// result types must implement serde's `Serialize` and `Deserialize`.
///
/// Next to the function, the macro adds a type of the same name (types and functions live
/// in different namespaces, so the function is untouched) with `NAME`, the registered name,
/// and `task()`, a typed `TaskRef` to pass to executors: `add::task()`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn core_path() -> TokenStream2 {
    for (package, ident) in [("braid", "braid"), ("braid-core", "braid_core")] {
        match crate_name(package) {
            Ok(FoundCrate::Name(name)) => {
                let ident = format_ident!("{}", name);
                return quote!(::#ident);
            }
            Ok(FoundCrate::Itself) => {
                // Both crates declare `extern crate self as <name>`, so the absolute path
                // works in their own unit tests, integration tests and examples alike.
                let ident = format_ident!("{}", ident);
                return quote!(::#ident);
            }
            Err(_) => continue,
        }
    }
    quote!(::braid)
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let func: ItemFn = syn::parse2(item)?;
    let mut name: Option<String> = None;
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for meta in metas {
        match meta {
            Meta::NameValue(nv) if nv.path.is_ident("name") => match nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => {
                    if s.value().is_empty() {
                        return Err(syn::Error::new(s.span(), "a task name cannot be empty"));
                    }
                    name = Some(s.value());
                }
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "expected a string: name = \"...\"",
                    ));
                }
            },
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "unknown task option; the supported option is name = \"...\"",
                ));
            }
        }
    }

    let sig = &func.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a task cannot be generic: the registry needs one concrete signature",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(
            variadic.span(),
            "a task cannot be variadic",
        ));
    }

    let mut arg_types: Vec<Type> = Vec::new();
    let mut arg_names = Vec::new();
    let mut signature_parts = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(r) => {
                return Err(syn::Error::new(
                    r.span(),
                    "a task is a free function; methods cannot be tasks",
                ));
            }
            FnArg::Typed(pat) => {
                if matches!(*pat.ty, Type::Reference(_)) {
                    return Err(syn::Error::new(
                        pat.ty.span(),
                        "task arguments are decoded into owned values; take `String` or `Vec<T>` instead of a reference",
                    ));
                }
                arg_types.push((*pat.ty).clone());
                arg_names.push(format_ident!("__braid_arg{}", index));
                let pat_text = quote!(#pat).to_string();
                signature_parts.push(tidy(&pat_text));
            }
        }
    }

    let (return_type, returns_result): (Type, bool) = match &sig.output {
        ReturnType::Default => (syn::parse_quote!(()), false),
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(ok) => (ok, true),
            None => ((**ty).clone(), false),
        },
    };

    let fn_ident = &sig.ident;
    let vis = &func.vis;
    let core = core_path();
    let is_async = sig.asyncness.is_some();

    let ret_text = match &sig.output {
        ReturnType::Default => String::new(),
        ReturnType::Type(_, ty) => format!(" -> {}", tidy(&quote!(#ty).to_string())),
    };
    let signature = format!(
        "{}fn({}){}",
        if is_async { "async " } else { "" },
        signature_parts.join(", "),
        ret_text
    );

    let args_type: TokenStream2 = if arg_types.is_empty() {
        quote!(#core::NoArgs)
    } else {
        quote!((#(#arg_types,)*))
    };
    let args_pattern: TokenStream2 = if arg_types.is_empty() {
        quote!(#core::NoArgs)
    } else {
        quote!((#(#arg_names,)*))
    };
    let name_expr = match &name {
        Some(n) => quote!(#n),
        None => {
            let suffix = format!("::{fn_ident}");
            quote!(::core::concat!(::core::module_path!(), #suffix))
        }
    };
    let finish = if returns_result {
        quote!(let __braid_out = __braid_out.map_err(|e| #core::__private::task_error(NAME, e))?;)
    } else {
        quote!()
    };

    let call_args = &arg_names;
    let (body_sig, body_call) = if is_async {
        (
            quote! {
                fn __braid_body(
                    codec: #core::Codec,
                    bytes: ::std::vec::Vec<u8>,
                ) -> #core::BoxFuture<::core::result::Result<::std::vec::Vec<u8>, #core::Error>>
            },
            quote! {
                ::std::boxed::Box::pin(async move {
                    let #args_pattern: #args_type =
                        #core::__private::decode_args(NAME, SIGNATURE, codec, &bytes)?;
                    let __braid_out =
                        #core::__private::catch_async(NAME, #fn_ident(#(#call_args),*)).await?;
                    #finish
                    #core::__private::encode_result(codec, &__braid_out)
                })
            },
        )
    } else {
        (
            quote! {
                fn __braid_body(
                    codec: #core::Codec,
                    bytes: &[u8],
                ) -> ::core::result::Result<::std::vec::Vec<u8>, #core::Error>
            },
            quote! {
                let #args_pattern: #args_type =
                    #core::__private::decode_args(NAME, SIGNATURE, codec, bytes)?;
                let __braid_out =
                    #core::__private::catch(NAME, move || #fn_ident(#(#call_args),*))?;
                #finish
                #core::__private::encode_result(codec, &__braid_out)
            },
        )
    };
    let body_kind = if is_async {
        quote!(Async)
    } else {
        quote!(Sync)
    };

    let doc = format!(
        "The task registered by [`{fn_ident}`](fn@{fn_ident}): `{fn_ident}::NAME`, `{fn_ident}::task()`."
    );
    // A braced struct lives only in the type namespace, so it shares the function's name
    // without hiding the function: `add(1, 2)` calls it, `add::task()` refers to the task.
    // Everything stays at the function's own level, so tasks may be declared inside a
    // function body and use types declared there.
    Ok(quote! {
        #func

        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #vis struct #fn_ident {}

        #[allow(dead_code)]
        impl #fn_ident {
            /// The name this task is registered under.
            #vis const NAME: &'static str = #name_expr;
            /// The task's signature as written.
            #vis const SIGNATURE: &'static str = #signature;

            /// A typed reference to this task, for executors.
            #vis fn task() -> #core::TaskRef<#args_type, #return_type> {
                #core::TaskRef::new(Self::NAME)
            }
        }

        const _: () = {
            const NAME: &str = #fn_ident::NAME;
            const SIGNATURE: &str = #fn_ident::SIGNATURE;
            #body_sig {
                #body_call
            }
            #core::__private::inventory::submit! {
                #core::TaskEntry::new(NAME, SIGNATURE, #core::TaskBody::#body_kind(__braid_body))
            }
        };
    })
}

/// The `T` of a return type written `Result<T, ..>` (any path ending in `Result`).
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}

/// Token text with the spaces `quote` puts around punctuation taken out.
fn tidy(text: &str) -> String {
    text.replace(" :", ":")
        .replace(" ,", ",")
        .replace("< ", "<")
        .replace(" <", "<")
        .replace(" >", ">")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace("& ", "&")
}
