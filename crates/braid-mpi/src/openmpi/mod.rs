//! The Open MPI backend (cargo feature `mpi`): the same [`Comm`] API on a real MPI
//! library through rsmpi's C bindings, for programs started by `mpirun`.
//!
//! Every MPI call of a process is made under one lock (`MPI_THREAD_SERIALIZED`). Blocking
//! receives poll (`MPI_Iprobe`, then `MPI_Recv` of exactly the probed message) without
//! holding the lock between polls, so that a wrong kind or size is seen before the
//! message is taken and the message stays queued, as on the native backend.
//!
//! Buffers are plain typed MPI messages with the caller's tag (so mpi4py's `Send`/`Recv`
//! interoperate); objects are `MPI_UINT8_T` messages of their postcard encoding with the
//! tag moved into the upper half of `MPI_TAG_UB`, which is how a receive tells the two
//! kinds apart. User tags must therefore be below `(MPI_TAG_UB + 1) / 2`.

mod collective;

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use mpi::ffi;
use parking_lot::{Mutex, MutexGuard};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::comm::{Source, Status, TagMatch, decode, encode};
use crate::{Comm, Element, ElementKind, Error, Loc, Result};

/// Environment variables that `mpirun` (Open MPI's, or another PMI/PMIx launcher) sets.
const MPIRUN_ENV: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"];

/// Whether this process was started by `mpirun` (and not by `braid run`).
pub(crate) fn started_by_mpirun() -> bool {
    std::env::var_os(crate::ENV_FD).is_none()
        && MPIRUN_ENV.iter().any(|v| std::env::var_os(v).is_some())
}

static INITIALISED: AtomicBool = AtomicBool::new(false);
static FINALIZED: AtomicBool = AtomicBool::new(false);

/// Whether [`init`] has set MPI up in this process.
pub(crate) fn active() -> bool {
    INITIALISED.load(Ordering::Acquire) && !FINALIZED.load(Ordering::Acquire)
}

/// The lock every MPI call is made under, and the object sends still in flight.
static STATE: Mutex<State> = parking_lot::const_mutex(State { sends: Vec::new() });

struct State {
    /// Sends that return before they complete (objects, dropped requests): completed by
    /// later calls and before `MPI_Finalize`.
    sends: Vec<InFlight>,
}

/// An `MPI_Isend` in flight with the bytes it sends.
pub(crate) struct InFlight {
    request: ffi::MPI_Request,
    _data: Vec<u8>,
}

// SAFETY: the request handle is only used under `STATE`'s lock, and the bytes it reads
// are owned here and not touched until the request completes.
unsafe impl Send for InFlight {}

fn lock() -> MutexGuard<'static, State> {
    STATE.lock()
}

/// Handles that MPI hands out; plain pointers in Open MPI, valid in every thread.
#[derive(Clone, Copy)]
struct Handles {
    world: ffi::MPI_Comm,
    tag_offset: i32,
    loc_f64: ffi::MPI_Datatype,
    loc_i64: ffi::MPI_Datatype,
    loc_u64: ffi::MPI_Datatype,
}

// SAFETY: MPI handles are process-wide; this crate makes every MPI call under `STATE`'s
// lock, so sharing the handles between threads is what MPI_THREAD_SERIALIZED allows.
unsafe impl Send for Handles {}
// SAFETY: as above.
unsafe impl Sync for Handles {}

static HANDLES: OnceLock<Handles> = OnceLock::new();

fn handles() -> Result<&'static Handles> {
    HANDLES
        .get()
        .ok_or_else(|| Error::NotLaunched("MPI is not initialised".into()))
}

/// Turns an MPI return code into an [`Error::Mpi`].
fn check(code: c_int, call: &'static str) -> Result<()> {
    if code == ffi::MPI_SUCCESS as c_int {
        return Ok(());
    }
    let mut text = vec![0 as c_char; ffi::MPI_MAX_ERROR_STRING as usize + 1];
    let mut len: c_int = 0;
    // SAFETY: `text` holds MPI_MAX_ERROR_STRING characters plus a terminator, as
    // MPI_Error_string requires.
    let found = unsafe { ffi::MPI_Error_string(code, text.as_mut_ptr(), &mut len) };
    let message = if found == ffi::MPI_SUCCESS as c_int {
        let bytes: Vec<u8> = text[..len.max(0) as usize]
            .iter()
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        "unknown error".to_string()
    };
    Err(Error::Mpi {
        call,
        code,
        message,
    })
}

