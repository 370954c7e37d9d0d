//! The `threads` suite: braid-sync against Python's `threading`, `queue`,
//! `concurrent.futures.ThreadPoolExecutor` and `multiprocessing.Pool`
//! (`bench/python/threads.py` mirrors every case with the same work).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use braid::sync::{
    Barrier, Condition, Event, JoinHandle, Lock, PutError, Queue, ThreadPool, spawn,
};

use super::{Case, CaseError, Measure, Size, Suite};

/// The suite's cases.
pub(crate) const SUITE: Suite = Suite {
    name: "threads",
    script: "threads.py",
    cases: &[
        Case {
            name: "queue_ping_pong",
            unit: "us",
            size: Size {
                full: 10_000,
                quick: 2_000,
            },
            check: None,
            measure: Measure::Once(queue_ping_pong),
        },
        Case {
            name: "lock_uncontended",
            unit: "ns",
            size: Size {
                full: 2_000_000,
                quick: 500_000,
            },
            check: None,
            measure: Measure::Once(lock_uncontended),
        },
        Case {
            name: "lock_contended",
            unit: "ns",
            size: Size {
                full: 1_000_000,
                quick: 200_000,
            },
            check: None,
            measure: Measure::Once(lock_contended),
        },
        Case {
            name: "event_wakeup",
            unit: "us",
            size: Size {
                full: 5_000,
                quick: 1_000,
            },
            check: None,
            measure: Measure::Once(event_wakeup),
        },
        Case {
            name: "condition_wakeup",
            unit: "us",
            size: Size {
                full: 5_000,
                quick: 1_000,
            },
            check: None,
            measure: Measure::Once(condition_wakeup),
        },
        Case {
            name: "cpu_scaling",
            unit: "s",
            // Python counts the primes below 450,000 by trial division in about 1 s on one
            // core of the reference machine, and below 200,000 in about 0.3 s.
            size: Size {
                full: 450_000,
                quick: 200_000,
            },
            check: Some(primes_below),
            measure: Measure::Scaling {
                run: cpu_scaling,
                headline: "threads",
            },
        },
    ],
};

fn put_failed<T>(error: PutError<T>) -> CaseError {
    CaseError::Wrong(format!("a put on an unbounded queue failed: {error}"))
}

fn joined<T>(handle: JoinHandle<Result<T, CaseError>>) -> Result<T, CaseError> {
    handle.join()?
}

fn wrong_count(what: &str, got: u64, expected: u64) -> Result<(), CaseError> {
    if got == expected {
        Ok(())
    } else {
        Err(CaseError::Wrong(format!(
            "{what} is {got}, expected {expected}"
        )))
    }
}

fn per(elapsed: std::time::Duration, n: u64, unit: f64) -> f64 {
    elapsed.as_secs_f64() / unit / n as f64
}

/// Microseconds per round trip of one item bounced between two threads over two queues;
/// each side adds one, so the item must come back as 2n.
fn queue_ping_pong(n: u64) -> Result<f64, CaseError> {
    let ping = Arc::new(Queue::<u64>::new());
    let pong = Arc::new(Queue::<u64>::new());
    let worker = {
        let (ping, pong) = (Arc::clone(&ping), Arc::clone(&pong));
        spawn("pong", move || -> Result<(), CaseError> {
            for _ in 0..n {
                let v = ping.get()?;
                pong.put(v + 1).map_err(put_failed)?;
            }
            Ok(())
        })?
    };
    let start = Instant::now();
    let rally = (|| -> Result<u64, CaseError> {
        let mut v = 0;
        for _ in 0..n {
            ping.put(v).map_err(put_failed)?;
            v = pong.get()? + 1;
        }
        Ok(v)
    })();
    let elapsed = start.elapsed();
    if rally.is_err() {
        // Frees the other thread from its get, so that the join below returns.
        ping.shutdown(true);
    }
    let served = joined(worker);
    let v = rally?;
    served?;
    wrong_count("the item", v, 2 * n)?;
    Ok(per(elapsed, n, 1e-6))
}

