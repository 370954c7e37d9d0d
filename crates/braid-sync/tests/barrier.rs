//! Barrier: rounds, action, breaking (timeout, abort, panicking action), reset.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use braid_sync::{Barrier, Error, JoinHandle, spawn};

fn waiters(
    barrier: &Arc<Barrier>,
    n: usize,
    timeout: Option<Duration>,
) -> Vec<JoinHandle<Result<usize, Error>>> {
    (0..n)
        .map(|i| {
            let b = barrier.clone();
            spawn(format!("party-{i}"), move || match timeout {
                Some(t) => b.wait_timeout(t),
                None => b.wait(),
            })
            .unwrap()
        })
        .collect()
}

/// Blocks until `n` threads wait at `barrier`, without sleeping for it.
fn until_waiting(barrier: &Barrier, n: usize) {
    while barrier.n_waiting() < n {
        std::thread::yield_now();
    }
}

#[test]
fn indices_are_distinct_and_the_action_runs_once_per_round() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let barrier = Arc::new(Barrier::with_action(3, move || {
        r.fetch_add(1, Ordering::SeqCst);
    }));
    assert_eq!(barrier.parties(), 3);
    for round in 1..=3 {
        let handles = waiters(&barrier, 3, None);
        let mut indices: Vec<usize> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        indices.sort_unstable();
        assert_eq!(indices, [0, 1, 2]);
        assert_eq!(runs.load(Ordering::SeqCst), round);
    }
    assert!(!barrier.is_broken());
}

#[test]
fn one_party_passes_at_once() {
    let b = Barrier::new(1);
    assert_eq!(b.wait(), Ok(0));
    assert_eq!(b.wait_timeout(Duration::ZERO), Ok(0));
}

#[test]
#[should_panic(expected = "at least one party")]
fn zero_parties_panics() {
    drop(Barrier::new(0));
}

#[test]
fn timeout_breaks_the_barrier_for_every_waiter() {
    let barrier = Arc::new(Barrier::new(4));
    let patient = waiters(&barrier, 2, None);
    until_waiting(&barrier, 2);
    assert_eq!(
        barrier.wait_timeout(Duration::from_millis(5)),
        Err(Error::BrokenBarrier)
    );
    assert!(barrier.is_broken());
    for h in patient {
        assert_eq!(h.join().unwrap(), Err(Error::BrokenBarrier));
    }
    assert_eq!(
        barrier.wait(),
        Err(Error::BrokenBarrier),
        "later waits fail too"
    );
    assert_eq!(barrier.n_waiting(), 0);
}

#[test]
fn abort_gives_every_waiter_an_error() {
    let barrier = Arc::new(Barrier::new(5));
    let handles = waiters(&barrier, 4, None);
    until_waiting(&barrier, 4);
    barrier.abort();
    for h in handles {
        assert_eq!(h.join().unwrap(), Err(Error::BrokenBarrier));
    }
    assert!(barrier.is_broken());
    assert_eq!(barrier.wait(), Err(Error::BrokenBarrier));
    barrier.reset();
    assert!(!barrier.is_broken());
    let handles = waiters(&barrier, 4, None);
    assert!(barrier.wait().is_ok(), "usable again after reset");
    for h in handles {
        assert!(h.join().unwrap().is_ok());
    }
}

#[test]
fn reset_fails_current_waiters_and_leaves_it_unbroken() {
    let barrier = Arc::new(Barrier::new(3));
    let handles = waiters(&barrier, 2, None);
    until_waiting(&barrier, 2);
    barrier.reset();
    for h in handles {
        assert_eq!(h.join().unwrap(), Err(Error::BrokenBarrier));
    }
    assert!(!barrier.is_broken());
    let handles = waiters(&barrier, 2, Some(Duration::from_secs(60)));
    assert!(barrier.wait_timeout(Duration::from_secs(60)).is_ok());
    for h in handles {
        assert!(h.join().unwrap().is_ok());
    }
}

#[test]
fn a_panicking_action_breaks_the_barrier_and_panics_its_thread() {
    let barrier = Arc::new(Barrier::with_action(3, || panic!("action failed")));
    let handles = waiters(&barrier, 2, None);
    until_waiting(&barrier, 2);
    // This thread arrives last, runs the action, and its panic goes on here.
    let panic = catch_unwind(AssertUnwindSafe(|| barrier.wait())).unwrap_err();
    assert_eq!(braid_core::panic_message(&*panic), "action failed");
    for h in handles {
        assert_eq!(h.join().unwrap(), Err(Error::BrokenBarrier));
    }
    assert!(barrier.is_broken());
}

#[test]
fn debug_shows_the_state() {
    let b = Barrier::new(2);
    assert!(format!("{b:?}").contains("parties: 2"));
}

/// Stress: 8 threads pass one barrier 2,000 times (16k waits), with an action counting
/// rounds; every round's indices are distinct.
#[test]
fn stress_barrier_cycles() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 2_000;
    let rounds = Arc::new(AtomicUsize::new(0));
    let r = rounds.clone();
    let barrier = Arc::new(Barrier::with_action(THREADS, move || {
        r.fetch_add(1, Ordering::SeqCst);
    }));
    let index_sum = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let (b, sum) = (barrier.clone(), index_sum.clone());
            spawn(format!("cycle-{i}"), move || {
                for _ in 0..ROUNDS {
                    sum.fetch_add(b.wait().unwrap(), Ordering::SeqCst);
                }
            })
            .unwrap()
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(rounds.load(Ordering::SeqCst), ROUNDS);
    assert_eq!(
        index_sum.load(Ordering::SeqCst),
        ROUNDS * THREADS * (THREADS - 1) / 2
    );
}
