//! Procedural macros for braid-rpc. Use them through `braid::rpc` (or `braid-rpc`):
//! `#[braid::rpc::service]`.

use proc_macro::TokenStream;
use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::TokenStream as TokenStream2;
use quote::{ToTokens, format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, ItemTrait, Pat, ReturnType, TraitItem, TraitItemFn, Type};

/// Turns a trait into a remote object type, the way Pyro's `@expose` turns a class into
/// one.
///
/// Every method takes `&self` and owned arguments that implement serde's `Serialize` and
/// `Deserialize`; its return type must too (a `Result<T, E>` travels as a value). Mark a
/// method `#[oneway]` (it must return `()`) to make calls to it fire-and-forget.
///
/// For `trait Shop` the macro adds:
/// - `Send + Sync + 'static` as supertraits, and a provided method
///   `fn into_object(self) -> Object` that wraps an implementation for a `Daemon`;
/// - `impl<T: Shop + ?Sized> Shop for Arc<T>`, so a shared implementation can be served
///   while the program keeps a handle on it;
/// - `ShopProxy`: a typed proxy with one method per trait method returning
///   `Result<R, braid_rpc::Error>`, a `NAME_async` variant returning an `AsyncResult<R>`
///   for every two-way method, and `batch()` giving a `ShopBatch` that records calls and
///   sends them in one message. The proxy is `Clone`, `Send` and `Sync`, and serialises
///   as its URI, so a proxy passed to or returned from a remote method stays a proxy.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn rpc_path() -> TokenStream2 {
    match crate_name("braid-rpc") {
        Ok(FoundCrate::Name(name)) => {
            let ident = format_ident!("{}", name);
            return quote!(::#ident);
        }
        // braid-rpc declares `extern crate self as braid_rpc`, so the absolute path works
        // in its own unit tests, integration tests and examples alike.
        Ok(FoundCrate::Itself) => return quote!(::braid_rpc),
        Err(_) => {}
    }
    match crate_name("braid") {
        Ok(FoundCrate::Name(name)) => {
            let ident = format_ident!("{}", name);
            quote!(::#ident::rpc)
        }
        _ => quote!(::braid::rpc),
    }
}

struct Method {
    name: syn::Ident,
    docs: Vec<syn::Attribute>,
    arg_names: Vec<syn::Ident>,
    arg_types: Vec<Type>,
    output: Type,
    oneway: bool,
}

fn parse_method(item: &mut TraitItemFn) -> syn::Result<Method> {
    let mut oneway = false;
    let mut kept = Vec::new();
    for attr in item.attrs.drain(..) {
        if attr.path().is_ident("oneway") {
            if !matches!(attr.meta, syn::Meta::Path(_)) {
                return Err(syn::Error::new_spanned(
                    &attr,
                    "`#[oneway]` takes no arguments",
                ));
            }
            oneway = true;
        } else {
            kept.push(attr);
        }
    }
    item.attrs = kept;
    let sig = &item.sig;
    if let Some(asyncness) = sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span,
            "remote methods are plain functions (the daemon runs them on its threads); remove `async`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        // `Generics` prints its parameters only: point at the `where` clause when alone.
        let generics = if sig.generics.params.is_empty() {
            sig.generics.where_clause.to_token_stream()
        } else {
            sig.generics.to_token_stream()
        };
        return Err(syn::Error::new_spanned(
            generics,
            "remote methods cannot be generic: their argument types must be known to decode them",
        ));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        other => {
            let message = "a remote method takes `&self` (objects are shared between calls; use a Mutex or atomics for state)";
            return Err(match other {
                Some(arg) => syn::Error::new_spanned(arg, message),
                None => syn::Error::new(sig.paren_token.span.join(), message),
            });
        }
    }
    let mut arg_names = Vec::new();
    let mut arg_types = Vec::new();
    for (i, input) in inputs.enumerate() {
        let FnArg::Typed(pat) = input else {
            return Err(syn::Error::new(input.span(), "unexpected receiver"));
        };
        if let Type::Reference(r) = &*pat.ty {
            return Err(syn::Error::new_spanned(
                r,
                "remote method arguments must be owned values (they are decoded from a message)",
            ));
        }
        let name = match &*pat.pat {
            Pat::Ident(ident) => ident.ident.clone(),
            _ => format_ident!("arg{}", i),
        };
        arg_names.push(name);
        arg_types.push((*pat.ty).clone());
    }
    let output = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    if oneway && !matches!(&output, Type::Tuple(t) if t.elems.is_empty()) {
        return Err(syn::Error::new_spanned(
            &sig.output,
            "a `#[oneway]` method cannot return a value: its caller does not wait for an answer",
        ));
    }
    let docs = item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    Ok(Method {
        name: sig.ident.clone(),
        docs,
        arg_names,
        arg_types,
        output,
        oneway,
    })
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            attr,
            "`#[service]` takes no options",
        ));
    }
    let mut tr: ItemTrait = syn::parse2(item)?;
    if !tr.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &tr.generics,
            "a service trait cannot be generic: a proxy must know the types it decodes",
        ));
    }
    let k = rpc_path();
    let mut methods = Vec::new();
    for item in &mut tr.items {
        if let TraitItem::Fn(f) = item {
            methods.push(parse_method(f)?);
        }
    }
    let trait_name = &tr.ident;
    let vis = &tr.vis;
    let service_name = trait_name.to_string();
    let dispatch_name = format_ident!("__{}Dispatch", trait_name);
    let proxy_name = format_ident!("{}Proxy", trait_name);
    let batch_name = format_ident!("{}Batch", trait_name);

    tr.supertraits.push(syn::parse_quote!(::core::marker::Send));
    tr.supertraits.push(syn::parse_quote!(::core::marker::Sync));
    tr.supertraits.push(syn::parse_quote!('static));
    let into_object: TraitItem = syn::parse_quote! {
        /// Wraps this implementation as a remote object, ready for `Daemon::register`.
        fn into_object(self) -> #k::Object
        where
            Self: ::core::marker::Sized,
        {
            #k::Object::new(#dispatch_name(::std::sync::Arc::new(self)))
        }
    };
    tr.items.push(into_object);

    let method_names: Vec<String> = methods.iter().map(|m| m.name.to_string()).collect();

    let forward = methods.iter().map(|m| {
        let name = &m.name;
        let args = &m.arg_names;
        let tys = &m.arg_types;
        let out = &m.output;
        quote! {
            fn #name(&self, #(#args: #tys),*) -> #out {
                (**self).#name(#(#args),*)
            }
        }
    });

    let arms = methods.iter().map(|m| {
        let name = &m.name;
        let name_str = name.to_string();
        let args = &m.arg_names;
        let tys = &m.arg_types;
        let expected = quote!((#(#tys,)*)).to_string();
        quote! {
            #name_str => {
                let (#(#args,)*): (#(#tys,)*) =
                    #k::__private::decode_args(args, #expected)?;
                let out = self.0.#name(#(#args),*);
                #k::__private::encode_result(&out)
            }
        }
    });

    let proxy_methods = methods.iter().map(|m| {
        let name = &m.name;
        let name_str = name.to_string();
        let docs = &m.docs;
        let args = &m.arg_names;
        let tys = &m.arg_types;
        let out = &m.output;
        if m.oneway {
            quote! {
                #(#docs)*
                ///
                /// One-way: returns once the call is sent, without waiting for the object.
                pub fn #name(&self, #(#args: #tys),*) -> ::core::result::Result<(), #k::Error> {
                    self.proxy.call_oneway(#name_str, &(#(#args,)*))
                }
            }
        } else {
            let name_async = format_ident!("{}_async", name);
            let doc_async = format!(
                "Calls `{name_str}` without waiting: the call runs on a background thread and \
                 the returned `AsyncResult` gives its outcome."
            );
            quote! {
                #(#docs)*
                pub fn #name(&self, #(#args: #tys),*) -> ::core::result::Result<#out, #k::Error> {
                    self.proxy.call(#name_str, &(#(#args,)*))
                }

                #[doc = #doc_async]
                pub fn #name_async(&self, #(#args: #tys),*) -> #k::AsyncResult<#out> {
                    self.proxy.call_async(#name_str, &(#(#args,)*))
                }
            }
        }
    });

    let batch_methods = methods.iter().map(|m| {
        let name = &m.name;
        let name_str = name.to_string();
        let args = &m.arg_names;
        let tys = &m.arg_types;
        let out = &m.output;
        let doc = format!("Records a call to `{name_str}`; its result is read from the batch's results with the returned slot.");
        quote! {
            #[doc = #doc]
            pub fn #name(&mut self, #(#args: #tys),*) -> #k::Slot<#out> {
                self.batch.push(#name_str, &(#(#args,)*))
            }
        }
    });

    let proxy_doc = format!(
        "A typed proxy for a remote `{service_name}` object: each method calls the object \
         in its daemon. Cloning shares the proxy's connections; it serialises as its URI."
    );
    let batch_doc = format!(
        "Calls to a remote `{service_name}` recorded to be sent in one message (see \
         `{proxy_name}::batch`)."
    );

    Ok(quote! {
        #tr

        impl<T: #trait_name + ?::core::marker::Sized> #trait_name for ::std::sync::Arc<T> {
            #(#forward)*
        }

        #[doc(hidden)]
        struct #dispatch_name<T: ?::core::marker::Sized>(::std::sync::Arc<T>);

        impl<T: #trait_name + ?::core::marker::Sized> #k::Dispatch for #dispatch_name<T> {
            fn service(&self) -> &'static str {
                #service_name
            }

            fn methods(&self) -> &'static [&'static str] {
                &[#(#method_names),*]
            }

            fn dispatch(
                &self,
                method: &str,
                args: &[u8],
            ) -> ::core::result::Result<::std::vec::Vec<u8>, #k::DispatchError> {
                match method {
                    #(#arms)*
                    _ => ::core::result::Result::Err(#k::DispatchError::UnknownMethod),
                }
            }
        }

        #[doc = #proxy_doc]
        #[derive(Clone, Debug)]
        #[allow(dead_code)]
        #vis struct #proxy_name {
            proxy: #k::Proxy,
        }

        // The proxy is a complete API; a program uses the parts it needs.
        #[allow(dead_code)]
        impl #proxy_name {
            /// A proxy for the object at `uri` (`braid://host:port/name`,
            /// `braids://...` over TLS, or `braidname://name[@host:port]` resolved through
            /// the name server). Nothing is connected until the first call.
            ///
            /// # Errors
            /// `Error::InvalidUri` when the URI does not parse.
            pub fn connect(uri: impl #k::IntoUri) -> ::core::result::Result<Self, #k::Error> {
                ::core::result::Result::Ok(Self { proxy: #k::Proxy::new(uri)? })
            }

            /// A typed proxy over an untyped one.
            pub fn from_proxy(proxy: #k::Proxy) -> Self {
                Self { proxy }
            }

            /// The untyped proxy underneath (its URI, settings and connections).
            pub fn proxy(&self) -> &#k::Proxy {
                &self.proxy
            }

            /// The untyped proxy underneath.
            pub fn into_proxy(self) -> #k::Proxy {
                self.proxy
            }

            /// The same object, with calls that fail with `Error::Timeout` when no answer
            /// comes within `timeout` (new connections; this proxy is unchanged).
            pub fn with_timeout(&self, timeout: ::std::time::Duration) -> Self {
                Self { proxy: self.proxy.with_timeout(timeout) }
            }

            /// The same object, proving knowledge of `key` when connecting (new
            /// connections; this proxy is unchanged).
            pub fn with_key(&self, key: impl ::core::convert::AsRef<[u8]>) -> Self {
                Self { proxy: self.proxy.with_key(key) }
            }

            /// The same object, reached over TLS checked with `tls` (new connections).
            pub fn with_tls(&self, tls: #k::ClientTls) -> Self {
                Self { proxy: self.proxy.with_tls(tls) }
            }

            /// Starts a batch: calls recorded on it go to the object in one message and
            /// run there in order, stopping at the first failure.
            pub fn batch(&self) -> #batch_name {
                #batch_name { batch: self.proxy.batch() }
            }

            #(#proxy_methods)*
        }

        impl ::core::convert::From<#k::Proxy> for #proxy_name {
            fn from(proxy: #k::Proxy) -> Self {
                Self { proxy }
            }
        }

        impl #k::__private::serde::Serialize for #proxy_name {
            fn serialize<S: #k::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::core::result::Result<S::Ok, S::Error> {
                #k::__private::serde::Serialize::serialize(&self.proxy, serializer)
            }
        }

        impl<'de> #k::__private::serde::Deserialize<'de> for #proxy_name {
            fn deserialize<D: #k::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::core::result::Result<Self, D::Error> {
                let proxy = <#k::Proxy as #k::__private::serde::Deserialize>::deserialize(deserializer)?;
                ::core::result::Result::Ok(Self { proxy })
            }
        }

        #[doc = #batch_doc]
        #[derive(Debug)]
        #[allow(dead_code)]
        #vis struct #batch_name {
            batch: #k::Batch,
        }

        #[allow(dead_code)]
        impl #batch_name {
            #(#batch_methods)*

            /// Sends the recorded calls in one message and waits for their results.
            ///
            /// # Errors
            /// A connection error, or the first argument that could not be encoded; a
            /// call that fails remotely is reported through its slot instead.
            pub fn execute(self) -> ::core::result::Result<#k::BatchResults, #k::Error> {
                self.batch.execute()
            }
        }
    })
}
