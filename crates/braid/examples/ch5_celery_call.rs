//! Book recipe (ch. 5): "Calling tasks and reading results": `delay`, `apply_async` with
//! options, the state and result of each call, a failure, and Celery's canvas.
//!
//! Python:
//! ```python
//! result = add.delay(4, 4)
//! result.get(timeout=10)                          # 8
//! add.apply_async((2, 2), countdown=0.2)           # runs a little later
//! div.delay(1, 0).get()                            # raises the task's error
//! chain(add.s(1, 2), add.s(3))().get()             # 6
//! group(add.s(i, i) for i in range(5))().get()     # [0, 2, 4, 6, 8]
//! chord((add.s(i, i) for i in range(5)), xsum.s())().get()  # 20
//! ```
//!
//! Uses Redis on 127.0.0.1:6379 (database 14, keys of its own), or the in-memory broker
//! when there is no Redis.
//!
//! Run: `cargo run --example ch5_celery_call`

use std::time::{Duration, Instant};

use braid::taskq::{App, CallOptions, Error, Signature, Worker, chain, chord, group};

#[braid::task(name = "addTask.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// Python's name for the error, so a Python client sees a `ZeroDivisionError`.
#[derive(Debug)]
struct ZeroDivisionError;

impl std::fmt::Display for ZeroDivisionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("division by zero")
    }
}

#[braid::task(name = "addTask.div")]
fn div(x: i64, y: i64) -> Result<i64, ZeroDivisionError> {
    x.checked_div(y).ok_or(ZeroDivisionError)
}

#[braid::task(name = "addTask.xsum")]
fn xsum(numbers: Vec<i64>) -> i64 {
    numbers.iter().sum()
}

const WAIT: Duration = Duration::from_secs(10);

fn connect(name: &str) -> Result<App, Error> {
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
    let app = connect("ch5-call")?;
    let worker = Worker::builder(&app).concurrency(4).start()?;
    let mut wrong = Vec::new();

    let result = app.delay(add::task(), (4, 4))?;
    let eight = result.get(WAIT)?;
    println!(
        "add.delay(4, 4): {} -> {eight} ({})",
        result.id(),
        result.state()?
    );
    if eight != 8 {
        wrong.push(format!("add(4, 4) = {eight}"));
    }

    let sent = Instant::now();
    let later = app.apply_async(
        add::task(),
        (2, 2),
        CallOptions::new().countdown(Duration::from_millis(200)),
    )?;
    let four = later.get(WAIT)?;
    println!(
        "apply_async((2, 2), countdown=0.2) -> {four} after {:?}",
        sent.elapsed()
    );
    if four != 4 || sent.elapsed() < Duration::from_millis(200) {
        wrong.push(format!(
            "the countdown call gave {four} after {:?}",
            sent.elapsed()
        ));
    }

    match app.delay(div::task(), (1, 0))?.get(WAIT) {
        Err(Error::Task(failure)) if failure.exc_type() == "ZeroDivisionError" => println!(
            "div.delay(1, 0) raised {}: {}",
            failure.exc_type(),
            failure.message()
        ),
        other => wrong.push(format!("div(1, 0) gave {other:?}")),
    }

    let six: i64 = app
        .apply(&chain([
            Signature::of(add::task(), (1, 2))?,
            Signature::of(add::task(), (3,))?,
        ]))?
        .typed()
        .get(WAIT)?;
    let doubles: Vec<i64> = app
        .apply_group(&group(
            (0..5)
                .map(|i| Signature::of(add::task(), (i, i)))
                .collect::<Result<Vec<_>, _>>()?,
        ))?
        .get(WAIT)?;
    let twenty: i64 = app
        .apply(&chord(
            (0..5)
                .map(|i| Signature::of(add::task(), (i, i)))
                .collect::<Result<Vec<_>, _>>()?,
            Signature::of(xsum::task(), ())?,
        ))?
        .typed()
        .get(WAIT)?;
    println!("chain -> {six}, group -> {doubles:?}, chord -> {twenty}");
    if six != 6 || doubles != [0, 2, 4, 6, 8] || twenty != 20 {
        wrong.push(format!("canvas gave {six}, {doubles:?}, {twenty}"));
    }
    worker.shutdown();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; ").into())
    }
}
