//! Shared helpers of braid-gpu's integration tests.
#![allow(dead_code)]

use std::sync::OnceLock;

use braid_gpu::{ClContext, ClQueue, Device};

/// Reports a test that cannot run here: a failure when `require` names a variable set to 1
/// (scripts/test sets them, so CI never skips silently), a printed note otherwise.
pub fn skipped(test: &str, what: &str, require: &str) {
    let message = format!("{test}: skipped, {what}");
    if std::env::var_os(require).is_some_and(|v| v == "1") {
        panic!("{message} ({require}=1 says it must be there)");
    }
    eprintln!("note: {message}");
}

/// The first CUDA device, or `None` (with a note) on a machine without one.
pub fn cuda(test: &str) -> Option<Device> {
    match Device::first() {
        Ok(device) => Some(device),
        Err(e) if e.is_unavailable() => {
            eprintln!("note: {test}: no CUDA device here ({e}); passes without running");
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

/// One OpenCL context and queue for the whole test binary, so that each program is built
/// once; `None` (with a note) without an OpenCL platform.
pub fn opencl(test: &str) -> Option<(ClContext, ClQueue)> {
    static SHARED: OnceLock<Result<(ClContext, ClQueue), String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        let context = ClContext::first().map_err(|e| e.to_string())?;
        let queue = ClQueue::new(&context).map_err(|e| e.to_string())?;
        Ok((context, queue))
    });
    match shared {
        Ok(pair) => Some(pair.clone()),
        Err(why) => {
            skipped(
                test,
                &format!("no OpenCL device: {why}"),
                "BRAID_REQUIRE_OPENCL",
            );
            None
        }
    }
}

/// A small deterministic generator (xorshift64*), so that tests need no `rand`.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    pub fn vec_f32(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }

    pub fn vec_f64(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.f64()).collect()
    }
}

/// ‖got − want‖ / ‖want‖ in f64.
pub fn relative_error(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let num: f64 = got.iter().zip(want).map(|(g, w)| (g - w).powi(2)).sum();
    let den: f64 = want.iter().map(|w| w * w).sum();
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}
