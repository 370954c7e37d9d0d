//! The wire: length-prefixed frames (a little-endian `u32` length, then that many bytes of
//! postcard) and the messages they carry.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Fault;

/// The protocol version both sides announce in their handshake.
pub(crate) const PROTOCOL: u32 = 2;

/// The default limit on one message, either way (Pyro's `MAX_MESSAGE_SIZE` is unlimited by
/// default; an unlimited length prefix lets one peer make the other allocate 4 GiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// The first message: the daemon's challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServerHello {
    pub protocol: u32,
    /// Set when the daemon turns the connection away before the handshake (too busy).
    pub refused: Option<String>,
    pub nonce: Vec<u8>,
    pub key_required: bool,
}

/// The client's answer to the challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClientHello {
    pub protocol: u32,
    pub nonce: Vec<u8>,
    pub mac: Option<Vec<u8>>,
    /// The proxy's session: connections with the same session share the instances of
    /// objects served in [`InstanceMode::Session`](crate::InstanceMode::Session).
    pub session: u128,
}

/// The daemon's verdict on the client's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ServerVerdict {
    Welcome { mac: Option<Vec<u8>> },
    Refused { reason: String },
}

/// What a client sends after the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Request {
    Call {
        id: u64,
        object: String,
        method: String,
        oneway: bool,
        args: Vec<u8>,
    },
    Batch {
        id: u64,
        object: String,
        calls: Vec<(String, Vec<u8>)>,
    },
}

impl Request {
    /// Points the request at `object` (a name resolved anew may name another object).
    pub fn set_object(&mut self, name: &str) {
        match self {
            Request::Call { object, .. } | Request::Batch { object, .. } => {
                name.clone_into(object);
            }
        }
    }
}

/// What a daemon sends after the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Response {
    Reply {
        id: u64,
        outcome: Result<Vec<u8>, Fault>,
    },
    Batch {
        id: u64,
        outcomes: Vec<Result<Vec<u8>, Fault>>,
    },
    /// A fault that ends the connection (a frame too large, a request that does not decode).
    Fatal { fault: Fault },
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the connection closed {got} bytes into a frame of {expected} bytes")]
    Truncated { expected: usize, got: usize },
    #[error("a frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

/// Encodes `message` as one frame: length prefix and body, ready for a single write.
pub(crate) fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, postcard::Error> {
    let frame = postcard::to_extend(message, vec![0u8; 4])?;
    let len = u32::try_from(frame.len() - 4).map_err(|_| postcard::Error::SerializeBufferFull)?;
    let mut frame = frame;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    Ok(frame)
}

/// Decodes a frame body as `T`; the whole body must be consumed.
pub(crate) fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes(body).map_err(|e| e.to_string())?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(format!("{} trailing bytes after the message", rest.len()))
    }
}

/// What a one-byte peek at a socket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peeked {
    /// Nothing to read yet (or the peek was interrupted).
    Nothing,
    /// Bytes are there to read.
    Bytes,
    /// The peer closed its side.
    Closed,
    /// The socket reports an error, which a read would return.
    Failed,
}

/// Looks at the next byte of `socket` without taking it; with `block`, waits (up to the
/// socket's read timeout) until there is something to report.
pub(crate) fn peek(socket: impl std::os::fd::AsFd, block: bool) -> Peeked {
    let mut flags = rustix::net::RecvFlags::PEEK;
    if !block {
        flags |= rustix::net::RecvFlags::DONTWAIT;
    }
    let mut byte = [0u8; 1];
    match rustix::net::recv(socket, &mut byte[..], flags) {
        Ok((_, 0)) => Peeked::Closed,
        Ok(_) => Peeked::Bytes,
        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Peeked::Nothing,
        Err(_) => Peeked::Failed,
    }
}

