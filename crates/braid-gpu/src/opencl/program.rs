//! OpenCL programs built from source and their kernels (PyOpenCL's `Program(ctx,
//! src).build()` and kernel calls), with arguments checked against the source.

use std::marker::PhantomData;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use opencl3::error_codes::CL_BUILD_PROGRAM_FAILURE;
use opencl3::event::Event;
use opencl3::kernel::Kernel;
use opencl3::program::Program;
use opencl3::types::cl_mem;
use parking_lot::Mutex;

use crate::error::{Backend, Error, Result};
use crate::scalar::{CType, Scalar};
use crate::signature::{self, ArgKind, Param, Signature};

use super::context::{ClContext, ClQueue};

/// An OpenCL C program built for a context's device. Building is cached per context by
/// source and options.
#[derive(Debug, Clone)]
pub struct ClProgram {
    program: Arc<Program>,
    kernels: Arc<Vec<Signature>>,
    context: ClContext,
}

impl ClProgram {
    /// Builds `source` with build `options` (`"-cl-fast-relaxed-math"`, or `""`).
    ///
    /// # Errors
    /// [`Error::Compile`] with the build log; [`Error::Invalid`] for a NUL byte in the
    /// source or options; [`Error::Driver`].
    pub fn build(context: &ClContext, source: &str, options: &str) -> Result<ClProgram> {
        if source.contains('\0') || options.contains('\0') {
            return Err(Error::Invalid(
                "OpenCL source and build options cannot contain a NUL byte".into(),
            ));
        }
        let key = (source.to_string(), options.to_string());
        let cached = context.inner.programs.lock().get(&key).cloned();
        let program = match cached {
            Some(program) => program,
            None => {
                let program = Arc::new(build(context, source, options)?);
                context.inner.programs.lock().insert(key, program.clone());
                program
            }
        };
        Ok(ClProgram {
            program,
            kernels: Arc::new(signature::kernels_in(source)),
            context: context.clone(),
        })
    }

    /// The kernel `name` (`program.name` in PyOpenCL).
    ///
    /// # Errors
    /// [`Error::KernelNotFound`] when the program has no kernel of that name.
    pub fn kernel(&self, name: &str) -> Result<ClKernel> {
        let not_found = || Error::KernelNotFound {
            name: name.to_string(),
            found: self.kernel_names().join(", "),
        };
        if !signature::is_identifier(name) {
            return Err(not_found());
        }
        let kernel = Kernel::create(&self.program, name).map_err(|_| not_found())?;
        let params = match self.kernels.iter().find(|k| k.name == name) {
            Some(signature) => signature.params.clone(),
            None => Err("braid found no `__kernel` declaration of it in the source".into()),
        };
        Ok(ClKernel {
            kernel: Arc::new(Mutex::new(kernel)),
            name: name.into(),
            params: Arc::new(params),
            context: self.context.clone(),
        })
    }

    /// The names of the kernels the source declares.
    pub fn kernel_names(&self) -> Vec<&str> {
        self.kernels.iter().map(|k| k.name.as_str()).collect()
    }
}

fn build(context: &ClContext, source: &str, options: &str) -> Result<Program> {
    let ctx = &context.inner.context;
    let mut program = Program::create_from_source(ctx, source)
        .map_err(|e| Error::opencl("program creation", e))?;
    let started = std::time::Instant::now();
    match program.build(ctx.devices(), options) {
        Ok(()) => {
            tracing::debug!(elapsed = ?started.elapsed(), "built an OpenCL program");
            Ok(program)
        }
        Err(e) if e.0 == CL_BUILD_PROGRAM_FAILURE => {
            let log = program
                .get_build_log(context.inner.device.device.id())
                .unwrap_or_else(|e| format!("(the build log could not be read: {e})"));
            Err(Error::Compile {
                backend: Backend::OpenCl,
                log: log.trim_end().to_string(),
            })
        }
        Err(e) => Err(Error::opencl("program build", e)),
    }
}

/// A kernel argument as it goes to `clSetKernelArg`.
#[derive(Debug, Clone)]
pub enum ClSlot {
    /// A buffer, with what braid knows of it.
    Buffer {
        mem: cl_mem,
        ty: CType,
        len: usize,
        context: usize,
    },
    /// Local memory of this many bytes.
    Local {
        bytes: usize,
    },
    F32(f32),
    F64(f64),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
}

