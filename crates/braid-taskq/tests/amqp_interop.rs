//! braid and Python Celery 5.x on one RabbitMQ: a Python client on braid workers (calls,
//! kwargs, failures, countdowns, retries, chain, group, chord, inspect ping, active,
//! reserved, stats and registered, control revoke, rate_limit and pool_grow; results in
//! Redis, and over rpc://), and a braid client on a Python worker (calls, failures,
//! retries, countdowns, chain, group and a chord across both languages, remote control),
//! and events both ways: a braid worker's (success, failure, retry, revoke, heartbeats)
//! read by braid's receiver and by Python's `app.events.Receiver`, and a Python worker's
//! (`-E`) read by braid's receiver.
//!
//! Needs RabbitMQ on 127.0.0.1:5672, Redis on 127.0.0.1:6379 and Celery in
//! `$BRAID_PYTHON` (default: the workspace's `target/venv/bin/python`); scripts/test
//! installs and starts them. Results in Redis database 4 under a key prefix per test;
//! queues with a random suffix.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use braid_taskq::{App, CallOptions, ClusterState, Error, Event, EventReceiver, State, Worker};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672//";
const REDIS: &str = "redis://127.0.0.1:6379/4";
mod common;

use common::{
    PythonWorker, cluster, collect_until, find, has, json_lines, output_within, python_in_scripts,
    wait_for_pong,
};

struct Run {
    prefix: String,
    backend: String,
    rpc: bool,
}

fn run_ids(test: &str, rpc: bool) -> Run {
    let prefix = format!("braid-amqp-{test}-{}-", uuid::Uuid::new_v4().simple());
    Run {
        backend: if rpc {
            "rpc://".into()
        } else {
            format!("{REDIS}?global_keyprefix={prefix}")
        },
        prefix,
        rpc,
    }
}

fn python_command(run: &Run) -> Command {
    with_run_env(python_in_scripts(), run)
}

/// `command` with the settings of `run` the Python app reads.
fn with_run_env(mut command: Command, run: &Run) -> Command {
    command
        .env("BRAID_TEST_AMQP", AMQP)
        .env("BRAID_TEST_REDIS", REDIS)
        .env("BRAID_TEST_PREFIX", &run.prefix)
        .env("BRAID_TEST_BACKEND", if run.rpc { "rpc" } else { "redis" });
    command
}

/// A braid worker on `queue` named `braid-{queue}@localhost`, sending events or not.
fn braid_worker(app: &App, queue: &str, concurrency: usize, events: bool) -> Worker {
    Worker::builder(app)
        .queues([queue.to_string()])
        .concurrency(concurrency)
        .events(events)
        .hostname(format!("braid-{queue}@localhost"))
        .start()
        .unwrap()
}