fn to_int(n: usize, what: &str) -> Result<c_int> {
    c_int::try_from(n).map_err(|_| Error::invalid(format!("{what} ({n}) does not fit MPI's int")))
}

// SAFETY: `atexit` is the C library's own (C11 7.22.4.2), declared with its signature;
// the function it registers takes nothing and returns nothing.
unsafe extern "C" {
    fn atexit(f: extern "C" fn()) -> c_int;
}

/// Completes the sends still in flight and finalises MPI as the process exits, so that
/// `mpirun` sees a clean end.
extern "C" fn finalize_at_exit() {
    if !active() {
        return;
    }
    let mut state = lock();
    for mut send in state.sends.drain(..) {
        // SAFETY: a live request of this process; its bytes are still owned by `send`.
        let code = unsafe { ffi::MPI_Wait(&mut send.request, ffi::RSMPI_STATUS_IGNORE) };
        if let Err(e) = check(code, "MPI_Wait") {
            tracing::error!(error = %e, "a send did not complete before MPI_Finalize");
        }
    }
    FINALIZED.store(true, Ordering::Release);
    // SAFETY: MPI was initialised by `init`, and no MPI call runs now (the lock is held).
    let code = unsafe { ffi::MPI_Finalize() };
    if let Err(e) = check(code, "MPI_Finalize") {
        tracing::error!(error = %e, "MPI_Finalize failed");
    }
}

/// Ends the whole job with `MPI_Abort`.
fn abort_job(comm: ffi::MPI_Comm, code: c_int) -> ! {
    // SAFETY: called without the lock on purpose (the failing thread may hold it): the
    // job is ending and MPI_Abort does not return.
    unsafe { ffi::MPI_Abort(comm, code) };
    std::process::abort()
}

fn loc_type(value: ffi::MPI_Datatype) -> Result<ffi::MPI_Datatype> {
    let lengths = [1 as c_int, 1];
    let displs = [0 as ffi::MPI_Aint, 8];
    // SAFETY: reading MPI's predefined datatype handle.
    let types = [value, unsafe { ffi::RSMPI_INT64_T }];
    let mut out = ffi::MPI_Datatype(ptr::null_mut());
    // SAFETY: the arrays hold two entries each, as `count` says.
    check(
        unsafe {
            ffi::MPI_Type_create_struct(
                2,
                lengths.as_ptr(),
                displs.as_ptr(),
                types.as_ptr(),
                &mut out,
            )
        },
        "MPI_Type_create_struct",
    )?;
    // SAFETY: `out` is the datatype just created.
    check(unsafe { ffi::MPI_Type_commit(&mut out) }, "MPI_Type_commit")?;
    Ok(out)
}

