//! [`Element`]: the plain numeric types that travel as typed buffers (mpi4py's upper-case
//! calls), and [`Loc`], the value-and-index pair of `MAXLOC`/`MINLOC`.

use serde::{Deserialize, Serialize};

/// The element type of a typed buffer, sent with every buffer message so that a receive
/// into a buffer of another type is an error, never a reinterpretation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ElementKind {
    /// `u8`.
    U8,
    /// `i8`.
    I8,
    /// `u16`.
    U16,
    /// `i16`.
    I16,
    /// `u32`.
    U32,
    /// `i32`.
    I32,
    /// `u64`.
    U64,
    /// `i64`.
    I64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// [`Loc<f64>`] (`MPI_DOUBLE_INT`-like).
    LocF64,
    /// [`Loc<i64>`].
    LocI64,
    /// [`Loc<u64>`].
    LocU64,
}

impl ElementKind {
    pub(crate) fn code(self) -> u8 {
        self as u8 + 1
    }

    pub(crate) fn from_code(code: u8) -> Option<ElementKind> {
        use ElementKind::*;
        const ALL: [ElementKind; 13] = [
            U8, I8, U16, I16, U32, I32, U64, I64, F32, F64, LocF64, LocI64, LocU64,
        ];
        ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

impl std::fmt::Display for ElementKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            ElementKind::U8 => "u8",
            ElementKind::I8 => "i8",
            ElementKind::U16 => "u16",
            ElementKind::I16 => "i16",
            ElementKind::U32 => "u32",
            ElementKind::I32 => "i32",
            ElementKind::U64 => "u64",
            ElementKind::I64 => "i64",
            ElementKind::F32 => "f32",
            ElementKind::F64 => "f64",
            ElementKind::LocF64 => "Loc<f64>",
            ElementKind::LocI64 => "Loc<i64>",
            ElementKind::LocU64 => "Loc<u64>",
        };
        f.write_str(name)
    }
}

/// A plain numeric type that can be sent as a typed buffer: its bytes are copied as they
/// are, and its [`ElementKind`] travels with them.
pub trait Element: bytemuck::Pod + Send + Sync {
    /// The kind sent with a buffer of this type.
    const KIND: ElementKind;
}

macro_rules! element {
    ($($ty:ty => $kind:ident),* $(,)?) => {
        $(impl Element for $ty {
            const KIND: ElementKind = ElementKind::$kind;
        })*
    };
}

element!(
    u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32,
    u64 => U64, i64 => I64, f32 => F32, f64 => F64,
    Loc<f64> => LocF64, Loc<i64> => LocI64, Loc<u64> => LocU64,
);

/// A value with the rank (or any index) it came from: the operand of
/// [`Op::maxloc`](crate::Op::maxloc) and [`Op::minloc`](crate::Op::minloc), like mpi4py's
/// `(value, index)` pairs and `MPI.DOUBLE_INT`.
///
/// Ties go to the smaller index, as in MPI.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[repr(C)]
pub struct Loc<T> {
    /// The value compared.
    pub value: T,
    /// Where it came from.
    pub index: i64,
}

impl<T> Loc<T> {
    /// A value and its index.
    pub fn new(value: T, index: i64) -> Loc<T> {
        Loc { value, index }
    }
}

// SAFETY: `Loc<T>` is `repr(C)` with an 8-byte `T` followed by an `i64`: no padding, every
// bit pattern valid, so it is `Zeroable` and `Pod` for exactly these `T`.
unsafe impl bytemuck::Zeroable for Loc<f64> {}
// SAFETY: as above.
unsafe impl bytemuck::Pod for Loc<f64> {}
// SAFETY: as above.
unsafe impl bytemuck::Zeroable for Loc<i64> {}
// SAFETY: as above.
unsafe impl bytemuck::Pod for Loc<i64> {}
// SAFETY: as above.
unsafe impl bytemuck::Zeroable for Loc<u64> {}
// SAFETY: as above.
unsafe impl bytemuck::Pod for Loc<u64> {}

/// The size of a huge page on x86-64 and most Linux machines.
const HUGE_PAGE: usize = 2 << 20;

/// A buffer of `len` copies of `value` whose large part Linux may back with 2 MiB pages,
/// as numpy does for arrays of 4 MiB or more (so mpi4py's buffers get them): copying
/// and reducing megabytes then misses the TLB far less. Use it for the large buffers of
/// collectives and big messages; below 4 MiB it is a plain vector.
///
/// The advice covers the whole 2 MiB pages inside the vector (where transparent huge
/// pages are `always` or `madvise`); elsewhere, or when the kernel refuses, the vector is
/// the same, just on small pages.
///
/// ```
/// let mut sum = braid_mpi::buffer(1 << 20, 0.0f64);
/// assert_eq!(sum.len(), 1 << 20);
/// sum[7] = 1.0;
/// ```
pub fn buffer<T: Element>(len: usize, value: T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    if bytes >= 2 * HUGE_PAGE {
        let start = v.as_mut_ptr().cast::<u8>();
        let addr = start as usize;
        let offset = addr.next_multiple_of(HUGE_PAGE) - addr;
        let whole = (bytes.saturating_sub(offset) / HUGE_PAGE) * HUGE_PAGE;
        if whole > 0 {
            // SAFETY: the range lies inside `v`'s allocation (its capacity covers `bytes`
            // from `start`) and is page aligned; MADV_HUGEPAGE changes only how the
            // kernel backs the pages, never their contents or validity.
            let advised = unsafe {
                rustix::mm::madvise(
                    start.wrapping_add(offset).cast(),
                    whole,
                    rustix::mm::Advice::LinuxHugepage,
                )
            };
            if let Err(e) = advised {
                tracing::debug!(error = %e, "no huge pages for a braid-mpi buffer");
            }
        }
    }
    // Filled after the advice, so the first touch of each page already gets a huge one.
    v.resize(len, value);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_codes_round_trip() {
        for code in 1..=13u8 {
            let kind = ElementKind::from_code(code).unwrap();
            assert_eq!(kind.code(), code);
        }
        assert_eq!(ElementKind::from_code(0), None);
        assert_eq!(ElementKind::from_code(14), None);
    }

    #[test]
    fn buffers_of_every_size_hold_their_values() {
        for len in [0, 1, 1000, (4 << 20) / 8, (9 << 20) / 8 + 3] {
            let v = super::buffer(len, 2.5f64);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 2.5));
        }
    }

    #[test]
    fn loc_has_no_padding() {
        assert_eq!(std::mem::size_of::<Loc<f64>>(), 16);
    }
}
