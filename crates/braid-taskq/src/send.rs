//! Turning calls and signatures into task messages: routing, ids, ETA, expiry, and the
//! layout of chains, groups and chords.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::app::AppConfig;
use crate::broker::Outgoing;
use crate::{CallOptions, Error, Expires, Result, Serializer, Signature, TaskMessage, clock};

/// Everything one task message says, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub task: String,
    pub args: Box<RawValue>,
    pub kwargs: Map<String, Value>,
    pub task_id: String,
    pub queue: String,
    pub priority: u8,
    pub eta: Option<DateTime<Utc>>,
    pub expires: Option<DateTime<Utc>>,
    pub time_limit: Option<f64>,
    pub soft_time_limit: Option<f64>,
    pub ignore_result: bool,
    pub headers: Map<String, Value>,
    pub serializer: Serializer,
    pub link: Vec<Value>,
    pub link_error: Vec<Value>,
    pub chain: Option<Vec<Value>>,
    pub chord: Option<Value>,
    pub group: Option<String>,
    pub group_index: Option<u64>,
    pub parent_id: Option<String>,
    pub root_id: Option<String>,
    pub retries: u32,
}

/// The task that sends new messages (a worker running a chain step), for `parent_id`
/// and `root_id`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parent {
    pub id: Option<String>,
    pub root_id: Option<String>,
}

/// Messages to send and chord sizes to record before them.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub messages: Vec<Outgoing>,
    pub chord_sizes: Vec<(String, usize)>,
}

fn raw(value: &Value) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(value).map_err(|e| Error::Protocol(e.to_string()))
}

fn seconds(value: &Value) -> Option<f64> {
    value.as_f64().filter(|s| s.is_finite() && *s >= 0.0)
}

fn time_option(value: &Value, name: &str) -> Result<Option<DateTime<Utc>>> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => clock::parse(text)
            .map(Some)
            .ok_or_else(|| Error::InvalidOption(format!("{name} is not a time: {text:?}"))),
        other => match seconds(other) {
            Some(s) => Ok(Some(clock::after(std::time::Duration::from_secs_f64(s)))),
            None => Err(Error::InvalidOption(format!(
                "{name} must be seconds or an ISO 8601 time, not {other}"
            ))),
        },
    }
}

impl Draft {
    /// A call of `task` with a JSON argument array and call options.
    pub(crate) fn from_call(
        config: &AppConfig,
        task: &str,
        args: Box<RawValue>,
        options: CallOptions,
    ) -> Result<Draft> {
        let task_options = config.options(task);
        let eta = match (options.eta, options.countdown) {
            (Some(at), _) => Some(DateTime::<Utc>::from(at)),
            (None, Some(d)) if !d.is_zero() => Some(clock::after(d)),
            _ => None,
        };
        let expires = match options.expires {
            Some(Expires::In(d)) => Some(clock::after(d)),
            Some(Expires::At(t)) => Some(DateTime::<Utc>::from(t)),
            None => None,
        };
        Ok(Draft {
            task: task.to_string(),
            args,
            kwargs: options.kwargs,
            task_id: options
                .task_id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            queue: options
                .queue
                .or_else(|| task_options.queue.clone())
                .unwrap_or_else(|| config.default_queue.clone()),
            priority: options.priority.or(task_options.priority).unwrap_or(0),
            eta,
            expires,
            time_limit: options
                .time_limit
                .or(task_options.time_limit)
                .map(|d| d.as_secs_f64()),
            soft_time_limit: options
                .soft_time_limit
                .or(task_options.soft_time_limit)
                .map(|d| d.as_secs_f64()),
            ignore_result: options.ignore_result.unwrap_or(task_options.ignore_result),
            headers: options.headers,
            serializer: options.serializer.unwrap_or(config.serializer),
            link: options.link.iter().map(Signature::to_value).collect(),
            link_error: options.link_error.iter().map(Signature::to_value).collect(),
            chain: None,
            chord: None,
            group: None,
            group_index: None,
            parent_id: None,
            root_id: None,
            retries: 0,
        })
    }

