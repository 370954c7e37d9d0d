//! The messages between a [`ProcessPool`](crate::ProcessPool) and its workers: a plain
//! binary layout, built straight into the outgoing buffer (these are the hot path of
//! every task).
//!
//! Requests: `1 id name_len name codec args` (one call) or `2 id name_len name count
//! items` (a chunk of calls; each item is `u32 len` and the encoded arguments). Replies:
//! `1` (ready), `2 outcome` (the initializer failed), `3 id outcome` (one result),
//! `4 id count outcomes` (a chunk). An outcome is a status byte (0 for a value, 1 for
//! an error, a postcard-encoded `braid_core::Error`), a `u32` length and the bytes.

use braid_core::Codec;

use crate::{Error, Result};

pub(crate) const REQ_CALL: u8 = 1;
pub(crate) const REQ_CHUNK: u8 = 2;
pub(crate) const REP_READY: u8 = 1;
pub(crate) const REP_INIT_FAILED: u8 = 2;
pub(crate) const REP_DONE: u8 = 3;
pub(crate) const REP_CHUNK_DONE: u8 = 4;

/// Starts a frame in `out`; returns where its length goes.
pub(crate) fn begin(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

/// Writes the length of the frame begun at `at`.
pub(crate) fn finish(out: &mut [u8], at: usize) -> Result<()> {
    let len = u32::try_from(out.len() - at - 4)
        .map_err(|_| Error::os("sending a task", "a message larger than 4 GiB"))?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

fn put_name(out: &mut Vec<u8>, name: &str) -> Result<()> {
    let len = u16::try_from(name.len())
        .map_err(|_| Error::os("sending a task", "a task name longer than 64 KiB"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

fn codec_byte(codec: Codec) -> u8 {
    match codec {
        Codec::Json => 0,
        Codec::Binary => 1,
    }
}

/// Appends a framed one-call request.
pub(crate) fn push_call(
    out: &mut Vec<u8>,
    id: u64,
    name: &str,
    codec: Codec,
    args: &[u8],
) -> Result<()> {
    let at = begin(out);
    out.push(REQ_CALL);
    out.extend_from_slice(&id.to_le_bytes());
    put_name(out, name)?;
    out.push(codec_byte(codec));
    out.extend_from_slice(args);
    finish(out, at)
}

/// Appends a framed chunk request; `items` is already `u32 len, bytes` for each item.
pub(crate) fn push_chunk(
    out: &mut Vec<u8>,
    id: u64,
    name: &str,
    count: u32,
    items: &[u8],
) -> Result<()> {
    let at = begin(out);
    out.push(REQ_CHUNK);
    out.extend_from_slice(&id.to_le_bytes());
    put_name(out, name)?;
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(items);
    finish(out, at)
}

/// A reader over one received frame.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

fn corrupt() -> Error {
    Error::os(
        "reading a pool message",
        "the message is cut short or corrupt",
    )
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        let (&first, rest) = self.bytes.split_first().ok_or_else(corrupt)?;
        self.bytes = rest;
        Ok(first)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(corrupt());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        let mut b = [0; 2];
        b.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(b))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    pub(crate) fn name(&mut self) -> Result<&'a str> {
        let len = self.u16()? as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| corrupt())
    }

    pub(crate) fn codec(&mut self) -> Result<Codec> {
        match self.u8()? {
            0 => Ok(Codec::Json),
            1 => Ok(Codec::Binary),
            _ => Err(corrupt()),
        }
    }

    /// A length-prefixed byte string.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// A status byte and what follows it: the value's bytes, or a decoded error.
    pub(crate) fn outcome(&mut self) -> Result<std::result::Result<&'a [u8], braid_core::Error>> {
        let status = self.u8()?;
        let bytes = self.bytes()?;
        Ok(decode_outcome(status, bytes))
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

fn decode_outcome(status: u8, bytes: &[u8]) -> std::result::Result<&[u8], braid_core::Error> {
    if status == 0 {
        return Ok(bytes);
    }
    Err(Codec::Binary
        .decode::<braid_core::Error>(bytes)
        .unwrap_or_else(|e| {
            braid_core::Error::WorkerLost(format!("undecodable error from a worker: {e}"))
        }))
}

/// Appends one outcome (status, length, bytes).
pub(crate) fn push_outcome(
    out: &mut Vec<u8>,
    outcome: &std::result::Result<Vec<u8>, braid_core::Error>,
) {
    let (status, encoded);
    let bytes: &[u8] = match outcome {
        Ok(bytes) => {
            status = 0u8;
            bytes
        }
        Err(e) => {
            status = 1;
            encoded = Codec::Binary.encode(e).unwrap_or_else(|why| {
                let fallback = braid_core::Error::WorkerLost(format!(
                    "{e} (and its error could not be encoded: {why})"
                ));
                Codec::Binary.encode(&fallback).unwrap_or_default()
            });
            &encoded
        }
    };
    out.push(status);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_round_trips() {
        let mut out = Vec::new();
        push_call(&mut out, 7, "t.add", Codec::Binary, &[1, 2]).unwrap();
        let len = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(len, out.len() - 4);
        let mut r = Reader::new(&out[4..]);
        assert_eq!(r.u8().unwrap(), REQ_CALL);
        assert_eq!(r.u64().unwrap(), 7);
        assert_eq!(r.name().unwrap(), "t.add");
        assert_eq!(r.codec().unwrap(), Codec::Binary);
        assert_eq!(r.rest(), &[1, 2]);
        assert!(r.u8().is_err());
    }

    #[test]
    fn outcomes_round_trip() {
        let mut out = Vec::new();
        push_outcome(&mut out, &Ok(vec![9]));
        push_outcome(&mut out, &Err(braid_core::Error::Cancelled));
        let mut r = Reader::new(&out);
        assert_eq!(r.outcome().unwrap(), Ok(&[9u8][..]));
        assert_eq!(r.outcome().unwrap(), Err(braid_core::Error::Cancelled));
    }
}
