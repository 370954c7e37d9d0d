//! Book recipe (ch. 6): "Kernel invocations with GPUArray": arrays that live on the GPU
//! and whose arithmetic runs there, without writing a kernel.
//!
//! Python (PyCUDA):
//! ```python
//! a_gpu = gpuarray.to_gpu(numpy.random.randn(4, 4).astype(numpy.float32))
//! a_doubled = (2 * a_gpu).get()
//! print(a_doubled); print(a_gpu)
//! ```
//!
//! `DeviceArray` is braid's `GPUArray`: operators run built-in kernels on the device and
//! return a `Result` (a device can fail), `sum`, `dot`, `max` and `min` are two-stage
//! reductions, and `to_vec` is `get()`.
//!
//! Run: `cargo run --example ch6_gpuarray`

use braid::gpu::{Device, DeviceArray, ElementwiseKernel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let device = match Device::first() {
        Ok(device) => device,
        Err(e) if e.is_unavailable() => {
            println!("{e}; GPUArray arithmetic needs one");
            // The arithmetic is built-in element-wise code; check that such code compiles.
            let source = ElementwiseKernel::generate_source(
                "float *z, const float *x",
                "z[i] = 2 * x[i]",
                "twice",
                "",
            )?;
            match braid::gpu::SourceModule::compile_only(&source) {
                Ok(ptx) => println!(
                    "an element-wise kernel still compiles: {} bytes of PTX",
                    ptx.len()
                ),
                Err(e) if e.is_unavailable() => println!("NVRTC is not installed either: {e}"),
                Err(e) => return Err(e.into()),
            }
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    println!("device: {}", device.name());

    let a: Vec<f32> = (0..16).map(|i| (i as f32 - 7.5) / 3.0).collect();
    let a_gpu = DeviceArray::from_matrix(&device, 4, 4, &a)?;
    let a_doubled = (2.0 * &a_gpu)?.to_vec()?;
    println!("a_gpu (shape {:?}):", a_gpu.shape());
    for row in a.chunks(4) {
        println!("  {row:?}");
    }
    println!("(2 * a_gpu).get():");
    for row in a_doubled.chunks(4) {
        println!("  {row:?}");
    }
    if a_doubled.iter().zip(&a).any(|(d, x)| *d != 2.0 * x) {
        return Err("2 * a_gpu is wrong".into());
    }

    // More GPUArray operations: arange, element-wise arithmetic, reductions.
    let x = DeviceArray::arange(&device, 0.0f64, 1000.0, 1.0)?;
    let y = ((&x * 0.5)? + 1.0)?;
    let sum = y.sum()?;
    let dot = x.dot(&y)?;
    let (lo, hi) = (y.min()?, y.max()?);
    println!("y = 0.5 * arange(1000) + 1: sum {sum}, x . y {dot}, min {lo}, max {hi}");
    let want_sum: f64 = (0..1000).map(|i| 0.5 * i as f64 + 1.0).sum();
    let want_dot: f64 = (0..1000).map(|i| i as f64 * (0.5 * i as f64 + 1.0)).sum();
    if sum != want_sum || dot != want_dot || lo != 1.0 || hi != 500.5 {
        return Err(format!("reductions wrong: want sum {want_sum}, dot {want_dot}").into());
    }
    println!("every GPUArray result matches the CPU");
    Ok(())
}
