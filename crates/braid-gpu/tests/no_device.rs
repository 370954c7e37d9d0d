//! Without a driver, a device or a platform, every entry point is a clear `NoDevice` error,
//! never a panic. The OpenCL half runs in a child process that hides every platform from
//! the ICD loader (`OCL_ICD_VENDORS` pointing at an empty folder).

use std::process::Command;

use braid_gpu::{Backend, ClContext, ClDevice, ClPlatform, Device, Error};

#[test]
fn cuda_without_a_device_is_a_no_device_error() {
    match Device::count() {
        Ok(count) => {
            // A machine with the driver: an ordinal past the last device is refused.
            let e = Device::new(count).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::NoDevice {
                        backend: Backend::Cuda,
                        ..
                    }
                ),
                "{e}"
            );
            assert!(e.is_unavailable());
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::NoDevice {
                        backend: Backend::Cuda,
                        ..
                    }
                ),
                "{e}"
            );
            assert!(e.to_string().starts_with("no CUDA device: "), "{e}");
            for e in [
                Device::first().unwrap_err(),
                Device::new(3).unwrap_err(),
                Device::all().unwrap_err(),
            ] {
                assert!(e.is_unavailable(), "{e}");
            }
            assert!(!braid_gpu::cuda_driver_available());
        }
    }
}

const CHILD: &str = "BRAID_GPU_NO_PLATFORM_CHILD";

#[test]
fn opencl_without_a_platform_is_a_no_device_error() {
    if std::env::var_os(CHILD).is_some() {
        // In the child: ocl-icd's loader sees no platform. (The Khronos loader that CUDA
        // ships does not read OCL_ICD_VENDORS; it still finds its platforms.)
        if ClPlatform::all().is_ok() {
            println!("child: the OpenCL loader ignores OCL_ICD_VENDORS");
            return;
        }
        for e in [
            ClPlatform::all().unwrap_err(),
            ClDevice::first().unwrap_err(),
            ClContext::first().unwrap_err(),
        ] {
            assert!(
                matches!(
                    e,
                    Error::NoDevice {
                        backend: Backend::OpenCl,
                        ..
                    }
                ),
                "{e}"
            );
            println!("child saw: {e}");
        }
        return;
    }
    let empty = std::env::temp_dir().join(format!("braid-no-icd-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "opencl_without_a_platform_is_a_no_device_error",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("OCL_ICD_VENDORS", &empty)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&empty).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    if stdout.contains("the OpenCL loader ignores OCL_ICD_VENDORS") {
        eprintln!("note: this machine's OpenCL loader cannot be told to hide its platforms");
        return;
    }
    // With no loader at all the child sees a NoDevice error too.
    assert!(stdout.contains("child saw: no OpenCL device"), "{stdout}");
}
