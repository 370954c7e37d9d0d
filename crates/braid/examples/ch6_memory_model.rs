//! Book recipe (ch. 6): "Understanding the PyCUDA memory model with matrix manipulation":
//! host and device memory, and shared memory inside a block, through a matrix product.
//!
//! Python (PyCUDA):
//! ```python
//! kernel = SourceModule(kernel_code_template % {'MATRIX_SIZE': MATRIX_SIZE})
//! a_gpu = gpuarray.to_gpu(a_cpu); b_gpu = gpuarray.to_gpu(b_cpu)
//! c_gpu = gpuarray.empty((MATRIX_SIZE, MATRIX_SIZE), numpy.float32)
//! matrixmul = kernel.get_function("MatrixMulKernel")
//! matrixmul(a_gpu, b_gpu, c_gpu, block=(MATRIX_SIZE, MATRIX_SIZE, 1))
//! assert numpy.allclose(c_gpu.get(), numpy.dot(a_cpu, b_cpu))
//! ```
//!
//! The book's kernel takes its row and column from `threadIdx` alone and runs as a single
//! block, so it is only right while the whole matrix fits in one block. Here
//! (`ch6_kernels/matrix_tiles.cu`) each block stages 16 x 16 tiles of A and B in
//! `__shared__` memory, the indices include `blockIdx`, and every load and store is
//! bounds-checked: a 100 x 70 times 70 x 50 product (no side a multiple of 16) is right. A
//! transpose shows dynamic shared memory, sized at launch with `Grid::shared_mem`.
//!
//! Run: `cargo run --example ch6_memory_model`

use braid::gpu::{Device, DeviceArray, Error, Grid, SourceModule};

const KERNELS: &str = include_str!("ch6_kernels/matrix_tiles.cu");
const TILE: u32 = 16;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let device = match Device::first() {
        Ok(device) => device,
        Err(e) if e.is_unavailable() => return no_device(&e),
        Err(e) => return Err(e.into()),
    };
    let p = device.properties();
    println!(
        "device: {}: {} multiprocessors, {} KiB shared memory per block, {} MiB global memory",
        p.name,
        p.multiprocessors,
        p.shared_memory_per_block / 1024,
        p.total_memory >> 20
    );

    let (m, k, n) = (100usize, 70usize, 50usize);
    let a: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 4.0)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 2.0)
        .collect();

    // Host -> global memory.
    let a_gpu = DeviceArray::from_matrix(&device, m, k, &a)?;
    let b_gpu = DeviceArray::from_matrix(&device, k, n, &b)?;
    let mut c_gpu = DeviceArray::<f32>::zeros_shaped(&device, &[m, n])?;
    let module = SourceModule::new(&device, KERNELS)?;

    // One 16 x 16 block per tile of C; the tiles of A and B live in shared memory.
    let grid = Grid::tiles(n, m, (TILE, TILE));
    println!(
        "matrix_mul: {} x {} blocks of {TILE} x {TILE} threads for C = A ({m} x {k}) B ({k} x {n})",
        grid.blocks.x, grid.blocks.y
    );
    module
        .function("matrix_mul")?
        .launch(grid)
        .arg(&a_gpu)
        .arg(&b_gpu)
        .arg(&mut c_gpu)
        .arg(m as i32)
        .arg(k as i32)
        .arg(n as i32)
        .run()?;
    // Global memory -> host.
    let c = c_gpu.to_vec()?;
    let mut worst = 0.0f64;
    for r in 0..m {
        for col in 0..n {
            let want: f64 = (0..k)
                .map(|j| f64::from(a[r * k + j]) * f64::from(b[j * n + col]))
                .sum();
            worst = worst.max((f64::from(c[r * n + col]) - want).abs());
        }
    }
    println!(
        "C[0][0..4] = {:?}; largest error against the CPU: {worst:.2e}",
        &c[..4]
    );
    if worst > 1e-3 {
        return Err(format!("the tiled product is wrong by {worst}").into());
    }

    // Transpose C through a tile of dynamic shared memory: TILE x (TILE + 1) floats.
    let mut ct_gpu = DeviceArray::<f32>::zeros_shaped(&device, &[n, m])?;
    let shared = TILE * (TILE + 1) * 4;
    module
        .function("transpose")?
        .launch(Grid::tiles(n, m, (TILE, TILE)).shared_mem(shared))
        .arg(&c_gpu)
        .arg(&mut ct_gpu)
        .arg(m as i32)
        .arg(n as i32)
        .run()?;
    let ct = ct_gpu.to_vec()?;
    let transposed = (0..m).all(|r| (0..n).all(|col| ct[col * m + r] == c[r * n + col]));
    println!(
        "transpose through {shared} bytes of dynamic shared memory: {}",
        if transposed { "right" } else { "WRONG" }
    );
    if !transposed {
        return Err("the transpose is wrong".into());
    }
    Ok(())
}

fn no_device(e: &Error) -> Result<(), Box<dyn std::error::Error>> {
    println!("{e}; nothing runs on a GPU here");
    match SourceModule::compile_only(KERNELS) {
        Ok(ptx) => println!(
            "matrix_mul and transpose still compile: NVRTC made {} bytes of PTX",
            ptx.len()
        ),
        Err(e) if e.is_unavailable() => println!("NVRTC is not installed either: {e}"),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
