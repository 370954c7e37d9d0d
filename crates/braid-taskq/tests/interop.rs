//! braid and Python Celery 5.x on one Redis: a Python client on braid workers (calls,
//! failures, retries, countdowns, chain, group, a chord, `celery.map`, revoke, inspect
//! ping), and a braid client on a Python worker (calls, failures, retries, chain and
//! group across both languages, remote control).
//!
//! Needs Redis on 127.0.0.1:6379 and Celery in `$BRAID_PYTHON` (default: the workspace's
//! `target/venv/bin/python`); scripts/test installs and starts both. Database 11, a key
//! prefix of its own per test.

use std::process::Command;
use std::time::{Duration, Instant};

use braid_taskq::{App, CallOptions, Error, State, Worker};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const REDIS: &str = "redis://127.0.0.1:6379/11";

mod common;

use common::{PythonWorker, output_within, python_in_scripts};

struct Run {
    prefix: String,
    url: String,
}

fn run_ids(test: &str) -> Run {
    let prefix = format!("braid-interop-{test}-{}-", uuid::Uuid::new_v4().simple());
    Run {
        url: format!("{REDIS}?global_keyprefix={prefix}"),
        prefix,
    }
}

fn python_command(run: &Run) -> Command {
    let mut command = python_in_scripts();
    command
        .env("BRAID_TEST_REDIS", REDIS)
        .env("BRAID_TEST_PREFIX", &run.prefix);
    command
}

#[test]
fn python_client_on_braid_workers() {
    let run = run_ids("py2rs");
    let app = App::new(&run.url, Some(&run.url)).unwrap();
    let queue = format!("braid-{}", &run.prefix[14..24]);
    let worker = Worker::builder(&app)
        .queues([queue.clone()])
        .concurrency(4)
        .hostname(format!("braid-{queue}@localhost"))
        .start()
        .unwrap();
    let mut command = python_command(&run);
    command.args(["client.py", &queue]);
    let output = output_within(command, Duration::from_secs(50));
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
    assert_eq!(out["retry"], json!([7, 1]));
    assert_eq!(out["countdown"], 2);
    assert_eq!(out["chain"], 26);
    assert_eq!(out["group"], json!([0, 2, 4, 6, 8]));
    assert_eq!(out["chord"], 55);
    assert_eq!(out["map"], json!([2, 4, 6]));
    assert_eq!(out["revoked"], json!(["TaskRevokedError", "REVOKED"]));
    assert_eq!(out["ping"], json!([{"ok": "pong"}]));
    worker.shutdown();
    clean(&run.prefix);
}

fn wait_for_python_worker(app: &App, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let replies = app
            .control("ping", json!({}), Duration::from_millis(500), Some(1))
            .unwrap();
        if replies.iter().any(|r| r.get(name).is_some()) {
            return;
        }
        assert!(Instant::now() < deadline, "the Python worker did not start");
    }
}

#[test]
fn braid_client_on_python_workers() {
    let run = run_ids("rs2py");
    let app = App::new(&run.url, Some(&run.url)).unwrap();
    let py_queue = format!("py-{}", &run.prefix[14..24]);
    let rs_queue = format!("rs-{}", &run.prefix[14..24]);
    let _python = PythonWorker::start(python_command(&run), "celery_app", &py_queue);
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
    assert_eq!(failure.exception.exc_module.as_deref(), Some("builtins"));
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
            on_py().countdown(Duration::from_millis(500)),
        )
        .unwrap();
    assert_eq!(later.get(WAIT).unwrap(), json!(42));

    common::canvas_across_languages(&app, &rs_queue, &py_queue, WAIT);

    let stats = app
        .control("stats", json!({}), Duration::from_millis(700), None)
        .unwrap();
    assert!(
        stats
            .iter()
            .any(|r| r.get(format!("py-{py_queue}@localhost")).is_some()),
        "{stats:?}"
    );
    braid.shutdown();
    drop(_python);
    clean(&run.prefix);
}

fn clean(prefix: &str) {
    common::clean_redis(REDIS, prefix);
}
