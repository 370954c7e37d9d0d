//! Running one task message: finding the task, matching keyword arguments to parameters,
//! calling it, and turning what it returned into a Celery outcome.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use braid_core::{Codec, TaskEntry, TaskErrorKind};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::state::ExceptionInfo;
use crate::{Signature, TaskMessage};

/// The header a braid client sets when the arguments are braid's binary codec (the
/// [`Executor`](braid_core::Executor) path): `[base64]` arguments and a base64 result.
pub(crate) const BINARY_CODEC_HEADER: &str = "braid_codec";

/// A task that is ready to run.
pub(crate) enum Call {
    /// A registered task with encoded arguments.
    Plain {
        entry: &'static TaskEntry,
        codec: Codec,
        args: Vec<u8>,
    },
    /// Celery's `celery.map` / `celery.starmap`: one task over many items, in order.
    Map {
        entry: &'static TaskEntry,
        items: Vec<Value>,
        star: bool,
    },
}

impl Call {
    pub(crate) fn is_async(&self) -> bool {
        matches!(self, Call::Plain { entry, .. } if entry.is_async())
    }
}

/// Why a message cannot run at all; it goes to the dead-letter list.
#[derive(Debug)]
pub(crate) struct Unrunnable {
    pub exception: ExceptionInfo,
    pub reason: String,
}

fn unrunnable(exception: ExceptionInfo) -> Unrunnable {
    let reason = format!("{}: {}", exception.exc_type, exception.message());
    Unrunnable { exception, reason }
}

/// Finds the task and prepares its arguments.
pub(crate) fn prepare(message: &TaskMessage) -> Result<Call, Unrunnable> {
    let name = message.task();
    if name == "celery.map" || name == "celery.starmap" {
        return prepare_map(message, name == "celery.starmap");
    }
    let entry = braid_core::lookup(name).map_err(|e| {
        unrunnable(ExceptionInfo::celery(
            "NotRegistered",
            format!("{name}: {e}"),
        ))
    })?;
    if message
        .headers
        .extra
        .get(BINARY_CODEC_HEADER)
        .and_then(Value::as_str)
        == Some("binary")
    {
        let encoded: Vec<String> = serde_json::from_str(message.args.get()).map_err(|e| {
            unrunnable(ExceptionInfo::builtin(
                "TypeError",
                format!("binary arguments must be [base64]: {e}"),
            ))
        })?;
        let bytes = encoded
            .first()
            .map(|b| BASE64.decode(b))
            .transpose()
            .map_err(|e| {
                unrunnable(ExceptionInfo::builtin(
                    "TypeError",
                    format!("binary arguments are not base64: {e}"),
                ))
            })?
            .unwrap_or_default();
        return Ok(Call::Plain {
            entry,
            codec: Codec::Binary,
            args: bytes,
        });
    }
    let args = if message.kwargs.is_empty() {
        message.args.get().as_bytes().to_vec()
    } else {
        merge_kwargs(&message.args, &message.kwargs, entry)
            .map_err(|m| unrunnable(ExceptionInfo::builtin("TypeError", m)))?
    };
    Ok(Call::Plain {
        entry,
        codec: Codec::Json,
        args,
    })
}

fn prepare_map(message: &TaskMessage, star: bool) -> Result<Call, Unrunnable> {
    let bad = |m: String| unrunnable(ExceptionInfo::builtin("TypeError", m));
    let mut args = message.args_values().map_err(|e| bad(e.to_string()))?;
    if args.len() != 2 {
        return Err(bad(format!(
            "{} takes (task, items), got {} arguments",
            message.task(),
            args.len()
        )));
    }
    let items = match args.pop() {
        Some(Value::Array(items)) => items,
        _ => return Err(bad("the items must be a list".into())),
    };
    let sig = args
        .pop()
        .map(|s| Signature::from_value(&s))
        .transpose()
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("no task signature".into()))?;
    let entry = braid_core::lookup(&sig.task).map_err(|e| {
        unrunnable(ExceptionInfo::celery(
            "NotRegistered",
            format!("{}: {e}", sig.task),
        ))
    })?;
    Ok(Call::Map { entry, items, star })
}

