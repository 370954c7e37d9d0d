//! gather (both modes, in place and spawned), wait (every ReturnWhen, time-outs),
//! as_completed, timeout and shield, on tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use braid_async::{
    Error, ReturnWhen, as_completed, gather, gather_tasks, shield, timeout, timeout_at, try_gather,
    wait,
};
use tokio::time::{Instant, sleep};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Sleeps `s` seconds, then returns `s` (or an error for an odd `s` when `odd_fails`).
async fn nap(s: u64, odd_fails: bool) -> Result<u64, String> {
    sleep(secs(s)).await;
    if odd_fails && s % 2 == 1 {
        Err(format!("{s} is odd"))
    } else {
        Ok(s)
    }
}

#[tokio::test(start_paused = true)]
async fn gather_runs_concurrently_and_keeps_input_order() {
    let start = Instant::now();
    let out = gather([3, 1, 2].map(|s| nap(s, false))).await;
    assert_eq!(out, [Ok(3), Ok(1), Ok(2)]);
    assert_eq!(
        start.elapsed(),
        secs(3),
        "concurrent: the longest, not the sum"
    );
    let none: Vec<u8> = gather(Vec::<std::future::Ready<u8>>::new()).await;
    assert!(none.is_empty());
}

#[tokio::test(start_paused = true)]
async fn gather_returns_errors_in_place_and_try_gather_stops_at_the_first() {
    let out = gather([2, 1, 4, 3].map(|s| nap(s, true))).await;
    assert_eq!(
        out,
        [
            Ok(2),
            Err("1 is odd".to_string()),
            Ok(4),
            Err("3 is odd".to_string())
        ]
    );
    let start = Instant::now();
    assert_eq!(
        try_gather([2, 5, 4].map(|s| nap(s, true))).await,
        Err("5 is odd".to_string())
    );
    assert_eq!(start.elapsed(), secs(5));
    let start = Instant::now();
    let first_error = try_gather([10, 1].map(|s| nap(s, true))).await;
    assert_eq!(first_error, Err("1 is odd".to_string()));
    assert_eq!(start.elapsed(), secs(1), "returns at the first error");
    assert_eq!(
        try_gather([2, 4].map(|s| nap(s, true))).await,
        Ok(vec![2, 4])
    );
}

#[tokio::test(start_paused = true)]
async fn gather_mixes_ready_and_pending_futures() {
    // Futures ready at their first poll and futures that wait, interleaved; and many
    // that yield, each woken on its own.
    let out = gather((0..10u64).map(|i| async move {
        if i % 3 == 0 {
            sleep(secs(i)).await;
        }
        i
    }))
    .await;
    assert_eq!(out, (0..10).collect::<Vec<_>>());
    let many = gather((0..5000u64).map(|i| async move {
        for _ in 0..i % 4 {
            tokio::task::yield_now().await;
        }
        i
    }))
    .await;
    assert_eq!(many, (0..5000).collect::<Vec<_>>());
    assert_eq!(
        try_gather((0..100u64).map(|i| async move {
            tokio::task::yield_now().await;
            if i == 70 { Err(i) } else { Ok(i) }
        }))
        .await,
        Err(70)
    );
}

