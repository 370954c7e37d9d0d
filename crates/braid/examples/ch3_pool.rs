//! Book recipe (ch. 3): "How to use a process pool": `map` a function over inputs on a
//! pool of worker processes; also `imap`, `imap_unordered`, `starmap`, `apply_async`
//! with callbacks, `chunksize`, `maxtasksperchild`, an initializer, and what happens
//! when a worker dies.
//!
//! Python:
//! ```python
//! def function_square(data):
//!     return data * data
//!
//! inputs = list(range(0, 100))
//! pool = multiprocessing.Pool(processes=4)
//! pool_outputs = pool.map(function_square, inputs)
//! pool.close(); pool.join()
//! print('Pool    :', pool_outputs)
//! ```
//!
//! Run: `cargo run --example ch3_pool`

use std::sync::{Arc, Mutex};

use braid::proc::{ProcessPool, Value};

#[braid::task]
fn function_square(data: u64) -> u64 {
    data * data
}

#[braid::task]
fn power(base: u64, exponent: u32) -> u64 {
    base.pow(exponent)
}

#[braid::task]
fn worker_pid(_i: u64) -> u32 {
    std::process::id()
}

#[braid::task]
fn count_start(started: Value<u32>) {
    started.update(|n| n + 1);
}

/// Dies the hard way when asked: the pool reports the loss instead of hanging.
#[braid::task]
fn crash_on(x: u64, victim: u64) -> u64 {
    if x == victim {
        std::process::abort();
    }
    x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let started = Value::new(0u32)?;
    let pool = ProcessPool::builder()
        .processes(4)
        .initializer(count_start::task(), (started.clone(),))
        .build()?;

    let inputs: Vec<u64> = (0..100).collect();
    let pool_outputs = pool.map(function_square::task(), inputs.iter().copied())?;
    println!("Pool    : {pool_outputs:?}");
    let expected: Vec<u64> = inputs.iter().map(|x| x * x).collect();
    if pool_outputs != expected {
        return Err("map gave wrong squares".into());
    }

    let lazy: Vec<u64> = pool
        .imap(function_square::task(), 0..10u64, 3)
        .collect::<Result<_, _>>()?;
    let mut unordered: Vec<u64> = pool
        .imap_unordered(function_square::task(), 0..10u64, 1)
        .collect::<Result<_, _>>()?;
    unordered.sort_unstable();
    let powers = pool.starmap(power::task(), [(2, 10), (3, 3), (10, 2)])?;
    println!("imap: {lazy:?}\nimap_unordered (sorted): {unordered:?}\nstarmap: {powers:?}");
    if lazy != unordered || powers != [1024, 27, 100] {
        return Err("imap, imap_unordered or starmap gave wrong values".into());
    }

    let seen = Arc::new(Mutex::new(None));
    let sink = seen.clone();
    let handle = pool.apply_async_with(
        function_square::task(),
        (12,),
        move |v| *sink.lock().expect("unpoisoned") = Some(*v),
        |e| eprintln!("error_callback: {e}"),
    )?;
    println!("apply_async(12) = {}", handle.result()?);
    if *seen.lock().expect("unpoisoned") != Some(144) {
        return Err("the callback did not see 144".into());
    }

    // A worker that aborts mid-task: its task fails, a replacement starts, no hang.
    match pool.apply(crash_on::task(), (7, 7)) {
        Err(braid::Error::WorkerLost(why)) => println!("lost as expected: {why}"),
        other => return Err(format!("a crashing task gave {other:?}").into()),
    }
    if pool.apply(crash_on::task(), (8, 7))? != 8 {
        return Err("the pool did not recover".into());
    }
    pool.close();
    pool.join()?;
    // Every worker runs the initializer before its first task, but a worker may still be
    // starting while the others finish all the work: count once every worker has exited.
    println!(
        "the initializer ran in {} workers (4, and the one that replaced the crashed worker)",
        started.get()
    );
    if started.get() != 5 {
        return Err(format!("the initializer ran {} times for 5 workers", started.get()).into());
    }

    // maxtasksperchild: each worker process serves two tasks, then a fresh one takes over.
    let recycling = ProcessPool::builder()
        .processes(2)
        .maxtasksperchild(2)
        .build()?;
    let pids = recycling.map_chunked(worker_pid::task(), 0..8u64, 1)?;
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    println!(
        "8 tasks at 2 per worker ran in {} processes",
        distinct.len()
    );
    if distinct.len() < 4 {
        return Err(format!("pids {pids:?}").into());
    }
    Ok(())
}
