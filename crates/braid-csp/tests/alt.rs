//! Alternation: every guard kind, priority, fair and random selection over many rounds,
//! guards enabled per call, exactly-once actions, and alternations meeting each other.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use braid_csp::{Alternation, Channel, Error, Parallel, Reader, Scheduler, Writer, process};

/// Three buffered channels, each filled with `n` values (0 from the first channel, 1
/// from the second, 2 from the third), so that every input guard is always ready; with
/// their writers, which keep them open.
fn three_full_channels(n: usize) -> (Vec<Reader<usize>>, Vec<Writer<usize>>) {
    (0..3)
        .map(|i| {
            let ch = Channel::buffered(n);
            let out = ch.writer();
            for _ in 0..n {
                out.blocking_write(i).unwrap();
            }
            (ch.reader(), out)
        })
        .unzip()
}

fn counts(picks: impl IntoIterator<Item = usize>) -> [usize; 3] {
    let mut counts = [0; 3];
    for pick in picks {
        counts[pick] += 1;
    }
    counts
}

#[test]
fn priority_select_always_takes_the_first_ready_guard() {
    let (inputs, _writers) = three_full_channels(300);
    let mut alt = Alternation::new()
        .input(&inputs[0], |v| v)
        .input(&inputs[1], |v| v)
        .input(&inputs[2], |v| v);
    let picks: Vec<usize> = (0..300)
        .map(|_| alt.blocking_pri_select().unwrap())
        .collect();
    assert_eq!(counts(picks), [300, 0, 0]);
    // Once the first is empty, the second is the first ready one.
    assert_eq!(alt.blocking_select(), Ok(1));
}

#[test]
fn fair_select_gives_every_ready_guard_its_turn_over_many_rounds() {
    let (inputs, _writers) = three_full_channels(1000);
    let mut alt = Alternation::new()
        .input(&inputs[0], |v| v)
        .input(&inputs[1], |v| v)
        .input(&inputs[2], |v| v);
    let picks: Vec<usize> = (0..3000)
        .map(|_| alt.blocking_fair_select().unwrap())
        .collect();
    assert_eq!(counts(picks.iter().copied()), [1000, 1000, 1000]);
    // Strict rotation: no guard is chosen twice in a row while the others are ready.
    assert!(picks.windows(2).all(|w| w[0] != w[1]));
}

#[test]
fn random_select_spreads_the_choice() {
    let (inputs, _writers) = three_full_channels(3000);
    let mut alt = Alternation::new()
        .input(&inputs[0], |v| v)
        .input(&inputs[1], |v| v)
        .input(&inputs[2], |v| v);
    let picks: Vec<usize> = (0..3000)
        .map(|_| alt.blocking_random_select().unwrap())
        .collect();
    // Each expects 1000; below 700 is some 20 standard deviations away.
    for count in counts(picks) {
        assert!(count > 700, "{count}");
    }
}

#[test]
fn fair_select_between_live_writers_serves_every_one_in_turn() {
    // Three processes write as fast as they can; one merges with fair_select. On the
    // cooperative scheduler the interleaving is deterministic: each writer is waiting
    // again by the time its turn comes round.
    for scheduler in [Scheduler::Cooperative] {
        let channels: Vec<Channel<usize>> = (0..3).map(|_| Channel::new()).collect();
        let mut processes = Vec::new();
        for (i, ch) in channels.iter().enumerate() {
            let out = ch.writer();
            processes.push(process(async move {
                loop {
                    out.write(i).await?;
                }
            }));
        }
        let inputs: Vec<Reader<usize>> = channels.iter().map(Channel::reader).collect();
        processes.push(process(async move {
            let mut alt = Alternation::new()
                .input(&inputs[0], |v| v)
                .input(&inputs[1], |v| v)
                .input(&inputs[2], |v| v);
            let mut counts = [0; 3];
            for _ in 0..3000 {
                counts[alt.fair_select().await?] += 1;
            }
            inputs[0].poison();
            inputs[1].poison();
            inputs[2].poison();
            Ok(counts)
        }));
        drop(channels);
        let results = Parallel::new(processes).scheduler(scheduler).run().unwrap();
        assert_eq!(results[3], Some([1000, 1000, 1000]), "{scheduler:?}");
    }
}

