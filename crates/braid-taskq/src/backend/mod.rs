//! Result backends: where workers store what tasks returned. One trait, one file per store.

pub(crate) mod memory;
pub(crate) mod redis;
pub(crate) mod rpc;
pub(crate) mod sql;

use std::sync::Arc;
use std::time::Duration;

use crate::Result;
use crate::broker::BoxFuture;
use crate::state::State;
use crate::url::Url;

/// Celery's default `result_expires`: one day.
pub(crate) const DEFAULT_RESULT_EXPIRES: Duration = Duration::from_secs(86_400);

/// One result record to store.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The task id.
    pub task_id: String,
    /// The JSON result record (`status`, `result`, `traceback`, ...).
    pub meta: Vec<u8>,
    /// Leave a stored SUCCESS alone (set for redelivered messages, which may have run
    /// before), as Celery's backend does.
    pub keep_success: bool,
}

/// A header task's part of a chord, for the chord counter.
#[derive(Debug, Clone)]
pub(crate) struct ChordPart {
    /// The chord's group id.
    pub group_id: String,
    /// The header task's id.
    pub task_id: String,
    /// Its place in the header.
    pub group_index: Option<u64>,
    /// Celery's `[1, task_id, state, result]`, JSON encoded.
    pub encoded: Vec<u8>,
}

/// A store of task results.
pub(crate) trait Backend: Send + Sync {
    /// Stores result records (and tells waiters).
    fn store(&self, records: Vec<Record>) -> BoxFuture<'_, Result<()>>;

    /// The stored record of a task, if any.
    fn get<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>>;

    /// Waits until the task's record is ready (success, failure, revoked) and returns it;
    /// `None` after `timeout` (`None` waits for ever).
    fn wait<'a>(
        &'a self,
        task_id: &'a str,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>>;

    /// Removes stored records.
    fn forget(&self, task_ids: Vec<String>) -> BoxFuture<'_, Result<()>>;

    /// Records how many header tasks a chord has (before they are sent).
    fn set_chord_size<'a>(&'a self, group_id: &'a str, size: usize) -> BoxFuture<'a, Result<()>>;

    /// Counts a finished header task. When it is the last one and this caller wins the
    /// claim to send the chord's body, returns every part's encoded record in header
    /// order; the caller then sends the body and calls [`Backend::chord_done`].
    fn chord_part(&self, part: ChordPart) -> BoxFuture<'_, Result<Option<Vec<Vec<u8>>>>>;

    /// Cleans a finished chord up, leaving a marker so late duplicates do nothing.
    fn chord_done<'a>(&'a self, group_id: &'a str) -> BoxFuture<'a, Result<()>>;
}

/// Whether an encoded record's status is ready.
pub(crate) fn is_ready(meta: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Status {
        status: State,
    }
    serde_json::from_slice::<Status>(meta).is_ok_and(|s| s.status.is_ready())
}

/// Opens the backend a URL names, inside the current tokio runtime.
pub(crate) async fn open(url: &Url, expires: Duration) -> Result<Arc<dyn Backend>> {
    match url {
        Url::Memory(name) => Ok(Arc::new(memory::MemoryBackend::named(name, expires))),
        Url::Redis(redis) => Ok(Arc::new(
            redis::RedisBackend::connect(redis, expires).await?,
        )),
        Url::Sqlite(sqlite) => Ok(Arc::new(crate::sqlite::SqliteBackend::open(
            sqlite, expires,
        )?)),
        Url::Rpc(rpc) => Ok(Arc::new(rpc::RpcBackend::connect(rpc, expires).await?)),
        Url::Postgres(pg) => Ok(Arc::new(sql::PostgresBackend::connect(pg, expires).await?)),
        Url::Amqp(_) => Err(crate::Error::Url {
            url: format!("{url:?}"),
            reason: "amqp:// is a broker; for results over RabbitMQ use rpc://".into(),
        }),
    }
}
