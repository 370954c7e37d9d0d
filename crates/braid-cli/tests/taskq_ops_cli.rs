//! `braid control`, `beat`, `events` and `dashboard`, through the built binary, against
//! `braid worker` processes on the Redis at 127.0.0.1:6379 (database 12, a key prefix of
//! its own per test).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Background, WAIT, braid, stderr, stdout};

fn broker() -> String {
    common::broker(12, "braid-cli-ops-test")
}

/// `braid worker` with events on, once it says it is ready.
fn worker(broker: &str, hostname: &str) -> Background {
    let w = Background::start(&[
        "worker", "--broker", broker, "-c", "2", "-n", hostname, "-E",
    ]);
    let ready = w.line();
    assert!(ready.contains("ready"), "the worker said: {ready}");
    w
}

/// Asks every worker for `method` and returns the replies printed, one a line.
fn inspect(broker: &str, method: &str) -> String {
    let out = braid(&["inspect", "--broker", broker, method, "--timeout", "1"]);
    assert!(out.status.success(), "inspect {method}: {out:?}");
    stdout(&out)
}

/// Polls `check` until it holds, for at most a minute.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn control_changes_a_running_worker() {
    let broker = broker();
    let b = broker.as_str();
    let _worker = worker(b, "ops-control@test");

    let out = braid(&[
        "control",
        "--broker",
        b,
        "rate_limit",
        "tasks.add",
        "100/s",
        "--timeout",
        "1",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "ops-control@test: {\"ok\":\"new rate limit set successfully\"}\n"
    );
    let out = braid(&["submit", "--broker", b, "tasks.add", "2", "3", "--wait"]);
    assert!(stdout(&out).ends_with("\n5\n"), "{out:?}");
    // A limit the worker cannot read: its answer says why.
    let out = braid(&[
        "control",
        "--broker",
        b,
        "rate_limit",
        "tasks.add",
        "fast",
        "--timeout",
        "1",
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stdout(&out).starts_with("ops-control@test: {\"error\":\"Invalid rate limit string"),
        "{out:?}"
    );
    assert!(
        stderr(&out).contains("no worker accepted rate_limit"),
        "{out:?}"
    );

    let stats = inspect(b, "stats");
    assert!(stats.contains("\"max-concurrency\":2"), "{stats}");
    let out = braid(&["control", "--broker", b, "pool_grow", "2", "--timeout", "1"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "ops-control@test: {\"ok\":\"pool will grow\"}\n"
    );
    let stats = inspect(b, "stats");
    assert!(stats.contains("\"max-concurrency\":4"), "{stats}");

    // Revoke with --terminate ends a task that is running.
    let out = braid(&["submit", "--broker", b, "tasks.sleep", "600"]);
    assert!(out.status.success(), "{out:?}");
    let id = stdout(&out).trim().to_string();
    eventually("the long task running", || {
        inspect(b, "active").contains(&id)
    });
    let out = braid(&["control", "--broker", b, "revoke", &id, "--terminate"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), format!("revoked {id}\n"));
    eventually("the long task revoked", || {
        stdout(&braid(&["result", "--broker", b, &id])).starts_with("REVOKED")
    });
    assert!(!inspect(b, "active").contains(&id));
    assert!(inspect(b, "revoked").contains(&id));
}

#[test]
fn events_and_beat_show_and_send_tasks() {
    let broker = broker();
    let b = broker.as_str();
    let _worker = worker(b, "ops-beat@test");

    // A bounded run: the worker answers the heartbeat request `braid events` sends.
    let out = braid(&["events", "--broker", b, "--limit", "1"]);
    assert!(out.status.success(), "{out:?}");
    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 1, "{printed}");
    let event: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(event["hostname"], "ops-beat@test", "{event}");
    assert!(
        event["type"].as_str().unwrap().starts_with("worker-"),
        "{event}"
    );

    // A task's events, as JSON lines, while `braid events` runs.
    let events = Background::start(&["events", "--broker", b]);
    let first = events.line();
    assert!(first.contains("worker-"), "{first}");
    let out = braid(&["submit", "--broker", b, "tasks.add", "2", "3", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    let id = stdout(&out).lines().next().unwrap().to_string();
    let mut kinds = Vec::new();
    let succeeded = loop {
        let line = events.line_where("the task's events", |l| l.contains(&id));
        let event: Value = serde_json::from_str(&line).unwrap();
        kinds.push(event["type"].as_str().unwrap().to_string());
        if event["type"] == "task-succeeded" {
            break event;
        }
    };
    for kind in ["task-received", "task-started"] {
        assert!(kinds.iter().any(|k| k == kind), "{kinds:?}");
    }
    assert_eq!(succeeded["result"], "5", "{succeeded}");

    // `braid beat` sends an interval entry; the worker runs it.
    let dir = std::env::temp_dir().join(common::unique("braid-ops-beat"));
    std::fs::create_dir_all(&dir).unwrap();
    let schedule = dir.join("schedule.toml");
    std::fs::write(
        &schedule,
        "[[entries]]\nname = \"add-often\"\ntask = \"tasks.add\"\nargs = [20, 22]\nschedule = 0.5\n",
    )
    .unwrap();
    let beat = Background::start(&["beat", "--broker", b, "-s", schedule.to_str().unwrap()]);
    let banner = beat.line();
    assert!(banner.starts_with("braid beat: 1 entries"), "{banner}");
    let listed = beat.line();
    assert!(listed.contains("add-often -> tasks.add"), "{listed}");
    let received = events.line_where("a task sent by beat", |l| {
        l.contains("\"task-received\"") && l.contains("[20,22]")
    });
    let received: Value = serde_json::from_str(&received).unwrap();
    let beat_id = received["uuid"].as_str().unwrap().to_string();
    let done = events.line_where("the beat task done", |l| {
        l.contains(&beat_id) && l.contains("\"task-succeeded\"")
    });
    let done: Value = serde_json::from_str(&done).unwrap();
    assert_eq!(done["result"], "42", "{done}");
    let out = braid(&["result", "--broker", b, &beat_id]);
    assert_eq!(stdout(&out), "SUCCESS\n42\n");

    let (exit, rest) = beat.terminate();
    assert!(exit.success(), "{exit} {rest:?}");
    assert_eq!(rest.last().map(String::as_str), Some("braid beat: stopped"));
    let store = std::fs::read_to_string(dir.join("schedule.state.json"))
        .or_else(|_| {
            // The store's name is beat's to choose; find it beside the schedule.
            let found = std::fs::read_dir(&dir)
                .unwrap()
                .filter_map(Result::ok)
                .find(|e| e.file_name().to_string_lossy().contains("state"));
            std::fs::read_to_string(found.expect("a schedule store").path())
        })
        .unwrap();
    assert!(store.contains("add-often"), "{store}");
    drop(events);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("could not remove {}: {e}", dir.display());
    }
}

/// A one-shot HTTP/1.1 GET; returns the status and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn dashboard_serves_its_api() {
    let broker = broker();
    let b = broker.as_str();
    let _worker = worker(b, "ops-dash@test");
    let dashboard = Background::start(&["dashboard", "--broker", b, "--port", "0"]);
    let banner = dashboard.line();
    let addr: SocketAddr = banner
        .strip_prefix("braid dashboard: http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {banner:?}"))
        .parse()
        .unwrap();

    let (status, page) = get(addr, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<title>braid dashboard</title>"), "{page}");
    let out = braid(&["submit", "--broker", b, "tasks.add", "2", "3", "--wait"]);
    assert!(out.status.success(), "{out:?}");
    let id = stdout(&out).lines().next().unwrap().to_string();
    eventually("the task in the dashboard", || {
        let (status, body) = get(addr, &format!("/api/task/{id}"));
        status == 200 && serde_json::from_str::<Value>(&body).is_ok_and(|t| t["state"] == "SUCCESS")
    });
    let (status, body) = get(addr, "/api/snapshot");
    assert_eq!(status, 200);
    let snapshot: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(snapshot["counts"]["SUCCESS"], 1, "{snapshot}");
    eventually("the worker in the dashboard", || {
        let (_, body) = get(addr, "/api/snapshot");
        body.contains("\"hostname\":\"ops-dash@test\"")
    });
    let (status, body) = get(addr, "/api/tasks?search=tasks.ADD");
    assert_eq!(status, 200);
    let found: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(found[0]["uuid"], id.as_str(), "{found}");

    let (exit, rest) = dashboard.terminate();
    assert!(exit.success(), "{exit} {rest:?}");
    assert_eq!(
        rest.last().map(String::as_str),
        Some("braid dashboard: stopped")
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let out = braid(&[
        "control",
        "--broker",
        "redis://127.0.0.1:6379/12",
        "frobnicate",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unrecognized subcommand 'frobnicate'"),
        "{out:?}"
    );
    for command in [
        &["control", "--broker", "nope://x", "shutdown"][..],
        &[
            "beat",
            "--broker",
            "nope://x",
            "-s",
            "/nonexistent/schedule.toml",
        ],
        &["events", "--broker", "nope://x", "--limit", "1"],
        &["dashboard", "--broker", "nope://x", "--port", "0"],
    ] {
        let out = braid(command);
        assert!(!out.status.success(), "{command:?}: {out:?}");
        assert!(
            stderr(&out).contains("unknown scheme"),
            "{command:?}: {out:?}"
        );
    }
    let out = braid(&[
        "control",
        "--broker",
        "redis://127.0.0.1:1/0",
        "pool_grow",
        "--timeout",
        "0.3",
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr(&out).contains("cannot connect"), "{out:?}");
    let out = braid(&[
        "beat",
        "--broker",
        &broker(),
        "-s",
        "/nonexistent/schedule.toml",
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr(&out).contains("/nonexistent/schedule.toml"),
        "{out:?}"
    );
}
