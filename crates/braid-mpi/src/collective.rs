//! Collective operations of [`Comm`], in object form (mpi4py's lower-case `bcast`,
//! `scatter`, ...) and buffer form (`Bcast`, `Scatter`, ..., here `bcast_buf`,
//! `scatter_buf`, ...), with the v-variants and the reductions.
//!
//! Collectives travel in their own context, so they never match point-to-point
//! messages. As in MPI, every rank of the communicator makes the same collective calls
//! in the same order.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::comm::{Source, TagMatch, decode, encode};
use crate::engine::{DirectSink, Kind};
use crate::handoff::{self, Claim, CopyFailure, Handoff, SINGLE_COPY_MIN, Window};
use crate::{Comm, Element, ElementKind, Error, Op, Result};

/// The error for a hand-off step that came when another was due.
fn handoff_out_of_step(rank: usize, step: &Handoff) -> Error {
    Error::invalid(format!(
        "single-copy hand-off with rank {rank} out of step: {step:?} came unexpectedly (do all ranks make the same collective calls?)"
    ))
}

const TAG: i32 = 0;

/// A result passed between ranks: the value, or the rank that failed and its error.
type Outcome<T> = std::result::Result<T, (usize, String)>;

fn from_outcome<T>(outcome: Outcome<T>) -> Result<T> {
    outcome.map_err(|(rank, message)| Error::Remote { rank, message })
}

/// Applies `op` to one element with itself, so that an operation the type lacks fails
/// on every rank before any message is sent (instead of at one rank, mid-collective).
fn check_op<T: Element>(op: &Op<T>, send: &[T]) -> Result<()> {
    if let Some(first) = send.first() {
        op.apply(&mut [*first], std::slice::from_ref(first), true)?;
    }
    Ok(())
}

/// A single-copy fold reads and combines this many bytes at a time (they stay in cache).
const FOLD_PIECE: usize = 64 << 10;

/// Buffers of at least this many bytes are all-reduced by halves (each rank combines a
/// share) rather than whole (each rank combines everything).
const HALVING_BYTES: usize = 64 << 10;

/// Two disjoint ranges of `buf`, both mutable.
fn disjoint_mut<T>(
    buf: &mut [T],
    a: std::ops::Range<usize>,
    b: std::ops::Range<usize>,
) -> (&mut [T], &mut [T]) {
    if a.end <= b.start {
        let (low, high) = buf.split_at_mut(b.start);
        (&mut low[a], &mut high[..b.len()])
    } else {
        let (low, high) = buf.split_at_mut(a.start);
        (&mut high[..a.len()], &mut low[b])
    }
}

fn round_trip<T: Serialize + DeserializeOwned>(value: &T, rank: usize) -> Result<T> {
    decode(rank, TAG, &encode(value)?)
}

