//! [`Queue`], [`LifoQueue`] and [`PriorityQueue`]: async queues between tasks, like
//! Python's `asyncio.Queue`, `LifoQueue` and `PriorityQueue`.
//!
//! The three share one implementation and the same methods; only the order in which
//! items come out differs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::{Error, PutError};

type Heap<T> = BinaryHeap<Reverse<T>>;

/// The items, in the order of their queue kind. The heap's push and pop are stored with it
/// because only a priority queue's item type is `Ord`.
enum Items<T> {
    Fifo(VecDeque<T>),
    Lifo(Vec<T>),
    Smallest {
        heap: Heap<T>,
        push: fn(&mut Heap<T>, T),
        pop: fn(&mut Heap<T>) -> Option<T>,
    },
}

impl<T> Items<T> {
    fn push(&mut self, item: T) {
        match self {
            Items::Fifo(items) => items.push_back(item),
            Items::Lifo(items) => items.push(item),
            Items::Smallest { heap, push, .. } => push(heap, item),
        }
    }

    fn pop(&mut self) -> Option<T> {
        match self {
            Items::Fifo(items) => items.pop_front(),
            Items::Lifo(items) => items.pop(),
            Items::Smallest { heap, pop, .. } => pop(heap),
        }
    }

    fn len(&self) -> usize {
        match self {
            Items::Fifo(items) => items.len(),
            Items::Lifo(items) => items.len(),
            Items::Smallest { heap, .. } => heap.len(),
        }
    }

    /// Takes every item out, leaving the queue empty.
    fn take_all(&mut self) -> Vec<T> {
        match self {
            Items::Fifo(items) => items.drain(..).collect(),
            Items::Lifo(items) => std::mem::take(items),
            Items::Smallest { heap, .. } => std::mem::take(heap)
                .into_vec()
                .into_iter()
                .map(|Reverse(item)| item)
                .collect(),
        }
    }
}

struct State<T> {
    items: Items<T>,
    /// Free places promised to [`PutPermit`]s and not yet filled.
    reserved: usize,
    /// Items put and not yet marked done with `task_done`.
    unfinished: usize,
    shutdown: bool,
}

/// The queue proper.
///
/// Every change is made under `state`'s lock inside one poll: a get takes its item in the
/// same poll that returns it, so a get that is cancelled (dropped) never holds one.
struct Core<T> {
    state: Mutex<State<T>>,
    not_empty: Notify,
    not_full: Notify,
    all_done: Notify,
    maxsize: usize,
}

/// Whether a non-blocking attempt worked, or why not.
enum Attempt<T, E> {
    Done(T),
    Wait(E),
    Failed(E),
}

impl<T> Core<T> {
    fn new(items: Items<T>, maxsize: usize) -> Self {
        Core {
            state: Mutex::new(State {
                items,
                reserved: 0,
                unfinished: 0,
                shutdown: false,
            }),
            not_empty: Notify::new(),
            not_full: Notify::new(),
            all_done: Notify::new(),
            maxsize,
        }
    }

    fn has_room(&self, state: &State<T>) -> bool {
        self.maxsize == 0 || state.items.len() + state.reserved < self.maxsize
    }

    fn try_put(&self, item: T) -> Attempt<(), PutError<T>> {
        let mut state = self.state.lock();
        if state.shutdown {
            return Attempt::Failed(PutError::ShutDown(item));
        }
        if !self.has_room(&state) {
            return Attempt::Wait(PutError::Full(item));
        }
        state.items.push(item);
        state.unfinished += 1;
        drop(state);
        self.not_empty.notify_one();
        Attempt::Done(())
    }

    async fn put(&self, mut item: T) -> Result<(), PutError<T>> {
        loop {
            item = match self.try_put(item) {
                Attempt::Done(()) => return Ok(()),
                Attempt::Failed(error) => return Err(error),
                Attempt::Wait(full) => full.into_inner(),
            };
            let notified = self.not_full.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            item = match self.try_put(item) {
                Attempt::Done(()) => return Ok(()),
                Attempt::Failed(error) => return Err(error),
                Attempt::Wait(full) => full.into_inner(),
            };
            notified.await;
        }
    }

    /// Reserves a free place if there is one: `Ok(false)` when the queue is full.
    fn try_reserve(&self) -> Result<bool, Error> {
        let mut state = self.state.lock();
        if state.shutdown {
            return Err(Error::ShutDown);
        }
        if !self.has_room(&state) {
            return Ok(false);
        }
        state.reserved += 1;
        Ok(true)
    }

