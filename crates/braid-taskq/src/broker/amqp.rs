//! The RabbitMQ broker (AMQP 0-9-1 through `lapin`), with kombu's layout so Celery clients
//! and workers share its queues.
//!
//! - Task queues are declared as Celery declares them: durable, not exclusive, not
//!   auto-deleted, no arguments (or `x-max-priority` when the URL asks for it with
//!   `?queue_max_priority=N`, Celery's `task_queue_max_priority`), each bound to a durable
//!   direct exchange of its own name. A queue that exists already is used as it is (a
//!   passive declare comes first), so braid never fails with `PRECONDITION_FAILED` on a
//!   queue Python declared with other arguments. `?queue_expires=SECONDS` adds
//!   `x-expires` to the queues braid creates (short-lived queues of tests and examples).
//! - Messages travel as kombu sends them: the serialized body, Celery's headers as an AMQP
//!   table, `correlation_id`, `reply_to`, `priority` and `delivery_mode` 2 (persistent).
//!   Publishes wait for publisher confirms and are sent again after a reconnection.
//! - Workers consume with manual acks and a prefetch count (`basic.qos`, the worker's
//!   prefetch); deliveries wait in a buffer that `fetch` serves. A worker that dies or loses
//!   its connection leaves its unacknowledged messages to RabbitMQ, which delivers them
//!   again to another consumer: nothing is lost (at least once).
//! - Messages due later wait in RabbitMQ, not in a worker: 28 delay levels (queues whose
//!   messages expire after 2^n seconds and dead-letter to the next level's topic exchange)
//!   carry a message through the bits of its delay, then a last topic exchange routes it
//!   to its queue. Delays are whole seconds (rounded down); the worker holds the last
//!   fraction of a second in memory.
//! - Remote control uses kombu's Mailbox: the `celery.pidbox` fanout exchange for commands
//!   and the `reply.celery.pidbox` direct exchange for replies. Events go to Celery's
//!   `celeryev` topic exchange.
//! - Revoked ids and worker heartbeats are appended to RabbitMQ streams (`braid.revoked`
//!   kept 3 hours, `braid.workers` kept 1 hour), which readers replay from a time without
//!   taking anything away: workers started later learn earlier revokes.
//! - Locks are exclusive queues (`braid.lock.NAME`): RabbitMQ lets one connection hold
//!   one, and drops it when that connection closes or dies.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeBindOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::{BoxFuture, Broker, Delivery, Outgoing, WorkerBeat};
use crate::url::AmqpUrl;
use crate::{Error, Result, clock};

/// How long a publish keeps trying (reconnecting in between) before it fails.
const PUBLISH_RETRY: Duration = Duration::from_secs(60);

/// The number of delay levels: delays up to 2^28 - 1 seconds (about 8.5 years).
const DELAY_LEVELS: u32 = 28;

/// The topic exchange that routes a delayed message to its queue at the end.
const DELAY_DELIVER: &str = "braid.delay.deliver";

/// The durable queue of messages that could not run.
const DEAD_LETTER_QUEUE: &str = "braid.dead_letter";

/// The stream of revoked ids, and how long it keeps them (Celery's `REVOKE_EXPIRES`).
const REVOKED_STREAM: &str = "braid.revoked";
const REVOKED_AGE: &str = "3h";

/// The stream of worker heartbeats.
const WORKERS_STREAM: &str = "braid.workers";
const WORKERS_AGE: &str = "1h";

/// How long reading a stream back to one's own marker may take.
const STREAM_READ_LIMIT: Duration = Duration::from_secs(15);

/// Celery's `control_queue_ttl` and `control_queue_expires`, in milliseconds.
const CONTROL_QUEUE_TTL_MS: i64 = 300_000;
const CONTROL_QUEUE_EXPIRES_MS: i64 = 10_000;

/// An event subscriber's queue: Celery's `event_queue_ttl` and `event_queue_expires`, and
/// a length past which the oldest events are dropped, so a slow reader never holds
/// RabbitMQ (or the workers) back.
const EVENT_QUEUE_TTL_MS: i64 = 5_000;
const EVENT_QUEUE_EXPIRES_MS: i64 = 60_000;
const EVENT_QUEUE_MAX: i64 = 10_000;

/// The reply queue of the rpc result backend expires after a day unused (Celery's
/// default `result_expires`).
pub(crate) const REPLY_QUEUE_EXPIRES_MS: i64 = 86_400_000;

fn amqp_error(e: lapin::Error) -> Error {
    Error::Broker(format!("RabbitMQ: {e}"))
}

fn short(text: &str) -> Result<ShortString> {
    ShortString::try_new(text)
        .map_err(|_| Error::Broker(format!("a name longer than 255 bytes: {text:.40}...")))
}

/// One connection to RabbitMQ and the channels every operation shares.
pub(crate) struct Conn {
    pub generation: u64,
    pub connection: Connection,
    /// Publishes with publisher confirms.
    pub publish: Channel,
    /// Publishes events, without confirms.
    events: Channel,
    dead: AtomicBool,
    declared: Mutex<HashSet<String>>,
    /// Serializes declarations, so one name is declared once.
    declaring: tokio::sync::Mutex<()>,
}

impl Conn {
    fn alive(&self) -> bool {
        !self.dead.load(Ordering::Acquire)
            && self.connection.status().connected()
            && self.publish.status().connected()
            && self.events.status().connected()
    }

    pub(crate) fn mark_dead(&self) {
        self.dead.store(true, Ordering::Release);
    }

    fn is_declared(&self, key: &str) -> bool {
        self.declared.lock().contains(key)
    }

    fn set_declared(&self, key: String) {
        self.declared.lock().insert(key);
    }
}

/// A reconnecting link to RabbitMQ, shared by the broker, its background tasks and the
/// rpc result backend.
pub(crate) struct Link {
    url: AmqpUrl,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    generation: AtomicU64,
}

impl Link {
    pub(crate) fn new(url: AmqpUrl) -> Arc<Link> {
        Arc::new(Link {
            url,
            conn: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(1),
        })
    }

