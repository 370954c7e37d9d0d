//! [`Queue`], [`LifoQueue`] and [`PriorityQueue`]: blocking queues between threads, like
//! Python's `queue` module.
//!
//! The three share one implementation and the same methods; only the order in which
//! items come out differs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::shim::{self, AtomicBool, AtomicUsize, Condvar, Mutex};
use crate::{Error, PutError};

/// The order items leave a queue in.
trait Store {
    type Item;
    fn new() -> Self;
    fn push(&mut self, item: Self::Item);
    fn pop(&mut self) -> Option<Self::Item>;
    fn len(&self) -> usize;
}

/// First in, first out.
struct Fifo<T>(VecDeque<T>);
/// Last in, first out.
struct Lifo<T>(Vec<T>);
/// Smallest first.
struct Smallest<T>(BinaryHeap<Reverse<T>>);

impl<T> Store for Fifo<T> {
    type Item = T;
    fn new() -> Self {
        Fifo(VecDeque::new())
    }
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T> Store for Lifo<T> {
    type Item = T;
    fn new() -> Self {
        Lifo(Vec::new())
    }
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T: Ord> Store for Smallest<T> {
    type Item = T;
    fn new() -> Self {
        Smallest(BinaryHeap::new())
    }
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(item)| item)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// How long a put or get may block.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all (`try_put`, `try_get`).
    No,
    /// For ever.
    Forever,
    /// Until the deadline (`None`: too far to represent, so for ever); the timeout is
    /// what the caller asked for, for the error.
    Until(Option<Instant>, Duration),
}

impl Wait {
    fn timeout(timeout: Duration) -> Self {
        Wait::Until(shim::deadline(timeout), timeout)
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Until(deadline, _) => deadline,
            Wait::No | Wait::Forever => None,
        }
    }
}

struct State<S> {
    items: S,
    /// Items put and not yet marked done with `task_done`.
    unfinished: usize,
    shutdown: bool,
}

/// The queue proper, generic over the order.
///
/// All state is under `state`; `len` and `shutdown` mirror it (written under the lock) so
/// that a blocked caller can spin on them without the lock before it sleeps.
struct Core<S> {
    state: Mutex<State<S>>,
    not_empty: Condvar,
    not_full: Condvar,
    all_done: Condvar,
    len: AtomicUsize,
    shutdown: AtomicBool,
    maxsize: usize,
}