/// The parameter names in a signature such as `fn(x: i64, mut y: Vec<u8>) -> i64`.
pub(crate) fn param_names(signature: &str) -> Option<Vec<String>> {
    let start = signature.find('(')? + 1;
    let mut depth = 0i32;
    let mut end = None;
    for (i, c) in signature[start..].char_indices() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' if depth == 0 => {
                end = Some(start + i);
                break;
            }
            ')' | '>' | ']' => depth -= 1,
            _ => {}
        }
    }
    let inner = &signature[start..end?];
    let mut names = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in inner.chars() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' | '>' | ']' => depth -= 1,
            ',' if depth == 0 => {
                names.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        names.push(current);
    }
    names
        .iter()
        .map(|part| {
            let pattern = part.split(':').next()?.trim();
            let name = pattern.trim_start_matches("mut ").trim();
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

/// Puts keyword arguments in their parameters' places after the positional ones.
fn merge_kwargs(
    args: &RawValue,
    kwargs: &Map<String, Value>,
    entry: &TaskEntry,
) -> Result<Vec<u8>, String> {
    let mut positional: Vec<Value> = serde_json::from_str(args.get())
        .map_err(|e| format!("the arguments are not a list: {e}"))?;
    let names = param_names(entry.signature()).ok_or_else(|| {
        format!(
            "{} got keyword arguments, but its parameter names cannot be read from `{}`",
            entry.name(),
            entry.signature()
        )
    })?;
    if positional.len() > names.len() {
        return Err(format!(
            "{}() takes {} arguments but {} were given",
            entry.name(),
            names.len(),
            positional.len()
        ));
    }
    let mut used = 0;
    for name in &names[positional.len()..] {
        match kwargs.get(name) {
            Some(value) => {
                positional.push(value.clone());
                used += 1;
            }
            None => {
                return Err(format!("{}() missing argument: '{name}'", entry.name()));
            }
        }
    }
    if used != kwargs.len() {
        let unknown: Vec<&String> = kwargs
            .keys()
            .filter(|k| !names.contains(k) || names[..names.len() - used].contains(k))
            .collect();
        return Err(format!(
            "{}() got unexpected or repeated keyword arguments: {unknown:?}",
            entry.name()
        ));
    }
    serde_json::to_vec(&positional).map_err(|e| e.to_string())
}

/// Runs a call on this thread.
pub(crate) fn run_blocking(call: &Call) -> Result<Vec<u8>, braid_core::Error> {
    match call {
        Call::Plain { entry, codec, args } => entry.call(*codec, args),
        Call::Map { entry, items, star } => {
            let mut results = Vec::with_capacity(items.len());
            for item in items {
                let args = if *star {
                    serde_json::to_vec(item)
                } else {
                    serde_json::to_vec(&[item])
                }
                .map_err(|e| braid_core::Error::Encode(e.to_string()))?;
                let out = entry.call(Codec::Json, &args)?;
                let value: Value =
                    serde_json::from_slice(&out).map_err(|e| braid_core::Error::Decode {
                        expected: "JSON".into(),
                        message: e.to_string(),
                    })?;
                results.push(value);
            }
            serde_json::to_vec(&results).map_err(|e| braid_core::Error::Encode(e.to_string()))
        }
    }
}

/// The result of a call as the JSON value stored in the backend.
pub(crate) fn result_json(call_codec: Codec, out: Vec<u8>) -> Result<Box<RawValue>, String> {
    match call_codec {
        Codec::Json => {
            let text = String::from_utf8(out).map_err(|e| e.to_string())?;
            RawValue::from_string(text).map_err(|e| e.to_string())
        }
        Codec::Binary => {
            serde_json::value::to_raw_value(&BASE64.encode(out)).map_err(|e| e.to_string())
        }
    }
}

/// How a failed call is stored, and whether its message should be dead-lettered.
pub(crate) struct Failed {
    pub exception: ExceptionInfo,
    pub error_type: String,
    pub dead_letter: bool,
}

/// Classifies an error a call returned.
pub(crate) fn failed(error: braid_core::Error) -> Failed {
    match error {
        braid_core::Error::Task(te) => {
            let exception = if te.kind == TaskErrorKind::Error
                && te.error_type.ends_with("SoftTimeLimitExceeded")
            {
                ExceptionInfo::celery("SoftTimeLimitExceeded", te.message.clone())
            } else {
                ExceptionInfo::from_task_error(&te)
            };
            Failed {
                exception,
                error_type: te.error_type,
                dead_letter: false,
            }
        }
        braid_core::Error::DecodeArgs {
            message,
            expected,
            task,
        } => Failed {
            exception: ExceptionInfo::builtin(
                "TypeError",
                format!("{task}() arguments do not decode as {expected}: {message}"),
            ),
            error_type: "TypeError".into(),
            dead_letter: true,
        },
        braid_core::Error::UnknownTask(name) | braid_core::Error::DuplicateTask(name) => Failed {
            exception: ExceptionInfo::celery("NotRegistered", name),
            error_type: "NotRegistered".into(),
            dead_letter: true,
        },
        other => Failed {
            exception: ExceptionInfo {
                exc_type: "TaskError".into(),
                exc_message: vec![Value::String(other.to_string())],
                exc_module: Some("braid".into()),
            },
            error_type: "braid::TaskError".into(),
            dead_letter: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_come_from_the_signature() {
        assert_eq!(
            param_names("fn(x: i64, y: i64) -> i64").unwrap(),
            ["x", "y"]
        );
        assert_eq!(
            param_names("async fn(mut xs: Vec<(i64, i64)>, m: HashMap<String, u8>) -> u8").unwrap(),
            ["xs", "m"]
        );
        assert_eq!(param_names("fn() -> ()").unwrap(), Vec::<String>::new());
        assert!(param_names("nothing").is_none());
    }
}
