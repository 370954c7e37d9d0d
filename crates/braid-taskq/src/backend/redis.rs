//! The Redis result backend, with Celery's layout: `celery-task-meta-<id>` set with an
//! expiry and published on the channel of the same name (which Celery's `get` listens to),
//! and Celery's chord counter (`celery-taskset-meta-<group>.j/.t/.s/.d/.c`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use redis::{PushInfo, PushKind, Script};
use tokio::sync::Notify;

use super::{Backend, ChordPart, Record, is_ready};
use crate::broker::BoxFuture;
use crate::redis_conn::{Retrying, connect, connect_pubsub};
use crate::url::RedisUrl;
use crate::{Error, Result};

/// Stores a record unless a SUCCESS is stored already (for redelivered messages).
const STORE_KEEPING_SUCCESS: &str = r#"
local current = redis.call('GET', KEYS[1])
if current and string.find(current, '"status": *"SUCCESS"') then return 0 end
redis.call('SETEX', KEYS[1], ARGV[2], ARGV[1])
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"#;

/// Celery's chord-part script: the same keys, members and claim, so Python and braid
/// workers can share one chord.
const CHORD_PART: &str = r#"
local jkey, tkey, skey, dkey, ckey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local tid, value, score = ARGV[1], ARGV[2], ARGV[3]
local expires, claim_expires, token = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
if redis.call('GET', ckey) == 'done' then return {-1, 0, 0, 0} end
local member = tid .. ':' .. score
if redis.call('SISMEMBER', dkey, member) == 0 then
  redis.call('ZADD', jkey, score, value)
  redis.call('SADD', dkey, member)
end
local ready = redis.call('ZCOUNT', jkey, '-inf', '+inf')
if expires > 0 then
  for _, key in ipairs({jkey, tkey, skey, dkey}) do redis.call('EXPIRE', key, expires) end
end
local diff = redis.call('GET', tkey)
local size = redis.call('GET', skey)
local claimed = 0
if size and ready == tonumber(size) + tonumber(diff or 0) then
  if redis.call('SET', ckey, token, 'NX', 'EX', claim_expires) then claimed = 1
  elseif redis.call('GET', ckey) == token then claimed = 1 end
end
return {ready, diff or 0, size or 0, claimed}
"#;

/// Celery's chord clean-up: drop the chord's keys and leave a `done` marker.
const CHORD_CLEANUP: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  redis.call('SET', KEYS[1], 'done', 'EX', tonumber(ARGV[2]))
  return 1
end
return 0
"#;

/// How often a waiter reads the stored record even without a notification.
const RECHECK: Duration = Duration::from_secs(2);

struct Waiter {
    notify: Notify,
    latest: Mutex<Option<Vec<u8>>>,
    count: Mutex<usize>,
}

type Waiters = Arc<Mutex<HashMap<Vec<u8>, Arc<Waiter>>>>;

/// The Redis result backend.
pub(crate) struct RedisBackend {
    url: RedisUrl,
    /// The key prefix as Celery's backend uses it: the URL's, ending in a separator.
    prefix: String,
    conn: Retrying,
    pubsub: tokio::sync::OnceCell<ConnectionManager>,
    waiters: Waiters,
    expires: Duration,
    store_keeping_success: Script,
    chord_part: Script,
    chord_cleanup: Script,
    chord_tokens: Mutex<HashMap<String, String>>,
}

fn backend_error(e: redis::RedisError) -> Error {
    Error::Backend(e.to_string())
}

impl RedisBackend {
    /// Connects.
    pub(crate) async fn connect(url: &RedisUrl, expires: Duration) -> Result<Self> {
        let conn = Retrying(connect(url, Error::Backend, false).await?);
        // Celery's backend puts `_` after a prefix that does not end in a separator.
        let mut prefix = url.prefix.clone();
        if prefix.chars().last().is_some_and(|c| !":_-.".contains(c)) {
            prefix.push('_');
        }
        Ok(RedisBackend {
            url: url.clone(),
            prefix,
            conn,
            pubsub: tokio::sync::OnceCell::new(),
            waiters: Arc::new(Mutex::new(HashMap::new())),
            expires,
            store_keeping_success: Script::new(STORE_KEEPING_SUCCESS),
            chord_part: Script::new(CHORD_PART),
            chord_cleanup: Script::new(CHORD_CLEANUP),
            chord_tokens: Mutex::new(HashMap::new()),
        })
    }

    fn task_key(&self, id: &str) -> String {
        format!("{}celery-task-meta-{id}", self.prefix)
    }

