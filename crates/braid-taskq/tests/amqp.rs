//! braid on RabbitMQ: calls, failures, countdowns through the delay levels, retries,
//! canvas, revokes remembered for later workers, remote control (ping, stats, active,
//! reserved, scheduled, revoke, rate_limit, pool grow/shrink, shutdown), heartbeats,
//! priorities, two beats sharing the broker lock, malformed messages, and the rpc:// and
//! db+postgresql:// result backends.
//!
//! Needs RabbitMQ on 127.0.0.1:5672 (guest/guest), Redis on 127.0.0.1:6379 (database 4)
//! and PostgreSQL with the role `braid` (password `braid`) owning the database
//! `braid_test` on 127.0.0.1:5432; scripts/test installs and starts all three. Every test
//! uses queues with a random suffix.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use braid_taskq::{
    App, Beat, CallOptions, Entry, Error, Schedule, Signature, State, Worker, chain, chord, group,
};
use serde_json::{Value, json};

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672//?queue_expires=600";
const REDIS: &str = "redis://127.0.0.1:6379/4";
const POSTGRES: &str = "db+postgresql://braid:braid@127.0.0.1:5432/braid_test";
const WAIT: Duration = Duration::from_secs(30);
mod common;

#[braid_core::task(name = "amqp_test.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[braid_core::task(name = "amqp_test.xsum")]
fn xsum(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Boom(String);

#[braid_core::task(name = "amqp_test.fail")]
fn fail(message: String) -> Result<(), Boom> {
    Err(Boom(message))
}

/// Retries once after 1.5 s (through the delay levels), then returns the retry count.
#[braid_core::task(name = "amqp_test.flaky")]
fn flaky() -> Result<u32, braid_taskq::Retry> {
    let retries = braid_taskq::current().map_or(0, |c| c.retries());
    if retries == 0 {
        return Err(braid_taskq::retry(Some(Duration::from_millis(1500))));
    }
    Ok(retries)
}

/// The keys `amqp_test.hold` may return for: a task the test ends when it wants.
static GATE: (Mutex<Vec<String>>, Condvar) = (Mutex::new(Vec::new()), Condvar::new());

/// Runs until the test releases `key` (at most a minute, so a failed test ends).
#[braid_core::task(name = "amqp_test.hold")]
fn hold(key: String) -> String {
    let (released, condvar) = &GATE;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut released = released.lock().unwrap();
    while !released.contains(&key) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        released = condvar.wait_timeout(released, left).unwrap().0;
    }
    key
}

fn release(key: &str) {
    GATE.0.lock().unwrap().push(key.to_string());
    GATE.1.notify_all();
}

/// The order in which `amqp_test.record` ran, by queue.
static RECORDED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

#[braid_core::task(name = "amqp_test.record")]
fn record(queue: String, tag: String) {
    RECORDED.lock().unwrap().push((queue, tag));
}

fn queue(test: &str) -> String {
    format!("braid-amqp-{test}-{}", uuid::Uuid::new_v4().simple())
}

/// An App on RabbitMQ with results in `backend`, sending to `queue` by default.
fn app(backend: &str, queue: &str) -> App {
    common::app_on(AMQP, backend, queue)
}

fn worker(app: &App, queue: &str) -> Worker {
    Worker::builder(app)
        .queues([queue.to_string()])
        .concurrency(4)
        .prefetch(16)
        .start()
        .expect("start a worker on RabbitMQ (is it running?)")
}

/// A worker on `queue` named `braid-{queue}@test`, with `concurrency` threads and
/// `prefetch` messages prefetched.
fn named_worker(app: &App, queue: &str, concurrency: usize, prefetch: usize) -> Worker {
    Worker::builder(app)
        .queues([queue.to_string()])
        .concurrency(concurrency)
        .prefetch(prefetch)
        .hostname(format!("braid-{queue}@test"))
        .start()
        .expect("start a worker on RabbitMQ (is it running?)")
}

