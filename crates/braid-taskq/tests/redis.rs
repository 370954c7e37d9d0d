//! The Redis broker and backend: kombu's layout, acks late with the unacked hash and its
//! restore, the durable ETA schedule, dead letters, chords, revocation.
//!
//! Needs Redis on 127.0.0.1:6379 (scripts/test starts one). Every test uses database 9
//! and key prefix of its own, so runs never see each other's data.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use braid_taskq::{App, CallOptions, Error, Signature, State, TaskMessage, Worker, chord};
use redis::Commands;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const DB: u32 = 9;

#[braid_core::task(name = "rtest.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[braid_core::task(name = "rtest.xsum")]
fn xsum(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[braid_core::task(name = "rtest.slow")]
fn slow(ms: u64) -> u64 {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[braid_core::task(name = "rtest.fail")]
fn fail(message: String) -> Result<(), String> {
    Err(message)
}

/// A Redis URL with a prefix no other run uses.
fn url(extra: &str) -> (String, String) {
    let prefix = format!("braid-test-{}-", uuid::Uuid::new_v4().simple());
    let url = format!("redis://127.0.0.1:6379/{DB}?global_keyprefix={prefix}{extra}");
    (url, prefix)
}

fn redis() -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:6379/{DB}")).unwrap();
    client.get_connection().unwrap_or_else(|e| {
        panic!("these tests need Redis on 127.0.0.1:6379 (scripts/test starts it): {e}")
    })
}

/// Deletes a test's keys.
fn clean(prefix: &str) {
    let mut r = redis();
    let keys: Vec<String> = r.keys(format!("{prefix}*")).unwrap();
    if !keys.is_empty() {
        let _removed: i64 = r.del(keys).unwrap();
    }
}

fn app(url: &str) -> App {
    App::new(url, Some(url)).unwrap()
}

#[test]
fn round_trip_with_kombus_layout() {
    let (url, prefix) = url("");
    let app = app(&url);
    // Sent with nobody listening: the message sits on kombu's list for the queue.
    let r = app
        .apply_async(add::task(), (2, 3), CallOptions::new().queue("q1"))
        .unwrap();
    let hi = app
        .apply_async(
            add::task(),
            (4, 4),
            CallOptions::new().queue("q1").priority(7),
        )
        .unwrap();
    let mut conn = redis();
    let raw: Vec<Vec<u8>> = conn.lrange(format!("{prefix}q1"), 0, -1).unwrap();
    assert_eq!(raw.len(), 1);
    let message = TaskMessage::decode(&raw[0]).unwrap();
    assert_eq!(message.id(), r.id());
    assert_eq!(message.task(), "rtest.add");
    assert_eq!(message.args.get(), "[2,3]");
    let envelope: Value = serde_json::from_slice(&raw[0]).unwrap();
    assert_eq!(envelope["properties"]["body_encoding"], "base64");
    assert_eq!(envelope["content-type"], "application/json");
    let priority: i64 = conn.llen(format!("{prefix}q1\x06\x166")).unwrap();
    assert_eq!(priority, 1);
    assert_eq!(app.queue_len("q1").unwrap(), 2);

    let w = Worker::builder(&app)
        .queues(["q1"])
        .concurrency(2)
        .start()
        .unwrap();
    assert_eq!(r.get(WAIT).unwrap(), 5);
    assert_eq!(hi.get(WAIT).unwrap(), 8);
    // The result as Celery stores it, with an expiry.
    let stored: String = conn
        .get(format!("{prefix}celery-task-meta-{}", r.id()))
        .unwrap();
    let meta: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(meta["status"], "SUCCESS");
    assert_eq!(meta["result"], 5);
    assert_eq!(meta["task_id"], json!(r.id()));
    assert!(meta["date_done"].as_str().unwrap().ends_with("+00:00"));
    let ttl: i64 = conn
        .ttl(format!("{prefix}celery-task-meta-{}", r.id()))
        .unwrap();
    assert!(ttl > 86_000, "{ttl}");
    // Acknowledged (right after the results are stored): nothing left unacked.
    while conn.hlen::<_, i64>(format!("{prefix}unacked")).unwrap() > 0 {
        std::thread::yield_now();
    }

    // Many at once, and a failure.
    let many = app
        .delay_many(add::task(), (0..500).map(|i| (i, 1)))
        .unwrap();
    let rs = app
        .apply_async(add::task(), (0, 0), CallOptions::new().queue("q1"))
        .unwrap();
    assert_eq!(rs.get(WAIT).unwrap(), 0);
    let w2 = Worker::builder(&app).concurrency(2).start().unwrap();
    let total: i64 = many.iter().map(|r| r.get(WAIT).unwrap()).sum();
    assert_eq!(total, (1..=500).sum::<i64>());
    let err = app
        .delay(fail::task(), ("bad luck".to_string(),))
        .unwrap()
        .get(WAIT)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Task(f) if f.exc_type() == "TaskError" && f.message() == "bad luck"),
        "{err:?}"
    );
    w.shutdown();
    w2.shutdown();
    clean(&prefix);
}

