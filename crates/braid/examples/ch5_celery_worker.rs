//! Book recipe (ch. 5): "Running a Celery worker": a worker process takes tasks from the
//! broker's queue and runs them, several at once, until it is stopped.
//!
//! Python:
//! ```sh
//! celery -A addTask worker --loglevel=info --concurrency=4
//! ```
//!
//! braid's worker is `braid worker --broker redis://... -Q celery -c 4` for the tasks in
//! the `braid` binary, or, as here, a `Worker` embedded in your own program with your own
//! tasks. A warm shutdown finishes the tasks that run and gives the others back to the
//! queue; a second worker then picks them up. Uses Redis on 127.0.0.1:6379 (database 14,
//! keys of its own), or the in-memory broker when there is no Redis.
//!
//! Run: `cargo run --example ch5_celery_worker`

use std::time::Duration;

use braid::taskq::{App, State, TaskOptions, Worker};

#[braid::task(name = "addTask.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Takes a little while, so the first worker is busy when it is stopped.
#[braid::task(name = "addTask.slow_square")]
fn slow_square(x: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(20));
    x * x
}

fn connect(name: &str) -> Result<App, braid::taskq::Error> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let url = format!(
        "redis://127.0.0.1:6379/14?global_keyprefix=braid-{name}-{}-{nanos}-",
        std::process::id()
    );
    let app = App::builder(&url, Some(&url))
        .result_expires(Duration::from_secs(60))
        .build()?;
    match app.queue_len("celery") {
        Ok(_) => {
            println!("broker: Redis at 127.0.0.1:6379/14");
            Ok(app)
        }
        Err(e) => {
            println!("broker: in memory (no Redis at 127.0.0.1:6379: {e})");
            let url = format!("memory://{name}");
            App::new(&url, Some(&url))
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let app = connect("ch5-worker")?;
    app.task_options(
        "addTask.slow_square",
        TaskOptions {
            track_started: true,
            ..TaskOptions::default()
        },
    );
    let squares = app.delay_many(slow_square::task(), (1..=20).map(|x| (x,)))?;
    let sums = app.delay_many(add::task(), (1..=100).map(|x| (x, x)))?;

    // The first worker: four at once, holding at most eight messages.
    let first = Worker::builder(&app).concurrency(4).prefetch(8).start()?;
    println!(
        "{} started on queues {:?}",
        first.hostname(),
        first.queues()
    );
    while squares[0].state()? == State::Pending {
        std::thread::sleep(Duration::from_millis(1));
    }
    first.shutdown();
    let waiting = app.queue_len("celery")?;
    println!("warm shutdown: running tasks finished, {waiting} messages back on the queue");

    // A second worker finishes the rest.
    let second = Worker::builder(&app).concurrency(4).start()?;
    let mut total = 0;
    for r in &squares {
        total += r.get(Duration::from_secs(10))?;
    }
    let mut sum = 0;
    for r in &sums {
        sum += r.get(Duration::from_secs(10))?;
    }
    let stats = second.stats();
    println!(
        "{} ran {} tasks; sum of squares 1..20 = {total}, sum of 2x over 1..100 = {sum}",
        second.hostname(),
        stats.processed
    );
    second.shutdown();
    if total != 2870 || sum != 10_100 {
        return Err(format!("got {total} and {sum}, expected 2870 and 10100").into());
    }
    Ok(())
}
