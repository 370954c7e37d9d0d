//! Book recipe (ch. 5): "Using PyCSP": two processes joined by a channel, a counter that
//! writes numbers and a printer that prints them; the counter poisons the channel when
//! it is done, which stops the printer, and `Parallel` returns once both have ended. Then
//! the same two in `Sequence`, over a buffered channel.
//!
//! Python (PyCSP):
//! ```python
//! @process
//! def counter(cout, limit):
//!     for i in range(limit):
//!         cout(i)
//!     poison(cout)
//!
//! @process
//! def printer(cin):
//!     while True:
//!         print(cin(), end=" ")
//!
//! A = Channel("A")
//! Parallel(counter(A.writer(), limit=10), printer(A.reader()))
//! shutdown()
//! ```
//!
//! Run: `cargo run --example ch5_csp_processes`

use braid::csp::{
    Channel, Error, Parallel, Process, Reader, Scheduler, Sequence, Writer, process, shutdown,
};

/// PyCSP's `@process def counter(cout, limit)`.
fn counter(cout: Writer<u64>, limit: u64) -> Process<u64> {
    process(async move {
        for i in 0..limit {
            cout.write(i).await?;
        }
        cout.poison();
        Ok(limit)
    })
}

/// PyCSP's `@process def printer(cin)`: prints until the channel is poisoned.
fn printer(cin: Reader<u64>) -> Process<u64> {
    process(async move {
        let mut printed = Vec::new();
        loop {
            match cin.read().await {
                Ok(value) => printed.push(value.to_string()),
                Err(Error::Poisoned) => {
                    println!("  printer: {}", printed.join(" "));
                    return Ok(printed.len() as u64);
                }
                Err(e) => return Err(e),
            }
        }
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    // The same two processes on each scheduler: greenlet-like, OS threads, a thread pool.
    for scheduler in [
        Scheduler::Cooperative,
        Scheduler::Threads,
        Scheduler::MultiThread { workers: 2 },
    ] {
        println!("{scheduler:?}:");
        let a = Channel::new();
        let results = Parallel::new([counter(a.writer(), 10), printer(a.reader())])
            .scheduler(scheduler)
            .run()?;
        println!(
            "  counter wrote {:?}, printer printed {:?}",
            results[0], results[1]
        );
        if results != [Some(10), Some(10)] {
            return Err(format!("expected 10 written and 10 printed, got {results:?}").into());
        }
    }

    // Sequence runs one process after the other: the counter fills a buffered channel
    // (PyCSP's `Channel(buffer=10)`) and poisons it; the printer still gets every value
    // written before the poison, then stops on it.
    println!("Sequence over a buffered channel:");
    let b = Channel::buffered(10);
    let results = Sequence::new([counter(b.writer(), 10), printer(b.reader())]).run()?;
    if results != [Some(10), Some(10)] {
        return Err(format!("expected 10 written and 10 printed, got {results:?}").into());
    }

    shutdown()?;
    Ok(())
}
