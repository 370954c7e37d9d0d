//! Single-copy hand-off of large buffers between two ranks, for the collectives whose
//! message pattern cannot deadlock on a sender that waits for its receiver (a broadcast
//! tree's edges, a reduction's values going to the root).
//!
//! Through the rings a buffer is copied twice: the sender copies it in, the receiver out.
//! Here each side copies one part of it straight between the two ranks' own memory with
//! cross-memory attach (`process_vm_writev` / `process_vm_readv`): the sender writes the
//! tail into the receiver's buffer while the receiver reads the head from the sender's,
//! so the two cores share one copy instead of each making a whole one (a broadcast of 8 MiB
//! between 2 ranks: 0.35-0.42 ms against ~0.64 ms through the ring on a 2-vCPU machine,
//! where one memcpy of it takes 0.61 ms). In a reduction the sender folds its tail into
//! the receiver's result (it reads the left operand, combines, writes back, a piece at a
//! time) while the receiver folds the head, reading the sender's value.
//!
//! The two sides agree by small messages of their own kind: the sender offers (its pid,
//! the buffer's address and length), the receiver accepts (its pid and buffer address)
//! or refuses (a length or type mismatch: both sides then fail with a clear error), and
//! each says when its part is done. A part that cannot be copied this way (no permission,
//! say, under a seccomp filter) is sent through the ring instead, so nothing is lost, and
//! the rank stops trying.
//!
//! Memory is only ever touched inside a window its owner opened: before it writes or reads
//! the other rank's buffer, a rank claims that window in the job's shared memory, and the
//! owner, before its call returns, closes it, waiting for a claim in progress to end (or
//! for the other process to be gone). So a rank that fails mid-way never leaves the other
//! copying into memory that has been given back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::uio::{RemoteIoVec, process_vm_readv, process_vm_writev};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::segment::process_alive;

/// Buffers of at least this many bytes are broadcast or reduced by single-copy hand-off
/// (below it the ring's two copies, which stay in cache, are as fast as the hand-off's
/// set-up).
pub(crate) const SINGLE_COPY_MIN: usize = 1 << 20;

/// Set to `0` to turn single-copy hand-off off: every buffer then goes through the
/// shared-memory rings.
pub const SINGLE_COPY_ENV: &str = "BRAID_MPI_SINGLE_COPY";

/// Whether single-copy hand-off is on for a new rank (it is unless [`SINGLE_COPY_ENV`] says
/// `0`, `off` or `false`).
pub(crate) fn enabled_by_env() -> bool {
    !matches!(
        std::env::var(SINGLE_COPY_ENV).as_deref(),
        Ok("0" | "off" | "false")
    )
}

/// The messages of one hand-off (postcard-encoded, in messages of kind `Handoff`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Handoff {
    /// From the sender: read the head of my buffer if you can (`open`: its window is).
    Offer {
        window: u64,
        open: bool,
        pid: u32,
        addr: u64,
        bytes: u64,
        elem: u8,
    },
    /// From the receiver: `push` when I opened my buffer for you to write the tail,
    /// `read` when I will read the head myself.
    Accept {
        window: u64,
        pid: u32,
        addr: u64,
        push: bool,
        read: bool,
        /// In a reduction: the address of the left operand (the receiver's running result
        /// or its own value); the sender folds its tail into `addr` from it.
        left: Option<u64>,
    },
    /// From the receiver: the buffers do not match; both sides fail with `reason`.
    Refuse { reason: String },
    /// From either side: my part is copied (`ok`), or what is left of it after the first
    /// `done` bytes must go through the ring.
    Done { ok: bool, done: u64 },
}

/// Where the receiver's part ends and the sender's begins, in bytes: a page boundary near
/// the middle when both copy, else all to the one that does. `elem` is the element size.
pub(crate) fn split(bytes: usize, elem: usize, push: bool, read: bool) -> usize {
    match (push, read) {
        (true, true) => {
            let step = if 4096 % elem == 0 { 4096 } else { elem };
            (bytes / 2) / step * step
        }
        (true, false) | (false, false) => 0,
        (false, true) => bytes,
    }
}

/// A new window id (never 0, so that an idle window never matches one).
pub(crate) fn next_window() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

const IDLE: u64 = 0;
const OPEN: u64 = 1;
const BUSY: u64 = 2;
const DONE: u64 = 3;

fn word(id: u64, state: u64) -> u64 {
    (id << 2) | state
}

/// A window a rank opened on its own buffer for one other rank: a word in the job's shared
/// memory that the other side must claim before it copies.
pub(crate) struct Window<'a> {
    word: &'a AtomicU64,
    id: u64,
}

