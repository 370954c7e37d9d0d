//! [`Connection`]: one end of a pipe between processes, like Python's
//! `multiprocessing.Pipe()`.

use std::marker::PhantomData;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use braid_core::Codec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::ChannelEnd;
use crate::{Error, Result, share, sys};

/// One end of a pipe carrying values of type `T` between processes (or threads), like
/// the `Connection`s of Python's `multiprocessing.Pipe()`.
///
/// Values are encoded with serde (postcard) into a ring buffer in shared memory, one per
/// direction; a Unix socket pair rings the other end when it sleeps and tells when it
/// is gone. When the other end is closed — dropped, or its process exited or was
/// killed — a `recv` returns [`Error::Closed`] once nothing is left to read, instead of
/// waiting forever, and a `send` fails the same way. A waiting `recv` spins for a few
/// microseconds before it sleeps, so a ping-pong between two running processes makes no
/// system call at all.
///
/// Pass an end to a child in its start arguments; the child gets its own handle on the
/// same end. Dropping the parent's copy then leaves the child the only holder, so the
/// parent sees [`Error::Closed`] when the child is gone. `send` and `recv` take `&self`:
/// one thread may send while another receives.
///
/// ```
/// use braid_proc::pipe;
///
/// let (left, right) = pipe::<String>().unwrap();
/// left.send(&"ping".to_string()).unwrap();
/// assert_eq!(right.recv().unwrap(), "ping");
/// right.send(&"pong".to_string()).unwrap();
/// assert_eq!(left.recv().unwrap(), "pong");
/// drop(right);
/// assert_eq!(left.recv(), Err(braid_proc::Error::Closed));
/// ```
pub struct Connection<T> {
    inner: Arc<Inner>,
    _values: PhantomData<fn(T) -> T>,
}

struct Inner {
    end: ChannelEnd,
    readable: bool,
    writable: bool,
}

/// A two-way pipe: both ends send and receive (Python's `Pipe()`).
///
/// # Errors
/// [`Error::Os`] when the system has no sockets or shared memory left.
pub fn pipe<T>() -> Result<(Connection<T>, Connection<T>)> {
    let (a, b) = ChannelEnd::pair()?;
    Ok((
        Connection::new(a, true, true),
        Connection::new(b, true, true),
    ))
}

/// A one-way pipe: `(reader, writer)` (Python's `Pipe(duplex=False)`); sending on the
/// reader or receiving on the writer is an error.
///
/// # Errors
/// [`Error::Os`] when the system has no sockets or shared memory left.
pub fn one_way_pipe<T>() -> Result<(Connection<T>, Connection<T>)> {
    let (a, b) = ChannelEnd::pair()?;
    Ok((
        Connection::new(a, true, false),
        Connection::new(b, false, true),
    ))
}

impl<T> Connection<T> {
    fn new(end: ChannelEnd, readable: bool, writable: bool) -> Self {
        Connection {
            inner: Arc::new(Inner {
                end,
                readable,
                writable,
            }),
            _values: PhantomData,
        }
    }

    fn check_writable(&self) -> Result<()> {
        if self.inner.writable {
            Ok(())
        } else {
            Err(Error::os(
                "send",
                "this end of a one-way pipe only receives",
            ))
        }
    }

    fn check_readable(&self) -> Result<()> {
        if self.inner.readable {
            Ok(())
        } else {
            Err(Error::os("recv", "this end of a one-way pipe only sends"))
        }
    }

    /// Sends raw bytes as one message (Python's `send_bytes`).
    ///
    /// # Errors
    /// [`Error::Closed`] when the other end is gone.
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.check_writable()?;
        self.inner.end.send(bytes)
    }

    /// Receives one message's raw bytes (Python's `recv_bytes`).
    ///
    /// # Errors
    /// [`Error::Closed`] when the other end is gone and nothing is left to read.
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.recv_deadline(None, Duration::MAX)
    }

    fn recv_deadline(&self, deadline: Option<Instant>, timeout: Duration) -> Result<Vec<u8>> {
        self.check_readable()?;
        self.inner
            .end
            .recv(deadline)?
            .ok_or(Error::Timeout(timeout))
    }

    /// Whether a message (or the end of the stream) is there to read, waiting up to
    /// `timeout` (Python's `poll`). `Duration::ZERO` only looks.
    ///
    /// # Errors
    /// A system error.
    pub fn poll(&self, timeout: Duration) -> Result<bool> {
        self.check_readable()?;
        self.inner.end.poll(sys::deadline(timeout))
    }
}

