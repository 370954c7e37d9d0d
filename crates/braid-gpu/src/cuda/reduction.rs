//! `ReductionKernel`: a map expression reduced with an associative operation, in two
//! stages on the device (PyCUDA's `pycuda.reduction.ReductionKernel`).

use std::marker::PhantomData;

use crate::codegen::{self, Dialect, Layout, ReductionSpec};
use crate::error::{Error, Result};
use crate::scalar::Scalar;
use crate::signature::{self, Param};

use super::array::DeviceArray;
use super::device::Device;
use super::elementwise::common_length;
use super::module::{Kernel, KernelArg, Slot, SourceModule, sealed::Sealed as _};

/// Threads per block of both stages.
const BLOCK: u32 = 256;

/// A reduction generated from a neutral value, a reduce expression over `a` and `b`, and
/// a map expression over index `i`: PyCUDA's `ReductionKernel(dtype_out, neutral,
/// reduce_expr, map_expr, arguments)`, with the output type as `T`.
///
/// It runs in two stages: as many blocks as fill the device each fold a grid-strided share
/// of the input into one partial value (four loads in flight per thread, then a tree in
/// shared memory), and one block folds the partials. `reduce_expr` must be associative and
/// commutative (the order of folding is not specified).
///
/// ```
/// use braid_gpu::{Device, DeviceArray, ReductionKernel};
///
/// # fn main() -> braid_gpu::Result<()> {
/// let Ok(device) = Device::first() else { return Ok(()) }; // no GPU here
/// let dot = ReductionKernel::<f32>::new(&device, "0", "a + b", "x[i] * y[i]", "const float *x, const float *y")?;
/// let x = DeviceArray::arange(&device, 0.0f32, 4.0, 1.0)?;
/// let y = DeviceArray::full(&device, 4, 2.0f32)?;
/// assert_eq!(dot.launch().arg(&x).arg(&y).run()?, 12.0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ReductionKernel<T: Scalar> {
    stage1: Kernel,
    stage2: Kernel,
    params: Vec<Param>,
    source: String,
    blocks: u32,
    out: PhantomData<fn() -> T>,
}

impl<T: Scalar> Clone for ReductionKernel<T> {
    fn clone(&self) -> Self {
        ReductionKernel {
            stage1: self.stage1.clone(),
            stage2: self.stage2.clone(),
            params: self.params.clone(),
            source: self.source.clone(),
            blocks: self.blocks,
            out: PhantomData,
        }
    }
}

impl<T: Scalar> ReductionKernel<T> {
    /// Generates, compiles and loads the two stages.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed argument list or empty expression;
    /// [`Error::Compile`] with the compiler's log; [`Error::LibraryMissing`] without NVRTC.
    pub fn new(
        device: &Device,
        neutral: &str,
        reduce_expr: &str,
        map_expr: &str,
        arguments: &str,
    ) -> Result<ReductionKernel<T>> {
        ReductionKernel::with_options(
            device,
            neutral,
            reduce_expr,
            map_expr,
            arguments,
            "reduce_kernel",
            "",
        )
    }

    /// [`ReductionKernel::new`] with a kernel name and a preamble placed before the
    /// kernels.
    ///
    /// # Errors
    /// As [`ReductionKernel::new`].
    pub fn with_options(
        device: &Device,
        neutral: &str,
        reduce_expr: &str,
        map_expr: &str,
        arguments: &str,
        name: &str,
        preamble: &str,
    ) -> Result<ReductionKernel<T>> {
        let source = ReductionKernel::<T>::generate_source(
            neutral,
            reduce_expr,
            map_expr,
            arguments,
            name,
            preamble,
        )?;
        let (_, params) = codegen::reduction(
            Dialect::Cuda,
            &spec::<T>(neutral, reduce_expr, map_expr, arguments, name, preamble),
        )?;
        let module = SourceModule::new(device, &source)?;
        let p = device.properties();
        let per_sm = (p.max_threads_per_multiprocessor / BLOCK).max(1);
        Ok(ReductionKernel {
            stage1: module.function(&format!("{name}_stage1"))?,
            stage2: module.function(&format!("{name}_stage2"))?,
            params,
            source,
            blocks: (p.multiprocessors.max(1) * per_sm).min(4096),
            out: PhantomData,
        })
    }

