//! Network channels: a channel hosted by one program ([`ChannelHost`]), found by name
//! through a [`NameServer`], and read or written from other programs through ordinary
//! [`Reader`]s and [`Writer`]s ([`connect_reader`], [`connect_writer`]).
//!
//! Every operation of a network end is a request to the host, which performs it on the
//! real channel on the end's behalf: a write still waits for a reader (a rendezvous
//! across machines), and poison and retirement reach the host and, through it, every
//! other end. A connection that breaks without its end having retired ends the channel
//! with [`Error::ConnectionLost`] on both sides.
//!
//! All network I/O runs on one background thread (a tokio runtime of its own), so
//! network ends work from every scheduler, from blocking code and from any executor.
//!
//! The wire format: each message is a big-endian `u32` length and that many bytes of
//! postcard ([`braid_core::Codec::Binary`]); values travel in the same encoding.

pub(crate) mod host;
pub(crate) mod names;
pub(crate) mod remote;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::core::Side;
use crate::{Error, Reader, Writer, block};

pub use host::ChannelHost;
pub use names::NameServer;

/// The largest message accepted: a value bigger than this is refused as a protocol
/// error rather than allocated.
const MAX_FRAME: usize = 256 << 20;

/// The background runtime that does every network channel's I/O.
fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, Error>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("braid-csp-net")
                .enable_io()
                .enable_time()
                .build()
                .map_err(Error::other)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs `future` on the network runtime and waits for it from any executor.
async fn on_network<R: Send + 'static>(
    future: impl Future<Output = Result<R, Error>> + Send + 'static,
) -> Result<R, Error> {
    let task = runtime()?.spawn(future);
    task.await
        .map_err(|e| Error::Protocol(format!("a network task failed: {e}")))?
}

/// [`on_network`], blocking the calling thread.
fn blocking_on_network<R: Send + 'static>(
    future: impl Future<Output = Result<R, Error>> + Send + 'static,
) -> Result<R, Error> {
    block::blocking(on_network(future))?
}

/// Why a remote operation failed, as sent over the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum WireError {
    Poisoned,
    Retired,
    Lost { peer: String, reason: String },
    UnknownName(String),
    Other(String),
}

impl From<&Error> for WireError {
    fn from(error: &Error) -> Self {
        match error {
            Error::Poisoned => WireError::Poisoned,
            Error::Retired => WireError::Retired,
            Error::ConnectionLost { peer, reason } => WireError::Lost {
                peer: peer.clone(),
                reason: reason.clone(),
            },
            Error::UnknownName(name) => WireError::UnknownName(name.clone()),
            other => WireError::Other(other.to_string()),
        }
    }
}

impl From<WireError> for Error {
    fn from(error: WireError) -> Self {
        match error {
            WireError::Poisoned => Error::Poisoned,
            WireError::Retired => Error::Retired,
            WireError::Lost { peer, reason } => Error::ConnectionLost { peer, reason },
            WireError::UnknownName(name) => Error::UnknownName(name),
            WireError::Other(message) => Error::Protocol(message),
        }
    }
}

/// A message from a network end to the channel's host.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToHost {
    /// The first message: which channel, which side.
    Open {
        channel: String,
        side: Side,
    },
    Read {
        id: u64,
    },
    Write {
        id: u64,
        value: Vec<u8>,
    },
    Poison,
    Retire,
}

/// A message from the host to a network end.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromHost {
    Opened,
    Refused(WireError),
    Value { id: u64, value: Vec<u8> },
    Written { id: u64 },
    Failed { id: u64, error: WireError },
}

/// Writes one message.
pub(crate) async fn send<M: Serialize>(
    socket: &mut (impl AsyncWrite + Unpin),
    message: &M,
) -> std::io::Result<()> {
    let bytes = braid_core::Codec::Binary
        .encode(message)
        .map_err(std::io::Error::other)?;
    let length = u32::try_from(bytes.len())
        .ok()
        .filter(|n| (*n as usize) <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::other("message too large"))?;
    socket.write_all(&length.to_be_bytes()).await?;
    socket.write_all(&bytes).await?;
    socket.flush().await
}

/// Reads one message; `None` when the peer closed the connection between messages.
pub(crate) async fn receive<M: DeserializeOwned>(
    socket: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<M>> {
    let mut length = [0u8; 4];
    match socket.read_exact(&mut length).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "a message of {length} bytes is larger than the limit of {MAX_FRAME}"
        )));
    }
    let mut bytes = vec![0u8; length];
    socket.read_exact(&mut bytes).await?;
    braid_core::Codec::Binary
        .decode(&bytes)
        .map(Some)
        .map_err(std::io::Error::other)
}

/// Connects a reading end to the channel registered as `name` at the name server
/// `nameserver` (PyCSP's remote `Channel(name, connect=...)` and `.reader()`).
///
/// # Errors
/// [`Error::UnknownName`] when no channel has that name; [`Error::Connect`] when the
/// name server or the host cannot be reached.
pub async fn connect_reader<T>(nameserver: SocketAddr, name: &str) -> Result<Reader<T>, Error>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let link = on_network(remote::open(nameserver, name.to_string(), Side::Reader)).await?;
    Ok(Reader::remote(remote::Remote::new(link)))
}

/// Connects a writing end to the channel registered as `name` at the name server
/// `nameserver`.
///
/// # Errors
/// As [`connect_reader`].
pub async fn connect_writer<T>(nameserver: SocketAddr, name: &str) -> Result<Writer<T>, Error>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let link = on_network(remote::open(nameserver, name.to_string(), Side::Writer)).await?;
    Ok(Writer::remote(remote::Remote::new(link)))
}

/// [`connect_reader`], blocking the calling thread.
///
/// # Errors
/// As [`connect_reader`], and [`Error::BlockingInScheduler`] on a scheduler's thread.
pub fn blocking_connect_reader<T>(nameserver: SocketAddr, name: &str) -> Result<Reader<T>, Error>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let link = blocking_on_network(remote::open(nameserver, name.to_string(), Side::Reader))?;
    Ok(Reader::remote(remote::Remote::new(link)))
}

/// [`connect_writer`], blocking the calling thread.
///
/// # Errors
/// As [`connect_reader`], and [`Error::BlockingInScheduler`] on a scheduler's thread.
pub fn blocking_connect_writer<T>(nameserver: SocketAddr, name: &str) -> Result<Writer<T>, Error>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let link = blocking_on_network(remote::open(nameserver, name.to_string(), Side::Writer))?;
    Ok(Writer::remote(remote::Remote::new(link)))
}
