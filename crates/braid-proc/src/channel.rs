//! [`ChannelEnd`]: one end of a two-way channel between processes, with the data in
//! shared memory and a Unix socket as the doorbell.
//!
//! Each direction is a byte ring in a shared region: the writer copies a frame in and
//! publishes its position; a reader that is spinning sees it within a fraction of a
//! microsecond, so a ping-pong between two running processes makes no system call at
//! all. A reader (or a writer waiting for room) that has to sleep says so in the
//! region and sleeps on its socket; the other side then rings: one byte on the socket.
//! The socket also carries the end of the stream: when every holder of the other end
//! is gone — dropped, exited, killed — the kernel closes it, and a waiting reader gets
//! [`Error::Closed`] once the ring is empty, never a hang.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};

use crate::mutex::RawMutex;
use crate::region::Region;
use crate::{Error, Result, sys};

/// Bytes of each direction's ring.
const CAPACITY: usize = 64 * 1024;
/// One ring's header: the positions on separate cache lines.
const HEADER: usize = 256;
const WRITE_POS: usize = 0;
const READ_POS: usize = 64;
const READER_SLEEPING: usize = 128;
const WRITER_SLEEPING: usize = 132;
/// Serialises writers (threads or processes) of one direction, a frame at a time.
const WRITE_LOCK: usize = 136;
/// Serialises readers likewise.
const READ_LOCK: usize = 140;
/// How many handles on each end are open, over all processes (one `u32` per side).
const HOLDERS: usize = 2 * HEADER;
const MAGIC: usize = HOLDERS + 8;
const DATA: usize = 1024;
const MAGIC_VALUE: u64 = 0x6272_6169_6463_6861; // "braidcha"
/// A sleeper looks again this often even without a ring (a doorbell byte can be taken
/// by another thread of the same end).
const SLEEP_SLICE: Duration = Duration::from_millis(20);

/// The size of a channel's shared region.
const REGION: usize = DATA + 2 * CAPACITY;

/// One end of a channel. `side` 0 writes ring 0 and reads ring 1; side 1 the reverse.
pub(crate) struct ChannelEnd {
    region: Arc<Region>,
    sock: OwnedFd,
    side: usize,
}

/// One direction's ring, seen from one end.
struct Ring<'a> {
    region: &'a Region,
    header: usize,
    data: usize,
}

impl Ring<'_> {
    fn word(&self, at: usize) -> &AtomicU32 {
        self.region.u32(self.header + at)
    }

    fn pos(&self, at: usize) -> &AtomicU64 {
        self.region.u64(self.header + at)
    }

    fn copy_in(&self, pos: u64, bytes: &[u8]) {
        let at = (pos % CAPACITY as u64) as usize;
        let first = bytes.len().min(CAPACITY - at);
        self.region.write(self.data + at, &bytes[..first]);
        if first < bytes.len() {
            self.region.write(self.data, &bytes[first..]);
        }
    }

    fn copy_out(&self, pos: u64, out: &mut [u8]) {
        let at = (pos % CAPACITY as u64) as usize;
        let first = out.len().min(CAPACITY - at);
        self.region.read(self.data + at, &mut out[..first]);
        if first < out.len() {
            self.region.read(self.data, &mut out[first..]);
        }
    }
}

