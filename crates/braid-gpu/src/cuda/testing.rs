//! Helpers for the unit tests that need NVRTC or a device.

/// Reports a test that cannot run because NVRTC is missing: a failure when
/// `BRAID_REQUIRE_NVRTC=1` (scripts/test sets it), a printed note otherwise.
pub(crate) fn nvrtc_missing(test: &str) {
    let message = format!(
        "{test}: NVRTC (libnvrtc.so) not found, so no CUDA kernel was compiled. {}",
        super::nvrtc::NVRTC_HINT
    );
    if std::env::var_os("BRAID_REQUIRE_NVRTC").is_some_and(|v| v == "1") {
        panic!("{message}");
    }
    eprintln!("note: skipped: {message}");
}
