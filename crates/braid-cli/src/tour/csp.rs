//! The CSP recipe: a network of processes (PyCSP): a generator fans out to two squarers,
//! an alternation merges them, and the sink poisons the network once it has its answer.

use braid::csp::{Alternation, Channel, Parallel, Process, Reader, Scheduler, Writer, process};

const N: u64 = 1000;

fn generator(out: Writer<u64>) -> Process<u64> {
    process(async move {
        for i in 1..=N {
            out.write(i).await?;
        }
        // Then zeros until the poison comes: with two squarers on OS threads the squares
        // reach the sink in any order, so the sink counts the N non-zero ones it needs.
        loop {
            out.write(0).await?;
        }
    })
}

fn squarer(input: Reader<u64>, out: Writer<u64>) -> Process<u64> {
    process(async move {
        loop {
            let x = input.read().await?;
            out.write(x * x).await?;
        }
    })
}

/// Sums the first `N` squares from either squarer, then poisons everything.
fn sink(left: Reader<u64>, right: Reader<u64>) -> Process<u64> {
    process(async move {
        let mut alt = Alternation::new().input(&left, |v| v).input(&right, |v| v);
        let (mut sum, mut received) = (0, 0);
        while received < N {
            let square = alt.fair_select().await?;
            if square != 0 {
                sum += square;
                received += 1;
            }
        }
        drop(alt);
        left.poison();
        right.poison();
        Ok(sum)
    })
}

fn network(scheduler: Scheduler) -> Result<Vec<Option<u64>>, String> {
    let (numbers, left, right) = (Channel::new(), Channel::new(), Channel::new());
    Parallel::new([
        generator(numbers.writer()),
        squarer(numbers.reader(), left.writer()),
        squarer(numbers.reader(), right.writer()),
        sink(left.reader(), right.reader()),
    ])
    .scheduler(scheduler)
    .run()
    .map_err(|e| e.to_string())
}

pub(super) fn run() -> Result<String, String> {
    let expected = N * (N + 1) * (2 * N + 1) / 6;
    for scheduler in [Scheduler::Cooperative, Scheduler::Threads] {
        let results = network(scheduler)?;
        if results != [None, None, None, Some(expected)] {
            return Err(format!(
                "{scheduler:?}: got {results:?}, expected the sink to sum {expected} and the rest to stop on poison"
            ));
        }
    }
    Ok(format!(
        "sum of the first {N} squares = {expected} through a fan-out and a fair alternation, then one poison stopped all 4 processes (cooperative and OS threads)"
    ))
}
