//! ThreadPool: closures, registered tasks, map, cancellation, shutdown, initializers.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use braid_core::{Executor, ExecutorExt, ReturnWhen, Status, TaskErrorKind, as_completed, wait};
use braid_sync::{Event, Lock, ThreadPool, current};

#[braid_core::task(name = "sync_test.square")]
fn square(x: u64) -> u64 {
    x * x
}

#[braid_core::task(name = "sync_test.fail_on_three")]
fn fail_on_three(x: u64) -> u64 {
    assert_ne!(x, 3, "three is not allowed");
    x
}

/// A pool whose single worker is busy until the returned event is set.
fn blocked_pool() -> (ThreadPool, Arc<Event>, braid_core::Handle<&'static str>) {
    let pool = ThreadPool::new(1).unwrap();
    let started = Arc::new(Event::new());
    let gate = Arc::new(Event::new());
    let (s, g) = (started.clone(), gate.clone());
    let blocker = pool
        .submit_fn(move || {
            s.set();
            g.wait();
            "blocker"
        })
        .unwrap();
    started.wait();
    (pool, gate, blocker)
}

#[test]
fn submit_fn_returns_the_value() {
    let pool = ThreadPool::new(2).unwrap();
    assert_eq!(pool.max_workers(), 2);
    assert_eq!(pool.parallelism(), 2);
    let h = pool.submit_fn(|| 6 * 7).unwrap();
    assert_eq!(h.result(), Ok(42));
}

#[test]
fn zero_workers_means_one_per_cpu() {
    let pool = ThreadPool::new(0).unwrap();
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(pool.max_workers(), cpus);
}

#[test]
fn worker_names_use_the_prefix() {
    let default = ThreadPool::new(1).unwrap();
    assert_eq!(
        default
            .submit_fn(|| current().name)
            .unwrap()
            .result()
            .unwrap(),
        "ThreadPool_0"
    );
    // Every worker runs the initializer once: collect their names there.
    let names = Arc::new(Lock::new(HashSet::new()));
    let n = names.clone();
    let pool = ThreadPool::builder()
        .max_workers(3)
        .thread_name_prefix("crunch")
        .initializer(move || {
            n.acquire().insert(current().name);
        })
        .build()
        .unwrap();
    drop(pool);
    let names = names.acquire().clone();
    let expected: HashSet<String> = (0..3).map(|i| format!("crunch_{i}")).collect();
    assert_eq!(names, expected);
}

#[test]
fn a_panicking_closure_is_a_task_error_and_the_worker_lives() {
    let pool = ThreadPool::new(1).unwrap();
    let h = pool
        .submit_fn(|| -> u8 { panic!("closure blew up") })
        .unwrap();
    match h.result() {
        Err(braid_core::Error::Task(e)) => {
            assert_eq!(e.kind, TaskErrorKind::Panic);
            assert_eq!(e.message, "closure blew up");
        }
        other => panic!("expected a task error, got {other:?}"),
    }
    assert_eq!(
        pool.submit_fn(|| 1).unwrap().result(),
        Ok(1),
        "the worker lives"
    );
}

#[test]
fn registered_tasks_run_through_executor_ext() {
    let pool = ThreadPool::new(2).unwrap();
    let h = pool.submit(square::task(), (9,)).unwrap();
    assert_eq!(h.result(), Ok(81));
    for chunksize in [1, 7] {
        let squares: Vec<u64> = pool
            .map(square::task(), (0..50u64).map(|x| (x,)), chunksize)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(squares, (0..50u64).map(|x| x * x).collect::<Vec<_>>());
    }
    // One failing item does not stop the others.
    let results: Vec<_> = pool
        .map(fail_on_three::task(), (0..5u64).map(|x| (x,)), 2)
        .collect();
    assert_eq!(results.len(), 5);
    assert!(
        matches!(&results[3], Err(braid_core::Error::Task(e)) if e.kind == TaskErrorKind::Panic)
    );
    assert_eq!(results[4], Ok(4));
}

