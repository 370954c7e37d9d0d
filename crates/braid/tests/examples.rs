//! Runs every example program of the `braid` crate and checks that it exits 0 and prints
//! something.
//!
//! The examples are found by listing `examples/`, so recipes added later are run too. Their
//! binaries are the ones `cargo test` builds next to this test's own binary; this test
//! never runs cargo itself (a nested cargo would wait on the target directory's lock).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one example may run before it counts as hung and is killed.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How many examples run at once.
const PARALLEL: usize = 2;

/// The names of the examples: `examples/NAME.rs` and `examples/NAME/main.rs`.
fn example_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut names: Vec<String> = entries
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter_map(|path| {
            let is_example = if path.is_dir() {
                path.join("main.rs").is_file()
            } else {
                path.extension().is_some_and(|ext| ext == "rs")
            };
            let stem = path.file_stem()?.to_str()?.to_string();
            is_example.then_some(stem)
        })
        .collect();
    names.sort();
    names
}

/// Where cargo puts the example binaries: `target/<profile>/examples`, beside the `deps`
/// folder that holds this test.
fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    profile_dir.join("examples")
}

/// What went wrong with one example, ready to print.
struct Failure {
    name: String,
    what: String,
}

fn run_example(name: &str, binary: &Path) -> Result<Duration, Failure> {
    let fail = |what: String| Failure {
        name: name.to_string(),
        what,
    };
    let start = Instant::now();
    let child = Command::new(binary)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("could not start {}: {e}", binary.display())))?;
    let pid = child.id();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || done_tx.send(child.wait_with_output()));
    let output: Output = match done_rx.recv_timeout(TIMEOUT) {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(fail(format!("could not wait for it: {e}"))),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            kill(pid);
            return Err(fail(format!("still running after {TIMEOUT:?}; killed")));
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Err(fail("the thread waiting for it died".to_string()));
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(fail(format!(
            "exited with {}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}",
            output.status
        )));
    }
    if stdout.trim().is_empty() {
        return Err(fail(format!(
            "exited 0 but printed nothing\n--- stderr ---\n{stderr}"
        )));
    }
    Ok(start.elapsed())
}

/// Kills a hung example; the waiting thread still owns its `Child`, so this goes by pid.
#[cfg(unix)]
fn kill(pid: u32) {
    match Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
    {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("kill -KILL {pid} exited with {status}"),
        Err(e) => eprintln!("could not run kill -KILL {pid}: {e}"),
    }
}

#[cfg(not(unix))]
fn kill(pid: u32) {
    eprintln!("cannot kill hung example (pid {pid}) on this platform; it is left running");
}

#[test]
fn every_example_runs_and_exits_zero() {
    let names = example_names();
    assert!(!names.is_empty(), "no examples found under examples/");

    let dir = examples_dir();
    let binary = |name: &str| dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let missing: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|name| !binary(name).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "example binaries not built in {}: {missing:?}. Run the whole `cargo test -p braid` \
         (it builds the examples before the tests), or `cargo build -p braid --examples` \
         before `cargo test -p braid --test examples`.",
        dir.display()
    );

    let next = AtomicUsize::new(0);
    let (failures, timings): (Vec<Failure>, Vec<(String, Duration)>) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..PARALLEL)
            .map(|_| {
                s.spawn(|| {
                    let mut results = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(name) = names.get(i) else {
                            return results;
                        };
                        results.push((name.clone(), run_example(name, &binary(name))));
                    }
                })
            })
            .collect();
        let mut failures = Vec::new();
        let mut timings = Vec::new();
        for worker in workers {
            for (name, result) in worker.join().expect("an example runner panicked") {
                match result {
                    Ok(took) => timings.push((name, took)),
                    Err(failure) => failures.push(failure),
                }
            }
        }
        (failures, timings)
    });

    for (name, took) in &timings {
        eprintln!("ok   {name} ({took:.2?})");
    }
    if !failures.is_empty() {
        let report: Vec<String> = failures
            .iter()
            .map(|f| format!("FAIL {}: {}", f.name, f.what))
            .collect();
        panic!(
            "{} of {} examples failed:\n{}",
            failures.len(),
            names.len(),
            report.join("\n\n")
        );
    }
}
