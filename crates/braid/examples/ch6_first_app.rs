//! Book recipe (ch. 6): "Building a PyCUDA application": a kernel written in CUDA C,
//! compiled at run time, doubles a 4 x 4 matrix copied to the GPU and back.
//!
//! Python (PyCUDA):
//! ```python
//! mod = SourceModule("""
//!   __global__ void double_matrix(float *a) {
//!     int idx = threadIdx.x + threadIdx.y * 4;
//!     a[idx] *= 2; }""")
//! a = numpy.random.randn(4, 4).astype(numpy.float32)
//! a_gpu = cuda.mem_alloc(a.nbytes)
//! cuda.memcpy_htod(a_gpu, a)
//! mod.get_function("double_matrix")(a_gpu, block=(4, 4, 1))
//! a_doubled = numpy.empty_like(a)
//! cuda.memcpy_dtoh(a_doubled, a_gpu)
//! ```
//!
//! braid compiles the same source with NVRTC (cached), checks the launch's arguments
//! against the kernel's parameters, and copies with `DeviceArray`. Without a GPU it says
//! so, compiles the kernel to PTX when NVRTC is installed, and exits 0.
//!
//! Run: `cargo run --example ch6_first_app`

use braid::gpu::{Device, DeviceArray, Error, Grid, SourceModule};

const KERNEL: &str = include_str!("ch6_kernels/double_matrix.cu");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let device = match Device::first() {
        Ok(device) => device,
        Err(e) if e.is_unavailable() => return no_device(&e),
        Err(e) => return Err(e.into()),
    };
    let (major, minor) = device.compute_capability();
    println!(
        "device: {} (compute capability {major}.{minor})",
        device.name()
    );

    // A fixed pseudo-random matrix (numpy.random.randn stands in for it in the book).
    let mut seed = 12345u32;
    let a: Vec<f32> = (0..16)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 23) as f32 - 1.0
        })
        .collect();
    let mut a_gpu = DeviceArray::from_matrix(&device, 4, 4, &a)?;
    let module = SourceModule::new(&device, KERNEL)?;
    module
        .function("double_matrix")?
        .launch(Grid::new(1, (4, 4)))
        .arg(&mut a_gpu)
        .run()?;
    let doubled = a_gpu.to_vec()?;

    print_matrix("original matrix", &a);
    print_matrix("doubled matrix after the PyCUDA-style kernel", &doubled);
    if let Some(i) = (0..16).find(|&i| doubled[i] != 2.0 * a[i]) {
        return Err(format!("element {i}: {} is not 2 x {}", doubled[i], a[i]).into());
    }
    println!("every element doubled: right");
    Ok(())
}

fn print_matrix(title: &str, m: &[f32]) {
    println!("{title}:");
    for row in m.chunks(4) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:9.5}")).collect();
        println!("  [{}]", cells.join(" "));
    }
}

fn no_device(e: &Error) -> Result<(), Box<dyn std::error::Error>> {
    println!("{e}; nothing runs on a GPU here");
    match SourceModule::compile_only(KERNEL) {
        Ok(ptx) => println!(
            "the double_matrix kernel still compiles: NVRTC made {} bytes of PTX",
            ptx.len()
        ),
        Err(e) if e.is_unavailable() => println!("NVRTC is not installed either: {e}"),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
