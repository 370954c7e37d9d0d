//! [`Lock`] and [`RLock`]: locks shared between processes, like Python's
//! `multiprocessing.Lock` and `multiprocessing.RLock`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::object::{Kind, SharedObject, shared_serde};
use crate::{Error, Result, futex_lock, sys};

/// A lock shared between processes (and threads), like Python's
/// `multiprocessing.Lock`.
///
/// [`acquire`](Lock::acquire) gives a guard that releases on drop (Python's `with
/// lock:`). Like Python's, the lock is not owned by whoever took it:
/// [`hold`](Lock::hold) and [`release`](Lock::release) may happen in different threads
/// or processes. A blocked acquire spins briefly before it sleeps. Pass the lock to a
/// child in its start arguments; clones are handles on the same lock.
///
/// ```
/// use braid_proc::Lock;
///
/// let lock = Lock::new().unwrap();
/// {
///     let _held = lock.acquire();
///     assert!(lock.try_acquire().is_none());
/// }
/// assert!(!lock.is_locked());
/// assert!(lock.release().is_err()); // not held
/// ```
#[derive(Clone)]
pub struct Lock {
    object: SharedObject,
}

/// A held [`Lock`]; releases it on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl Lock {
    /// A new, free lock.
    ///
    /// # Errors
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn new() -> Result<Lock> {
        Ok(Lock {
            object: SharedObject::create(Kind::Lock, 4)?,
        })
    }

    fn acquire_deadline(&self, deadline: Option<Instant>) -> bool {
        futex_lock::acquire(self.object.u32(0), deadline)
    }

    /// Takes the lock, waiting as long as it takes.
    pub fn acquire(&self) -> LockGuard<'_> {
        self.hold();
        LockGuard { lock: self }
    }

    /// Takes the lock, waiting at most `timeout`; `None` on timeout.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<LockGuard<'_>> {
        // Built only on success: a guard releases on drop.
        if self.hold_timeout(timeout) {
            Some(LockGuard { lock: self })
        } else {
            None
        }
    }

    /// Takes the lock if it is free now.
    pub fn try_acquire(&self) -> Option<LockGuard<'_>> {
        // Built only on success: a guard releases on drop.
        if futex_lock::try_acquire(self.object.u32(0)) {
            Some(LockGuard { lock: self })
        } else {
            None
        }
    }

    /// Takes the lock without a guard (Python's `acquire()`); pair it with
    /// [`release`](Lock::release), from any thread or process.
    pub fn hold(&self) {
        while !self.acquire_deadline(None) {}
    }

    /// Like [`hold`](Lock::hold), waiting at most `timeout`; false on timeout.
    pub fn hold_timeout(&self, timeout: Duration) -> bool {
        self.acquire_deadline(sys::deadline(timeout))
    }

    /// Releases the lock (Python's `release()`).
    ///
    /// # Errors
    /// [`Error::Overflow`] when the lock is not held.
    pub fn release(&self) -> Result<()> {
        if futex_lock::release(self.object.u32(0)) {
            Ok(())
        } else {
            Err(Error::Overflow { bound: 1 })
        }
    }

    /// Whether the lock is held (by anyone).
    pub fn is_locked(&self) -> bool {
        futex_lock::is_locked(self.object.u32(0))
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if self.lock.release().is_err() {
            tracing::warn!("a Lock held by a guard was released by someone else meanwhile");
        }
    }
}

shared_serde!(Lock, "Lock", Kind::Lock, |object| Lock { object });

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.is_locked())
            .finish()
    }
}

impl std::fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

// RLock fields.
const WORD: usize = 0;
const OWNER: usize = 4;
const COUNT: usize = 8;

/// A re-entrant lock shared between processes, like Python's `multiprocessing.RLock`:
/// the thread holding it may take it again, and must release it as many times.
///
/// Only the holding thread may release it ([`Error::NotOwner`] otherwise).
///
/// ```
/// use braid_proc::RLock;
///
/// let lock = RLock::new().unwrap();
/// let outer = lock.acquire();
/// let inner = lock.acquire(); // the same thread: no deadlock
/// assert_eq!(lock.recursion_depth(), 2);
/// drop(inner);
/// drop(outer);
/// assert!(!lock.is_owned());
/// ```
#[derive(Clone)]
pub struct RLock {
    object: SharedObject,
}