    /// The live connection, connecting (again) when there is none.
    pub(crate) async fn conn(&self) -> Result<Arc<Conn>> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref()
            && conn.alive()
        {
            return Ok(conn.clone());
        }
        if let Some(old) = guard.take() {
            tracing::info!(url = %self.url.display, "reconnecting to RabbitMQ");
            old.mark_dead();
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let properties = ConnectionProperties::default().with_connection_name(
            format!("braid-{}@{}", std::process::id(), self.url.display).into(),
        );
        let connection = Connection::connect(&self.url.connect, properties)
            .await
            .map_err(|e| Error::Broker(format!("cannot connect to {}: {e}", self.url.display)))?;
        let publish = connection.create_channel().await.map_err(amqp_error)?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(amqp_error)?;
        let events = connection.create_channel().await.map_err(amqp_error)?;
        let conn = Arc::new(Conn {
            generation,
            connection,
            publish,
            events,
            dead: AtomicBool::new(false),
            declared: Mutex::new(HashSet::new()),
            declaring: tokio::sync::Mutex::new(()),
        });
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `op` on a live connection, reconnecting and trying again for up to
    /// [`PUBLISH_RETRY`] when the connection fails (not when RabbitMQ refuses).
    pub(crate) async fn retrying<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut(Arc<Conn>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let outcome = match self.conn().await {
                Ok(conn) => {
                    let result = op(conn.clone()).await;
                    if result.is_err() && !conn.alive() {
                        conn.mark_dead();
                    }
                    result
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(e) if started.elapsed() < PUBLISH_RETRY && is_transient(&e) => {
                    tracing::warn!(error = %e, what, attempt, "RabbitMQ operation failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Declares a queue as Celery declares a task queue, unless it exists already.
    pub(crate) async fn declare_task_queue(&self, conn: &Conn, queue: &str) -> Result<()> {
        let key = format!("q:{queue}");
        if conn.is_declared(&key) {
            return Ok(());
        }
        let _one = conn.declaring.lock().await;
        if conn.is_declared(&key) {
            return Ok(());
        }
        let name = short(queue)?;
        // Passive first: a queue declared by someone else (with other arguments) is used
        // as it is. A missing queue closes that channel, so it is a channel of its own.
        let probe = conn.connection.create_channel().await.map_err(amqp_error)?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let exists = probe
            .queue_declare(name.clone(), passive, FieldTable::default())
            .await
            .is_ok();
        close_quietly(&probe).await;
        if !exists {
            let channel = conn.connection.create_channel().await.map_err(amqp_error)?;
            let mut arguments = FieldTable::default();
            if let Some(max) = self.url.max_priority {
                arguments.insert("x-max-priority".into(), AMQPValue::LongInt(i32::from(max)));
            }
            if let Some(expires) = self
                .url
                .queue_expires
                .filter(|_| queue != DEAD_LETTER_QUEUE)
            {
                arguments.insert(
                    "x-expires".into(),
                    AMQPValue::LongInt(expires.as_millis().min(i32::MAX as u128) as i32),
                );
            }
            let declared = async {
                channel
                    .exchange_declare(
                        name.clone(),
                        ExchangeKind::Direct,
                        ExchangeDeclareOptions {
                            durable: true,
                            ..ExchangeDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                channel
                    .queue_declare(
                        name.clone(),
                        QueueDeclareOptions {
                            durable: true,
                            ..QueueDeclareOptions::default()
                        },
                        arguments,
                    )
                    .await?;
                channel
                    .queue_bind(
                        name.clone(),
                        name.clone(),
                        name.clone(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
            }
            .await;
            close_quietly(&channel).await;
            declared
                .map_err(|e| Error::Broker(format!("cannot declare the queue `{queue}`: {e}")))?;
        }
        conn.set_declared(key);
        Ok(())
    }

    /// Declares what `declare` does once per connection, under `key`.
    pub(crate) async fn declare_once<F, Fut>(
        &self,
        conn: &Conn,
        key: &str,
        declare: F,
    ) -> Result<()>
    where
        F: FnOnce(Channel) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), lapin::Error>>,
    {
        if conn.is_declared(key) {
            return Ok(());
        }
        let _one = conn.declaring.lock().await;
        if conn.is_declared(key) {
            return Ok(());
        }
        let channel = conn.connection.create_channel().await.map_err(amqp_error)?;
        let outcome = declare(channel.clone()).await;
        close_quietly(&channel).await;
        outcome.map_err(|e| Error::Broker(format!("cannot declare {key}: {e}")))?;
        conn.set_declared(key.to_string());
        Ok(())
    }
}

fn is_transient(e: &Error) -> bool {
    match e {
        Error::Broker(text) => {
            !(text.contains("PRECONDITION_FAILED")
                || text.contains("ACCESS_REFUSED")
                || text.contains("NOT_ALLOWED")
                || text.contains("longer than 255"))
        }
        _ => false,
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(4)).min(2000))
}

async fn close_quietly(channel: &Channel) {
    if channel.status().connected()
        && let Err(e) = channel.close(200, "OK".into()).await
    {
        tracing::debug!(error = %e, "closing a channel failed");
    }
}

/// One message to publish.
struct Publish {
    exchange: String,
    routing_key: String,
    body: Vec<u8>,
    properties: BasicProperties,
}

/// Publishes on the confirm channel and waits for every confirm.
async fn publish_confirmed(conn: &Conn, messages: &[Publish]) -> Result<()> {
    let mut confirms = Vec::with_capacity(messages.len());
    for m in messages {
        let confirm = conn
            .publish
            .basic_publish(
                short(&m.exchange)?,
                short(&m.routing_key)?,
                BasicPublishOptions::default(),
                &m.body,
                m.properties.clone(),
            )
            .await
            .map_err(amqp_error)?;
        confirms.push(confirm);
    }
    for confirm in confirms {
        let confirmation = confirm.await.map_err(amqp_error)?;
        if confirmation.is_nack() {
            return Err(Error::Broker(
                "RabbitMQ refused a message (publisher confirm nack)".into(),
            ));
        }
    }
    Ok(())
}

/// A JSON value as an AMQP field value, as py-amqp encodes Python values.
pub(crate) fn to_amqp_value(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => match i32::try_from(i) {
                Ok(small) => AMQPValue::LongInt(small),
                Err(_) => AMQPValue::LongLongInt(i),
            },
            None => AMQPValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(to_amqp_value).collect::<Vec<_>>(),
        )),
        Value::Object(map) => AMQPValue::FieldTable(to_amqp_table(map)),
    }
}

/// A JSON object as an AMQP table (keys longer than 255 bytes are left out).
pub(crate) fn to_amqp_table(map: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in map {
        match ShortString::try_new(key.as_str()) {
            Ok(k) => {
                table.insert(k, to_amqp_value(value));
            }
            Err(_) => tracing::warn!(key = %key, "a header name longer than 255 bytes is dropped"),
        }
    }
    table
}

/// An AMQP field value as JSON.
pub(crate) fn from_amqp_value(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => json!(i),
        AMQPValue::ShortShortUInt(i) => json!(i),
        AMQPValue::ShortInt(i) => json!(i),
        AMQPValue::ShortUInt(i) => json!(i),
        AMQPValue::LongInt(i) => json!(i),
        AMQPValue::LongUInt(i) => json!(i),
        AMQPValue::LongLongInt(i) => json!(i),
        AMQPValue::Float(f) => json!(f),
        AMQPValue::Double(f) => json!(f),
        AMQPValue::DecimalValue(d) => {
            json!(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ShortString(s) => Value::String(s.to_string()),
        AMQPValue::LongString(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into()),
        AMQPValue::FieldArray(items) => {
            Value::Array(items.as_slice().iter().map(from_amqp_value).collect())
        }
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldTable(table) => Value::Object(from_amqp_table(table)),
        AMQPValue::ByteArray(b) => Value::String(String::from_utf8_lossy(b.as_slice()).into()),
        AMQPValue::Void => Value::Null,
    }
}

/// An AMQP table as a JSON object.
pub(crate) fn from_amqp_table(table: &FieldTable) -> Map<String, Value> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.to_string(), from_amqp_value(v)))
        .collect()
}

/// braid's envelope (kombu's JSON form of a message) split into what AMQP carries.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
    #[serde(rename = "content-type", default)]
    content_type: Option<String>,
    #[serde(rename = "content-encoding", default)]
    content_encoding: Option<String>,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    properties: Map<String, Value>,
}

/// The AMQP form of an envelope: body, properties (with `priority` and `reply_to`).
fn envelope_to_amqp(
    payload: &[u8],
    priority: u8,
    reply_to: Option<&str>,
) -> Result<(Vec<u8>, BasicProperties)> {
    let envelope: Envelope<'_> = serde_json::from_slice(payload)
        .map_err(|e| Error::Protocol(format!("an envelope to publish does not decode: {e}")))?;
    let base64 = envelope
        .properties
        .get("body_encoding")
        .and_then(Value::as_str)
        .is_none_or(|e| e == "base64");
    let body = if base64 {
        BASE64
            .decode(envelope.body.as_bytes())
            .map_err(|e| Error::Protocol(format!("a message body is not base64: {e}")))?
    } else {
        envelope.body.as_bytes().to_vec()
    };
    let text = |name: &str| {
        envelope
            .properties
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut headers = envelope.headers;
    headers.remove("redelivered");
    let mut properties = BasicProperties::default()
        .with_content_type(short(
            envelope
                .content_type
                .as_deref()
                .unwrap_or("application/json"),
        )?)
        .with_content_encoding(short(
            envelope.content_encoding.as_deref().unwrap_or("utf-8"),
        )?)
        .with_delivery_mode(
            envelope
                .properties
                .get("delivery_mode")
                .and_then(Value::as_u64)
                .map_or(2, |m| m.clamp(1, 2) as u8),
        )
        .with_priority(priority)
        .with_headers(to_amqp_table(&headers));
    if let Some(id) = text("correlation_id") {
        properties = properties.with_correlation_id(short(&id)?);
    }
    match text("reply_to") {
        Some(to) => properties = properties.with_reply_to(short(&to)?),
        None => {
            if let Some(to) = reply_to {
                properties = properties.with_reply_to(short(to)?);
            }
        }
    }
    Ok((body, properties))
}

/// The headers RabbitMQ adds when it dead-letters (the delay levels): not Celery's.
fn is_broker_header(name: &str) -> bool {
    name == "x-death" || name.starts_with("x-first-death") || name.starts_with("x-last-death")
}

/// braid's envelope for a message RabbitMQ delivered.
pub(crate) fn envelope_from_amqp(
    data: &[u8],
    properties: &BasicProperties,
    exchange: &str,
    routing_key: &str,
    redelivered: bool,
    tag: &str,
) -> Vec<u8> {
    let mut headers = properties
        .headers()
        .as_ref()
        .map(from_amqp_table)
        .unwrap_or_default();
    headers.retain(|k, _| !is_broker_header(k));
    if redelivered {
        headers.insert("redelivered".into(), Value::Bool(true));
    }
    let text = |v: &Option<ShortString>| v.as_ref().map(ShortString::to_string);
    let envelope = json!({
        "body": BASE64.encode(data),
        "content-encoding": text(properties.content_encoding()).unwrap_or_else(|| "utf-8".into()),
        "content-type": text(properties.content_type()).unwrap_or_else(|| "application/json".into()),
        "headers": headers,
        "properties": {
            "correlation_id": text(properties.correlation_id()).unwrap_or_default(),
            "reply_to": text(properties.reply_to()).unwrap_or_default(),
            "delivery_mode": properties.delivery_mode().unwrap_or(2),
            "delivery_info": {"exchange": exchange, "routing_key": routing_key, "redelivered": redelivered},
            "priority": properties.priority().unwrap_or(0),
            "body_encoding": "base64",
            "delivery_tag": tag,
        },
    });
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// A JSON message body (commands, replies, events, results).
pub(crate) fn json_body(data: &[u8]) -> Option<Value> {
    serde_json::from_slice(data).ok()
}

/// Properties of a JSON message Celery's control, events and results send.
fn json_properties(delivery_mode: u8, headers: &Value) -> BasicProperties {
    let table = headers.as_object().map(to_amqp_table).unwrap_or_default();
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(delivery_mode)
        .with_priority(0)
        .with_headers(table)
}

/// Escapes a queue name into one word of a topic routing key.
fn topic_word(queue: &str) -> String {
    let mut out = String::with_capacity(queue.len());
    for c in queue.chars() {
        match c {
            '%' => out.push_str("%25"),
            '.' => out.push_str("%2E"),
            '*' => out.push_str("%2A"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

fn delay_exchange(level: u32) -> String {
    format!("braid.delay.level.{level:02}")
}

/// The routing key that carries `seconds` through the delay levels to `queue`.
fn delay_routing_key(seconds: u64, queue: &str) -> String {
    let mut key = String::with_capacity(2 * DELAY_LEVELS as usize + queue.len());
    for level in (0..DELAY_LEVELS).rev() {
        key.push(if seconds >> level & 1 == 1 { '1' } else { '0' });
        key.push('.');
    }
    key.push_str(&topic_word(queue));
    key
}

/// A pattern matching `bit` at `level` (words before it any).
fn level_pattern(level: u32, bit: char) -> String {
    let mut pattern = "*.".repeat((DELAY_LEVELS - 1 - level) as usize);
    pattern.push(bit);
    pattern.push_str(".#");
    pattern
}

/// Declares the delay levels.
async fn declare_delay_levels(channel: Channel) -> std::result::Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            DELAY_DELIVER.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    for level in 0..DELAY_LEVELS {
        channel
            .exchange_declare(
                delay_exchange(level).into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
    }
    for level in 0..DELAY_LEVELS {
        let next = if level == 0 {
            DELAY_DELIVER.to_string()
        } else {
            delay_exchange(level - 1)
        };
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(1000i64 << level),
        );
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(next.as_str().into()),
        );
        let queue = delay_exchange(level);
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                queue.as_str().into(),
                level_pattern(level, '1').into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_bind(
                next.as_str().into(),
                queue.as_str().into(),
                level_pattern(level, '0').into(),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// What the consumer has delivered and the worker has not settled yet.
#[derive(Default)]
struct ConsumeState {
    /// The queues consumed and the prefetch count, once started.
    started: Option<(Vec<String>, u16)>,
    /// Delivered, not fetched yet.
    buffer: VecDeque<Delivery>,
    /// The consuming channel and its number (tags carry it).
    channel: Option<(u64, Channel)>,
    /// Delivery tags not acknowledged or rejected yet, on that channel.
    outstanding: BTreeSet<u64>,
    /// The consumers' tags on that channel.
    consumers: Vec<ShortString>,
    /// The worker stopped fetching: no consuming again, and what comes in goes back.
    stopped: bool,
}

struct Consuming {
    state: Mutex<ConsumeState>,
    notify: Notify,
    channels: AtomicU64,
}

/// A lock held by this broker's connection.
struct HeldLock {
    owner: String,
    channel: Channel,
    generation: u64,
    renewed: Instant,
    ttl: Duration,
}

/// The RabbitMQ broker.
pub(crate) struct AmqpBroker {
    link: Arc<Link>,
    consuming: Arc<Consuming>,
    clock: AtomicU64,
    locks: tokio::sync::Mutex<HashMap<String, HeldLock>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for AmqpBroker {
    fn drop(&mut self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

/// Splits a delivery tag into the consuming channel's number and RabbitMQ's tag.
fn split_tag(tag: &str) -> Option<(u64, u64)> {
    let (channel, delivery) = tag.split_once('.')?;
    Some((channel.parse().ok()?, delivery.parse().ok()?))
}

impl AmqpBroker {
    /// Connects.
    pub(crate) async fn connect(url: &AmqpUrl) -> Result<Self> {
        let link = Link::new(url.clone());
        link.conn().await?;
        Ok(AmqpBroker {
            link,
            consuming: Arc::new(Consuming {
                state: Mutex::new(ConsumeState::default()),
                notify: Notify::new(),
                channels: AtomicU64::new(1),
            }),
            clock: AtomicU64::new(1),
            locks: tokio::sync::Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        })
    }

    fn next_clock(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(tokio::spawn(task));
    }

    /// Starts consuming `queues` with `prefetch` unless already started.
    fn ensure_consuming(&self, queues: &[String], prefetch: usize) {
        let mut state = self.consuming.state.lock();
        if let Some((started, _)) = &state.started {
            if started != queues {
                tracing::warn!(
                    consuming = ?started,
                    asked = ?queues,
                    "one AMQP broker consumes one set of queues; keeping the first"
                );
            }
            return;
        }
        let prefetch = prefetch.clamp(1, usize::from(u16::MAX)) as u16;
        state.started = Some((queues.to_vec(), prefetch));
        drop(state);
        let link = Arc::downgrade(&self.link);
        let consuming = Arc::downgrade(&self.consuming);
        let queues = queues.to_vec();
        self.spawn(consume_loop(link, consuming, queues, prefetch));
    }

    /// Publishes `payload` for `queue` to come back at `eta` (seconds since the epoch).
    async fn publish_delayed(
        &self,
        queue: &str,
        priority: u8,
        payload: &[u8],
        eta: f64,
    ) -> Result<()> {
        let (body, properties) = envelope_to_amqp(payload, priority, None)?;
        let seconds = (eta - clock::epoch_seconds()).floor().max(0.0) as u64;
        let seconds = seconds.min((1u64 << DELAY_LEVELS) - 1);
        let message = if seconds == 0 {
            Publish {
                exchange: String::new(),
                routing_key: queue.to_string(),
                body,
                properties,
            }
        } else {
            Publish {
                exchange: delay_exchange(DELAY_LEVELS - 1),
                routing_key: delay_routing_key(seconds, queue),
                body,
                properties,
            }
        };
        let message = [message];
        let link = &self.link;
        link.retrying("scheduling a message", |conn| {
            let message = &message;
            async move {
                link.declare_task_queue(&conn, queue).await?;
                if seconds > 0 {
                    link.declare_once(&conn, "delay levels", declare_delay_levels)
                        .await?;
                    let word = topic_word(queue);
                    let binding = format!("{}{word}", "*.".repeat(DELAY_LEVELS as usize));
                    let queue_name = short(queue)?;
                    let binding = short(&binding)?;
                    link.declare_once(
                        &conn,
                        &format!("delay binding {queue}"),
                        |channel| async move {
                            channel
                                .queue_bind(
                                    queue_name,
                                    DELAY_DELIVER.into(),
                                    binding,
                                    QueueBindOptions::default(),
                                    FieldTable::default(),
                                )
                                .await
                        },
                    )
                    .await?;
                }
                publish_confirmed(&conn, message).await
            }
        })
        .await
    }

    /// Publishes JSON records to a stream (declared first).
    async fn append(
        &self,
        stream: &'static str,
        age: &'static str,
        records: Vec<Value>,
    ) -> Result<()> {
        let messages: Vec<Publish> = records
            .iter()
            .map(|r| Publish {
                exchange: String::new(),
                routing_key: stream.to_string(),
                body: serde_json::to_vec(r).unwrap_or_default(),
                properties: json_properties(2, &Value::Null),
            })
            .collect();
        let link = &self.link;
        link.retrying("appending to a stream", |conn| {
            let messages = &messages;
            async move {
                declare_stream(link, &conn, stream, age).await?;
                publish_confirmed(&conn, messages).await
            }
        })
        .await
    }

    /// Every record of a stream from `since` (seconds since the epoch; 0: the start) up
    /// to now: a marker is appended, and the stream is read back until it.
    async fn replay(
        &self,
        stream: &'static str,
        age: &'static str,
        since: f64,
    ) -> Result<Vec<Value>> {
        let nonce = uuid::Uuid::new_v4().to_string();
        self.append(stream, age, vec![json!({"marker": nonce})])
            .await?;
        let conn = self.link.conn().await?;
        let channel = conn.connection.create_channel().await.map_err(amqp_error)?;
        let read = async {
            channel
                .basic_qos(1000, BasicQosOptions::default())
                .await
                .map_err(amqp_error)?;
            let mut arguments = FieldTable::default();
            if since > 1.0 {
                // A little earlier: clocks of publishers differ, and records carry their
                // own times, which are checked below.
                arguments.insert(
                    "x-stream-offset".into(),
                    AMQPValue::Timestamp((since - 5.0).max(0.0) as u64),
                );
            } else {
                arguments.insert(
                    "x-stream-offset".into(),
                    AMQPValue::LongString("first".into()),
                );
            }
            let mut consumer = channel
                .basic_consume(
                    stream.into(),
                    format!("braid-replay-{nonce}").as_str().into(),
                    BasicConsumeOptions::default(),
                    arguments,
                )
                .await
                .map_err(amqp_error)?;
            let mut records = Vec::new();
            let mut unacked = 0usize;
            while let Some(delivery) = consumer.next().await {
                let delivery = delivery.map_err(amqp_error)?;
                unacked += 1;
                if unacked >= 500 {
                    unacked = 0;
                    channel
                        .basic_ack(delivery.delivery_tag, BasicAckOptions { multiple: true })
                        .await
                        .map_err(amqp_error)?;
                }
                let Some(record) = json_body(&delivery.data) else {
                    continue;
                };
                if let Some(marker) = record.get("marker") {
                    if marker.as_str() == Some(nonce.as_str()) {
                        return Ok(records);
                    }
                    continue;
                }
                records.push(record);
            }
            Err(Error::Broker(format!(
                "the stream {stream} ended while being read"
            )))
        };
        let outcome = tokio::time::timeout(STREAM_READ_LIMIT, read).await;
        close_quietly(&channel).await;
        match outcome {
            Ok(records) => records,
            Err(_) => Err(Error::Broker(format!(
                "reading the stream {stream} took longer than {STREAM_READ_LIMIT:?}"
            ))),
        }
    }

    /// Reads a queue's messages without taking them (they return when the channel closes).
    async fn peek(&self, queue: &str, max: usize) -> Result<Vec<Vec<u8>>> {
        let conn = self.link.conn().await?;
        let channel = conn.connection.create_channel().await.map_err(amqp_error)?;
        let mut out = Vec::new();
        let read = async {
            while out.len() < max {
                match channel
                    .basic_get(short(queue)?, BasicGetOptions { no_ack: false })
                    .await
                {
                    Ok(Some(message)) => out.push(message.delivery.data.clone()),
                    Ok(None) => break,
                    Err(e) if e.to_string().contains("NOT_FOUND") => break,
                    Err(e) => return Err(amqp_error(e)),
                }
            }
            Ok(())
        }
        .await;
        close_quietly(&channel).await;
        read.map(|()| out)
    }

    /// The number of messages waiting on `queue`, or `None` when it does not exist.
    async fn message_count(&self, queue: &str) -> Result<Option<u32>> {
        let conn = self.link.conn().await?;
        let channel = conn.connection.create_channel().await.map_err(amqp_error)?;
        let outcome = channel
            .queue_declare(
                short(queue)?,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        close_quietly(&channel).await;
        match outcome {
            Ok(q) => Ok(Some(q.message_count())),
            Err(e) if e.to_string().contains("NOT_FOUND") => Ok(None),
            Err(e) => Err(amqp_error(e)),
        }
    }

    /// Acknowledges (`reject == false`) or rejects back to the queue deliveries of the
    /// live consuming channel. Deliveries of a channel that has closed are already back
    /// on their queue (RabbitMQ returned them), so they are left alone.
    async fn settle(&self, tags: Vec<String>, reject: bool) -> Result<()> {
        let (channel, generation, multiple_up_to, singles) = {
            let mut state = self.consuming.state.lock();
            let Some((generation, channel)) = state.channel.clone() else {
                if !tags.is_empty() {
                    tracing::debug!(
                        count = tags.len(),
                        "deliveries of a closed channel: RabbitMQ delivers them again"
                    );
                }
                return Ok(());
            };
            let mut mine: Vec<u64> = Vec::with_capacity(tags.len());
            for tag in &tags {
                match split_tag(tag) {
                    Some((g, t)) if g == generation => {
                        if state.outstanding.remove(&t) {
                            mine.push(t);
                        }
                    }
                    Some(_) => tracing::debug!(
                        tag,
                        "a delivery of a closed channel: RabbitMQ delivers it again"
                    ),
                    None => tracing::warn!(tag, "not an AMQP delivery tag; ignored"),
                }
            }
            mine.sort_unstable();
            if reject {
                (channel, generation, None, mine)
            } else {
                // One `multiple` ack covers every tag below the oldest still outstanding.
                let oldest = state.outstanding.first().copied().unwrap_or(u64::MAX);
                let split = mine.partition_point(|t| *t < oldest);
                let up_to = split.checked_sub(1).map(|i| mine[i]);
                (channel, generation, up_to, mine.split_off(split))
            }
        };
        let outcome = async {
            if let Some(tag) = multiple_up_to {
                channel
                    .basic_ack(tag, BasicAckOptions { multiple: true })
                    .await?;
            }
            for tag in singles {
                if reject {
                    channel
                        .basic_reject(tag, BasicRejectOptions { requeue: true })
                        .await?;
                } else {
                    channel.basic_ack(tag, BasicAckOptions::default()).await?;
                }
            }
            Ok::<(), lapin::Error>(())
        }
        .await;
        if let Err(e) = outcome {
            // The channel is gone: RabbitMQ puts what it had delivered on it back on
            // the queues, so there is nothing left to settle (they run again).
            tracing::warn!(error = %e, generation, "settling deliveries failed; RabbitMQ delivers them again");
        }
        Ok(())
    }
}

/// Declares a stream queue (durable, append-only, kept `age`).
async fn declare_stream(
    link: &Link,
    conn: &Conn,
    stream: &'static str,
    age: &'static str,
) -> Result<()> {
    link.declare_once(conn, &format!("stream {stream}"), |channel| async move {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("stream".into()),
        );
        arguments.insert("x-max-age".into(), AMQPValue::LongString(age.into()));
        arguments.insert(
            "x-stream-max-segment-size-bytes".into(),
            AMQPValue::LongLongInt(4_000_000),
        );
        channel
            .queue_declare(
                stream.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await
            .map(|_| ())
    })
    .await
}

/// Consumes the worker's queues into the buffer, again and again after failures.
async fn consume_loop(
    link: Weak<Link>,
    consuming: Weak<Consuming>,
    queues: Vec<String>,
    prefetch: u16,
) {
    let mut attempt = 0u32;
    loop {
        let (Some(link), Some(consuming)) = (link.upgrade(), consuming.upgrade()) else {
            return;
        };
        if consuming.state.lock().stopped {
            return;
        }
        let outcome = consume_once(&link, &consuming, &queues, prefetch, &mut attempt).await;
        if outcome.is_ok() && consuming.state.lock().stopped {
            // Cancelled by `stop_fetching`: the channel stays open for the acks of what
            // is still running; what came in meanwhile goes back to the queues.
            give_back_buffered(&consuming).await;
            return;
        }
        {
            let mut state = consuming.state.lock();
            state.channel = None;
            state.buffer.clear();
            state.outstanding.clear();
        }
        consuming.notify.notify_waiters();
        match outcome {
            Ok(()) => tracing::warn!("the AMQP consumer stopped; consuming again"),
            Err(e) => {
                tracing::warn!(error = %e, attempt, "consuming from RabbitMQ failed; retrying")
            }
        }
        drop((link, consuming));
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}

async fn consume_once(
    link: &Link,
    consuming: &Consuming,
    queues: &[String],
    prefetch: u16,
    attempt: &mut u32,
) -> Result<()> {
    let conn = link.conn().await?;
    for queue in queues {
        link.declare_task_queue(&conn, queue).await?;
    }
    let channel = conn.connection.create_channel().await.map_err(amqp_error)?;
    channel
        .basic_qos(prefetch, BasicQosOptions { global: true })
        .await
        .map_err(amqp_error)?;
    let generation = consuming.channels.fetch_add(1, Ordering::Relaxed);
    {
        let mut state = consuming.state.lock();
        state.channel = Some((generation, channel.clone()));
        state.consumers.clear();
    }
    let mut streams = Vec::with_capacity(queues.len());
    for queue in queues {
        let consumer = channel
            .basic_consume(
                short(queue)?,
                short(&format!(
                    "braid-{}-{queue:.180}",
                    uuid::Uuid::new_v4().simple()
                ))?,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp_error)?;
        consuming.state.lock().consumers.push(consumer.tag());
        let queue = queue.clone();
        streams.push(consumer.map(move |d| (queue.clone(), d)).boxed());
    }
    tracing::debug!(?queues, prefetch, generation, "consuming");
    let mut all = futures_util::stream::select_all(streams);
    while let Some((queue, delivery)) = all.next().await {
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => {
                if !conn.connection.status().connected() {
                    conn.mark_dead();
                }
                return Err(amqp_error(e));
            }
        };
        *attempt = 0;
        let tag = format!("{generation}.{}", delivery.delivery_tag);
        let payload = envelope_from_amqp(
            &delivery.data,
            &delivery.properties,
            delivery.exchange.as_str(),
            delivery.routing_key.as_str(),
            delivery.redelivered,
            &tag,
        );
        crate::backend::rpc::note_reply_to(&delivery.properties);
        {
            let mut state = consuming.state.lock();
            state.outstanding.insert(delivery.delivery_tag);
            state.buffer.push_back(Delivery {
                tag,
                queue,
                step: 0,
                payload,
            });
        }
        consuming.notify.notify_one();
        consuming.notify.notify_waiters();
    }
    if !conn.connection.status().connected() {
        conn.mark_dead();
    }
    Ok(())
}

/// Rejects back to their queues the deliveries waiting in the buffer (after the consumers
/// were cancelled, so RabbitMQ does not hand them to this worker again).
async fn give_back_buffered(consuming: &Consuming) {
    let (channel, tags) = {
        let mut state = consuming.state.lock();
        let Some((generation, channel)) = state.channel.clone() else {
            return;
        };
        let buffered: Vec<Delivery> = state.buffer.drain(..).collect();
        let mut tags = Vec::with_capacity(buffered.len());
        for delivery in buffered {
            if let Some((g, tag)) = split_tag(&delivery.tag)
                && g == generation
                && state.outstanding.remove(&tag)
            {
                tags.push(tag);
            }
        }
        (channel, tags)
    };
    for tag in tags {
        if let Err(e) = channel
            .basic_reject(tag, BasicRejectOptions { requeue: true })
            .await
        {
            tracing::warn!(error = %e, "giving back a delivery failed; RabbitMQ delivers it again when the channel closes");
            return;
        }
    }
}

impl Broker for AmqpBroker {
    fn stop_fetching(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let (channel, consumers) = {
                let mut state = self.consuming.state.lock();
                state.stopped = true;
                let Some((_, channel)) = state.channel.clone() else {
                    return Ok(());
                };
                (channel, std::mem::take(&mut state.consumers))
            };
            for tag in consumers {
                channel
                    .basic_cancel(tag, BasicCancelOptions::default())
                    .await
                    .map_err(amqp_error)?;
            }
            give_back_buffered(&self.consuming).await;
            Ok(())
        })
    }

    fn publish(&self, messages: Vec<Outgoing>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if messages.is_empty() {
                return Ok(());
            }
            let reply_to = self.link.url.reply_to.as_deref();
            let mut out = Vec::with_capacity(messages.len());
            let mut queues: Vec<&str> = Vec::new();
            for m in &messages {
                let (body, properties) = envelope_to_amqp(&m.payload, m.priority, reply_to)?;
                if !queues.contains(&m.queue.as_str()) {
                    queues.push(&m.queue);
                }
                out.push(Publish {
                    exchange: String::new(),
                    routing_key: m.queue.clone(),
                    body,
                    properties,
                });
            }
            let link = &self.link;
            link.retrying("publishing", |conn| {
                let (out, queues) = (&out, &queues);
                async move {
                    for queue in queues {
                        link.declare_task_queue(&conn, queue).await?;
                    }
                    if let Some(oid) = reply_to {
                        crate::backend::rpc::declare_reply_queue(link, &conn, oid).await?;
                    }
                    publish_confirmed(&conn, out).await
                }
            })
            .await
        })
    }

    fn fetch<'a>(
        &'a self,
        queues: &'a [String],
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Delivery>>> {
        Box::pin(async move {
            self.ensure_consuming(queues, max);
            let mut state = self.consuming.state.lock();
            let n = max.min(state.buffer.len());
            Ok(state.buffer.drain(..n).collect())
        })
    }

    fn wait_for_messages<'a>(
        &'a self,
        queues: &'a [String],
        wait: Duration,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if queues.is_empty() || wait.is_zero() {
                return Ok(());
            }
            if self.consuming.state.lock().started.is_none() {
                // Not consuming yet: the first fetch starts it (with the worker's prefetch).
                return Ok(());
            }
            let notified = self.consuming.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.consuming.state.lock().buffer.is_empty() {
                return Ok(());
            }
            let _ = tokio::time::timeout(wait, notified).await;
            Ok(())
        })
    }

    fn ack(&self, tags: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.settle(tags, false))
    }

    fn give_back(&self, deliveries: Vec<Delivery>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let tags = deliveries.into_iter().map(|d| d.tag).collect();
            self.settle(tags, true).await
        })
    }

    fn dead_letter(&self, delivery: Delivery, reason: String) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let record =
                super::redis::dead_letter_record(&delivery.queue, &reason, &delivery.payload);
            let message = [Publish {
                exchange: String::new(),
                routing_key: DEAD_LETTER_QUEUE.into(),
                body: serde_json::to_vec(&record).unwrap_or_default(),
                properties: json_properties(2, &Value::Null),
            }];
            let link = &self.link;
            link.retrying("dead-lettering", |conn| {
                let message = &message;
                async move {
                    link.declare_task_queue(&conn, DEAD_LETTER_QUEUE).await?;
                    publish_confirmed(&conn, message).await
                }
            })
            .await?;
            self.settle(vec![delivery.tag], false).await
        })
    }

