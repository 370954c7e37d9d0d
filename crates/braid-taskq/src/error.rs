//! The task queue's error type.

use std::time::Duration;

use crate::TaskFailure;

/// Every way a task-queue call can fail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A broker or result-backend URL that cannot be used.
    #[error("invalid URL `{url}`: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The broker could not be reached or refused an operation.
    #[error("broker: {0}")]
    Broker(String),
    /// The result backend could not be reached or refused an operation.
    #[error("result backend: {0}")]
    Backend(String),
    /// The app has no result backend, so results cannot be read.
    #[error("this app has no result backend: give one to read results")]
    NoBackend,
    /// A message does not follow Celery's protocol version 2.
    #[error("malformed message: {0}")]
    Protocol(String),
    /// Arguments or a result could not be encoded or decoded.
    #[error(transparent)]
    Core(#[from] braid_core::Error),
    /// The task ran and failed; its exception type and message are inside.
    #[error(transparent)]
    Task(TaskFailure),
    /// The task was revoked (or expired) before it ran.
    #[error("task {0} was revoked")]
    Revoked(String),
    /// A wait gave up after this long.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The worker or app has shut down.
    #[error("shut down")]
    Shutdown,
    /// An option's value cannot be used.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

impl Error {
    pub(crate) fn broker(e: impl std::fmt::Display) -> Self {
        Error::Broker(e.to_string())
    }

    /// Whether retrying the same call later may succeed (a lost connection, a timeout).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Broker(_) | Error::Backend(_))
    }
}

impl From<Error> for braid_core::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Core(e) => e,
            Error::Task(failure) => braid_core::Error::Task(failure.into()),
            Error::Revoked(_) => braid_core::Error::Cancelled,
            Error::Timeout(d) => braid_core::Error::Timeout(d),
            Error::Shutdown => braid_core::Error::Shutdown,
            other => braid_core::Error::WorkerLost(other.to_string()),
        }
    }
}

/// The task queue's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
