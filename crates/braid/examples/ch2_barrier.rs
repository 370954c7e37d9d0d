//! Book recipe (ch. 2): "Thread synchronization with a barrier": racers run at their own
//! pace and all wait at the barrier until the last one arrives.
//!
//! Python:
//! ```python
//! synchronizer = threading.Barrier(3, action=lambda: print("all arrived"))
//! def runner(): time.sleep(random.randrange(2, 5)); synchronizer.wait()
//! ```
//!
//! Run: `cargo run --example ch2_barrier`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use braid::sync::{self, Barrier, Error};

const RACERS: [&str; 3] = ["Huey", "Dewey", "Louie"];

/// Some work of a different length for each racer (the book sleeps a random time).
fn run_laps(laps: u64) -> u64 {
    (0..laps * 20_000).fold(0, |acc, x| acc ^ x.wrapping_mul(0x9E37_79B9))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    let actions = Arc::new(AtomicUsize::new(0));
    let barrier = {
        let actions = actions.clone();
        // The action runs once per round, on the last thread to arrive, before any leaves.
        Arc::new(Barrier::with_action(RACERS.len(), move || {
            let round = actions.fetch_add(1, Ordering::SeqCst) + 1;
            println!("action: all racers at the barrier (round {round})");
        }))
    };

    let racers = RACERS
        .iter()
        .enumerate()
        .map(|(i, &name)| {
            let barrier = barrier.clone();
            sync::spawn(name, move || {
                let mut arrivals = Vec::new();
                // Two rounds: the barrier resets itself after each, like Python's.
                for round in 1..=2 {
                    run_laps(i as u64 + round);
                    let index = barrier.wait()?;
                    println!("{name} reached the barrier in round {round} as arrival {index}");
                    arrivals.push(index);
                }
                Ok::<_, Error>(arrivals)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut per_round = vec![Vec::new(), Vec::new()];
    for racer in racers {
        for (round, index) in racer.join()??.into_iter().enumerate() {
            per_round[round].push(index);
        }
    }
    for indices in &mut per_round {
        indices.sort_unstable();
        if indices != &[0, 1, 2] {
            return Err(format!("arrival indices {indices:?}, expected 0, 1, 2").into());
        }
    }
    let rounds = actions.load(Ordering::SeqCst);
    if rounds != 2 {
        return Err(format!("the action ran {rounds} times, expected once per round").into());
    }

    // abort() breaks the barrier: the racer waiting there, and any later, get BrokenBarrier.
    let gate = Arc::new(Barrier::new(2));
    let waiting = {
        let gate = gate.clone();
        sync::spawn("waiting", move || gate.wait())?
    };
    while gate.n_waiting() == 0 && !waiting.is_finished() {
        std::thread::yield_now();
    }
    gate.abort();
    let waiter_saw = waiting.join()?;
    let later = gate.wait();
    println!("after abort(): the waiter got {waiter_saw:?}, a later wait() got {later:?}");
    if waiter_saw != Err(Error::BrokenBarrier) || later != Err(Error::BrokenBarrier) {
        return Err("an aborted barrier must answer BrokenBarrier".into());
    }

    // A timeout breaks it too (as in Python); reset() makes it usable again.
    let lonely = Barrier::new(2);
    let timed_out = lonely.wait_timeout(Duration::from_millis(5));
    let broken = lonely.is_broken();
    lonely.reset();
    println!(
        "wait_timeout alone: {timed_out:?}, broken = {broken}; after reset(): broken = {}",
        lonely.is_broken()
    );
    if timed_out != Err(Error::BrokenBarrier) || !broken || lonely.is_broken() {
        return Err("a timed-out barrier must be broken until reset".into());
    }

    println!("ok: 2 rounds of 3 racers, distinct arrival indices, abort and timeout break it");
    Ok(())
}