    /// The CUDA C braid generates for these inputs, without compiling it.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed argument list or empty expression.
    pub fn generate_source(
        neutral: &str,
        reduce_expr: &str,
        map_expr: &str,
        arguments: &str,
        name: &str,
        preamble: &str,
    ) -> Result<String> {
        codegen::reduction(
            Dialect::Cuda,
            &spec::<T>(neutral, reduce_expr, map_expr, arguments, name, preamble),
        )
        .map(|(s, _)| s)
    }

    /// The generated CUDA C.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Starts a call; give the arguments in the order of the argument list, then
    /// [`ReductionLaunch::run`].
    pub fn launch(&self) -> ReductionLaunch<'_, T> {
        ReductionLaunch {
            kernel: self,
            slots: Vec::new(),
            borrows: PhantomData,
        }
    }
}

fn spec<'a, T: Scalar>(
    neutral: &'a str,
    reduce_expr: &'a str,
    map_expr: &'a str,
    arguments: &'a str,
    name: &'a str,
    preamble: &'a str,
) -> ReductionSpec<'a> {
    ReductionSpec {
        out_type: T::CUDA_NAME,
        block: BLOCK,
        layout: Layout::GridStride,
        neutral,
        reduce_expr,
        map_expr,
        arguments,
        name,
        preamble,
    }
}

/// A call of a [`ReductionKernel`] being put together.
#[derive(Debug)]
#[must_use = "a reduction does nothing until `run` is called"]
pub struct ReductionLaunch<'a, T: Scalar> {
    kernel: &'a ReductionKernel<T>,
    slots: Vec<Slot>,
    borrows: PhantomData<&'a ()>,
}

impl<'a, T: Scalar> ReductionLaunch<'a, T> {
    /// Appends the next argument.
    pub fn arg<A: KernelArg + 'a>(mut self, arg: A) -> Self {
        self.slots.push(arg.slot());
        self
    }

    /// Checks the arguments, runs both stages over the arrays' common length and returns
    /// the result (the neutral value for empty arrays). Waits for the result.
    ///
    /// # Errors
    /// [`Error::Arguments`] for an argument that does not fit; [`Error::Shape`] when the
    /// arrays differ in length; [`Error::Driver`].
    pub fn run(self) -> Result<T> {
        let out = self.run_on_device()?;
        out.read_at(0)
    }

    /// Like [`run`](Self::run), but leaves the result on the device in a one-element array
    /// and returns without waiting, as PyCUDA's reduction returns a `GPUArray`.
    ///
    /// # Errors
    /// As [`run`](Self::run), except errors raised while the kernels run, which surface
    /// when the result is read.
    pub fn run_on_device(self) -> Result<DeviceArray<T>> {
        let kernel = self.kernel;
        let kinds: Vec<_> = self.slots.iter().map(Slot::kind).collect();
        signature::check(&kernel.params, &kinds).map_err(|message| Error::Arguments {
            kernel: kernel.stage1.name().to_string(),
            message,
        })?;
        let n = common_length(&self.slots)?;
        let device = kernel.stage1.device();
        let blocks = u32::try_from(n.div_ceil(BLOCK as usize))
            .unwrap_or(u32::MAX)
            .min(kernel.blocks);
        let count = |n: usize| Slot::I64(i64::try_from(n).unwrap_or(i64::MAX));
        let partial = DeviceArray::<T>::uninit(device, vec![blocks as usize])?;
        let mut out = DeviceArray::<T>::uninit(device, vec![1])?;
        if blocks > 0 {
            let mut stage1 = kernel.stage1.launch(super::Grid::new(blocks, BLOCK));
            stage1.slots = self.slots;
            stage1.slots.push(count(n));
            stage1.slots.push((&partial).slot());
            stage1.run()?;
        }
        kernel
            .stage2
            .launch(super::Grid::new(1, BLOCK))
            .arg(&partial)
            .arg(i64::from(blocks))
            .arg(&mut out)
            .run()?;
        Ok(out)
    }
}

