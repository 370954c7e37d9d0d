//! Book recipe (ch. 4): "Using the concurrent.futures Python modules": the same ten
//! CPU-bound jobs run one after another, then on a pool of threads, with the time each
//! takes.
//!
//! Python:
//! ```python
//! def count(number):
//!     for i in range(0, 10000000):
//!         i = i + 1
//!     return i * number
//!
//! start = time.time()
//! for item in number_list: evaluate_item(item)            # sequential
//! with concurrent.futures.ThreadPoolExecutor(max_workers=5) as executor:
//!     for item in number_list: executor.submit(evaluate_item, item)
//! with concurrent.futures.ProcessPoolExecutor(max_workers=5) as executor:
//!     for item in number_list: executor.submit(evaluate_item, item)
//! ```
//!
//! In Python the thread pool is no faster than the sequential loop (the GIL); here the
//! threads run the jobs in parallel. The book's third variant runs the same registered
//! task on braid-proc's `ProcessPool`: any braid `Executor` runs a task by its name.
//!
//! Run: `cargo run --example ch4_concurrent_futures`

use std::hint::black_box;
use std::time::Instant;

use braid::proc::ProcessPool;
use braid::sync::ThreadPool;
use braid::{ExecutorExt, as_completed};

/// The loop the book times: a count to `ITERATIONS`, times the number. (Ten million in the
/// book; fewer here so that the example is quick in a debug build.)
const ITERATIONS: u64 = 2_000_000;

#[braid::task]
fn count(number: u64) -> u64 {
    let mut i = 0;
    while black_box(i) < ITERATIONS {
        i += 1;
    }
    i * number
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let numbers: Vec<u64> = (1..=10).collect();
    let expected: u64 = numbers.iter().map(|n| n * ITERATIONS).sum();

    let start = Instant::now();
    let sequential: u64 = numbers.iter().map(|&n| count(n)).sum();
    let t_sequential = start.elapsed();
    println!("Sequential execution in {t_sequential:.2?}");

    let pool = ThreadPool::new(5)?;
    let start = Instant::now();
    let handles = numbers
        .iter()
        .map(|&n| pool.submit(count::task(), (n,)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut threaded = 0;
    for done in as_completed(handles) {
        threaded += done?.result()?;
    }
    let t_threads = start.elapsed();
    println!("Thread pool execution in {t_threads:.2?} (5 workers)");

    // map keeps the order of the inputs, like executor.map.
    let mapped: Vec<u64> = pool
        .map(count::task(), numbers.iter().map(|&n| (n,)), 2)
        .collect::<Result<_, _>>()?;
    println!(
        "Thread pool map, in input order: {:?}",
        mapped.iter().map(|v| v / ITERATIONS).collect::<Vec<_>>()
    );

    let processes = ProcessPool::new(5)?;
    let start = Instant::now();
    let handles = numbers
        .iter()
        .map(|&n| processes.submit(count::task(), (n,)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut in_processes = 0;
    for done in as_completed(handles) {
        in_processes += done?.result()?;
    }
    let t_processes = start.elapsed();
    println!("Process pool execution in {t_processes:.2?} (5 processes)");
    processes.close();
    processes.join()?;

    if sequential != expected
        || threaded != expected
        || in_processes != expected
        || mapped.iter().sum::<u64>() != expected
    {
        return Err(format!(
            "sums differ: sequential {sequential}, threads {threaded}, \
             processes {in_processes}, expected {expected}"
        )
        .into());
    }
    println!("ok: every variant computed {expected}");
    Ok(())
}
