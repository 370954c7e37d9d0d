//! [`Dmap`]: SCOOP's futures API over any braid [`Executor`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use braid_core::{Codec, Executor, TaskCall, TaskRef};
use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::{self, Ctx};
use crate::envelope::{self, ChunkResult};
use crate::future::{Future, next_done, notify_when_done};
use crate::store::Locator;
use crate::{Error, Result};

type CoreResult<T> = std::result::Result<T, braid_core::Error>;

/// The environment variable that makes [`Dmap::from_env`] use this many local worker
/// processes (set by `braid dmap -n N`).
pub const PROCESSES_ENV: &str = "BRAID_DMAP_PROCESSES";
/// The environment variable that makes [`Dmap::from_env`] send work to task-queue
/// workers on this broker URL (set by `braid dmap --broker URL`).
pub const BROKER_ENV: &str = "BRAID_DMAP_BROKER";
/// The task queue the cluster's workers consume (default [`DEFAULT_QUEUE`]).
pub const QUEUE_ENV: &str = "BRAID_DMAP_QUEUE";
/// How many tasks the cluster runs at once, for chunking and look-ahead.
pub const PARALLELISM_ENV: &str = "BRAID_DMAP_PARALLELISM";
/// How long the cluster keeps a result: the Dmap reads each one as soon as it is stored.
pub(crate) const RESULT_EXPIRES: std::time::Duration = std::time::Duration::from_secs(3600);
/// The queue cluster workers consume unless [`QUEUE_ENV`] names another.
pub const DEFAULT_QUEUE: &str = "braid-dmap";

/// Where shared constants are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constants {
    /// A temporary directory on this machine (the default): for threads, local
    /// processes, and task-queue workers on this machine. Removed with the Dmap.
    Local,
    /// A hash on this Redis server (`redis://host:port/db`), for workers on many
    /// machines. Removed with the Dmap (and expires after a week regardless).
    Redis(String),
}

/// Where tasks submitted from inside a task run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nested {
    /// On the same executor when the task runs in the Dmap's own process (a thread
    /// pool); a wait on work no worker has started runs it on the waiting thread, so a
    /// pool whose every worker waits still makes progress. In other processes (a
    /// process pool's workers, a cluster's), nested work runs in the submitting worker.
    /// An executor that marks work started as soon as it has sent it (the task queue's
    /// `App`, whose workers may share this process on the in-memory broker) cannot hand
    /// work back to a waiting task: give it [`Nested::Inline`], as [`Dmap::cluster`] does.
    SameExecutor,
    /// Always in the submitting worker, on its thread, at submission.
    Inline,
}

/// Configures a [`Dmap`]: where constants live, retries, nesting.
pub struct DmapBuilder {
    executor: Arc<dyn Executor>,
    constants: Constants,
    max_retries: u32,
    nested: Nested,
}

impl DmapBuilder {
    /// Where shared constants are kept (default [`Constants::Local`]).
    pub fn constants(mut self, constants: Constants) -> Self {
        self.constants = constants;
        self
    }

    /// How many times work whose worker was lost runs again before its future fails
    /// with [`braid_core::Error::WorkerLost`] (default 3).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Where tasks submitted from inside tasks run (default [`Nested::SameExecutor`]).
    pub fn nested(mut self, nested: Nested) -> Self {
        self.nested = nested;
        self
    }

    /// Creates the Dmap and its constant store.
    ///
    /// # Errors
    /// [`Error::Store`] when the temporary directory cannot be created.
    pub fn build(self) -> Result<Dmap> {
        let store = match &self.constants {
            Constants::Local => Locator::new_dir()?,
            Constants::Redis(url) => Locator::new_redis(url),
        };
        Ok(Dmap::assemble(
            self.executor,
            store,
            true,
            self.max_retries,
            self.nested,
        ))
    }
}

impl std::fmt::Debug for DmapBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmapBuilder")
            .field("constants", &self.constants)
            .field("max_retries", &self.max_retries)
            .field("nested", &self.nested)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    id: u64,
    executor: Arc<dyn Executor>,
    ctx: Ctx,
    /// `ctx`, encoded: the first element of every envelope's argument tuple.
    ctx_bytes: Vec<u8>,
    owns_store: bool,
    max_retries: u32,
    nested: Nested,
}

