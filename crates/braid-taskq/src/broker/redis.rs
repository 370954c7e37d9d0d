//! The Redis broker, with kombu's layout so Celery clients and workers share its queues.
//!
//! - A list per queue and priority step (`celery`, `celery\x06\x163`, ...): publishers
//!   `LPUSH`, consumers pop from the right.
//! - Fetched messages are recorded, in the same script that pops them, in the `unacked`
//!   hash (`tag -> [message, exchange, routing_key]`) and the `unacked_index` sorted set
//!   (`tag -> time`); an ack removes both. Live braid workers refresh the times of what
//!   they hold; anything older than the visibility timeout is restored to its queue, as
//!   kombu's `restore_visible` does. A message is therefore always in a list or in the
//!   unacked hash: a worker killed at any instant loses nothing.
//! - An idle worker waits with `BLMOVE key key LEFT LEFT`, which blocks until the list has
//!   a message and then leaves it where it was, so waiting never takes a message out.
//! - Messages due later wait in a sorted set per list (`braid.eta.<list>`, score = due
//!   time), not in worker memory; malformed ones go to the `braid.dead_letter` list.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use redis::aio::ConnectionManager;
use redis::{PushInfo, PushKind, Script};
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::{
    BoxFuture, Broker, Delivery, Outgoing, PRIORITY_SEP, WorkerBeat, list_key, priority_step,
};
use crate::redis_conn::{Retrying, connect, connect_pubsub};
use crate::url::RedisUrl;
use crate::{Error, Result, clock};

/// The most messages one fetch takes (the script's arguments stay well inside Lua's limits).
const MAX_BATCH: usize = 1000;

/// How long a revoked id is remembered: Celery's `REVOKE_EXPIRES`.
const REVOKES_KEPT: Duration = Duration::from_secs(10_800);

