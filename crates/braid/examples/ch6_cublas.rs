//! Book recipe (ch. 6): "Using GPU-accelerated libraries with NumbaPro": BLAS on the GPU
//! through cuBLAS, checked against the CPU.
//!
//! Python (NumbaPro):
//! ```python
//! from numbapro.cudalib.cublas import Blas
//! A = numpy.random.rand(N, N); B = numpy.random.rand(N, N)
//! D = numpy.zeros_like(A)
//! blas = Blas()
//! blas.gemm('N', 'N', N, N, N, 1.0, A, B, 1.0, D)
//! ```
//!
//! braid's `Blas` works on `DeviceArray`s, with numpy's row-major matrices (braid passes
//! them to column-major cuBLAS without copying): gemm in f64 and f32, then axpy, dot and
//! nrm2 on vectors.
//!
//! Run: `cargo run --example ch6_cublas`

use braid::gpu::{Blas, Device, DeviceArray, Transpose};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let device = match Device::first() {
        Ok(device) => device,
        Err(e) if e.is_unavailable() => {
            println!("{e}; cuBLAS needs one, so nothing runs here");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let blas = match Blas::new(&device) {
        Ok(blas) => blas,
        Err(e) if e.is_unavailable() => {
            println!("device {} has no cuBLAS library here ({e})", device.name());
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    println!("cuBLAS on {}", device.name());

    // D = A B + D, f64, N = 64.
    let n = 64;
    let a: Vec<f64> = (0..n * n)
        .map(|i| ((i * 37 % 101) as f64) / 101.0)
        .collect();
    let b: Vec<f64> = (0..n * n).map(|i| ((i * 53 % 97) as f64) / 97.0).collect();
    let d: Vec<f64> = (0..n * n).map(|i| (i % 7) as f64).collect();
    let a_gpu = DeviceArray::from_matrix(&device, n, n, &a)?;
    let b_gpu = DeviceArray::from_matrix(&device, n, n, &b)?;
    let mut d_gpu = DeviceArray::from_matrix(&device, n, n, &d)?;
    blas.gemm(
        Transpose::No,
        Transpose::No,
        1.0,
        &a_gpu,
        &b_gpu,
        1.0,
        &mut d_gpu,
    )?;
    let got = d_gpu.to_vec()?;
    let mut worst = 0.0f64;
    for r in 0..n {
        for c in 0..n {
            let want = (0..n).map(|j| a[r * n + j] * b[j * n + c]).sum::<f64>() + d[r * n + c];
            worst = worst.max((got[r * n + c] - want).abs());
        }
    }
    println!("dgemm {n} x {n}: largest error against the CPU {worst:.2e}");
    if worst > 1e-10 {
        return Err("dgemm is wrong".into());
    }

    // f32: C = A^T A, a symmetric result.
    let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
    let a32_gpu = DeviceArray::from_matrix(&device, n, n, &a32)?;
    let mut c32 = DeviceArray::zeros_shaped(&device, &[n, n])?;
    blas.gemm(
        Transpose::Yes,
        Transpose::No,
        1.0f32,
        &a32_gpu,
        &a32_gpu,
        0.0,
        &mut c32,
    )?;
    let c = c32.to_vec()?;
    let symmetric = (0..n).all(|r| (0..n).all(|s| (c[r * n + s] - c[s * n + r]).abs() < 1e-4));
    println!("sgemm A^T A is symmetric: {symmetric}");
    if !symmetric {
        return Err("sgemm is wrong".into());
    }

    // Level 1: y = 2x + y, x . y, |x|.
    let x: Vec<f32> = (0..1000).map(|i| (i % 10) as f32 * 0.1).collect();
    let y: Vec<f32> = (0..1000).map(|i| 1.0 - (i % 4) as f32 * 0.25).collect();
    let x_gpu = DeviceArray::from_slice(&device, &x)?;
    let mut y_gpu = DeviceArray::from_slice(&device, &y)?;
    blas.axpy(2.0f32, &x_gpu, &mut y_gpu)?;
    let y2 = y_gpu.to_vec()?;
    let dot = blas.dot(&x_gpu, &y_gpu)?;
    let norm = blas.nrm2(&x_gpu)?;
    let want_dot: f64 = x
        .iter()
        .zip(&y)
        .map(|(p, q)| f64::from(*p) * f64::from(2.0 * p + q))
        .sum();
    let want_norm = x.iter().map(|p| f64::from(*p).powi(2)).sum::<f64>().sqrt();
    println!("axpy, dot = {dot} (CPU {want_dot:.3}), nrm2 = {norm} (CPU {want_norm:.4})");
    let axpy_right = y2
        .iter()
        .zip(x.iter().zip(&y))
        .all(|(g, (p, q))| (g - (2.0 * p + q)).abs() < 1e-6);
    if !axpy_right
        || (f64::from(dot) - want_dot).abs() > 1e-2
        || (f64::from(norm) - want_norm).abs() > 1e-4
    {
        return Err("a level-1 routine is wrong".into());
    }
    Ok(())
}