    /// A plain task signature, with the parent's result (when given and the signature is
    /// not immutable) before its own arguments.
    pub(crate) fn from_signature(
        config: &AppConfig,
        sig: &Signature,
        parent_result: Option<&Value>,
        parent: &Parent,
    ) -> Result<Draft> {
        let mut args = Vec::with_capacity(sig.args.len() + 1);
        if let Some(result) = parent_result
            && !sig.immutable
        {
            args.push(result.clone());
        }
        args.extend(sig.args.iter().cloned());
        let o = &sig.options;
        let task_options = config.options(&sig.task);
        let get = |name: &str| o.get(name).filter(|v| !v.is_null());
        let eta = match (get("eta"), get("countdown")) {
            (Some(eta), _) => time_option(eta, "eta")?,
            (None, Some(countdown)) => time_option(countdown, "countdown")?,
            _ => None,
        };
        let expires = match get("expires") {
            Some(v) => time_option(v, "expires")?,
            None => None,
        };
        let links = |name: &str| -> Vec<Value> {
            match get(name) {
                Some(Value::Array(items)) => items.clone(),
                Some(one @ Value::Object(_)) => vec![one.clone()],
                _ => Vec::new(),
            }
        };
        let text = |name: &str| get(name).and_then(Value::as_str).map(str::to_string);
        Ok(Draft {
            task: sig.task.clone(),
            args: raw(&Value::Array(args))?,
            kwargs: sig.kwargs.clone(),
            task_id: text("task_id").unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            queue: text("queue")
                .or_else(|| text("routing_key"))
                .or_else(|| task_options.queue.clone())
                .unwrap_or_else(|| config.default_queue.clone()),
            priority: get("priority")
                .and_then(Value::as_u64)
                .map(|p| p.min(9) as u8)
                .or(task_options.priority)
                .unwrap_or(0),
            eta,
            expires,
            time_limit: get("time_limit")
                .and_then(seconds)
                .or(task_options.time_limit.map(|d| d.as_secs_f64())),
            soft_time_limit: get("soft_time_limit")
                .and_then(seconds)
                .or(task_options.soft_time_limit.map(|d| d.as_secs_f64())),
            ignore_result: get("ignore_result")
                .and_then(Value::as_bool)
                .unwrap_or(task_options.ignore_result),
            headers: get("headers")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            serializer: config.serializer,
            link: links("link"),
            link_error: links("link_error"),
            chain: None,
            chord: None,
            group: text("group_id"),
            group_index: get("group_index").and_then(Value::as_u64),
            parent_id: parent.id.clone(),
            root_id: parent.root_id.clone(),
            retries: 0,
        })
    }

    /// The message this draft describes.
    pub(crate) fn message(self, origin: &str) -> Result<TaskMessage> {
        let mut m = TaskMessage::new(&self.task, &self.task_id, self.args, &self.queue)?;
        let h = &mut m.headers;
        h.lang = "py".into();
        h.eta = self.eta.map(clock::isoformat);
        h.expires = self.expires.map(clock::isoformat);
        h.group = self.group;
        h.group_index = self.group_index;
        h.retries = self.retries;
        h.timelimit = (self.time_limit, self.soft_time_limit);
        h.root_id = Some(self.root_id.unwrap_or_else(|| self.task_id.clone()));
        h.parent_id = self.parent_id;
        h.argsrepr = Some(crate::message::truncate(m.args.get(), 1024));
        h.kwargsrepr = Some(crate::message::truncate(
            &serde_json::to_string(&self.kwargs).unwrap_or_default(),
            1024,
        ));
        h.origin = Some(origin.to_string());
        h.ignore_result = Some(self.ignore_result);
        h.extra = self.headers;
        m.kwargs = self.kwargs;
        m.properties.priority = self.priority;
        if let Some(expires) = self.expires {
            let ms = (expires - clock::now()).num_milliseconds().max(0);
            m.properties
                .extra
                .insert("expiration".into(), Value::String(ms.to_string()));
        }
        m.embed.callbacks = (!self.link.is_empty()).then_some(self.link);
        m.embed.errbacks = (!self.link_error.is_empty()).then_some(self.link_error);
        m.embed.chain = self.chain;
        m.embed.chord = self.chord;
        m.serializer = self.serializer;
        Ok(m)
    }

