//! [`Value`] and [`Array`]: numbers in shared memory, like Python's
//! `multiprocessing.Value` and `multiprocessing.Array`.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::lock::{Lock, LockGuard};
use crate::object::{Kind, SharedObject};
use crate::{Error, Result};

mod sealed {
    /// How an element becomes bits and back: hidden, so that only this crate's types
    /// are elements.
    pub trait Sealed: Sized {
        fn to_bits(self) -> u64;
        fn from_bits(bits: u64) -> Self;
    }
}

use sealed::Sealed;

/// A plain number that can live in shared memory: the integer types, `f32`, `f64` and
/// `bool` (Python's type codes `b B h H i I l L q Q f d` and `c_bool`).
///
/// Each element is read and written whole (atomically), so a reader never sees half
/// of a number being written.
pub trait Element: Copy + Send + Sync + PartialEq + std::fmt::Debug + 'static + Sealed {
    /// The size in bytes.
    const SIZE: usize;
}

macro_rules! element {
    ($($ty:ty => |$v:ident| $to:expr, |$b:ident| $from:expr;)*) => {$(
        impl Element for $ty {
            const SIZE: usize = std::mem::size_of::<$ty>();
        }
        impl Sealed for $ty {
            fn to_bits(self) -> u64 {
                let $v = self;
                $to
            }
            fn from_bits($b: u64) -> Self {
                $from
            }
        }
    )*};
}

element! {
    u8 => |v| u64::from(v), |b| b as u8;
    i8 => |v| u64::from(v as u8), |b| b as u8 as i8;
    bool => |v| u64::from(v), |b| b != 0;
    u16 => |v| u64::from(v), |b| b as u16;
    i16 => |v| u64::from(v as u16), |b| b as u16 as i16;
    u32 => |v| u64::from(v), |b| b as u32;
    i32 => |v| u64::from(v as u32), |b| b as u32 as i32;
    f32 => |v| u64::from(v.to_bits()), |b| f32::from_bits(b as u32);
    u64 => |v| v, |b| b;
    i64 => |v| v as u64, |b| b as i64;
    f64 => |v| v.to_bits(), |b| f64::from_bits(b);
}

fn load<T: Element>(object: &SharedObject, offset: usize) -> T {
    let bits = match T::SIZE {
        1 => u64::from(object.u8(offset).load(Ordering::Acquire)),
        2 => u64::from(object.u16(offset).load(Ordering::Acquire)),
        4 => u64::from(object.u32(offset).load(Ordering::Acquire)),
        _ => object.u64(offset).load(Ordering::Acquire),
    };
    T::from_bits(bits)
}

fn store<T: Element>(value: T, object: &SharedObject, offset: usize) {
    let bits = value.to_bits();
    match T::SIZE {
        1 => object.u8(offset).store(bits as u8, Ordering::Release),
        2 => object.u16(offset).store(bits as u16, Ordering::Release),
        4 => object.u32(offset).store(bits as u32, Ordering::Release),
        _ => object.u64(offset).store(bits, Ordering::Release),
    }
}

/// Elements stored in one shared block, with the lock that comes with them.
#[derive(Clone)]
struct Cells<T> {
    object: SharedObject,
    lock: Lock,
    len: usize,
    _element: PhantomData<T>,
}

impl<T: Element> Cells<T> {
    fn new(values: &[T]) -> Result<Self> {
        let object = SharedObject::create(Kind::Value, (values.len() * T::SIZE).max(8))?;
        for (i, v) in values.iter().enumerate() {
            store(*v, &object, i * T::SIZE);
        }
        Ok(Cells {
            object,
            lock: Lock::new()?,
            len: values.len(),
            _element: PhantomData,
        })
    }

    fn get(&self, i: usize) -> Option<T> {
        (i < self.len).then(|| load(&self.object, i * T::SIZE))
    }

    fn set(&self, i: usize, v: T) -> Result<()> {
        if i >= self.len {
            return Err(Error::OutOfBounds {
                index: i,
                len: self.len,
            });
        }
        store(v, &self.object, i * T::SIZE);
        Ok(())
    }

    fn serialize<S: Serializer>(
        &self,
        what: &'static str,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        struct Fd<'a>(&'a SharedObject, &'static str);
        impl Serialize for Fd<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.0.serialize(self.1, s)
            }
        }
        (Fd(&self.object, what), &self.lock, self.len as u64).serialize(s)
    }

    fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
        what: &'static str,
    ) -> std::result::Result<Self, D::Error> {
        struct Fd(SharedObject);
        impl<'de> Deserialize<'de> for Fd {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                SharedObject::deserialize(d, "Value or Array", Kind::Value).map(Fd)
            }
        }
        let (Fd(object), lock, len) = <(Fd, Lock, u64)>::deserialize(d)?;
        let len = len as usize;
        if len.saturating_mul(T::SIZE) > object.size() {
            return Err(serde::de::Error::custom(format!(
                "the shared memory of this {what} is smaller than its length"
            )));
        }
        Ok(Cells {
            object,
            lock,
            len,
            _element: PhantomData,
        })
    }
}

/// A number in shared memory, like Python's `multiprocessing.Value`.
///
/// [`get`](Value::get) and [`set`](Value::set) are atomic on their own. For a
/// read-modify-write that other processes must not interleave with (Python's `with
/// v.get_lock(): v.value += 1`), hold [`get_lock`](Value::get_lock) or use
/// [`update`](Value::update). Using the lock is optional, as Python's `lock=False`
/// makes it. Pass the value to a child in its start arguments; clones are handles on
/// the same number.
///
/// ```
/// use braid_proc::Value;
///
/// let counter = Value::new(0u64).unwrap();
/// counter.update(|n| n + 1);
/// {
///     let _held = counter.get_lock().acquire();
///     counter.set(counter.get() * 10);
/// }
/// assert_eq!(counter.get(), 10);
/// ```
pub struct Value<T> {
    cells: Cells<T>,
}