#[test]
fn as_completed_and_wait_work_on_pool_handles() {
    let pool = ThreadPool::new(2).unwrap();
    let handles: Vec<_> = (0..10u64)
        .map(|x| pool.submit(square::task(), (x,)).unwrap())
        .collect();
    let mut total = 0;
    for h in as_completed(handles) {
        total += h.unwrap().result().unwrap();
    }
    assert_eq!(total, (0..10u64).map(|x| x * x).sum::<u64>());

    let (pool1, gate, blocker) = blocked_pool();
    let quick = pool.submit_fn(|| "quick").unwrap();
    let waited = wait(
        [blocker, quick],
        Some(Duration::from_secs(60)),
        ReturnWhen::FirstCompleted,
    );
    assert_eq!(waited.done.len(), 1);
    assert_eq!(waited.not_done.len(), 1);
    gate.set();
    let waited = wait(waited.not_done, None, ReturnWhen::AllCompleted);
    assert_eq!(waited.done.len(), 1);
    drop(pool1);
}

#[test]
fn map_fn_is_ordered_lazy_and_bounded() {
    let pool = ThreadPool::new(2).unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let mut results = pool.map_fn(
        move |x: u64| {
            s.fetch_add(1, Ordering::SeqCst);
            x * 10
        },
        0..,
    );
    assert_eq!(
        started.load(Ordering::SeqCst),
        0,
        "nothing before the first next"
    );
    assert_eq!(results.next(), Some(Ok(0)));
    assert_eq!(results.next(), Some(Ok(10)));
    // At most 2 × workers submitted ahead of what was consumed.
    assert!(started.load(Ordering::SeqCst) <= 2 + 4);
    drop(results);
    let v: Vec<_> = pool
        .map_fn(|x: i32| if x == 2 { panic!("two") } else { x }, 0..4)
        .collect();
    assert_eq!(v[0], Ok(0));
    assert!(matches!(v[2], Err(braid_core::Error::Task(_))));
    assert_eq!(v[3], Ok(3));
}

#[test]
fn dropping_map_fn_cancels_items_not_started() {
    let pool = ThreadPool::new(2).unwrap();
    // Worker B is busy with a blocker; worker A will be stuck on item 1.
    let blocker_started = Arc::new(Event::new());
    let gate = Arc::new(Event::new());
    let (s, g) = (blocker_started.clone(), gate.clone());
    let blocker = pool
        .submit_fn(move || {
            s.set();
            g.wait();
        })
        .unwrap();
    blocker_started.wait();
    let ran = Arc::new(Lock::new(Vec::new()));
    let (r, g) = (ran.clone(), gate.clone());
    let mut it = pool.map_fn(
        move |x: u64| {
            r.acquire().push(x);
            if x == 1 {
                g.wait();
            }
            x
        },
        0..4,
    );
    // Submits items 0..4 (2 × 2 workers ahead) and returns item 0's result.
    assert_eq!(it.next(), Some(Ok(0)));
    // Items 2 and 3 are queued behind item 1, which cannot finish before the gate opens.
    drop(it);
    gate.set();
    blocker.result().unwrap();
    drop(pool);
    let ran = ran.acquire().clone();
    assert!(!ran.contains(&2) && !ran.contains(&3), "ran {ran:?}");
}

#[test]
fn cancel_of_queued_work_through_the_handle() {
    let (pool, gate, blocker) = blocked_pool();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let queued = pool
        .submit_fn(move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    assert_eq!(queued.status(), Status::Pending);
    assert!(queued.cancel());
    gate.set();
    assert_eq!(blocker.result(), Ok("blocker"));
    assert_eq!(queued.result(), Err(braid_core::Error::Cancelled));
    drop(pool);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "a cancelled closure never runs"
    );
}

