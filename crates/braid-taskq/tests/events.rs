//! Celery events: braid workers publish them in Celery's format (read back by braid's
//! receiver and by Python Celery's `app.events.Receiver`), braid's receiver reads a Python
//! worker's, a stalled receiver never slows a worker, and remote control (`scheduled`,
//! `rate_limit`, `pool_grow`/`pool_shrink`, `enable_events`) works, also from Python's
//! `app.control.inspect()`.
//!
//! The Redis tests need Redis on 127.0.0.1:6379 (database 7, a key prefix per test) and
//! Celery in `$BRAID_PYTHON` (default: the workspace's `target/venv/bin/python`);
//! scripts/test installs and starts both.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use braid_taskq::{App, CallOptions, EventReceiver, State, Worker};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const REDIS: &str = "redis://127.0.0.1:6379/7";
mod common;

use common::{PythonWorker, cluster, collect_until, has, json_lines, python_in_scripts};

#[braid_core::task(name = "events.noop")]
fn noop() {}

fn unique(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

#[test]
fn worker_events_in_celerys_format_on_memory() {
    let url = format!("memory://{}", unique("events"));
    let app = App::builder(&url, Some(&url))
        .send_sent_events(true)
        .build()
        .unwrap();
    let mut receiver = EventReceiver::new(&app).unwrap();
    let worker = Worker::builder(&app)
        .concurrency(2)
        .events(true)
        .hostname("ev@test")
        .start()
        .unwrap();
    let ok = app
        .send_task("tasks.add", vec![json!(2), json!(3)], CallOptions::new())
        .unwrap();
    let bad = app
        .send_task("tasks.fail", vec![json!("boom")], CallOptions::new())
        .unwrap();
    assert_eq!(ok.get(WAIT).unwrap(), json!(5));
    assert!(bad.get(WAIT).is_err());
    let (ok_id, bad_id) = (ok.id().to_string(), bad.id().to_string());
    let events = collect_until(&mut receiver, |e| {
        has(e, "task-succeeded", &ok_id) && has(e, "task-failed", &bad_id)
    });
    let find = |kind: &str, id: &str| common::find(&events, kind, id);
    let online = events.iter().find(|e| e.kind() == "worker-online").unwrap();
    for field in [
        "hostname",
        "utcoffset",
        "pid",
        "clock",
        "freq",
        "sw_ident",
        "sw_ver",
        "sw_sys",
        "active",
        "processed",
        "loadavg",
        "timestamp",
        "local_received",
    ] {
        assert!(
            online.get(field).is_some(),
            "worker-online lacks {field}: {online:?}"
        );
    }
    assert_eq!(online.hostname(), "ev@test");
    assert_eq!(online.str("sw_ident"), Some("braid"));
    let sent = find("task-sent", &ok_id);
    assert_eq!(sent.str("name"), Some("tasks.add"));
    assert_eq!(sent.str("queue"), Some("celery"));
    let received = find("task-received", &ok_id);
    assert_eq!(received.str("name"), Some("tasks.add"));
    assert_eq!(received.str("args"), Some("[2,3]"));
    assert_eq!(received.get("retries"), Some(&json!(0)));
    find("task-started", &ok_id);
    let succeeded = find("task-succeeded", &ok_id);
    assert_eq!(succeeded.str("result"), Some("5"));
    assert!(succeeded.f64("runtime").is_some());
    let failed = find("task-failed", &bad_id);
    assert_eq!(failed.str("exception"), Some("TaskFailed('boom')"));
    assert!(failed.str("traceback").unwrap().contains("boom"));

    let state = cluster(&events);
    assert_eq!(state.task(&ok_id).unwrap().state, State::Success);
    assert_eq!(state.task(&bad_id).unwrap().state, State::Failure);
    assert!(state.worker("ev@test").unwrap().alive());

    worker.shutdown();
    collect_until(&mut receiver, |e| {
        e.iter()
            .any(|e| e.kind() == "worker-offline" && e.hostname() == "ev@test")
    });
}

#[test]
fn a_stalled_receiver_never_slows_the_worker() {
    stalled_receiver(&format!("memory://{}", unique("stalled")), 15_000);
}

#[test]
fn a_stalled_receiver_never_slows_the_worker_on_redis() {
    let (url, prefix) = redis_run("stalled");
    stalled_receiver(&url, 15_000);
    clean(&prefix);
}

fn stalled_receiver(url: &str, n: usize) {
    let app = App::new(url, Some(url)).unwrap();
    // Subscribed, never read: its backlog fills up and the rest is dropped for it.
    let mut stalled = EventReceiver::new(&app).unwrap();
    let worker = Worker::builder(&app)
        .concurrency(2)
        .events(true)
        .start()
        .unwrap();
    let results = app
        .delay_many(noop::task(), (0..n).map(|_| braid_core::NoArgs))
        .unwrap();
    for r in &results {
        r.get(WAIT).unwrap();
    }
    assert_eq!(worker.stats().succeeded, n as u64);
    worker.shutdown();
    // It kept what fitted (at most its backlog), the newest were dropped, nothing blocked.
    let mut kept = 0;
    while stalled.try_recv().is_some() {
        kept += 1;
    }
    assert!(kept > 0 && kept <= 10_000, "kept {kept}");
}

#[test]
fn remote_control_on_memory() {
    let url = format!("memory://{}", unique("control"));
    let app = App::new(&url, Some(&url)).unwrap();
    let worker = Worker::builder(&app)
        .concurrency(2)
        .hostname("ctl@test")
        .start()
        .unwrap();
    let ask = |method: &str, args: Value| -> Value {
        let replies = app
            .control(method, args, Duration::from_secs(5), Some(1))
            .unwrap();
        replies[0]["ctl@test"].clone()
    };
    // A task due in a minute waits in the worker: `scheduled` shows it.
    let later = app
        .send_task(
            "tasks.add",
            vec![json!(1), json!(1)],
            CallOptions::new().countdown(Duration::from_millis(900)),
        )
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let scheduled = ask("scheduled", json!({}));
        if scheduled.as_array().is_some_and(|s| {
            s.iter()
                .any(|e| e["request"]["id"] == json!(later.id()) && e["eta"].is_string())
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "not scheduled: {scheduled}");
    }
    assert_eq!(later.get(WAIT).unwrap(), json!(2));

    assert_eq!(
        ask(
            "rate_limit",
            json!({"task_name": "tasks.add", "rate_limit": "100/s"})
        ),
        json!({"ok": "new rate limit set successfully"})
    );
    assert!(app.options_of("tasks.add").rate_limit.is_some());
    assert_eq!(
        ask(
            "rate_limit",
            json!({"task_name": "no.such", "rate_limit": "1/s"})
        ),
        json!({"error": "unknown task"})
    );
    assert!(
        ask(
            "rate_limit",
            json!({"task_name": "tasks.add", "rate_limit": "x/y"})
        )["error"]
            .is_string()
    );
    assert_eq!(
        ask(
            "rate_limit",
            json!({"task_name": "tasks.add", "rate_limit": null})
        ),
        json!({"ok": "rate limit disabled successfully"})
    );
    assert!(app.options_of("tasks.add").rate_limit.is_none());

    assert_eq!(
        ask("pool_grow", json!({"n": 2})),
        json!({"ok": "pool will grow"})
    );
    assert_eq!(ask("stats", json!({}))["pool"]["max-concurrency"], json!(4));
    assert_eq!(
        ask("pool_shrink", json!({"n": 3})),
        json!({"ok": "pool will shrink"})
    );
    assert_eq!(ask("stats", json!({}))["pool"]["max-concurrency"], json!(1));
    assert!(ask("pool_shrink", json!({"n": 1}))["error"].is_string());
    // One thread left still runs tasks.
    let r = app
        .send_task("tasks.add", vec![json!(20), json!(22)], CallOptions::new())
        .unwrap();
    assert_eq!(r.get(WAIT).unwrap(), json!(42));

    // Events off at start; switched on remotely.
    let mut receiver = EventReceiver::new(&app).unwrap();
    assert_eq!(
        ask("enable_events", json!({})),
        json!({"ok": "task events enabled"})
    );
    let r = app
        .send_task("tasks.add", vec![json!(1), json!(2)], CallOptions::new())
        .unwrap();
    r.get(WAIT).unwrap();
    let id = r.id().to_string();
    collect_until(&mut receiver, |e| has(e, "task-succeeded", &id));
    let queues = ask("active_queues", json!({}));
    assert_eq!(queues[0]["name"], json!("celery"));
    worker.shutdown();
}

fn python_command(prefix: &str) -> Command {
    let mut command = python_in_scripts();
    command
        .env("BRAID_TEST_REDIS", REDIS)
        .env("BRAID_TEST_PREFIX", prefix);
    command
}

/// A child process killed and reaped when dropped (also when a test fails).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Err(e) = self.0.kill() {
            eprintln!("could not kill {}: {e}", self.0.id());
        }
        if let Err(e) = self.0.wait() {
            eprintln!("could not reap {}: {e}", self.0.id());
        }
    }
}

