//! The CUDA path on a real device. On a machine without a GPU each test prints a note and
//! passes without running (the kernels themselves are compiled by the NVRTC tests).

mod common;

use braid_gpu::{
    Blas, DeviceArray, ElementwiseKernel, Error, Event, Grid, ReductionKernel, SourceModule,
    Transpose,
};
use common::{Rng, cuda, relative_error, skipped};

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

#[test]
fn device_properties_are_read() {
    let Some(device) = cuda("device_properties_are_read") else {
        return;
    };
    let p = device.properties();
    println!(
        "{} cc {:?}, {} SMs, {} bytes",
        p.name, p.compute_capability, p.multiprocessors, p.total_memory
    );
    assert!(!p.name.is_empty());
    assert!(p.compute_capability.0 >= 3);
    assert!(p.multiprocessors > 0 && p.max_threads_per_block >= 256);
    assert_eq!(p.warp_size, 32);
    let (free, total) = device.memory_info().unwrap();
    assert!(free <= total && total > 0);
    assert_eq!(braid_gpu::Device::first().unwrap(), device, "opened once");
    assert!(matches!(
        braid_gpu::Device::new(10_000),
        Err(Error::NoDevice { .. })
    ));
}

#[test]
fn arrays_copy_fill_arange_and_do_arithmetic() {
    let Some(device) = cuda("arrays_copy_fill_arange_and_do_arithmetic") else {
        return;
    };
    let mut rng = Rng::new(3);
    let n = 100_003;
    let (x, y) = (rng.vec_f32(n), rng.vec_f32(n));
    let a = DeviceArray::from_slice(&device, &x).unwrap();
    let b = DeviceArray::from_slice(&device, &y).unwrap();
    assert_eq!(a.to_vec().unwrap(), x);
    let check = |got: DeviceArray<f32>, f: &dyn Fn(f32, f32) -> f32| {
        let got = got.to_vec().unwrap();
        for i in 0..n {
            assert_eq!(got[i], f(x[i], y[i]), "element {i}");
        }
    };
    check((&a + &b).unwrap(), &|p, q| p + q);
    check((&a - &b).unwrap(), &|p, q| p - q);
    check((&a * &b).unwrap(), &|p, q| p * q);
    check((&a / &b).unwrap(), &|p, q| p / q);
    check((&a * 2.0).unwrap(), &|p, _| p * 2.0);
    check((2.0 * &a).unwrap(), &|p, _| 2.0 * p);
    check((1.0 - &a).unwrap(), &|p, _| 1.0 - p);
    check((&a - 1.0).unwrap(), &|p, _| p - 1.0);
    check((3.0 / &a).unwrap(), &|p, _| 3.0 / p);
    check((-&a).unwrap(), &|p, _| -p);
    let short = DeviceArray::<f32>::zeros(&device, 5).unwrap();
    assert!(matches!(&a + &short, Err(Error::Shape(_))));

    let ints = DeviceArray::arange(&device, 5i64, 50, 3).unwrap();
    assert_eq!(
        ints.to_vec().unwrap(),
        (5..50).step_by(3).collect::<Vec<i64>>()
    );
    let floats = DeviceArray::arange(&device, 0.0f64, 1.0, 0.25).unwrap();
    assert_eq!(floats.to_vec().unwrap(), [0.0, 0.25, 0.5, 0.75]);
    assert!(DeviceArray::arange(&device, 0u32, 0, 1).unwrap().is_empty());
    assert!(matches!(
        DeviceArray::arange(&device, 0i32, 5, 0),
        Err(Error::Invalid(_))
    ));

    let mut full = DeviceArray::full(&device, 1000, 7u32).unwrap();
    assert!(full.to_vec().unwrap().iter().all(|&v| v == 7));
    full.fill(9).unwrap();
    let copy = full.try_clone().unwrap();
    full.fill(1).unwrap();
    assert!(copy.to_vec().unwrap().iter().all(|&v| v == 9));
    let mut target = DeviceArray::<u32>::zeros(&device, 1000).unwrap();
    target.copy_from(&copy).unwrap();
    assert_eq!(target.to_vec().unwrap(), copy.to_vec().unwrap());
    assert!(matches!(
        target.copy_from_host(&[1, 2]),
        Err(Error::Shape(_))
    ));

    let m = DeviceArray::from_matrix(&device, 2, 3, &[1i32, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(m.shape(), [2, 3]);
    assert_eq!(m.matrix_shape().unwrap(), (2, 3));
    let m = m.reshape(&[3, 2]).unwrap();
    assert!(matches!(m.reshape(&[4, 2]), Err(Error::Shape(_))));

    let empty = DeviceArray::<f64>::from_slice(&device, &[]).unwrap();
    assert!(empty.to_vec().unwrap().is_empty());
    assert_eq!(empty.sum().unwrap(), 0.0);
    assert!((&empty + &empty).unwrap().is_empty());
    assert!(matches!(empty.max(), Err(Error::Shape(_))));
}

#[test]
fn reductions_sum_dot_max_min_at_every_size() {
    let Some(device) = cuda("reductions_sum_dot_max_min_at_every_size") else {
        return;
    };
    let mut rng = Rng::new(4);
    for n in [1usize, 2, 255, 256, 257, 1023, 1 << 20, 3_000_001] {
        let (x, y) = (rng.vec_f64(n), rng.vec_f64(n));
        let (a, b) = (
            DeviceArray::from_slice(&device, &x).unwrap(),
            DeviceArray::from_slice(&device, &y).unwrap(),
        );
        let sum: f64 = x.iter().sum();
        assert!(
            (a.sum().unwrap() - sum).abs() < 1e-9 * n as f64,
            "sum of {n}"
        );
        let dot: f64 = x.iter().zip(&y).map(|(p, q)| p * q).sum();
        assert!(
            (a.dot(&b).unwrap() - dot).abs() < 1e-9 * n as f64,
            "dot of {n}"
        );
        assert_eq!(
            a.max().unwrap(),
            x.iter().copied().fold(f64::MIN, f64::max),
            "max of {n}"
        );
        assert_eq!(
            a.min().unwrap(),
            x.iter().copied().fold(f64::MAX, f64::min),
            "min of {n}"
        );
    }
    let ints: Vec<i32> = (0..100_000).map(|i| (i % 1000) - 500).collect();
    let a = DeviceArray::from_slice(&device, &ints).unwrap();
    assert_eq!(a.sum().unwrap(), ints.iter().sum::<i32>());
    assert_eq!(a.max().unwrap(), 499);
    assert_eq!(a.min().unwrap(), -500);

    // A user reduction: the sum of squares of differences, with a preamble.
    let dist = ReductionKernel::<f32>::with_options(
        &device,
        "0",
        "a + b",
        "square(x[i] - y[i])",
        "const float *x, const float *y",
        "sqdist",
        "__device__ float square(float v) { return v * v; }",
    )
    .unwrap();
    let (x, y) = (rng.vec_f32(77_777), rng.vec_f32(77_777));
    let (a, b) = (
        DeviceArray::from_slice(&device, &x).unwrap(),
        DeviceArray::from_slice(&device, &y).unwrap(),
    );
    let want: f64 = x
        .iter()
        .zip(&y)
        .map(|(p, q)| f64::from(p - q).powi(2))
        .sum();
    let got = f64::from(dist.launch().arg(&a).arg(&b).run().unwrap());
    assert!((got - want).abs() < 1e-4 * want, "{got} vs {want}");
    let e = dist.launch().arg(&a).run().unwrap_err();
    assert!(matches!(e, Error::Arguments { .. }), "{e}");
}

#[test]
fn elementwise_kernels_check_arguments_and_match_the_cpu() {
    let Some(device) = cuda("elementwise_kernels_check_arguments_and_match_the_cpu") else {
        return;
    };
    let lin_comb = ElementwiseKernel::new(
        &device,
        "float a, const float *x, float b, const float *y, float *z",
        "z[i] = a * x[i] + b * y[i]",
        "lin_comb",
    )
    .unwrap();
    let mut rng = Rng::new(5);
    let n = 1_000_001;
    let (x, y) = (rng.vec_f32(n), rng.vec_f32(n));
    let (a, b) = (
        DeviceArray::from_slice(&device, &x).unwrap(),
        DeviceArray::from_slice(&device, &y).unwrap(),
    );
    let mut z = DeviceArray::full(&device, n, f32::NAN).unwrap();
    lin_comb
        .launch()
        .arg(2.0f32)
        .arg(&a)
        .arg(-0.5f32)
        .arg(&b)
        .arg(&mut z)
        .run()
        .unwrap();
    let got = z.to_vec().unwrap();
    let want: Vec<f64> = (0..n)
        .map(|i| 2.0 * f64::from(x[i]) - 0.5 * f64::from(y[i]))
        .collect();
    assert!(relative_error(&widen(&got), &want) < 1e-6);
    // The 64-bit grid-stride variant (used past 2^31 elements), launched by hand on a grid
    // smaller than the data so that every thread loops.
    let module = SourceModule::new(&device, lin_comb.source()).unwrap();
    let mut z64 = DeviceArray::full(&device, n, f32::NAN).unwrap();
    module
        .function("lin_comb")
        .unwrap()
        .launch(Grid::new(7, 128))
        .arg(2.0f32)
        .arg(&a)
        .arg(-0.5f32)
        .arg(&b)
        .arg(&mut z64)
        .arg(n as i64)
        .run()
        .unwrap();
    assert_eq!(z64.to_vec().unwrap(), got);

    let e = lin_comb
        .launch()
        .arg(2.0f64)
        .arg(&a)
        .arg(-0.5f32)
        .arg(&b)
        .arg(&mut z)
        .run()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "kernel `lin_comb`: parameter 0 `float a` wants a value of type f32, got a value of type f64"
    );
    let mut short = DeviceArray::<f32>::zeros(&device, 10).unwrap();
    let e = lin_comb
        .launch()
        .arg(2.0f32)
        .arg(&a)
        .arg(-0.5f32)
        .arg(&b)
        .arg(&mut short)
        .run()
        .unwrap_err();
    assert!(matches!(e, Error::Shape(_)), "{e}");
    let e =
        ElementwiseKernel::new(&device, "float *x", "x[i] = undefined_thing", "bad").unwrap_err();
    assert!(matches!(e, Error::Compile { .. }), "{e}");
    assert!(e.to_string().contains("undefined_thing"), "{e}");
}

const KERNELS: &str = r#"
__global__ void scale(float *x, float k, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= k;
}

// Block-wide sums through dynamic shared memory.
__global__ void block_sums(const float *x, float *sums, int n) {
    extern __shared__ float cache[];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    cache[threadIdx.x] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) cache[threadIdx.x] += cache[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) sums[blockIdx.x] = cache[0];
}

