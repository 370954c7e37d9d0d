//! Kernels from CUDA C source, compiled at run time (PyCUDA's `SourceModule`), and their
//! launches with arguments checked against the source's declarations.

use std::marker::PhantomData;
use std::sync::Arc;

use cudarc::driver::sys::CUfunction_attribute as FuncAttr;
use cudarc::driver::{CudaFunction, CudaModule, PushKernelArg};

use crate::error::{Error, Result};
use crate::scalar::CType;
use crate::signature::{self, ArgKind, Param, Signature};

use super::device::Device;
use super::grid::Grid;
use super::nvrtc;

/// How [`SourceModule::with_options`] compiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModuleOptions {
    /// Compile the source as it is. By default it is wrapped in `extern "C" { ... }`, as
    /// PyCUDA does, so that kernels are found by their plain names.
    pub no_extern_c: bool,
    /// Extra NVRTC options (`"--use_fast_math"`, `"-DTILE=16"`). braid adds the device's
    /// `--gpu-architecture`.
    pub options: Vec<String>,
}

impl ModuleOptions {
    /// Default options plus NVRTC options `options`.
    pub fn with_nvrtc_options<S: Into<String>>(options: impl IntoIterator<Item = S>) -> Self {
        ModuleOptions {
            no_extern_c: false,
            options: options.into_iter().map(Into::into).collect(),
        }
    }
}

/// CUDA C source compiled by NVRTC and loaded on a device: PyCUDA's `SourceModule`.
///
/// Compiling is cached by source and options for the life of the process, and loading is
/// cached per device, so building the same module again is cheap.
///
/// ```
/// use braid_gpu::{Device, DeviceArray, Grid, SourceModule};
///
/// # fn main() -> braid_gpu::Result<()> {
/// const SOURCE: &str = r#"
///     __global__ void double_them(float *a, int n) {
///         int i = blockIdx.x * blockDim.x + threadIdx.x;
///         if (i < n) a[i] *= 2.0f;
///     }"#;
/// let device = match Device::first() {
///     Ok(device) => device,
///     Err(e) if e.is_unavailable() => return Ok(()), // no GPU here
///     Err(e) => return Err(e),
/// };
/// let module = SourceModule::new(&device, SOURCE)?;
/// let kernel = module.function("double_them")?;
/// let mut a = DeviceArray::from_slice(&device, &[1.0f32, 2.0, 3.0])?;
/// kernel.launch(Grid::linear(3, 128)).arg(&mut a).arg(3i32).run()?;
/// assert_eq!(a.to_vec()?, [2.0, 4.0, 6.0]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SourceModule {
    device: Device,
    module: Arc<CudaModule>,
    kernels: Arc<Vec<Signature>>,
    ptx: Arc<str>,
}

/// The source as NVRTC sees it.
fn prepared(source: &str, options: &ModuleOptions) -> String {
    if options.no_extern_c {
        source.to_string()
    } else {
        format!("extern \"C\" {{\n{source}\n}}\n")
    }
}

impl SourceModule {
    /// Compiles `source` for `device` and loads it.
    ///
    /// # Errors
    /// [`Error::LibraryMissing`] without NVRTC, [`Error::Compile`] with the compiler's
    /// log, [`Error::Driver`] when the driver rejects the PTX.
    pub fn new(device: &Device, source: &str) -> Result<SourceModule> {
        SourceModule::with_options(device, source, &ModuleOptions::default())
    }

    /// [`SourceModule::new`] with options.
    ///
    /// # Errors
    /// As [`SourceModule::new`].
    pub fn with_options(
        device: &Device,
        source: &str,
        options: &ModuleOptions,
    ) -> Result<SourceModule> {
        let mut nvrtc_options = vec![device.arch_option()];
        nvrtc_options.extend(options.options.iter().cloned());
        let ptx = nvrtc::compile_cached(&prepared(source, options), &nvrtc_options)?;
        let module = load(device, &ptx)?;
        Ok(SourceModule {
            device: device.clone(),
            module,
            kernels: Arc::new(signature::kernels_in(source)),
            ptx,
        })
    }

    /// Compiles `source` exactly as [`SourceModule::new`] would (without a device's
    /// architecture) and returns the PTX: checks a kernel on a machine with no GPU.
    ///
    /// # Errors
    /// [`Error::LibraryMissing`] without NVRTC, [`Error::Compile`] with the compiler's log.
    pub fn compile_only(source: &str) -> Result<String> {
        let ptx = nvrtc::compile_cached(&prepared(source, &ModuleOptions::default()), &[])?;
        Ok(ptx.to_string())
    }