/// Initialises MPI (`MPI_Init_thread`, serialized) and returns the world communicator.
pub(crate) fn init() -> Result<Comm> {
    if INITIALISED.swap(true, Ordering::SeqCst) {
        return Err(Error::NotLaunched(
            "init was already called in this process".into(),
        ));
    }
    let _state = lock();
    let mut provided: c_int = 0;
    // SAFETY: the first and only initialisation of MPI in this process (checked above).
    check(
        unsafe {
            ffi::MPI_Init_thread(
                ptr::null_mut(),
                ptr::null_mut(),
                ffi::RSMPI_THREAD_SERIALIZED,
                &mut provided,
            )
        },
        "MPI_Init_thread",
    )?;
    // SAFETY: reading predefined handles after MPI_Init.
    let world = unsafe { ffi::RSMPI_COMM_WORLD };
    // SAFETY: `world` is valid; errors are returned to this crate instead of aborting.
    check(
        unsafe { ffi::MPI_Comm_set_errhandler(world, ffi::RSMPI_ERRORS_RETURN) },
        "MPI_Comm_set_errhandler",
    )?;
    let mut tag_ub: *mut c_int = ptr::null_mut();
    let mut flag: c_int = 0;
    // SAFETY: MPI_TAG_UB's value is a pointer to an int owned by MPI.
    check(
        unsafe {
            ffi::MPI_Comm_get_attr(
                world,
                ffi::MPI_TAG_UB as c_int,
                (&mut tag_ub as *mut *mut c_int).cast::<c_void>(),
                &mut flag,
            )
        },
        "MPI_Comm_get_attr(MPI_TAG_UB)",
    )?;
    let tag_ub = if flag != 0 && !tag_ub.is_null() {
        // SAFETY: MPI set the attribute (flag) to a valid pointer.
        unsafe { *tag_ub }
    } else {
        32767
    };
    let tag_offset = ((i64::from(tag_ub) + 1) / 2) as i32;
    // SAFETY: reading MPI's predefined datatype handles.
    let (double, int64, uint64) =
        unsafe { (ffi::RSMPI_DOUBLE, ffi::RSMPI_INT64_T, ffi::RSMPI_UINT64_T) };
    let handles = Handles {
        world,
        tag_offset,
        loc_f64: loc_type(double)?,
        loc_i64: loc_type(int64)?,
        loc_u64: loc_type(uint64)?,
    };
    let _ = HANDLES.set(handles);
    // SAFETY: registering a plain function to run at exit.
    if unsafe { atexit(finalize_at_exit) } != 0 {
        tracing::warn!("could not register MPI_Finalize to run at exit");
    }
    // A rank that panics ends the job, or the other ranks would wait for it forever.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if let (true, Some(handles)) = (active(), HANDLES.get()) {
            abort_job(handles.world, 1);
        }
    }));
    let comm = MpiComm::new(world, false)?;
    tracing::debug!(
        rank = comm.rank,
        size = comm.size,
        tag_ub,
        "joined an MPI job through mpirun"
    );
    Ok(Comm::open_mpi(comm))
}

/// `MPI_Wtime()`.
pub(crate) fn wtime() -> f64 {
    // SAFETY: MPI is initialised (callers check `active`).
    unsafe { ffi::RSMPI_Wtime() }
}

/// `MPI_Wtick()`.
pub(crate) fn wtick() -> f64 {
    // SAFETY: as above.
    unsafe { ffi::RSMPI_Wtick() }
}

