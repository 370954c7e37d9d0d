//! The one error type of braid-gpu.

/// Which GPU programming interface an error or a device belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// NVIDIA CUDA, through the driver API (libcuda), NVRTC and cuBLAS.
    Cuda,
    /// OpenCL, through the ICD loader (libOpenCL) and a platform such as PoCL.
    OpenCl,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Cuda => "CUDA",
            Backend::OpenCl => "OpenCL",
        })
    }
}

/// Why a GPU operation failed. Nothing in braid-gpu panics on a missing driver, library or
/// device: every entry point returns one of these instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No usable device: no driver, no device, or no OpenCL platform. The text says which.
    #[error("no {backend} device: {reason}")]
    NoDevice {
        /// The interface that was asked for.
        backend: Backend,
        /// Why there is none ("libcuda.so not found", "the driver reports 0 devices").
        reason: String,
    },
    /// A shared library braid loads at run time is not installed or not on the search path.
    #[error("{library} not found: {hint}")]
    LibraryMissing {
        /// The library ("NVRTC (libnvrtc.so)").
        library: &'static str,
        /// How to install it or make it found.
        hint: &'static str,
    },
    /// A kernel's source did not compile; `log` is the compiler's message.
    #[error("{backend} kernel source did not compile:\n{log}")]
    Compile {
        /// The compiler's interface.
        backend: Backend,
        /// The compiler's log (errors with line numbers).
        log: String,
    },
    /// The driver, runtime library or OpenCL platform refused an operation.
    #[error("{backend} {operation} failed: {message}")]
    Driver {
        /// The interface.
        backend: Backend,
        /// What braid was doing ("launch", "copy to the host", "cublasSgemm").
        operation: &'static str,
        /// The driver's error, e.g. `CUDA_ERROR_OUT_OF_MEMORY` or `CL_INVALID_WORK_GROUP_SIZE`.
        message: String,
    },
    /// A module or program has no kernel of that name.
    #[error("no kernel named `{name}` in the module (kernels found: {found})")]
    KernelNotFound {
        /// The name asked for.
        name: String,
        /// The `__global__`/`__kernel` functions the source declares, comma-separated.
        found: String,
    },
    /// The arguments given to a kernel do not match its parameters.
    #[error("kernel `{kernel}`: {message}")]
    Arguments {
        /// The kernel.
        kernel: String,
        /// What does not match ("parameter 1 `float k` wants a value of type f32, got a
        /// value of type f64").
        message: String,
    },
    /// Shapes or lengths that must agree do not.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// An argument is out of its valid range (a zero block, an empty argument list, a
    /// malformed expression).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl Error {
    /// True for [`Error::NoDevice`] and [`Error::LibraryMissing`]: the machine lacks what
    /// the call needs, as opposed to a wrong program.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::NoDevice { .. } | Error::LibraryMissing { .. })
    }

    pub(crate) fn cuda(operation: &'static str, error: impl std::fmt::Display) -> Error {
        Error::Driver {
            backend: Backend::Cuda,
            operation,
            message: error.to_string(),
        }
    }

    pub(crate) fn opencl(operation: &'static str, error: impl std::fmt::Display) -> Error {
        Error::Driver {
            backend: Backend::OpenCl,
            operation,
            message: error.to_string(),
        }
    }
}

/// `Result` with braid-gpu's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