fn python_client(rpc: bool) {
    let run = run_ids(if rpc { "py2rs-rpc" } else { "py2rs" }, rpc);
    let app = App::new(AMQP, Some(&run.backend)).unwrap();
    let queue = format!("braid-{}", &run.prefix[11..28]);
    let worker = braid_worker(&app, &queue, 4, false);
    let name = worker.hostname().to_string();
    let mut command = python_command(&run);
    command.args(["amqp_client.py", &queue, &name]);
    let output = output_within(command, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python client failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    assert_eq!(out["add"], 5);
    assert_eq!(out["kwargs"], 42);
    assert_eq!(out["fail"], json!(["TaskFailed", "boom"]));
    assert_eq!(out["countdown"], 2);
    if !rpc {
        assert_eq!(out["retry"], json!([7, 1]));
        assert_eq!(out["chain"], 26);
        assert_eq!(out["group"], json!([0, 2, 4, 6, 8]));
        assert_eq!(out["chord"], 55);
    }
    assert!(
        out["ping"]
            .as_array()
            .unwrap()
            .contains(&json!({"ok": "pong"})),
        "{}",
        out["ping"]
    );
    // Remote control from Python: Celery's reply shapes.
    let slow = out["slow_id"].as_str().unwrap();
    let active = out["active"][&name].as_array().unwrap();
    let running = active
        .iter()
        .find(|t| t["id"] == slow)
        .unwrap_or_else(|| panic!("tasks.sleep is not active: {}", out["active"]));
    assert_eq!(running["name"], "tasks.sleep");
    assert_eq!(running["args"], json!([8000]));
    assert_eq!(running["hostname"], json!(name));
    assert_eq!(running["delivery_info"]["routing_key"], json!(queue));
    assert!(out["reserved"][&name].is_array(), "{}", out["reserved"]);
    assert_eq!(out["stats"][&name]["pool"]["max-concurrency"], 4);
    assert!(
        out["registered"][&name]
            .as_array()
            .unwrap()
            .contains(&json!("tasks.add")),
        "{}",
        out["registered"]
    );
    assert_eq!(
        out["rate_limit"],
        json!([{ &name: {"ok": "new rate limit set successfully"} }])
    );
    assert_eq!(
        out["pool_grow"],
        json!([{ &name: {"ok": "pool will grow"} }])
    );
    assert_eq!(out["stats_after"][&name]["pool"]["max-concurrency"], 6);
    assert_eq!(
        out["revoke"],
        json!([{ &name: {"ok": format!("tasks {slow} flagged as revoked")} }])
    );
    assert_eq!(out["terminated"], json!(["TaskRevokedError", "REVOKED"]));
    assert!(app.options_of("tasks.add").rate_limit.is_some());
    worker.shutdown();
    delete_queues(&[&queue]);
    if !rpc {
        clean(&run.prefix);
    }
}

#[test]
fn python_client_on_braid_workers() {
    python_client(false);
}

#[test]
fn python_client_with_rpc_results_on_braid_workers() {
    python_client(true);
}

fn wait_for_python_worker(app: &App, name: &str) {
    wait_for_pong(app, name, Duration::from_secs(60));
}

#[test]
fn braid_client_on_python_workers() {
    let run = run_ids("rs2py", false);
    let app = App::new(AMQP, Some(&run.backend)).unwrap();
    let py_queue = format!("py-{}", &run.prefix[11..28]);
    let rs_queue = format!("rs-{}", &run.prefix[11..28]);
    let _python = PythonWorker::start(python_command(&run), "amqp_app", &py_queue);
    let braid = Worker::builder(&app)
        .queues([rs_queue.clone()])
        .concurrency(2)
        .start()
        .unwrap();
    wait_for_python_worker(&app, &format!("py-{py_queue}@localhost"));
    let on_py = || CallOptions::new().queue(&py_queue);

    let r = app
        .send_task("py.add", vec![json!(2), json!(3)], on_py())
        .unwrap();
    assert_eq!(r.get(WAIT).unwrap(), json!(5));
    assert_eq!(r.state().unwrap(), State::Success);

    let err = app
        .send_task("py.fail", vec![json!("from python")], on_py())
        .unwrap()
        .get(WAIT)
        .unwrap_err();
    let Error::Task(failure) = err else {
        panic!("expected a Python exception, got {err:?}")
    };
    assert_eq!(failure.exc_type(), "ValueError");
    assert_eq!(failure.message(), "from python");
    assert!(failure.traceback.unwrap().contains("ValueError"));

    let retried = app
        .send_task("py.retry_once", vec![json!("v")], on_py())
        .unwrap();
    assert_eq!(retried.get(WAIT).unwrap(), json!(["v", 1]));

    let later = app
        .send_task(
            "py.mul",
            vec![json!(6), json!(7)],
            on_py().countdown(Duration::from_millis(1500)),
        )
        .unwrap();
    assert_eq!(later.get(WAIT).unwrap(), json!(42));

    common::canvas_across_languages(&app, &rs_queue, &py_queue, WAIT);

    let stats = app
        .control("stats", json!({}), Duration::from_millis(1000), None)
        .unwrap();
    assert!(
        stats
            .iter()
            .any(|r| r.get(format!("py-{py_queue}@localhost")).is_some()),
        "{stats:?}"
    );
    braid.shutdown();
    drop(_python);
    delete_queues(&[&py_queue, &rs_queue]);
    clean(&run.prefix);
}

/// Runs Python's `celery -A amqp_app -b AMQP inspect ARGS...` (the CLI, as people type
/// it) and returns what it printed.
fn celery_inspect(run: &Run, args: &[&str]) -> String {
    let mut command = with_run_env(common::celery_in_scripts(), run);
    command
        .args(["-A", "amqp_app", "-b", AMQP, "inspect"])
        .args(args);
    let output = output_within(command, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "celery inspect {args:?} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn celery_inspect_cli_sees_a_braid_worker() {
    let run = run_ids("cli", false);
    let app = App::new(AMQP, Some(&run.backend)).unwrap();
    let queue = format!("braid-cli-{}", &run.prefix[11..28]);
    let worker = braid_worker(&app, &queue, 2, false);
    let name = worker.hostname().to_string();
    wait_for_pong(&app, &name, WAIT);

    // `inspect ping`, as people type it: the node answers pong.
    let ping = celery_inspect(&run, &["ping", "-d", &name, "--timeout", "5"]);
    assert!(
        ping.contains(&format!("->  {name}: OK")) && ping.contains("pong"),
        "{ping}"
    );
    assert!(ping.contains("1 node online"), "{ping}");

    // `inspect stats` and `inspect active` in JSON: braid's answers under its node name.
    let stats = celery_inspect(&run, &["stats", "-d", &name, "--timeout", "5", "--json"]);
    let stats: Value =
        serde_json::from_str(stats.trim()).unwrap_or_else(|e| panic!("{e}: {stats}"));
    assert_eq!(stats[&name]["sw_ident"], "braid", "{stats}");
    assert_eq!(stats[&name]["pool"]["max-concurrency"], 2, "{stats}");
    let running = app
        .send_task(
            "tasks.sleep",
            vec![json!(8000)],
            CallOptions::new().queue(&queue),
        )
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let active = celery_inspect(&run, &["active", "-d", &name, "--timeout", "5", "--json"]);
        let active: Value =
            serde_json::from_str(active.trim()).unwrap_or_else(|e| panic!("{e}: {active}"));
        let tasks = active[&name]
            .as_array()
            .unwrap_or_else(|| panic!("{active}"));
        if let Some(task) = tasks.iter().find(|t| t["id"] == json!(running.id())) {
            assert_eq!(task["name"], "tasks.sleep");
            assert_eq!(task["args"], json!([8000]));
            break;
        }
        assert!(Instant::now() < deadline, "never active: {active}");
    }
    app.revoke(&[running.id()], true).unwrap();
    assert!(matches!(running.get(WAIT), Err(Error::Revoked(_))));
    worker.shutdown();
    delete_queues(&[&queue]);
    clean(&run.prefix);
}

/// The event types every worker test expects, Celery's names.
const EVENT_TYPES: [&str; 8] = [
    "worker-online",
    "worker-heartbeat",
    "task-received",
    "task-started",
    "task-succeeded",
    "task-failed",
    "task-retried",
    "task-revoked",
];

/// Python's event receiver on RabbitMQ, killed when dropped; its events come through
/// `events`, one JSON object each, once it has said it is ready.
struct PythonReceiver {
    child: Child,
    events: mpsc::Receiver<Value>,
}

impl PythonReceiver {
    fn start(run: &Run) -> PythonReceiver {
        let mut command = python_command(run);
        command
            .env("BRAID_TEST_APP", "amqp_app")
            .args(["events_receiver.py", "60"])
            .args(EVENT_TYPES)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("start the Python receiver");
        let events = json_lines(child.stdout.take().unwrap());
        let receiver = PythonReceiver { child, events };
        let first = receiver
            .events
            .recv_timeout(Duration::from_secs(60))
            .expect("the Python receiver never got ready");
        assert_eq!(first["type"], "ready");
        receiver
    }

    /// Reads until `done` accepts what came; panics after `WAIT`.
    fn until(&self, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut seen: Vec<Value> = Vec::new();
        while !done(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            let types: HashSet<&str> = seen.iter().filter_map(|e| e["type"].as_str()).collect();
            assert!(!left.is_zero(), "Python saw only {types:?}");
            match self.events.recv_timeout(left) {
                Ok(event) => seen.push(event),
                Err(_) => panic!("Python's receiver ended; it saw {types:?}"),
            }
        }
        seen
    }
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        common::kill(self.child.id());
        if let Err(e) = self.child.wait() {
            eprintln!("could not reap the Python receiver: {e}");
        }
    }
}

