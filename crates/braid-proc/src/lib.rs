//! Processes and their communication, like Python's `multiprocessing`.
//!
//! | Python | braid-proc |
//! |---|---|
//! | `Process(target=..., args=..., name=..., daemon=...)`, `current_process()` | [`Process`], [`Run`], [`current_process`] |
//! | `Pipe()`, `Pipe(duplex=False)` | [`pipe`], [`one_way_pipe`] ([`Connection`]) |
//! | `Queue`, `JoinableQueue`, `SimpleQueue` | [`Queue`], [`JoinableQueue`], [`SimpleQueue`] |
//! | `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore` | [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`] |
//! | `Event`, `Condition`, `Barrier` | [`Event`], [`Condition`], [`Barrier`] |
//! | `Value`, `Array`, `shared_memory.SharedMemory` | [`Value`], [`Array`], [`SharedMemory`] |
//! | `Manager()` (`dict`, `list`, `Namespace`, `Queue`), `BaseManager` over TCP with an `authkey` | [`Manager`], [`ManagerClient`], [`ManagerServer`] |
//! | `Pool`, `concurrent.futures.ProcessPoolExecutor` | [`ProcessPool`] (a [`braid_core::Executor`]) |
//!
//! Processes are started by re-executing the current program (Python's "spawn" start
//! method; no `fork` of a threaded process): call `braid::init()` (or
//! `braid_core::init()`) first thing in `main`, and a child becomes the worker it was
//! started to be there. (A test binary that starts processes therefore owns its `main`:
//! `harness = false`.)
//!
//! Shared objects — queues, connections, locks, events, values — travel to a child in
//! its start arguments, as Python's are inherited; elsewhere they refuse to serialise
//! with a clear error. Managers' proxies and [`SharedMemory`] blocks travel anywhere.
//! Waits spin for a few microseconds before they sleep, so hand-offs between running
//! processes cost about a microsecond; every wait on another process ends with an
//! error, not a hang, when that process dies.
//!
//! Unsafe code is confined to mapping shared memory (`region.rs`), and to calling an
//! entry function found again in the child (`entry.rs`); each block says why it holds.
//!
//! ```no_run
//! use braid_proc::Process;
//!
//! #[braid_core::task]
//! fn square(x: u64) {
//!     println!("{x} squared is {}", x * x);
//! }
//!
//! fn main() {
//!     braid_core::init();
//!     let mut children: Vec<Process> =
//!         (1..=3).map(|x| Process::new(square::task(), (x,))).collect();
//!     for child in &mut children {
//!         child.start().unwrap();
//!     }
//!     for child in &children {
//!         child.join().unwrap();
//!     }
//! }
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

mod barrier;
mod channel;
mod child;
mod condition;
mod entry;
mod error;
mod event;
mod futex_lock;
mod lock;
mod manager;
mod manager_server;
mod manager_wire;
mod mutex;
mod object;
mod pipe;
mod pool;
mod pool_wire;
mod pool_worker;
mod process;
mod queue;
mod region;
mod semaphore;
mod share;
mod shared_memory;
mod sys;
mod value;
mod wire;

pub use barrier::Barrier;
pub use child::{ProcessInfo, current_process};
pub use condition::{Condition, ConditionGuard};
pub use entry::Run;
pub use error::{Error, Result, signal_name};
pub use event::Event;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use manager::{
    DictProxy, ListProxy, Manager, ManagerBuilder, ManagerClient, NamespaceProxy, QueueProxy,
};
pub use manager_server::ManagerServer;
pub use manager_wire::Address;
pub use pipe::{Connection, one_way_pipe, pipe};
pub use pool::{Imap, ImapUnordered, ProcessPool, ProcessPoolBuilder};
pub use process::Process;
pub use queue::{DEFAULT_BUFFER, JoinableQueue, Queue, SimpleQueue};
pub use semaphore::{BoundedPermit, BoundedSemaphore, Permit, Semaphore};
pub use shared_memory::SharedMemory;
pub use value::{Array, Element, Value};