__global__ void empty() {}
"#;

#[test]
fn source_modules_launch_with_shared_memory_and_checked_arguments() {
    let Some(device) = cuda("source_modules_launch_with_shared_memory_and_checked_arguments")
    else {
        return;
    };
    let module = SourceModule::new(&device, KERNELS).unwrap();
    assert_eq!(module.kernel_names(), ["scale", "block_sums", "empty"]);
    assert!(module.ptx().contains(".entry scale"));
    let scale = module.function("scale").unwrap();
    assert!(scale.registers_per_thread().unwrap() > 0);
    let data: Vec<f32> = (0..5000).map(|i| i as f32).collect();
    let mut x = DeviceArray::from_slice(&device, &data).unwrap();
    scale
        .launch(Grid::linear(5000, 128))
        .arg(&mut x)
        .arg(0.5f32)
        .arg(5000i32)
        .run()
        .unwrap();
    let want: Vec<f32> = data.iter().map(|v| v * 0.5).collect();
    assert_eq!(x.to_vec().unwrap(), want);

    let sums = module.function("block_sums").unwrap();
    let blocks = 5000usize.div_ceil(256);
    let mut out = DeviceArray::<f32>::zeros(&device, blocks).unwrap();
    sums.launch(Grid::linear(5000, 256).shared_mem(256 * 4))
        .arg(&x)
        .arg(&mut out)
        .arg(5000i32)
        .run()
        .unwrap();
    let got = out.to_vec().unwrap();
    for (b, chunk) in want.chunks(256).enumerate() {
        assert_eq!(got[b], chunk.iter().sum::<f32>(), "block {b}");
    }
    // More dynamic shared memory than a block gets by default: braid raises the kernel's
    // limit first. Beyond the device's opt-in limit it is an error.
    let optin = device.properties().shared_memory_per_block_optin;
    if optin > 64 * 1024 {
        out.fill(0.0).unwrap();
        sums.launch(Grid::linear(5000, 256).shared_mem(64 * 1024))
            .arg(&x)
            .arg(&mut out)
            .arg(5000i32)
            .run()
            .unwrap();
        assert_eq!(out.to_vec().unwrap(), got);
    }
    let e = sums
        .launch(Grid::linear(5000, 256).shared_mem(optin + 1))
        .arg(&x)
        .arg(&mut out)
        .arg(5000i32)
        .run()
        .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");

    // Wrong arguments and impossible grids are errors, never a fault.
    let e = scale
        .launch(Grid::linear(10, 128))
        .arg(&mut x)
        .arg(0.5f32)
        .run()
        .unwrap_err();
    assert!(e.to_string().contains("takes 3 argument(s)"), "{e}");
    let ints = DeviceArray::<i32>::zeros(&device, 10).unwrap();
    let e = scale
        .launch(Grid::linear(10, 128))
        .arg(&ints)
        .arg(0.5f32)
        .arg(10i32)
        .run()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("wants an array of f32, got an array of i32"),
        "{e}"
    );
    let e = scale
        .launch(Grid::new(1, 4096))
        .arg(&mut x)
        .arg(0.5f32)
        .arg(10i32)
        .run()
        .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    let e = scale
        .launch(Grid::new(0, 32))
        .arg(&mut x)
        .arg(0.5f32)
        .arg(10i32)
        .run()
        .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    assert!(matches!(
        module.function("missing"),
        Err(Error::KernelNotFound { .. })
    ));

    // Events time device work.
    let empty = module.function("empty").unwrap();
    let (start, end) = (Event::new(&device).unwrap(), Event::new(&device).unwrap());
    start.record().unwrap();
    for _ in 0..100 {
        empty.launch(Grid::new(1, 32)).run().unwrap();
    }
    end.record().unwrap();
    assert!(end.elapsed_since(&start).unwrap().as_secs_f64() >= 0.0);
    device.synchronize().unwrap();
}

