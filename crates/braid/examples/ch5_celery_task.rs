//! Book recipe (ch. 5): "Creating a task with Celery": a module `addTask` with one task,
//! `add(x, y)`, that a worker runs when a client calls it.
//!
//! Python:
//! ```python
//! from celery import Celery
//! app = Celery('addTask', broker='redis://localhost:6379/0')
//!
//! @app.task
//! def add(x, y):
//!     return x + y
//!
//! add(5, 5)        # a plain call, here
//! add.delay(5, 5)  # a message to the broker, run by a worker
//! ```
//!
//! In braid the task is a function registered under Celery's name (`addTask.add`), so a
//! Python client's `add.delay(5, 5)` reaches it too. The recipe uses the Redis on
//! 127.0.0.1:6379 (database 14, keys of its own), or the in-memory broker when there is no
//! Redis.
//!
//! Run: `cargo run --example ch5_celery_task`

use std::time::Duration;

use braid::taskq::{App, State, Worker};

#[braid::task(name = "addTask.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Redis if it answers, else the in-memory broker.
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
    println!(
        "task {} registered: {}",
        add::NAME,
        braid::lookup(add::NAME)?.signature()
    );
    // A plain call runs here, like calling `add(5, 5)` in Python.
    let here = add(5, 5);
    // `add.delay(5, 5)`: a message waits on the broker until a worker takes it.
    let app = connect("ch5-task")?;
    let call = app.delay(add::task(), (5, 5))?;
    println!("sent {} ({})", call.id(), call.state()?);
    if call.state()? != State::Pending {
        return Err("a call with no worker running should be PENDING".into());
    }
    let worker = Worker::builder(&app).concurrency(1).start()?;
    let result = call.get(Duration::from_secs(10))?;
    println!(
        "add(5, 5) = {here} here, {result} on worker {} ({})",
        worker.hostname(),
        call.state()?
    );
    worker.shutdown();
    app.purge("celery")?;
    if result != 10 || here != 10 {
        return Err(format!("add(5, 5) gave {here} and {result}").into());
    }
    Ok(())
}