    fn schedule(&self, delivery: Delivery, eta: f64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let priority = serde_json::from_slice::<Value>(&delivery.payload)
                .ok()
                .and_then(|v| v.pointer("/properties/priority").and_then(Value::as_u64))
                .unwrap_or(0)
                .min(255) as u8;
            self.publish_delayed(&delivery.queue, priority, &delivery.payload, eta)
                .await?;
            self.settle(vec![delivery.tag], false).await
        })
    }

    fn schedule_new(&self, message: Outgoing, eta: f64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.publish_delayed(&message.queue, message.priority, &message.payload, eta)
                .await
        })
    }

    fn move_due<'a>(
        &'a self,
        _queues: &'a [String],
    ) -> BoxFuture<'a, Result<(usize, Option<f64>)>> {
        // RabbitMQ moves due messages itself (the delay levels dead-letter them back).
        Box::pin(async { Ok((0, None)) })
    }

    fn keep_alive(&self, _tags: Vec<String>) -> BoxFuture<'_, Result<()>> {
        // Unacknowledged deliveries stay with their consumer while its connection lives.
        Box::pin(async { Ok(()) })
    }

    fn restore_visible(&self) -> BoxFuture<'_, Result<usize>> {
        // RabbitMQ returns a dead consumer's deliveries itself.
        Box::pin(async { Ok(0) })
    }

    fn purge<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            if self.message_count(queue).await?.is_none() {
                return Ok(0);
            }
            let conn = self.link.conn().await?;
            let channel = conn.connection.create_channel().await.map_err(amqp_error)?;
            let purged = channel
                .queue_purge(short(queue)?, QueuePurgeOptions::default())
                .await
                .map_err(amqp_error);
            close_quietly(&channel).await;
            Ok(u64::from(purged?))
        })
    }

    fn len<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move { Ok(u64::from(self.message_count(queue).await?.unwrap_or(0))) })
    }

    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<Value>>> {
        Box::pin(async move {
            let items = self.peek(DEAD_LETTER_QUEUE, 100_000).await?;
            Ok(items
                .iter()
                .map(|item| {
                    serde_json::from_slice(item)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(item).into()))
                })
                .collect())
        })
    }

    fn revoke(&self, ids: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            let record = json!({"ids": ids, "at": clock::epoch_seconds()});
            self.append(REVOKED_STREAM, REVOKED_AGE, vec![record]).await
        })
    }

    fn revoked_since(&self, since: f64) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let records = self.replay(REVOKED_STREAM, REVOKED_AGE, since).await?;
            let mut ids = Vec::new();
            for record in records {
                if record.get("at").and_then(Value::as_f64).unwrap_or(0.0) < since {
                    continue;
                }
                if let Some(list) = record.get("ids").and_then(Value::as_array) {
                    ids.extend(list.iter().filter_map(|v| v.as_str().map(str::to_string)));
                }
            }
            Ok(ids)
        })
    }

    fn broadcast(&self, command: Value) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let headers = json!({
                "clock": self.next_clock(),
                "expires": clock::epoch_seconds() + 10.0,
            });
            let message = [Publish {
                exchange: "celery.pidbox".into(),
                routing_key: String::new(),
                body: serde_json::to_vec(&command).unwrap_or_default(),
                properties: json_properties(1, &headers),
            }];
            let link = &self.link;
            link.retrying("broadcasting", |conn| {
                let message = &message;
                async move {
                    declare_pidbox(link, &conn).await?;
                    publish_confirmed(&conn, message).await
                }
            })
            .await
        })
    }

    fn control(&self) -> BoxFuture<'_, Result<UnboundedReceiver<Value>>> {
        Box::pin(async move {
            let (tx, rx) = unbounded_channel();
            let queue = format!("braid-{}.celery.pidbox", uuid::Uuid::new_v4().simple());
            // Bound before this returns, so no command sent after it is missed.
            let conn = self.link.conn().await?;
            let consumer = pidbox_consumer(&self.link, &conn, &queue).await?;
            let link = Arc::downgrade(&self.link);
            self.spawn(async move {
                let mut consumer = Some(consumer);
                let mut attempt = 0u32;
                loop {
                    if let Some(mut c) = consumer.take() {
                        while let Some(delivery) = c.next().await {
                            let Ok(delivery) = delivery else { break };
                            attempt = 0;
                            match json_body(&delivery.data) {
                                Some(body) => {
                                    if tx.send(body).is_err() {
                                        return;
                                    }
                                }
                                None => tracing::warn!(
                                    "ignoring a remote-control message that does not decode"
                                ),
                            }
                        }
                    }
                    if tx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                    let Some(link) = link.upgrade() else { return };
                    match async {
                        let conn = link.conn().await?;
                        pidbox_consumer(&link, &conn, &queue).await
                    }
                    .await
                    {
                        Ok(c) => consumer = Some(c),
                        Err(e) => {
                            tracing::warn!(error = %e, "re-subscribing to remote control failed")
                        }
                    }
                }
            });
            Ok(rx)
        })
    }

    fn reply(&self, reply_to: Value, ticket: String, body: Value) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let exchange = reply_to
                .get("exchange")
                .and_then(Value::as_str)
                .unwrap_or("reply.celery.pidbox")
                .to_string();
            let Some(routing_key) = reply_to.get("routing_key").and_then(Value::as_str) else {
                return Ok(());
            };
            let headers = json!({"ticket": ticket, "clock": self.next_clock()});
            let message = [Publish {
                exchange: exchange.clone(),
                routing_key: routing_key.to_string(),
                body: serde_json::to_vec(&body).unwrap_or_default(),
                properties: json_properties(1, &headers),
            }];
            let link = &self.link;
            link.retrying("replying", |conn| {
                let (message, exchange) = (&message, &exchange);
                async move {
                    declare_reply_exchange(link, &conn, exchange).await?;
                    publish_confirmed(&conn, message).await
                }
            })
            .await
        })
    }

    fn collect_replies<'a>(
        &'a self,
        oid: &'a str,
        timeout: Duration,
        limit: Option<usize>,
    ) -> BoxFuture<'a, Result<Vec<Value>>> {
        Box::pin(async move {
            let queue = format!("{oid}.reply.celery.pidbox");
            let conn = self.link.conn().await?;
            declare_control_reply_queue(&self.link, &conn, oid).await?;
            let channel = conn.connection.create_channel().await.map_err(amqp_error)?;
            let mut consumer = channel
                .basic_consume(
                    short(&queue)?,
                    "".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(amqp_error)?;
            let deadline = tokio::time::Instant::now() + timeout;
            let mut replies = Vec::new();
            while limit.is_none_or(|limit| replies.len() < limit) {
                match tokio::time::timeout_at(deadline, consumer.next()).await {
                    Ok(Some(Ok(delivery))) => {
                        if let Some(body) = json_body(&delivery.data) {
                            replies.push(body);
                        }
                    }
                    Ok(Some(Err(e))) => {
                        close_quietly(&channel).await;
                        return Err(amqp_error(e));
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            if let Err(e) = channel
                .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                .await
            {
                tracing::debug!(error = %e, "cancelling the reply consumer failed");
            }
            close_quietly(&channel).await;
            Ok(replies)
        })
    }

    fn declare_reply_queue<'a>(&'a self, oid: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let conn = self.link.conn().await?;
            declare_control_reply_queue(&self.link, &conn, oid).await
        })
    }

    fn heartbeat(&self, beat: WorkerBeat) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let record = json!({"beat": beat});
            self.append(WORKERS_STREAM, WORKERS_AGE, vec![record]).await
        })
    }

    fn forget_worker<'a>(&'a self, hostname: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let record = json!({"gone": hostname, "at": clock::epoch_seconds()});
            self.append(WORKERS_STREAM, WORKERS_AGE, vec![record]).await
        })
    }

    fn workers(&self, within: Duration) -> BoxFuture<'_, Result<Vec<WorkerBeat>>> {
        Box::pin(async move {
            let since = clock::epoch_seconds() - within.as_secs_f64();
            let records = self.replay(WORKERS_STREAM, WORKERS_AGE, since).await?;
            let mut latest: HashMap<String, Option<WorkerBeat>> = HashMap::new();
            for record in records {
                if let Some(gone) = record.get("gone").and_then(Value::as_str) {
                    latest.insert(gone.to_string(), None);
                } else if let Some(beat) = record.get("beat")
                    && let Ok(beat) = serde_json::from_value::<WorkerBeat>(beat.clone())
                {
                    latest.insert(beat.hostname.clone(), Some(beat));
                }
            }
            let mut beats: Vec<WorkerBeat> = latest
                .into_values()
                .flatten()
                .filter(|b| b.at >= since)
                .collect();
            beats.sort_by(|a, b| a.hostname.cmp(&b.hostname));
            Ok(beats)
        })
    }

    fn publish_events(&self, events: Vec<(String, Value)>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if events.is_empty() {
                return Ok(());
            }
            let conn = self.link.conn().await?;
            declare_events_exchange(&self.link, &conn).await?;
            for (routing_key, body) in events {
                let headers =
                    json!({"hostname": body.get("hostname").cloned().unwrap_or(Value::Null)});
                // Fire and forget: no confirm is awaited; the exchange drops what no queue
                // takes, and subscriber queues drop their oldest events when full.
                let sent = conn
                    .events
                    .basic_publish(
                        "celeryev".into(),
                        short(&routing_key)?,
                        BasicPublishOptions::default(),
                        &serde_json::to_vec(&body).unwrap_or_default(),
                        json_properties(1, &headers),
                    )
                    .await;
                if let Err(e) = sent {
                    conn.mark_dead();
                    return Err(amqp_error(e));
                }
            }
            Ok(())
        })
    }

    fn subscribe_events(&self) -> BoxFuture<'_, Result<tokio::sync::mpsc::Receiver<Value>>> {
        Box::pin(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            let queue = format!("celeryev.braid-{}", uuid::Uuid::new_v4());
            let conn = self.link.conn().await?;
            let first = events_consumer(&self.link, &conn, &queue).await?;
            let link = Arc::downgrade(&self.link);
            self.spawn(async move {
                let mut current = Some(first);
                let mut attempt = 0u32;
                loop {
                    if let Some((channel, mut consumer)) = current.take() {
                        while let Some(delivery) = consumer.next().await {
                            let delivery = match delivery {
                                Ok(delivery) => delivery,
                                Err(e) => {
                                    tracing::warn!(error = %e, queue, "the event stream broke; re-subscribing");
                                    break;
                                }
                            };
                            attempt = 0;
                            if let Some(body) = json_body(&delivery.data)
                                && tx.send(body).await.is_err()
                            {
                                close_quietly(&channel).await;
                                return;
                            }
                            // Acked once handed on: what the reader has not taken waits in
                            // the queue, which drops its oldest past its length.
                            if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                                tracing::debug!(error = %e, "acking an event failed");
                                break;
                            }
                        }
                    }
                    if tx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                    let Some(link) = link.upgrade() else { return };
                    match async {
                        let conn = link.conn().await?;
                        events_consumer(&link, &conn, &queue).await
                    }
                    .await
                    {
                        Ok(c) => current = Some(c),
                        Err(e) => tracing::warn!(error = %e, "re-subscribing to events failed"),
                    }
                }
            });
            Ok(rx)
        })
    }

    fn lock<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let conn = self.link.conn().await?;
            let mut locks = self.locks.lock().await;
            if let Some(held) = locks.get_mut(name) {
                let live = held.generation == conn.generation && held.channel.status().connected();
                if live && held.owner == owner && ttl.is_zero() {
                    // Given up: the exclusive queue goes now, not with the connection, so
                    // another process takes the lock at once.
                    if let Some(old) = locks.remove(name) {
                        let deleted = old
                            .channel
                            .queue_delete(
                                short(&format!("braid.lock.{name}"))?,
                                QueueDeleteOptions::default(),
                            )
                            .await;
                        close_quietly(&old.channel).await;
                        deleted.map_err(amqp_error)?;
                    }
                    return Ok(true);
                }
                if live && held.owner == owner {
                    held.renewed = Instant::now();
                    held.ttl = ttl;
                    return Ok(true);
                }
                if live && held.renewed.elapsed() < held.ttl {
                    return Ok(false);
                }
                // Expired, or lost with its connection: let it go and try afresh.
                if let Some(old) = locks.remove(name) {
                    close_quietly(&old.channel).await;
                }
            }
            if ttl.is_zero() {
                // Giving up a lock this owner does not hold: nothing to do.
                return Ok(true);
            }
            let channel = conn.connection.create_channel().await.map_err(amqp_error)?;
            let declared = channel
                .queue_declare(
                    short(&format!("braid.lock.{name}"))?,
                    QueueDeclareOptions {
                        exclusive: true,
                        auto_delete: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await;
            match declared {
                Ok(_) => {
                    locks.insert(
                        name.to_string(),
                        HeldLock {
                            owner: owner.to_string(),
                            channel,
                            generation: conn.generation,
                            renewed: Instant::now(),
                            ttl,
                        },
                    );
                    Ok(true)
                }
                Err(e) if is_resource_locked(&e) => Ok(false),
                Err(e) => Err(amqp_error(e)),
            }
        })
    }
}