    /// The kernel `name` (PyCUDA's `get_function`).
    ///
    /// # Errors
    /// [`Error::KernelNotFound`] when the module has no kernel of that name.
    pub fn function(&self, name: &str) -> Result<Kernel> {
        let not_found = || Error::KernelNotFound {
            name: name.to_string(),
            found: self.kernel_names().join(", "),
        };
        if !signature::is_identifier(name) {
            return Err(not_found());
        }
        let function = self.module.load_function(name).map_err(|_| not_found())?;
        let params = match self.kernels.iter().find(|k| k.name == name) {
            Some(signature) => signature.params.clone(),
            None => Err("braid found no `__global__` declaration of it in the source".into()),
        };
        Ok(Kernel {
            device: self.device.clone(),
            name: name.into(),
            function,
            params: Arc::new(params),
        })
    }

    /// The names of the kernels the source declares.
    pub fn kernel_names(&self) -> Vec<&str> {
        self.kernels.iter().map(|k| k.name.as_str()).collect()
    }

    /// The PTX NVRTC produced.
    pub fn ptx(&self) -> &str {
        &self.ptx
    }

    /// The device the module is loaded on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// Loads PTX on a device, once per device.
pub(crate) fn load(device: &Device, ptx: &Arc<str>) -> Result<Arc<CudaModule>> {
    if let Some(module) = device.inner.modules.lock().get(ptx) {
        return Ok(module.clone());
    }
    let module = device
        .inner
        .ctx
        .load_module(cudarc::nvrtc::Ptx::from_src(ptx.to_string()))
        .map_err(|e| Error::cuda("module load", e))?;
    device
        .inner
        .modules
        .lock()
        .insert(ptx.clone(), module.clone());
    Ok(module)
}

/// One kernel of a [`SourceModule`], ready to launch. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Kernel {
    device: Device,
    name: Arc<str>,
    function: CudaFunction,
    params: Arc<Result<Vec<Param>, String>>,
}

impl Kernel {
    /// The kernel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Registers each thread uses, from the compiled code.
    ///
    /// # Errors
    /// [`Error::Driver`] when the driver cannot answer.
    pub fn registers_per_thread(&self) -> Result<u32> {
        let n = self
            .function
            .num_regs()
            .map_err(|e| Error::cuda("kernel attribute query", e))?;
        Ok(u32::try_from(n).unwrap_or(0))
    }

    /// Starts a launch on `grid`; add the arguments in order with [`Launch::arg`], then
    /// [`Launch::run`].
    pub fn launch(&self, grid: Grid) -> Launch<'_> {
        Launch {
            kernel: self,
            grid,
            slots: Vec::new(),
            borrows: PhantomData,
        }
    }
}

/// A kernel argument as it goes to the driver.
#[derive(Debug, Clone, Copy)]
pub enum Slot {
    /// A device pointer, with what braid knows of the array it points into.
    Ptr {
        ptr: u64,
        ty: ElemType,
        len: usize,
        device: usize,
    },
    F32(f32),
    F64(f64),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
}

/// The element type of a pointer slot (a `Copy` stand-in for [`CType`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    F32,
    F64,
    I32,
    U32,
    I64,
    U64,
}

impl ElemType {
    pub(crate) fn of(ty: &CType) -> ElemType {
        match ty {
            CType::F32 => ElemType::F32,
            CType::F64 => ElemType::F64,
            CType::I32 => ElemType::I32,
            CType::U32 => ElemType::U32,
            CType::I64 => ElemType::I64,
            CType::U64 | CType::Other(_) => ElemType::U64,
        }
    }

    fn ctype(self) -> CType {
        match self {
            ElemType::F32 => CType::F32,
            ElemType::F64 => CType::F64,
            ElemType::I32 => CType::I32,
            ElemType::U32 => CType::U32,
            ElemType::I64 => CType::I64,
            ElemType::U64 => CType::U64,
        }
    }
}

impl Slot {
    pub(crate) fn kind(&self) -> ArgKind {
        match self {
            Slot::Ptr { ty, .. } => ArgKind::Array(ty.ctype()),
            Slot::F32(_) => ArgKind::Value(CType::F32),
            Slot::F64(_) => ArgKind::Value(CType::F64),
            Slot::I32(_) => ArgKind::Value(CType::I32),
            Slot::U32(_) => ArgKind::Value(CType::U32),
            Slot::I64(_) => ArgKind::Value(CType::I64),
            Slot::U64(_) => ArgKind::Value(CType::U64),
        }
    }
}

pub(crate) mod sealed {
    /// Turns an argument into what the driver is given.
    pub trait Sealed {
        /// The driver's view of the argument.
        fn slot(&self) -> super::Slot;
    }
}

/// Something a CUDA kernel can be given: a [`DeviceArray`](crate::DeviceArray) (by `&` or
/// `&mut`, for a pointer parameter) or a scalar (`f32`, `f64`, `i32`, `u32`, `i64`, `u64`,
/// for a value parameter). Sealed.
pub trait KernelArg: sealed::Sealed {}

macro_rules! value_arg {
    ($($t:ty => $slot:ident),*) => {$(
        impl sealed::Sealed for $t {
            fn slot(&self) -> Slot {
                Slot::$slot(*self)
            }
        }
        impl KernelArg for $t {}
    )*};
}

