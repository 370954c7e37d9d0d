//! [`Event`]: a flag processes wait on, like Python's `multiprocessing.Event`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::object::{Kind, SharedObject, shared_serde};
use crate::{Result, sys};

/// `(generation << 1) | flag`; the generation counts the sets that raised the flag.
const STATE: usize = 0;
const SLEEPERS: usize = 4;
const FLAG: u32 = 1;

/// A flag shared between processes that they can wait on, like Python's
/// `multiprocessing.Event`.
///
/// [`set`](Event::set) wakes every waiter in every process; [`clear`](Event::clear)
/// lowers the flag again. A waiter woken by `set` returns even if the flag was cleared
/// again before it ran, as in Python. A wait spins briefly before it sleeps.
///
/// ```
/// use braid_proc::Event;
///
/// let ready = Event::new().unwrap();
/// assert!(!ready.wait_timeout(std::time::Duration::from_millis(1)));
/// ready.set();
/// assert!(ready.is_set());
/// ready.wait(); // returns at once
/// ```
#[derive(Clone)]
pub struct Event {
    object: SharedObject,
}

impl Event {
    /// A new event, not set.
    ///
    /// # Errors
    /// [`crate::Error::Os`] when the shared memory cannot be made.
    pub fn new() -> Result<Event> {
        Ok(Event {
            object: SharedObject::create(Kind::Event, 8)?,
        })
    }

    /// Raises the flag and wakes every waiter.
    pub fn set(&self) {
        let state = self.object.u32(STATE);
        let mut s = state.load(Ordering::Acquire);
        while s & FLAG == 0 {
            match state.compare_exchange_weak(
                s,
                s.wrapping_add(3),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if self.object.u32(SLEEPERS).load(Ordering::SeqCst) > 0 {
                        sys::futex_wake(state, u32::MAX);
                    }
                    return;
                }
                Err(now) => s = now,
            }
        }
    }

    /// Lowers the flag: waits from now on block until the next [`set`](Event::set).
    pub fn clear(&self) {
        self.object.u32(STATE).fetch_and(!FLAG, Ordering::SeqCst);
    }

    /// Whether the flag is up.
    pub fn is_set(&self) -> bool {
        self.object.u32(STATE).load(Ordering::Acquire) & FLAG != 0
    }

    /// Waits until the flag is up.
    pub fn wait(&self) {
        self.wait_deadline(None);
    }

    /// Waits at most `timeout`; true when the flag was set (Python's return value).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_deadline(sys::deadline(timeout))
    }

    fn wait_deadline(&self, deadline: Option<Instant>) -> bool {
        let state = self.object.u32(STATE);
        let start = state.load(Ordering::Acquire);
        if start & FLAG != 0 {
            return true;
        }
        // With the flag down, only a set changes the state.
        let changed = || state.load(Ordering::Acquire) != start;
        if sys::spin_until(changed) {
            return true;
        }
        loop {
            if sys::expired(deadline) {
                return changed();
            }
            self.object.u32(SLEEPERS).fetch_add(1, Ordering::SeqCst);
            sys::futex_wait(state, start, deadline, None);
            self.object.u32(SLEEPERS).fetch_sub(1, Ordering::SeqCst);
            if changed() {
                return true;
            }
        }
    }
}

shared_serde!(Event, "Event", Kind::Event, |object| Event { object });

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_then_clear_still_wakes_the_waiter() {
        let e = Event::new().unwrap();
        let other = e.clone();
        let waiter = std::thread::spawn(move || other.wait_timeout(Duration::from_secs(20)));
        // Until the waiter sleeps in the kernel.
        while e.object.u32(SLEEPERS).load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        e.set();
        e.clear();
        assert!(waiter.join().unwrap());
        assert!(!e.is_set());
    }
}
