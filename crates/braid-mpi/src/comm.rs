//! [`Comm`]: a communicator, with mpi4py's point-to-point calls: `send`/`recv` of any serde
//! value (the lower-case calls), `send_buf`/`recv_buf` of typed buffers (the upper-case
//! calls), non-blocking [`Request`]s, `sendrecv`, `probe` and `iprobe`.

use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::{DirectSink, Engine, Header, Kind, Message, Pattern, Wait};
use crate::{Element, ElementKind, Error, Result};

/// Where a receive takes its message from: one rank, or any ([`ANY_SOURCE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Any rank (`MPI.ANY_SOURCE`).
    Any,
    /// This rank of the communicator.
    Rank(usize),
}

impl From<usize> for Source {
    fn from(rank: usize) -> Source {
        Source::Rank(rank)
    }
}

/// Which tags a receive accepts: one, or any ([`ANY_TAG`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagMatch {
    /// Any tag (`MPI.ANY_TAG`).
    Any,
    /// This tag.
    Tag(i32),
}

impl From<i32> for TagMatch {
    fn from(tag: i32) -> TagMatch {
        TagMatch::Tag(tag)
    }
}

/// `MPI.ANY_SOURCE`: receive from whichever rank sends first.
pub const ANY_SOURCE: Source = Source::Any;
/// `MPI.ANY_TAG`: receive a message whatever its tag.
pub const ANY_TAG: TagMatch = TagMatch::Any;

/// What a receive (or probe) found: who sent it, with which tag, and how big it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    source: usize,
    tag: i32,
    bytes: usize,
    element: Option<ElementKind>,
    object: bool,
}

impl Status {
    #[cfg(feature = "mpi")]
    pub(crate) fn new(
        source: usize,
        tag: i32,
        bytes: usize,
        element: Option<ElementKind>,
        object: bool,
    ) -> Status {
        Status {
            source,
            tag,
            bytes,
            element,
            object,
        }
    }

    /// The sender's rank in the communicator (`status.Get_source()`).
    pub fn source(&self) -> usize {
        self.source
    }

    /// The message's tag (`status.Get_tag()`).
    pub fn tag(&self) -> i32 {
        self.tag
    }

    /// The number of elements of a buffer message, or the encoded bytes of an object
    /// (`status.Get_count()`). On the Open MPI backend a probed buffer's element type is
    /// not known ([`Status::element`] is `None`), so this counts its bytes there; use
    /// [`Status::count_of`].
    pub fn count(&self) -> usize {
        match self.element {
            Some(kind) => self.bytes / kind_size(kind),
            None => self.bytes,
        }
    }

    /// The number of elements of type `T` the payload holds, `None` when its bytes are not
    /// a whole number of them (`status.Get_count(datatype)`).
    pub fn count_of<T: Element>(&self) -> Option<usize> {
        self.bytes
            .is_multiple_of(size_of::<T>())
            .then(|| self.bytes / size_of::<T>())
    }

    /// The payload's size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The element type of a buffer message; `None` for an object, and on the Open MPI
    /// backend for a buffer seen by a probe (MPI messages do not carry their type).
    pub fn element(&self) -> Option<ElementKind> {
        self.element
    }

    /// Whether the message is an object (sent with `send`, not `send_buf`).
    pub fn is_object(&self) -> bool {
        self.object
    }
}

fn kind_size(kind: ElementKind) -> usize {
    match kind {
        ElementKind::U8 | ElementKind::I8 => 1,
        ElementKind::U16 | ElementKind::I16 => 2,
        ElementKind::U32 | ElementKind::I32 | ElementKind::F32 => 4,
        ElementKind::U64 | ElementKind::I64 | ElementKind::F64 => 8,
        ElementKind::LocF64 | ElementKind::LocI64 | ElementKind::LocU64 => 16,
    }
}

pub(crate) struct CommInner {
    pub(crate) engine: Arc<Mutex<Engine>>,
    /// This communicator's id: point-to-point messages use context `2 * id`, collectives
    /// `2 * id + 1`, so that the two never match each other.
    pub(crate) id: u32,
    pub(crate) rank: usize,
    /// World rank of each rank of this communicator.
    pub(crate) members: Vec<usize>,
    /// Rank in this communicator of each world rank.
    pub(crate) lookup: Vec<Option<usize>>,
}