impl Drop for Inner {
    fn drop(&mut self) {
        context::unregister(self.id);
        if self.owns_store {
            self.ctx.store.remove();
        }
    }
}

/// SCOOP's `futures` module over any braid [`Executor`]: a thread pool, a process pool
/// or the task-queue cluster, so a program moves from a laptop to a cluster by changing
/// the executor it is given.
///
/// | SCOOP | `Dmap` |
/// |---|---|
/// | `futures.map(f, xs)` | [`map`](Dmap::map), [`map_chunked`](Dmap::map_chunked) (ordered, lazy) |
/// | `futures.map_as_completed(f, xs)` | [`map_as_completed`](Dmap::map_as_completed) |
/// | `futures.submit(f, *args)`, `as_completed`, `Future` | [`submit`](Dmap::submit), [`as_completed`](crate::as_completed), [`Future`] |
/// | `futures.mapReduce(f, op, xs)` | [`map_reduce`](Dmap::map_reduce) (a tree reduction) |
/// | `futures.mapScan(f, op, xs)` | [`map_scan`](Dmap::map_scan) (inclusive; SCOOP's is wrong from the third item) |
/// | `shared.setConst(name=v)`, `shared.getConst(name)` | [`set_const`](Dmap::set_const), [`get_const`](crate::get_const) |
/// | `python -m scoop -n N prog.py` | `braid dmap -n N prog` with [`Dmap::from_env`] |
///
/// Work is a registered task (`#[braid::task]`). `map_reduce` and `map_scan` need an
/// associative `reduce` (it need not be commutative: the order of items is kept).
/// Clones share everything; the executor and the constants go when the last clone does.
///
/// ```no_run
/// use braid_dmap::Dmap;
///
/// #[braid_core::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// #[braid_core::task]
/// fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
///
/// fn main() -> Result<(), braid_dmap::Error> {
///     braid_core::init();
///     let dmap = Dmap::from_env()?; // processes, or a cluster under `braid dmap --broker`
///     let squares: Vec<u64> = dmap.map(square::task(), 0..10u64).collect::<Result<_, _>>()?;
///     assert_eq!(squares[3], 9);
///     assert_eq!(dmap.map_reduce(square::task(), add::task(), 0..10u64)?, 285);
///     assert_eq!(dmap.map_scan(square::task(), add::task(), 1..=3u64)?, [1, 5, 14]);
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Dmap {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dmap")
            .field("parallelism", &self.parallelism())
            .field("constants", &self.inner.ctx.store)
            .field("nested", &self.inner.nested)
            .finish_non_exhaustive()
    }
}

/// An inline executor: runs each job on the submitting thread at once.
struct Inline;

impl Executor for Inline {
    fn execute(&self, job: braid_core::Job) -> CoreResult<()> {
        job.run_here();
        Ok(())
    }

    fn shutdown(&self, _wait: bool, _cancel_pending: bool) {}

    fn parallelism(&self) -> usize {
        1
    }
}

fn setup(e: impl std::fmt::Display) -> Error {
    Error::Setup(e.to_string())
}

fn env_number(name: &str) -> Result<Option<usize>> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Setup(format!("{name}={text:?} is not a number"))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err(Error::Setup(format!("{name}: {e}"))),
    }
}

/// Items per chunk: about four chunks per worker, as Python's `Pool.map` does.
fn chunksize_for(len: usize, parallelism: usize) -> usize {
    len.div_ceil(4 * parallelism.max(1)).max(1)
}

impl Dmap {
    /// A Dmap on `executor`, with constants in a temporary directory.
    ///
    /// # Errors
    /// As [`DmapBuilder::build`].
    pub fn new(executor: impl Executor + 'static) -> Result<Dmap> {
        Self::builder(executor).build()
    }

    /// A builder for a Dmap on `executor`.
    pub fn builder(executor: impl Executor + 'static) -> DmapBuilder {
        Self::builder_arc(Arc::new(executor))
    }

    /// A builder for a Dmap on an executor that is shared already.
    pub fn builder_arc(executor: Arc<dyn Executor>) -> DmapBuilder {
        DmapBuilder {
            executor,
            constants: Constants::Local,
            max_retries: 3,
            nested: Nested::SameExecutor,
        }
    }

