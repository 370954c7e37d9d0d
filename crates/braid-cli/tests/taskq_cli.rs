//! `braid worker`, `submit`, `result`, `purge`, `inspect` and `bench taskq`, through the
//! built binary, on the Redis at 127.0.0.1:6379 (database 10, a key prefix of its own).

mod common;

use std::process::Stdio;

use common::{Background, braid, stderr, stdout};

fn broker() -> String {
    common::broker(10, "braid-cli-test")
}

/// `braid worker` in the background (its stderr dropped), once it says it is ready.
fn worker(broker: &str) -> Background {
    let mut command = common::command(&[
        "worker",
        "--broker",
        broker,
        "-Q",
        "celery,other",
        "-c",
        "2",
    ]);
    command.stderr(Stdio::null());
    let worker = Background::spawn(command, "worker");
    let first = worker.line();
    assert!(first.contains("ready"), "the worker said: {first}");
    assert!(first.contains("tasks.add"), "{first}");
    worker
}

#[test]
fn worker_submit_result_purge_inspect() {
    let broker = broker();
    let b = broker.as_str();
    let worker = worker(b);

    let out = braid(&["submit", "--broker", b, "tasks.add", "2", "-3", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1], "-1");
    let id = lines[0].clone();
    let out = braid(&["result", "--broker", b, &id]);
    assert_eq!(stdout(&out), "SUCCESS\n-1\n");

    let out = braid(&[
        "submit",
        "--broker",
        b,
        "tasks.xsum",
        "[1, 2, 3.5]",
        "--wait",
    ]);
    assert!(stdout(&out).ends_with("6.5\n"), "{out:?}");
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
    assert!(stdout(&out).ends_with("42\n"), "{out:?}");
    let out = braid(&["submit", "--broker", b, "tasks.fail", "boom", "--wait"]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("FAILURE") && stdout(&out).contains("TaskFailed: boom"),
        "{out:?}"
    );
    let out = braid(&["submit", "--broker", b, "tasks.sleep", "0.05", "--wait"]);
    assert!(stdout(&out).ends_with("0.05\n"), "{out:?}");
    let out = braid(&[
        "submit",
        "--broker",
        b,
        "tasks.noop",
        "--kwargs",
        "{}",
        "--wait",
    ]);
    assert!(stdout(&out).ends_with("null\n"), "{out:?}");

    for command in ["ping", "stats", "active", "reserved", "registered"] {
        let out = braid(&["inspect", "--broker", b, command, "--timeout", "0.3"]);
        assert!(out.status.success(), "{command}: {out:?}");
        assert!(stdout(&out).contains("@"), "{command}: {}", stdout(&out));
    }
    assert!(
        stdout(&braid(&[
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
    assert_eq!(stdout(&out), "purged 1 message from nobody\n");

    // SIGTERM: a warm shutdown, exit 0.
    let (exit, _) = worker.terminate();
    assert!(exit.success(), "{exit}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let out = braid(&["submit", "--broker", "nope://x", "tasks.add"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown scheme"));
    let out = braid(&[
        "inspect",
        "--broker",
        "redis://127.0.0.1:1/0",
        "ping",
        "--timeout",
        "0.3",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot connect"));
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
    let table = stdout(&out);
    for case in [
        "send_noop",
        "worker_noop",
        "end_to_end_noop",
        "delay_get_roundtrip",
    ] {
        assert!(table.contains(case), "{table}");
    }
}