/// Nanoseconds per acquire + release of a lock no other thread touches.
fn lock_uncontended(n: u64) -> Result<f64, CaseError> {
    let lock = Lock::new(0u64);
    let start = Instant::now();
    for _ in 0..n {
        *black_box(&lock).acquire() += 1;
    }
    let elapsed = start.elapsed();
    wrong_count("the counter", lock.into_inner(), n)?;
    Ok(per(elapsed, n, 1e-9))
}

/// Nanoseconds per acquire + release (counted over both threads) while two threads hammer
/// one lock, each adding 1 to the counter it guards n/2 times.
fn lock_contended(n: u64) -> Result<f64, CaseError> {
    let each = n.div_ceil(2);
    let lock = Arc::new(Lock::new(0u64));
    let start_line = Arc::new(Barrier::new(3));
    let mut hammers = Vec::new();
    for i in 0..2 {
        let (lock, line) = (Arc::clone(&lock), Arc::clone(&start_line));
        let spawned = spawn(format!("hammer-{i}"), move || -> Result<(), CaseError> {
            line.wait()?;
            for _ in 0..each {
                *lock.acquire() += 1;
            }
            Ok(())
        });
        match spawned {
            Ok(handle) => hammers.push(handle),
            Err(e) => {
                // The abort frees the thread already started from the barrier, and it
                // ends on its own; its BrokenBarrier would only echo this error.
                start_line.abort();
                hammers.into_iter().for_each(JoinHandle::detach);
                return Err(e.into());
            }
        }
    }
    start_line.wait()?;
    let start = Instant::now();
    let results: Vec<Result<(), CaseError>> = hammers.into_iter().map(joined).collect();
    let elapsed = start.elapsed();
    results.into_iter().collect::<Result<(), CaseError>>()?;
    wrong_count("the counter", *lock.acquire(), 2 * each)?;
    Ok(per(elapsed, 2 * each, 1e-9))
}

/// Microseconds per round trip of two threads ping-ponging over two events with
/// set / wait / clear; the responder counts rounds, and every round is checked.
fn event_wakeup(n: u64) -> Result<f64, CaseError> {
    let go = Arc::new(Event::new());
    let back = Arc::new(Event::new());
    let rounds = Arc::new(AtomicU64::new(0));
    let worker = {
        let (go, back, rounds) = (Arc::clone(&go), Arc::clone(&back), Arc::clone(&rounds));
        spawn("responder", move || -> Result<(), CaseError> {
            for _ in 0..n {
                go.wait();
                go.clear();
                rounds.fetch_add(1, Ordering::Release);
                back.set();
            }
            Ok(())
        })?
    };
    let mut first_wrong = None;
    let start = Instant::now();
    for i in 0..n {
        go.set();
        back.wait();
        back.clear();
        let seen = rounds.load(Ordering::Acquire);
        if seen != i + 1 && first_wrong.is_none() {
            first_wrong = Some((i, seen));
        }
    }
    let elapsed = start.elapsed();
    joined(worker)?;
    if let Some((i, seen)) = first_wrong {
        return Err(CaseError::Wrong(format!(
            "wait returned in round {} before the other thread's set ({seen} rounds done)",
            i + 1
        )));
    }
    Ok(per(elapsed, n, 1e-6))
}

