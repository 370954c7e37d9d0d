//! Reading kernel signatures out of CUDA C and OpenCL C source, so that a launch can check
//! its arguments against the parameters before the driver sees them (PyCUDA and PyOpenCL
//! pass whatever they are given; a wrong one there reads garbage or faults the device).

use crate::scalar::CType;

/// Where a pointer parameter points (OpenCL's address spaces; CUDA pointers are global).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Space {
    Global,
    Local,
    Constant,
}

/// One parameter of a kernel, or one entry of an element-wise argument list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Param {
    pub name: String,
    pub ty: CType,
    /// `Some(space)` for a pointer (or `T x[]`), `None` for a value.
    pub pointer: Option<Space>,
    pub is_const: bool,
}

impl Param {
    /// The parameter as CUDA C declares it.
    pub(crate) fn cuda(&self) -> String {
        let konst = if self.is_const { "const " } else { "" };
        match self.pointer {
            Some(_) => format!("{konst}{} *{}", self.ty.cuda(), self.name),
            None => format!("{konst}{} {}", self.ty.cuda(), self.name),
        }
    }

    /// The parameter as OpenCL C declares it; pointers are `__global` unless said otherwise.
    pub(crate) fn opencl(&self) -> String {
        let konst = if self.is_const { "const " } else { "" };
        match self.pointer {
            Some(space) => {
                let space = match space {
                    Space::Global => "__global",
                    Space::Local => "__local",
                    Space::Constant => "__constant",
                };
                format!("{space} {konst}{} *{}", self.ty.opencl(), self.name)
            }
            None => format!("{konst}{} {}", self.ty.opencl(), self.name),
        }
    }

    /// How the parameter reads in a message: `float *x`.
    pub(crate) fn describe(&self) -> String {
        match self.pointer {
            Some(_) => format!("`{} *{}`", self.ty.cuda(), self.name),
            None => format!("`{} {}`", self.ty.cuda(), self.name),
        }
    }
}

/// A kernel's name and, when braid could read them, its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signature {
    pub name: String,
    /// `Err(why)` when the parameter list is beyond braid's reader (templates, macros).
    pub params: Result<Vec<Param>, String>,
}

/// What a launch passes for one parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArgKind {
    /// A device array or buffer of this element type.
    Array(CType),
    /// A value of this type.
    Value(CType),
    /// OpenCL local memory of this many bytes.
    Local,
}

impl ArgKind {
    fn describe(&self) -> String {
        match self {
            ArgKind::Array(t) => format!("an array of {}", t.rust()),
            ArgKind::Value(t) => format!("a value of type {}", t.rust()),
            ArgKind::Local => "local memory".to_string(),
        }
    }
}

/// Checks a launch's arguments against the parameters; the error says which one is wrong.
pub(crate) fn check(params: &[Param], args: &[ArgKind]) -> Result<(), String> {
    if params.len() != args.len() {
        let list: Vec<String> = params.iter().map(Param::describe).collect();
        return Err(format!(
            "takes {} argument(s) ({}), got {}",
            params.len(),
            list.join(", "),
            args.len()
        ));
    }
    for (index, (param, arg)) in params.iter().zip(args).enumerate() {
        let fits = match (param.pointer, arg) {
            (Some(Space::Local), ArgKind::Local) => true,
            (Some(Space::Local), _) | (_, ArgKind::Local) => false,
            (Some(_), ArgKind::Array(t)) => *t == param.ty,
            (None, ArgKind::Value(t)) => *t == param.ty,
            _ => false,
        };
        if !fits {
            let wanted = match (&param.pointer, &param.ty) {
                (Some(Space::Local), _) => "local memory".to_string(),
                (Some(_), CType::Other(_)) | (None, CType::Other(_)) => format!(
                    "a type braid cannot check (`{}`); launch it unchecked",
                    param.ty.cuda()
                ),
                (Some(_), t) => format!("an array of {}", t.rust()),
                (None, t) => format!("a value of type {}", t.rust()),
            };
            return Err(format!(
                "parameter {index} {} wants {wanted}, got {}",
                param.describe(),
                arg.describe()
            ));
        }
    }
    Ok(())
}

/// Parses a comma-separated parameter list, as in PyCUDA's `ElementwiseKernel` arguments
/// (`"float a, float *x, const float *y"`) or between a kernel's parentheses.
pub(crate) fn parse_params(list: &str) -> Result<Vec<Param>, String> {
    let trimmed = list.trim();
    if trimmed.is_empty() || trimmed == "void" {
        return Ok(Vec::new());
    }
    split_top_level(trimmed)
        .iter()
        .map(|p| parse_param(p))
        .collect()
}

