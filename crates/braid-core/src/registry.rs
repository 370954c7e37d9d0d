//! The process-wide table of tasks, filled at link time by `#[braid::task]`.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Codec, Error};

/// A boxed, sendable future, as async task bodies return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The body of a registered synchronous task: decodes its arguments, runs, encodes its result.
pub type SyncBody = fn(Codec, &[u8]) -> Result<Vec<u8>, Error>;

/// The body of a registered `async` task.
pub type AsyncBody = fn(Codec, Vec<u8>) -> BoxFuture<Result<Vec<u8>, Error>>;

/// How a registered task runs.
#[derive(Clone, Copy)]
pub enum TaskBody {
    /// A plain function, run on the calling thread.
    Sync(SyncBody),
    /// An `async fn`, run on a tokio runtime.
    Async(AsyncBody),
}

/// One registered task: its name, its signature for error messages, and its body.
///
/// Entries are created by `#[braid::task]`; user code reads them through [`lookup`] and
/// [`tasks`].
pub struct TaskEntry {
    name: &'static str,
    signature: &'static str,
    body: TaskBody,
}

inventory::collect!(TaskEntry);

impl TaskEntry {
    /// Creates an entry; used by the `#[task]` macro.
    pub const fn new(name: &'static str, signature: &'static str, body: TaskBody) -> Self {
        TaskEntry {
            name,
            signature,
            body,
        }
    }

    /// The name the task is registered under.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The task's signature as written, e.g. `fn(x: i64, y: i64) -> i64`.
    pub fn signature(&self) -> &'static str {
        self.signature
    }

    /// Whether the task is an `async fn`.
    pub fn is_async(&self) -> bool {
        matches!(self.body, TaskBody::Async(_))
    }

    /// Runs the task on this thread with encoded arguments, returning its encoded result.
    ///
    /// An async task runs to completion on a tokio runtime of its own (on a helper thread
    /// when this thread already drives a runtime). Panics inside the task are caught and
    /// returned as [`Error::Task`].
    ///
    /// # Errors
    /// A decode error naming the task and the expected types, or the task's own error.
    pub fn call(&self, codec: Codec, args: &[u8]) -> Result<Vec<u8>, Error> {
        match self.body {
            TaskBody::Sync(body) => body(codec, args),
            TaskBody::Async(body) => block_on_fresh(body(codec, args.to_vec())),
        }
    }

    /// Runs the task from async code. A synchronous task runs inline on the polling thread,
    /// so callers that must not block their runtime should use an executor instead.
    ///
    /// # Errors
    /// As for [`TaskEntry::call`].
    pub async fn call_async(&self, codec: Codec, args: Vec<u8>) -> Result<Vec<u8>, Error> {
        match self.body {
            TaskBody::Sync(body) => body(codec, &args),
            TaskBody::Async(body) => body(codec, args).await,
        }
    }
}

impl std::fmt::Debug for TaskEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskEntry")
            .field("name", &self.name)
            .field("signature", &self.signature)
            .field("async", &self.is_async())
            .finish()
    }
}

thread_local! {
    static RUNTIME: Result<tokio::runtime::Runtime, String> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string());
}

fn block_on_fresh(future: BoxFuture<Result<Vec<u8>, Error>>) -> Result<Vec<u8>, Error> {
    fn run(future: BoxFuture<Result<Vec<u8>, Error>>) -> Result<Vec<u8>, Error> {
        RUNTIME.with(|rt| match rt {
            Ok(rt) => rt.block_on(future),
            Err(e) => Err(Error::WorkerLost(format!(
                "cannot start a tokio runtime: {e}"
            ))),
        })
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        // This thread drives a runtime already, and a runtime cannot block inside another.
        std::thread::scope(|s| match s.spawn(move || run(future)).join() {
            Ok(result) => result,
            Err(payload) => Err(Error::WorkerLost(crate::error::panic_message(&*payload))),
        })
    } else {
        run(future)
    }
}

struct Registry {
    by_name: HashMap<&'static str, &'static TaskEntry>,
    duplicates: Vec<&'static str>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut by_name = HashMap::new();
        let mut duplicates = Vec::new();
        for entry in inventory::iter::<TaskEntry> {
            if by_name.insert(entry.name, entry).is_some() {
                tracing::error!(task = entry.name, "task name registered more than once");
                duplicates.push(entry.name);
            }
        }
        Registry {
            by_name,
            duplicates,
        }
    })
}

/// Finds the task registered under `name`.
///
/// # Errors
/// [`Error::UnknownTask`] when no task has this name; [`Error::DuplicateTask`] when two do.
pub fn lookup(name: &str) -> Result<&'static TaskEntry, Error> {
    let registry = registry();
    if registry.duplicates.contains(&name) {
        return Err(Error::DuplicateTask(name.to_string()));
    }
    registry
        .by_name
        .get(name)
        .copied()
        .ok_or_else(|| Error::UnknownTask(name.to_string()))
}

/// Every registered task, sorted by name.
pub fn tasks() -> Vec<&'static TaskEntry> {
    let mut all: Vec<_> = registry().by_name.values().copied().collect();
    all.sort_by_key(|e| e.name);
    all
}

/// Calls the task registered under `name` with encoded arguments and returns the encoded
/// result; see [`TaskEntry::call`].
///
/// # Errors
/// [`Error::UnknownTask`], a decode error, or the task's own error.
pub fn call(name: &str, codec: Codec, args: &[u8]) -> Result<Vec<u8>, Error> {
    lookup(name)?.call(codec, args)
}

/// A typed reference to a registered task: `A` is its argument tuple, `R` its result.
///
/// `#[braid::task] fn add(x: i64, y: i64) -> i64` makes `add::task()`, a
/// `TaskRef<(i64, i64), i64>`; executors take it to run the task elsewhere with type-checked
/// arguments. A task with no arguments takes [`NoArgs`](crate::NoArgs); one with a single
/// argument takes a one-element tuple `(x,)`.
pub struct TaskRef<A, R> {
    name: &'static str,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R> Clone for TaskRef<A, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<A, R> Copy for TaskRef<A, R> {}

impl<A, R> std::fmt::Debug for TaskRef<A, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TaskRef({})", self.name)
    }
}

impl<A: Serialize, R: DeserializeOwned> TaskRef<A, R> {
    /// A reference to the task registered under `name`; it is checked when first called.
    pub const fn new(name: &'static str) -> Self {
        TaskRef {
            name,
            _types: PhantomData,
        }
    }

    /// The registered name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Encodes an argument tuple into a [`TaskCall`](crate::TaskCall) for an executor.
    ///
    /// # Errors
    /// [`Error::Encode`] when an argument cannot be encoded with `codec`.
    pub fn call_with(&self, codec: Codec, args: &A) -> Result<crate::TaskCall, Error> {
        Ok(crate::TaskCall::from_parts(
            self.name,
            codec,
            codec.encode(args)?,
        ))
    }

    /// Runs the task here, through the registry, as a remote worker would.
    ///
    /// # Errors
    /// [`Error::UnknownTask`], a decode error, or the task's own error.
    pub fn call(&self, args: A) -> Result<R, Error> {
        let codec = Codec::Binary;
        let out = call(self.name, codec, &codec.encode(&args)?)?;
        codec.decode(&out)
    }
}
