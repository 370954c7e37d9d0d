//! Book recipe (ch. 4, "Using the concurrent.futures Python modules", shown with threads
//! here): `ThreadPoolExecutor`: submit work, map over inputs, take results as they complete.
//!
//! Python:
//! ```python
//! with ThreadPoolExecutor(max_workers=4) as pool:
//!     future = pool.submit(square, 12); print(future.result())
//!     print(list(pool.map(square, range(10))))
//!     for f in as_completed(futures): ...
//!     done, not_done = wait(futures, return_when=FIRST_COMPLETED)
//! ```
//!
//! Run: `cargo run --example ch2_thread_pool`

use std::sync::Arc;

use braid::sync::{self, Event, ThreadPool};
use braid::{ExecutorExt, ReturnWhen, TaskErrorKind};

/// A registered task: any braid executor (threads, processes, a cluster) can run it by name.
#[braid::task]
fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    let pool = ThreadPool::builder()
        .max_workers(4)
        .thread_name_prefix("pool")
        .build()?;

    // submit(fn): any closure; its handle is Python's Future.
    let answer = pool.submit_fn(|| (sync::current().name, 6 * 7))?;
    let (worker, value) = answer.result()?;
    println!("submit_fn ran on {worker} and returned {value}");
    if value != 42 || !worker.starts_with("pool") {
        return Err(format!("submit_fn gave {value} on {worker:?}").into());
    }

    // A registered task, by reference: type-checked arguments, a serialisable call.
    let squared = pool.submit(square::task(), (12,))?.result()?;
    println!("submit(square, 12) = {squared}");

    // map keeps input order; chunksize 3 sends three calls per job.
    let squares = pool
        .map(square::task(), (0..10).map(|x| (x,)), 3)
        .collect::<Result<Vec<u64>, _>>()?;
    let cubes = pool
        .map_fn(|x: u64| x * x * x, 0..10)
        .collect::<Result<Vec<u64>, _>>()?;
    println!("map(square, range(10)) = {squares:?}");
    println!("map_fn(cube, range(10)) = {cubes:?}");
    let expected: Vec<u64> = (0..10).map(|x| x * x).collect();
    if squared != 144 || squares != expected || cubes.iter().zip(0..).any(|(&c, x)| c != x * x * x)
    {
        return Err("submit or map gave a wrong value".into());
    }

    // as_completed: results in the order they finish.
    let handles = (1..=5)
        .map(|n| pool.submit(square::task(), (n,)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut finished = Vec::new();
    for handle in braid::as_completed(handles) {
        finished.push(handle?.result()?);
    }
    println!("as_completed over squares of 1..=5, in finishing order: {finished:?}");
    if finished.iter().sum::<u64>() != 55 {
        return Err(format!("as_completed gave {finished:?}").into());
    }

    // wait(FIRST_COMPLETED): one job blocks on an event, the other returns at once.
    let gate = Arc::new(Event::new());
    let slow = {
        let gate = gate.clone();
        pool.submit_fn(move || {
            gate.wait();
            "slow"
        })?
    };
    let fast = pool.submit_fn(|| "fast")?;
    let mut waited = braid::wait([slow, fast], None, ReturnWhen::FirstCompleted);
    println!(
        "wait(FIRST_COMPLETED): {} done, {} not done",
        waited.done.len(),
        waited.not_done.len()
    );
    let (Some(done), Some(pending)) = (waited.done.pop(), waited.not_done.pop()) else {
        return Err("wait(FIRST_COMPLETED) should split the jobs one and one".into());
    };
    let first = done.result()?;
    gate.set();
    let second = pending.result()?;
    if (first, second) != ("fast", "slow") {
        return Err(format!("finished {first} then {second}").into());
    }

    // A panic in a job is the job's error, as a Future's exception; the pool lives on.
    // (The hook keeps the expected panic's report to one line.)
    std::panic::set_hook(Box::new(|info| eprintln!("expected: {info}")));
    let failed = pool.submit_fn(|| -> u64 { panic!("deliberate failure in a job") })?;
    let outcome = failed.result();
    drop(std::panic::take_hook());
    match outcome {
        Err(braid::Error::Task(e)) if e.kind == TaskErrorKind::Panic => {
            println!("a panicking job reported: {e}");
        }
        other => return Err(format!("expected a task panic, got {other:?}").into()),
    }

    // Leaving the scope shuts the pool down and waits, like Python's `with` block.
    drop(pool);
    println!("ok: submit, map, as_completed and wait all gave the right values");
    Ok(())
}
