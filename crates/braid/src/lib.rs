//! braid: what Python's parallel and distributed stack gives Python programmers, in Rust.
//!
//! The core (tasks, codecs, the [`Executor`] trait, [`Handle`]s) is re-exported at the
//! root; each family of parallelism is a module, behind a cargo feature of the same name:
//!
//! | module | feature | Python counterpart |
//! |---|---|---|
//! | [`sync`] | `sync` | `threading`, `queue`, `concurrent.futures.ThreadPoolExecutor` |
//! | [`proc`] | `proc` | `multiprocessing` (`Process`, `Pipe`, `Queue`, locks, `Value`/`Array`, `shared_memory`, `Manager`, `Pool`), `concurrent.futures.ProcessPoolExecutor` |
//! | [`csp`] | `csp` | PyCSP: `@process`, `Channel`, poison/retire, `Alternation`, `Parallel`/`Sequence`/`Spawn`, remote channels |
//! | [`gpu`] | `gpu` | PyCUDA (`SourceModule`, `GPUArray`, `ElementwiseKernel`, `ReductionKernel`), NumbaPro cuBLAS, PyOpenCL |
//! | [`asyncio`] | `async` | `asyncio` (on tokio), `asyncio.wrap_future` / `run_in_executor` for every executor |
//! | [`taskq`] | `taskq` | Celery: apps, tasks, workers, results, retries, chain/group/chord, on Redis with Celery's wire protocol |
//! | [`dashboard`] | `dashboard` | Flower: a live web view of the task queue's workers and tasks, with revoke and retry |
//! | [`rpc`] | `rpc` | Pyro4/Pyro5 (`Daemon`, `expose`, `Proxy`, `PYRONAME:`, name server, `oneway`, batch, callbacks, HMAC key) and RPyC remote calls |
//! | [`dmap`] | `dmap` | SCOOP: `futures.map`/`submit`/`mapReduce`/`mapScan`, `shared.setConst`, `python -m scoop -n N` (`braid dmap -n N`) |
//! | [`mapreduce`] | `mapreduce` | Disco: `Job().run(input, map, reduce, combiner, partition)`, result files, `braid mapreduce wordcount` |
//! | [`mpi`] | `mpi` | mpi4py: `COMM_WORLD`, `send`/`recv`, `Send`/`Recv`, `isend`/`irecv`, `sendrecv`, `bcast`/`scatter`/`gather`/`allgather`/`alltoall` (and `v` variants), `reduce`/`allreduce`/`scan`/`exscan`, `Split`, `Create_cart`; `mpiexec -n N` is `braid run -n N` |
//!
//! ```
//! #[braid::task]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() {
//!     braid::init();
//!     assert_eq!(square::task().call((7,)).unwrap(), 49);
//! }
//! ```
#![forbid(unsafe_code)]

extern crate self as braid;

pub use braid_core::*;

/// Threads and their synchronisation, like Python's `threading` and `queue`.
#[cfg(feature = "sync")]
pub mod sync {
    pub use braid_sync::*;
}

/// Processes and their communication, like Python's `multiprocessing`; call
/// [`init`] first thing in `main` (children re-execute the program).
#[cfg(feature = "proc")]
pub mod proc {
    pub use braid_proc::*;
}

/// Communicating sequential processes, like PyCSP: channels, poison and retire,
/// alternation, Parallel/Sequence/Spawn, channels across the network.
#[cfg(feature = "csp")]
pub mod csp {
    pub use braid_csp::*;
}

/// GPU programming like PyCUDA, NumbaPro's cuBLAS and PyOpenCL (CUDA and OpenCL are
/// loaded at run time: without them every call is a clear `NoDevice` error).
#[cfg(feature = "gpu")]
pub mod gpu {
    pub use braid_gpu::*;
}

/// asyncio on tokio: TaskGroup, gather/wait/as_completed, async synchronisation and
/// queues, and bridges to every executor (`async` is a keyword, so the module is `asyncio`).
#[cfg(feature = "async")]
pub mod asyncio {
    pub use braid_async::*;
}

/// A distributed task queue like Celery, wire-compatible with it on Redis.
#[cfg(feature = "taskq")]
pub mod taskq {
    pub use braid_taskq::*;
}

/// A live web dashboard for the task queue, like Flower (an axum server).
#[cfg(feature = "dashboard")]
pub mod dashboard {
    pub use braid_dashboard::*;
}

/// Remote objects like Pyro4/Pyro5 and RPyC: a daemon hosting objects at URIs, a name
/// server, typed proxies (`#[rpc::service]` on a trait), one-way, asynchronous and batched
/// calls, callbacks, shared keys and TLS.
#[cfg(feature = "rpc")]
pub mod rpc {
    pub use braid_rpc::*;
}

/// SCOOP's futures over any executor: map, submit, map_reduce, map_scan and shared
/// constants, from a thread pool to a task-queue cluster; call [`init`] first in `main`.
#[cfg(feature = "dmap")]
pub mod dmap {
    pub use braid_dmap::*;
}

/// MapReduce jobs like Disco's on any executor: map, partition, combine and reduce
/// over files, spilling to disk under a memory budget; register programs with
/// [`mapreduce::register!`](crate::mapreduce::register).
#[cfg(feature = "mapreduce")]
pub mod mapreduce {
    pub use braid_mapreduce::*;
}

/// MPI like mpi4py on a shared-memory backend (nothing to install): ranks are threads
/// ([`mpi::run_threads`]) or processes started by `braid run -n N` ([`mpi::init`]).
#[cfg(feature = "mpi")]
pub mod mpi {
    pub use braid_mpi::*;
}
