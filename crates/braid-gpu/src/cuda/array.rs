//! `DeviceArray<T>`: an array in device memory, like PyCUDA's `GPUArray`.

use std::ops;

use cudarc::driver::{CudaSlice, DevicePtr};

use crate::error::{Error, Result};
use crate::scalar::Scalar;

use super::builtins::{self, Op};
use super::device::Device;
use super::module::{ElemType, KernelArg, Slot, sealed};
use super::reduction;

/// An array of `T` in the memory of one CUDA device, with a shape (1-D, or 2-D for
/// matrices, row-major): PyCUDA's `GPUArray`.
///
/// Arithmetic runs on the device and gives a new array: `(&a + &b)?`, `(&a * 2.0)?`,
/// `(2.0 * &a)?`; the operators return a [`Result`] because a device can fail. Reading
/// back (`to_vec`) waits for every kernel queued before it.
///
/// ```
/// use braid_gpu::{Device, DeviceArray};
///
/// # fn main() -> braid_gpu::Result<()> {
/// let Ok(device) = Device::first() else { return Ok(()) }; // no GPU: nothing to show
/// let a = DeviceArray::from_slice(&device, &[1.0f32, 2.0, 3.0])?;
/// let b = DeviceArray::arange(&device, 0.0f32, 3.0, 1.0)?;
/// let c = ((&a * 2.0)? + &b)?;
/// assert_eq!(c.to_vec()?, [2.0, 5.0, 8.0]);
/// assert_eq!(c.sum()?, 15.0);
/// # Ok(())
/// # }
/// ```
pub struct DeviceArray<T: Scalar> {
    /// At least one element, so that empty arrays need no zero-byte allocation.
    data: CudaSlice<T>,
    len: usize,
    shape: Vec<usize>,
    device: Device,
}

impl<T: Scalar> std::fmt::Debug for DeviceArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceArray")
            .field("type", &T::CUDA_NAME)
            .field("shape", &self.shape)
            .field("device", &self.device.ordinal())
            .finish()
    }
}

fn elements(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(*d))
        .ok_or_else(|| Error::Shape(format!("shape {shape:?} has too many elements")))
}

impl<T: Scalar> DeviceArray<T> {
    /// An array of `shape` whose contents are whatever the memory held.
    pub(crate) fn uninit(device: &Device, shape: Vec<usize>) -> Result<DeviceArray<T>> {
        let len = elements(&shape)?;
        // SAFETY: the memory is not initialised, but every bit pattern is a valid value of
        // each `Scalar` type (integers and IEEE floats), and device memory is only ever
        // read through driver copies and kernels, never through Rust references.
        let data = unsafe { device.inner.stream.alloc::<T>(len.max(1)) }
            .map_err(|e| Error::cuda("device allocation", e))?;
        Ok(DeviceArray {
            data,
            len,
            shape,
            device: device.clone(),
        })
    }

    /// An array of the same shape on the same device, contents unspecified.
    pub(crate) fn empty_like(&self) -> Result<DeviceArray<T>> {
        DeviceArray::uninit(&self.device, self.shape.clone())
    }

    /// Copies a host slice to a new 1-D device array (PyCUDA's `gpuarray.to_gpu`).
    ///
    /// # Errors
    /// [`Error::Driver`] when the device is out of memory or the copy fails.
    pub fn from_slice(device: &Device, host: &[T]) -> Result<DeviceArray<T>> {
        let mut array = DeviceArray::uninit(device, vec![host.len()])?;
        array.copy_from_host(host)?;
        Ok(array)
    }

    /// Copies a row-major `rows` x `cols` matrix to the device.
    ///
    /// # Errors
    /// [`Error::Shape`] when `host` does not hold `rows * cols` elements; as
    /// [`DeviceArray::from_slice`].
    pub fn from_matrix(
        device: &Device,
        rows: usize,
        cols: usize,
        host: &[T],
    ) -> Result<DeviceArray<T>> {
        DeviceArray::from_slice(device, host)?.reshape(&[rows, cols])
    }

