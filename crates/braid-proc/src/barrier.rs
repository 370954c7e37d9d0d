//! [`Barrier`]: a meeting point for a fixed number of processes, like Python's
//! `multiprocessing.Barrier`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::mutex::RawMutex;
use crate::object::{Kind, SharedObject, shared_serde};
use crate::{Error, Result, sys};

const LOCK: usize = 0;
/// `generation << 2 | RESET | BROKEN`, the word waiters sleep on.
const STATE: usize = 4;
const SLEEPERS: usize = 8;
const COUNT: usize = 12;
const PARTIES: usize = 16;

const BROKEN: u32 = 1;
/// The last round ended by a reset: its waiters leave with an error.
const RESET: u32 = 2;
const GENERATION: u32 = 4;

/// A meeting point for `parties` processes (or threads), like Python's
/// `multiprocessing.Barrier`: each [`wait`](Barrier::wait) blocks until `parties` are
/// waiting, then all go on together, each with a distinct arrival index.
///
/// The barrier is reusable. It breaks when a wait times out or on
/// [`abort`](Barrier::abort): every waiter then, and every later wait, gets
/// [`Error::BrokenBarrier`] until [`reset`](Barrier::reset). (Python's `action`
/// callable is not offered: a closure cannot cross processes.)
///
/// ```
/// use braid_proc::Barrier;
///
/// let b = Barrier::new(1).unwrap();
/// assert_eq!(b.wait(), Ok(0)); // one party: passes at once
/// b.abort();
/// assert!(b.wait().is_err());
/// b.reset();
/// assert_eq!(b.wait(), Ok(0));
/// ```
#[derive(Clone)]
pub struct Barrier {
    object: SharedObject,
}

impl Barrier {
    /// A barrier for `parties` parties.
    ///
    /// # Errors
    /// [`Error::Overflow`] when `parties` is 0 or past `u32::MAX` (no round could pass);
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn new(parties: usize) -> Result<Barrier> {
        let parties = u32::try_from(parties)
            .ok()
            .filter(|&p| p > 0)
            .ok_or(Error::Overflow {
                bound: u32::MAX as usize,
            })?;
        let object = SharedObject::create(Kind::Barrier, 24)?;
        object.u32(PARTIES).store(parties, Ordering::Release);
        Ok(Barrier { object })
    }

