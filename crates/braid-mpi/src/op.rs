//! [`Op`]: the operations of reduce, allreduce, scan and exscan, built-in (`SUM`, `PROD`,
//! `MIN`, `MAX`, `LAND`, `LOR`, `BAND`, `BOR`, `MAXLOC`, `MINLOC`) or user-defined.

use std::fmt;
use std::sync::Arc;

use crate::{Error, Loc, Result};

/// MPI's predefined reduction operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// `MPI.SUM`: a + b.
    Sum,
    /// `MPI.PROD`: a * b.
    Prod,
    /// `MPI.MIN`.
    Min,
    /// `MPI.MAX`.
    Max,
    /// `MPI.LAND`: logical and (non-zero is true; the result is 0 or 1).
    Land,
    /// `MPI.LOR`: logical or.
    Lor,
    /// `MPI.BAND`: bitwise and.
    Band,
    /// `MPI.BOR`: bitwise or.
    Bor,
    /// `MPI.MAXLOC`: the largest value and its index (the smallest index on ties).
    Maxloc,
    /// `MPI.MINLOC`: the smallest value and its index (the smallest index on ties).
    Minloc,
}

impl Builtin {
    /// The name MPI gives it.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Sum => "SUM",
            Builtin::Prod => "PROD",
            Builtin::Min => "MIN",
            Builtin::Max => "MAX",
            Builtin::Land => "LAND",
            Builtin::Lor => "LOR",
            Builtin::Band => "BAND",
            Builtin::Bor => "BOR",
            Builtin::Maxloc => "MAXLOC",
            Builtin::Minloc => "MINLOC",
        }
    }
}

/// A type the built-in operations apply to. Implemented for the integers (every operation
/// but MAXLOC/MINLOC), the floats (SUM, PROD, MIN, MAX, LAND, LOR), `bool` (LAND, LOR,
/// BAND, BOR, MIN, MAX), [`Loc`] (MAXLOC, MINLOC) and, element by element, `Vec`s and
/// arrays of these.
pub trait Reduce: Sized + Clone {
    /// `a op b`, or [`Error::OpNotDefined`].
    fn combine(op: Builtin, a: &Self, b: &Self) -> Result<Self>;

    /// `acc[i] = acc[i] op other[i]` for every `i` (the slices have one length). The
    /// numeric types override this with a tight loop per operation.
    fn combine_slice(op: Builtin, acc: &mut [Self], other: &[Self]) -> Result<()> {
        for (a, b) in acc.iter_mut().zip(other) {
            *a = Self::combine(op, a, b)?;
        }
        Ok(())
    }
}

fn not_defined(op: Builtin, ty: &'static str) -> Error {
    Error::OpNotDefined { op: op.name(), ty }
}

macro_rules! slice_loop {
    ($acc:ident, $other:ident, |$a:ident, $b:ident| $e:expr) => {
        for ($a, $b) in $acc.iter_mut().zip($other) {
            *$a = {
                let $a = *$a;
                let $b = *$b;
                $e
            };
        }
    };
}

macro_rules! reduce_int {
    ($($ty:ty),*) => {$(
        impl Reduce for $ty {
            fn combine(op: Builtin, a: &Self, b: &Self) -> Result<Self> {
                let (a, b) = (*a, *b);
                Ok(match op {
                    Builtin::Sum => a.wrapping_add(b),
                    Builtin::Prod => a.wrapping_mul(b),
                    Builtin::Min => a.min(b),
                    Builtin::Max => a.max(b),
                    Builtin::Land => <$ty>::from(a != 0 && b != 0),
                    Builtin::Lor => <$ty>::from(a != 0 || b != 0),
                    Builtin::Band => a & b,
                    Builtin::Bor => a | b,
                    Builtin::Maxloc | Builtin::Minloc => {
                        return Err(not_defined(op, stringify!($ty)))
                    }
                })
            }

            fn combine_slice(op: Builtin, acc: &mut [Self], other: &[Self]) -> Result<()> {
                match op {
                    Builtin::Sum => slice_loop!(acc, other, |a, b| a.wrapping_add(b)),
                    Builtin::Prod => slice_loop!(acc, other, |a, b| a.wrapping_mul(b)),
                    Builtin::Min => slice_loop!(acc, other, |a, b| a.min(b)),
                    Builtin::Max => slice_loop!(acc, other, |a, b| a.max(b)),
                    Builtin::Band => slice_loop!(acc, other, |a, b| a & b),
                    Builtin::Bor => slice_loop!(acc, other, |a, b| a | b),
                    _ => {
                        for (a, b) in acc.iter_mut().zip(other) {
                            *a = Self::combine(op, a, b)?;
                        }
                    }
                }
                Ok(())
            }
        }
    )*};
}

