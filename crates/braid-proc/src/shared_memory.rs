//! [`SharedMemory`]: a named block of shared memory, like Python's
//! `multiprocessing.shared_memory.SharedMemory`.

use rustix::fs::Mode;
use rustix::shm::OFlags;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::region::Region;
use crate::{Error, Result, sys};

/// A block of memory with a name, which any process on the machine can attach to by
/// that name, like Python's `multiprocessing.shared_memory.SharedMemory`.
///
/// The process that creates the block owns it: dropping the owner's handle unlinks the
/// name (Python's `unlink()`; processes still attached keep their mapping until they
/// drop theirs), so nothing is left behind in `/dev/shm`. Others attach with
/// [`open`](SharedMemory::open). The block serialises as its name, so it may be sent
/// through a queue, a pipe or a manager, and decodes as an attachment (not an owner).
///
/// Reads and writes copy bytes; the block has no lock of its own (use a
/// [`Lock`](crate::Lock) when several processes write the same bytes).
///
/// ```
/// use braid_proc::SharedMemory;
///
/// let owner = SharedMemory::create(64).unwrap();
/// owner.write(0, b"hello").unwrap();
/// let other = SharedMemory::open(owner.name()).unwrap();
/// let mut buf = [0u8; 5];
/// other.read(0, &mut buf).unwrap();
/// assert_eq!(&buf, b"hello");
/// let name = owner.name().to_string();
/// drop(other);
/// drop(owner); // unlinked
/// assert!(SharedMemory::open(&name).is_err());
/// ```
pub struct SharedMemory {
    region: Region,
    name: String,
    owner: bool,
}

fn path(name: &str) -> String {
    format!("/{name}")
}

impl SharedMemory {
    /// Creates a block of `size` bytes (zero-filled) under a fresh name (`psm_...`).
    ///
    /// # Errors
    /// [`Error::Os`] when the system refuses.
    pub fn create(size: usize) -> Result<SharedMemory> {
        loop {
            let name = format!("psm_{:016x}", sys::random_u64());
            match Self::create_named(&name, size) {
                Err(Error::Os { message, .. }) if message.contains("exists") => continue,
                other => return other,
            }
        }
    }

    /// Creates a block of `size` bytes named `name` (without a leading `/`).
    ///
    /// # Errors
    /// [`Error::Os`] when the name is taken or the system refuses.
    pub fn create_named(name: &str, size: usize) -> Result<SharedMemory> {
        if size == 0 {
            return Err(Error::os(
                "creating shared memory",
                "the size must be positive",
            ));
        }
        let fd = rustix::shm::open(
            path(name).as_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|e| Error::os(format!("creating shared memory `{name}`"), e))?;
        let mapped = rustix::fs::ftruncate(&fd, size as u64)
            .map_err(|e| Error::os(format!("sizing shared memory `{name}`"), e))
            .and_then(|()| Region::map(fd, size));
        match mapped {
            Ok(region) => Ok(SharedMemory {
                region,
                name: name.to_string(),
                owner: true,
            }),
            Err(e) => {
                if let Err(unlink) = rustix::shm::unlink(path(name).as_str()) {
                    tracing::warn!(name, error = %unlink, "cannot unlink a half-made block");
                }
                Err(e)
            }
        }
    }

    /// Attaches to the block named `name`.
    ///
    /// # Errors
    /// [`Error::Os`] when there is no such block.
    pub fn open(name: &str) -> Result<SharedMemory> {
        let fd = rustix::shm::open(path(name).as_str(), OFlags::RDWR, Mode::empty())
            .map_err(|e| Error::os(format!("opening shared memory `{name}`"), e))?;
        Ok(SharedMemory {
            region: Region::from_fd(fd)?,
            name: name.to_string(),
            owner: false,
        })
    }

    /// The block's name (give it to [`open`](SharedMemory::open)).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The size in bytes.
    pub fn size(&self) -> usize {
        self.region.len()
    }

    /// Whether this handle created the block (and unlinks it on drop).
    pub fn is_owner(&self) -> bool {
        self.owner
    }

    fn check(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size() => Ok(()),
            _ => Err(Error::OutOfBounds {
                index: offset.saturating_add(len),
                len: self.size(),
            }),
        }
    }

    /// Copies `buf.len()` bytes from `offset` into `buf`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] past the end.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.check(offset, buf.len())?;
        self.region.read(offset, buf);
        Ok(())
    }

    /// Copies `data` into the block at `offset`.
    ///
    /// # Errors
    /// [`Error::OutOfBounds`] past the end.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check(offset, data.len())?;
        self.region.write(offset, data);
        Ok(())
    }

    /// A copy of the whole block.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.size()];
        self.region.read(0, &mut out);
        out
    }

    /// The block's first byte, for code that maps its own structures onto it. The
    /// memory is shared with other processes: accesses must be synchronised by the
    /// caller, and the pointer is valid while this handle lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.region.as_ptr()
    }

    /// Removes the name now (Python's `unlink()`); attached processes keep their
    /// mapping. The owner's drop does this.
    ///
    /// # Errors
    /// [`Error::Os`] when the name is already gone.
    pub fn unlink(&mut self) -> Result<()> {
        self.owner = false;
        rustix::shm::unlink(path(&self.name).as_str())
            .map_err(|e| Error::os(format!("unlinking shared memory `{}`", self.name), e))
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        if self.owner
            && let Err(e) = self.unlink()
        {
            tracing::warn!(name = %self.name, error = %e, "unlinking shared memory at drop");
        }
    }
}

impl Serialize for SharedMemory {
    /// Serialises as the block's name.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.name.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    /// Attaches to the block by name (not as its owner).
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        SharedMemory::open(&name).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("size", &self.size())
            .field("owner", &self.owner)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_exclusive_and_bounds_checked() {
        let a = SharedMemory::create(16).unwrap();
        assert!(a.is_owner());
        assert!(SharedMemory::create_named(a.name(), 16).is_err());
        assert!(a.write(10, &[0; 7]).is_err());
        let bytes = braid_core::Codec::Binary.encode(&a).unwrap();
        let b: SharedMemory = braid_core::Codec::Binary.decode(&bytes).unwrap();
        assert!(!b.is_owner());
        b.write(15, &[9]).unwrap();
        assert_eq!(a.to_vec()[15], 9);
        assert!(!std::path::Path::new("/dev/shm").join(a.name()).exists() || a.is_owner());
    }
}
