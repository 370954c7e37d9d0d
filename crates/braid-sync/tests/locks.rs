//! Lock, RLock, Semaphore and BoundedSemaphore.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use braid_sync::{BoundedSemaphore, Error, Event, Lock, RLock, Semaphore, spawn};

#[test]
fn lock_excludes_and_counts() {
    let lock = Arc::new(Lock::new(0u64));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let lock = lock.clone();
            spawn(format!("inc-{i}"), move || {
                for _ in 0..5_000 {
                    *lock.acquire() += 1;
                }
            })
            .unwrap()
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*lock.acquire(), 40_000);
    let mut lock = Arc::try_unwrap(lock).unwrap();
    *lock.get_mut() += 1;
    assert_eq!(lock.into_inner(), 40_001);
}

#[test]
fn lock_timeout_while_held_by_another_thread() {
    let lock = Arc::new(Lock::new(()));
    let held = Arc::new(Event::new());
    let release = Arc::new(Event::new());
    let (l, h, r) = (lock.clone(), held.clone(), release.clone());
    let holder = spawn("holder", move || {
        let _g = l.acquire();
        h.set();
        r.wait();
    })
    .unwrap();
    held.wait();
    assert!(lock.is_locked());
    assert!(lock.try_acquire().is_none());
    assert!(lock.acquire_timeout(Duration::from_millis(2)).is_none());
    release.set();
    assert!(lock.acquire_timeout(Duration::from_secs(30)).is_some());
    holder.join().unwrap();
}

#[test]
fn rlock_is_reentrant_and_counts_levels() {
    let lock = RLock::new(Cell::new(0));
    assert_eq!(lock.recursion_depth(), 0);
    assert!(!lock.is_owned());
    let a = lock.acquire();
    let b = lock.acquire();
    lock.hold();
    assert!(lock.hold_timeout(Duration::ZERO));
    assert_eq!(lock.recursion_depth(), 4);
    b.set(b.get() + 1);
    a.set(a.get() + 1);
    lock.release().unwrap();
    lock.release().unwrap();
    drop(b);
    assert_eq!(lock.recursion_depth(), 1);
    drop(a);
    assert_eq!(lock.recursion_depth(), 0);
    assert_eq!(lock.into_inner().get(), 2);
}

#[test]
fn rlock_release_when_not_held_is_not_owner() {
    let lock = RLock::new(());
    assert_eq!(lock.release(), Err(Error::NotOwner));
    assert_eq!(
        Error::NotOwner.to_string(),
        "the lock is not held by the calling thread"
    );
}

#[test]
fn rlock_release_by_another_thread_is_not_owner_and_blocks_others() {
    let lock = Arc::new(RLock::new(()));
    lock.hold();
    lock.hold();
    let l = lock.clone();
    let other = spawn("intruder", move || {
        (
            l.release(),
            l.try_acquire().is_some(),
            l.acquire_timeout(Duration::from_millis(2)).is_some(),
            l.is_owned(),
            l.recursion_depth(),
        )
    })
    .unwrap();
    assert_eq!(
        other.join().unwrap(),
        (Err(Error::NotOwner), false, false, false, 0)
    );
    // Only after both levels are released can another thread take it.
    lock.release().unwrap();
    let l = lock.clone();
    let still_held = spawn("try-1", move || l.try_acquire().is_none()).unwrap();
    assert!(still_held.join().unwrap());
    lock.release().unwrap();
    let l = lock.clone();
    let taker = spawn("taker", move || {
        let g = l.acquire_timeout(Duration::from_secs(30));
        g.is_some()
    })
    .unwrap();
    assert!(taker.join().unwrap());
}

#[test]
fn rlock_hands_over_to_a_blocked_thread() {
    let lock = Arc::new(RLock::new(()));
    let g = lock.acquire();
    let entered = Arc::new(Event::new());
    let (l, e) = (lock.clone(), entered.clone());
    let waiter = spawn("waiter", move || {
        e.set();
        let _g = l.acquire();
        l.recursion_depth()
    })
    .unwrap();
    entered.wait();
    std::thread::sleep(Duration::from_millis(2)); // let it block (not needed for correctness)
    drop(g);
    assert_eq!(waiter.join().unwrap(), 1);
}

