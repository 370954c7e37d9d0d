//! The whole OpenCL path, on whatever platform is installed (PoCL on a CPU in CI), with
//! every result compared against the CPU.

mod common;

use braid_gpu::{
    ClBuffer, ClDevice, ClElementwiseKernel, ClLocal, ClPlatform, ClProgram, ClReductionKernel,
    Error,
};
use common::{Rng, opencl, relative_error};

#[test]
fn platforms_and_devices_report_their_properties() {
    let Some((context, _)) = opencl("platforms_and_devices_report_their_properties") else {
        return;
    };
    let platforms = ClPlatform::all().unwrap();
    assert!(!platforms.is_empty());
    for platform in &platforms {
        assert!(!platform.name().unwrap().is_empty());
        assert!(platform.version().unwrap().starts_with("OpenCL"));
        for device in platform.devices().unwrap() {
            assert!(!device.name().unwrap().is_empty());
            assert!(device.compute_units().unwrap() > 0);
            assert!(device.global_memory().unwrap() > 0);
            assert!(device.max_work_group_size().unwrap() > 0);
            device.kind().unwrap();
        }
    }
    let first = ClDevice::first().unwrap();
    assert_eq!(&first, context.device());
}

#[test]
fn buffers_copy_both_ways_fill_and_refuse_wrong_lengths() {
    let Some((_, queue)) = opencl("buffers_copy_both_ways_fill_and_refuse_wrong_lengths") else {
        return;
    };
    let data: Vec<i32> = (0..1000).map(|i| i * 7 - 3).collect();
    let mut buffer = ClBuffer::from_slice(&queue, &data).unwrap();
    assert_eq!(buffer.len(), 1000);
    assert_eq!(buffer.to_vec().unwrap(), data);
    buffer.fill(-5).unwrap();
    assert!(buffer.to_vec().unwrap().iter().all(|&v| v == -5));
    let reversed: Vec<i32> = data.iter().rev().copied().collect();
    buffer.copy_from_host(&reversed).unwrap();
    let mut out = vec![0; 1000];
    buffer.copy_to_host(&mut out).unwrap();
    assert_eq!(out, reversed);
    assert!(matches!(
        buffer.copy_from_host(&[1, 2, 3]),
        Err(Error::Shape(_))
    ));
    assert!(matches!(
        buffer.copy_to_host(&mut [0; 2]),
        Err(Error::Shape(_))
    ));

    let zeros = ClBuffer::<f64>::zeros(&queue, 17).unwrap();
    assert_eq!(zeros.to_vec().unwrap(), vec![0.0; 17]);
    let empty = ClBuffer::<f32>::from_slice(&queue, &[]).unwrap();
    assert!(empty.is_empty());
    assert!(empty.to_vec().unwrap().is_empty());
}

const PROGRAM: &str = r#"
// Scales x in place.
__kernel void scale(__global float *x, const float k, const uint n)
{
    size_t i = get_global_id(0);
    if (i < n) x[i] *= k;
}

// Transposes a rows x cols matrix through a tile in local memory.
__kernel void transpose(__global const float *in, __global float *out, __local float *tile,
                        const int rows, const int cols)
{
    int c = get_global_id(0), r = get_global_id(1);
    int lc = get_local_id(0), lr = get_local_id(1), t = get_local_size(0);
    if (r < rows && c < cols) tile[lr * t + lc] = in[r * cols + c];
    barrier(CLK_LOCAL_MEM_FENCE);
    if (r < rows && c < cols) out[c * rows + r] = tile[lr * t + lc];
}
"#;