/// How long a reader polls its socket before it blocks in `read`.
///
/// A blocking read that finds nothing puts the thread to sleep, and waking it when the
/// bytes come costs tens of microseconds on a virtual machine (a loopback TCP round trip of
/// two sleeping threads took ~56 µs on the 2-vCPU machine braid is tested on, against
/// ~12 µs when both sides poll). Calls in a loop get their answer, and daemons their next
/// request, within that window, so polling first removes most of the latency.
const SPIN_BUDGET: Duration = Duration::from_micros(60);

/// After this many polls in a row that found nothing, polling pauses longest.
const MAX_BACKOFF_SHIFT: u32 = 6;

/// Adaptive polling before a blocking read.
///
/// Each wait polls the socket with a non-blocking peek, yielding the CPU between looks so
/// that other runnable threads (an oversubscribed machine, many connections) go first,
/// for at most [`SPIN_BUDGET`]. A wait whose bytes did not come in time is a miss: after
/// `k` misses in a row, only one wait in `2^k` (at most 64) polls at all, so an idle or slow
/// peer costs almost nothing, and the first hit polls every time again.
#[derive(Debug, Default)]
pub(crate) struct ReadSpin {
    misses: u32,
    skip: u32,
}

impl ReadSpin {
    /// Polls `socket` until bytes (or the end of the stream, or an error) are there to
    /// read, or the budget is spent; returns whether the read will not block.
    pub fn wait(&mut self, socket: &TcpStream) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        let start = Instant::now();
        loop {
            // Bytes, the end of the stream or an error: the read will say which.
            if !matches!(peek(socket, false), Peeked::Nothing) {
                self.misses = 0;
                return true;
            }
            if start.elapsed() >= SPIN_BUDGET {
                self.misses = (self.misses + 1).min(MAX_BACKOFF_SHIFT);
                self.skip = (1 << self.misses) - 1;
                return false;
            }
            std::thread::yield_now();
        }
    }
}

/// Reads frames from a byte stream through its own buffer, so that a small frame usually
/// costs one read.
#[derive(Debug)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    spin: ReadSpin,
}

const INITIAL_BUFFER: usize = 16 * 1024;

impl FrameReader {
    pub fn new() -> Self {
        FrameReader {
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            spin: ReadSpin::default(),
        }
    }

    /// Before a read that would block, polls `socket` for a short while (see [`ReadSpin`]),
    /// so that an answer arriving within microseconds is taken without the scheduler's
    /// wake-up latency. Does nothing when a frame's bytes are buffered already. Returns
    /// whether bytes (or the end of the stream) are known to be there, so that the next
    /// read will not block.
    pub fn await_bytes(&mut self, socket: &TcpStream) -> bool {
        self.has_buffered() || self.spin.wait(socket)
    }

    /// Whether bytes of a next frame are buffered already.
    pub fn has_buffered(&self) -> bool {
        self.end > self.start
    }

