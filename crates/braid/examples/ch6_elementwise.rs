//! Book recipe (ch. 6): "Evaluating element-wise expressions with PyCUDA": a linear
//! combination of two random vectors written as one C statement.
//!
//! Python (PyCUDA):
//! ```python
//! lin_comb = ElementwiseKernel(
//!     "float a, float *x, float b, float *y, float *c",
//!     "c[i] = a*x[i] + b*y[i]")
//! x = curandom.rand((50,)); y = curandom.rand((50,))
//! c = gpuarray.empty_like(x)
//! lin_comb(5, x, 6, y, c)
//! assert la.norm((c - (5*x + 6*y)).get()) < 1e-5
//! ```
//!
//! braid generates the same kernel (a grid-stride loop over `i`), compiles it with NVRTC
//! and checks each argument of a call against the argument list.
//!
//! Run: `cargo run --example ch6_elementwise`

use braid::gpu::{Device, DeviceArray, ElementwiseKernel, SourceModule};

const ARGUMENTS: &str = "float a, float *x, float b, float *y, float *c";
const OPERATION: &str = "c[i] = a*x[i] + b*y[i]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let device = match Device::first() {
        Ok(device) => device,
        Err(e) if e.is_unavailable() => {
            println!("{e}; nothing runs on a GPU here");
            let source = ElementwiseKernel::generate_source(ARGUMENTS, OPERATION, "lin_comb", "")?;
            println!("the generated kernel:\n{source}");
            match SourceModule::compile_only(&source) {
                Ok(ptx) => println!("it compiles: NVRTC made {} bytes of PTX", ptx.len()),
                Err(e) if e.is_unavailable() => println!("NVRTC is not installed either: {e}"),
                Err(e) => return Err(e.into()),
            }
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let lin_comb = ElementwiseKernel::new(&device, ARGUMENTS, OPERATION, "lin_comb")?;

    // Uniform [0, 1) inputs, as curandom.rand gives.
    let mut seed = 7u64;
    let mut rand = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 40) as f32 / (1u64 << 24) as f32
    };
    let n = 50;
    let x: Vec<f32> = (0..n).map(|_| rand()).collect();
    let y: Vec<f32> = (0..n).map(|_| rand()).collect();
    let x_gpu = DeviceArray::from_slice(&device, &x)?;
    let y_gpu = DeviceArray::from_slice(&device, &y)?;
    let mut c_gpu = DeviceArray::<f32>::zeros(&device, n)?;
    lin_comb
        .launch()
        .arg(5.0f32)
        .arg(&x_gpu)
        .arg(6.0f32)
        .arg(&y_gpu)
        .arg(&mut c_gpu)
        .run()?;
    let c = c_gpu.to_vec()?;
    let norm = c
        .iter()
        .zip(x.iter().zip(&y))
        .map(|(c, (x, y))| f64::from(c - (5.0 * x + 6.0 * y)).powi(2))
        .sum::<f64>()
        .sqrt();
    println!("c[..5] = {:?}", &c[..5]);
    println!("|c - (5x + 6y)| = {norm:.3e}");
    if norm >= 1e-5 {
        return Err(format!("the element-wise kernel is off by {norm}").into());
    }
    println!("the element-wise kernel matches the CPU");
    Ok(())
}
