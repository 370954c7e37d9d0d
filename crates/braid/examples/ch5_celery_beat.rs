//! Book recipe (ch. 5): "Periodic tasks with Celery beat": an interval entry and a crontab
//! entry, sent by a beat that remembers its last runs, run by a worker.
//!
//! Python:
//! ```python
//! app.conf.beat_schedule = {
//!     "add-every-10s": {"task": "tasks.add", "schedule": 10.0, "args": (2, 3)},
//!     "every-5-minutes": {"task": "tasks.report", "schedule": crontab(minute="*/5")},
//! }
//! # celery -A proj beat   (and a worker: celery -A proj worker)
//! ```
//!
//! The beat here is driven by a simulated clock (one hour in a moment) so the recipe ends
//! at once; `Beat::run` (and `braid beat --schedule FILE`) uses the real one. In-memory
//! broker: no server needed.
//!
//! Run: `cargo run --example ch5_celery_beat`

use std::time::{Duration, UNIX_EPOCH};

use braid::taskq::{App, Beat, Entry, Schedule, Worker, parse_entries};

#[braid::task(name = "beat.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[braid::task(name = "beat.report")]
fn report() -> String {
    "report written".to_string()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let app = App::new("memory://ch5-beat", Some("memory://ch5-beat"))?;
    let worker = Worker::builder(&app).concurrency(2).start()?;

    // The schedule, as `braid beat --schedule beat.toml` reads it.
    let toml = r#"
        [[entries]]
        name = "add-every-10s"
        task = "beat.add"
        args = [2, 3]
        schedule = 10

        [[entries]]
        name = "every-5-minutes"
        task = "beat.report"
        schedule = { crontab = "*/5 * * * *" }
    "#;
    let mut entries = parse_entries(toml, true)?;
    // The same in Rust:
    entries.push(Entry::new(
        "hourly",
        "beat.report",
        Schedule::crontab("0 * * * *")?,
    ));

    let store = std::env::temp_dir().join(format!("ch5-beat-{}.json", std::process::id()));
    let mut beat = Beat::new(&app, entries, &store)?;
    // Monday 2026-01-05 00:00 UTC, one simulated hour, one tick a second.
    let start = UNIX_EPOCH + Duration::from_secs(1_767_571_200);
    let mut sent = Vec::new();
    for s in 0..=3600 {
        let tick = beat.tick_at(start + Duration::from_secs(s))?;
        sent.extend(tick.sent);
    }
    for name in ["add-every-10s", "every-5-minutes", "hourly"] {
        let n = sent.iter().filter(|(entry, _)| entry == name).count();
        let record = beat.last_run(name).ok_or("no record")?;
        println!(
            "{name:16} sent {n:3} times in the hour (store says {})",
            record.total_run_count
        );
    }
    // Every run was sent as a task: read the last result of each kind.
    let last_add = sent
        .iter()
        .rev()
        .find(|(n, _)| n == "add-every-10s")
        .ok_or("none")?;
    let value = app
        .result(last_add.1.clone())
        .get(Duration::from_secs(10))?;
    println!("last add-every-10s result: {value}");
    let last_report = sent
        .iter()
        .rev()
        .find(|(n, _)| n == "hourly")
        .ok_or("none")?;
    let value = app
        .result(last_report.1.clone())
        .get(Duration::from_secs(10))?;
    println!("last hourly result: {value}");
    assert_eq!(sent.len(), 360 + 12 + 1);

    beat.release();
    worker.shutdown();
    std::fs::remove_file(&store)?;
    Ok(())
}