impl ChannelEnd {
    /// A connected pair of ends (a new region and socket pair).
    pub(crate) fn pair() -> Result<(ChannelEnd, ChannelEnd)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| Error::os("creating a channel", e))?;
        let region = Arc::new(Self::new_region()?);
        let ends = (
            ChannelEnd::attach(region.clone(), a.into(), 0),
            ChannelEnd::attach(region, b.into(), 1),
        );
        Ok(ends)
    }

    fn new_region() -> Result<Region> {
        let region = Region::anonymous("channel", REGION)?;
        region.u64(MAGIC).store(MAGIC_VALUE, Ordering::Release);
        Ok(region)
    }

    /// Side 0 of a channel over an existing connected Unix socket; the returned
    /// descriptor is the region, for the peer's [`ChannelEnd::join`] (side 1, already
    /// counted as a holder here).
    pub(crate) fn over(sock: OwnedFd) -> Result<(ChannelEnd, OwnedFd)> {
        let region = Self::new_region()?;
        region.u32(HOLDERS + 4).fetch_add(1, Ordering::SeqCst);
        let fd = region
            .fd()
            .try_clone_to_owned()
            .map_err(|e| Error::os("sharing a channel", e))?;
        Ok((ChannelEnd::attach(Arc::new(region), sock, 0), fd))
    }

    /// The end on `side` of the channel whose region is `region_fd`. With
    /// `counted`, the end was counted as a holder when it was sent
    /// ([`ChannelEnd::sent`]); otherwise it counts now.
    pub(crate) fn join(
        region_fd: OwnedFd,
        sock: OwnedFd,
        side: usize,
        counted: bool,
    ) -> Result<ChannelEnd> {
        let region = Region::from_fd(region_fd)?;
        if region.len() != REGION || region.u64(MAGIC).load(Ordering::Acquire) != MAGIC_VALUE {
            return Err(Error::os(
                "joining a channel",
                "the shared memory is not a channel",
            ));
        }
        let side = side & 1;
        if counted {
            Ok(ChannelEnd {
                region: Arc::new(region),
                sock,
                side,
            })
        } else {
            Ok(ChannelEnd::attach(Arc::new(region), sock, side))
        }
    }

    fn attach(region: Arc<Region>, sock: OwnedFd, side: usize) -> ChannelEnd {
        region
            .u32(HOLDERS + 4 * side)
            .fetch_add(1, Ordering::SeqCst);
        ChannelEnd { region, sock, side }
    }

    /// Counts a copy of this end on its way to another process as a holder already, so
    /// that dropping the sender's copy does not look like the end closing.
    pub(crate) fn sent(&self) {
        self.region
            .u32(HOLDERS + 4 * self.side)
            .fetch_add(1, Ordering::SeqCst);
    }

    /// This end's socket and region, to pass it to another process.
    pub(crate) fn fds(&self) -> (BorrowedFd<'_>, BorrowedFd<'_>) {
        (self.region.fd(), self.sock.as_fd())
    }

    /// Which side this end is.
    pub(crate) fn side(&self) -> usize {
        self.side
    }

    fn ring(&self, index: usize) -> Ring<'_> {
        Ring {
            region: &self.region,
            header: index * HEADER,
            data: DATA + index * CAPACITY,
        }
    }

    fn outgoing(&self) -> Ring<'_> {
        self.ring(self.side)
    }

    fn incoming(&self) -> Ring<'_> {
        self.ring(1 - self.side)
    }

    fn peer_gone(&self) -> bool {
        self.region
            .u32(HOLDERS + 4 * (1 - self.side))
            .load(Ordering::SeqCst)
            == 0
    }

    /// Wakes the other end's sleeper (one byte on the socket; a full socket means it
    /// has bytes to wake on already).
    fn ring_bell(&self) {
        match rustix::net::send(&self.sock, &[1], SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Ok(_) | Err(Errno::AGAIN) | Err(Errno::PIPE) | Err(Errno::CONNRESET) => {}
            Err(e) => tracing::debug!(error = %e, "ringing a channel's doorbell"),
        }
    }

    /// Sleeps on the socket until a ring, `deadline`, or a slice passes; `Err(Closed)`
    /// when the other end is gone for good.
    fn sleep(&self, deadline: Option<Instant>) -> Result<()> {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let timeout = left.map_or(SLEEP_SLICE, |l| l.min(SLEEP_SLICE));
        let mut fds = [PollFd::new(&self.sock, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&crate::wire::timespec(timeout))) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(Error::os("waiting on a channel", e)),
        }
        // Take the rings: any byte only means "look again".
        let mut bell = [0u8; 64];
        loop {
            match rustix::net::recv(&self.sock, &mut bell, RecvFlags::DONTWAIT) {
                Ok((0, _)) => return Err(Error::Closed),
                Ok(_) | Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::CONNRESET) => return Err(Error::Closed),
                Err(e) => return Err(Error::os("reading a channel's doorbell", e)),
            }
        }
    }

    /// Writes all of `bytes` into the outgoing ring, waiting for room.
    fn write_bytes(&self, ring: &Ring<'_>, bytes: &[u8]) -> Result<()> {
        let mut done = 0;
        while done < bytes.len() {
            let w = ring.pos(WRITE_POS).load(Ordering::Relaxed);
            let r = ring.pos(READ_POS).load(Ordering::Acquire);
            let room = CAPACITY - (w - r) as usize;
            if room == 0 {
                self.wait_for_room(ring, r)?;
                continue;
            }
            let n = room.min(bytes.len() - done);
            ring.copy_in(w, &bytes[done..done + n]);
            ring.pos(WRITE_POS).store(w + n as u64, Ordering::SeqCst);
            if ring.word(READER_SLEEPING).load(Ordering::SeqCst) != 0 {
                self.ring_bell();
            }
            done += n;
        }
        Ok(())
    }

    fn wait_for_room(&self, ring: &Ring<'_>, seen: u64) -> Result<()> {
        let moved = || ring.pos(READ_POS).load(Ordering::Acquire) != seen;
        if sys::spin_until(moved) {
            return Ok(());
        }
        ring.word(WRITER_SLEEPING).store(1, Ordering::SeqCst);
        let outcome = if ring.pos(READ_POS).load(Ordering::SeqCst) != seen {
            Ok(())
        } else if self.peer_gone() {
            Err(Error::Closed)
        } else {
            self.sleep(None)
        };
        ring.word(WRITER_SLEEPING).store(0, Ordering::SeqCst);
        outcome
    }

    /// Sends one frame (a `u32` length and the bytes), waiting for room as long as it
    /// takes.
    ///
    /// # Errors
    /// [`Error::Closed`] when the other end is gone.
    pub(crate) fn send(&self, payload: &[u8]) -> Result<()> {
        let len = u32::try_from(payload.len())
            .map_err(|_| Error::os("sending a message", "larger than 4 GiB"))?;
        if self.peer_gone() {
            return Err(Error::Closed);
        }
        let ring = self.outgoing();
        let _writing = RawMutex::new(ring.word(WRITE_LOCK)).lock();
        self.write_bytes(&ring, &len.to_le_bytes())?;
        self.write_bytes(&ring, payload)
    }

    /// Waits until the incoming ring moves past `seen`, or `deadline`; `Ok(false)` on
    /// timeout.
    fn wait_for_data(&self, ring: &Ring<'_>, seen: u64, deadline: Option<Instant>) -> Result<bool> {
        let moved = || ring.pos(WRITE_POS).load(Ordering::Acquire) != seen;
        if sys::spin_until(moved) {
            return Ok(true);
        }
        loop {
            ring.word(READER_SLEEPING).store(1, Ordering::SeqCst);
            if ring.pos(WRITE_POS).load(Ordering::SeqCst) != seen {
                ring.word(READER_SLEEPING).store(0, Ordering::SeqCst);
                return Ok(true);
            }
            let slept = self.sleep(deadline);
            ring.word(READER_SLEEPING).store(0, Ordering::SeqCst);
            if moved() {
                return Ok(true);
            }
            slept?;
            if sys::expired(deadline) {
                return Ok(false);
            }
        }
    }

    /// Fills `out` from the incoming ring; `Ok(false)` when `deadline` passed before any
    /// byte came (a deadline only applies before the first byte).
    fn read_bytes(
        &self,
        ring: &Ring<'_>,
        out: &mut [u8],
        mut deadline: Option<Instant>,
    ) -> Result<bool> {
        let mut done = 0;
        while done < out.len() {
            let r = ring.pos(READ_POS).load(Ordering::Relaxed);
            let w = ring.pos(WRITE_POS).load(Ordering::Acquire);
            let available = (w - r) as usize;
            if available == 0 {
                if !self.wait_for_data(ring, r, deadline)? {
                    return Ok(false);
                }
                continue;
            }
            let n = available.min(out.len() - done);
            ring.copy_out(r, &mut out[done..done + n]);
            ring.pos(READ_POS).store(r + n as u64, Ordering::SeqCst);
            if ring.word(WRITER_SLEEPING).load(Ordering::SeqCst) != 0 {
                self.ring_bell();
            }
            done += n;
            // The rest of a frame already begun is on its way: wait for it.
            deadline = None;
        }
        Ok(true)
    }

    /// Receives the next frame, waiting until `deadline` (`Ok(None)` when it passes).
    ///
    /// # Errors
    /// [`Error::Closed`] when the other end is gone and nothing is left to read.
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<Option<Vec<u8>>> {
        let ring = self.incoming();
        let Some(_reading) = RawMutex::new(ring.word(READ_LOCK)).lock_until(deadline) else {
            return Ok(None);
        };
        let mut header = [0u8; 4];
        if !self.read_bytes(&ring, &mut header, deadline)? {
            return Ok(None);
        }
        let mut payload = vec![0u8; u32::from_le_bytes(header) as usize];
        self.read_bytes(&ring, &mut payload, None)?;
        Ok(Some(payload))
    }

    /// Whether a frame (or the end) can be read now, waiting up to `deadline`.
    ///
    /// # Errors
    /// A system error.
    pub(crate) fn poll(&self, deadline: Option<Instant>) -> Result<bool> {
        let ring = self.incoming();
        let seen = ring.pos(READ_POS).load(Ordering::Relaxed);
        if ring.pos(WRITE_POS).load(Ordering::Acquire) != seen {
            return Ok(true);
        }
        if sys::expired(deadline) {
            // Only a look: is the other end gone?
            return match self.sleep(Some(Instant::now())) {
                Err(Error::Closed) => Ok(true),
                Err(e) => Err(e),
                Ok(()) => Ok(ring.pos(WRITE_POS).load(Ordering::Acquire) != seen),
            };
        }
        match self.wait_for_data(&ring, seen, deadline) {
            Ok(ready) => Ok(ready),
            Err(Error::Closed) => Ok(true), // recv will report it
            Err(e) => Err(e),
        }
    }
}

