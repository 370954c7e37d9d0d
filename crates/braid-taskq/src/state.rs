//! Task states and the result record Celery keeps for each task.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Where a task stands, as Celery names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum State {
    /// Unknown to the backend: waiting in a queue, or never sent, or forgotten.
    Pending,
    /// A worker has received it.
    Received,
    /// A worker is running it (stored only when the task tracks starts).
    Started,
    /// It returned a value.
    Success,
    /// It failed; the result holds the exception.
    Failure,
    /// It failed and will run again.
    Retry,
    /// It was revoked or expired before it ran.
    Revoked,
    /// A state a task set itself (Celery's `update_state`).
    Other(String),
}

impl State {
    /// The name Celery stores (`"SUCCESS"`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            State::Pending => "PENDING",
            State::Received => "RECEIVED",
            State::Started => "STARTED",
            State::Success => "SUCCESS",
            State::Failure => "FAILURE",
            State::Retry => "RETRY",
            State::Revoked => "REVOKED",
            State::Other(s) => s,
        }
    }

    /// Parses a state name; unknown names are [`State::Other`].
    pub fn from_name(name: &str) -> State {
        match name {
            "PENDING" => State::Pending,
            "RECEIVED" => State::Received,
            "STARTED" => State::Started,
            "SUCCESS" => State::Success,
            "FAILURE" => State::Failure,
            "RETRY" => State::Retry,
            "REVOKED" => State::Revoked,
            other => State::Other(other.to_string()),
        }
    }

    /// Whether the task is done for good: success, failure or revoked.
    pub fn is_ready(&self) -> bool {
        matches!(self, State::Success | State::Failure | State::Revoked)
    }

    /// Whether the state carries an exception as its result.
    pub fn is_exception(&self) -> bool {
        matches!(self, State::Failure | State::Retry | State::Revoked)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for State {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(State::from_name(&name))
    }
}

/// A stored result, `celery-task-meta-<id>`, as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ResultMeta {
    pub status: State,
    #[serde(default)]
    pub result: Value,
    #[serde(default)]
    pub traceback: Option<String>,
    #[serde(default)]
    pub children: Vec<Value>,
    #[serde(default)]
    pub date_done: Option<String>,
    #[serde(default)]
    pub task_id: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A result record as a worker writes it, in Celery's field order.
#[derive(Serialize)]
pub(crate) struct MetaOut<'a> {
    pub status: &'a str,
    pub result: &'a RawValue,
    pub traceback: Option<&'a str>,
    pub children: &'a [Value],
    pub date_done: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<&'a str>,
    pub task_id: &'a str,
}

/// An exception as Celery serializes it with JSON: type, arguments and module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionInfo {
    /// The exception's class name (`ValueError`), or a braid error type's short name.
    pub exc_type: String,
    /// The exception's arguments; for a braid error, its message.
    pub exc_message: Vec<Value>,
    /// The module that defines it (`builtins`), or a braid error type's module path.
    #[serde(default)]
    pub exc_module: Option<String>,
}

impl ExceptionInfo {
    /// An exception of Celery's own (`celery.exceptions`), which a Python client turns
    /// into the real class.
    pub(crate) fn celery(exc_type: &str, message: impl Into<String>) -> Self {
        ExceptionInfo {
            exc_type: exc_type.into(),
            exc_message: vec![Value::String(message.into())],
            exc_module: Some("celery.exceptions".into()),
        }
    }

    /// A Python builtin exception (`TypeError`, ...).
    pub(crate) fn builtin(exc_type: &str, message: impl Into<String>) -> Self {
        ExceptionInfo {
            exc_type: exc_type.into(),
            exc_message: vec![Value::String(message.into())],
            exc_module: Some("builtins".into()),
        }
    }

    /// The exception a braid task error is stored as: the error's Rust type gives the
    /// name (`ParseIntError` from `core::num::error`), so a Python `.get()` raises an
    /// exception of that name. Errors with no telling type (a `String`, a boxed error)
    /// and panics are `TaskError` and `TaskPanic` of module `braid`.
    pub(crate) fn from_task_error(error: &braid_core::TaskError) -> Self {
        let message = vec![Value::String(error.message.clone())];
        if error.kind == braid_core::TaskErrorKind::Panic {
            return ExceptionInfo {
                exc_type: "TaskPanic".into(),
                exc_message: message,
                exc_module: Some("braid".into()),
            };
        }
        let path = error
            .error_type
            .split('<')
            .next()
            .unwrap_or("")
            .trim()
            .trim_start_matches('&');
        let (module, name) = match path.rsplit_once("::") {
            Some((module, name)) => (module, name),
            None => ("", path),
        };
        const VAGUE: &[&str] = &["String", "str", "Box", "Arc", "Cow", ""];
        let vague_root = ["anyhow", "eyre"]
            .iter()
            .any(|root| module == *root || module.starts_with(&format!("{root}::")));
        if vague_root || (VAGUE.contains(&name) && (module.is_empty() || is_std(module))) {
            return ExceptionInfo {
                exc_type: "TaskError".into(),
                exc_message: message,
                exc_module: Some("braid".into()),
            };
        }
        // `std::io::Error` is `std::io::error::Error`: name it after its module, `IoError`.
        let name = if name == "Error" {
            module
                .rsplit("::")
                .find(|segment| *segment != "error" && !segment.is_empty())
                .map_or_else(
                    || "Error".to_string(),
                    |segment| format!("{}Error", camel(segment)),
                )
        } else {
            name.to_string()
        };
        ExceptionInfo {
            exc_type: name,
            exc_message: message,
            exc_module: Some(if module.is_empty() {
                "braid".to_string()
            } else {
                module.to_string()
            }),
        }
    }