    /// The message, encoded and addressed.
    pub(crate) fn outgoing(self, origin: &str) -> Result<Outgoing> {
        let queue = self.queue.clone();
        let priority = self.priority;
        Ok(Outgoing {
            queue,
            priority,
            payload: self.message(origin)?.encode()?,
        })
    }
}

/// Gives a signature (and the last step of a chain, the body of a chord) a task id, and
/// returns the id of the result the whole signature ends with.
pub(crate) fn freeze(sig: &mut Signature) -> Result<String> {
    match sig.subtask_type.as_deref() {
        None => Ok(sig
            .options
            .entry("task_id")
            .or_insert_with(|| Value::String(uuid::Uuid::new_v4().to_string()))
            .as_str()
            .unwrap_or_default()
            .to_string()),
        Some("chain") => {
            let mut tasks = sig.tasks()?;
            let Some(last) = tasks.last_mut() else {
                return Err(Error::InvalidOption("an empty chain".into()));
            };
            let id = freeze(last)?;
            sig.kwargs.insert(
                "tasks".into(),
                Value::Array(tasks.iter().map(Signature::to_value).collect()),
            );
            Ok(id)
        }
        Some("group") => Ok(sig
            .options
            .entry("task_id")
            .or_insert_with(|| Value::String(uuid::Uuid::new_v4().to_string()))
            .as_str()
            .unwrap_or_default()
            .to_string()),
        Some("chord") => {
            let (header, mut body) = sig.chord_parts()?;
            let id = freeze(&mut body)?;
            sig.kwargs
                .insert("header".into(), crate::canvas::group(header).to_value());
            sig.kwargs.insert("body".into(), body.to_value());
            Ok(id)
        }
        Some(other) => Err(Error::Protocol(format!("unknown canvas type {other:?}"))),
    }
}

/// Rewrites a chain's steps the way Celery does: a group followed by more steps becomes a
/// chord whose body is the rest, and steps after a chord join its body.
fn prepare_chain(steps: Vec<Signature>) -> Result<Vec<Signature>> {
    let mut out = Vec::with_capacity(steps.len());
    let mut steps = steps.into_iter();
    while let Some(step) = steps.next() {
        let rest: Vec<Signature> = steps.clone().collect();
        match step.subtask_type.as_deref() {
            Some("group") if !rest.is_empty() => {
                let body = if rest.len() == 1 {
                    rest.into_iter().next().unwrap_or(step.clone())
                } else {
                    crate::canvas::chain(rest)
                };
                out.push(crate::canvas::chord(step.tasks()?, body));
                return Ok(out);
            }
            Some("chord") if !rest.is_empty() => {
                let (header, body) = step.chord_parts()?;
                let mut chained = vec![body];
                chained.extend(rest);
                out.push(crate::canvas::chord(header, crate::canvas::chain(chained)));
                return Ok(out);
            }
            Some("chain") => {
                // A chain inside a chain is flattened.
                let mut inner = step.tasks()?;
                inner.extend(rest);
                let mut prepared = prepare_chain(inner)?;
                out.append(&mut prepared);
                return Ok(out);
            }
            _ => out.push(step),
        }
    }
    Ok(out)
}

/// What applying a signature started: the id of its final result and, for a group, the
/// ids of its members.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Planned {
    pub id: String,
    pub children: Option<Vec<String>>,
}

/// Lays a signature out as messages (and chord sizes) in `plan`.
pub(crate) fn plan(
    config: &AppConfig,
    sig: &Signature,
    parent_result: Option<&Value>,
    parent: &Parent,
    plan: &mut Plan,
) -> Result<Planned> {
    plan_with(config, sig, parent_result, parent, None, plan)
}