reduce_int!(
    u8, i8, u16, i16, u32, i32, u64, i64, u128, i128, usize, isize
);

macro_rules! reduce_float {
    ($($ty:ty),*) => {$(
        impl Reduce for $ty {
            fn combine(op: Builtin, a: &Self, b: &Self) -> Result<Self> {
                let (a, b) = (*a, *b);
                Ok(match op {
                    Builtin::Sum => a + b,
                    Builtin::Prod => a * b,
                    Builtin::Min => a.min(b),
                    Builtin::Max => a.max(b),
                    Builtin::Land => <$ty>::from(u8::from(a != 0.0 && b != 0.0)),
                    Builtin::Lor => <$ty>::from(u8::from(a != 0.0 || b != 0.0)),
                    _ => return Err(not_defined(op, stringify!($ty))),
                })
            }

            fn combine_slice(op: Builtin, acc: &mut [Self], other: &[Self]) -> Result<()> {
                match op {
                    Builtin::Sum => slice_loop!(acc, other, |a, b| a + b),
                    Builtin::Prod => slice_loop!(acc, other, |a, b| a * b),
                    Builtin::Min => slice_loop!(acc, other, |a, b| a.min(b)),
                    Builtin::Max => slice_loop!(acc, other, |a, b| a.max(b)),
                    _ => {
                        for (a, b) in acc.iter_mut().zip(other) {
                            *a = Self::combine(op, a, b)?;
                        }
                    }
                }
                Ok(())
            }
        }
    )*};
}

reduce_float!(f32, f64);

impl Reduce for bool {
    fn combine(op: Builtin, a: &Self, b: &Self) -> Result<Self> {
        let (a, b) = (*a, *b);
        Ok(match op {
            Builtin::Land | Builtin::Band | Builtin::Min => a && b,
            Builtin::Lor | Builtin::Bor | Builtin::Max => a || b,
            _ => return Err(not_defined(op, "bool")),
        })
    }
}

impl<T: PartialOrd + Clone> Reduce for Loc<T> {
    fn combine(op: Builtin, a: &Self, b: &Self) -> Result<Self> {
        let a_wins = match op {
            Builtin::Maxloc => a.value > b.value,
            Builtin::Minloc => a.value < b.value,
            _ => return Err(not_defined(op, "Loc")),
        };
        let tie = a.value == b.value;
        Ok(if a_wins || (tie && a.index <= b.index) {
            a.clone()
        } else if tie {
            Loc {
                value: b.value.clone(),
                index: b.index,
            }
        } else {
            b.clone()
        })
    }
}

impl<T: Reduce> Reduce for Vec<T> {
    fn combine(op: Builtin, a: &Self, b: &Self) -> Result<Self> {
        if a.len() != b.len() {
            return Err(Error::invalid(format!(
                "reducing vectors of different lengths ({} and {})",
                a.len(),
                b.len()
            )));
        }
        let mut out = a.clone();
        T::combine_slice(op, &mut out, b)?;
        Ok(out)
    }
}

impl<T: Reduce, const N: usize> Reduce for [T; N] {
    fn combine(op: Builtin, a: &Self, b: &Self) -> Result<Self> {
        let mut out = a.clone();
        T::combine_slice(op, &mut out, b)?;
        Ok(out)
    }
}

type SliceFn<T> = dyn Fn(&mut [T], &[T], bool) -> Result<()> + Send + Sync;

/// A reduction operation on values of type `T`: one of MPI's built-ins (`Op::sum()`, ...)
/// or a user function ([`Op::user`]). Built-in operations are commutative; a user
/// operation says whether it is, and a non-commutative one is applied in rank order
/// (`x0 op x1 op ... op x(n-1)`), as MPI promises.
pub struct Op<T> {
    name: &'static str,
    commutative: bool,
    apply: Arc<SliceFn<T>>,
}

impl<T> Clone for Op<T> {
    fn clone(&self) -> Self {
        Op {
            name: self.name,
            commutative: self.commutative,
            apply: Arc::clone(&self.apply),
        }
    }
}

impl<T> fmt::Debug for Op<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Op")
            .field("name", &self.name)
            .field("commutative", &self.commutative)
            .finish()
    }
}

