//! The completion step: stores results, sends what comes next (retries, chain steps,
//! links, chord bodies), then acknowledges, in batches of whatever has finished.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::mpsc::UnboundedReceiver;

use super::{Done, Event, Outcome, Shared, Stop};
use crate::backend::{ChordPart, Record};
use crate::broker::{Delivery, Outgoing};
use crate::message::Salvage;
use crate::send::{Parent, Plan, plan_with};
use crate::state::{ExceptionInfo, MetaOut};
use crate::{Result, Signature, TaskMessage, clock};

/// The most events settled in one batch.
const BATCH: usize = 1024;

pub(super) async fn completion_loop(shared: Arc<Shared>, mut events: UnboundedReceiver<Event>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = events.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match events.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        settle(&shared, std::mem::take(&mut batch)).await;
    }
}

/// What one batch leads to, in the order it is done.
#[derive(Default)]
struct Work {
    records: Vec<Record>,
    chords: Vec<(ChordPart, Value, Parent)>,
    plan: Plan,
    later: Vec<(Outgoing, f64)>,
    chords_done: Vec<String>,
    dead: Vec<(Delivery, String)>,
    give_back: Vec<Delivery>,
    acks: Vec<String>,
    release: Vec<String>,
}

fn random_unit() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(clock::epoch_seconds().to_bits());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A result record in Celery's layout.
pub(super) fn record(
    message: &TaskMessage,
    status: &str,
    result: &RawValue,
    traceback: Option<&str>,
    date_done: Option<&str>,
) -> Record {
    let meta = MetaOut {
        status,
        result,
        traceback,
        children: &[],
        date_done,
        group_id: message.headers.group.as_deref(),
        parent_id: message.headers.parent_id.as_deref(),
        task_id: message.id(),
    };
    Record {
        task_id: message.id().to_string(),
        meta: serde_json::to_vec(&meta).unwrap_or_default(),
        keep_success: message.redelivered(),
    }
}

fn raw(value: &impl serde::Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value)
        .unwrap_or_else(|_| RawValue::from_string("null".into()).unwrap_or_default())
}

/// The `STARTED` record of a task that tracks starts.
pub(super) fn started_record(shared: &Shared, message: &TaskMessage) -> Record {
    let info = raw(&serde_json::json!({"pid": std::process::id(), "hostname": &*shared.hostname}));
    record(message, "STARTED", &info, None, None)
}

fn traceback(shared: &Shared, message: &TaskMessage, exception: &ExceptionInfo) -> String {
    format!(
        "braid task {}[{}] failed on {}:\n{}: {}\n",
        message.task(),
        message.id(),
        shared.hostname,
        exception.qualified_type(),
        exception.message()
    )
}

/// How long a result's printed form in a `task-succeeded` event may be (Celery's
/// `resultrepr_maxsize`).
const RESULT_REPR_MAX: usize = 1024;

/// The fields every task event after `task-received` carries.
fn task_event(message: &TaskMessage) -> serde_json::Map<String, Value> {
    let mut f = serde_json::Map::new();
    f.insert("uuid".into(), Value::from(message.id()));
    f
}

/// An exception as Python's `repr` prints it: `ValueError('boom')`.
fn exception_repr(exception: &ExceptionInfo) -> String {
    let message = exception.message();
    let quoted = message.replace('\\', "\\\\").replace('\'', "\\'");
    format!("{}('{quoted}')", exception.exc_type)
}

/// The call again, one retry later, due after `countdown`, on the queue it came from.
fn retry_message(
    message: &TaskMessage,
    queue: &str,
    countdown: Duration,
) -> Result<(Outgoing, Option<f64>)> {
    let mut next = message.clone();
    next.headers.retries += 1;
    next.headers.extra.remove("redelivered");
    next.properties.delivery_tag = uuid::Uuid::new_v4().to_string();
    let eta = (!countdown.is_zero()).then(|| clock::after(countdown));
    next.headers.eta = eta.map(clock::isoformat);
    let outgoing = Outgoing {
        queue: queue.to_string(),
        priority: message.properties.priority,
        payload: next.encode()?,
    };
    Ok((outgoing, eta.map(clock::to_epoch)))
}

impl Work {
    fn follow(
        &mut self,
        shared: &Shared,
        sig: &Value,
        parent_result: &Value,
        parent: &Parent,
        rest: Option<Vec<Value>>,
    ) {
        let planned = Signature::from_value(sig).and_then(|sig| {
            plan_with(
                &shared.config,
                &sig,
                Some(parent_result),
                parent,
                rest,
                &mut self.plan,
            )
        });
        if let Err(e) = planned {
            tracing::error!(error = %e, "cannot send the next task of a workflow");
        }
    }

