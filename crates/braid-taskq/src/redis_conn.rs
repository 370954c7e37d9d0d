//! Connections to Redis that reconnect by themselves, shared by the broker and backend.

use std::time::Duration;

use redis::aio::{AsyncPushSender, ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion};

use crate::url::RedisUrl;
use crate::{Error, Result};

/// How long one command (or pipeline) may take before it counts as lost.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

fn client(url: &RedisUrl, resp3: bool) -> Result<redis::Client> {
    let bad = |e: redis::RedisError| Error::Url {
        url: url.connect.clone(),
        reason: e.to_string(),
    };
    let mut info = url.connect.as_str().into_connection_info().map_err(bad)?;
    if resp3 {
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        info = info.set_redis_settings(settings);
    }
    redis::Client::open(info).map_err(bad)
}

/// Fails fast when the server is not there: the connection manager itself would retry
/// for a while before giving up.
async fn probe(client: &redis::Client, url: &RedisUrl, what: fn(String) -> Error) -> Result<()> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| what(format!("cannot connect to {}: {e}", url.connect)))?;
    redis::cmd("PING")
        .exec_async(&mut conn)
        .await
        .map_err(|e| what(format!("cannot connect to {}: {e}", url.connect)))
}

fn config(response_timeout: Option<Duration>) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(response_timeout)
        .set_number_of_retries(12)
        .set_max_delay(Duration::from_secs(1))
        .set_pipeline_buffer_size(1024)
}

/// A connection for commands; `blocking` ones carry BLMOVE-style waits and so have no
/// response timeout of their own.
pub(crate) async fn connect(
    url: &RedisUrl,
    what: fn(String) -> Error,
    blocking: bool,
) -> Result<ConnectionManager> {
    let client = client(url, false)?;
    probe(&client, url, what).await?;
    let timeout = if blocking {
        None
    } else {
        Some(RESPONSE_TIMEOUT)
    };
    ConnectionManager::new_with_config(client, config(timeout))
        .await
        .map_err(|e| what(format!("cannot connect to {}: {e}", url.connect)))
}

/// A RESP3 connection whose pub/sub messages (and disconnections) go to `sender`; it
/// subscribes again by itself after reconnecting.
pub(crate) async fn connect_pubsub(
    url: &RedisUrl,
    what: fn(String) -> Error,
    sender: impl AsyncPushSender,
) -> Result<ConnectionManager> {
    let client = client(url, true)?;
    probe(&client, url, what).await?;
    let config = config(Some(RESPONSE_TIMEOUT))
        .set_push_sender(sender)
        .set_automatic_resubscription();
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| what(format!("cannot connect to {}: {e}", url.connect)))
}

/// How long a command keeps being retried while its connection is re-established
/// (a dropped connection, a restarting server).
const RECONNECT_PATIENCE: Duration = Duration::from_secs(15);

/// Whether an error means the connection, not the command, failed.
fn transient(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
                | redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain)
        )
}

/// A connection that retries a command (or pipeline) while the connection manager
/// reconnects, so a dropped connection or a restarted server costs time, not an error.
/// A command sent again after an answer was lost may run twice: the task queue is
/// at-least-once.
#[derive(Clone)]
pub(crate) struct Retrying(pub ConnectionManager);

impl redis::aio::ConnectionLike for Retrying {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + RECONNECT_PATIENCE;
            let mut delay = Duration::from_millis(20);
            loop {
                match self.0.req_packed_command(cmd).await {
                    Err(e) if transient(&e) && tokio::time::Instant::now() < deadline => {
                        tracing::debug!(error = %e, "redis connection lost; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_millis(500));
                    }
                    outcome => return outcome,
                }
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + RECONNECT_PATIENCE;
            let mut delay = Duration::from_millis(20);
            loop {
                match self.0.req_packed_commands(pipeline, offset, count).await {
                    Err(e) if transient(&e) && tokio::time::Instant::now() < deadline => {
                        tracing::debug!(error = %e, "redis connection lost; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_millis(500));
                    }
                    outcome => return outcome,
                }
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}
