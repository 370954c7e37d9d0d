//! The Executor trait: one interface from a thread pool to a cluster.

use std::collections::VecDeque;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::handle::{Handle, Promise, promise};
use crate::registry::TaskRef;
use crate::{Codec, Error};

/// A call of a registered task: its name and its encoded argument tuple.
///
/// This is what crosses thread, process and machine boundaries; the worker looks the name
/// up in its own registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCall {
    name: String,
    codec: Codec,
    args: Vec<u8>,
}

impl TaskCall {
    /// Encodes `args` (a tuple, or [`NoArgs`](crate::NoArgs)) for the task named `name`.
    ///
    /// # Errors
    /// [`Error::Encode`] when an argument cannot be encoded.
    pub fn new<A: Serialize + ?Sized>(name: &str, codec: Codec, args: &A) -> Result<Self, Error> {
        Ok(Self::from_parts(name, codec, codec.encode(args)?))
    }

    /// A call from arguments that are encoded already.
    pub fn from_parts(name: &str, codec: Codec, args: Vec<u8>) -> Self {
        TaskCall {
            name: name.to_string(),
            codec,
            args,
        }
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The codec of the arguments, and of the result the worker sends back.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The encoded arguments.
    pub fn args(&self) -> &[u8] {
        &self.args
    }

    /// Runs the call on this thread through the registry and returns the encoded result.
    ///
    /// # Errors
    /// [`Error::UnknownTask`], a decode error, or the task's own error.
    pub fn run(&self) -> Result<Vec<u8>, Error> {
        crate::registry::call(&self.name, self.codec, &self.args)
    }
}

/// The worker's side of one submitted call: the result slot, which decodes the encoded
/// result into the type the caller's handle expects.
trait Slot: Send {
    fn start(&self) -> bool;
    fn complete(self: Box<Self>, result: Result<Vec<u8>, Error>);
    fn cancel(self: Box<Self>);
}

struct TypedSlot<R> {
    promise: Promise<R>,
    codec: Codec,
}

impl<R: DeserializeOwned + Send + 'static> Slot for TypedSlot<R> {
    fn start(&self) -> bool {
        self.promise.start()
    }

    fn complete(self: Box<Self>, result: Result<Vec<u8>, Error>) {
        let outcome = result.and_then(|bytes| self.codec.decode::<R>(&bytes));
        self.promise.complete(outcome);
    }

    fn cancel(self: Box<Self>) {
        self.promise.cancel();
    }
}

/// One unit of work handed to an [`Executor`]: a [`TaskCall`] and the slot for its result.
///
/// The executor calls [`Job::start`] when a worker picks the job up (skipping it when that
/// returns false: it was cancelled), runs the call, and hands the encoded result to
/// [`Job::complete`]. Dropping a job without completing it finishes the caller's handle
/// with [`Error::WorkerLost`].
pub struct Job {
    call: TaskCall,
    slot: Box<dyn Slot>,
}

impl Job {
    /// A job for `call` and the handle its result will reach, decoded as `R`.
    pub fn new<R: DeserializeOwned + Send + 'static>(call: TaskCall) -> (Job, Handle<R>) {
        let (promise, handle) = promise();
        let slot = Box::new(TypedSlot {
            promise,
            codec: call.codec,
        });
        (Job { call, slot }, handle)
    }

    /// The call to run.
    pub fn call(&self) -> &TaskCall {
        &self.call
    }

    /// Marks the job running; false means it was cancelled and must be skipped.
    pub fn start(&self) -> bool {
        self.slot.start()
    }

    /// Delivers the encoded result (or the error) to the caller.
    pub fn complete(self, result: Result<Vec<u8>, Error>) {
        self.slot.complete(result);
    }

    /// Cancels the job before it starts (an executor dropping its queue): the caller's
    /// handle ends cancelled, with [`Error::Cancelled`].
    pub fn cancel(self) {
        self.slot.cancel();
    }

    /// Starts, runs and completes the job on this thread; does nothing if it was cancelled.
    pub fn run_here(self) {
        if self.start() {
            let result = self.call.run();
            self.complete(result);
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("call", &self.call).finish()
    }
}

/// Runs registered tasks somewhere: on threads, in processes, on a cluster.
///
/// Modelled on Python's `concurrent.futures.Executor`. Implementors provide [`execute`],
/// [`shutdown`] and [`parallelism`]; the typed calls (`submit`, `map`) come from
/// [`ExecutorExt`], which every executor has.
///
/// [`execute`]: Executor::execute
/// [`shutdown`]: Executor::shutdown
/// [`parallelism`]: Executor::parallelism
pub trait Executor: Send + Sync {
    /// Queues a job.
    ///
    /// # Errors
    /// [`Error::Shutdown`] after [`Executor::shutdown`].
    fn execute(&self, job: Job) -> Result<(), Error>;

    /// Stops taking work. With `cancel_pending`, jobs not yet started are cancelled; with
    /// `wait`, blocks until running (and, unless cancelled, pending) jobs are done.
    fn shutdown(&self, wait: bool, cancel_pending: bool);

    /// How many jobs can run at once (the number of workers).
    fn parallelism(&self) -> usize;
}

/// The name of the built-in task that runs a chunk of calls in one job.
pub const CHUNK_TASK: &str = "braid.chunk";

type ChunkResult = Vec<Result<Vec<u8>, Error>>;

fn run_chunk(codec: Codec, bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let (name, item_codec, items): (String, Codec, Vec<Vec<u8>>) =
        codec.decode(bytes).map_err(|e| Error::DecodeArgs {
            task: CHUNK_TASK.to_string(),
            expected: "(String, Codec, Vec<Vec<u8>>)".to_string(),
            message: e.to_string(),
        })?;
    let entry = crate::registry::lookup(&name)?;
    let results: ChunkResult = items
        .iter()
        .map(|args| entry.call(item_codec, args))
        .collect();
    codec.encode(&results)
}

