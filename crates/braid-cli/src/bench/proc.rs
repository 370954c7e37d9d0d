//! The `proc` suite: braid-proc against Python's `multiprocessing` (`Pool`, `Pipe`,
//! `Queue`, `Manager`, `Process`), with the same work on both sides
//! (`bench/python/proc.py` mirrors every case).
//!
//! Pools have two worker processes (as in the Python baselines) and are started, and
//! warmed, before the clock runs.

use super::threads::{count_part, primes_below};
use std::hint::black_box;
use std::time::Instant;

use braid::NoArgs;
use braid::proc::{Connection, Manager, Process, ProcessPool, Queue, pipe};

use super::{Case, CaseError, Measure, Size, Suite};

/// Worker processes of the pool cases.
const POOL: usize = 2;

/// The suite's cases.
pub(crate) const SUITE: Suite = Suite {
    name: "proc",
    script: "proc.py",
    cases: &[
        Case {
            name: "pool_map_default",
            unit: "us",
            size: Size {
                full: 100_000,
                quick: 20_000,
            },
            check: None,
            measure: Measure::Once(pool_map_default),
        },
        Case {
            name: "pool_map_chunksize1",
            unit: "us",
            size: Size {
                full: 20_000,
                quick: 4_000,
            },
            check: None,
            measure: Measure::Once(pool_map_chunksize1),
        },
        Case {
            name: "apply_async_round_trip",
            unit: "us",
            size: Size {
                full: 3_000,
                quick: 500,
            },
            check: None,
            measure: Measure::Once(apply_async_round_trip),
        },
        Case {
            name: "pipe_round_trip",
            unit: "us",
            size: Size {
                full: 10_000,
                quick: 2_000,
            },
            check: None,
            measure: Measure::Once(pipe_round_trip),
        },
        Case {
            name: "queue_round_trip",
            unit: "us",
            size: Size {
                full: 10_000,
                quick: 2_000,
            },
            check: None,
            measure: Measure::Once(queue_round_trip),
        },
        Case {
            name: "manager_dict_op",
            unit: "us",
            size: Size {
                full: 10_000,
                quick: 2_000,
            },
            check: None,
            measure: Measure::Once(manager_dict_op),
        },
        Case {
            name: "process_start",
            unit: "ms",
            size: Size { full: 20, quick: 5 },
            check: None,
            measure: Measure::Once(process_start),
        },
        Case {
            name: "cpu_scaling",
            unit: "s",
            // As `threads/cpu_scaling`: the primes below 450,000 by trial division.
            size: Size {
                full: 450_000,
                quick: 200_000,
            },
            check: Some(primes_below),
            measure: Measure::Scaling {
                run: cpu_scaling,
                headline: "processes",
            },
        },
    ],
};

#[braid::task(name = "bench.proc.square")]
fn square(x: u64) -> u64 {
    x * x
}

#[braid::task(name = "bench.proc.nothing")]
fn nothing() {}

#[braid::task(name = "bench.proc.pipe_echo")]
fn pipe_echo(conn: Connection<u64>) {
    while let Ok(v) = conn.recv() {
        if conn.send(&(v + 1)).is_err() {
            return;
        }
    }
}

