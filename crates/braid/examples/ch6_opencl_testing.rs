//! Book recipe (ch. 6): "Testing your GPU application with PyOpenCL": run the same
//! computation on the GPU and on the CPU, compare the results and the times.
//!
//! Python (PyOpenCL):
//! ```python
//! a = numpy.random.rand(N).astype(numpy.float32)   # and b
//! t0 = time(); c_cpu = a + b; cpu_time = time() - t0
//! event = program.sum(queue, a.shape, None, a_buf, b_buf, c_buf); event.wait()
//! gpu_time = 1e-9 * (event.profile.end - event.profile.start)
//! assert numpy.allclose(c_gpu, c_cpu)
//! ```
//!
//! Here the test is a function that checks a kernel against a CPU reference at ragged
//! sizes (1, 255, 1000, 65,537) and reports device and CPU time from the queue's profiling.
//! A correct kernel passes; a kernel with a planted off-by-one bound is caught at the
//! first wrong element, which is the point of testing at sizes that are not round.
//!
//! Run: `cargo run --example ch6_opencl_testing`

use std::time::{Duration, Instant};

use braid::gpu::{ClBuffer, ClContext, ClKernel, ClProgram, ClQueue};

const PROGRAM: &str = r#"
// a * b + c, one work-item per element.
__kernel void fma_right(__global const float *a, __global const float *b,
                        __global const float *c, __global float *out, const uint n)
{
    uint i = get_global_id(0);
    if (i < n) out[i] = a[i] * b[i] + c[i];
}

// The same with a planted bug: the last element is never written.
__kernel void fma_buggy(__global const float *a, __global const float *b,
                        __global const float *c, __global float *out, const uint n)
{
    uint i = get_global_id(0);
    if (i + 1 < n) out[i] = a[i] * b[i] + c[i];
}
"#;

/// What one test of a kernel found.
struct Report {
    device: Duration,
    cpu: Duration,
    first_wrong: Option<(usize, usize)>,
}

/// Runs `kernel` at several sizes and compares every element with the CPU's result.
fn test_kernel(queue: &ClQueue, kernel: &ClKernel) -> Result<Report, braid::gpu::Error> {
    let mut report = Report {
        device: Duration::ZERO,
        cpu: Duration::ZERO,
        first_wrong: None,
    };
    for n in [1usize, 255, 1000, 65_537] {
        let a: Vec<f32> = (0..n).map(|i| (i % 17) as f32 * 0.25).collect();
        let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 2.0).collect();
        let c: Vec<f32> = (0..n).map(|i| (i % 3) as f32).collect();
        let started = Instant::now();
        let want: Vec<f32> = (0..n).map(|i| a[i] * b[i] + c[i]).collect();
        report.cpu += started.elapsed();

        let (a_buf, b_buf, c_buf) = (
            ClBuffer::from_slice(queue, &a)?,
            ClBuffer::from_slice(queue, &b)?,
            ClBuffer::from_slice(queue, &c)?,
        );
        // Poisoned output: an element the kernel forgets to write cannot pass by luck.
        let mut out = ClBuffer::from_slice(queue, &vec![f32::NAN; n])?;
        let event = kernel
            .launch(queue, &[n.div_ceil(64) * 64])
            .arg(&a_buf)
            .arg(&b_buf)
            .arg(&c_buf)
            .arg(&mut out)
            .arg(n as u32)
            .run()?;
        report.device += event.duration()?;
        let got = out.to_vec()?;
        if report.first_wrong.is_none() {
            report.first_wrong = (0..n)
                .find(|&i| got[i].is_nan() || (got[i] - want[i]).abs() > 1e-6)
                .map(|i| (n, i));
        }
    }
    Ok(report)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let context = match ClContext::first() {
        Ok(context) => context,
        Err(e) if e.is_unavailable() => {
            println!("{e}; nothing to test");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let queue = ClQueue::new(&context)?;
    println!("testing on {}", context.device().name()?);
    let program = ClProgram::build(&context, PROGRAM, "")?;

    let right = test_kernel(&queue, &program.kernel("fma_right")?)?;
    println!(
        "fma_right: {}; device time {:?}, CPU time {:?}",
        match right.first_wrong {
            None => "every element matches the CPU".to_string(),
            Some((n, i)) => format!("WRONG at element {i} of {n}"),
        },
        right.device,
        right.cpu
    );
    let buggy = test_kernel(&queue, &program.kernel("fma_buggy")?)?;
    match buggy.first_wrong {
        Some((n, i)) => println!("fma_buggy: caught, element {i} of {n} differs from the CPU"),
        None => println!("fma_buggy: NOT caught"),
    }
    if right.first_wrong.is_some() || buggy.first_wrong.is_none() {
        return Err("the GPU test did not separate the right kernel from the buggy one".into());
    }
    Ok(())
}