value_arg!(f32 => F32, f64 => F64, i32 => I32, u32 => U32, i64 => I64, u64 => U64);

/// A kernel launch being put together: PyCUDA's `func(arg, ..., block=, grid=)`.
///
/// Arguments borrowed here stay borrowed until the launch is run, so none can be freed
/// while it is being assembled; once the launch is queued, braid's single stream per device
/// orders any later free after the kernel.
#[derive(Debug)]
#[must_use = "a launch does nothing until `run` is called"]
pub struct Launch<'a> {
    pub(crate) kernel: &'a Kernel,
    pub(crate) grid: Grid,
    pub(crate) slots: Vec<Slot>,
    borrows: PhantomData<&'a ()>,
}

impl<'a> Launch<'a> {
    /// Appends the next argument.
    pub fn arg<A: KernelArg + 'a>(mut self, arg: A) -> Self {
        self.slots.push(arg.slot());
        self
    }

    /// Checks every argument against the parameter the kernel's source declares (count,
    /// element type, array or value, same device), then queues the kernel. Returns once the
    /// kernel is queued; errors raised while it runs surface at the next synchronising call
    /// (`to_vec`, [`Device::synchronize`]).
    ///
    /// # Errors
    /// [`Error::Arguments`] naming the first argument that does not fit (or saying that
    /// braid could not read the declaration: then use [`Launch::run_unchecked`]);
    /// [`Error::Invalid`] for a grid beyond the device's limits; [`Error::Driver`].
    pub fn run(self) -> Result<()> {
        self.check()?;
        // SAFETY: `check` proved that the arguments match the kernel's declared parameters in
        // number and type, that every pointer comes from a live `DeviceArray` on this
        // kernel's device (borrowed for `'a`, and freed only after the kernel on the same
        // stream), and the grid is within the device's limits (checked in `queue`).
        unsafe { self.queue() }
    }

    /// Queues the kernel without checking the arguments against its declaration: for
    /// kernels whose parameters braid cannot read (templates, structs, macros).
    ///
    /// # Safety
    /// The arguments must match the kernel's parameters in number, order and type, and the
    /// kernel must only access memory inside the arrays it is given.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a grid beyond the device's limits; [`Error::Driver`].
    pub unsafe fn run_unchecked(self) -> Result<()> {
        self.check_devices()?;
        // SAFETY: the caller promises that the arguments fit the kernel.
        unsafe { self.queue() }
    }

    pub(crate) fn check(&self) -> Result<()> {
        let kernel = self.kernel;
        let params = kernel
            .params
            .as_ref()
            .as_ref()
            .map_err(|why| Error::Arguments {
                kernel: kernel.name.to_string(),
                message: format!(
                    "braid cannot read its parameters ({why}); launch it with `run_unchecked`"
                ),
            })?;
        let kinds: Vec<ArgKind> = self.slots.iter().map(Slot::kind).collect();
        signature::check(params, &kinds).map_err(|message| Error::Arguments {
            kernel: kernel.name.to_string(),
            message,
        })?;
        self.check_devices()
    }

    fn check_devices(&self) -> Result<()> {
        let ordinal = self.kernel.device.ordinal();
        for (index, slot) in self.slots.iter().enumerate() {
            if let Slot::Ptr { device, .. } = slot
                && *device != ordinal
            {
                return Err(Error::Arguments {
                    kernel: self.kernel.name.to_string(),
                    message: format!(
                        "argument {index} lives on device {device}, the kernel on device {ordinal}"
                    ),
                });
            }
        }
        Ok(())
    }

    /// # Safety
    /// The slots must fit the kernel's parameters.
    unsafe fn queue(self) -> Result<()> {
        let device = &self.kernel.device;
        let properties = device.properties();
        self.grid.check(properties)?;
        if self.grid.shared_mem_bytes > properties.shared_memory_per_block {
            let bytes = i32::try_from(self.grid.shared_mem_bytes).unwrap_or(i32::MAX);
            self.kernel
                .function
                .set_attribute(
                    FuncAttr::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    bytes,
                )
                .map_err(|e| Error::cuda("raising the kernel's shared memory limit", e))?;
        }
        let stream = &device.inner.stream;
        let mut builder = stream.launch_builder(&self.kernel.function);
        for slot in &self.slots {
            match slot {
                Slot::Ptr { ptr, .. } => builder.arg(ptr),
                Slot::F32(v) => builder.arg(v),
                Slot::F64(v) => builder.arg(v),
                Slot::I32(v) => builder.arg(v),
                Slot::U32(v) => builder.arg(v),
                Slot::I64(v) => builder.arg(v),
                Slot::U64(v) => builder.arg(v),
            };
        }
        // SAFETY: the caller guarantees the arguments fit the kernel; each pushed reference
        // points into `self.slots`, which outlives this call, and the driver copies the
        // argument values when the launch is queued.
        unsafe { builder.launch(self.grid.config()) }
            .map_err(|e| Error::cuda("kernel launch", e))?;
        Ok(())
    }
}
