//! The lock word of the user-facing locks: 0 free, 1 held, 2 held with sleepers
//! (Drepper's futex mutex). A blocked acquire spins briefly, then sleeps.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use crate::sys;

/// Takes the lock, waiting until `deadline`; false on timeout.
pub(crate) fn acquire(word: &AtomicU32, deadline: Option<Instant>) -> bool {
    let take = || {
        word.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    };
    if take() || sys::spin_until(|| word.load(Ordering::Relaxed) == 0 && take()) {
        return true;
    }
    loop {
        if word.swap(2, Ordering::Acquire) == 0 {
            return true;
        }
        if sys::expired(deadline) {
            return false;
        }
        sys::futex_wait(word, 2, deadline, None);
    }
}

/// Takes the lock if it is free.
pub(crate) fn try_acquire(word: &AtomicU32) -> bool {
    word.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

/// Frees the lock; false when it was not held.
pub(crate) fn release(word: &AtomicU32) -> bool {
    match word.swap(0, Ordering::Release) {
        0 => false,
        1 => true,
        _ => {
            sys::futex_wake(word, 1);
            true
        }
    }
}

/// Whether the lock is held.
pub(crate) fn is_locked(word: &AtomicU32) -> bool {
    word.load(Ordering::Relaxed) != 0
}