impl<'a> Window<'a> {
    /// Opens window `id` on `word` (the owner's side). Fails while another transfer of
    /// this rank with the same peer (on another thread) holds it: that transfer then goes
    /// without this window.
    pub(crate) fn open(word: &'a AtomicU64, id: u64) -> Option<Window<'a>> {
        word.compare_exchange(
            IDLE,
            self::word(id, OPEN),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .ok()
        .map(|_| Window { word, id })
    }

    /// Closes the window: after this the other side can no longer claim it, and a claim it
    /// made has ended, or its process (`peer_pid`) is gone.
    pub(crate) fn close(self, peer_pid: Option<u32>) {
        let mut polls = 0u32;
        loop {
            let now = self.word.load(Ordering::Acquire);
            if now == word(self.id, BUSY) {
                // `None`: the peer is a thread of this process, which runs.
                if peer_pid.is_none_or(process_alive) {
                    polls += 1;
                    if polls < 1000 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                    continue;
                }
                tracing::debug!(
                    pid = peer_pid,
                    "a rank died while it copied: its window is closed"
                );
            }
            // Open and never claimed, done, or claimed by a process that is gone: back to
            // idle, unless the claim began between the load and here.
            if now >> 2 != self.id
                || self
                    .word
                    .compare_exchange(now, IDLE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                break;
            }
        }
    }
}

/// A claim on another rank's window: while it is held, this rank may read and write that
/// rank's memory; dropping it marks the window done.
pub(crate) struct Claim<'a> {
    word: &'a AtomicU64,
    id: u64,
    pid: Pid,
}

impl<'a> Claim<'a> {
    /// Claims window `id` that process `pid` opened on `word`; fails if it was closed.
    pub(crate) fn take(word: &'a AtomicU64, id: u64, pid: u32) -> Result<Claim<'a>, CopyFailure> {
        word.compare_exchange(
            self::word(id, OPEN),
            self::word(id, BUSY),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .map_err(|_| CopyFailure::Closed)?;
        Ok(Claim {
            word,
            id,
            pid: Pid::from_raw(pid as i32),
        })
    }

    /// Reads `dst.len()` bytes from `addr` in the other process.
    pub(crate) fn read(&self, addr: u64, dst: &mut [u8]) -> Result<(), CopyFailure> {
        #[cfg(test)]
        if let Some(error) = tests::injected() {
            return Err(CopyFailure::os(error));
        }
        let mut done = 0;
        while done < dst.len() {
            let from = [RemoteIoVec {
                base: addr as usize + done,
                len: dst.len() - done,
            }];
            let mut to = [std::io::IoSliceMut::new(&mut dst[done..])];
            match process_vm_readv(self.pid, &mut to, &from) {
                Ok(0) => return Err(CopyFailure::os(nix::Error::EFAULT)),
                Ok(n) => done += n,
                Err(nix::Error::EINTR) => {}
                Err(e) => return Err(CopyFailure::os(e)),
            }
        }
        Ok(())
    }

    /// Writes `src` to `addr` in the other process.
    pub(crate) fn write(&self, addr: u64, src: &[u8]) -> Result<(), CopyFailure> {
        let mut done = 0;
        while done < src.len() {
            let from = [std::io::IoSlice::new(&src[done..])];
            let to = [RemoteIoVec {
                base: addr as usize + done,
                len: src.len() - done,
            }];
            match process_vm_writev(self.pid, &from, &to) {
                Ok(0) => return Err(CopyFailure::os(nix::Error::EFAULT)),
                Ok(n) => done += n,
                Err(nix::Error::EINTR) => {}
                Err(e) => return Err(CopyFailure::os(e)),
            }
        }
        Ok(())
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.word.store(word(self.id, DONE), Ordering::Release);
    }
}

/// Why a part could not be copied directly.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyFailure {
    /// The owner closed its window first (it failed): nothing was copied.
    #[error("the other rank closed its window")]
    Closed,
    /// The system refused; `lasting` when it will refuse again (no permission, no support).
    #[error("cross-memory copy refused: {error}")]
    Os { error: nix::Error, lasting: bool },
    /// The reduction's operation failed on a piece (the ring path then reports it).
    #[error("the operation failed: {0}")]
    Op(String),
}

impl CopyFailure {
    fn os(error: nix::Error) -> CopyFailure {
        let lasting = matches!(
            error,
            nix::Error::EPERM | nix::Error::ENOSYS | nix::Error::EACCES
        );
        CopyFailure::Os { error, lasting }
    }