const FETCH: &str = r#"
local unacked, index = KEYS[1], KEYS[2]
local max = tonumber(ARGV[1])
local now = ARGV[2]
local prefix = ARGV[3]
local seq = tonumber(ARGV[4])
local out, hset, zadd = {}, {}, {}
local got = 0
for i = 3, #KEYS do
  if got >= max then break end
  local items = redis.call('RPOP', KEYS[i], max - got)
  if items then
    local rk = ARGV[i + 2]
    for _, m in ipairs(items) do
      local tag = prefix .. seq
      seq = seq + 1
      -- A call sent again after its answer was lost runs with the same numbers: its
      -- tags must not take over those of what the first run fetched (still unacked,
      -- to be restored), or those messages would vanish.
      if redis.call('HEXISTS', unacked, tag) == 1 then
        local k = 1
        while redis.call('HEXISTS', unacked, tag .. 'r' .. k) == 1 do k = k + 1 end
        tag = tag .. 'r' .. k
      end
      got = got + 1
      local first = string.sub(m, 1, 1)
      local raw = m
      if first ~= '{' then raw = cjson.encode(m) end
      hset[#hset + 1] = tag
      hset[#hset + 1] = '[' .. raw .. ', "", ' .. rk .. ']'
      zadd[#zadd + 1] = now
      zadd[#zadd + 1] = tag
      out[#out + 1] = i - 2
      out[#out + 1] = tag
      out[#out + 1] = m
    end
  end
end
if got > 0 then
  redis.call('HSET', unacked, unpack(hset))
  redis.call('ZADD', index, unpack(zadd))
end
return out
"#;

/// Moves held messages somewhere else, each only if it is still unacked (so nothing is
/// moved twice): `ARGV = mode, (tag, key-index, payload)...`, keys after the first two.
/// Modes: `queue` (RPUSH: served next), `dead` (RPUSH to the dead-letter list), `eta`
/// (ZADD with the score in the payload's place, payload after it).
const MOVE_HELD: &str = r#"
local unacked, index = KEYS[1], KEYS[2]
local mode = ARGV[1]
local moved = 0
local i = 2
while i <= #ARGV do
  local tag = ARGV[i]
  local key = KEYS[tonumber(ARGV[i + 1]) + 2]
  if redis.call('HDEL', unacked, tag) == 1 then
    redis.call('ZREM', index, tag)
    moved = moved + 1
    if mode == 'eta' then
      redis.call('ZADD', key, ARGV[i + 2], ARGV[i + 3])
    else
      redis.call('RPUSH', key, ARGV[i + 2])
    end
  end
  if mode == 'eta' then i = i + 4 else i = i + 3 end
end
return moved
"#;

/// Restores one unacked message if it is still what was read (compare and move).
const RESTORE_ONE: &str = r#"
local unacked, index, dest = KEYS[1], KEYS[2], KEYS[3]
local tag, expected, payload = ARGV[1], ARGV[2], ARGV[3]
local current = redis.call('HGET', unacked, tag)
if not current then
  redis.call('ZREM', index, tag)
  return 0
end
if current ~= expected then return 0 end
redis.call('HDEL', unacked, tag)
redis.call('ZREM', index, tag)
redis.call('RPUSH', dest, payload)
return 1
"#;

/// Moves due messages from schedules to lists: `KEYS = (schedule, list)...`,
/// `ARGV = now, limit`. Returns `{moved, next due time or false}`.
const MOVE_DUE: &str = r#"
local now, limit = ARGV[1], tonumber(ARGV[2])
local moved = 0
local nextdue = false
for i = 1, #KEYS, 2 do
  local due = redis.call('ZRANGE', KEYS[i], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)
  for _, m in ipairs(due) do
    if redis.call('ZREM', KEYS[i], m) == 1 then
      redis.call('RPUSH', KEYS[i + 1], m)
      moved = moved + 1
    end
  end
  local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if first[2] then
    local score = tonumber(first[2])
    if not nextdue or score < nextdue then nextdue = score end
  end
end
if nextdue then return {moved, tostring(nextdue)} end
return {moved}
"#;

/// Releases kombu's `unacked_mutex` only if this holder still owns it.
const RELEASE_MUTEX: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Takes or renews a lock: `KEYS = lock`, `ARGV = owner, ttl in ms`; 1 when held. A ttl
/// of 0 gives the owner's lock up.
const LOCK: &str = r#"
local holder = redis.call('GET', KEYS[1])
local ttl = tonumber(ARGV[2])
if ttl <= 0 then
  if holder == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
  if not holder then return 1 end
  return 0
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
return 0
"#;

/// How many events a subscriber may have waiting before newer ones are dropped for it.
const EVENT_BACKLOG: usize = 10_000;

struct Scripts {
    lock: Script,
    fetch: Script,
    move_held: Script,
    restore_one: Script,
    move_due: Script,
    release_mutex: Script,
}

/// The Redis broker.
pub(crate) struct RedisBroker {
    url: RedisUrl,
    conn: Retrying,
    waiters: tokio::sync::Mutex<HashMap<String, ConnectionManager>>,
    tag_prefix: String,
    seq: AtomicU64,
    scripts: Arc<Scripts>,
    clock: AtomicU64,
    control_conns: parking_lot::Mutex<Vec<ConnectionManager>>,
}

fn broker_error(e: redis::RedisError) -> Error {
    Error::Broker(e.to_string())
}

/// The record kept in the dead-letter list for a message that could not run.
pub(crate) fn dead_letter_record(queue: &str, reason: &str, payload: &[u8]) -> Value {
    json!({
        "queue": queue,
        "reason": reason,
        "time": clock::isoformat(clock::now()),
        "payload": String::from_utf8_lossy(payload),
    })
}

impl RedisBroker {
    /// Connects.
    pub(crate) async fn connect(url: &RedisUrl) -> Result<Self> {
        let conn = Retrying(connect(url, Error::Broker, false).await?);
        Ok(RedisBroker {
            url: url.clone(),
            conn,
            waiters: tokio::sync::Mutex::new(HashMap::new()),
            tag_prefix: format!("{}.", uuid::Uuid::new_v4().simple()),
            seq: AtomicU64::new(1),
            scripts: Arc::new(Scripts {
                lock: Script::new(LOCK),
                fetch: Script::new(FETCH),
                move_held: Script::new(MOVE_HELD),
                restore_one: Script::new(RESTORE_ONE),
                move_due: Script::new(MOVE_DUE),
                release_mutex: Script::new(RELEASE_MUTEX),
            }),
            clock: AtomicU64::new(1),
            control_conns: parking_lot::Mutex::new(Vec::new()),
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.url.prefix)
    }

    fn eta_key(&self, queue: &str, step: usize) -> String {
        format!("{}braid.eta.{}", self.url.prefix, list_key(queue, step))
    }

    fn pidbox_channel(&self) -> String {
        format!("{}/{}.celery.pidbox", self.url.prefix, self.url.db)
    }

    /// kombu's fanout topic for the `celeryev` exchange and an event's routing key
    /// (`fanout_prefix` and `fanout_patterns` on, as Celery sets them).
    fn event_topic(&self, routing_key: &str) -> String {
        format!("{}/{}.celeryev/{routing_key}", self.url.prefix, self.url.db)
    }

    fn reply_binding_key(&self) -> String {
        self.key("_kombu.binding.reply.celery.pidbox")
    }

    fn reply_queue(&self, oid: &str) -> String {
        format!("{oid}.reply.celery.pidbox")
    }

    async fn fetch_now(&self, queues: &[String], max: usize) -> Result<Vec<Delivery>> {
        let max = max.clamp(1, MAX_BATCH);
        let seq = self.seq.fetch_add(max as u64, Ordering::Relaxed);
        let mut invocation = self.scripts.fetch.prepare_invoke();
        invocation
            .key(self.key("unacked"))
            .key(self.key("unacked_index"));
        let mut lists = Vec::with_capacity(queues.len() * 4);
        for step in 0..4 {
            for queue in queues {
                invocation.key(self.key(&list_key(queue, step)));
                lists.push((queue, step));
            }
        }
        invocation
            .arg(max)
            .arg(clock::epoch_seconds())
            .arg(&self.tag_prefix)
            .arg(seq);
        for (queue, _) in &lists {
            invocation.arg(serde_json::to_string(queue).unwrap_or_default());
        }
        let mut conn = self.conn.clone();
        let flat: Vec<redis::Value> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(broker_error)?;
        let mut out = Vec::with_capacity(flat.len() / 3);
        let mut items = flat.into_iter();
        while let (Some(index), Some(tag), Some(payload)) =
            (items.next(), items.next(), items.next())
        {
            let index: usize = redis::from_redis_value(index).map_err(Error::broker)?;
            let tag: String = redis::from_redis_value(tag).map_err(Error::broker)?;
            let payload: Vec<u8> = redis::from_redis_value(payload).map_err(Error::broker)?;
            let Some((queue, step)) = index.checked_sub(1).and_then(|i| lists.get(i)) else {
                return Err(Error::Broker(format!("fetch script returned list {index}")));
            };
            out.push(Delivery {
                tag,
                queue: (*queue).clone(),
                step: *step,
                payload,
            });
        }
        Ok(out)
    }

    /// Waits until one of the lists has a message (or `wait` passes), taking nothing.
    async fn block_until_messages(&self, queues: &[String], wait: Duration) -> Result<()> {
        let mut keys = Vec::new();
        for step in 0..4 {
            for queue in queues {
                keys.push(self.key(&list_key(queue, step)));
            }
        }
        let mut conns = Vec::with_capacity(keys.len());
        {
            let mut waiters = self.waiters.lock().await;
            for key in &keys {
                let conn = match waiters.get(key) {
                    Some(conn) => conn.clone(),
                    None => {
                        let conn = connect(&self.url, Error::Broker, true).await?;
                        waiters.insert(key.clone(), conn.clone());
                        conn
                    }
                };
                conns.push(conn);
            }
        }
        let seconds = wait.as_secs_f64().max(0.01);
        let waits = keys.into_iter().zip(conns).map(|(key, mut conn)| {
            Box::pin(async move {
                let moved: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("BLMOVE")
                    .arg(&key)
                    .arg(&key)
                    .arg("LEFT")
                    .arg("LEFT")
                    .arg(seconds)
                    .query_async(&mut conn)
                    .await;
                moved
            })
        });
        let waits: Vec<_> = waits.collect();
        if waits.is_empty() {
            return Ok(());
        }
        futures_util::future::select_ok(waits)
            .await
            .map(|_| ())
            .map_err(broker_error)
    }

    async fn move_held(
        &self,
        mode: &str,
        moves: Vec<(String, String, Vec<Vec<u8>>)>,
    ) -> Result<usize> {
        if moves.is_empty() {
            return Ok(0);
        }
        let mut invocation = self.scripts.move_held.prepare_invoke();
        invocation
            .key(self.key("unacked"))
            .key(self.key("unacked_index"));
        invocation.arg(mode);
        for (i, (tag, key, rest)) in moves.iter().enumerate() {
            invocation.key(key);
            invocation.arg(tag).arg(i + 1);
            for part in rest {
                invocation.arg(part.as_slice());
            }
        }
        let mut conn = self.conn.clone();
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(broker_error)
    }

    fn envelope(&self, body: &Value, exchange: &str, routing_key: &str, headers: Value) -> Vec<u8> {
        let body = serde_json::to_vec(body).unwrap_or_default();
        let envelope = json!({
            "body": BASE64.encode(body),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                "delivery_mode": 2,
                "delivery_info": {"exchange": exchange, "routing_key": routing_key},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": uuid::Uuid::new_v4().to_string(),
            },
        });
        serde_json::to_vec(&envelope).unwrap_or_default()
    }

    fn next_clock(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// The destination list of a restored unacked record `[message, exchange, rk]`, and
    /// the message marked redelivered.
    async fn restore_target(&self, record: &[u8]) -> Option<(String, Vec<u8>)> {
        let (mut message, exchange, routing_key): (Value, String, String) =
            serde_json::from_slice(record).ok()?;
        let queue = if exchange.is_empty() {
            routing_key.clone()
        } else {
            self.lookup_binding(&exchange, &routing_key)
                .await
                .unwrap_or(routing_key.clone())
        };
        let payload = match &mut message {
            Value::String(raw) => raw.clone().into_bytes(),
            Value::Object(_) => {
                if let Some(headers) = message.get_mut("headers").and_then(Value::as_object_mut) {
                    headers.insert("redelivered".into(), Value::Bool(true));
                }
                if let Some(info) = message
                    .pointer_mut("/properties/delivery_info")
                    .and_then(Value::as_object_mut)
                {
                    info.insert("redelivered".into(), Value::Bool(true));
                }
                serde_json::to_vec(&message).ok()?
            }
            _ => return None,
        };
        let priority = message
            .pointer("/properties/priority")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(9) as u8;
        Some((
            self.key(&list_key(&queue, priority_step(priority))),
            payload,
        ))
    }

    async fn lookup_binding(&self, exchange: &str, routing_key: &str) -> Option<String> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.key(&format!("_kombu.binding.{exchange}")))
            .query_async(&mut conn)
            .await
            .ok()?;
        members.iter().find_map(|m| {
            let mut parts = m.split(PRIORITY_SEP);
            let rk = parts.next()?;
            let _pattern = parts.next()?;
            let queue = parts.next()?;
            (rk == routing_key).then(|| queue.to_string())
        })
    }
}

impl Broker for RedisBroker {
    fn publish(&self, messages: Vec<Outgoing>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if messages.is_empty() {
                return Ok(());
            }
            let mut pipe = redis::pipe();
            for m in &messages {
                pipe.cmd("LPUSH")
                    .arg(self.key(&list_key(&m.queue, priority_step(m.priority))))
                    .arg(m.payload.as_slice())
                    .ignore();
            }
            let mut conn = self.conn.clone();
            pipe.exec_async(&mut conn).await.map_err(broker_error)
        })
    }

    fn fetch<'a>(
        &'a self,
        queues: &'a [String],
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Delivery>>> {
        Box::pin(self.fetch_now(queues, max))
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
            self.block_until_messages(queues, wait).await
        })
    }

    fn ack(&self, tags: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if tags.is_empty() {
                return Ok(());
            }
            let mut pipe = redis::pipe();
            for chunk in tags.chunks(1000) {
                pipe.cmd("HDEL")
                    .arg(self.key("unacked"))
                    .arg(chunk)
                    .ignore();
                pipe.cmd("ZREM")
                    .arg(self.key("unacked_index"))
                    .arg(chunk)
                    .ignore();
            }
            let mut conn = self.conn.clone();
            pipe.exec_async(&mut conn).await.map_err(broker_error)
        })
    }

    fn give_back(&self, deliveries: Vec<Delivery>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let moves = deliveries
                .into_iter()
                .map(|d| {
                    let key = self.key(&list_key(&d.queue, d.step));
                    (d.tag, key, vec![d.payload])
                })
                .collect();
            self.move_held("queue", moves).await.map(|_| ())
        })
    }

    fn dead_letter(&self, delivery: Delivery, reason: String) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let record = dead_letter_record(&delivery.queue, &reason, &delivery.payload);
            let record = serde_json::to_vec(&record).map_err(|e| Error::Broker(e.to_string()))?;
            let key = self.key("braid.dead_letter");
            self.move_held("dead", vec![(delivery.tag, key, vec![record])])
                .await
                .map(|_| ())
        })
    }

    fn schedule(&self, delivery: Delivery, eta: f64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let key = self.eta_key(&delivery.queue, delivery.step);
            let moves = vec![(
                delivery.tag,
                key,
                vec![eta.to_string().into_bytes(), delivery.payload],
            )];
            self.move_held("eta", moves).await.map(|_| ())
        })
    }

    fn schedule_new(&self, message: Outgoing, eta: f64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let key = self.eta_key(&message.queue, priority_step(message.priority));
            let mut conn = self.conn.clone();
            redis::cmd("ZADD")
                .arg(key)
                .arg(eta)
                .arg(message.payload)
                .exec_async(&mut conn)
                .await
                .map_err(broker_error)
        })
    }

    fn move_due<'a>(&'a self, queues: &'a [String]) -> BoxFuture<'a, Result<(usize, Option<f64>)>> {
        Box::pin(async move {
            let mut invocation = self.scripts.move_due.prepare_invoke();
            for queue in queues {
                for step in 0..4 {
                    invocation
                        .key(self.eta_key(queue, step))
                        .key(self.key(&list_key(queue, step)));
                }
            }
            invocation.arg(clock::epoch_seconds()).arg(500);
            let mut conn = self.conn.clone();
            let (moved, next): (usize, Option<String>) = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(broker_error)?;
            Ok((moved, next.and_then(|n| n.parse().ok())))
        })
    }

    fn keep_alive(&self, tags: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if tags.is_empty() {
                return Ok(());
            }
            let now = clock::epoch_seconds();
            let mut pipe = redis::pipe();
            for chunk in tags.chunks(500) {
                let cmd = pipe.cmd("ZADD").arg(self.key("unacked_index")).arg("XX");
                for tag in chunk {
                    cmd.arg(now).arg(tag);
                }
                cmd.ignore();
            }
            let mut conn = self.conn.clone();
            pipe.exec_async(&mut conn).await.map_err(broker_error)
        })
    }

    fn restore_visible(&self) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let token = uuid::Uuid::new_v4().to_string();
            let mutex = self.key("unacked_mutex");
            // kombu holds the mutex for at most five minutes; a shorter visibility timeout
            // gets a shorter one, so a holder that died does not stop restores for long.
            let expiry = self
                .url
                .visibility_timeout
                .clamp(Duration::from_secs(1), Duration::from_secs(300));
            let acquired: Option<String> = redis::cmd("SET")
                .arg(&mutex)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(expiry.as_millis() as u64)
                .query_async(&mut conn)
                .await
                .map_err(broker_error)?;
            if acquired.is_none() {
                // A SET sent again after its answer was lost finds our own token.
                let holder: Option<String> = redis::cmd("GET")
                    .arg(&mutex)
                    .query_async(&mut conn)
                    .await
                    .map_err(broker_error)?;
                if holder.as_deref() != Some(token.as_str()) {
                    return Ok(0);
                }
            }
            let restored = self.restore_old(&mut conn).await;
            let released: redis::RedisResult<i64> = self
                .scripts
                .release_mutex
                .key(&mutex)
                .arg(&token)
                .invoke_async(&mut conn)
                .await;
            released.map_err(broker_error)?;
            restored
        })
    }

    fn purge<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for step in 0..4 {
                pipe.cmd("LLEN").arg(self.key(&list_key(queue, step)));
                pipe.cmd("ZCARD").arg(self.eta_key(queue, step));
            }
            for step in 0..4 {
                pipe.cmd("DEL")
                    .arg(self.key(&list_key(queue, step)))
                    .arg(self.eta_key(queue, step))
                    .ignore();
            }
            let mut conn = self.conn.clone();
            let sizes: Vec<u64> = pipe.query_async(&mut conn).await.map_err(broker_error)?;
            Ok(sizes.iter().sum())
        })
    }

    fn len<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            for step in 0..4 {
                pipe.cmd("LLEN").arg(self.key(&list_key(queue, step)));
            }
            let mut conn = self.conn.clone();
            let sizes: Vec<u64> = pipe.query_async(&mut conn).await.map_err(broker_error)?;
            Ok(sizes.iter().sum())
        })
    }

    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<Value>>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let items: Vec<Vec<u8>> = redis::cmd("LRANGE")
                .arg(self.key("braid.dead_letter"))
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .map_err(broker_error)?;
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
            let now = clock::epoch_seconds();
            let key = self.key("braid.revoked");
            let mut pipe = redis::pipe();
            let cmd = pipe.cmd("ZADD").arg(&key);
            for id in &ids {
                cmd.arg(now).arg(id);
            }
            cmd.ignore();
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(now - REVOKES_KEPT.as_secs_f64())
                .ignore();
            let mut conn = self.conn.clone();
            pipe.exec_async(&mut conn).await.map_err(broker_error)
        })
    }

    fn revoked_since(&self, since: f64) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            redis::cmd("ZRANGE")
                .arg(self.key("braid.revoked"))
                .arg(since)
                .arg("+inf")
                .arg("BYSCORE")
                .query_async(&mut conn)
                .await
                .map_err(broker_error)
        })
    }

    fn broadcast(&self, command: Value) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let headers = json!({
                "clock": self.next_clock(),
                "expires": clock::epoch_seconds() + 10.0,
            });
            let payload = self.envelope(&command, "celery.pidbox", "", headers);
            let mut conn = self.conn.clone();
            redis::cmd("PUBLISH")
                .arg(self.pidbox_channel())
                .arg(payload)
                .exec_async(&mut conn)
                .await
                .map_err(broker_error)
        })
    }

    fn control(&self) -> BoxFuture<'_, Result<UnboundedReceiver<Value>>> {
        Box::pin(async move {
            let (tx, rx) = unbounded_channel();
            let sender = move |push: PushInfo| -> std::result::Result<(), ()> {
                if !matches!(push.kind, PushKind::Message | PushKind::PMessage) {
                    return Ok(());
                }
                let Some(redis::Value::BulkString(payload)) = push.data.last() else {
                    return Ok(());
                };
                match decode_envelope_body(payload) {
                    Some(body) => tx.send(body).map_err(|_| ()),
                    None => {
                        tracing::warn!("ignoring a remote-control message that does not decode");
                        Ok(())
                    }
                }
            };
            let mut conn = connect_pubsub(&self.url, Error::Broker, sender).await?;
            conn.psubscribe(self.pidbox_channel())
                .await
                .map_err(broker_error)?;
            // The subscription lives as long as the broker.
            self.control_conns.lock().push(conn);
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
            let payload = self.envelope(&body, &exchange, routing_key, headers);
            let mut conn = self.conn.clone();
            let members: Vec<String> = redis::cmd("SMEMBERS")
                .arg(self.key(&format!("_kombu.binding.{exchange}")))
                .query_async(&mut conn)
                .await
                .map_err(broker_error)?;
            let mut pipe = redis::pipe();
            for member in &members {
                let mut parts = member.split(PRIORITY_SEP);
                if let (Some(rk), Some(_), Some(queue)) = (parts.next(), parts.next(), parts.next())
                    && rk == routing_key
                {
                    pipe.cmd("LPUSH")
                        .arg(self.key(queue))
                        .arg(payload.as_slice())
                        .ignore();
                }
            }
            pipe.exec_async(&mut conn).await.map_err(broker_error)
        })
    }

    fn collect_replies<'a>(
        &'a self,
        oid: &'a str,
        timeout: Duration,
        limit: Option<usize>,
    ) -> BoxFuture<'a, Result<Vec<Value>>> {
        Box::pin(async move {
            let queue = self.key(&self.reply_queue(oid));
            let mut conn = connect(&self.url, Error::Broker, true).await?;
            let deadline = tokio::time::Instant::now() + timeout;
            let mut replies = Vec::new();
            while limit.is_none_or(|limit| replies.len() < limit) {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                let popped: Option<(String, Vec<u8>)> = redis::cmd("BRPOP")
                    .arg(&queue)
                    .arg(left.as_secs_f64().max(0.01))
                    .query_async(&mut conn)
                    .await
                    .map_err(broker_error)?;
                match popped {
                    Some((_, payload)) => {
                        if let Some(body) = decode_envelope_body(&payload) {
                            replies.push(body);
                        }
                    }
                    None => break,
                }
            }
            let member = format!("{oid}{PRIORITY_SEP}{PRIORITY_SEP}{}", self.reply_queue(oid));
            let mut pipe = redis::pipe();
            pipe.cmd("SREM")
                .arg(self.reply_binding_key())
                .arg(member)
                .ignore();
            pipe.cmd("DEL").arg(&queue).ignore();
            pipe.exec_async(&mut conn).await.map_err(broker_error)?;
            Ok(replies)
        })
    }

    fn declare_reply_queue<'a>(&'a self, oid: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let member = format!("{oid}{PRIORITY_SEP}{PRIORITY_SEP}{}", self.reply_queue(oid));
            let mut conn = self.conn.clone();
            redis::cmd("SADD")
                .arg(self.reply_binding_key())
                .arg(member)
                .exec_async(&mut conn)
                .await
                .map_err(broker_error)
        })
    }

    fn heartbeat(&self, beat: WorkerBeat) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let info = serde_json::to_string(&beat).map_err(|e| Error::Broker(e.to_string()))?;
            let mut pipe = redis::pipe();
            pipe.cmd("ZADD")
                .arg(self.key("braid.workers"))
                .arg(beat.at)
                .arg(&beat.hostname)
                .ignore();
            pipe.cmd("HSET")
                .arg(self.key("braid.workers.info"))
                .arg(&beat.hostname)
                .arg(info)
                .ignore();
            // Workers that vanish without a goodbye leave nothing behind for long.
            for key in ["braid.workers", "braid.workers.info"] {
                pipe.cmd("EXPIRE").arg(self.key(key)).arg(86_400).ignore();
            }
            let mut conn = self.conn.clone();
            pipe.exec_async(&mut conn).await.map_err(broker_error)
        })
    }

    fn forget_worker<'a>(&'a self, hostname: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("ZREM")
                .arg(self.key("braid.workers"))
                .arg(hostname)
                .ignore();
            pipe.cmd("HDEL")
                .arg(self.key("braid.workers.info"))
                .arg(hostname)
                .ignore();
            let mut conn = self.conn.clone();
            pipe.exec_async(&mut conn).await.map_err(broker_error)
        })
    }

    fn workers(&self, within: Duration) -> BoxFuture<'_, Result<Vec<WorkerBeat>>> {
        Box::pin(async move {
            let since = clock::epoch_seconds() - within.as_secs_f64();
            let mut conn = self.conn.clone();
            let names: Vec<String> = redis::cmd("ZRANGE")
                .arg(self.key("braid.workers"))
                .arg(since)
                .arg("+inf")
                .arg("BYSCORE")
                .query_async(&mut conn)
                .await
                .map_err(broker_error)?;
            if names.is_empty() {
                return Ok(Vec::new());
            }
            let infos: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(self.key("braid.workers.info"))
                .arg(&names)
                .query_async(&mut conn)
                .await
                .map_err(broker_error)?;
            let mut beats: Vec<WorkerBeat> = infos
                .into_iter()
                .flatten()
                .filter_map(|info| serde_json::from_str(&info).ok())
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
            let mut pipe = redis::pipe();
            for (routing_key, body) in &events {
                let hostname = body.get("hostname").cloned().unwrap_or(Value::Null);
                let payload =
                    self.envelope(body, "celeryev", routing_key, json!({"hostname": hostname}));
                pipe.cmd("PUBLISH")
                    .arg(self.event_topic(routing_key))
                    .arg(payload)
                    .ignore();
            }
            let mut conn = self.conn.clone();
            pipe.exec_async(&mut conn).await.map_err(broker_error)
        })
    }

    fn subscribe_events(&self) -> BoxFuture<'_, Result<tokio::sync::mpsc::Receiver<Value>>> {
        Box::pin(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(EVENT_BACKLOG);
            let closed = tx.clone();
            let sender = move |push: PushInfo| -> std::result::Result<(), ()> {
                if !matches!(push.kind, PushKind::Message | PushKind::PMessage) {
                    return Ok(());
                }
                let Some(redis::Value::BulkString(payload)) = push.data.last() else {
                    return Ok(());
                };
                let Some(body) = decode_envelope_body(payload) else {
                    tracing::debug!("ignoring an event that does not decode");
                    return Ok(());
                };
                match tx.try_send(body) {
                    Ok(()) => Ok(()),
                    // A subscriber that falls behind loses events; nobody waits for it.
                    Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => Ok(()),
                    Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Err(()),
                }
            };
            let mut conn = connect_pubsub(&self.url, Error::Broker, sender).await?;
            conn.psubscribe(self.event_topic("*"))
                .await
                .map_err(broker_error)?;
            // The subscription lives until its receiver is dropped.
            tokio::spawn(async move {
                closed.closed().await;
                drop(conn);
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
            let mut conn = self.conn.clone();
            let held: i64 = self
                .scripts
                .lock
                .key(self.key(&format!("braid.lock.{name}")))
                .arg(owner)
                .arg(ttl.as_millis() as u64)
                .invoke_async(&mut conn)
                .await
                .map_err(broker_error)?;
            Ok(held == 1)
        })
    }
}