/// A reduction braid runs for `DeviceArray`'s own methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Sum,
    Dot,
    Max,
    Min,
}

impl Builtin {
    #[cfg(test)]
    pub(crate) const ALL: [Builtin; 4] = [Builtin::Sum, Builtin::Dot, Builtin::Max, Builtin::Min];

    /// (name, neutral, reduce, map, arguments) for element type `T`.
    pub(crate) fn spec<T: Scalar>(
        self,
    ) -> (&'static str, String, &'static str, &'static str, String) {
        let t = T::CUDA_NAME;
        let one = format!("const {t} *x");
        match self {
            Builtin::Sum => ("braid_sum", "0".into(), "a + b", "x[i]", one),
            Builtin::Dot => (
                "braid_dot",
                "0".into(),
                "a + b",
                "x[i] * y[i]",
                format!("const {t} *x, const {t} *y"),
            ),
            Builtin::Max => (
                "braid_max",
                T::LOWEST.c_literal(),
                "a > b ? a : b",
                "x[i]",
                one,
            ),
            Builtin::Min => (
                "braid_min",
                T::HIGHEST.c_literal(),
                "a < b ? a : b",
                "x[i]",
                one,
            ),
        }
    }

    fn kernel<T: Scalar>(self, device: &Device) -> Result<std::sync::Arc<ReductionKernel<T>>> {
        let (name, neutral, reduce, map, arguments) = self.spec::<T>();
        device.builtin(&format!("{name} {}", T::CUDA_NAME), || {
            ReductionKernel::<T>::with_options(device, &neutral, reduce, map, &arguments, name, "")
        })
    }
}

/// The sum of an array's elements, with a reduction compiled once per device and type.
pub(crate) fn builtin_sum<T: Scalar>(x: &DeviceArray<T>) -> Result<T> {
    Builtin::Sum.kernel::<T>(x.device())?.launch().arg(x).run()
}

pub(crate) fn builtin_dot<T: Scalar>(x: &DeviceArray<T>, y: &DeviceArray<T>) -> Result<T> {
    if x.len() != y.len() {
        return Err(Error::Shape(format!(
            "dot of arrays of {} and {} elements",
            x.len(),
            y.len()
        )));
    }
    Builtin::Dot
        .kernel::<T>(x.device())?
        .launch()
        .arg(x)
        .arg(y)
        .run()
}

/// The largest (`max`) or smallest element of a non-empty array.
pub(crate) fn builtin_extreme<T: Scalar>(x: &DeviceArray<T>, max: bool) -> Result<T> {
    if x.is_empty() {
        return Err(Error::Shape(format!(
            "{} of an empty array",
            if max { "max" } else { "min" }
        )));
    }
    let which = if max { Builtin::Max } else { Builtin::Min };
    which.kernel::<T>(x.device())?.launch().arg(x).run()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::testing::nvrtc_missing;

    fn compile_all<T: Scalar>() {
        for builtin in Builtin::ALL {
            let (name, neutral, reduce, map, arguments) = builtin.spec::<T>();
            let source =
                ReductionKernel::<T>::generate_source(&neutral, reduce, map, &arguments, name, "")
                    .unwrap();
            let ptx = SourceModule::compile_only(&source)
                .unwrap_or_else(|e| panic!("{name} for {}: {e}", T::CUDA_NAME));
            assert!(ptx.contains(&format!(".entry {name}_stage1(")), "{name}");
            assert!(ptx.contains(&format!(".entry {name}_stage2(")), "{name}");
        }
    }

    /// The built-in reductions (sum, dot, max, min) compile for every element type.
    #[test]
    fn every_builtin_reduction_compiles_to_ptx() {
        if !crate::nvrtc_available() {
            nvrtc_missing("every_builtin_reduction_compiles_to_ptx");
            return;
        }
        compile_all::<f32>();
        compile_all::<f64>();
        compile_all::<i32>();
        compile_all::<u32>();
        compile_all::<i64>();
        compile_all::<u64>();
    }
}
