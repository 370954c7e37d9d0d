//! `braid control`, `beat`, `events` and `dashboard`, through the built binary, against
//! `braid worker` processes on the Redis at 127.0.0.1:6379 (database 12, a key prefix of
//! its own per test).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long anything awaited here may take before the test fails.
const WAIT: Duration = Duration::from_secs(60);

fn broker() -> String {
    let prefix = format!(
        "braid-cli-ops-test-{}-{}-",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    format!("redis://127.0.0.1:6379/12?global_keyprefix={prefix}")
}

/// Runs `braid ARGS` to its end (killed after a minute) and returns what it did.
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
        let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let out = std::io::read_to_string(stdout).unwrap_or_default();
        let err = err.join().unwrap_or_default();
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
    rx.recv_timeout(WAIT).unwrap_or_else(|_| {
        if let Err(e) = Command::new("kill").args(["-9", &pid.to_string()]).status() {
            eprintln!("could not kill braid: {e}");
        }
        panic!("braid {args:?} did not finish within a minute");
    })
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `braid` process running in the background, its stdout lines on a channel; killed
/// when dropped.
struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl Background {
    fn start(args: &[&str]) -> Background {
        let mut child = Command::new(env!("CARGO_BIN_EXE_braid"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        // Keeps reading, so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Background {
            child,
            lines,
            name: args.first().copied().unwrap_or("braid").to_string(),
        }
    }

    /// The next stdout line; fails the test after a minute or at the end of the output.
    fn line(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("braid {} printed nothing more: {e}", self.name))
    }

    /// Reads lines until one satisfies `wanted`; returns it.
    fn line_where(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!("braid {} never printed {what}: {e}", self.name),
            }
        }
    }

    /// Sends SIGTERM and returns the exit status and the rest of the output.
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut rest = Vec::new();
        // The output ends when the process does.
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            rest.push(line);
        }
        let exit = self.child.wait().unwrap();
        (exit, rest)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Err(e) = self.child.kill() {
                eprintln!("could not kill braid {}: {e}", self.name);
            }
            if let Err(e) = self.child.wait() {
                eprintln!("could not reap braid {}: {e}", self.name);
            }
        }
    }
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
    assert!(
        stdout(&out).starts_with("ops-control@test: {\"error\":\"Invalid rate limit string"),
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
    let dir = std::env::temp_dir().join(format!(
        "braid-ops-beat-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
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
