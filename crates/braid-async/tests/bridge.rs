//! Bridges: any executor's Handle awaited without blocking the runtime, and blocking work
//! run on an executor from async code, never on the runtime's threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use braid_async::{HandleExt, run_fn_in_executor, run_in_executor, timeout, wrap_future};
use braid_core::{Error, Executor, TaskErrorKind, TaskRef};
use braid_sync::ThreadPool;

#[braid_core::task(name = "tests.async.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[braid_core::task(name = "tests.async.fails")]
fn fails(message: String) -> Result<u8, String> {
    Err(message)
}

#[tokio::test]
async fn a_registered_task_runs_on_the_executor() {
    let pool = ThreadPool::new(2).unwrap();
    assert_eq!(run_in_executor(&pool, add::task(), (2, 40)).await, Ok(42));
    match run_in_executor(&pool, fails::task(), ("no".to_string(),)).await {
        Err(Error::Task(e)) => {
            assert_eq!(e.kind, TaskErrorKind::Error);
            assert_eq!(e.message, "no");
        }
        other => panic!("expected the task's error, got {other:?}"),
    }
    let unknown: TaskRef<(i64,), i64> = TaskRef::new("tests.async.nobody");
    assert_eq!(
        run_in_executor(&pool, unknown, (1,)).await,
        Err(Error::UnknownTask("tests.async.nobody".into()))
    );
    pool.shutdown(true, false);
    assert_eq!(
        run_in_executor(&pool, add::task(), (1, 1)).await,
        Err(Error::Shutdown)
    );
}

#[tokio::test]
async fn blocking_work_never_runs_on_the_runtime_thread() {
    // The closure blocks its thread until an async task on this (single-threaded)
    // runtime sets the event: were it run on the runtime's thread, nothing could set it.
    let pool = ThreadPool::new(1).unwrap();
    let gate = Arc::new(braid_sync::Event::new());
    let runtime_thread = std::thread::current().id();
    let blocked = {
        let gate = gate.clone();
        run_fn_in_executor(&pool, move || {
            gate.wait();
            std::thread::current().id()
        })
    };
    let opener = tokio::spawn(async move {
        tokio::task::yield_now().await;
        gate.set();
    });
    let worker_thread = timeout(Duration::from_secs(30), blocked)
        .await
        .expect("the runtime kept running while the work blocked")
        .unwrap();
    opener.await.unwrap();
    assert_ne!(worker_thread, runtime_thread);
}

#[tokio::test]
async fn a_panic_is_the_futures_error_and_handles_convert() {
    let pool = ThreadPool::new(1).unwrap();
    let outcome = run_fn_in_executor(&pool, || -> u8 { panic!("boom") }).await;
    assert!(
        matches!(outcome, Err(Error::Task(e)) if e.kind == TaskErrorKind::Panic && e.message == "boom")
    );
    let handle = pool.submit_fn(|| "via handle").unwrap();
    assert_eq!(handle.into_async().await, Ok("via handle"));
    let done = braid_core::Handle::ready(Ok(5));
    assert_eq!(wrap_future(done).await, Ok(5));
}

#[tokio::test]
async fn dropping_the_future_cancels_work_not_started() {
    let pool = ThreadPool::new(1).unwrap();
    let gate = Arc::new(braid_sync::Event::new());
    let busy = {
        let gate = gate.clone();
        run_fn_in_executor(&pool, move || gate.wait())
    };
    let ran = Arc::new(AtomicBool::new(false));
    let queued = {
        let ran = ran.clone();
        run_fn_in_executor(&pool, move || ran.store(true, Ordering::SeqCst))
    };
    drop(queued); // still queued behind `busy`: cancelled
    let kept = {
        let ran = ran.clone();
        run_fn_in_executor(&pool, move || ran.load(Ordering::SeqCst))
    }
    .into_handle()
    .expect("the handle of a future not yet polled");
    gate.set();
    busy.await.unwrap();
    // The handle taken back was not cancelled; the dropped one never ran.
    assert_eq!(wrap_future(kept).await, Ok(false));
    pool.shutdown(true, false);
    assert!(!ran.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_handles_awaited_at_once() {
    let pool = ThreadPool::new(2).unwrap();
    let futures: Vec<_> = (0..200i64)
        .map(|i| run_in_executor(&pool, add::task(), (i, i)))
        .collect();
    let sums = braid_async::try_gather(futures).await.unwrap();
    assert_eq!(sums, (0..200).map(|i| 2 * i).collect::<Vec<_>>());
}
