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
