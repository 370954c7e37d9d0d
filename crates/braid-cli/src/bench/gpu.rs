//! The `gpu` suite: braid-gpu against the Python GPU stack (`bench/python/gpu.py`: CuPy,
//! whose `ElementwiseKernel`/`ReductionKernel` API is PyCUDA's, for the CUDA cases, and
//! PyOpenCL for the OpenCL ones).
//!
//! The CUDA targets are ratios to what the device itself can do, measured by braid in the
//! same run and reported in each case's note: SAXPY and the sum reduction against the
//! device-to-device copy bandwidth (bytes read plus bytes written per second), the
//! `ElementwiseKernel` against the same kernel written by hand, and SGEMM through braid's
//! `Blas` against cuBLAS called directly. Without a CUDA device those cases are skipped;
//! the OpenCL cases run on any platform (PoCL on a CPU).

use std::time::{Duration, Instant};

use braid::gpu::{
    Blas, ClBuffer, ClContext, ClElementwiseKernel, ClQueue, ClReductionKernel, Device,
    DeviceArray, ElementwiseKernel, Event, Grid, SourceModule, Transpose,
};

use super::stats;
use super::{Case, CaseError, Detailed, Measure, Size, Suite};

/// The suite's cases.
pub(crate) const SUITE: Suite = Suite {
    name: "gpu",
    script: "gpu.py",
    cases: &[
        Case {
            name: "cuda_copy",
            unit: "GB/s",
            // 256M floats: 1 GiB read and 1 GiB written per copy.
            size: Size {
                full: 1 << 28,
                quick: 1 << 24,
            },
            check: None,
            measure: Measure::Detailed(cuda_copy),
        },
        Case {
            name: "cuda_saxpy",
            unit: "GB/s",
            size: Size {
                full: 1 << 28,
                quick: 1 << 24,
            },
            check: None,
            measure: Measure::Detailed(cuda_saxpy),
        },
        Case {
            name: "cuda_sum",
            unit: "GB/s",
            size: Size {
                full: 1 << 28,
                quick: 1 << 24,
            },
            check: None,
            measure: Measure::Detailed(cuda_sum),
        },
        Case {
            name: "cuda_sgemm",
            unit: "TFLOP/s",
            // n x n matrices.
            size: Size {
                full: 8192,
                quick: 2048,
            },
            check: None,
            measure: Measure::Detailed(cuda_sgemm),
        },
        Case {
            name: "cuda_launch",
            unit: "us",
            // Back-to-back launches of an empty kernel.
            size: Size {
                full: 20_000,
                quick: 5_000,
            },
            check: None,
            measure: Measure::Detailed(cuda_launch),
        },
        Case {
            name: "opencl_saxpy",
            unit: "GB/s",
            size: Size {
                full: 1 << 24,
                quick: 1 << 22,
            },
            check: None,
            measure: Measure::Detailed(opencl_saxpy),
        },
        Case {
            name: "opencl_sum",
            unit: "GB/s",
            size: Size {
                full: 1 << 24,
                quick: 1 << 22,
            },
            check: None,
            measure: Measure::Detailed(opencl_sum),
        },
    ],
};

/// Device operations timed per measurement, so that one measurement spans well over the
/// events' resolution.
const INNER: usize = 10;

