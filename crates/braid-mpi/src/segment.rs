//! [`Segment`]: the shared memory of one job: a header, one control block per rank, and
//! a single-producer single-consumer byte ring for every ordered pair of ranks.
//!
//! This is the crate's only door to raw memory: everything else goes through the atomics,
//! bounds-checked copies and borrowed views it hands out.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rustix::mm::{MapFlags, ProtFlags};
use rustix::thread::futex;

use crate::{Error, Result};

const MAGIC: u64 = 0x6272_6169_645f_6d70; // "braid_mp"
const HEADER: usize = 64;
const RANK_BLOCK: usize = 64;
const RING_CTRL: usize = 192;
/// Ring data starts on a 2 MiB boundary of the file, so that the kernel can back it with
/// huge pages where shared-memory huge pages are enabled.
const HUGE_PAGE: usize = 2 << 20;

/// A rank's life, as its control block records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RankState {
    /// Not yet attached.
    Starting = 0,
    /// Attached and running.
    Running = 1,
    /// Done: everything it sent is in its rings; it will send nothing more.
    Finished = 2,
    /// Panicked, failed or died.
    Failed = 3,
}

impl RankState {
    fn from_u32(value: u32) -> RankState {
        match value {
            0 => RankState::Starting,
            1 => RankState::Running,
            2 => RankState::Finished,
            _ => RankState::Failed,
        }
    }
}

/// The ring capacity for a job of `size` ranks: 4 MiB per pair for small jobs, less for
/// large ones so that the segment stays near 256 MiB of address space (pages are only
/// touched as rings fill).
pub(crate) fn ring_capacity(size: usize) -> usize {
    let pairs = size.saturating_mul(size).max(1);
    ((256usize << 20) / pairs)
        .clamp(64 << 10, 4 << 20)
        .next_power_of_two()
        .min(4 << 20)
}

/// The shared memory of one job.
pub(crate) struct Segment {
    ptr: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
    size: usize,
    cap: usize,
    ctrl_base: usize,
    data_base: usize,
}

// SAFETY: the mapping is plain shared memory. Every access goes through atomics or through
// raw copies of ring bytes whose ownership the ring protocol gives to exactly one side at a
// time (the producer writes only between tail and head + cap, the consumer reads only
// between head and tail); no `&mut` to the ring bytes is ever handed out, and a `&` only
// to the consumer, for bytes it owns, for the length of one call (`ring_view`).
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

fn layout(size: usize, cap: usize) -> (usize, usize, usize) {
    let ctrl_base = HEADER + size * RANK_BLOCK;
    let data_base = (ctrl_base + size * size * RING_CTRL).next_multiple_of(HUGE_PAGE);
    let len = data_base + size * size * cap;
    (ctrl_base, data_base, len)
}

impl Segment {
    /// A new segment for `size` ranks in a fresh memfd. With `inheritable`, the fd stays
    /// open across `exec` so that rank processes started by the launcher find it.
    pub(crate) fn create(size: usize, inheritable: bool) -> Result<Segment> {
        if size == 0 {
            return Err(Error::invalid("a job needs at least one rank"));
        }
        if size > 4096 {
            return Err(Error::invalid(format!(
                "{size} ranks on one machine's shared memory is more than the 4096 supported"
            )));
        }
        let cap = ring_capacity(size);
        let (_, _, len) = layout(size, cap);
        let flags = if inheritable {
            rustix::fs::MemfdFlags::empty()
        } else {
            rustix::fs::MemfdFlags::CLOEXEC
        };
        let fd = rustix::fs::memfd_create("braid-mpi", flags)
            .map_err(|e| Error::os("memfd_create for the job's shared memory", e))?;
        rustix::fs::ftruncate(&fd, len as u64)
            .map_err(|e| Error::os("sizing the job's shared memory", e))?;
        let segment = Segment::map(fd, len, size, cap)?;
        segment
            .u32(12)
            .store(cap.trailing_zeros(), Ordering::Relaxed);
        segment.u32(8).store(size as u32, Ordering::Relaxed);
        segment.u64(0).store(MAGIC, Ordering::Release);
        Ok(segment)
    }

    /// Maps the segment a launcher made, from its inherited file descriptor.
    pub(crate) fn attach(fd: OwnedFd) -> Result<Segment> {
        let stat =
            rustix::fs::fstat(&fd).map_err(|e| Error::os("fstat of the job's segment", e))?;
        let len = usize::try_from(stat.st_size)
            .map_err(|_| Error::NotLaunched("the job's segment has a negative size".into()))?;
        if len < HEADER {
            return Err(Error::NotLaunched("the job's segment is too small".into()));
        }
        let mut probe = Segment::map(fd, len, 0, 0)?;
        if probe.u64(0).load(Ordering::Acquire) != MAGIC {
            return Err(Error::NotLaunched(
                "the inherited file descriptor is not a braid-mpi segment".into(),
            ));
        }
        let size = probe.u32(8).load(Ordering::Relaxed) as usize;
        let cap = 1usize << probe.u32(12).load(Ordering::Relaxed);
        if layout(size, cap).2 != len {
            return Err(Error::NotLaunched(
                "the job's segment has the wrong size".into(),
            ));
        }
        let (ctrl_base, data_base, _) = layout(size, cap);
        probe.size = size;
        probe.cap = cap;
        probe.ctrl_base = ctrl_base;
        probe.data_base = data_base;
        Ok(probe)
    }

