//! Brokers: where task messages wait for a worker. One trait, one file per transport.

pub(crate) mod amqp;
pub(crate) mod memory;
pub(crate) mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::Result;
use crate::url::Url;

/// A boxed, sendable future, as the transports return.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// kombu's priority steps on Redis: priorities 0-2 share the plain list, 3-5 the `\x06\x163`
/// list, and so on; lower numbers are served first.
pub(crate) const PRIORITY_STEPS: [u8; 4] = [0, 3, 6, 9];

/// kombu's separator between a queue name and its priority.
pub(crate) const PRIORITY_SEP: &str = "\x06\x16";

/// The index in [`PRIORITY_STEPS`] of the step a priority falls in.
pub(crate) fn priority_step(priority: u8) -> usize {
    match priority {
        0..=2 => 0,
        3..=5 => 1,
        6..=8 => 2,
        _ => 3,
    }
}

/// The list that holds `queue`'s messages of priority step `step`.
pub(crate) fn list_key(queue: &str, step: usize) -> String {
    match step {
        0 => queue.to_string(),
        s => format!("{queue}{PRIORITY_SEP}{}", PRIORITY_STEPS[s]),
    }
}

/// A message to put on a queue.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// The queue's name.
    pub queue: String,
    /// The message's priority, 0 to 9.
    pub priority: u8,
    /// The encoded envelope.
    pub payload: Vec<u8>,
}

/// A message handed to a worker; it stays the worker's until acknowledged, given back,
/// scheduled or dead-lettered.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The broker's tag for this delivery.
    pub tag: String,
    /// The queue it came from.
    pub queue: String,
    /// The priority step of the list it came from.
    pub step: usize,
    /// The envelope.
    pub payload: Vec<u8>,
}

/// A worker's entry in the broker's list of live workers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct WorkerBeat {
    /// The worker's node name (`braid@host`).
    pub hostname: String,
    /// Seconds since the epoch of its last heartbeat.
    pub at: f64,
    /// What it reports (queues, concurrency, counters).
    pub info: Value,
}

/// A transport that holds task queues.
///
/// Every message a worker fetches is recorded as unacknowledged until the worker acks,
/// gives back, schedules or dead-letters it; a worker that dies leaves its messages to be
/// restored after the visibility timeout, so none is lost.
pub(crate) trait Broker: Send + Sync {
    /// Puts messages on their queues.
    fn publish(&self, messages: Vec<Outgoing>) -> BoxFuture<'_, Result<()>>;

    /// Takes up to `max` messages from `queues` (lower priority steps first, then queue
    /// order), recording them as unacknowledged in the same step. Not cancel safe: once
    /// it has started, let it finish and settle what it returns.
    fn fetch<'a>(
        &'a self,
        queues: &'a [String],
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Delivery>>>;

