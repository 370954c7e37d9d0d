//! [`Condition`]: a lock with a wait list shared between processes, like Python's
//! `multiprocessing.Condition`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::object::{Kind, SharedObject, shared_serde};
use crate::{Result, futex_lock, sys};

const LOCK: usize = 0;
/// Guards the wait list.
const LIST: usize = 4;
const NEXT_TICKET: usize = 8;
/// Bumped by every notify, for waiters that found no slot.
const EPOCH: usize = 12;
const SLOTS: usize = 16;
/// Waiters woken one by one, in order; more than this many at once share `EPOCH`.
const SLOT_COUNT: usize = 256;
/// A slot: its state and its ticket (arrival order).
const SLOT_SIZE: usize = 8;

const FREE: u32 = 0;
const WAITING: u32 = 1;
const NOTIFIED: u32 = 2;

/// A lock and a list of processes (and threads) waiting for a change, like Python's
/// `multiprocessing.Condition`.
///
/// Lock it, check the shared state (a [`Value`](crate::Value), say) and
/// [`wait`](ConditionGuard::wait), which releases the lock while waiting and takes it
/// back before returning. Another process changes the state under the lock and calls
/// [`notify_one`](Condition::notify_one) or [`notify_all`](Condition::notify_all). A
/// notify wakes waiters already waiting, oldest first, and returns how many it woke;
/// it may be called with or without the lock held. As with every condition, re-check
/// the state after waking, or use [`wait_for`](ConditionGuard::wait_for).
///
/// Up to 256 waiters at once are woken exactly as asked; past that, a notify may wake
/// more of them than it says.
///
/// ```
/// use braid_proc::{Condition, Value};
///
/// let ready = Condition::new().unwrap();
/// let count = Value::new(0u32).unwrap();
/// let mut guard = ready.lock();
/// count.set(1);
/// assert!(guard.wait_for_timeout(|| count.get() == 1, std::time::Duration::from_millis(1)));
/// assert_eq!(ready.notify_all(), 0); // nobody waiting
/// drop(guard);
/// ```
#[derive(Clone)]
pub struct Condition {
    object: SharedObject,
}

/// The lock of a [`Condition`], held; waits on the condition. Releases the lock on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    condition: &'a Condition,
}

impl Condition {
    /// A new condition with its own lock.
    ///
    /// # Errors
    /// [`crate::Error::Os`] when the shared memory cannot be made.
    pub fn new() -> Result<Condition> {
        Ok(Condition {
            object: SharedObject::create(Kind::Condition, SLOTS + SLOT_COUNT * SLOT_SIZE)?,
        })
    }

    fn slot(&self, i: usize) -> (&AtomicU32, &AtomicU32) {
        let at = SLOTS + i * SLOT_SIZE;
        (self.object.u32(at), self.object.u32(at + 4))
    }

    /// Takes the lock.
    pub fn lock(&self) -> ConditionGuard<'_> {
        while !futex_lock::acquire(self.object.u32(LOCK), None) {}
        ConditionGuard { condition: self }
    }

    /// Takes the lock, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> Option<ConditionGuard<'_>> {
        // Built only on success: a guard releases on drop.
        if futex_lock::acquire(self.object.u32(LOCK), sys::deadline(timeout)) {
            Some(ConditionGuard { condition: self })
        } else {
            None
        }
    }

    /// Takes the lock if it is free now.
    pub fn try_lock(&self) -> Option<ConditionGuard<'_>> {
        // Built only on success: a guard releases on drop.
        if futex_lock::try_acquire(self.object.u32(LOCK)) {
            Some(ConditionGuard { condition: self })
        } else {
            None
        }
    }

    /// Wakes up to `n` waiters, oldest first; returns how many were woken.
    pub fn notify(&self, n: usize) -> usize {
        let list = self.object.u32(LIST);
        while !futex_lock::acquire(list, None) {}
        let next = self.object.u32(NEXT_TICKET).load(Ordering::Relaxed);
        let mut waiting: Vec<(u32, usize)> = (0..SLOT_COUNT)
            .filter_map(|i| {
                let (state, ticket) = self.slot(i);
                (state.load(Ordering::Acquire) == WAITING)
                    // Age: how long ago the ticket was handed out (tickets wrap).
                    .then(|| (next.wrapping_sub(ticket.load(Ordering::Relaxed)), i))
            })
            .collect();
        waiting.sort_unstable_by_key(|&(age, _)| std::cmp::Reverse(age));
        let mut woken = 0;
        for (_, i) in waiting {
            if woken == n {
                break;
            }
            let (state, _) = self.slot(i);
            if state
                .compare_exchange(WAITING, NOTIFIED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                sys::futex_wake(state, 1);
                woken += 1;
            }
        }
        if woken < n {
            let epoch = self.object.u32(EPOCH);
            epoch.fetch_add(1, Ordering::SeqCst);
            sys::futex_wake(epoch, u32::MAX);
        }
        futex_lock::release(list);
        woken
    }

    /// Wakes the longest-waiting waiter; false when none was waiting.
    pub fn notify_one(&self) -> bool {
        self.notify(1) == 1
    }

    /// Wakes every waiter; returns how many.
    pub fn notify_all(&self) -> usize {
        self.notify(usize::MAX)
    }

    /// Joins the wait list: the slot taken, or `None` when all are taken.
    fn register(&self) -> Option<usize> {
        let list = self.object.u32(LIST);
        while !futex_lock::acquire(list, None) {}
        let found = (0..SLOT_COUNT).find(|&i| self.slot(i).0.load(Ordering::Acquire) == FREE);
        if let Some(i) = found {
            let (state, ticket) = self.slot(i);
            let t = self.object.u32(NEXT_TICKET).fetch_add(1, Ordering::Relaxed);
            ticket.store(t, Ordering::Relaxed);
            state.store(WAITING, Ordering::Release);
        }
        futex_lock::release(list);
        found
    }

    /// Waits in slot `i` (or on the epoch) with the lock released; true when notified.
    fn sleep(&self, slot: Option<usize>, deadline: Option<Instant>) -> bool {
        let Some(i) = slot else {
            let epoch = self.object.u32(EPOCH);
            let seen = epoch.load(Ordering::SeqCst);
            futex_lock::release(self.object.u32(LOCK));
            if !sys::spin_until(|| epoch.load(Ordering::Acquire) != seen) {
                while epoch.load(Ordering::Acquire) == seen && !sys::expired(deadline) {
                    sys::futex_wait(epoch, seen, deadline, None);
                }
            }
            return epoch.load(Ordering::Acquire) != seen;
        };
        let (state, _) = self.slot(i);
        futex_lock::release(self.object.u32(LOCK));
        if !sys::spin_until(|| state.load(Ordering::Acquire) != WAITING) {
            while state.load(Ordering::Acquire) == WAITING && !sys::expired(deadline) {
                sys::futex_wait(state, WAITING, deadline, None);
            }
        }
        // Timed out, unless a notify got there first.
        let notified = state
            .compare_exchange(WAITING, FREE, Ordering::AcqRel, Ordering::Acquire)
            .is_err();
        if notified {
            state.store(FREE, Ordering::Release);
        }
        notified
    }
}

