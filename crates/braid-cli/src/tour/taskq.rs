//! The task-queue recipe: Celery's first steps on the in-memory broker: a worker, calls
//! and their results, a failure carried back, a retry, and a chord.

use std::time::Duration;

use braid::taskq::{App, Error, Signature, TaskOptions, Worker, chord, current, retry};
use serde_json::json;

#[braid::task(name = "tour.taskq.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[braid::task(name = "tour.taskq.xsum")]
fn xsum(numbers: Vec<i64>) -> i64 {
    numbers.iter().sum()
}

#[braid::task(name = "tour.taskq.parse")]
fn parse(text: String) -> Result<i64, std::num::ParseIntError> {
    text.parse()
}

/// Asks to run again once, then answers how many retries it took.
#[braid::task(name = "tour.taskq.flaky")]
fn flaky() -> Result<u32, braid::taskq::Retry> {
    let retries = current().map_or(0, |c| c.retries());
    if retries == 0 {
        return Err(retry(Some(Duration::ZERO)));
    }
    Ok(retries)
}

const WAIT: Duration = Duration::from_secs(10);

pub(super) fn run() -> Result<String, String> {
    let app = App::new("memory://tour", Some("memory://tour")).map_err(|e| e.to_string())?;
    app.task_options(
        "tour.taskq.flaky",
        TaskOptions {
            max_retries: Some(1),
            ..TaskOptions::default()
        },
    );
    let worker = Worker::builder(&app)
        .concurrency(2)
        .start()
        .map_err(|e| e.to_string())?;
    let outcome = (|| {
        let results = app
            .delay_many(add::task(), (0..1000).map(|i| (i, i)))
            .map_err(|e| e.to_string())?;
        let mut total = 0;
        for r in &results {
            total += r.get(WAIT).map_err(|e| e.to_string())?;
        }
        if total != 999_000 {
            return Err(format!("1000 additions summed to {total}, expected 999000"));
        }
        let failure = match app
            .delay(parse::task(), ("twelve".to_string(),))
            .map_err(|e| e.to_string())?
            .get(WAIT)
        {
            Err(Error::Task(f)) => f.exc_type().to_string(),
            other => return Err(format!("parsing \"twelve\" gave {other:?}")),
        };
        let retries = app
            .delay(flaky::task(), braid::NoArgs)
            .map_err(|e| e.to_string())?
            .get(WAIT)
            .map_err(|e| e.to_string())?;
        let header = (1..=10).map(|i| Signature::new("tour.taskq.add", vec![json!(i), json!(i)]));
        let sum = app
            .apply(&chord(header, Signature::new("tour.taskq.xsum", vec![])))
            .map_err(|e| e.to_string())?
            .get(WAIT)
            .map_err(|e| e.to_string())?;
        if sum != json!(110) || failure != "ParseIntError" || retries != 1 {
            return Err(format!(
                "chord sum {sum} (expected 110), failure {failure} (expected ParseIntError), {retries} retries (expected 1)"
            ));
        }
        Ok(format!(
            "1000 calls summed to {total}; a failure came back as {failure}; a retry ran; a chord of 10 summed to {sum}"
        ))
    })();
    worker.shutdown();
    outcome
}