    /// Waits until one of `queues` has a message, or `wait` passes. It takes nothing, so
    /// it may be cancelled at any point.
    fn wait_for_messages<'a>(
        &'a self,
        queues: &'a [String],
        wait: Duration,
    ) -> BoxFuture<'a, Result<()>>;

    /// The worker takes no more messages (a warm shutdown): a broker that pushes them
    /// (AMQP) stops and gives back what it has buffered, so what the worker gives back
    /// from now on stays on the queues for other workers. Acks still work after it.
    fn stop_fetching(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Acknowledges deliveries: they are done and leave the broker.
    fn ack(&self, tags: Vec<String>) -> BoxFuture<'_, Result<()>>;

    /// Puts deliveries back at the front of their queues (a warm shutdown, a reject).
    fn give_back(&self, deliveries: Vec<Delivery>) -> BoxFuture<'_, Result<()>>;

    /// Moves a delivery that cannot be run to the dead-letter list, with the reason.
    fn dead_letter(&self, delivery: Delivery, reason: String) -> BoxFuture<'_, Result<()>>;

    /// Moves a delivery whose ETA is far off into the durable schedule, due at `eta`
    /// (seconds since the epoch); it returns to its queue when due.
    fn schedule(&self, delivery: Delivery, eta: f64) -> BoxFuture<'_, Result<()>>;

    /// Puts a new message straight into the durable schedule, due at `eta`.
    fn schedule_new(&self, message: Outgoing, eta: f64) -> BoxFuture<'_, Result<()>>;

    /// Moves scheduled messages of `queues` that are due back onto their queues; returns
    /// how many moved and when the next one is due.
    fn move_due<'a>(&'a self, queues: &'a [String]) -> BoxFuture<'a, Result<(usize, Option<f64>)>>;

    /// Marks deliveries as still being worked on, so they are not restored.
    fn keep_alive(&self, tags: Vec<String>) -> BoxFuture<'_, Result<()>>;

    /// Restores unacknowledged deliveries older than the visibility timeout to their
    /// queues; returns how many.
    fn restore_visible(&self) -> BoxFuture<'_, Result<usize>>;

    /// Removes every waiting message of `queue`; returns how many.
    fn purge<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64>>;

    /// How many messages wait on `queue`.
    fn len<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64>>;

    /// The dead-letter list, oldest first: JSON records with the reason and the payload.
    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<Value>>>;

    /// Records revoked task ids durably (so workers started later know them).
    fn revoke(&self, ids: Vec<String>) -> BoxFuture<'_, Result<()>>;

    /// Revoked task ids recorded since `since` (seconds since the epoch).
    fn revoked_since(&self, since: f64) -> BoxFuture<'_, Result<Vec<String>>>;

    /// Sends a remote-control command to every worker (kombu's `celery.pidbox`).
    fn broadcast(&self, command: Value) -> BoxFuture<'_, Result<()>>;

    /// Subscribes to remote-control commands.
    fn control(&self) -> BoxFuture<'_, Result<tokio::sync::mpsc::UnboundedReceiver<Value>>>;

    /// Sends a reply to a remote-control command's `reply_to`.
    fn reply(&self, reply_to: Value, ticket: String, body: Value) -> BoxFuture<'_, Result<()>>;

    /// Collects replies for `oid` (the reply queue named in commands sent with it) for at
    /// most `timeout`, stopping early after `limit` replies.
    fn collect_replies<'a>(
        &'a self,
        oid: &'a str,
        timeout: Duration,
        limit: Option<usize>,
    ) -> BoxFuture<'a, Result<Vec<Value>>>;

    /// Declares the reply queue for `oid` before commands are sent.
    fn declare_reply_queue<'a>(&'a self, oid: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Records a worker's heartbeat.
    fn heartbeat(&self, beat: WorkerBeat) -> BoxFuture<'_, Result<()>>;

    /// Removes a worker from the list of live workers (it shut down).
    fn forget_worker<'a>(&'a self, hostname: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Workers whose last heartbeat is at most `within` old.
    fn workers(&self, within: Duration) -> BoxFuture<'_, Result<Vec<WorkerBeat>>>;

    /// Publishes Celery events to the `celeryev` fanout exchange: each is its routing key
    /// (`task.succeeded`, `worker.heartbeat`, ...) and its JSON body in Celery's format.
    /// Events are fire-and-forget: no subscriber slows the publisher.
    fn publish_events(&self, events: Vec<(String, Value)>) -> BoxFuture<'_, Result<()>> {
        let _ = events;
        Box::pin(async {
            Err(crate::Error::Broker(
                "this broker does not carry events".into(),
            ))
        })
    }

    /// Subscribes to the `celeryev` fanout: every event body published from now on, from
    /// braid or Python workers. A subscriber that falls behind loses the oldest events, it
    /// never slows the workers.
    fn subscribe_events(&self) -> BoxFuture<'_, Result<tokio::sync::mpsc::Receiver<Value>>> {
        Box::pin(async {
            Err(crate::Error::Broker(
                "this broker does not carry events".into(),
            ))
        })
    }

    /// Takes the lock `name` for `owner`, or renews it when `owner` holds it already, for
    /// `ttl`; false when another owner holds it. A `ttl` of zero gives `owner`'s lock up at
    /// once, so another owner can take it at its next call. `braid beat` uses it so that
    /// two beats started by mistake never both fire a schedule.
    fn lock<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool>> {
        let _ = (name, owner, ttl);
        Box::pin(async { Err(crate::Error::Broker("this broker has no locks".into())) })
    }
}

/// Opens the broker a URL names, inside the current tokio runtime.
pub(crate) async fn open(url: &Url) -> Result<Arc<dyn Broker>> {
    match url {
        Url::Memory(name) => Ok(Arc::new(memory::MemoryBroker::named(name))),
        Url::Redis(redis) => Ok(Arc::new(redis::RedisBroker::connect(redis).await?)),
        Url::Sqlite(sqlite) => Ok(Arc::new(crate::sqlite::SqliteBroker::open(sqlite)?)),
        Url::Amqp(amqp) => Ok(Arc::new(amqp::AmqpBroker::connect(amqp).await?)),
        Url::Rpc(_) | Url::Postgres(_) => Err(crate::Error::Url {
            url: format!("{url:?}"),
            reason: "rpc:// and db+postgresql:// are result backends, not brokers".into(),
        }),
    }
}

/// Builds the remote-control command body kombu's Mailbox sends.
pub(crate) fn control_command(
    method: &str,
    arguments: Value,
    destination: Option<Vec<String>>,
    reply: Option<(&str, &str)>,
) -> Value {
    let mut body = serde_json::json!({
        "method": method,
        "arguments": arguments,
        "destination": destination,
        "pattern": null,
        "matcher": null,
    });
    if let Some((oid, ticket)) = reply {
        body["ticket"] = Value::String(ticket.to_string());
        body["reply_to"] = serde_json::json!({
            "exchange": "reply.celery.pidbox",
            "routing_key": oid,
        });
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_map_to_kombus_lists() {
        let keys: Vec<String> = (0..=9).map(|p| list_key("q", priority_step(p))).collect();
        assert_eq!(keys[0], "q");
        assert_eq!(keys[2], "q");
        assert_eq!(keys[3], "q\x06\x163");
        assert_eq!(keys[5], "q\x06\x163");
        assert_eq!(keys[6], "q\x06\x166");
        assert_eq!(keys[9], "q\x06\x169");
        assert_eq!(priority_step(200), 3);
    }
}