impl ConditionGuard<'_> {
    fn wait_deadline(&mut self, deadline: Option<Instant>) -> bool {
        let slot = self.condition.register();
        let notified = self.condition.sleep(slot, deadline);
        while !futex_lock::acquire(self.condition.object.u32(LOCK), None) {}
        notified
    }

    /// Releases the lock, waits until notified, and takes the lock back.
    pub fn wait(&mut self) {
        self.wait_deadline(None);
    }

    /// Like [`wait`](ConditionGuard::wait), giving up after `timeout`; false when it
    /// timed out. The lock is held again either way.
    pub fn wait_timeout(&mut self, timeout: Duration) -> bool {
        self.wait_deadline(sys::deadline(timeout))
    }

    /// Waits until `predicate` holds (checked first and after every wake-up).
    pub fn wait_for(&mut self, mut predicate: impl FnMut() -> bool) {
        while !predicate() {
            self.wait();
        }
    }

    /// Like [`wait_for`](ConditionGuard::wait_for), giving up after `timeout`; returns the
    /// predicate's last value.
    pub fn wait_for_timeout(
        &mut self,
        mut predicate: impl FnMut() -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = sys::deadline(timeout);
        loop {
            if predicate() {
                return true;
            }
            if sys::expired(deadline) {
                return false;
            }
            self.wait_deadline(deadline);
        }
    }

    /// [`Condition::notify`] with the lock held.
    pub fn notify(&self, n: usize) -> usize {
        self.condition.notify(n)
    }

    /// [`Condition::notify_one`] with the lock held.
    pub fn notify_one(&self) -> bool {
        self.condition.notify_one()
    }

    /// [`Condition::notify_all`] with the lock held.
    pub fn notify_all(&self) -> usize {
        self.condition.notify_all()
    }
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        futex_lock::release(self.condition.object.u32(LOCK));
    }
}

shared_serde!(Condition, "Condition", Kind::Condition, |object| {
    Condition { object }
});

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition")
            .field("locked", &futex_lock::is_locked(self.object.u32(LOCK)))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConditionGuard").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn notify_wakes_as_many_as_asked_oldest_first() {
        let cond = Condition::new().unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let waiting = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for i in 0..3 {
            let (c, order, w) = (cond.clone(), order.clone(), waiting.clone());
            threads.push(std::thread::spawn(move || {
                let (cond, waiting) = (c, w);
                let mut g = cond.lock();
                waiting.fetch_add(1, Ordering::SeqCst);
                let woke = g.wait_timeout(Duration::from_secs(20));
                order.lock().unwrap().push(i);
                woke
            }));
            // Each waits before the next arrives, so the order is known.
            while waiting.load(Ordering::SeqCst) <= i {
                std::thread::yield_now();
            }
            drop(cond.lock()); // the waiter has released the lock: it is registered
        }
        assert_eq!(cond.notify(2), 2);
        let youngest = threads.pop().unwrap();
        for t in threads {
            assert!(t.join().unwrap());
        }
        assert!(
            !youngest.is_finished(),
            "the youngest was woken by notify(2)"
        );
        assert_eq!(order.lock().unwrap().len(), 2);
        assert_eq!(cond.notify_all(), 1);
        assert!(youngest.join().unwrap());
        assert!(!cond.notify_one());
    }

    #[test]
    fn a_wait_times_out_with_the_lock_back() {
        let cond = Condition::new().unwrap();
        let mut g = cond.lock();
        assert!(!g.wait_timeout(Duration::from_millis(3)));
        assert!(cond.try_lock().is_none(), "the lock is held again");
        drop(g);
        assert!(cond.try_lock().is_some());
    }
}