    fn chord_part(&mut self, message: &TaskMessage, status: &str, result: &RawValue) {
        let (Some(group), Some(body)) = (&message.headers.group, &message.embed.chord) else {
            return;
        };
        if body.is_null() {
            return;
        }
        let encoded = format!(
            "[1, {}, {}, {}]",
            serde_json::to_string(message.id()).unwrap_or_default(),
            serde_json::to_string(status).unwrap_or_default(),
            result.get()
        );
        self.chords.push((
            ChordPart {
                group_id: group.clone(),
                task_id: message.id().to_string(),
                group_index: message.headers.group_index,
                encoded: encoded.into_bytes(),
            },
            body.clone(),
            Parent {
                id: Some(message.id().to_string()),
                root_id: message.headers.root_id.clone(),
            },
        ));
    }

    fn add(&mut self, shared: &Shared, done: Done, date_done: &str) {
        let Done {
            delivery,
            message,
            outcome,
            runtime,
        } = done;
        tracing::trace!(tag = %delivery.tag, ?runtime, "settling a delivery");
        self.release.push(delivery.tag.clone());
        let counters = &shared.counters;
        let Some(message) = message else {
            // A message that does not decode.
            let Outcome::Malformed(reason) = outcome else {
                return;
            };
            counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
            let salvage = Salvage::from_payload(&delivery.payload);
            if let Some(id) = salvage.id {
                let exception = ExceptionInfo::celery("InvalidTaskError", reason.clone());
                let meta = MetaOut {
                    status: "FAILURE",
                    result: &raw(&exception),
                    traceback: None,
                    children: &[],
                    date_done: Some(date_done),
                    group_id: None,
                    parent_id: None,
                    task_id: &id,
                };
                self.records.push(Record {
                    task_id: id.clone(),
                    meta: serde_json::to_vec(&meta).unwrap_or_default(),
                    keep_success: true,
                });
            }
            self.dead.push((delivery, reason));
            return;
        };
        let options = shared.config.options(message.task());
        let ignore = message.headers.ignore_result.unwrap_or(false) || options.ignore_result;
        let parent = Parent {
            id: Some(message.id().to_string()),
            root_id: message.headers.root_id.clone(),
        };
        match outcome {
            Outcome::GiveBack => {
                self.give_back.push(delivery);
                return;
            }
            Outcome::Malformed(reason) => {
                self.dead.push((delivery, reason));
                return;
            }
            Outcome::Success(value) => {
                counters.processed.fetch_add(1, Ordering::Relaxed);
                counters.succeeded.fetch_add(1, Ordering::Relaxed);
                if shared.eventer.enabled() {
                    let mut f = task_event(&message);
                    f.insert(
                        "result".into(),
                        Value::from(crate::message::truncate(value.get(), RESULT_REPR_MAX)),
                    );
                    f.insert("runtime".into(), Value::from(runtime.as_secs_f64()));
                    shared.eventer.send("task-succeeded", f);
                }
                if !ignore {
                    self.records
                        .push(record(&message, "SUCCESS", &value, None, Some(date_done)));
                }
                if message.has_followers() {
                    let result: Value = serde_json::from_str(value.get()).unwrap_or(Value::Null);
                    for link in message.embed.callbacks.iter().flatten() {
                        self.follow(shared, link, &result, &parent, None);
                    }
                    if let Some(chain) = &message.embed.chain {
                        let mut rest = chain.clone();
                        if let Some(next) = rest.pop() {
                            self.follow(shared, &next, &result, &parent, Some(rest));
                        }
                    }
                    self.chord_part(&message, "SUCCESS", &value);
                }
            }
            Outcome::Revoked(why) => {
                counters.processed.fetch_add(1, Ordering::Relaxed);
                counters.revoked.fetch_add(1, Ordering::Relaxed);
                if shared.eventer.enabled() {
                    let terminated = why == "terminated";
                    let mut f = task_event(&message);
                    f.insert("terminated".into(), Value::from(terminated));
                    f.insert(
                        "signum".into(),
                        if terminated {
                            Value::from(15)
                        } else {
                            Value::Null
                        },
                    );
                    f.insert("expired".into(), Value::from(why == "expired"));
                    shared.eventer.send("task-revoked", f);
                }
                let exception = raw(&ExceptionInfo::celery("TaskRevokedError", why));
                if !ignore {
                    self.records.push(record(
                        &message,
                        "REVOKED",
                        &exception,
                        None,
                        Some(date_done),
                    ));
                }
                self.chord_part(&message, "REVOKED", &exception);
            }
            Outcome::Failure {
                exception,
                error_type,
                retry_request,
                dead_letter,
            } => {
                let retries = message.headers.retries;
                let wants_retry = dead_letter.is_none()
                    && (retry_request.is_some() || options.retries_on(&error_type));
                let may_retry = options.max_retries.is_none_or(|max| retries < max);
                if wants_retry && may_retry {
                    let countdown = retry_request
                        .flatten()
                        .unwrap_or_else(|| options.retry_delay(retries, random_unit()));
                    match retry_message(&message, &delivery.queue, countdown) {
                        Ok((outgoing, eta)) => {
                            counters.retried.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(
                                task = message.task(),
                                id = message.id(),
                                ?countdown,
                                "retrying"
                            );
                            match eta {
                                Some(eta) if countdown > super::HOLD_IN_MEMORY => {
                                    self.later.push((outgoing, eta));
                                }
                                _ => self.plan.messages.push(outgoing),
                            }
                            let retry = ExceptionInfo::celery(
                                "Retry",
                                format!(
                                    "Retry in {}s: {}('{}')",
                                    countdown.as_secs_f64(),
                                    exception.exc_type,
                                    exception.message()
                                ),
                            );
                            if shared.eventer.enabled() {
                                let mut f = task_event(&message);
                                f.insert(
                                    "exception".into(),
                                    Value::from(exception_repr(&exception)),
                                );
                                f.insert(
                                    "traceback".into(),
                                    Value::from(traceback(shared, &message, &exception)),
                                );
                                shared.eventer.send("task-retried", f);
                            }
                            if !ignore {
                                self.records.push(record(
                                    &message,
                                    "RETRY",
                                    &raw(&retry),
                                    None,
                                    None,
                                ));
                            }
                            self.acks.push(delivery.tag);
                            return;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot build the retry message; the task fails");
                        }
                    }
                }
                let exception = if wants_retry && retry_request.is_some() && !may_retry {
                    ExceptionInfo::celery(
                        "MaxRetriesExceededError",
                        format!(
                            "Can't retry {}[{}] args:{} kwargs:{}",
                            message.task(),
                            message.id(),
                            message.args.get(),
                            serde_json::to_string(&message.kwargs).unwrap_or_default()
                        ),
                    )
                } else {
                    exception
                };
                counters.processed.fetch_add(1, Ordering::Relaxed);
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    task = message.task(),
                    id = message.id(),
                    error = %format!("{}: {}", exception.qualified_type(), exception.message()),
                    "task failed"
                );
                let value = raw(&exception);
                if shared.eventer.enabled() {
                    let mut f = task_event(&message);
                    f.insert("exception".into(), Value::from(exception_repr(&exception)));
                    f.insert(
                        "traceback".into(),
                        Value::from(traceback(shared, &message, &exception)),
                    );
                    shared.eventer.send("task-failed", f);
                }
                if !ignore {
                    let tb = traceback(shared, &message, &exception);
                    self.records.push(record(
                        &message,
                        "FAILURE",
                        &value,
                        Some(&tb),
                        Some(date_done),
                    ));
                }
                let id_value = Value::String(message.id().to_string());
                for errback in message.embed.errbacks.iter().flatten() {
                    self.follow(shared, errback, &id_value, &parent, None);
                }
                self.chord_part(&message, "FAILURE", &value);
                if let Some(reason) = dead_letter {
                    counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    self.dead.push((delivery, reason));
                    return;
                }
            }
        }
        *counters
            .by_task
            .lock()
            .entry(message.task().to_string())
            .or_insert(0) += 1;
        self.acks.push(delivery.tag);
    }
}

