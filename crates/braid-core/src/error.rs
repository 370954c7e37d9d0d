use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every way a call into braid can fail.
///
/// The type is `Clone` and serialisable so that one outcome can be handed to done-callbacks
/// and can cross a process or machine boundary unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Error {
    /// No task is registered under this name.
    #[error("unknown task `{0}`: no function is registered under this name")]
    UnknownTask(String),
    /// Two functions were registered under one name; braid refuses to pick one.
    #[error("task name `{0}` is registered more than once; give each task a distinct name")]
    DuplicateTask(String),
    /// The encoded arguments do not decode as the task's parameter types.
    #[error("arguments for task `{task}` do not decode as {expected}: {message}")]
    DecodeArgs {
        /// The task's name.
        task: String,
        /// The parameter types the task expects, as written in its signature.
        expected: String,
        /// What the decoder said.
        message: String,
    },
    /// An encoded value (a result, a message) does not decode as the expected type.
    #[error("value does not decode as {expected}: {message}")]
    Decode {
        /// The Rust type that was expected.
        expected: String,
        /// What the decoder said.
        message: String,
    },
    /// A value could not be encoded.
    #[error("value could not be encoded: {0}")]
    Encode(String),
    /// The task ran and failed: it returned an error or panicked.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The task was cancelled before it started.
    #[error("the task was cancelled before it started")]
    Cancelled,
    /// A wait gave up after this long.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The executor has been shut down and takes no more work.
    #[error("the executor has been shut down")]
    Shutdown,
    /// The worker that held the task went away without giving a result.
    #[error("the worker running the task was lost: {0}")]
    WorkerLost(String),
}

impl Error {
    pub(crate) fn decode<T: ?Sized>(message: impl std::fmt::Display) -> Self {
        Error::Decode {
            expected: std::any::type_name::<T>().to_string(),
            message: message.to_string(),
        }
    }
}

/// Whether a failed task returned an error or panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskErrorKind {
    /// The task returned `Err(..)`.
    Error,
    /// The task panicked; the panic was caught.
    Panic,
}

/// A task that ran and failed, with the message of its error or panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("task `{task}` {}: {message}", match .kind { TaskErrorKind::Error => "failed", TaskErrorKind::Panic => "panicked" })]
pub struct TaskError {
    /// The task's registered name (or a closure's description).
    pub task: String,
    /// Whether it returned an error or panicked.
    pub kind: TaskErrorKind,
    /// The Rust type name of the error it returned (`"panic"` for a panic).
    pub error_type: String,
    /// The error's `Display` text, or the panic message.
    pub message: String,
}

impl TaskError {
    /// A task error from an error value the task returned.
    pub fn from_error<E: std::fmt::Display + ?Sized>(task: &str, error: &E) -> Self {
        TaskError {
            task: task.to_string(),
            kind: TaskErrorKind::Error,
            error_type: std::any::type_name::<E>().to_string(),
            message: error.to_string(),
        }
    }

    /// A task error from a caught panic payload.
    pub fn from_panic(task: &str, payload: &(dyn std::any::Any + Send)) -> Self {
        TaskError {
            task: task.to_string(),
            kind: TaskErrorKind::Panic,
            error_type: "panic".to_string(),
            message: panic_message(payload),
        }
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder for other payloads.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// braid's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
