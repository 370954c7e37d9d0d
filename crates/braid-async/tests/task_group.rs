//! TaskGroup: all joined, values in spawn order, the first failure cancels the rest,
//! every failure returned together, spawns from inside the group, no task outlives it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use braid_async::{Error, Event, TaskFailure, TaskGroup};

/// Counts drops: a cancelled task drops its future, and with it this.
struct DropCount(Arc<AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn values_come_back_in_spawn_order() {
    let mut group = TaskGroup::<u64, String>::new();
    for (i, nap) in [30u64, 10, 20].into_iter().enumerate() {
        let index = group.spawn(async move {
            tokio::time::sleep(Duration::from_millis(nap)).await;
            Ok(nap)
        });
        assert_eq!(index, i);
    }
    assert_eq!(group.len(), 3);
    assert_eq!(group.join().await, Ok(vec![30, 10, 20]));
    assert_eq!(TaskGroup::<u8, String>::new().join().await, Ok(vec![]));
}

#[tokio::test(start_paused = true)]
async fn the_first_failure_cancels_the_rest_and_join_waits_for_them() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let mut group = TaskGroup::new();
    for _ in 0..5 {
        let (dropped, finished) = (dropped.clone(), finished.clone());
        group.spawn(async move {
            let _guard = DropCount(dropped);
            tokio::time::sleep(Duration::from_secs(60)).await;
            finished.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    group.spawn(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Err("disk full")
    });
    let error = group.join().await.unwrap_err();
    assert_eq!(
        error.failures(),
        [TaskFailure::Failed {
            index: 5,
            error: "disk full"
        }]
    );
    assert_eq!(error.cancelled(), 5);
    // When join returns, every cancelled task is gone: none finished, all were dropped.
    assert_eq!(dropped.load(Ordering::SeqCst), 5);
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    assert!(error.to_string().contains("disk full"), "{error}");
}

#[tokio::test]
async fn every_failure_is_returned_together() {
    // Both fail before the group sees either: both are reported.
    let gate = Arc::new(Event::new());
    let mut group = TaskGroup::<(), String>::new();
    for name in ["a", "b"] {
        let gate = gate.clone();
        group.spawn(async move {
            gate.wait().await;
            Err(format!("{name} failed"))
        });
    }
    group.spawn(async { Ok(()) });
    gate.set();
    let error = group.join().await.unwrap_err();
    let mut errors: Vec<&String> = error.errors().collect();
    errors.sort();
    assert_eq!(errors, ["a failed", "b failed"]);
    assert_eq!(error.failures().len(), 2);
}

#[tokio::test]
async fn a_panic_is_a_failure_with_its_message() {
    let mut group = TaskGroup::<u8, String>::new();
    group.spawn(async { Ok(1) });
    group.spawn(async { panic!("deliberate panic in a task") });
    let error = group.join().await.unwrap_err();
    match &error.failures()[0] {
        TaskFailure::Panicked { index, message } => {
            assert_eq!(*index, 1);
            assert_eq!(message, "deliberate panic in a task");
        }
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_spawn_more_tasks_through_a_spawner() {
    let mut group = TaskGroup::<u64, Error>::new();
    let spawner = group.spawner();
    // A tree: each task below depth 3 spawns two children; 1 + 2 + 4 + 8 tasks.
    fn node(
        spawner: braid_async::TaskSpawner<u64, Error>,
        depth: u32,
    ) -> braid_core::BoxFuture<Result<u64, Error>> {
        Box::pin(async move {
            if depth < 3 {
                for _ in 0..2 {
                    spawner.spawn(node(spawner.clone(), depth + 1))?;
                }
            }
            Ok(u64::from(depth))
        })
    }
    group.spawn(node(spawner.clone(), 0));
    let depths = group.join().await.unwrap();
    assert_eq!(depths.len(), 15);
    assert_eq!(depths.iter().sum::<u64>(), 2 + 4 * 2 + 8 * 3);
    // The group has finished: later spawns are refused.
    assert_eq!(spawner.spawn(async { Ok(0) }), Err(Error::GroupClosed));
}

#[tokio::test(start_paused = true)]
async fn spawns_after_a_failure_are_refused() {
    let mut group = TaskGroup::<(), &str>::new();
    let spawner = group.spawner();
    let late = Arc::new(Event::new());
    group.spawn({
        let late = late.clone();
        async move {
            late.wait().await;
            Ok(())
        }
    });
    group.spawn(async { Err("first") });
    let error = group.join().await.unwrap_err();
    assert_eq!(error.failures().len(), 1);
    assert_eq!(spawner.spawn(async { Ok(()) }), Err(Error::GroupClosed));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_join_cancels_the_tasks() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut group = TaskGroup::<(), String>::new();
    for _ in 0..3 {
        let dropped = dropped.clone();
        group.spawn(async move {
            let _guard = DropCount(dropped);
            std::future::pending::<()>().await;
            Ok(())
        });
    }
    let spawner = group.spawner();
    let outcome = braid_async::timeout(Duration::from_secs(1), group.join()).await;
    assert!(matches!(outcome, Err(Error::Timeout(_))));
    // Aborted tasks are dropped when the runtime next runs them.
    while dropped.load(Ordering::SeqCst) < 3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(spawner.spawn(async { Ok(()) }), Err(Error::GroupClosed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_among_many_tasks_on_many_threads_ends_cleanly() {
    // Every task ends exactly once: a value, the failure, or a cancellation; the join
    // accounts for all of them and returns.
    let mut group = TaskGroup::<u32, u32>::new();
    for i in 0..5000u32 {
        group.spawn(async move {
            for _ in 0..(i % 5) {
                tokio::task::yield_now().await;
            }
            if i == 2500 { Err(i) } else { Ok(i) }
        });
    }
    let error = group.join().await.unwrap_err();
    assert_eq!(error.errors().copied().collect::<Vec<_>>(), [2500]);
    assert!(error.cancelled() < 5000);

    let mut group = TaskGroup::<u32, u32>::new();
    for i in 0..5000u32 {
        group.spawn(async move {
            tokio::task::yield_now().await;
            Ok(i)
        });
    }
    assert_eq!(group.join().await.unwrap(), (0..5000).collect::<Vec<_>>());
}
