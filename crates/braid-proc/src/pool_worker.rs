//! The worker side of a [`ProcessPool`](crate::ProcessPool): a child that runs its
//! initializer, then the calls and chunks it is sent, until its socket closes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use braid_core::{Codec, TaskEntry};
use serde::{Deserialize, Serialize};

use crate::child::exit;
use crate::pool_wire::{self as pw, Reader};
use crate::wire::Wire;
use crate::{Error, Result};

/// A task that ran longer than this has its result sent at once, not batched with the
/// results of the requests queued behind it.
const BATCH_TASK_TIME: Duration = Duration::from_micros(20);
/// Results are sent once this many bytes are waiting.
const BATCH_BYTES: usize = 256 * 1024;

/// What a pool worker is started with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerConfig {
    /// The initializer task and its encoded arguments.
    pub initializer: Option<(String, Vec<u8>)>,
}

/// Runs a worker until the pool closes its socket; never returns.
pub(crate) fn run(mut wire: Wire, config: WorkerConfig) -> ! {
    let mut out = Vec::with_capacity(64 * 1024);
    if let Some((name, args)) = &config.initializer {
        let outcome = guarded(name, || braid_core::call(name, Codec::Binary, args));
        if let Err(e) = outcome {
            let at = pw::begin(&mut out);
            out.push(pw::REP_INIT_FAILED);
            pw::push_outcome(&mut out, &Err(e));
            if pw::finish(&mut out, at).is_ok() && wire.send_framed(&out).is_err() {
                tracing::debug!("the pool went away before the initializer's failure was sent");
            }
            exit(1);
        }
    }
    let at = pw::begin(&mut out);
    out.push(pw::REP_READY);
    if pw::finish(&mut out, at).is_err() || wire.send_framed(&out).is_err() {
        exit(0);
    }
    out.clear();
    let mut cache: Option<(String, &'static TaskEntry)> = None;
    loop {
        let frame = match wire.recv_blocking() {
            Ok(frame) => frame,
            // The pool closed the socket: done.
            Err(Error::Closed) => exit(0),
            Err(e) => {
                tracing::error!(error = %e, "a pool worker cannot read its requests");
                exit(1);
            }
        };
        let started = Instant::now();
        if let Err(e) = serve(frame, &mut out, &mut cache) {
            tracing::error!(error = %e, "a pool worker got a corrupt request");
            exit(1);
        }
        let quick = started.elapsed() < BATCH_TASK_TIME;
        // With more requests already read and quick tasks, answer them in one batch.
        if quick && out.len() < BATCH_BYTES && wire.has_frame() {
            continue;
        }
        match wire.send_framed(&out) {
            Ok(()) => out.clear(),
            Err(_) => exit(0),
        }
    }
}

/// Runs `call`, turning a panic outside a task body (a decoder, say) into an error.
fn guarded(
    name: &str,
    call: impl FnOnce() -> std::result::Result<Vec<u8>, braid_core::Error>,
) -> std::result::Result<Vec<u8>, braid_core::Error> {
    catch_unwind(AssertUnwindSafe(call))
        .unwrap_or_else(|payload| Err(braid_core::TaskError::from_panic(name, &*payload).into()))
}

fn lookup(
    cache: &mut Option<(String, &'static TaskEntry)>,
    name: &str,
) -> std::result::Result<&'static TaskEntry, braid_core::Error> {
    if let Some((cached, entry)) = cache
        && cached == name
    {
        return Ok(entry);
    }
    let entry = braid_core::lookup(name)?;
    *cache = Some((name.to_string(), entry));
    Ok(entry)
}

/// Runs one request and appends its reply to `out`.
fn serve(
    frame: &[u8],
    out: &mut Vec<u8>,
    cache: &mut Option<(String, &'static TaskEntry)>,
) -> Result<()> {
    let mut r = Reader::new(frame);
    let kind = r.u8()?;
    let id = r.u64()?;
    let name = r.name()?;
    match kind {
        pw::REQ_CALL => {
            let codec = r.codec()?;
            let args = r.rest();
            let outcome =
                lookup(cache, name).and_then(|entry| guarded(name, || entry.call(codec, args)));
            let at = pw::begin(out);
            out.push(pw::REP_DONE);
            out.extend_from_slice(&id.to_le_bytes());
            pw::push_outcome(out, &outcome);
            pw::finish(out, at)
        }
        pw::REQ_CHUNK => {
            let count = r.u32()?;
            let at = pw::begin(out);
            out.push(pw::REP_CHUNK_DONE);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            let entry = lookup(cache, name);
            for _ in 0..count {
                let args = r.bytes()?;
                let outcome = match entry {
                    Ok(entry) => guarded(name, || entry.call(Codec::Binary, args)),
                    Err(ref e) => Err(e.clone()),
                };
                pw::push_outcome(out, &outcome);
            }
            pw::finish(out, at)
        }
        _ => Err(Error::os(
            "reading a pool request",
            format!("unknown request kind {kind}"),
        )),
    }
}
