//! The errors of braid-async.

use std::time::Duration;

/// Every way an async primitive, a timeout or a spawned task can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A wait gave up after this long (Python's `TimeoutError`).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// `try_get` on an empty queue (Python's `QueueEmpty`).
    #[error("the queue is empty")]
    Empty,
    /// The queue has been shut down (Python's `QueueShutDown`).
    #[error("the queue has been shut down")]
    ShutDown,
    /// `task_done` was called more times than items were put.
    #[error("task_done() called more times than there were items put")]
    TooManyTaskDone,
    /// A `BoundedSemaphore` was released past its initial value.
    #[error("semaphore released too many times: it would exceed its bound of {bound}")]
    Overflow {
        /// The semaphore's initial (and largest) value.
        bound: usize,
    },
    /// The barrier is broken (aborted, or reset while this task waited).
    #[error("the barrier is broken")]
    BrokenBarrier,
    /// A spawned task panicked; the panic message is kept.
    #[error("the task panicked: {0}")]
    Panicked(String),
    /// A spawned task was cancelled before it finished (aborted, or its runtime shut down).
    #[error("the task was cancelled")]
    Cancelled,
    /// A spawn into a [`TaskGroup`](crate::TaskGroup) that is finished or is cancelling its
    /// tasks after a failure (asyncio raises `RuntimeError` then).
    #[error("the task group is closed: it has finished or is cancelling after a failure")]
    GroupClosed,
}

impl Error {
    /// The error of a tokio task that did not finish.
    pub(crate) fn from_join(error: tokio::task::JoinError) -> Self {
        match error.try_into_panic() {
            Ok(payload) => Error::Panicked(braid_core::panic_message(&*payload)),
            Err(_) => Error::Cancelled,
        }
    }
}

/// A put that gave up; the item comes back inside, so nothing is lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutError<T> {
    /// The queue is full (`try_put`, Python's `QueueFull`).
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
