//! Channels: rendezvous and buffered hand-over, any-to-any ends, retirement, poison, and
//! the bad uses that must fail with their errors.

use std::collections::BTreeSet;
use std::time::Duration;

use braid_csp::{Channel, Error, Parallel, Scheduler, process};

const SCHEDULERS: [Scheduler; 3] = [
    Scheduler::Cooperative,
    Scheduler::Threads,
    Scheduler::MultiThread { workers: 2 },
];

#[test]
fn a_write_on_an_unbuffered_channel_waits_for_the_reader() {
    let ch = Channel::new();
    let (out, input) = (ch.writer(), ch.reader());
    let writer = std::thread::spawn(move || {
        out.blocking_write(1u32).unwrap();
        // Returns only once the reader has the value.
        "written"
    });
    // Give the writer time to block: a rendezvous has nowhere to put the value.
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !writer.is_finished(),
        "an unbuffered write completed with no reader"
    );
    assert_eq!(input.blocking_read(), Ok(1));
    assert_eq!(writer.join().unwrap(), "written");
}

#[test]
fn a_buffered_channel_takes_writes_up_to_its_capacity_in_order() {
    let ch = Channel::buffered(3);
    let (out, input) = (ch.writer(), ch.reader());
    for i in 0..3u32 {
        out.blocking_write(i).unwrap();
    }
    let fourth = std::thread::spawn(move || out.blocking_write(3).map_err(|e| e.error));
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !fourth.is_finished(),
        "a write went past the buffer's capacity"
    );
    let read: Vec<u32> = (0..4).map(|_| input.blocking_read().unwrap()).collect();
    assert_eq!(read, [0, 1, 2, 3]);
    assert_eq!(fourth.join().unwrap(), Ok(()));
}

#[test]
fn any_to_any_ends_deliver_every_value_exactly_once() {
    for scheduler in SCHEDULERS {
        for capacity in [0, 4] {
            let ch = Channel::buffered(capacity);
            let mut processes = Vec::new();
            for w in 0..3u64 {
                let out = ch.writer();
                processes.push(process(async move {
                    for i in 0..200 {
                        out.write(w * 1000 + i).await?;
                    }
                    Ok(Vec::new())
                }));
            }
            let input = ch.reader();
            for _ in 0..2 {
                let input = input.clone(); // one more reader
                processes.push(process(async move {
                    let mut got = Vec::new();
                    loop {
                        match input.read().await {
                            Ok(v) => got.push(v),
                            Err(Error::Retired) => return Ok(got),
                            Err(e) => return Err(e),
                        }
                    }
                }));
            }
            drop((input, ch));
            let results = Parallel::new(processes).scheduler(scheduler).run().unwrap();
            let all: Vec<u64> = results.into_iter().flatten().flatten().collect();
            let distinct: BTreeSet<u64> = all.iter().copied().collect();
            assert_eq!(all.len(), 600, "{scheduler:?}, capacity {capacity}");
            assert_eq!(distinct.len(), 600, "{scheduler:?}, capacity {capacity}");
        }
    }
}

#[test]
fn reading_from_a_retired_channel_fails_with_retired() {
    let ch = Channel::<u32>::new();
    let (out, input) = (ch.writer(), ch.reader());
    out.retire();
    assert_eq!(input.blocking_read(), Err(Error::Retired));
    // The retired end itself refuses, with the value back.
    let refused = out.blocking_write(9).unwrap_err();
    assert_eq!((refused.error, refused.value), (Error::Retired, 9));
}

#[test]
fn writing_to_a_poisoned_channel_fails_with_poisoned_and_gives_the_value_back() {
    let ch = Channel::<String>::new();
    let (out, input) = (ch.writer(), ch.reader());
    input.poison();
    let refused = out.blocking_write("lost?".to_string()).unwrap_err();
    assert_eq!(refused.error, Error::Poisoned);
    assert_eq!(refused.into_inner(), "lost?");
    assert_eq!(input.blocking_read(), Err(Error::Poisoned));
    // Poisoning again is harmless; poison wins over a later retirement.
    out.poison();
    out.retire();
    assert_eq!(input.blocking_read(), Err(Error::Poisoned));
}

