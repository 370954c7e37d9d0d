//! Celery's rpc result backend (`rpc://`): a worker sends each result as a message to the
//! caller's reply queue (the message's `reply_to`, the caller's oid), with the task id as
//! `correlation_id`; the caller consumes its reply queue and keeps the latest state of
//! each task in memory.
//!
//! As in Celery, results are transient: they live in the caller's memory and its reply
//! queue (auto-deleted when the caller goes away), only the caller that sent a task can
//! read its result, and chords need a backend that stores results (`redis://` or
//! `db+postgresql://`). Results of follow-up tasks (chain steps) go to the reply queue of
//! whoever sent them, the worker, as in Celery: use a storing backend for chains too.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::Notify;

use super::{Backend, ChordPart, Record, is_ready};
use crate::broker::BoxFuture;
use crate::broker::amqp::{Conn, Link, REPLY_QUEUE_EXPIRES_MS};
use crate::url::RpcUrl;
use crate::{Error, Result};

/// The most reply routes remembered (routes of tasks that never store a result, such as
/// `ignore_result` ones, are forgotten oldest first).
const ROUTES_MAX: usize = 100_000;

/// Where results of tasks this process's workers run go: task id -> reply queue.
#[derive(Default)]
struct Routes {
    map: HashMap<String, String>,
    order: VecDeque<String>,
}

static ROUTES: LazyLock<Mutex<Routes>> = LazyLock::new(|| Mutex::new(Routes::default()));

/// How many rpc backends are open in this process (routes are kept only then).
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Remembers where the result of a delivered task goes (its `reply_to`), keyed by its
/// `correlation_id` (the task id), when an rpc backend is open here.
pub(crate) fn note_reply_to(properties: &BasicProperties) {
    if OPEN.load(Ordering::Relaxed) == 0 {
        return;
    }
    let (Some(id), Some(to)) = (properties.correlation_id(), properties.reply_to()) else {
        return;
    };
    if to.as_str().is_empty() {
        return;
    }
    let mut routes = ROUTES.lock();
    if routes.map.insert(id.to_string(), to.to_string()).is_none() {
        routes.order.push_back(id.to_string());
    }
    while routes.order.len() > ROUTES_MAX {
        if let Some(old) = routes.order.pop_front() {
            routes.map.remove(&old);
        }
    }
}

fn route_of(task_id: &str) -> Option<String> {
    ROUTES.lock().map.get(task_id).cloned()
}

fn forget_route(task_id: &str) {
    ROUTES.lock().map.remove(task_id);
}

fn queue_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-expires".into(),
        AMQPValue::LongInt(REPLY_QUEUE_EXPIRES_MS as i32),
    );
    arguments
}

/// Declares the reply queue `oid` (not durable, deleted when its consumer leaves or after
/// a day unused), before tasks that reply to it are sent.
pub(crate) async fn declare_reply_queue(link: &Link, conn: &Conn, oid: &str) -> Result<()> {
    let name = ShortString::try_new(oid)
        .map_err(|_| Error::Backend("a reply queue name longer than 255 bytes".into()))?;
    let key = format!("rpc reply queue {oid}");
    link.declare_once(conn, &key, |channel| async move {
        channel
            .queue_declare(
                name,
                QueueDeclareOptions {
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                queue_arguments(),
            )
            .await
            .map(|_| ())
    })
    .await
}

/// Results received, by task id.
#[derive(Default)]
struct Received {
    results: HashMap<String, (Instant, Vec<u8>)>,
}

/// The rpc result backend.
pub(crate) struct RpcBackend {
    link: Arc<Link>,
    oid: String,
    expires: Duration,
    received: Arc<Mutex<Received>>,
    notify: Arc<Notify>,
    consumer: tokio::sync::OnceCell<tokio::task::JoinHandle<()>>,
}

impl Drop for RpcBackend {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
        if let Some(task) = self.consumer.get() {
            task.abort();
        }
    }
}

impl RpcBackend {
    /// Connects to the broker the URL names.
    pub(crate) async fn connect(url: &RpcUrl, expires: Duration) -> Result<Self> {
        let amqp = url.amqp.clone().ok_or_else(|| {
            Error::Backend(
                "rpc:// needs an amqp:// broker, or the broker in the URL (rpc://user:pass@host:5672//)"
                    .into(),
            )
        })?;
        let link = Link::new(amqp);
        link.conn()
            .await
            .map_err(|e| Error::Backend(e.to_string()))?;
        OPEN.fetch_add(1, Ordering::Relaxed);
        Ok(RpcBackend {
            link,
            oid: url.oid.clone(),
            expires,
            received: Arc::new(Mutex::new(Received::default())),
            notify: Arc::new(Notify::new()),
            consumer: tokio::sync::OnceCell::new(),
        })
    }

    /// Starts consuming the reply queue (once).
    async fn ensure_consuming(&self) -> Result<()> {
        self.consumer
            .get_or_try_init(|| async {
                let conn = self.link.conn().await?;
                let first = reply_consumer(&self.link, &conn, &self.oid).await?;
                let link = Arc::downgrade(&self.link);
                let received = Arc::downgrade(&self.received);
                let notify = self.notify.clone();
                let oid = self.oid.clone();
                let expires = self.expires;
                Ok::<_, Error>(tokio::spawn(consume_replies(
                    link, received, notify, oid, expires, first,
                )))
            })
            .await
            .map(|_| ())
    }
}