    /// A Dmap on a new thread pool of `n` threads (0: one per CPU).
    ///
    /// # Errors
    /// [`Error::Setup`] when the threads cannot be started; as [`DmapBuilder::build`].
    pub fn threads(n: usize) -> Result<Dmap> {
        let n = if n == 0 { cpus() } else { n };
        Self::new(braid_sync::ThreadPool::new(n).map_err(setup)?)
    }

    /// A Dmap on a new pool of `n` worker processes (0: one per CPU), re-executions of
    /// this program: call `braid::init()` first thing in `main`.
    ///
    /// # Errors
    /// [`Error::Setup`] when the workers cannot be started; as [`DmapBuilder::build`].
    pub fn processes(n: usize) -> Result<Dmap> {
        Self::new(braid_proc::ProcessPool::new(n).map_err(setup)?)
    }

    /// A Dmap on the task-queue cluster behind `broker` (e.g. `redis://host:6379/0`,
    /// also its result backend): work goes to `queue`, where workers started by
    /// `braid dmap --broker` (programs started with [`WORKER_ENV`](crate::WORKER_ENV)) take it;
    /// `parallelism` is their total concurrency. Constants go to Redis when the broker
    /// is Redis; nested submissions run in the worker that makes them.
    ///
    /// # Errors
    /// [`Error::Setup`] for a broker URL that cannot be used.
    pub fn cluster(broker: &str, queue: &str, parallelism: usize) -> Result<Dmap> {
        let app = braid_taskq::App::builder(broker, Some(broker))
            .default_queue(queue)
            .parallelism(parallelism.max(1))
            .result_expires(RESULT_EXPIRES)
            .build()
            .map_err(setup)?;
        let constants = if broker.starts_with("redis://") || broker.starts_with("rediss://") {
            Constants::Redis(broker.to_string())
        } else {
            Constants::Local
        };
        Self::builder(app)
            .constants(constants)
            .nested(Nested::Inline)
            .build()
    }

    /// The Dmap a program gets from its launcher, as SCOOP's `futures` do under
    /// `python -m scoop`: under `braid dmap --broker URL` the cluster
    /// ([`BROKER_ENV`], [`QUEUE_ENV`], [`PARALLELISM_ENV`]); under `braid dmap -n N`
    /// N local processes ([`PROCESSES_ENV`]); otherwise one process per CPU.
    ///
    /// # Errors
    /// [`Error::Setup`] for a variable that cannot be used or workers that do not start.
    pub fn from_env() -> Result<Dmap> {
        if let Some(broker) = std::env::var_os(BROKER_ENV) {
            let broker = broker
                .into_string()
                .map_err(|_| Error::Setup(format!("{BROKER_ENV} is not UTF-8")))?;
            let queue = std::env::var(QUEUE_ENV).unwrap_or_else(|_| DEFAULT_QUEUE.to_string());
            let parallelism = env_number(PARALLELISM_ENV)?.unwrap_or_else(cpus);
            return Self::cluster(&broker, &queue, parallelism);
        }
        Self::processes(env_number(PROCESSES_ENV)?.unwrap_or(0))
    }

    /// The Dmap of the task running on this thread, for submissions from inside a task
    /// (see [`Nested`]); constants set through it are shared with the whole program.
    ///
    /// # Errors
    /// [`Error::NotInTask`] outside a task sent by a Dmap.
    pub fn current() -> Result<Dmap> {
        let ctx = context::current().ok_or(Error::NotInTask("Dmap::current"))?;
        if ctx.pid == std::process::id()
            && let Some(inner) = context::lookup(ctx.dmap)
            && inner.nested == Nested::SameExecutor
        {
            return Ok(Dmap { inner });
        }
        Ok(Self::assemble(
            Arc::new(Inline),
            ctx.store.clone(),
            false,
            0,
            Nested::Inline,
        ))
    }

    fn assemble(
        executor: Arc<dyn Executor>,
        store: Locator,
        owns_store: bool,
        max_retries: u32,
        nested: Nested,
    ) -> Dmap {
        let id = fastrand::u64(..);
        let ctx = Ctx {
            dmap: id,
            pid: std::process::id(),
            store,
        };
        let ctx_bytes = Codec::Binary
            .encode(&ctx)
            .expect("a context of strings and integers always encodes");
        let inner = Arc::new(Inner {
            id,
            executor,
            ctx,
            ctx_bytes,
            owns_store,
            max_retries,
            nested,
        });
        context::register(id, &inner);
        Dmap { inner }
    }

