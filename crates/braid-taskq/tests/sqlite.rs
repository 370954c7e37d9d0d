//! The SQLite broker and backend: the task queue on one durable file. Calls sent by a
//! process that has exited are run by a worker started later; a worker killed while it
//! holds messages loses none of them.
//!
//! Child processes are this test binary, started again with `BRAID_SQLITE_CHILD` set.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use braid_taskq::{App, CallOptions, Error, Signature, State, Worker, chord};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

#[braid_core::task(name = "sqlite.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[braid_core::task(name = "sqlite.xsum")]
fn xsum(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[braid_core::task(name = "sqlite.slow")]
fn slow(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(30));
    x
}

#[braid_core::task(name = "sqlite.parse")]
fn parse(text: String) -> Result<i64, std::num::ParseIntError> {
    text.parse()
}

fn database(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "braid-sqlite-{test}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("queue.db")
}

fn url(path: &std::path::Path) -> String {
    format!("sqlite://{}?visibility_timeout=1", path.display())
}

fn cleanup(path: &std::path::Path) {
    if let Some(dir) = path.parent()
        && let Err(e) = std::fs::remove_dir_all(dir)
    {
        eprintln!("could not remove {}: {e}", dir.display());
    }
}

/// What a child process does, chosen by `BRAID_SQLITE_CHILD=action:path`.
#[test]
fn child_process() {
    let Ok(spec) = std::env::var("BRAID_SQLITE_CHILD") else {
        return;
    };
    let (action, path) = spec.split_once(':').unwrap();
    let url = url(std::path::Path::new(path));
    let app = App::new(&url, Some(&url)).unwrap();
    match action {
        "send" => {
            for r in app
                .delay_many(add::task(), (0..50).map(|i| (i, 100)))
                .unwrap()
            {
                println!("{}", r.id());
            }
        }
        "work" => {
            let _worker = Worker::builder(&app)
                .concurrency(2)
                .prefetch(8)
                .start()
                .unwrap();
            loop {
                std::thread::park();
            }
        }
        other => panic!("unknown child action {other}"),
    }
}

fn child(action: &str, path: &std::path::Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads",
            "1",
            "-q",
        ])
        .env("BRAID_SQLITE_CHILD", format!("{action}:{}", path.display()))
        .stdin(Stdio::null());
    command
}

#[test]
fn calls_results_failures_countdown_chord() {
    if std::env::var("BRAID_SQLITE_CHILD").is_ok() {
        return;
    }
    let path = database("basics");
    let app = App::new(&url(&path), Some(&url(&path))).unwrap();
    let worker = Worker::builder(&app).concurrency(2).start().unwrap();
    let r = app.delay(add::task(), (2, 3)).unwrap();
    assert_eq!(r.get(WAIT).unwrap(), 5);
    assert_eq!(r.state().unwrap(), State::Success);
    let err = app
        .delay(parse::task(), ("x".to_string(),))
        .unwrap()
        .get(WAIT)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Task(f) if f.exc_type() == "ParseIntError"),
        "{err:?}"
    );
    let later = app
        .apply_async(
            add::task(),
            (1, 1),
            CallOptions::new().countdown(Duration::from_millis(1200)),
        )
        .unwrap();
    let header = (1..=5).map(|i| Signature::new("sqlite.add", vec![json!(i), json!(i)]));
    let ch = app
        .apply(&chord(header, Signature::new("sqlite.xsum", vec![])))
        .unwrap();
    assert_eq!(ch.get(WAIT).unwrap(), json!(30));
    assert_eq!(later.get(WAIT).unwrap(), 2);
    let doomed = app
        .apply_async(
            add::task(),
            (1, 1),
            CallOptions::new().countdown(Duration::from_millis(500)),
        )
        .unwrap();
    doomed.revoke(false).unwrap();
    assert!(matches!(doomed.get(WAIT), Err(Error::Revoked(_))));
    let replies = app
        .control("ping", json!({}), Duration::from_secs(2), Some(1))
        .unwrap();
    assert_eq!(replies, vec![json!({worker.hostname(): {"ok": "pong"}})]);
    let unknown = app
        .send_task("sqlite.nope", vec![], CallOptions::new())
        .unwrap();
    assert!(unknown.get(WAIT).is_err());
    assert_eq!(app.dead_letters().unwrap().len(), 1);
    worker.shutdown();
    cleanup(&path);
}

#[test]
fn survives_restarts_and_killed_workers() {
    if std::env::var("BRAID_SQLITE_CHILD").is_ok() {
        return;
    }
    let path = database("durable");
    // A process sends 50 calls and exits; nothing runs them yet.
    let sent = child("send", &path).stderr(Stdio::null()).output().unwrap();
    assert!(sent.status.success());
    let ids: Vec<String> = String::from_utf8_lossy(&sent.stdout)
        .lines()
        .filter(|l| l.len() == 36)
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 50);
    let app = App::new(&url(&path), Some(&url(&path))).unwrap();
    assert_eq!(app.queue_len("celery").unwrap(), 50);
    let slow_calls: Vec<_> = app.delay_many(slow::task(), (0..20).map(|i| (i,))).unwrap();

    // A worker process takes some, and is killed while it holds them.
    let mut worker = child("work", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while app.queue_len("celery").unwrap() == 70 {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    let killed = Command::new("kill")
        .args(["-9", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    worker.wait().unwrap();

    // This process's worker restores what the dead one held and finishes everything.
    let w = Worker::builder(&app).concurrency(2).start().unwrap();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            app.result(id.clone()).get(WAIT).unwrap(),
            json!(i as i64 + 100)
        );
    }
    for (i, r) in slow_calls.iter().enumerate() {
        assert_eq!(r.get(WAIT).unwrap(), i as i64);
    }
    w.shutdown();
    cleanup(&path);
}
