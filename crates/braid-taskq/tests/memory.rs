//! The task queue end to end on the in-memory broker and backend: calls, results,
//! failures, retries, countdowns, expiry, revocation, time limits, canvas, shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use braid_taskq::{
    App, CallOptions, Error, RateLimit, Signature, State, TaskOptions, Worker, chain, chord,
    current, group, retry,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

#[braid_core::task(name = "mem.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[braid_core::task(name = "mem.xsum")]
fn xsum(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[braid_core::task(name = "mem.parse")]
fn parse(text: String) -> Result<i64, std::num::ParseIntError> {
    text.parse()
}

#[braid_core::task(name = "mem.panic")]
fn panics() -> i64 {
    panic!("kaboom")
}

#[braid_core::task(name = "mem.async_double")]
async fn async_double(x: i64) -> i64 {
    tokio::task::yield_now().await;
    x * 2
}

static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Fails until it has been retried twice, asking for a retry each time.
#[braid_core::task(name = "mem.flaky")]
fn flaky() -> Result<u32, braid_taskq::Retry> {
    FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    let context = current().expect("a task context");
    if context.retries() < 2 {
        return Err(retry(Some(Duration::from_millis(10))));
    }
    Ok(context.retries())
}

/// Always fails with an I/O error, which the app's options retry automatically.
#[braid_core::task(name = "mem.io_error")]
fn io_error() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("disk on fire"))
}

/// Always asks for a retry.
#[braid_core::task(name = "mem.always_retry")]
fn always_retry() -> Result<(), braid_taskq::Retry> {
    Err(retry(Some(Duration::ZERO)))
}

#[braid_core::task(name = "mem.sleep")]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Loops until its soft time limit passes, then stops cleanly.
#[braid_core::task(name = "mem.soft")]
fn soft() -> Result<u32, braid_taskq::SoftTimeLimitExceeded> {
    let context = current().expect("a task context");
    let mut spins = 0;
    loop {
        context.check_soft_time_limit()?;
        spins += 1;
        std::thread::sleep(Duration::from_millis(5));
        if spins > 2000 {
            return Ok(spins);
        }
    }
}

#[braid_core::task(name = "mem.context_id")]
fn context_id() -> String {
    current().map(|c| c.id().to_string()).unwrap_or_default()
}

#[braid_core::task(name = "mem.wait_forever")]
async fn wait_forever() -> u32 {
    std::future::pending::<()>().await;
    0
}

fn app(name: &str) -> App {
    let url = format!("memory://{name}");
    App::new(&url, Some(&url)).unwrap()
}

fn worker(app: &App) -> Worker {
    Worker::builder(app).concurrency(2).start().unwrap()
}

#[test]
fn delay_get_and_state() {
    let app = app("delay");
    let w = worker(&app);
    let r = app.delay(add::task(), (2, 3)).unwrap();
    assert_eq!(r.get(WAIT).unwrap(), 5);
    assert_eq!(r.state().unwrap(), State::Success);
    assert!(r.ready().unwrap() && r.successful().unwrap());
    let results = app
        .delay_many(add::task(), (0..200).map(|i| (i, i)))
        .unwrap();
    let total: i64 = results.iter().map(|r| r.get(WAIT).unwrap()).sum();
    assert_eq!(total, (0..200).map(|i| 2 * i).sum::<i64>());
    let a = app.delay(async_double::task(), (21,)).unwrap();
    assert_eq!(a.get(WAIT).unwrap(), 42);
    let packed = app
        .apply_async(
            add::task(),
            (20, 22),
            CallOptions::new().serializer(braid_taskq::Serializer::Msgpack),
        )
        .unwrap();
    assert_eq!(packed.get(WAIT).unwrap(), 42);
    // A task id of one's own, and the context inside the task.
    let r = app
        .apply_async(
            context_id::task(),
            braid_core::NoArgs,
            CallOptions::new().task_id("my-id"),
        )
        .unwrap();
    assert_eq!(r.id(), "my-id");
    assert_eq!(r.get(WAIT).unwrap(), "my-id");
    r.forget().unwrap();
    assert_eq!(r.state().unwrap(), State::Pending);
    w.shutdown();
}