    /// The executor the work runs on.
    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.inner.executor
    }

    /// How many tasks run at once.
    pub fn parallelism(&self) -> usize {
        self.inner.executor.parallelism().max(1)
    }

    /// Stops the executor taking work; with `wait`, waits for the work it holds.
    pub fn shutdown(&self, wait: bool) {
        self.inner.executor.shutdown(wait, false);
    }

    /// An envelope call: the context, then `rest` (a tuple, encoded in place).
    fn envelope<T: Serialize + ?Sized>(&self, envelope: &str, rest: &T) -> CoreResult<TaskCall> {
        let mut args = self.inner.ctx_bytes.clone();
        args.extend_from_slice(&Codec::Binary.encode(rest)?);
        Ok(TaskCall::from_parts(envelope, Codec::Binary, args))
    }

    fn spawn<R: Send + 'static>(
        &self,
        call: TaskCall,
        decode: impl FnOnce(Vec<u8>) -> CoreResult<R> + Send + 'static,
    ) -> Future<R> {
        Future::spawn(
            self.inner.executor.clone(),
            call,
            self.inner.max_retries,
            decode,
        )
    }

    /// Submits one call of a registered task, like SCOOP's `futures.submit`.
    ///
    /// # Errors
    /// [`braid_core::Error::UnknownTask`] when no task has this name here; an encoding
    /// error.
    pub fn submit<A, R>(&self, task: TaskRef<A, R>, args: A) -> Result<Future<R>>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        braid_core::lookup(task.name())?;
        let args = Codec::Binary.encode(&args)?;
        let call = self.envelope(envelope::CALL, &(task.name(), args))?;
        Ok(self.spawn(call, |bytes| Codec::Binary.decode::<R>(&bytes)))
    }

    fn submit_chunk(&self, name: &str, items: &[Vec<u8>]) -> CoreResult<Future<ChunkResult>> {
        let call = self.envelope(envelope::CHUNK, &(name, items))?;
        Ok(self.spawn(call, |bytes| Codec::Binary.decode::<ChunkResult>(&bytes)))
    }

    /// Applies a one-argument task to every input and yields the results in input
    /// order, like SCOOP's `futures.map`: lazily, a few chunks per worker ahead, so an
    /// endless input is fine. Inputs of known length go in about four chunks per worker
    /// (at most 1024 items each); others one by one (see [`map_chunked`](Dmap::map_chunked)).
    /// Each item's outcome is its own.
    pub fn map<X, R, I>(&self, task: TaskRef<(X,), R>, inputs: I) -> Map<R, I::IntoIter>
    where
        X: Serialize,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = X>,
    {
        let inputs = inputs.into_iter();
        let chunksize = match inputs.size_hint() {
            (low, Some(high)) if low == high => chunksize_for(low, self.parallelism()).min(1024),
            _ => 1,
        };
        self.map_chunked(task, inputs, chunksize)
    }

    /// [`map`](Dmap::map) with `chunksize` items (at least one) per task sent.
    pub fn map_chunked<X, R, I>(
        &self,
        task: TaskRef<(X,), R>,
        inputs: I,
        chunksize: usize,
    ) -> Map<R, I::IntoIter>
    where
        X: Serialize,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = X>,
    {
        Map {
            feed: Feed::new(self.clone(), task.name(), inputs.into_iter(), chunksize),
            in_flight: VecDeque::new(),
            ready: VecDeque::new(),
        }
    }

    /// Like [`map`](Dmap::map), yielding results as their chunks finish, like SCOOP's
    /// `futures.map_as_completed` (within a chunk, in input order).
    pub fn map_as_completed<X, R, I>(
        &self,
        task: TaskRef<(X,), R>,
        inputs: I,
    ) -> MapAsCompleted<R, I::IntoIter>
    where
        X: Serialize,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = X>,
    {
        let inputs = inputs.into_iter();
        let chunksize = match inputs.size_hint() {
            (low, Some(high)) if low == high => chunksize_for(low, self.parallelism()).min(1024),
            _ => 1,
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        MapAsCompleted {
            feed: Feed::new(self.clone(), task.name(), inputs, chunksize),
            in_flight: HashMap::new(),
            next_slot: 0,
            tx,
            rx,
            ready: VecDeque::new(),
        }
    }

    /// Maps every input and reduces the results with `reduce`, like SCOOP's
    /// `futures.mapReduce`: each worker folds a chunk, then the partial values are
    /// combined pairwise, a tree of `reduce` tasks. `reduce` must be associative; the
    /// order of items is kept, so it need not be commutative.
    ///
    /// # Errors
    /// [`Error::Empty`] for no inputs; the first failure of a map or reduce call.
    pub fn map_reduce<X, R, I>(
        &self,
        map: TaskRef<(X,), R>,
        reduce: TaskRef<(R, R), R>,
        inputs: I,
    ) -> Result<R>
    where
        X: Serialize,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = X>,
    {
        braid_core::lookup(map.name())?;
        braid_core::lookup(reduce.name())?;
        let items = encode_all(inputs)?;
        if items.is_empty() {
            return Err(Error::Empty);
        }
        let chunksize = chunksize_for(items.len(), self.parallelism());
        let mut level: Vec<Future<Vec<u8>>> = Vec::new();
        for chunk in items.chunks(chunksize) {
            let call =
                self.envelope(envelope::REDUCE_CHUNK, &(map.name(), reduce.name(), chunk))?;
            level.push(self.spawn(call, |bytes| {
                Codec::Binary
                    .decode::<Option<Vec<u8>>>(&bytes)?
                    .ok_or_else(|| {
                        braid_core::Error::WorkerLost("a chunk folded to nothing".into())
                    })
            }));
        }
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len().div_ceil(2));
            let mut pairs = level.into_iter();
            while let Some(left) = pairs.next() {
                match pairs.next() {
                    Some(right) => {
                        let parts = [left.result()?, right.result()?];
                        let call =
                            self.envelope(envelope::REDUCE_MANY, &(reduce.name(), &parts[..]))?;
                        next.push(self.spawn(call, Ok));
                    }
                    None => next.push(left),
                }
            }
            level = next;
        }
        let root = level
            .pop()
            .expect("a non-empty input leaves one value")
            .result()?;
        Ok(Codec::Binary.decode(&root)?)
    }

    /// Maps every input and returns the running reductions (an inclusive prefix scan):
    /// item `i` is `reduce(...reduce(reduce(f(x0), f(x1)), f(x2))..., f(xi))`, like SCOOP's
    /// `futures.mapScan` is documented to (SCOOP's own gives wrong values from the third
    /// item on). Each worker scans a chunk; the program then carries each chunk's total
    /// into the next (calling `reduce` here, once per chunk) and workers add the carry to
    /// every item of the later chunks. `reduce` must be associative.
    ///
    /// # Errors
    /// The first failure of a map or reduce call.
    pub fn map_scan<X, R, I>(
        &self,
        map: TaskRef<(X,), R>,
        reduce: TaskRef<(R, R), R>,
        inputs: I,
    ) -> Result<Vec<R>>
    where
        X: Serialize,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = X>,
    {
        braid_core::lookup(map.name())?;
        let reduce_here = braid_core::lookup(reduce.name())?;
        let items = encode_all(inputs)?;
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let chunksize = chunksize_for(items.len(), self.parallelism());
        let mut scans = Vec::new();
        for chunk in items.chunks(chunksize) {
            let call = self.envelope(envelope::SCAN_CHUNK, &(map.name(), reduce.name(), chunk))?;
            scans.push(self.spawn(call, |bytes| Codec::Binary.decode::<Vec<Vec<u8>>>(&bytes)));
        }
        enum Part {
            Ready(Vec<Vec<u8>>),
            Fixing(Future<Vec<Vec<u8>>>),
        }
        let mut parts = Vec::with_capacity(scans.len());
        let mut carry: Option<Vec<u8>> = None;
        for scan in scans {
            let scanned = scan.result()?;
            let Some(last) = scanned.last().cloned() else {
                continue;
            };
            match carry.take() {
                None => {
                    carry = Some(last);
                    parts.push(Part::Ready(scanned));
                }
                Some(prefix) => {
                    let next = context::enter(self.inner.ctx.clone(), || {
                        envelope::reduce_pair(reduce_here, &prefix, &last)
                    })?;
                    let call =
                        self.envelope(envelope::SCAN_FIX, &(reduce.name(), &prefix, &scanned))?;
                    parts.push(Part::Fixing(
                        self.spawn(call, |bytes| Codec::Binary.decode::<Vec<Vec<u8>>>(&bytes)),
                    ));
                    carry = Some(next);
                }
            }
        }
        let mut out = Vec::with_capacity(items.len());
        for part in parts {
            let values = match part {
                Part::Ready(values) => values,
                Part::Fixing(future) => future.result()?,
            };
            for bytes in values {
                out.push(Codec::Binary.decode(&bytes)?);
            }
        }
        Ok(out)
    }

    /// Shares `value` with every task under `name`, like SCOOP's `shared.setConst`:
    /// each worker process fetches it once, the first time a task asks
    /// ([`get_const`](crate::get_const)). Set constants before submitting the work that
    /// reads them.
    ///
    /// # Errors
    /// [`Error::ConstantExists`] when `name` is set already (a constant is set once);
    /// [`Error::Store`] for a name that is not 1–200 letters, digits, `_`, `-`, `.`, or a
    /// store failure.
    pub fn set_const<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<()> {
        self.inner
            .ctx
            .store
            .set(name, &Codec::Binary.encode(value)?)
    }

    /// The shared constant `name`, decoded as `T` (here, in the program).
    ///
    /// # Errors
    /// [`Error::ConstantMissing`]; a decode error when it is not a `T`; [`Error::Store`].
    pub fn get_const<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        name: &str,
    ) -> Result<Arc<T>> {
        self.inner.ctx.store.get(name)
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn encode_all<X: Serialize>(inputs: impl IntoIterator<Item = X>) -> Result<Vec<Vec<u8>>> {
    inputs
        .into_iter()
        .map(|x| Codec::Binary.encode(&x).map_err(Error::from))
        .collect()
}

/// The shared constant `name` of the Dmap that sent the task running on this thread,
/// decoded as `T`, like SCOOP's `shared.getConst`: fetched once per worker process,
/// then served from memory.
///
/// # Errors
/// [`Error::NotInTask`] outside a task sent by a Dmap; as [`Dmap::get_const`].
pub fn get_const<T: DeserializeOwned + Send + Sync + 'static>(name: &str) -> Result<Arc<T>> {
    context::current()
        .ok_or(Error::NotInTask("get_const"))?
        .store
        .get(name)
}

