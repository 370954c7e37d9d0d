//! The CUDA kernels of the book's chapter 6 examples (`crates/braid/examples/ch6_kernels`)
//! compile to PTX with NVRTC on a machine with no GPU. The built-in kernels are compiled
//! by the unit tests beside them, and the examples compile their generated kernels
//! themselves when they find no device.
//!
//! Without NVRTC on the library path the test passes with a note, unless
//! `BRAID_REQUIRE_NVRTC=1` (scripts/test sets it, together with `LD_LIBRARY_PATH`), when
//! it fails with the same note.

mod common;

use std::path::Path;

use braid_gpu::SourceModule;

#[test]
fn every_example_kernel_compiles_to_ptx() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../braid/examples/ch6_kernels");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("note: no example kernels at {}", dir.display());
        return;
    };
    if !braid_gpu::nvrtc_available() {
        common::skipped(
            "every_example_kernel_compiles_to_ptx",
            "NVRTC (libnvrtc.so) not found. Install the CUDA toolkit, or the pip wheel \
             nvidia-cuda-nvrtc and put its lib folder (site-packages/nvidia/cu13/lib) on \
             LD_LIBRARY_PATH, as scripts/test does",
            "BRAID_REQUIRE_NVRTC",
        );
        return;
    }
    let mut compiled = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "cu") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let ptx = SourceModule::compile_only(&source)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for kernel in kernel_names(&source) {
            assert!(
                ptx.contains(&format!(".entry {kernel}(")),
                "{}: no entry for {kernel}",
                path.display()
            );
        }
        compiled.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(!compiled.is_empty(), "no .cu files in {}", dir.display());
    eprintln!("compiled {compiled:?}");
}

/// The names after `__global__ void`.
fn kernel_names(source: &str) -> Vec<String> {
    source
        .split("__global__ void ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .map(|name| name.trim().to_string())
        .collect()
}