impl Drop for ChannelEnd {
    fn drop(&mut self) {
        self.region
            .u32(HOLDERS + 4 * self.side)
            .fetch_sub(1, Ordering::SeqCst);
        // Wake the other end's sleepers: a blocked writer sees the end through the
        // holder count now, a reader when the socket closes.
        self.ring_bell();
    }
}

impl std::fmt::Debug for ChannelEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelEnd")
            .field("side", &self.side)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_every_size_cross_both_ways() {
        let (a, b) = ChannelEnd::pair().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                for size in [0usize, 1, 100, CAPACITY - 4, CAPACITY, 3 * CAPACITY + 7] {
                    let frame = b.recv(None).unwrap().unwrap();
                    assert_eq!(frame.len(), size);
                    assert!(frame.iter().all(|&x| x == (size % 251) as u8));
                    b.send(&frame[..size.min(10)]).unwrap();
                }
            });
            for size in [0usize, 1, 100, CAPACITY - 4, CAPACITY, 3 * CAPACITY + 7] {
                a.send(&vec![(size % 251) as u8; size]).unwrap();
                assert_eq!(a.recv(None).unwrap().unwrap().len(), size.min(10));
            }
        });
    }

    #[test]
    fn the_end_is_closed_not_a_hang() {
        let (a, b) = ChannelEnd::pair().unwrap();
        a.send(b"last words").unwrap();
        drop(a);
        assert_eq!(b.recv(None).unwrap().unwrap(), b"last words");
        assert_eq!(b.recv(None).unwrap_err(), Error::Closed);
        assert_eq!(b.send(b"x").unwrap_err(), Error::Closed);
        let (a, b) = ChannelEnd::pair().unwrap();
        let deadline = Instant::now() + Duration::from_millis(5);
        assert_eq!(a.recv(Some(deadline)).unwrap(), None);
        let reader = std::thread::spawn(move || a.recv(None));
        std::thread::sleep(Duration::from_millis(2)); // likely asleep by now
        drop(b);
        assert_eq!(reader.join().unwrap().unwrap_err(), Error::Closed);
    }

    #[test]
    fn a_writer_blocked_on_a_full_ring_sees_the_reader_go() {
        let (a, b) = ChannelEnd::pair().unwrap();
        let writer = std::thread::spawn(move || a.send(&vec![0u8; 4 * CAPACITY]));
        assert_eq!(b.recv(None).unwrap().unwrap().len(), 4 * CAPACITY);
        writer.join().unwrap().unwrap();
        let (a, b) = ChannelEnd::pair().unwrap();
        let writer = std::thread::spawn(move || a.send(&vec![0u8; 4 * CAPACITY]));
        std::thread::sleep(Duration::from_millis(2)); // likely blocked by now
        drop(b);
        assert_eq!(writer.join().unwrap().unwrap_err(), Error::Closed);
    }
}