/// Revokes `id` and waits until the worker `name` has it in its revoked list, so a task
/// sent with that id afterwards is surely revoked there.
fn revoke_before_sending(app: &App, name: &str, id: &str) {
    app.revoke(&[id], false).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let replies = app
            .control_to(
                "revoked",
                json!({}),
                Some(vec![name.to_string()]),
                Duration::from_secs(2),
                Some(1),
            )
            .unwrap();
        if replies.iter().any(|r| {
            r[name]
                .as_array()
                .is_some_and(|ids| ids.contains(&json!(id)))
        }) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never listed {id} as revoked: {replies:?}"
        );
    }
}

/// Sends four tasks to `queue`, on the worker `name`: `ok` (name, args, result) succeeds,
/// `bad` (name, args) fails, `retried` (name, args, result) retries once, and `ok`'s task
/// again, revoked before it is sent. Waits for their outcomes and returns their ids in
/// that order.
fn four_outcomes(
    app: &App,
    name: &str,
    queue: &str,
    ok: (&str, Vec<Value>, Value),
    bad: (&str, Vec<Value>),
    retried: (&str, Vec<Value>, Value),
) -> [String; 4] {
    let on = || CallOptions::new().queue(queue);
    let doomed = uuid::Uuid::new_v4().to_string();
    revoke_before_sending(app, name, &doomed);
    let revoked = app
        .send_task(ok.0, vec![json!(0), json!(0)], on().task_id(&doomed))
        .unwrap();
    let succeeding = app.send_task(ok.0, ok.1, on()).unwrap();
    let failing = app.send_task(bad.0, bad.1, on()).unwrap();
    let retrying = app.send_task(retried.0, retried.1, on()).unwrap();
    assert_eq!(succeeding.get(WAIT).unwrap(), ok.2);
    assert!(matches!(failing.get(WAIT), Err(Error::Task(_))));
    assert_eq!(retrying.get(WAIT).unwrap(), retried.2);
    assert!(matches!(revoked.get(WAIT), Err(Error::Revoked(_))));
    [&succeeding, &failing, &retrying, &revoked].map(|r| r.id().to_string())
}

