//! The `csp` suite: braid-csp against PyCSP 0.9 (`bench/python/csp.py` mirrors every
//! case with the same work). Each case runs braid's default cooperative scheduler against
//! `pycsp.greenlets`, except `ping_pong_threads`: braid's OS-threads scheduler against
//! `pycsp.parallel`. The note of `ping_pong` and `commstime` gives PyCSP's threads time
//! too.

use std::time::Instant;

use braid::csp::{
    Alternation, Channel, Error, Parallel, Process, Reader, Scheduler, Writer, process,
};

use super::{Case, CaseError, Measure, Size, Suite};

/// The suite's cases.
pub(crate) const SUITE: Suite = Suite {
    name: "csp",
    script: "csp.py",
    cases: &[
        Case {
            name: "ping_pong",
            unit: "us",
            size: Size {
                full: 200_000,
                quick: 50_000,
            },
            check: None,
            measure: Measure::Once(ping_pong),
        },
        Case {
            name: "ping_pong_threads",
            unit: "us",
            size: Size {
                full: 20_000,
                quick: 5_000,
            },
            check: None,
            measure: Measure::Once(ping_pong_threads),
        },
        Case {
            name: "commstime",
            unit: "us",
            size: Size {
                full: 100_000,
                quick: 20_000,
            },
            check: None,
            measure: Measure::Once(commstime),
        },
        Case {
            name: "alt_select",
            unit: "us",
            size: Size {
                full: 100_000,
                quick: 20_000,
            },
            check: None,
            measure: Measure::Once(alt_select),
        },
        Case {
            name: "buffered_stream",
            unit: "us",
            size: Size {
                full: 500_000,
                quick: 100_000,
            },
            check: None,
            measure: Measure::Once(buffered_stream),
        },
    ],
};

fn wrong(what: String) -> Error {
    Error::Protocol(what)
}

/// Microseconds per round trip of a value between two processes over two unbuffered
/// channels; each side adds one, so the value must come back as 2n.
fn ping_pong_on(n: u64, scheduler: Scheduler) -> Result<f64, CaseError> {
    let (a, b) = (Channel::new(), Channel::new());
    let (a_out, a_in, b_out, b_in) = (a.writer(), a.reader(), b.writer(), b.reader());
    let results = Parallel::new([
        process(async move {
            let start = Instant::now();
            let mut v = 0u64;
            for _ in 0..n {
                a_out.write(v).await?;
                v = b_in.read().await? + 1;
            }
            let elapsed = start.elapsed();
            if v != 2 * n {
                return Err(wrong(format!(
                    "the value came back as {v}, expected {}",
                    2 * n
                )));
            }
            Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
        }),
        process(async move {
            for _ in 0..n {
                let v = a_in.read().await?;
                b_out.write(v + 1).await?;
            }
            Ok(0.0)
        }),
    ])
    .scheduler(scheduler)
    .run()?;
    results[0].ok_or_else(|| CaseError::Wrong("the pinger stopped early".into()))
}

fn ping_pong(n: u64) -> Result<f64, CaseError> {
    ping_pong_on(n, Scheduler::Cooperative)
}

fn ping_pong_threads(n: u64) -> Result<f64, CaseError> {
    ping_pong_on(n, Scheduler::Threads)
}

/// Microseconds per commstime cycle (prefix -> delta -> successor, delta also feeding the
/// consumer: four communications), every value checked; the consumer then poisons.
fn commstime(n: u64) -> Result<f64, CaseError> {
    fn prefix(input: Reader<u64>, out: Writer<u64>) -> Process<f64> {
        process(async move {
            let mut t = 0;
            loop {
                out.write(t).await?;
                t = input.read().await?;
            }
        })
    }
    fn delta(input: Reader<u64>, a: Writer<u64>, b: Writer<u64>) -> Process<f64> {
        process(async move {
            loop {
                let t = input.read().await?;
                a.write(t).await?;
                b.write(t).await?;
            }
        })
    }
    fn successor(input: Reader<u64>, out: Writer<u64>) -> Process<f64> {
        process(async move {
            loop {
                out.write(input.read().await? + 1).await?;
            }
        })
    }
    fn consumer(input: Reader<u64>, n: u64) -> Process<f64> {
        process(async move {
            let first = input.read().await?;
            let start = Instant::now();
            for i in 1..=n {
                let v = input.read().await?;
                if v != first + i {
                    return Err(wrong(format!("cycle {i} delivered {v}")));
                }
            }
            let elapsed = start.elapsed();
            input.poison();
            Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
        })
    }
    let (a, b, c, d) = (
        Channel::new(),
        Channel::new(),
        Channel::new(),
        Channel::new(),
    );
    let results = Parallel::new([
        prefix(c.reader(), a.writer()),
        delta(a.reader(), b.writer(), d.writer()),
        successor(b.reader(), c.writer()),
        consumer(d.reader(), n),
    ])
    .run()?;
    match results[..] {
        [None, None, None, Some(per_cycle)] => Ok(per_cycle),
        _ => Err(CaseError::Wrong(format!(
            "the ring did not shut down on the poison: {results:?}"
        ))),
    }
}

/// Microseconds per priority select of a server over four processes that write without
/// pause; every value is counted.
fn alt_select(n: u64) -> Result<f64, CaseError> {
    let channels: Vec<Channel<usize>> = (0..4).map(|_| Channel::new()).collect();
    let mut processes: Vec<Process<f64>> = channels
        .iter()
        .enumerate()
        .map(|(i, ch)| {
            let out = ch.writer();
            process(async move {
                loop {
                    out.write(i).await?;
                }
            })
        })
        .collect();
    let inputs: Vec<Reader<usize>> = channels.iter().map(Channel::reader).collect();
    drop(channels);
    processes.push(process(async move {
        let mut counts = [0u64; 4];
        let start = Instant::now();
        {
            let mut alt = Alternation::new();
            for input in &inputs {
                alt = alt.input(input, |i| i);
            }
            for _ in 0..n {
                counts[alt.pri_select().await?] += 1;
            }
        }
        let elapsed = start.elapsed();
        for input in &inputs {
            input.poison();
        }
        if counts.iter().sum::<u64>() != n {
            return Err(wrong(format!("counted {counts:?} for {n} selects")));
        }
        Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
    }));
    let results = Parallel::new(processes).run()?;
    results[4].ok_or_else(|| CaseError::Wrong("the server stopped early".into()))
}

/// Microseconds per value streamed through a channel buffered for 64; the sum is checked.
fn buffered_stream(n: u64) -> Result<f64, CaseError> {
    let ch = Channel::buffered(64);
    let (out, input) = (ch.writer(), ch.reader());
    drop(ch);
    let results = Parallel::new([
        process(async move {
            for i in 0..n {
                out.write(i).await?;
            }
            Ok(0.0) // `out` retires here
        }),
        process(async move {
            let start = Instant::now();
            let mut total = 0;
            for _ in 0..n {
                total += input.read().await?;
            }
            let elapsed = start.elapsed();
            if total != n * (n.saturating_sub(1)) / 2 {
                return Err(wrong(format!("the sum is {total}")));
            }
            Ok(elapsed.as_secs_f64() * 1e6 / n as f64)
        }),
    ])
    .run()?;
    results[1].ok_or_else(|| CaseError::Wrong("the reader stopped early".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_computes_its_answer() {
        for case in SUITE.cases {
            let Measure::Once(measure) = case.measure else {
                panic!("{} is not a plain case", case.name);
            };
            let value = measure(200).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert!(value > 0.0, "{}: {value}", case.name);
        }
    }
}
