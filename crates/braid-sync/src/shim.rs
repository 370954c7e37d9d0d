//! The primitives under the crate's lock-free handshakes (the [`Event`](crate::Event)
//! state, the queue's length hint, the [`Condition`](crate::Condition) wait list):
//! parking_lot and std normally, loom's models under `cfg(braid_loom)`, so that the very same
//! code is model-checked.
//!
//! Also the one place that decides how long a waiter spins before it parks.

use std::time::{Duration, Instant};

#[cfg(not(braid_loom))]
pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
#[cfg(not(braid_loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(braid_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize};

#[cfg(braid_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize};
#[cfg(braid_loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

/// How long a blocked waiter spins on its hint before it parks.
///
/// A futex sleep and wake-up costs about 20 µs each way on small virtual machines, so a
/// hand-off that arrives within this budget is seen in well under a microsecond instead.
/// Spinning is bounded: past the budget the waiter sleeps in the kernel.
#[cfg(not(braid_loom))]
const SPIN_BUDGET: Duration = Duration::from_micros(30);

/// The instant `timeout` from now; `None` when that is too far to represent (wait forever).
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Locks `mutex`.
#[cfg(not(braid_loom))]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock()
}

/// Locks `mutex`.
#[cfg(braid_loom)]
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Blocks on `condvar` until notified (or spuriously woken), releasing `guard` meanwhile.
#[cfg(braid_loom)]
pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar
        .wait(guard)
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Like [`wait`], giving up at `deadline` (`None`: never). The flag says whether the
/// deadline has passed; the caller re-checks its state either way.
#[cfg(not(braid_loom))]
pub(crate) fn wait_until<'a, T>(
    condvar: &Condvar,
    mut guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
) -> (MutexGuard<'a, T>, bool) {
    match deadline {
        Some(deadline) => {
            let timed_out = condvar.wait_until(&mut guard, deadline).timed_out();
            (guard, timed_out)
        }
        None => {
            condvar.wait(&mut guard);
            (guard, false)
        }
    }
}

/// Under loom time does not pass: a timed wait is an untimed one.
#[cfg(braid_loom)]
pub(crate) fn wait_until<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    _deadline: Option<Instant>,
) -> (MutexGuard<'a, T>, bool) {
    (wait(condvar, guard), false)
}

/// Wakes one thread blocked on `condvar`. Whether one was woken does not matter to the
/// callers: every waiter re-checks its state under the lock.
pub(crate) fn notify_one(condvar: &Condvar) {
    condvar.notify_one();
}

/// Wakes every thread blocked on `condvar`.
pub(crate) fn notify_all(condvar: &Condvar) {
    condvar.notify_all();
}

/// Parks and unparks one thread: a token, as `std::thread::park` has. Made by the
/// thread that will park on it.
#[cfg(not(braid_loom))]
pub(crate) struct Parker(std::thread::Thread);

#[cfg(not(braid_loom))]
impl Parker {
    /// A parker for the calling thread.
    pub(crate) fn for_current_thread() -> Self {
        Parker(std::thread::current())
    }

    /// Blocks until unparked (or spuriously woken). Only the thread that made the parker
    /// may call it.
    pub(crate) fn park(&self) {
        std::thread::park();
    }

    /// Like [`park`](Parker::park), also returning at `deadline`.
    pub(crate) fn park_until(&self, deadline: Instant) {
        let now = Instant::now();
        if now < deadline {
            std::thread::park_timeout(deadline - now);
        }
    }

    /// Wakes the parked thread, or makes its next park return at once.
    pub(crate) fn unpark(&self) {
        self.0.unpark();
    }
}

/// Under loom, the token is a mutex and a condition variable: loom's own `unpark` also
/// wakes a thread blocked on a mutex, which the real one never does, so it cannot model
/// a token that may arrive late.
#[cfg(braid_loom)]
pub(crate) struct Parker {
    token: Mutex<bool>,
    unparked: Condvar,
}

#[cfg(braid_loom)]
impl Parker {
    pub(crate) fn for_current_thread() -> Self {
        Parker {
            token: Mutex::new(false),
            unparked: Condvar::new(),
        }
    }

    pub(crate) fn park(&self) {
        let mut token = lock(&self.token);
        while !*token {
            token = wait(&self.unparked, token);
        }
        *token = false;
    }

    /// Time does not pass under loom: a timed park is an untimed one.
    pub(crate) fn park_until(&self, _deadline: Instant) {
        self.park();
    }

    pub(crate) fn unpark(&self) {
        *lock(&self.token) = true;
        self.unparked.notify_one();
    }
}

/// Spins for at most the spin budget until `ready` holds; returns its last value.
///
/// `ready` reads a hint (an atomic) without taking any lock; the caller confirms under its
/// lock, so a stale hint costs only time, never correctness. On a single core spinning
/// cannot help (the thread that would make `ready` true is not running), so it checks once.
#[cfg(not(braid_loom))]
pub(crate) fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    if ready() {
        return true;
    }
    if !multi_core() {
        return false;
    }
    let start = Instant::now();
    let mut step = 0u32;
    loop {
        for _ in 0..1u32 << step.min(5) {
            std::hint::spin_loop();
        }
        step += 1;
        if ready() {
            return true;
        }
        if step > 5 && start.elapsed() >= SPIN_BUDGET {
            return false;
        }
    }
}

/// Under loom spinning only multiplies the interleavings: check once.
#[cfg(braid_loom)]
pub(crate) fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    ready()
}

#[cfg(not(braid_loom))]
fn multi_core() -> bool {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())) > 1
}

#[cfg(all(test, not(braid_loom)))]
mod tests {
    use super::*;

    #[test]
    fn spin_until_sees_a_ready_hint_and_gives_up_when_it_never_comes() {
        let mut calls = 0;
        assert!(spin_until(|| {
            calls += 1;
            calls == 3 || !multi_core()
        }));
        // Bounded: it returns (how fast is the benchmark's business, not a test's).
        assert!(!spin_until(|| false));
    }

    #[test]
    fn parker_token_is_kept_until_parked() {
        let parker = Parker::for_current_thread();
        parker.unpark();
        parker.park(); // returns at once: the token was there
        parker.park_until(Instant::now()); // a past deadline returns at once
    }

    #[test]
    fn deadline_far_away_is_none() {
        assert!(deadline(Duration::MAX).is_none());
        assert!(deadline(Duration::from_secs(1)).is_some());
    }
}