/// A communicator: a group of ranks and a private space of messages among them, like
/// mpi4py's `MPI.Comm`. [`Comm::dup`] and [`Comm::split`] make new ones; cloning one
/// gives another handle to the same communicator.
///
/// Calls on one rank are made from one thread at a time (the other threads of the rank
/// wait), like `MPI_THREAD_SERIALIZED`.
///
/// ```
/// let sums = braid_mpi::run_threads(3, |comm| {
///     let total: u64 = comm.allreduce(&(comm.rank() as u64), braid_mpi::Op::sum())?;
///     Ok::<_, braid_mpi::Error>(total)
/// })
/// .unwrap();
/// assert!(sums.into_iter().all(|sum| sum.unwrap() == 3));
/// ```
#[derive(Clone)]
pub struct Comm {
    backend: Backend,
}

/// Where a communicator's messages travel.
#[derive(Clone)]
enum Backend {
    /// This crate's shared memory.
    Native(Arc<CommInner>),
    /// An MPI library (`mpirun`).
    #[cfg(feature = "mpi")]
    OpenMpi(Arc<crate::openmpi::MpiComm>),
}

/// The backend a communicator runs on ([`Comm::backend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// This crate's shared-memory backend (`braid run`, [`launch`](crate::launch),
    /// [`run_threads`](crate::run_threads)).
    Native,
    /// Open MPI (or another MPI library) under `mpirun`: the cargo feature `mpi`.
    OpenMpi,
}

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = self.mpi() {
            return f
                .debug_struct("Comm")
                .field("backend", &"Open MPI")
                .field("rank", &mpi.rank())
                .field("size", &mpi.size())
                .finish();
        }
        f.debug_struct("Comm")
            .field("id", &self.inner().id)
            .field("rank", &self.inner().rank)
            .field("size", &self.inner().members.len())
            .finish()
    }
}

pub(crate) fn decode<T: DeserializeOwned>(source: usize, tag: i32, data: &[u8]) -> Result<T> {
    match postcard::take_from_bytes::<T>(data) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(Error::Decode {
            source_rank: source,
            tag,
            reason: format!(
                "{} bytes left over: the object is of another type",
                rest.len()
            ),
        }),
        Err(e) => Err(Error::Decode {
            source_rank: source,
            tag,
            reason: e.to_string(),
        }),
    }
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| Error::Encode(e.to_string()))
}

impl Comm {
    /// The native backend's state; every public method dispatches Open MPI
    /// communicators before it gets here.
    pub(crate) fn inner(&self) -> &CommInner {
        match &self.backend {
            Backend::Native(inner) => inner,
            #[cfg(feature = "mpi")]
            Backend::OpenMpi(_) => {
                unreachable!("a native call on an Open MPI communicator")
            }
        }
    }

    /// The Open MPI communicator, when this is one.
    #[cfg(feature = "mpi")]
    pub(crate) fn mpi(&self) -> Option<&crate::openmpi::MpiComm> {
        match &self.backend {
            Backend::OpenMpi(mpi) => Some(mpi),
            Backend::Native(_) => None,
        }
    }

    #[cfg(feature = "mpi")]
    pub(crate) fn open_mpi(comm: crate::openmpi::MpiComm) -> Comm {
        Comm {
            backend: Backend::OpenMpi(Arc::new(comm)),
        }
    }

    /// Which backend this communicator runs on.
    pub fn backend(&self) -> BackendKind {
        match &self.backend {
            Backend::Native(_) => BackendKind::Native,
            #[cfg(feature = "mpi")]
            Backend::OpenMpi(_) => BackendKind::OpenMpi,
        }
    }

    pub(crate) fn world(engine: Engine) -> Comm {
        let size = engine.size();
        let rank = engine.rank();
        Comm {
            backend: Backend::Native(Arc::new(CommInner {
                engine: Arc::new(Mutex::new(engine)),
                id: 0,
                rank,
                members: (0..size).collect(),
                lookup: (0..size).map(Some).collect(),
            })),
        }
    }

    pub(crate) fn derived(&self, id: u32, members: Vec<usize>) -> Option<Comm> {
        let world_size = self.inner().lookup.len();
        let me = self.world_rank();
        let rank = members.iter().position(|m| *m == me)?;
        let mut lookup = vec![None; world_size];
        for (i, m) in members.iter().enumerate() {
            lookup[*m] = Some(i);
        }
        Some(Comm {
            backend: Backend::Native(Arc::new(CommInner {
                engine: Arc::clone(&self.inner().engine),
                id,
                rank,
                members,
                lookup,
            })),
        })
    }