#[test]
fn failures_carry_the_error_type() {
    let app = app("failures");
    let w = worker(&app);
    let err = app
        .delay(parse::task(), ("x".to_string(),))
        .unwrap()
        .get(WAIT)
        .unwrap_err();
    let Error::Task(failure) = err else {
        panic!("expected a task failure, got {err:?}")
    };
    assert_eq!(failure.exc_type(), "ParseIntError");
    assert_eq!(
        failure.exception.exc_module.as_deref(),
        Some("core::num::error")
    );
    assert!(
        failure.message().contains("invalid digit"),
        "{}",
        failure.message()
    );
    assert!(failure.traceback.unwrap().contains("ParseIntError"));

    let err = app
        .delay(panics::task(), braid_core::NoArgs)
        .unwrap()
        .get(WAIT)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Task(f) if f.exc_type() == "TaskPanic" && f.message() == "kaboom"),
        "{err:?}"
    );
    // Into braid-core's error, for executors.
    let core: braid_core::Error = err.into();
    assert!(
        matches!(core, braid_core::Error::Task(t) if t.kind == braid_core::TaskErrorKind::Panic)
    );
    w.shutdown();
}

#[test]
fn malformed_calls_fail_and_are_dead_lettered() {
    let app = app("malformed");
    let w = worker(&app);
    let unknown = app
        .send_task("mem.nope", vec![], CallOptions::new())
        .unwrap();
    let err = unknown.get(WAIT).unwrap_err();
    assert!(
        matches!(&err, Error::Task(f) if f.exc_type() == "NotRegistered"),
        "{err:?}"
    );
    let wrong = app
        .send_task("mem.add", vec![json!(1)], CallOptions::new())
        .unwrap();
    let err = wrong.get(WAIT).unwrap_err();
    assert!(
        matches!(&err, Error::Task(f) if f.exc_type() == "TypeError"),
        "{err:?}"
    );
    let dead = app.dead_letters().unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("NotRegistered")
    );
    // The worker goes on.
    assert_eq!(
        app.delay(add::task(), (1, 1)).unwrap().get(WAIT).unwrap(),
        2
    );
    assert_eq!(w.stats().dead_lettered, 2);
    w.shutdown();
}

#[test]
fn keyword_arguments_fill_parameters_by_name() {
    let app = app("kwargs");
    let w = worker(&app);
    let r = app
        .send_task("mem.add", vec![json!(40)], CallOptions::new().kwarg("y", 2))
        .unwrap();
    assert_eq!(r.get(WAIT).unwrap(), json!(42));
    let r = app
        .send_task(
            "mem.add",
            vec![],
            CallOptions::new().kwarg("y", 1).kwarg("x", 2),
        )
        .unwrap();
    assert_eq!(r.get(WAIT).unwrap(), json!(3));
    let r = app
        .send_task("mem.add", vec![json!(1)], CallOptions::new().kwarg("z", 1))
        .unwrap();
    assert!(matches!(r.get(WAIT), Err(Error::Task(f)) if f.exc_type() == "TypeError"));
    w.shutdown();
}

#[test]
fn retries_explicit_and_automatic() {
    let app = app("retries");
    app.task_options(
        "mem.io_error",
        TaskOptions {
            max_retries: Some(2),
            autoretry_for: vec!["std::io::Error".into()],
            default_retry_delay: Duration::ZERO,
            ..TaskOptions::default()
        },
    );
    app.task_options(
        "mem.always_retry",
        TaskOptions {
            max_retries: Some(1),
            ..TaskOptions::default()
        },
    );
    let w = worker(&app);
    let r = app.delay(flaky::task(), braid_core::NoArgs).unwrap();
    assert_eq!(r.get(WAIT).unwrap(), 2);
    assert!(FLAKY_CALLS.load(Ordering::SeqCst) >= 3);

    let err = app
        .delay(io_error::task(), braid_core::NoArgs)
        .unwrap()
        .get(WAIT)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Task(f) if f.exc_type() == "IoError" && f.message() == "disk on fire"),
        "{err:?}"
    );

    let err = app
        .delay(always_retry::task(), braid_core::NoArgs)
        .unwrap()
        .get(WAIT)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Task(f) if f.exc_type() == "MaxRetriesExceededError"),
        "{err:?}"
    );
    assert_eq!(w.stats().retried, 2 + 2 + 1);
    w.shutdown();
}

