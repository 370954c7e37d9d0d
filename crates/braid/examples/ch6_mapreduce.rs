//! Book recipe (ch. 6): "The MapReduce operation with PyCUDA": a dot product as a
//! reduction kernel, mapping `x[i]*y[i]` and reducing with `a+b`.
//!
//! Python (PyCUDA):
//! ```python
//! vector_length = 400
//! input_vector_a = gpuarray.arange(vector_length, dtype=numpy.int32)
//! input_vector_b = gpuarray.arange(vector_length, dtype=numpy.int32)
//! dot_product = ReductionKernel(numpy.int32, neutral="0", reduce_expr="a+b",
//!                               map_expr="x[i]*y[i]", arguments="int *x, int *y")
//! print(dot_product(input_vector_a, input_vector_b).get())
//! ```
//!
//! braid's `ReductionKernel` runs in two stages: blocks that fill the device each fold a
//! strided share of the map into one partial value in shared memory, then one block folds
//! the partials. The example also finds a maximum over a million floats the same way.
//!
//! Run: `cargo run --example ch6_mapreduce`

use braid::gpu::{Device, DeviceArray, ReductionKernel, SourceModule};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let device = match Device::first() {
        Ok(device) => device,
        Err(e) if e.is_unavailable() => {
            println!("{e}; nothing runs on a GPU here");
            let source = ReductionKernel::<i32>::generate_source(
                "0",
                "a+b",
                "x[i]*y[i]",
                "int *x, int *y",
                "dot_product",
                "",
            )?;
            match SourceModule::compile_only(&source) {
                Ok(ptx) => println!(
                    "the two-stage dot_product reduction still compiles: {} bytes of PTX",
                    ptx.len()
                ),
                Err(e) if e.is_unavailable() => println!("NVRTC is not installed either: {e}"),
                Err(e) => return Err(e.into()),
            }
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };

    let vector_length = 400;
    let a = DeviceArray::arange(&device, 0i32, vector_length, 1)?;
    let b = DeviceArray::arange(&device, 0i32, vector_length, 1)?;
    let dot_product =
        ReductionKernel::<i32>::new(&device, "0", "a+b", "x[i]*y[i]", "int *x, int *y")?;
    let got = dot_product.launch().arg(&a).arg(&b).run()?;
    let want: i32 = (0..vector_length).map(|i| i * i).sum();
    println!("dot product of arange({vector_length}) with itself: {got} (CPU: {want})");
    if got != want {
        return Err("the reduction is wrong".into());
    }

    // The same machinery for a maximum over a million values.
    let n = 1_000_000;
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1_000_003) as f32 * 1e-3)
        .collect();
    let x = DeviceArray::from_slice(&device, &values)?;
    let max = ReductionKernel::<f32>::new(
        &device,
        "-1.0f/0.0f",
        "fmaxf(a, b)",
        "x[i]",
        "const float *x",
    )?;
    let got = max.launch().arg(&x).run()?;
    let want = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    println!("max over {n} values: {got} (CPU: {want})");
    if got != want {
        return Err("the max reduction is wrong".into());
    }
    Ok(())
}
