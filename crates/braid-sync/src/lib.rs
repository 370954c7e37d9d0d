//! Threads and their synchronisation, like Python's `threading`, `queue` and
//! `concurrent.futures.ThreadPoolExecutor`.
//!
//! | Python | braid-sync |
//! |---|---|
//! | `threading.Thread(name=..., target=...)`, `current_thread()`, `active_count()` | [`spawn`], [`Builder`], [`JoinHandle`], [`current`], [`active_count`] |
//! | `Lock`, `RLock` | [`Lock`], [`RLock`] |
//! | `Semaphore`, `BoundedSemaphore` | [`Semaphore`], [`BoundedSemaphore`] |
//! | `Condition`, `Event`, `Barrier` | [`Condition`], [`Event`], [`Barrier`] |
//! | `queue.Queue`, `LifoQueue`, `PriorityQueue` | [`Queue`], [`LifoQueue`], [`PriorityQueue`] |
//! | `ThreadPoolExecutor` | [`ThreadPool`] (a [`braid_core::Executor`]) |
//!
//! Locks own the data they protect and release on drop (Python's `with lock:`); waits that
//! can time out take a [`Duration`](std::time::Duration); failures are typed ([`Error`],
//! [`PutError`], which gives the item back). Blocked waits on a queue, event or condition
//! spin for a few microseconds before they sleep, so hand-offs between running threads
//! cost far less than a kernel wake-up.
//!
//! ```
//! use std::sync::Arc;
//! use braid_sync::{Event, Lock, Queue, spawn};
//!
//! let results = Arc::new(Lock::new(Vec::new()));
//! let work = Arc::new(Queue::new());
//! let go = Arc::new(Event::new());
//!
//! let workers: Vec<_> = (0..2)
//!     .map(|i| {
//!         let (results, work, go) = (results.clone(), work.clone(), go.clone());
//!         spawn(format!("worker-{i}"), move || {
//!             go.wait();
//!             while let Ok(n) = work.get() {
//!                 results.acquire().push(n * n);
//!                 work.task_done().unwrap();
//!             }
//!         })
//!         .unwrap()
//!     })
//!     .collect();
//!
//! for n in 1..=10u64 {
//!     work.put(n).unwrap();
//! }
//! go.set();
//! work.join(); // every item processed
//! work.shutdown(false); // the workers' get() now fails: they return
//! for w in workers {
//!     w.join().unwrap();
//! }
//! let sum: u64 = results.acquire().iter().sum();
//! assert_eq!(sum, 385);
//! ```
#![forbid(unsafe_code)]

mod barrier;
mod condition;
mod error;
mod event;
mod lock;
mod pool;
mod queue;
mod rlock;
mod semaphore;
mod shim;
mod thread;
mod waitlist;

pub use barrier::Barrier;
pub use condition::{Condition, ConditionGuard};
pub use error::{Error, PutError};
pub use event::Event;
pub use lock::{Lock, LockGuard};
pub use pool::{CLOSURE_TASK, ThreadPool, ThreadPoolBuilder};
pub use queue::{LifoQueue, PriorityQueue, Queue};
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{BoundedPermit, BoundedSemaphore, Permit, Semaphore};
pub use thread::{Builder, JoinHandle, JoinTimeout, ThreadInfo, active_count, current, spawn};