#[test]
fn countdown_goes_through_the_durable_schedule() {
    let app = app("countdown");
    let w = worker(&app);
    // Over a second away: the worker moves it into the broker's schedule, not its memory.
    let r = app
        .apply_async(
            add::task(),
            (1, 2),
            CallOptions::new().countdown(Duration::from_millis(1300)),
        )
        .unwrap();
    let short = app
        .apply_async(
            add::task(),
            (2, 2),
            CallOptions::new().countdown(Duration::from_millis(50)),
        )
        .unwrap();
    assert_eq!(short.get(WAIT).unwrap(), 4);
    // The worker holds nothing while the far one waits in the schedule.
    while w.stats().held > 0 {
        std::thread::yield_now();
    }
    assert_eq!(r.state().unwrap(), State::Pending);
    assert_eq!(r.get(WAIT).unwrap(), 3);
    w.shutdown();
}

#[test]
fn expired_and_revoked_calls_are_revoked() {
    let app = app("revoke");
    let expired = app
        .apply_async(
            add::task(),
            (1, 1),
            CallOptions::new().expires_at(std::time::SystemTime::now() - Duration::from_secs(1)),
        )
        .unwrap();
    let doomed = app.delay(add::task(), (2, 2)).unwrap();
    doomed.revoke(false).unwrap();
    // Started after the revocation: it learns it from the broker.
    let w = worker(&app);
    assert!(matches!(expired.get(WAIT), Err(Error::Revoked(_))));
    assert!(matches!(doomed.get(WAIT), Err(Error::Revoked(_))));
    assert_eq!(doomed.state().unwrap(), State::Revoked);
    // Terminating a running task.
    let running = app.delay(wait_forever::task(), braid_core::NoArgs).unwrap();
    while w.stats().held == 0 {
        std::thread::yield_now();
    }
    running.revoke(true).unwrap();
    assert!(matches!(running.get(WAIT), Err(Error::Revoked(_))));
    assert_eq!(
        app.delay(add::task(), (3, 3)).unwrap().get(WAIT).unwrap(),
        6
    );
    w.shutdown();
}

#[test]
fn time_limits() {
    let app = app("limits");
    app.task_options(
        "mem.sleep",
        TaskOptions {
            time_limit: Some(Duration::from_millis(100)),
            ..TaskOptions::default()
        },
    );
    app.task_options(
        "mem.soft",
        TaskOptions {
            soft_time_limit: Some(Duration::from_millis(50)),
            ..TaskOptions::default()
        },
    );
    let w = Worker::builder(&app).concurrency(1).start().unwrap();
    let err = app
        .delay(sleep_ms::task(), (3_000,))
        .unwrap()
        .get(WAIT)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Task(f) if f.exc_type() == "TimeLimitExceeded"),
        "{err:?}"
    );
    // The pool replaced the thread it gave up on: with one thread, this still runs.
    assert_eq!(
        app.delay(add::task(), (1, 2)).unwrap().get(WAIT).unwrap(),
        3
    );
    let err = app
        .delay(soft::task(), braid_core::NoArgs)
        .unwrap()
        .get(WAIT)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Task(f) if f.exc_type() == "SoftTimeLimitExceeded"),
        "{err:?}"
    );
    // A call's own limit wins over the task's.
    let err = app
        .apply_async(
            wait_forever::task(),
            braid_core::NoArgs,
            CallOptions::new().time_limit(Duration::from_millis(50)),
        )
        .unwrap()
        .get(WAIT)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Task(f) if f.exc_type() == "TimeLimitExceeded"),
        "{err:?}"
    );
    w.shutdown();
}