impl RedisBroker {
    async fn restore_old(&self, conn: &mut Retrying) -> Result<usize> {
        let ceiling = clock::epoch_seconds() - self.url.visibility_timeout.as_secs_f64();
        let tags: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.key("unacked_index"))
            .arg("-inf")
            .arg(ceiling)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(200)
            .query_async(conn)
            .await
            .map_err(broker_error)?;
        let mut restored = 0;
        for tag in tags {
            let record: Option<Vec<u8>> = redis::cmd("HGET")
                .arg(self.key("unacked"))
                .arg(&tag)
                .query_async(conn)
                .await
                .map_err(broker_error)?;
            let (expected, dest, payload) = match record {
                Some(record) => match self.restore_target(&record).await {
                    Some((dest, payload)) => (record, dest, payload),
                    None => {
                        tracing::error!(
                            tag,
                            "an unacked record does not decode; moving it to the dead-letter list"
                        );
                        let key = self.key("braid.dead_letter");
                        let entry =
                            dead_letter_record("", "unacked record does not decode", &record);
                        let entry = serde_json::to_vec(&entry).unwrap_or_default();
                        (record, key, entry)
                    }
                },
                None => (Vec::new(), self.key("braid.dead_letter"), Vec::new()),
            };
            let moved: i64 = self
                .scripts
                .restore_one
                .key(self.key("unacked"))
                .key(self.key("unacked_index"))
                .key(dest)
                .arg(&tag)
                .arg(expected)
                .arg(payload)
                .invoke_async(conn)
                .await
                .map_err(broker_error)?;
            if moved == 1 {
                tracing::info!(
                    tag,
                    "restored an unacknowledged message past the visibility timeout"
                );
                restored += 1;
            }
        }
        Ok(restored)
    }
}

