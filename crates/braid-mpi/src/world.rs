//! Starting a job: [`run_threads`] (ranks as threads of this process), [`init`] (this
//! process is one rank of a job started by `braid run`), and [`run`] (whichever applies).

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::engine::Engine;
use crate::segment::{RankState, Segment, monotonic_seconds};
use crate::{Comm, Error, Result};

/// The environment variable that holds the inherited segment's file descriptor.
pub const ENV_FD: &str = "BRAID_MPI_FD";
/// The environment variable that holds this process's world rank.
pub const ENV_RANK: &str = "BRAID_MPI_RANK";
/// The environment variable that holds the number of ranks.
pub const ENV_SIZE: &str = "BRAID_MPI_SIZE";

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Runs `f` as each of `size` ranks, each on its own thread of this process, with the
/// world communicator (like `mpiexec -n size` for tests and small jobs). Returns every
/// rank's result in rank order.
///
/// When a rank panics, the job is aborted: the other ranks' pending and later calls
/// return [`Error::Aborted`] instead of hanging, and this returns
/// [`Error::RankFailed`] for the first rank that failed.
///
/// ```
/// let ranks = braid_mpi::run_threads(4, |comm| comm.rank()).unwrap();
/// assert_eq!(ranks, vec![0, 1, 2, 3]);
/// ```
pub fn run_threads<R: Send>(size: usize, f: impl Fn(Comm) -> R + Sync) -> Result<Vec<R>> {
    let segment = Arc::new(Segment::create(size, false)?);
    let f = &f;
    let outcomes: Vec<std::thread::Result<R>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..size)
            .map(|rank| {
                let segment = Arc::clone(&segment);
                std::thread::Builder::new()
                    .name(format!("rank-{rank}"))
                    .spawn_scoped(s, move || {
                        let comm = Comm::world(Engine::new(Arc::clone(&segment), rank));
                        let outcome =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(comm)));
                        if outcome.is_err() {
                            segment.abort(rank);
                        } else if segment.state(rank) == RankState::Running {
                            segment.set_state(rank, RankState::Finished);
                        }
                        outcome
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(handle) => handle.join().unwrap_or_else(Err),
                Err(e) => Err(Box::new(format!("could not start the thread: {e}"))
                    as Box<dyn std::any::Any + Send>),
            })
            .collect()
    });
    let mut results = Vec::with_capacity(size);
    let mut failures = Vec::new();
    for (rank, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(value) => results.push(value),
            Err(payload) => failures.push((rank, panic_message(&*payload))),
        }
    }
    if failures.is_empty() {
        return Ok(results);
    }
    let first = segment.aborted().unwrap_or(failures[0].0);
    let (rank, message) = failures
        .into_iter()
        .find(|(rank, _)| *rank == first)
        .unwrap_or((first, "failed".into()));
    Err(Error::RankFailed { rank, message })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked".to_string()
    }
}

/// Whether this process was started as a rank by `braid run` (or, with the feature `mpi`,
/// by `mpirun`).
pub fn launched() -> bool {
    #[cfg(feature = "mpi")]
    if crate::openmpi::started_by_mpirun() {
        return true;
    }
    std::env::var_os(ENV_FD).is_some()
}

/// Joins the job this process belongs to (`from mpi4py import MPI`; `MPI.COMM_WORLD`):
/// reads what `braid run` put in the environment and maps the job's shared memory.
/// Call it once per process.
///
/// With the cargo feature `mpi`, a process started by `mpirun` (one that finds
/// `OMPI_COMM_WORLD_SIZE`, `PMIX_RANK` or `PMI_RANK` in its environment, and no
/// [`ENV_FD`]) joins its MPI job instead: `MPI_Init_thread`, with `MPI_Finalize` when
/// the process exits and `MPI_Abort` when a thread of it panics.
///
/// # Errors
/// [`Error::NotLaunched`] when the process was not started by `braid run` (or
/// `mpirun`); [`Error::Mpi`] when MPI fails to start.
pub fn init() -> Result<Comm> {
    #[cfg(feature = "mpi")]
    if crate::openmpi::started_by_mpirun() {
        return crate::openmpi::init();
    }
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            Error::NotLaunched(format!(
                "{name} is not set; start the program with `braid run -n N`"
            ))
        })
    };
    let fd: i32 = var(ENV_FD)?
        .parse()
        .map_err(|_| Error::NotLaunched(format!("{ENV_FD} is not a file descriptor")))?;
    let rank: usize = var(ENV_RANK)?
        .parse()
        .map_err(|_| Error::NotLaunched(format!("{ENV_RANK} is not a rank")))?;
    let size: usize = var(ENV_SIZE)?
        .parse()
        .map_err(|_| Error::NotLaunched(format!("{ENV_SIZE} is not a number")))?;
    if INITIALISED.swap(true, Ordering::SeqCst) {
        return Err(Error::NotLaunched(
            "init was already called in this process".into(),
        ));
    }
    rustix::fs::fstat(unsafe_fd(fd)?)
        .map_err(|e| Error::NotLaunched(format!("{ENV_FD}={fd} is not open: {e}")))?;
    // SAFETY: the launcher left `fd` open for this process's rank to take, and it is open
    // (checked just above); `INITIALISED` makes this the only place that ever owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // Programs this rank starts must not inherit the job's memory.
    rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)
        .map_err(|e| Error::os("marking the job's segment close-on-exec", e))?;
    let segment = Arc::new(Segment::attach(owned)?);
    if segment.size() != size || rank >= size {
        return Err(Error::NotLaunched(format!(
            "rank {rank} of {size} does not match a segment of {} ranks",
            segment.size()
        )));
    }
    if segment.state(rank) != RankState::Starting {
        return Err(Error::NotLaunched(format!(
            "rank {rank} has already joined the job"
        )));
    }
    Ok(Comm::world(Engine::new(segment, rank)))
}

fn unsafe_fd(fd: i32) -> Result<rustix::fd::BorrowedFd<'static>> {
    if fd < 0 {
        return Err(Error::NotLaunched(format!("{ENV_FD}={fd} is negative")));
    }
    // SAFETY: only used for one `fstat`, which fails cleanly (EBADF) if `fd` is not open;
    // the descriptor is not closed while borrowed.
    Ok(unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) })
}

/// Runs `f` as the ranks of a job: when this process was started by `braid run`, it is
/// one rank and `f` runs once with the world communicator; otherwise `size` ranks run
/// as threads of this process ([`run_threads`]). Returns the results of the ranks that
/// ran here.
pub fn run<R: Send>(size: usize, f: impl Fn(Comm) -> R + Sync) -> Result<Vec<R>> {
    if launched() {
        let comm = init()?;
        Ok(vec![f(comm)])
    } else {
        run_threads(size, f)
    }
}

/// Seconds on a monotonic clock (`MPI.Wtime()`): subtract two readings to time code.
pub fn wtime() -> f64 {
    #[cfg(feature = "mpi")]
    if crate::openmpi::active() {
        return crate::openmpi::wtime();
    }
    monotonic_seconds()
}

/// The resolution of [`wtime`] in seconds (`MPI.Wtick()`).
pub fn wtick() -> f64 {
    #[cfg(feature = "mpi")]
    if crate::openmpi::active() {
        return crate::openmpi::wtick();
    }
    1e-9
}

/// This machine's name (`MPI.Get_processor_name()`).
pub fn processor_name() -> String {
    #[cfg(feature = "mpi")]
    if crate::openmpi::active()
        && let Some(name) = crate::openmpi::processor_name()
    {
        return name;
    }
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
