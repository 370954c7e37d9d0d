//! Signatures and Celery's canvas: chain, group, chord, map, starmap and chunks.
//!
//! A [`Signature`] is a task call written down (name, arguments, options), in exactly the
//! dictionary form Celery uses, so signatures cross between Python and braid inside
//! messages (a chain's next steps, a chord's body, links).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{CallOptions, Error, Expires, Result};
use braid_core::TaskRef;

/// A task call written down: Celery's `signature` (`add.s(2, 3)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// The task's name (`celery.chain`, `celery.group`, `celery.chord` for canvas).
    pub task: String,
    /// Positional arguments; a non-immutable signature gets the parent's result first.
    #[serde(default)]
    pub args: Vec<Value>,
    /// Keyword arguments.
    #[serde(default)]
    pub kwargs: Map<String, Value>,
    /// Call options: `task_id`, `queue`, `priority`, `countdown`, `link`, ...
    #[serde(default)]
    pub options: Map<String, Value>,
    /// `None` for a task; `chain`, `group` or `chord` for canvas.
    #[serde(default)]
    pub subtask_type: Option<String>,
    /// An immutable signature ignores the parent's result (Celery's `.si()`).
    #[serde(default)]
    pub immutable: bool,
    /// A chord's size hint (Celery 5.1+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chord_size: Option<u64>,
}

fn to_values<A: Serialize>(args: &A) -> Result<Vec<Value>> {
    match serde_json::to_value(args).map_err(|e| braid_core::Error::Encode(e.to_string()))? {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        other => Err(Error::InvalidOption(format!(
            "task arguments must encode as a list, not {other}"
        ))),
    }
}

impl Signature {
    /// A call of the task named `task` with JSON arguments.
    pub fn new(task: impl Into<String>, args: Vec<Value>) -> Self {
        Signature {
            task: task.into(),
            args,
            kwargs: Map::new(),
            options: Map::new(),
            subtask_type: None,
            immutable: false,
            chord_size: None,
        }
    }

    /// A call of a registered task with typed arguments (Celery's `task.s(args)`). With a
    /// parent (in a chain, as a link, as a chord's body) the parent's result comes first,
    /// so give only the remaining arguments here, as a tuple.
    ///
    /// # Errors
    /// An argument that does not encode as JSON.
    pub fn of<A: Serialize, R: DeserializeOwned>(
        task: TaskRef<A, R>,
        args: impl Serialize,
    ) -> Result<Self> {
        Ok(Signature::new(task.name(), to_values(&args)?))
    }

    /// Makes the signature ignore its parent's result (Celery's `.si()`).
    pub fn immutable(mut self) -> Self {
        self.immutable = true;
        self
    }

    /// Adds a keyword argument.
    pub fn kwarg(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.kwargs.insert(name.into(), value.into());
        self
    }

    /// Sets call options (queue, priority, countdown, ...), as Celery's `.set()` does.
    pub fn set(mut self, options: CallOptions) -> Self {
        let o = &mut self.options;
        for (k, v) in options.kwargs {
            self.kwargs.insert(k, v);
        }
        if let Some(queue) = options.queue {
            o.insert("queue".into(), queue.into());
        }
        if let Some(priority) = options.priority {
            o.insert("priority".into(), priority.into());
        }
        if let Some(id) = options.task_id {
            o.insert("task_id".into(), id.into());
        }
        if let Some(countdown) = options.countdown {
            o.insert("countdown".into(), countdown.as_secs_f64().into());
        }
        if let Some(eta) = options.eta {
            o.insert(
                "eta".into(),
                crate::clock::isoformat(chrono::DateTime::<chrono::Utc>::from(eta)).into(),
            );
        }
        match options.expires {
            Some(Expires::In(d)) => {
                o.insert("expires".into(), d.as_secs_f64().into());
            }
            Some(Expires::At(t)) => {
                o.insert(
                    "expires".into(),
                    crate::clock::isoformat(chrono::DateTime::<chrono::Utc>::from(t)).into(),
                );
            }
            None => {}
        }
        if let Some(limit) = options.time_limit {
            o.insert("time_limit".into(), limit.as_secs_f64().into());
        }
        if let Some(limit) = options.soft_time_limit {
            o.insert("soft_time_limit".into(), limit.as_secs_f64().into());
        }
        if let Some(ignore) = options.ignore_result {
            o.insert("ignore_result".into(), ignore.into());
        }
        if !options.headers.is_empty() {
            o.insert("headers".into(), Value::Object(options.headers));
        }
        let mut links: Vec<Value> = options.link.iter().map(Signature::to_value).collect();
        if !links.is_empty() {
            if let Some(Value::Array(existing)) = o.remove("link") {
                links.splice(0..0, existing);
            }
            o.insert("link".into(), Value::Array(links));
        }
        let mut errbacks: Vec<Value> = options.link_error.iter().map(Signature::to_value).collect();
        if !errbacks.is_empty() {
            if let Some(Value::Array(existing)) = o.remove("link_error") {
                errbacks.splice(0..0, existing);
            }
            o.insert("link_error".into(), Value::Array(errbacks));
        }
        self
    }

    /// The signature as Celery's dictionary.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Reads a signature from Celery's dictionary.
    ///
    /// # Errors
    /// [`Error::Protocol`] when the value is not a signature.
    pub fn from_value(value: &Value) -> Result<Self> {
        Signature::deserialize(value)
            .map_err(|e| Error::Protocol(format!("not a task signature: {e}")))
    }

