//! Length-prefixed frames over a stream socket (Unix or TCP), with the receive path that
//! spins briefly before it sleeps, and descriptor passing for a child's start.
//!
//! A frame is a little-endian `u32` length and that many bytes. Reading buffers what
//! the socket has, so a burst of small frames costs one system call.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::{Error, Result, sys};

/// The largest frame accepted: a length beyond it means the stream is garbage.
const MAX_FRAME: usize = 1 << 31;
/// The most descriptors one start message carries (the kernel's `SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 253;

fn send_error(e: Errno) -> Error {
    match e {
        Errno::PIPE | Errno::CONNRESET | Errno::NOTCONN => Error::Closed,
        other => Error::os("sending on a socket", other),
    }
}

/// Sends all of `parts` (already framed, or a header and a body), looping over partial
/// writes; the first write carries `fds`.
fn send_all(fd: BorrowedFd<'_>, parts: &[&[u8]], fds: &[BorrowedFd<'_>]) -> Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut sent = 0;
    let mut first = true;
    let mut space = vec![
        MaybeUninit::<u8>::uninit();
        if fds.is_empty() {
            0
        } else {
            rustix::cmsg_space!(ScmRights(fds.len()))
        }
    ];
    while sent < total {
        // The slices still to send.
        let mut skip = sent;
        let mut slices = Vec::with_capacity(parts.len());
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            slices.push(IoSlice::new(&part[skip..]));
            skip = 0;
        }
        let mut control = SendAncillaryBuffer::new(&mut space);
        if first && !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(Error::os("passing descriptors", "too many for one message"));
        }
        match rustix::net::sendmsg(fd, &slices, &mut control, SendFlags::NOSIGNAL) {
            Ok(n) => {
                sent += n;
                first = false;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(send_error(e)),
        }
    }
    Ok(())
}

/// Sends one frame holding `payload`.
pub(crate) fn send(fd: BorrowedFd<'_>, payload: &[u8]) -> Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&n| (n as usize) < MAX_FRAME)
        .ok_or_else(|| Error::os("sending a message", "larger than 2 GiB"))?;
    send_all(fd, &[&len.to_le_bytes(), payload], &[])
}

/// Sends bytes that are already frames (see [`push_frame`]).
pub(crate) fn send_framed(fd: BorrowedFd<'_>, frames: &[u8]) -> Result<()> {
    send_all(fd, &[frames], &[])
}

/// Sends what the socket takes of `bytes` now, without waiting; returns how much.
///
/// # Errors
/// [`Error::Closed`] when the peer is gone.
pub(crate) fn send_some(fd: BorrowedFd<'_>, bytes: &[u8]) -> Result<usize> {
    loop {
        match rustix::net::send(fd, bytes, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Ok(0),
            Err(e) => return Err(send_error(e)),
        }
    }
}

/// Waits until `fd` is readable, or writable too when `write`; returns (readable,
/// writable). A hang-up or error counts as readable (the read then sees it).
pub(crate) fn wait_ready(fd: BorrowedFd<'_>, write: bool) -> Result<(bool, bool)> {
    let events = if write {
        PollFlags::IN | PollFlags::OUT
    } else {
        PollFlags::IN
    };
    let mut fds = [PollFd::from_borrowed_fd(fd, events)];
    loop {
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => break,
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::os("waiting on a socket", e)),
        }
    }
    let got = fds[0].revents();
    let readable = got.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR);
    Ok((readable, got.contains(PollFlags::OUT)))
}

/// Sends one frame and, with it, duplicates of `fds` (Unix sockets only).
pub(crate) fn send_with_fds(fd: BorrowedFd<'_>, payload: &[u8], fds: &[OwnedFd]) -> Result<()> {
    if fds.len() > MAX_FDS {
        return Err(Error::os(
            "passing descriptors",
            format!(
                "{} shared objects in one start; at most {MAX_FDS}",
                fds.len()
            ),
        ));
    }
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&n| (n as usize) < MAX_FRAME)
        .ok_or_else(|| Error::os("sending a message", "larger than 2 GiB"))?;
    send_all(fd, &[&len.to_le_bytes(), payload], &borrowed)
}

/// What one read from the socket gave.
enum Fill {
    Data,
    Eof,
    Empty,
}

/// The receiving side's buffer: bytes read from the socket and not yet handed out.
#[derive(Debug, Default)]
pub(crate) struct ReadBuf {
    buf: Vec<u8>,
    /// Start of the unread bytes.
    pos: usize,
    /// Bytes of the frame handed out last, dropped at the next call.
    consumed: usize,
    /// The peer closed its end.
    eof: bool,
}

impl ReadBuf {
    /// The length of the complete frame at the front, if one is buffered.
    fn complete(&self) -> Result<Option<usize>> {
        let avail = self.buf.len() - self.pos;
        if avail < 4 {
            return Ok(None);
        }
        let mut header = [0u8; 4];
        header.copy_from_slice(&self.buf[self.pos..self.pos + 4]);
        let len = u32::from_le_bytes(header) as usize;
        if len >= MAX_FRAME {
            return Err(Error::os("reading a message", "corrupt frame length"));
        }
        if avail >= 4 + len {
            Ok(Some(len))
        } else {
            Ok(None)
        }
    }

