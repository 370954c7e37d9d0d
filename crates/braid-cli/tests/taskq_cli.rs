//! `braid worker`, `submit`, `result`, `purge`, `inspect` and `bench taskq`, through the
//! built binary, on the Redis at 127.0.0.1:6379 (database 10, a key prefix of its own).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn broker() -> String {
    let prefix = format!(
        "braid-cli-test-{}-{}-",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    format!("redis://127.0.0.1:6379/10?global_keyprefix={prefix}")
}

fn braid(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let out = std::io::read_to_string(stdout).unwrap_or_default();
        let err = std::io::read_to_string(stderr).unwrap_or_default();
        let status = child.wait().unwrap();
        if tx
            .send(Output {
                status,
                stdout: out.into_bytes(),
                stderr: err.into_bytes(),
            })
            .is_err()
        {
            eprintln!("the test stopped waiting for braid");
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            if let Err(e) = Command::new("kill").args(["-9", &pid.to_string()]).status() {
                eprintln!("could not kill braid: {e}");
            }
            panic!("braid {args:?} did not finish within a minute");
        })
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `braid worker` in the background, killed when dropped; started once it says ready.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(broker: &str) -> WorkerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
            .args([
                "worker",
                "--broker",
                broker,
                "-Q",
                "celery,other",
                "-c",
                "2",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(first.contains("ready"), "the worker said: {first}");
        assert!(first.contains("tasks.add"), "{first}");
        // Keep reading so the worker never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        WorkerProcess(child)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            if let Err(e) = self.0.kill() {
                eprintln!("could not kill the worker: {e}");
            }
            if let Err(e) = self.0.wait() {
                eprintln!("could not reap the worker: {e}");
            }
        }
    }
}

#[test]
fn worker_submit_result_purge_inspect() {
    let broker = broker();
    let b = broker.as_str();
    let mut worker = WorkerProcess::start(b);

    let out = braid(&["submit", "--broker", b, "tasks.add", "2", "-3", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<String> = text(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1], "-1");
    let id = lines[0].clone();
    let out = braid(&["result", "--broker", b, &id]);
    assert_eq!(text(&out), "SUCCESS\n-1\n");

    let out = braid(&[
        "submit",
        "--broker",
        b,
        "tasks.xsum",
        "[1, 2, 3.5]",
        "--wait",
    ]);
    assert!(text(&out).ends_with("6.5\n"), "{out:?}");
    let out = braid(&[
        "submit",
        "--broker",
        b,
        "tasks.mul",
        "6",
        "7",
        "-Q",
        "other",
        "--wait",
    ]);
    assert!(text(&out).ends_with("42\n"), "{out:?}");
    let out = braid(&["submit", "--broker", b, "tasks.fail", "boom", "--wait"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("FAILURE") && text(&out).contains("TaskFailed: boom"),
        "{out:?}"
    );
    let out = braid(&["submit", "--broker", b, "tasks.sleep", "0.05", "--wait"]);
    assert!(text(&out).ends_with("0.05\n"), "{out:?}");
    let out = braid(&[
        "submit",
        "--broker",
        b,
        "tasks.noop",
        "--kwargs",
        "{}",
        "--wait",
    ]);
    assert!(text(&out).ends_with("null\n"), "{out:?}");

    for command in ["ping", "stats", "active", "reserved", "registered"] {
        let out = braid(&["inspect", "--broker", b, command, "--timeout", "0.3"]);
        assert!(out.status.success(), "{command}: {out:?}");
        assert!(text(&out).contains("@"), "{command}: {}", text(&out));
    }
    assert!(
        text(&braid(&[
            "inspect",
            "--broker",
            b,
            "ping",
            "--timeout",
            "0.3"
        ]))
        .contains("pong")
    );

    let out = braid(&["submit", "--broker", b, "tasks.noop", "-Q", "nobody"]);
    assert!(out.status.success());
    let out = braid(&["purge", "--broker", b, "-Q", "nobody"]);
    assert_eq!(text(&out), "purged 1 message from nobody\n");

    // SIGTERM: a warm shutdown, exit 0.
    let status = Command::new("kill")
        .args(["-TERM", &worker.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (tx, rx) = mpsc::channel();
    let mut child = std::mem::replace(&mut worker.0, Command::new("true").spawn().unwrap());
    std::thread::spawn(move || tx.send(child.wait()));
    let exit = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the worker stops after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let out = braid(&["submit", "--broker", "nope://x", "tasks.add"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scheme"));
    let out = braid(&[
        "inspect",
        "--broker",
        "redis://127.0.0.1:1/0",
        "ping",
        "--timeout",
        "0.3",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

#[test]
fn bench_taskq_runs_braids_side() {
    let out = braid(&[
        "bench",
        "taskq",
        "--quick",
        "--iterations-scale",
        "0.02",
        "--python",
        "/nonexistent/python",
    ]);
    assert!(out.status.success(), "{out:?}");
    let table = text(&out);
    for case in [
        "send_noop",
        "worker_noop",
        "end_to_end_noop",
        "delay_get_roundtrip",
    ] {
        assert!(table.contains(case), "{table}");
    }
}