impl Comm {
    /// Runs `f` with a scratch buffer of `len` elements (contents unspecified), reusing
    /// the rank's buffer from earlier calls.
    fn with_scratch<T: Element, R>(
        &self,
        len: usize,
        f: impl FnOnce(&mut [T]) -> Result<R>,
    ) -> Result<R> {
        let mut words = std::mem::take(&mut self.engine().scratch);
        let bytes = len * size_of::<T>();
        if words.len() * 8 < bytes {
            words = vec![0u64; bytes.div_ceil(8)];
        }
        let result = match bytemuck::try_cast_slice_mut::<u8, T>(
            &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes],
        ) {
            Ok(scratch) => f(scratch),
            Err(e) => Err(Error::invalid(format!("scratch buffer: {e}"))),
        };
        self.engine().scratch = words;
        result
    }

    /// Receives `acc.len()` elements from `source` and combines them into `acc` with `op`
    /// as they arrive (where they lie in shared memory, with no copy); with `send`, sends
    /// that buffer to `source` at the same time. With `init`, each piece of `acc` is
    /// first set from `init` (a fused copy: `acc = init op received`).
    fn coll_recv_fold<T: Element>(
        &self,
        acc: &mut [T],
        source: usize,
        op: &Op<T>,
        acc_is_left: bool,
        send: Option<&[T]>,
        init: Option<&[T]>,
    ) -> Result<()> {
        let pattern = self.pattern(Source::Rank(source), TagMatch::Tag(TAG), true)?;
        let len = acc.len();
        if init.is_some_and(|init| init.len() != len) {
            return Err(Error::invalid("reduction operands of different lengths"));
        }
        let byte_len = std::mem::size_of_val(acc);
        let mut fold = |offset: usize, bytes: &[u8]| -> Result<()> {
            let chunk: &[T] = bytemuck::try_cast_slice(bytes)
                .map_err(|e| Error::invalid(format!("reduction chunk: {e}")))?;
            let range = offset / size_of::<T>()..offset / size_of::<T>() + chunk.len();
            if let Some(init) = init {
                acc[range.clone()].copy_from_slice(&init[range.clone()]);
            }
            op.apply(&mut acc[range], chunk, acc_is_left)
        };
        let sink = DirectSink::Fold {
            len: byte_len,
            fold: &mut fold,
        };
        let got = match send {
            Some(data) => {
                let dst = self.to_world(source)?;
                let bytes: &[u8] = bytemuck::cast_slice(data);
                let hdr = self.header(Kind::Buffer, T::KIND.code(), TAG, bytes.len(), true);
                self.engine()
                    .exchange(dst, hdr, bytes, pattern, T::KIND.code(), sink)
            }
            None => self.engine().recv_direct(pattern, T::KIND.code(), sink),
        }
        .map_err(|e| self.error_in_comm(e))?;
        if let Err(msg) = got {
            if msg.hdr.kind == Kind::Handoff && acc_is_left && send.is_none() {
                // A reduction's large value, folded in by both sides (`handoff_send`).
                return self.handoff_recv(acc, source, &msg.data, "reduce", Some((op, init)));
            }
            // It arrived before this receive was made (or is not what was expected).
            let (msg, status) = self.check_buffer::<T>(msg, len)?;
            if status.count() != len {
                return Err(Error::invalid(format!(
                    "reduce: rank {source} sent {} elements where {len} were expected",
                    status.count()
                )));
            }
            let mut values = vec![T::zeroed(); len];
            bytemuck::cast_slice_mut::<T, u8>(&mut values).copy_from_slice(&msg.data);
            if let Some(init) = init {
                acc.copy_from_slice(init);
            }
            op.apply(acc, &values, acc_is_left)?;
        }
        Ok(())
    }

    fn check_root(&self, root: usize) -> Result<()> {
        if root >= self.size() {
            return Err(Error::invalid(format!(
                "root {root} is outside a communicator of {} ranks",
                self.size()
            )));
        }
        Ok(())
    }

    fn coll_send(&self, data: &[u8], dest: usize) -> Result<()> {
        self.send_raw(Kind::Object, 0, data, dest, TAG, true)
    }

    fn coll_isend(&self, data: Vec<u8>, dest: usize) -> Result<Option<u64>> {
        let dst = self.to_world(dest)?;
        let hdr = self.header(Kind::Object, 0, TAG, data.len(), true);
        self.engine().isend_owned(dst, hdr, data)
    }

    fn coll_isend_buf<T: Element>(&self, data: &[T], dest: usize) -> Result<Option<u64>> {
        let dst = self.to_world(dest)?;
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let hdr = self.header(Kind::Buffer, T::KIND.code(), TAG, bytes.len(), true);
        self.engine().isend(dst, hdr, bytes)
    }

    fn coll_send_buf<T: Element>(&self, data: &[T], dest: usize) -> Result<()> {
        self.send_raw(
            Kind::Buffer,
            T::KIND.code(),
            bytemuck::cast_slice(data),
            dest,
            TAG,
            true,
        )
    }

    fn wait_sends(&self, ids: Vec<Option<u64>>) -> Result<()> {
        for id in ids.into_iter().flatten() {
            let mut engine = self.engine();
            let wait = engine.wait_of(id);
            engine
                .block_until(wait, None, |engine| engine.test_send(id))
                .map_err(|e| self.error_in_comm(e))?;
        }
        Ok(())
    }

    fn coll_recv_bytes(&self, source: usize) -> Result<Vec<u8>> {
        let pattern = self.pattern(Source::Rank(source), TagMatch::Tag(TAG), true)?;
        let msg = self.recv_raw(pattern)?;
        if msg.hdr.kind != Kind::Object {
            return Err(Error::KindMismatch {
                expected: "object",
                found: msg.hdr.kind.name(),
                source_rank: source,
                tag: TAG,
            });
        }
        Ok(msg.data)
    }

    fn coll_recv<T: DeserializeOwned>(&self, source: usize) -> Result<T> {
        decode(source, TAG, &self.coll_recv_bytes(source)?)
    }

    /// Receives exactly `buf.len()` elements from `source` in the collective context.
    fn coll_recv_buf<T: Element>(&self, buf: &mut [T], source: usize, what: &str) -> Result<()> {
        let pattern = self.pattern(Source::Rank(source), TagMatch::Tag(TAG), true)?;
        let status = self.recv_buf_pattern(buf, pattern)?;
        self.check_count(status.count(), buf.len(), source, what)
    }

    /// Like [`Comm::coll_recv_buf`], taking a single-copy hand-off too.
    fn coll_recv_buf_or_handoff<T: Element>(
        &self,
        buf: &mut [T],
        source: usize,
        what: &str,
    ) -> Result<()> {
        let pattern = self.pattern(Source::Rank(source), TagMatch::Tag(TAG), true)?;
        match self.recv_direct_buf(buf, pattern)? {
            Err(msg) if msg.hdr.kind == Kind::Handoff => {
                self.handoff_recv(buf, source, &msg.data, what, None)
            }
            got => {
                let status = self.finish_buffer(got, buf, buf.len())?;
                self.check_count(status.count(), buf.len(), source, what)
            }
        }
    }

    fn check_count(&self, count: usize, want: usize, source: usize, what: &str) -> Result<()> {
        if count != want {
            return Err(Error::invalid(format!(
                "{what}: rank {source} sent {count} elements where {want} were expected"
            )));
        }
        Ok(())
    }

    /// The ranks a binomial tree rooted at `root` links this rank to: its parent and its
    /// children (nearest last).
    fn tree(&self, root: usize) -> (Option<usize>, Vec<usize>) {
        let n = self.size();
        let vr = (self.rank() + n - root) % n;
        let real = |v: usize| (v + root) % n;
        let mut mask = 1;
        let mut parent = None;
        while mask < n {
            if vr & mask != 0 {
                parent = Some(real(vr - mask));
                break;
            }
            mask <<= 1;
        }
        let mut children = Vec::new();
        mask >>= 1;
        while mask > 0 {
            if vr + mask < n {
                children.push(real(vr + mask));
            }
            mask >>= 1;
        }
        (parent, children)
    }

    /// Waits until every rank of the communicator has called it (`comm.barrier()`).
    pub fn barrier(&self) -> Result<()> {
        on_mpi!(self, m => m.barrier());
        let n = self.size();
        let r = self.rank();
        let mut k = 1;
        while k < n {
            self.coll_send(&[], (r + k) % n)?;
            self.coll_recv_bytes((r + n - k) % n)?;
            k *= 2;
        }
        Ok(())
    }

    /// Broadcasts a value from `root` (`comm.bcast(obj, root)`): the root passes
    /// `Some(value)`, the others `None`; every rank gets the value.
    pub fn bcast<T: Serialize + DeserializeOwned>(
        &self,
        value: Option<T>,
        root: usize,
    ) -> Result<T> {
        on_mpi!(self, m => m.bcast(value, root));
        self.check_root(root)?;
        let (parent, children) = self.tree(root);
        let (value, bytes) = match parent {
            None => {
                let value =
                    value.ok_or_else(|| Error::invalid("bcast: the root must pass Some(value)"))?;
                let bytes = encode(&value)?;
                (value, bytes)
            }
            Some(parent) => {
                let bytes = self.coll_recv_bytes(parent)?;
                (decode(parent, TAG, &bytes)?, bytes)
            }
        };
        for child in children {
            self.coll_send(&bytes, child)?;
        }
        Ok(value)
    }

    /// Broadcasts `buf` from `root` into every rank's `buf` of the same length
    /// (`comm.Bcast(buf, root)`).
    ///
    /// Buffers of 1 MiB or more go from each rank to the next in the tree by single-copy
    /// hand-off where the system allows it: both ranks copy one part straight between
    /// their memories, instead of twice through shared memory ([`crate::SINGLE_COPY_ENV`]
    /// turns it off).
    pub fn bcast_buf<T: Element>(&self, buf: &mut [T], root: usize) -> Result<()> {
        on_mpi!(self, m => m.bcast_buf(buf, root));
        self.check_root(root)?;
        let (parent, children) = self.tree(root);
        if let Some(parent) = parent {
            self.coll_recv_buf_or_handoff(buf, parent, "bcast")?;
        }
        let handoff = std::mem::size_of_val(buf) >= SINGLE_COPY_MIN && self.engine().single_copy;
        // A child that refuses (its buffer does not match) does not keep the others from
        // theirs: the first error is returned after every child was served.
        let mut first_error = None;
        for child in children {
            let sent = if handoff {
                self.handoff_send(buf, child, None)
            } else {
                self.coll_send_buf(buf, child)
            };
            if let Err(e) = sent {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Sends `buf` to `dest` by single-copy hand-off (the steps are in `handoff.rs`'s
    /// docs). `dest` receives it with [`Comm::handoff_recv`], which copies it or, in a
    /// reduction (`op`), folds it into its own.
    fn handoff_send<T: Element>(&self, buf: &[T], dest: usize, op: Option<&Op<T>>) -> Result<()> {
        let me = self.to_world(self.rank())?;
        let peer = self.to_world(dest)?;
        let seg = self.engine().segment().clone();
        let bytes: &[u8] = bytemuck::cast_slice(buf);
        let size = size_of::<T>();
        let id = handoff::next_window();
        let window = Window::open(seg.window(me, peer), id);
        let result = (|| {
            self.send_handoff(
                &Handoff::Offer {
                    window: id,
                    open: window.is_some(),
                    pid: std::process::id(),
                    addr: bytes.as_ptr().expose_provenance() as u64,
                    bytes: bytes.len() as u64,
                    elem: T::KIND.code(),
                },
                dest,
            )?;
            let (their_window, pid, addr, push, read, left) = match self.recv_handoff(dest)? {
                Handoff::Accept {
                    window,
                    pid,
                    addr,
                    push,
                    read,
                    left,
                } => (window, pid, addr, push, read, left),
                Handoff::Refuse { reason } => return Err(Error::invalid(reason)),
                other => return Err(handoff_out_of_step(dest, &other)),
            };
            // This side's part is [h, len): written into the receiver's buffer, or folded
            // into it (read, combined, written back).
            let h = handoff::split(bytes.len(), size, push, read);
            let done = if h == bytes.len() {
                0
            } else if !push {
                self.part_failed(&CopyFailure::Closed);
                0
            } else {
                let claim = Claim::take(seg.window(peer, me), their_window, pid);
                match (left, op) {
                    (None, _) => match claim.and_then(|c| c.write(addr + h as u64, &bytes[h..])) {
                        Ok(()) => bytes.len() - h,
                        Err(failure) => {
                            self.part_failed(&failure);
                            0
                        }
                    },
                    (Some(left), Some(op)) => {
                        let mut done = 0;
                        if let Err(failure) = claim.and_then(|claim| {
                            let mut temp = vec![T::zeroed(); FOLD_PIECE / size];
                            for piece in buf[h / size..].chunks(temp.len()) {
                                let at = (h + done) as u64;
                                let temp = &mut temp[..piece.len()];
                                claim.read(left + at, bytemuck::cast_slice_mut(temp))?;
                                op.apply(temp, piece, true)
                                    .map_err(|e| CopyFailure::Op(e.to_string()))?;
                                claim.write(addr + at, bytemuck::cast_slice(temp))?;
                                done += size_of_val(piece);
                            }
                            Ok(())
                        }) {
                            self.part_failed(&failure);
                        }
                        done
                    }
                    (Some(_), None) => {
                        return Err(Error::invalid(format!(
                            "single-copy hand-off with rank {dest} out of step: it folds what this rank broadcasts (do all ranks make the same collective calls?)"
                        )));
                    }
                }
            };
            let ok = h + done == bytes.len();
            self.send_handoff(
                &Handoff::Done {
                    ok,
                    done: done as u64,
                },
                dest,
            )?;
            if !ok {
                self.coll_send_buf(&buf[(h + done) / size..], dest)?;
            }
            match self.recv_handoff(dest)? {
                Handoff::Done { ok: true, .. } => {}
                Handoff::Done { ok: false, done } => {
                    let from = usize::try_from(done).unwrap_or(usize::MAX).min(h);
                    self.coll_send_buf(&buf[from / size..h / size], dest)?;
                }
                other => return Err(handoff_out_of_step(dest, &other)),
            }
            Ok(())
        })();
        if let Some(window) = window {
            window.close(seg.other_process(peer));
        }
        result
    }

    /// Checks a hand-off's offer against this rank's buffer of `len` bytes; refuses it (and
    /// returns the error) when they differ.
    fn check_offer<T: Element>(
        &self,
        offer: &[u8],
        len: usize,
        source: usize,
        what: &str,
    ) -> Result<(u64, bool, u32, u64)> {
        let (window, open, pid, addr, bytes, elem) = match decode(source, TAG, offer)? {
            Handoff::Offer {
                window,
                open,
                pid,
                addr,
                bytes,
                elem,
            } => (window, open, pid, addr, bytes, elem),
            other => return Err(handoff_out_of_step(source, &other)),
        };
        if bytes == len as u64 && elem == T::KIND.code() {
            return Ok((window, open, pid, addr));
        }
        let sent = ElementKind::from_code(elem);
        let reason = format!(
            "{what}: rank {source} sent {bytes} bytes of {} where rank {} expected {len} bytes of {:?}",
            sent.map_or_else(|| format!("element code {elem}"), |k| format!("{k:?}")),
            self.rank(),
            T::KIND
        );
        self.send_handoff(
            &Handoff::Refuse {
                reason: reason.clone(),
            },
            source,
        )?;
        Err(match sent {
            Some(found) if found != T::KIND => Error::TypeMismatch {
                expected: T::KIND,
                found,
                source_rank: source,
                tag: TAG,
            },
            _ => Error::invalid(reason),
        })
    }

    /// Receives what `source` hands off with [`Comm::handoff_send`] (`offer` is its first
    /// message) into `acc`: a copy, or with `fold` (the operation and the left operand
    /// when it is not `acc` itself) `acc = left op theirs`. This rank does the head, the
    /// sender the tail.
    fn handoff_recv<T: Element>(
        &self,
        acc: &mut [T],
        source: usize,
        offer: &[u8],
        what: &str,
        fold: Option<(&Op<T>, Option<&[T]>)>,
    ) -> Result<()> {
        let size = size_of::<T>();
        let len = std::mem::size_of_val(acc);
        let (their_window, their_open, pid, addr) =
            self.check_offer::<T>(offer, len, source, what)?;
        if fold.is_some_and(|(_, init)| init.is_some_and(|init| init.len() != acc.len())) {
            return Err(Error::invalid("reduction operands of different lengths"));
        }
        let me = self.to_world(self.rank())?;
        let peer = self.to_world(source)?;
        let (seg, enabled) = {
            let engine = self.engine();
            (engine.segment().clone(), engine.single_copy)
        };
        let id = handoff::next_window();
        let window = enabled
            .then(|| Window::open(seg.window(me, peer), id))
            .flatten();
        // The sender writes the tail if this rank's window is open; this rank reads the
        // head if the sender's is.
        let (push, read) = (window.is_some(), enabled && their_open);
        let left = fold
            .map(|(_, init)| init.map_or(acc.as_ptr(), <[T]>::as_ptr).expose_provenance() as u64);
        let acc_addr = acc.as_mut_ptr().expose_provenance() as u64;
        let result = (|| {
            self.send_handoff(
                &Handoff::Accept {
                    window: id,
                    pid: std::process::id(),
                    addr: acc_addr,
                    push,
                    read,
                    left,
                },
                source,
            )?;
            let h = handoff::split(len, size, push, read);
            let mut done = 0;
            if h > 0 {
                let claim = Claim::take(seg.window(peer, me), their_window, pid);
                let copied = claim.and_then(|claim| match fold {
                    None => {
                        claim.read(addr, &mut bytemuck::cast_slice_mut(acc)[..h])?;
                        done = h;
                        Ok(())
                    }
                    Some((op, init)) => {
                        let mut temp = vec![T::zeroed(); FOLD_PIECE / size];
                        while done < h {
                            let range = done / size..(h.min(done + FOLD_PIECE)) / size;
                            let temp = &mut temp[..range.len()];
                            claim.read(addr + done as u64, bytemuck::cast_slice_mut(temp))?;
                            if let Some(init) = init {
                                acc[range.clone()].copy_from_slice(&init[range.clone()]);
                            }
                            op.apply(&mut acc[range.clone()], temp, true)
                                .map_err(|e| CopyFailure::Op(e.to_string()))?;
                            done += range.len() * size;
                        }
                        Ok(())
                    }
                });
                if let Err(failure) = copied {
                    self.part_failed(&failure);
                }
            }
            self.send_handoff(
                &Handoff::Done {
                    ok: done == h,
                    done: done as u64,
                },
                source,
            )?;
            let theirs = match self.recv_handoff(source)? {
                Handoff::Done { ok: true, .. } => None,
                Handoff::Done { ok: false, done } => {
                    Some(h + usize::try_from(done).unwrap_or(0).min(len - h))
                }
                other => return Err(handoff_out_of_step(source, &other)),
            };
            // What was not copied comes through the ring: first the sender's rest, then
            // this rank's.
            for (from, to) in [
                theirs.map(|from| (from, len)),
                (done < h).then_some((done, h)),
            ]
            .into_iter()
            .flatten()
            {
                let range = from / size..to / size;
                match fold {
                    None => self.coll_recv_buf(&mut acc[range], source, what)?,
                    Some((op, init)) => self.coll_recv_fold(
                        &mut acc[range.clone()],
                        source,
                        op,
                        true,
                        None,
                        init.map(|init| &init[range]),
                    )?,
                }
            }
            Ok(())
        })();
        if let Some(window) = window {
            window.close(seg.other_process(peer));
        }
        result
    }

    /// Logs why a part of a hand-off goes through the ring, and stops this rank's
    /// hand-offs when the system will refuse them again.
    fn part_failed(&self, failure: &CopyFailure) {
        if failure.lasting() {
            tracing::info!(
                error = %failure,
                "single-copy hand-off refused by the system: large buffers go through shared memory from now on"
            );
            self.engine().single_copy = false;
        } else {
            tracing::debug!(error = %failure, "single-copy part sent through shared memory");
        }
    }

    fn send_handoff(&self, step: &Handoff, dest: usize) -> Result<()> {
        self.send_raw(Kind::Handoff, 0, &encode(step)?, dest, TAG, true)
    }

    fn recv_handoff(&self, source: usize) -> Result<Handoff> {
        let pattern = self.pattern(Source::Rank(source), TagMatch::Tag(TAG), true)?;
        let msg = self.recv_raw(pattern)?;
        if msg.hdr.kind != Kind::Handoff {
            return Err(Error::KindMismatch {
                expected: Kind::Handoff.name(),
                found: msg.hdr.kind.name(),
                source_rank: source,
                tag: TAG,
            });
        }
        decode(source, TAG, &msg.data)
    }

    /// Scatters one value to each rank from `root` (`comm.scatter(values, root)`): the
    /// root passes `Some` of exactly `size` values; rank `i` gets the `i`-th.
    pub fn scatter<T: Serialize + DeserializeOwned>(
        &self,
        values: Option<Vec<T>>,
        root: usize,
    ) -> Result<T> {
        on_mpi!(self, m => m.scatter(values, root));
        self.check_root(root)?;
        if self.rank() != root {
            return self.coll_recv(root);
        }
        let values =
            values.ok_or_else(|| Error::invalid("scatter: the root must pass Some(values)"))?;
        if values.len() != self.size() {
            return Err(Error::invalid(format!(
                "scatter: {} values for {} ranks",
                values.len(),
                self.size()
            )));
        }
        let mut mine = None;
        let mut sends = Vec::new();
        for (i, value) in values.into_iter().enumerate() {
            if i == root {
                mine = Some(value);
            } else {
                sends.push(self.coll_isend(encode(&value)?, i)?);
            }
        }
        self.wait_sends(sends)?;
        mine.ok_or_else(|| Error::invalid("scatter: no value for the root"))
    }

    /// Gathers one value from each rank at `root` (`comm.gather(value, root)`): the root
    /// gets `Some` of them in rank order, the others `None`.
    pub fn gather<T: Serialize + DeserializeOwned>(
        &self,
        value: &T,
        root: usize,
    ) -> Result<Option<Vec<T>>> {
        on_mpi!(self, m => m.gather(value, root));
        self.check_root(root)?;
        if self.rank() != root {
            self.coll_send(&encode(value)?, root)?;
            return Ok(None);
        }
        let mut out = Vec::with_capacity(self.size());
        for i in 0..self.size() {
            out.push(if i == root {
                round_trip(value, i)?
            } else {
                self.coll_recv(i)?
            });
        }
        Ok(Some(out))
    }

    /// Gathers one value from each rank at every rank (`comm.allgather(value)`).
    pub fn allgather<T: Serialize + DeserializeOwned>(&self, value: &T) -> Result<Vec<T>> {
        on_mpi!(self, m => m.allgather(value));
        let bytes = encode(value)?;
        let me = self.rank();
        let mut sends = Vec::new();
        for i in (0..self.size()).filter(|i| *i != me) {
            sends.push(self.coll_isend(bytes.clone(), i)?);
        }
        let mut out = Vec::with_capacity(self.size());
        for i in 0..self.size() {
            out.push(if i == me {
                decode(me, TAG, &bytes)?
            } else {
                self.coll_recv(i)?
            });
        }
        self.wait_sends(sends)?;
        Ok(out)
    }

    /// Sends `values[j]` to rank `j` and returns what each rank sent here, in rank order
    /// (`comm.alltoall(values)`).
    pub fn alltoall<T: Serialize + DeserializeOwned>(&self, values: Vec<T>) -> Result<Vec<T>> {
        on_mpi!(self, m => m.alltoall(values));
        let n = self.size();
        if values.len() != n {
            return Err(Error::invalid(format!(
                "alltoall: {} values for {n} ranks",
                values.len()
            )));
        }
        let me = self.rank();
        let mut mine = None;
        let mut sends = Vec::new();
        for (j, value) in values.into_iter().enumerate() {
            if j == me {
                mine = Some(value);
            } else {
                sends.push(self.coll_isend(encode(&value)?, j)?);
            }
        }
        let mut out = Vec::with_capacity(n);
        for j in 0..n {
            if j == me {
                out.push(
                    mine.take()
                        .ok_or_else(|| Error::invalid("alltoall: no value for self"))?,
                );
            } else {
                out.push(self.coll_recv(j)?);
            }
        }
        self.wait_sends(sends)?;
        Ok(out)
    }

    /// Scatters equal blocks of `send` (at the root, `size * recv.len()` elements) into
    /// every rank's `recv` (`comm.Scatter`).
    pub fn scatter_buf<T: Element>(
        &self,
        send: Option<&[T]>,
        recv: &mut [T],
        root: usize,
    ) -> Result<()> {
        on_mpi!(self, m => m.scatter_buf(send, recv, root));
        let k = recv.len();
        let counts = vec![k; self.size()];
        let displs: Vec<usize> = (0..self.size()).map(|i| i * k).collect();
        self.scatterv_buf(send.map(|s| (s, &counts[..], &displs[..])), recv, root)
    }

    /// Scatters blocks of different sizes (`comm.Scatterv`): at the root, `send` is
    /// `(data, counts, displacements)` in elements; rank `i` receives `counts[i]`
    /// elements, which must be its `recv.len()`.
    pub fn scatterv_buf<T: Element>(
        &self,
        send: Option<(&[T], &[usize], &[usize])>,
        recv: &mut [T],
        root: usize,
    ) -> Result<()> {
        on_mpi!(self, m => m.scatterv_buf(send, recv, root));
        self.check_root(root)?;
        if self.rank() != root {
            return self.coll_recv_buf(recv, root, "scatter");
        }
        let (data, counts, displs) =
            send.ok_or_else(|| Error::invalid("scatter: the root must pass Some(send)"))?;
        let blocks = self.blocks(data.len(), counts, displs)?;
        for (i, range) in blocks.iter().enumerate() {
            if i != root {
                self.coll_send_buf(&data[range.clone()], i)?;
            }
        }
        let own = &data[blocks[root].clone()];
        if own.len() != recv.len() {
            return Err(Error::invalid(format!(
                "scatter: the root's block has {} elements, its recv buffer {}",
                own.len(),
                recv.len()
            )));
        }
        recv.copy_from_slice(own);
        Ok(())
    }

    fn blocks(
        &self,
        len: usize,
        counts: &[usize],
        displs: &[usize],
    ) -> Result<Vec<std::ops::Range<usize>>> {
        let n = self.size();
        if counts.len() != n || displs.len() != n {
            return Err(Error::invalid(format!(
                "{} counts and {} displacements for {n} ranks",
                counts.len(),
                displs.len()
            )));
        }
        counts
            .iter()
            .zip(displs)
            .map(|(&count, &displ)| {
                let end = displ
                    .checked_add(count)
                    .filter(|end| *end <= len)
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "block at {displ} of {count} elements is outside a buffer of {len}"
                        ))
                    })?;
                Ok(displ..end)
            })
            .collect()
    }

    /// Gathers equal blocks from every rank into the root's `recv` (`size * send.len()`
    /// elements, in rank order) (`comm.Gather`).
    pub fn gather_buf<T: Element>(
        &self,
        send: &[T],
        recv: Option<&mut [T]>,
        root: usize,
    ) -> Result<()> {
        on_mpi!(self, m => m.gather_buf(send, recv, root));
        let k = send.len();
        let counts = vec![k; self.size()];
        let displs: Vec<usize> = (0..self.size()).map(|i| i * k).collect();
        self.gatherv_buf(send, recv.map(|r| (r, &counts[..], &displs[..])), root)
    }

    /// Gathers blocks of different sizes at the root (`comm.Gatherv`): `recv` is
    /// `(data, counts, displacements)` there; rank `i` sends `counts[i]` elements.
    pub fn gatherv_buf<T: Element>(
        &self,
        send: &[T],
        recv: Option<(&mut [T], &[usize], &[usize])>,
        root: usize,
    ) -> Result<()> {
        on_mpi!(self, m => m.gatherv_buf(send, recv, root));
        self.check_root(root)?;
        if self.rank() != root {
            return self.coll_send_buf(send, root);
        }
        let (data, counts, displs) =
            recv.ok_or_else(|| Error::invalid("gather: the root must pass Some(recv)"))?;
        let blocks = self.blocks(data.len(), counts, displs)?;
        for (i, range) in blocks.into_iter().enumerate() {
            if i == root {
                if range.len() != send.len() {
                    return Err(Error::invalid(format!(
                        "gather: the root sends {} elements into a block of {}",
                        send.len(),
                        range.len()
                    )));
                }
                data[range].copy_from_slice(send);
            } else {
                self.coll_recv_buf(&mut data[range], i, "gather")?;
            }
        }
        Ok(())
    }

    /// Gathers equal blocks from every rank into every rank's `recv` (`comm.Allgather`).
    pub fn allgather_buf<T: Element>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        on_mpi!(self, m => m.allgather_buf(send, recv));
        let k = send.len();
        let counts = vec![k; self.size()];
        let displs: Vec<usize> = (0..self.size()).map(|i| i * k).collect();
        self.allgatherv_buf(send, recv, &counts, &displs)
    }

    /// Gathers blocks of different sizes into every rank's `recv` (`comm.Allgatherv`):
    /// rank `i`'s block has `counts[i]` elements at `displs[i]`.
    pub fn allgatherv_buf<T: Element>(
        &self,
        send: &[T],
        recv: &mut [T],
        counts: &[usize],
        displs: &[usize],
    ) -> Result<()> {
        on_mpi!(self, m => m.allgatherv_buf(send, recv, counts, displs));
        let blocks = self.blocks(recv.len(), counts, displs)?;
        let me = self.rank();
        if blocks[me].len() != send.len() {
            return Err(Error::invalid(format!(
                "allgather: this rank sends {} elements into a block of {}",
                send.len(),
                blocks[me].len()
            )));
        }
        let mut sends = Vec::new();
        for i in (0..self.size()).filter(|i| *i != me) {
            sends.push(self.coll_isend_buf(send, i)?);
        }
        for (i, range) in blocks.into_iter().enumerate() {
            if i == me {
                recv[range].copy_from_slice(send);
            } else {
                self.coll_recv_buf(&mut recv[range], i, "allgather")?;
            }
        }
        self.wait_sends(sends)
    }

    /// Sends block `j` of `send` to rank `j` and receives rank `j`'s block into block `j`
    /// of `recv` (`comm.Alltoall`); both hold `size` equal blocks.
    pub fn alltoall_buf<T: Element>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        on_mpi!(self, m => m.alltoall_buf(send, recv));
        let n = self.size();
        if send.len() != recv.len() || !send.len().is_multiple_of(n) {
            return Err(Error::invalid(format!(
                "alltoall: send ({}) and recv ({}) must hold {n} equal blocks",
                send.len(),
                recv.len()
            )));
        }
        let k = send.len() / n;
        let me = self.rank();
        let mut sends = Vec::new();
        for j in (0..n).filter(|j| *j != me) {
            sends.push(self.coll_isend_buf(&send[j * k..(j + 1) * k], j)?);
        }
        for j in 0..n {
            let block = &mut recv[j * k..(j + 1) * k];
            if j == me {
                block.copy_from_slice(&send[j * k..(j + 1) * k]);
            } else {
                self.coll_recv_buf(block, j, "alltoall")?;
            }
        }
        self.wait_sends(sends)
    }

    /// Combines every rank's value with `op` at `root` (`comm.reduce(value, op, root)`), in
    /// rank order: the root gets `Some(v0 op v1 op ...)`, the others `None`.
    pub fn reduce<T: Serialize + DeserializeOwned + 'static>(
        &self,
        value: &T,
        op: Op<T>,
        root: usize,
    ) -> Result<Option<T>> {
        on_mpi!(self, m => m.reduce(value, op, root));
        self.check_root(root)?;
        if self.rank() != root {
            self.coll_send(&encode(value)?, root)?;
            return Ok(None);
        }
        // Every rank's value is received even after the operation failed, so that none is
        // left behind to confuse the next collective.
        let mut acc: Option<Result<T>> = None;
        for i in 0..self.size() {
            let x = if i == root {
                round_trip(value, i)
            } else {
                self.coll_recv(i)
            };
            acc = Some(match (acc, x) {
                (None, x) => x,
                (Some(Ok(a)), Ok(x)) => op.apply_one(a, x),
                (Some(Err(e)), _) | (Some(Ok(_)), Err(e)) => Err(e),
            });
        }
        acc.unwrap_or_else(|| Err(Error::invalid("reduce over no ranks")))
            .map(Some)
    }

    /// Like [`Comm::reduce`], with the result on every rank (`comm.allreduce`). When the
    /// operation fails at the root, every rank gets the error.
    pub fn allreduce<T: Serialize + DeserializeOwned + 'static>(
        &self,
        value: &T,
        op: Op<T>,
    ) -> Result<T> {
        on_mpi!(self, m => m.allreduce(value, op));
        let reduced = self.reduce(value, op, 0);
        let shared: Outcome<T> = match (self.rank(), reduced) {
            (0, Ok(value)) => self.bcast(
                Some(Ok(
                    value.ok_or_else(|| Error::invalid("no result at the root"))?
                )),
                0,
            )?,
            (0, Err(e)) => {
                drop(self.bcast::<Outcome<T>>(Some(Err((0, e.to_string()))), 0)?);
                return Err(e);
            }
            (_, Ok(_)) => self.bcast(None, 0)?,
            (_, Err(e)) => return Err(e),
        };
        from_outcome(shared)
    }

    /// Inclusive prefix reduction (`comm.scan`): rank `i` gets `v0 op ... op vi`.
    pub fn scan<T: Serialize + DeserializeOwned + 'static>(
        &self,
        value: &T,
        op: Op<T>,
    ) -> Result<T> {
        on_mpi!(self, m => m.scan(value, op));
        let r = self.rank();
        let result: Result<T> = if r == 0 {
            round_trip(value, r)
        } else {
            from_outcome(self.coll_recv::<Outcome<T>>(r - 1)?)
                .and_then(|prefix| op.apply_one(prefix, round_trip(value, r)?))
        };
        self.pass_on(&result)?;
        result
    }

    /// Exclusive prefix reduction (`comm.exscan`): rank `i > 0` gets
    /// `Some(v0 op ... op v(i-1))`, rank 0 gets `None`.
    pub fn exscan<T: Serialize + DeserializeOwned + 'static>(
        &self,
        value: &T,
        op: Op<T>,
    ) -> Result<Option<T>> {
        on_mpi!(self, m => m.exscan(value, op));
        let r = self.rank();
        let prefix_bytes = if r == 0 {
            None
        } else {
            Some(self.coll_recv_bytes(r - 1)?)
        };
        let prefix = |bytes: &[u8]| from_outcome(decode::<Outcome<T>>(r - 1, TAG, bytes)?);
        if r + 1 < self.size() {
            let next = match &prefix_bytes {
                None => round_trip(value, r),
                Some(bytes) => prefix(bytes).and_then(|p| op.apply_one(p, round_trip(value, r)?)),
            };
            self.pass_on(&next)?;
        }
        prefix_bytes.map(|bytes| prefix(&bytes)).transpose()
    }

    /// Sends a prefix (or the error that replaced it) to the next rank of a chain.
    fn pass_on<T: Serialize>(&self, result: &Result<T>) -> Result<()> {
        let r = self.rank();
        if r + 1 < self.size() {
            let outcome: Result<&T, (usize, String)> = match result {
                Ok(value) => Ok(value),
                Err(Error::Remote { rank, message }) => Err((*rank, message.clone())),
                Err(e) => Err((r, e.to_string())),
            };
            self.coll_send(&encode(&outcome)?, r + 1)?;
        }
        Ok(())
    }

    /// Combines every rank's `send` element by element with `op` into the root's `recv`
    /// (`comm.Reduce(send, recv, op, root)`), in rank order.
    ///
    /// A value of 1 MiB or more is combined by single-copy hand-off where the system
    /// allows it: the root folds one half, reading the sending rank's value, and the
    /// sending rank the other, reading and writing the root's running result.
    pub fn reduce_buf<T: Element>(
        &self,
        send: &[T],
        recv: Option<&mut [T]>,
        op: Op<T>,
        root: usize,
    ) -> Result<()> {
        on_mpi!(self, m => m.reduce_buf(send, recv, op, root));
        check_op(&op, send)?;
        self.check_root(root)?;
        if self.rank() != root {
            if std::mem::size_of_val(send) >= SINGLE_COPY_MIN && self.engine().single_copy {
                return self.handoff_send(send, root, Some(&op));
            }
            return self.coll_send_buf(send, root);
        }
        let acc = recv.ok_or_else(|| Error::invalid("reduce: the root must pass Some(recv)"))?;
        if acc.len() != send.len() {
            return Err(Error::invalid(format!(
                "reduce: send has {} elements, recv {}",
                send.len(),
                acc.len()
            )));
        }
        // `acc` holds v0 op ... op v(i-1) once `started`, except that the root's own
        // value is copied in fused with the next fold (`init`).
        let mut started = false;
        let mut init = None;
        for i in 0..self.size() {
            if i == root {
                if started {
                    op.apply(acc, send, true)?;
                } else {
                    init = Some(send);
                    started = true;
                }
            } else if !started {
                self.coll_recv_buf_or_handoff(acc, i, "reduce")?;
                started = true;
            } else {
                self.coll_recv_fold(acc, i, &op, true, None, init.take())?;
            }
        }
        if let Some(init) = init {
            acc.copy_from_slice(init);
        }
        Ok(())
    }

    /// Like [`Comm::reduce_buf`], with the result in every rank's `recv`
    /// (`comm.Allreduce`). On a power-of-two number of ranks, a small buffer is exchanged
    /// whole pairwise (recursive doubling) and a large one by halves: each rank combines
    /// its share (recursive halving), then the shares are gathered back; otherwise it
    /// reduces to rank 0 and broadcasts. Every algorithm keeps rank order.
    pub fn allreduce_buf<T: Element>(&self, send: &[T], recv: &mut [T], op: Op<T>) -> Result<()> {
        on_mpi!(self, m => m.allreduce_buf(send, recv, op));
        check_op(&op, send)?;
        if send.len() != recv.len() {
            return Err(Error::invalid(format!(
                "allreduce: send has {} elements, recv {}",
                send.len(),
                recv.len()
            )));
        }
        let n = self.size();
        if !n.is_power_of_two() {
            self.reduce_buf(send, (self.rank() == 0).then_some(&mut *recv), op, 0)?;
            return self.bcast_buf(recv, 0);
        }
        if n == 1 {
            recv.copy_from_slice(send);
            return Ok(());
        }
        if std::mem::size_of_val(send) >= HALVING_BYTES {
            return self.allreduce_halving(send, recv, &op);
        }
        let me = self.rank();
        // The first exchange sends `send` itself; later ones a copy of the partial result,
        // since `recv` changes while it is combined with what arrives.
        self.coll_recv_fold(recv, me ^ 1, &op, me ^ 1 > me, Some(send), Some(send))?;
        if n == 2 {
            return Ok(());
        }
        self.with_scratch(send.len(), |copy: &mut [T]| {
            let mut mask = 2;
            while mask < n {
                let partner = me ^ mask;
                copy.copy_from_slice(recv);
                // The partner's block of ranks comes before ours when it is lower.
                self.coll_recv_fold(recv, partner, &op, partner > me, Some(copy), None)?;
                mask <<= 1;
            }
            Ok(())
        })
    }

    /// Allreduce on a power-of-two number of ranks by recursive halving, then recursive
    /// doubling: at step `mask` a rank keeps half of its range, sends the other half to
    /// `rank ^ mask` and combines what comes back into the half it kept (the lower block
    /// of ranks on the left, so that the order of ranks holds); then each rank sends its
    /// finished range back up the same steps.
    fn allreduce_halving<T: Element>(&self, send: &[T], recv: &mut [T], op: &Op<T>) -> Result<()> {
        let n = self.size();
        let me = self.rank();
        let mut parents = Vec::new();
        let mut range = 0..send.len();
        let mut mask = 1;
        while mask < n {
            let partner = me ^ mask;
            let mid = range.start + range.len() / 2;
            let (keep, give) = if me & mask == 0 {
                (range.start..mid, mid..range.end)
            } else {
                (mid..range.end, range.start..mid)
            };
            let left = partner > me;
            if mask == 1 {
                self.coll_recv_fold(
                    &mut recv[keep.clone()],
                    partner,
                    op,
                    left,
                    Some(&send[give]),
                    Some(&send[keep.clone()]),
                )?;
            } else {
                let (acc, out) = disjoint_mut(recv, keep.clone(), give);
                self.coll_recv_fold(acc, partner, op, left, Some(out), None)?;
            }
            parents.push(range);
            range = keep;
            mask <<= 1;
        }
        while let Some(parent) = parents.pop() {
            mask >>= 1;
            let partner = me ^ mask;
            let theirs = if range.start == parent.start {
                range.end..parent.end
            } else {
                parent.start..range.start
            };
            let want = theirs.len();
            let (into, mine) = disjoint_mut(recv, theirs, range);
            let pattern = self.pattern(Source::Rank(partner), TagMatch::Tag(TAG), true)?;
            let status = self.exchange(&*mine, partner, TAG, true, into, pattern)?;
            if status.count() != want {
                return Err(Error::invalid(format!(
                    "allreduce: rank {partner} sent {} elements where {want} were expected",
                    status.count()
                )));
            }
            range = parent;
        }
        Ok(())
    }

    /// Inclusive prefix reduction of buffers (`comm.Scan`): rank `i`'s `recv` gets
    /// `send0 op ... op sendi`, element by element.
    pub fn scan_buf<T: Element>(&self, send: &[T], recv: &mut [T], op: Op<T>) -> Result<()> {
        on_mpi!(self, m => m.scan_buf(send, recv, op));
        check_op(&op, send)?;
        if send.len() != recv.len() {
            return Err(Error::invalid("scan: send and recv differ in length"));
        }
        let r = self.rank();
        if r == 0 {
            recv.copy_from_slice(send);
        } else {
            self.coll_recv_buf(recv, r - 1, "scan")?;
            op.apply(recv, send, true)?;
        }
        if r + 1 < self.size() {
            self.coll_send_buf(recv, r + 1)?;
        }
        Ok(())
    }

    /// Exclusive prefix reduction of buffers (`comm.Exscan`): rank `i > 0`'s `recv` gets
    /// `send0 op ... op send(i-1)`; rank 0's `recv` is left as it is.
    pub fn exscan_buf<T: Element>(&self, send: &[T], recv: &mut [T], op: Op<T>) -> Result<()> {
        on_mpi!(self, m => m.exscan_buf(send, recv, op));
        check_op(&op, send)?;
        if send.len() != recv.len() {
            return Err(Error::invalid("exscan: send and recv differ in length"));
        }
        let r = self.rank();
        if r > 0 {
            self.coll_recv_buf(recv, r - 1, "exscan")?;
        }
        if r + 1 < self.size() {
            if r == 0 {
                self.coll_send_buf(send, r + 1)?;
            } else {
                let mut next = recv.to_vec();
                op.apply(&mut next, send, true)?;
                self.coll_send_buf(&next, r + 1)?;
            }
        }
        Ok(())
    }
}
