//! Processes and how they run: commstime without deadlock on every scheduler,
//! Parallel, Sequence and Spawn (nested too), blocking processes beside async ones,
//! and the failures of spawned processes that nobody waits for.

use std::sync::{Arc, Mutex};

use braid_csp::{
    Channel, Error, Parallel, Process, Reader, Scheduler, Sequence, Writer, blocking_process,
    process, shutdown, spawn,
};

const SCHEDULERS: [Scheduler; 3] = [
    Scheduler::Cooperative,
    Scheduler::Threads,
    Scheduler::MultiThread { workers: 2 },
];

fn prefix(input: Reader<u64>, out: Writer<u64>, first: u64) -> Process<u64> {
    process(async move {
        out.write(first).await?;
        loop {
            out.write(input.read().await?).await?;
        }
    })
}

fn delta(input: Reader<u64>, a: Writer<u64>, b: Writer<u64>) -> Process<u64> {
    process(async move {
        loop {
            let x = input.read().await?;
            a.write(x).await?;
            b.write(x).await?;
        }
    })
}

fn successor(input: Reader<u64>, out: Writer<u64>) -> Process<u64> {
    process(async move {
        loop {
            out.write(input.read().await? + 1).await?;
        }
    })
}

/// Reads `n` values, checks they count up from 0, then poisons.
fn consume(input: Reader<u64>, n: u64) -> Process<u64> {
    process(async move {
        for expected in 0..n {
            let got = input.read().await?;
            assert_eq!(got, expected, "commstime lost or reordered a value");
        }
        input.poison();
        Ok(n)
    })
}

#[test]
fn commstime_runs_to_the_end_and_shuts_down_on_every_scheduler() {
    for scheduler in SCHEDULERS {
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
            consume(d.reader(), 2_000),
        ])
        .scheduler(scheduler)
        .run()
        .unwrap();
        assert_eq!(results, [None, None, None, Some(2_000)], "{scheduler:?}");
    }
}

#[test]
fn sequence_runs_processes_one_after_another() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let step = |i: u32| {
        let order = Arc::clone(&order);
        process(async move {
            order.lock().unwrap().push(i);
            Ok(i * 10)
        })
    };
    let results = Sequence::new([step(1), step(2)])
        .and(step(3))
        .run()
        .unwrap();
    assert_eq!(results, [Some(10), Some(20), Some(30)]);
    assert_eq!(*order.lock().unwrap(), [1, 2, 3]);
}

#[test]
fn a_failing_process_stops_a_sequence() {
    let ran = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&ran);
    let outcome = Sequence::new([
        process(async { Err::<(), _>(Error::other(std::fmt::Error)) }),
        process(async move {
            *flag.lock().unwrap() = true;
            Ok(())
        }),
    ])
    .run();
    assert!(matches!(outcome, Err(Error::Other(_))));
    assert!(!*ran.lock().unwrap());
}

#[test]
fn nested_parallel_and_spawn_run_on_the_process_scheduler() {
    for scheduler in SCHEDULERS {
        let results = Parallel::new([process(async {
            // A nested Parallel, awaited.
            let ch = Channel::new();
            let (out, input) = (ch.writer(), ch.reader());
            let inner = Parallel::new([
                process(async move {
                    out.write(20u64).await?;
                    Ok(1)
                }),
                process(async move { Ok(input.read().await? + 1) }),
            ])
            .await?;
            // A spawned process, awaited through its handle.
            let handle = spawn(process(async { Ok(100u64) }));
            let spawned = handle.await?.unwrap_or(0);
            Ok(inner.into_iter().flatten().sum::<u64>() + spawned)
        })])
        .scheduler(scheduler)
        .run()
        .unwrap();
        assert_eq!(results, [Some(122)], "{scheduler:?}");
    }
}