    fn discard_consumed(&mut self) {
        self.pos += std::mem::take(&mut self.consumed);
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Room for at least `need` more bytes (the rest of a long frame), compacting first.
    fn reserve(&mut self, need: usize) {
        if self.buf.capacity() - self.buf.len() >= need.max(4096) {
            return;
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(need.max(64 * 1024));
    }

    fn fill(&mut self, fd: BorrowedFd<'_>, block: bool) -> Result<Fill> {
        if self.eof {
            return Ok(Fill::Eof);
        }
        let avail = self.buf.len() - self.pos;
        let need = if avail >= 4 {
            let mut header = [0u8; 4];
            header.copy_from_slice(&self.buf[self.pos..self.pos + 4]);
            (u32::from_le_bytes(header) as usize + 4).saturating_sub(avail)
        } else {
            4096
        };
        self.reserve(need.min(MAX_FRAME));
        let flags = if block {
            RecvFlags::empty()
        } else {
            RecvFlags::DONTWAIT
        };
        loop {
            match rustix::net::recv(fd, rustix::buffer::spare_capacity(&mut self.buf), flags) {
                Ok((0, _)) => {
                    self.eof = true;
                    return Ok(Fill::Eof);
                }
                Ok(_) => return Ok(Fill::Data),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(Fill::Empty),
                Err(Errno::CONNRESET) => {
                    self.eof = true;
                    return Ok(Fill::Eof);
                }
                Err(e) => return Err(Error::os("reading from a socket", e)),
            }
        }
    }

    /// Whether another complete frame is buffered (after the one handed out last).
    pub(crate) fn has_frame(&mut self) -> bool {
        self.discard_consumed();
        self.complete().is_ok_and(|f| f.is_some())
    }

    /// Whether a frame (or the end of the stream) can be had without blocking, reading
    /// what the socket holds.
    pub(crate) fn ready(&mut self, fd: BorrowedFd<'_>) -> Result<bool> {
        self.discard_consumed();
        loop {
            if self.complete()?.is_some() || self.eof {
                return Ok(true);
            }
            match self.fill(fd, false)? {
                Fill::Data => {}
                Fill::Eof => return Ok(true),
                Fill::Empty => return Ok(false),
            }
        }
    }

    /// Waits until a frame (or the end) is there, or `deadline` passes; spins first when
    /// `spin`. Returns whether something is ready.
    pub(crate) fn wait(
        &mut self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
        spin: bool,
    ) -> Result<bool> {
        if self.ready(fd)? {
            return Ok(true);
        }
        if spin {
            let mut failure = None;
            let got = sys::spin_until(|| match self.ready(fd) {
                Ok(ready) => ready,
                Err(e) => {
                    failure = Some(e);
                    true
                }
            });
            if let Some(e) = failure {
                return Err(e);
            }
            if got {
                return Ok(true);
            }
        }
        loop {
            let timeout = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return self.ready(fd);
                    }
                    Some(timespec(left))
                }
                None => None,
            };
            let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::os("waiting on a socket", e)),
            }
            if self.ready(fd)? {
                return Ok(true);
            }
        }
    }

    /// The next frame, waiting (spinning first) until `deadline`.
    ///
    /// # Errors
    /// [`Error::Closed`] at the end of the stream, [`Error::Timeout`]-free: a passed
    /// deadline gives `Ok(None)`.
    pub(crate) fn recv(
        &mut self,
        fd: BorrowedFd<'_>,
        deadline: Option<Instant>,
    ) -> Result<Option<&[u8]>> {
        if !self.wait(fd, deadline, true)? {
            return Ok(None);
        }
        self.take().map(Some)
    }

    /// The buffered frame at the front.
    ///
    /// # Errors
    /// [`Error::Closed`] when none is buffered and the stream ended.
    pub(crate) fn take(&mut self) -> Result<&[u8]> {
        self.discard_consumed();
        match self.complete()? {
            Some(len) => {
                self.consumed = 4 + len;
                Ok(&self.buf[self.pos + 4..self.pos + 4 + len])
            }
            None => Err(Error::Closed),
        }
    }

    /// The next frame and the descriptors sent with it, blocking (a child's start).
    pub(crate) fn recv_with_fds(&mut self, fd: BorrowedFd<'_>) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        let mut fds = Vec::new();
        let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        self.discard_consumed();
        while self.complete()?.is_none() {
            if self.eof {
                return Err(Error::Closed);
            }
            self.reserve(4096);
            let len = self.buf.len();
            self.buf.resize(self.buf.capacity(), 0);
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = rustix::net::recvmsg(
                fd,
                &mut [IoSliceMut::new(&mut self.buf[len..])],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            );
            let (n, interrupted) = match got {
                Ok(msg) => (msg.bytes, false),
                Err(Errno::INTR) => (0, true),
                Err(e) => {
                    self.buf.truncate(len);
                    return Err(Error::os("reading the start message", e));
                }
            };
            self.buf.truncate(len + n);
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(received) = message {
                    fds.extend(received);
                }
            }
            if n == 0 && !interrupted {
                self.eof = true;
            }
        }
        let frame = self.take()?.to_vec();
        Ok((frame, fds))
    }
}

