//! Classic CSP recipe (ch. 5): a poisoned network shutting down. A source feeds three
//! workers (one-to-any), a merger reads them with a fair alternation (any-to-one into
//! itself), and a sink poisons its input after enough results. No process is told to
//! stop: each one's next channel operation fails with `Poisoned`, it returns the error
//! with `?`, and the channels it holds are poisoned in turn, until every process has
//! ended, exactly as PyCSP propagates `ChannelPoisonException`.
//!
//! Python (PyCSP):
//! ```python
//! @process
//! def sink(cin, n):
//!     for i in range(n):
//!         cin()
//!     poison(cin)     # every other process ends with ChannelPoisonException
//! ```
//!
//! Run: `cargo run --example ch5_csp_poisoned_network`

use std::sync::{Arc, Mutex};

use braid::csp::{Alternation, Channel, Error, Parallel, Process, Reader, Writer, process};

type Log = Arc<Mutex<Vec<String>>>;

/// Runs a process body and records how it ended.
fn logged(
    name: String,
    log: Log,
    body: impl Future<Output = Result<u64, Error>> + Send + 'static,
) -> Process<u64> {
    process(async move {
        let result = body.await;
        let ending = match &result {
            Ok(v) => format!("{name}: returned {v}"),
            Err(e) => format!("{name}: stopped ({e})"),
        };
        log.lock().expect("the log").push(ending);
        result
    })
}

fn source(out: Writer<u64>, log: Log) -> Process<u64> {
    logged("source".into(), log, async move {
        let mut i = 0;
        loop {
            out.write(i).await?;
            i += 1;
        }
    })
}

fn worker(id: usize, input: Reader<u64>, out: Writer<u64>, log: Log) -> Process<u64> {
    logged(format!("worker {id}"), log, async move {
        loop {
            let x = input.read().await?;
            out.write(x * x).await?;
        }
    })
}

fn merger(inputs: Vec<Reader<u64>>, out: Writer<u64>, log: Log) -> Process<u64> {
    logged("merger".into(), log, async move {
        let mut alt = Alternation::new();
        for input in &inputs {
            alt = alt.input(input, |v| v);
        }
        loop {
            let v = alt.fair_select().await?;
            out.write(v).await?;
        }
    })
}

fn sink(input: Reader<u64>, n: usize, log: Log) -> Process<u64> {
    logged("sink".into(), log, async move {
        let mut total = 0;
        for _ in 0..n {
            total += input.read().await?;
        }
        input.poison();
        Ok(total)
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    let log = Log::default();
    let jobs = Channel::new();
    let merged: Vec<Channel<u64>> = (0..3).map(|_| Channel::new()).collect();
    let results = Channel::new();
    let mut processes = vec![source(jobs.writer(), log.clone())];
    for (i, ch) in merged.iter().enumerate() {
        processes.push(worker(i, jobs.reader(), ch.writer(), log.clone()));
    }
    processes.push(merger(
        merged.iter().map(Channel::reader).collect(),
        results.writer(),
        log.clone(),
    ));
    processes.push(sink(results.reader(), 100, log.clone()));
    drop((jobs, merged, results));

    let outcome = Parallel::new(processes).run()?;
    for line in log.lock().expect("the log").iter() {
        println!("{line}");
    }
    let log = log.lock().expect("the log");
    let stopped = log
        .iter()
        .filter(|l| l.ends_with("(the channel is poisoned)"))
        .count();
    let total = outcome
        .last()
        .copied()
        .flatten()
        .ok_or("the sink did not finish")?;
    println!("{stopped} processes stopped on poison; the sink summed {total}");
    if stopped != 5 || outcome[..5].iter().any(Option::is_some) {
        return Err("not every process stopped on the poison".into());
    }
    // The squares of 100 distinct numbers from 0, in whatever order they arrived: at
    // least the sum of the first 100 squares.
    if total < (0..100u64).map(|i| i * i).sum::<u64>() {
        return Err(format!("the sink summed {total}, too little").into());
    }
    Ok(())
}
