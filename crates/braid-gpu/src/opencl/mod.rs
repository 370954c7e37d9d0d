//! The OpenCL backend: opencl3 with libOpenCL loaded at run time.

mod buffer;
mod context;
mod elementwise;
mod platform;
mod program;
mod reduction;

pub use buffer::ClBuffer;
pub use context::{ClContext, ClQueue};
pub use elementwise::{ClElementwiseKernel, ClElementwiseLaunch};
pub use platform::{ClDevice, ClDeviceType, ClPlatform};
pub use program::{ClArg, ClEvent, ClKernel, ClLaunch, ClLocal, ClProgram};
pub use reduction::{ClReductionKernel, ClReductionLaunch};