/// The body of a kombu envelope (base64 JSON), as a JSON value.
pub(crate) fn decode_envelope_body(payload: &[u8]) -> Option<Value> {
    let envelope: Value = serde_json::from_slice(payload).ok()?;
    let body = envelope.get("body")?.as_str()?;
    let bytes = match envelope
        .pointer("/properties/body_encoding")
        .and_then(Value::as_str)
    {
        Some("base64") => BASE64.decode(body).ok()?,
        _ => body.as_bytes().to_vec(),
    };
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the Redis on 127.0.0.1:6379 that scripts/test starts (database 9, keys
    /// of this test's own): the fetch script run twice with the same tag numbers, as a
    /// call sent again after its answer was lost is, keeps both batches unacked under
    /// distinct tags; before, the second took over the first's tags and those messages
    /// vanished.
    #[test]
    fn a_fetch_sent_again_keeps_what_the_first_fetched() {
        let client = redis::Client::open("redis://127.0.0.1:6379/9").unwrap();
        let mut conn = client.get_connection().expect("Redis running?");
        let base = format!("braid-test-fetch-again-{}", uuid::Uuid::new_v4().simple());
        let (unacked, index, list) = (
            format!("{base}-unacked"),
            format!("{base}-unacked_index"),
            format!("{base}-queue"),
        );
        let messages: Vec<String> = (0..4).map(|i| format!("{{\"n\":{i}}}")).collect();
        let _: () = redis::cmd("LPUSH")
            .arg(&list)
            .arg(&messages)
            .query(&mut conn)
            .unwrap();
        let fetch = Script::new(FETCH);
        let mut tags = Vec::new();
        for _ in 0..2 {
            let flat: Vec<redis::Value> = fetch
                .key(&unacked)
                .key(&index)
                .key(&list)
                .arg(2)
                .arg(1.0)
                .arg("p.")
                .arg(1)
                .arg("\"q\"")
                .invoke(&mut conn)
                .unwrap();
            for triple in flat.chunks(3) {
                tags.push(redis::from_redis_value::<String>(triple[1].clone()).unwrap());
            }
        }
        let held: usize = redis::cmd("HLEN").arg(&unacked).query(&mut conn).unwrap();
        let _: () = redis::cmd("DEL")
            .arg(&unacked)
            .arg(&index)
            .arg(&list)
            .query(&mut conn)
            .unwrap();
        assert_eq!(tags.len(), 4, "{tags:?}");
        let distinct: std::collections::HashSet<&String> = tags.iter().collect();
        assert_eq!(distinct.len(), 4, "tags taken twice: {tags:?}");
        assert_eq!(held, 4, "a message fetched first vanished from unacked");
    }
}
