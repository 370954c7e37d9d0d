//! The CUDA backend: cudarc with the driver, NVRTC and cuBLAS loaded at run time.

mod array;
mod blas;
mod builtins;
mod device;
mod elementwise;
mod event;
mod grid;
mod module;
mod nvrtc;
mod reduction;

#[cfg(test)]
pub(crate) mod testing;

pub use array::DeviceArray;
pub use blas::{Blas, BlasScalar, Transpose, cublas_available};
pub use device::{Device, DeviceProperties, cuda_driver_available};
pub use elementwise::{ElementwiseKernel, ElementwiseLaunch};
pub use event::Event;
pub use grid::{Dim3, Grid};
pub use module::{Kernel, KernelArg, Launch, ModuleOptions, SourceModule};
pub use nvrtc::{compile_ptx, nvrtc_available};
pub use reduction::{ReductionKernel, ReductionLaunch};

pub(crate) use builtins::CUDA_LOOP;