#[tokio::test(start_paused = true)]
async fn gather_borrows_and_needs_no_send() {
    let shared = std::rc::Rc::new(std::cell::Cell::new(0));
    gather((0..5).map(|_| {
        let shared = shared.clone();
        async move { shared.set(shared.get() + 1) }
    }))
    .await;
    assert_eq!(shared.get(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_tasks_spawns_and_reports_panics_in_place() {
    let out = gather_tasks((0..4u32).map(|i| async move {
        if i == 2 {
            panic!("task two panics");
        }
        i * 10
    }))
    .await;
    assert_eq!(out[0], Ok(0));
    assert_eq!(out[1], Ok(10));
    assert_eq!(out[2], Err(Error::Panicked("task two panics".into())));
    assert_eq!(out[3], Ok(30));
}

#[tokio::test(start_paused = true)]
async fn cancelling_gather_tasks_aborts_the_tasks() {
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let outcome = timeout(
        secs(1),
        gather_tasks([async move {
            sleep(secs(10)).await;
            flag.store(true, Ordering::SeqCst);
        }]),
    )
    .await;
    assert!(outcome.is_err());
    sleep(secs(20)).await;
    assert!(!finished.load(Ordering::SeqCst), "the task was aborted");
}

fn boxed(s: u64, odd_fails: bool) -> std::pin::Pin<Box<impl Future<Output = Result<u64, String>>>> {
    Box::pin(nap(s, odd_fails))
}

#[tokio::test(start_paused = true)]
async fn wait_first_completed() {
    let start = Instant::now();
    let waited = wait(
        [3, 1, 2].map(|s| boxed(s, false)),
        ReturnWhen::FirstCompleted,
        None,
    )
    .await;
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(waited.done, [(1, Ok(1))]);
    let pending: Vec<usize> = waited.pending.iter().map(|(i, _)| *i).collect();
    assert_eq!(pending, [0, 2]);
    // The pending futures are intact: wait on them again.
    let rest = wait(
        waited.pending.into_iter().map(|(_, f)| f),
        ReturnWhen::AllCompleted,
        None,
    )
    .await;
    assert_eq!(rest.done, [(0, Ok(3)), (1, Ok(2))]);
    assert!(rest.pending.is_empty());
    assert_eq!(start.elapsed(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn wait_first_exception_and_all_completed() {
    let start = Instant::now();
    let waited = wait(
        [4, 3, 2, 10].map(|s| boxed(s, true)),
        ReturnWhen::FirstException,
        None,
    )
    .await;
    assert_eq!(start.elapsed(), secs(3));
    assert_eq!(waited.done, [(1, Err("3 is odd".into())), (2, Ok(2))]);
    assert_eq!(waited.pending.len(), 2);

    // With no failure, FIRST_EXCEPTION waits for all.
    let waited = wait(
        [2, 4].map(|s| boxed(s, true)),
        ReturnWhen::FirstException,
        None,
    )
    .await;
    assert_eq!(waited.done, [(0, Ok(2)), (1, Ok(4))]);

    let waited = wait(
        [2, 1].map(|s| boxed(s, false)),
        ReturnWhen::AllCompleted,
        None,
    )
    .await;
    assert_eq!(waited.done, [(0, Ok(2)), (1, Ok(1))]);
}

#[tokio::test(start_paused = true)]
async fn wait_times_out_without_cancelling() {
    let start = Instant::now();
    let waited = wait(
        [1, 5, 10].map(|s| boxed(s, false)),
        ReturnWhen::AllCompleted,
        Some(secs(3)),
    )
    .await;
    assert_eq!(start.elapsed(), secs(3));
    assert_eq!(waited.done, [(0, Ok(1))]);
    assert_eq!(waited.pending.len(), 2);
    let mut later = Vec::new();
    for (_, future) in waited.pending {
        later.push(future.await);
    }
    assert_eq!(later, [Ok(5), Ok(10)]);
    assert_eq!(start.elapsed(), secs(10));
}

#[tokio::test(start_paused = true)]
async fn wait_on_spawned_tasks() {
    let tasks = [2u64, 1].map(|s| tokio::spawn(nap(s, false)));
    let waited = wait(tasks, ReturnWhen::FirstCompleted, None).await;
    assert_eq!(waited.done.len(), 1);
    assert_eq!(waited.done[0].0, 1);
    assert!(matches!(&waited.done[0].1, Ok(Ok(1))));
}

#[tokio::test(start_paused = true)]
async fn as_completed_yields_in_finishing_order_and_survives_a_timeout() {
    let mut stream = as_completed([30, 10, 20].map(|s| boxed(s, false)));
    assert_eq!(stream.len(), 3);
    assert_eq!(stream.next().await, Some(Ok(10)));
    // Python's as_completed(timeout=...): time out the next item; nothing is lost.
    assert!(timeout(secs(5), stream.next()).await.is_err());
    assert_eq!(stream.next().await, Some(Ok(20)));
    let pending = stream.into_pending();
    assert_eq!(pending.len(), 1);
    let mut stream = as_completed(pending);
    assert_eq!(stream.next().await, Some(Ok(30)));
    assert_eq!(stream.next().await, None);
    assert!(stream.is_empty());
}

#[tokio::test(start_paused = true)]
async fn timeout_and_timeout_at() {
    assert_eq!(timeout(secs(2), nap(1, false)).await, Ok(Ok(1)));
    assert_eq!(
        timeout(secs(2), nap(3, false)).await,
        Err(Error::Timeout(secs(2)))
    );
    let deadline = Instant::now() + secs(4);
    assert_eq!(
        timeout_at(deadline, nap(5, false)).await,
        Err(Error::Timeout(secs(4)))
    );
}

#[tokio::test(start_paused = true)]
async fn shield_keeps_the_work_going_when_the_waiter_is_cancelled() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let mut work = shield(async move {
        sleep(secs(5)).await;
        counter.fetch_add(1, Ordering::SeqCst);
        "saved"
    });
    assert!(timeout(secs(1), &mut work).await.is_err());
    assert!(!work.is_finished());
    assert_eq!(work.await, Ok("saved"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // Dropping the Shielded does not stop the work either.
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    drop(shield(async move {
        sleep(secs(1)).await;
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    sleep(secs(2)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let aborted = shield(std::future::pending::<()>());
    aborted.abort();
    assert_eq!(aborted.await, Err(Error::Cancelled));
}
