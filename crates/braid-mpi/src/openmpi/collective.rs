//! Collectives, reductions and new communicators of the Open MPI backend: buffers go
//! through MPI's own collectives with the element's datatype (so mpi4py ranks can take
//! part); objects are byte collectives of their encodings.

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use mpi::ffi;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{MpiComm, bytes_type, check, datatype, is_loc, lock, to_int};
use crate::comm::{decode, encode};
use crate::{Element, ElementKind, Error, Op, Result};

/// A result passed between ranks: the value, or the rank that failed and its error.
type Outcome<T> = std::result::Result<T, (usize, String)>;

/// Applies `op` to one element with itself, so that an operation the type lacks fails on
/// every rank before MPI is called.
fn check_op<T: Element>(op: &Op<T>, send: &[T]) -> Result<()> {
    if let Some(first) = send.first() {
        op.apply(&mut [*first], std::slice::from_ref(first), true)?;
    }
    Ok(())
}

/// The blocks of a v-collective, checked: one per rank, inside `len`, and (for receives)
/// not overlapping.
fn blocks(
    n: usize,
    len: usize,
    counts: &[usize],
    displs: &[usize],
    disjoint: bool,
) -> Result<(Vec<c_int>, Vec<c_int>)> {
    if counts.len() != n || displs.len() != n {
        return Err(Error::invalid(format!(
            "{} counts and {} displacements for {n} ranks",
            counts.len(),
            displs.len()
        )));
    }
    let mut ranges = Vec::with_capacity(n);
    for (&count, &displ) in counts.iter().zip(displs) {
        let end = displ
            .checked_add(count)
            .filter(|end| *end <= len)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "block at {displ} of {count} elements is outside a buffer of {len}"
                ))
            })?;
        if count > 0 {
            ranges.push(displ..end);
        }
    }
    if disjoint {
        ranges.sort_by_key(|r| r.start);
        if ranges.windows(2).any(|w| w[0].end > w[1].start) {
            return Err(Error::invalid("the receive blocks overlap"));
        }
    }
    let counts = counts
        .iter()
        .map(|c| to_int(*c, "a count"))
        .collect::<Result<_>>()?;
    let displs = displs
        .iter()
        .map(|d| to_int(*d, "a displacement"))
        .collect::<Result<_>>()?;
    Ok((counts, displs))
}

/// The counts or displacements a v-collective passes: null where this rank has none (MPI
/// reads them at the root only).
fn ptr_or_null(values: &[c_int]) -> *const c_int {
    if values.is_empty() {
        ptr::null()
    } else {
        values.as_ptr()
    }
}

/// The reduction an [`Op`] is on MPI: one of MPI's predefined operations where MPI defines
/// it for the type, else a user operation that calls the `Op`.
fn builtin_op<T: Element>(op: &Op<T>) -> Option<ffi::MPI_Op> {
    let kind = T::KIND;
    let integer = !matches!(kind, ElementKind::F32 | ElementKind::F64) && !is_loc(kind);
    let numeric = !is_loc(kind);
    // SAFETY: reading MPI's predefined operation handles.
    unsafe {
        match op.name() {
            "SUM" if numeric => Some(ffi::RSMPI_SUM),
            "PROD" if numeric => Some(ffi::RSMPI_PROD),
            "MIN" if numeric => Some(ffi::RSMPI_MIN),
            "MAX" if numeric => Some(ffi::RSMPI_MAX),
            "LAND" if integer => Some(ffi::RSMPI_LAND),
            "LOR" if integer => Some(ffi::RSMPI_LOR),
            "BAND" if integer => Some(ffi::RSMPI_BAND),
            "BOR" if integer => Some(ffi::RSMPI_BOR),
            _ => None,
        }
    }
}

/// The `Op` a user operation of the reduction in progress applies (there is one at a
/// time: reductions run under the lock).
static ACTIVE_OP: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

struct ActiveOp<'a, T> {
    op: &'a Op<T>,
    error: Option<Error>,
}

/// MPI's user function: `inoutvec[i] = invec[i] op inoutvec[i]`, where `invec` comes from
/// lower ranks.
///
/// # Safety
/// Only MPI calls it, through the operation [`with_op`] creates for this `T`: both
/// vectors hold `*len` elements of `T`'s datatype.
// SAFETY: the signature is MPI_User_function's; the body's own block says why each
// dereference holds.
unsafe extern "C" fn user_function<T: Element>(
    invec: *mut c_void,
    inoutvec: *mut c_void,
    len: *mut c_int,
    _datatype: *mut ffi::MPI_Datatype,
) {
    let active = ACTIVE_OP.load(Ordering::Acquire).cast::<ActiveOp<'_, T>>();
    if active.is_null() || len.is_null() {
        return;
    }
    // SAFETY: `with_op` points ACTIVE_OP at an `ActiveOp<T>` of this `T` (the datatype of
    // the reduction) that outlives the MPI call running this function; MPI passes `len`
    // elements of that datatype in each vector, aligned as the caller's buffers or MPI's
    // own allocations (at least 8 bytes).
    unsafe {
        let active = &mut *active;
        let n = usize::try_from(*len).unwrap_or(0);
        let input = std::slice::from_raw_parts(invec.cast::<T>(), n);
        let inout = std::slice::from_raw_parts_mut(inoutvec.cast::<T>(), n);
        if let Err(e) = active.op.apply(inout, input, false) {
            active.error.get_or_insert(e);
        }
    }
}