#[test]
fn malformed_messages_go_to_the_dead_letter_list() {
    let (url, prefix) = url("");
    let app = app(&url);
    let w = Worker::builder(&app)
        .queues(["dl"])
        .concurrency(1)
        .start()
        .unwrap();
    let mut conn = redis();
    let key = format!("{prefix}dl");
    let good = TaskMessage::decode(&{
        let r = app
            .apply_async(add::task(), (1, 1), CallOptions::new().queue("elsewhere"))
            .unwrap();
        let raw: Vec<Vec<u8>> = conn.lrange(format!("{prefix}elsewhere"), 0, -1).unwrap();
        assert_eq!(TaskMessage::decode(&raw[0]).unwrap().id(), r.id());
        raw[0].clone()
    })
    .unwrap();
    let envelope = |task: &str, id: &str, body: &str| {
        json!({
            "body": body,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"lang": "py", "task": task, "id": id, "retries": 0},
            "properties": {"body_encoding": "base64", "delivery_tag": "t", "priority": 0,
                           "delivery_info": {"exchange": "", "routing_key": "dl"}},
        })
        .to_string()
    };
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let payloads = [
        "{not json".to_string(),
        json!({"body": "W10=", "headers": {}, "properties": {}}).to_string(),
        envelope("rtest.add", "two-element", &b64("[[1, 2], {}]")),
        envelope("rtest.unknown", "unknown-task", &b64("[[], {}, {}]")),
        envelope("rtest.add", "wrong-count", &b64("[[1, 2, 3], {}, {}]")),
        envelope("rtest.add", "bad-eta", &b64("[[1, 2], {}, {}]"))
            .replace("\"retries\":0", "\"retries\":0,\"eta\":\"soon\""),
    ];
    for p in &payloads {
        let _len: i64 = conn.lpush(&key, p).unwrap();
    }
    // The worker survives all of them and still runs good work.
    let mut ok = good.clone();
    ok.properties.delivery_info.routing_key = "dl".into();
    let _len: i64 = conn.lpush(&key, ok.encode().unwrap()).unwrap();
    assert_eq!(app.result(good.id()).get(WAIT).unwrap(), json!(2));
    for id in ["two-element", "unknown-task", "wrong-count", "bad-eta"] {
        let err = app.result(id).get(WAIT).unwrap_err();
        assert!(matches!(err, Error::Task(_)), "{id}: {err:?}");
    }
    let mut dead = app.dead_letters().unwrap();
    while dead.len() < payloads.len() {
        dead = app.dead_letters().unwrap();
    }
    assert_eq!(dead.len(), payloads.len(), "{dead:#?}");
    assert!(
        dead.iter()
            .all(|d| d["queue"] == "dl" && d["reason"].is_string())
    );
    while conn.hlen::<_, i64>(format!("{prefix}unacked")).unwrap() > 0 {
        std::thread::yield_now();
    }
    assert_eq!(w.stats().dead_lettered, payloads.len() as u64);
    w.shutdown();
    clean(&prefix);
}

