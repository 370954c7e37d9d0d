//! [`Lock`]: a mutual-exclusion lock owning its data, like Python's `threading.Lock`.

use std::time::Duration;

/// A mutual-exclusion lock around a value, like Python's `threading.Lock` (and like a
/// Rust mutex, it owns what it protects).
///
/// [`acquire`](Lock::acquire) blocks until the lock is free and returns a guard; the lock
/// is released when the guard is dropped, as when Python leaves a `with lock:` block.
/// The lock is not re-entrant: acquiring it twice on one thread deadlocks (use
/// [`RLock`](crate::RLock) for that). Waiters spin briefly, then sleep; the lock is not
/// fair, which keeps it fast under contention.
///
/// ```
/// use std::sync::Arc;
/// use braid_sync::{Lock, spawn};
///
/// let total = Arc::new(Lock::new(0u64));
/// let workers: Vec<_> = (0..4)
///     .map(|i| {
///         let total = total.clone();
///         spawn(format!("adder-{i}"), move || {
///             for _ in 0..1000 {
///                 *total.acquire() += 1;
///             }
///         })
///         .unwrap()
///     })
///     .collect();
/// for w in workers {
///     w.join().unwrap();
/// }
/// assert_eq!(*total.acquire(), 4000);
/// ```
pub struct Lock<T: ?Sized = ()> {
    inner: parking_lot::Mutex<T>,
}

/// A held [`Lock`]: gives access to the value; releases the lock on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a, T: ?Sized> {
    inner: parking_lot::MutexGuard<'a, T>,
}

impl<T> Lock<T> {
    /// A lock around `value`, not held.
    pub const fn new(value: T) -> Self {
        Lock {
            inner: parking_lot::Mutex::new(value),
        }
    }

    /// The value, consuming the lock.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> Lock<T> {
    /// Takes the lock, blocking until it is free.
    pub fn acquire(&self) -> LockGuard<'_, T> {
        LockGuard {
            inner: self.inner.lock(),
        }
    }

    /// Takes the lock, giving up after `timeout` (`None`).
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<LockGuard<'_, T>> {
        self.inner
            .try_lock_for(timeout)
            .map(|inner| LockGuard { inner })
    }

    /// Takes the lock if it is free now, without blocking (Python's
    /// `acquire(blocking=False)`).
    pub fn try_acquire(&self) -> Option<LockGuard<'_, T>> {
        self.inner.try_lock().map(|inner| LockGuard { inner })
    }

    /// Whether some thread holds the lock (Python's `locked()`); only a snapshot.
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// The value, through a unique borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }
}

impl<T: ?Sized> std::ops::Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> std::ops::DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: Default> Default for Lock<T> {
    fn default() -> Self {
        Lock::new(T::default())
    }
}

impl<T> From<T> for Lock<T> {
    fn from(value: T) -> Self {
        Lock::new(value)
    }
}

impl<T: ?Sized> std::fmt::Debug for Lock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for LockGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LockGuard").field(&&*self.inner).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static GLOBAL: Lock<Vec<u8>> = Lock::new(Vec::new());

    #[test]
    fn const_new_in_a_static() {
        GLOBAL.acquire().push(1);
        assert_eq!(GLOBAL.acquire().len(), 1);
    }

    #[test]
    fn try_and_timeout_fail_while_held() {
        let lock = Lock::new(5);
        let guard = lock.acquire();
        assert!(lock.is_locked());
        assert!(lock.try_acquire().is_none());
        assert!(lock.acquire_timeout(Duration::from_millis(1)).is_none());
        drop(guard);
        assert!(!lock.is_locked());
        assert_eq!(*lock.try_acquire().unwrap(), 5);
    }

    #[test]
    fn unsized_values() {
        let lock: &Lock<[u8]> = &Lock::new([1u8, 2, 3]);
        lock.acquire()[0] = 9;
        assert_eq!(&*lock.acquire(), &[9, 2, 3]);
    }
}
