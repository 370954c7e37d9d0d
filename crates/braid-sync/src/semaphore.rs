//! [`Semaphore`] and [`BoundedSemaphore`], like Python's `threading` semaphores.

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::Error;

/// A counter of permits: acquiring takes one (blocking while there is none), releasing
/// gives some back, like Python's `threading.Semaphore`.
///
/// [`acquire`](Semaphore::acquire) returns a [`Permit`] that gives its permit back on
/// drop. [`release`](Semaphore::release) adds permits with no upper bound (Python's
/// `release(n)`); pair it with [`Permit::forget`] when a permit is taken in one place and
/// given back in another. Blocked threads are woken in no particular order.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use braid_sync::{Semaphore, spawn};
///
/// // At most two of the eight workers are inside at once.
/// let slots = Arc::new(Semaphore::new(2));
/// let inside = Arc::new(AtomicUsize::new(0));
/// let workers: Vec<_> = (0..8)
///     .map(|i| {
///         let (slots, inside) = (slots.clone(), inside.clone());
///         spawn(format!("w{i}"), move || {
///             let _permit = slots.acquire();
///             assert!(inside.fetch_add(1, Ordering::SeqCst) < 2);
///             inside.fetch_sub(1, Ordering::SeqCst);
///         })
///         .unwrap()
///     })
///     .collect();
/// for w in workers {
///     w.join().unwrap();
/// }
/// assert_eq!(slots.available(), 2);
/// ```
pub struct Semaphore {
    counter: Counter,
}

/// A [`Semaphore`] that refuses to be released past its initial value, like Python's
/// `threading.BoundedSemaphore`: an extra release is a bug, reported as
/// [`Error::Overflow`].
///
/// ```
/// use braid_sync::{BoundedSemaphore, Error};
///
/// let pool = BoundedSemaphore::new(1);
/// let permit = pool.acquire();
/// assert!(pool.try_acquire().is_none());
/// drop(permit);
/// assert_eq!(pool.release(), Err(Error::Overflow { bound: 1 }));
/// ```
pub struct BoundedSemaphore {
    counter: Counter,
    bound: usize,
}

/// One permit of a [`Semaphore`]; given back on drop.
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct Permit<'a> {
    semaphore: &'a Semaphore,
}

/// One permit of a [`BoundedSemaphore`]; given back on drop.
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct BoundedPermit<'a> {
    semaphore: &'a BoundedSemaphore,
}

struct Counter {
    permits: Mutex<usize>,
    available: Condvar,
}

impl Counter {
    fn new(permits: usize) -> Self {
        Counter {
            permits: Mutex::new(permits),
            available: Condvar::new(),
        }
    }

    /// Takes a permit, waiting at most `timeout` (`None`: for ever); true when taken.
    fn take(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(crate::shim::deadline);
        let mut permits = self.permits.lock();
        loop {
            if *permits > 0 {
                *permits -= 1;
                return true;
            }
            match deadline {
                None => self.available.wait(&mut permits),
                Some(deadline) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    // Timed out or not, the loop re-checks the count first.
                    self.available.wait_until(&mut permits, deadline);
                }
            }
        }
    }

    /// Adds `n` permits; past `bound` it adds none and fails, or with `saturate` adds up to
    /// the bound.
    fn give(&self, n: usize, bound: usize, saturate: bool) -> Result<(), usize> {
        let mut permits = self.permits.lock();
        match permits.checked_add(n) {
            Some(total) if total <= bound => *permits = total,
            _ if saturate => *permits = bound,
            _ => return Err(bound),
        }
        drop(permits);
        for _ in 0..n {
            if !self.available.notify_one() {
                break;
            }
        }
        Ok(())
    }

    fn available(&self) -> usize {
        *self.permits.lock()
    }
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    pub fn new(permits: usize) -> Self {
        Semaphore {
            counter: Counter::new(permits),
        }
    }

    /// Takes a permit, blocking until one is free.
    pub fn acquire(&self) -> Permit<'_> {
        self.counter.take(None);
        Permit { semaphore: self }
    }

    /// Takes a permit, giving up after `timeout` (`None`).
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<Permit<'_>> {
        // Built only once the permit is taken: a permit that exists gives one back on drop.
        if self.counter.take(Some(timeout)) {
            Some(Permit { semaphore: self })
        } else {
            None
        }
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        self.acquire_timeout(Duration::ZERO)
    }

    /// Takes a permit and keeps it, with no guard: Python's `acquire()`, for a semaphore
    /// used as a signal between threads. Give it back with [`Semaphore::release`].
    pub fn hold(&self) {
        self.counter.take(None);
    }

    /// Like [`Semaphore::hold`], giving up after `timeout`; returns whether a permit was taken.
    pub fn hold_timeout(&self, timeout: Duration) -> bool {
        self.counter.take(Some(timeout))
    }

    /// Adds `n` permits (Python's `release(n)`), waking up to `n` blocked threads. The
    /// count saturates at `usize::MAX`.
    pub fn release(&self, n: usize) {
        if let Err(bound) = self.counter.give(n, usize::MAX, true) {
            unreachable!("a saturating release cannot pass its bound {bound}");
        }
    }

    /// How many permits are free now; only a snapshot.
    pub fn available(&self) -> usize {
        self.counter.available()
    }
}