    /// The exception's arguments as one message.
    pub fn message(&self) -> String {
        let parts: Vec<String> = self
            .exc_message
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        parts.join(", ")
    }

    /// The full name of the type: `module.Type` for Python, `module::Type` for Rust.
    pub fn qualified_type(&self) -> String {
        match self.exc_module.as_deref() {
            None | Some("") | Some("builtins") => self.exc_type.clone(),
            Some(m) if m.contains("::") => format!("{m}::{}", self.exc_type),
            Some(m) => format!("{m}.{}", self.exc_type),
        }
    }
}

/// `serde_json` -> `SerdeJson`.
fn camel(segment: &str) -> String {
    segment
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

fn is_std(module: &str) -> bool {
    ["alloc", "std", "core"]
        .iter()
        .any(|root| module == *root || module.starts_with(&format!("{root}::")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use braid_core::{TaskError, TaskErrorKind};

    fn task_error(error_type: &str) -> TaskError {
        TaskError {
            task: "t".into(),
            kind: TaskErrorKind::Error,
            error_type: error_type.into(),
            message: "boom".into(),
        }
    }

    #[test]
    fn braid_errors_are_named_after_their_type() {
        let info = ExceptionInfo::from_task_error(&task_error("core::num::error::ParseIntError"));
        assert_eq!(info.exc_type, "ParseIntError");
        assert_eq!(info.exc_module.as_deref(), Some("core::num::error"));
        assert_eq!(info.qualified_type(), "core::num::error::ParseIntError");
        assert_eq!(info.message(), "boom");
        let info = ExceptionInfo::from_task_error(&task_error("alloc::string::String"));
        assert_eq!(info.exc_type, "TaskError");
        let info = ExceptionInfo::from_task_error(&task_error(
            "alloc::boxed::Box<dyn core::error::Error + Send + Sync>",
        ));
        assert_eq!(info.exc_type, "TaskError");
        let info = ExceptionInfo::from_task_error(&task_error("std::io::error::Error"));
        assert_eq!(info.exc_type, "IoError");
        let info = ExceptionInfo::from_task_error(&task_error("serde_json::error::Error"));
        assert_eq!(info.exc_type, "SerdeJsonError");
        let info = ExceptionInfo::from_task_error(&task_error("anyhow::Error"));
        assert_eq!(info.exc_type, "TaskError");
        let info = ExceptionInfo::from_task_error(&task_error("my_app::jobs::Overdrawn"));
        assert_eq!(
            (info.exc_type.as_str(), info.exc_module.as_deref()),
            ("Overdrawn", Some("my_app::jobs"))
        );
        let mut panic = task_error("panic");
        panic.kind = TaskErrorKind::Panic;
        assert_eq!(ExceptionInfo::from_task_error(&panic).exc_type, "TaskPanic");
    }

    #[test]
    fn states_use_celerys_names() {
        for state in [
            State::Pending,
            State::Received,
            State::Started,
            State::Success,
            State::Failure,
            State::Retry,
            State::Revoked,
            State::Other("PROGRESS".into()),
        ] {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(serde_json::from_str::<State>(&json).unwrap(), state);
        }
        assert!(State::Revoked.is_ready() && !State::Retry.is_ready());
    }

    #[test]
    fn python_failure_meta_reads_back() {
        let meta: ResultMeta = serde_json::from_str(r#"{"status": "FAILURE", "result": {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}, "traceback": "Traceback...", "children": [], "date_done": "2026-11-26T09:04:55.145289+00:00", "task_id": "e81096d6"}"#).unwrap();
        assert_eq!(meta.status, State::Failure);
        let info: ExceptionInfo = serde_json::from_value(meta.result).unwrap();
        assert_eq!(info.qualified_type(), "ValueError");
        assert_eq!(info.message(), "boom");
    }
}