fn parse_param(text: &str) -> Result<Param, String> {
    let mut words: Vec<String> = Vec::new();
    let mut stars = 0;
    let mut brackets = false;
    let mut current = String::new();
    let flush = |current: &mut String, words: &mut Vec<String>| {
        if !current.is_empty() {
            words.push(std::mem::take(current));
        }
    };
    for c in text.chars() {
        match c {
            c if c.is_alphanumeric() || c == '_' => current.push(c),
            '*' | '&' => {
                flush(&mut current, &mut words);
                if c == '&' {
                    return Err(format!(
                        "`{}`: references are not kernel parameters",
                        text.trim()
                    ));
                }
                stars += 1;
            }
            '[' | ']' => {
                flush(&mut current, &mut words);
                brackets = true;
            }
            c if c.is_whitespace() => flush(&mut current, &mut words),
            _ => {
                return Err(format!(
                    "`{}`: cannot read this parameter (unexpected `{c}`)",
                    text.trim()
                ));
            }
        }
    }
    flush(&mut current, &mut words);
    let name = words
        .pop()
        .ok_or_else(|| format!("`{}`: a parameter needs a type and a name", text.trim()))?;
    if name.starts_with(|c: char| c.is_ascii_digit()) || is_keyword(&name) {
        return Err(format!("`{}`: a parameter needs a name", text.trim()));
    }
    let mut is_const = false;
    let mut space = Space::Global;
    let mut ty_words: Vec<&str> = Vec::new();
    for w in &words {
        match w.as_str() {
            "const" => is_const = true,
            "volatile" | "restrict" | "__restrict__" | "__restrict" | "__global" | "global"
            | "__private" | "private" => {}
            "__local" | "local" => space = Space::Local,
            "__constant" | "constant" => space = Space::Constant,
            other => ty_words.push(other),
        }
    }
    if ty_words.is_empty() {
        return Err(format!("`{}`: the parameter has no type", text.trim()));
    }
    let pointers = stars + usize::from(brackets);
    let ty = CType::parse(&ty_words);
    let pointer = match pointers {
        0 if space == Space::Local => {
            return Err(format!("`{}`: local memory must be a pointer", text.trim()));
        }
        0 => None,
        1 => Some(space),
        _ => {
            return Ok(Param {
                name,
                ty: CType::Other(format!(
                    "{}{}",
                    ty_words.join(" "),
                    "*".repeat(pointers - 1)
                )),
                pointer: Some(space),
                is_const,
            });
        }
    };
    Ok(Param {
        name,
        ty,
        pointer,
        is_const,
    })
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "const" | "float" | "double" | "int" | "unsigned" | "long" | "void" | "uint" | "ulong"
    )
}

/// Splits on commas outside parentheses, brackets and angle brackets.
fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '(' | '[' | '<' => depth += 1,
            ')' | ']' | '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