/// Whether RabbitMQ refused a declare with `RESOURCE_LOCKED` (405): another connection
/// holds that exclusive queue.
fn is_resource_locked(error: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(e)
            if *e.kind() == AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED)
    )
}

/// kombu's Mailbox exchange: `celery.pidbox`, fanout, not durable.
async fn declare_pidbox(link: &Link, conn: &Conn) -> Result<()> {
    link.declare_once(conn, "pidbox", |channel| async move {
        channel
            .exchange_declare(
                "celery.pidbox".into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
    })
    .await
}

async fn declare_reply_exchange(link: &Link, conn: &Conn, exchange: &str) -> Result<()> {
    let name = short(exchange)?;
    link.declare_once(
        conn,
        &format!("exchange {exchange}"),
        |channel| async move {
            channel
                .exchange_declare(
                    name,
                    ExchangeKind::Direct,
                    ExchangeDeclareOptions::default(),
                    FieldTable::default(),
                )
                .await
        },
    )
    .await
}

fn control_queue_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-message-ttl".into(),
        AMQPValue::LongInt(CONTROL_QUEUE_TTL_MS as i32),
    );
    arguments.insert(
        "x-expires".into(),
        AMQPValue::LongInt(CONTROL_QUEUE_EXPIRES_MS as i32),
    );
    arguments
}

