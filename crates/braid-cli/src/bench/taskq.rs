//! The `taskq` suite: braid's task queue against Python Celery 5.x on the same Redis
//! (`bench/python/taskq.py` mirrors every case with a Celery worker of 2 processes).
//!
//! Redis: database 13 of `$BRAID_BENCH_REDIS` (default `redis://127.0.0.1:6379/13`),
//! with a key prefix of its own per case; results expire after ten minutes and queues
//! are emptied afterwards. The braid worker runs in this process with a concurrency of 2.
//!
//! The `amqp_` cases put the queue on RabbitMQ (`$BRAID_BENCH_AMQP`, default
//! `amqp://guest:guest@127.0.0.1:5672//`, a queue of their own per run) with results in
//! the same Redis; the Python side then runs its Celery worker on that RabbitMQ.

use std::time::{Duration, Instant};

use braid::NoArgs;
use braid::taskq::{App, AsyncResult, CallOptions, Worker};

use super::{Case, CaseError, Measure, Size, Suite};
use crate::taskq_cmd::noop;

/// The suite's cases.
pub(crate) const SUITE: Suite = Suite {
    name: "taskq",
    script: "taskq.py",
    cases: &[
        Case {
            name: "send_noop",
            unit: "tasks/s",
            size: Size {
                full: 10_000,
                quick: 3_000,
            },
            check: None,
            measure: Measure::Once(send_noop),
        },
        Case {
            name: "worker_noop",
            unit: "tasks/s",
            size: Size {
                full: 10_000,
                quick: 3_000,
            },
            check: None,
            measure: Measure::Once(worker_noop),
        },
        Case {
            name: "end_to_end_noop",
            unit: "tasks/s",
            size: Size {
                full: 5_000,
                quick: 2_000,
            },
            check: None,
            measure: Measure::Once(end_to_end_noop),
        },
        Case {
            name: "delay_get_roundtrip",
            unit: "us",
            size: Size {
                full: 1_000,
                quick: 300,
            },
            check: None,
            measure: Measure::Once(delay_get_roundtrip),
        },
        Case {
            name: "amqp_worker_noop",
            unit: "tasks/s",
            size: Size {
                full: 10_000,
                quick: 3_000,
            },
            check: None,
            measure: Measure::Once(amqp_worker_noop),
        },
        Case {
            name: "amqp_delay_get_roundtrip",
            unit: "us",
            size: Size {
                full: 1_000,
                quick: 300,
            },
            check: None,
            measure: Measure::Once(amqp_delay_get_roundtrip),
        },
    ],
};

const WAIT: Duration = Duration::from_secs(120);

fn wrong(e: impl std::fmt::Display) -> CaseError {
    CaseError::Wrong(e.to_string())
}

/// An app on the bench's Redis with a key prefix no other run uses.
fn app() -> Result<App, CaseError> {
    let base = std::env::var("BRAID_BENCH_REDIS")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/13".to_string());
    let prefix = format!(
        "braid-bench-{}-{}-",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ u128::from(rand_u32())
    );
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}global_keyprefix={prefix}");
    let app = App::builder(&url, Some(&url))
        .result_expires(Duration::from_secs(600))
        .build()
        .map_err(wrong)?;
    app.queue_len("celery").map_err(|e| {
        CaseError::Wrong(format!(
            "the taskq suite needs Redis at {base} (set BRAID_BENCH_REDIS): {e}"
        ))
    })?;
    Ok(app)
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish() as u32
}

/// How many messages each worker may hold: many short tasks want a deep prefetch (the
/// Celery worker gets the same: 2 processes x a prefetch multiplier of 128).
const PREFETCH: usize = 256;

fn worker(app: &App, queue: &str) -> Result<Worker, CaseError> {
    Worker::builder(app)
        .queues([queue])
        .concurrency(2)
        .prefetch(PREFETCH)
        .start()
        .map_err(wrong)
}

fn expect_count(what: &str, got: usize, expected: usize) -> Result<(), CaseError> {
    if got == expected {
        Ok(())
    } else {
        Err(CaseError::Wrong(format!(
            "{what}: {got}, expected {expected}"
        )))
    }
}

