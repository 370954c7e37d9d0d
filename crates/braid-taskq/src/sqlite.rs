//! The SQLite broker and result backend: one database file that survives restarts and is
//! shared by the processes of one machine (embedded and durable, no server to run).
//!
//! A message is a row of `braid_messages`. It can be taken when it has no holder and its
//! `visible_at` has come: a fetch gives it a holder's tag and a lease
//! (`visible_at = now + visibility timeout`) in one transaction; an ack deletes it; a
//! lease that runs out (the worker died) makes it visible again; an ETA is just a future
//! `visible_at`. Waiting is a notification inside one process and a short poll across
//! processes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::backend::{Backend, ChordPart, Record, is_ready};
use crate::broker::{BoxFuture, Broker, Delivery, Outgoing, WorkerBeat, priority_step};
use crate::url::SqliteUrl;
use crate::{Error, Result, clock};

/// How often a waiter looks at the database for work other processes added.
const POLL: Duration = Duration::from_millis(50);

/// How long events stay in the database for subscribers to read.
const EVENTS_KEPT: f64 = 60.0;

/// How many events a subscriber may have waiting before newer ones are dropped for it.
const EVENT_BACKLOG: usize = 10_000;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS braid_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    step INTEGER NOT NULL,
    payload BLOB NOT NULL,
    visible_at REAL NOT NULL,
    tag TEXT
);
CREATE INDEX IF NOT EXISTS braid_messages_ready ON braid_messages (queue, tag, visible_at);
CREATE UNIQUE INDEX IF NOT EXISTS braid_messages_tag ON braid_messages (tag);
CREATE TABLE IF NOT EXISTS braid_dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS braid_revoked (task_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS braid_control (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS braid_replies (id INTEGER PRIMARY KEY AUTOINCREMENT, oid TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS braid_workers (hostname TEXT PRIMARY KEY, at REAL NOT NULL, beat TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS braid_events (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS braid_locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS braid_results (task_id TEXT PRIMARY KEY, meta BLOB NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS braid_chords (group_id TEXT PRIMARY KEY, size INTEGER, claimed INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS braid_chord_parts (
    group_id TEXT NOT NULL, task_id TEXT NOT NULL, idx INTEGER NOT NULL, encoded BLOB NOT NULL,
    PRIMARY KEY (group_id, task_id, idx)
);
";

/// One open database file, shared by the broker and backend of every app naming it.
pub(crate) struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
    arrived: Notify,
    stored: Notify,
    replied: Notify,
    visibility_timeout: Duration,
    seq: std::sync::atomic::AtomicU64,
    prefix: String,
}

fn db_error(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Broker(format!("sqlite {}: {e}", path.display()))
}

impl Db {
    /// Opens (or creates) the database a URL names; one handle per file per process.
    pub(crate) fn open(url: &SqliteUrl) -> Result<Arc<Db>> {
        static OPEN: OnceLock<Mutex<HashMap<PathBuf, Arc<Db>>>> = OnceLock::new();
        let key = std::path::absolute(&url.path).unwrap_or_else(|_| url.path.clone());
        let mut open = OPEN.get_or_init(Default::default).lock();
        if let Some(db) = open.get(&key) {
            return Ok(db.clone());
        }
        if let Some(dir) = key.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| Error::Url {
                url: key.display().to_string(),
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let conn = Connection::open(&key).map_err(db_error(&key))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(db_error(&key))?;
        conn.execute_batch(SCHEMA).map_err(db_error(&key))?;
        let db = Arc::new(Db {
            conn: Mutex::new(conn),
            path: key.clone(),
            arrived: Notify::new(),
            stored: Notify::new(),
            replied: Notify::new(),
            visibility_timeout: url.visibility_timeout,
            seq: std::sync::atomic::AtomicU64::new(1),
            prefix: format!("sqlite.{}.", uuid::Uuid::new_v4().simple()),
        });
        open.insert(key, db.clone());
        Ok(db)
    }

    /// Runs `f` on the connection on a blocking thread.
    async fn with<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.conn.lock();
            f(&mut conn).map_err(db_error(&db.path))
        })
        .await
        .map_err(|e| Error::Broker(format!("sqlite: a database call failed: {e}")))?
    }
}

/// The SQLite broker.
pub(crate) struct SqliteBroker {
    db: Arc<Db>,
}

impl SqliteBroker {
    pub(crate) fn open(url: &SqliteUrl) -> Result<Self> {
        Ok(SqliteBroker { db: Db::open(url)? })
    }
}

/// Moves held rows (by tag) somewhere in one transaction; rows no longer held are skipped.
fn release_rows(
    conn: &mut Connection,
    tags: &[String],
    visible_at: f64,
) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let mut moved = 0;
    {
        let mut update = tx.prepare_cached(
            "UPDATE braid_messages SET tag = NULL, visible_at = ?1 WHERE tag = ?2",
        )?;
        for tag in tags {
            moved += update.execute(params![visible_at, tag])?;
        }
    }
    tx.commit()?;
    Ok(moved)
}

impl Broker for SqliteBroker {
    fn publish(&self, messages: Vec<Outgoing>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let now = clock::epoch_seconds();
            self.db
                .with(move |conn| {
                    let tx = conn.transaction()?;
                    {
                        let mut insert = tx.prepare_cached(
                            "INSERT INTO braid_messages (queue, step, payload, visible_at) VALUES (?1, ?2, ?3, ?4)",
                        )?;
                        for m in &messages {
                            insert.execute(params![
                                m.queue,
                                priority_step(m.priority) as i64,
                                m.payload,
                                now
                            ])?;
                        }
                    }
                    tx.commit()
                })
                .await?;
            self.db.arrived.notify_waiters();
            Ok(())
        })
    }

    fn fetch<'a>(
        &'a self,
        queues: &'a [String],
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Delivery>>> {
        Box::pin(async move {
            let queues = queues.to_vec();
            let db = self.db.clone();
            self.db
                .with(move |conn| {
                    let now = clock::epoch_seconds();
                    let lease = now + db.visibility_timeout.as_secs_f64();
                    let tx =
                        conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    let mut out = Vec::new();
                    {
                        let placeholders = vec!["?"; queues.len()].join(",");
                        let mut select = tx.prepare_cached(&format!(
                            "SELECT id, queue, step, payload FROM braid_messages \
                             WHERE tag IS NULL AND visible_at <= ? AND queue IN ({placeholders}) \
                             ORDER BY step, id LIMIT ?"
                        ))?;
                        let mut args: Vec<rusqlite::types::Value> = vec![now.into()];
                        args.extend(queues.iter().map(|q| q.clone().into()));
                        args.push((max.max(1) as i64).into());
                        let rows = select.query_map(rusqlite::params_from_iter(args), |row| {
                            Ok((
                                row.get::<_, i64>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, i64>(2)?,
                                row.get::<_, Vec<u8>>(3)?,
                            ))
                        })?;
                        let rows: Vec<_> = rows.collect::<rusqlite::Result<_>>()?;
                        let mut update = tx.prepare_cached(
                            "UPDATE braid_messages SET tag = ?1, visible_at = ?2 WHERE id = ?3",
                        )?;
                        for (id, queue, step, payload) in rows {
                            let seq = db.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let tag = format!("{}{seq}", db.prefix);
                            update.execute(params![tag, lease, id])?;
                            out.push(Delivery {
                                tag,
                                queue,
                                step: step.clamp(0, 3) as usize,
                                payload,
                            });
                        }
                    }
                    tx.commit()?;
                    Ok(out)
                })
                .await
        })
    }

    fn wait_for_messages<'a>(
        &'a self,
        queues: &'a [String],
        wait: Duration,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let notified = self.db.arrived.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let queues_owned = queues.to_vec();
                let ready: bool = self
                    .db
                    .with(move |conn| {
                        let placeholders = vec!["?"; queues_owned.len()].join(",");
                        let mut args: Vec<rusqlite::types::Value> =
                            vec![clock::epoch_seconds().into()];
                        args.extend(queues_owned.iter().map(|q| q.clone().into()));
                        conn.query_row(
                            &format!(
                                "SELECT EXISTS (SELECT 1 FROM braid_messages WHERE tag IS NULL \
                                 AND visible_at <= ? AND queue IN ({placeholders}))"
                            ),
                            rusqlite::params_from_iter(args),
                            |row| row.get(0),
                        )
                    })
                    .await?;
                let now = tokio::time::Instant::now();
                if ready || now >= deadline {
                    return Ok(());
                }
                if tokio::time::timeout((deadline - now).min(POLL), notified)
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
            }
        })
    }

    fn ack(&self, tags: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.db
                .with(move |conn| {
                    let tx = conn.transaction()?;
                    {
                        let mut delete =
                            tx.prepare_cached("DELETE FROM braid_messages WHERE tag = ?1")?;
                        for tag in &tags {
                            delete.execute([tag])?;
                        }
                    }
                    tx.commit()
                })
                .await
        })
    }

    fn give_back(&self, deliveries: Vec<Delivery>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let tags: Vec<String> = deliveries.into_iter().map(|d| d.tag).collect();
            // Visible at once; its old id keeps it ahead of newer messages.
            self.db
                .with(move |conn| release_rows(conn, &tags, 0.0))
                .await?;
            self.db.arrived.notify_waiters();
            Ok(())
        })
    }

    fn dead_letter(&self, delivery: Delivery, reason: String) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let record = crate::broker::redis::dead_letter_record(
                &delivery.queue,
                &reason,
                &delivery.payload,
            )
            .to_string();
            self.db
                .with(move |conn| {
                    let tx = conn.transaction()?;
                    if tx.execute("DELETE FROM braid_messages WHERE tag = ?1", [&delivery.tag])?
                        == 1
                    {
                        tx.execute(
                            "INSERT INTO braid_dead_letters (record) VALUES (?1)",
                            [&record],
                        )?;
                    }
                    tx.commit()
                })
                .await
        })
    }

    fn schedule(&self, delivery: Delivery, eta: f64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.db
                .with(move |conn| release_rows(conn, &[delivery.tag], eta))
                .await
                .map(|_| ())
        })
    }

    fn schedule_new(&self, message: Outgoing, eta: f64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.db
                .with(move |conn| {
                    conn.execute(
                        "INSERT INTO braid_messages (queue, step, payload, visible_at) VALUES (?1, ?2, ?3, ?4)",
                        params![message.queue, priority_step(message.priority) as i64, message.payload, eta],
                    )
                })
                .await
                .map(|_| ())
        })
    }

    fn move_due<'a>(&'a self, queues: &'a [String]) -> BoxFuture<'a, Result<(usize, Option<f64>)>> {
        Box::pin(async move {
            // Due messages become visible by themselves; report when the next one is due.
            let queues = queues.to_vec();
            let next: Option<f64> = self
                .db
                .with(move |conn| {
                    let placeholders = vec!["?"; queues.len()].join(",");
                    let mut args: Vec<rusqlite::types::Value> = vec![clock::epoch_seconds().into()];
                    args.extend(queues.iter().map(|q| q.clone().into()));
                    conn.query_row(
                        &format!(
                            "SELECT MIN(visible_at) FROM braid_messages WHERE tag IS NULL \
                             AND visible_at > ? AND queue IN ({placeholders})"
                        ),
                        rusqlite::params_from_iter(args),
                        |row| row.get(0),
                    )
                })
                .await?;
            if next.is_some_and(|n| n <= clock::epoch_seconds() + 0.01) {
                self.db.arrived.notify_waiters();
            }
            Ok((0, next))
        })
    }

    fn keep_alive(&self, tags: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let lease = clock::epoch_seconds() + self.db.visibility_timeout.as_secs_f64();
            self.db
                .with(move |conn| {
                    let tx = conn.transaction()?;
                    {
                        let mut update = tx.prepare_cached(
                            "UPDATE braid_messages SET visible_at = ?1 WHERE tag = ?2",
                        )?;
                        for tag in &tags {
                            update.execute(params![lease, tag])?;
                        }
                    }
                    tx.commit()
                })
                .await
        })
    }

    fn restore_visible(&self) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move {
            let restored = self
                .db
                .with(|conn| {
                    conn.execute(
                        "UPDATE braid_messages SET tag = NULL WHERE tag IS NOT NULL AND visible_at <= ?1",
                        [clock::epoch_seconds()],
                    )
                })
                .await?;
            if restored > 0 {
                self.db.arrived.notify_waiters();
            }
            Ok(restored)
        })
    }

    fn purge<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let queue = queue.to_string();
            self.db
                .with(move |conn| {
                    conn.execute(
                        "DELETE FROM braid_messages WHERE queue = ?1 AND tag IS NULL",
                        [queue],
                    )
                })
                .await
                .map(|n| n as u64)
        })
    }

    fn len<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let queue = queue.to_string();
            self.db
                .with(move |conn| {
                    conn.query_row(
                        "SELECT COUNT(*) FROM braid_messages WHERE queue = ?1 AND tag IS NULL AND visible_at <= ?2",
                        params![queue, clock::epoch_seconds()],
                        |row| row.get::<_, i64>(0),
                    )
                })
                .await
                .map(|n| n as u64)
        })
    }

    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<Value>>> {
        Box::pin(async move {
            let records: Vec<String> = self
                .db
                .with(|conn| {
                    let mut select =
                        conn.prepare("SELECT record FROM braid_dead_letters ORDER BY id")?;
                    let rows = select.query_map([], |row| row.get(0))?;
                    rows.collect()
                })
                .await?;
            Ok(records
                .iter()
                .map(|r| serde_json::from_str(r).unwrap_or_else(|_| Value::String(r.clone())))
                .collect())
        })
    }

    fn revoke(&self, ids: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let now = clock::epoch_seconds();
            self.db
                .with(move |conn| {
                    let tx = conn.transaction()?;
                    for id in &ids {
                        tx.execute(
                            "INSERT OR REPLACE INTO braid_revoked (task_id, at) VALUES (?1, ?2)",
                            params![id, now],
                        )?;
                    }
                    tx.execute("DELETE FROM braid_revoked WHERE at < ?1", [now - 10_800.0])?;
                    tx.commit()
                })
                .await
        })
    }

    fn revoked_since(&self, since: f64) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            self.db
                .with(move |conn| {
                    let mut select =
                        conn.prepare("SELECT task_id FROM braid_revoked WHERE at >= ?1")?;
                    let rows = select.query_map([since], |row| row.get(0))?;
                    rows.collect()
                })
                .await
        })
    }

    fn broadcast(&self, command: Value) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let now = clock::epoch_seconds();
            self.db
                .with(move |conn| {
                    conn.execute(
                        "INSERT INTO braid_control (body, at) VALUES (?1, ?2)",
                        params![command.to_string(), now],
                    )?;
                    conn.execute("DELETE FROM braid_control WHERE at < ?1", [now - 60.0])
                })
                .await
                .map(|_| ())
        })
    }

    fn control(&self) -> BoxFuture<'_, Result<UnboundedReceiver<Value>>> {
        Box::pin(async move {
            let (tx, rx) = unbounded_channel();
            let db = self.db.clone();
            let mut last: i64 = db
                .with(|conn| {
                    conn.query_row(
                        "SELECT COALESCE(MAX(id), 0) FROM braid_control",
                        [],
                        |row| row.get(0),
                    )
                })
                .await?;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(POLL).await;
                    let since = last;
                    let commands = db
                        .with(move |conn| {
                            let mut select = conn.prepare(
                                "SELECT id, body FROM braid_control WHERE id > ?1 ORDER BY id",
                            )?;
                            let rows = select.query_map([since], |row| {
                                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                            })?;
                            rows.collect::<rusqlite::Result<Vec<_>>>()
                        })
                        .await;
                    match commands {
                        Ok(commands) => {
                            for (id, body) in commands {
                                last = id;
                                if let Ok(body) = serde_json::from_str(&body)
                                    && tx.send(body).is_err()
                                {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "reading remote-control commands failed")
                        }
                    }
                    if tx.is_closed() {
                        return;
                    }
                }
            });
            Ok(rx)
        })
    }

    fn reply(&self, reply_to: Value, _ticket: String, body: Value) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let Some(oid) = reply_to.get("routing_key").and_then(Value::as_str) else {
                return Ok(());
            };
            let oid = oid.to_string();
            self.db
                .with(move |conn| {
                    conn.execute(
                        "INSERT INTO braid_replies (oid, body) VALUES (?1, ?2)",
                        params![oid, body.to_string()],
                    )
                })
                .await?;
            self.db.replied.notify_waiters();
            Ok(())
        })
    }

    fn collect_replies<'a>(
        &'a self,
        oid: &'a str,
        timeout: Duration,
        limit: Option<usize>,
    ) -> BoxFuture<'a, Result<Vec<Value>>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let notified = self.db.replied.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let key = oid.to_string();
                let n: i64 = self
                    .db
                    .with(move |conn| {
                        conn.query_row(
                            "SELECT COUNT(*) FROM braid_replies WHERE oid = ?1",
                            [key],
                            |row| row.get(0),
                        )
                    })
                    .await?;
                let now = tokio::time::Instant::now();
                if limit.is_some_and(|l| n as usize >= l) || now >= deadline {
                    break;
                }
                if tokio::time::timeout((deadline - now).min(POLL), notified)
                    .await
                    .is_err()
                {
                    continue;
                }
            }
            let key = oid.to_string();
            let bodies: Vec<String> = self
                .db
                .with(move |conn| {
                    let bodies = {
                        let mut select = conn
                            .prepare("SELECT body FROM braid_replies WHERE oid = ?1 ORDER BY id")?;
                        let rows = select.query_map([&key], |row| row.get(0))?;
                        rows.collect::<rusqlite::Result<Vec<String>>>()?
                    };
                    conn.execute("DELETE FROM braid_replies WHERE oid = ?1", [&key])?;
                    Ok(bodies)
                })
                .await?;
            Ok(bodies
                .iter()
                .filter_map(|b| serde_json::from_str(b).ok())
                .collect())
        })
    }

    fn declare_reply_queue<'a>(&'a self, _oid: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { Ok(()) })
    }

    fn heartbeat(&self, beat: WorkerBeat) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let text = serde_json::to_string(&beat).map_err(|e| Error::Broker(e.to_string()))?;
            self.db
                .with(move |conn| {
                    conn.execute(
                        "INSERT OR REPLACE INTO braid_workers (hostname, at, beat) VALUES (?1, ?2, ?3)",
                        params![beat.hostname, beat.at, text],
                    )
                })
                .await
                .map(|_| ())
        })
    }

    fn forget_worker<'a>(&'a self, hostname: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let hostname = hostname.to_string();
            self.db
                .with(move |conn| {
                    conn.execute("DELETE FROM braid_workers WHERE hostname = ?1", [hostname])
                })
                .await
                .map(|_| ())
        })
    }

    fn workers(&self, within: Duration) -> BoxFuture<'_, Result<Vec<WorkerBeat>>> {
        Box::pin(async move {
            let since = clock::epoch_seconds() - within.as_secs_f64();
            let beats: Vec<String> = self
                .db
                .with(move |conn| {
                    let mut select = conn.prepare(
                        "SELECT beat FROM braid_workers WHERE at >= ?1 ORDER BY hostname",
                    )?;
                    let rows = select.query_map([since], |row| row.get(0))?;
                    rows.collect()
                })
                .await?;
            Ok(beats
                .iter()
                .filter_map(|b| serde_json::from_str(b).ok())
                .collect())
        })
    }

    fn publish_events(&self, events: Vec<(String, Value)>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if events.is_empty() {
                return Ok(());
            }
            let now = clock::epoch_seconds();
            self.db
                .with(move |conn| {
                    let tx = conn.transaction()?;
                    {
                        let mut insert = tx.prepare_cached(
                            "INSERT INTO braid_events (body, at) VALUES (?1, ?2)",
                        )?;
                        for (_, body) in &events {
                            insert.execute(params![body.to_string(), now])?;
                        }
                    }
                    tx.execute(
                        "DELETE FROM braid_events WHERE at < ?1",
                        [now - EVENTS_KEPT],
                    )?;
                    tx.commit()
                })
                .await
        })
    }

    fn subscribe_events(&self) -> BoxFuture<'_, Result<tokio::sync::mpsc::Receiver<Value>>> {
        Box::pin(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(EVENT_BACKLOG);
            let db = self.db.clone();
            let mut last: i64 = db
                .with(|conn| {
                    conn.query_row("SELECT COALESCE(MAX(id), 0) FROM braid_events", [], |row| {
                        row.get(0)
                    })
                })
                .await?;
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        () = tx.closed() => return,
                    }
                    let since = last;
                    let events = db
                        .with(move |conn| {
                            let mut select = conn.prepare_cached(
                                "SELECT id, body FROM braid_events WHERE id > ?1 ORDER BY id LIMIT 10000",
                            )?;
                            let rows = select.query_map([since], |row| {
                                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                            })?;
                            rows.collect::<rusqlite::Result<Vec<_>>>()
                        })
                        .await;
                    match events {
                        Ok(events) => {
                            for (id, body) in events {
                                last = id;
                                let Ok(body) = serde_json::from_str(&body) else {
                                    continue;
                                };
                                // A subscriber that falls behind loses events.
                                if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) =
                                    tx.try_send(body)
                                {
                                    return;
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "reading events failed"),
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
            let (name, owner) = (name.to_string(), owner.to_string());
            let now = clock::epoch_seconds();
            let until = now + ttl.as_secs_f64();
            self.db
                .with(move |conn| {
                    let changed = conn.execute(
                        "INSERT INTO braid_locks (name, owner, until) VALUES (?1, ?2, ?3)
                         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
                         WHERE braid_locks.owner = excluded.owner OR braid_locks.until <= ?4",
                        params![name, owner, until, now],
                    )?;
                    Ok(changed == 1)
                })
                .await
        })
    }
}

