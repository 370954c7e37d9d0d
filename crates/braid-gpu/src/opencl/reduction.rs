//! `ClReductionKernel`: PyOpenCL's `pyopencl.reduction.ReductionKernel`.

use std::marker::PhantomData;

use crate::codegen::{self, Dialect, Layout, ReductionSpec};
use crate::error::{Error, Result};
use crate::scalar::Scalar;
use crate::signature::{self, Param};

use super::buffer::ClBuffer;
use super::context::{ClContext, ClQueue};
use super::elementwise::common_length;
use super::program::{ClArg, ClKernel, ClProgram, ClSlot, sealed::Sealed as _};

/// A two-stage reduction for OpenCL with the same API as
/// [`ReductionKernel`](crate::ReductionKernel), over [`ClBuffer`]s: work-groups fold
/// strided shares of `map_expr` over `0..n` in local memory, then one work-group folds the
/// partials.
///
/// ```
/// use braid_gpu::{ClBuffer, ClContext, ClQueue, ClReductionKernel};
///
/// # fn main() -> braid_gpu::Result<()> {
/// let Ok(context) = ClContext::first() else { return Ok(()) }; // no OpenCL here
/// let queue = ClQueue::new(&context)?;
/// let sum = ClReductionKernel::<f32>::new(&context, "0", "a + b", "x[i]", "const float *x")?;
/// let x = ClBuffer::from_slice(&queue, &[1.0f32, 2.0, 3.0, 4.0])?;
/// assert_eq!(sum.launch(&queue).arg(&x).run()?, 10.0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ClReductionKernel<T: Scalar> {
    stage1: ClKernel,
    stage2: ClKernel,
    params: Vec<Param>,
    source: String,
    block: usize,
    groups: usize,
    out: PhantomData<fn() -> T>,
}

impl<T: Scalar> Clone for ClReductionKernel<T> {
    fn clone(&self) -> Self {
        ClReductionKernel {
            stage1: self.stage1.clone(),
            stage2: self.stage2.clone(),
            params: self.params.clone(),
            source: self.source.clone(),
            block: self.block,
            groups: self.groups,
            out: PhantomData,
        }
    }
}

/// The largest power of two not above `n` (and at least 1).
fn floor_pow2(n: usize) -> usize {
    if n == 0 {
        1
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

impl<T: Scalar> ClReductionKernel<T> {
    /// Generates and builds both stages.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed argument list or empty expression;
    /// [`Error::Compile`] with the build log.
    pub fn new(
        context: &ClContext,
        neutral: &str,
        reduce_expr: &str,
        map_expr: &str,
        arguments: &str,
    ) -> Result<ClReductionKernel<T>> {
        ClReductionKernel::with_options(
            context,
            neutral,
            reduce_expr,
            map_expr,
            arguments,
            "reduce_kernel",
            "",
        )
    }

    /// [`ClReductionKernel::new`] with a kernel name and a preamble.
    ///
    /// # Errors
    /// As [`ClReductionKernel::new`].
    pub fn with_options(
        context: &ClContext,
        neutral: &str,
        reduce_expr: &str,
        map_expr: &str,
        arguments: &str,
        name: &str,
        preamble: &str,
    ) -> Result<ClReductionKernel<T>> {
        let device = context.device();
        let mut block = floor_pow2(device.max_work_group_size()?.min(256));
        let layout = match device.kind()? {
            super::platform::ClDeviceType::Cpu => Layout::ItemChunks,
            _ => Layout::GroupChunks,
        };
        loop {
            let spec = ReductionSpec {
                out_type: T::OPENCL_NAME,
                block: u32::try_from(block).unwrap_or(256),
                layout,
                neutral,
                reduce_expr,
                map_expr,
                arguments,
                name,
                preamble,
            };
            let (source, params) = codegen::reduction(Dialect::OpenCl, &spec)?;
            let program = ClProgram::build(context, &source, "")?;
            let stage1 = program.kernel(&format!("{name}_stage1"))?;
            let stage2 = program.kernel(&format!("{name}_stage2"))?;
            let fits = stage1
                .max_work_group_size()?
                .min(stage2.max_work_group_size()?);
            if fits < block && block > 1 {
                // The compiled kernels need more resources than the device has for this
                // work-group size: build again with a smaller one.
                block = floor_pow2(fits);
                continue;
            }
            let groups = (device.compute_units()? as usize).max(1) * 8;
            return Ok(ClReductionKernel {
                stage1,
                stage2,
                params,
                source,
                block,
                groups,
                out: PhantomData,
            });
        }
    }

    /// The generated OpenCL C.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Starts a call on `queue`; give the arguments in the order of the argument list.
    pub fn launch<'a>(&'a self, queue: &'a ClQueue) -> ClReductionLaunch<'a, T> {
        ClReductionLaunch {
            kernel: self,
            queue,
            slots: Vec::new(),
            borrows: PhantomData,
        }
    }
}

/// A call of a [`ClReductionKernel`] being put together.
#[derive(Debug)]
#[must_use = "a reduction does nothing until `run` is called"]
pub struct ClReductionLaunch<'a, T: Scalar> {
    kernel: &'a ClReductionKernel<T>,
    queue: &'a ClQueue,
    slots: Vec<ClSlot>,
    borrows: PhantomData<&'a ()>,
}

impl<'a, T: Scalar> ClReductionLaunch<'a, T> {
    /// Appends the next argument.
    pub fn arg<A: ClArg + 'a>(mut self, arg: A) -> Self {
        self.slots.push(arg.slot());
        self
    }

    /// Checks the arguments, runs both stages and returns the result (the neutral value for
    /// empty buffers). Waits for the result.
    ///
    /// # Errors
    /// [`Error::Arguments`]; [`Error::Shape`] when the buffers differ in length;
    /// [`Error::Driver`].
    pub fn run(self) -> Result<T> {
        let kernel = self.kernel;
        let kinds: Vec<_> = self.slots.iter().map(ClSlot::kind).collect();
        signature::check(&kernel.params, &kinds).map_err(|message| Error::Arguments {
            kernel: kernel.stage1.name().to_string(),
            message,
        })?;
        let n = common_length(&self.slots)?;
        let groups = n.div_ceil(kernel.block).min(kernel.groups);
        let partial = ClBuffer::<T>::create(self.queue, groups.max(1), None)?;
        let mut out = ClBuffer::<T>::create(self.queue, 1, None)?;
        let count = |n: usize| ClSlot::I64(i64::try_from(n).unwrap_or(i64::MAX));
        if groups > 0 {
            let mut stage1 = kernel
                .stage1
                .launch(self.queue, &[groups * kernel.block])
                .local(&[kernel.block]);
            stage1.slots = self.slots;
            stage1.slots.push(count(n));
            stage1.slots.push((&partial).slot());
            stage1.run()?;
        }
        kernel
            .stage2
            .launch(self.queue, &[kernel.block])
            .local(&[kernel.block])
            .arg(&partial)
            .arg(i64::try_from(groups).unwrap_or(i64::MAX))
            .arg(&mut out)
            .run()?;
        Ok(out.to_vec()?[0])
    }
}