impl<T: Reduce + 'static> Op<T> {
    /// A built-in operation.
    pub fn builtin(op: Builtin) -> Op<T> {
        Op {
            name: op.name(),
            commutative: true,
            apply: Arc::new(move |acc: &mut [T], other: &[T], _acc_is_left| {
                T::combine_slice(op, acc, other)
            }),
        }
    }

    /// `MPI.SUM`.
    pub fn sum() -> Op<T> {
        Op::builtin(Builtin::Sum)
    }
    /// `MPI.PROD`.
    pub fn prod() -> Op<T> {
        Op::builtin(Builtin::Prod)
    }
    /// `MPI.MIN`.
    pub fn min() -> Op<T> {
        Op::builtin(Builtin::Min)
    }
    /// `MPI.MAX`.
    pub fn max() -> Op<T> {
        Op::builtin(Builtin::Max)
    }
    /// `MPI.LAND`.
    pub fn land() -> Op<T> {
        Op::builtin(Builtin::Land)
    }
    /// `MPI.LOR`.
    pub fn lor() -> Op<T> {
        Op::builtin(Builtin::Lor)
    }
    /// `MPI.BAND`.
    pub fn band() -> Op<T> {
        Op::builtin(Builtin::Band)
    }
    /// `MPI.BOR`.
    pub fn bor() -> Op<T> {
        Op::builtin(Builtin::Bor)
    }
    /// `MPI.MAXLOC` (for [`Loc`] values).
    pub fn maxloc() -> Op<T> {
        Op::builtin(Builtin::Maxloc)
    }
    /// `MPI.MINLOC` (for [`Loc`] values).
    pub fn minloc() -> Op<T> {
        Op::builtin(Builtin::Minloc)
    }
}

impl<T: 'static> Op<T> {
    /// A user-defined operation, like `MPI.Op.Create(f, commute)`: `f(a, b)` must be
    /// associative; when `commutative` is false it is applied in rank order. For buffers
    /// it is applied element by element.
    pub fn user(f: impl Fn(&T, &T) -> T + Send + Sync + 'static, commutative: bool) -> Op<T> {
        Op {
            name: "user",
            commutative,
            apply: Arc::new(move |acc: &mut [T], other: &[T], acc_is_left| {
                for (a, b) in acc.iter_mut().zip(other) {
                    *a = if acc_is_left { f(a, b) } else { f(b, a) };
                }
                Ok(())
            }),
        }
    }
}

impl<T> Op<T> {
    /// Whether the order of the operands does not matter.
    pub fn is_commutative(&self) -> bool {
        self.commutative
    }

    /// The operation's name (`"SUM"`, ..., or `"user"`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `acc = acc op other` (when `acc_is_left`) or `acc = other op acc`, element by
    /// element; the slices must have one length.
    pub(crate) fn apply(&self, acc: &mut [T], other: &[T], acc_is_left: bool) -> Result<()> {
        if acc.len() != other.len() {
            return Err(Error::invalid(format!(
                "reduction operands of different lengths ({} and {})",
                acc.len(),
                other.len()
            )));
        }
        (self.apply)(acc, other, acc_is_left)
    }

    /// `a op b` for single values.
    pub(crate) fn apply_one(&self, a: T, b: T) -> Result<T> {
        let mut acc = [a];
        (self.apply)(&mut acc, std::slice::from_ref(&b), true)?;
        let [out] = acc;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_on_integers() {
        let ops = [
            (Builtin::Sum, 9),
            (Builtin::Prod, 20),
            (Builtin::Min, 4),
            (Builtin::Max, 5),
            (Builtin::Land, 1),
            (Builtin::Lor, 1),
            (Builtin::Band, 4),
            (Builtin::Bor, 5),
        ];
        for (op, want) in ops {
            assert_eq!(i32::combine(op, &4, &5).unwrap(), want, "{op:?}");
        }
        assert!(matches!(
            i32::combine(Builtin::Maxloc, &1, &2),
            Err(Error::OpNotDefined { .. })
        ));
    }

    #[test]
    fn bitwise_on_floats_is_an_error() {
        assert!(matches!(
            f64::combine(Builtin::Band, &1.0, &2.0),
            Err(Error::OpNotDefined { op: "BAND", .. })
        ));
    }

    #[test]
    fn maxloc_ties_go_to_the_smaller_index() {
        let a = Loc::new(3.0, 2);
        let b = Loc::new(3.0, 1);
        assert_eq!(Loc::combine(Builtin::Maxloc, &a, &b).unwrap(), b);
        assert_eq!(
            Loc::combine(Builtin::Minloc, &a, &Loc::new(1.0, 9))
                .unwrap()
                .index,
            9
        );
    }

    #[test]
    fn user_op_keeps_order() {
        let concat = Op::user(|a: &String, b: &String| format!("{a}{b}"), false);
        let mut acc = vec!["b".to_string()];
        concat.apply(&mut acc, &["a".to_string()], false).unwrap();
        assert_eq!(acc[0], "ab");
    }
}