impl<S: Store> Core<S> {
    fn new(maxsize: usize) -> Self {
        Core {
            state: Mutex::new(State {
                items: S::new(),
                unfinished: 0,
                shutdown: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            all_done: Condvar::new(),
            len: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            maxsize,
        }
    }

    fn has_room(&self, len: usize) -> bool {
        self.maxsize == 0 || len < self.maxsize
    }

    fn put(&self, item: S::Item, wait: Wait) -> Result<(), PutError<S::Item>> {
        let mut state = shim::lock(&self.state);
        let mut spun = false;
        loop {
            if state.shutdown {
                return Err(PutError::ShutDown(item));
            }
            if self.has_room(state.items.len()) {
                break;
            }
            if matches!(wait, Wait::No) {
                return Err(PutError::Full(item));
            }
            if !spun {
                spun = true;
                drop(state);
                shim::spin_until(|| {
                    self.has_room(self.len.load(Ordering::Acquire))
                        || self.shutdown.load(Ordering::Acquire)
                });
                state = shim::lock(&self.state);
                continue;
            }
            match wait {
                Wait::Until(Some(deadline), _) if Instant::now() >= deadline => {
                    return Err(PutError::Timeout(item));
                }
                _ => state = shim::wait_until(&self.not_full, state, wait.deadline()).0,
            }
        }
        state.items.push(item);
        state.unfinished += 1;
        self.len.store(state.items.len(), Ordering::Release);
        drop(state);
        shim::notify_one(&self.not_empty);
        Ok(())
    }

    fn get(&self, wait: Wait) -> Result<S::Item, Error> {
        let mut state = shim::lock(&self.state);
        let mut spun = false;
        loop {
            if let Some(item) = state.items.pop() {
                self.len.store(state.items.len(), Ordering::Release);
                drop(state);
                if self.maxsize > 0 {
                    shim::notify_one(&self.not_full);
                }
                return Ok(item);
            }
            if state.shutdown {
                return Err(Error::ShutDown);
            }
            if matches!(wait, Wait::No) {
                return Err(Error::Empty);
            }
            if !spun {
                spun = true;
                drop(state);
                shim::spin_until(|| {
                    self.len.load(Ordering::Acquire) > 0 || self.shutdown.load(Ordering::Acquire)
                });
                state = shim::lock(&self.state);
                continue;
            }
            match wait {
                Wait::Until(Some(deadline), timeout) if Instant::now() >= deadline => {
                    return Err(Error::Timeout(timeout));
                }
                _ => state = shim::wait_until(&self.not_empty, state, wait.deadline()).0,
            }
        }
    }

    fn task_done(&self) -> Result<(), Error> {
        let mut state = shim::lock(&self.state);
        if state.unfinished == 0 {
            return Err(Error::TooManyTaskDone);
        }
        state.unfinished -= 1;
        if state.unfinished == 0 {
            drop(state);
            shim::notify_all(&self.all_done);
        }
        Ok(())
    }

    fn join(&self, deadline: Option<Instant>) -> bool {
        let mut state = shim::lock(&self.state);
        while state.unfinished > 0 {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            state = shim::wait_until(&self.all_done, state, deadline).0;
        }
        true
    }

    fn shutdown(&self, immediate: bool) {
        let mut state = shim::lock(&self.state);
        state.shutdown = true;
        self.shutdown.store(true, Ordering::Release);
        let dropped = immediate.then(|| {
            let dropped = std::mem::replace(&mut state.items, S::new());
            state.unfinished = state.unfinished.saturating_sub(dropped.len());
            self.len.store(0, Ordering::Release);
            dropped
        });
        drop(state);
        shim::notify_all(&self.not_empty);
        shim::notify_all(&self.not_full);
        shim::notify_all(&self.all_done);
        // The items' own drop code runs without the queue's lock held.
        drop(dropped);
    }
}

macro_rules! queue_type {
    ($(#[$doc:meta])* $name:ident, $store:ident, $($bound:tt)*) => {
        $(#[$doc])*
        pub struct $name<T $($bound)*> {
            core: Core<$store<T>>,
        }

        impl<T $($bound)*> $name<T> {
            /// An unbounded queue.
            pub fn new() -> Self {
                Self::bounded(0)
            }

            /// A queue holding at most `maxsize` items; 0 means unbounded, as in Python.
            pub fn bounded(maxsize: usize) -> Self {
                $name {
                    core: Core::new(maxsize),
                }
            }

            /// Puts `item`, blocking while the queue is full.
            ///
            /// # Errors
            /// [`PutError::ShutDown`] (with the item) once the queue is shut down, also
            /// when the shutdown comes while this put waits.
            pub fn put(&self, item: T) -> Result<(), PutError<T>> {
                self.core.put(item, Wait::Forever)
            }

            /// Puts `item`, blocking at most `timeout` while the queue is full.
            ///
            /// # Errors
            /// [`PutError::Timeout`] or [`PutError::ShutDown`], with the item.
            pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
                self.core.put(item, Wait::timeout(timeout))
            }

            /// Puts `item` if there is room now (Python's `put_nowait`).
            ///
            /// # Errors
            /// [`PutError::Full`] or [`PutError::ShutDown`], with the item.
            pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
                self.core.put(item, Wait::No)
            }

            /// Takes the next item, blocking while the queue is empty.
            ///
            /// # Errors
            /// [`Error::ShutDown`] once the queue is shut down and empty (items put before
            /// the shutdown still come out first).
            pub fn get(&self) -> Result<T, Error> {
                self.core.get(Wait::Forever)
            }

            /// Takes the next item, blocking at most `timeout` while the queue is empty.
            ///
            /// # Errors
            /// [`Error::Timeout`] or [`Error::ShutDown`].
            pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
                self.core.get(Wait::timeout(timeout))
            }

            /// Takes the next item if there is one now (Python's `get_nowait`).
            ///
            /// # Errors
            /// [`Error::Empty`], or [`Error::ShutDown`] once shut down and empty.
            pub fn try_get(&self) -> Result<T, Error> {
                self.core.get(Wait::No)
            }

            /// How many items are queued; only a snapshot.
            pub fn qsize(&self) -> usize {
                self.core.len.load(Ordering::Acquire)
            }

            /// Whether no item is queued; only a snapshot.
            pub fn is_empty(&self) -> bool {
                self.qsize() == 0
            }

            /// Whether a bounded queue is at its size limit; only a snapshot.
            pub fn is_full(&self) -> bool {
                !self.core.has_room(self.qsize())
            }

            /// The size limit; 0 for an unbounded queue.
            pub fn maxsize(&self) -> usize {
                self.core.maxsize
            }

            /// Marks one item taken with `get` as processed, for [`join`](Self::join).
            ///
            /// # Errors
            /// [`Error::TooManyTaskDone`] when every item put was marked done already.
            pub fn task_done(&self) -> Result<(), Error> {
                self.core.task_done()
            }

            /// Blocks until every item ever put has been marked done with
            /// [`task_done`](Self::task_done) (or dropped by an immediate shutdown).
            pub fn join(&self) {
                self.core.join(None);
            }

            /// Like [`join`](Self::join), giving up after `timeout`; true when all was done.
            pub fn join_timeout(&self, timeout: Duration) -> bool {
                self.core.join(shim::deadline(timeout))
            }

            /// Shuts the queue down (Python 3.13's `shutdown`): puts fail from now on and
            /// blocked puts wake with [`PutError::ShutDown`]; gets take what is left, then
            /// fail with [`Error::ShutDown`]. With `immediate`, the items still queued are
            /// dropped and counted as done, so [`join`](Self::join) returns once the items
            /// already taken are marked done.
            pub fn shutdown(&self, immediate: bool) {
                self.core.shutdown(immediate);
            }

            /// Whether [`shutdown`](Self::shutdown) was called.
            pub fn is_shutdown(&self) -> bool {
                self.core.shutdown.load(Ordering::Acquire)
            }
        }

        impl<T $($bound)*> Default for $name<T> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T $($bound)*> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("qsize", &self.qsize())
                    .field("maxsize", &self.maxsize())
                    .field("is_shutdown", &self.is_shutdown())
                    .finish()
            }
        }
    };
}