#[test]
fn programs_build_and_kernels_check_their_arguments() {
    let Some((context, queue)) = opencl("programs_build_and_kernels_check_their_arguments") else {
        return;
    };
    let program = ClProgram::build(&context, PROGRAM, "").unwrap();
    assert_eq!(program.kernel_names(), ["scale", "transpose"]);
    let scale = program.kernel("scale").unwrap();
    let data: Vec<f32> = (0..1000).map(|i| i as f32).collect();
    let mut x = ClBuffer::from_slice(&queue, &data).unwrap();
    let event = scale
        .launch(&queue, &[1024])
        .arg(&mut x)
        .arg(2.5f32)
        .arg(1000u32)
        .run()
        .unwrap();
    event.wait().unwrap();
    event.duration().unwrap();
    let want: Vec<f32> = data.iter().map(|v| v * 2.5).collect();
    assert_eq!(x.to_vec().unwrap(), want);

    // A double where the kernel takes a float, and a missing argument: typed errors.
    let e = scale
        .launch(&queue, &[1024])
        .arg(&mut x)
        .arg(2.5f64)
        .arg(1000u32)
        .run()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "kernel `scale`: parameter 1 `float k` wants a value of type f32, got a value of type f64"
    );
    let e = scale.launch(&queue, &[1024]).arg(&mut x).run().unwrap_err();
    assert!(matches!(e, Error::Arguments { .. }), "{e}");
    let e = scale
        .launch(&queue, &[0])
        .arg(&mut x)
        .arg(1.0f32)
        .arg(0u32)
        .run()
        .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");

    // 2-D launch with local memory: a 37 x 21 matrix in 4 x 4 tiles (padded global size).
    let (rows, cols, t) = (37usize, 21usize, 4usize);
    let m: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5).collect();
    let input = ClBuffer::from_slice(&queue, &m).unwrap();
    let mut output = ClBuffer::<f32>::zeros(&queue, rows * cols).unwrap();
    program
        .kernel("transpose")
        .unwrap()
        .launch(&queue, &[cols.div_ceil(t) * t, rows.div_ceil(t) * t])
        .local(&[t, t])
        .arg(&input)
        .arg(&mut output)
        .arg(ClLocal::<f32>::new(t * t))
        .arg(rows as i32)
        .arg(cols as i32)
        .run()
        .unwrap();
    let got = output.to_vec().unwrap();
    for r in 0..rows {
        for c in 0..cols {
            assert_eq!(got[c * rows + r], m[r * cols + c], "({r}, {c})");
        }
    }

    let e = program.kernel("nope").unwrap_err();
    assert_eq!(
        e.to_string(),
        "no kernel named `nope` in the module (kernels found: scale, transpose)"
    );
    let e = ClProgram::build(
        &context,
        "__kernel void broken(__global float *x) { x[0] = y; }",
        "",
    )
    .unwrap_err();
    match e {
        Error::Compile { log, .. } => assert!(log.contains('y'), "{log}"),
        other => panic!("expected a compile error, got {other}"),
    }
}

#[test]
fn elementwise_kernels_match_the_cpu() {
    let Some((context, queue)) = opencl("elementwise_kernels_match_the_cpu") else {
        return;
    };
    let mut rng = Rng::new(1);
    let n = 100_003;
    let (x, y) = (rng.vec_f32(n), rng.vec_f32(n));
    let saxpy = ClElementwiseKernel::new(
        &context,
        "float a, const float *x, float *y",
        "y[i] = a * x[i] + y[i]",
        "saxpy",
    )
    .unwrap();
    let xb = ClBuffer::from_slice(&queue, &x).unwrap();
    let mut yb = ClBuffer::from_slice(&queue, &y).unwrap();
    saxpy
        .launch(&queue)
        .arg(3.0f32)
        .arg(&xb)
        .arg(&mut yb)
        .run()
        .unwrap()
        .expect("n > 0 runs the kernel");
    let got = yb.to_vec().unwrap();
    for i in 0..n {
        let want = 3.0f32.mul_add(x[i], y[i]);
        assert!((got[i] - want).abs() <= 1e-6 * want.abs().max(1.0), "{i}");
    }
    // The 64-bit grid-stride variant (used past 2^31 elements), launched by hand on a grid
    // smaller than the data so that every work-item loops.
    assert!(saxpy.source().contains("saxpy_int32("));
    let program = ClProgram::build(&context, saxpy.source(), "").unwrap();
    let mut yb = ClBuffer::from_slice(&queue, &y).unwrap();
    program
        .kernel("saxpy")
        .unwrap()
        .launch(&queue, &[1024])
        .arg(3.0f32)
        .arg(&xb)
        .arg(&mut yb)
        .arg(n as i64)
        .run()
        .unwrap();
    let got64 = yb.to_vec().unwrap();
    assert_eq!(got64, got);

    // Integers, exactly; and the lengths must agree.
    let add = ClElementwiseKernel::new(
        &context,
        "long *a, long *b, long *c",
        "c[i] = a[i] * 3 - b[i]",
        "lin",
    )
    .unwrap();
    let a: Vec<i64> = (0..1000).map(|i| i * 1_000_000_007).collect();
    let b: Vec<i64> = (0..1000).map(|i| -i).collect();
    let (ab, bb) = (
        ClBuffer::from_slice(&queue, &a).unwrap(),
        ClBuffer::from_slice(&queue, &b).unwrap(),
    );
    let mut cb = ClBuffer::<i64>::zeros(&queue, 1000).unwrap();
    add.launch(&queue)
        .arg(&ab)
        .arg(&bb)
        .arg(&mut cb)
        .run()
        .unwrap();
    let want: Vec<i64> = a.iter().zip(&b).map(|(a, b)| a * 3 - b).collect();
    assert_eq!(cb.to_vec().unwrap(), want);
    let mut short = ClBuffer::<i64>::zeros(&queue, 999).unwrap();
    let e = add
        .launch(&queue)
        .arg(&ab)
        .arg(&bb)
        .arg(&mut short)
        .run()
        .unwrap_err();
    assert!(matches!(e, Error::Shape(_)), "{e}");
    let empty = ClBuffer::<i64>::zeros(&queue, 0).unwrap();
    let ran = add
        .launch(&queue)
        .arg(&empty)
        .arg(&empty)
        .arg(&empty)
        .run()
        .unwrap();
    assert!(ran.is_none());

    if context.device().supports_f64().unwrap() {
        let x = rng.vec_f64(5000);
        let sq = ClElementwiseKernel::new(&context, "double *x", "x[i] = x[i] * x[i] + 0.5", "sq")
            .unwrap();
        let mut xb = ClBuffer::from_slice(&queue, &x).unwrap();
        sq.launch(&queue).arg(&mut xb).run().unwrap();
        let want: Vec<f64> = x.iter().map(|v| v * v + 0.5).collect();
        assert!(relative_error(&xb.to_vec().unwrap(), &want) < 1e-15);
    }
}

