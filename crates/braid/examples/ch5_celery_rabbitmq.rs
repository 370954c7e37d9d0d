//! Book recipe (ch. 5): "Setting up Celery with RabbitMQ": the broker most Celery
//! deployments use, with results sent back over it (Celery's `rpc://` backend), two
//! workers sharing one queue, a countdown that waits in RabbitMQ (not in a worker), and
//! remote control.
//!
//! Python:
//! ```python
//! app = Celery("tasks", broker="amqp://guest:guest@localhost:5672//", backend="rpc://")
//!
//! @app.task
//! def add(x, y):
//!     return x + y
//!
//! # celery -A tasks worker -n w1@%h   and   celery -A tasks worker -n w2@%h
//! add.delay(4, 4).get(timeout=10)                    # 8
//! add.apply_async((1, 1), countdown=1.5).get()       # 2, not before 1.5 s
//! app.control.inspect().ping()                       # {'w1@...': {'ok': 'pong'}, ...}
//! ```
//!
//! Uses RabbitMQ on 127.0.0.1:5672 (guest/guest; a queue of its own), or the in-memory
//! broker when there is no RabbitMQ.
//!
//! Run: `cargo run --example ch5_celery_rabbitmq`

use std::time::{Duration, Instant};

use braid::taskq::{App, CallOptions, Error, Worker};
use serde_json::json;

#[braid::task(name = "tasks.rabbit_add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

const WAIT: Duration = Duration::from_secs(20);

/// An app on RabbitMQ with rpc:// results, or in memory when RabbitMQ is not there.
fn connect() -> Result<(App, bool), Error> {
    let queue = format!("ch5-rabbitmq-{}", std::process::id());
    let app = App::builder(
        "amqp://guest:guest@127.0.0.1:5672//?queue_expires=60",
        Some("rpc://"),
    )
    .default_queue(&queue)
    .build()?;
    match app.queue_len(&queue) {
        Ok(_) => {
            println!("broker: RabbitMQ at 127.0.0.1:5672, results over rpc://, queue {queue}");
            Ok((app, true))
        }
        Err(e) => {
            println!("broker: in memory (no RabbitMQ at 127.0.0.1:5672: {e})");
            let app = App::new("memory://ch5-rabbitmq", Some("memory://ch5-rabbitmq"))?;
            Ok((app, false))
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let (app, on_rabbitmq) = connect()?;
    // Two workers on one queue: RabbitMQ shares the messages out between them.
    let w1 = Worker::builder(&app)
        .concurrency(2)
        .hostname(format!("w1-{}@localhost", std::process::id()))
        .start()?;
    let w2 = Worker::builder(&app)
        .concurrency(2)
        .hostname(format!("w2-{}@localhost", std::process::id()))
        .start()?;
    let mut wrong = Vec::new();

    let eight = app.delay(add::task(), (4, 4))?.get(WAIT)?;
    println!("add.delay(4, 4).get() = {eight}");
    if eight != 8 {
        wrong.push("add(4, 4)");
    }

    let results = app.delay_many(add::task(), (0..100).map(|i| (i, 1)))?;
    let total: i64 = results
        .iter()
        .map(|r| r.get(WAIT))
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .sum();
    println!("100 calls on two workers, sum of results = {total}");
    if total != 5050 {
        wrong.push("100 calls");
    }
    let (s1, s2) = (w1.stats().processed, w2.stats().processed);
    println!("  w1 ran {s1}, w2 ran {s2}");

    let started = Instant::now();
    let later = app.apply_async(
        add::task(),
        (1, 1),
        CallOptions::new().countdown(Duration::from_millis(1500)),
    )?;
    let two = later.get(WAIT)?;
    let waited = started.elapsed();
    println!("countdown=1.5 s: {two} after {:.1} s", waited.as_secs_f64());
    if two != 2 || waited < Duration::from_millis(1500) {
        wrong.push("countdown");
    }

    if on_rabbitmq {
        let replies = app.control("ping", json!({}), Duration::from_millis(800), None)?;
        let names: Vec<String> = replies
            .iter()
            .filter_map(|r| r.as_object())
            .flat_map(|r| r.keys().cloned())
            .filter(|n| n.ends_with(&format!("-{}@localhost", std::process::id())))
            .collect();
        println!("inspect().ping(): {} of our workers answered", names.len());
        if names.len() != 2 {
            wrong.push("ping");
        }
    }

    w1.shutdown();
    w2.shutdown();
    if !wrong.is_empty() {
        return Err(format!("wrong: {wrong:?}").into());
    }
    Ok(())
}