    async fn reserve(&self) -> Result<(), Error> {
        loop {
            if self.try_reserve()? {
                return Ok(());
            }
            let notified = self.not_full.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.try_reserve()? {
                return Ok(());
            }
            notified.await;
        }
    }

    /// Fills a reserved place.
    fn fill(&self, item: T) -> Result<(), PutError<T>> {
        let mut state = self.state.lock();
        state.reserved -= 1;
        if state.shutdown {
            drop(state);
            self.not_full.notify_one();
            return Err(PutError::ShutDown(item));
        }
        state.items.push(item);
        state.unfinished += 1;
        drop(state);
        self.not_empty.notify_one();
        Ok(())
    }

    /// Gives a reserved place back unused.
    fn unreserve(&self) {
        self.state.lock().reserved -= 1;
        self.not_full.notify_one();
    }

    fn try_get(&self) -> Attempt<T, Error> {
        let mut state = self.state.lock();
        match state.items.pop() {
            Some(item) => {
                drop(state);
                if self.maxsize > 0 {
                    self.not_full.notify_one();
                }
                Attempt::Done(item)
            }
            None if state.shutdown => Attempt::Failed(Error::ShutDown),
            None => Attempt::Wait(Error::Empty),
        }
    }

    async fn get(&self) -> Result<T, Error> {
        loop {
            match self.try_get() {
                Attempt::Done(item) => return Ok(item),
                Attempt::Failed(error) => return Err(error),
                Attempt::Wait(_) => {}
            }
            let notified = self.not_empty.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the second look, so a put between the two is not missed.
            notified.as_mut().enable();
            match self.try_get() {
                Attempt::Done(item) => return Ok(item),
                Attempt::Failed(error) => return Err(error),
                Attempt::Wait(_) => {}
            }
            notified.await;
        }
    }

    fn len(&self) -> usize {
        self.state.lock().items.len()
    }

    fn task_done(&self) -> Result<(), Error> {
        let mut state = self.state.lock();
        if state.unfinished == 0 {
            return Err(Error::TooManyTaskDone);
        }
        state.unfinished -= 1;
        let all_done = state.unfinished == 0;
        drop(state);
        if all_done {
            self.all_done.notify_waiters();
        }
        Ok(())
    }

    async fn join(&self) {
        loop {
            let notified = self.all_done.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.state.lock().unfinished == 0 {
                return;
            }
            notified.await;
        }
    }

    fn shutdown(&self, immediate: bool) {
        let mut state = self.state.lock();
        state.shutdown = true;
        let dropped = if immediate {
            let dropped = state.items.take_all();
            state.unfinished = state.unfinished.saturating_sub(dropped.len());
            dropped
        } else {
            Vec::new()
        };
        drop(state);
        self.not_empty.notify_waiters();
        self.not_full.notify_waiters();
        self.all_done.notify_waiters();
        // The items' own drop code runs without the queue's lock held.
        drop(dropped);
    }

    fn is_shutdown(&self) -> bool {
        self.state.lock().shutdown
    }
}

/// A place in a bounded queue, reserved by `reserve`: [`put`](PutPermit::put) fills it
/// without waiting; dropping the permit gives the place back.
///
/// Reserving first is how a put is made cancel safe: the item stays with the caller until
/// there is room for it.
#[must_use = "the reserved place is given back as soon as the permit is dropped"]
pub struct PutPermit<'a, T> {
    core: &'a Core<T>,
    filled: bool,
}

impl<T> PutPermit<'_, T> {
    /// Puts `item` in the reserved place.
    ///
    /// # Errors
    /// [`PutError::ShutDown`], with the item, when the queue was shut down since the
    /// place was reserved.
    pub fn put(mut self, item: T) -> Result<(), PutError<T>> {
        self.filled = true;
        self.core.fill(item)
    }
}

impl<T> Drop for PutPermit<'_, T> {
    fn drop(&mut self) {
        if !self.filled {
            self.core.unreserve();
        }
    }
}

impl<T> std::fmt::Debug for PutPermit<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutPermit").finish_non_exhaustive()
    }
}

