//! Running a future to completion on the calling thread, for the blocking forms of every
//! operation and for the OS-threads scheduler.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::Error;

/// How many times a blocked thread checks for its wake-up before it sleeps: a hand-off
/// from a thread that is running costs far less than a kernel wake-up.
const SPINS: u32 = 200;

thread_local! {
    /// Set on the threads of the cooperative and multi-thread schedulers, where a
    /// blocking call would stall every process that shares the thread.
    static IN_SCHEDULER: Cell<bool> = const { Cell::new(false) };
    static PARKER: Arc<Parker> = Arc::new(Parker {
        thread: thread::current(),
        notified: AtomicBool::new(false),
    });
}

/// Wakes a thread blocked in [`block_on`].
struct Parker {
    thread: Thread,
    notified: AtomicBool,
}

impl Wake for Parker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.notified.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

/// Marks the current thread as one of a scheduler's (or not).
pub(crate) fn set_scheduler_thread(on: bool) {
    IN_SCHEDULER.with(|flag| flag.set(on));
}

/// Fails with [`Error::BlockingInScheduler`] on a scheduler's thread.
pub(crate) fn check() -> Result<(), Error> {
    if IN_SCHEDULER.with(Cell::get) {
        Err(Error::BlockingInScheduler)
    } else {
        Ok(())
    }
}

/// Polls `future` on this thread until it is ready, sleeping while it waits.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let parker = PARKER.with(Arc::clone);
    let waker = Waker::from(Arc::clone(&parker));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let budget = crate::coop::lift();
    let _restore = Restore(budget);
    loop {
        parker.notified.store(false, Ordering::Relaxed);
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            // A block_on nested in a future that an outer block_on polls may have
            // consumed the outer one's wake-up: make the outer one poll again.
            parker.notified.store(true, Ordering::Release);
            return value;
        }
        // Inside a blocking process, ends it dropped retire now, before it waits: a
        // peer may be waiting for exactly that.
        crate::process::flush_current();
        let mut spins = 0;
        while !parker.notified.load(Ordering::Acquire) {
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                thread::park();
            }
        }
    }
}

/// Puts back the yield budget of a process that blocked in place.
struct Restore(Option<u32>);

impl Drop for Restore {
    fn drop(&mut self) {
        crate::coop::restore(self.0);
    }
}

/// [`check`], then [`block_on`].
pub(crate) fn blocking<F: Future>(future: F) -> Result<F::Output, Error> {
    check()?;
    Ok(block_on(future))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_waits_for_a_wake_from_another_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = thread::spawn(move || tx.send(42u32));
        assert_eq!(block_on(rx), Ok(42));
        assert_eq!(sender.join().unwrap(), Ok(()));
    }

    #[test]
    fn blocking_calls_are_refused_on_scheduler_threads() {
        set_scheduler_thread(true);
        assert_eq!(blocking(async { 1 }), Err(Error::BlockingInScheduler));
        set_scheduler_thread(false);
        assert_eq!(blocking(async { 1 }), Ok(1));
    }
}