    /// This rank's number in the communicator, `0..size` (`comm.Get_rank()`).
    pub fn rank(&self) -> usize {
        on_mpi!(self, m => m.rank());
        self.inner().rank
    }

    /// How many ranks the communicator has (`comm.Get_size()`).
    pub fn size(&self) -> usize {
        on_mpi!(self, m => m.size());
        self.inner().members.len()
    }

    /// This rank's number in the world communicator.
    pub fn world_rank(&self) -> usize {
        on_mpi!(self, m => m.world_rank());
        self.inner().members[self.inner().rank]
    }

    pub(crate) fn to_world(&self, rank: usize) -> Result<usize> {
        self.inner().members.get(rank).copied().ok_or_else(|| {
            Error::invalid(format!(
                "rank {rank} is outside a communicator of {} ranks",
                self.size()
            ))
        })
    }

    pub(crate) fn comm_rank_of(&self, world: usize) -> usize {
        self.inner()
            .lookup
            .get(world)
            .copied()
            .flatten()
            .unwrap_or(world)
    }

    pub(crate) fn status_of(&self, src_world: usize, hdr: &Header) -> Status {
        Status {
            source: self.comm_rank_of(src_world),
            tag: hdr.tag,
            bytes: hdr.len as usize,
            element: match hdr.kind {
                Kind::Object | Kind::Handoff => None,
                Kind::Buffer => ElementKind::from_code(hdr.elem),
            },
            object: hdr.kind == Kind::Object,
        }
    }

    pub(crate) fn error_in_comm(&self, error: Error) -> Error {
        match error {
            Error::PeerGone { rank } => Error::PeerGone {
                rank: self.comm_rank_of(rank),
            },
            other => other,
        }
    }

    fn ctx(&self, collective: bool) -> u32 {
        self.inner().id * 2 + u32::from(collective)
    }

    pub(crate) fn pattern(
        &self,
        source: Source,
        tag: TagMatch,
        collective: bool,
    ) -> Result<Pattern> {
        Ok(Pattern {
            ctx: self.ctx(collective),
            src: match source {
                Source::Any => None,
                Source::Rank(r) => Some(self.to_world(r)?),
            },
            tag: match tag {
                TagMatch::Any => None,
                TagMatch::Tag(t) => Some(t),
            },
        })
    }

    fn check_tag(tag: i32) -> Result<()> {
        if tag < 0 {
            return Err(Error::invalid(format!("tag {tag} is negative")));
        }
        Ok(())
    }

    pub(crate) fn header(
        &self,
        kind: Kind,
        elem: u8,
        tag: i32,
        len: usize,
        collective: bool,
    ) -> Header {
        Header {
            kind,
            elem,
            ctx: self.ctx(collective),
            tag,
            len: len as u64,
        }
    }

