//! Event, Condition, Semaphore, BoundedSemaphore and Barrier: Python's contracts, and what
//! cancelling each wait does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use braid_async::{Barrier, BoundedSemaphore, Condition, Error, Event, Semaphore, gather, timeout};

#[tokio::test]
async fn event_set_wakes_every_waiter_and_clear_rearms() {
    let event = Arc::new(Event::new());
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let event = event.clone();
            tokio::spawn(async move { event.wait().await })
        })
        .collect();
    tokio::task::yield_now().await;
    assert!(waiters.iter().all(|w| !w.is_finished()));
    event.set();
    // A waiter woken by set returns even if the flag is cleared before it runs.
    event.clear();
    for waiter in waiters {
        waiter.await.unwrap();
    }
    assert!(!event.is_set());
    event.set();
    event.wait().await; // set: returns at once
}

#[tokio::test(start_paused = true)]
async fn event_wait_timeout_and_cancel_leave_no_trace() {
    let event = Event::new();
    assert_eq!(
        event.wait_timeout(Duration::from_secs(5)).await,
        Err(Error::Timeout(Duration::from_secs(5)))
    );
    // A cancelled wait does not stop a later one from seeing a set.
    assert!(timeout(Duration::from_secs(1), event.wait()).await.is_err());
    event.set();
    assert_eq!(event.wait_timeout(Duration::from_secs(1)).await, Ok(()));
}

#[tokio::test]
async fn condition_notify_one_notify_n_notify_all() {
    let cond = Arc::new(Condition::new(0u32));
    let woken = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (cond, woken) = (cond.clone(), woken.clone());
            tokio::spawn(async move {
                let guard = cond.lock().await;
                let guard = guard.wait().await;
                woken.fetch_add(1, Ordering::SeqCst);
                *guard
            })
        })
        .collect();
    while cond.waiting() < 4 {
        tokio::task::yield_now().await;
    }
    // With nobody waiting a notify is lost, not stored.
    assert!(cond.notify_one());
    while woken.load(Ordering::SeqCst) < 1 {
        tokio::task::yield_now().await;
    }
    assert_eq!(cond.notify(2), 2);
    *cond.lock().await = 5;
    assert_eq!(cond.notify_all(), 1);
    let mut seen = Vec::new();
    for waiter in waiters {
        seen.push(waiter.await.unwrap());
    }
    assert_eq!(woken.load(Ordering::SeqCst), 4);
    assert_eq!(cond.notify_all(), 0);
    assert!(seen.contains(&5));
}

