//! The processes recipe: a pool map over worker processes, a pipe ping-pong with a child
//! process, and a shared counter updated by two children under its lock.

use braid::proc::{Connection, Process, ProcessPool, Value, pipe};

#[braid::task(name = "tour.proc.square")]
fn square(x: u64) -> u64 {
    x * x
}

#[braid::task(name = "tour.proc.echo")]
fn echo(conn: Connection<u64>) {
    while let Ok(v) = conn.recv() {
        if conn.send(&(v + 1)).is_err() {
            return;
        }
    }
}

#[braid::task(name = "tour.proc.count")]
fn count(counter: Value<u64>, times: u64) {
    for _ in 0..times {
        counter.update(|n| n + 1);
    }
}

pub(super) fn run() -> Result<String, String> {
    let e = |e: braid::proc::Error| e.to_string();

    // Python's Pool(2).map with its default chunking.
    let pool = ProcessPool::new(2).map_err(e)?;
    let squares = pool
        .map(square::task(), 0..10_000u64)
        .map_err(|e| e.to_string())?;
    let total: u64 = squares.iter().sum();
    let expected: u64 = (0..10_000u64).map(|x| x * x).sum();
    if total != expected {
        return Err(format!("pool map summed to {total}, expected {expected}"));
    }
    drop(pool);

    // A Pipe to a child process: each side adds one.
    let (ours, theirs) = pipe::<u64>().map_err(e)?;
    let mut child = Process::new(echo::task(), (theirs,)).named("echo");
    child.start().map_err(e)?;
    let mut v = 0;
    for _ in 0..1000 {
        ours.send(&v).map_err(e)?;
        v = ours.recv().map_err(e)? + 1;
    }
    drop(ours);
    child.join().map_err(e)?;
    if v != 2000 {
        return Err(format!("the ping-pong ended at {v}, expected 2000"));
    }

    // Two children, one shared counter, its lock.
    let counter = Value::new(0u64).map_err(e)?;
    let mut children: Vec<Process> = (0..2)
        .map(|_| Process::new(count::task(), (counter.clone(), 5000)))
        .collect();
    for child in &mut children {
        child.start().map_err(e)?;
    }
    for child in &children {
        child.join().map_err(e)?;
    }
    if counter.get() != 10_000 {
        return Err(format!(
            "the shared counter is {}, expected 10000",
            counter.get()
        ));
    }
    Ok(format!(
        "pool map of 10000 squares summed to {total}; 1000 pipe round trips with a child; 2 children counted to {}",
        counter.get()
    ))
}