#[test]
fn a_channel_retires_only_when_every_writer_has() {
    let ch = Channel::<u32>::buffered(4);
    let first = ch.writer();
    let second = first.clone();
    let input = ch.reader();
    first.blocking_write(1).unwrap();
    first.retire();
    first.retire(); // twice is harmless
    assert!(first.is_retired());
    second.blocking_write(2).unwrap(); // the channel is still open
    drop(second); // dropping retires the last writer
    // Values written before retirement are still read, then Retired.
    assert_eq!(input.blocking_read(), Ok(1));
    assert_eq!(input.blocking_read(), Ok(2));
    assert_eq!(input.blocking_read(), Err(Error::Retired));
}

#[test]
fn a_channel_retires_when_every_reader_has_and_a_blocked_writer_wakes() {
    let ch = Channel::<u32>::new();
    let out = ch.writer();
    let (a, b) = (ch.reader(), ch.reader());
    let writer = std::thread::spawn(move || out.blocking_write(5).map_err(|e| (e.error, e.value)));
    std::thread::sleep(Duration::from_millis(10));
    a.retire();
    b.retire();
    assert_eq!(writer.join().unwrap(), Err((Error::Retired, 5)));
}

#[test]
fn blocked_readers_wake_on_poison() {
    let ch = Channel::<u32>::new();
    let (out, input) = (ch.writer(), ch.reader());
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let input = input.clone();
            std::thread::spawn(move || input.blocking_read())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(10));
    out.poison();
    for reader in readers {
        assert_eq!(reader.join().unwrap(), Err(Error::Poisoned));
    }
}

#[test]
fn a_channel_nobody_can_write_to_retires_instead_of_hanging() {
    let input = Channel::<u32>::new().reader();
    assert_eq!(input.blocking_read(), Err(Error::Retired));
    let out = Channel::<u32>::new().writer();
    assert_eq!(out.blocking_write(1).unwrap_err().error, Error::Retired);
}

#[test]
fn a_cancelled_read_gives_its_value_back_to_the_channel() {
    let ch = Channel::new();
    let (out, input) = (ch.writer(), ch.reader());
    // A read that blocks, is handed a value, and is dropped before it looks at it.
    let mut read = Box::pin(input.read());
    assert!(poll_once(read.as_mut()).is_none());
    out.blocking_write(7u32).unwrap(); // completes: the blocked read took the value
    drop(read);
    // The value went back into the channel, ahead of later ones.
    let later = std::thread::spawn(move || out.blocking_write(8));
    assert_eq!(input.blocking_read(), Ok(7));
    assert_eq!(input.blocking_read(), Ok(8));
    later.join().unwrap().unwrap();
}

#[test]
fn a_cancelled_write_is_not_delivered() {
    let ch = Channel::new();
    let (out, input) = (ch.writer(), ch.reader());
    let mut write = Box::pin(out.write(1u32));
    assert!(poll_once(write.as_mut()).is_none());
    drop(write);
    let later = std::thread::spawn(move || out.blocking_write(2));
    assert_eq!(input.blocking_read(), Ok(2));
    later.join().unwrap().unwrap();
}

/// Polls a future once with a waker that does nothing.
fn poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.poll(&mut cx) {
        std::task::Poll::Ready(value) => Some(value),
        std::task::Poll::Pending => None,
    }
}

#[test]
fn blocking_calls_inside_an_async_process_are_refused() {
    let ch = Channel::<u32>::buffered(1);
    let input = ch.reader();
    let results = Parallel::new([process(async move { Ok(input.blocking_read()) })])
        .run()
        .unwrap();
    assert_eq!(results, [Some(Err(Error::BlockingInScheduler))]);
}