#[test]
fn unacked_messages_are_restored_after_the_visibility_timeout() {
    let (url, prefix) = url("&visibility_timeout=1");
    let app = app(&url);
    let mut conn = redis();
    // What a worker that died holding a message leaves behind, in kombu's format.
    let r = app
        .apply_async(add::task(), (20, 22), CallOptions::new().queue("vt"))
        .unwrap();
    let payload: String = conn.rpop(format!("{prefix}vt"), None).unwrap();
    let record = format!("[{payload}, \"\", \"vt\"]");
    let _: i64 = conn
        .hset(format!("{prefix}unacked"), "dead-worker-tag", record)
        .unwrap();
    let _: i64 = conn
        .zadd(format!("{prefix}unacked_index"), "dead-worker-tag", 1.0)
        .unwrap();
    // A long task held by a live worker is refreshed, never restored to run twice.
    let before = SLOW_RUNS.load(Ordering::SeqCst);
    let long = app
        .apply_async(slow::task(), (2_500,), CallOptions::new().queue("vt"))
        .unwrap();
    let w = Worker::builder(&app)
        .queues(["vt"])
        .concurrency(2)
        .start()
        .unwrap();
    assert_eq!(r.get(WAIT).unwrap(), 42);
    assert_eq!(long.get(WAIT).unwrap(), 2_500);
    assert_eq!(SLOW_RUNS.load(Ordering::SeqCst) - before, 1);
    w.shutdown();
    clean(&prefix);
}

#[test]
fn countdowns_wait_in_the_broker_not_in_the_worker() {
    let (url, prefix) = url("");
    let app = app(&url);
    let w = Worker::builder(&app)
        .queues(["eta"])
        .concurrency(1)
        .start()
        .unwrap();
    let r = app
        .apply_async(
            add::task(),
            (1, 2),
            CallOptions::new()
                .queue("eta")
                .countdown(Duration::from_millis(1500)),
        )
        .unwrap();
    let mut conn = redis();
    let schedule = format!("{prefix}braid.eta.eta");
    // The worker moves it into the schedule and holds nothing.
    let mut scheduled = 0;
    while scheduled == 0 && r.state().unwrap() == State::Pending {
        scheduled = conn.zcard(&schedule).unwrap();
    }
    assert_eq!(scheduled, 1);
    while w.stats().held > 0 {
        std::thread::yield_now();
    }
    assert_eq!(r.state().unwrap(), State::Pending);
    assert_eq!(r.get(WAIT).unwrap(), 3);
    let left: i64 = conn.zcard(&schedule).unwrap();
    assert_eq!(left, 0);
    w.shutdown();
    clean(&prefix);
}

#[test]
fn chords_count_in_redis_and_revokes_reach_every_worker() {
    let (url, prefix) = url("");
    let app = app(&url);
    let w1 = Worker::builder(&app).concurrency(2).start().unwrap();
    let w2 = Worker::builder(&app).concurrency(2).start().unwrap();
    let header = (1..=10).map(|i| Signature::new("rtest.add", vec![json!(i), json!(i)]));
    let result = app
        .apply(&chord(header, Signature::new("rtest.xsum", vec![])))
        .unwrap();
    assert_eq!(result.get(WAIT).unwrap(), json!(110));
    let mut conn = redis();
    let leftovers: Vec<String> = conn
        .keys(format!("{prefix}celery-taskset-meta-*.j"))
        .unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let doomed = app
        .apply_async(
            add::task(),
            (1, 1),
            CallOptions::new().countdown(Duration::from_millis(800)),
        )
        .unwrap();
    doomed.revoke(false).unwrap();
    assert!(matches!(doomed.get(WAIT), Err(Error::Revoked(_))));
    let replies = app
        .control("ping", json!({}), Duration::from_secs(2), Some(2))
        .unwrap();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(app.workers(Duration::from_secs(10)).unwrap().len(), 2);
    w1.shutdown();
    w2.shutdown();
    assert!(app.workers(Duration::from_secs(10)).unwrap().is_empty());
    clean(&prefix);
}

#[test]
fn unreachable_redis_is_a_clear_error() {
    let app = App::new("redis://127.0.0.1:1/0", Some("redis://127.0.0.1:1/0")).unwrap();
    let err = app.delay(add::task(), (1, 1)).unwrap_err();
    assert!(
        matches!(&err, Error::Broker(m) if m.contains("cannot connect")),
        "{err:?}"
    );
    assert!(Worker::builder(&app).start().is_err());
}