/// Reads `receiver` until it has the events of [`four_outcomes`]'s tasks `ids` and
/// `worker-online` and `worker-heartbeat` from `hostname`.
fn events_of_four(receiver: &mut EventReceiver, ids: &[String; 4], hostname: &str) -> Vec<Event> {
    collect_until(receiver, |e| {
        has(e, "task-succeeded", &ids[0])
            && has(e, "task-failed", &ids[1])
            && has(e, "task-retried", &ids[2])
            && has(e, "task-succeeded", &ids[2])
            && has(e, "task-revoked", &ids[3])
            && ["worker-online", "worker-heartbeat"]
                .iter()
                .all(|k| e.iter().any(|e| e.kind() == *k && e.hostname() == hostname))
    })
}

/// The cluster state of `events`, with [`four_outcomes`]'s tasks `ids` in their states.
fn states_of_four(events: &[Event], ids: &[String; 4]) -> ClusterState {
    let state = cluster(events);
    assert_eq!(state.task(&ids[0]).unwrap().state, State::Success);
    assert_eq!(state.task(&ids[1]).unwrap().state, State::Failure);
    assert_eq!(state.task(&ids[3]).unwrap().state, State::Revoked);
    state
}

#[test]
fn braid_worker_events_reach_braid_and_python_receivers() {
    let run = run_ids("events-rs", false);
    let app = App::new(AMQP, Some(&run.backend)).unwrap();
    let queue = format!("braid-ev-{}", &run.prefix[11..28]);
    let name = format!("braid-{queue}@localhost");
    // Both receivers listen before the worker starts.
    let python = PythonReceiver::start(&run);
    let mut receiver = EventReceiver::new(&app).unwrap();
    let worker = braid_worker(&app, &queue, 2, true);
    assert_eq!(worker.hostname(), name);
    let ids = four_outcomes(
        &app,
        &name,
        &queue,
        ("tasks.add", vec![json!(2), json!(3)], json!(5)),
        ("tasks.fail", vec![json!("boom")]),
        ("tasks.flaky", vec![json!(7)], json!([7, 1])),
    );

    // (a) braid's receiver on RabbitMQ.
    let events = events_of_four(&mut receiver, &ids, &name);
    for kind in ["worker-online", "worker-heartbeat"] {
        let e = events
            .iter()
            .find(|e| e.kind() == kind && e.hostname() == name)
            .unwrap();
        for field in [
            "freq",
            "active",
            "processed",
            "loadavg",
            "sw_ident",
            "timestamp",
            "pid",
            "clock",
        ] {
            assert!(e.get(field).is_some(), "{kind} lacks {field}: {e:?}");
        }
        assert_eq!(e.str("sw_ident"), Some("braid"));
    }
    let received = find(&events, "task-received", &ids[0]);
    assert_eq!(received.str("name"), Some("tasks.add"));
    assert_eq!(received.str("args"), Some("[2,3]"));
    assert_eq!(received.hostname(), name);
    find(&events, "task-started", &ids[0]);
    let succeeded = find(&events, "task-succeeded", &ids[0]);
    assert_eq!(succeeded.str("result"), Some("5"));
    assert!(succeeded.f64("runtime").is_some());
    let failed = find(&events, "task-failed", &ids[1]);
    assert_eq!(failed.str("exception"), Some("TaskFailed('boom')"));
    assert!(failed.str("traceback").unwrap().contains("boom"));
    let retry = find(&events, "task-retried", &ids[2]);
    assert!(retry.str("exception").is_some(), "{retry:?}");
    assert!(retry.str("traceback").is_some(), "{retry:?}");
    let gone = find(&events, "task-revoked", &ids[3]);
    assert_eq!(gone.get("terminated"), Some(&json!(false)));
    assert_eq!(gone.get("expired"), Some(&json!(false)));
    let state = states_of_four(&events, &ids);
    assert!(state.worker(&name).unwrap().alive());

    // (b) Python Celery's receiver saw the same, in Celery's field names.
    let seen = python.until(|seen| {
        EVENT_TYPES.iter().all(|kind| {
            seen.iter().any(|e| {
                e["type"] == *kind
                    && (e["hostname"] == json!(name))
                    && (kind.starts_with("worker") || ids.iter().any(|id| e["uuid"] == json!(id)))
            })
        })
    });
    let py = |kind: &str, id: &str| {
        seen.iter()
            .find(|e| e["type"] == kind && e["uuid"] == id)
            .unwrap_or_else(|| panic!("Python saw no {kind} for {id}"))
    };
    assert_eq!(py("task-received", &ids[0])["name"], "tasks.add");
    assert_eq!(py("task-succeeded", &ids[0])["result"], "5");
    assert_eq!(
        py("task-failed", &ids[1])["exception"],
        "TaskFailed('boom')"
    );
    assert!(py("task-retried", &ids[2])["exception"].is_string());
    assert_eq!(py("task-revoked", &ids[3])["terminated"], false);
    let beat = seen
        .iter()
        .find(|e| e["type"] == "worker-heartbeat")
        .unwrap();
    assert_eq!(beat["sw_ident"], "braid");
    assert!(beat["freq"].is_number() && beat["local_received"].is_number());
    drop(python);
    worker.shutdown();
    delete_queues(&[&queue]);
    clean(&run.prefix);
}

