//! The `rpc` suite: braid-rpc against Pyro5 and RPyC, with the same calls on both sides
//! (`bench/python/rpc.py` mirrors every case).
//!
//! The daemon is started and a connection made before the clock runs. Each Python server
//! runs in a child process (in-process it would share the GIL with its clients); braid's
//! daemon runs on threads of this process, which costs it nothing it would save elsewhere.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

use braid::rpc::{Daemon, service};

use super::{Case, CaseError, Measure, Size, Suite};

/// Concurrent clients of the throughput cases, each on its own connection.
const CLIENTS: u64 = 16;

const ROUND_TRIP: Size = Size {
    full: 20_000,
    quick: 4_000,
};

const MANY_CLIENTS: Size = Size {
    full: 32_000,
    quick: 8_000,
};

/// The suite's cases.
pub(crate) const SUITE: Suite = Suite {
    name: "rpc",
    script: "rpc.py",
    cases: &[
        Case {
            name: "round_trip_pyro5",
            unit: "us",
            size: ROUND_TRIP,
            check: None,
            measure: Measure::Once(round_trip),
        },
        Case {
            name: "round_trip_rpyc",
            unit: "us",
            size: ROUND_TRIP,
            check: None,
            measure: Measure::Once(round_trip),
        },
        Case {
            name: "clients_pyro5",
            unit: "calls/s",
            size: MANY_CLIENTS,
            check: None,
            measure: Measure::Once(clients),
        },
        Case {
            name: "clients_rpyc",
            unit: "calls/s",
            size: MANY_CLIENTS,
            check: None,
            measure: Measure::Once(clients),
        },
    ],
};

/// The remote object of every case.
#[service]
pub trait Calc {
    /// Adds.
    fn add(&self, a: u64, b: u64) -> u64;
}

struct Adder;

impl Calc for Adder {
    fn add(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

fn rpc(e: braid::rpc::Error) -> CaseError {
    CaseError::Wrong(format!("a remote call failed: {e}"))
}

fn serve() -> Result<Daemon, CaseError> {
    let daemon = Daemon::start().map_err(rpc)?;
    daemon.register("calc", Adder.into_object()).map_err(rpc)?;
    Ok(daemon)
}

/// Microseconds per call of `add(i, 1)`, one after the other, on one connection.
fn round_trip(n: u64) -> Result<f64, CaseError> {
    let daemon = serve()?;
    let calc: CalcProxy = daemon.proxy("calc");
    for i in 0..100 {
        if calc.add(i, 1).map_err(rpc)? != i + 1 {
            return Err(CaseError::Wrong("a wrong warm-up sum".into()));
        }
    }
    let mut total = 0;
    let start = Instant::now();
    for i in 0..black_box(n) {
        total += calc.add(i, 1).map_err(rpc)?;
    }
    let elapsed = start.elapsed();
    let expected = n * (n - 1) / 2 + n;
    if total != expected {
        return Err(CaseError::Wrong(format!(
            "sum {total}, expected {expected}"
        )));
    }
    Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
}

/// Calls per second of [`CLIENTS`] threads, each with its own proxy, `n` calls in all.
fn clients(n: u64) -> Result<f64, CaseError> {
    let daemon = serve()?;
    let per_client = n / CLIENTS;
    let barrier = Barrier::new(CLIENTS as usize + 1);
    let outcome = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|k| {
                let calc: CalcProxy = daemon.proxy("calc");
                let barrier = &barrier;
                s.spawn(move || -> Result<u64, CaseError> {
                    let warm = calc.add(1, 1);
                    barrier.wait();
                    if warm.map_err(rpc)? != 2 {
                        return Err(CaseError::Wrong("a wrong warm-up sum".into()));
                    }
                    let mut total = 0;
                    for i in 0..per_client {
                        total += calc.add(i, k).map_err(rpc)?;
                    }
                    Ok(total)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let sums: Vec<Result<u64, CaseError>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(CaseError::Wrong("a client thread panicked".into())))
            })
            .collect();
        (start.elapsed(), sums)
    });
    let (elapsed, sums) = outcome;
    for (k, sum) in (0..CLIENTS).zip(sums) {
        let expected = per_client * (per_client - 1) / 2 + per_client * k;
        let sum = sum?;
        if sum != expected {
            return Err(CaseError::Wrong(format!(
                "client {k}: sum {sum}, expected {expected}"
            )));
        }
    }
    Ok((per_client * CLIENTS) as f64 / elapsed.as_secs_f64())
}