#[test]
fn reductions_match_the_cpu_at_every_size() {
    let Some((context, queue)) = opencl("reductions_match_the_cpu_at_every_size") else {
        return;
    };
    let mut rng = Rng::new(2);
    let sum =
        ClReductionKernel::<f32>::new(&context, "0", "a + b", "x[i]", "const float *x").unwrap();
    let dot = ClReductionKernel::<f32>::new(
        &context,
        "0",
        "a + b",
        "x[i] * y[i]",
        "const float *x, const float *y",
    )
    .unwrap();
    let max = ClReductionKernel::<f32>::new(
        &context,
        "-INFINITY",
        "fmax(a, b)",
        "x[i]",
        "const float *x",
    )
    .unwrap();
    for n in [0usize, 1, 2, 255, 256, 257, 4099, 1_000_000] {
        let (x, y) = (rng.vec_f32(n), rng.vec_f32(n));
        let (xb, yb) = (
            ClBuffer::from_slice(&queue, &x).unwrap(),
            ClBuffer::from_slice(&queue, &y).unwrap(),
        );
        let want: f64 = x.iter().map(|&v| f64::from(v)).sum();
        let got = f64::from(sum.launch(&queue).arg(&xb).run().unwrap());
        assert!(
            (got - want).abs() <= 1e-5 * (n as f64).max(1.0),
            "sum of {n}: {got} vs {want}"
        );
        let want: f64 = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let got = f64::from(dot.launch(&queue).arg(&xb).arg(&yb).run().unwrap());
        assert!(
            (got - want).abs() <= 1e-5 * (n as f64).max(1.0),
            "dot of {n}: {got} vs {want}"
        );
        let got = max.launch(&queue).arg(&xb).run().unwrap();
        let want = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(got, want, "max of {n}");
    }

    // 64-bit integers add exactly.
    let isum =
        ClReductionKernel::<i64>::new(&context, "0", "a + b", "x[i]", "const long *x").unwrap();
    let x: Vec<i64> = (0..300_001).map(|i| i * 1_000_003 - 7).collect();
    let xb = ClBuffer::from_slice(&queue, &x).unwrap();
    assert_eq!(
        isum.launch(&queue).arg(&xb).run().unwrap(),
        x.iter().sum::<i64>()
    );

    let e = dot
        .launch(&queue)
        .arg(&xb)
        .arg(&ClBuffer::<f32>::zeros(&queue, 3).unwrap())
        .run()
        .unwrap_err();
    assert!(matches!(e, Error::Arguments { .. }), "{e}");
}
