//! A small runner for process tests: they own `main` (children re-execute the test binary,
//! and `braid_core::init()` must run first), so they cannot use the libtest harness.

use std::process::ExitCode;
use std::time::{Duration, Instant};

/// One named check: `Ok` or the reason it failed.
pub type Check = (&'static str, fn() -> Result<(), String>);

/// How long the whole binary may run before the watchdog declares a hang.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs every check (or those whose names contain the first command-line argument),
/// printing one line each and a summary; exits non-zero if any failed. A watchdog aborts
/// the process if the checks hang.
pub fn run(checks: &[Check]) -> ExitCode {
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(|| {
            std::thread::sleep(WATCHDOG);
            eprintln!(
                "watchdog: the checks are still running after {WATCHDOG:?}: a hang; aborting"
            );
            std::process::abort();
        })
        .expect("the watchdog thread starts");
    let filter: Option<String> = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let (mut passed, mut failed) = (0, 0);
    for (name, check) in checks {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let start = Instant::now();
        let outcome = std::panic::catch_unwind(check).unwrap_or_else(|payload| {
            Err(format!(
                "panicked: {}",
                braid_core::panic_message(&*payload)
            ))
        });
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("ok   {name} ({:.1?})", start.elapsed());
            }
            Err(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `Err` with a message unless `cond`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}