    fn group_key(&self, id: &str, suffix: &str) -> String {
        format!("{}celery-taskset-meta-{id}{suffix}", self.prefix)
    }

    fn expires_secs(&self) -> u64 {
        self.expires.as_secs().max(1)
    }

    async fn pubsub(&self) -> Result<ConnectionManager> {
        let waiters = self.waiters.clone();
        self.pubsub
            .get_or_try_init(|| async move {
                let sender = move |push: PushInfo| -> std::result::Result<(), ()> {
                    match push.kind {
                        PushKind::Message => {
                            if let [
                                redis::Value::BulkString(channel),
                                redis::Value::BulkString(payload),
                            ] = push.data.as_slice()
                                && let Some(waiter) = waiters.lock().get(channel).cloned()
                            {
                                *waiter.latest.lock() = Some(payload.clone());
                                waiter.notify.notify_waiters();
                            }
                        }
                        PushKind::Disconnection => {
                            // Messages published while disconnected are lost: every
                            // waiter looks at the stored record again.
                            for waiter in waiters.lock().values() {
                                waiter.notify.notify_waiters();
                            }
                        }
                        _ => {}
                    }
                    Ok(())
                };
                connect_pubsub(&self.url, Error::Backend, sender).await
            })
            .await
            .cloned()
    }

    async fn register(&self, channel: &[u8]) -> Result<Arc<Waiter>> {
        let (waiter, first) = {
            let mut waiters = self.waiters.lock();
            let waiter = waiters
                .entry(channel.to_vec())
                .or_insert_with(|| {
                    Arc::new(Waiter {
                        notify: Notify::new(),
                        latest: Mutex::new(None),
                        count: Mutex::new(0),
                    })
                })
                .clone();
            let mut count = waiter.count.lock();
            *count += 1;
            let first = *count == 1;
            drop(count);
            (waiter, first)
        };
        if first {
            let mut pubsub = self.pubsub().await?;
            if let Err(e) = pubsub.subscribe(channel).await {
                self.unregister(channel, &waiter).await;
                return Err(backend_error(e));
            }
        }
        Ok(waiter)
    }

    async fn unregister(&self, channel: &[u8], waiter: &Arc<Waiter>) {
        let last = {
            let mut waiters = self.waiters.lock();
            let mut count = waiter.count.lock();
            *count = count.saturating_sub(1);
            let last = *count == 0;
            if last {
                waiters.remove(channel);
            }
            last
        };
        if last
            && let Ok(mut pubsub) = self.pubsub().await
            && let Err(e) = pubsub.unsubscribe(channel).await
        {
            tracing::debug!(error = %e, "unsubscribing from a result channel failed");
        }
    }

    async fn wait_registered(
        &self,
        task_id: &str,
        waiter: &Waiter,
        timeout: Option<Duration>,
    ) -> Result<Option<Vec<u8>>> {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let notified = waiter.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(latest) = waiter.latest.lock().take()
                && is_ready(&latest)
            {
                return Ok(Some(latest));
            }
            let mut conn = self.conn.clone();
            let stored: Option<Vec<u8>> = redis::cmd("GET")
                .arg(self.task_key(task_id))
                .query_async(&mut conn)
                .await
                .map_err(backend_error)?;
            if let Some(meta) = stored
                && is_ready(&meta)
            {
                return Ok(Some(meta));
            }
            // Look at the stored record again now and then, in case a notification was
            // lost (a reconnect, a subscription racing with its removal).
            let recheck = tokio::time::Instant::now() + RECHECK;
            let wake = deadline.map_or(recheck, |d| d.min(recheck));
            if tokio::time::timeout_at(wake, notified).await.is_err()
                && deadline.is_some_and(|d| d <= tokio::time::Instant::now())
            {
                return Ok(None);
            }
        }
    }
}