queue_type!(
    /// A first-in, first-out queue between threads, like Python's `queue.Queue`.
    ///
    /// Bounded or not; [`task_done`](Queue::task_done) and [`join`](Queue::join) let a
    /// producer wait until consumers have processed everything; [`shutdown`](Queue::shutdown)
    /// ends it (Python 3.13). A blocked `get` spins for a few microseconds before it
    /// sleeps, so a hand-off between two running threads costs about a microsecond.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use braid_sync::{Error, Queue, spawn};
    ///
    /// let jobs = Arc::new(Queue::bounded(8));
    /// let worker = {
    ///     let jobs = jobs.clone();
    ///     spawn("worker", move || {
    ///         let mut sum = 0;
    ///         // Runs until the queue is shut down and drained.
    ///         while let Ok(n) = jobs.get() {
    ///             sum += n;
    ///             jobs.task_done().unwrap();
    ///         }
    ///         sum
    ///     })
    ///     .unwrap()
    /// };
    /// for n in 1..=100 {
    ///     jobs.put(n).unwrap();
    /// }
    /// jobs.join(); // every item was processed
    /// jobs.shutdown(false);
    /// assert_eq!(worker.join().unwrap(), 5050);
    /// assert_eq!(jobs.try_get(), Err(Error::ShutDown));
    /// ```
    Queue, Fifo,
);

queue_type!(
    /// A last-in, first-out queue (a stack) between threads, like Python's
    /// `queue.LifoQueue`; otherwise the same as [`Queue`].
    ///
    /// ```
    /// use braid_sync::LifoQueue;
    ///
    /// let stack = LifoQueue::new();
    /// for n in 1..=3 {
    ///     stack.put(n).unwrap();
    /// }
    /// assert_eq!(stack.get(), Ok(3));
    /// ```
    LifoQueue, Lifo,
);

queue_type!(
    /// A queue that gives the smallest item first, like Python's `queue.PriorityQueue`;
    /// otherwise the same as [`Queue`]. Equal items come out in no particular order. Wrap
    /// items in [`std::cmp::Reverse`] for largest first, or queue `(priority, item)`
    /// tuples.
    ///
    /// ```
    /// use braid_sync::PriorityQueue;
    ///
    /// let tasks = PriorityQueue::new();
    /// tasks.put((2, "write")).unwrap();
    /// tasks.put((1, "read")).unwrap();
    /// assert_eq!(tasks.get(), Ok((1, "read")));
    /// ```
    PriorityQueue, Smallest, : Ord
);

#[cfg(all(test, braid_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    #[test]
    fn loom_queue_hand_off_through_a_bounded_queue() {
        loom::model(|| {
            let q = Arc::new(Queue::bounded(1));
            let q2 = q.clone();
            let producer = thread::spawn(move || {
                q2.put(1).unwrap();
                q2.put(2).unwrap();
            });
            assert_eq!(q.get(), Ok(1));
            assert_eq!(q.get(), Ok(2));
            producer.join().unwrap();
        });
    }

    #[test]
    fn loom_queue_shutdown_wakes_a_blocked_get() {
        loom::model(|| {
            let q = Arc::new(Queue::<u8>::new());
            let q2 = q.clone();
            let getter = thread::spawn(move || q2.get());
            q.shutdown(false);
            assert_eq!(getter.join().unwrap(), Err(Error::ShutDown));
        });
    }

    #[test]
    fn loom_queue_join_waits_for_task_done() {
        loom::model(|| {
            let q = Arc::new(Queue::new());
            q.put(7).unwrap();
            let q2 = q.clone();
            let consumer = thread::spawn(move || {
                let item = q2.get().unwrap();
                q2.task_done().unwrap();
                item
            });
            q.join();
            assert_eq!(q.try_get(), Err(Error::Empty));
            assert_eq!(consumer.join().unwrap(), 7);
        });
    }
}
