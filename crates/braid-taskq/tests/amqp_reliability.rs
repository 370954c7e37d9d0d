//! Reliability on RabbitMQ: restart RabbitMQ (`rabbitmqctl stop_app` / `start_app`) while
//! 1,000 tasks are in flight and more are being sent, and kill -9 a worker process that
//! holds prefetched, unacknowledged messages: every task completes, none is lost
//! (at-least-once: duplicates are counted and printed). After the restart, remote control
//! (ping), events (a receiver subscribed before it) and rpc:// results work again too.
//!
//! The killed worker is this test binary started again with `BRAID_AMQP_WORKER` set. Needs
//! RabbitMQ on 127.0.0.1:5672 with `rabbitmqctl` usable by this user, and Redis on
//! 127.0.0.1:6379 (database 4, a key prefix per test); scripts/test provides both. The two
//! tests take turns (the restart would disturb the other).

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use braid_taskq::{App, EventReceiver, Worker, WorkerBuilder};
use redis::Commands;

mod common;

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

/// An App on RabbitMQ with results in `backend`, sending to `queue` by default.
fn amqp_app(backend: &str, queue: &str) -> App {
    common::app_on(AMQP, backend, queue)
}

/// A worker on `queue` with 4 threads and 64 messages prefetched, as the tests' workers
/// under load have.
fn loaded_worker(app: &App, queue: &str) -> WorkerBuilder {
    Worker::builder(app)
        .queues([queue.to_string()])
        .concurrency(4)
        .prefetch(64)
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

/// Checks remote control, events and rpc:// results: every worker in `workers` answers a
/// ping, and a task sent on `rpc` (an App with rpc:// results, served by a worker with
/// events on) returns its result and its task-succeeded reaches `receiver`. After a
/// restart the receiver re-subscribes in the background: a task whose event came before
/// that is followed by another. Returns how many tasks were sent.
fn other_paths_work(app: &App, rpc: &App, receiver: &mut EventReceiver, workers: &[&str]) -> usize {
    for name in workers {
        common::wait_for_pong(app, name, Duration::from_secs(60));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = Vec::new();
    for n in 0_i64.. {
        assert!(
            Instant::now() < deadline,
            "no task-succeeded for {sent:?} reached the receiver"
        );
        let r = rpc.delay(common::add::task(), (n, 1)).unwrap();
        assert_eq!(r.get(Duration::from_secs(60)).unwrap(), n + 1);
        sent.push(r.id().to_string());
        let window = Instant::now() + Duration::from_secs(2);
        loop {
            let left = window.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(event) = receiver.recv_timeout(left).unwrap()
                && event.kind() == "task-succeeded"
                && event.uuid().is_some_and(|id| sent.iter().any(|s| s == id))
            {
                return sent.len();
            }
        }
    }
    unreachable!("the deadline ends the loop")
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
    let app = amqp_app(&backend(&prefix), &queue);
    let worker = loaded_worker(&app, &queue)
        .hostname(format!("braid-{queue}@test"))
        .start()
        .unwrap();
    // The other paths, checked before and after the restart: a second worker with events
    // on, on its own queue, under an App with rpc:// results; a receiver subscribed now.
    let probe_queue = format!("{prefix}probe");
    let rpc = amqp_app("rpc://", &probe_queue);
    let probe = Worker::builder(&rpc)
        .queues([probe_queue.clone()])
        .concurrency(1)
        .events(true)
        .hostname(format!("braid-{probe_queue}@test"))
        .start()
        .unwrap();
    let mut receiver = EventReceiver::new(&app).unwrap();
    let names = [worker.hostname().to_string(), probe.hostname().to_string()];
    let names = names.each_ref().map(String::as_str);
    other_paths_work(&app, &rpc, &mut receiver, &names);
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
    let probes = other_paths_work(&app, &rpc, &mut receiver, &names);
    eprintln!("restart: ping, rpc:// and events back; {probes} probe task(s) until an event came");
    for (n, r) in first.iter().chain(&more).enumerate() {
        assert_eq!(r.get(Duration::from_secs(120)).unwrap(), n as u64);
    }
    probe.shutdown();
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
    let _worker = loaded_worker(&app, &format!("{prefix}q")).start().unwrap();
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
    let app = amqp_app(&backend(&prefix), &queue);
    let results = app
        .delay_many(work::task(), (0..TASKS).map(|n| (prefix.clone(), n, 3)))
        .unwrap();
    let mut doomed = Process::start(&prefix);
    // Running, with up to 64 messages prefetched and unacknowledged.
    wait_for_runs(&prefix, 50);
    doomed.kill();
    let survivor = loaded_worker(&app, &queue).start().unwrap();
    for (n, r) in results.iter().enumerate() {
        assert_eq!(r.get(Duration::from_secs(120)).unwrap(), n as u64);
    }
    survivor.shutdown();
    report("kill -9", &prefix, TASKS);
    clean(&prefix);
}