fn device() -> Result<Device, CaseError> {
    match Device::first() {
        Ok(device) => Ok(device),
        Err(e) if e.is_unavailable() => Err(CaseError::Unavailable(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

fn opencl() -> Result<(ClContext, ClQueue), CaseError> {
    let context = match ClContext::first() {
        Ok(context) => context,
        Err(e) if e.is_unavailable() => return Err(CaseError::Unavailable(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let queue = ClQueue::new(&context)?;
    Ok((context, queue))
}

fn elements(size: u64) -> usize {
    usize::try_from(size).unwrap_or(usize::MAX)
}

/// The device time of `INNER` runs of `work`, in seconds per run.
fn timed(
    device: &Device,
    mut work: impl FnMut() -> Result<(), CaseError>,
) -> Result<f64, CaseError> {
    let (start, end) = (Event::new(device)?, Event::new(device)?);
    start.record()?;
    for _ in 0..INNER {
        work()?;
    }
    end.record()?;
    Ok(end.elapsed_since(&start)?.as_secs_f64() / INNER as f64)
}

fn median(values: &[f64]) -> f64 {
    stats::median(values).unwrap_or(f64::NAN)
}

fn gbps(bytes: f64, seconds: f64) -> f64 {
    bytes / seconds / 1e9
}

/// The device-to-device copy bandwidth, counting bytes read and written: the ceiling of
/// every streaming kernel, measured like `cudaMemcpy` D2D.
fn copy_bandwidth(device: &Device, n: usize, repeats: usize) -> Result<f64, CaseError> {
    let src = DeviceArray::full(device, n, 1.5f32)?;
    let mut dst = DeviceArray::<f32>::zeros(device, n)?;
    dst.copy_from(&src)?;
    let mut samples = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        samples.push(timed(device, || Ok(dst.copy_from(&src)?))?);
    }
    if dst.max()? != 1.5 || dst.min()? != 1.5 {
        return Err(CaseError::Wrong("the copy did not copy".into()));
    }
    Ok(gbps(8.0 * n as f64, median(&samples)))
}

/// GB/s of a device-to-device copy of `n` floats (the baseline of the streaming cases).
fn cuda_copy(size: u64, repeats: usize) -> Result<Detailed, CaseError> {
    let device = device()?;
    let bandwidth = copy_bandwidth(&device, elements(size), repeats)?;
    Ok(Detailed {
        value: bandwidth,
        note: Some(format!(
            "{}: device-to-device copy of {} MiB, bytes read + written",
            device.name(),
            (size * 4) >> 20
        )),
    })
}

const SAXPY_BY_HAND: &str = r#"
__global__ void saxpy(float a, const float *x, float *y, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
"#;

/// GB/s of `y = a x + y` over `n` floats through an `ElementwiseKernel` (12 bytes moved per
/// element); the note gives the copy bandwidth and a hand-written kernel's, measured
/// interleaved with it.
fn cuda_saxpy(size: u64, repeats: usize) -> Result<Detailed, CaseError> {
    let device = device()?;
    let n = elements(size);
    let count = i32::try_from(n)
        .map_err(|_| CaseError::Wrong(format!("{n} elements overflow the hand kernel's int")))?;
    let elementwise = ElementwiseKernel::new(
        &device,
        "float a, const float *x, float *y",
        "y[i] = a * x[i] + y[i]",
        "braid_saxpy",
    )?;
    let by_hand = SourceModule::new(&device, SAXPY_BY_HAND)?.function("saxpy")?;
    let x = DeviceArray::full(&device, n, 2.0f32)?;
    let mut y = DeviceArray::full(&device, n, 1.0f32)?;
    // Each run adds 0.5 * 2 = 1 to every y, exactly, so the result is checkable.
    let mut runs = 0u32;
    let run_elementwise = |y: &mut DeviceArray<f32>| -> Result<(), CaseError> {
        elementwise.launch().arg(0.5f32).arg(&x).arg(y).run()?;
        Ok(())
    };
    let run_by_hand = |y: &mut DeviceArray<f32>| -> Result<(), CaseError> {
        by_hand
            .launch(Grid::linear(n, 256))
            .arg(0.5f32)
            .arg(&x)
            .arg(y)
            .arg(count)
            .run()?;
        Ok(())
    };
    run_elementwise(&mut y)?;
    run_by_hand(&mut y)?;
    runs += 2;
    let (mut braid, mut hand) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        braid.push(timed(&device, || run_elementwise(&mut y))?);
        hand.push(timed(&device, || run_by_hand(&mut y))?);
        runs += 2 * INNER as u32;
    }
    let want = 1.0 + runs as f32;
    if y.min()? != want || y.max()? != want {
        return Err(CaseError::Wrong(format!(
            "saxpy left y outside {want} after {runs} runs"
        )));
    }
    let copy = copy_bandwidth(&device, n, repeats)?;
    let bytes = 12.0 * n as f64;
    let (braid, hand) = (gbps(bytes, median(&braid)), gbps(bytes, median(&hand)));
    Ok(Detailed {
        value: braid,
        note: Some(format!(
            "{}: {:.0}% of the {copy:.0} GB/s copy bandwidth; hand-written kernel {hand:.0} GB/s, ElementwiseKernel / hand = {:.3}",
            device.name(),
            100.0 * braid / copy,
            braid / hand
        )),
    })
}

/// GB/s of `DeviceArray::sum` over `n` floats (4 bytes read per element), from the launch
/// of the first stage to the result on the device; the note gives the copy bandwidth and
/// the time including the copy of the result to the host.
fn cuda_sum(size: u64, repeats: usize) -> Result<Detailed, CaseError> {
    let device = device()?;
    let n = elements(size);
    let x = DeviceArray::full(&device, n, 1.0f32)?;
    let sum =
        braid::gpu::ReductionKernel::<f32>::new(&device, "0", "a + b", "x[i]", "const float *x")?;
    // Partial sums past 2^24 round in f32, whatever the order of folding.
    let right = |got: f32| (f64::from(got) - n as f64).abs() <= 1e-5 * n as f64;
    let got = sum.launch().arg(&x).run()?;
    if !right(got) {
        return Err(CaseError::Wrong(format!("sum of {n} ones is {got}")));
    }
    let mut on_device = Vec::with_capacity(repeats);
    let mut to_host = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        on_device.push(timed(&device, || {
            sum.launch().arg(&x).run_on_device()?;
            Ok(())
        })?);
        let started = Instant::now();
        for _ in 0..INNER {
            if !right(x.sum()?) {
                return Err(CaseError::Wrong(
                    "DeviceArray::sum changed its answer".into(),
                ));
            }
        }
        to_host.push(started.elapsed().as_secs_f64() / INNER as f64);
    }
    let copy = copy_bandwidth(&device, n, repeats)?;
    let bytes = 4.0 * n as f64;
    let braid = gbps(bytes, median(&on_device));
    Ok(Detailed {
        value: braid,
        note: Some(format!(
            "{}: {:.0}% of the {copy:.0} GB/s copy bandwidth; with the result copied to the host (DeviceArray::sum) {:.0} GB/s",
            device.name(),
            100.0 * braid / copy,
            gbps(bytes, median(&to_host))
        )),
    })
}

/// TFLOP/s of an n x n x n SGEMM through `Blas::gemm`; the note gives cuBLAS called
/// directly on the same buffers, interleaved with it.
fn cuda_sgemm(size: u64, repeats: usize) -> Result<Detailed, CaseError> {
    let device = device()?;
    let blas = match Blas::new(&device) {
        Ok(blas) => blas,
        Err(e) if e.is_unavailable() => return Err(CaseError::Unavailable(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let n = elements(size);
    let mut seed = 0x2545_F491u32;
    let mut fill = || -> Vec<f32> {
        (0..n * n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
            })
            .collect()
    };
    let (a, b) = (fill(), fill());
    let da = DeviceArray::from_matrix(&device, n, n, &a)?;
    let db = DeviceArray::from_matrix(&device, n, n, &b)?;
    let mut dc = DeviceArray::<f32>::zeros_shaped(&device, &[n, n])?;
    let braid_gemm = |c: &mut DeviceArray<f32>| -> Result<(), CaseError> {
        Ok(blas.gemm(Transpose::No, Transpose::No, 1.0, &da, &db, 0.0, c)?)
    };
    // Column-major B^T A^T is row-major A B: the same product, straight into cuBLAS.
    let direct_gemm = |c: &mut DeviceArray<f32>| -> Result<(), CaseError> {
        Ok(blas.__sgemm_unchecked(n, &db, &da, c)?)
    };
    braid_gemm(&mut dc)?;
    direct_gemm(&mut dc)?;
    let (mut braid, mut direct) = (Vec::new(), Vec::new());
    let one = |device: &Device,
               f: &dyn Fn(&mut DeviceArray<f32>) -> Result<(), CaseError>,
               c: &mut DeviceArray<f32>|
     -> Result<f64, CaseError> {
        let (start, end) = (Event::new(device)?, Event::new(device)?);
        start.record()?;
        f(c)?;
        end.record()?;
        Ok(end.elapsed_since(&start)?.as_secs_f64())
    };
    for _ in 0..repeats.max(3) {
        braid.push(one(&device, &braid_gemm, &mut dc)?);
        direct.push(one(&device, &direct_gemm, &mut dc)?);
    }
    braid_gemm(&mut dc)?;
    let c = dc.to_vec()?;
    for (r, col) in [(0, 0), (n / 2, n / 3), (n - 1, n - 1), (7 % n, (n - 1) / 2)] {
        let want: f64 = (0..n)
            .map(|j| f64::from(a[r * n + j]) * f64::from(b[j * n + col]))
            .sum();
        let got = f64::from(c[r * n + col]);
        if (got - want).abs() > 1e-3 * (n as f64).sqrt() {
            return Err(CaseError::Wrong(format!(
                "C[{r}][{col}] = {got}, the CPU says {want}"
            )));
        }
    }
    let flop = 2.0 * (n as f64).powi(3);
    let (braid, direct) = (flop / median(&braid) / 1e12, flop / median(&direct) / 1e12);
    Ok(Detailed {
        value: braid,
        note: Some(format!(
            "{}: {n}^3 fp32; cuBLAS called directly {direct:.2} TFLOP/s, braid / direct = {:.3}",
            device.name(),
            braid / direct
        )),
    })
}

const EMPTY: &str = "__global__ void braid_empty() {}";

/// Microseconds per launch of an empty kernel, `size` launches back to back, then one
/// synchronisation; the note gives the launch + synchronise round trip.
fn cuda_launch(size: u64, repeats: usize) -> Result<Detailed, CaseError> {
    let device = device()?;
    let kernel = SourceModule::new(&device, EMPTY)?.function("braid_empty")?;
    let launch = || -> Result<(), CaseError> { Ok(kernel.launch(Grid::new(1, 32)).run()?) };
    launch()?;
    device.synchronize()?;
    let launches = elements(size).max(1);
    let (mut streamed, mut round_trip) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        let started = Instant::now();
        for _ in 0..launches {
            launch()?;
        }
        device.synchronize()?;
        streamed.push(started.elapsed().as_secs_f64() / launches as f64);
        let started = Instant::now();
        for _ in 0..100 {
            launch()?;
            device.synchronize()?;
        }
        round_trip.push(started.elapsed().as_secs_f64() / 100.0);
    }
    Ok(Detailed {
        value: median(&streamed) * 1e6,
        note: Some(format!(
            "{}: launch + synchronize round trip {:.2} us",
            device.name(),
            median(&round_trip) * 1e6
        )),
    })
}

/// Host time of one OpenCL command and `queue.finish()`.
fn cl_timed(
    queue: &ClQueue,
    work: impl Fn() -> Result<(), CaseError>,
) -> Result<Duration, CaseError> {
    let started = Instant::now();
    work()?;
    queue.finish()?;
    Ok(started.elapsed())
}

/// GB/s of `y = a x + y` over `n` floats through a `ClElementwiseKernel`, host-timed to
/// the queue's finish (as PyOpenCL's side is).
fn opencl_saxpy(size: u64, repeats: usize) -> Result<Detailed, CaseError> {
    let (context, queue) = opencl()?;
    let n = elements(size);
    let kernel = ClElementwiseKernel::new(
        &context,
        "float a, const float *x, float *y",
        "y[i] = a * x[i] + y[i]",
        "braid_saxpy",
    )?;
    let x = ClBuffer::from_slice(&queue, &vec![2.0f32; n])?;
    let y = std::cell::RefCell::new(ClBuffer::from_slice(&queue, &vec![1.0f32; n])?);
    let run = || -> Result<(), CaseError> {
        kernel
            .launch(&queue)
            .arg(0.5f32)
            .arg(&x)
            .arg(&mut *y.borrow_mut())
            .run()?;
        Ok(())
    };
    cl_timed(&queue, run)?;
    let mut samples = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        samples.push(cl_timed(&queue, run)?.as_secs_f64());
    }
    let want = 2.0 + repeats as f32;
    let got = y.borrow().to_vec()?;
    if got.iter().any(|&v| v != want) {
        return Err(CaseError::Wrong(format!("saxpy left y away from {want}")));
    }
    Ok(Detailed {
        value: gbps(12.0 * n as f64, median(&samples)),
        note: Some(format!("{} (OpenCL)", context.device().name()?)),
    })
}

/// GB/s of a `ClReductionKernel` sum over `n` floats, to the result on the host.
fn opencl_sum(size: u64, repeats: usize) -> Result<Detailed, CaseError> {
    let (context, queue) = opencl()?;
    let n = elements(size);
    let sum = ClReductionKernel::<f32>::new(&context, "0", "a + b", "x[i]", "const float *x")?;
    let x = ClBuffer::from_slice(&queue, &vec![1.0f32; n])?;
    let mut samples = Vec::with_capacity(repeats);
    for round in 0..=repeats {
        let started = Instant::now();
        let got = sum.launch(&queue).arg(&x).run()?;
        let took = started.elapsed().as_secs_f64();
        // Partial sums past 2^24 round in f32.
        if (f64::from(got) - n as f64).abs() > 1e-5 * n as f64 {
            return Err(CaseError::Wrong(format!("sum of {n} ones is {got}")));
        }
        if round > 0 {
            samples.push(took);
        }
    }
    Ok(Detailed {
        value: gbps(4.0 * n as f64, median(&samples)),
        note: Some(format!("{} (OpenCL)", context.device().name()?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a CUDA device every CUDA case is skipped, never failed; with one, each runs
    /// (tiny) and checks its answer.
    #[test]
    fn cuda_cases_run_or_are_skipped() {
        for (name, measure) in [
            (
                "cuda_copy",
                cuda_copy as fn(u64, usize) -> Result<Detailed, CaseError>,
            ),
            ("cuda_saxpy", cuda_saxpy),
            ("cuda_sum", cuda_sum),
            ("cuda_sgemm", cuda_sgemm),
            ("cuda_launch", cuda_launch),
        ] {
            let size = if name == "cuda_sgemm" { 64 } else { 1 << 12 };
            match measure(size, 1) {
                Ok(d) => assert!(d.value > 0.0, "{name}: {d:?}"),
                Err(CaseError::Unavailable(why)) => eprintln!("note: {name} skipped: {why}"),
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }

    /// The OpenCL cases run wherever there is a platform (PoCL in CI).
    #[test]
    fn opencl_cases_measure_and_check() {
        for (name, measure) in [
            (
                "opencl_saxpy",
                opencl_saxpy as fn(u64, usize) -> Result<Detailed, CaseError>,
            ),
            ("opencl_sum", opencl_sum),
        ] {
            match measure(10_000, 2) {
                Ok(d) => assert!(d.value > 0.0, "{name}: {d:?}"),
                Err(CaseError::Unavailable(why)) => eprintln!("note: {name} skipped: {why}"),
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }
}
