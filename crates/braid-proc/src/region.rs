//! [`Region`]: a block of memory shared between processes, mapped from a file descriptor
//! (an anonymous `memfd`, or a named POSIX shared-memory object).
//!
//! This is the crate's only door to raw memory: the rest reads and writes a region
//! through the atomics and copies it hands out, which check bounds and alignment.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64};

use rustix::mm::{MapFlags, ProtFlags};

use crate::{Error, Result};

/// A shared mapping of a whole file descriptor, unmapped on drop.
pub(crate) struct Region {
    ptr: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain shared memory. Every access goes through atomics or
// through raw copies (`read`/`write`) whose callers serialise them with a lock that
// lives in the region itself, exactly as other processes do; no `&`/`&mut` to the
// bytes is ever handed out, so no aliasing rule can be broken by another thread.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// A new zero-filled anonymous region of `len` bytes (a memfd: it has no name on any
    /// file system and disappears when the last process holding it lets go).
    pub(crate) fn anonymous(what: &str, len: usize) -> Result<Region> {
        let fd = rustix::fs::memfd_create(format!("braid-{what}"), rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(|e| Error::os(format!("memfd_create for a {what}"), e))?;
        rustix::fs::ftruncate(&fd, len as u64)
            .map_err(|e| Error::os(format!("sizing the shared memory of a {what}"), e))?;
        Region::map(fd, len)
    }

    /// Maps the whole of `fd`, whose size is taken from the file.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<Region> {
        let stat = rustix::fs::fstat(&fd).map_err(|e| Error::os("fstat of shared memory", e))?;
        let len = usize::try_from(stat.st_size)
            .map_err(|_| Error::os("shared memory", "negative or huge size"))?;
        Region::map(fd, len)
    }

    /// Maps the first `len` bytes of `fd`, read-write and shared.
    pub(crate) fn map(fd: OwnedFd, len: usize) -> Result<Region> {
        if len == 0 {
            return Err(Error::os("mapping shared memory", "the size is zero"));
        }
        // SAFETY: a fresh mapping at an address the kernel chooses cannot overlap any
        // Rust object; it stays valid until `munmap` in `Drop`.
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
        .map_err(|e| Error::os("mapping shared memory", e))?;
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| Error::os("mapping shared memory", "mmap returned null"))?;
        Ok(Region { ptr, len, fd })
    }

    /// The size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The file descriptor behind the mapping, to pass to another process.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The first byte's address (for `SharedMemory`'s raw access).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn check(&self, offset: usize, size: usize, align: usize) {
        assert!(
            offset.is_multiple_of(align)
                && offset.checked_add(size).is_some_and(|end| end <= self.len),
            "shared-memory access at {offset} (size {size}) outside a region of {} bytes",
            self.len
        );
    }

    /// The 8-bit atomic at `offset`.
    pub(crate) fn u8(&self, offset: usize) -> &AtomicU8 {
        self.check(offset, 1, 1);
        // SAFETY: in bounds (checked), aligned (any byte is), and the mapping lives as
        // long as `self`; atomics may be shared between threads and processes.
        unsafe { AtomicU8::from_ptr(self.ptr.as_ptr().add(offset)) }
    }

    /// The 16-bit atomic at `offset` (2-aligned).
    pub(crate) fn u16(&self, offset: usize) -> &AtomicU16 {
        self.check(offset, 2, 2);
        // SAFETY: in bounds and aligned (checked; the mapping is page-aligned); the
        // mapping lives as long as `self`.
        unsafe { AtomicU16::from_ptr(self.ptr.as_ptr().add(offset).cast()) }
    }

    /// The 32-bit atomic at `offset` (4-aligned).
    pub(crate) fn u32(&self, offset: usize) -> &AtomicU32 {
        self.check(offset, 4, 4);
        // SAFETY: in bounds and aligned (checked; the mapping is page-aligned); the
        // mapping lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(offset).cast()) }
    }

    /// The 64-bit atomic at `offset` (8-aligned).
    pub(crate) fn u64(&self, offset: usize) -> &AtomicU64 {
        self.check(offset, 8, 8);
        // SAFETY: in bounds and aligned (checked; the mapping is page-aligned); the
        // mapping lives as long as `self`.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(offset).cast()) }
    }

    /// Copies `out.len()` bytes starting at `offset` into `out`. Callers hold the lock
    /// that guards those bytes.
    pub(crate) fn read(&self, offset: usize, out: &mut [u8]) {
        self.check(offset, out.len(), 1);
        // SAFETY: the source range is inside the mapping (checked) and cannot overlap
        // `out`, a Rust buffer; raw pointers are used, never references to shared bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            );
        }
    }

    /// Copies `data` into the region at `offset`. Callers hold the lock that guards
    /// those bytes.
    pub(crate) fn write(&self, offset: usize, data: &[u8]) {
        self.check(offset, data.len(), 1);
        // SAFETY: the destination range is inside the mapping (checked) and cannot
        // overlap `data`, a Rust buffer; raw pointers only.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len());
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map`, unmapped once here;
        // no reference into it outlives `self` (atomics borrow `self`).
        if let Err(e) = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) } {
            tracing::warn!(error = %e, "munmap of shared memory failed");
        }
    }
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region").field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn two_mappings_of_one_fd_share_bytes() {
        let a = Region::anonymous("test", 4096).unwrap();
        let b = Region::from_fd(a.fd().try_clone_to_owned().unwrap()).unwrap();
        assert_eq!(b.len(), 4096);
        a.u64(8).store(42, Ordering::SeqCst);
        assert_eq!(b.u64(8).load(Ordering::SeqCst), 42);
        a.write(100, b"hello");
        let mut out = [0u8; 5];
        b.read(100, &mut out);
        assert_eq!(&out, b"hello");
    }

    #[test]
    #[should_panic(expected = "outside a region")]
    fn out_of_bounds_access_panics() {
        let a = Region::anonymous("test", 4096).unwrap();
        a.u32(4094);
    }
}