/// `MPI_Get_processor_name()`.
pub(crate) fn processor_name() -> Option<String> {
    let mut name = vec![0 as c_char; ffi::MPI_MAX_PROCESSOR_NAME as usize + 1];
    let mut len: c_int = 0;
    let _state = lock();
    // SAFETY: `name` holds MPI_MAX_PROCESSOR_NAME characters plus a terminator.
    let code = unsafe { ffi::MPI_Get_processor_name(name.as_mut_ptr(), &mut len) };
    check(code, "MPI_Get_processor_name").ok()?;
    let bytes: Vec<u8> = name[..len.max(0) as usize]
        .iter()
        .map(|c| *c as u8)
        .collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The MPI datatype of an element type.
fn datatype(kind: ElementKind) -> Result<ffi::MPI_Datatype> {
    // SAFETY: reading MPI's predefined datatype handles.
    Ok(unsafe {
        match kind {
            ElementKind::U8 => ffi::RSMPI_UINT8_T,
            ElementKind::I8 => ffi::RSMPI_INT8_T,
            ElementKind::U16 => ffi::RSMPI_UINT16_T,
            ElementKind::I16 => ffi::RSMPI_INT16_T,
            ElementKind::U32 => ffi::RSMPI_UINT32_T,
            ElementKind::I32 => ffi::RSMPI_INT32_T,
            ElementKind::U64 => ffi::RSMPI_UINT64_T,
            ElementKind::I64 => ffi::RSMPI_INT64_T,
            ElementKind::F32 => ffi::RSMPI_FLOAT,
            ElementKind::F64 => ffi::RSMPI_DOUBLE,
            ElementKind::LocF64 => handles()?.loc_f64,
            ElementKind::LocI64 => handles()?.loc_i64,
            ElementKind::LocU64 => handles()?.loc_u64,
        }
    })
}

fn bytes_type() -> ffi::MPI_Datatype {
    // SAFETY: reading a predefined datatype handle.
    unsafe { ffi::RSMPI_UINT8_T }
}

/// How long a waiting call looks again at once before it yields its core between looks
/// (as MPI's own blocking calls, it never sleeps).
const SPIN: std::time::Duration = std::time::Duration::from_micros(200);

/// Waits for `f` to find what it looks for, taking the lock for each look only, so that
/// other threads of the rank can make calls meanwhile.
pub(crate) fn poll<R>(mut f: impl FnMut() -> Result<Option<R>>) -> Result<R> {
    let started = std::time::Instant::now();
    loop {
        if let Some(found) = f()? {
            return Ok(found);
        }
        if started.elapsed() < SPIN {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Completes the background sends that are done.
fn reap(state: &mut State) -> Result<()> {
    let mut error = None;
    state.sends.retain_mut(|send| {
        let mut flag: c_int = 0;
        // SAFETY: a live request; its bytes stay owned until it completes.
        let code = unsafe { ffi::MPI_Test(&mut send.request, &mut flag, ffi::RSMPI_STATUS_IGNORE) };
        if let Err(e) = check(code, "MPI_Test") {
            error.get_or_insert(e);
            return false;
        }
        flag == 0
    });
    error.map_or(Ok(()), Err)
}

/// An object received that did not decode as the type asked for: kept here for a later
/// receive, as if it were still queued.
struct Stashed {
    source: usize,
    tag: i32,
    data: Vec<u8>,
}

/// A message a receive pattern matched, not yet received.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    source: usize,
    tag: i32,
    mpi_tag: c_int,
    bytes: usize,
    object: bool,
    /// Its index in the stash, when it is there rather than in MPI.
    stashed: Option<usize>,
}

impl Found {
    fn status(&self, element: Option<ElementKind>) -> Status {
        Status::new(self.source, self.tag, self.bytes, element, self.object)
    }
}

/// What an MPI communicator of this backend holds.
pub(crate) struct MpiComm {
    raw: ffi::MPI_Comm,
    rank: usize,
    size: usize,
    world_rank: usize,
    /// Whether this handle frees the communicator (all but the world's).
    owned: bool,
    stash: Mutex<VecDeque<Stashed>>,
}

// SAFETY: the communicator handle is only used under `STATE`'s lock.
unsafe impl Send for MpiComm {}
// SAFETY: as above.
unsafe impl Sync for MpiComm {}

impl Drop for MpiComm {
    fn drop(&mut self) {
        if self.owned && active() {
            let _state = lock();
            // SAFETY: this handle owns the communicator, and no other handle uses it.
            let code = unsafe { ffi::MPI_Comm_free(&mut self.raw) };
            if let Err(e) = check(code, "MPI_Comm_free") {
                tracing::warn!(error = %e, "could not free a communicator");
            }
        }
    }
}

/// The state of a non-blocking operation of this backend.
pub(crate) enum MpiPending<T> {
    /// A send in flight.
    Send(InFlight),
    /// A receive: matched when it is tested or waited for.
    Recv {
        source: Option<usize>,
        tag: Option<i32>,
        object: bool,
        capacity: usize,
        finish: Finish<T>,
    },
}

type Finish<T> = fn(&MpiComm, Found, usize) -> Result<(T, Status)>;

impl MpiComm {
    /// Wraps a communicator handle (the caller holds the lock).
    fn new(raw: ffi::MPI_Comm, owned: bool) -> Result<MpiComm> {
        let (mut rank, mut size): (c_int, c_int) = (0, 0);
        // SAFETY: `raw` is a valid communicator.
        check(
            unsafe { ffi::MPI_Comm_rank(raw, &mut rank) },
            "MPI_Comm_rank",
        )?;
        // SAFETY: as above.
        check(
            unsafe { ffi::MPI_Comm_size(raw, &mut size) },
            "MPI_Comm_size",
        )?;
        let mut world_rank: c_int = 0;
        // SAFETY: the world communicator is valid after init.
        check(
            unsafe { ffi::MPI_Comm_rank(handles()?.world, &mut world_rank) },
            "MPI_Comm_rank",
        )?;
        Ok(MpiComm {
            raw,
            rank: rank as usize,
            size: size as usize,
            world_rank: world_rank as usize,
            owned,
            stash: Mutex::new(VecDeque::new()),
        })
    }

    pub(crate) fn rank(&self) -> usize {
        self.rank
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn world_rank(&self) -> usize {
        self.world_rank
    }

    fn check_rank(&self, rank: usize) -> Result<c_int> {
        if rank >= self.size {
            return Err(Error::invalid(format!(
                "rank {rank} is outside a communicator of {} ranks",
                self.size
            )));
        }
        Ok(rank as c_int)
    }

    fn check_tag(&self, tag: i32) -> Result<i32> {
        let limit = handles()?.tag_offset;
        if !(0..limit).contains(&tag) {
            return Err(Error::invalid(format!(
                "tag {tag} is outside 0..{limit} (the Open MPI backend keeps the upper half of \
                 MPI_TAG_UB for objects)"
            )));
        }
        Ok(tag)
    }

    fn pattern(&self, source: Source, tag: TagMatch) -> Result<(Option<usize>, Option<i32>)> {
        let source = match source {
            Source::Any => None,
            Source::Rank(r) => Some(self.check_rank(r)? as usize),
        };
        let tag = match tag {
            TagMatch::Any => None,
            TagMatch::Tag(t) => Some(self.check_tag(t)?),
        };
        Ok((source, tag))
    }

    fn iprobe(&self, source: Option<usize>, tag: c_int) -> Result<Option<Found>> {
        // SAFETY: reading a predefined constant.
        let src = source.map_or(unsafe { ffi::RSMPI_ANY_SOURCE }, |s| s as c_int);
        let mut flag: c_int = 0;
        // SAFETY: a zeroed status is a valid out-parameter.
        let mut status: ffi::MPI_Status = unsafe { std::mem::zeroed() };
        // SAFETY: valid communicator and out-parameters; the caller holds the lock.
        check(
            unsafe { ffi::MPI_Iprobe(src, tag, self.raw, &mut flag, &mut status) },
            "MPI_Iprobe",
        )?;
        if flag == 0 {
            return Ok(None);
        }
        let mut bytes: c_int = 0;
        // SAFETY: `status` was filled by MPI_Iprobe.
        check(
            unsafe { ffi::MPI_Get_count(&status, bytes_type(), &mut bytes) },
            "MPI_Get_count",
        )?;
        if bytes < 0 {
            return Err(Error::invalid(
                "a message of more than 2 GiB cannot be received",
            ));
        }
        let offset = handles()?.tag_offset;
        let object = status.MPI_TAG >= offset;
        Ok(Some(Found {
            source: status.MPI_SOURCE as usize,
            tag: if object {
                status.MPI_TAG - offset
            } else {
                status.MPI_TAG
            },
            mpi_tag: status.MPI_TAG,
            bytes: bytes as usize,
            object,
            stashed: None,
        }))
    }

    /// The first message matching the pattern, if one has arrived (the caller holds the
    /// lock). With one tag, messages of the wanted kind are looked for first.
    fn find(
        &self,
        source: Option<usize>,
        tag: Option<i32>,
        want_object: bool,
    ) -> Result<Option<Found>> {
        let stashed =
            self.stash.lock().iter().position(|s| {
                source.is_none_or(|r| r == s.source) && tag.is_none_or(|t| t == s.tag)
            });
        if let Some(index) = stashed {
            let stash = self.stash.lock();
            let s = &stash[index];
            return Ok(Some(Found {
                source: s.source,
                tag: s.tag,
                mpi_tag: s.tag + handles()?.tag_offset,
                bytes: s.data.len(),
                object: true,
                stashed: Some(index),
            }));
        }
        match tag {
            // SAFETY: reading a predefined constant.
            None => self.iprobe(source, unsafe { ffi::RSMPI_ANY_TAG }),
            Some(t) => {
                let object_tag = t + handles()?.tag_offset;
                let (first, second) = if want_object {
                    (object_tag, t)
                } else {
                    (t, object_tag)
                };
                match self.iprobe(source, first)? {
                    Some(found) => Ok(Some(found)),
                    None => self.iprobe(source, second),
                }
            }
        }
    }

    fn recv_bytes(&self, found: &Found) -> Result<Vec<u8>> {
        if let Some(index) = found.stashed {
            return self
                .stash
                .lock()
                .remove(index)
                .map(|s| s.data)
                .ok_or_else(|| Error::invalid("the stashed message is gone"));
        }
        let mut data = vec![0u8; found.bytes];
        // SAFETY: `data` holds exactly the probed message's bytes; the caller holds the
        // lock, so the probed message is the one received.
        check(
            unsafe {
                ffi::MPI_Recv(
                    data.as_mut_ptr().cast(),
                    found.bytes as c_int,
                    bytes_type(),
                    found.source as c_int,
                    found.mpi_tag,
                    self.raw,
                    ffi::RSMPI_STATUS_IGNORE,
                )
            },
            "MPI_Recv",
        )?;
        Ok(data)
    }

    /// Receives `found` as an object of type `T`; a buffer, or an object that does not
    /// decode, stays for a later receive.
    fn take_object<T: DeserializeOwned>(
        &self,
        found: Found,
        _capacity: usize,
    ) -> Result<(T, Status)> {
        if !found.object {
            return Err(Error::KindMismatch {
                expected: "object",
                found: "buffer",
                source_rank: found.source,
                tag: found.tag,
            });
        }
        let data = self.recv_bytes(&found)?;
        match decode(found.source, found.tag, &data) {
            Ok(value) => Ok((value, found.status(None))),
            Err(e) => {
                let stashed = Stashed {
                    source: found.source,
                    tag: found.tag,
                    data,
                };
                let mut stash = self.stash.lock();
                let at = found.stashed.unwrap_or(stash.len()).min(stash.len());
                stash.insert(at, stashed);
                Err(e)
            }
        }
    }

    /// Checks that `found` is a buffer of `capacity` elements of `T` at most, before it is
    /// received; returns its element count.
    fn check_buffer<T: Element>(&self, found: &Found, capacity: usize) -> Result<usize> {
        if found.object {
            return Err(Error::KindMismatch {
                expected: "buffer",
                found: "object",
                source_rank: found.source,
                tag: found.tag,
            });
        }
        let size = size_of::<T>();
        if !found.bytes.is_multiple_of(size) {
            return Err(Error::NotWholeElements {
                bytes: found.bytes,
                expected: T::KIND,
                source_rank: found.source,
                tag: found.tag,
            });
        }
        let count = found.bytes / size;
        if count > capacity {
            return Err(Error::Truncated {
                found: count,
                capacity,
                source_rank: found.source,
                tag: found.tag,
            });
        }
        Ok(count)
    }

    fn recv_into<T: Element>(&self, found: &Found, buf: &mut [T]) -> Result<Status> {
        let count = self.check_buffer::<T>(found, buf.len())?;
        // SAFETY: `buf` holds at least `count` elements of the datatype of `T`; the caller
        // holds the lock, so the probed message is the one received.
        check(
            unsafe {
                ffi::MPI_Recv(
                    buf.as_mut_ptr().cast(),
                    count as c_int,
                    datatype(T::KIND)?,
                    found.source as c_int,
                    found.mpi_tag,
                    self.raw,
                    ffi::RSMPI_STATUS_IGNORE,
                )
            },
            "MPI_Recv",
        )?;
        Ok(found.status(Some(T::KIND)))
    }

    fn take_buffer<T: Element>(&self, found: Found, capacity: usize) -> Result<(Vec<T>, Status)> {
        let count = self.check_buffer::<T>(&found, capacity)?;
        let mut out = vec![T::zeroed(); count];
        let status = self.recv_into(&found, &mut out)?;
        Ok((out, status))
    }

    fn isend_raw(
        &self,
        data: Vec<u8>,
        count: usize,
        datatype: ffi::MPI_Datatype,
        dest: c_int,
        tag: c_int,
    ) -> Result<InFlight> {
        let count = to_int(count, "the message's length")?;
        // SAFETY: a null request handle is a valid out-parameter.
        let mut request: ffi::MPI_Request = unsafe { ffi::RSMPI_REQUEST_NULL };
        // SAFETY: `data` holds `count` elements of `datatype` and is owned by the returned
        // `InFlight` until the request completes (a Vec's heap block does not move).
        check(
            unsafe {
                ffi::MPI_Isend(
                    data.as_ptr().cast(),
                    count,
                    datatype,
                    dest,
                    tag,
                    self.raw,
                    &mut request,
                )
            },
            "MPI_Isend",
        )?;
        Ok(InFlight {
            request,
            _data: data,
        })
    }

    fn isend_object<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dest: usize,
        tag: i32,
    ) -> Result<InFlight> {
        let tag = self.check_tag(tag)?;
        let dest = self.check_rank(dest)?;
        let bytes = encode(value)?;
        let len = bytes.len();
        let _state = lock();
        self.isend_raw(bytes, len, bytes_type(), dest, tag + handles()?.tag_offset)
    }

    /// `comm.send(obj, dest, tag)`: returns at once; the send completes in the background.
    pub(crate) fn send<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dest: usize,
        tag: i32,
    ) -> Result<()> {
        let send = self.isend_object(value, dest, tag)?;
        let mut state = lock();
        state.sends.push(send);
        reap(&mut state)
    }

    pub(crate) fn isend<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dest: usize,
        tag: i32,
    ) -> Result<MpiPending<()>> {
        Ok(MpiPending::Send(self.isend_object(value, dest, tag)?))
    }

    pub(crate) fn recv<T: DeserializeOwned>(
        &self,
        source: Source,
        tag: TagMatch,
    ) -> Result<(T, Status)> {
        let (source, tag) = self.pattern(source, tag)?;
        poll(|| {
            let mut state = lock();
            reap(&mut state)?;
            match self.find(source, tag, true)? {
                Some(found) => self.take_object(found, 0).map(Some),
                None => Ok(None),
            }
        })
    }

    pub(crate) fn irecv<T: DeserializeOwned>(
        &self,
        source: Source,
        tag: TagMatch,
    ) -> Result<MpiPending<T>> {
        let (source, tag) = self.pattern(source, tag)?;
        Ok(MpiPending::Recv {
            source,
            tag,
            object: true,
            capacity: 0,
            finish: MpiComm::take_object::<T>,
        })
    }

    /// `comm.Send(buf, dest, tag)`: `MPI_Send` with the datatype of `T`.
    pub(crate) fn send_buf<T: Element>(&self, buf: &[T], dest: usize, tag: i32) -> Result<()> {
        let tag = self.check_tag(tag)?;
        let dest = self.check_rank(dest)?;
        let count = to_int(buf.len(), "the buffer's length")?;
        let _state = lock();
        // SAFETY: `buf` holds `count` elements of the datatype of `T`.
        check(
            unsafe {
                ffi::MPI_Send(
                    buf.as_ptr().cast(),
                    count,
                    datatype(T::KIND)?,
                    dest,
                    tag,
                    self.raw,
                )
            },
            "MPI_Send",
        )
    }

    pub(crate) fn isend_buf<T: Element>(
        &self,
        buf: &[T],
        dest: usize,
        tag: i32,
    ) -> Result<MpiPending<()>> {
        let tag = self.check_tag(tag)?;
        let dest = self.check_rank(dest)?;
        let bytes: Vec<u8> = bytemuck::cast_slice(buf).to_vec();
        let _state = lock();
        Ok(MpiPending::Send(self.isend_raw(
            bytes,
            buf.len(),
            datatype(T::KIND)?,
            dest,
            tag,
        )?))
    }

    pub(crate) fn recv_buf<T: Element>(
        &self,
        buf: &mut [T],
        source: Source,
        tag: TagMatch,
    ) -> Result<Status> {
        let (source, tag) = self.pattern(source, tag)?;
        poll(|| {
            let mut state = lock();
            reap(&mut state)?;
            match self.find(source, tag, false)? {
                Some(found) => self.recv_into(&found, buf).map(Some),
                None => Ok(None),
            }
        })
    }

    pub(crate) fn irecv_buf<T: Element>(
        &self,
        capacity: usize,
        source: Source,
        tag: TagMatch,
    ) -> Result<MpiPending<Vec<T>>> {
        let (source, tag) = self.pattern(source, tag)?;
        Ok(MpiPending::Recv {
            source,
            tag,
            object: false,
            capacity,
            finish: MpiComm::take_buffer::<T>,
        })
    }

    pub(crate) fn sendrecv<T: Serialize + ?Sized, U: DeserializeOwned>(
        &self,
        value: &T,
        dest: usize,
        sendtag: i32,
        source: Source,
        recvtag: TagMatch,
    ) -> Result<U> {
        self.pattern(source, recvtag)?;
        self.send(value, dest, sendtag)?;
        Ok(self.recv(source, recvtag)?.0)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sendrecv_buf<T: Element, U: Element>(
        &self,
        send: &[T],
        dest: usize,
        sendtag: i32,
        recv: &mut [U],
        source: Source,
        recvtag: TagMatch,
    ) -> Result<Status> {
        self.pattern(source, recvtag)?;
        let mut sending = match self.isend_buf(send, dest, sendtag)? {
            MpiPending::Send(send) => send,
            MpiPending::Recv { .. } => return Err(Error::invalid("a send became a receive")),
        };
        let received = self.recv_buf(recv, source, recvtag);
        let mut state = lock();
        // SAFETY: a live request whose bytes `sending` owns.
        let code = unsafe { ffi::MPI_Wait(&mut sending.request, ffi::RSMPI_STATUS_IGNORE) };
        if let Err(e) = received {
            // The send still completes in the background.
            state.sends.push(sending);
            return Err(e);
        }
        check(code, "MPI_Wait")?;
        received
    }

    pub(crate) fn probe(&self, source: Source, tag: TagMatch) -> Result<Status> {
        let (source, tag) = self.pattern(source, tag)?;
        poll(|| {
            let mut state = lock();
            reap(&mut state)?;
            Ok(self.find(source, tag, false)?.map(|f| f.status(None)))
        })
    }

    pub(crate) fn iprobe_status(&self, source: Source, tag: TagMatch) -> Result<Option<Status>> {
        let (source, tag) = self.pattern(source, tag)?;
        let mut state = lock();
        reap(&mut state)?;
        Ok(self.find(source, tag, false)?.map(|f| f.status(None)))
    }

    /// `comm.Abort()`: `MPI_Abort`, which ends every rank of the job, this one included.
    pub(crate) fn abort(&self) -> ! {
        abort_job(self.raw, 1)
    }

    /// One look at a request: `Some(None)` for a completed send, `Some(Some(..))` for a
    /// completed receive, `None` while pending.
    pub(crate) fn test<T>(
        &self,
        pending: &mut MpiPending<T>,
    ) -> Result<Option<Option<(T, Status)>>> {
        let mut state = lock();
        reap(&mut state)?;
        match pending {
            MpiPending::Send(send) => {
                let mut flag: c_int = 0;
                // SAFETY: a live request (or a null one once complete) whose bytes `send`
                // owns.
                check(
                    unsafe {
                        ffi::MPI_Test(&mut send.request, &mut flag, ffi::RSMPI_STATUS_IGNORE)
                    },
                    "MPI_Test",
                )?;
                Ok((flag != 0).then_some(None))
            }
            MpiPending::Recv {
                source,
                tag,
                object,
                capacity,
                finish,
            } => match self.find(*source, *tag, *object)? {
                Some(found) => Ok(Some(Some(finish(self, found, *capacity)?))),
                None => Ok(None),
            },
        }
    }

    /// Whether a request would complete now, without completing it.
    pub(crate) fn is_done<T>(&self, pending: &MpiPending<T>) -> Result<bool> {
        let _state = lock();
        match pending {
            MpiPending::Send(send) => {
                let mut flag: c_int = 0;
                // SAFETY: a live (or null) request; MPI_Request_get_status does not free it.
                check(
                    unsafe {
                        ffi::MPI_Request_get_status(
                            send.request,
                            &mut flag,
                            ffi::RSMPI_STATUS_IGNORE,
                        )
                    },
                    "MPI_Request_get_status",
                )?;
                Ok(flag != 0)
            }
            MpiPending::Recv {
                source,
                tag,
                object,
                ..
            } => Ok(self.find(*source, *tag, *object)?.is_some()),
        }
    }
}

/// A dropped request: a send is still delivered (it completes in the background); a
/// receive that never matched leaves its message queued.
pub(crate) fn forget<T>(pending: MpiPending<T>) {
    if let MpiPending::Send(send) = pending {
        lock().sends.push(send);
    }
}

/// The element types whose MAXLOC/MINLOC this backend reduces with a user operation.
fn is_loc(kind: ElementKind) -> bool {
    matches!(
        kind,
        ElementKind::LocF64 | ElementKind::LocI64 | ElementKind::LocU64
    )
}

// `Loc` must keep the layout of the struct datatypes made in `loc_type`.
const _: () = assert!(size_of::<Loc<f64>>() == 16 && std::mem::offset_of!(Loc<f64>, index) == 8);