fn redis_run(test: &str) -> (String, String) {
    let prefix = format!("braid-events-{test}-{}-", uuid::Uuid::new_v4().simple());
    (format!("{REDIS}?global_keyprefix={prefix}"), prefix)
}

fn clean(prefix: &str) {
    common::clean_redis(REDIS, prefix);
}

#[test]
fn python_receiver_reads_braid_worker_events() {
    let (url, prefix) = redis_run("rs2py");
    let app = App::new(&url, Some(&url)).unwrap();
    let queue = unique("evq");
    let mut child = python_command(&prefix)
        .args(["events_receiver.py", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Python receiver");
    let rx = json_lines(child.stdout.take().unwrap());
    let _child = Reaped(child);
    let first = rx
        .recv_timeout(Duration::from_secs(40))
        .expect("receiver ready");
    assert_eq!(first["type"], "ready");
    let worker = Worker::builder(&app)
        .queues([queue.clone()])
        .concurrency(2)
        .events(true)
        .hostname(format!("braid-{queue}@localhost"))
        .start()
        .unwrap();
    let on = || CallOptions::new().queue(&queue);
    // The receiver's PSUBSCRIBE may land a little after "ready": send until it sees both.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut kinds_seen = HashSet::new();
    while !(kinds_seen.contains("task-succeeded") && kinds_seen.contains("task-failed")) {
        assert!(Instant::now() < deadline, "Python saw only {kinds_seen:?}");
        let ok = app
            .send_task("tasks.add", vec![json!(2), json!(3)], on())
            .unwrap();
        let bad = app
            .send_task("tasks.fail", vec![json!("boom")], on())
            .unwrap();
        ok.get(WAIT).unwrap();
        assert!(bad.get(WAIT).is_err());
        while let Ok(event) = rx.recv_timeout(Duration::from_millis(500)) {
            kinds_seen.insert(event["type"].as_str().unwrap_or("").to_string());
            seen.push(event);
        }
    }
    let succeeded = seen.iter().find(|e| e["type"] == "task-succeeded").unwrap();
    assert_eq!(succeeded["result"], "5");
    assert_eq!(
        succeeded["hostname"],
        json!(format!("braid-{queue}@localhost"))
    );
    assert!(succeeded["local_received"].is_number());
    let failed = seen.iter().find(|e| e["type"] == "task-failed").unwrap();
    assert_eq!(failed["exception"], "TaskFailed('boom')");
    assert!(
        seen.iter()
            .any(|e| e["type"] == "task-received" && e["name"] == "tasks.add")
    );
    worker.shutdown();
    clean(&prefix);
}

#[test]
fn braid_receiver_reads_a_python_worker_and_python_inspects_braid() {
    let (url, prefix) = redis_run("py2rs");
    let app = App::new(&url, Some(&url)).unwrap();
    let mut receiver = EventReceiver::new(&app).unwrap();
    let py_queue = unique("pyq");
    let py_name = format!("py-{py_queue}@localhost");
    let _python =
        PythonWorker::start_with(python_command(&prefix), "celery_app", &py_queue, &["-E"]);
    let r = app
        .send_task(
            "py.add",
            vec![json!(20), json!(22)],
            CallOptions::new().queue(&py_queue),
        )
        .unwrap();
    assert_eq!(r.get(Duration::from_secs(60)).unwrap(), json!(42));
    let id = r.id().to_string();
    let events = collect_until(&mut receiver, |e| has(e, "task-succeeded", &id));
    let mut state = cluster(&events);
    let task = state.task(&id).unwrap();
    assert_eq!(task.state, State::Success);
    assert_eq!(task.name.as_deref(), Some("py.add"));
    assert_eq!(task.result.as_deref(), Some("42"));
    assert_eq!(task.worker.as_deref(), Some(py_name.as_str()));
    // Heartbeats come every two seconds.
    let events = collect_until(&mut receiver, |e| {
        e.iter()
            .any(|e| e.kind() == "worker-heartbeat" && e.hostname() == py_name)
    });
    for e in &events {
        state.event(e);
    }
    let py = state.worker(&py_name).unwrap();
    assert_eq!(py.sw_ident.as_deref(), Some("py-celery"));
    assert!(py.alive());

    // Python's inspect and control against a braid worker.
    let braid_name = format!("braid-{py_queue}@localhost");
    let worker = Worker::builder(&app)
        .queues([unique("rsq")])
        .concurrency(2)
        .hostname(&braid_name)
        .start()
        .unwrap();
    let mut command = python_command(&prefix);
    command.args(["remote_control.py", &braid_name]);
    let output = command.output().expect("run remote_control.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "remote_control.py failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    assert_eq!(out["ping"][&braid_name], json!({"ok": "pong"}));
    assert_eq!(out["stats"][&braid_name]["sw_ident"], "braid");
    assert!(out["stats"][&braid_name]["pool"]["max-concurrency"].is_number());
    assert!(out["active_queues"][&braid_name].is_array());
    assert!(
        out["registered"][&braid_name]
            .as_array()
            .unwrap()
            .contains(&json!("tasks.add"))
    );
    assert_eq!(out["scheduled"][&braid_name], json!([]));
    assert_eq!(
        out["rate_limit"],
        json!([{ &braid_name: {"ok": "new rate limit set successfully"} }])
    );
    worker.shutdown();
    clean(&prefix);
}

#[test]
fn events_and_locks_on_sqlite() {
    let path = std::env::temp_dir().join(format!("{}.db", unique("braid-events-sqlite")));
    let url = format!("sqlite://{}", path.display());
    let app = App::new(&url, Some(&url)).unwrap();
    let mut receiver = EventReceiver::new(&app).unwrap();
    let worker = Worker::builder(&app)
        .concurrency(2)
        .events(true)
        .hostname("sqlite@test")
        .start()
        .unwrap();
    let r = app
        .send_task("tasks.add", vec![json!(4), json!(5)], CallOptions::new())
        .unwrap();
    assert_eq!(r.get(WAIT).unwrap(), json!(9));
    let id = r.id().to_string();
    let events = collect_until(&mut receiver, |e| has(e, "task-succeeded", &id));
    assert!(has(&events, "task-received", &id));
    worker.shutdown();

    // The beat lock: one holder at a time, renewable, given up with a zero lifetime.
    let dir = std::env::temp_dir().join(unique("braid-beat-sqlite"));
    std::fs::create_dir_all(&dir).unwrap();
    let entries = || {
        vec![braid_taskq::Entry::new(
            "e",
            "tasks.add",
            braid_taskq::Schedule::every(Duration::from_secs(60)),
        )]
    };
    let mut a = braid_taskq::Beat::new(&app, entries(), dir.join("a.json")).unwrap();
    let mut b = braid_taskq::Beat::new(&app, entries(), dir.join("b.json")).unwrap();
    let now = std::time::SystemTime::now();
    assert!(a.tick_at(now).unwrap().leader);
    assert!(!b.tick_at(now).unwrap().leader);
    assert!(a.tick_at(now).unwrap().leader);
    a.release();
    assert!(b.tick_at(now).unwrap().leader);
    std::fs::remove_dir_all(dir).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        if let Err(e) = std::fs::remove_file(&file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            panic!("could not remove {file}: {e}");
        }
    }
}
