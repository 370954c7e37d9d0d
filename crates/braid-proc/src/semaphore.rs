//! [`Semaphore`] and [`BoundedSemaphore`]: counters of permits shared between
//! processes, like Python's `multiprocessing.Semaphore` and `BoundedSemaphore`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::object::{Kind, SharedObject, shared_serde};
use crate::{Error, Result, sys};

const VALUE: usize = 0;
const SLEEPERS: usize = 4;
/// The bound of a bounded semaphore; 0 for none.
const BOUND: usize = 8;

/// The counter both semaphores are made of.
#[derive(Clone)]
struct Counter {
    object: SharedObject,
}

impl Counter {
    fn new(permits: u32, bound: u32) -> Result<Counter> {
        let object = SharedObject::create(Kind::Semaphore, 16)?;
        object.u32(VALUE).store(permits, Ordering::Relaxed);
        object.u32(BOUND).store(bound, Ordering::Release);
        Ok(Counter { object })
    }

    fn try_take(&self) -> bool {
        let value = self.object.u32(VALUE);
        let mut v = value.load(Ordering::Relaxed);
        while v > 0 {
            match value.compare_exchange_weak(v, v - 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => v = now,
            }
        }
        false
    }

    fn take(&self, deadline: Option<Instant>) -> bool {
        if self.try_take() {
            return true;
        }
        let value = self.object.u32(VALUE);
        loop {
            if sys::spin_until(|| value.load(Ordering::Relaxed) > 0) && self.try_take() {
                return true;
            }
            if sys::expired(deadline) {
                return self.try_take();
            }
            self.object.u32(SLEEPERS).fetch_add(1, Ordering::SeqCst);
            sys::futex_wait(value, 0, deadline, None);
            self.object.u32(SLEEPERS).fetch_sub(1, Ordering::SeqCst);
            if self.try_take() {
                return true;
            }
        }
    }

    /// Adds `n` permits; false when a bound would be passed (nothing is added then).
    fn give(&self, n: u32) -> bool {
        let value = self.object.u32(VALUE);
        let bound = self.object.u32(BOUND).load(Ordering::Relaxed);
        let mut v = value.load(Ordering::Relaxed);
        loop {
            let Some(next) = v.checked_add(n).filter(|&next| bound == 0 || next <= bound) else {
                return false;
            };
            match value.compare_exchange_weak(v, next, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        if self.object.u32(SLEEPERS).load(Ordering::SeqCst) > 0 {
            sys::futex_wake(value, n);
        }
        true
    }

    fn available(&self) -> usize {
        self.object.u32(VALUE).load(Ordering::Relaxed) as usize
    }
}

/// A counter of permits shared between processes, like Python's
/// `multiprocessing.Semaphore`: [`acquire`](Semaphore::acquire) takes one (waiting while
/// there are none), [`release`](Semaphore::release) gives some back.
///
/// The permit returned by `acquire` gives itself back on drop; [`hold`](Semaphore::hold)
/// takes one without a guard, to be released elsewhere (another thread or process).
///
/// ```
/// use braid_proc::Semaphore;
///
/// let slots = Semaphore::new(2).unwrap();
/// let a = slots.acquire();
/// let _b = slots.acquire();
/// assert!(slots.try_acquire().is_none());
/// drop(a);
/// assert_eq!(slots.available(), 1);
/// ```
#[derive(Clone)]
pub struct Semaphore {
    object: SharedObject,
}

/// A permit of a [`Semaphore`], given back on drop.
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct Permit<'a> {
    semaphore: &'a Semaphore,
}

impl Semaphore {
    fn counter(&self) -> Counter {
        Counter {
            object: self.object.clone(),
        }
    }

    /// A semaphore with `permits` permits.
    ///
    /// # Errors
    /// [`Error::Os`] when the shared memory cannot be made; [`Error::Overflow`] for more
    /// than `u32::MAX` permits.
    pub fn new(permits: usize) -> Result<Semaphore> {
        let permits = u32::try_from(permits).map_err(|_| Error::Overflow {
            bound: u32::MAX as usize,
        })?;
        Ok(Semaphore {
            object: Counter::new(permits, 0)?.object,
        })
    }

    /// Takes a permit, waiting as long as it takes.
    pub fn acquire(&self) -> Permit<'_> {
        self.hold();
        Permit { semaphore: self }
    }

    /// Takes a permit, waiting at most `timeout`; `None` on timeout.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<Permit<'_>> {
        // Built only on success: a guard releases on drop.
        if self.hold_timeout(timeout) {
            Some(Permit { semaphore: self })
        } else {
            None
        }
    }

    /// Takes a permit if one is there now.
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        // Built only on success: a guard releases on drop.
        if self.counter().try_take() {
            Some(Permit { semaphore: self })
        } else {
            None
        }
    }

    /// Takes a permit without a guard (Python's `acquire()`).
    pub fn hold(&self) {
        while !self.counter().take(None) {}
    }

    /// Like [`hold`](Semaphore::hold), waiting at most `timeout`; false on timeout.
    pub fn hold_timeout(&self, timeout: Duration) -> bool {
        self.counter().take(sys::deadline(timeout))
    }

    /// Gives `n` permits back (Python's `release(n)`), waking that many waiters.
    pub fn release(&self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if !self.counter().give(n) {
            tracing::warn!("a semaphore's count would pass u32::MAX; the release is ignored");
        }
    }

    /// The number of permits available now (Python's `get_value()`).
    pub fn available(&self) -> usize {
        self.counter().available()
    }
}

