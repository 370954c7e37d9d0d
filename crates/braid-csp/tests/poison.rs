//! Poison and retirement through whole networks, on every scheduler: one poisoned
//! channel stops every process, a retired producer drains a pipeline without losing a
//! value, and a failing process stops the others and reports its failure.

use std::sync::{Arc, Mutex};

use braid_csp::{
    Alternation, Channel, Error, Parallel, Process, Reader, Scheduler, Writer, process,
};

const SCHEDULERS: [Scheduler; 3] = [
    Scheduler::Cooperative,
    Scheduler::Threads,
    Scheduler::MultiThread { workers: 2 },
];

/// How each process of a network ended: its name and its error.
type Log = Arc<Mutex<Vec<(String, Error)>>>;

/// Records the error a process ends with, and passes it on.
fn logged<T>(log: &Log, name: &str, result: Result<T, Error>) -> Result<T, Error> {
    if let Err(error) = &result {
        log.lock().unwrap().push((name.to_string(), error.clone()));
    }
    result
}

fn producer(out: Writer<u64>, limit: Option<u64>, log: Log) -> Process<u64> {
    process(async move {
        let result = async {
            let mut i = 0;
            while limit.is_none_or(|limit| i < limit) {
                out.write(i).await?;
                i += 1;
            }
            Ok(i)
        }
        .await;
        logged(&log, "producer", result)
    })
}

fn stage(name: String, input: Reader<u64>, out: Writer<u64>, log: Log) -> Process<u64> {
    process(async move {
        let result = async {
            loop {
                let x = input.read().await?;
                out.write(x + 1).await?;
            }
        }
        .await;
        logged(&log, &name, result)
    })
}

/// Reads `n` values, then poisons its input (or, with `n` = None, reads until retired).
fn consumer(input: Reader<u64>, n: Option<usize>, log: Log) -> Process<u64> {
    process(async move {
        let result = async {
            let mut seen = Vec::new();
            while n.is_none_or(|n| seen.len() < n) {
                match input.read().await {
                    Ok(v) => seen.push(v),
                    Err(Error::Retired) if n.is_none() => break,
                    Err(e) => return Err(e),
                }
            }
            if n.is_some() {
                input.poison();
            }
            Ok(seen.len() as u64)
        }
        .await;
        logged(&log, "consumer", result)
    })
}

/// producer -> `stages` stages -> consumer.
fn pipeline(
    stages: usize,
    limit: Option<u64>,
    take: Option<usize>,
    log: &Log,
) -> Vec<Process<u64>> {
    let channels: Vec<Channel<u64>> = (0..=stages).map(|_| Channel::new()).collect();
    let mut processes = vec![producer(channels[0].writer(), limit, Arc::clone(log))];
    for i in 0..stages {
        processes.push(stage(
            format!("stage {i}"),
            channels[i].reader(),
            channels[i + 1].writer(),
            Arc::clone(log),
        ));
    }
    processes.push(consumer(channels[stages].reader(), take, Arc::clone(log)));
    processes
}

#[test]
fn one_poison_reaches_every_process_of_a_pipeline() {
    for scheduler in SCHEDULERS {
        let log = Log::default();
        let results = Parallel::new(pipeline(8, None, Some(50), &log))
            .scheduler(scheduler)
            .run()
            .unwrap();
        // The consumer returned; everyone else stopped on poison.
        assert_eq!(results.last(), Some(&Some(50)), "{scheduler:?}");
        assert!(
            results[..results.len() - 1].iter().all(Option::is_none),
            "{scheduler:?}: {results:?}"
        );
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 9, "{scheduler:?}: {log:?}");
        for (name, error) in log.iter() {
            assert_eq!(error, &Error::Poisoned, "{scheduler:?}: {name}");
        }
    }
}

#[test]
fn a_retired_producer_drains_the_pipeline_without_losing_a_value() {
    for scheduler in SCHEDULERS {
        let log = Log::default();
        let results = Parallel::new(pipeline(5, Some(100), None, &log))
            .scheduler(scheduler)
            .run()
            .unwrap();
        assert_eq!(results.first(), Some(&Some(100)), "{scheduler:?}");
        assert_eq!(
            results.last(),
            Some(&Some(100)),
            "{scheduler:?}: every value arrived"
        );
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 5, "{scheduler:?}: {log:?}");
        assert!(
            log.iter().all(|(_, e)| *e == Error::Retired),
            "{scheduler:?}: {log:?}"
        );
    }
}