macro_rules! queue_type {
    ($(#[$doc:meta])* $name:ident, [$($bound:tt)*], $items:expr) => {
        $(#[$doc])*
        pub struct $name<T> {
            core: Core<T>,
        }

        impl<T $($bound)*> $name<T> {
            /// An unbounded queue.
            pub fn new() -> Self {
                Self::bounded(0)
            }

            /// A queue holding at most `maxsize` items; 0 means unbounded, as in Python.
            pub fn bounded(maxsize: usize) -> Self {
                $name {
                    core: Core::new($items, maxsize),
                }
            }
        }

        impl<T> $name<T> {
            /// Puts `item`, waiting while the queue is full.
            ///
            /// # Errors
            /// [`PutError::ShutDown`] (with the item) once the queue is shut down, also
            /// when the shutdown comes while this put waits.
            ///
            /// # Cancel safety
            /// Not cancel safe for the item: a put cancelled while it waits for room drops
            /// the item it holds (the queue is unchanged). To keep the item, use
            /// [`reserve`](Self::reserve) and then [`PutPermit::put`], or
            /// [`put_timeout`](Self::put_timeout), which gives the item back.
            pub async fn put(&self, item: T) -> Result<(), PutError<T>> {
                self.core.put(item).await
            }

            /// Puts `item`, waiting at most `timeout` while the queue is full.
            ///
            /// # Errors
            /// [`PutError::Timeout`] or [`PutError::ShutDown`], with the item.
            ///
            /// # Cancel safety
            /// As [`put`](Self::put).
            pub async fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
                let item = match self.core.try_put(item) {
                    Attempt::Done(()) => return Ok(()),
                    Attempt::Failed(error) => return Err(error),
                    Attempt::Wait(full) => full.into_inner(),
                };
                // The item waits here, not in the future that may time out.
                match crate::timeout(timeout, self.core.reserve()).await {
                    Ok(Ok(())) => PutPermit { core: &self.core, filled: false }.put(item),
                    Ok(Err(_shut_down)) => Err(PutError::ShutDown(item)),
                    Err(_timed_out) => Err(PutError::Timeout(item)),
                }
            }

            /// Puts `item` if there is room now (Python's `put_nowait`).
            ///
            /// # Errors
            /// [`PutError::Full`] or [`PutError::ShutDown`], with the item.
            pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
                match self.core.try_put(item) {
                    Attempt::Done(()) => Ok(()),
                    Attempt::Wait(error) | Attempt::Failed(error) => Err(error),
                }
            }

            /// Waits for room and reserves a place for one item; fill it with
            /// [`PutPermit::put`], which never waits.
            ///
            /// # Errors
            /// [`Error::ShutDown`] once the queue is shut down.
            ///
            /// # Cancel safety
            /// Cancel safe: a cancelled reserve holds no place.
            pub async fn reserve(&self) -> Result<PutPermit<'_, T>, Error> {
                self.core.reserve().await?;
                Ok(PutPermit { core: &self.core, filled: false })
            }

            /// Takes the next item, waiting while the queue is empty.
            ///
            /// # Errors
            /// [`Error::ShutDown`] once the queue is shut down and empty (items put before
            /// a non-immediate shutdown still come out first).
            ///
            /// # Cancel safety
            /// Cancel safe: an item is taken out of the queue only in the poll that returns
            /// it, so a get cancelled (by `select!`, a timeout, a dropped task) loses no
            /// item; and a wake-up it received goes to another waiting get.
            pub async fn get(&self) -> Result<T, Error> {
                self.core.get().await
            }

            /// Takes the next item, waiting at most `timeout` while the queue is empty.
            ///
            /// # Errors
            /// [`Error::Timeout`] or [`Error::ShutDown`].
            ///
            /// # Cancel safety
            /// Cancel safe, as [`get`](Self::get).
            pub async fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
                crate::timeout(timeout, self.core.get()).await?
            }

            /// Takes the next item if there is one now (Python's `get_nowait`).
            ///
            /// # Errors
            /// [`Error::Empty`], or [`Error::ShutDown`] once shut down and empty.
            pub fn try_get(&self) -> Result<T, Error> {
                match self.core.try_get() {
                    Attempt::Done(item) => Ok(item),
                    Attempt::Wait(error) | Attempt::Failed(error) => Err(error),
                }
            }

            /// How many items are queued; only a snapshot.
            pub fn qsize(&self) -> usize {
                self.core.len()
            }

            /// Whether no item is queued; only a snapshot.
            pub fn is_empty(&self) -> bool {
                self.qsize() == 0
            }

            /// Whether a bounded queue has no free place (reserved places count as taken);
            /// only a snapshot.
            pub fn is_full(&self) -> bool {
                !self.core.has_room(&self.core.state.lock())
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

            /// Waits until every item ever put has been marked done with
            /// [`task_done`](Self::task_done) (or dropped by an immediate shutdown).
            ///
            /// # Cancel safety
            /// Cancel safe: a cancelled join has no effect on the queue.
            pub async fn join(&self) {
                self.core.join().await;
            }

            /// Like [`join`](Self::join), giving up after `timeout`; true when all was done.
            ///
            /// # Cancel safety
            /// Cancel safe, as [`join`](Self::join).
            pub async fn join_timeout(&self, timeout: Duration) -> bool {
                crate::timeout(timeout, self.core.join()).await.is_ok()
            }

            /// Shuts the queue down (Python 3.13's `shutdown`): puts fail from now on and
            /// waiting puts wake with [`PutError::ShutDown`]; gets take what is left, then
            /// fail with [`Error::ShutDown`]. With `immediate`, the items still queued are
            /// dropped and counted as done, so [`join`](Self::join) returns once the items
            /// already taken are marked done.
            pub fn shutdown(&self, immediate: bool) {
                self.core.shutdown(immediate);
            }

            /// Whether [`shutdown`](Self::shutdown) was called.
            pub fn is_shutdown(&self) -> bool {
                self.core.is_shutdown()
            }
        }

        impl<T $($bound)*> Default for $name<T> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T> std::fmt::Debug for $name<T> {
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
    /// A first-in, first-out queue between tasks, like Python's `asyncio.Queue`: bounded
    /// or not, with `task_done`/`join` and `shutdown`.
    ///
    /// A get that is cancelled never loses an item (see [`get`](Queue::get)), and a put
    /// that must not lose its item can [`reserve`](Queue::reserve) a place first.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use braid_async::Queue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let queue = Arc::new(Queue::bounded(2));
    /// let worker = tokio::spawn({
    ///     let queue = queue.clone();
    ///     async move {
    ///         let mut sum = 0;
    ///         while let Ok(n) = queue.get().await {
    ///             sum += n;
    ///             queue.task_done().unwrap();
    ///         }
    ///         sum
    ///     }
    /// });
    /// for n in 1..=10 {
    ///     queue.put(n).await.unwrap();
    /// }
    /// queue.join().await; // every item processed
    /// queue.shutdown(false); // the worker's get now fails: it returns
    /// assert_eq!(worker.await.unwrap(), 55);
    /// # }
    /// ```
    Queue,
    [],
    Items::Fifo(VecDeque::new())
);

queue_type!(
    /// A last-in, first-out queue between tasks, like Python's `asyncio.LifoQueue`; the
    /// same methods as [`Queue`].
    ///
    /// ```
    /// use braid_async::LifoQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let stack = LifoQueue::new();
    /// for n in 1..=3 {
    ///     stack.put(n).await.unwrap();
    /// }
    /// assert_eq!(stack.get().await, Ok(3));
    /// assert_eq!(stack.try_get(), Ok(2));
    /// # }
    /// ```
    LifoQueue,
    [],
    Items::Lifo(Vec::new())
);

queue_type!(
    /// A queue that gives out its smallest item first, like Python's
    /// `asyncio.PriorityQueue` (put `(priority, item)` tuples to order by priority); the
    /// same methods as [`Queue`]. Equal items come out in no particular order.
    ///
    /// ```
    /// use braid_async::PriorityQueue;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let jobs = PriorityQueue::new();
    /// jobs.put((2, "write")).await.unwrap();
    /// jobs.put((1, "read")).await.unwrap();
    /// jobs.put((3, "close")).await.unwrap();
    /// assert_eq!(jobs.get().await, Ok((1, "read")));
    /// assert_eq!(jobs.get().await, Ok((2, "write")));
    /// # }
    /// ```
    PriorityQueue,
    [: Ord],
    Items::Smallest {
        heap: BinaryHeap::new(),
        push: |heap: &mut Heap<T>, item: T| heap.push(Reverse(item)),
        pop: |heap: &mut Heap<T>| heap.pop().map(|Reverse(item)| item),
    }
);