impl<T: Serialize> Connection<T> {
    /// Sends a value (Python's `send`); the caller keeps it.
    ///
    /// # Errors
    /// [`Error::Closed`] when the other end is gone; an encoding error.
    pub fn send(&self, value: &T) -> Result<()> {
        let bytes = share::encode(value)?;
        self.send_bytes(&bytes)
    }
}

impl<T: DeserializeOwned> Connection<T> {
    /// Receives the next value, waiting as long as it takes (Python's `recv`).
    ///
    /// # Errors
    /// [`Error::Closed`] when the other end is gone and nothing is left to read; a
    /// decoding error when the message is not a `T`.
    pub fn recv(&self) -> Result<T> {
        let frame = self.recv_deadline(None, Duration::MAX)?;
        Ok(Codec::Binary.decode(&frame)?)
    }

    /// Like [`recv`](Connection::recv), giving up after `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`], or as `recv`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T> {
        let frame = self.recv_deadline(sys::deadline(timeout), timeout)?;
        Ok(Codec::Binary.decode(&frame)?)
    }
}

impl<T> Clone for Connection<T> {
    /// Another handle on the same end; the end closes when the last handle (in every
    /// process) is dropped.
    fn clone(&self) -> Self {
        Connection {
            inner: self.inner.clone(),
            _values: PhantomData,
        }
    }
}

impl<T> Serialize for Connection<T> {
    /// A connection serialises only into a process's start arguments (see the type's
    /// documentation).
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let (region, sock) = self.inner.end.fds();
        let mut tuple = serializer.serialize_tuple(5)?;
        tuple.serialize_element(&SharedFd(region))?;
        tuple.serialize_element(&SharedFd(sock))?;
        tuple.serialize_element(&(self.inner.end.side() as u8))?;
        tuple.serialize_element(&self.inner.readable)?;
        tuple.serialize_element(&self.inner.writable)?;
        let done = tuple.end()?;
        // Serialising succeeds only into a start: the copy in flight counts as a holder.
        self.inner.end.sent();
        Ok(done)
    }
}

struct SharedFd<'a>(BorrowedFd<'a>);

impl Serialize for SharedFd<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        share::serialize_fd(self.0, "Connection", serializer)
    }
}

struct InheritedFd(OwnedFd);

impl<'de> Deserialize<'de> for InheritedFd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        share::deserialize_fd(deserializer, "Connection").map(InheritedFd)
    }
}

impl<'de, T> Deserialize<'de> for Connection<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let (region, sock, side, readable, writable) =
            <(InheritedFd, InheritedFd, u8, bool, bool)>::deserialize(deserializer)?;
        let end = ChannelEnd::join(region.0, sock.0, usize::from(side), true)
            .map_err(serde::de::Error::custom)?;
        Ok(Connection::new(end, readable, writable))
    }
}

impl<T> std::fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.inner.end.side())
            .field("readable", &self.inner.readable)
            .field("writable", &self.inner.writable)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_way_ends_refuse_the_other_direction() {
        let (reader, writer) = one_way_pipe::<u32>().unwrap();
        writer.send(&7).unwrap();
        assert_eq!(reader.recv().unwrap(), 7);
        assert!(reader.send(&1).is_err());
        assert!(writer.recv().is_err());
    }

    #[test]
    fn poll_and_timeouts() {
        let (a, b) = pipe::<u32>().unwrap();
        assert!(!b.poll(Duration::ZERO).unwrap());
        assert_eq!(
            b.recv_timeout(Duration::from_millis(2)),
            Err(Error::Timeout(Duration::from_millis(2)))
        );
        a.send(&5).unwrap();
        assert!(b.poll(Duration::from_secs(5)).unwrap());
        assert_eq!(b.recv().unwrap(), 5);
        drop(a);
        assert!(
            b.poll(Duration::from_secs(5)).unwrap(),
            "the end is readable"
        );
        assert_eq!(b.recv(), Err(Error::Closed));
    }

    #[test]
    fn a_wrong_type_is_a_decode_error() {
        let (a, b) = pipe::<String>().unwrap();
        a.send_bytes(&[0xff, 0xff]).unwrap();
        assert!(matches!(
            b.recv(),
            Err(Error::Core(braid_core::Error::Decode { .. }))
        ));
    }
}