inventory::submit! {
    crate::registry::TaskEntry::new(
        CHUNK_TASK,
        "fn(name: String, codec: Codec, items: Vec<Vec<u8>>) -> Vec<Result<Vec<u8>, Error>>",
        crate::registry::TaskBody::Sync(run_chunk),
    )
}

/// Typed calls on every [`Executor`].
pub trait ExecutorExt: Executor {
    /// Submits a registered task with its argument tuple; returns its handle.
    ///
    /// # Errors
    /// [`Error::Encode`] when an argument cannot be encoded; [`Error::Shutdown`].
    fn submit<A, R>(&self, task: TaskRef<A, R>, args: A) -> Result<Handle<R>, Error>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        self.submit_call(task.call_with(Codec::Binary, &args)?)
    }

    /// Submits a prepared call; the result is decoded as `R`.
    ///
    /// # Errors
    /// [`Error::Shutdown`].
    fn submit_call<R>(&self, call: TaskCall) -> Result<Handle<R>, Error>
    where
        R: DeserializeOwned + Send + 'static,
    {
        let (job, handle) = Job::new(call);
        self.execute(job)?;
        Ok(handle)
    }

    /// Applies a task to every argument tuple, yielding results in input order.
    ///
    /// Lazy like a Python iterator, with bounded look-ahead: at most a few chunks per
    /// worker are in flight, so an endless input is fine. Each job carries `chunksize`
    /// calls (at least one), which cuts per-job overhead for small tasks. Each item's
    /// outcome is its own: one failure does not stop the rest.
    fn map<A, R, I>(
        &self,
        task: TaskRef<A, R>,
        inputs: I,
        chunksize: usize,
    ) -> Map<'_, Self, R, I::IntoIter>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        Map {
            executor: self,
            name: task.name(),
            inputs: inputs.into_iter().map(encode_args::<A>),
            chunksize: chunksize.max(1),
            in_flight: VecDeque::new(),
            ready: VecDeque::new(),
            exhausted: false,
        }
    }
}

impl<E: Executor + ?Sized> ExecutorExt for E {}

fn encode_args<A: Serialize>(args: A) -> Result<Vec<u8>, Error> {
    Codec::Binary.encode(&args)
}

type EncodeArgs<A> = fn(A) -> Result<Vec<u8>, Error>;

/// The ordered, lazy iterator returned by [`ExecutorExt::map`].
pub struct Map<'a, E: ?Sized, R, I: Iterator> {
    executor: &'a E,
    name: &'static str,
    inputs: std::iter::Map<I, EncodeArgs<I::Item>>,
    chunksize: usize,
    in_flight: VecDeque<InFlight<R>>,
    ready: VecDeque<Result<R, Error>>,
    exhausted: bool,
}

enum InFlight<R> {
    One(Handle<R>),
    Chunk(Handle<ChunkResult>, usize),
    Failed(Vec<Error>),
}

impl<E, R, I> Map<'_, E, R, I>
where
    E: Executor + ?Sized,
    R: DeserializeOwned + Send + 'static,
    I: Iterator,
{
    fn fill(&mut self) {
        let window = self.executor.parallelism().max(1) * 2;
        while !self.exhausted && self.in_flight.len() < window {
            let batch: Vec<Result<Vec<u8>, Error>> =
                self.inputs.by_ref().take(self.chunksize).collect();
            if batch.is_empty() {
                self.exhausted = true;
                break;
            }
            self.in_flight.push_back(self.submit_batch(batch));
        }
    }

    fn submit_batch(&self, batch: Vec<Result<Vec<u8>, Error>>) -> InFlight<R> {
        if batch.iter().any(Result::is_err) {
            // Keep each item's own outcome: encode failures stay with their item.
            let errors = batch
                .into_iter()
                .map(|r| match r {
                    Err(e) => e,
                    Ok(_) => Error::Encode("another item of this chunk failed to encode".into()),
                })
                .collect();
            return InFlight::Failed(errors);
        }
        let mut items: Vec<Vec<u8>> = batch.into_iter().flatten().collect();
        let submitted = if self.chunksize == 1 {
            let call = TaskCall::from_parts(self.name, Codec::Binary, items.remove(0));
            self.executor.submit_call(call).map(InFlight::One)
        } else {
            let len = items.len();
            TaskCall::new(
                CHUNK_TASK,
                Codec::Binary,
                &(self.name, Codec::Binary, &items),
            )
            .and_then(|call| self.executor.submit_call(call))
            .map(|handle| InFlight::Chunk(handle, len))
        };
        submitted.unwrap_or_else(|e| InFlight::Failed(vec![e; items.len().max(1)]))
    }
}

impl<E, R, I> Iterator for Map<'_, E, R, I>
where
    E: Executor + ?Sized,
    R: DeserializeOwned + Send + 'static,
    I: Iterator,
{
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(item) = self.ready.pop_front() {
            return Some(item);
        }
        self.fill();
        match self.in_flight.pop_front()? {
            InFlight::One(handle) => Some(handle.result()),
            InFlight::Chunk(handle, len) => {
                match handle.result() {
                    Ok(results) => self.ready.extend(
                        results
                            .into_iter()
                            .map(|r| r.and_then(|bytes| Codec::Binary.decode::<R>(&bytes))),
                    ),
                    Err(e) => self.ready.extend(std::iter::repeat_n(e, len).map(Err)),
                }
                self.ready.pop_front()
            }
            InFlight::Failed(errors) => {
                self.ready.extend(errors.into_iter().map(Err));
                self.ready.pop_front()
            }
        }
    }
}
