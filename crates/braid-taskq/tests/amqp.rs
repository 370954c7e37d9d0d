//! braid on RabbitMQ: calls, failures, countdowns through the delay levels, retries,
//! canvas, revokes remembered for later workers, remote control, heartbeats, events, the
//! broker lock, malformed messages, and the rpc:// and db+postgresql:// result backends.
//!
//! Needs RabbitMQ on 127.0.0.1:5672 (guest/guest), Redis on 127.0.0.1:6379 (database 4)
//! and PostgreSQL with the role `braid` (password `braid`) owning the database
//! `braid_test` on 127.0.0.1:5432; scripts/test installs and starts all three. Every test
//! uses queues with a random suffix.

use std::time::{Duration, Instant};

use braid_taskq::{App, CallOptions, Error, Signature, State, Worker, chain, chord, group};
use serde_json::{Value, json};

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672//?queue_expires=600";
const REDIS: &str = "redis://127.0.0.1:6379/4";
const POSTGRES: &str = "db+postgresql://braid:braid@127.0.0.1:5432/braid_test";
const WAIT: Duration = Duration::from_secs(30);

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

fn queue(test: &str) -> String {
    format!("braid-amqp-{test}-{}", uuid::Uuid::new_v4().simple())
}

fn worker(app: &App, queue: &str) -> Worker {
    Worker::builder(app)
        .queues([queue.to_string()])
        .concurrency(4)
        .prefetch(16)
        .start()
        .expect("start a worker on RabbitMQ (is it running?)")
}

#[test]
fn calls_failures_countdowns_and_canvas_with_redis_results() {
    let q = queue("calls");
    let app = App::builder(AMQP, Some(REDIS))
        .default_queue(&q)
        .build()
        .unwrap();
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
    let app = App::builder(AMQP, Some(REDIS))
        .default_queue(&q)
        .build()
        .unwrap();
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
    let app = App::builder(AMQP, Some(REDIS))
        .default_queue(&q)
        .build()
        .unwrap();
    let w = Worker::builder(&app)
        .queues([q.clone()])
        .concurrency(2)
        .hostname(format!("braid-{q}@test"))
        .start()
        .unwrap();
    let name = w.hostname().to_string();
    let deadline = Instant::now() + WAIT;
    loop {
        let replies = app
            .control("ping", json!({}), Duration::from_millis(500), None)
            .unwrap();
        if replies
            .iter()
            .any(|r| r.get(&name) == Some(&json!({"ok": "pong"})))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no pong from {name}: {replies:?}"
        );
    }
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
    let app = App::builder(AMQP, Some(REDIS))
        .default_queue(&q)
        .build()
        .unwrap();
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
    let app = App::builder(AMQP, Some("rpc://"))
        .default_queue(&q)
        .build()
        .unwrap();
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
    let app = App::builder(AMQP, Some(POSTGRES))
        .default_queue(&q)
        .build()
        .unwrap();
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
fn unused_value_check() {
    // Values of every JSON kind survive the trip through AMQP headers and bodies.
    let q = queue("values");
    let app = App::builder(AMQP, Some(REDIS))
        .default_queue(&q)
        .build()
        .unwrap();
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