/// Like [`plan`], for the next step of a chain: `chain_rest` holds the steps after it,
/// last to run first, as Celery's `chain` field does.
pub(crate) fn plan_with(
    config: &AppConfig,
    sig: &Signature,
    parent_result: Option<&Value>,
    parent: &Parent,
    chain_rest: Option<Vec<Value>>,
    plan: &mut Plan,
) -> Result<Planned> {
    match sig.subtask_type.as_deref() {
        None => {
            let mut draft = Draft::from_signature(config, sig, parent_result, parent)?;
            draft.chain = chain_rest.filter(|rest| !rest.is_empty());
            let id = draft.task_id.clone();
            plan.messages.push(draft.outgoing(&config.origin)?);
            Ok(Planned { id, children: None })
        }
        Some("chain") => {
            let mut steps = prepare_chain(sig.tasks()?)?;
            if steps.is_empty() {
                return Err(Error::InvalidOption("an empty chain".into()));
            }
            let last = steps.len() - 1;
            let id = freeze(&mut steps[last])?;
            let first = steps.remove(0);
            let mut rest: Vec<Value> = steps.iter().rev().map(Signature::to_value).collect();
            if let Some(outer) = chain_rest {
                // Steps of an enclosing chain run after this one's.
                let mut all = outer;
                all.append(&mut rest);
                rest = all;
            }
            let planned = plan_with(config, &first, parent_result, parent, Some(rest), plan)?;
            Ok(Planned {
                id: if last == 0 { planned.id } else { id },
                children: None,
            })
        }
        Some("group") => {
            let mut sig = sig.clone();
            let gid = freeze(&mut sig)?;
            let mut children = Vec::new();
            for (index, member) in sig.tasks()?.into_iter().enumerate() {
                let mut member = member;
                member
                    .options
                    .insert("group_id".into(), Value::String(gid.clone()));
                member
                    .options
                    .insert("group_index".into(), Value::from(index as u64));
                let planned = plan_with(config, &member, parent_result, parent, None, plan)?;
                children.push(planned.id);
            }
            if let Some(rest) = chain_rest.filter(|r| !r.is_empty()) {
                // Only reached for a group that ends a chain with steps of an outer one.
                return Err(Error::InvalidOption(format!(
                    "a group followed by {} more steps must be a chord",
                    rest.len()
                )));
            }
            Ok(Planned {
                id: gid,
                children: Some(children),
            })
        }
        Some("chord") => {
            let (header, mut body) = sig.chord_parts()?;
            if let Some(rest) = chain_rest.filter(|r| !r.is_empty()) {
                let mut steps = vec![body];
                for step in rest.iter().rev() {
                    steps.push(Signature::from_value(step)?);
                }
                body = crate::canvas::chain(steps);
            }
            let body_id = freeze(&mut body)?;
            let gid = sig
                .options
                .get("group_id")
                .or_else(|| sig.options.get("task_id"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            if header.is_empty() {
                let empty = Value::Array(Vec::new());
                return plan_with(config, &body, Some(&empty), parent, None, plan).map(|_| {
                    Planned {
                        id: body_id,
                        children: None,
                    }
                });
            }
            plan.chord_sizes.push((gid.clone(), header.len()));
            let body_value = body.to_value();
            for (index, member) in header.into_iter().enumerate() {
                if member.is_canvas() {
                    return Err(Error::InvalidOption(
                        "a chord's header must be plain tasks".into(),
                    ));
                }
                let mut draft = Draft::from_signature(config, &member, parent_result, parent)?;
                draft.group = Some(gid.clone());
                draft.group_index = Some(index as u64);
                draft.chord = Some(body_value.clone());
                plan.messages.push(draft.outgoing(&config.origin)?);
            }
            Ok(Planned {
                id: body_id,
                children: None,
            })
        }
        Some(other) => Err(Error::Protocol(format!("unknown canvas type {other:?}"))),
    }
}