const TILED: &str = r#"
    #define TILE 16
    __global__ void matmul(const float *a, const float *b, float *c, int m, int k, int n) {
        __shared__ float as[TILE][TILE], bs[TILE][TILE];
        int row = blockIdx.y * TILE + threadIdx.y, col = blockIdx.x * TILE + threadIdx.x;
        float acc = 0.0f;
        for (int t = 0; t < k; t += TILE) {
            as[threadIdx.y][threadIdx.x] = (row < m && t + threadIdx.x < k) ? a[row * k + t + threadIdx.x] : 0.0f;
            bs[threadIdx.y][threadIdx.x] = (col < n && t + threadIdx.y < k) ? b[(t + threadIdx.y) * n + col] : 0.0f;
            __syncthreads();
            for (int j = 0; j < TILE; ++j) acc += as[threadIdx.y][j] * bs[j][threadIdx.x];
            __syncthreads();
        }
        if (row < m && col < n) c[row * n + col] = acc;
    }"#;

#[test]
fn tiled_matrix_multiply_in_shared_memory_is_right_for_ragged_sizes() {
    let Some(device) = cuda("tiled_matrix_multiply_in_shared_memory_is_right_for_ragged_sizes")
    else {
        return;
    };
    let (m, k, n) = (67usize, 45usize, 33usize);
    let mut rng = Rng::new(6);
    let (a, b) = (rng.vec_f32(m * k), rng.vec_f32(k * n));
    let kernel = SourceModule::new(&device, TILED)
        .unwrap()
        .function("matmul")
        .unwrap();
    let da = DeviceArray::from_matrix(&device, m, k, &a).unwrap();
    let db = DeviceArray::from_matrix(&device, k, n, &b).unwrap();
    let mut dc = DeviceArray::zeros_shaped(&device, &[m, n]).unwrap();
    kernel
        .launch(Grid::tiles(n, m, (16, 16)))
        .arg(&da)
        .arg(&db)
        .arg(&mut dc)
        .arg(m as i32)
        .arg(k as i32)
        .arg(n as i32)
        .run()
        .unwrap();
    let mut want = vec![0.0f64; m * n];
    for r in 0..m {
        for c in 0..n {
            want[r * n + c] = (0..k)
                .map(|j| f64::from(a[r * k + j]) * f64::from(b[j * n + c]))
                .sum();
        }
    }
    assert!(relative_error(&widen(&dc.to_vec().unwrap()), &want) < 1e-5);
}