/// Runs `f` with the MPI operation for `op` (the caller holds the lock).
fn with_op<T: Element>(op: &Op<T>, f: impl FnOnce(ffi::MPI_Op) -> Result<()>) -> Result<()> {
    if let Some(builtin) = builtin_op(op) {
        return f(builtin);
    }
    let mut active = ActiveOp { op, error: None };
    let mut mpi_op = ffi::MPI_Op(ptr::null_mut());
    // SAFETY: `user_function::<T>` reads ACTIVE_OP, set just below for the duration of `f`.
    check(
        unsafe {
            ffi::MPI_Op_create(
                Some(user_function::<T>),
                c_int::from(op.is_commutative()),
                &mut mpi_op,
            )
        },
        "MPI_Op_create",
    )?;
    ACTIVE_OP.store(
        (&mut active as *mut ActiveOp<'_, T>).cast(),
        Ordering::Release,
    );
    let result = f(mpi_op);
    ACTIVE_OP.store(ptr::null_mut(), Ordering::Release);
    // SAFETY: the operation created above, no longer in use.
    let freed = check(unsafe { ffi::MPI_Op_free(&mut mpi_op) }, "MPI_Op_free");
    result?;
    freed?;
    active.error.map_or(Ok(()), Err)
}

impl MpiComm {
    fn check_root(&self, root: usize) -> Result<c_int> {
        if root >= self.size {
            return Err(Error::invalid(format!(
                "root {root} is outside a communicator of {} ranks",
                self.size
            )));
        }
        Ok(root as c_int)
    }

    pub(crate) fn barrier(&self) -> Result<()> {
        let _state = lock();
        // SAFETY: a valid communicator.
        check(unsafe { ffi::MPI_Barrier(self.raw) }, "MPI_Barrier")
    }

    /// `MPI_Bcast` of `count` elements of `datatype` at `buf` (the caller holds the lock).
    fn bcast_raw(
        &self,
        buf: *mut c_void,
        count: usize,
        datatype: ffi::MPI_Datatype,
        root: c_int,
    ) -> Result<()> {
        let count = to_int(count, "the buffer's length")?;
        // SAFETY: the callers pass a buffer of `count` elements of `datatype`.
        check(
            unsafe { ffi::MPI_Bcast(buf, count, datatype, root, self.raw) },
            "MPI_Bcast",
        )
    }

    pub(crate) fn bcast_buf<T: Element>(&self, buf: &mut [T], root: usize) -> Result<()> {
        let root = self.check_root(root)?;
        let _state = lock();
        self.bcast_raw(buf.as_mut_ptr().cast(), buf.len(), datatype(T::KIND)?, root)
    }

    pub(crate) fn bcast<T: Serialize + DeserializeOwned>(
        &self,
        value: Option<T>,
        root: usize,
    ) -> Result<T> {
        let root_c = self.check_root(root)?;
        if self.rank == root {
            let value =
                value.ok_or_else(|| Error::invalid("bcast: the root must pass Some(value)"))?;
            let mut bytes = encode(&value)?;
            let mut len = bytes.len() as u64;
            let _state = lock();
            // SAFETY: reading a predefined datatype handle.
            let u64_type = unsafe { ffi::RSMPI_UINT64_T };
            self.bcast_raw((&mut len as *mut u64).cast(), 1, u64_type, root_c)?;
            self.bcast_raw(bytes.as_mut_ptr().cast(), bytes.len(), bytes_type(), root_c)?;
            return Ok(value);
        }
        let mut len = 0u64;
        let mut bytes = {
            let _state = lock();
            // SAFETY: reading a predefined datatype handle.
            let u64_type = unsafe { ffi::RSMPI_UINT64_T };
            self.bcast_raw((&mut len as *mut u64).cast(), 1, u64_type, root_c)?;
            let len = usize::try_from(len)
                .map_err(|_| Error::invalid("bcast: the object is too large"))?;
            let mut bytes = vec![0u8; len];
            self.bcast_raw(bytes.as_mut_ptr().cast(), len, bytes_type(), root_c)?;
            bytes
        };
        let value = decode(root, 0, &bytes);
        bytes.clear();
        value
    }

    /// Each rank's byte count, gathered at `root` (`None`: at every rank).
    fn gather_counts(&self, mine: usize, root: Option<c_int>) -> Result<Vec<c_int>> {
        let mine = to_int(mine, "the object's encoded length")?;
        let mut counts = vec![0 as c_int; self.size];
        // SAFETY: reading a predefined datatype handle.
        let int = unsafe { ffi::RSMPI_INT32_T };
        // SAFETY: `counts` holds one int per rank; `mine` is one int.
        let code = unsafe {
            match root {
                Some(root) => ffi::MPI_Gather(
                    (&mine as *const c_int).cast(),
                    1,
                    int,
                    counts.as_mut_ptr().cast(),
                    1,
                    int,
                    root,
                    self.raw,
                ),
                None => ffi::MPI_Allgather(
                    (&mine as *const c_int).cast(),
                    1,
                    int,
                    counts.as_mut_ptr().cast(),
                    1,
                    int,
                    self.raw,
                ),
            }
        };
        check(code, "MPI_Gather")?;
        Ok(counts)
    }

    fn displacements(counts: &[c_int]) -> Result<(Vec<c_int>, usize)> {
        let mut displs = Vec::with_capacity(counts.len());
        let mut total = 0usize;
        for c in counts {
            displs.push(to_int(total, "the total encoded length")?);
            total += usize::try_from(*c).unwrap_or(0);
        }
        to_int(total, "the total encoded length")?;
        Ok((displs, total))
    }

    fn decode_blocks<T: DeserializeOwned>(
        bytes: &[u8],
        counts: &[c_int],
        displs: &[c_int],
    ) -> Result<Vec<T>> {
        counts
            .iter()
            .zip(displs)
            .enumerate()
            .map(|(rank, (&c, &d))| {
                let (c, d) = (c as usize, d as usize);
                decode(rank, 0, &bytes[d..d + c])
            })
            .collect()
    }

    pub(crate) fn scatter<T: Serialize + DeserializeOwned>(
        &self,
        values: Option<Vec<T>>,
        root: usize,
    ) -> Result<T> {
        let root_c = self.check_root(root)?;
        // SAFETY: reading a predefined datatype handle.
        let int = unsafe { ffi::RSMPI_INT32_T };
        if self.rank == root {
            let values =
                values.ok_or_else(|| Error::invalid("scatter: the root must pass Some(values)"))?;
            if values.len() != self.size {
                return Err(Error::invalid(format!(
                    "scatter: {} values for {} ranks",
                    values.len(),
                    self.size
                )));
            }
            let mut all = Vec::new();
            let mut counts = Vec::with_capacity(self.size);
            for value in &values {
                let bytes = encode(value)?;
                counts.push(to_int(bytes.len(), "an object's encoded length")?);
                all.extend_from_slice(&bytes);
            }
            let (displs, _) = Self::displacements(&counts)?;
            let mut mine: c_int = 0;
            let _state = lock();
            // SAFETY: `counts` has one int per rank; `mine` receives one.
            check(
                unsafe {
                    ffi::MPI_Scatter(
                        counts.as_ptr().cast(),
                        1,
                        int,
                        (&mut mine as *mut c_int).cast(),
                        1,
                        int,
                        root_c,
                        self.raw,
                    )
                },
                "MPI_Scatter",
            )?;
            let mut own = vec![0u8; mine as usize];
            // SAFETY: the blocks lie inside `all`; `own` holds this rank's block.
            check(
                unsafe {
                    ffi::MPI_Scatterv(
                        all.as_ptr().cast(),
                        counts.as_ptr(),
                        displs.as_ptr(),
                        bytes_type(),
                        own.as_mut_ptr().cast(),
                        mine,
                        bytes_type(),
                        root_c,
                        self.raw,
                    )
                },
                "MPI_Scatterv",
            )?;
            return values
                .into_iter()
                .nth(root)
                .ok_or_else(|| Error::invalid("scatter: no value for the root"));
        }
        let mut mine: c_int = 0;
        let bytes = {
            let _state = lock();
            // SAFETY: `mine` receives one int; the send side is ignored away from the root.
            check(
                unsafe {
                    ffi::MPI_Scatter(
                        ptr::null(),
                        1,
                        int,
                        (&mut mine as *mut c_int).cast(),
                        1,
                        int,
                        root_c,
                        self.raw,
                    )
                },
                "MPI_Scatter",
            )?;
            let mut bytes = vec![0u8; mine.max(0) as usize];
            // SAFETY: `bytes` holds `mine` bytes.
            check(
                unsafe {
                    ffi::MPI_Scatterv(
                        ptr::null(),
                        ptr::null(),
                        ptr::null(),
                        bytes_type(),
                        bytes.as_mut_ptr().cast(),
                        mine,
                        bytes_type(),
                        root_c,
                        self.raw,
                    )
                },
                "MPI_Scatterv",
            )?;
            bytes
        };
        decode(root, 0, &bytes)
    }

    pub(crate) fn gather<T: Serialize + DeserializeOwned>(
        &self,
        value: &T,
        root: usize,
    ) -> Result<Option<Vec<T>>> {
        let root_c = self.check_root(root)?;
        let bytes = encode(value)?;
        let _state = lock();
        let counts = self.gather_counts(bytes.len(), Some(root_c))?;
        let mine = bytes.len() as c_int;
        if self.rank != root {
            // SAFETY: `bytes` holds `mine` bytes; the receive side is ignored here.
            return check(
                unsafe {
                    ffi::MPI_Gatherv(
                        bytes.as_ptr().cast(),
                        mine,
                        bytes_type(),
                        ptr::null_mut(),
                        ptr::null(),
                        ptr::null(),
                        bytes_type(),
                        root_c,
                        self.raw,
                    )
                },
                "MPI_Gatherv",
            )
            .map(|()| None);
        }
        let (displs, total) = Self::displacements(&counts)?;
        let mut all = vec![0u8; total];
        // SAFETY: the blocks `counts`/`displs` lie inside `all`.
        check(
            unsafe {
                ffi::MPI_Gatherv(
                    bytes.as_ptr().cast(),
                    mine,
                    bytes_type(),
                    all.as_mut_ptr().cast(),
                    counts.as_ptr(),
                    displs.as_ptr(),
                    bytes_type(),
                    root_c,
                    self.raw,
                )
            },
            "MPI_Gatherv",
        )?;
        Self::decode_blocks(&all, &counts, &displs).map(Some)
    }

    pub(crate) fn allgather<T: Serialize + DeserializeOwned>(&self, value: &T) -> Result<Vec<T>> {
        let bytes = encode(value)?;
        let _state = lock();
        let counts = self.gather_counts(bytes.len(), None)?;
        let (displs, total) = Self::displacements(&counts)?;
        let mut all = vec![0u8; total];
        // SAFETY: `bytes` holds this rank's block; the blocks lie inside `all`.
        check(
            unsafe {
                ffi::MPI_Allgatherv(
                    bytes.as_ptr().cast(),
                    bytes.len() as c_int,
                    bytes_type(),
                    all.as_mut_ptr().cast(),
                    counts.as_ptr(),
                    displs.as_ptr(),
                    bytes_type(),
                    self.raw,
                )
            },
            "MPI_Allgatherv",
        )?;
        Self::decode_blocks(&all, &counts, &displs)
    }

    pub(crate) fn alltoall<T: Serialize + DeserializeOwned>(
        &self,
        values: Vec<T>,
    ) -> Result<Vec<T>> {
        let n = self.size;
        if values.len() != n {
            return Err(Error::invalid(format!(
                "alltoall: {} values for {n} ranks",
                values.len()
            )));
        }
        let mut out_bytes = Vec::new();
        let mut send_counts = Vec::with_capacity(n);
        for value in &values {
            let bytes = encode(value)?;
            send_counts.push(to_int(bytes.len(), "an object's encoded length")?);
            out_bytes.extend_from_slice(&bytes);
        }
        let (send_displs, _) = Self::displacements(&send_counts)?;
        let mut recv_counts = vec![0 as c_int; n];
        // SAFETY: reading a predefined datatype handle.
        let int = unsafe { ffi::RSMPI_INT32_T };
        let _state = lock();
        // SAFETY: both arrays hold one int per rank.
        check(
            unsafe {
                ffi::MPI_Alltoall(
                    send_counts.as_ptr().cast(),
                    1,
                    int,
                    recv_counts.as_mut_ptr().cast(),
                    1,
                    int,
                    self.raw,
                )
            },
            "MPI_Alltoall",
        )?;
        let (recv_displs, total) = Self::displacements(&recv_counts)?;
        let mut all = vec![0u8; total];
        // SAFETY: the blocks lie inside `out_bytes` and `all`.
        check(
            unsafe {
                ffi::MPI_Alltoallv(
                    out_bytes.as_ptr().cast(),
                    send_counts.as_ptr(),
                    send_displs.as_ptr(),
                    bytes_type(),
                    all.as_mut_ptr().cast(),
                    recv_counts.as_ptr(),
                    recv_displs.as_ptr(),
                    bytes_type(),
                    self.raw,
                )
            },
            "MPI_Alltoallv",
        )?;
        Self::decode_blocks(&all, &recv_counts, &recv_displs)
    }

    pub(crate) fn scatter_buf<T: Element>(
        &self,
        send: Option<&[T]>,
        recv: &mut [T],
        root: usize,
    ) -> Result<()> {
        let root_c = self.check_root(root)?;
        let count = to_int(recv.len(), "the receive buffer's length")?;
        let send_ptr = if self.rank == root {
            let send =
                send.ok_or_else(|| Error::invalid("scatter: the root must pass Some(send)"))?;
            if send.len() != recv.len() * self.size {
                return Err(Error::invalid(format!(
                    "scatter: the root sends {} elements, not {} blocks of {}",
                    send.len(),
                    self.size,
                    recv.len()
                )));
            }
            send.as_ptr()
        } else {
            ptr::null()
        };
        let dt = datatype(T::KIND)?;
        let _state = lock();
        // SAFETY: at the root `send` holds `size` blocks of `count`; `recv` holds one.
        check(
            unsafe {
                ffi::MPI_Scatter(
                    send_ptr.cast(),
                    count,
                    dt,
                    recv.as_mut_ptr().cast(),
                    count,
                    dt,
                    root_c,
                    self.raw,
                )
            },
            "MPI_Scatter",
        )
    }

    pub(crate) fn scatterv_buf<T: Element>(
        &self,
        send: Option<(&[T], &[usize], &[usize])>,
        recv: &mut [T],
        root: usize,
    ) -> Result<()> {
        let root_c = self.check_root(root)?;
        let count = to_int(recv.len(), "the receive buffer's length")?;
        let dt = datatype(T::KIND)?;
        let (send_ptr, counts, displs) = if self.rank == root {
            let (data, counts, displs) =
                send.ok_or_else(|| Error::invalid("scatter: the root must pass Some(send)"))?;
            let (counts, displs) = blocks(self.size, data.len(), counts, displs, false)?;
            if counts[root] != count {
                return Err(Error::invalid(format!(
                    "scatter: the root's block has {} elements, its recv buffer {}",
                    counts[root],
                    recv.len()
                )));
            }
            (data.as_ptr(), counts, displs)
        } else {
            (ptr::null(), Vec::new(), Vec::new())
        };
        let _state = lock();
        // SAFETY: at the root the blocks lie inside `data`; `recv` holds `count` elements.
        check(
            unsafe {
                ffi::MPI_Scatterv(
                    send_ptr.cast(),
                    ptr_or_null(&counts),
                    ptr_or_null(&displs),
                    dt,
                    recv.as_mut_ptr().cast(),
                    count,
                    dt,
                    root_c,
                    self.raw,
                )
            },
            "MPI_Scatterv",
        )
    }

    pub(crate) fn gather_buf<T: Element>(
        &self,
        send: &[T],
        recv: Option<&mut [T]>,
        root: usize,
    ) -> Result<()> {
        let root_c = self.check_root(root)?;
        let count = to_int(send.len(), "the send buffer's length")?;
        let recv_ptr = if self.rank == root {
            let recv =
                recv.ok_or_else(|| Error::invalid("gather: the root must pass Some(recv)"))?;
            if recv.len() != send.len() * self.size {
                return Err(Error::invalid(format!(
                    "gather: the root receives into {} elements, not {} blocks of {}",
                    recv.len(),
                    self.size,
                    send.len()
                )));
            }
            recv.as_mut_ptr()
        } else {
            ptr::null_mut()
        };
        let dt = datatype(T::KIND)?;
        let _state = lock();
        // SAFETY: `send` holds `count` elements; at the root `recv` holds `size` blocks.
        check(
            unsafe {
                ffi::MPI_Gather(
                    send.as_ptr().cast(),
                    count,
                    dt,
                    recv_ptr.cast(),
                    count,
                    dt,
                    root_c,
                    self.raw,
                )
            },
            "MPI_Gather",
        )
    }

    pub(crate) fn gatherv_buf<T: Element>(
        &self,
        send: &[T],
        recv: Option<(&mut [T], &[usize], &[usize])>,
        root: usize,
    ) -> Result<()> {
        let root_c = self.check_root(root)?;
        let count = to_int(send.len(), "the send buffer's length")?;
        let dt = datatype(T::KIND)?;
        let (recv_ptr, counts, displs) = if self.rank == root {
            let (data, counts, displs) =
                recv.ok_or_else(|| Error::invalid("gather: the root must pass Some(recv)"))?;
            let (counts, displs) = blocks(self.size, data.len(), counts, displs, true)?;
            if counts[root] != count {
                return Err(Error::invalid(format!(
                    "gather: the root sends {} elements into a block of {}",
                    send.len(),
                    counts[root]
                )));
            }
            (data.as_mut_ptr(), counts, displs)
        } else {
            (ptr::null_mut(), Vec::new(), Vec::new())
        };
        let _state = lock();
        // SAFETY: `send` holds `count` elements; at the root the blocks lie inside `data`
        // and do not overlap.
        check(
            unsafe {
                ffi::MPI_Gatherv(
                    send.as_ptr().cast(),
                    count,
                    dt,
                    recv_ptr.cast(),
                    ptr_or_null(&counts),
                    ptr_or_null(&displs),
                    dt,
                    root_c,
                    self.raw,
                )
            },
            "MPI_Gatherv",
        )
    }

    pub(crate) fn allgather_buf<T: Element>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        let count = to_int(send.len(), "the send buffer's length")?;
        if recv.len() != send.len() * self.size {
            return Err(Error::invalid(format!(
                "allgather: {} elements do not hold {} blocks of {}",
                recv.len(),
                self.size,
                send.len()
            )));
        }
        let dt = datatype(T::KIND)?;
        let _state = lock();
        // SAFETY: `send` holds `count` elements, `recv` `size` blocks of them.
        check(
            unsafe {
                ffi::MPI_Allgather(
                    send.as_ptr().cast(),
                    count,
                    dt,
                    recv.as_mut_ptr().cast(),
                    count,
                    dt,
                    self.raw,
                )
            },
            "MPI_Allgather",
        )
    }

    pub(crate) fn allgatherv_buf<T: Element>(
        &self,
        send: &[T],
        recv: &mut [T],
        counts: &[usize],
        displs: &[usize],
    ) -> Result<()> {
        let (counts, displs) = blocks(self.size, recv.len(), counts, displs, true)?;
        let count = to_int(send.len(), "the send buffer's length")?;
        if counts[self.rank] != count {
            return Err(Error::invalid(format!(
                "allgather: this rank sends {} elements into a block of {}",
                send.len(),
                counts[self.rank]
            )));
        }
        let dt = datatype(T::KIND)?;
        let _state = lock();
        // SAFETY: the blocks lie inside `recv` and do not overlap.
        check(
            unsafe {
                ffi::MPI_Allgatherv(
                    send.as_ptr().cast(),
                    count,
                    dt,
                    recv.as_mut_ptr().cast(),
                    counts.as_ptr(),
                    displs.as_ptr(),
                    dt,
                    self.raw,
                )
            },
            "MPI_Allgatherv",
        )
    }

    pub(crate) fn alltoall_buf<T: Element>(&self, send: &[T], recv: &mut [T]) -> Result<()> {
        let n = self.size;
        if send.len() != recv.len() || !send.len().is_multiple_of(n) {
            return Err(Error::invalid(format!(
                "alltoall: send ({}) and recv ({}) must hold {n} equal blocks",
                send.len(),
                recv.len()
            )));
        }
        let count = to_int(send.len() / n, "a block's length")?;
        let dt = datatype(T::KIND)?;
        let _state = lock();
        // SAFETY: both buffers hold `n` blocks of `count` elements.
        check(
            unsafe {
                ffi::MPI_Alltoall(
                    send.as_ptr().cast(),
                    count,
                    dt,
                    recv.as_mut_ptr().cast(),
                    count,
                    dt,
                    self.raw,
                )
            },
            "MPI_Alltoall",
        )
    }

    pub(crate) fn reduce<T: Serialize + DeserializeOwned + 'static>(
        &self,
        value: &T,
        op: Op<T>,
        root: usize,
    ) -> Result<Option<T>> {
        let Some(all) = self.gather(value, root)? else {
            return Ok(None);
        };
        let mut acc: Option<T> = None;
        for x in all {
            acc = Some(match acc {
                None => x,
                Some(a) => op.apply_one(a, x)?,
            });
        }
        acc.map(Some)
            .ok_or_else(|| Error::invalid("reduce over no ranks"))
    }

    pub(crate) fn allreduce<T: Serialize + DeserializeOwned + 'static>(
        &self,
        value: &T,
        op: Op<T>,
    ) -> Result<T> {
        let reduced = self.reduce(value, op, 0);
        let shared: Outcome<T> = match (self.rank, reduced) {
            (0, Ok(value)) => {
                let value = value.ok_or_else(|| Error::invalid("no result at the root"))?;
                self.bcast(Some(Ok(value)), 0)?
            }
            (0, Err(e)) => {
                drop(self.bcast::<Outcome<T>>(Some(Err((0, e.to_string()))), 0)?);
                return Err(e);
            }
            (_, Ok(_)) => self.bcast(None, 0)?,
            (_, Err(e)) => return Err(e),
        };
        shared.map_err(|(rank, message)| Error::Remote { rank, message })
    }

    /// The rank-order fold of every rank's value up to `upto` (exclusive); an error at
    /// rank `k`'s step is this rank's own when `k` is this rank, else a remote one.
    fn prefix<T: Serialize + DeserializeOwned + 'static>(
        &self,
        value: &T,
        op: &Op<T>,
        upto: usize,
    ) -> Result<Option<T>> {
        let all = self.allgather(value)?;
        let mut acc: Option<T> = None;
        for (k, x) in all.into_iter().enumerate().take(upto) {
            acc = Some(match acc {
                None => x,
                Some(a) => op.apply_one(a, x).map_err(|e| {
                    if k == self.rank {
                        e
                    } else {
                        Error::Remote {
                            rank: k,
                            message: e.to_string(),
                        }
                    }
                })?,
            });
        }
        Ok(acc)
    }

    pub(crate) fn scan<T: Serialize + DeserializeOwned + 'static>(
        &self,
        value: &T,
        op: Op<T>,
    ) -> Result<T> {
        self.prefix(value, &op, self.rank + 1)?
            .ok_or_else(|| Error::invalid("scan over no ranks"))
    }

    pub(crate) fn exscan<T: Serialize + DeserializeOwned + 'static>(
        &self,
        value: &T,
        op: Op<T>,
    ) -> Result<Option<T>> {
        self.prefix(value, &op, self.rank)
    }

    pub(crate) fn reduce_buf<T: Element>(
        &self,
        send: &[T],
        recv: Option<&mut [T]>,
        op: Op<T>,
        root: usize,
    ) -> Result<()> {
        check_op(&op, send)?;
        let root_c = self.check_root(root)?;
        let count = to_int(send.len(), "the send buffer's length")?;
        let recv_ptr = if self.rank == root {
            let recv =
                recv.ok_or_else(|| Error::invalid("reduce: the root must pass Some(recv)"))?;
            if recv.len() != send.len() {
                return Err(Error::invalid(format!(
                    "reduce: send has {} elements, recv {}",
                    send.len(),
                    recv.len()
                )));
            }
            recv.as_mut_ptr()
        } else {
            ptr::null_mut()
        };
        let dt = datatype(T::KIND)?;
        let _state = lock();
        with_op(&op, |mpi_op| {
            // SAFETY: `send` (and at the root `recv`) hold `count` elements.
            check(
                unsafe {
                    ffi::MPI_Reduce(
                        send.as_ptr().cast(),
                        recv_ptr.cast(),
                        count,
                        dt,
                        mpi_op,
                        root_c,
                        self.raw,
                    )
                },
                "MPI_Reduce",
            )
        })
    }

    fn check_lengths<T>(what: &str, send: &[T], recv: &[T]) -> Result<c_int> {
        if send.len() != recv.len() {
            return Err(Error::invalid(format!(
                "{what}: send has {} elements, recv {}",
                send.len(),
                recv.len()
            )));
        }
        to_int(send.len(), "the send buffer's length")
    }

    pub(crate) fn allreduce_buf<T: Element>(
        &self,
        send: &[T],
        recv: &mut [T],
        op: Op<T>,
    ) -> Result<()> {
        check_op(&op, send)?;
        let count = Self::check_lengths("allreduce", send, recv)?;
        let dt = datatype(T::KIND)?;
        let _state = lock();
        with_op(&op, |mpi_op| {
            // SAFETY: both buffers hold `count` elements.
            check(
                unsafe {
                    ffi::MPI_Allreduce(
                        send.as_ptr().cast(),
                        recv.as_mut_ptr().cast(),
                        count,
                        dt,
                        mpi_op,
                        self.raw,
                    )
                },
                "MPI_Allreduce",
            )
        })
    }

    pub(crate) fn scan_buf<T: Element>(&self, send: &[T], recv: &mut [T], op: Op<T>) -> Result<()> {
        check_op(&op, send)?;
        let count = Self::check_lengths("scan", send, recv)?;
        let dt = datatype(T::KIND)?;
        let _state = lock();
        with_op(&op, |mpi_op| {
            // SAFETY: both buffers hold `count` elements.
            check(
                unsafe {
                    ffi::MPI_Scan(
                        send.as_ptr().cast(),
                        recv.as_mut_ptr().cast(),
                        count,
                        dt,
                        mpi_op,
                        self.raw,
                    )
                },
                "MPI_Scan",
            )
        })
    }

    pub(crate) fn exscan_buf<T: Element>(
        &self,
        send: &[T],
        recv: &mut [T],
        op: Op<T>,
    ) -> Result<()> {
        check_op(&op, send)?;
        let count = Self::check_lengths("exscan", send, recv)?;
        let dt = datatype(T::KIND)?;
        // MPI leaves rank 0's result undefined; this crate promises it is left alone.
        let mut scratch = if self.rank == 0 {
            recv.to_vec()
        } else {
            Vec::new()
        };
        let target: &mut [T] = if self.rank == 0 { &mut scratch } else { recv };
        let _state = lock();
        with_op(&op, |mpi_op| {
            // SAFETY: both buffers hold `count` elements.
            check(
                unsafe {
                    ffi::MPI_Exscan(
                        send.as_ptr().cast(),
                        target.as_mut_ptr().cast(),
                        count,
                        dt,
                        mpi_op,
                        self.raw,
                    )
                },
                "MPI_Exscan",
            )
        })
    }

    pub(crate) fn dup(&self) -> Result<MpiComm> {
        let _state = lock();
        let mut raw = ffi::MPI_Comm(ptr::null_mut());
        // SAFETY: a valid communicator; `raw` receives the new one (with the same error
        // handler).
        check(
            unsafe { ffi::MPI_Comm_dup(self.raw, &mut raw) },
            "MPI_Comm_dup",
        )?;
        MpiComm::new(raw, true)
    }

    /// `MPI_Comm_split`, ordered by `key` then rank as on the native backend (keys and
    /// colours are ranked first, so any `u32` colour and `i64` key work).
    pub(crate) fn split(&self, colour: Option<u32>, key: i64) -> Result<Option<MpiComm>> {
        let all: Vec<(Option<u32>, i64)> = self.allgather(&(colour, key))?;
        let (mpi_colour, mpi_key) = match colour {
            None => (
                // SAFETY: reading a predefined constant.
                unsafe { ffi::RSMPI_UNDEFINED },
                0,
            ),
            Some(colour) => {
                let mut colours: Vec<u32> = all.iter().filter_map(|(c, _)| *c).collect();
                colours.sort_unstable();
                colours.dedup();
                let index = colours.partition_point(|c| *c < colour);
                let position = all
                    .iter()
                    .enumerate()
                    .filter(|(i, (c, k))| *c == Some(colour) && (*k, *i) < (key, self.rank))
                    .count();
                (
                    to_int(index, "the colour's index")?,
                    to_int(position, "the key's position")?,
                )
            }
        };
        let _state = lock();
        let mut raw = ffi::MPI_Comm(ptr::null_mut());
        // SAFETY: a valid communicator; `raw` receives the new one or MPI_COMM_NULL.
        check(
            unsafe { ffi::MPI_Comm_split(self.raw, mpi_colour, mpi_key, &mut raw) },
            "MPI_Comm_split",
        )?;
        // SAFETY: reading a predefined handle.
        if raw.0 == unsafe { ffi::RSMPI_COMM_NULL }.0 {
            return Ok(None);
        }
        MpiComm::new(raw, true).map(Some)
    }

    /// `MPI_Cart_create`; ranks off the grid get `None`.
    pub(crate) fn create_cart(
        &self,
        dims: &[usize],
        periods: &[bool],
        reorder: bool,
    ) -> Result<Option<MpiComm>> {
        let ndims = to_int(dims.len(), "the number of dimensions")?;
        let dims_c = dims
            .iter()
            .map(|d| to_int(*d, "a dimension"))
            .collect::<Result<Vec<_>>>()?;
        let periods_c: Vec<c_int> = periods.iter().map(|p| c_int::from(*p)).collect();
        let _state = lock();
        let mut raw = ffi::MPI_Comm(ptr::null_mut());
        // SAFETY: `dims_c` and `periods_c` hold `ndims` entries.
        check(
            unsafe {
                ffi::MPI_Cart_create(
                    self.raw,
                    ndims,
                    dims_c.as_ptr(),
                    periods_c.as_ptr(),
                    c_int::from(reorder),
                    &mut raw,
                )
            },
            "MPI_Cart_create",
        )?;
        // SAFETY: reading a predefined handle.
        if raw.0 == unsafe { ffi::RSMPI_COMM_NULL }.0 {
            return Ok(None);
        }
        MpiComm::new(raw, true).map(Some)
    }

    /// `MPI_Cart_coords`.
    pub(crate) fn cart_coords(&self, rank: usize, ndims: usize) -> Result<Vec<usize>> {
        let rank = self.check_rank(rank)?;
        let mut coords = vec![0 as c_int; ndims];
        let _state = lock();
        // SAFETY: `coords` holds `ndims` entries, the grid's dimensions.
        check(
            unsafe {
                ffi::MPI_Cart_coords(self.raw, rank, to_int(ndims, "ndims")?, coords.as_mut_ptr())
            },
            "MPI_Cart_coords",
        )?;
        Ok(coords.into_iter().map(|c| c as usize).collect())
    }

    /// `MPI_Cart_rank` of coordinates already checked against the grid.
    pub(crate) fn cart_rank(&self, coords: &[i64]) -> Result<usize> {
        let coords = coords
            .iter()
            .map(|c| c_int::try_from(*c).map_err(|_| Error::invalid(format!("coordinate {c}"))))
            .collect::<Result<Vec<_>>>()?;
        let mut rank: c_int = 0;
        let _state = lock();
        // SAFETY: `coords` holds one entry per dimension (checked by the caller).
        check(
            unsafe { ffi::MPI_Cart_rank(self.raw, coords.as_ptr(), &mut rank) },
            "MPI_Cart_rank",
        )?;
        Ok(rank as usize)
    }

    /// `MPI_Cart_shift`: `(source, dest)`, `None` for `MPI_PROC_NULL`.
    pub(crate) fn cart_shift(
        &self,
        direction: usize,
        disp: i64,
    ) -> Result<(Option<usize>, Option<usize>)> {
        let disp = c_int::try_from(disp)
            .map_err(|_| Error::invalid(format!("shift of {disp} does not fit MPI's int")))?;
        let (mut source, mut dest): (c_int, c_int) = (0, 0);
        let _state = lock();
        // SAFETY: a cartesian communicator and a direction below its dimensions (checked
        // by the caller).
        check(
            unsafe {
                ffi::MPI_Cart_shift(
                    self.raw,
                    to_int(direction, "direction")?,
                    disp,
                    &mut source,
                    &mut dest,
                )
            },
            "MPI_Cart_shift",
        )?;
        // SAFETY: reading a predefined constant.
        let null = unsafe { ffi::RSMPI_PROC_NULL };
        let rank = |r: c_int| (r != null && r >= 0).then_some(r as usize);
        Ok((rank(source), rank(dest)))
    }
}