impl Permit<'_> {
    /// Keeps the permit taken: it is not given back on drop.
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.semaphore.release(1);
    }
}

shared_serde!(Semaphore, "Semaphore", Kind::Semaphore, |object| {
    Semaphore { object }
});

/// A [`Semaphore`] that refuses to be released past its initial value, like Python's
/// `multiprocessing.BoundedSemaphore`.
///
/// ```
/// use braid_proc::BoundedSemaphore;
///
/// let s = BoundedSemaphore::new(1).unwrap();
/// assert!(s.release().is_err()); // already at its bound
/// s.hold();
/// s.release().unwrap();
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    object: SharedObject,
}

/// A permit of a [`BoundedSemaphore`], given back on drop.
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct BoundedPermit<'a> {
    semaphore: &'a BoundedSemaphore,
}

impl BoundedSemaphore {
    fn counter(&self) -> Counter {
        Counter {
            object: self.object.clone(),
        }
    }

    /// A semaphore with `permits` permits, which is also its bound.
    ///
    /// # Errors
    /// [`Error::Os`] when the shared memory cannot be made; [`Error::Overflow`] for more
    /// than `u32::MAX` permits.
    pub fn new(permits: usize) -> Result<BoundedSemaphore> {
        let permits = u32::try_from(permits).map_err(|_| Error::Overflow {
            bound: u32::MAX as usize,
        })?;
        Ok(BoundedSemaphore {
            object: Counter::new(permits, permits.max(1))?.object,
        })
    }

    /// Takes a permit, waiting as long as it takes.
    pub fn acquire(&self) -> BoundedPermit<'_> {
        self.hold();
        BoundedPermit { semaphore: self }
    }

    /// Takes a permit, waiting at most `timeout`; `None` on timeout.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<BoundedPermit<'_>> {
        // Built only on success: a guard releases on drop.
        if self.hold_timeout(timeout) {
            Some(BoundedPermit { semaphore: self })
        } else {
            None
        }
    }

    /// Takes a permit if one is there now.
    pub fn try_acquire(&self) -> Option<BoundedPermit<'_>> {
        // Built only on success: a guard releases on drop.
        if self.counter().try_take() {
            Some(BoundedPermit { semaphore: self })
        } else {
            None
        }
    }

    /// Takes a permit without a guard.
    pub fn hold(&self) {
        while !self.counter().take(None) {}
    }

    /// Like [`hold`](BoundedSemaphore::hold), waiting at most `timeout`; false on
    /// timeout.
    pub fn hold_timeout(&self, timeout: Duration) -> bool {
        self.counter().take(sys::deadline(timeout))
    }

    /// Gives one permit back.
    ///
    /// # Errors
    /// [`Error::Overflow`] when that would pass the bound (Python's `ValueError`).
    pub fn release(&self) -> Result<()> {
        if self.counter().give(1) {
            Ok(())
        } else {
            Err(Error::Overflow {
                bound: self.bound(),
            })
        }
    }

    /// The number of permits available now.
    pub fn available(&self) -> usize {
        self.counter().available()
    }

    /// The bound (the initial number of permits).
    pub fn bound(&self) -> usize {
        self.object.u32(BOUND).load(Ordering::Relaxed) as usize
    }
}

impl BoundedPermit<'_> {
    /// Keeps the permit taken: it is not given back on drop.
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for BoundedPermit<'_> {
    fn drop(&mut self) {
        if self.semaphore.release().is_err() {
            tracing::warn!("a bounded permit came back past the bound (released elsewhere too)");
        }
    }
}

shared_serde!(
    BoundedSemaphore,
    "BoundedSemaphore",
    Kind::Semaphore,
    |object| BoundedSemaphore { object }
);

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
            .field("bound", &self.bound())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_wait_and_come_back() {
        let s = Semaphore::new(1).unwrap();
        s.hold();
        assert!(!s.hold_timeout(Duration::from_millis(3)));
        let other = s.clone();
        let waiter = std::thread::spawn(move || other.hold_timeout(Duration::from_secs(20)));
        s.release(1);
        assert!(waiter.join().unwrap());
        assert_eq!(s.available(), 0);
        s.release(3);
        assert_eq!(s.available(), 3);
    }

    #[test]
    fn bounded_refuses_extra_releases() {
        let s = BoundedSemaphore::new(2).unwrap();
        assert_eq!(s.release(), Err(Error::Overflow { bound: 2 }));
        let p = s.acquire();
        p.forget();
        assert_eq!(s.available(), 1);
        s.release().unwrap();
        assert_eq!(s.available(), 2);
    }
}