    /// Applies this task to every item, one by one in one worker task: Celery's
    /// `task.map(items)` (`celery.map`), returning the list of results.
    pub fn map(&self, items: Vec<Value>) -> Signature {
        Signature::new("celery.map", vec![self.to_value(), Value::Array(items)])
    }

    /// Like [`Signature::map`] with each item an argument list: `celery.starmap`.
    pub fn starmap(&self, items: Vec<Vec<Value>>) -> Signature {
        let items = items.into_iter().map(Value::Array).collect();
        Signature::new("celery.starmap", vec![self.to_value(), Value::Array(items)])
    }

    /// Splits the argument lists into chunks of `n`, each a `celery.starmap` task, run as
    /// a group: Celery's `task.chunks(items, n)`. Each chunk's result is its list.
    pub fn chunks(&self, items: Vec<Vec<Value>>, n: usize) -> Signature {
        let n = n.max(1);
        let tasks: Vec<Signature> = items
            .chunks(n)
            .map(|chunk| self.starmap(chunk.to_vec()))
            .collect();
        group(tasks)
    }

    /// Whether this is a chain, group or chord rather than one task.
    pub fn is_canvas(&self) -> bool {
        self.subtask_type.is_some()
    }

    /// The steps of a chain or the members of a group.
    pub(crate) fn tasks(&self) -> Result<Vec<Signature>> {
        let tasks = self.kwargs.get("tasks").or_else(|| self.args.first());
        match tasks {
            Some(Value::Array(items)) => items.iter().map(Signature::from_value).collect(),
            _ => Err(Error::Protocol(format!(
                "a {} signature without tasks",
                self.subtask_type.as_deref().unwrap_or("canvas")
            ))),
        }
    }

    /// A chord's header tasks and body.
    pub(crate) fn chord_parts(&self) -> Result<(Vec<Signature>, Signature)> {
        let header = self
            .kwargs
            .get("header")
            .or_else(|| self.args.first())
            .ok_or_else(|| Error::Protocol("a chord without a header".into()))?;
        let header = match header {
            Value::Array(items) => items
                .iter()
                .map(Signature::from_value)
                .collect::<Result<Vec<_>>>()?,
            other => Signature::from_value(other)?.tasks()?,
        };
        let body = self
            .kwargs
            .get("body")
            .or_else(|| self.args.get(1))
            .ok_or_else(|| Error::Protocol("a chord without a body".into()))?;
        Ok((header, Signature::from_value(body)?))
    }
}

/// Runs tasks one after another, each getting the previous one's result first:
/// Celery's `chain(a.s(), b.s())` (or `a.s() | b.s()`).
pub fn chain(tasks: impl IntoIterator<Item = Signature>) -> Signature {
    let tasks: Vec<Value> = tasks.into_iter().map(|s| s.to_value()).collect();
    let mut sig = Signature::new("celery.chain", Vec::new());
    sig.kwargs.insert("tasks".into(), Value::Array(tasks));
    sig.subtask_type = Some("chain".into());
    sig
}

/// Runs tasks in parallel: Celery's `group(...)`.
pub fn group(tasks: impl IntoIterator<Item = Signature>) -> Signature {
    let tasks: Vec<Value> = tasks.into_iter().map(|s| s.to_value()).collect();
    let mut sig = Signature::new("celery.group", Vec::new());
    sig.kwargs.insert("tasks".into(), Value::Array(tasks));
    sig.subtask_type = Some("group".into());
    sig
}

/// Runs the header tasks in parallel, then the body with the list of their results:
/// Celery's `chord(header)(body)`. The header's completion is counted in the result
/// backend, so a chord needs one.
pub fn chord(header: impl IntoIterator<Item = Signature>, body: Signature) -> Signature {
    let header = group(header);
    let mut sig = Signature::new("celery.chord", Vec::new());
    sig.kwargs.insert("header".into(), header.to_value());
    sig.kwargs.insert("body".into(), body.to_value());
    sig.kwargs.insert("kwargs".into(), json!({}));
    sig.subtask_type = Some("chord".into());
    sig
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_use_celerys_dictionary() {
        let sig = Signature::new("tasks.add", vec![json!(2)]).set(CallOptions::new().queue("q"));
        assert_eq!(
            sig.to_value(),
            json!({"task": "tasks.add", "args": [2], "kwargs": {}, "options": {"queue": "q"}, "subtask_type": null, "immutable": false})
        );
        // As Celery 5.x writes one.
        let python = json!({"task": "tasks.xsum", "args": [], "kwargs": {}, "options": {"queue": "probe2", "task_id": "a6"}, "subtask_type": null, "immutable": false, "chord_size": null});
        let sig = Signature::from_value(&python).unwrap();
        assert_eq!(sig.options["task_id"], "a6");
        assert!(!sig.is_canvas());
    }

    #[test]
    fn canvas_parts_read_back() {
        let a = Signature::new("a", vec![]);
        let b = Signature::new("b", vec![]);
        let c = chain([a.clone(), b.clone()]);
        assert_eq!(c.tasks().unwrap(), vec![a.clone(), b.clone()]);
        let g = group([a.clone(), b.clone()]);
        assert_eq!(g.subtask_type.as_deref(), Some("group"));
        let ch = chord([a.clone()], b.clone());
        let (header, body) = ch.chord_parts().unwrap();
        assert_eq!((header, body), (vec![a.clone()], b));
        let chunks = a.chunks(vec![vec![json!(1)], vec![json!(2)], vec![json!(3)]], 2);
        assert_eq!(chunks.tasks().unwrap().len(), 2);
        assert_eq!(chunks.tasks().unwrap()[0].task, "celery.starmap");
    }
}
