//! A FIFO list of waiting tasks, woken one, n or all at a time, for [`Condition`].
//!
//! Unlike tokio's `Notify`, a notification reaches only tasks waiting at that moment (none
//! is stored for later), as a condition variable's must. A waiter that is notified and then
//! dropped before it sees the notification hands it on to the next waiter, so cancelling a
//! waiter never swallows a wake-up.
//!
//! [`Condition`]: crate::Condition

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

#[derive(Default)]
struct List {
    next_id: u64,
    /// Waiting and not yet notified, oldest first, with the waker of their last poll.
    waiting: BTreeMap<u64, Option<Waker>>,
    /// Notified, not yet seen by their waiter.
    notified: HashSet<u64>,
}

impl List {
    /// Moves up to `n` of the oldest waiters to `notified`; returns their wakers.
    fn notify(&mut self, n: usize) -> Vec<Waker> {
        let mut wakers = Vec::new();
        for _ in 0..n {
            let Some((id, waker)) = self.waiting.pop_first() else {
                break;
            };
            self.notified.insert(id);
            wakers.extend(waker);
        }
        wakers
    }
}

/// The list; see the module doc.
#[derive(Default)]
pub(crate) struct WaitList {
    list: Mutex<List>,
}

impl WaitList {
    /// Registers a waiter now (so a notify from here on reaches it), to be awaited later.
    pub(crate) fn register(&self) -> Waiter<'_> {
        let mut list = self.list.lock();
        let id = list.next_id;
        list.next_id += 1;
        list.waiting.insert(id, None);
        Waiter {
            list: self,
            id,
            done: false,
        }
    }

    /// Wakes up to `n` waiters, oldest first; returns how many.
    pub(crate) fn notify(&self, n: usize) -> usize {
        let (count, wakers) = {
            let mut list = self.list.lock();
            let before = list.notified.len();
            let wakers = list.notify(n);
            (list.notified.len() - before, wakers)
        };
        // Woken outside the lock: a waker may run code of its own.
        wakers.into_iter().for_each(Waker::wake);
        count
    }

    /// Wakes every waiter; returns how many.
    pub(crate) fn notify_all(&self) -> usize {
        self.notify(usize::MAX)
    }

    /// How many waiters are waiting and not yet notified.
    pub(crate) fn len(&self) -> usize {
        self.list.lock().waiting.len()
    }
}

/// One registered waiter; resolves once notified.
pub(crate) struct Waiter<'a> {
    list: &'a WaitList,
    id: u64,
    done: bool,
}

impl Future for Waiter<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let mut list = self.list.list.lock();
        if list.notified.remove(&self.id) {
            drop(list);
            self.done = true;
            return Poll::Ready(());
        }
        if let Some(slot) = list.waiting.get_mut(&self.id) {
            match slot {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let wakers = {
            let mut list = self.list.list.lock();
            if list.waiting.remove(&self.id).is_some() {
                return;
            }
            if !list.notified.remove(&self.id) {
                return;
            }
            // Notified but never told: the wake-up goes to the next waiter.
            list.notify(1)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(waiter: &mut Waiter<'_>, waker: &Waker) -> Poll<()> {
        Pin::new(waiter).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn notify_wakes_the_oldest_and_stores_nothing() {
        let list = WaitList::default();
        assert_eq!(list.notify(1), 0, "nobody waits: nothing is stored");
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut a = list.register();
        let mut b = list.register();
        assert!(poll(&mut a, &waker).is_pending());
        assert!(poll(&mut b, &waker).is_pending());
        assert_eq!(list.notify(1), 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut a, &waker).is_ready());
        assert!(poll(&mut b, &waker).is_pending());
        assert_eq!(list.notify_all(), 1);
        assert!(poll(&mut b, &waker).is_ready());
    }

    #[test]
    fn a_dropped_notified_waiter_hands_the_wakeup_on() {
        let list = WaitList::default();
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let a = list.register();
        let mut b = list.register();
        assert!(poll(&mut b, &waker).is_pending());
        assert_eq!(list.notify(1), 1);
        drop(a);
        assert!(poll(&mut b, &waker).is_ready());
        assert_eq!(list.len(), 0);
    }
}