    /// Reads at least until `need` bytes are buffered; `Ok(false)` on end of stream.
    fn fill_to<R: Read>(&mut self, reader: &mut R, need: usize) -> io::Result<bool> {
        if self.start + need > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if need > self.buf.len() {
                self.buf.resize(need.next_power_of_two(), 0);
            }
        }
        while self.end - self.start < need {
            match reader.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads one frame and returns its body, or `None` when the stream ended cleanly
    /// between frames. A frame longer than `limit` is refused before it is read.
    pub fn read_frame<R: Read>(
        &mut self,
        reader: &mut R,
        limit: usize,
    ) -> Result<Option<&[u8]>, FrameError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > 4 * INITIAL_BUFFER {
                // A large message grew the buffer; do not keep it for the connection's life.
                self.buf.truncate(INITIAL_BUFFER);
                self.buf.shrink_to_fit();
            }
        }
        if !self.fill_to(reader, 4)? {
            let got = self.end - self.start;
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated { expected: 4, got });
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&self.buf[self.start..self.start + 4]);
        let size = u32::from_le_bytes(len) as usize;
        if size > limit {
            return Err(FrameError::TooLarge { size, limit });
        }
        if !self.fill_to(reader, 4 + size)? {
            return Err(FrameError::Truncated {
                expected: size,
                got: self.end - self.start - 4,
            });
        }
        let body = self.start + 4..self.start + 4 + size;
        self.start += 4 + size;
        Ok(Some(&self.buf[body]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Yields its bytes in chunks of the given sizes, as a socket might.
    struct Chunked {
        data: Vec<u8>,
        pos: usize,
        chunks: Vec<usize>,
        next: usize,
    }

    impl Read for Chunked {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let chunk = self
                .chunks
                .get(self.next)
                .copied()
                .unwrap_or(usize::MAX)
                .max(1);
            self.next += 1;
            let n = chunk.min(out.len()).min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            (
                any::<u64>(),
                ".{0,12}",
                ".{0,12}",
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(id, object, method, oneway, args)| Request::Call {
                    id,
                    object,
                    method,
                    oneway,
                    args
                }),
            (
                any::<u64>(),
                ".{0,12}",
                proptest::collection::vec(
                    (".{0,8}", proptest::collection::vec(any::<u8>(), 0..40)),
                    0..5
                )
            )
                .prop_map(|(id, object, calls)| Request::Batch { id, object, calls }),
        ]
    }

    proptest! {
        #[test]
        fn frames_round_trip_through_any_chunking(
            messages in proptest::collection::vec(request(), 0..8),
            chunks in proptest::collection::vec(1usize..64, 0..64),
        ) {
            let mut data = Vec::new();
            for m in &messages {
                data.extend(encode_frame(m).unwrap());
            }
            let mut reader = Chunked { data, pos: 0, chunks, next: 0 };
            let mut frames = FrameReader::new();
            for m in &messages {
                let body = frames.read_frame(&mut reader, DEFAULT_MAX_MESSAGE_SIZE).unwrap().unwrap();
                prop_assert_eq!(&decode_body::<Request>(body).unwrap(), m);
            }
            prop_assert!(frames.read_frame(&mut reader, DEFAULT_MAX_MESSAGE_SIZE).unwrap().is_none());
        }

        #[test]
        fn a_cut_frame_is_truncated_not_a_message(message in request(), cut in 1usize..400) {
            let frame = encode_frame(&message).unwrap();
            let cut = cut.min(frame.len() - 1);
            let mut reader = Chunked { data: frame[..cut].to_vec(), pos: 0, chunks: vec![], next: 0 };
            let mut frames = FrameReader::new();
            let outcome = frames.read_frame(&mut reader, DEFAULT_MAX_MESSAGE_SIZE);
            prop_assert!(matches!(outcome, Err(FrameError::Truncated { .. })), "{:?}", outcome.map(|b| b.map(<[u8]>::to_vec)));
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), limit in 0usize..300) {
            let mut reader = Chunked { data, pos: 0, chunks: vec![], next: 0 };
            let mut frames = FrameReader::new();
            while let Ok(Some(body)) = frames.read_frame(&mut reader, limit) {
                prop_assert!(body.len() <= limit);
                let _decoded: Result<Request, String> = decode_body(body);
            }
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_before_it_is_read() {
        let mut data = (1_000_000u32).to_le_bytes().to_vec();
        data.extend([0u8; 10]);
        let mut reader = Chunked {
            data,
            pos: 0,
            chunks: vec![],
            next: 0,
        };
        let err = FrameReader::new()
            .read_frame(&mut reader, 1000)
            .unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    size: 1_000_000,
                    limit: 1000
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn trailing_bytes_in_a_body_are_an_error() {
        let mut body = postcard::to_stdvec(&Response::Fatal {
            fault: Fault::Busy("x".into()),
        })
        .unwrap();
        body.push(7);
        assert!(
            decode_body::<Response>(&body)
                .unwrap_err()
                .contains("trailing")
        );
    }
}
