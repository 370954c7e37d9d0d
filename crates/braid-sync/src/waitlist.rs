//! The waiters of a [`Condition`](crate::Condition): a FIFO of per-thread tokens, each a
//! flag plus the thread to unpark.
//!
//! A waiter registers while it still holds the condition's lock, so a notifier that
//! changes the state under that lock and then notifies always finds it: no wake-up is
//! lost. The notifier raises the token's flag under the list's lock and unparks the
//! thread; the waiter spins on the flag briefly, then parks until it is raised.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::shim::{self, Arc, AtomicBool, Mutex, Parker};

/// One waiting thread's token.
pub(crate) struct Waiter {
    notified: AtomicBool,
    parker: Parker,
}

impl Waiter {
    /// A new token for the calling thread, with its flag down.
    fn new_for_current_thread() -> Arc<Waiter> {
        Arc::new(Waiter {
            notified: AtomicBool::new(false),
            parker: Parker::for_current_thread(),
        })
    }

    /// The calling thread's token, with its flag down.
    #[cfg(not(braid_loom))]
    fn for_current_thread() -> Arc<Waiter> {
        thread_local! {
            static WAITER: Arc<Waiter> = Waiter::new_for_current_thread();
        }
        // A thread waits for one thing at a time, and a token leaves every list before its
        // wait returns, so reusing it is safe. (During thread-local teardown, a new one.)
        match WAITER.try_with(Arc::clone) {
            Ok(waiter) => {
                waiter.notified.store(false, Ordering::Relaxed);
                waiter
            }
            Err(_) => Waiter::new_for_current_thread(),
        }
    }

    /// Under loom every wait gets a new token: loom has no std thread-locals.
    #[cfg(braid_loom)]
    fn for_current_thread() -> Arc<Waiter> {
        Waiter::new_for_current_thread()
    }

    /// Blocks until notified.
    pub(crate) fn wait(&self) {
        if shim::spin_until(|| self.notified.load(Ordering::Acquire)) {
            return;
        }
        while !self.notified.load(Ordering::Acquire) {
            self.parker.park();
        }
    }

    /// Blocks until notified or `deadline`; returns whether it was notified. A waiter that
    /// was not notified is still registered: the caller must [`WaitList::cancel`] it.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let Some(deadline) = deadline else {
            self.wait();
            return true;
        };
        if shim::spin_until(|| self.notified.load(Ordering::Acquire)) {
            return true;
        }
        loop {
            if self.notified.load(Ordering::Acquire) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            self.parker.park_until(deadline);
        }
    }
}

/// The threads waiting on one condition, in arrival order.
pub(crate) struct WaitList {
    queue: Mutex<VecDeque<Arc<Waiter>>>,
}

impl WaitList {
    pub(crate) fn new() -> Self {
        WaitList {
            queue: Mutex::new(VecDeque::new()),
        }
    }

    /// Registers the calling thread; call while holding the lock that guards the state
    /// waited on, then release that lock and [`Waiter::wait`].
    pub(crate) fn register(&self) -> Arc<Waiter> {
        let waiter = Waiter::for_current_thread();
        shim::lock(&self.queue).push_back(waiter.clone());
        waiter
    }

    /// Takes a waiter whose timed wait ran out off the list. Returns true when it had been
    /// notified meanwhile (it was no longer listed): that wait counts as woken.
    pub(crate) fn cancel(&self, waiter: &Arc<Waiter>) -> bool {
        let mut queue = shim::lock(&self.queue);
        match queue.iter().position(|w| Arc::ptr_eq(w, waiter)) {
            Some(index) => {
                queue.remove(index);
                false
            }
            None => true,
        }
    }

    /// Wakes up to `n` of the threads registered now, oldest first; returns how many.
    pub(crate) fn notify(&self, n: usize) -> usize {
        match n {
            0 => 0,
            1 => {
                let waiter = {
                    let mut queue = shim::lock(&self.queue);
                    let Some(waiter) = queue.pop_front() else {
                        return 0;
                    };
                    waiter.notified.store(true, Ordering::Release);
                    waiter
                };
                waiter.parker.unpark();
                1
            }
            _ => {
                let woken: Vec<Arc<Waiter>> = {
                    let mut queue = shim::lock(&self.queue);
                    let take = n.min(queue.len());
                    // Raised under the list's lock: once `cancel` finds a token gone, its
                    // flag is up, so the thread can reuse the token for its next wait.
                    queue
                        .drain(..take)
                        .inspect(|waiter| waiter.notified.store(true, Ordering::Release))
                        .collect()
                };
                for waiter in &woken {
                    waiter.parker.unpark();
                }
                woken.len()
            }
        }
    }
}

#[cfg(all(test, braid_loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    /// A condition's wait loop on a `bool` guarded by a mutex, as `ConditionGuard::wait`
    /// runs it: register under the lock, release it, wait for the token.
    fn wait_for_flag(flag: &Mutex<bool>, list: &WaitList) {
        let mut guard = shim::lock(flag);
        while !*guard {
            let waiter = list.register();
            drop(guard);
            waiter.wait();
            guard = shim::lock(flag);
        }
    }

    #[test]
    fn loom_waitlist_notify_one_is_never_lost() {
        loom::model(|| {
            let state = Arc::new((Mutex::new(false), WaitList::new()));
            let s2 = state.clone();
            let waiter = thread::spawn(move || wait_for_flag(&s2.0, &s2.1));
            *shim::lock(&state.0) = true;
            state.1.notify(1);
            waiter.join().unwrap();
        });
    }

    #[test]
    fn loom_waitlist_notify_all_wakes_both() {
        // Three threads and two parkers: bound the preemptions so the model runs in
        // seconds (bugs need few preemptions to show).
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let state = Arc::new((Mutex::new(false), WaitList::new()));
            let (s1, s2) = (state.clone(), state.clone());
            let a = thread::spawn(move || wait_for_flag(&s1.0, &s1.1));
            let b = thread::spawn(move || wait_for_flag(&s2.0, &s2.1));
            {
                let mut guard = shim::lock(&state.0);
                *guard = true;
                // Notifying with the lock held, as Python requires, must work too.
                state.1.notify(usize::MAX);
            }
            a.join().unwrap();
            b.join().unwrap();
        });
    }

    #[test]
    fn loom_waitlist_cancel_races_notify() {
        loom::model(|| {
            let list = Arc::new(WaitList::new());
            let waiter = list.register();
            let l2 = list.clone();
            let notifier = thread::spawn(move || l2.notify(1));
            // A timed-out waiter takes itself off; if the notifier took it first, the
            // cancel must say so, and both sides agree on one wake-up.
            let notified = list.cancel(&waiter);
            let woken = notifier.join().unwrap();
            assert_eq!(notified, woken == 1);
            if notified {
                waiter.wait();
            }
        });
    }
}
