//! Book recipe (ch. 6): "Building a PyOpenCL application": list the OpenCL platforms and
//! devices with their properties, then add two vectors with a kernel built from source.
//!
//! Python (PyOpenCL):
//! ```python
//! for platform in cl.get_platforms():
//!     for device in platform.get_devices():
//!         print(device.name, device.max_compute_units, device.global_mem_size, ...)
//! context = cl.create_some_context(); queue = cl.CommandQueue(context)
//! program = cl.Program(context, """
//!   __kernel void vector_sum(__global const float *a, __global const float *b,
//!                            __global float *c) {
//!     int gid = get_global_id(0); c[gid] = a[gid] + b[gid]; }""").build()
//! program.vector_sum(queue, a.shape, None, a_buf, b_buf, c_buf)
//! cl.enqueue_copy(queue, c, c_buf)
//! ```
//!
//! braid uses `opencl3`; PoCL runs it on the CPU where no GPU platform is installed.
//! Without any OpenCL platform it says so and exits 0.
//!
//! Run: `cargo run --example ch6_opencl_app`

use braid::gpu::{ClBuffer, ClContext, ClPlatform, ClProgram, ClQueue};

const PROGRAM: &str = r#"
__kernel void vector_sum(__global const float *a, __global const float *b,
                         __global float *c, const uint n)
{
    uint gid = get_global_id(0);
    if (gid < n) c[gid] = a[gid] + b[gid];
}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let platforms = match ClPlatform::all() {
        Ok(platforms) => platforms,
        Err(e) if e.is_unavailable() => {
            println!("{e}; nothing to run");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    println!("============================================================");
    println!("OpenCL platforms and devices");
    for platform in &platforms {
        println!("platform: {} ({})", platform.name()?, platform.version()?);
        println!("  vendor: {}", platform.vendor()?);
        for device in platform.devices()? {
            println!("  device: {} ({:?})", device.name()?, device.kind()?);
            println!(
                "    version: {}, driver {}",
                device.version()?,
                device.driver_version()?
            );
            println!(
                "    compute units: {}, max clock: {} MHz, max work-group size: {}",
                device.compute_units()?,
                device.max_clock_mhz()?,
                device.max_work_group_size()?
            );
            println!(
                "    global memory: {} MiB, local memory: {} KiB, double precision: {}",
                device.global_memory()? >> 20,
                device.local_memory()? >> 10,
                device.supports_f64()?
            );
        }
    }
    println!("============================================================");

    let context = ClContext::first()?;
    let queue = ClQueue::new(&context)?;
    println!("running on: {}", context.device().name()?);
    let n = 10_000;
    let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let b: Vec<f32> = (0..n).map(|i| (n - i) as f32 * 0.25).collect();
    let a_buf = ClBuffer::from_slice(&queue, &a)?;
    let b_buf = ClBuffer::from_slice(&queue, &b)?;
    let mut c_buf = ClBuffer::<f32>::zeros(&queue, n)?;
    let program = ClProgram::build(&context, PROGRAM, "")?;
    let event = program
        .kernel("vector_sum")?
        .launch(&queue, &[n])
        .arg(&a_buf)
        .arg(&b_buf)
        .arg(&mut c_buf)
        .arg(n as u32)
        .run()?;
    let took = event.duration()?;
    let c = c_buf.to_vec()?;
    println!(
        "c[..4] = {:?}; the kernel ran {took:?} on the device",
        &c[..4]
    );
    if let Some(i) = (0..n).find(|&i| c[i] != a[i] + b[i]) {
        return Err(format!("c[{i}] = {} is not {} + {}", c[i], a[i], b[i]).into());
    }
    println!("all {n} sums match the CPU");
    Ok(())
}