/// Microseconds per round trip of two threads taking turns under one condition: the
/// caller moves the counter to odd, the responder to even, each waking the other.
fn condition_wakeup(n: u64) -> Result<f64, CaseError> {
    let turn = Arc::new(Condition::new(0u64));
    let worker = {
        let turn = Arc::clone(&turn);
        spawn("responder", move || -> Result<(), CaseError> {
            for _ in 0..n {
                let mut count = turn.lock();
                count.wait_for(|c| *c % 2 == 1);
                *count += 1;
                turn.notify_one();
            }
            Ok(())
        })?
    };
    let mut first_wrong = None;
    let start = Instant::now();
    for i in 0..n {
        let mut count = turn.lock();
        if *count != 2 * i && first_wrong.is_none() {
            first_wrong = Some((i, *count));
        }
        *count += 1;
        turn.notify_one();
        count.wait_for(|c| *c % 2 == 0);
    }
    let elapsed = start.elapsed();
    joined(worker)?;
    if let Some((i, seen)) = first_wrong {
        return Err(CaseError::Wrong(format!(
            "round {} began with the counter at {seen}, not {}",
            i + 1,
            2 * i
        )));
    }
    wrong_count("the counter", *turn.lock(), 2 * n)?;
    Ok(per(elapsed, n, 1e-6))
}

/// Numbers are handed out in blocks of this many, round-robin over the parts, so that
/// every part gets as many large (slow to test) numbers as small ones.
const BLOCK: u64 = 1000;

/// Primality by trial division by 2 and the odd numbers up to √x: the same algorithm,
/// step for step, as `is_prime` in `bench/python/threads.py` (and `proc.py`; the `proc` suite uses these too) (`is_multiple_of` is `%`).
pub(super) fn is_prime(x: u64) -> bool {
    if x < 2 {
        return false;
    }
    if x < 4 {
        return true;
    }
    if x.is_multiple_of(2) {
        return false;
    }
    let mut d = 3;
    while d * d <= x {
        if x.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// The primes below `n` in part `k` of `parts`: blocks k, k + parts, k + 2 parts, ...
pub(super) fn count_part(n: u64, parts: u64, k: u64) -> u64 {
    let mut count = 0;
    let mut block = k;
    while block * BLOCK < n {
        let end = ((block + 1) * BLOCK).min(n);
        count += (block * BLOCK..end).filter(|x| is_prime(*x)).count() as u64;
        block += parts;
    }
    count
}

/// How many primes are below `n`, by the sieve of Eratosthenes: an independent check of
/// what the trial division computes, on either side.
pub(super) fn primes_below(n: u64) -> u64 {
    let n = n as usize;
    let mut composite = vec![false; n];
    let mut count = 0;
    for i in 2..n {
        if !composite[i] {
            count += 1;
            let mut multiple = i * i;
            while multiple < n {
                composite[multiple] = true;
                multiple += i;
            }
        }
    }
    count
}

/// Seconds to count the primes below `n` split into p equal parts on a braid ThreadPool
/// of p threads; every run's count is checked against the sieve.
fn cpu_scaling(n: u64, p: usize, repeats: usize) -> Result<Vec<f64>, CaseError> {
    let expected = primes_below(n);
    let pool = ThreadPool::new(p)?;
    let parts = p as u64;
    let count = || -> Result<u64, CaseError> {
        let handles = (0..parts)
            .map(|k| pool.submit_fn(move || count_part(black_box(n), parts, k)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut total = 0;
        for handle in handles {
            total += handle.result()?;
        }
        Ok(total)
    };
    // Starts the workers and warms the caches; not timed.
    wrong_count("the prime count", count()?, expected)?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        let total = count()?;
        times.push(start.elapsed().as_secs_f64());
        wrong_count("the prime count", total, expected)?;
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_division_agrees_with_the_sieve() {
        for n in [0, 1, 2, 3, 10, 1000, 1001, 7919, 20_000] {
            let by_division = (0..n).filter(|x| is_prime(*x)).count() as u64;
            assert_eq!(by_division, primes_below(n), "n = {n}");
            for parts in 1..=5 {
                let split: u64 = (0..parts).map(|k| count_part(n, parts, k)).sum();
                assert_eq!(split, by_division, "n = {n}, {parts} parts");
            }
        }
        assert_eq!(primes_below(450_000), 37_706);
    }
}