#[test]
fn semaphore_counts_permits() {
    let sem = Semaphore::new(2);
    let a = sem.acquire();
    let b = sem.try_acquire().unwrap();
    assert_eq!(sem.available(), 0);
    assert!(sem.try_acquire().is_none());
    assert!(sem.acquire_timeout(Duration::from_millis(1)).is_none());
    drop(a);
    assert_eq!(sem.available(), 1);
    b.forget();
    assert_eq!(sem.available(), 1, "a forgotten permit stays taken");
    sem.release(3);
    assert_eq!(sem.available(), 4, "release adds past the start value");
    let unbounded = Semaphore::new(usize::MAX);
    unbounded.release(1);
    assert_eq!(unbounded.available(), usize::MAX, "saturates");
}

#[test]
fn semaphore_release_n_wakes_n_waiters() {
    let sem = Arc::new(Semaphore::new(0));
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let sem = sem.clone();
            spawn(format!("s{i}"), move || sem.acquire().forget()).unwrap()
        })
        .collect();
    sem.release(3);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(sem.available(), 0);
}

#[test]
fn bounded_semaphore_overflows() {
    let sem = BoundedSemaphore::new(2);
    assert_eq!(sem.bound(), 2);
    assert_eq!(sem.release(), Err(Error::Overflow { bound: 2 }));
    let p = sem.acquire();
    assert_eq!(sem.available(), 1);
    p.forget();
    assert_eq!(sem.release(), Ok(()));
    assert_eq!(sem.release(), Err(Error::Overflow { bound: 2 }));
    assert_eq!(sem.available(), 2);
    let _a = sem.acquire_timeout(Duration::from_millis(1)).unwrap();
    let _b = sem.try_acquire().unwrap();
    assert!(sem.try_acquire().is_none());
    assert!(
        Error::Overflow { bound: 2 }
            .to_string()
            .contains("bound of 2"),
        "{}",
        Error::Overflow { bound: 2 }
    );
}

#[test]
fn bounded_permit_dropped_after_an_extra_release_adds_nothing() {
    let sem = BoundedSemaphore::new(1);
    let p = sem.acquire();
    sem.release().unwrap(); // misuse: gives back the permit `p` holds
    drop(p); // logged, clamped
    assert_eq!(sem.available(), 1);
}

/// Stress: 8 threads, 100k acquisitions in all; never more than `permits` inside.
#[test]
fn stress_semaphore_never_exceeds_its_count() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 12_500;
    for (permits, bounded) in [(3, false), (2, true)] {
        let sem = Arc::new(Semaphore::new(permits));
        let bsem = Arc::new(BoundedSemaphore::new(permits));
        let inside = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|i| {
                let (sem, bsem, inside, max_seen) =
                    (sem.clone(), bsem.clone(), inside.clone(), max_seen.clone());
                spawn(format!("sem-{i}"), move || {
                    for _ in 0..PER_THREAD {
                        let (_p, _b) = if bounded {
                            (None, Some(bsem.acquire()))
                        } else {
                            (Some(sem.acquire()), None)
                        };
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max_seen.fetch_max(now, Ordering::SeqCst);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
                .unwrap()
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let max = max_seen.load(Ordering::SeqCst);
        assert!(
            max <= permits && max >= 1,
            "{max} inside with {permits} permits"
        );
        assert_eq!(sem.available(), permits);
        assert_eq!(bsem.available(), permits);
    }
}

#[test]
fn semaphore_hold_and_release_signal_between_threads() {
    let signal = Arc::new(Semaphore::new(0));
    assert!(!signal.hold_timeout(Duration::from_millis(1)));
    let s = signal.clone();
    let consumer = std::thread::spawn(move || {
        s.hold();
        s.available()
    });
    signal.release(1);
    assert_eq!(consumer.join().unwrap(), 0, "the permit stays taken");

    let bounded = BoundedSemaphore::new(1);
    bounded.hold();
    assert!(!bounded.hold_timeout(Duration::ZERO));
    assert_eq!(bounded.release(), Ok(()));
    assert_eq!(bounded.release(), Err(Error::Overflow { bound: 1 }));
}
