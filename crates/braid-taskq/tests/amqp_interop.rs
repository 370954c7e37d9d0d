//! braid and Python Celery 5.x on one RabbitMQ: a Python client on braid workers (calls,
//! kwargs, failures, countdowns, retries, chain, group, chord, inspect ping; results in
//! Redis, and over rpc://), and a braid client on a Python worker (calls, failures,
//! retries, countdowns, chain, group and a chord across both languages, remote control).
//!
//! Needs RabbitMQ on 127.0.0.1:5672, Redis on 127.0.0.1:6379 and Celery in
//! `$BRAID_PYTHON` (default: the workspace's `target/venv/bin/python`); scripts/test
//! installs and starts them. Results in Redis database 4 under a key prefix per test;
//! queues with a random suffix.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use braid_taskq::{App, CallOptions, Error, State, Worker};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672//";
const REDIS: &str = "redis://127.0.0.1:6379/4";
mod common;

use common::{PythonWorker, output_within, python, scripts};

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
    let mut command = Command::new(python());
    command
        .current_dir(scripts())
        .env("BRAID_TEST_AMQP", AMQP)
        .env("BRAID_TEST_REDIS", REDIS)
        .env("BRAID_TEST_PREFIX", &run.prefix)
        .env("BRAID_TEST_BACKEND", if run.rpc { "rpc" } else { "redis" })
        .env("PYTHONPATH", scripts())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    command
}
fn python_client(rpc: bool) {
    let run = run_ids(if rpc { "py2rs-rpc" } else { "py2rs" }, rpc);
    let app = App::new(AMQP, Some(&run.backend)).unwrap();
    let queue = format!("braid-{}", &run.prefix[11..28]);
    let worker = Worker::builder(&app)
        .queues([queue.clone()])
        .concurrency(4)
        .hostname(format!("braid-{queue}@localhost"))
        .start()
        .unwrap();
    let mut command = python_command(&run);
    command.args(["amqp_client.py", &queue]);
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
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let replies = app
            .control("ping", json!({}), Duration::from_millis(500), None)
            .unwrap();
        if replies.iter().any(|r| r.get(name).is_some()) {
            return;
        }
        assert!(Instant::now() < deadline, "the Python worker did not start");
    }
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
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap();
    if !keys.is_empty() {
        let _removed: i64 = redis::cmd("DEL").arg(keys).query(&mut conn).unwrap();
    }
}
