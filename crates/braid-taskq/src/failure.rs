//! A task that ran and failed, as its result record tells it.

use crate::ExceptionInfo;

/// A task that ran and failed: the exception it raised (a Python exception, or a braid
/// task's error type) and the traceback when the worker stored one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("task {task_id} raised {}: {}", .exception.qualified_type(), .exception.message())]
pub struct TaskFailure {
    /// The failed task's id.
    pub task_id: String,
    /// The exception's type, arguments and module.
    pub exception: ExceptionInfo,
    /// The traceback, when the worker stored one.
    pub traceback: Option<String>,
}

impl TaskFailure {
    /// The exception's type name (`ValueError`, `ParseIntError`).
    pub fn exc_type(&self) -> &str {
        &self.exception.exc_type
    }

    /// The exception's message.
    pub fn message(&self) -> String {
        self.exception.message()
    }
}

impl From<TaskFailure> for braid_core::TaskError {
    fn from(failure: TaskFailure) -> Self {
        braid_core::TaskError {
            task: failure.task_id.clone(),
            kind: if failure.exception.exc_type == "TaskPanic" {
                braid_core::TaskErrorKind::Panic
            } else {
                braid_core::TaskErrorKind::Error
            },
            error_type: failure.exception.qualified_type(),
            message: failure.exception.message(),
        }
    }
}