    fn mutex(&self) -> RawMutex<'_> {
        RawMutex::new(self.object.u32(LOCK))
    }

    fn publish(&self, state: u32) {
        self.object.u32(STATE).store(state, Ordering::SeqCst);
        if self.object.u32(SLEEPERS).load(Ordering::SeqCst) > 0 {
            sys::futex_wake(self.object.u32(STATE), u32::MAX);
        }
    }

    /// Waits until every party is waiting; returns this party's arrival index.
    ///
    /// # Errors
    /// [`Error::BrokenBarrier`] when the barrier is or becomes broken, or is reset.
    pub fn wait(&self) -> Result<usize> {
        self.wait_deadline(None)
    }

    /// Like [`wait`](Barrier::wait), giving up after `timeout`; giving up breaks the
    /// barrier for every waiter.
    ///
    /// # Errors
    /// [`Error::BrokenBarrier`], also on timeout.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize> {
        self.wait_deadline(sys::deadline(timeout))
    }

    fn wait_deadline(&self, deadline: Option<Instant>) -> Result<usize> {
        let guard = self.mutex().lock();
        let seen = self.object.u32(STATE).load(Ordering::Relaxed);
        if seen & BROKEN != 0 {
            return Err(Error::BrokenBarrier);
        }
        let index = self.object.u32(COUNT).load(Ordering::Relaxed);
        let parties = self.object.u32(PARTIES).load(Ordering::Relaxed);
        if index + 1 == parties {
            self.object.u32(COUNT).store(0, Ordering::Relaxed);
            self.publish((seen & !(RESET | BROKEN)).wrapping_add(GENERATION));
            drop(guard);
            return Ok(index as usize);
        }
        self.object.u32(COUNT).store(index + 1, Ordering::Relaxed);
        drop(guard);
        let state = self.object.u32(STATE);
        let moved = || state.load(Ordering::Acquire) != seen;
        if !sys::spin_until(moved) {
            while !moved() && !sys::expired(deadline) {
                self.object.u32(SLEEPERS).fetch_add(1, Ordering::SeqCst);
                sys::futex_wait(state, seen, deadline, None);
                self.object.u32(SLEEPERS).fetch_sub(1, Ordering::SeqCst);
            }
        }
        let now = state.load(Ordering::Acquire);
        if now == seen {
            // Timed out: break the round, unless it passed meanwhile.
            let _guard = self.mutex().lock();
            let now = state.load(Ordering::Acquire);
            if now == seen {
                self.publish(seen | BROKEN);
                return Err(Error::BrokenBarrier);
            }
            return self.outcome(seen, now, index);
        }
        self.outcome(seen, now, index)
    }

    fn outcome(&self, seen: u32, now: u32, index: u32) -> Result<usize> {
        let passed = now / GENERATION != seen / GENERATION && now & RESET == 0;
        if passed {
            Ok(index as usize)
        } else {
            Err(Error::BrokenBarrier)
        }
    }

    /// Breaks the barrier: current and later waits fail until [`reset`](Barrier::reset).
    pub fn abort(&self) {
        let _guard = self.mutex().lock();
        let state = self.object.u32(STATE).load(Ordering::Relaxed);
        self.publish(state | BROKEN);
    }

    /// Empties the barrier and mends it; parties waiting now leave with
    /// [`Error::BrokenBarrier`].
    pub fn reset(&self) {
        let _guard = self.mutex().lock();
        let state = self.object.u32(STATE).load(Ordering::Relaxed);
        self.object.u32(COUNT).store(0, Ordering::Relaxed);
        self.publish(((state & !(RESET | BROKEN)).wrapping_add(GENERATION)) | RESET);
    }

    /// The number of parties needed to pass.
    pub fn parties(&self) -> usize {
        self.object.u32(PARTIES).load(Ordering::Relaxed) as usize
    }

    /// The number of parties waiting now.
    pub fn n_waiting(&self) -> usize {
        if self.is_broken() {
            0
        } else {
            self.object.u32(COUNT).load(Ordering::Relaxed) as usize
        }
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.object.u32(STATE).load(Ordering::Acquire) & BROKEN != 0
    }
}

shared_serde!(Barrier, "Barrier", Kind::Barrier, |object| Barrier {
    object
});

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_threads_pass_together_with_distinct_indices() {
        let b = Barrier::new(3).unwrap();
        for _round in 0..3 {
            let others: Vec<_> = (0..2)
                .map(|_| {
                    let b = b.clone();
                    std::thread::spawn(move || b.wait())
                })
                .collect();
            let mut indices = vec![b.wait().unwrap()];
            for o in others {
                indices.push(o.join().unwrap().unwrap());
            }
            indices.sort_unstable();
            assert_eq!(indices, [0, 1, 2]);
        }
    }

    #[test]
    fn a_timeout_breaks_it_for_everyone_until_reset() {
        let b = Barrier::new(3).unwrap();
        let other = b.clone();
        let waiter = std::thread::spawn(move || other.wait());
        assert_eq!(
            b.wait_timeout(Duration::from_millis(20)),
            Err(Error::BrokenBarrier)
        );
        assert_eq!(waiter.join().unwrap(), Err(Error::BrokenBarrier));
        assert!(b.is_broken());
        b.reset();
        assert!(!b.is_broken());
        let other = b.clone();
        let waiter = std::thread::spawn(move || other.wait());
        while b.n_waiting() == 0 {
            std::thread::yield_now();
        }
        b.reset();
        assert_eq!(waiter.join().unwrap(), Err(Error::BrokenBarrier));
    }
}
