//! [`Condition`]: a lock with a wait list, like Python's `threading.Condition`.

use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use crate::shim;
use crate::waitlist::WaitList;

/// A lock around a value, with threads waiting for that value to change, like Python's
/// `threading.Condition`.
///
/// Lock it, check the state, and [`wait`](ConditionGuard::wait) (which releases the lock
/// while waiting and takes it back before returning); another thread changes the state
/// under the lock and calls [`notify_one`](Condition::notify_one) or
/// [`notify_all`](Condition::notify_all). A notify wakes threads already waiting, oldest
/// first; it may be called with or without the lock held. As with every condition
/// variable, re-check the state after waking, or use [`wait_for`](ConditionGuard::wait_for).
///
/// A woken waiter is back in a few hundred nanoseconds when the notify comes quickly: a
/// waiter spins briefly on its own flag before it sleeps.
///
/// ```
/// use std::sync::Arc;
/// use braid_sync::{Condition, spawn};
///
/// let jobs = Arc::new(Condition::new(Vec::<u32>::new()));
/// let consumer = {
///     let jobs = jobs.clone();
///     spawn("consumer", move || {
///         let mut jobs = jobs.lock();
///         jobs.wait_for(|jobs| !jobs.is_empty());
///         jobs.pop()
///     })
///     .unwrap()
/// };
/// jobs.lock().push(7);
/// jobs.notify_one();
/// assert_eq!(consumer.join().unwrap(), Some(7));
/// ```
pub struct Condition<T = ()> {
    data: Mutex<T>,
    waiters: WaitList,
}

/// The lock of a [`Condition`], held; gives access to the value and waits on the condition.
/// Releases the lock on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a, T> {
    guard: MutexGuard<'a, T>,
    waiters: &'a WaitList,
}

impl<T> Condition<T> {
    /// A condition guarding `value`.
    pub fn new(value: T) -> Self {
        Condition {
            data: Mutex::new(value),
            waiters: WaitList::new(),
        }
    }

    /// Takes the lock, blocking until it is free.
    pub fn lock(&self) -> ConditionGuard<'_, T> {
        ConditionGuard {
            guard: self.data.lock(),
            waiters: &self.waiters,
        }
    }

    /// Takes the lock if it is free now.
    pub fn try_lock(&self) -> Option<ConditionGuard<'_, T>> {
        self.data.try_lock().map(|guard| ConditionGuard {
            guard,
            waiters: &self.waiters,
        })
    }

    /// Takes the lock, giving up after `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<ConditionGuard<'_, T>> {
        self.data.try_lock_for(timeout).map(|guard| ConditionGuard {
            guard,
            waiters: &self.waiters,
        })
    }

    /// Wakes up to `n` waiting threads, oldest first; returns how many were woken.
    pub fn notify(&self, n: usize) -> usize {
        self.waiters.notify(n)
    }

    /// Wakes the longest-waiting thread; false when none was waiting.
    pub fn notify_one(&self) -> bool {
        self.waiters.notify(1) == 1
    }

    /// Wakes every waiting thread; returns how many.
    pub fn notify_all(&self) -> usize {
        self.waiters.notify(usize::MAX)
    }

    /// The value, consuming the condition.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    /// The value, through a unique borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T> ConditionGuard<'_, T> {
    /// Releases the lock, blocks until notified, and takes the lock back.
    ///
    /// Spurious wake-ups do not happen, but another thread may have changed the state
    /// between the notify and this thread taking the lock: re-check it.
    pub fn wait(&mut self) {
        let waiter = self.waiters.register();
        MutexGuard::unlocked(&mut self.guard, || waiter.wait());
    }

    /// Like [`wait`](ConditionGuard::wait), giving up after `timeout`; false when it timed
    /// out (Python's return value). The lock is held again either way.
    pub fn wait_timeout(&mut self, timeout: Duration) -> bool {
        self.wait_deadline(shim::deadline(timeout))
    }

    fn wait_deadline(&mut self, deadline: Option<Instant>) -> bool {
        let waiter = self.waiters.register();
        let notified = MutexGuard::unlocked(&mut self.guard, || waiter.wait_until(deadline));
        notified || self.waiters.cancel(&waiter)
    }

    /// Waits until `predicate` holds for the value (checking it first, and after every
    /// wake-up), like Python's `wait_for`.
    pub fn wait_for(&mut self, mut predicate: impl FnMut(&mut T) -> bool) {
        while !predicate(&mut self.guard) {
            self.wait();
        }
    }

    /// Like [`wait_for`](ConditionGuard::wait_for), giving up after `timeout`; returns the
    /// predicate's last value (false: it timed out without the predicate holding).
    pub fn wait_for_timeout(
        &mut self,
        mut predicate: impl FnMut(&mut T) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = shim::deadline(timeout);
        loop {
            if predicate(&mut self.guard) {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            self.wait_deadline(deadline);
        }
    }
}

impl<T> std::ops::Deref for ConditionGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for ConditionGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: Default> Default for Condition<T> {
    fn default() -> Self {
        Condition::new(T::default())
    }
}

impl<T> std::fmt::Debug for Condition<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition")
            .field("locked", &self.data.is_locked())
            .finish_non_exhaustive()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ConditionGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ConditionGuard").field(&*self.guard).finish()
    }
}

#[cfg(all(test, not(braid_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn notify_without_waiters_wakes_none() {
        let c = Condition::new(0);
        assert!(!c.notify_one());
        assert_eq!(c.notify(3), 0);
        assert_eq!(c.notify_all(), 0);
    }

    #[test]
    fn wait_timeout_times_out_and_holds_the_lock_again() {
        let c = Condition::new(1);
        let mut g = c.lock();
        assert!(!g.wait_timeout(Duration::from_millis(1)));
        *g += 1;
        assert!(!g.wait_for_timeout(|v| *v == 5, Duration::from_millis(1)));
        assert!(g.wait_for_timeout(|v| *v == 2, Duration::ZERO));
        drop(g);
        assert!(!c.notify_one(), "the timed-out waiter left the list");
        assert_eq!(c.into_inner(), 2);
    }

    #[test]
    fn notify_counts_waiters_woken() {
        let c = Arc::new(Condition::new(()));
        let arrived = Arc::new(Condition::new(0usize));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (c, arrived) = (c.clone(), arrived.clone());
                std::thread::spawn(move || {
                    let mut g = c.lock();
                    *arrived.lock() += 1;
                    arrived.notify_all();
                    g.wait();
                })
            })
            .collect();
        arrived.lock().wait_for(|n| *n == 3);
        // Each thread registered before it let go of `c`, so once we hold `c` all three wait.
        let g = c.lock();
        assert_eq!(c.notify(2), 2);
        assert_eq!(c.notify_all(), 1);
        drop(g);
        for t in threads {
            t.join().unwrap();
        }
    }
}
