//! The errors of braid-sync.

use std::time::Duration;

/// Every way a thread, lock, barrier or queue call can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A thread panicked; its name and the panic message are kept.
    #[error("thread `{thread}` panicked: {message}")]
    Panicked {
        /// The thread's name.
        thread: String,
        /// The panic message.
        message: String,
    },
    /// A wait gave up after this long.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// An `RLock` was released by a thread that does not hold it.
    #[error("the lock is not held by the calling thread")]
    NotOwner,
    /// A `BoundedSemaphore` was released past its initial value.
    #[error("semaphore released too many times: it would exceed its bound of {bound}")]
    Overflow {
        /// The semaphore's initial (and largest) value.
        bound: usize,
    },
    /// The barrier is broken (aborted, reset while waiting, timed out, or its action
    /// panicked).
    #[error("the barrier is broken")]
    BrokenBarrier,
    /// `try_get` on an empty queue.
    #[error("the queue is empty")]
    Empty,
    /// The queue has been shut down.
    #[error("the queue has been shut down")]
    ShutDown,
    /// `task_done` was called more times than items were put.
    #[error("task_done() called more times than there were items put")]
    TooManyTaskDone,
    /// The operating system refused to start a thread.
    #[error("could not start a thread: {0}")]
    Spawn(String),
}

/// A put that gave up; the item comes back inside, so nothing is lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutError<T> {
    /// The queue is full (`try_put`).
    #[error("the queue is full")]
    Full(T),
    /// The queue stayed full until the timeout (`put_timeout`).
    #[error("the queue stayed full until the timeout")]
    Timeout(T),
    /// The queue has been shut down.
    #[error("the queue has been shut down")]
    ShutDown(T),
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(item) | PutError::Timeout(item) | PutError::ShutDown(item) => item,
        }
    }
}