impl<T> Clone for Value<T> {
    /// Another handle on the same value.
    fn clone(&self) -> Self {
        Value {
            cells: Cells {
                object: self.cells.object.clone(),
                lock: self.cells.lock.clone(),
                len: self.cells.len,
                _element: PhantomData,
            },
        }
    }
}

impl<T: Element> Value<T> {
    /// A shared value starting at `value`, with its lock.
    ///
    /// # Errors
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn new(value: T) -> Result<Value<T>> {
        Ok(Value {
            cells: Cells::new(&[value])?,
        })
    }

    /// The value now.
    pub fn get(&self) -> T {
        load(&self.cells.object, 0)
    }

    /// Replaces the value.
    pub fn set(&self, value: T) {
        store(value, &self.cells.object, 0);
    }

    /// The lock that comes with the value (Python's `get_lock()`).
    pub fn get_lock(&self) -> &Lock {
        &self.cells.lock
    }

    /// Replaces the value by `f(value)` under the lock; returns the new value.
    pub fn update(&self, f: impl FnOnce(T) -> T) -> T {
        let _held: LockGuard<'_> = self.cells.lock.acquire();
        let next = f(self.get());
        self.set(next);
        next
    }
}

impl<T: Element> Serialize for Value<T> {
    /// Serialises only into a process's start arguments.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.cells.serialize("Value", s)
    }
}

impl<'de, T: Element> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Value {
            cells: Cells::deserialize(d, "Value")?,
        })
    }
}

impl<T: Element> std::fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Value").field("value", &self.get()).finish()
    }
}

/// A fixed-length array of numbers in shared memory, like Python's
/// `multiprocessing.Array`.
///
/// Each element is read and written atomically; hold [`get_lock`](Array::get_lock) to
/// update several consistently. Pass it to a child in its start arguments; clones are
/// handles on the same array.
///
/// ```
/// use braid_proc::Array;
///
/// let a = Array::from_slice(&[1.0f64, 2.0, 3.0]).unwrap();
/// a.set(1, 20.0).unwrap();
/// assert_eq!(a.to_vec(), [1.0, 20.0, 3.0]);
/// assert_eq!(a.get(3), None);
/// assert!(a.set(3, 0.0).is_err());
/// ```
pub struct Array<T> {
    cells: Cells<T>,
}

impl<T> Clone for Array<T> {
    /// Another handle on the same array.
    fn clone(&self) -> Self {
        Array {
            cells: Cells {
                object: self.cells.object.clone(),
                lock: self.cells.lock.clone(),
                len: self.cells.len,
                _element: PhantomData,
            },
        }
    }
}

impl<T: Element> Array<T> {
    /// An array holding a copy of `values`.
    ///
    /// # Errors
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn from_slice(values: &[T]) -> Result<Array<T>> {
        Ok(Array {
            cells: Cells::new(values)?,
        })
    }

    /// An array of `len` copies of `value` (Python's `Array('i', 10)` is
    /// `Array::filled(0, 10)`).
    ///
    /// # Errors
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn filled(value: T, len: usize) -> Result<Array<T>> {
        Self::from_slice(&vec![value; len])
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.cells.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.cells.len == 0
    }

    /// Element `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<T> {
        self.cells.get(i)
    }

    /// Sets element `i`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] past the end.
    pub fn set(&self, i: usize, value: T) -> Result<()> {
        self.cells.set(i, value)
    }

    /// A copy of every element (Python's `a[:]`).
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len())
            .map(|i| load(&self.cells.object, i * T::SIZE))
            .collect()
    }

    /// Copies `values` into the array from its start.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] when `values` is longer than the array.
    pub fn copy_from_slice(&self, values: &[T]) -> Result<()> {
        if values.len() > self.len() {
            return Err(Error::OutOfBounds {
                index: values.len() - 1,
                len: self.len(),
            });
        }
        for (i, v) in values.iter().enumerate() {
            store(*v, &self.cells.object, i * T::SIZE);
        }
        Ok(())
    }

    /// The lock that comes with the array (Python's `get_lock()`).
    pub fn get_lock(&self) -> &Lock {
        &self.cells.lock
    }
}

impl<T: Element> Serialize for Array<T> {
    /// Serialises only into a process's start arguments.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.cells.serialize("Array", s)
    }
}

impl<'de, T: Element> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Array {
            cells: Cells::deserialize(d, "Array")?,
        })
    }
}

impl<T: Element> std::fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.to_vec()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_type_round_trips() {
        fn check<T: Element>(values: &[T]) {
            let a = Array::from_slice(values).unwrap();
            assert_eq!(a.to_vec(), values);
            let b = a.clone();
            b.set(0, values[1]).unwrap();
            assert_eq!(a.get(0), Some(values[1]));
        }
        check(&[1u8, 255]);
        check(&[-1i8, 7]);
        check(&[true, false]);
        check(&[-3i16, 300]);
        check(&[u16::MAX, 1]);
        check(&[-5i32, 6]);
        check(&[u32::MAX, 2]);
        check(&[1.5f32, -2.25]);
        check(&[i64::MIN, 9]);
        check(&[u64::MAX, 3]);
        check(&[std::f64::consts::PI, -0.0]);
    }

    #[test]
    fn update_is_atomic_across_threads() {
        let v = Value::new(0u64).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let v = v.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        v.update(|n| n + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(v.get(), 4000);
    }
}