/// A relative timeout for `poll`/`futex`.
pub(crate) fn timespec(d: std::time::Duration) -> rustix::event::Timespec {
    rustix::event::Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// A socket with its read buffer, owned by one thread.
#[derive(Debug)]
pub(crate) struct Wire {
    fd: OwnedFd,
    read: ReadBuf,
}

impl Wire {
    /// Wraps a connected stream socket.
    pub(crate) fn new(fd: OwnedFd) -> Wire {
        Wire {
            fd,
            read: ReadBuf::default(),
        }
    }

    /// A connected pair of Unix stream sockets: this end as a wire, and the other.
    pub(crate) fn pair() -> Result<(Wire, OwnedFd)> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| Error::os("creating a socket pair", e))?;
        Ok((Wire::new(ours.into()), theirs.into()))
    }

    /// The socket.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The socket, once everything read has been handed out.
    ///
    /// # Errors
    /// [`Error::Os`] when unread bytes are buffered (they would be lost).
    pub(crate) fn into_fd(mut self) -> Result<OwnedFd> {
        self.read.discard_consumed();
        if self.read.pos < self.read.buf.len() {
            return Err(Error::os(
                "switching a socket's transport",
                "unread bytes are buffered",
            ));
        }
        Ok(self.fd)
    }

    /// Sends one frame.
    pub(crate) fn send(&self, payload: &[u8]) -> Result<()> {
        send(self.fd.as_fd(), payload)
    }

    /// Sends bytes that are already frames.
    pub(crate) fn send_framed(&self, frames: &[u8]) -> Result<()> {
        send_framed(self.fd.as_fd(), frames)
    }

    /// The next frame, waiting until `deadline` (`Ok(None)` when it passes).
    pub(crate) fn recv(&mut self, deadline: Option<Instant>) -> Result<Option<&[u8]>> {
        self.read.recv(self.fd.as_fd(), deadline)
    }

    /// The next frame, waiting as long as it takes.
    pub(crate) fn recv_blocking(&mut self) -> Result<&[u8]> {
        match self.read.recv(self.fd.as_fd(), None)? {
            Some(frame) => Ok(frame),
            None => Err(Error::Closed),
        }
    }

    /// Whether a frame or the end can be read without blocking.
    pub(crate) fn ready(&mut self) -> Result<bool> {
        self.read.ready(self.fd.as_fd())
    }

    /// Whether another complete frame is already buffered (no system call).
    pub(crate) fn has_frame(&mut self) -> bool {
        self.read.has_frame()
    }

    /// Waits until a frame or the end is there, or `deadline` passes.
    pub(crate) fn wait(&mut self, deadline: Option<Instant>, spin: bool) -> Result<bool> {
        self.read.wait(self.fd.as_fd(), deadline, spin)
    }

    /// The buffered frame at the front ([`Error::Closed`] if none and the peer is gone).
    pub(crate) fn take(&mut self) -> Result<&[u8]> {
        self.read.take()
    }

    /// The next frame and the descriptors sent with it.
    pub(crate) fn recv_with_fds(&mut self) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        self.read.recv_with_fds(self.fd.as_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_and_eof_is_closed() {
        let (mut a, b) = Wire::pair().unwrap();
        let mut b = Wire::new(b);
        a.send(b"one").unwrap();
        let mut batch = Vec::new();
        for payload in [&b"two"[..], b""] {
            batch.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            batch.extend_from_slice(payload);
        }
        a.send_framed(&batch).unwrap();
        assert_eq!(b.recv_blocking().unwrap(), b"one");
        assert_eq!(b.recv_blocking().unwrap(), b"two");
        assert_eq!(b.recv_blocking().unwrap(), b"");
        let got = std::thread::scope(|s| {
            let reader = s.spawn(|| a.recv_blocking().map(<[u8]>::len).unwrap());
            b.send(&vec![7u8; 300_000]).unwrap();
            reader.join().unwrap()
        });
        assert_eq!(got, 300_000);
        drop(a);
        assert_eq!(b.recv_blocking().unwrap_err(), Error::Closed);
        assert_eq!(b.send(b"x").unwrap_err(), Error::Closed);
    }

    #[test]
    fn a_deadline_gives_none() {
        let (mut a, _b) = Wire::pair().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_millis(5);
        assert!(a.recv(Some(deadline)).unwrap().is_none());
    }

    #[test]
    fn descriptors_travel_with_a_frame() {
        let (a, b) = Wire::pair().unwrap();
        let mut b = Wire::new(b);
        let memfd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&memfd, 123).unwrap();
        send_with_fds(a.fd(), b"start", &[memfd]).unwrap();
        let (frame, fds) = b.recv_with_fds().unwrap();
        assert_eq!(frame, b"start");
        assert_eq!(fds.len(), 1);
        assert_eq!(rustix::fs::fstat(&fds[0]).unwrap().st_size, 123);
    }
}