/// Runs the operation (an expression giving a future of a `Result`) until it succeeds;
/// gives up (`None`) only during a cold shutdown, leaving what it could not do to the
/// visibility timeout.
macro_rules! persist {
    ($shared:expr, $what:expr, $op:expr) => {{
        let mut attempt = 0u32;
        loop {
            match $op.await {
                Ok(value) => break Some(value),
                Err(e) => {
                    if *$shared.stop.borrow() == Stop::Cold && attempt >= 10 {
                        tracing::error!(error = %e, what = $what, "giving up during a cold shutdown");
                        break None;
                    }
                    tracing::warn!(error = %e, what = $what, attempt, "retrying");
                    let delay = Duration::from_millis(50u64 << attempt.min(5));
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }};
}

async fn settle(shared: &Arc<Shared>, events: Vec<Event>) {
    let mut work = Work::default();
    let date_done = clock::isoformat(clock::now());
    for event in events {
        match event {
            Event::Store(record) => work.records.push(record),
            Event::Ack(tag) => work.acks.push(tag),
            Event::Done(done) => work.add(shared, *done, &date_done),
        }
    }
    let backend = shared.backend.clone();
    let broker = shared.broker.clone();
    // Dead letters first, so whoever reads the FAILURE stored below finds them.
    for (delivery, reason) in std::mem::take(&mut work.dead) {
        persist!(
            shared,
            "dead-lettering a message",
            broker.dead_letter(delivery.clone(), reason.clone())
        );
    }
    if !work.records.is_empty() {
        match &backend {
            Some(backend) => {
                let records = std::mem::take(&mut work.records);
                persist!(shared, "storing results", backend.store(records.clone()));
            }
            None => tracing::trace!("no result backend: results are not stored"),
        }
    }
    if !work.chords.is_empty() {
        match &backend {
            Some(backend) => {
                for (part, body, parent) in std::mem::take(&mut work.chords) {
                    let group_id = part.group_id.clone();
                    let parts = persist!(
                        shared,
                        "counting a chord part",
                        backend.chord_part(part.clone())
                    )
                    .flatten();
                    if let Some(parts) = parts {
                        chord_complete(
                            shared, &mut work, &group_id, parts, &body, &parent, &date_done,
                        );
                        work.chords_done.push(group_id);
                    }
                }
            }
            None => tracing::error!("a chord needs a result backend; its body is not sent"),
        }
        if !work.records.is_empty()
            && let Some(backend) = &backend
        {
            let records = std::mem::take(&mut work.records);
            persist!(
                shared,
                "storing chord results",
                backend.store(records.clone())
            );
        }
    }
    if !work.plan.chord_sizes.is_empty()
        && let Some(backend) = &backend
    {
        for (group_id, size) in std::mem::take(&mut work.plan.chord_sizes) {
            persist!(
                shared,
                "recording a chord size",
                backend.set_chord_size(&group_id, size)
            );
        }
    }
    if !work.plan.messages.is_empty() {
        let messages = std::mem::take(&mut work.plan.messages);
        persist!(
            shared,
            "sending follow-up tasks",
            broker.publish(messages.clone())
        );
    }
    for (message, eta) in std::mem::take(&mut work.later) {
        persist!(
            shared,
            "scheduling a retry",
            broker.schedule_new(message.clone(), eta)
        );
    }
    if let Some(backend) = &backend {
        for group_id in std::mem::take(&mut work.chords_done) {
            persist!(shared, "cleaning a chord up", backend.chord_done(&group_id));
        }
    }
    if !work.give_back.is_empty() {
        let deliveries = std::mem::take(&mut work.give_back);
        persist!(
            shared,
            "giving messages back",
            broker.give_back(deliveries.clone())
        );
    }
    if !work.acks.is_empty() {
        let acks = std::mem::take(&mut work.acks);
        persist!(shared, "acknowledging", broker.ack(acks.clone()));
    }
    for tag in work.release {
        shared.release(&tag);
    }
}

/// The last header task of a chord finished here: send the body with the results in
/// header order, or fail it with `ChordError` when a header task failed.
fn chord_complete(
    shared: &Shared,
    work: &mut Work,
    group_id: &str,
    parts: Vec<Vec<u8>>,
    body: &Value,
    parent: &Parent,
    date_done: &str,
) {
    let mut results = Vec::with_capacity(parts.len());
    let mut failure = None;
    for part in &parts {
        match serde_json::from_slice::<(Value, String, String, Value)>(part) {
            Ok((_, tid, state, value)) => {
                if state == "SUCCESS" {
                    results.push(value);
                } else if failure.is_none() {
                    let exception: ExceptionInfo =
                        serde_json::from_value(value).unwrap_or_else(|_| {
                            ExceptionInfo::celery("TaskError", "a header task failed")
                        });
                    failure = Some(format!(
                        "Dependency {tid} raised {}('{}')",
                        exception.exc_type,
                        exception.message()
                    ));
                }
            }
            Err(e) => {
                failure.get_or_insert_with(|| format!("a chord part does not decode: {e}"));
            }
        }
    }
    match failure {
        None => {
            let results = Value::Array(results);
            work.follow(shared, body, &results, parent, None);
        }
        Some(why) => {
            tracing::warn!(group = group_id, %why, "chord failed");
            let mut sig = match Signature::from_value(body) {
                Ok(sig) => sig,
                Err(e) => {
                    tracing::error!(error = %e, "a chord with a malformed body");
                    return;
                }
            };
            let Ok(body_id) = crate::send::freeze(&mut sig) else {
                return;
            };
            let exception = ExceptionInfo::celery("ChordError", why);
            let meta = MetaOut {
                status: "FAILURE",
                result: &raw(&exception),
                traceback: None,
                children: &[],
                date_done: Some(date_done),
                group_id: None,
                parent_id: parent.id.as_deref(),
                task_id: &body_id,
            };
            work.records.push(Record {
                task_id: body_id.clone(),
                meta: serde_json::to_vec(&meta).unwrap_or_default(),
                keep_success: true,
            });
        }
    }
}