/// Inputs cut into chunks and sent, a few chunks per worker ahead.
struct Feed<I> {
    dmap: Dmap,
    name: &'static str,
    inputs: I,
    chunksize: usize,
    window: usize,
    checked: Option<braid_core::Error>,
}

/// A chunk sent, or the errors of one that could not be.
enum Flight {
    Chunk(Future<ChunkResult>, usize),
    Failed(Vec<braid_core::Error>),
}

impl<I: Iterator> Feed<I>
where
    I::Item: Serialize,
{
    fn new(dmap: Dmap, name: &'static str, inputs: I, chunksize: usize) -> Self {
        let window = dmap.parallelism() * 2;
        Feed {
            checked: braid_core::lookup(name).err(),
            dmap,
            name,
            inputs,
            chunksize: chunksize.max(1),
            window,
        }
    }

    /// The next chunk, sent; `None` when the inputs are spent.
    fn next_flight(&mut self) -> Option<Flight> {
        let batch: Vec<CoreResult<Vec<u8>>> = self
            .inputs
            .by_ref()
            .take(self.chunksize)
            .map(|x| Codec::Binary.encode(&x))
            .collect();
        if batch.is_empty() {
            return None;
        }
        if let Some(e) = &self.checked {
            return Some(Flight::Failed(vec![e.clone(); batch.len()]));
        }
        if batch.iter().any(Result::is_err) {
            return Some(Flight::Failed(
                batch
                    .into_iter()
                    .map(|r| match r {
                        Err(e) => e,
                        Ok(_) => braid_core::Error::Encode(
                            "another item of this chunk failed to encode".into(),
                        ),
                    })
                    .collect(),
            ));
        }
        let items: Vec<Vec<u8>> = batch.into_iter().flatten().collect();
        let len = items.len();
        Some(match self.dmap.submit_chunk(self.name, &items) {
            Ok(future) => Flight::Chunk(future, len),
            Err(e) => Flight::Failed(vec![e; len]),
        })
    }
}

