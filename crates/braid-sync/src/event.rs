//! [`Event`]: a flag threads wait on, like Python's `threading.Event`.

use std::time::Duration;

use crate::shim::{self, AtomicUsize, Condvar, Mutex};
use std::sync::atomic::Ordering;

/// A flag that threads can wait on until another thread sets it, like Python's
/// `threading.Event`.
///
/// [`set`](Event::set) wakes every waiter; [`clear`](Event::clear) resets the flag so that
/// later waits block again. A waiter woken by `set` returns even if the flag was cleared
/// again before it ran, as in Python. A blocked wait spins for a few microseconds before
/// it sleeps, so a quick hand-off costs far less than a kernel wake-up.
///
/// ```
/// use std::sync::Arc;
/// use braid_sync::{Event, spawn};
///
/// let ready = Arc::new(Event::new());
/// let signal = ready.clone();
/// let worker = spawn("worker", move || signal.set()).unwrap();
/// ready.wait();
/// assert!(ready.is_set());
/// worker.join().unwrap();
/// ```
pub struct Event {
    /// `(generation << 1) | flag`; the generation counts the sets that raised the flag.
    /// Written only under `lock`; read without it as the spinning waiter's hint.
    state: AtomicUsize,
    lock: Mutex<()>,
    changed: Condvar,
}

const FLAG: usize = 1;
/// Raising the flag moves to the next generation: `((g + 1) << 1) | 1 = (g << 1) + 3`.
const RAISE: usize = 3;

impl Event {
    /// A new event, not set.
    pub fn new() -> Self {
        Event {
            state: AtomicUsize::new(0),
            lock: Mutex::new(()),
            changed: Condvar::new(),
        }
    }

    /// Sets the flag and wakes every thread waiting for it. Setting a set event does
    /// nothing.
    pub fn set(&self) {
        if self.state.load(Ordering::Acquire) & FLAG != 0 {
            return;
        }
        let guard = shim::lock(&self.lock);
        let state = self.state.load(Ordering::Relaxed);
        if state & FLAG != 0 {
            return;
        }
        self.state
            .store(state.wrapping_add(RAISE), Ordering::Release);
        drop(guard);
        shim::notify_all(&self.changed);
    }

    /// Resets the flag: waits that start from now on block until the next
    /// [`set`](Event::set).
    pub fn clear(&self) {
        let _guard = shim::lock(&self.lock);
        let state = self.state.load(Ordering::Relaxed);
        self.state.store(state & !FLAG, Ordering::Release);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.state.load(Ordering::Acquire) & FLAG != 0
    }

    /// Blocks until the flag is set (returns at once if it is).
    pub fn wait(&self) {
        self.wait_deadline(None);
    }

    /// Blocks until the flag is set or `timeout` passes; true when it was set (Python's
    /// return value), false on timeout.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_deadline(shim::deadline(timeout))
    }

    fn wait_deadline(&self, deadline: Option<std::time::Instant>) -> bool {
        let start = self.state.load(Ordering::Acquire);
        if start & FLAG != 0 {
            return true;
        }
        // With the flag down, only `set` changes the state: any change means it was set.
        if shim::spin_until(|| self.state.load(Ordering::Acquire) != start) {
            return true;
        }
        let mut guard = shim::lock(&self.lock);
        while self.state.load(Ordering::Acquire) == start {
            let (next, timed_out) = shim::wait_until(&self.changed, guard, deadline);
            guard = next;
            if timed_out {
                return self.state.load(Ordering::Acquire) != start;
            }
        }
        true
    }
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("is_set", &self.is_set())
            .finish()
    }
}

#[cfg(all(test, not(braid_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn set_clear_is_set() {
        let e = Event::new();
        assert!(!e.is_set());
        e.set();
        e.set();
        assert!(e.is_set());
        assert!(e.wait_timeout(Duration::ZERO));
        e.clear();
        assert!(!e.is_set());
        assert!(!e.wait_timeout(Duration::from_millis(1)));
    }

    #[test]
    fn a_pulse_wakes_a_parked_waiter() {
        let e = Arc::new(Event::new());
        let entered = Arc::new(Event::new());
        let (e2, entered2) = (e.clone(), entered.clone());
        let waiter = std::thread::spawn(move || {
            entered2.set();
            e2.wait_timeout(Duration::from_secs(30))
        });
        entered.wait();
        // Let the waiter get past its spin and park, so the pulse must wake it.
        std::thread::sleep(Duration::from_millis(5));
        e.set();
        e.clear();
        assert!(waiter.join().unwrap(), "the waiter saw the set");
    }
}

#[cfg(all(test, braid_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    #[test]
    fn loom_event_set_wakes_waiter() {
        loom::model(|| {
            let e = Arc::new(Event::new());
            let e2 = e.clone();
            let setter = thread::spawn(move || e2.set());
            e.wait();
            assert!(e.is_set());
            setter.join().unwrap();
        });
    }

    #[test]
    fn loom_event_set_clear_set_is_never_lost() {
        loom::model(|| {
            let e = Arc::new(Event::new());
            let started = Arc::new(Event::new());
            let (e2, started2) = (e.clone(), started.clone());
            let waiter = thread::spawn(move || {
                started2.set();
                e2.wait();
            });
            started.wait();
            // Whichever state the waiter reads, the pulse or the final set must wake it.
            e.set();
            e.clear();
            e.set();
            waiter.join().unwrap();
        });
    }
}