#[test]
fn cublas_gemm_axpy_dot_nrm2_match_the_cpu() {
    let Some(device) = cuda("cublas_gemm_axpy_dot_nrm2_match_the_cpu") else {
        return;
    };
    let blas = match Blas::new(&device) {
        Ok(blas) => blas,
        Err(e) if e.is_unavailable() => {
            eprintln!("note: no cuBLAS here ({e})");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let mut rng = Rng::new(7);
    let (m, k, n) = (37usize, 23usize, 29usize);
    let a = rng.vec_f64(m * k);
    let b = rng.vec_f64(k * n);
    let c0 = rng.vec_f64(m * n);
    let matmul = |a: &dyn Fn(usize, usize) -> f64, b: &dyn Fn(usize, usize) -> f64| {
        let mut out = vec![0.0; m * n];
        for r in 0..m {
            for c in 0..n {
                out[r * n + c] = (0..k).map(|j| a(r, j) * b(j, c)).sum::<f64>();
            }
        }
        out
    };
    // C = 2 A B + 0.5 C
    let da = DeviceArray::from_matrix(&device, m, k, &a).unwrap();
    let db = DeviceArray::from_matrix(&device, k, n, &b).unwrap();
    let mut dc = DeviceArray::from_matrix(&device, m, n, &c0).unwrap();
    blas.gemm(Transpose::No, Transpose::No, 2.0, &da, &db, 0.5, &mut dc)
        .unwrap();
    let ab = matmul(&|r, j| a[r * k + j], &|j, c| b[j * n + c]);
    let want: Vec<f64> = ab.iter().zip(&c0).map(|(p, q)| 2.0 * p + 0.5 * q).collect();
    assert!(relative_error(&dc.to_vec().unwrap(), &want) < 1e-12);
    // Transposed operands: A stored k x m, B stored n x k.
    let at: Vec<f64> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
    let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
    let dat = DeviceArray::from_matrix(&device, k, m, &at).unwrap();
    let dbt = DeviceArray::from_matrix(&device, n, k, &bt).unwrap();
    let mut dc = DeviceArray::zeros_shaped(&device, &[m, n]).unwrap();
    blas.gemm(
        Transpose::Yes,
        Transpose::Yes,
        1.0,
        &dat,
        &dbt,
        0.0,
        &mut dc,
    )
    .unwrap();
    assert!(relative_error(&dc.to_vec().unwrap(), &ab) < 1e-12);
    let e = blas
        .gemm(Transpose::No, Transpose::No, 1.0, &da, &da, 0.0, &mut dc)
        .unwrap_err();
    assert!(matches!(e, Error::Shape(_)), "{e}");
    // An inner dimension of 0: C = beta C.
    let empty_a = DeviceArray::<f64>::zeros_shaped(&device, &[m, 0]).unwrap();
    let empty_b = DeviceArray::<f64>::zeros_shaped(&device, &[0, n]).unwrap();
    let mut dc = DeviceArray::from_matrix(&device, m, n, &c0).unwrap();
    blas.gemm(
        Transpose::No,
        Transpose::No,
        1.0,
        &empty_a,
        &empty_b,
        2.0,
        &mut dc,
    )
    .unwrap();
    let doubled: Vec<f64> = c0.iter().map(|v| 2.0 * v).collect();
    assert_eq!(dc.to_vec().unwrap(), doubled);

    // f32 gemm and the level-1 routines.
    let a32 = rng.vec_f32(64 * 64);
    let d32 = DeviceArray::from_matrix(&device, 64, 64, &a32).unwrap();
    let mut c32 = DeviceArray::zeros_shaped(&device, &[64, 64]).unwrap();
    blas.gemm(
        Transpose::No,
        Transpose::Yes,
        1.0f32,
        &d32,
        &d32,
        0.0,
        &mut c32,
    )
    .unwrap();
    let got = c32.to_vec().unwrap();
    let mut want = vec![0.0f64; 64 * 64];
    for r in 0..64 {
        for c in 0..64 {
            want[r * 64 + c] = (0..64)
                .map(|j| f64::from(a32[r * 64 + j]) * f64::from(a32[c * 64 + j]))
                .sum();
        }
    }
    assert!(relative_error(&widen(&got), &want) < 1e-5);

    let (x, y) = (rng.vec_f32(10_001), rng.vec_f32(10_001));
    let dx = DeviceArray::from_slice(&device, &x).unwrap();
    let mut dy = DeviceArray::from_slice(&device, &y).unwrap();
    let dot: f64 = x
        .iter()
        .zip(&y)
        .map(|(p, q)| f64::from(*p) * f64::from(*q))
        .sum();
    assert!((f64::from(blas.dot(&dx, &dy).unwrap()) - dot).abs() < 1e-3);
    let norm: f64 = x.iter().map(|p| f64::from(*p).powi(2)).sum::<f64>().sqrt();
    assert!((f64::from(blas.nrm2(&dx).unwrap()) - norm).abs() < 1e-3);
    let asum: f64 = x.iter().map(|p| f64::from(p.abs())).sum();
    assert!((f64::from(blas.asum(&dx).unwrap()) - asum).abs() < 1e-2);
    blas.axpy(3.0f32, &dx, &mut dy).unwrap();
    let want: Vec<f64> = x
        .iter()
        .zip(&y)
        .map(|(p, q)| 3.0 * f64::from(*p) + f64::from(*q))
        .collect();
    assert!(relative_error(&widen(&dy.to_vec().unwrap()), &want) < 1e-6);
    blas.scal(0.5f32, &mut dy).unwrap();
    let halved: Vec<f64> = want.iter().map(|v| v * 0.5).collect();
    assert!(relative_error(&widen(&dy.to_vec().unwrap()), &halved) < 1e-6);
    let short = DeviceArray::<f32>::zeros(&device, 3).unwrap();
    assert!(matches!(blas.dot(&dx, &short), Err(Error::Shape(_))));
}

/// Every kernel above compiles with NVRTC, checked on machines without a GPU too.
#[test]
fn the_kernels_of_these_tests_compile_without_a_device() {
    if !braid_gpu::nvrtc_available() {
        skipped(
            "the_kernels_of_these_tests_compile_without_a_device",
            "NVRTC (libnvrtc.so) not found: put the nvidia-cuda-nvrtc wheel's lib folder on LD_LIBRARY_PATH",
            "BRAID_REQUIRE_NVRTC",
        );
        return;
    }
    for source in [KERNELS, TILED] {
        SourceModule::compile_only(source).unwrap();
    }
    let generated = ElementwiseKernel::generate_source(
        "float a, const float *x, float b, const float *y, float *z",
        "z[i] = a * x[i] + b * y[i]",
        "lin_comb",
        "",
    )
    .unwrap();
    SourceModule::compile_only(&generated).unwrap();
    let generated = ReductionKernel::<f32>::generate_source(
        "0",
        "a + b",
        "square(x[i] - y[i])",
        "const float *x, const float *y",
        "sqdist",
        "__device__ float square(float v) { return v * v; }",
    )
    .unwrap();
    SourceModule::compile_only(&generated).unwrap();
}