#[test]
fn options_route_rate_limit_and_ignore_results() {
    let app = App::builder("memory://options", Some("memory://options"))
        .task_options(
            "mem.xsum",
            TaskOptions {
                queue: Some("sums".into()),
                ignore_result: true,
                rate_limit: Some("1000/s".parse::<RateLimit>().unwrap()),
                ..TaskOptions::default()
            },
        )
        .build()
        .unwrap();
    let ignored = app.delay(xsum::task(), (vec![1, 2, 3],)).unwrap();
    assert_eq!(app.queue_len("sums").unwrap(), 1);
    assert_eq!(app.purge("sums").unwrap(), 1);
    let ignored_again = app.delay(xsum::task(), (vec![1],)).unwrap();
    let w = Worker::builder(&app)
        .queues(["celery", "sums"])
        .concurrency(1)
        .start()
        .unwrap();
    // Results of other tasks still arrive, so the ignored one has run by then.
    let later = app
        .apply_async(add::task(), (1, 1), CallOptions::new().queue("sums"))
        .unwrap();
    assert_eq!(later.get(WAIT).unwrap(), 2);
    assert_eq!(ignored.state().unwrap(), State::Pending);
    assert_eq!(ignored_again.state().unwrap(), State::Pending);
    w.shutdown();
}

#[test]
fn canvas_chain_group_chord_map() {
    let app = app("canvas");
    let w = worker(&app);
    let add_sig = |args: Vec<Value>| Signature::new("mem.add", args);
    // (1 + 2) + 10 + 100
    let c = chain([
        add_sig(vec![json!(1), json!(2)]),
        add_sig(vec![json!(10)]),
        add_sig(vec![json!(100)]),
    ]);
    assert_eq!(app.apply(&c).unwrap().get(WAIT).unwrap(), json!(113));

    let g = group((0..5).map(|i| add_sig(vec![json!(i), json!(i)])));
    let results: Vec<i64> = app.apply_group(&g).unwrap().get(WAIT).unwrap();
    assert_eq!(results, [0, 2, 4, 6, 8]);

    let ch = chord(
        (1..=4).map(|i| add_sig(vec![json!(i), json!(0)])),
        Signature::new("mem.xsum", vec![]),
    );
    assert_eq!(app.apply(&ch).unwrap().get(WAIT).unwrap(), json!(10));

    // A group followed by a task becomes a chord.
    let c = chain([
        group([
            add_sig(vec![json!(1), json!(1)]),
            add_sig(vec![json!(2), json!(2)]),
        ]),
        Signature::new("mem.xsum", vec![]),
        add_sig(vec![json!(1)]),
    ]);
    assert_eq!(app.apply(&c).unwrap().get(WAIT).unwrap(), json!(7));

    let double = Signature::of(async_double::task(), ()).unwrap();
    let mapped = app
        .apply(&double.map(vec![json!(1), json!(2), json!(3)]))
        .unwrap();
    assert_eq!(mapped.get(WAIT).unwrap(), json!([2, 4, 6]));
    let starred = app
        .apply(&add_sig(vec![]).starmap(vec![vec![json!(1), json!(2)], vec![json!(3), json!(4)]]))
        .unwrap();
    assert_eq!(starred.get(WAIT).unwrap(), json!([3, 7]));
    let chunks = add_sig(vec![]).chunks((0..5).map(|i| vec![json!(i), json!(1)]).collect(), 2);
    let chunked: Vec<Vec<i64>> = app.apply_group(&chunks).unwrap().get(WAIT).unwrap();
    assert_eq!(chunked, vec![vec![1, 2], vec![3, 4], vec![5]]);

    // A link, and an errback that gets the failed task's id.
    let linked = app
        .apply_async(
            add::task(),
            (1, 1),
            CallOptions::new()
                .link(add_sig(vec![json!(5)]).set(CallOptions::new().task_id("linked"))),
        )
        .unwrap();
    assert_eq!(linked.get(WAIT).unwrap(), 2);
    assert_eq!(app.result("linked").get(WAIT).unwrap(), json!(7));
    let failing = app
        .apply_async(
            parse::task(),
            ("nope".to_string(),),
            CallOptions::new().link_error(
                Signature::new("mem.context_id", vec![])
                    .immutable()
                    .set(CallOptions::new().task_id("errback")),
            ),
        )
        .unwrap();
    assert!(failing.get(WAIT).is_err());
    assert_eq!(app.result("errback").get(WAIT).unwrap(), json!("errback"));

    // A chord whose header fails fails its body with ChordError.
    let ch = chord(
        [
            add_sig(vec![json!(1), json!(1)]),
            Signature::new("mem.parse", vec![json!("x")]),
        ],
        Signature::new("mem.xsum", vec![]),
    );
    let err = app.apply(&ch).unwrap().get(WAIT).unwrap_err();
    assert!(
        matches!(&err, Error::Task(f) if f.exc_type() == "ChordError"),
        "{err:?}"
    );
    w.shutdown();
}

