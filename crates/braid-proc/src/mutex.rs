//! A mutex on one 32-bit word of shared memory, for the crate's own shared structures
//! (queues, conditions, barriers, events).
//!
//! The word holds the owner's thread id (and a flag when others sleep on it), so a
//! waiter that has waited a while can see that the owner died — a process killed while
//! it held the lock — and take the lock over instead of hanging. The structures guarded
//! by it publish each change with a final store, so a half-done change of a killed owner
//! is never visible.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use crate::sys;

const WAITERS: u32 = 0x8000_0000;
const OWNER: u32 = 0x3fff_ffff;

/// A view of a mutex word.
#[derive(Clone, Copy)]
pub(crate) struct RawMutex<'a> {
    word: &'a AtomicU32,
}

/// Holds a [`RawMutex`]; unlocks on drop.
pub(crate) struct MutexGuard<'a> {
    mutex: RawMutex<'a>,
}

impl<'a> RawMutex<'a> {
    pub(crate) fn new(word: &'a AtomicU32) -> Self {
        RawMutex { word }
    }

    fn try_take(&self, me: u32) -> bool {
        self.word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes the lock, waiting until `deadline` (`None` on timeout).
    pub(crate) fn lock_until(&self, deadline: Option<Instant>) -> Option<MutexGuard<'a>> {
        let me = sys::gettid() & OWNER;
        if self.try_take(me)
            || sys::spin_until(|| self.word.load(Ordering::Relaxed) == 0 && self.try_take(me))
        {
            return Some(MutexGuard { mutex: *self });
        }
        // Who held it, and since when, to tell a slow owner from a dead one.
        let mut watched: Option<(u32, Instant)> = None;
        loop {
            let v = self.word.load(Ordering::Relaxed);
            if v == 0 {
                // Others may sleep: keep the flag so that our unlock wakes one.
                if self
                    .word
                    .compare_exchange(0, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Some(MutexGuard { mutex: *self });
                }
                continue;
            }
            let owner = v & OWNER;
            match watched {
                Some((who, since)) if who == owner => {
                    if since.elapsed() >= sys::LIVENESS_SLICE && !sys::thread_alive(owner) {
                        if self
                            .word
                            .compare_exchange(v, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                            .is_ok()
                        {
                            tracing::warn!(
                                dead_owner = owner,
                                "took over a shared lock whose owner died"
                            );
                            return Some(MutexGuard { mutex: *self });
                        }
                        continue;
                    }
                }
                _ => watched = Some((owner, Instant::now())),
            }
            if v & WAITERS == 0
                && self
                    .word
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            if sys::expired(deadline) {
                return None;
            }
            sys::futex_wait(self.word, v | WAITERS, deadline, Some(sys::LIVENESS_SLICE));
        }
    }

    /// Takes the lock, however long it takes.
    pub(crate) fn lock(&self) -> MutexGuard<'a> {
        loop {
            if let Some(guard) = self.lock_until(None) {
                return guard;
            }
        }
    }

    fn unlock(&self) {
        if self.word.swap(0, Ordering::Release) & WAITERS != 0 {
            sys::futex_wake(self.word, 1);
        }
    }
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn excludes_threads() {
        let word = Arc::new(AtomicU32::new(0));
        let counter = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (word, counter) = (word.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let _g = RawMutex::new(&word).lock();
                        // A non-atomic read-modify-write, safe only under the lock.
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::SeqCst), 8000);
        assert_eq!(word.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_dead_owner_is_taken_over() {
        let word = AtomicU32::new(0);
        // A thread takes the lock and ends without releasing it.
        let tid = std::thread::scope(|s| {
            s.spawn(|| {
                let guard = RawMutex::new(&word).lock();
                std::mem::forget(guard);
                sys::gettid()
            })
            .join()
            .unwrap()
        });
        assert_eq!(word.load(Ordering::SeqCst) & OWNER, tid & OWNER);
        let guard = RawMutex::new(&word).lock_until(None);
        assert!(guard.is_some());
    }

    #[test]
    fn timeout_gives_none() {
        let word = AtomicU32::new(0);
        let _held = RawMutex::new(&word).lock();
        let got = std::thread::scope(|s| {
            s.spawn(|| {
                RawMutex::new(&word)
                    .lock_until(Some(Instant::now() + std::time::Duration::from_millis(5)))
                    .is_some()
            })
            .join()
            .unwrap()
        });
        assert!(!got);
    }
}
