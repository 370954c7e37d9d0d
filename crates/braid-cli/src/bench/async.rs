//! The `async` suite: braid-async on tokio against Python's `asyncio` (and uvloop, in the
//! note, where it is installed); `bench/python/async.py` mirrors every case with the same
//! work.
//!
//! Every case runs on a current-thread tokio runtime, the counterpart of asyncio's one
//! thread (and braid's fastest configuration for these single-task-at-a-time patterns:
//! on a multi-thread runtime, spawning and waking cross threads and cost more).

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use braid::asyncio::{Event, Queue, TaskGroup, gather, gather_tasks};
use tokio::runtime::{Builder, Runtime};

use super::{Case, CaseError, Measure, Size, Suite};

/// The suite's cases.
pub(crate) const SUITE: Suite = Suite {
    name: "async",
    script: "async.py",
    cases: &[
        Case {
            name: "gather_noop",
            unit: "us",
            size: Size {
                full: 100_000,
                quick: 20_000,
            },
            check: None,
            measure: Measure::Once(gather_noop),
        },
        Case {
            name: "gather_tasks_noop",
            unit: "us",
            size: Size {
                full: 100_000,
                quick: 20_000,
            },
            check: None,
            measure: Measure::Once(gather_tasks_noop),
        },
        Case {
            name: "taskgroup_spawn_join",
            unit: "us",
            size: Size {
                full: 100_000,
                quick: 20_000,
            },
            check: None,
            measure: Measure::Once(taskgroup_spawn_join),
        },
        Case {
            name: "async_queue_ping_pong",
            unit: "us",
            size: Size {
                full: 50_000,
                quick: 10_000,
            },
            check: None,
            measure: Measure::Once(queue_ping_pong),
        },
        Case {
            name: "async_event_wakeup",
            unit: "us",
            size: Size {
                full: 50_000,
                quick: 10_000,
            },
            check: None,
            measure: Measure::Once(event_wakeup),
        },
    ],
};

fn current_thread() -> Result<Runtime, CaseError> {
    Builder::new_current_thread()
        .build()
        .map_err(CaseError::Runtime)
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

fn per(elapsed: Duration, n: u64) -> f64 {
    elapsed.as_secs_f64() * 1e6 / n as f64
}

/// The sum 0 + 1 + ... + (n - 1), which every gather and group checks.
fn triangle(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Microseconds per future of a `gather` of n no-op futures, each returning its index,
/// polled in place (no task spawned); Python: `asyncio.gather` of n coroutines.
fn gather_noop(n: u64) -> Result<f64, CaseError> {
    current_thread()?.block_on(async {
        let start = Instant::now();
        let values = gather((0..n).map(|i| async move { black_box(i) })).await;
        let elapsed = start.elapsed();
        wrong_count("the number of values", values.len() as u64, n)?;
        wrong_count("the sum of the values", values.iter().sum(), triangle(n))?;
        Ok(per(elapsed, n))
    })
}

/// Microseconds per task of `gather_tasks` of n no-op futures, each spawned as a tokio
/// task, as asyncio's gather wraps each coroutine in a Task.
fn gather_tasks_noop(n: u64) -> Result<f64, CaseError> {
    current_thread()?.block_on(async {
        let start = Instant::now();
        let outputs = gather_tasks((0..n).map(|i| async move { black_box(i) })).await;
        let elapsed = start.elapsed();
        let values = outputs.into_iter().collect::<Result<Vec<u64>, _>>()?;
        wrong_count("the number of values", values.len() as u64, n)?;
        wrong_count("the sum of the values", values.iter().sum(), triangle(n))?;
        Ok(per(elapsed, n))
    })
}

/// Microseconds per task to spawn n no-op tasks into a TaskGroup and join them all;
/// Python: `asyncio.TaskGroup` with `create_task`.
fn taskgroup_spawn_join(n: u64) -> Result<f64, CaseError> {
    current_thread()?.block_on(spawn_and_join(n))
}

/// Spawns n no-op tasks into a TaskGroup and joins them; checks every value came back.
async fn spawn_and_join(n: u64) -> Result<f64, CaseError> {
    let start = Instant::now();
    let mut group = TaskGroup::<u64, Infallible>::new();
    for i in 0..n {
        group.spawn(async move { Ok(black_box(i)) });
    }
    let values = group
        .join()
        .await
        .map_err(|e| CaseError::Wrong(format!("a no-op task failed: {e:?}")))?;
    let elapsed = start.elapsed();
    wrong_count("the number of values", values.len() as u64, n)?;
    wrong_count("the sum of the values", values.iter().sum(), triangle(n))?;
    Ok(per(elapsed, n))
}

/// Microseconds per round trip of one item bounced between two tasks over two async
/// queues; each side adds one, so the item must come back as 2n.
fn queue_ping_pong(n: u64) -> Result<f64, CaseError> {
    current_thread()?.block_on(async {
        let ping = Arc::new(Queue::<u64>::new());
        let pong = Arc::new(Queue::<u64>::new());
        let responder = tokio::spawn({
            let (ping, pong) = (ping.clone(), pong.clone());
            async move {
                for _ in 0..n {
                    let v = ping.get().await?;
                    if pong.put(v + 1).await.is_err() {
                        return Err(braid::asyncio::Error::ShutDown);
                    }
                }
                Ok::<(), braid::asyncio::Error>(())
            }
        });
        let start = Instant::now();
        let mut v = 0;
        for _ in 0..n {
            if ping.put(v).await.is_err() {
                return Err(CaseError::Wrong("the ping queue refused an item".into()));
            }
            v = pong.get().await? + 1;
        }
        let elapsed = start.elapsed();
        responder
            .await
            .map_err(|e| CaseError::Wrong(format!("the responder failed: {e}")))??;
        wrong_count("the item", v, 2 * n)?;
        Ok(per(elapsed, n))
    })
}

/// Microseconds per round trip of two tasks ping-ponging over two async events with
/// set / wait / clear; the responder counts rounds, and every round is checked.
fn event_wakeup(n: u64) -> Result<f64, CaseError> {
    current_thread()?.block_on(async {
        let go = Arc::new(Event::new());
        let back = Arc::new(Event::new());
        let rounds = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let responder = tokio::spawn({
            let (go, back, rounds) = (go.clone(), back.clone(), rounds.clone());
            async move {
                for _ in 0..n {
                    go.wait().await;
                    go.clear();
                    rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    back.set();
                }
            }
        });
        let mut first_wrong = None;
        let start = Instant::now();
        for i in 0..n {
            go.set();
            back.wait().await;
            back.clear();
            let seen = rounds.load(std::sync::atomic::Ordering::Relaxed);
            if seen != i + 1 && first_wrong.is_none() {
                first_wrong = Some((i, seen));
            }
        }
        let elapsed = start.elapsed();
        responder
            .await
            .map_err(|e| CaseError::Wrong(format!("the responder failed: {e}")))?;
        if let Some((i, seen)) = first_wrong {
            return Err(CaseError::Wrong(format!(
                "wait returned in round {} before the other task's set ({seen} rounds done)",
                i + 1
            )));
        }
        Ok(per(elapsed, n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_checks_out_on_a_small_size() {
        for case in SUITE.cases {
            let Measure::Once(measure) = case.measure else {
                panic!("{} is not a plain case", case.name);
            };
            for n in [1, 100] {
                let us = measure(n).unwrap_or_else(|e| panic!("{} at {n}: {e}", case.name));
                assert!(us.is_finite() && us >= 0.0, "{}: {us}", case.name);
            }
        }
    }
}
