//! asyncio for braid, on tokio: what tokio lacks to write Python's `asyncio` programs as
//! they are, and the bridges between async code and braid's executors.
//!
//! tokio is the event loop (`asyncio.run` is `Runtime::block_on`, `create_task` is
//! `tokio::spawn`, `sleep` is `tokio::time::sleep`); this crate adds:
//!
//! | Python | braid-async |
//! |---|---|
//! | `asyncio.TaskGroup`, `ExceptionGroup` | [`TaskGroup`], [`TaskSpawner`], [`TaskGroupError`] |
//! | `gather(*aws, return_exceptions=True)` / `gather(*aws)` | [`gather`] / [`try_gather`] (in place), [`gather_tasks`] (spawned) |
//! | `wait(aws, timeout, return_when=FIRST_COMPLETED \| FIRST_EXCEPTION \| ALL_COMPLETED)` | [`wait`], [`ReturnWhen`], [`Waited`] |
//! | `as_completed(aws)` | [`as_completed`], [`AsCompleted`] |
//! | `wait_for(aw, timeout)`, `timeout()`, `timeout_at()` | [`timeout`], [`timeout_at`] |
//! | `shield(aw)` | [`shield`], [`Shielded`] |
//! | `Event`, `Condition` | [`Event`], [`Condition`] |
//! | `Semaphore`, `BoundedSemaphore` | [`Semaphore`], [`BoundedSemaphore`] |
//! | `Barrier` | [`Barrier`] |
//! | `Queue`, `LifoQueue`, `PriorityQueue` (bounded, `task_done`/`join`, `shutdown`) | [`Queue`], [`LifoQueue`], [`PriorityQueue`] |
//! | `wrap_future(concurrent_future)` | [`wrap_future`], [`HandleExt::into_async`], [`HandleFuture`] |
//! | `loop.run_in_executor(executor, fn, *args)` | [`run_in_executor`] (a registered task, any [`braid_core::Executor`]), [`run_fn_in_executor`] (a closure, a [`braid_sync::ThreadPool`]) |
//!
//! Cancelling is dropping the future. Every async method says under `# Cancel safety`
//! what cancelling it does; a cancelled [`Queue::get`] never loses an item, a cancelled
//! wait never swallows a wake-up meant for another waiter. Time-outs take a
//! [`Duration`](std::time::Duration) and fail with [`Error::Timeout`]; waits use tokio's
//! clock, so tests can run them on paused time.
//!
//! ```
//! use std::sync::Arc;
//! use braid_async::{PutError, Queue, TaskGroup, gather};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Producers in a task group fill a queue; a consumer sums what arrives.
//! let queue = Arc::new(Queue::bounded(8));
//! let mut producers: TaskGroup<u64, PutError<u64>> = TaskGroup::new();
//! for p in 0..4u64 {
//!     let queue = queue.clone();
//!     producers.spawn(async move {
//!         for i in 0..100 {
//!             queue.put(p * 100 + i).await?;
//!         }
//!         Ok(p)
//!     });
//! }
//! let consumer = tokio::spawn({
//!     let queue = queue.clone();
//!     async move {
//!         let mut sum = 0;
//!         while let Ok(n) = queue.get().await {
//!             sum += n;
//!         }
//!         sum
//!     }
//! });
//! assert_eq!(producers.join().await.unwrap(), [0, 1, 2, 3]);
//! queue.shutdown(false);
//! assert_eq!(consumer.await.unwrap(), (0..400).sum::<u64>());
//!
//! // gather: concurrent, results in order.
//! assert_eq!(gather((0..3).map(|x| async move { x + 1 })).await, [1, 2, 3]);
//! # }
//! ```
#![forbid(unsafe_code)]

mod as_completed;
mod barrier;
mod bridge;
mod condition;
mod error;
mod event;
mod gather;
mod queue;
mod semaphore;
mod shield;
mod task_group;
mod timeout;
mod wait;
mod waitlist;

pub use as_completed::{AsCompleted, as_completed};
pub use barrier::Barrier;
pub use bridge::{HandleExt, HandleFuture, run_fn_in_executor, run_in_executor, wrap_future};
pub use condition::{Condition, ConditionGuard};
pub use error::{Error, PutError};
pub use event::Event;
pub use gather::{gather, gather_tasks, try_gather};
pub use queue::{LifoQueue, PriorityQueue, PutPermit, Queue};
pub use semaphore::{BoundedPermit, BoundedSemaphore, Permit, Semaphore};
pub use shield::{Shielded, shield};
pub use task_group::{TaskFailure, TaskGroup, TaskGroupError, TaskSpawner};
pub use timeout::{timeout, timeout_at};
pub use wait::{ReturnWhen, Waited, wait};