    /// A 1-D array of `len` zeros (`gpuarray.zeros`).
    ///
    /// # Errors
    /// [`Error::Driver`] when the device is out of memory.
    pub fn zeros(device: &Device, len: usize) -> Result<DeviceArray<T>> {
        DeviceArray::zeros_shaped(device, &[len])
    }

    /// An array of zeros of any shape (`&[rows, cols]` for a matrix).
    ///
    /// # Errors
    /// [`Error::Driver`] when the device is out of memory.
    pub fn zeros_shaped(device: &Device, shape: &[usize]) -> Result<DeviceArray<T>> {
        let mut array = DeviceArray::uninit(device, shape.to_vec())?;
        device
            .inner
            .stream
            .memset_zeros(&mut array.data)
            .map_err(|e| Error::cuda("memset", e))?;
        Ok(array)
    }

    /// A 1-D array of `len` copies of `value`.
    ///
    /// # Errors
    /// [`Error::Driver`]; [`Error::LibraryMissing`] without NVRTC (the fill kernel is
    /// compiled on first use).
    pub fn full(device: &Device, len: usize, value: T) -> Result<DeviceArray<T>> {
        let mut array = DeviceArray::uninit(device, vec![len])?;
        array.fill(value)?;
        Ok(array)
    }

    /// `start, start + step, ...` up to but not including `stop` (`gpuarray.arange`).
    ///
    /// # Errors
    /// [`Error::Invalid`] when `step` is zero or not finite; as [`DeviceArray::full`].
    pub fn arange(device: &Device, start: T, stop: T, step: T) -> Result<DeviceArray<T>> {
        let (a, b, s) = (start.to_f64(), stop.to_f64(), step.to_f64());
        if s == 0.0 || !s.is_finite() || !a.is_finite() || !b.is_finite() {
            return Err(Error::Invalid(format!(
                "arange({start:?}, {stop:?}, {step:?}) needs a finite non-zero step"
            )));
        }
        let n = ((b - a) / s).ceil();
        let len = if n > 0.0 { n as usize } else { 0 };
        let mut array = DeviceArray::uninit(device, vec![len])?;
        builtins::arange(&mut array, start, step)?;
        Ok(array)
    }

