//! The SQL result backend on PostgreSQL (`db+postgresql://user:pass@host:port/db`, Celery's
//! URL form), through `tokio-postgres`.
//!
//! Tables (created when missing, under an advisory lock so two processes starting at once
//! do not race): `braid_taskmeta` (one row per task: status, the JSON record, when it was
//! done, when it expires), `braid_chordmeta` (a chord's size and its claim) and
//! `braid_chordpart` (each finished header task). Records are the JSON Celery stores; the
//! tables are braid's own: Python's database backend pickles its results into other
//! tables, so it does not read these.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::{Backend, ChordPart, Record, is_ready};
use crate::broker::BoxFuture;
use crate::url::PostgresUrl;
use crate::{Error, Result};

/// How long a claim to send a chord's body lasts before another duplicate may take it.
const CHORD_CLAIM: Duration = Duration::from_secs(60);

/// Every this many stores, expired rows are deleted.
const CLEAN_EVERY: u64 = 1000;

const SCHEMA: &str = r#"
BEGIN;
SELECT pg_advisory_xact_lock(727001);
CREATE TABLE IF NOT EXISTS braid_taskmeta (
    task_id text PRIMARY KEY,
    status text NOT NULL,
    meta bytea NOT NULL,
    date_done timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);
CREATE INDEX IF NOT EXISTS braid_taskmeta_expires ON braid_taskmeta (expires_at);
CREATE TABLE IF NOT EXISTS braid_chordmeta (
    group_id text PRIMARY KEY,
    size bigint NOT NULL,
    claimed_at timestamptz,
    done boolean NOT NULL DEFAULT false,
    expires_at timestamptz
);
CREATE TABLE IF NOT EXISTS braid_chordpart (
    group_id text NOT NULL,
    task_id text NOT NULL,
    idx bigint,
    encoded bytea NOT NULL,
    PRIMARY KEY (group_id, task_id)
);
COMMIT;
"#;

fn db_error(e: tokio_postgres::Error) -> Error {
    Error::Backend(format!("PostgreSQL: {e}"))
}

/// The PostgreSQL result backend.
pub(crate) struct PostgresBackend {
    url: PostgresUrl,
    expires: Duration,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
    stores: AtomicU64,
}

impl PostgresBackend {
    /// Connects and creates the tables when missing.
    pub(crate) async fn connect(url: &PostgresUrl, expires: Duration) -> Result<Self> {
        let backend = PostgresBackend {
            url: url.clone(),
            expires,
            client: tokio::sync::Mutex::new(None),
            stores: AtomicU64::new(0),
        };
        let client = backend.client().await?;
        client.batch_execute(SCHEMA).await.map_err(db_error)?;
        Ok(backend)
    }

    /// The live client, connecting (again) when the last one closed.
    async fn client(&self) -> Result<Arc<Client>> {
        let mut guard = self.client.lock().await;
        if let Some(client) = guard.as_ref()
            && !client.is_closed()
        {
            return Ok(client.clone());
        }
        let (client, connection) = tokio_postgres::connect(&self.url.connect, NoTls)
            .await
            .map_err(|e| Error::Backend(format!("cannot connect to {}: {e}", self.url.display)))?;
        let shown = self.url.display.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(url = %shown, error = %e, "the PostgreSQL connection closed");
            }
        });
        let client = Arc::new(client);
        *guard = Some(client.clone());
        Ok(client)
    }

    fn expires_secs(&self) -> f64 {
        self.expires.as_secs_f64()
    }
}

fn status_of(meta: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Status {
        status: String,
    }
    serde_json::from_slice::<Status>(meta)
        .map(|s| s.status)
        .unwrap_or_else(|_| "PENDING".into())
}

