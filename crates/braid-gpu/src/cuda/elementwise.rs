//! `ElementwiseKernel`: a kernel written as one C statement over index `i`, PyCUDA's
//! `pycuda.elementwise.ElementwiseKernel`.

use std::marker::PhantomData;

use crate::codegen::{self, Dialect};
use crate::error::{Error, Result};
use crate::signature::{self, Param};

use super::builtins;
use super::device::Device;
use super::grid::Grid;
use super::module::{Kernel, KernelArg, Launch, Slot, SourceModule};

/// A kernel generated from an argument list and an operation on element `i`: PyCUDA's
/// `ElementwiseKernel(arguments, operation, name)`.
///
/// The operation runs once for every `i` in `0..n`, where `n` is the length of the array
/// arguments (which must all be equally long). Lengths that fit an `int` run one element
/// per thread with `int` indices, as a hand-written kernel would; longer ones run a
/// grid-stride loop with 64-bit indices.
///
/// ```
/// use braid_gpu::{Device, DeviceArray, ElementwiseKernel};
///
/// # fn main() -> braid_gpu::Result<()> {
/// let Ok(device) = Device::first() else { return Ok(()) }; // no GPU here
/// let lin_comb = ElementwiseKernel::new(
///     &device,
///     "float a, float *x, float b, float *y, float *z",
///     "z[i] = a * x[i] + b * y[i]",
///     "lin_comb",
/// )?;
/// let x = DeviceArray::from_slice(&device, &[1.0f32, 2.0])?;
/// let y = DeviceArray::from_slice(&device, &[10.0f32, 20.0])?;
/// let mut z = DeviceArray::<f32>::zeros(&device, 2)?;
/// lin_comb.launch().arg(2.0f32).arg(&x).arg(0.5f32).arg(&y).arg(&mut z).run()?;
/// assert_eq!(z.to_vec()?, [7.0, 14.0]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ElementwiseKernel {
    kernel: Kernel,
    /// The same operation with `int` indices, for lengths that fit an `int`.
    kernel32: Kernel,
    params: Vec<Param>,
    source: String,
}

impl ElementwiseKernel {
    /// Generates, compiles and loads the kernel.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed argument list, operation or name;
    /// [`Error::Compile`] when the operation does not compile (the log says why);
    /// [`Error::LibraryMissing`] without NVRTC.
    pub fn new(
        device: &Device,
        arguments: &str,
        operation: &str,
        name: &str,
    ) -> Result<ElementwiseKernel> {
        ElementwiseKernel::with_preamble(device, arguments, operation, name, "")
    }

    /// [`ElementwiseKernel::new`] with `preamble` (helper functions, `#define`s) placed
    /// before the kernel.
    ///
    /// # Errors
    /// As [`ElementwiseKernel::new`].
    pub fn with_preamble(
        device: &Device,
        arguments: &str,
        operation: &str,
        name: &str,
        preamble: &str,
    ) -> Result<ElementwiseKernel> {
        let (source, params) =
            codegen::elementwise(Dialect::Cuda, arguments, operation, name, preamble)?;
        let module = SourceModule::new(device, &source)?;
        Ok(ElementwiseKernel {
            kernel: module.function(name)?,
            kernel32: module.function(&format!("{name}{}", codegen::INT32_SUFFIX))?,
            params,
            source,
        })
    }

    /// The CUDA C braid generates for these inputs, without compiling it: for reading, or
    /// for [`SourceModule::compile_only`] on a machine with no GPU.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed argument list, operation or name.
    pub fn generate_source(
        arguments: &str,
        operation: &str,
        name: &str,
        preamble: &str,
    ) -> Result<String> {
        codegen::elementwise(Dialect::Cuda, arguments, operation, name, preamble).map(|(s, _)| s)
    }

    /// The generated CUDA C.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Starts a call; give the arguments in the order of the argument list, then
    /// [`ElementwiseLaunch::run`].
    pub fn launch(&self) -> ElementwiseLaunch<'_> {
        ElementwiseLaunch {
            kernel: self,
            slots: Vec::new(),
            borrows: PhantomData,
        }
    }
}

/// A call of an [`ElementwiseKernel`] being put together.
#[derive(Debug)]
#[must_use = "a launch does nothing until `run` is called"]
pub struct ElementwiseLaunch<'a> {
    kernel: &'a ElementwiseKernel,
    slots: Vec<Slot>,
    borrows: PhantomData<&'a ()>,
}

impl<'a> ElementwiseLaunch<'a> {
    /// Appends the next argument.
    pub fn arg<A: KernelArg + 'a>(mut self, arg: A) -> Self {
        self.slots.push(arg.slot());
        self
    }

    /// Checks the arguments against the argument list, then queues the kernel over the
    /// arrays' common length.
    ///
    /// # Errors
    /// [`Error::Arguments`] for an argument that does not fit; [`Error::Shape`] when the
    /// arrays differ in length; [`Error::Driver`].
    pub fn run(self) -> Result<()> {
        let kernel = &self.kernel.kernel;
        let kinds: Vec<_> = self.slots.iter().map(Slot::kind).collect();
        signature::check(&self.kernel.params, &kinds).map_err(|message| Error::Arguments {
            kernel: kernel.name().to_string(),
            message,
        })?;
        let n = common_length(&self.slots)?;
        if n == 0 {
            return Ok(());
        }
        let device = kernel.device();
        let one_per_thread = Grid::linear(n, builtins::BLOCK);
        let launch: Launch<'_> = match i32::try_from(n) {
            Ok(n32) if one_per_thread.blocks.x <= device.properties().max_grid_dim.0 => {
                let mut launch = self.kernel.kernel32.launch(one_per_thread);
                launch.slots = self.slots;
                launch.slots.push(Slot::I32(n32));
                launch
            }
            _ => {
                let mut launch = kernel.launch(builtins::grid(device, n));
                launch.slots = self.slots;
                launch
                    .slots
                    .push(Slot::I64(i64::try_from(n).unwrap_or(i64::MAX)));
                launch
            }
        };
        launch.run()
    }
}

/// The length every array argument shares.
pub(crate) fn common_length(slots: &[Slot]) -> Result<usize> {
    let mut lengths = slots.iter().filter_map(|s| match s {
        Slot::Ptr { len, .. } => Some(*len),
        _ => None,
    });
    let first = lengths.next().unwrap_or(0);
    for len in lengths {
        if len != first {
            return Err(Error::Shape(format!(
                "the array arguments must be equally long; got {first} and {len} elements"
            )));
        }
    }
    Ok(first)
}