/// Source with comments, string literals and preprocessor lines blanked out, so that a
/// `__global__` in a comment is not taken for a kernel.
fn code_only(source: &str) -> String {
    let bytes: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let mut line_start = true;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if line_start && c == '#' {
            // A directive runs to the end of the line, continued by a trailing backslash.
            while i < bytes.len() && !(bytes[i] == '\n' && (i == 0 || bytes[i - 1] != '\\')) {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('/') {
            while i < bytes.len() && bytes[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            i += 2;
            while i < bytes.len() && !(bytes[i] == '*' && bytes.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
            out.push(' ');
            continue;
        }
        if c == '"' || c == '\'' {
            i += 1;
            while i < bytes.len() && bytes[i] != c {
                if bytes[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
            continue;
        }
        if c == '\n' {
            line_start = true;
        } else if !c.is_whitespace() {
            line_start = false;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Every kernel the source declares: functions marked `__global__` (CUDA) or `__kernel` /
/// `kernel` (OpenCL C), in order of appearance.
pub(crate) fn kernels_in(source: &str) -> Vec<Signature> {
    let code: Vec<char> = code_only(source).chars().collect();
    let mut found: Vec<Signature> = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let Some((word, end)) = identifier_at(&code, i) else {
            i += 1;
            continue;
        };
        i = end;
        if !matches!(word.as_str(), "__global__" | "__kernel" | "kernel") {
            continue;
        }
        if let Some((signature, after)) = signature_after(&code, end) {
            if !found.iter().any(|s| s.name == signature.name) {
                found.push(signature);
            }
            i = after;
        }
    }
    found
}

/// The identifier starting at `i` (not in the middle of a longer one) and where it ends.
fn identifier_at(code: &[char], i: usize) -> Option<(String, usize)> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    if !is_ident(code[i]) || code[i].is_ascii_digit() || (i > 0 && is_ident(code[i - 1])) {
        return None;
    }
    let mut end = i;
    while end < code.len() && is_ident(code[end]) {
        end += 1;
    }
    Some((code[i..end].iter().collect(), end))
}

/// After `__global__`: skips the return type and attributes, reads the name and the
/// parenthesised parameters.
fn signature_after(code: &[char], mut i: usize) -> Option<(Signature, usize)> {
    loop {
        while i < code.len() && code[i].is_whitespace() {
            i += 1;
        }
        if i >= code.len() {
            return None;
        }
        let (word, end) = identifier_at(code, i)?;
        let mut j = end;
        while j < code.len() && code[j].is_whitespace() {
            j += 1;
        }
        if code.get(j) == Some(&'(') {
            let close = matching_paren(code, j)?;
            if matches!(word.as_str(), "__launch_bounds__" | "__attribute__") {
                i = close + 1;
                continue;
            }
            let inside: String = code[j + 1..close].iter().collect();
            let signature = Signature {
                name: word,
                params: parse_params(&inside),
            };
            return Some((signature, close + 1));
        }
        i = end;
    }
}

fn matching_paren(code: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (k, c) in code.iter().enumerate().skip(open) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// True when `name` is a C identifier (kernel names go into generated source and into the
/// driver's symbol lookup).
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, ty: CType, pointer: Option<Space>, is_const: bool) -> Param {
        Param {
            name: name.into(),
            ty,
            pointer,
            is_const,
        }
    }

    #[test]
    fn elementwise_argument_lists() {
        let params = parse_params("float a, float *x, const float* __restrict__ y, int n").unwrap();
        assert_eq!(
            params,
            vec![
                p("a", CType::F32, None, false),
                p("x", CType::F32, Some(Space::Global), false),
                p("y", CType::F32, Some(Space::Global), true),
                p("n", CType::I32, None, false),
            ]
        );
        assert_eq!(params[2].cuda(), "const float *y");
        assert_eq!(params[2].opencl(), "__global const float *y");
        assert!(parse_params("").unwrap().is_empty());
        assert!(parse_params("float").is_err());
        assert!(parse_params("float &x").is_err());
        assert!(parse_params("float *x, ").is_err());
    }

    #[test]
    fn kernels_are_found_in_cuda_and_opencl_source() {
        let cuda = r#"
            // __global__ void not_me(int x) in a comment
            #define N 16
            extern "C" __global__ void __launch_bounds__(256) scale(float *out, const float *in, float k, unsigned long long n) {
                const char *s = "__global__ void nope()";
            }
            template <typename T> __device__ T twice(T x) { return 2 * x; }
            __global__ void empty() {}
        "#;
        let kernels = kernels_in(cuda);
        let names: Vec<&str> = kernels.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["scale", "empty"]);
        let params = kernels[0].params.as_ref().unwrap();
        assert_eq!(params.len(), 4);
        assert_eq!(params[3].ty, CType::U64);
        assert!(kernels[1].params.as_ref().unwrap().is_empty());

        let opencl = "__kernel void sum(__global const float *a, __global float *b, __local float *scratch, const uint n) {}\n\
                      kernel __attribute__((reqd_work_group_size(64, 1, 1))) void other(global double *x) {}";
        let kernels = kernels_in(opencl);
        assert_eq!(kernels.len(), 2);
        let sum = kernels[0].params.as_ref().unwrap();
        assert_eq!(sum[2].pointer, Some(Space::Local));
        assert_eq!(sum[3], p("n", CType::U32, None, true));
        assert_eq!(kernels[1].name, "other");
    }

    #[test]
    fn arguments_are_checked_one_by_one() {
        let params = parse_params("float *x, int n").unwrap();
        assert!(
            check(
                &params,
                &[ArgKind::Array(CType::F32), ArgKind::Value(CType::I32)]
            )
            .is_ok()
        );
        let e = check(
            &params,
            &[ArgKind::Array(CType::F64), ArgKind::Value(CType::I32)],
        )
        .unwrap_err();
        assert_eq!(
            e,
            "parameter 0 `float *x` wants an array of f32, got an array of f64"
        );
        let e = check(&params, &[ArgKind::Array(CType::F32)]).unwrap_err();
        assert!(e.starts_with("takes 2 argument(s)"), "{e}");
        let e = check(
            &params,
            &[ArgKind::Value(CType::F32), ArgKind::Value(CType::I32)],
        )
        .unwrap_err();
        assert!(e.contains("got a value of type f32"), "{e}");
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("lin_comb2"));
        assert!(!is_identifier("2x"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier(""));
    }
}
