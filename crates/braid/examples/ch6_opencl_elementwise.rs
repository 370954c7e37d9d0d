//! Book recipe (ch. 6): "Evaluating element-wise expressions with PyOpenCL": the sum of
//! two random vectors as an ElementwiseKernel.
//!
//! Python (PyOpenCL):
//! ```python
//! context = cl.create_some_context(); queue = cl.CommandQueue(context)
//! a = cl_array.to_device(queue, numpy.random.rand(100000).astype(numpy.float32))
//! b = cl_array.to_device(queue, numpy.random.rand(100000).astype(numpy.float32))
//! c = cl_array.empty_like(a)
//! elementwise_sum = ElementwiseKernel(context, "float *a, float *b, float *c",
//!                                     "c[i] = a[i] + b[i]", "sum")
//! elementwise_sum(a, b, c)
//! ```
//!
//! braid generates the same kernel in OpenCL C (pointers become `__global`), with the
//! same API as the CUDA `ElementwiseKernel`.
//!
//! Run: `cargo run --example ch6_opencl_elementwise`

use braid::gpu::{ClBuffer, ClContext, ClElementwiseKernel, ClQueue};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let context = match ClContext::first() {
        Ok(context) => context,
        Err(e) if e.is_unavailable() => {
            println!("{e}; nothing to run");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let queue = ClQueue::new(&context)?;
    println!("device: {}", context.device().name()?);

    let mut seed = 42u64;
    let mut rand = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 40) as f32 / (1u64 << 24) as f32
    };
    let n = 100_000;
    let a: Vec<f32> = (0..n).map(|_| rand()).collect();
    let b: Vec<f32> = (0..n).map(|_| rand()).collect();
    let a_dev = ClBuffer::from_slice(&queue, &a)?;
    let b_dev = ClBuffer::from_slice(&queue, &b)?;
    let mut c_dev = ClBuffer::<f32>::zeros(&queue, n)?;

    let elementwise_sum = ClElementwiseKernel::new(
        &context,
        "float *a, float *b, float *c",
        "c[i] = a[i] + b[i]",
        "sum",
    )?;
    elementwise_sum
        .launch(&queue)
        .arg(&a_dev)
        .arg(&b_dev)
        .arg(&mut c_dev)
        .run()?;
    let c = c_dev.to_vec()?;
    println!("a[..3] = {:?}", &a[..3]);
    println!("b[..3] = {:?}", &b[..3]);
    println!("c[..3] = {:?}", &c[..3]);
    if let Some(i) = (0..n).find(|&i| c[i] != a[i] + b[i]) {
        return Err(format!("c[{i}] is wrong").into());
    }
    println!("all {n} element-wise sums match the CPU");
    Ok(())
}
