//! A cluster worker: this program, started again by `braid dmap --broker`, consuming
//! the Dmap queue on the broker until its standard input closes.

use std::io::Read;

use crate::dmap::{BROKER_ENV, DEFAULT_QUEUE, QUEUE_ENV};
use crate::{Error, Result};

/// Set to the pid of the process that starts it, in a process that `braid::init()` must
/// turn into a cluster worker (as `braid dmap --broker` does): it runs the tasks of this
/// program from the [`QUEUE_ENV`] queue on the [`BROKER_ENV`] broker, [`CONCURRENCY_ENV`]
/// at a time, until its standard input closes, then finishes the tasks it holds and exits.
///
/// The pid keeps the variable from turning the worker's own descendants (a process
/// pool's workers, started by a task) into cluster workers: they inherit it, but their
/// parent is another process.
pub const WORKER_ENV: &str = "BRAID_DMAP_WORKER";
/// How many tasks a cluster worker runs at once (default 1).
pub const CONCURRENCY_ENV: &str = "BRAID_DMAP_CONCURRENCY";

fn serve() -> Result<()> {
    let setup = |e: &dyn std::fmt::Display| Error::Setup(e.to_string());
    let broker = std::env::var(BROKER_ENV)
        .map_err(|e| Error::Setup(format!("{WORKER_ENV} is set but {BROKER_ENV} is not: {e}")))?;
    let queue = std::env::var(QUEUE_ENV).unwrap_or_else(|_| DEFAULT_QUEUE.to_string());
    let concurrency = match std::env::var(CONCURRENCY_ENV) {
        Ok(text) => text
            .trim()
            .parse::<usize>()
            .map_err(|_| Error::Setup(format!("{CONCURRENCY_ENV}={text:?} is not a number")))?,
        Err(_) => 1,
    };
    let app = braid_taskq::App::builder(&broker, Some(&broker))
        .result_expires(crate::dmap::RESULT_EXPIRES)
        .build()
        .map_err(|e| setup(&e))?;
    let worker = braid_taskq::Worker::builder(&app)
        .queues([queue.as_str()])
        .concurrency(concurrency.max(1))
        .prefetch(concurrency.max(1) * 2)
        .start()
        .map_err(|e| setup(&e))?;
    tracing::info!(%broker, %queue, concurrency, "dmap cluster worker started");
    let mut sink = Vec::new();
    // EOF (or an error reading) means whoever started this worker is done with it.
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut sink) {
        tracing::debug!(error = %e, "reading standard input");
    }
    worker.shutdown();
    Ok(())
}

fn hook() {
    let Some(launcher) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    let parent = std::os::unix::process::parent_id();
    if launcher.to_str().and_then(|p| p.trim().parse::<u32>().ok()) != Some(parent) {
        tracing::debug!(
            ?launcher,
            parent,
            "{WORKER_ENV} names another parent: not a cluster worker"
        );
        return;
    }
    let code = match serve() {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "the dmap cluster worker failed");
            2
        }
    };
    std::process::exit(code);
}

inventory::submit! {
    braid_core::StartupHook::new("braid-dmap cluster worker", hook)
}