/// The SQLite result backend.
pub(crate) struct SqliteBackend {
    db: Arc<Db>,
    expires: Duration,
}

impl SqliteBackend {
    pub(crate) fn open(url: &SqliteUrl, expires: Duration) -> Result<Self> {
        Ok(SqliteBackend {
            db: Db::open(url)?,
            expires,
        })
    }

    async fn read(&self, task_id: &str) -> Result<Option<Vec<u8>>> {
        let id = task_id.to_string();
        self.db
            .with(move |conn| {
                conn.query_row(
                    "SELECT meta FROM braid_results WHERE task_id = ?1 AND expires > ?2",
                    params![id, clock::epoch_seconds()],
                    |row| row.get(0),
                )
                .optional()
            })
            .await
    }
}

impl Backend for SqliteBackend {
    fn store(&self, records: Vec<Record>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let expires = clock::epoch_seconds() + self.expires.as_secs_f64();
            self.db
                .with(move |conn| {
                    let tx = conn.transaction()?;
                    {
                        let mut upsert = tx.prepare_cached(
                            "INSERT INTO braid_results (task_id, meta, expires) VALUES (?1, ?2, ?3) \
                             ON CONFLICT (task_id) DO UPDATE SET meta = excluded.meta, expires = excluded.expires \
                             WHERE NOT (?4 AND braid_results.meta LIKE '%\"status\":\"SUCCESS\"%')",
                        )?;
                        for r in &records {
                            upsert.execute(params![r.task_id, r.meta, expires, r.keep_success])?;
                        }
                    }
                    tx.execute(
                        "DELETE FROM braid_results WHERE expires < ?1",
                        [clock::epoch_seconds()],
                    )?;
                    tx.commit()
                })
                .await?;
            self.db.stored.notify_waiters();
            Ok(())
        })
    }

    fn get<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(self.read(task_id))
    }

    fn wait<'a>(
        &'a self,
        task_id: &'a str,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
            loop {
                let notified = self.db.stored.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(meta) = self.read(task_id).await?
                    && is_ready(&meta)
                {
                    return Ok(Some(meta));
                }
                let now = tokio::time::Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    return Ok(None);
                }
                let nap = deadline.map_or(POLL, |d| (d - now).min(POLL));
                if tokio::time::timeout(nap, notified).await.is_err() {
                    continue;
                }
            }
        })
    }

    fn forget(&self, task_ids: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.db
                .with(move |conn| {
                    for id in &task_ids {
                        conn.execute("DELETE FROM braid_results WHERE task_id = ?1", [id])?;
                    }
                    Ok(())
                })
                .await
        })
    }

    fn set_chord_size<'a>(&'a self, group_id: &'a str, size: usize) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let gid = group_id.to_string();
            self.db
                .with(move |conn| {
                    let tx = conn.transaction()?;
                    tx.execute("DELETE FROM braid_chord_parts WHERE group_id = ?1", [&gid])?;
                    tx.execute(
                        "INSERT OR REPLACE INTO braid_chords (group_id, size, claimed, done) VALUES (?1, ?2, 0, 0)",
                        params![gid, size as i64],
                    )?;
                    tx.commit()
                })
                .await
        })
    }

    fn chord_part(&self, part: ChordPart) -> BoxFuture<'_, Result<Option<Vec<Vec<u8>>>>> {
        Box::pin(async move {
            self.db
                .with(move |conn| {
                    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    let chord: Option<(Option<i64>, i64, i64)> = tx
                        .query_row(
                            "SELECT size, claimed, done FROM braid_chords WHERE group_id = ?1",
                            [&part.group_id],
                            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                        )
                        .optional()?;
                    if chord.is_some_and(|(_, _, done)| done == 1) {
                        return Ok(None);
                    }
                    tx.execute(
                        "INSERT OR IGNORE INTO braid_chord_parts (group_id, task_id, idx, encoded) VALUES (?1, ?2, ?3, ?4)",
                        params![
                            part.group_id,
                            part.task_id,
                            part.group_index.map_or(i64::MAX, |i| i as i64),
                            part.encoded
                        ],
                    )?;
                    let ready: i64 = tx.query_row(
                        "SELECT COUNT(*) FROM braid_chord_parts WHERE group_id = ?1",
                        [&part.group_id],
                        |row| row.get(0),
                    )?;
                    let complete = matches!(chord, Some((Some(size), 0, _)) if ready == size);
                    let parts = if complete {
                        tx.execute(
                            "UPDATE braid_chords SET claimed = 1 WHERE group_id = ?1",
                            [&part.group_id],
                        )?;
                        let mut select = tx.prepare(
                            "SELECT encoded FROM braid_chord_parts WHERE group_id = ?1 ORDER BY idx, task_id",
                        )?;
                        let rows = select.query_map([&part.group_id], |row| row.get(0))?;
                        Some(rows.collect::<rusqlite::Result<Vec<Vec<u8>>>>()?)
                    } else {
                        None
                    };
                    tx.commit()?;
                    Ok(parts)
                })
                .await
        })
    }

    fn chord_done<'a>(&'a self, group_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let gid = group_id.to_string();
            self.db
                .with(move |conn| {
                    let tx = conn.transaction()?;
                    tx.execute("DELETE FROM braid_chord_parts WHERE group_id = ?1", [&gid])?;
                    tx.execute(
                        "UPDATE braid_chords SET done = 1 WHERE group_id = ?1",
                        [&gid],
                    )?;
                    tx.commit()
                })
                .await
        })
    }
}