impl Backend for RedisBackend {
    fn store(&self, records: Vec<Record>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let expires = self.expires_secs();
            let mut pipe = redis::pipe();
            let mut guarded = Vec::new();
            for record in &records {
                let key = self.task_key(&record.task_id);
                if record.keep_success {
                    guarded.push((key, record));
                    continue;
                }
                pipe.cmd("SETEX")
                    .arg(&key)
                    .arg(expires)
                    .arg(record.meta.as_slice())
                    .ignore();
                pipe.cmd("PUBLISH")
                    .arg(&key)
                    .arg(record.meta.as_slice())
                    .ignore();
            }
            if !pipe.is_empty() {
                pipe.exec_async(&mut conn).await.map_err(backend_error)?;
            }
            for (key, record) in guarded {
                let _stored: i64 = self
                    .store_keeping_success
                    .key(key)
                    .arg(record.meta.as_slice())
                    .arg(expires)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(backend_error)?;
            }
            Ok(())
        })
    }

    fn get<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            redis::cmd("GET")
                .arg(self.task_key(task_id))
                .query_async(&mut conn)
                .await
                .map_err(backend_error)
        })
    }

    fn wait<'a>(
        &'a self,
        task_id: &'a str,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            // Finished already (reading results of work sent earlier): one round trip.
            let mut conn = self.conn.clone();
            let stored: Option<Vec<u8>> = redis::cmd("GET")
                .arg(self.task_key(task_id))
                .query_async(&mut conn)
                .await
                .map_err(backend_error)?;
            if let Some(meta) = stored
                && is_ready(&meta)
            {
                return Ok(Some(meta));
            }
            let channel = self.task_key(task_id).into_bytes();
            let waiter = self.register(&channel).await?;
            let outcome = self.wait_registered(task_id, &waiter, timeout).await;
            self.unregister(&channel, &waiter).await;
            outcome
        })
    }

    fn forget(&self, task_ids: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if task_ids.is_empty() {
                return Ok(());
            }
            let keys: Vec<String> = task_ids.iter().map(|id| self.task_key(id)).collect();
            let mut conn = self.conn.clone();
            redis::cmd("DEL")
                .arg(keys)
                .exec_async(&mut conn)
                .await
                .map_err(backend_error)
        })
    }

    fn set_chord_size<'a>(&'a self, group_id: &'a str, size: usize) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(self.group_key(group_id, ".c")).ignore();
            pipe.cmd("SET")
                .arg(self.group_key(group_id, ".s"))
                .arg(size)
                .arg("EX")
                .arg(self.expires_secs())
                .ignore();
            let mut conn = self.conn.clone();
            pipe.exec_async(&mut conn).await.map_err(backend_error)
        })
    }

    fn chord_part(&self, part: ChordPart) -> BoxFuture<'_, Result<Option<Vec<Vec<u8>>>>> {
        Box::pin(async move {
            let gid = &part.group_id;
            let token = uuid::Uuid::new_v4().simple().to_string();
            let score = part
                .group_index
                .map_or_else(|| "+inf".to_string(), |i| i.to_string());
            let mut conn = self.conn.clone();
            let (ready, diff, size, claimed): (i64, i64, i64, i64) = self
                .chord_part
                .key(self.group_key(gid, ".j"))
                .key(self.group_key(gid, ".t"))
                .key(self.group_key(gid, ".s"))
                .key(self.group_key(gid, ".d"))
                .key(self.group_key(gid, ".c"))
                .arg(&part.task_id)
                .arg(part.encoded.as_slice())
                .arg(score)
                .arg(self.expires_secs())
                .arg(10)
                .arg(&token)
                .invoke_async(&mut conn)
                .await
                .map_err(backend_error)?;
            if ready < 0 || size == 0 || ready != size + diff || claimed != 1 {
                return Ok(None);
            }
            let parts: Vec<Vec<u8>> = redis::cmd("ZRANGE")
                .arg(self.group_key(gid, ".j"))
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .map_err(backend_error)?;
            // Extend the claim for the time it takes to send the body.
            redis::cmd("EXPIRE")
                .arg(self.group_key(gid, ".c"))
                .arg(60)
                .exec_async(&mut conn)
                .await
                .map_err(backend_error)?;
            self.chord_tokens.lock().insert(gid.clone(), token);
            Ok(Some(parts))
        })
    }

    fn chord_done<'a>(&'a self, group_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some(token) = self.chord_tokens.lock().remove(group_id) else {
                return Ok(());
            };
            let mut conn = self.conn.clone();
            let cleaned: i64 = self
                .chord_cleanup
                .key(self.group_key(group_id, ".c"))
                .key(self.group_key(group_id, ".j"))
                .key(self.group_key(group_id, ".t"))
                .key(self.group_key(group_id, ".s"))
                .key(self.group_key(group_id, ".d"))
                .arg(token)
                .arg(300)
                .invoke_async(&mut conn)
                .await
                .map_err(backend_error)?;
            if cleaned == 0 {
                tracing::warn!(
                    group = group_id,
                    "the chord's claim expired before clean-up"
                );
            }
            Ok(())
        })
    }
}
