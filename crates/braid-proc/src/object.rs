//! [`SharedObject`]: the shared-memory block behind every cross-process lock, event,
//! semaphore, condition, barrier and value: a small anonymous region with a tag saying
//! what it is, handed to children as a descriptor in their start arguments.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

use serde::{Deserializer, Serializer};

use crate::region::Region;
use crate::{Error, Result, share};

/// Where an object's own fields start (the tag comes first).
const FIELDS: usize = 16;

/// What a shared object is; the tag guards against decoding one kind as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Kind {
    Lock = 0x6272_0001,
    RLock = 0x6272_0002,
    Semaphore = 0x6272_0003,
    Event = 0x6272_0004,
    Condition = 0x6272_0005,
    Barrier = 0x6272_0006,
    Value = 0x6272_0007,
}

/// A tagged shared region; clones share it.
#[derive(Clone)]
pub(crate) struct SharedObject {
    region: Arc<Region>,
}

impl SharedObject {
    /// A zeroed object of `kind` with `size` bytes of fields.
    pub(crate) fn create(kind: Kind, size: usize) -> Result<SharedObject> {
        let region = Region::anonymous(kind.name(), FIELDS + size)?;
        region.u32(0).store(kind as u32, Ordering::Release);
        Ok(SharedObject {
            region: Arc::new(region),
        })
    }

    fn open(fd: OwnedFd, kind: Kind) -> Result<SharedObject> {
        let region = Region::from_fd(fd)?;
        if region.len() < FIELDS || region.u32(0).load(Ordering::Acquire) != kind as u32 {
            return Err(Error::os(
                format!("opening a {}", kind.name()),
                "the shared memory holds another kind of object",
            ));
        }
        Ok(SharedObject {
            region: Arc::new(region),
        })
    }

    /// The size of the fields.
    pub(crate) fn size(&self) -> usize {
        self.region.len() - FIELDS
    }

    pub(crate) fn u8(&self, offset: usize) -> &AtomicU8 {
        self.region.u8(FIELDS + offset)
    }

    pub(crate) fn u16(&self, offset: usize) -> &AtomicU16 {
        self.region.u16(FIELDS + offset)
    }

    pub(crate) fn u32(&self, offset: usize) -> &AtomicU32 {
        self.region.u32(FIELDS + offset)
    }

    pub(crate) fn u64(&self, offset: usize) -> &AtomicU64 {
        self.region.u64(FIELDS + offset)
    }

    /// Serialises as a descriptor for a child's start arguments.
    pub(crate) fn serialize<S: Serializer>(
        &self,
        what: &'static str,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        share::serialize_fd(self.region.fd(), what, serializer)
    }

    /// Takes back a descriptor received at start.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
        what: &'static str,
        kind: Kind,
    ) -> std::result::Result<SharedObject, D::Error> {
        let fd = share::deserialize_fd(deserializer, what)?;
        SharedObject::open(fd, kind).map_err(serde::de::Error::custom)
    }
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Lock => "lock",
            Kind::RLock => "rlock",
            Kind::Semaphore => "semaphore",
            Kind::Event => "event",
            Kind::Condition => "condition",
            Kind::Barrier => "barrier",
            Kind::Value => "value",
        }
    }
}

/// `Serialize`/`Deserialize` for a type holding a `SharedObject` in a field `object`
/// (and built back by `$build`).
macro_rules! shared_serde {
    ($ty:ident, $what:literal, $kind:expr, |$object:ident| $build:expr) => {
        impl serde::Serialize for $ty {
            /// Serialises only into a process's start arguments (a `Process`'s or a pool
            /// initializer's); the child gets a handle on the same object.
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                self.object.serialize($what, s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let $object = crate::object::SharedObject::deserialize(d, $what, $kind)?;
                Ok($build)
            }
        }
    };
}

pub(crate) use shared_serde;
