//! The GPU recipe: an element-wise SAXPY and a dot-product reduction, on the first CUDA
//! device, else on OpenCL (PoCL runs it on a CPU), else a line saying neither is there.

use braid::gpu::{
    ClBuffer, ClContext, ClElementwiseKernel, ClQueue, ClReductionKernel, Device, DeviceArray,
    ElementwiseKernel, Error, ReductionKernel,
};

const N: usize = 100_000;
const ARGUMENTS: &str = "float a, const float *x, float *y";
const SAXPY: &str = "y[i] = a * x[i] + y[i]";

/// With x = 0, 1, 2, ... and y = 1, after y = 2x + y the dot product x . y is the sum of
/// 2i^2 + i (computed in f32 on the device, so the check allows its rounding).
fn expected() -> f64 {
    (0..N).map(|i| 2.0 * (i as f64).powi(2) + i as f64).sum()
}

fn check(dot: f32, backend: &str) -> Result<String, String> {
    let want = expected();
    let got = f64::from(dot);
    if (got - want).abs() > 1e-5 * want {
        return Err(format!("{backend}: x . (2x + y) = {got}, expected {want}"));
    }
    Ok(format!(
        "{backend}: y = 2x + y over {N} floats, then x . y = {got:.6e} (CPU {want:.6e})"
    ))
}

pub(super) fn run() -> Result<String, String> {
    match cuda() {
        Ok((backend, dot)) => return check(dot, &backend),
        Err(e) if e.is_unavailable() => {}
        Err(e) => return Err(format!("CUDA: {e}")),
    }
    match opencl() {
        Ok((backend, dot)) => check(dot, &backend),
        Err(e) if e.is_unavailable() => Ok(format!(
            "neither CUDA nor OpenCL is on this machine, nothing ran ({e})"
        )),
        Err(e) => Err(format!("OpenCL: {e}")),
    }
}

/// The backend's description and the dot product it computed.
fn cuda() -> Result<(String, f32), Error> {
    let device = Device::first()?;
    let saxpy = ElementwiseKernel::new(&device, ARGUMENTS, SAXPY, "tour_saxpy")?;
    let dot = ReductionKernel::<f32>::new(
        &device,
        "0",
        "a + b",
        "x[i] * y[i]",
        "const float *x, const float *y",
    )?;
    let x = DeviceArray::arange(&device, 0.0f32, N as f32, 1.0)?;
    let mut y = DeviceArray::full(&device, N, 1.0f32)?;
    saxpy.launch().arg(2.0f32).arg(&x).arg(&mut y).run()?;
    let got = dot.launch().arg(&x).arg(&y).run()?;
    Ok((format!("CUDA on {}", device.name()), got))
}

fn opencl() -> Result<(String, f32), Error> {
    let context = ClContext::first()?;
    let queue = ClQueue::new(&context)?;
    let saxpy = ClElementwiseKernel::new(&context, ARGUMENTS, SAXPY, "tour_saxpy")?;
    let dot = ClReductionKernel::<f32>::new(
        &context,
        "0",
        "a + b",
        "x[i] * y[i]",
        "const float *x, const float *y",
    )?;
    let host: Vec<f32> = (0..N).map(|i| i as f32).collect();
    let x = ClBuffer::from_slice(&queue, &host)?;
    let mut y = ClBuffer::from_slice(&queue, &vec![1.0f32; N])?;
    saxpy.launch(&queue).arg(2.0f32).arg(&x).arg(&mut y).run()?;
    let got = dot.launch(&queue).arg(&x).arg(&y).run()?;
    Ok((format!("OpenCL on {}", context.device().name()?), got))
}