/// A hold on an [`RLock`]; releases one level on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl RLock {
    /// A new, free re-entrant lock.
    ///
    /// # Errors
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn new() -> Result<RLock> {
        Ok(RLock {
            object: SharedObject::create(Kind::RLock, 16)?,
        })
    }

    fn acquire_deadline(&self, deadline: Option<Instant>) -> bool {
        let me = sys::gettid();
        if self.object.u32(OWNER).load(Ordering::Relaxed) == me {
            self.object.u32(COUNT).fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if !futex_lock::acquire(self.object.u32(WORD), deadline) {
            return false;
        }
        self.object.u32(OWNER).store(me, Ordering::Relaxed);
        self.object.u32(COUNT).store(1, Ordering::Relaxed);
        true
    }

    fn guard(&self) -> RLockGuard<'_> {
        RLockGuard {
            lock: self,
            _not_send: std::marker::PhantomData,
        }
    }

    /// Takes the lock (again, if this thread holds it).
    pub fn acquire(&self) -> RLockGuard<'_> {
        self.hold();
        self.guard()
    }

    /// Takes the lock, waiting at most `timeout`; `None` on timeout.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<RLockGuard<'_>> {
        // Built only on success: a guard releases on drop.
        if self.hold_timeout(timeout) {
            Some(self.guard())
        } else {
            None
        }
    }

    /// Takes the lock if it is free or held by this thread.
    pub fn try_acquire(&self) -> Option<RLockGuard<'_>> {
        let me = sys::gettid();
        if self.object.u32(OWNER).load(Ordering::Relaxed) == me {
            self.object.u32(COUNT).fetch_add(1, Ordering::Relaxed);
            return Some(self.guard());
        }
        if !futex_lock::try_acquire(self.object.u32(WORD)) {
            return None;
        }
        self.object.u32(OWNER).store(me, Ordering::Relaxed);
        self.object.u32(COUNT).store(1, Ordering::Relaxed);
        Some(self.guard())
    }

    /// Takes the lock without a guard; pair with [`release`](RLock::release) on this
    /// thread.
    pub fn hold(&self) {
        while !self.acquire_deadline(None) {}
    }

    /// Like [`hold`](RLock::hold), waiting at most `timeout`; false on timeout.
    pub fn hold_timeout(&self, timeout: Duration) -> bool {
        self.acquire_deadline(sys::deadline(timeout))
    }

    /// Releases one level.
    ///
    /// # Errors
    /// [`Error::NotOwner`] when this thread does not hold the lock.
    pub fn release(&self) -> Result<()> {
        if !self.is_owned() {
            return Err(Error::NotOwner);
        }
        let count = self.object.u32(COUNT).load(Ordering::Relaxed);
        if count > 1 {
            self.object.u32(COUNT).store(count - 1, Ordering::Relaxed);
            return Ok(());
        }
        self.object.u32(COUNT).store(0, Ordering::Relaxed);
        self.object.u32(OWNER).store(0, Ordering::Relaxed);
        futex_lock::release(self.object.u32(WORD));
        Ok(())
    }

    /// Whether the calling thread holds the lock.
    pub fn is_owned(&self) -> bool {
        self.object.u32(OWNER).load(Ordering::Relaxed) == sys::gettid()
    }

    /// How many times the calling thread holds the lock (0 when it does not).
    pub fn recursion_depth(&self) -> usize {
        if self.is_owned() {
            self.object.u32(COUNT).load(Ordering::Relaxed) as usize
        } else {
            0
        }
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        if self.lock.release().is_err() {
            tracing::warn!("an RLock guard was dropped by a thread that does not hold it");
        }
    }
}

shared_serde!(RLock, "RLock", Kind::RLock, |object| RLock { object });

impl std::fmt::Debug for RLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RLock")
            .field("locked", &futex_lock::is_locked(self.object.u32(WORD)))
            .field("owned", &self.is_owned())
            .finish()
    }
}

impl std::fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_excludes_and_times_out() {
        let lock = Lock::new().unwrap();
        let held = lock.acquire();
        let other = lock.clone();
        let got =
            std::thread::spawn(move || other.acquire_timeout(Duration::from_millis(5)).is_some())
                .join()
                .unwrap();
        assert!(!got);
        drop(held);
        lock.hold();
        let other = lock.clone();
        std::thread::spawn(move || other.release().unwrap())
            .join()
            .unwrap();
        assert!(!lock.is_locked());
    }

    #[test]
    fn rlock_counts_and_refuses_strangers() {
        let lock = RLock::new().unwrap();
        lock.hold();
        lock.hold();
        assert_eq!(lock.recursion_depth(), 2);
        let other = lock.clone();
        let outcome = std::thread::spawn(move || (other.release(), other.try_acquire().is_some()))
            .join()
            .unwrap();
        assert_eq!(outcome, (Err(Error::NotOwner), false));
        lock.release().unwrap();
        lock.release().unwrap();
        assert_eq!(lock.release(), Err(Error::NotOwner));
    }
}