#[test]
fn an_output_guard_writes_and_runs_its_action() {
    let ch = Channel::new();
    let (out, input) = (ch.writer(), ch.reader());
    let reader = std::thread::spawn(move || input.blocking_read());
    let mut alt = Alternation::new().output(&out, 42u32, || "sent");
    assert_eq!(alt.blocking_select(), Ok("sent"));
    assert_eq!(reader.join().unwrap(), Ok(42));
}

#[test]
fn a_timeout_guard_fires_when_nothing_else_is_ready() {
    let ch = Channel::<u32>::new();
    let (_out, input) = (ch.writer(), ch.reader());
    let start = Instant::now();
    let mut alt = Alternation::new()
        .input(&input, |_| "input")
        .timeout(Duration::from_millis(30), || "timeout");
    assert_eq!(alt.blocking_select(), Ok("timeout"));
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn a_ready_guard_beats_a_timeout_and_the_timeout_does_not_fire_later() {
    let ch = Channel::<u32>::buffered(1);
    let (out, input) = (ch.writer(), ch.reader());
    out.blocking_write(5).unwrap();
    let timeouts = AtomicUsize::new(0);
    let mut alt = Alternation::new()
        .timeout(Duration::from_millis(5), || {
            timeouts.fetch_add(1, Ordering::SeqCst);
            0
        })
        .input(&input, |v| v);
    assert_eq!(alt.blocking_fair_select(), Ok(5));
    std::thread::sleep(Duration::from_millis(20));
    drop(alt);
    assert_eq!(timeouts.load(Ordering::SeqCst), 0);
}

#[test]
fn a_skip_guard_never_waits_and_loses_to_a_ready_guard_before_it() {
    let ch = Channel::<u32>::buffered(1);
    let (out, input) = (ch.writer(), ch.reader());
    let mut alt = Alternation::new().input(&input, Some).skip(|| None);
    assert_eq!(alt.blocking_pri_select(), Ok(None));
    out.blocking_write(3).unwrap();
    assert_eq!(alt.blocking_pri_select(), Ok(Some(3)));
}

#[test]
fn disabled_guards_are_not_offered_and_all_disabled_is_an_error() {
    let (inputs, _writers) = three_full_channels(10);
    let mut alt = Alternation::new()
        .input(&inputs[0], |v| v)
        .input(&inputs[1], |v| v)
        .input(&inputs[2], |v| v);
    alt.set_enabled(0, false);
    assert!(!alt.is_enabled(0));
    assert_eq!(alt.blocking_pri_select(), Ok(1));
    alt.set_enabled(1, false).set_enabled(2, false);
    assert_eq!(alt.blocking_pri_select(), Err(Error::NoGuardEnabled));
    alt.set_enabled(0, true);
    assert_eq!(alt.blocking_pri_select(), Ok(0));
}

#[test]
fn a_poisoned_guard_fails_the_select_and_names_the_guard() {
    let (a, b) = (Channel::<u32>::new(), Channel::<u32>::buffered(1));
    let (a_in, b_in) = (a.reader(), b.reader());
    let b_out = b.writer();
    a.writer().poison();
    let mut alt = Alternation::new().input(&b_in, |v| v).input(&a_in, |v| v);
    assert_eq!(alt.blocking_select(), Err(Error::Poisoned));
    assert_eq!(alt.failed_guard(), Some(1));
    // A server disables the dead guard and goes on.
    alt.set_enabled(1, false);
    b_out.blocking_write(8).unwrap();
    assert_eq!(alt.blocking_select(), Ok(8));
    assert_eq!(alt.failed_guard(), None);
}

#[test]
fn a_waiting_select_wakes_when_a_guard_channel_is_retired() {
    let ch = Channel::<u32>::new();
    let (out, input) = (ch.writer(), ch.reader());
    let retirer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        out.retire();
    });
    let mut alt = Alternation::new().input(&input, |v| v);
    assert_eq!(alt.blocking_select(), Err(Error::Retired));
    retirer.join().unwrap();
}