#[test]
fn shutdown_cancel_pending_cancels_queued_work() {
    let (pool, gate, blocker) = blocked_pool();
    let queued: Vec<_> = (0..5).map(|i| pool.submit_fn(move || i).unwrap()).collect();
    let job = pool.submit(square::task(), (3,)).unwrap();
    pool.shutdown(false, true);
    assert_eq!(
        pool.submit_fn(|| 0).unwrap_err(),
        braid_core::Error::Shutdown
    );
    assert_eq!(
        pool.submit(square::task(), (1,)).unwrap_err(),
        braid_core::Error::Shutdown
    );
    for h in queued {
        assert_eq!(h.status(), Status::Cancelled);
        assert_eq!(h.result(), Err(braid_core::Error::Cancelled));
    }
    assert!(job.is_cancelled());
    assert_eq!(job.result(), Err(braid_core::Error::Cancelled));
    gate.set();
    assert_eq!(blocker.result(), Ok("blocker"), "running work finishes");
    pool.shutdown(true, false); // again: harmless, waits for the workers
    assert!(pool.is_shutdown());
}

#[test]
fn shutdown_without_cancel_runs_the_queue() {
    let (pool, gate, _blocker) = blocked_pool();
    let queued: Vec<_> = (0..5).map(|i| pool.submit_fn(move || i).unwrap()).collect();
    pool.shutdown(false, false);
    gate.set();
    pool.shutdown(true, false);
    let values: Vec<_> = queued.into_iter().map(|h| h.result().unwrap()).collect();
    assert_eq!(values, [0, 1, 2, 3, 4]);
}

#[test]
fn drop_waits_for_queued_work() {
    let done = Arc::new(AtomicUsize::new(0));
    let pool = ThreadPool::new(2).unwrap();
    for _ in 0..20 {
        let d = done.clone();
        pool.submit_fn(move || {
            d.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    drop(pool);
    assert_eq!(done.load(Ordering::SeqCst), 20);
}

#[test]
fn shutdown_from_a_worker_does_not_deadlock() {
    let pool = Arc::new(ThreadPool::new(1).unwrap());
    let p = pool.clone();
    let h = pool
        .submit_fn(move || {
            p.shutdown(true, false);
            p.is_shutdown()
        })
        .unwrap();
    assert_eq!(h.result(), Ok(true));
    assert_eq!(
        pool.submit_fn(|| ()).unwrap_err(),
        braid_core::Error::Shutdown
    );
}

#[test]
fn initializer_runs_once_per_worker() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let pool = ThreadPool::builder()
        .max_workers(4)
        .initializer(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let handles: Vec<_> = (0..40)
        .map(|i| pool.submit_fn(move || i).unwrap())
        .collect();
    for h in handles {
        h.result().unwrap();
    }
    drop(pool);
    assert_eq!(count.load(Ordering::SeqCst), 4);
}

#[test]
fn a_panicking_initializer_breaks_the_pool_without_hanging() {
    let pool = ThreadPool::builder()
        .max_workers(2)
        .initializer(|| panic!("no database"))
        .build()
        .unwrap();
    let is_broken = |e: &braid_core::Error| matches!(e, braid_core::Error::WorkerLost(m) if m == "initializer panicked: no database");
    // Submitted before or after the workers noticed: either refused or failed, never run.
    for _ in 0..5 {
        match pool.submit_fn(|| 1) {
            Ok(h) => {
                let e = h.result().unwrap_err();
                assert!(is_broken(&e), "{e:?}");
            }
            Err(e) => assert!(is_broken(&e), "{e:?}"),
        }
    }
    match pool.submit(square::task(), (2,)) {
        Ok(h) => assert!(is_broken(&h.result().unwrap_err())),
        Err(e) => assert!(is_broken(&e), "{e:?}"),
    }
    let e = pool.submit_fn(|| 1).unwrap_err();
    assert!(is_broken(&e), "once broken, submissions are refused: {e:?}");
    assert!(format!("{pool:?}").contains("is_broken: true"));
}
