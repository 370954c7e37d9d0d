//! [`Semaphore`] and [`BoundedSemaphore`], like Python's `asyncio` semaphores, on tokio's
//! fair semaphore.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{SemaphorePermit, TryAcquireError};

use crate::Error;

/// A counter of permits: acquiring takes one (waiting while there is none), releasing
/// gives some back, like Python's `asyncio.Semaphore`.
///
/// [`acquire`](Semaphore::acquire) returns a [`Permit`] that gives its permit back on
/// drop (Python's `async with sem:`). [`release`](Semaphore::release) adds permits with no
/// upper bound; pair it with [`hold`](Semaphore::hold) or [`Permit::forget`] when a permit
/// is taken in one place and given back in another. Waiting tasks get permits in the order
/// they asked (tokio's semaphore is fair).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use braid_async::{Semaphore, gather};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // At most two of the eight jobs are inside at once.
/// let slots = Semaphore::new(2);
/// let inside = AtomicUsize::new(0);
/// let jobs = (0..8).map(|_| async {
///     let _permit = slots.acquire().await;
///     assert!(inside.fetch_add(1, Ordering::SeqCst) < 2);
///     tokio::task::yield_now().await;
///     inside.fetch_sub(1, Ordering::SeqCst);
/// });
/// gather(jobs).await;
/// assert_eq!(slots.available(), 2);
/// # }
/// ```
pub struct Semaphore {
    inner: tokio::sync::Semaphore,
}

/// A [`Semaphore`] that refuses to be released past its initial value, like Python's
/// `asyncio.BoundedSemaphore`: an extra release is a bug, reported as
/// [`Error::Overflow`].
///
/// ```
/// use braid_async::{BoundedSemaphore, Error};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = BoundedSemaphore::new(1);
/// let permit = pool.acquire().await;
/// assert!(pool.try_acquire().is_none());
/// drop(permit);
/// assert_eq!(pool.release(), Err(Error::Overflow { bound: 1 }));
/// # }
/// ```
pub struct BoundedSemaphore {
    inner: tokio::sync::Semaphore,
    bound: usize,
    /// Serialises releases, so that the bound check and the add are one step.
    releasing: Mutex<()>,
}

/// One permit of a [`Semaphore`]; given back on drop.
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct Permit<'a> {
    permit: SemaphorePermit<'a>,
}

/// One permit of a [`BoundedSemaphore`]; given back on drop.
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct BoundedPermit<'a> {
    semaphore: &'a BoundedSemaphore,
}

/// The most permits tokio's semaphore can hold.
const MAX_PERMITS: usize = tokio::sync::Semaphore::MAX_PERMITS;

/// Takes one permit of a semaphore braid never closes.
async fn take(semaphore: &tokio::sync::Semaphore) -> SemaphorePermit<'_> {
    match semaphore.acquire().await {
        Ok(permit) => permit,
        // `close` is never called on these semaphores, so `acquire` cannot fail.
        Err(closed) => unreachable!("a braid semaphore was closed: {closed}"),
    }
}

fn try_take(semaphore: &tokio::sync::Semaphore) -> Option<SemaphorePermit<'_>> {
    match semaphore.try_acquire() {
        Ok(permit) => Some(permit),
        Err(TryAcquireError::NoPermits) => None,
        Err(TryAcquireError::Closed) => unreachable!("a braid semaphore was closed"),
    }
}

impl Semaphore {
    /// A semaphore with `permits` permits (at most tokio's `MAX_PERMITS`, about 2^61).
    pub fn new(permits: usize) -> Self {
        Semaphore {
            inner: tokio::sync::Semaphore::new(permits.min(MAX_PERMITS)),
        }
    }

    /// Takes a permit, waiting until one is free.
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled acquire takes no permit and leaves its place in line.
    pub async fn acquire(&self) -> Permit<'_> {
        Permit {
            permit: take(&self.inner).await,
        }
    }

    /// Takes a permit, giving up after `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when none was free in time.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`acquire`](Semaphore::acquire).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Permit<'_>, Error> {
        crate::timeout(timeout, self.acquire()).await
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        try_take(&self.inner).map(|permit| Permit { permit })
    }

    /// Takes a permit and keeps it, with no guard: Python's `await sem.acquire()`, for a
    /// semaphore used as a signal between tasks. Give it back with
    /// [`release`](Semaphore::release).
    ///
    /// # Cancel safety
    /// Cancel safe, as [`acquire`](Semaphore::acquire).
    pub async fn hold(&self) {
        take(&self.inner).await.forget();
    }

    /// Adds `n` permits (Python's `release()`, `n` times), waking up to `n` waiting tasks.
    /// The count saturates at tokio's `MAX_PERMITS`.
    pub fn release(&self, n: usize) {
        let room = MAX_PERMITS - self.inner.available_permits().min(MAX_PERMITS);
        self.inner.add_permits(n.min(room));
    }

    /// How many permits are free now; only a snapshot.
    pub fn available(&self) -> usize {
        self.inner.available_permits()
    }

    /// Whether no permit is free now (Python's `locked()`); only a snapshot.
    pub fn is_locked(&self) -> bool {
        self.available() == 0
    }
}

impl BoundedSemaphore {
    /// A bounded semaphore with `permits` permits, which is also its bound (at most
    /// tokio's `MAX_PERMITS`).
    pub fn new(permits: usize) -> Self {
        let bound = permits.min(MAX_PERMITS);
        BoundedSemaphore {
            inner: tokio::sync::Semaphore::new(bound),
            bound,
            releasing: Mutex::new(()),
        }
    }

    /// Takes a permit, waiting until one is free.
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled acquire takes no permit and leaves its place in line.
    pub async fn acquire(&self) -> BoundedPermit<'_> {
        take(&self.inner).await.forget();
        BoundedPermit { semaphore: self }
    }

    /// Takes a permit, giving up after `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when none was free in time.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`acquire`](BoundedSemaphore::acquire).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<BoundedPermit<'_>, Error> {
        crate::timeout(timeout, self.acquire()).await
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> Option<BoundedPermit<'_>> {
        try_take(&self.inner).map(|permit| {
            permit.forget();
            BoundedPermit { semaphore: self }
        })
    }

    /// Takes a permit and keeps it, with no guard: Python's `await sem.acquire()`. Give it
    /// back with [`release`](BoundedSemaphore::release).
    ///
    /// # Cancel safety
    /// Cancel safe, as [`acquire`](BoundedSemaphore::acquire).
    pub async fn hold(&self) {
        take(&self.inner).await.forget();
    }

    /// Gives one permit back (Python's `release()`), waking one waiting task.
    ///
    /// # Errors
    /// [`Error::Overflow`] when all permits are free already; nothing changes then.
    pub fn release(&self) -> Result<(), Error> {
        let _one_at_a_time = self.releasing.lock();
        if self.inner.available_permits() >= self.bound {
            return Err(Error::Overflow { bound: self.bound });
        }
        self.inner.add_permits(1);
        Ok(())
    }

    /// How many permits are free now; only a snapshot.
    pub fn available(&self) -> usize {
        self.inner.available_permits()
    }

    /// Whether no permit is free now (Python's `locked()`); only a snapshot.
    pub fn is_locked(&self) -> bool {
        self.available() == 0
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
        self.permit.forget();
    }
}

impl BoundedPermit<'_> {
    /// Keeps the permit taken: it is not given back on drop. Give it back later with
    /// [`BoundedSemaphore::release`].
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for BoundedPermit<'_> {
    /// Gives the permit back. If the count is at its bound already (`release` was called
    /// for this permit as well), nothing is added and the misuse is logged as an error.
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
