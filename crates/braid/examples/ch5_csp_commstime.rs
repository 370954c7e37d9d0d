//! Classic CSP benchmark (ch. 5, PyCSP's `commstime.py`): four processes in a ring,
//! `prefix -> delta -> successor -> prefix`, with `delta` also feeding a consumer; each
//! cycle is four channel communications. The consumer times the cycles, checks that the
//! numbers count up with none lost, then poisons the ring, which shuts every process
//! down: no deadlock, on every scheduler.
//!
//! Python (PyCSP):
//! ```python
//! @process
//! def Prefix(cin, cout, prefix_item=None):
//!     t = prefix_item
//!     while True:
//!         cout(t)
//!         t = cin()
//!
//! @process
//! def Delta2(cin, cout1, cout2):
//!     while True:
//!         t = cin()
//!         cout1(t)
//!         cout2(t)
//!
//! @process
//! def Successor(cin, cout):
//!     while True:
//!         cout(cin() + 1)
//!
//! Parallel(Prefix(+c, -a, prefix_item=0), Delta2(+a, -b, -d), Successor(+b, -c), Consumer(+d, N))
//! ```
//!
//! Run: `cargo run --release --example ch5_csp_commstime`

use std::time::Instant;

use braid::csp::{Channel, Parallel, Process, Reader, Scheduler, Writer, process};

fn prefix(cin: Reader<u64>, cout: Writer<u64>, first: u64) -> Process<f64> {
    process(async move {
        let mut t = first;
        loop {
            cout.write(t).await?;
            t = cin.read().await?;
        }
    })
}

fn delta(cin: Reader<u64>, cout1: Writer<u64>, cout2: Writer<u64>) -> Process<f64> {
    process(async move {
        loop {
            let t = cin.read().await?;
            cout1.write(t).await?;
            cout2.write(t).await?;
        }
    })
}

fn successor(cin: Reader<u64>, cout: Writer<u64>) -> Process<f64> {
    process(async move {
        loop {
            cout.write(cin.read().await? + 1).await?;
        }
    })
}

/// Times `n` cycles, checks every value, then poisons: microseconds per cycle.
fn consumer(cin: Reader<u64>, n: u64) -> Process<f64> {
    process(async move {
        let first = cin.read().await?;
        let start = Instant::now();
        for i in 1..=n {
            let value = cin.read().await?;
            if value != first + i {
                return Err(braid::csp::Error::Protocol(format!(
                    "cycle {i} delivered {value}, expected {}",
                    first + i
                )));
            }
        }
        let per_cycle = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        cin.poison();
        Ok(per_cycle)
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    for (scheduler, cycles) in [
        (Scheduler::Cooperative, 20_000),
        (Scheduler::MultiThread { workers: 2 }, 5_000),
        (Scheduler::Threads, 2_000),
    ] {
        let (a, b, c, d) = (
            Channel::new(),
            Channel::new(),
            Channel::new(),
            Channel::new(),
        );
        let results = Parallel::new([
            prefix(c.reader(), a.writer(), 0),
            delta(a.reader(), b.writer(), d.writer()),
            successor(b.reader(), c.writer()),
            consumer(d.reader(), cycles),
        ])
        .scheduler(scheduler)
        .run()?;
        // The ring stopped on the poison (None); the consumer returned its timing.
        let [None, None, None, Some(per_cycle)] = results[..] else {
            return Err(format!("the ring did not shut down as expected: {results:?}").into());
        };
        println!(
            "{scheduler:?}: {cycles} cycles, {per_cycle:.3} us per cycle ({:.3} us per communication)",
            per_cycle / 4.0
        );
    }
    Ok(())
}