    pub(crate) fn engine(&self) -> parking_lot::MutexGuard<'_, Engine> {
        self.inner().engine.lock()
    }

    /// Sends raw bytes (internal: collectives use `collective = true`).
    pub(crate) fn send_raw(
        &self,
        kind: Kind,
        elem: u8,
        data: &[u8],
        dest: usize,
        tag: i32,
        collective: bool,
    ) -> Result<()> {
        let dst = self.to_world(dest)?;
        let hdr = self.header(kind, elem, tag, data.len(), collective);
        self.engine()
            .send(dst, hdr, data)
            .map_err(|e| self.error_in_comm(e))
    }

    pub(crate) fn recv_raw(&self, pattern: Pattern) -> Result<Message> {
        self.engine()
            .recv(pattern)
            .map_err(|e| self.error_in_comm(e))
    }

    /// Checks that `msg` is an object and decodes it; on a mismatch the message goes back
    /// to its queue and the error says why.
    pub(crate) fn take_object<T: DeserializeOwned>(&self, msg: Message) -> Result<(T, Status)> {
        let status = self.status_of(msg.src, &msg.hdr);
        if msg.hdr.kind != Kind::Object {
            let error = Error::KindMismatch {
                expected: Kind::Object.name(),
                found: msg.hdr.kind.name(),
                source_rank: status.source,
                tag: status.tag,
            };
            self.engine().requeue(msg);
            return Err(error);
        }
        match decode(status.source, status.tag, &msg.data) {
            Ok(value) => Ok((value, status)),
            Err(error) => {
                self.engine().requeue(msg);
                Err(error)
            }
        }
    }

    /// Checks that `msg` is a buffer of `T` that fits `capacity` elements; on a mismatch
    /// the message goes back to its queue.
    pub(crate) fn check_buffer<T: Element>(
        &self,
        msg: Message,
        capacity: usize,
    ) -> Result<(Message, Status)> {
        let status = self.status_of(msg.src, &msg.hdr);
        let error = if msg.hdr.kind != Kind::Buffer {
            Some(Error::KindMismatch {
                expected: Kind::Buffer.name(),
                found: msg.hdr.kind.name(),
                source_rank: status.source,
                tag: status.tag,
            })
        } else if msg.hdr.elem != T::KIND.code() {
            Some(match ElementKind::from_code(msg.hdr.elem) {
                Some(found) => Error::TypeMismatch {
                    expected: T::KIND,
                    found,
                    source_rank: status.source,
                    tag: status.tag,
                },
                None => Error::Decode {
                    source_rank: status.source,
                    tag: status.tag,
                    reason: format!("unknown element code {}", msg.hdr.elem),
                },
            })
        } else if msg.data.len() / size_of::<T>() > capacity
            || !msg.data.len().is_multiple_of(size_of::<T>())
        {
            Some(Error::Truncated {
                found: msg.data.len() / size_of::<T>(),
                capacity,
                source_rank: status.source,
                tag: status.tag,
            })
        } else {
            None
        };
        match error {
            Some(error) => {
                self.engine().requeue(msg);
                Err(error)
            }
            None => Ok((msg, status)),
        }
    }

    /// Sends any serde value to rank `dest` with `tag` (`comm.send(obj, dest, tag)`).
    /// Returns once the message is in shared memory (it never waits for the receive).
    pub fn send<T: Serialize + ?Sized>(&self, value: &T, dest: usize, tag: i32) -> Result<()> {
        on_mpi!(self, m => m.send(value, dest, tag));
        Self::check_tag(tag)?;
        let dst = self.to_world(dest)?;
        let hdr = self.header(Kind::Object, 0, tag, 0, false);
        self.engine()
            .send_encoded(dst, hdr, |buf| {
                postcard::to_extend(value, buf).map_err(|e| Error::Encode(e.to_string()))
            })
            .map_err(|e| self.error_in_comm(e))
    }

    /// Receives a value (`comm.recv(source, tag)`), waiting for it. A message of another
    /// kind or type is an error and stays queued.
    pub fn recv<T: DeserializeOwned>(
        &self,
        source: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<T> {
        Ok(self.recv_with_status(source, tag)?.0)
    }

    /// Like [`Comm::recv`], with the message's [`Status`].
    pub fn recv_with_status<T: DeserializeOwned>(
        &self,
        source: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<(T, Status)> {
        on_mpi!(self, m => m.recv(source.into(), tag.into()));
        let pattern = self.pattern(source.into(), tag.into(), false)?;
        let mut value = None;
        let mut decode_here = |src: usize, hdr: &Header, bytes: &[u8]| -> Result<()> {
            value = Some(decode(self.comm_rank_of(src), hdr.tag, bytes)?);
            Ok(())
        };
        let got = self
            .engine()
            .recv_direct(pattern, 0, DirectSink::Object(&mut decode_here))
            .map_err(|e| self.error_in_comm(e))?;
        match (got, value) {
            (Ok((src, hdr)), Some(value)) => Ok((value, self.status_of(src, &hdr))),
            (Err(msg), _) => self.take_object(msg),
            (Ok(_), None) => Err(Error::invalid("an object receive completed with no value")),
        }
    }

    /// Sends a typed buffer (`comm.Send(buf, dest, tag)`), straight from `buf` into shared
    /// memory.
    pub fn send_buf<T: Element>(&self, buf: &[T], dest: usize, tag: i32) -> Result<()> {
        on_mpi!(self, m => m.send_buf(buf, dest, tag));
        Self::check_tag(tag)?;
        self.send_raw(
            Kind::Buffer,
            T::KIND.code(),
            bytemuck::cast_slice(buf),
            dest,
            tag,
            false,
        )
    }

    /// Receives a typed buffer into `buf` (`comm.Recv(buf, source, tag)`), straight from
    /// shared memory. The message may be shorter than `buf` ([`Status::count`] says how
    /// long); a longer one, one of another element type, or an object is an error and
    /// stays queued.
    pub fn recv_buf<T: Element>(
        &self,
        buf: &mut [T],
        source: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Status> {
        on_mpi!(self, m => m.recv_buf(buf, source.into(), tag.into()));
        let pattern = self.pattern(source.into(), tag.into(), false)?;
        self.recv_buf_pattern(buf, pattern)
    }

    pub(crate) fn recv_buf_pattern<T: Element>(
        &self,
        buf: &mut [T],
        pattern: Pattern,
    ) -> Result<Status> {
        let capacity = buf.len();
        let got = self.recv_direct_buf(buf, pattern)?;
        self.finish_buffer(got, buf, capacity)
    }

    /// Receives straight into `buf` when the next message matching `pattern` fits it;
    /// otherwise returns that message for the caller to check ([`Comm::finish_buffer`]).
    pub(crate) fn recv_direct_buf<T: Element>(
        &self,
        buf: &mut [T],
        pattern: Pattern,
    ) -> Result<std::result::Result<(usize, Header), Message>> {
        self.engine()
            .recv_direct(
                pattern,
                T::KIND.code(),
                DirectSink::Buf(bytemuck::cast_slice_mut(buf)),
            )
            .map_err(|e| self.error_in_comm(e))
    }

    pub(crate) fn finish_buffer<T: Element>(
        &self,
        got: Result<(usize, Header), Message>,
        buf: &mut [T],
        capacity: usize,
    ) -> Result<Status> {
        match got {
            Ok((src, hdr)) => Ok(self.status_of(src, &hdr)),
            Err(msg) => {
                let (msg, status) = self.check_buffer::<T>(msg, capacity)?;
                bytemuck::cast_slice_mut::<T, u8>(buf)[..msg.data.len()].copy_from_slice(&msg.data);
                Ok(status)
            }
        }
    }

    /// Starts sending a value and returns at once (`comm.isend`); the value is encoded
    /// now, so the caller may drop it.
    pub fn isend<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dest: usize,
        tag: i32,
    ) -> Result<Request<()>> {
        on_mpi!(self, m => Ok(Request::mpi(self.clone(), m.isend(value, dest, tag)?)));
        Self::check_tag(tag)?;
        let bytes = encode(value)?;
        let dst = self.to_world(dest)?;
        let hdr = self.header(Kind::Object, 0, tag, bytes.len(), false);
        let id = self.engine().isend_owned(dst, hdr, bytes)?;
        Ok(Request::send(self.clone(), id))
    }

    /// Starts sending a typed buffer (`comm.Isend`); what does not fit in shared memory
    /// at once is copied, so `buf` is free when this returns.
    pub fn isend_buf<T: Element>(&self, buf: &[T], dest: usize, tag: i32) -> Result<Request<()>> {
        on_mpi!(self, m => Ok(Request::mpi(self.clone(), m.isend_buf(buf, dest, tag)?)));
        Self::check_tag(tag)?;
        let dst = self.to_world(dest)?;
        let bytes: &[u8] = bytemuck::cast_slice(buf);
        let hdr = self.header(Kind::Buffer, T::KIND.code(), tag, bytes.len(), false);
        let id = self.engine().isend(dst, hdr, bytes)?;
        Ok(Request::send(self.clone(), id))
    }

    /// Posts a receive of a value (`comm.irecv`); [`Request::wait`] returns it.
    pub fn irecv<T: DeserializeOwned>(
        &self,
        source: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Request<T>> {
        on_mpi!(self, m => Ok(Request::mpi(self.clone(), m.irecv(source.into(), tag.into())?)));
        let pattern = self.pattern(source.into(), tag.into(), false)?;
        let id = self.engine().irecv(pattern)?;
        Ok(Request::recv_obj(self.clone(), id))
    }

    /// Posts a receive of a typed buffer of at most `capacity` elements (`comm.Irecv`);
    /// [`Request::wait`] returns the elements.
    pub fn irecv_buf<T: Element>(
        &self,
        capacity: usize,
        source: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Request<Vec<T>>> {
        on_mpi!(self, m => Ok(Request::mpi(self.clone(), m.irecv_buf(capacity, source.into(), tag.into())?)));
        let pattern = self.pattern(source.into(), tag.into(), false)?;
        let id = self.engine().irecv(pattern)?;
        Ok(Request::recv_buf(self.clone(), id, capacity))
    }

    /// Sends a value to `dest` and receives one from `source` in one call that cannot
    /// deadlock (`comm.sendrecv`).
    pub fn sendrecv<T: Serialize + ?Sized, U: DeserializeOwned>(
        &self,
        value: &T,
        dest: usize,
        sendtag: i32,
        source: impl Into<Source>,
        recvtag: impl Into<TagMatch>,
    ) -> Result<U> {
        on_mpi!(self, m => m.sendrecv(value, dest, sendtag, source.into(), recvtag.into()));
        let request = self.isend(value, dest, sendtag)?;
        let received = self.recv(source, recvtag)?;
        request.wait()?;
        Ok(received)
    }

    /// Sends a buffer and receives one in one call that cannot deadlock
    /// (`comm.Sendrecv`), with no copy on either side.
    #[allow(clippy::too_many_arguments)]
    pub fn sendrecv_buf<T: Element, U: Element>(
        &self,
        send: &[T],
        dest: usize,
        sendtag: i32,
        recv: &mut [U],
        source: impl Into<Source>,
        recvtag: impl Into<TagMatch>,
    ) -> Result<Status> {
        on_mpi!(self, m => m.sendrecv_buf(send, dest, sendtag, recv, source.into(), recvtag.into()));
        Self::check_tag(sendtag)?;
        let pattern = self.pattern(source.into(), recvtag.into(), false)?;
        self.exchange(send, dest, sendtag, false, recv, pattern)
    }

    pub(crate) fn exchange<T: Element, U: Element>(
        &self,
        send: &[T],
        dest: usize,
        sendtag: i32,
        collective: bool,
        recv: &mut [U],
        pattern: Pattern,
    ) -> Result<Status> {
        let dst = self.to_world(dest)?;
        let bytes: &[u8] = bytemuck::cast_slice(send);
        let hdr = self.header(
            Kind::Buffer,
            T::KIND.code(),
            sendtag,
            bytes.len(),
            collective,
        );
        let capacity = recv.len();
        let got = self
            .engine()
            .exchange(
                dst,
                hdr,
                bytes,
                pattern,
                U::KIND.code(),
                DirectSink::Buf(bytemuck::cast_slice_mut(recv)),
            )
            .map_err(|e| self.error_in_comm(e))?;
        self.finish_buffer(got, recv, capacity)
    }

    /// Waits until a message from `source` with `tag` can be received, without receiving
    /// it (`comm.probe`).
    pub fn probe(&self, source: impl Into<Source>, tag: impl Into<TagMatch>) -> Result<Status> {
        on_mpi!(self, m => m.probe(source.into(), tag.into()));
        let pattern = self.pattern(source.into(), tag.into(), false)?;
        let (src, hdr) = self
            .engine()
            .probe(pattern)
            .map_err(|e| self.error_in_comm(e))?;
        Ok(self.status_of(src, &hdr))
    }

    /// Whether a message from `source` with `tag` can be received now (`comm.iprobe`).
    pub fn iprobe(
        &self,
        source: impl Into<Source>,
        tag: impl Into<TagMatch>,
    ) -> Result<Option<Status>> {
        on_mpi!(self, m => m.iprobe_status(source.into(), tag.into()));
        let pattern = self.pattern(source.into(), tag.into(), false)?;
        let found = self.engine().iprobe(pattern)?;
        Ok(found.map(|(src, hdr)| self.status_of(src, &hdr)))
    }

    /// Aborts the whole job (`comm.Abort()`): every rank's waiting and later calls fail
    /// with [`Error::Aborted`]. This rank goes on; it should return an error too. On the
    /// Open MPI backend this is `MPI_Abort`, which ends every process of the job, this one
    /// included, and does not return.
    pub fn abort(&self) {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = self.mpi() {
            mpi.abort();
        }
        let engine = self.engine();
        engine.segment().abort(engine.rank());
    }
}

type Finish<T> = fn(&Comm, Message, usize) -> Result<(T, Status)>;

enum Pending<T> {
    /// A send that was complete when it started.
    Done,
    Send(u64),
    Recv(u64, Finish<T>, usize),
    Spent,
    #[cfg(feature = "mpi")]
    Mpi(crate::openmpi::MpiPending<T>),
}

/// A non-blocking operation in flight (mpi4py's `Request`): [`Request::wait`] for it,
/// [`Request::test`] whether it is done, or wait for many with [`wait_all`] and
/// [`wait_any`]. Dropping a pending receive cancels it (a message it already holds goes
/// back to its queue); a pending send is still delivered.
pub struct Request<T> {
    comm: Comm,
    pending: Pending<T>,
}

impl<T> std::fmt::Debug for Request<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.pending {
            Pending::Done => "sent",
            Pending::Send(_) => "sending",
            Pending::Recv(..) => "receiving",
            Pending::Spent => "completed",
            #[cfg(feature = "mpi")]
            Pending::Mpi(_) => "pending",
        };
        f.debug_struct("Request").field("state", &state).finish()
    }
}

impl<T> Request<T> {
    #[cfg(feature = "mpi")]
    fn mpi(comm: Comm, pending: crate::openmpi::MpiPending<T>) -> Request<T> {
        Request {
            comm,
            pending: Pending::Mpi(pending),
        }
    }
}

impl Request<()> {
    fn send(comm: Comm, id: Option<u64>) -> Request<()> {
        Request {
            comm,
            pending: match id {
                Some(id) => Pending::Send(id),
                None => Pending::Done,
            },
        }
    }
}

impl<T: Element> Request<Vec<T>> {
    fn recv_buf(comm: Comm, id: u64, capacity: usize) -> Request<Vec<T>> {
        fn finish<T: Element>(
            comm: &Comm,
            msg: Message,
            capacity: usize,
        ) -> Result<(Vec<T>, Status)> {
            let (msg, status) = comm.check_buffer::<T>(msg, capacity)?;
            let mut out = vec![T::zeroed(); msg.data.len() / size_of::<T>()];
            bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(&msg.data);
            Ok((out, status))
        }
        Request {
            comm,
            pending: Pending::Recv(id, finish::<T>, capacity),
        }
    }
}

impl<T> Request<T> {
    fn recv_obj(comm: Comm, id: u64) -> Request<T>
    where
        T: DeserializeOwned,
    {
        fn finish<T: DeserializeOwned>(
            comm: &Comm,
            msg: Message,
            _capacity: usize,
        ) -> Result<(T, Status)> {
            comm.take_object(msg)
        }
        Request {
            comm,
            pending: Pending::Recv(id, finish::<T>, 0),
        }
    }

    fn unit() -> Option<T>
    where
        T: 'static,
    {
        // Sends produce `()`; `T` is `()` exactly when the request is a send.
        (Box::new(()) as Box<dyn std::any::Any>)
            .downcast::<T>()
            .ok()
            .map(|b| *b)
    }

    /// One non-blocking look: the result when done (the request is then spent), else
    /// `None`.
    pub fn test(&mut self) -> Result<Option<T>>
    where
        T: 'static,
    {
        Ok(self.test_status()?.map(|(value, _)| value))
    }

    /// Like [`Request::test`], with the receive's [`Status`] (`None` for sends).
    pub fn test_status(&mut self) -> Result<Option<(T, Option<Status>)>>
    where
        T: 'static,
    {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = self.comm.mpi() {
            let Pending::Mpi(pending) = &mut self.pending else {
                return Err(Error::RequestDone);
            };
            let done = mpi.test(pending)?;
            if done.is_some() {
                self.pending = Pending::Spent;
            }
            return Ok(done.and_then(|got| match got {
                Some((value, status)) => Some((value, Some(status))),
                None => Self::unit().map(|u| (u, None)),
            }));
        }
        let comm = self.comm.clone();
        let mut engine = comm.engine();
        match self.pending {
            Pending::Spent => Err(Error::RequestDone),
            #[cfg(feature = "mpi")]
            Pending::Mpi(_) => Err(Error::invalid("an MPI request on a native communicator")),
            Pending::Done => {
                self.pending = Pending::Spent;
                Ok(Self::unit().map(|u| (u, None)))
            }
            Pending::Send(id) => {
                engine
                    .progress(&mut None)
                    .map_err(|e| comm.error_in_comm(e))?;
                match engine.test_send(id)? {
                    Some(()) => {
                        self.pending = Pending::Spent;
                        Ok(Self::unit().map(|u| (u, None)))
                    }
                    None => Ok(None),
                }
            }
            Pending::Recv(id, finish, capacity) => {
                engine
                    .progress(&mut None)
                    .map_err(|e| comm.error_in_comm(e))?;
                match engine.test_recv(id)? {
                    Some(msg) => {
                        self.pending = Pending::Spent;
                        drop(engine);
                        let (value, status) = finish(&comm, msg, capacity)?;
                        Ok(Some((value, Some(status))))
                    }
                    None => Ok(None),
                }
            }
        }
    }

    /// Waits for the operation (`req.wait()`): a receive returns its value, a send `()`.
    pub fn wait(self) -> Result<T>
    where
        T: 'static,
    {
        Ok(self.wait_status()?.0)
    }

    /// Like [`Request::wait`], with the receive's [`Status`] (`None` for sends).
    pub fn wait_status(mut self) -> Result<(T, Option<Status>)>
    where
        T: 'static,
    {
        let comm = self.comm.clone();
        let id = match self.pending {
            Pending::Send(id) | Pending::Recv(id, ..) => id,
            Pending::Done | Pending::Spent => {
                return self.test_status()?.ok_or(Error::RequestDone);
            }
            #[cfg(feature = "mpi")]
            Pending::Mpi(_) => return crate::openmpi::poll(|| self.test_status()),
        };
        let wait = comm.engine().wait_of(id);
        let result = {
            let mut engine = comm.engine();
            engine.block_until(wait, None, |engine| match &self.pending {
                Pending::Send(id) => Ok(engine.test_send(*id)?.map(|()| None)),
                Pending::Recv(id, ..) => Ok(engine.test_recv(*id)?.map(Some)),
                _ => Err(Error::RequestDone),
            })
        }
        .map_err(|e| comm.error_in_comm(e))?;
        let pending = std::mem::replace(&mut self.pending, Pending::Spent);
        match (pending, result) {
            (Pending::Recv(_, finish, capacity), Some(msg)) => {
                let (value, status) = finish(&comm, msg, capacity)?;
                Ok((value, Some(status)))
            }
            _ => Self::unit().map(|u| (u, None)).ok_or(Error::RequestDone),
        }
    }

    fn id(&self) -> Option<u64> {
        match self.pending {
            Pending::Send(id) | Pending::Recv(id, ..) => Some(id),
            _ => None,
        }
    }
}

impl<T> Drop for Request<T> {
    fn drop(&mut self) {
        #[cfg(feature = "mpi")]
        if matches!(self.pending, Pending::Mpi(_)) {
            if let Pending::Mpi(pending) = std::mem::replace(&mut self.pending, Pending::Spent) {
                crate::openmpi::forget(pending);
            }
            return;
        }
        if let Some(id) = self.id() {
            self.comm.engine().forget(id);
        }
    }
}

/// Waits for every request (`MPI.Request.Waitall`); returns their results in order.
pub fn wait_all<T: 'static>(requests: Vec<Request<T>>) -> Result<Vec<T>> {
    requests.into_iter().map(Request::wait).collect()
}

