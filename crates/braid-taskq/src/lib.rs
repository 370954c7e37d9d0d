//! A distributed task queue that speaks Celery's protocol, like Python's Celery.
//!
//! | Celery | braid-taskq |
//! |---|---|
//! | `app = Celery(broker=..., backend=...)` | [`App::new`], [`App::builder`] |
//! | `@app.task(max_retries=..., autoretry_for=..., rate_limit=...)` | `#[braid::task(name = "...")]` plus [`TaskOptions`] given to [`App::task_options`] |
//! | `add.delay(2, 3)`, `add.apply_async(args, countdown=..., queue=...)` | [`App::delay`], [`App::apply_async`] with [`CallOptions`] |
//! | `app.send_task("tasks.add", args)` | [`App::send_task`] |
//! | `AsyncResult`: `.get(timeout)`, `.state`, `.forget()`, `.revoke()` | [`AsyncResult`], [`State`] |
//! | `self.request`, `self.retry(countdown=...)`, `SoftTimeLimitExceeded` | [`current`], [`retry`], [`TaskContext::check_soft_time_limit`] |
//! | `chain`, `group`, `chord`, `task.map`, `task.starmap`, `task.chunks` | [`chain`], [`group`], [`chord`], [`Signature::map`], [`Signature::starmap`], [`Signature::chunks`] |
//! | `celery worker -Q a,b -c N --prefetch-multiplier` | [`Worker::builder`] (and `braid worker`) |
//! | `app.control.revoke`, `inspect ping/active/stats` | [`App::revoke`], [`App::control`] |
//! | `celery beat` with `beat_schedule`, `crontab(...)` | [`Beat`], [`Entry`], [`Schedule`], [`Crontab`] |
//! | `celery worker -E`, `app.events.Receiver`, `app.events.State` | [`WorkerBuilder::events`], [`EventReceiver`], [`ClusterState`] |
//!
//! Brokers and result backends: `memory://NAME` (in this process; the default for tests
//! and `braid tour`), `sqlite:///path/file.db` (embedded and durable: a file that
//! survives restarts, shared by the processes of one machine), `redis://host:port/db` and
//! `amqp://user:pass@host:5672/vhost` (RabbitMQ) with kombu's exact layouts, so Python
//! Celery clients and workers share queues and results with braid ones. Results may also
//! go back over RabbitMQ (`rpc://`, Celery's rpc backend) or to PostgreSQL
//! (`db+postgresql://user:pass@host/db`). Workers started with events on publish Celery's
//! events ([`EventReceiver`], [`ClusterState`]); [`Beat`] sends periodic tasks. Messages are
//! Celery's protocol version 2 (JSON, or msgpack); a failure is stored as Celery stores
//! exceptions, so a Python `.get()` raises an exception named after the braid error type.
//!
//! Work is never lost: messages are acknowledged after the task ran (acks late), held
//! messages of a worker that died are restored after the visibility timeout, messages
//! due later wait in the broker (not in a worker's memory), and a message that cannot run
//! goes to a dead-letter list instead of crashing the worker.
//!
//! ```
//! use std::time::Duration;
//! use braid_taskq::{App, State, Worker};
//!
//! #[braid_core::task(name = "doc.lib.mul")]
//! fn mul(x: i64, y: i64) -> i64 {
//!     x * y
//! }
//!
//! let app = App::new("memory://doc-lib", Some("memory://doc-lib")).unwrap();
//! let worker = Worker::builder(&app).concurrency(2).start().unwrap();
//!
//! let result = app.delay(mul::task(), (6, 7)).unwrap();
//! assert_eq!(result.get(Duration::from_secs(10)).unwrap(), 42);
//! assert_eq!(result.state().unwrap(), State::Success);
//!
//! worker.shutdown();
//! ```
#![forbid(unsafe_code)]

mod app;
mod backend;
mod beat;
mod broker;
mod canvas;
mod clock;
mod context;
mod error;
mod events;
mod failure;
mod message;
mod options;
mod redis_conn;
mod result;
mod runtime;
mod send;
mod sqlite;
mod state;
mod url;
mod worker;

pub use app::{App, AppBuilder};
pub use beat::{
    BEAT_LOCK, Beat, BeatError, Crontab, Entry, RunRecord, Schedule, Tick, load_entries,
    parse_entries, store_path_for,
};
pub use canvas::{Signature, chain, chord, group};
pub use context::{Retry, SoftTimeLimitExceeded, TaskContext, current, retry};
pub use error::{Error, Result};
pub use events::{ClusterState, Event, EventReceiver, MAX_TASKS, TaskInfo, WorkerInfo};
pub use failure::TaskFailure;
pub use message::{DeliveryInfo, Embed, Headers, Properties, Salvage, Serializer, TaskMessage};
pub use options::{CallOptions, Expires, RateLimit, TaskOptions};
pub use result::{AsyncResult, GroupResult};
pub use state::{ExceptionInfo, State};
pub use worker::{Worker, WorkerBuilder, WorkerStats};
