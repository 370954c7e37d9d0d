//! [`Condition`]: an async lock with a wait list, like Python's `asyncio.Condition`.

use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};

use tokio::time::Instant;

use crate::waitlist::WaitList;

/// An async lock around a value, with tasks waiting for that value to change, like
/// Python's `asyncio.Condition`.
///
/// Lock it, check the state, and [`wait`](ConditionGuard::wait) (which releases the lock
/// while waiting and takes it back before it returns the guard); another task changes the
/// state under the lock and calls [`notify_one`](Condition::notify_one),
/// [`notify`](Condition::notify) or [`notify_all`](Condition::notify_all). A notify wakes
/// tasks waiting at that moment, oldest first, and is lost if none waits; it may be called
/// with or without the lock held. Re-check the state after waking, or use
/// [`wait_for`](ConditionGuard::wait_for).
///
/// ```
/// use std::sync::Arc;
/// use braid_async::Condition;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let jobs = Arc::new(Condition::new(Vec::<u32>::new()));
/// let consumer = tokio::spawn({
///     let jobs = jobs.clone();
///     async move {
///         let mut jobs = jobs.lock().await.wait_for(|jobs| !jobs.is_empty()).await;
///         jobs.pop()
///     }
/// });
/// jobs.lock().await.push(7);
/// jobs.notify_one();
/// assert_eq!(consumer.await.unwrap(), Some(7));
/// # }
/// ```
pub struct Condition<T = ()> {
    data: Mutex<T>,
    waiters: WaitList,
}

/// The lock of a [`Condition`], held: gives access to the value and waits on the
/// condition. Releases the lock on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a, T> {
    guard: MutexGuard<'a, T>,
    condition: &'a Condition<T>,
}

impl<T> Condition<T> {
    /// A condition guarding `value`.
    pub fn new(value: T) -> Self {
        Condition {
            data: Mutex::new(value),
            waiters: WaitList::default(),
        }
    }

    /// Takes the lock, waiting for it; tasks get it in the order they asked.
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled `lock` leaves its place in line and holds nothing.
    pub async fn lock(&self) -> ConditionGuard<'_, T> {
        ConditionGuard {
            guard: self.data.lock().await,
            condition: self,
        }
    }

    /// Takes the lock if it is free now.
    pub fn try_lock(&self) -> Option<ConditionGuard<'_, T>> {
        self.data.try_lock().ok().map(|guard| ConditionGuard {
            guard,
            condition: self,
        })
    }

    /// Wakes up to `n` waiting tasks, oldest first; returns how many were woken.
    pub fn notify(&self, n: usize) -> usize {
        self.waiters.notify(n)
    }

    /// Wakes the oldest waiting task; returns whether there was one.
    pub fn notify_one(&self) -> bool {
        self.waiters.notify(1) == 1
    }

    /// Wakes every waiting task; returns how many.
    pub fn notify_all(&self) -> usize {
        self.waiters.notify_all()
    }

    /// How many tasks are waiting and not yet notified; only a snapshot.
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// The value, consuming the condition.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    /// The value, through an exclusive reference (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<'a, T> ConditionGuard<'a, T> {
    /// Releases the lock, waits for a notify, takes the lock back and returns the guard.
    ///
    /// The task is on the wait list before the lock is released, so a notify sent by a
    /// task that takes the lock after it is never missed.
    ///
    /// # Cancel safety
    /// Cancelling it releases the lock (the guard was moved in), and a notify this wait
    /// had received but not yet returned is handed on to another waiter, so no wake-up is
    /// lost (the other waiter may find nothing changed: re-check the state, as always).
    pub async fn wait(self) -> ConditionGuard<'a, T> {
        let ConditionGuard { guard, condition } = self;
        let waiter = condition.waiters.register();
        drop(guard);
        waiter.await;
        relock(condition, true).await
    }

    /// Waits until `predicate` holds for the value, re-checking after each notify; returns
    /// at once if it holds now. The predicate runs with the lock held.
    ///
    /// # Cancel safety
    /// As [`wait`](ConditionGuard::wait).
    pub async fn wait_for(
        mut self,
        mut predicate: impl FnMut(&mut T) -> bool,
    ) -> ConditionGuard<'a, T> {
        while !predicate(&mut self.guard) {
            self = self.wait().await;
        }
        self
    }

    /// Like [`wait`](ConditionGuard::wait), giving up after `timeout`; the guard comes
    /// back either way, with `false` on timeout.
    ///
    /// # Cancel safety
    /// As [`wait`](ConditionGuard::wait).
    pub async fn wait_timeout(self, timeout: Duration) -> (ConditionGuard<'a, T>, bool) {
        let condition = self.condition;
        let ConditionGuard { guard, .. } = self;
        let waiter = condition.waiters.register();
        drop(guard);
        let notified = crate::timeout(timeout, waiter).await.is_ok();
        (relock(condition, notified).await, notified)
    }

    /// Like [`wait_for`](ConditionGuard::wait_for), giving up after `timeout` in all; the
    /// guard comes back with whether the predicate holds (Python's `wait_for` result).
    ///
    /// # Cancel safety
    /// As [`wait`](ConditionGuard::wait).
    pub async fn wait_for_timeout(
        mut self,
        timeout: Duration,
        mut predicate: impl FnMut(&mut T) -> bool,
    ) -> (ConditionGuard<'a, T>, bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if predicate(&mut self.guard) {
                return (self, true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (self, false);
            }
            self = self.wait_timeout(left).await.0;
        }
    }
}

/// Takes the lock back after a wait. If this task was notified and is cancelled before
/// it holds the lock, another waiter gets the wake-up in its place.
async fn relock<T>(condition: &Condition<T>, notified: bool) -> ConditionGuard<'_, T> {
    let mut relay = Relay {
        condition,
        armed: notified,
    };
    let guard = condition.lock().await;
    relay.armed = false;
    guard
}

/// Hands a received notify on to another waiter when dropped while armed.
struct Relay<'a, T> {
    condition: &'a Condition<T>,
    armed: bool,
}

impl<T> Drop for Relay<'_, T> {
    fn drop(&mut self) {
        if self.armed {
            self.condition.waiters.notify(1);
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
        Self::new(T::default())
    }
}

impl<T> std::fmt::Debug for Condition<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition")
            .field("waiting", &self.waiting())
            .finish_non_exhaustive()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ConditionGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConditionGuard")
            .field("value", &*self.guard)
            .finish()
    }
}