/// Waits until one of `requests` completes (`MPI.Request.Waitany`); removes it and
/// returns its index and result.
pub fn wait_any<T: 'static>(requests: &mut Vec<Request<T>>) -> Result<(usize, T)> {
    if requests.is_empty() {
        return Err(Error::invalid("wait_any of no requests"));
    }
    let comm = requests[0].comm.clone();
    #[cfg(feature = "mpi")]
    if comm.mpi().is_some() {
        return crate::openmpi::poll(|| {
            for i in 0..requests.len() {
                if let Some(value) = requests[i].test()? {
                    requests.remove(i);
                    return Ok(Some((i, value)));
                }
            }
            Ok(None)
        });
    }
    loop {
        for i in 0..requests.len() {
            if let Some(value) = requests[i].test()? {
                requests.remove(i);
                return Ok((i, value));
            }
        }
        let waits: Vec<Wait> = {
            let engine = comm.engine();
            requests
                .iter()
                .filter_map(|r| r.id().map(|id| engine.wait_of(id)))
                .collect()
        };
        let ids: Vec<u64> = requests.iter().filter_map(Request::id).collect();
        let mut engine = comm.engine();
        engine
            .block_until(Wait::Any(waits), None, |engine| {
                Ok(engine.any_done(&ids).then_some(()))
            })
            .map_err(|e| comm.error_in_comm(e))?;
    }
}

/// Whether every request is done (`MPI.Request.Testall`), without waiting; the results
/// come with a later [`wait_all`].
pub fn test_all<T: 'static>(requests: &[Request<T>]) -> Result<bool> {
    let Some(first) = requests.first() else {
        return Ok(true);
    };
    #[cfg(feature = "mpi")]
    if let Some(mpi) = first.comm.mpi() {
        for request in requests {
            if let Pending::Mpi(pending) = &request.pending
                && !mpi.is_done(pending)?
            {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    let ids: Vec<u64> = requests.iter().filter_map(Request::id).collect();
    let mut engine = first.comm.engine();
    engine.progress(&mut None)?;
    Ok(ids.iter().all(|id| engine.is_done(*id)))
}
