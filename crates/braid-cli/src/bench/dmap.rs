//! The `dmap` suite: braid-dmap against SCOOP (`futures.map`, `futures.submit`,
//! `futures.mapReduce`, run under `python -m scoop -n 2`) and against
//! `multiprocessing.Pool.map`, with the same small tasks on both sides
//! (`bench/python/dmap.py` mirrors every case).
//!
//! braid's Dmap runs on two worker processes, started and warmed before the clock runs.

use std::hint::black_box;
use std::time::Instant;

use braid::dmap::Dmap;

use super::{Case, CaseError, Measure, Size, Suite};

/// Worker processes, as SCOOP's `-n 2` and `Pool(2)`.
const WORKERS: usize = 2;

/// The suite's cases.
pub(crate) const SUITE: Suite = Suite {
    name: "dmap",
    script: "dmap.py",
    cases: &[
        Case {
            name: "scoop_map_small_tasks",
            unit: "us",
            size: Size {
                full: 10_000,
                quick: 2_000,
            },
            check: None,
            measure: Measure::Once(map_small_tasks),
        },
        Case {
            name: "scoop_submit_small_tasks",
            unit: "us",
            size: Size {
                full: 10_000,
                quick: 2_000,
            },
            check: None,
            measure: Measure::Once(submit_small_tasks),
        },
        Case {
            name: "scoop_map_reduce",
            unit: "us",
            size: Size {
                full: 10_000,
                quick: 2_000,
            },
            check: None,
            measure: Measure::Once(map_reduce_small_tasks),
        },
        Case {
            name: "pool_map_small_tasks",
            unit: "us",
            size: Size {
                full: 10_000,
                quick: 2_000,
            },
            check: None,
            measure: Measure::Once(map_small_tasks),
        },
    ],
};

#[braid::task(name = "bench.dmap.square")]
fn square(x: u64) -> u64 {
    x * x
}

#[braid::task(name = "bench.dmap.add")]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn dmap_error(e: braid::dmap::Error) -> CaseError {
    match e {
        braid::dmap::Error::Core(e) => CaseError::Task(e),
        other => CaseError::Wrong(other.to_string()),
    }
}

fn wrong(what: &str, got: u64, expected: u64) -> Result<(), CaseError> {
    if got == expected {
        Ok(())
    } else {
        Err(CaseError::Wrong(format!(
            "{what} is {got}, expected {expected}"
        )))
    }
}

/// A Dmap on [`WORKERS`] processes, every one started and warm.
fn warm() -> Result<Dmap, CaseError> {
    let dmap = Dmap::processes(WORKERS).map_err(dmap_error)?;
    let warm: Vec<u64> = dmap
        .map_chunked(square::task(), 0..(WORKERS as u64 * 4), 1)
        .collect::<Result<_, _>>()
        .map_err(dmap_error)?;
    wrong("a warm-up square", warm[3], 9)?;
    Ok(dmap)
}

fn sum_of_squares(n: u64) -> u64 {
    (0..n).map(|x| x * x).sum()
}

/// Microseconds per task of `dmap.map(square, 0..n)`, results in order (SCOOP:
/// `list(futures.map(square, range(n)))`; Python: `Pool(2).map(square, range(n))`).
fn map_small_tasks(n: u64) -> Result<f64, CaseError> {
    let dmap = warm()?;
    let start = Instant::now();
    let squares: Vec<u64> = dmap
        .map(square::task(), 0..black_box(n))
        .collect::<Result<_, _>>()
        .map_err(dmap_error)?;
    let elapsed = start.elapsed();
    wrong("the number of results", squares.len() as u64, n)?;
    wrong(
        "the sum of squares",
        squares.iter().sum(),
        sum_of_squares(n),
    )?;
    Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
}

/// Microseconds per task of n `dmap.submit(square, (i,))`, then every result (SCOOP:
/// `[futures.submit(square, i) for i in range(n)]`, then `.result()` of each).
fn submit_small_tasks(n: u64) -> Result<f64, CaseError> {
    let dmap = warm()?;
    let start = Instant::now();
    let futures = (0..black_box(n))
        .map(|i| dmap.submit(square::task(), (i,)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(dmap_error)?;
    let mut sum = 0;
    for f in futures {
        sum += f.result().map_err(dmap_error)?;
    }
    let elapsed = start.elapsed();
    wrong("the sum of squares", sum, sum_of_squares(n))?;
    Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
}

/// Microseconds per item of `dmap.map_reduce(square, add, 0..n)` (SCOOP:
/// `futures.mapReduce(square, operator.add, range(n))`).
fn map_reduce_small_tasks(n: u64) -> Result<f64, CaseError> {
    let dmap = warm()?;
    let start = Instant::now();
    let total = dmap
        .map_reduce(square::task(), add::task(), 0..black_box(n))
        .map_err(dmap_error)?;
    let elapsed = start.elapsed();
    wrong("the sum of squares", total, sum_of_squares(n))?;
    Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
}
