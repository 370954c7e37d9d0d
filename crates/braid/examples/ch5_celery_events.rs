//! Book recipe (ch. 5): "Monitoring with events": a worker started with events on (`-E`),
//! a receiver reading them, and a state tracker counting workers and tasks by state, as
//! Flower does.
//!
//! Python:
//! ```python
//! # celery -A proj worker -E
//! state = app.events.State()
//! with app.connection() as conn:
//!     recv = app.events.Receiver(conn, handlers={"*": state.event})
//!     recv.capture(limit=None, timeout=None)
//! ```
//!
//! In-memory broker: no server needed (the same code reads Python workers on Redis).
//!
//! Run: `cargo run --example ch5_celery_events`

use std::time::{Duration, Instant};

use braid::taskq::{App, CallOptions, ClusterState, EventReceiver, State, Worker};
use serde_json::json;

#[braid::task(name = "events.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

/// The error `events.refuse` returns.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[braid::task(name = "events.refuse")]
fn refuse(why: String) -> Result<(), Refused> {
    Err(Refused(why))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let app = App::new("memory://ch5-events", Some("memory://ch5-events"))?;
    let mut receiver = EventReceiver::new(&app)?;
    let worker = Worker::builder(&app)
        .concurrency(2)
        .events(true)
        .hostname("recipe@localhost")
        .start()?;

    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(app.send_task("events.add", vec![json!(i), json!(i)], CallOptions::new())?);
    }
    ids.push(app.send_task(
        "events.refuse",
        vec![json!("no thanks")],
        CallOptions::new(),
    )?);
    for r in &ids {
        // The failing call's error is expected; the others give numbers.
        let _outcome = r.get(Duration::from_secs(10));
    }

    let mut state = ClusterState::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.tasks_in(&State::Success).len() < 10 || state.tasks_in(&State::Failure).is_empty() {
        if Instant::now() > deadline {
            return Err("events did not all arrive".into());
        }
        if let Some(event) = receiver.recv_timeout(Duration::from_millis(200))? {
            println!(
                "{:16} {}",
                event.kind(),
                event.uuid().unwrap_or(event.hostname())
            );
            state.event(&event);
        }
    }
    let w = state.worker("recipe@localhost").ok_or("worker unseen")?;
    println!(
        "worker {}: alive={} sw={} {}",
        w.hostname,
        w.alive(),
        w.sw_ident.as_deref().unwrap_or("?"),
        w.sw_ver.as_deref().unwrap_or("?")
    );
    let mut counts: Vec<_> = state.counts().into_iter().collect();
    counts.sort();
    println!("tasks by state: {counts:?}");
    let failed = state.tasks_in(&State::Failure)[0];
    println!(
        "failed task {} {}: {}",
        failed.uuid,
        failed.name.as_deref().unwrap_or("?"),
        failed.exception.as_deref().unwrap_or("?")
    );
    worker.shutdown();
    Ok(())
}