impl ClSlot {
    pub(crate) fn kind(&self) -> ArgKind {
        match self {
            ClSlot::Buffer { ty, .. } => ArgKind::Array(ty.clone()),
            ClSlot::Local { .. } => ArgKind::Local,
            ClSlot::F32(_) => ArgKind::Value(CType::F32),
            ClSlot::F64(_) => ArgKind::Value(CType::F64),
            ClSlot::I32(_) => ArgKind::Value(CType::I32),
            ClSlot::U32(_) => ArgKind::Value(CType::U32),
            ClSlot::I64(_) => ArgKind::Value(CType::I64),
            ClSlot::U64(_) => ArgKind::Value(CType::U64),
        }
    }
}

pub(crate) mod sealed {
    /// Turns an argument into what OpenCL is given.
    pub trait Sealed {
        /// OpenCL's view of the argument.
        fn slot(&self) -> super::ClSlot;
    }
}

/// Something an OpenCL kernel can be given: a [`ClBuffer`](crate::ClBuffer) (by `&` or
/// `&mut`) for a `__global` pointer, [`ClLocal`] for a `__local` pointer, or a scalar for
/// a value parameter. Sealed.
pub trait ClArg: sealed::Sealed {}

macro_rules! value_arg {
    ($($t:ty => $slot:ident),*) => {$(
        impl sealed::Sealed for $t {
            fn slot(&self) -> ClSlot {
                ClSlot::$slot(*self)
            }
        }
        impl ClArg for $t {}
    )*};
}

value_arg!(f32 => F32, f64 => F64, i32 => I32, u32 => U32, i64 => I64, u64 => U64);

/// Local (work-group shared) memory for `len` elements of `T`: PyOpenCL's
/// `cl.LocalMemory(nbytes)`.
#[derive(Debug, Clone, Copy)]
pub struct ClLocal<T: Scalar> {
    len: usize,
    element: PhantomData<fn() -> T>,
}

impl<T: Scalar> ClLocal<T> {
    /// Room for `len` elements per work-group.
    pub fn new(len: usize) -> ClLocal<T> {
        ClLocal {
            len,
            element: PhantomData,
        }
    }
}

impl<T: Scalar> sealed::Sealed for ClLocal<T> {
    fn slot(&self) -> ClSlot {
        ClSlot::Local {
            bytes: self.len.max(1) * std::mem::size_of::<T>(),
        }
    }
}

impl<T: Scalar> ClArg for ClLocal<T> {}

/// One kernel of a [`ClProgram`]. Cheap to clone; launches of clones are serialised, since
/// OpenCL kernel arguments are per kernel object.
#[derive(Debug, Clone)]
pub struct ClKernel {
    kernel: Arc<Mutex<Kernel>>,
    name: Arc<str>,
    params: Arc<Result<Vec<Param>, String>>,
    context: ClContext,
}

impl ClKernel {
    /// The kernel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts a launch over `global` work-items (one to three dimensions) on `queue`.
    pub fn launch<'a>(&'a self, queue: &'a ClQueue, global: &[usize]) -> ClLaunch<'a> {
        ClLaunch {
            kernel: self,
            queue,
            global: global.to_vec(),
            local: None,
            slots: Vec::new(),
            borrows: PhantomData,
        }
    }

    /// The largest work-group this kernel can run with on the context's device.
    ///
    /// # Errors
    /// [`Error::Driver`].
    pub fn max_work_group_size(&self) -> Result<usize> {
        self.kernel
            .lock()
            .get_work_group_size(self.context.inner.device.device.id())
            .map_err(|e| Error::opencl("kernel query", e))
    }
}

/// A finished or running kernel: waits for it and reads its device time.
#[derive(Debug)]
pub struct ClEvent {
    event: Event,
}

impl ClEvent {
    /// Waits until the kernel has run.
    ///
    /// # Errors
    /// [`Error::Driver`], including the kernel's own failure.
    pub fn wait(&self) -> Result<()> {
        self.event
            .wait()
            .map_err(|e| Error::opencl("event wait", e))
    }

    /// How long the kernel ran on the device (waits for it first).
    ///
    /// # Errors
    /// [`Error::Driver`] when the queue has no profiling.
    pub fn duration(&self) -> Result<Duration> {
        self.wait()?;
        let start = self
            .event
            .profiling_command_start()
            .map_err(|e| Error::opencl("event profiling", e))?;
        let end = self
            .event
            .profiling_command_end()
            .map_err(|e| Error::opencl("event profiling", e))?;
        Ok(Duration::from_nanos(end.saturating_sub(start)))
    }
}

