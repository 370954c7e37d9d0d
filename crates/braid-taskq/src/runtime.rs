//! The tokio runtime that carries the client side's connections, and a `block_on` that
//! works from any thread, inside a runtime or not.

use std::future::Future;
use std::sync::OnceLock;

use crate::{Error, Result};

/// The process-wide client runtime: one thread that drives broker and backend
/// connections for every [`App`](crate::App) of the process.
pub(crate) fn client() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("braid-taskq-client")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Broker(format!("cannot start the client runtime: {e}")))
}

/// Runs `future` to completion on the client runtime and returns its output.
///
/// From a plain thread this drives the future right here; from inside another tokio
/// runtime (where blocking in place would panic) the future runs on the client runtime
/// while this thread waits for it.
pub(crate) fn block_on<F>(future: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let runtime = client()?;
    if tokio::runtime::Handle::try_current().is_ok() {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            // The receiver waits below; it is gone only if this thread died.
            if tx.send(future.await).is_err() {
                tracing::debug!("a blocking caller went away before its result");
            }
        });
        rx.recv()
            .map_err(|_| Error::Broker("the client runtime dropped a call".into()))
    } else {
        Ok(runtime.block_on(future))
    }
}