#[test]
fn each_action_runs_exactly_once_per_select_and_every_value_arrives_once() {
    for scheduler in [Scheduler::Cooperative, Scheduler::Threads] {
        let (a, b) = (Channel::new(), Channel::new());
        let (a_out, b_out) = (a.writer(), b.writer());
        let (a_in, b_in) = (a.reader(), b.reader());
        drop((a, b));
        let results = Parallel::new([
            process(async move {
                for i in 0..500u64 {
                    a_out.write(i).await?;
                }
                Ok(Vec::new())
            }),
            process(async move {
                for i in 500..1000u64 {
                    b_out.write(i).await?;
                }
                Ok(Vec::new())
            }),
            process(async move {
                let mut got = Vec::new();
                let mut actions = 0;
                {
                    let mut alt = Alternation::new()
                        .input(&a_in, |v| {
                            actions += 1;
                            v
                        })
                        .input(&b_in, |v| v);
                    // A writer that is done retires its channel: the select fails on
                    // that guard, which the reader then disables (a server's idiom).
                    while got.len() < 1000 {
                        match alt.random_select().await {
                            Ok(v) => got.push(v),
                            Err(Error::Retired) => {
                                let done = alt.failed_guard().expect("a guard failed");
                                alt.set_enabled(done, false);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                assert_eq!(actions, 500);
                Ok(got)
            }),
        ])
        .scheduler(scheduler)
        .run()
        .unwrap();
        let mut got = results[2].clone().unwrap();
        got.sort_unstable();
        assert_eq!(got, (0..1000).collect::<Vec<u64>>(), "{scheduler:?}");
    }
}

#[test]
fn an_output_alternation_meets_an_input_alternation() {
    // Both sides choose: the writer offers on two channels, the reader waits on both.
    for scheduler in [
        Scheduler::Cooperative,
        Scheduler::Threads,
        Scheduler::MultiThread { workers: 2 },
    ] {
        let (a, b) = (Channel::new(), Channel::new());
        let (a_out, b_out, a_in, b_in) = (a.writer(), b.writer(), a.reader(), b.reader());
        drop((a, b));
        let results = Parallel::new([
            process(async move {
                let mut sent = 0u64;
                for i in 0..300u64 {
                    let mut alt =
                        Alternation::new()
                            .output(&a_out, i, || 'a')
                            .output(&b_out, i, || 'b');
                    alt.fair_select().await?;
                    sent += i;
                }
                Ok(sent)
            }),
            process(async move {
                let mut alt = Alternation::new().input(&a_in, |v| v).input(&b_in, |v| v);
                let mut received = 0;
                for _ in 0..300 {
                    received += alt.fair_select().await?;
                }
                Ok(received)
            }),
        ])
        .scheduler(scheduler)
        .run()
        .unwrap();
        assert_eq!(results[0], results[1], "{scheduler:?}");
        assert_eq!(results[0], Some((0..300).sum()));
    }
}

#[test]
fn a_select_with_both_input_and_output_on_one_channel_does_not_meet_itself() {
    let ch = Channel::<u32>::new();
    let (out, input) = (ch.writer(), ch.reader());
    let mut alt = Alternation::new()
        .output(&out, 1, || "wrote")
        .input(&input, |_| "read")
        .timeout(Duration::from_millis(10), || "timeout");
    assert_eq!(alt.blocking_select(), Ok("timeout"));
}

#[test]
fn a_cancelled_select_leaves_the_channels_as_they_were() {
    let ch = Channel::<u32>::new();
    let (out, input) = (ch.writer(), ch.reader());
    {
        let mut alt = Alternation::new().input(&input, |v| v);
        let mut select = Box::pin(alt.select());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(select.as_mut().poll(&mut cx).is_pending());
        out.blocking_write(11).unwrap(); // taken by the waiting select
    } // dropped before it saw the value: the value goes back
    assert_eq!(input.blocking_read(), Ok(11));
}

#[test]
fn a_process_polling_with_a_skip_guard_lets_the_others_run() {
    // On the cooperative scheduler the poller's selects complete at once; it must still
    // yield now and then, or the writer would never run and it would spin for ever.
    let ch = Channel::new();
    let (out, input) = (ch.writer(), ch.reader());
    let results = Parallel::new([
        process(async move {
            out.write(1u32).await?;
            Ok(0)
        }),
        process(async move {
            let mut alt = Alternation::new().input(&input, Some).skip(|| None);
            loop {
                if let Some(v) = alt.pri_select().await? {
                    return Ok(v);
                }
            }
        }),
    ])
    .run()
    .unwrap();
    assert_eq!(results, [Some(0), Some(1)]);
}