/// Tasks per second one client sends (pipelined in batches).
fn send_noop(n: u64) -> Result<f64, CaseError> {
    let app = app()?;
    let started = Instant::now();
    let mut sent = 0;
    while sent < n {
        let batch = (n - sent).min(5_000);
        let results = app
            .delay_many(noop::task(), (0..batch).map(|_| NoArgs))
            .map_err(wrong)?;
        sent += results.len() as u64;
    }
    let elapsed = started.elapsed();
    let queued = app.purge("celery").map_err(wrong)?;
    expect_count("queued", queued as usize, n as usize)?;
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// Tasks per second a worker runs from a full queue, results stored and acknowledged.
fn worker_noop(n: u64) -> Result<f64, CaseError> {
    drain_noop(&app()?, "celery", n)
}

/// Tasks per second a worker on `queue` runs from a full queue (filled through the
/// app's default queue), results stored and acknowledged.
fn drain_noop(app: &App, queue: &str, n: u64) -> Result<f64, CaseError> {
    let mut last = None;
    let mut sent = 0;
    while sent < n {
        let batch = (n - sent).min(5_000);
        let results = app
            .delay_many(noop::task(), (0..batch).map(|_| NoArgs))
            .map_err(wrong)?;
        sent += results.len() as u64;
        last = results.into_iter().last();
    }
    let started = Instant::now();
    let w = worker(app, queue)?;
    let deadline = started + WAIT;
    loop {
        let stats = w.stats();
        if stats.processed >= n && stats.held == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(CaseError::Wrong(format!(
                "only {} of {n} tasks ran",
                stats.processed
            )));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let elapsed = started.elapsed();
    w.shutdown();
    if let Some(last) = last {
        last.get(WAIT).map_err(wrong)?;
    }
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// Tasks per second sent, run and read back, with the worker already running.
fn end_to_end_noop(n: u64) -> Result<f64, CaseError> {
    let app = app()?;
    let w = worker(&app, "e2e")?;
    let started = Instant::now();
    let mut results: Vec<AsyncResult<()>> = Vec::with_capacity(n as usize);
    let mut sent = 0;
    while sent < n {
        let batch = (n - sent).min(1_000);
        for _ in 0..batch {
            results.push(
                app.apply_async(noop::task(), NoArgs, CallOptions::new().queue("e2e"))
                    .map_err(wrong)?,
            );
        }
        sent += batch;
    }
    for r in &results {
        r.get(WAIT).map_err(wrong)?;
    }
    let elapsed = started.elapsed();
    w.shutdown();
    Ok(n as f64 / elapsed.as_secs_f64())
}

/// Microseconds per `delay().get()` with an idle worker.
fn delay_get_roundtrip(n: u64) -> Result<f64, CaseError> {
    noop_round_trips(&app()?, "celery", n)
}

/// Microseconds per `delay().get()` with an idle worker on `queue` (the app's default).
fn noop_round_trips(app: &App, queue: &str, n: u64) -> Result<f64, CaseError> {
    let w = worker(app, queue)?;
    app.delay(noop::task(), NoArgs)
        .map_err(wrong)?
        .get(WAIT)
        .map_err(wrong)?;
    let started = Instant::now();
    for _ in 0..n {
        app.delay(noop::task(), NoArgs)
            .map_err(wrong)?
            .get(WAIT)
            .map_err(wrong)?;
    }
    let elapsed = started.elapsed();
    w.shutdown();
    Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
}

/// An app with its queue on RabbitMQ, results in the bench's Redis, and a queue name no
/// other run uses.
fn amqp_app() -> Result<(App, String), CaseError> {
    let redis = app()?;
    let broker = std::env::var("BRAID_BENCH_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672//".to_string());
    let queue = format!("braid-bench-{}-{}", std::process::id(), rand_u32());
    // The bench's queues go away once unused.
    let sep = if broker.contains('?') { '&' } else { '?' };
    let broker = format!("{broker}{sep}queue_expires=300");
    let app = App::builder(&broker, redis.backend_url())
        .result_expires(Duration::from_secs(600))
        .default_queue(&queue)
        .build()
        .map_err(wrong)?;
    app.queue_len(&queue).map_err(|e| {
        CaseError::Wrong(format!(
            "the amqp cases need RabbitMQ at {broker} (set BRAID_BENCH_AMQP): {e}"
        ))
    })?;
    Ok((app, queue))
}

/// Tasks per second a worker runs from a full RabbitMQ queue, results stored in Redis.
fn amqp_worker_noop(n: u64) -> Result<f64, CaseError> {
    let (app, queue) = amqp_app()?;
    drain_noop(&app, &queue, n)
}

/// Microseconds per `delay().get()` over RabbitMQ with an idle worker.
fn amqp_delay_get_roundtrip(n: u64) -> Result<f64, CaseError> {
    let (app, queue) = amqp_app()?;
    noop_round_trips(&app, &queue, n)
}