#[test]
fn calls_failures_countdowns_and_canvas_with_redis_results() {
    let q = queue("calls");
    let app = app(REDIS, &q);
    let w = worker(&app, &q);

    assert_eq!(
        app.delay(add::task(), (2, 3)).unwrap().get(WAIT).unwrap(),
        5
    );
    let err = app
        .delay(fail::task(), ("boom".into(),))
        .unwrap()
        .get(WAIT)
        .unwrap_err();
    let Error::Task(failure) = err else {
        panic!("expected the task's error, got {err:?}")
    };
    assert_eq!(
        (failure.exc_type(), failure.message().as_str()),
        ("Boom", "boom")
    );

    // A countdown of 2.5 s goes through the delay levels and comes back no earlier.
    let sent = Instant::now();
    let later = app
        .apply_async(
            add::task(),
            (1, 1),
            CallOptions::new().countdown(Duration::from_millis(2500)),
        )
        .unwrap();
    assert_eq!(later.get(WAIT).unwrap(), 2);
    assert!(sent.elapsed() >= Duration::from_millis(2500));
    assert_eq!(
        app.delay(flaky::task(), braid_core::NoArgs)
            .unwrap()
            .get(WAIT)
            .unwrap(),
        1
    );

    let on = || CallOptions::new().queue(&q);
    let c = chain([
        Signature::new("amqp_test.add", vec![json!(1), json!(2)]).set(on()),
        Signature::new("amqp_test.add", vec![json!(10)]).set(on()),
    ]);
    assert_eq!(app.apply(&c).unwrap().get(WAIT).unwrap(), json!(13));
    let g =
        group((0..5).map(|i| Signature::new("amqp_test.add", vec![json!(i), json!(i)]).set(on())));
    let values: Vec<i64> = app.apply_group(&g).unwrap().get(WAIT).unwrap();
    assert_eq!(values, [0, 2, 4, 6, 8]);
    let ch = chord(
        (0..6).map(|i| Signature::new("amqp_test.add", vec![json!(i), json!(1)]).set(on())),
        Signature::new("amqp_test.xsum", vec![]).set(on()),
    );
    assert_eq!(app.apply(&ch).unwrap().get(WAIT).unwrap(), json!(21));

    // Priorities are carried (the queue has no x-max-priority by default, as in Celery).
    let p = app
        .apply_async(add::task(), (4, 4), CallOptions::new().priority(7))
        .unwrap();
    assert_eq!(p.get(WAIT).unwrap(), 8);
    w.shutdown();
    assert_eq!(app.queue_len(&q).unwrap(), 0);
    assert_eq!(app.purge(&q).unwrap(), 0);
}

#[test]
fn revokes_reach_workers_started_later() {
    let q = queue("revoke");
    let app = app(REDIS, &q);
    let doomed = app.delay(add::task(), (1, 2)).unwrap();
    app.revoke(&[doomed.id()], false).unwrap();
    // No worker was running: the revoke is read back from the stream at start.
    let w = worker(&app, &q);
    let err = doomed.get(WAIT).unwrap_err();
    assert!(matches!(err, Error::Revoked(_)), "{err:?}");
    assert_eq!(doomed.state().unwrap(), State::Revoked);
    assert_eq!(
        app.delay(add::task(), (1, 2)).unwrap().get(WAIT).unwrap(),
        3
    );
    w.shutdown();
}