async fn reply_consumer(link: &Link, conn: &Conn, oid: &str) -> Result<lapin::Consumer> {
    declare_reply_queue(link, conn, oid).await?;
    let channel = conn
        .connection
        .create_channel()
        .await
        .map_err(|e| Error::Backend(format!("RabbitMQ: {e}")))?;
    channel
        .basic_consume(
            oid.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| Error::Backend(format!("RabbitMQ: {e}")))
}

async fn consume_replies(
    link: Weak<Link>,
    received: Weak<Mutex<Received>>,
    notify: Arc<Notify>,
    oid: String,
    expires: Duration,
    first: lapin::Consumer,
) {
    let mut consumer = Some(first);
    let mut attempt = 0u32;
    loop {
        if let Some(mut c) = consumer.take() {
            while let Some(delivery) = c.next().await {
                let delivery = match delivery {
                    Ok(delivery) => delivery,
                    Err(e) => {
                        tracing::warn!(error = %e, oid, "the reply stream broke; re-subscribing");
                        break;
                    }
                };
                attempt = 0;
                let Some(received) = received.upgrade() else {
                    return;
                };
                let id = match delivery.properties.correlation_id() {
                    Some(id) => id.to_string(),
                    None => match serde_json::from_slice::<Value>(&delivery.data)
                        .ok()
                        .and_then(|v| v.get("task_id").and_then(Value::as_str).map(str::to_string))
                    {
                        Some(id) => id,
                        None => {
                            tracing::warn!("a reply without a task id is ignored");
                            continue;
                        }
                    },
                };
                {
                    let mut received = received.lock();
                    let now = Instant::now();
                    if received.results.len() > 10_000 {
                        received
                            .results
                            .retain(|_, (at, _)| now.duration_since(*at) < expires);
                    }
                    received.results.insert(id, (now, delivery.data));
                }
                notify.notify_waiters();
            }
        }
        tokio::time::sleep(Duration::from_millis((100u64 << attempt.min(4)).min(2000))).await;
        attempt += 1;
        let Some(link) = link.upgrade() else { return };
        match async {
            let conn = link.conn().await?;
            reply_consumer(&link, &conn, &oid).await
        }
        .await
        {
            Ok(c) => consumer = Some(c),
            Err(e) => tracing::warn!(error = %e, "re-subscribing to the reply queue failed"),
        }
    }
}

impl Backend for RpcBackend {
    fn store(&self, records: Vec<Record>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut messages = Vec::with_capacity(records.len());
            for record in &records {
                let Some(to) = route_of(&record.task_id) else {
                    tracing::debug!(
                        id = record.task_id,
                        "no reply_to for this task: its result is not sent (rpc backend)"
                    );
                    continue;
                };
                messages.push((to, record));
            }
            if messages.is_empty() {
                return Ok(());
            }
            let link = &self.link;
            link.retrying("sending results", |conn| {
                let messages = &messages;
                async move {
                    let mut confirms = Vec::with_capacity(messages.len());
                    for (to, record) in messages {
                        let properties = BasicProperties::default()
                            .with_content_type("application/json".into())
                            .with_content_encoding("utf-8".into())
                            .with_delivery_mode(1)
                            .with_correlation_id(record.task_id.as_str().into());
                        let to = ShortString::try_new(to.as_str())
                            .map_err(|_| Error::Backend("reply_to longer than 255 bytes".into()))?;
                        let confirm = conn
                            .publish
                            .basic_publish(
                                "".into(),
                                to,
                                lapin::options::BasicPublishOptions::default(),
                                &record.meta,
                                properties,
                            )
                            .await
                            .map_err(|e| Error::Broker(format!("RabbitMQ: {e}")))?;
                        confirms.push(confirm);
                    }
                    for confirm in confirms {
                        confirm
                            .await
                            .map_err(|e| Error::Broker(format!("RabbitMQ: {e}")))?;
                    }
                    Ok(())
                }
            })
            .await
            .map_err(|e| Error::Backend(e.to_string()))?;
            for (_, record) in messages {
                if is_ready(&record.meta) {
                    forget_route(&record.task_id);
                }
            }
            Ok(())
        })
    }

    fn get<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            self.ensure_consuming().await?;
            Ok(self
                .received
                .lock()
                .results
                .get(task_id)
                .map(|(_, meta)| meta.clone()))
        })
    }

    fn wait<'a>(
        &'a self,
        task_id: &'a str,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            self.ensure_consuming().await?;
            let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
            loop {
                let notified = self.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some((_, meta)) = self.received.lock().results.get(task_id)
                    && is_ready(meta)
                {
                    return Ok(Some(meta.clone()));
                }
                match deadline {
                    Some(deadline) => {
                        if tokio::time::timeout_at(deadline, notified).await.is_err() {
                            return Ok(None);
                        }
                    }
                    None => notified.await,
                }
            }
        })
    }

    fn forget(&self, task_ids: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut received = self.received.lock();
            for id in task_ids {
                received.results.remove(&id);
            }
            Ok(())
        })
    }

    fn set_chord_size<'a>(&'a self, _group_id: &'a str, _size: usize) -> BoxFuture<'a, Result<()>> {
        Box::pin(async {
            Err(Error::Backend(
                "the rpc:// result backend cannot run chords (it stores no results to count); \
                 use redis:// or db+postgresql:// for chords"
                    .into(),
            ))
        })
    }

    fn chord_part(&self, part: ChordPart) -> BoxFuture<'_, Result<Option<Vec<Vec<u8>>>>> {
        Box::pin(async move {
            tracing::error!(
                group = part.group_id,
                "a chord header task finished on the rpc:// backend, which cannot count chords; \
                 its body is not sent"
            );
            Ok(None)
        })
    }

    fn chord_done<'a>(&'a self, _group_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}