/// A kernel launch being put together (PyOpenCL's `kernel(queue, global, local, *args)`).
#[derive(Debug)]
#[must_use = "a launch does nothing until `run` is called"]
pub struct ClLaunch<'a> {
    kernel: &'a ClKernel,
    queue: &'a ClQueue,
    global: Vec<usize>,
    local: Option<Vec<usize>>,
    pub(crate) slots: Vec<ClSlot>,
    borrows: PhantomData<&'a ()>,
}

impl<'a> ClLaunch<'a> {
    /// Sets the work-group size (as many dimensions as the global size); by default the
    /// platform chooses.
    pub fn local(mut self, local: &[usize]) -> Self {
        self.local = Some(local.to_vec());
        self
    }

    /// Appends the next argument.
    pub fn arg<A: ClArg + 'a>(mut self, arg: A) -> Self {
        self.slots.push(arg.slot());
        self
    }

    /// Checks the arguments against the kernel's declaration and the sizes, then queues the
    /// kernel; returns its event.
    ///
    /// # Errors
    /// [`Error::Arguments`] for an argument that does not fit, or one from another
    /// context; [`Error::Invalid`] for empty or mismatched sizes; [`Error::Driver`] (an
    /// invalid work-group size, say).
    pub fn run(self) -> Result<ClEvent> {
        let kernel = self.kernel;
        let arguments = |message: String| Error::Arguments {
            kernel: kernel.name.to_string(),
            message,
        };
        let params = kernel.params.as_ref().as_ref().map_err(|why| {
            arguments(format!(
                "braid cannot read its parameters ({why}); write its declaration plainly"
            ))
        })?;
        let kinds: Vec<ArgKind> = self.slots.iter().map(ClSlot::kind).collect();
        signature::check(params, &kinds).map_err(arguments)?;
        if self.queue.context != kernel.context {
            return Err(arguments("the queue belongs to another context".into()));
        }
        let own = Arc::as_ptr(&kernel.context.inner) as usize;
        for (index, slot) in self.slots.iter().enumerate() {
            if let ClSlot::Buffer { context, .. } = slot
                && *context != own
            {
                return Err(arguments(format!(
                    "argument {index} is a buffer of another context"
                )));
            }
        }
        if self.global.is_empty() || self.global.len() > 3 || self.global.contains(&0) {
            return Err(Error::Invalid(format!(
                "global size {:?}: one to three non-zero dimensions",
                self.global
            )));
        }
        if let Some(local) = &self.local
            && (local.len() != self.global.len() || local.contains(&0))
        {
            return Err(Error::Invalid(format!(
                "local size {local:?} for global size {:?}",
                self.global
            )));
        }
        // SAFETY: the arguments match the kernel's declared parameters in number and type
        // (checked above), every buffer belongs to this context and is borrowed for `'a`
        // (OpenCL keeps a released buffer alive until the commands using it finish).
        unsafe { self.queue_unchecked() }
    }

    /// # Safety
    /// The slots must fit the kernel's parameters.
    pub(crate) unsafe fn queue_unchecked(self) -> Result<ClEvent> {
        let kernel = self.kernel.kernel.lock();
        for (index, slot) in self.slots.iter().enumerate() {
            let index = index as u32;
            // SAFETY: each value has the size and kind of its parameter (guaranteed by the
            // caller); OpenCL copies the value during the call.
            let set = unsafe {
                match slot {
                    ClSlot::Buffer { mem, .. } => kernel.set_arg(index, mem),
                    ClSlot::Local { bytes } => kernel.set_arg_local_buffer(index, *bytes),
                    ClSlot::F32(v) => kernel.set_arg(index, v),
                    ClSlot::F64(v) => kernel.set_arg(index, v),
                    ClSlot::I32(v) => kernel.set_arg(index, v),
                    ClSlot::U32(v) => kernel.set_arg(index, v),
                    ClSlot::I64(v) => kernel.set_arg(index, v),
                    ClSlot::U64(v) => kernel.set_arg(index, v),
                }
            };
            set.map_err(|e| Error::opencl("setting a kernel argument", e))?;
        }
        let local_ptr = self.local.as_ref().map_or(ptr::null(), |l| l.as_ptr());
        // SAFETY: the sizes have `global.len()` dimensions (1..=3) and point into vectors
        // that outlive the call; all arguments are set above.
        let event = unsafe {
            self.queue.queue.enqueue_nd_range_kernel(
                kernel.get(),
                self.global.len() as u32,
                ptr::null(),
                self.global.as_ptr(),
                local_ptr,
                &[],
            )
        }
        .map_err(|e| Error::opencl("kernel launch", e))?;
        Ok(ClEvent { event })
    }
}