fn settle<R: DeserializeOwned>(
    outcome: Result<ChunkResult>,
    len: usize,
    ready: &mut VecDeque<Result<R>>,
) {
    match outcome {
        Ok(results) => ready.extend(results.into_iter().map(|r| {
            r.and_then(|bytes| Codec::Binary.decode::<R>(&bytes))
                .map_err(Error::from)
        })),
        Err(e) => ready.extend(std::iter::repeat_n(e, len).map(Err)),
    }
}

/// The ordered, lazy iterator of [`Dmap::map`].
pub struct Map<R, I> {
    feed: Feed<I>,
    in_flight: VecDeque<Flight>,
    ready: VecDeque<Result<R>>,
}

impl<R, I> Iterator for Map<R, I>
where
    R: DeserializeOwned + Send + 'static,
    I: Iterator,
    I::Item: Serialize,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        if let Some(item) = self.ready.pop_front() {
            return Some(item);
        }
        while self.in_flight.len() < self.feed.window {
            match self.feed.next_flight() {
                Some(flight) => self.in_flight.push_back(flight),
                None => break,
            }
        }
        match self.in_flight.pop_front()? {
            Flight::Chunk(future, len) => settle(future.result(), len, &mut self.ready),
            Flight::Failed(errors) => self.ready.extend(errors.into_iter().map(|e| Err(e.into()))),
        }
        self.ready.pop_front()
    }
}

