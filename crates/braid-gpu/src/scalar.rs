//! The element types a device array, a kernel argument or a reduction can hold.

/// A C scalar type as kernel source spells it, reduced to the types braid can check.
/// Public only so that the sealed trait can name it; not reachable from outside the crate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CType {
    F32,
    F64,
    I32,
    U32,
    I64,
    U64,
    /// Any other type (a struct, `float2`, `char`): braid cannot check an argument of it.
    Other(String),
}

impl CType {
    /// Reads a type from its words with the qualifiers already removed: `unsigned int`,
    /// `long long`, `ulong`, `float`, ... `long` is 64 bits, as on Linux and in OpenCL C.
    pub(crate) fn parse(words: &[&str]) -> CType {
        let joined = words.join(" ");
        match joined.as_str() {
            "float" => CType::F32,
            "double" => CType::F64,
            "int" | "signed" | "signed int" | "int32_t" => CType::I32,
            "unsigned" | "unsigned int" | "uint" | "uint32_t" => CType::U32,
            "long" | "long int" | "long long" | "long long int" | "signed long"
            | "signed long long" | "int64_t" | "ptrdiff_t" => CType::I64,
            "unsigned long"
            | "unsigned long int"
            | "unsigned long long"
            | "unsigned long long int"
            | "ulong"
            | "uint64_t"
            | "size_t" => CType::U64,
            _ => CType::Other(joined),
        }
    }

    /// The name in CUDA C.
    pub(crate) fn cuda(&self) -> &str {
        match self {
            CType::F32 => "float",
            CType::F64 => "double",
            CType::I32 => "int",
            CType::U32 => "unsigned int",
            CType::I64 => "long long",
            CType::U64 => "unsigned long long",
            CType::Other(name) => name,
        }
    }

    /// The name in OpenCL C.
    pub(crate) fn opencl(&self) -> &str {
        match self {
            CType::F32 => "float",
            CType::F64 => "double",
            CType::I32 => "int",
            CType::U32 => "uint",
            CType::I64 => "long",
            CType::U64 => "ulong",
            CType::Other(name) => name,
        }
    }

    /// The Rust type that matches, for messages.
    pub(crate) fn rust(&self) -> &str {
        match self {
            CType::F32 => "f32",
            CType::F64 => "f64",
            CType::I32 => "i32",
            CType::U32 => "u32",
            CType::I64 => "i64",
            CType::U64 => "u64",
            CType::Other(name) => name,
        }
    }
}

pub(crate) mod sealed {
    /// Keeps [`Scalar`](super::Scalar) to the types braid knows how to move and check.
    pub trait Sealed:
        cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Default + Unpin
    {
        /// The C type braid checks kernel arguments against.
        fn ctype() -> super::CType;
        /// The smallest value (minus infinity for floats): the neutral value of `max`.
        const LOWEST: Self;
        /// The largest value (infinity for floats): the neutral value of `min`.
        const HIGHEST: Self;
    }
}

/// An element type of device arrays, buffers and kernel arguments: `f32`, `f64`, `i32`,
/// `u32`, `i64` or `u64` (the types PyCUDA's `dtype`s map to). Sealed.
pub trait Scalar:
    sealed::Sealed
    + crate::KernelArg
    + crate::ClArg
    + Copy
    + PartialEq
    + PartialOrd
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The type's name in CUDA C (`float`, `unsigned long long`).
    const CUDA_NAME: &'static str;
    /// The type's name in OpenCL C (`float`, `ulong`).
    const OPENCL_NAME: &'static str;
    /// A C literal for `self`, exactly representable (`1.5f`, `-3`, `7ull`).
    fn c_literal(self) -> String;
    /// Converts an element index to this type, as `arange` does.
    fn from_index(i: usize) -> Self;
    /// Widens to `f64`, for comparisons against a CPU reference.
    fn to_f64(self) -> f64;
}

macro_rules! scalar {
    ($t:ty, $cuda:literal, $opencl:literal, $ctype:ident, $lowest:expr, $highest:expr, |$v:ident| $literal:expr) => {
        impl sealed::Sealed for $t {
            fn ctype() -> CType {
                CType::$ctype
            }
            const LOWEST: Self = $lowest;
            const HIGHEST: Self = $highest;
        }
        impl Scalar for $t {
            const CUDA_NAME: &'static str = $cuda;
            const OPENCL_NAME: &'static str = $opencl;
            fn c_literal(self) -> String {
                let $v = self;
                $literal
            }
            fn from_index(i: usize) -> Self {
                i as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}

scalar!(
    f32,
    "float",
    "float",
    F32,
    f32::NEG_INFINITY,
    f32::INFINITY,
    |v| float_literal(f64::from(v), "f")
);
scalar!(
    f64,
    "double",
    "double",
    F64,
    f64::NEG_INFINITY,
    f64::INFINITY,
    |v| float_literal(v, "")
);
scalar!(
    i32,
    "int",
    "int",
    I32,
    i32::MIN,
    i32::MAX,
    |v| if v == i32::MIN {
        "(-2147483647 - 1)".to_string()
    } else {
        format!("({v})")
    }
);
scalar!(
    u32,
    "unsigned int",
    "uint",
    U32,
    u32::MIN,
    u32::MAX,
    |v| format!("{v}u")
);
scalar!(
    i64,
    "long long",
    "long",
    I64,
    i64::MIN,
    i64::MAX,
    |v| if v == i64::MIN {
        "(-9223372036854775807LL - 1)".to_string()
    } else {
        format!("({v}LL)")
    }
);
scalar!(
    u64,
    "unsigned long long",
    "ulong",
    U64,
    u64::MIN,
    u64::MAX,
    |v| format!("{v}ULL")
);

/// A float literal that reads back to the same value: `(1.5e0f)`, `(-0e0f)`; infinities
/// and NaN as constant divisions, which CUDA C (without math.h) and OpenCL C both accept.
/// Rust's shortest round-trip formatting is exact in C too.
fn float_literal(v: f64, suffix: &str) -> String {
    let one = format!("1.0{suffix}");
    let zero = format!("0.0{suffix}");
    if v.is_nan() {
        format!("({zero}/{zero})")
    } else if v.is_infinite() {
        let sign = if v > 0.0 { "" } else { "-" };
        format!("({sign}{one}/{zero})")
    } else {
        format!("({v:e}{suffix})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_in_both_dialects() {
        assert_eq!(CType::parse(&["unsigned", "long", "long"]), CType::U64);
        assert_eq!(CType::parse(&["ulong"]), CType::U64);
        assert_eq!(CType::parse(&["long"]), CType::I64);
        assert_eq!(CType::parse(&["uint"]), CType::U32);
        assert_eq!(CType::parse(&["float"]), CType::F32);
        assert_eq!(
            CType::parse(&["float2"]),
            CType::Other("float2".to_string())
        );
    }

    #[test]
    fn literals_are_exact() {
        assert_eq!(1.5f32.c_literal(), "(1.5e0f)");
        assert_eq!(0.1f64.c_literal(), "(1e-1)");
        assert_eq!(f32::NEG_INFINITY.c_literal(), "(-1.0f/0.0f)");
        assert_eq!(i32::MIN.c_literal(), "(-2147483647 - 1)");
        assert_eq!(7u64.c_literal(), "7ULL");
        assert_eq!((-3i64).c_literal(), "(-3LL)");
        assert_eq!(<u32 as sealed::Sealed>::ctype(), CType::U32);
    }
}
