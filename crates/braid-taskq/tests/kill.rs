//! kill -9 a worker process twice while 1,000 tasks run with acks late: every task
//! completes, none is lost (at-least-once: duplicates are counted and reported).
//!
//! The worker processes are this test binary, started again with `BRAID_KILL_WORKER` set:
//! the `worker_process` test then runs a worker until it is killed. Needs Redis on
//! 127.0.0.1:6379 (database 12, a key prefix of its own).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use braid_taskq::{App, Worker};
use redis::Commands;

const REDIS: &str = "redis://127.0.0.1:6379/12";
const TASKS: u64 = 1000;
const QUEUE: &str = "kill";

/// Records each run in a hash (`n -> runs`), then takes a little time.
#[braid_core::task(name = "kill.work")]
fn work(n: u64) -> Result<u64, redis::RedisError> {
    let prefix = std::env::var("BRAID_KILL_PREFIX").unwrap_or_default();
    let client = redis::Client::open(REDIS)?;
    let mut conn = client.get_connection()?;
    let _runs: i64 = conn.hincr(format!("{prefix}runs"), n, 1)?;
    std::thread::sleep(Duration::from_millis(4));
    Ok(n)
}

fn url(prefix: &str) -> String {
    format!("{REDIS}?global_keyprefix={prefix}&visibility_timeout=1")
}

/// The worker process: runs until killed.
#[test]
fn worker_process() {
    let Ok(prefix) = std::env::var("BRAID_KILL_WORKER") else {
        return;
    };
    let app = App::new(&url(&prefix), Some(&url(&prefix))).unwrap();
    let _worker = Worker::builder(&app)
        .queues([QUEUE])
        .concurrency(4)
        .prefetch(32)
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
            .env("BRAID_KILL_WORKER", prefix)
            .env("BRAID_KILL_PREFIX", prefix)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Process(child)
    }

    fn kill9(&mut self) {
        let status = Command::new("kill")
            .args(["-9", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.0.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.kill9();
        }
    }
}

fn runs(conn: &mut redis::Connection, prefix: &str) -> u64 {
    conn.hlen(format!("{prefix}runs")).unwrap()
}

#[test]
fn kill_9_twice_loses_nothing() {
    if std::env::var("BRAID_KILL_WORKER").is_ok() {
        return;
    }
    let prefix = format!("braid-kill-{}-", uuid::Uuid::new_v4().simple());
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client
        .get_connection()
        .expect("this test needs Redis on 127.0.0.1:6379 (scripts/test starts it)");
    let app = App::new(&url(&prefix), Some(&url(&prefix))).unwrap();
    let results: Vec<_> = (0..TASKS)
        .map(|n| {
            app.apply_async(
                work::task(),
                (n,),
                braid_taskq::CallOptions::new().queue(QUEUE),
            )
            .unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let wait_for_runs = |conn: &mut redis::Connection, at_least: u64| {
        while runs(conn, &prefix) < at_least {
            assert!(
                Instant::now() < deadline,
                "stuck at {} runs",
                runs(conn, &prefix)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let mut first = Process::start(&prefix);
    wait_for_runs(&mut conn, 150);
    first.kill9();
    let mut second = Process::start(&prefix);
    wait_for_runs(&mut conn, 450);
    second.kill9();
    let _third = Process::start(&prefix);
    let mut lost = Vec::new();
    for r in &results {
        let left = deadline.saturating_duration_since(Instant::now());
        match r.get(left) {
            Ok(_) => {}
            Err(e) => lost.push((r.id().to_string(), e)),
        }
    }
    let counts: std::collections::HashMap<u64, u64> =
        conn.hgetall(format!("{prefix}runs")).unwrap();
    let duplicates: u64 = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "kill -9 twice: {} of {TASKS} tasks completed, {} lost, {duplicates} ran more than once",
        TASKS as usize - lost.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert_eq!(counts.len() as u64, TASKS);
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).unwrap();
    let _removed: i64 = conn.del(keys).unwrap();
}
