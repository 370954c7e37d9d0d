//! The public handles can move between threads and be shared, checked at compile time.

use braid_gpu::*;

fn send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Device>();
    send_sync::<DeviceArray<f32>>();
    send_sync::<SourceModule>();
    send_sync::<Kernel>();
    send_sync::<ElementwiseKernel>();
    send_sync::<ReductionKernel<f64>>();
    send_sync::<Blas>();
    send_sync::<Event>();
    send_sync::<Error>();
    send_sync::<ClPlatform>();
    send_sync::<ClDevice>();
    send_sync::<ClContext>();
    send_sync::<ClQueue>();
    send_sync::<ClBuffer<i32>>();
    send_sync::<ClProgram>();
    send_sync::<ClKernel>();
    send_sync::<ClElementwiseKernel>();
    send_sync::<ClReductionKernel<f32>>();
    send_sync::<ClEvent>();
}
