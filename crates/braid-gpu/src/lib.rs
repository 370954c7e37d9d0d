//! GPU programming for braid, answering PyCUDA, NumbaPro's cuBLAS and PyOpenCL.
//!
//! Two backends, each loaded at run time so that braid builds and runs on machines without
//! them:
//!
//! - **CUDA** (through `cudarc`): [`Device`], [`DeviceArray`] (PyCUDA's `GPUArray`),
//!   [`SourceModule`] kernels compiled from CUDA C by NVRTC and cached, launched on a
//!   [`Grid`]; [`ElementwiseKernel`] and [`ReductionKernel`] generated from expressions;
//!   [`Blas`] (cuBLAS gemm, axpy, dot, nrm2, ...) on device arrays.
//! - **OpenCL** (through `opencl3`): [`ClPlatform`], [`ClDevice`], [`ClContext`],
//!   [`ClQueue`], [`ClBuffer`], [`ClProgram`] and [`ClKernel`], and the same element-wise
//!   and reduction kernels as [`ClElementwiseKernel`] and [`ClReductionKernel`]. PoCL runs
//!   them on a CPU.
//!
//! Without a driver, a library or a device, every entry point returns an [`Error`] for
//! which [`Error::is_unavailable`] is true ([`Error::NoDevice`], [`Error::LibraryMissing`]);
//! nothing panics. Kernel launches check their arguments against the parameters the
//! kernel's source declares, so a wrong argument is an [`Error::Arguments`], not a fault.
//!
//! ```
//! use braid_gpu::{Device, DeviceArray, ElementwiseKernel, Error};
//!
//! fn double_on_gpu(data: &[f32]) -> braid_gpu::Result<Vec<f32>> {
//!     let device = Device::first()?;
//!     let twice = ElementwiseKernel::new(&device, "float *x", "x[i] = 2.0f * x[i]", "twice")?;
//!     let mut x = DeviceArray::from_slice(&device, data)?;
//!     twice.launch().arg(&mut x).run()?;
//!     x.to_vec()
//! }
//!
//! match double_on_gpu(&[1.0, 2.0, 3.0]) {
//!     Ok(doubled) => assert_eq!(doubled, [2.0, 4.0, 6.0]),
//!     Err(e) if e.is_unavailable() => println!("no GPU: {e}"),
//!     Err(e) => panic!("{e}"),
//! }
//! ```

mod codegen;
mod cuda;
mod error;
mod opencl;
mod scalar;
mod signature;

pub use cuda::{
    Blas, BlasScalar, Device, DeviceArray, DeviceProperties, Dim3, ElementwiseKernel,
    ElementwiseLaunch, Event, Grid, Kernel, KernelArg, Launch, ModuleOptions, ReductionKernel,
    ReductionLaunch, SourceModule, Transpose, compile_ptx, cublas_available, cuda_driver_available,
    nvrtc_available,
};
pub use error::{Backend, Error, Result};
pub use opencl::{
    ClArg, ClBuffer, ClContext, ClDevice, ClDeviceType, ClElementwiseKernel, ClElementwiseLaunch,
    ClEvent, ClKernel, ClLaunch, ClLocal, ClPlatform, ClProgram, ClQueue, ClReductionKernel,
    ClReductionLaunch,
};
pub use scalar::Scalar;
