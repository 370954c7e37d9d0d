//! Passing file descriptors inside serde values, the way Python pickles a `Lock` or a
//! `Connection` into a child's start arguments.
//!
//! While a process's start arguments are encoded ([`collect`]), a shared object
//! (`Lock`, `Queue`, `Connection`, ...) serialises as the index of a duplicate of its file
//! descriptor, which travels to the child beside the arguments (`SCM_RIGHTS`). The child
//! [`install`]s the descriptors it received, and each object's `Deserialize` takes its
//! descriptor back by index. Outside a start, such objects refuse to serialise: like
//! Python, they are shared by inheritance, not sent through queues.

use std::cell::RefCell;
use std::os::fd::{BorrowedFd, OwnedFd};

use parking_lot::Mutex;
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

thread_local! {
    static COLLECTOR: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    /// Why the last shared object refused to serialise: postcard drops custom messages.
    static REFUSAL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Encodes `value` in the binary codec, keeping the reason when a shared object inside
/// refuses to serialise (the codec itself only says "serialization error").
pub(crate) fn encode<T: serde::Serialize + ?Sized>(
    value: &T,
) -> Result<Vec<u8>, braid_core::Error> {
    REFUSAL.with(|r| r.borrow_mut().take());
    braid_core::Codec::Binary.encode(value).map_err(|e| {
        match REFUSAL.with(|r| r.borrow_mut().take()) {
            Some(why) => braid_core::Error::Encode(why),
            None => e,
        }
    })
}

/// The descriptors this process received at its start, taken one by one.
static INHERITED: Mutex<Vec<Option<OwnedFd>>> = Mutex::new(Vec::new());

/// Appends the binary encoding of `value` to `out` (the pool's chunks), with the same
/// care for refusal messages as [`encode`]; on failure `out` is left as it was.
pub(crate) fn encode_into<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), braid_core::Error> {
    struct Appender<'a>(&'a mut Vec<u8>);
    impl Extend<u8> for Appender<'_> {
        fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
            self.0.extend(iter);
        }
    }
    let len = out.len();
    REFUSAL.with(|r| r.borrow_mut().take());
    match postcard::to_extend(value, Appender(out)) {
        Ok(_) => Ok(()),
        Err(e) => {
            out.truncate(len);
            Err(braid_core::Error::Encode(
                REFUSAL
                    .with(|r| r.borrow_mut().take())
                    .unwrap_or_else(|| e.to_string()),
            ))
        }
    }
}

/// Runs `encode` with descriptor collection on; returns its value and the descriptors
/// the shared objects inside it serialised.
pub(crate) fn collect<T>(encode: impl FnOnce() -> T) -> (T, Vec<OwnedFd>) {
    let outer = COLLECTOR.with(|c| c.borrow_mut().replace(Vec::new()));
    let value = encode();
    let fds = COLLECTOR.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    (value, fds.unwrap_or_default())
}

/// Serialises a shared object as the index of a duplicate of `fd`.
pub(crate) fn serialize_fd<S: Serializer>(
    fd: BorrowedFd<'_>,
    what: &'static str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let index = COLLECTOR.with(|c| match c.borrow_mut().as_mut() {
        Some(fds) => {
            let dup = fd.try_clone_to_owned().map_err(|e| {
                S::Error::custom(format!("cannot duplicate the {what}'s descriptor: {e}"))
            })?;
            fds.push(dup);
            u32::try_from(fds.len() - 1).map_err(|_| S::Error::custom("too many descriptors"))
        }
        None => {
            let why = format!(
                "a {what} can only be passed to a process in its start arguments (a Process's \
                 arguments or a pool's initializer arguments), as in Python; it cannot be sent \
                 through a queue, a pipe or a manager"
            );
            REFUSAL.with(|r| *r.borrow_mut() = Some(why.clone()));
            Err(S::Error::custom(why))
        }
    })?;
    serializer.serialize_u32(index)
}

/// Deserialises a shared object's descriptor, taking it from those this process
/// received at its start.
pub(crate) fn deserialize_fd<'de, D: Deserializer<'de>>(
    deserializer: D,
    what: &'static str,
) -> Result<OwnedFd, D::Error> {
    let index = u32::deserialize(deserializer)? as usize;
    INHERITED
        .lock()
        .get_mut(index)
        .and_then(Option::take)
        .ok_or_else(|| {
            D::Error::custom(format!(
                "no descriptor #{index} for a {what} was passed to this process (shared objects \
                 decode only in the process started with them, once)"
            ))
        })
}

/// Makes the descriptors received at start available to [`deserialize_fd`].
pub(crate) fn install(fds: Vec<OwnedFd>) {
    *INHERITED.lock() = fds.into_iter().map(Some).collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    struct Shared(OwnedFd);

    impl serde::Serialize for Shared {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize_fd(self.0.as_fd(), "test object", s)
        }
    }

    #[test]
    fn outside_a_start_shared_objects_refuse_to_serialise() {
        let fd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let err = encode(&(1, Shared(fd))).unwrap_err();
        assert!(err.to_string().contains("start arguments"), "{err}");
        assert_eq!(encode(&5u8).unwrap(), [5]);
    }

    #[test]
    fn inside_a_start_they_become_indices() {
        let a = rustix::fs::memfd_create("a", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let b = rustix::fs::memfd_create("b", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        let (bytes, fds) = collect(|| braid_core::Codec::Json.encode(&(Shared(a), 7, Shared(b))));
        assert_eq!(bytes.unwrap(), b"[0,7,1]");
        assert_eq!(fds.len(), 2);
    }
}
