//! Reliability on RabbitMQ: restart RabbitMQ (`rabbitmqctl stop_app` / `start_app`) while
//! 1,000 tasks are in flight and more are being sent, and kill -9 a worker process that
//! holds prefetched, unacknowledged messages: every task completes, none is lost
//! (at-least-once: duplicates are counted and printed).
//!
//! The killed worker is this test binary started again with `BRAID_AMQP_WORKER` set. Needs
//! RabbitMQ on 127.0.0.1:5672 with `rabbitmqctl` usable by this user, and Redis on
//! 127.0.0.1:6379 (database 4, a key prefix per test); scripts/test provides both. The two
//! tests take turns (the restart would disturb the other).

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use braid_taskq::{App, Worker};
use redis::Commands;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672//?queue_expires=600";
const REDIS: &str = "redis://127.0.0.1:6379/4";
const TASKS: u64 = 1000;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Records each run in a hash (`n -> runs`), then takes a little time.
#[braid_core::task(name = "amqp_rel.work")]
fn work(prefix: String, n: u64, ms: u64) -> Result<u64, redis::RedisError> {
    let client = redis::Client::open(REDIS)?;
    let mut conn = client.get_connection()?;
    let _runs: i64 = conn.hincr(format!("{prefix}runs"), n, 1)?;
    std::thread::sleep(Duration::from_millis(ms));
    Ok(n)
}

fn backend(prefix: &str) -> String {
    format!("{REDIS}?global_keyprefix={prefix}")
}

fn runs(prefix: &str) -> std::collections::HashMap<u64, u64> {
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_connection().unwrap();
    conn.hgetall(format!("{prefix}runs")).unwrap()
}

fn wait_for_runs(prefix: &str, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while runs(prefix).len() < at_least {
        assert!(Instant::now() < deadline, "tasks did not start running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn clean(prefix: &str) {
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).unwrap();
    if !keys.is_empty() {
        let _removed: i64 = conn.del(keys).unwrap();
    }
}

fn report(test: &str, prefix: &str, expected: u64) {
    let runs = runs(prefix);
    for n in 0..expected {
        assert!(
            runs.get(&n).copied().unwrap_or(0) >= 1,
            "task {n} never ran"
        );
    }
    let duplicates: u64 = runs.values().map(|r| r - 1).sum();
    eprintln!("{test}: {expected} tasks, all completed; {duplicates} ran more than once");
}

fn rabbitmqctl(command: &str) {
    let status = Command::new("rabbitmqctl")
        .arg(command)
        .stdout(Stdio::null())
        .status()
        .expect("run rabbitmqctl (this test restarts RabbitMQ)");
    assert!(status.success(), "rabbitmqctl {command} failed");
}

/// Starts RabbitMQ's app again even when the test fails half way.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        rabbitmqctl("start_app");
    }
}

#[test]
fn restart_rabbitmq_with_1000_tasks_in_flight() {
    if std::env::var("BRAID_AMQP_WORKER").is_ok() {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let prefix = format!("braid-amqp-restart-{}-", uuid::Uuid::new_v4().simple());
    let queue = format!("{prefix}q");
    let app = App::builder(AMQP, Some(&backend(&prefix)))
        .default_queue(&queue)
        .build()
        .unwrap();
    let worker = Worker::builder(&app)
        .queues([queue.clone()])
        .concurrency(4)
        .prefetch(64)
        .start()
        .unwrap();
    let first = app
        .delay_many(work::task(), (0..TASKS).map(|n| (prefix.clone(), n, 20)))
        .unwrap();
    wait_for_runs(&prefix, 100);
    let restart = Restart;
    rabbitmqctl("stop_app");
    let ran = runs(&prefix).len();
    assert!(
        ran < TASKS as usize,
        "all tasks ran before the restart: nothing was in flight"
    );
    eprintln!("restart: RabbitMQ stopped after {ran} of {TASKS} tasks had started");
    // Sent while RabbitMQ is down: the publish retries until it is back.
    let sender = {
        let (app, prefix) = (app.clone(), prefix.clone());
        std::thread::spawn(move || {
            app.delay_many(
                work::task(),
                (TASKS..TASKS + 100).map(|n| (prefix.clone(), n, 1)),
            )
        })
    };
    drop(restart);
    let more = sender.join().unwrap().expect("publish after the restart");
    for (n, r) in first.iter().chain(&more).enumerate() {
        assert_eq!(r.get(Duration::from_secs(120)).unwrap(), n as u64);
    }
    worker.shutdown();
    report("restart", &prefix, TASKS + 100);
    clean(&prefix);
}

/// The worker process of the kill test: runs until killed.
#[test]
fn worker_process() {
    let Ok(prefix) = std::env::var("BRAID_AMQP_WORKER") else {
        return;
    };
    let app = App::new(AMQP, Some(&backend(&prefix))).unwrap();
    let _worker = Worker::builder(&app)
        .queues([format!("{prefix}q")])
        .concurrency(4)
        .prefetch(64)
        .start()
        .unwrap();
    loop {
        std::thread::park();
    }
}

struct Process(Child);

impl Process {
    fn start(prefix: &str) -> Process {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "worker_process",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("BRAID_AMQP_WORKER", prefix)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a worker process");
        Process(child)
    }

    fn kill(&mut self) {
        let status = Command::new("kill")
            .args(["-9", &self.0.id().to_string()])
            .status()
            .expect("kill -9");
        assert!(status.success());
        self.0.wait().expect("reap the worker");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Err(e) = self.0.kill() {
            eprintln!("worker process already gone: {e}");
        }
        if let Err(e) = self.0.wait() {
            eprintln!("could not reap a worker process: {e}");
        }
    }
}

#[test]
fn kill_9_a_worker_holding_prefetched_messages() {
    if std::env::var("BRAID_AMQP_WORKER").is_ok() {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let prefix = format!("braid-amqp-kill-{}-", uuid::Uuid::new_v4().simple());
    let queue = format!("{prefix}q");
    let app = App::builder(AMQP, Some(&backend(&prefix)))
        .default_queue(&queue)
        .build()
        .unwrap();
    let results = app
        .delay_many(work::task(), (0..TASKS).map(|n| (prefix.clone(), n, 3)))
        .unwrap();
    let mut doomed = Process::start(&prefix);
    // Running, with up to 64 messages prefetched and unacknowledged.
    wait_for_runs(&prefix, 50);
    doomed.kill();
    let survivor = Worker::builder(&app)
        .queues([queue.clone()])
        .concurrency(4)
        .prefetch(64)
        .start()
        .unwrap();
    for (n, r) in results.iter().enumerate() {
        assert_eq!(r.get(Duration::from_secs(120)).unwrap(), n as u64);
    }
    survivor.shutdown();
    report("kill -9", &prefix, TASKS);
    clean(&prefix);
}