/// kombu's reply queue `OID.reply.celery.pidbox`, bound with the oid.
async fn declare_control_reply_queue(link: &Link, conn: &Conn, oid: &str) -> Result<()> {
    declare_reply_exchange(link, conn, "reply.celery.pidbox").await?;
    let queue = short(&format!("{oid}.reply.celery.pidbox"))?;
    let key = short(oid)?;
    link.declare_once(conn, &format!("reply queue {oid}"), |channel| async move {
        channel
            .queue_declare(
                queue.clone(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                control_queue_arguments(),
            )
            .await?;
        channel
            .queue_bind(
                queue,
                "reply.celery.pidbox".into(),
                key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    })
    .await
}

/// A worker's node queue bound to `celery.pidbox`, consumed without acks (as kombu does).
async fn pidbox_consumer(link: &Link, conn: &Conn, queue: &str) -> Result<lapin::Consumer> {
    declare_pidbox(link, conn).await?;
    let channel = conn.connection.create_channel().await.map_err(amqp_error)?;
    let name = short(queue)?;
    channel
        .queue_declare(
            name.clone(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            control_queue_arguments(),
        )
        .await
        .map_err(amqp_error)?;
    channel
        .queue_bind(
            name.clone(),
            "celery.pidbox".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp_error)?;
    channel
        .basic_consume(
            name,
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp_error)
}

/// Celery's event exchange: `celeryev`, topic, durable.
async fn declare_events_exchange(link: &Link, conn: &Conn) -> Result<()> {
    link.declare_once(conn, "celeryev", |channel| async move {
        channel
            .exchange_declare(
                "celeryev".into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
    })
    .await
}

/// An event subscriber's queue (exclusive, dropping its oldest events past its length),
/// bound to every event, consumed with acks and a prefetch so the backlog stays bounded.
async fn events_consumer(
    link: &Link,
    conn: &Conn,
    queue: &str,
) -> Result<(Channel, lapin::Consumer)> {
    declare_events_exchange(link, conn).await?;
    let channel = conn.connection.create_channel().await.map_err(amqp_error)?;
    let name = short(queue)?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-message-ttl".into(),
        AMQPValue::LongInt(EVENT_QUEUE_TTL_MS as i32),
    );
    arguments.insert(
        "x-expires".into(),
        AMQPValue::LongInt(EVENT_QUEUE_EXPIRES_MS as i32),
    );
    arguments.insert(
        "x-max-length".into(),
        AMQPValue::LongInt(EVENT_QUEUE_MAX as i32),
    );
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("drop-head".into()),
    );
    let consumer = async {
        channel
            .queue_declare(
                name.clone(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await?;
        channel
            .queue_bind(
                name.clone(),
                "celeryev".into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel.basic_qos(256, BasicQosOptions::default()).await?;
        channel
            .basic_consume(
                name,
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
    }
    .await
    .map_err(amqp_error)?;
    Ok((channel, consumer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_keys_carry_the_bits_and_the_queue() {
        let key = delay_routing_key(5, "a.b");
        let words: Vec<&str> = key.split('.').collect();
        assert_eq!(words.len(), DELAY_LEVELS as usize + 1);
        assert_eq!(words[DELAY_LEVELS as usize - 1], "1");
        assert_eq!(words[DELAY_LEVELS as usize - 2], "0");
        assert_eq!(words[DELAY_LEVELS as usize - 3], "1");
        assert_eq!(words[DELAY_LEVELS as usize], "a%2Eb");
        assert_eq!(level_pattern(0, '1'), format!("{}1.#", "*.".repeat(27)));
        assert_eq!(level_pattern(27, '0'), "0.#");
        assert_eq!(topic_word("x*#%"), "x%2A%23%25");
    }

    #[test]
    fn envelopes_round_trip_through_amqp() {
        let message = crate::TaskMessage::new(
            "tasks.add",
            "id-1",
            serde_json::value::RawValue::from_string("[1,2]".into()).unwrap(),
            "q",
        )
        .unwrap();
        let payload = message.encode().unwrap();
        let (body, properties) = envelope_to_amqp(&payload, 3, Some("oid-1")).unwrap();
        assert_eq!(properties.priority(), &Some(3));
        assert_eq!(properties.reply_to().as_ref().unwrap().as_str(), "oid-1");
        assert_eq!(
            properties.correlation_id().as_ref().unwrap().as_str(),
            "id-1"
        );
        assert_eq!(properties.delivery_mode(), &Some(2));
        let back = envelope_from_amqp(&body, &properties, "", "q", true, "1.7");
        let decoded = crate::TaskMessage::decode(&back).unwrap();
        assert_eq!(decoded.headers.task, "tasks.add");
        assert_eq!(decoded.args.get(), "[1,2]");
        assert!(decoded.redelivered());
        assert_eq!(decoded.properties.delivery_tag, "1.7");
    }

    #[test]
    fn json_and_amqp_values_agree() {
        let value = json!({"a": [1, 2.5, null, true, "x", {"b": 3_000_000_000i64}]});
        let table = to_amqp_table(value.as_object().unwrap());
        assert_eq!(Value::Object(from_amqp_table(&table)), value);
        assert_eq!(split_tag("3.17"), Some((3, 17)));
        assert_eq!(split_tag("x"), None);
    }

    /// Tests against the RabbitMQ on 127.0.0.1:5672 that scripts/test starts.
    mod live {
        use super::*;

        fn url() -> AmqpUrl {
            let crate::url::Url::Amqp(url) =
                crate::url::Url::parse("amqp://guest:guest@127.0.0.1:5672//").unwrap()
            else {
                unreachable!()
            };
            url
        }

        fn runtime() -> tokio::runtime::Runtime {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
        }

        #[test]
        fn events_reach_subscribers_and_a_slow_one_holds_nothing_back() {
            runtime().block_on(async {
                let broker = AmqpBroker::connect(&url())
                    .await
                    .expect("RabbitMQ running?");
                let mut events = broker.subscribe_events().await.unwrap();
                let host = format!("events-{}@test", uuid::Uuid::new_v4().simple());
                let event = json!({"type": "task-succeeded", "hostname": host, "uuid": "x"});
                broker
                    .publish_events(vec![("task.succeeded".into(), event.clone())])
                    .await
                    .unwrap();
                let got = tokio::time::timeout(Duration::from_secs(20), async {
                    loop {
                        let e = events.recv().await.expect("events ended");
                        if e["hostname"] == json!(host) {
                            return e;
                        }
                    }
                })
                .await
                .expect("the event did not arrive");
                assert_eq!(got, event);
                // Nobody reads now: publishing far more than the queue keeps goes on
                // unhindered, and the subscriber later finds at most its bounds.
                let burst: Vec<(String, Value)> = (0..30_000)
                    .map(|i| {
                        (
                            "worker.heartbeat".to_string(),
                            json!({"hostname": host, "i": i}),
                        )
                    })
                    .collect();
                for chunk in burst.chunks(5_000) {
                    broker.publish_events(chunk.to_vec()).await.unwrap();
                }
                let marker = json!({"hostname": host, "last": true});
                broker
                    .publish_events(vec![("worker.offline".into(), marker.clone())])
                    .await
                    .unwrap();
                // Distinct heartbeats: a delivery RabbitMQ hands out again (its channel
                // was closed before the ack) is the same event, not one more kept.
                let mut seen = std::collections::HashSet::new();
                let mut deliveries = 0usize;
                tokio::time::timeout(Duration::from_secs(60), async {
                    loop {
                        let e = events.recv().await.expect("events ended");
                        if e == marker {
                            return;
                        }
                        // Only ours: other programs' events share the exchange.
                        if e["hostname"] == json!(host) {
                            deliveries += 1;
                            seen.insert(e["i"].as_u64());
                        }
                    }
                })
                .await
                .expect("the last event did not arrive");
                let seen = seen.len();
                // The queue's length, the reader's channel and the prefetch window,
                // plus publishes RabbitMQ had not routed yet when the draining began
                // (events are published without confirms, so the last call returns
                // before they are queued, and what the reader takes meanwhile makes
                // room): far fewer than the 30,000 sent, which a queue that kept
                // everything would hand over.
                assert!(
                    seen <= (EVENT_QUEUE_MAX as usize) + 1024 + 256 + 5_000,
                    "a slow subscriber got {seen} distinct events ({deliveries} deliveries): \
                     its queue did not drop the oldest"
                );
            });
        }

        #[test]
        fn a_lock_has_one_holder_and_goes_with_its_connection() {
            runtime().block_on(async {
                let name = format!("test-{}", uuid::Uuid::new_v4().simple());
                let a = AmqpBroker::connect(&url())
                    .await
                    .expect("RabbitMQ running?");
                let b = AmqpBroker::connect(&url()).await.unwrap();
                let ttl = Duration::from_secs(30);
                assert!(a.lock(&name, "a", ttl).await.unwrap());
                assert!(a.lock(&name, "a", ttl).await.unwrap(), "renewal");
                assert!(
                    !a.lock(&name, "b", ttl).await.unwrap(),
                    "another owner, same process"
                );
                assert!(
                    !b.lock(&name, "b", ttl).await.unwrap(),
                    "another connection"
                );
                drop(a);
                let deadline = Instant::now() + Duration::from_secs(20);
                while !b.lock(&name, "b", ttl).await.unwrap() {
                    assert!(
                        Instant::now() < deadline,
                        "the lock outlived its connection"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
    }
}