impl<R, I> std::fmt::Debug for Map<R, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("task", &self.feed.name)
            .field("chunks_in_flight", &self.in_flight.len())
            .finish()
    }
}

/// The lazy iterator of [`Dmap::map_as_completed`], in the order chunks finish.
pub struct MapAsCompleted<R, I> {
    feed: Feed<I>,
    in_flight: HashMap<usize, (Future<ChunkResult>, usize)>,
    next_slot: usize,
    tx: Sender<usize>,
    rx: Receiver<usize>,
    ready: VecDeque<Result<R>>,
}

impl<R, I> Iterator for MapAsCompleted<R, I>
where
    R: DeserializeOwned + Send + 'static,
    I: Iterator,
    I::Item: Serialize,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            while self.in_flight.len() < self.feed.window {
                match self.feed.next_flight() {
                    Some(Flight::Chunk(future, len)) => {
                        let slot = self.next_slot;
                        self.next_slot += 1;
                        notify_when_done(future.handle_ref(), &self.tx, slot);
                        self.in_flight.insert(slot, (future, len));
                    }
                    Some(Flight::Failed(errors)) => {
                        self.ready.extend(errors.into_iter().map(|e| Err(e.into())));
                    }
                    None => break,
                }
            }
            if !self.ready.is_empty() {
                continue;
            }
            if self.in_flight.is_empty() {
                return None;
            }
            let in_flight = &self.in_flight;
            let slot = next_done(&self.rx, || in_flight.values().map(|(f, _)| f).collect())?;
            if let Some((future, len)) = self.in_flight.remove(&slot) {
                settle(future.result(), len, &mut self.ready);
            }
        }
    }
}

impl<R, I> std::fmt::Debug for MapAsCompleted<R, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapAsCompleted")
            .field("task", &self.feed.name)
            .field("chunks_in_flight", &self.in_flight.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Dmap>();
        send_sync::<crate::Future<u64>>();
        send::<Map<u64, std::ops::Range<u64>>>();
        send::<MapAsCompleted<u64, std::ops::Range<u64>>>();
        send_sync::<Error>();
    }

    #[test]
    fn chunks_are_about_four_per_worker() {
        assert_eq!(chunksize_for(0, 2), 1);
        assert_eq!(chunksize_for(10_000, 2), 1250);
        assert_eq!(chunksize_for(7, 0), 2);
    }

    #[test]
    fn current_outside_a_task_is_an_error() {
        assert_eq!(
            Dmap::current().unwrap_err(),
            Error::NotInTask("Dmap::current")
        );
    }
}
