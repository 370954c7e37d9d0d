//! Book recipe (ch. 5): PyCSP's alternation: one process reads from whichever of two
//! channels has a value, with `AltSelect` (priority), `FairSelect`, and the timeout and
//! skip guards; an output guard offers a value only if someone takes it.
//!
//! Python (PyCSP):
//! ```python
//! @process
//! def P1(cout):
//!     for i in range(10):
//!         cout(i)
//!
//! @process
//! def P2(cin1, cin2, n):
//!     for i in range(n):
//!         g, msg = FairSelect(InputGuard(cin1), InputGuard(cin2))
//!         print(msg)
//!
//! C1, C2 = Channel(), Channel()
//! Parallel(P1(C1.writer()), P1(C2.writer()), P2(C1.reader(), C2.reader(), 20))
//! ```
//!
//! Run: `cargo run --example ch5_csp_alternation`

use std::time::Duration;

use braid::csp::{Alternation, Channel, Error, Parallel, Process, Writer, process};

fn p1(cout: Writer<u64>, first: u64) -> Process<Vec<(char, u64)>> {
    process(async move {
        for i in first..first + 10 {
            cout.write(i).await?;
        }
        Ok(Vec::new())
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    let (c1, c2) = (Channel::new(), Channel::new());
    let (cin1, cin2) = (c1.reader(), c2.reader());
    let results = Parallel::new([
        p1(c1.writer(), 0),
        p1(c2.writer(), 100),
        process(async move {
            let mut alt = Alternation::new()
                .input(&cin1, |v| ('1', v))
                .input(&cin2, |v| ('2', v));
            let mut got = Vec::new();
            while got.len() < 20 {
                match alt.fair_select().await {
                    Ok(message) => got.push(message),
                    // A writer that is done retires its channel: stop offering it.
                    Err(Error::Retired) => {
                        let done = alt.failed_guard().expect("the guard that failed");
                        alt.set_enabled(done, false);
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(got)
        }),
    ])
    .run()?;
    let got = results[2].clone().unwrap_or_default();
    println!("FairSelect over two writers: {got:?}");
    let mut values: Vec<u64> = got.iter().map(|(_, v)| *v).collect();
    values.sort_unstable();
    let expected: Vec<u64> = (0..10).chain(100..110).collect();
    if values != expected {
        return Err(format!("read {values:?}, expected {expected:?}").into());
    }

    // Timeout and skip guards: nothing is ready on an idle channel.
    let idle = Channel::<u64>::new();
    let (idle_out, idle_in) = (idle.writer(), idle.reader());
    let mut alt = Alternation::new()
        .input(&idle_in, |_| "input")
        .timeout(Duration::from_millis(20), || "timeout");
    let timed_out = alt.blocking_select()?;
    let mut alt = Alternation::new()
        .input(&idle_in, |_| "input")
        .skip(|| "skip");
    let skipped = alt.blocking_select()?;
    // An output guard with no reader is not taken; the skip is.
    let mut alt = Alternation::new()
        .output(&idle_out, 1, || "sent")
        .skip(|| "nobody reads");
    let offered = alt.blocking_select()?;
    println!("idle channel: {timed_out}, {skipped}, {offered}");
    if (timed_out, skipped, offered) != ("timeout", "skip", "nobody reads") {
        return Err("a guard fired that should not have".into());
    }
    Ok(())
}