#[test]
fn warm_shutdown_gives_back_what_has_not_started() {
    let app = app("warm");
    let w = Worker::builder(&app)
        .concurrency(1)
        .prefetch(8)
        .start()
        .unwrap();
    app.task_options(
        "mem.sleep",
        TaskOptions {
            track_started: true,
            ..TaskOptions::default()
        },
    );
    let first = app.delay(sleep_ms::task(), (200,)).unwrap();
    let rest = app
        .delay_many(sleep_ms::task(), (0..5).map(|_| (1000,)))
        .unwrap();
    while first.state().unwrap() != State::Started || w.stats().held < 6 {
        std::thread::yield_now();
    }
    w.shutdown();
    // The running one finished; the others went back to the queue.
    assert_eq!(first.get(WAIT).unwrap(), 200);
    assert_eq!(app.queue_len("celery").unwrap(), 5);
    for r in &rest {
        assert_eq!(r.state().unwrap(), State::Pending);
    }
    // Another worker picks them up.
    app.task_options(
        "mem.sleep",
        TaskOptions {
            time_limit: Some(Duration::from_millis(1)),
            ..TaskOptions::default()
        },
    );
    let w = Worker::builder(&app).concurrency(5).start().unwrap();
    for r in rest {
        assert!(r.get(WAIT).is_err());
    }
    w.shutdown();
}

#[test]
fn track_started_and_remote_control() {
    let app = app("control");
    app.task_options(
        "mem.wait_forever",
        TaskOptions {
            track_started: true,
            ..TaskOptions::default()
        },
    );
    let w = worker(&app);
    let r = app.delay(wait_forever::task(), braid_core::NoArgs).unwrap();
    while r.state().unwrap() != State::Started {
        std::thread::yield_now();
    }
    let replies = app
        .control("ping", json!({}), Duration::from_secs(2), Some(1))
        .unwrap();
    assert_eq!(replies, vec![json!({w.hostname(): {"ok": "pong"}})]);
    let active = app
        .control("active", json!({}), Duration::from_secs(2), Some(1))
        .unwrap();
    assert_eq!(active[0][w.hostname()][0]["id"], json!(r.id()));
    let stats = app
        .control("stats", json!({}), Duration::from_secs(2), Some(1))
        .unwrap();
    assert_eq!(stats[0][w.hostname()]["concurrency"], json!(2));
    r.revoke(true).unwrap();
    assert!(matches!(r.get(WAIT), Err(Error::Revoked(_))));
    app.control("shutdown", json!({}), Duration::from_millis(10), Some(0))
        .unwrap();
    assert!(w.wait_for_shutdown_request(WAIT));
    w.shutdown();
}

#[test]
fn get_times_out_without_a_worker() {
    let app = app("timeout");
    let r = app.delay(add::task(), (1, 1)).unwrap();
    assert!(matches!(
        r.get(Duration::from_millis(20)),
        Err(Error::Timeout(_))
    ));
    let no_backend = App::new("memory://timeout", None).unwrap();
    let r = no_backend.delay(add::task(), (1, 1)).unwrap();
    assert!(matches!(r.state(), Err(Error::NoBackend)));
    assert!(matches!(App::new("nope://", None), Err(Error::Url { .. })));
}

#[tokio::test]
async fn calls_and_workers_from_async_code() {
    let app = app("async-caller");
    let w = worker(&app);
    let r = app.delay(add::task(), (1, 2)).unwrap();
    assert_eq!(r.get(WAIT).unwrap(), 3);
    w.shutdown();
}