#[test]
fn braid_receiver_reads_a_python_worker_on_rabbitmq() {
    let run = run_ids("events-py", false);
    let app = App::new(AMQP, Some(&run.backend)).unwrap();
    let py_queue = format!("py-ev-{}", &run.prefix[11..28]);
    let py_name = format!("py-{py_queue}@localhost");
    let mut receiver = EventReceiver::new(&app).unwrap();
    let _python = PythonWorker::start_with(python_command(&run), "amqp_app", &py_queue, &["-E"]);
    wait_for_python_worker(&app, &py_name);
    let ids = four_outcomes(
        &app,
        &py_name,
        &py_queue,
        ("py.add", vec![json!(20), json!(22)], json!(42)),
        ("py.fail", vec![json!("from python")]),
        ("py.retry_once", vec![json!("v")], json!(["v", 1])),
    );
    let events = events_of_four(&mut receiver, &ids, &py_name);
    let received = find(&events, "task-received", &ids[0]);
    assert_eq!(received.str("name"), Some("py.add"));
    find(&events, "task-started", &ids[0]);
    assert_eq!(
        find(&events, "task-succeeded", &ids[0]).str("result"),
        Some("42")
    );
    let failed = find(&events, "task-failed", &ids[1]);
    assert_eq!(failed.str("exception"), Some("ValueError('from python')"));
    assert!(
        find(&events, "task-retried", &ids[2])
            .str("exception")
            .is_some()
    );
    let state = states_of_four(&events, &ids);
    let worker = state.worker(&py_name).unwrap();
    assert_eq!(worker.sw_ident.as_deref(), Some("py-celery"));
    assert!(worker.alive());
    drop(_python);
    delete_queues(&[&py_queue]);
    clean(&run.prefix);
}

/// Deletes the queues a test declared (they are durable, as Celery's are).
fn delete_queues(queues: &[&str]) {
    for queue in queues {
        match Command::new("rabbitmqctl")
            .args(["delete_queue", queue])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(status) if status.success() => {}
            Ok(status) => eprintln!("rabbitmqctl delete_queue {queue}: {status}"),
            Err(e) => eprintln!("rabbitmqctl delete_queue {queue}: {e}"),
        }
    }
}

fn clean(prefix: &str) {
    common::clean_redis(REDIS, prefix);
}
