//! `ClElementwiseKernel`: PyOpenCL's `pyopencl.elementwise.ElementwiseKernel`.

use std::marker::PhantomData;

use crate::codegen::{self, Dialect};
use crate::error::{Error, Result};
use crate::signature::{self, Param};

use super::context::{ClContext, ClQueue};
use super::program::{ClArg, ClEvent, ClKernel, ClProgram, ClSlot};

/// Work-items are launched in multiples of this (any global size works: the kernel loops).
const GRANULE: usize = 256;

/// A kernel generated from an argument list and an operation on element `i`, for OpenCL:
/// the same API as [`ElementwiseKernel`](crate::ElementwiseKernel), over
/// [`ClBuffer`](crate::ClBuffer)s. Pointers in the argument list are `__global`.
///
/// ```
/// use braid_gpu::{ClBuffer, ClContext, ClElementwiseKernel, ClQueue};
///
/// # fn main() -> braid_gpu::Result<()> {
/// let Ok(context) = ClContext::first() else { return Ok(()) }; // no OpenCL here
/// let queue = ClQueue::new(&context)?;
/// let sum = ClElementwiseKernel::new(&context, "float *a, float *b, float *res", "res[i] = a[i] + b[i]", "add")?;
/// let a = ClBuffer::from_slice(&queue, &[1.0f32, 2.0])?;
/// let b = ClBuffer::from_slice(&queue, &[10.0f32, 20.0])?;
/// let mut res = ClBuffer::<f32>::zeros(&queue, 2)?;
/// sum.launch(&queue).arg(&a).arg(&b).arg(&mut res).run()?;
/// assert_eq!(res.to_vec()?, [11.0, 22.0]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ClElementwiseKernel {
    kernel: ClKernel,
    /// The same operation with `int` indices, for lengths that fit an `int`.
    kernel32: ClKernel,
    params: Vec<Param>,
    source: String,
}

impl ClElementwiseKernel {
    /// Generates and builds the kernel.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed argument list, operation or name;
    /// [`Error::Compile`] with the build log.
    pub fn new(
        context: &ClContext,
        arguments: &str,
        operation: &str,
        name: &str,
    ) -> Result<ClElementwiseKernel> {
        ClElementwiseKernel::with_preamble(context, arguments, operation, name, "")
    }

    /// [`ClElementwiseKernel::new`] with `preamble` placed before the kernel.
    ///
    /// # Errors
    /// As [`ClElementwiseKernel::new`].
    pub fn with_preamble(
        context: &ClContext,
        arguments: &str,
        operation: &str,
        name: &str,
        preamble: &str,
    ) -> Result<ClElementwiseKernel> {
        let (source, params) =
            codegen::elementwise(Dialect::OpenCl, arguments, operation, name, preamble)?;
        let program = ClProgram::build(context, &source, "")?;
        Ok(ClElementwiseKernel {
            kernel: program.kernel(name)?,
            kernel32: program.kernel(&format!("{name}{}", codegen::INT32_SUFFIX))?,
            params,
            source,
        })
    }

    /// The generated OpenCL C.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Starts a call on `queue`; give the arguments in the order of the argument list.
    pub fn launch<'a>(&'a self, queue: &'a ClQueue) -> ClElementwiseLaunch<'a> {
        ClElementwiseLaunch {
            kernel: self,
            queue,
            slots: Vec::new(),
            borrows: PhantomData,
        }
    }
}

/// A call of a [`ClElementwiseKernel`] being put together.
#[derive(Debug)]
#[must_use = "a launch does nothing until `run` is called"]
pub struct ClElementwiseLaunch<'a> {
    kernel: &'a ClElementwiseKernel,
    queue: &'a ClQueue,
    slots: Vec<ClSlot>,
    borrows: PhantomData<&'a ()>,
}

impl<'a> ClElementwiseLaunch<'a> {
    /// Appends the next argument.
    pub fn arg<A: ClArg + 'a>(mut self, arg: A) -> Self {
        self.slots.push(arg.slot());
        self
    }

    /// Checks the arguments and queues the kernel over the buffers' common length; returns
    /// its event (`None` for empty buffers, when nothing runs).
    ///
    /// # Errors
    /// [`Error::Arguments`] for an argument that does not fit; [`Error::Shape`] when the
    /// buffers differ in length; [`Error::Driver`].
    pub fn run(self) -> Result<Option<ClEvent>> {
        let kinds: Vec<_> = self.slots.iter().map(ClSlot::kind).collect();
        signature::check(&self.kernel.params, &kinds).map_err(|message| Error::Arguments {
            kernel: self.kernel.kernel.name().to_string(),
            message,
        })?;
        let n = common_length(&self.slots)?;
        if n == 0 {
            return Ok(None);
        }
        let global = [n.div_ceil(GRANULE) * GRANULE];
        let launch = match i32::try_from(n) {
            Ok(n32) => {
                let mut launch = self.kernel.kernel32.launch(self.queue, &global);
                launch.slots = self.slots;
                launch.slots.push(ClSlot::I32(n32));
                launch
            }
            Err(_) => {
                let mut launch = self.kernel.kernel.launch(self.queue, &global);
                launch.slots = self.slots;
                launch
                    .slots
                    .push(ClSlot::I64(i64::try_from(n).unwrap_or(i64::MAX)));
                launch
            }
        };
        launch.run().map(Some)
    }
}

/// The length every buffer argument shares.
pub(crate) fn common_length(slots: &[ClSlot]) -> Result<usize> {
    let mut lengths = slots.iter().filter_map(|s| match s {
        ClSlot::Buffer { len, .. } => Some(*len),
        _ => None,
    });
    let first = lengths.next().unwrap_or(0);
    for len in lengths {
        if len != first {
            return Err(Error::Shape(format!(
                "the buffer arguments must be equally long; got {first} and {len} elements"
            )));
        }
    }
    Ok(first)
}