impl BoundedSemaphore {
    /// A bounded semaphore with `permits` permits, which is also its bound.
    pub fn new(permits: usize) -> Self {
        BoundedSemaphore {
            counter: Counter::new(permits),
            bound: permits,
        }
    }

    /// Takes a permit, blocking until one is free.
    pub fn acquire(&self) -> BoundedPermit<'_> {
        self.counter.take(None);
        BoundedPermit { semaphore: self }
    }

    /// Takes a permit, giving up after `timeout` (`None`).
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<BoundedPermit<'_>> {
        // Built only once the permit is taken: a permit that exists gives one back on drop.
        if self.counter.take(Some(timeout)) {
            Some(BoundedPermit { semaphore: self })
        } else {
            None
        }
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> Option<BoundedPermit<'_>> {
        self.acquire_timeout(Duration::ZERO)
    }

    /// Takes a permit and keeps it, with no guard: Python's `acquire()`. Give it back with
    /// [`BoundedSemaphore::release`].
    pub fn hold(&self) {
        self.counter.take(None);
    }

    /// Like [`BoundedSemaphore::hold`], giving up after `timeout`; returns whether a permit
    /// was taken.
    pub fn hold_timeout(&self, timeout: Duration) -> bool {
        self.counter.take(Some(timeout))
    }

    /// Gives one permit back (Python's `release()`), waking one blocked thread.
    ///
    /// # Errors
    /// [`Error::Overflow`] when all permits are free already; nothing changes then.
    pub fn release(&self) -> Result<(), Error> {
        self.counter
            .give(1, self.bound, false)
            .map_err(|bound| Error::Overflow { bound })
    }

    /// How many permits are free now; only a snapshot.
    pub fn available(&self) -> usize {
        self.counter.available()
    }

    /// The initial and largest number of permits.
    pub fn bound(&self) -> usize {
        self.bound
    }
}

impl Permit<'_> {
    /// Keeps the permit taken: it is not given back on drop. Give it back later with
    /// [`Semaphore::release`].
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl BoundedPermit<'_> {
    /// Keeps the permit taken: it is not given back on drop. Give it back later with
    /// [`BoundedSemaphore::release`].
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.semaphore.release(1);
    }
}

impl Drop for BoundedPermit<'_> {
    /// Gives the permit back. If the count is at its bound already (a forgotten permit was
    /// released twice, or `release` was called for this one), nothing is added and the
    /// misuse is logged as an error.
    fn drop(&mut self) {
        if let Err(error) = self.semaphore.release() {
            tracing::error!(%error, "a BoundedSemaphore permit was dropped after an extra release()");
        }
    }
}

impl std::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semaphore")
            .field("available", &self.available())
            .finish()
    }
}

impl std::fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("available", &self.available())
            .field("bound", &self.bound)
            .finish()
    }
}

impl std::fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for BoundedPermit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedPermit").finish_non_exhaustive()
    }
}