    /// The same data with another shape of as many elements (`reshape`).
    ///
    /// # Errors
    /// [`Error::Shape`] when the element counts differ.
    pub fn reshape(mut self, shape: &[usize]) -> Result<DeviceArray<T>> {
        let n = elements(shape)?;
        if n != self.len {
            return Err(Error::Shape(format!(
                "cannot reshape {} elements {:?} to {shape:?}",
                self.len, self.shape
            )));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The shape: `[len]`, or `[rows, cols]` for a matrix.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// `(rows, cols)` of a 2-D array.
    ///
    /// # Errors
    /// [`Error::Shape`] when the array is not 2-D.
    pub fn matrix_shape(&self) -> Result<(usize, usize)> {
        match self.shape[..] {
            [rows, cols] => Ok((rows, cols)),
            _ => Err(Error::Shape(format!(
                "a matrix must be 2-D, this array has shape {:?}",
                self.shape
            ))),
        }
    }

    /// The device the array lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Copies the array to a new host vector (PyCUDA's `get()`); waits for the kernels
    /// queued before it.
    ///
    /// # Errors
    /// [`Error::Driver`], including an error raised by an earlier kernel.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        let mut out = vec![T::default(); self.len];
        self.copy_to_host(&mut out)?;
        Ok(out)
    }

    /// Copies the array into `out`, which must have exactly [`len`](Self::len) elements.
    ///
    /// # Errors
    /// [`Error::Shape`] for a wrong length; [`Error::Driver`].
    pub fn copy_to_host(&self, out: &mut [T]) -> Result<()> {
        self.same_len(out.len(), "copy to the host")?;
        if self.len == 0 {
            return Ok(());
        }
        self.device
            .inner
            .stream
            .memcpy_dtoh(&self.data.slice(..self.len), out)
            .map_err(|e| Error::cuda("copy to the host", e))?;
        self.device.synchronize()
    }

    /// Overwrites the array with `host`, which must have exactly [`len`](Self::len)
    /// elements (PyCUDA's `set()`).
    ///
    /// # Errors
    /// [`Error::Shape`] for a wrong length; [`Error::Driver`].
    pub fn copy_from_host(&mut self, host: &[T]) -> Result<()> {
        self.same_len(host.len(), "copy from the host")?;
        if self.len == 0 {
            return Ok(());
        }
        let len = self.len;
        self.device
            .inner
            .stream
            .memcpy_htod(host, &mut self.data.slice_mut(..len))
            .map_err(|e| Error::cuda("copy to the device", e))
    }

    /// Overwrites the array with another of the same length, device to device.
    ///
    /// # Errors
    /// [`Error::Shape`] for a wrong length; [`Error::Invalid`] for arrays on different
    /// devices; [`Error::Driver`].
    pub fn copy_from(&mut self, other: &DeviceArray<T>) -> Result<()> {
        self.same_len(other.len, "device-to-device copy")?;
        if self.device != other.device {
            return Err(Error::Invalid(
                "device-to-device copy between two devices".into(),
            ));
        }
        if self.len == 0 {
            return Ok(());
        }
        let len = self.len;
        self.device
            .inner
            .stream
            .memcpy_dtod(&other.data.slice(..len), &mut self.data.slice_mut(..len))
            .map_err(|e| Error::cuda("device-to-device copy", e))
    }

    /// A copy of the array on the same device (PyCUDA's `copy()`).
    ///
    /// # Errors
    /// [`Error::Driver`] when the device is out of memory.
    pub fn try_clone(&self) -> Result<DeviceArray<T>> {
        let mut copy = self.empty_like()?;
        copy.copy_from(self)?;
        Ok(copy)
    }

    /// Sets every element to `value` (PyCUDA's `fill`).
    ///
    /// # Errors
    /// [`Error::Driver`]; [`Error::LibraryMissing`] without NVRTC.
    pub fn fill(&mut self, value: T) -> Result<()> {
        builtins::fill(self, value)
    }

    /// The sum of the elements, by a two-stage reduction on the device (`gpuarray.sum`).
    ///
    /// # Errors
    /// [`Error::Driver`]; [`Error::LibraryMissing`] without NVRTC.
    pub fn sum(&self) -> Result<T> {
        reduction::builtin_sum(self)
    }

    /// The dot product with `other` (`gpuarray.dot`).
    ///
    /// # Errors
    /// [`Error::Shape`] when the lengths differ; as [`DeviceArray::sum`].
    pub fn dot(&self, other: &DeviceArray<T>) -> Result<T> {
        reduction::builtin_dot(self, other)
    }

    /// The largest element (`gpuarray.max`).
    ///
    /// # Errors
    /// [`Error::Shape`] for an empty array; as [`DeviceArray::sum`].
    pub fn max(&self) -> Result<T> {
        reduction::builtin_extreme(self, true)
    }

    /// The smallest element (`gpuarray.min`).
    ///
    /// # Errors
    /// [`Error::Shape`] for an empty array; as [`DeviceArray::sum`].
    pub fn min(&self) -> Result<T> {
        reduction::builtin_extreme(self, false)
    }

    fn same_len(&self, other: usize, what: &str) -> Result<()> {
        if other == self.len {
            Ok(())
        } else {
            Err(Error::Shape(format!(
                "{what}: the array has {} elements, the other side {other}",
                self.len
            )))
        }
    }

    /// The device address of the first element (valid while `self` lives).
    pub(crate) fn device_ptr(&self) -> u64 {
        let (ptr, _no_event) = self.data.device_ptr(&self.device.inner.stream);
        ptr
    }

    /// One element, copied to the host.
    pub(crate) fn read_at(&self, index: usize) -> Result<T> {
        if index >= self.len {
            return Err(Error::Shape(format!(
                "index {index} of an array of {} elements",
                self.len
            )));
        }
        let mut out = [T::default()];
        self.device
            .inner
            .stream
            .memcpy_dtoh(&self.data.slice(index..index + 1), &mut out[..])
            .map_err(|e| Error::cuda("copy to the host", e))?;
        self.device.synchronize()?;
        Ok(out[0])
    }

    pub(crate) fn raw(&self) -> &CudaSlice<T> {
        &self.data
    }

    pub(crate) fn raw_mut(&mut self) -> &mut CudaSlice<T> {
        &mut self.data
    }
}

impl<T: Scalar> sealed::Sealed for &DeviceArray<T> {
    fn slot(&self) -> Slot {
        Slot::Ptr {
            ptr: self.device_ptr(),
            ty: ElemType::of(&<T as crate::scalar::sealed::Sealed>::ctype()),
            len: self.len,
            device: self.device.ordinal(),
        }
    }
}

impl<T: Scalar> KernelArg for &DeviceArray<T> {}

impl<T: Scalar> sealed::Sealed for &mut DeviceArray<T> {
    fn slot(&self) -> Slot {
        (&**self).slot()
    }
}

impl<T: Scalar> KernelArg for &mut DeviceArray<T> {}

macro_rules! array_ops {
    ($($trait:ident $method:ident $op:ident),*) => {$(
        impl<T: Scalar> ops::$trait<&DeviceArray<T>> for &DeviceArray<T> {
            type Output = Result<DeviceArray<T>>;
            fn $method(self, rhs: &DeviceArray<T>) -> Self::Output {
                builtins::binary(Op::$op, self, rhs)
            }
        }
        impl<T: Scalar> ops::$trait<T> for &DeviceArray<T> {
            type Output = Result<DeviceArray<T>>;
            fn $method(self, rhs: T) -> Self::Output {
                builtins::scalar(Op::$op, self, rhs, false)
            }
        }
        impl<T: Scalar> ops::$trait<&DeviceArray<T>> for DeviceArray<T> {
            type Output = Result<DeviceArray<T>>;
            fn $method(self, rhs: &DeviceArray<T>) -> Self::Output {
                builtins::binary(Op::$op, &self, rhs)
            }
        }
        impl<T: Scalar> ops::$trait<T> for DeviceArray<T> {
            type Output = Result<DeviceArray<T>>;
            fn $method(self, rhs: T) -> Self::Output {
                builtins::scalar(Op::$op, &self, rhs, false)
            }
        }
    )*};
}

array_ops!(Add add Add, Sub sub Sub, Mul mul Mul, Div div Div);

macro_rules! scalar_first_ops {
    ($($t:ty),*) => {$(
        impl ops::Add<&DeviceArray<$t>> for $t {
            type Output = Result<DeviceArray<$t>>;
            fn add(self, rhs: &DeviceArray<$t>) -> Self::Output {
                builtins::scalar(Op::Add, rhs, self, true)
            }
        }
        impl ops::Sub<&DeviceArray<$t>> for $t {
            type Output = Result<DeviceArray<$t>>;
            fn sub(self, rhs: &DeviceArray<$t>) -> Self::Output {
                builtins::scalar(Op::Sub, rhs, self, true)
            }
        }
        impl ops::Mul<&DeviceArray<$t>> for $t {
            type Output = Result<DeviceArray<$t>>;
            fn mul(self, rhs: &DeviceArray<$t>) -> Self::Output {
                builtins::scalar(Op::Mul, rhs, self, true)
            }
        }
        impl ops::Div<&DeviceArray<$t>> for $t {
            type Output = Result<DeviceArray<$t>>;
            fn div(self, rhs: &DeviceArray<$t>) -> Self::Output {
                builtins::scalar(Op::Div, rhs, self, true)
            }
        }
    )*};
}

scalar_first_ops!(f32, f64, i32, u32, i64, u64);

impl<T: Scalar> ops::Neg for &DeviceArray<T> {
    type Output = Result<DeviceArray<T>>;
    fn neg(self) -> Self::Output {
        builtins::neg(self)
    }
}