#[test]
fn a_process_ends_only_after_the_processes_it_spawned() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let child_log = Arc::clone(&log);
    let ch = Channel::new();
    let (out, input) = (ch.writer(), ch.reader());
    let results = Parallel::new([
        process(async move {
            // Detached: the handle is dropped at once.
            drop(spawn(process(async move {
                let v = input.read().await?;
                child_log.lock().unwrap().push(v);
                Ok(())
            })));
            Ok(())
        }),
        process(async move {
            out.write(5u32).await?;
            Ok(())
        }),
    ])
    .run()
    .unwrap();
    assert_eq!(results, [Some(()), Some(())]);
    assert_eq!(*log.lock().unwrap(), [5]);
}

#[test]
fn the_failure_of_a_detached_child_goes_to_its_parent() {
    let outcome = Parallel::new([process(async {
        drop(spawn(process(async {
            Err::<(), _>(Error::Unsupported("the child's own failure"))
        })));
        Ok(())
    })])
    .run();
    assert_eq!(outcome, Err(Error::Unsupported("the child's own failure")));
}

#[test]
fn blocking_processes_run_beside_async_ones_on_every_scheduler() {
    for scheduler in SCHEDULERS {
        let ch = Channel::new();
        let (out, input) = (ch.writer(), ch.reader());
        let results = Parallel::new([
            blocking_process(move || {
                for i in 0..100u64 {
                    out.blocking_write(i)?;
                }
                Ok(0)
            }),
            process(async move {
                let mut sum = 0;
                loop {
                    match input.read().await {
                        Ok(v) => sum += v,
                        Err(Error::Retired) => return Ok(sum),
                        Err(e) => return Err(e),
                    }
                }
            }),
        ])
        .scheduler(scheduler)
        .run()
        .unwrap();
        assert_eq!(results, [Some(0), Some(4950)], "{scheduler:?}");
    }
}

#[test]
fn a_blocking_process_that_panics_is_reported() {
    let outcome =
        Parallel::new([blocking_process(|| -> Result<(), Error> { panic!("boom") }).named("b")])
            .run();
    assert_eq!(
        outcome,
        Err(Error::Panicked {
            process: "b".into(),
            message: "boom".into()
        })
    );
}

#[test]
fn run_inside_a_process_is_refused_but_await_works() {
    let results = Parallel::new([process(async {
        let refused = Parallel::new([process(async { Ok(1) })]).run();
        let awaited = Parallel::new([process(async { Ok(2) })]).await?;
        Ok((refused, awaited))
    })])
    .run()
    .unwrap();
    assert_eq!(
        results,
        [Some((Err(Error::BlockingInScheduler), vec![Some(2)]))]
    );
}

#[test]
fn spawn_outside_any_process_runs_in_the_background_until_shutdown() {
    let ch = Channel::new();
    let (out, input) = (ch.writer(), ch.reader());
    let handle = spawn(process(async move {
        for i in 0..10u32 {
            out.write(i).await?;
        }
        Ok(())
    }));
    let sum: u32 = (0..10).map(|_| input.blocking_read().unwrap()).sum();
    assert_eq!(sum, 45);
    drop(handle);
    shutdown().unwrap();
    assert_eq!(input.blocking_read(), Err(Error::Retired));
}

#[test]
fn a_spawned_process_handle_gives_its_value() {
    let handle = spawn(process(async { Ok(7u8) }));
    assert_eq!(handle.join(), Ok(Some(7)));
}

#[test]
fn an_end_dropped_in_the_middle_of_a_blocking_process_retires_before_it_waits() {
    let (data, ack) = (Channel::new(), Channel::new());
    let (out, input) = (data.writer(), data.reader());
    let (ack_out, ack_in) = (ack.writer(), ack.reader());
    drop((data, ack));
    let results = Parallel::new([
        blocking_process(move || {
            out.blocking_write(1u32)?;
            drop(out); // the reader waits for this retirement before it acknowledges
            ack_in.blocking_read()
        }),
        process(async move {
            let mut n = 0;
            while input.read().await.is_ok() {
                n += 1;
            }
            ack_out.write(n).await?;
            Ok(0)
        }),
    ])
    .run()
    .unwrap();
    assert_eq!(results, [Some(1), Some(0)]);
}