    /// Whether this rank should stop trying single-copy hand-offs.
    pub(crate) fn lasting(&self) -> bool {
        matches!(self, CopyFailure::Os { lasting: true, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI32;

    /// An error every `read_from` of this process fails with, for the fallback tests (0:
    /// none). Other tests that hand off while it is set still pass: their parts go through
    /// the rings.
    static INJECTED: AtomicI32 = AtomicI32::new(0);
    /// Held by the tests that inject errors and by those that call `read_from` directly.
    static SERIAL: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

    pub(super) fn injected() -> Option<nix::Error> {
        match INJECTED.load(Ordering::Relaxed) {
            0 => None,
            errno => Some(nix::Error::from_raw(errno)),
        }
    }

    /// Broadcasts 2 MiB from rank 0 of 2 thread ranks, then reduces them to each rank, with
    /// hand-offs on or off per rank.
    fn bcast_with(root_on: bool, leaf_on: bool) -> Vec<bool> {
        let len = 1 << 18;
        let data: Vec<f64> = (0..len).map(|i| i as f64 * 0.25).collect();
        let results = crate::run_threads(2, |comm| {
            comm.engine().single_copy = if comm.rank() == 0 { root_on } else { leaf_on };
            let mut buf = if comm.rank() == 0 {
                data.clone()
            } else {
                vec![0.0; len]
            };
            comm.bcast_buf(&mut buf, 0)?;
            assert!(buf == data, "rank {} got the buffer", comm.rank());
            // A reduction hands off too (the root folds the head, the other rank the tail),
            // to either root.
            let mine: Vec<f64> = data.iter().map(|v| v + comm.rank() as f64).collect();
            for root in [0, 1] {
                let mut sum = vec![0.0; len];
                let at_root = comm.rank() == root;
                comm.reduce_buf(
                    &mine,
                    at_root.then_some(&mut sum[..]),
                    crate::Op::sum(),
                    root,
                )?;
                if at_root {
                    assert!(
                        sum.iter().zip(&data).all(|(s, d)| *s == 2.0 * d + 1.0),
                        "reduce at {root}"
                    );
                }
            }
            let still_on = comm.engine().single_copy;
            comm.barrier()?;
            Ok::<_, crate::Error>(still_on)
        })
        .unwrap();
        results.into_iter().map(Result::unwrap).collect()
    }

    #[test]
    fn every_mix_of_ranks_that_hand_off_or_not_delivers_the_buffer() {
        assert_eq!(bcast_with(true, true), [true, true]);
        assert_eq!(bcast_with(true, false), [true, false]);
        assert_eq!(bcast_with(false, true), [false, true]);
        assert_eq!(bcast_with(false, false), [false, false]);
    }

    #[test]
    fn a_part_the_system_refuses_goes_through_the_ring() {
        let _serial = SERIAL.lock();
        // A passing failure: the part goes through the ring and hand-offs stay on.
        INJECTED.store(nix::Error::EFAULT as i32, Ordering::Relaxed);
        let passing = bcast_with(true, true);
        // A lasting one (no permission): the rank stops trying.
        INJECTED.store(nix::Error::EPERM as i32, Ordering::Relaxed);
        let lasting = bcast_with(true, true);
        INJECTED.store(0, Ordering::Relaxed);
        assert_eq!(passing, [true, true]);
        assert_eq!(lasting, [true, false]);
    }

    #[test]
    fn split_gives_each_side_a_page_aligned_part() {
        assert_eq!(split(8 << 20, 8, true, true), 4 << 20);
        assert_eq!(split((8 << 20) + 8, 8, true, true), 4 << 20);
        assert_eq!(split(1000, 8, true, false), 0);
        assert_eq!(split(1000, 8, false, true), 1000);
        assert_eq!(split(1000, 8, false, false), 0);
        // An element size that does not divide a page still splits on an element.
        assert_eq!(split(12 * 1001, 12, true, true) % 12, 0);
    }

    #[test]
    fn a_window_is_copied_through_only_while_open() {
        let _serial = SERIAL.lock();
        let word = AtomicU64::new(0);
        let src: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut dst = vec![0u8; src.len()];
        let pid = std::process::id();
        let id = next_window();
        let window = Window::open(&word, id).unwrap();
        // One transfer at a time holds a window word.
        assert!(Window::open(&word, next_window()).is_none());
        {
            let claim = Claim::take(&word, id, pid).unwrap();
            claim.read(src.as_ptr() as u64, &mut dst).unwrap();
            // A window is claimed by one side at a time.
            assert!(matches!(
                Claim::take(&word, id, pid),
                Err(CopyFailure::Closed)
            ));
        }
        assert_eq!(dst, src);
        // A claim of another window id fails, as does one after the first claim ended, or
        // after close.
        assert!(matches!(
            Claim::take(&word, id + 1, pid),
            Err(CopyFailure::Closed)
        ));
        assert!(matches!(
            Claim::take(&word, id, pid),
            Err(CopyFailure::Closed)
        ));
        window.close(None);
        assert!(matches!(
            Claim::take(&word, id, pid),
            Err(CopyFailure::Closed)
        ));
        assert_eq!(word.load(Ordering::Acquire), IDLE);
    }

    #[test]
    fn a_bad_address_is_an_error_not_a_crash() {
        let _serial = SERIAL.lock();
        let word = AtomicU64::new(0);
        let id = next_window();
        let window = Window::open(&word, id).unwrap();
        let mut dst = vec![0u8; 64];
        let failure = Claim::take(&word, id, std::process::id())
            .unwrap()
            .read(8, &mut dst)
            .unwrap_err();
        assert!(matches!(failure, CopyFailure::Os { lasting: false, .. }));
        window.close(None);
    }
}