    fn map(fd: OwnedFd, len: usize, size: usize, cap: usize) -> Result<Segment> {
        // SAFETY: a fresh shared mapping at an address the kernel chooses cannot overlap
        // any Rust object; it stays valid until `munmap` in `Drop`.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .map_err(|e| Error::os("mapping the job's shared memory", e))?;
        if len > HUGE_PAGE {
            // SAFETY: advice on the mapping just made, over its own range; it changes no
            // contents. Where huge pages for shared memory are off it fails: harmless.
            if let Err(e) =
                unsafe { rustix::mm::madvise(ptr, len, rustix::mm::Advice::LinuxHugepage) }
            {
                tracing::debug!(error = %e, "no huge pages for the braid-mpi segment");
            }
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| {
            Error::os(
                "mapping the job's shared memory",
                std::io::Error::other("null"),
            )
        })?;
        let (ctrl_base, data_base, _) = layout(size, cap);
        Ok(Segment {
            ptr,
            len,
            fd,
            size,
            cap,
            ctrl_base,
            data_base,
        })
    }

    /// The file descriptor, for the launcher to hand to its children.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The number of ranks.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The bytes of one ring.
    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    fn check(&self, offset: usize, size: usize) {
        assert!(
            offset.is_multiple_of(size) && offset + size <= self.len,
            "braid-mpi segment access at {offset} outside {} bytes",
            self.len
        );
    }

    fn u32(&self, offset: usize) -> &AtomicU32 {
        self.check(offset, 4);
        // SAFETY: in bounds and aligned (checked; the mapping is page-aligned); the mapping
        // lives as long as `self`; atomics may be shared between threads and processes.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(offset).cast()) }
    }

    fn u64(&self, offset: usize) -> &AtomicU64 {
        self.check(offset, 8);
        // SAFETY: as in `u32`.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(offset).cast()) }
    }

    /// 0 while the job runs; `rank + 1` once `rank` failed and the job was aborted.
    pub(crate) fn abort_word(&self) -> &AtomicU32 {
        self.u32(24)
    }

    /// The launcher's pid (0 in thread mode).
    pub(crate) fn launcher_pid(&self) -> &AtomicU32 {
        self.u32(28)
    }

    /// The rank that aborted the job, if one did.
    pub(crate) fn aborted(&self) -> Option<usize> {
        match self.abort_word().load(Ordering::Acquire) {
            0 => None,
            r => Some(r as usize - 1),
        }
    }