#[tokio::test]
async fn condition_wait_for_sees_the_predicate_hold() {
    let jobs = Arc::new(Condition::new(Vec::<u32>::new()));
    let consumer = tokio::spawn({
        let jobs = jobs.clone();
        async move {
            let mut got = Vec::new();
            while got.len() < 10 {
                let mut jobs = jobs.lock().await.wait_for(|j| !j.is_empty()).await;
                got.append(&mut jobs);
            }
            got
        }
    });
    for n in 0..10 {
        jobs.lock().await.push(n);
        jobs.notify_one();
        tokio::task::yield_now().await;
    }
    assert_eq!(consumer.await.unwrap(), (0..10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn condition_timeouts_return_the_guard() {
    let cond = Condition::new(1u8);
    let (guard, notified) = cond.lock().await.wait_timeout(Duration::from_secs(1)).await;
    assert!(!notified);
    assert_eq!(*guard, 1);
    let (guard, holds) = guard
        .wait_for_timeout(Duration::from_secs(1), |v| *v == 2)
        .await;
    assert!(!holds);
    drop(guard);
    let (_guard, holds) = cond
        .lock()
        .await
        .wait_for_timeout(Duration::from_secs(1), |v| *v == 1)
        .await;
    assert!(holds);
}

#[tokio::test]
async fn a_cancelled_condition_waiter_hands_its_notify_on() {
    let cond = Arc::new(Condition::new(()));
    // The first waiter is notified, then cancelled before it runs: the second waiter must
    // get the wake-up instead.
    let first = tokio::spawn({
        let cond = cond.clone();
        async move { drop(cond.lock().await.wait().await) }
    });
    while cond.waiting() < 1 {
        tokio::task::yield_now().await;
    }
    let second = tokio::spawn({
        let cond = cond.clone();
        async move { drop(cond.lock().await.wait().await) }
    });
    while cond.waiting() < 2 {
        tokio::task::yield_now().await;
    }
    assert!(cond.notify_one());
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    timeout(Duration::from_secs(10), second)
        .await
        .expect("the notify was handed on")
        .unwrap();
}

#[tokio::test]
async fn semaphore_limits_and_release_adds() {
    let slots = Semaphore::new(2);
    let inside = AtomicUsize::new(0);
    let most = AtomicUsize::new(0);
    gather((0..10).map(|_| async {
        let _permit = slots.acquire().await;
        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        tokio::task::yield_now().await;
        inside.fetch_sub(1, Ordering::SeqCst);
    }))
    .await;
    assert_eq!(most.load(Ordering::SeqCst), 2);
    assert_eq!(slots.available(), 2);

    // Used as a signal: hold, then release elsewhere.
    slots.hold().await;
    slots.try_acquire().unwrap().forget();
    assert!(slots.is_locked());
    slots.release(3);
    assert_eq!(slots.available(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_acquire_takes_no_permit() {
    let slots = Semaphore::new(1);
    let held = slots.acquire().await;
    assert!(matches!(
        slots.acquire_timeout(Duration::from_secs(1)).await,
        Err(Error::Timeout(_))
    ));
    drop(held);
    assert_eq!(slots.available(), 1);
    let _again = slots.acquire().await;
}

#[tokio::test]
async fn bounded_semaphore_refuses_an_extra_release() {
    let pool = BoundedSemaphore::new(2);
    assert_eq!(pool.bound(), 2);
    assert_eq!(pool.release(), Err(Error::Overflow { bound: 2 }));
    pool.hold().await;
    let permit = pool.acquire().await;
    assert!(pool.try_acquire().is_none());
    assert!(pool.is_locked());
    drop(permit);
    pool.release().unwrap();
    assert_eq!(pool.available(), 2);
    assert_eq!(pool.release(), Err(Error::Overflow { bound: 2 }));
}

#[tokio::test]
async fn barrier_rounds_give_distinct_indices() {
    let barrier = Barrier::new(3);
    for _round in 0..3 {
        let mut indices: Vec<usize> = gather((0..3).map(|_| barrier.wait()))
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        indices.sort_unstable();
        assert_eq!(indices, [0, 1, 2]);
    }
    assert_eq!(barrier.n_waiting(), 0);
    assert_eq!(barrier.parties(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_barrier_wait_leaves_the_round() {
    let barrier = Arc::new(Barrier::new(2));
    assert!(
        timeout(Duration::from_secs(1), barrier.wait())
            .await
            .is_err()
    );
    assert_eq!(barrier.n_waiting(), 0, "the cancelled waiter left");
    assert!(!barrier.is_broken());
    let other = tokio::spawn({
        let barrier = barrier.clone();
        async move { barrier.wait().await }
    });
    let mine = barrier.wait().await.unwrap();
    let theirs = other.await.unwrap().unwrap();
    assert_eq!(mine + theirs, 1);
}

#[tokio::test(start_paused = true)]
async fn barrier_abort_reset_and_timeout_break_it() {
    let barrier = Arc::new(Barrier::new(3));
    let waiter = tokio::spawn({
        let barrier = barrier.clone();
        async move { barrier.wait().await }
    });
    while barrier.n_waiting() < 1 {
        tokio::task::yield_now().await;
    }
    barrier.abort();
    assert_eq!(waiter.await.unwrap(), Err(Error::BrokenBarrier));
    assert!(barrier.is_broken());
    assert_eq!(barrier.wait().await, Err(Error::BrokenBarrier));

    barrier.reset();
    assert!(!barrier.is_broken());
    let waiter = tokio::spawn({
        let barrier = barrier.clone();
        async move { barrier.wait().await }
    });
    while barrier.n_waiting() < 1 {
        tokio::task::yield_now().await;
    }
    barrier.reset();
    assert_eq!(waiter.await.unwrap(), Err(Error::BrokenBarrier));
    assert!(!barrier.is_broken(), "reset leaves the barrier whole");

    let waiter = tokio::spawn({
        let barrier = barrier.clone();
        async move { barrier.wait().await }
    });
    assert_eq!(
        barrier.wait_timeout(Duration::from_secs(1)).await,
        Err(Error::Timeout(Duration::from_secs(1)))
    );
    assert_eq!(waiter.await.unwrap(), Err(Error::BrokenBarrier));
    assert!(barrier.is_broken());
}