/// A fan-out to workers, merged again by an alternation; the sink poisons.
#[test]
fn poison_crosses_fan_out_fan_in_and_alternation() {
    for scheduler in SCHEDULERS {
        let log = Log::default();
        let source = Channel::new();
        let merged: Vec<Channel<u64>> = (0..3).map(|_| Channel::new()).collect();
        let sink = Channel::new();
        let mut processes = vec![producer(source.writer(), None, Arc::clone(&log))];
        for (i, channel) in merged.iter().enumerate() {
            processes.push(stage(
                format!("worker {i}"),
                source.reader(),
                channel.writer(),
                Arc::clone(&log),
            ));
        }
        let inputs: Vec<Reader<u64>> = merged.iter().map(Channel::reader).collect();
        let out = sink.writer();
        let merge_log = Arc::clone(&log);
        processes.push(process(async move {
            let result = async {
                let mut alt = Alternation::new();
                for input in &inputs {
                    alt = alt.input(input, |v| v);
                }
                loop {
                    let v = alt.fair_select().await?;
                    out.write(v).await?;
                }
            }
            .await;
            logged(&merge_log, "merge", result)
        }));
        processes.push(consumer(sink.reader(), Some(30), Arc::clone(&log)));
        drop((source, merged, sink));
        let results = Parallel::new(processes).scheduler(scheduler).run().unwrap();
        assert_eq!(results.last(), Some(&Some(30)));
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 5, "{scheduler:?}: {log:?}");
        assert!(
            log.iter().all(|(_, e)| *e == Error::Poisoned),
            "{scheduler:?}: {log:?}"
        );
    }
}

#[test]
fn a_panicking_process_poisons_its_channels_and_parallel_reports_the_panic() {
    for scheduler in SCHEDULERS {
        let log = Log::default();
        let (a, b) = (Channel::new(), Channel::new());
        let (input, out) = (a.reader(), b.writer());
        let crashing = process(async move {
            for _ in 0..5 {
                let x: u64 = input.read().await?;
                out.write(x).await?;
            }
            panic!("stage gave up");
        })
        .named("crashing stage");
        let processes = vec![
            producer(a.writer(), None, Arc::clone(&log)),
            crashing,
            consumer(b.reader(), None, Arc::clone(&log)),
        ];
        drop((a, b));
        let outcome = Parallel::new(processes).scheduler(scheduler).run();
        assert_eq!(
            outcome,
            Err(Error::Panicked {
                process: "crashing stage".into(),
                message: "stage gave up".into()
            }),
            "{scheduler:?}"
        );
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 2, "{scheduler:?}: {log:?}");
        assert!(
            log.iter().all(|(_, e)| *e == Error::Poisoned),
            "{scheduler:?}: {log:?}"
        );
    }
}

#[derive(Debug, thiserror::Error)]
#[error("bad input {0}")]
struct BadInput(u64);

#[test]
fn a_process_that_fails_with_its_own_error_stops_the_network_and_reports_it() {
    let log = Log::default();
    let ch = Channel::new();
    let input = ch.reader();
    let processes = vec![
        producer(ch.writer(), None, Arc::clone(&log)),
        process(async move {
            loop {
                let x = input.read().await?;
                if x == 3 {
                    return Err(Error::other(BadInput(x)));
                }
            }
        }),
    ];
    drop(ch);
    let error = Parallel::new(processes).run().unwrap_err();
    assert_eq!(error.to_string(), "bad input 3");
    assert_eq!(log.lock().unwrap()[0].1, Error::Poisoned);
}

#[test]
fn writer_poison_on_a_buffered_channel_delivers_what_was_buffered_first() {
    let ch = Channel::buffered(8);
    let (out, input) = (ch.writer(), ch.reader());
    let results = Parallel::new([
        process(async move {
            for i in 0..5u64 {
                out.write(i).await?;
            }
            out.poison();
            Ok(Vec::new())
        }),
        process(async move {
            let mut got = Vec::new();
            loop {
                match input.read().await {
                    Ok(v) => got.push(v),
                    Err(Error::Poisoned) => return Ok(got),
                    Err(e) => return Err(e),
                }
            }
        }),
    ])
    .run()
    .unwrap();
    assert_eq!(results[1], Some(vec![0, 1, 2, 3, 4]));
}