#[test]
fn remote_control_and_heartbeats() {
    let q = queue("control");
    let app = app(REDIS, &q);
    // Prefetch as the default: 4 a thread.
    let w = named_worker(&app, &q, 2, 8);
    let name = w.hostname().to_string();
    common::wait_for_pong(&app, &name, WAIT);
    let stats = app
        .control("stats", json!({}), Duration::from_millis(500), None)
        .unwrap();
    assert!(stats.iter().any(|r| r.get(&name).is_some()), "{stats:?}");
    let deadline = Instant::now() + WAIT;
    loop {
        let workers = app.workers(Duration::from_secs(10)).unwrap();
        if workers.iter().any(|w| w["hostname"] == json!(name)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never sent a heartbeat: {workers:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    w.shutdown();
    let workers = app.workers(Duration::from_secs(10)).unwrap();
    assert!(
        !workers.iter().any(|w| w["hostname"] == json!(name)),
        "{workers:?}"
    );
}

#[test]
fn malformed_messages_are_dead_lettered_and_the_worker_goes_on() {
    let q = queue("malformed");
    let app = app(REDIS, &q);
    let w = worker(&app, &q);
    let bad = app
        .send_task("amqp_test.add", vec![json!(1)], CallOptions::new())
        .unwrap();
    let err = bad.get(WAIT).unwrap_err();
    assert!(matches!(err, Error::Task(_)), "{err:?}");
    let unknown = app
        .send_task("amqp_test.nope", vec![], CallOptions::new())
        .unwrap();
    assert!(unknown.get(WAIT).is_err());
    assert_eq!(
        app.delay(add::task(), (20, 22)).unwrap().get(WAIT).unwrap(),
        42
    );
    let dead = app.dead_letters().unwrap();
    assert!(
        dead.iter().any(|d| d["queue"] == json!(q)),
        "no dead letter from {q}"
    );
    w.shutdown();
}

#[test]
fn rpc_results_go_to_the_callers_reply_queue() {
    let q = queue("rpc");
    let app = app("rpc://", &q);
    let w = worker(&app, &q);
    let results = app
        .delay_many(add::task(), (0..50).map(|i| (i, i)))
        .unwrap();
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.get(WAIT).unwrap(), 2 * i as i64);
        assert_eq!(r.state().unwrap(), State::Success);
    }
    let err = app
        .delay(fail::task(), ("over rpc".into(),))
        .unwrap()
        .get(WAIT)
        .unwrap_err();
    let Error::Task(failure) = err else {
        panic!("expected the task's error, got {err:?}")
    };
    assert_eq!(failure.message(), "over rpc");
    // Chords need stored results: refused with a clear error, nothing sent.
    let ch = chord(
        [Signature::new("amqp_test.add", vec![json!(1), json!(1)])],
        Signature::new("amqp_test.xsum", vec![]),
    );
    let refused = app.apply(&ch).unwrap_err();
    assert!(refused.to_string().contains("chord"), "{refused}");
    w.shutdown();
}

#[test]
fn postgres_results_and_chords() {
    let q = queue("pg");
    let app = app(POSTGRES, &q);
    let w = worker(&app, &q);
    let r = app.delay(add::task(), (5, 6)).unwrap();
    assert_eq!(r.get(WAIT).unwrap(), 11);
    assert_eq!(r.state().unwrap(), State::Success);
    r.forget().unwrap();
    assert_eq!(r.state().unwrap(), State::Pending);
    let on = || CallOptions::new().queue(&q);
    let ch = chord(
        (0..10).map(|i| Signature::new("amqp_test.add", vec![json!(i), json!(i)]).set(on())),
        Signature::new("amqp_test.xsum", vec![]).set(on()),
    );
    assert_eq!(app.apply(&ch).unwrap().get(WAIT).unwrap(), json!(90));
    let err = app
        .delay(fail::task(), ("in pg".into(),))
        .unwrap()
        .get(WAIT)
        .unwrap_err();
    assert!(matches!(err, Error::Task(_)), "{err:?}");
    w.shutdown();
}

#[test]
fn bad_urls_fail_clearly() {
    for url in ["amqp://h:port//", "amqps://h//", "amqp://h//?nope=1"] {
        let err = App::new(url, None).unwrap_err();
        assert!(matches!(err, Error::Url { .. }), "{url}: {err:?}");
    }
    let err = App::new("rpc://", None)
        .unwrap()
        .queue_len("x")
        .unwrap_err();
    assert!(err.to_string().contains("not brokers"), "{err}");
    // Nothing listens on port 1: a clear error, not a hang.
    let app = App::new("amqp://guest:guest@127.0.0.1:1//", None).unwrap();
    let err = app.queue_len("x").unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[test]
fn json_values_of_every_kind_survive_headers_and_bodies() {
    // Values of every JSON kind survive the trip through AMQP headers and bodies.
    let q = queue("values");
    let app = app(REDIS, &q);
    let w = worker(&app, &q);
    let r = app
        .send_task(
            "amqp_test.xsum",
            vec![json!([1, 2, 3_000_000_000i64])],
            CallOptions::new().header("x-custom", json!({"nested": [1, null, "s"]})),
        )
        .unwrap();
    assert_eq!(r.get(WAIT).unwrap(), Value::from(3_000_000_003i64));
    w.shutdown();
}

/// Asks the worker `name` alone and returns its answer.
fn ask(app: &App, name: &str, method: &str, arguments: Value) -> Value {
    let replies = app
        .control_to(
            method,
            arguments,
            Some(vec![name.to_string()]),
            Duration::from_secs(5),
            Some(1),
        )
        .unwrap();
    replies
        .iter()
        .find_map(|r| r.get(name).cloned())
        .unwrap_or_else(|| panic!("no reply from {name} to {method}: {replies:?}"))
}

/// Asks `method` until `ready` accepts the answer; panics after `WAIT`.
fn ask_until(app: &App, name: &str, method: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = ask(app, name, method, json!({}));
        if ready(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{method} never became ready: {answer}"
        );
    }
}

fn lists(answer: &Value, id: &str) -> bool {
    answer
        .as_array()
        .is_some_and(|a| a.iter().any(|t| t["id"] == json!(id)))
}

#[test]
fn remote_control_inspects_revokes_limits_resizes_and_shuts_down() {
    let q = queue("inspect");
    let app = app(REDIS, &q);
    let w = named_worker(&app, &q, 1, 8);
    let name = w.hostname().to_string();

    // One task runs (and holds the only thread); the next ones wait, prefetched.
    let first = format!("{q}-first");
    let running = app.delay(hold::task(), (first.clone(),)).unwrap();
    let active = ask_until(&app, &name, "active", |a| lists(a, running.id()));
    let info = &active[0];
    assert_eq!(info["name"], "amqp_test.hold");
    assert_eq!(info["args"], json!([first]));
    assert_eq!(info["hostname"], json!(name));
    assert_eq!(info["delivery_info"]["routing_key"], json!(q));
    assert!(info["time_start"].is_number(), "{info}");
    let waiting = [
        app.delay(add::task(), (1, 2)).unwrap(),
        app.delay(add::task(), (3, 4)).unwrap(),
    ];
    let reserved = ask_until(&app, &name, "reserved", |r| {
        waiting.iter().all(|t| lists(r, t.id()))
    });
    assert!(!lists(&reserved, running.id()), "{reserved}");
    let one = reserved
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!(waiting[0].id()))
        .unwrap();
    assert_eq!(
        (&one["name"], &one["args"]),
        (&json!("amqp_test.add"), &json!([1, 2]))
    );

    // A countdown under a second waits in the worker: `scheduled` shows it until it is
    // due. Sent again while the poll misses that window.
    let deadline = Instant::now() + WAIT;
    let mut later = Vec::new();
    'scheduled: loop {
        assert!(
            Instant::now() < deadline,
            "no countdown ever showed in scheduled"
        );
        let r = app
            .apply_async(
                add::task(),
                (5, 5),
                CallOptions::new().countdown(Duration::from_millis(900)),
            )
            .unwrap();
        let sent = Instant::now();
        while sent.elapsed() < Duration::from_millis(900) {
            let scheduled = ask(&app, &name, "scheduled", json!({}));
            if let Some(entry) = scheduled
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["request"]["id"] == json!(r.id()))
            {
                assert!(entry["eta"].is_string(), "{entry}");
                assert_eq!(entry["request"]["name"], "amqp_test.add");
                later.push(r);
                break 'scheduled;
            }
        }
        later.push(r);
    }

    // Revoke without terminate: a waiting task never runs; the running one goes on.
    let revoked = ask(&app, &name, "revoke", json!({"task_id": waiting[0].id()}));
    assert_eq!(
        revoked,
        json!({"ok": format!("tasks {} flagged as revoked", waiting[0].id())})
    );
    let revoked = ask(&app, &name, "revoke", json!({"task_id": [running.id()]}));
    assert!(revoked["ok"].is_string(), "{revoked}");
    assert!(lists(&ask(&app, &name, "active", json!({})), running.id()));
    assert!(
        ask(&app, &name, "revoked", json!({}))
            .as_array()
            .unwrap()
            .contains(&json!(waiting[0].id()))
    );
    // With terminate: it ends REVOKED at once.
    let revoked = ask(
        &app,
        &name,
        "revoke",
        json!({"task_id": running.id(), "terminate": true, "signal": "SIGTERM"}),
    );
    assert!(revoked["ok"].is_string(), "{revoked}");
    let err = running.get(WAIT).unwrap_err();
    assert!(matches!(err, Error::Revoked(_)), "{err:?}");
    assert_eq!(running.state().unwrap(), State::Revoked);
    release(&first);
    let err = waiting[0].get(WAIT).unwrap_err();
    assert!(matches!(err, Error::Revoked(_)), "{err:?}");
    assert_eq!(waiting[1].get(WAIT).unwrap(), 7);
    for r in &later {
        assert_eq!(r.get(WAIT).unwrap(), 10);
    }

    // Rate limits: the worker's configuration follows.
    assert_eq!(
        ask(
            &app,
            &name,
            "rate_limit",
            json!({"task_name": "amqp_test.add", "rate_limit": "100/s"})
        ),
        json!({"ok": "new rate limit set successfully"})
    );
    assert!(app.options_of("amqp_test.add").rate_limit.is_some());
    assert_eq!(
        app.delay(add::task(), (2, 2)).unwrap().get(WAIT).unwrap(),
        4
    );
    assert_eq!(
        ask(
            &app,
            &name,
            "rate_limit",
            json!({"task_name": "amqp_test.add", "rate_limit": null})
        ),
        json!({"ok": "rate limit disabled successfully"})
    );
    assert!(app.options_of("amqp_test.add").rate_limit.is_none());

    // Pool grow and shrink: stats show the new concurrency.
    assert_eq!(
        ask(&app, &name, "pool_grow", json!({"n": 2})),
        json!({"ok": "pool will grow"})
    );
    let stats = ask(&app, &name, "stats", json!({}));
    assert_eq!(stats["pool"]["max-concurrency"], 3);
    assert_eq!(stats["concurrency"], 3);
    assert_eq!(
        ask(&app, &name, "pool_shrink", json!({"n": 2})),
        json!({"ok": "pool will shrink"})
    );
    assert_eq!(
        ask(&app, &name, "stats", json!({}))["pool"]["max-concurrency"],
        1
    );

    // Shutdown with a task running and two prefetched: the running one finishes, the
    // others go back to the queue, and a later worker runs them.
    let second = format!("{q}-second");
    let running = app.delay(hold::task(), (second.clone(),)).unwrap();
    ask_until(&app, &name, "active", |a| lists(a, running.id()));
    let waiting = [
        app.delay(add::task(), (10, 1)).unwrap(),
        app.delay(add::task(), (10, 2)).unwrap(),
    ];
    ask_until(&app, &name, "reserved", |r| {
        waiting.iter().all(|t| lists(r, t.id()))
    });
    assert_eq!(
        ask(&app, &name, "shutdown", json!({})),
        json!({"ok": "shutting down"})
    );
    assert!(w.wait_for_shutdown_request(WAIT));
    let stopping = std::thread::spawn(move || w.shutdown());
    let deadline = Instant::now() + WAIT;
    while app.queue_len(&q).unwrap() < 2 {
        assert!(
            Instant::now() < deadline,
            "the prefetched tasks never came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    release(&second);
    stopping.join().unwrap();
    assert_eq!(running.get(WAIT).unwrap(), second);
    assert_eq!(app.queue_len(&q).unwrap(), 2);
    for r in &waiting {
        assert_eq!(r.state().unwrap(), State::Pending);
    }
    let w = worker(&app, &q);
    assert_eq!(waiting[0].get(WAIT).unwrap(), 11);
    assert_eq!(waiting[1].get(WAIT).unwrap(), 12);
    w.shutdown();
    assert_eq!(app.queue_len(&q).unwrap(), 0);
}

#[test]
fn higher_priorities_run_first_on_a_priority_queue() {
    let q = queue("priority");
    let app = App::builder(&format!("{AMQP}&queue_max_priority=10"), Some(REDIS))
        .default_queue(&q)
        .build()
        .unwrap();
    // All queued before any worker: low ones first, then high ones.
    let mut sent = Vec::new();
    for (level, priority) in [("low", 1), ("high", 9)] {
        for i in 0..5 {
            sent.push(
                app.apply_async(
                    record::task(),
                    (q.clone(), format!("{level}-{i}")),
                    CallOptions::new().priority(priority),
                )
                .unwrap(),
            );
        }
    }
    assert_eq!(app.queue_len(&q).unwrap(), 10);
    let w = Worker::builder(&app)
        .queues([q.clone()])
        .concurrency(1)
        .prefetch(1)
        .start()
        .unwrap();
    for r in &sent {
        r.get(WAIT).unwrap();
    }
    w.shutdown();
    let order: Vec<String> = RECORDED
        .lock()
        .unwrap()
        .iter()
        .filter(|(queue, _)| *queue == q)
        .map(|(_, tag)| tag.clone())
        .collect();
    assert_eq!(order.len(), 10, "{order:?}");
    assert!(
        order[..5].iter().all(|t| t.starts_with("high")),
        "the high ones did not run first: {order:?}"
    );
    // Within one priority, first in first out.
    let low: Vec<&String> = order[5..].iter().collect();
    assert_eq!(low, ["low-0", "low-1", "low-2", "low-3", "low-4"]);
}

#[test]
fn a_released_beat_lock_passes_to_the_other_beat_at_once() {
    let q = queue("beat");
    let dir = std::env::temp_dir().join(format!("braid-amqp-{q}"));
    std::fs::create_dir_all(&dir).unwrap();
    // Two machines by mistake: two connections, each beat its own store, one lock.
    let app_a = App::new(AMQP, None).unwrap();
    let app_b = App::new(AMQP, None).unwrap();
    let entries = || {
        vec![
            Entry::new(
                "every-10s",
                "amqp_test.add",
                Schedule::every(Duration::from_secs(10)),
            )
            .args(vec![json!(1), json!(2)])
            .queue(&q),
        ]
    };
    let lock = format!("beat-{q}");
    let mut a = Beat::new(&app_a, entries(), dir.join("a.json"))
        .unwrap()
        .lock_name(&lock);
    let mut b = Beat::new(&app_b, entries(), dir.join("b.json"))
        .unwrap()
        .lock_name(&lock);
    // On a test clock: 2026-01-05 00:00:00 UTC, then second by second.
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_571_200);
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut sent = 0;
    for s in 0..=30 {
        let ta = a.tick_at(at(s)).unwrap();
        let tb = b.tick_at(at(s)).unwrap();
        assert!(ta.leader && !tb.leader, "a holds the lock at {s}");
        assert!(tb.sent.is_empty(), "b fired while locked out at {s}");
        sent += ta.sent.len();
    }
    assert_eq!(sent, 3); // at 10, 20 and 30
    // A gives the lock up: B takes it at its next tick, not once a lifetime has passed,
    // and goes on from where it followed the schedule (30 is not sent again).
    a.release();
    assert!(!a.is_leader());
    let tb = b.tick_at(at(31)).unwrap();
    assert!(tb.leader, "b did not take over at once");
    assert!(tb.sent.is_empty(), "{tb:?}");
    for s in 32..=60 {
        let tb = b.tick_at(at(s)).unwrap();
        let ta = a.tick_at(at(s)).unwrap();
        assert!(tb.leader && !ta.leader, "b holds the lock at {s}");
        assert!(ta.sent.is_empty(), "a fired while locked out at {s}");
        sent += tb.sent.len();
    }
    assert_eq!(sent, 6); // and at 40, 50 and 60: each run once
    assert_eq!(app_a.queue_len(&q).unwrap(), 6);
    b.release();
    assert_eq!(app_a.purge(&q).unwrap(), 6);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rpc_results_need_a_rabbitmq_broker() {
    for broker in ["redis://127.0.0.1:6379/4", "memory://rpc-needs-amqp"] {
        for backend in ["rpc://", "amqp://guest:guest@127.0.0.1:5672//"] {
            let err = App::new(broker, Some(backend)).unwrap_err();
            let Error::Url { url, reason } = &err else {
                panic!("{broker} with {backend}: {err:?}")
            };
            assert_eq!(url, backend);
            assert!(reason.contains("amqp://"), "{err}");
        }
    }
    // On RabbitMQ it is fine.
    App::new(AMQP, Some("rpc://")).unwrap();
}
