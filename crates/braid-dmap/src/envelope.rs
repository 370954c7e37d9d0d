//! The built-in tasks a Dmap sends: each carries the sender's context and the name of a
//! user task, runs it through the registry on the worker, and answers with encoded bytes.
//!
//! Arguments and results of user tasks stay encoded (postcard) end to end, so these
//! tasks work for any types: a postcard tuple is its elements' encodings one after the
//! other, so `reduce(a, b)`'s arguments are `a`'s bytes followed by `b`'s.

use std::panic::{AssertUnwindSafe, catch_unwind};

use braid_core::{Codec, Error, TaskBody, TaskEntry, TaskError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::{self, Ctx};

type CoreResult<T> = std::result::Result<T, Error>;

/// Runs one call: `(ctx, task, args) -> result`.
pub(crate) const CALL: &str = "braid.dmap.call";
/// Runs a chunk of calls of one task: `(ctx, task, [args]) -> [Result<result>]`.
pub(crate) const CHUNK: &str = "braid.dmap.chunk";
/// Maps a chunk and folds it left: `(ctx, map, reduce, [args]) -> Option<value>`.
pub(crate) const REDUCE_CHUNK: &str = "braid.dmap.reduce_chunk";
/// Folds partial values left: `(ctx, reduce, [value]) -> value`.
pub(crate) const REDUCE_MANY: &str = "braid.dmap.reduce_many";
/// Maps a chunk and scans it: `(ctx, map, reduce, [args]) -> [value]`.
pub(crate) const SCAN_CHUNK: &str = "braid.dmap.scan_chunk";
/// Puts a prefix before each value of a scanned chunk: `(ctx, reduce, prefix, [value]) -> [value]`.
pub(crate) const SCAN_FIX: &str = "braid.dmap.scan_fix";

/// The outcome of each call of a chunk, encoded.
pub(crate) type ChunkResult = Vec<CoreResult<Vec<u8>>>;

fn decode<A: DeserializeOwned>(
    task: &str,
    expected: &str,
    codec: Codec,
    bytes: &[u8],
) -> CoreResult<A> {
    codec.decode(bytes).map_err(|e| Error::DecodeArgs {
        task: task.to_string(),
        expected: expected.to_string(),
        message: match e {
            Error::Decode { message, .. } => message,
            other => other.to_string(),
        },
    })
}

/// Runs a user task's body, turning a panic outside it (in a decoder) into its error.
fn run(entry: &TaskEntry, args: &[u8]) -> CoreResult<Vec<u8>> {
    catch_unwind(AssertUnwindSafe(|| entry.call(Codec::Binary, args)))
        .unwrap_or_else(|payload| Err(TaskError::from_panic(entry.name(), &*payload).into()))
}

fn pair(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut args = Vec::with_capacity(a.len() + b.len());
    args.extend_from_slice(a);
    args.extend_from_slice(b);
    args
}

/// Applies `reduce` to `a` and `b`.
pub(crate) fn reduce_pair(reduce: &TaskEntry, a: &[u8], b: &[u8]) -> CoreResult<Vec<u8>> {
    run(reduce, &pair(a, b))
}

/// Answers with `payload` (bytes already encoded) wrapped for the caller's `Vec<u8>`.
fn answer(codec: Codec, payload: &[u8]) -> CoreResult<Vec<u8>> {
    codec.encode(payload)
}

fn answer_value<P: Serialize>(codec: Codec, payload: &P) -> CoreResult<Vec<u8>> {
    answer(codec, &Codec::Binary.encode(payload)?)
}

fn call(codec: Codec, bytes: &[u8]) -> CoreResult<Vec<u8>> {
    let (ctx, name, args): (Ctx, String, Vec<u8>) =
        decode(CALL, "(Ctx, String, Vec<u8>)", codec, bytes)?;
    let entry = braid_core::lookup(&name)?;
    let out = context::enter(ctx, || run(entry, &args))?;
    answer(codec, &out)
}

fn chunk(codec: Codec, bytes: &[u8]) -> CoreResult<Vec<u8>> {
    let (ctx, name, items): (Ctx, String, Vec<Vec<u8>>) =
        decode(CHUNK, "(Ctx, String, Vec<Vec<u8>>)", codec, bytes)?;
    let entry = braid_core::lookup(&name)?;
    let results: ChunkResult =
        context::enter(ctx, || items.iter().map(|args| run(entry, args)).collect());
    answer_value(codec, &results)
}

fn reduce_chunk(codec: Codec, bytes: &[u8]) -> CoreResult<Vec<u8>> {
    let (ctx, map, reduce, items): (Ctx, String, String, Vec<Vec<u8>>) = decode(
        REDUCE_CHUNK,
        "(Ctx, String, String, Vec<Vec<u8>>)",
        codec,
        bytes,
    )?;
    let map = braid_core::lookup(&map)?;
    let reduce = braid_core::lookup(&reduce)?;
    let folded = context::enter(ctx, || {
        let mut acc: Option<Vec<u8>> = None;
        for args in &items {
            let value = run(map, args)?;
            acc = Some(match acc {
                None => value,
                Some(acc) => reduce_pair(reduce, &acc, &value)?,
            });
        }
        Ok::<_, Error>(acc)
    })?;
    answer_value(codec, &folded)
}

fn reduce_many(codec: Codec, bytes: &[u8]) -> CoreResult<Vec<u8>> {
    let (ctx, reduce, parts): (Ctx, String, Vec<Vec<u8>>) =
        decode(REDUCE_MANY, "(Ctx, String, Vec<Vec<u8>>)", codec, bytes)?;
    let reduce = braid_core::lookup(&reduce)?;
    let mut parts = parts.into_iter();
    let first = parts.next().ok_or_else(|| Error::DecodeArgs {
        task: REDUCE_MANY.to_string(),
        expected: "at least one value".to_string(),
        message: "no values".to_string(),
    })?;
    let folded = context::enter(ctx, || {
        parts.try_fold(first, |acc, value| reduce_pair(reduce, &acc, &value))
    })?;
    answer(codec, &folded)
}

fn scan_chunk(codec: Codec, bytes: &[u8]) -> CoreResult<Vec<u8>> {
    let (ctx, map, reduce, items): (Ctx, String, String, Vec<Vec<u8>>) = decode(
        SCAN_CHUNK,
        "(Ctx, String, String, Vec<Vec<u8>>)",
        codec,
        bytes,
    )?;
    let map = braid_core::lookup(&map)?;
    let reduce = braid_core::lookup(&reduce)?;
    let scanned = context::enter(ctx, || {
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(items.len());
        for args in &items {
            let value = run(map, args)?;
            let next = match out.last() {
                None => value,
                Some(prev) => reduce_pair(reduce, prev, &value)?,
            };
            out.push(next);
        }
        Ok::<_, Error>(out)
    })?;
    answer_value(codec, &scanned)
}

fn scan_fix(codec: Codec, bytes: &[u8]) -> CoreResult<Vec<u8>> {
    let (ctx, reduce, prefix, values): (Ctx, String, Vec<u8>, Vec<Vec<u8>>) = decode(
        SCAN_FIX,
        "(Ctx, String, Vec<u8>, Vec<Vec<u8>>)",
        codec,
        bytes,
    )?;
    let reduce = braid_core::lookup(&reduce)?;
    let fixed = context::enter(ctx, || {
        values
            .iter()
            .map(|value| reduce_pair(reduce, &prefix, value))
            .collect::<CoreResult<Vec<Vec<u8>>>>()
    })?;
    answer_value(codec, &fixed)
}

inventory::submit! {
    TaskEntry::new(CALL, "fn(ctx: Ctx, task: String, args: Vec<u8>) -> Vec<u8>", TaskBody::Sync(call))
}
inventory::submit! {
    TaskEntry::new(CHUNK, "fn(ctx: Ctx, task: String, items: Vec<Vec<u8>>) -> Vec<Result<Vec<u8>, Error>>", TaskBody::Sync(chunk))
}
inventory::submit! {
    TaskEntry::new(REDUCE_CHUNK, "fn(ctx: Ctx, map: String, reduce: String, items: Vec<Vec<u8>>) -> Option<Vec<u8>>", TaskBody::Sync(reduce_chunk))
}
inventory::submit! {
    TaskEntry::new(REDUCE_MANY, "fn(ctx: Ctx, reduce: String, values: Vec<Vec<u8>>) -> Vec<u8>", TaskBody::Sync(reduce_many))
}
inventory::submit! {
    TaskEntry::new(SCAN_CHUNK, "fn(ctx: Ctx, map: String, reduce: String, items: Vec<Vec<u8>>) -> Vec<Vec<u8>>", TaskBody::Sync(scan_chunk))
}
inventory::submit! {
    TaskEntry::new(SCAN_FIX, "fn(ctx: Ctx, reduce: String, prefix: Vec<u8>, values: Vec<Vec<u8>>) -> Vec<Vec<u8>>", TaskBody::Sync(scan_fix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_arguments_are_a_decode_error_naming_the_task() {
        for name in [CALL, CHUNK, REDUCE_CHUNK, REDUCE_MANY, SCAN_CHUNK, SCAN_FIX] {
            let err = braid_core::call(name, Codec::Binary, &[0xff, 0xff, 0xff]).unwrap_err();
            match err {
                Error::DecodeArgs { task, .. } => assert_eq!(task, name),
                other => panic!("{name}: expected a decode error, got {other}"),
            }
        }
    }
}