#[braid::task(name = "bench.proc.queue_echo")]
fn queue_echo(ping: Queue<u64>, pong: Queue<u64>, n: u64) -> Result<(), String> {
    for _ in 0..n {
        let v = ping.get().map_err(|e| e.to_string())?;
        pong.put(&(v + 1)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[braid::task(name = "bench.proc.count_part")]
fn count_part_task(n: u64, parts: u64, k: u64) -> u64 {
    count_part(n, parts, k)
}

fn wrong_count(what: &str, got: u64, expected: u64) -> Result<(), CaseError> {
    if got == expected {
        Ok(())
    } else {
        Err(CaseError::Wrong(format!(
            "{what} is {got}, expected {expected}"
        )))
    }
}

fn per(elapsed: std::time::Duration, n: u64, unit: f64) -> f64 {
    elapsed.as_secs_f64() / unit / n as f64
}

/// A pool of [`POOL`] workers, every one started and warm.
fn warm_pool() -> Result<ProcessPool, CaseError> {
    let pool = ProcessPool::new(POOL)?;
    let warm = pool.map_chunked(square::task(), 0..(POOL as u64 * 4), 1)?;
    wrong_count("a warm-up square", warm[3], 9)?;
    Ok(pool)
}

fn check_squares(squares: &[u64], n: u64) -> Result<(), CaseError> {
    wrong_count("the number of results", squares.len() as u64, n)?;
    let bad = squares.iter().zip(0u64..).find(|(s, x)| **s != x * x);
    match bad {
        Some((s, x)) => Err(CaseError::Wrong(format!("square of {x} came back as {s}"))),
        None => Ok(()),
    }
}

/// Microseconds per item of `Pool.map(square, range(n))` with Python's default chunks.
fn pool_map_default(n: u64) -> Result<f64, CaseError> {
    let pool = warm_pool()?;
    let start = Instant::now();
    let squares = pool.map(square::task(), 0..black_box(n))?;
    let elapsed = start.elapsed();
    check_squares(&squares, n)?;
    Ok(per(elapsed, n, 1e-6))
}

/// Microseconds per item of `Pool.map(square, range(n), chunksize=1)`.
fn pool_map_chunksize1(n: u64) -> Result<f64, CaseError> {
    let pool = warm_pool()?;
    let start = Instant::now();
    let squares = pool.map_chunked(square::task(), 0..black_box(n), 1)?;
    let elapsed = start.elapsed();
    check_squares(&squares, n)?;
    Ok(per(elapsed, n, 1e-6))
}

/// Microseconds per `apply_async(square, (i,)).get()`, one after the other.
fn apply_async_round_trip(n: u64) -> Result<f64, CaseError> {
    let pool = warm_pool()?;
    let start = Instant::now();
    let mut sum = 0u64;
    for i in 0..n {
        sum += pool.apply_async(square::task(), (i,))?.result()?;
    }
    let elapsed = start.elapsed();
    wrong_count("the sum of squares", sum, (0..n).map(|i| i * i).sum())?;
    Ok(per(elapsed, n, 1e-6))
}

/// Microseconds per round trip of a number over a Pipe to a child process and back;
/// each side adds one.
fn pipe_round_trip(n: u64) -> Result<f64, CaseError> {
    let (ours, theirs) = pipe::<u64>()?;
    let mut child = Process::new(pipe_echo::task(), (theirs,));
    child.start()?;
    ours.send(&0)?;
    let mut v = ours.recv()?; // the child is up
    let start = Instant::now();
    for _ in 0..n {
        ours.send(&v)?;
        v = ours.recv()? + 1;
    }
    let elapsed = start.elapsed();
    drop(ours);
    child.join()?;
    wrong_count("the item", v, 2 * n + 1)?;
    Ok(per(elapsed, n, 1e-6))
}

/// Microseconds per round trip of a number over two Queues to a child and back.
fn queue_round_trip(n: u64) -> Result<f64, CaseError> {
    let (ping, pong) = (Queue::<u64>::new()?, Queue::<u64>::new()?);
    let mut child = Process::new(queue_echo::task(), (ping.clone(), pong.clone(), n + 1));
    child.start()?;
    ping.put(&0)?;
    let mut v = pong.get()?; // the child is up
    let start = Instant::now();
    for _ in 0..n {
        ping.put(&v)?;
        v = pong.get()? + 1;
    }
    let elapsed = start.elapsed();
    child.join()?;
    wrong_count("the item", v, 2 * n + 1)?;
    Ok(per(elapsed, n, 1e-6))
}

/// Microseconds per operation on a Manager's dict: `d[k] = v` and `d[k]`, alternating.
fn manager_dict_op(n: u64) -> Result<f64, CaseError> {
    let manager = Manager::start()?;
    let d = manager.dict::<u64, u64>()?;
    d.insert(&0, &0)?;
    let half = n.div_ceil(2);
    let start = Instant::now();
    let mut sum = 0;
    for i in 0..half {
        d.insert(&(i % 100), &i)?;
        sum += d.get(&(i % 100))?.unwrap_or(u64::MAX);
    }
    let elapsed = start.elapsed();
    wrong_count("the sum read back", sum, (0..half).sum())?;
    manager.shutdown()?;
    Ok(per(elapsed, 2 * half, 1e-6))
}

/// Milliseconds to start a process running an empty function and join it.
fn process_start(n: u64) -> Result<f64, CaseError> {
    let start = Instant::now();
    for _ in 0..n {
        let mut p = Process::new(nothing::task(), NoArgs);
        p.start()?;
        p.join()?;
        if p.exitcode() != Some(0) {
            return Err(CaseError::Wrong(format!("exit code {:?}", p.exitcode())));
        }
    }
    Ok(per(start.elapsed(), n, 1e-3))
}

/// Seconds to count the primes below `n` in p parts on a ProcessPool of p processes
/// (Python: `Pool(p).starmap(count_part, ..., chunksize=1)`); every count is checked.
fn cpu_scaling(n: u64, p: usize, repeats: usize) -> Result<Vec<f64>, CaseError> {
    let expected = primes_below(n);
    let pool = ProcessPool::new(p)?;
    let parts = p as u64;
    let count = || -> Result<u64, CaseError> {
        let counts = pool.starmap_chunked(
            count_part_task::task(),
            (0..parts).map(|k| (black_box(n), parts, k)),
            1,
        )?;
        Ok(counts.iter().sum())
    };
    // Starts and warms every worker; not timed.
    wrong_count("the prime count", count()?, expected)?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        let total = count()?;
        times.push(start.elapsed().as_secs_f64());
        wrong_count("the prime count", total, expected)?;
    }
    Ok(times)
}
