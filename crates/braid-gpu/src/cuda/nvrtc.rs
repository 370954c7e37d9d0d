//! Run-time compilation of CUDA C to PTX with NVRTC, cached for the life of the process.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::error::{Backend, Error, Result};

/// What to tell a user whose NVRTC cannot be loaded.
pub(crate) const NVRTC_HINT: &str = "braid compiles CUDA kernels at run time with NVRTC. \
    Install the CUDA toolkit, or the pip wheel `nvidia-cuda-nvrtc` (13.0.x) and put its \
    lib folder (site-packages/nvidia/cu13/lib) on LD_LIBRARY_PATH; scripts/test does the \
    latter in target/venv";

/// True when NVRTC (`libnvrtc.so`) can be loaded; checked once per process.
///
/// Without it, CUDA kernels cannot be compiled: [`compile_ptx`] and every CUDA kernel
/// constructor return [`Error::LibraryMissing`].
pub fn nvrtc_available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: `is_culib_present` only tries to dlopen the candidate library names and
    // closes what it opened; it runs no code of the library beyond its initialisers.
    *PRESENT.get_or_init(|| unsafe { cudarc::nvrtc::sys::is_culib_present() })
}

pub(crate) fn ensure_nvrtc() -> Result<()> {
    if nvrtc_available() {
        Ok(())
    } else {
        Err(Error::LibraryMissing {
            library: "NVRTC (libnvrtc.so)",
            hint: NVRTC_HINT,
        })
    }
}

/// Compiles CUDA C source to PTX text with NVRTC, as `nvcc --ptx` would, with `options`
/// passed to the compiler (`"--gpu-architecture=compute_90"`, `"--use_fast_math"`). Needs no
/// GPU: only NVRTC. The source is compiled as it is (kernels that must be found by name
/// need `extern "C"`; [`SourceModule`](crate::SourceModule) adds it).
///
/// Results are cached by source and options, so compiling the same kernel twice costs one
/// compilation.
///
/// # Errors
/// [`Error::LibraryMissing`] without NVRTC; [`Error::Compile`] with the compiler's log when
/// the source has errors; [`Error::Invalid`] when the source or an option holds a NUL byte.
///
/// ```
/// use braid_gpu::{compile_ptx, nvrtc_available};
///
/// let source = r#"extern "C" __global__ void twice(float *x) { x[threadIdx.x] *= 2.0f; }"#;
/// match compile_ptx(source, &[]) {
///     Ok(ptx) => assert!(ptx.contains(".entry twice")),
///     Err(e) => assert!(!nvrtc_available(), "{e}"),
/// }
/// ```
pub fn compile_ptx(source: &str, options: &[&str]) -> Result<String> {
    let options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
    compile_cached(source, &options).map(|ptx| ptx.to_string())
}

type PtxCache = Mutex<HashMap<(String, Vec<String>), Arc<str>>>;

/// Compiles, or returns the PTX of an earlier compilation of the same source and options.
pub(crate) fn compile_cached(source: &str, options: &[String]) -> Result<Arc<str>> {
    static CACHE: OnceLock<PtxCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (source.to_string(), options.to_vec());
    if let Some(ptx) = cache.lock().get(&key) {
        return Ok(ptx.clone());
    }
    let ptx: Arc<str> = compile(source, options)?.into();
    cache.lock().insert(key, ptx.clone());
    Ok(ptx)
}

fn compile(source: &str, options: &[String]) -> Result<String> {
    ensure_nvrtc()?;
    // cudarc turns both into C strings and panics on an interior NUL.
    if source.contains('\0') || options.iter().any(|o| o.contains('\0')) {
        return Err(Error::Invalid(
            "kernel source and compiler options cannot contain a NUL byte".into(),
        ));
    }
    let opts = cudarc::nvrtc::CompileOptions {
        options: options.to_vec(),
        name: Some("braid_kernel.cu".into()),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(source, opts).map_err(|e| match e {
        cudarc::nvrtc::CompileError::CompileError { log, .. } => Error::Compile {
            backend: Backend::Cuda,
            log: log.to_string_lossy().trim_end().to_string(),
        },
        other => Error::cuda("NVRTC compilation", format!("{other:?}")),
    })?;
    tracing::debug!(elapsed = ?started.elapsed(), "NVRTC compiled a CUDA module");
    Ok(ptx.to_src())
}