    /// Records that `rank` failed, aborting the job (the first failure wins), and wakes
    /// every rank so that their waits return the error.
    pub(crate) fn abort(&self, rank: usize) {
        let result = self.abort_word().compare_exchange(
            0,
            rank as u32 + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if result.is_ok() {
            tracing::debug!(rank, "braid-mpi job aborted");
        }
        self.set_state(rank, RankState::Failed);
        self.wake_all();
    }

    fn rank_block(&self, rank: usize) -> usize {
        assert!(
            rank < self.size,
            "rank {rank} outside a job of {}",
            self.size
        );
        HEADER + rank * RANK_BLOCK
    }

    /// The word a rank sleeps on; anyone who gives it something to do bumps it.
    pub(crate) fn doorbell(&self, rank: usize) -> &AtomicU32 {
        self.u32(self.rank_block(rank))
    }

    fn sleepers(&self, rank: usize) -> &AtomicU32 {
        self.u32(self.rank_block(rank) + 4)
    }

    /// `rank`'s life.
    pub(crate) fn state(&self, rank: usize) -> RankState {
        RankState::from_u32(self.u32(self.rank_block(rank) + 8).load(Ordering::Acquire))
    }

    /// Sets `rank`'s life and wakes everyone who may wait on it.
    pub(crate) fn set_state(&self, rank: usize, state: RankState) {
        self.u32(self.rank_block(rank) + 8)
            .store(state as u32, Ordering::Release);
        self.wake_all();
    }

    /// The pid of `rank`'s process (its launcher records it).
    pub(crate) fn pid(&self, rank: usize) -> &AtomicU32 {
        self.u32(self.rank_block(rank) + 12)
    }

    /// `rank`'s pid when it runs in another process than this one (the launcher records
    /// it; thread-mode ranks share this process).
    pub(crate) fn other_process(&self, rank: usize) -> Option<u32> {
        match self.pid(rank).load(Ordering::Acquire) {
            0 => None,
            pid if pid == std::process::id() => None,
            pid => Some(pid),
        }
    }

    /// Wakes `rank` if it sleeps (or is about to).
    pub(crate) fn ring_doorbell(&self, rank: usize) {
        if self.sleepers(rank).load(Ordering::SeqCst) > 0 {
            let bell = self.doorbell(rank);
            bell.fetch_add(1, Ordering::SeqCst);
            futex_wake(bell);
        }
    }

    /// Wakes every rank, asleep or not.
    pub(crate) fn wake_all(&self) {
        for rank in 0..self.size {
            let bell = self.doorbell(rank);
            bell.fetch_add(1, Ordering::SeqCst);
            futex_wake(bell);
        }
    }

    /// Sleeps as `rank` until its doorbell moves from `seen` or `slice` passes. The
    /// caller checks its condition after announcing itself with [`Segment::announce_sleep`].
    pub(crate) fn sleep(&self, rank: usize, seen: u32, slice: Duration) {
        futex_wait(self.doorbell(rank), seen, slice);
        self.sleepers(rank).fetch_sub(1, Ordering::SeqCst);
    }

    /// Tells producers that `rank` is about to sleep; returns the doorbell value to sleep
    /// on. The caller must check for work once more before calling [`Segment::sleep`] (or
    /// [`Segment::cancel_sleep`]).
    pub(crate) fn announce_sleep(&self, rank: usize) -> u32 {
        self.sleepers(rank).fetch_add(1, Ordering::SeqCst);
        self.doorbell(rank).load(Ordering::SeqCst)
    }

    /// Undoes [`Segment::announce_sleep`] when work turned up.
    pub(crate) fn cancel_sleep(&self, rank: usize) {
        self.sleepers(rank).fetch_sub(1, Ordering::SeqCst);
    }

    fn ring_ctrl(&self, src: usize, dst: usize) -> usize {
        assert!(src < self.size && dst < self.size);
        self.ctrl_base + (src * self.size + dst) * RING_CTRL
    }

    /// The bytes ever written into the ring `src -> dst` (only `src` stores it).
    pub(crate) fn tail(&self, src: usize, dst: usize) -> &AtomicU64 {
        self.u64(self.ring_ctrl(src, dst))
    }

    /// The bytes ever read from the ring `src -> dst` (only `dst` stores it).
    pub(crate) fn head(&self, src: usize, dst: usize) -> &AtomicU64 {
        self.u64(self.ring_ctrl(src, dst) + 64)
    }

    /// Set by `src` when it waits for room in the ring `src -> dst`.
    pub(crate) fn want_space(&self, src: usize, dst: usize) -> &AtomicU32 {
        self.u32(self.ring_ctrl(src, dst) + 128)
    }

    /// The single-copy window `owner` opens on its own buffer for `peer` (see
    /// `handoff.rs`); only the two of them touch it.
    pub(crate) fn window(&self, owner: usize, peer: usize) -> &AtomicU64 {
        self.u64(self.ring_ctrl(owner, peer) + 136)
    }

    fn ring_data(&self, src: usize, dst: usize) -> usize {
        self.data_base + (src * self.size + dst) * self.cap
    }

    /// Copies `data` into the ring `src -> dst` at stream position `pos` (wrapping). The
    /// caller is the ring's producer and has checked that the bytes are free.
    pub(crate) fn ring_write(&self, src: usize, dst: usize, pos: u64, data: &[u8]) {
        assert!(data.len() <= self.cap);
        let base = self.ring_data(src, dst);
        let off = (pos as usize) & (self.cap - 1);
        let first = data.len().min(self.cap - off);
        self.copy_in(base + off, &data[..first]);
        if first < data.len() {
            self.copy_in(base, &data[first..]);
        }
    }

    /// Copies ring bytes at stream position `pos` into `out` (wrapping). The caller is the
    /// ring's consumer and has checked that the bytes were written.
    pub(crate) fn ring_read(&self, src: usize, dst: usize, pos: u64, out: &mut [u8]) {
        assert!(out.len() <= self.cap);
        let base = self.ring_data(src, dst);
        let off = (pos as usize) & (self.cap - 1);
        let first = out.len().min(self.cap - off);
        let (a, b) = out.split_at_mut(first);
        self.copy_out(base + off, a);
        if !b.is_empty() {
            self.copy_out(base, b);
        }
    }

    /// Asks the processor to fetch the ring bytes at stream position `pos` (and the next
    /// 64) into its cache: a waiter that polls `tail` also polls the place where the next
    /// header will be, so that both arrive in parallel, not one after the other. Reads
    /// nothing: a hint that cannot fault.
    pub(crate) fn prefetch(&self, src: usize, dst: usize, pos: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let at = self.ring_data(src, dst) + ((pos as usize) & (self.cap - 1));
            let ptr = self.ptr.as_ptr().wrapping_add(at).cast::<i8>().cast_const();
            // SAFETY: SSE is part of every x86_64 target; a prefetch only hints the cache
            // and neither reads nor faults, whatever the address (here one inside the
            // mapping, or the line after it).
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(ptr);
                _mm_prefetch::<_MM_HINT_T0>(ptr.wrapping_add(64));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (src, dst, pos);
    }

    /// Lends the ring bytes at stream position `pos`, `len` of them, to `f` in place: as
    /// one slice, or two where the ring wraps; `f` gets each slice's offset from `pos`.
    /// The caller is the ring's consumer and has checked that the bytes were written.
    pub(crate) fn ring_view(
        &self,
        src: usize,
        dst: usize,
        pos: u64,
        len: usize,
        f: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()> {
        assert!(len <= self.cap);
        let base = self.ring_data(src, dst);
        let off = (pos as usize) & (self.cap - 1);
        let first = len.min(self.cap - off);
        f(0, self.view(base + off, first))?;
        if first < len {
            f(first, self.view(base, len - first))?;
        }
        Ok(())
    }

    fn view(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset + len <= self.len);
        // SAFETY: the range is inside the mapping (checked), which outlives the borrow of
        // `self`. The ring protocol gives bytes between `head` and `tail` to the consumer
        // alone: the producer writes none of them until the consumer moves `head`, which
        // it does only after the slice is gone (`ring_view` lends it to a closure).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) }
    }

    fn copy_in(&self, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= self.len);
        // SAFETY: the range is inside the mapping (checked) and cannot overlap `data`, a
        // Rust buffer; the ring protocol gives these bytes to the producer alone.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len());
        }
    }

    fn copy_out(&self, offset: usize, out: &mut [u8]) {
        assert!(offset + out.len() <= self.len);
        // SAFETY: the range is inside the mapping (checked) and cannot overlap `out`; the
        // ring protocol gives these bytes to the consumer alone until it moves `head`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            );
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map`, unmapped once here; no
        // reference into it outlives `self` (atomics borrow `self`).
        if let Err(e) = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) } {
            tracing::warn!(error = %e, "munmap of the braid-mpi segment failed");
        }
    }
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("size", &self.size)
            .field("ring_capacity", &self.cap)
            .finish()
    }
}

fn futex_wait(word: &AtomicU32, expected: u32, slice: Duration) {
    let spec = rustix::thread::futex::Timespec {
        tv_sec: slice.as_secs() as i64,
        tv_nsec: i64::from(slice.subsec_nanos()),
    };
    // Shared (not PRIVATE): ranks may be processes. EAGAIN, EINTR and ETIMEDOUT all mean
    // "look again".
    if let Err(e) = futex::wait(word, futex::Flags::empty(), expected, Some(&spec))
        && !matches!(
            e,
            rustix::io::Errno::AGAIN | rustix::io::Errno::INTR | rustix::io::Errno::TIMEDOUT
        )
    {
        tracing::warn!(error = %e, "futex wait failed");
    }
}

fn futex_wake(word: &AtomicU32) {
    if let Err(e) = futex::wake(word, futex::Flags::empty(), i32::MAX as u32) {
        tracing::warn!(error = %e, "futex wake failed");
    }
}

/// Whether the process `pid` still runs; a zombie counts as gone.
pub(crate) fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|end| stat[end + 1..].split_whitespace().next());
            !matches!(state, Some("Z" | "X" | "x"))
        }
        Err(_) => false,
    }
}

/// A monotonic clock reading in seconds, for `wtime`.
pub(crate) fn monotonic_seconds() -> f64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_bytes_wrap_around() {
        let seg = Segment::create(2, false).unwrap();
        let cap = seg.capacity() as u64;
        let data: Vec<u8> = (0..100u8).collect();
        seg.ring_write(0, 1, cap - 40, &data);
        let mut out = vec![0u8; 100];
        seg.ring_read(0, 1, cap - 40, &mut out);
        assert_eq!(out, data);
    }

    #[test]
    fn attach_checks_the_magic() {
        let fd = rustix::fs::memfd_create("not-braid", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 8192).unwrap();
        assert!(matches!(Segment::attach(fd), Err(Error::NotLaunched(_))));
    }

    #[test]
    fn abort_keeps_the_first_rank() {
        let seg = Segment::create(3, false).unwrap();
        seg.abort(2);
        seg.abort(1);
        assert_eq!(seg.aborted(), Some(2));
        assert_eq!(seg.state(1), RankState::Failed);
    }
}
