//! `ClBuffer<T>`: an array in an OpenCL device's memory (PyOpenCL's `cl.Buffer` with the
//! convenience of `pyopencl.array.Array`).

use std::ptr;

use opencl3::memory::{Buffer, CL_MEM_COPY_HOST_PTR, CL_MEM_READ_WRITE, ClMem};
use opencl3::types::{CL_BLOCKING, cl_mem};

use crate::error::{Error, Result};
use crate::scalar::Scalar;

use super::context::ClQueue;
use super::program::{ClArg, ClSlot, sealed};

/// An array of `T` in the memory of an OpenCL device, bound to the queue that moves it.
///
/// ```
/// use braid_gpu::{ClBuffer, ClContext, ClQueue};
///
/// # fn main() -> braid_gpu::Result<()> {
/// let Ok(context) = ClContext::first() else { return Ok(()) }; // no OpenCL here
/// let queue = ClQueue::new(&context)?;
/// let mut buffer = ClBuffer::from_slice(&queue, &[1.0f32, 2.0, 3.0])?;
/// buffer.fill(7.0)?;
/// assert_eq!(buffer.to_vec()?, [7.0, 7.0, 7.0]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ClBuffer<T: Scalar> {
    /// At least one element: OpenCL refuses zero-byte buffers.
    buffer: Buffer<T>,
    len: usize,
    queue: ClQueue,
}

impl<T: Scalar> ClBuffer<T> {
    /// A buffer of `len` elements, copied from `init` when given, else uninitialised (any
    /// bit pattern is a valid `Scalar`; kernels write it before it is read).
    pub(crate) fn create(queue: &ClQueue, len: usize, init: Option<&[T]>) -> Result<ClBuffer<T>> {
        let context = &queue.context.inner.context;
        let buffer = match init {
            Some(host) if !host.is_empty() => {
                // SAFETY: with CL_MEM_COPY_HOST_PTR the platform copies `host.len()` elements
                // from the pointer during the call and keeps no reference to it.
                unsafe {
                    Buffer::<T>::create(
                        context,
                        CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                        host.len(),
                        host.as_ptr() as *mut std::ffi::c_void,
                    )
                }
            }
            // SAFETY: no host pointer is given, so the platform allocates and owns the memory.
            _ => unsafe {
                Buffer::<T>::create(context, CL_MEM_READ_WRITE, len.max(1), ptr::null_mut())
            },
        }
        .map_err(|e| Error::opencl("buffer allocation", e))?;
        Ok(ClBuffer {
            buffer,
            len,
            queue: queue.clone(),
        })
    }

    /// Copies `host` to a new buffer (`cl.Buffer(ctx, COPY_HOST_PTR, hostbuf=...)`).
    ///
    /// # Errors
    /// [`Error::Driver`] when the device is out of memory.
    pub fn from_slice(queue: &ClQueue, host: &[T]) -> Result<ClBuffer<T>> {
        ClBuffer::create(queue, host.len(), Some(host))
    }

    /// A buffer of `len` zeros.
    ///
    /// # Errors
    /// [`Error::Driver`] when the device is out of memory.
    pub fn zeros(queue: &ClQueue, len: usize) -> Result<ClBuffer<T>> {
        let mut buffer = ClBuffer::create(queue, len, None)?;
        buffer.fill(T::default())?;
        Ok(buffer)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The queue the buffer's copies run on.
    pub fn queue(&self) -> &ClQueue {
        &self.queue
    }

    /// Sets every element to `value`; returns once it is done.
    ///
    /// # Errors
    /// [`Error::Driver`].
    pub fn fill(&mut self, value: T) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let bytes = self.len * std::mem::size_of::<T>();
        // SAFETY: the pattern is one element and the range covers exactly the buffer's
        // `len` elements, all inside the allocation.
        let event = unsafe {
            self.queue
                .queue
                .enqueue_fill_buffer(&mut self.buffer, &[value], 0, bytes, &[])
        }
        .map_err(|e| Error::opencl("buffer fill", e))?;
        event.wait().map_err(|e| Error::opencl("buffer fill", e))
    }

    /// Copies the buffer to a new host vector, after the commands queued before it.
    ///
    /// # Errors
    /// [`Error::Driver`], including an error of an earlier kernel.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        let mut out = vec![T::default(); self.len];
        self.copy_to_host(&mut out)?;
        Ok(out)
    }

    /// Copies the buffer into `out`, which must have exactly [`len`](Self::len) elements.
    ///
    /// # Errors
    /// [`Error::Shape`] for a wrong length; [`Error::Driver`].
    pub fn copy_to_host(&self, out: &mut [T]) -> Result<()> {
        self.same_len(out.len())?;
        if self.len == 0 {
            return Ok(());
        }
        // SAFETY: a blocking read of `out.len()` elements, which the buffer holds; the
        // call returns after the data is in `out`.
        unsafe {
            self.queue
                .queue
                .enqueue_read_buffer(&self.buffer, CL_BLOCKING, 0, out, &[])
        }
        .map_err(|e| Error::opencl("read buffer", e))?;
        Ok(())
    }

    /// Overwrites the buffer with `host`, which must have exactly [`len`](Self::len)
    /// elements; returns once the copy is done.
    ///
    /// # Errors
    /// [`Error::Shape`] for a wrong length; [`Error::Driver`].
    pub fn copy_from_host(&mut self, host: &[T]) -> Result<()> {
        self.same_len(host.len())?;
        if self.len == 0 {
            return Ok(());
        }
        // SAFETY: a blocking write of `host.len()` elements into a buffer that holds them;
        // `host` is not used by the platform after the call returns.
        unsafe {
            self.queue
                .queue
                .enqueue_write_buffer(&mut self.buffer, CL_BLOCKING, 0, host, &[])
        }
        .map_err(|e| Error::opencl("write buffer", e))?;
        Ok(())
    }

    fn same_len(&self, other: usize) -> Result<()> {
        if other == self.len {
            Ok(())
        } else {
            Err(Error::Shape(format!(
                "the buffer has {} elements, the host side {other}",
                self.len
            )))
        }
    }

    pub(crate) fn mem(&self) -> cl_mem {
        self.buffer.get()
    }
}

impl<T: Scalar> sealed::Sealed for &ClBuffer<T> {
    fn slot(&self) -> ClSlot {
        ClSlot::Buffer {
            mem: self.mem(),
            ty: <T as crate::scalar::sealed::Sealed>::ctype(),
            len: self.len,
            context: std::sync::Arc::as_ptr(&self.queue.context.inner) as usize,
        }
    }
}

impl<T: Scalar> ClArg for &ClBuffer<T> {}

impl<T: Scalar> sealed::Sealed for &mut ClBuffer<T> {
    fn slot(&self) -> ClSlot {
        (&**self).slot()
    }
}

impl<T: Scalar> ClArg for &mut ClBuffer<T> {}