impl Backend for PostgresBackend {
    fn store(&self, records: Vec<Record>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            let client = self.client().await?;
            let ids: Vec<&str> = records.iter().map(|r| r.task_id.as_str()).collect();
            let statuses: Vec<String> = records.iter().map(|r| status_of(&r.meta)).collect();
            let metas: Vec<&[u8]> = records.iter().map(|r| r.meta.as_slice()).collect();
            let keeps: Vec<bool> = records.iter().map(|r| r.keep_success).collect();
            // One statement for the batch; a later record of one id wins (DISTINCT ON keeps
            // the last of each id), and a stored SUCCESS stays when the record says so.
            client
                .execute(
                    "INSERT INTO braid_taskmeta (task_id, status, meta, date_done, expires_at)
                     SELECT DISTINCT ON (id) id, st, m, now(), now() + make_interval(secs => $5)
                     FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bool[])
                          WITH ORDINALITY AS t(id, st, m, keep, n)
                     ORDER BY id, n DESC
                     ON CONFLICT (task_id) DO UPDATE
                     SET status = excluded.status, meta = excluded.meta,
                         date_done = excluded.date_done, expires_at = excluded.expires_at
                     WHERE NOT (braid_taskmeta.status = 'SUCCESS' AND EXISTS (
                         SELECT 1 FROM unnest($1::text[], $4::bool[]) AS k(id, keep)
                         WHERE k.id = braid_taskmeta.task_id AND k.keep))",
                    &[&ids, &statuses, &metas, &keeps, &self.expires_secs()],
                )
                .await
                .map_err(db_error)?;
            if self
                .stores
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(CLEAN_EVERY)
            {
                client
                    .batch_execute(
                        "DELETE FROM braid_taskmeta WHERE expires_at < now();
                         DELETE FROM braid_chordpart p USING braid_chordmeta c
                           WHERE p.group_id = c.group_id AND c.expires_at < now();
                         DELETE FROM braid_chordmeta WHERE expires_at < now();",
                    )
                    .await
                    .map_err(db_error)?;
            }
            Ok(())
        })
    }

    fn get<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT meta FROM braid_taskmeta
                     WHERE task_id = $1 AND (expires_at IS NULL OR expires_at > now())",
                    &[&task_id],
                )
                .await
                .map_err(db_error)?;
            Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
        })
    }

    fn wait<'a>(
        &'a self,
        task_id: &'a str,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
            let mut pause = Duration::from_millis(2);
            loop {
                if let Some(meta) = self.get(task_id).await?
                    && is_ready(&meta)
                {
                    return Ok(Some(meta));
                }
                let now = tokio::time::Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    return Ok(None);
                }
                let sleep = match deadline {
                    Some(d) => pause.min(d - now),
                    None => pause,
                };
                tokio::time::sleep(sleep).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
        })
    }

    fn forget(&self, task_ids: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .execute(
                    "DELETE FROM braid_taskmeta WHERE task_id = ANY($1)",
                    &[&task_ids],
                )
                .await
                .map_err(db_error)?;
            Ok(())
        })
    }

    fn set_chord_size<'a>(&'a self, group_id: &'a str, size: usize) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO braid_chordmeta (group_id, size, expires_at)
                     VALUES ($1, $2, now() + make_interval(secs => $3))
                     ON CONFLICT (group_id) DO UPDATE
                     SET size = excluded.size, claimed_at = NULL, done = false,
                         expires_at = excluded.expires_at",
                    &[&group_id, &(size as i64), &self.expires_secs()],
                )
                .await
                .map_err(db_error)?;
            Ok(())
        })
    }

    fn chord_part(&self, part: ChordPart) -> BoxFuture<'_, Result<Option<Vec<Vec<u8>>>>> {
        Box::pin(async move {
            // A transaction needs a connection to itself (the shared client pipelines
            // other callers' statements).
            let (mut client, connection) = tokio_postgres::connect(&self.url.connect, NoTls)
                .await
                .map_err(db_error)?;
            let driver = tokio::spawn(connection);
            let outcome = async {
                let tx = client.transaction().await.map_err(db_error)?;
                tx.execute(
                    "INSERT INTO braid_chordpart (group_id, task_id, idx, encoded)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[
                        &part.group_id,
                        &part.task_id,
                        &part.group_index.map(|i| i as i64),
                        &part.encoded,
                    ],
                )
                .await
                .map_err(db_error)?;
                let Some(meta) = tx
                    .query_opt(
                        "SELECT size, done, claimed_at IS NOT NULL
                                AND claimed_at > now() - make_interval(secs => $2)
                         FROM braid_chordmeta WHERE group_id = $1 FOR UPDATE",
                        &[&part.group_id, &CHORD_CLAIM.as_secs_f64()],
                    )
                    .await
                    .map_err(db_error)?
                else {
                    tracing::warn!(group = part.group_id, "a chord part for an unknown chord");
                    tx.commit().await.map_err(db_error)?;
                    return Ok(None);
                };
                let (size, done, claimed): (i64, bool, bool) =
                    (meta.get(0), meta.get(1), meta.get(2));
                let parts = tx
                    .query(
                        "SELECT encoded FROM braid_chordpart WHERE group_id = $1
                         ORDER BY idx NULLS LAST, task_id",
                        &[&part.group_id],
                    )
                    .await
                    .map_err(db_error)?;
                if done || claimed || (parts.len() as i64) < size {
                    tx.commit().await.map_err(db_error)?;
                    return Ok(None);
                }
                tx.execute(
                    "UPDATE braid_chordmeta SET claimed_at = now() WHERE group_id = $1",
                    &[&part.group_id],
                )
                .await
                .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                Ok(Some(parts.iter().map(|r| r.get::<_, Vec<u8>>(0)).collect()))
            }
            .await;
            drop(client);
            if let Err(e) = driver.await {
                tracing::debug!(error = %e, "a PostgreSQL connection task failed");
            }
            outcome
        })
    }

    fn chord_done<'a>(&'a self, group_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let client = self.client().await?;
            // One statement, so it is atomic on the shared client.
            client
                .execute(
                    "WITH parts AS (DELETE FROM braid_chordpart WHERE group_id = $1)
                     UPDATE braid_chordmeta SET done = true WHERE group_id = $1",
                    &[&group_id],
                )
                .await
                .map_err(db_error)?;
            Ok(())
        })
    }
}
