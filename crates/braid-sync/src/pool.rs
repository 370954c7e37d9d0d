//! [`ThreadPool`]: a fixed set of worker threads running submitted work, like Python's
//! `concurrent.futures.ThreadPoolExecutor`.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::ThreadId;

use braid_core::{Executor, Handle, Job, Promise, TaskError};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex, RwLock};

use crate::Error;

/// The task name a [`ThreadPool::submit_fn`] closure's errors carry.
pub const CLOSURE_TASK: &str = "ThreadPool::submit_fn closure";

type Initializer = Arc<dyn Fn() + Send + Sync>;

/// A fixed set of worker threads that run submitted work, like Python's
/// `concurrent.futures.ThreadPoolExecutor`; it implements [`braid_core::Executor`].
///
/// Closures go in through [`submit_fn`](ThreadPool::submit_fn) and
/// [`map_fn`](ThreadPool::map_fn); registered tasks through [`braid_core::ExecutorExt`]
/// (`pool.submit(task, args)`, `pool.map(task, inputs, chunksize)`), as on every
/// executor. Each submission gives a [`Handle`] to wait on, cancel, or take the result
/// from; a panic in the work becomes that handle's [`braid_core::Error::Task`] and never
/// kills a worker. Work is taken in submission order.
///
/// Dropping the pool shuts it down and waits for the queued work to finish, like leaving
/// Python's `with ThreadPoolExecutor() as pool:` block. See [`Executor::shutdown`] for the
/// other ways to stop.
///
/// ```
/// use braid_core::{ExecutorExt, as_completed};
/// use braid_sync::ThreadPool;
///
/// #[braid_core::task(name = "doc.pool.square")]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = ThreadPool::builder()
///     .max_workers(2)
///     .thread_name_prefix("squares")
///     .build()
///     .unwrap();
///
/// let handle = pool.submit_fn(|| braid_sync::current().name).unwrap();
/// assert!(handle.result().unwrap().starts_with("squares_"));
///
/// let squares: Vec<u64> = pool.map_fn(|x: u64| x * x, 0..5).map(Result::unwrap).collect();
/// assert_eq!(squares, [0, 1, 4, 9, 16]);
///
/// let handles: Vec<_> = (0..4).map(|x| pool.submit(square::task(), (x,)).unwrap()).collect();
/// let mut total = 0;
/// for done in as_completed(handles) {
///     total += done.unwrap().result().unwrap();
/// }
/// assert_eq!(total, 0 + 1 + 4 + 9);
/// ```
pub struct ThreadPool {
    sender: RwLock<Option<Sender<Work>>>,
    /// For cancelling queued work at shutdown.
    receiver: Receiver<Work>,
    shared: Arc<Shared>,
    workers: Mutex<Vec<crate::JoinHandle<()>>>,
    worker_ids: Vec<ThreadId>,
    max_workers: usize,
}

/// Configures a [`ThreadPool`]: number of workers, their names, an initializer.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use braid_sync::ThreadPool;
///
/// let started = Arc::new(AtomicUsize::new(0));
/// let counter = started.clone();
/// let pool = ThreadPool::builder()
///     .max_workers(3)
///     .initializer(move || {
///         counter.fetch_add(1, Ordering::SeqCst);
///     })
///     .build()
///     .unwrap();
/// drop(pool); // waits for the workers
/// assert_eq!(started.load(Ordering::SeqCst), 3);
/// ```
pub struct ThreadPoolBuilder {
    max_workers: usize,
    prefix: String,
    initializer: Option<Initializer>,
    stack_size: Option<usize>,
}

/// State the workers share with the pool.
struct Shared {
    /// Set when an initializer panicked; the message says which panic.
    broken: Mutex<Option<String>>,
    is_broken: AtomicBool,
    /// Workers still running, to wait for at shutdown.
    running: Mutex<usize>,
    all_exited: Condvar,
}

impl Shared {
    fn broken(&self) -> Option<braid_core::Error> {
        if !self.is_broken.load(Ordering::Acquire) {
            return None;
        }
        self.broken.lock().as_ref().map(|message| {
            braid_core::Error::WorkerLost(format!("initializer panicked: {message}"))
        })
    }

    fn break_pool(&self, message: String) {
        let mut broken = self.broken.lock();
        if broken.is_none() {
            *broken = Some(message);
        }
        self.is_broken.store(true, Ordering::Release);
    }
}

/// One queued piece of work.
enum Work {
    /// A registered task's call.
    Job(Job),
    /// A closure with the promise of its handle.
    Closure(Box<dyn ClosureWork>),
}

/// A submitted closure, type-erased.
trait ClosureWork: Send {
    fn run(self: Box<Self>);
    fn fail(self: Box<Self>, error: braid_core::Error);
    fn cancel(self: Box<Self>);
}

struct Closure<F, T> {
    f: F,
    promise: Promise<T>,
}

impl<F, T> ClosureWork for Closure<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>) {
        let Closure { f, promise } = *self;
        if !promise.start() {
            return; // cancelled through its handle
        }
        let outcome = catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
            braid_core::Error::Task(TaskError::from_panic(CLOSURE_TASK, &*payload))
        });
        promise.complete(outcome);
    }

    fn fail(self: Box<Self>, error: braid_core::Error) {
        self.promise.complete(Err(error));
    }

    fn cancel(self: Box<Self>) {
        self.promise.cancel();
    }
}

impl Work {
    fn run(self) {
        match self {
            Work::Job(job) => {
                // Registered task bodies catch their own panics; this guards the rest (a
                // panicking decoder, say): the job's promise is dropped in the unwind, so
                // its handle gets WorkerLost, and the worker lives on.
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| job.run_here())) {
                    tracing::error!(
                        panic = %braid_core::panic_message(&*payload),
                        "a job panicked outside its task body"
                    );
                }
            }
            Work::Closure(closure) => closure.run(),
        }
    }

    fn fail(self, error: braid_core::Error) {
        match self {
            Work::Job(job) => job.complete(Err(error)),
            Work::Closure(closure) => closure.fail(error),
        }
    }

    fn cancel(self) {
        match self {
            Work::Job(job) => job.cancel(),
            Work::Closure(closure) => closure.cancel(),
        }
    }
}

impl ThreadPoolBuilder {
    /// The number of workers; 0 (the default) means one per CPU.
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = n;
        self
    }

    /// Names the workers `{prefix}_0`, `{prefix}_1`, ...; the default prefix is
    /// `ThreadPool`.
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Runs `f` once on each worker when it starts, before it takes any work. If it
    /// panics the pool is broken: queued and later work fails with
    /// [`braid_core::Error::WorkerLost`] (`"initializer panicked: ..."`), as Python's
    /// `BrokenThreadPool`; nothing hangs.
    pub fn initializer(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.initializer = Some(Arc::new(f));
        self
    }

    /// Sets each worker's stack size in bytes.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    /// [`Error::Spawn`] when a worker cannot be started (those already started are shut
    /// down).
    pub fn build(self) -> Result<ThreadPool, Error> {
        let max_workers = match self.max_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (sender, receiver) = crossbeam_channel::unbounded::<Work>();
        let shared = Arc::new(Shared {
            broken: Mutex::new(None),
            is_broken: AtomicBool::new(false),
            running: Mutex::new(0),
            all_exited: Condvar::new(),
        });
        let mut workers = Vec::with_capacity(max_workers);
        for i in 0..max_workers {
            let (worker_receiver, worker_shared, init) =
                (receiver.clone(), shared.clone(), self.initializer.clone());
            let mut builder = crate::Builder::new().name(format!("{}_{i}", self.prefix));
            if let Some(bytes) = self.stack_size {
                builder = builder.stack_size(bytes);
            }
            *shared.running.lock() += 1;
            match builder.spawn(move || worker(&worker_receiver, &worker_shared, init)) {
                Ok(handle) => workers.push(handle),
                Err(error) => {
                    // The closure is gone, and with it that worker's count.
                    *shared.running.lock() -= 1;
                    let partial =
                        ThreadPool::assemble(sender, receiver, shared, workers, max_workers);
                    drop(partial);
                    return Err(error);
                }
            }
        }
        Ok(ThreadPool::assemble(
            sender,
            receiver,
            shared,
            workers,
            max_workers,
        ))
    }
}

/// A worker's life: run the initializer, then the queued work until the pool shuts down.
fn worker(receiver: &Receiver<Work>, shared: &Shared, init: Option<Initializer>) {
    struct Exited<'a>(&'a Shared);
    impl Drop for Exited<'_> {
        fn drop(&mut self) {
            let mut running = self.0.running.lock();
            *running -= 1;
            if *running == 0 {
                self.0.all_exited.notify_all();
            }
        }
    }
    let _exited = Exited(shared);
    if let Some(init) = init
        && let Err(payload) = catch_unwind(AssertUnwindSafe(|| init()))
    {
        let message = braid_core::panic_message(&*payload);
        tracing::error!(%message, "a thread pool initializer panicked; the pool is broken");
        shared.break_pool(message);
    }
    // Ends once the pool dropped its sender and the queue is empty.
    while let Ok(work) = receiver.recv() {
        match shared.broken() {
            Some(error) => work.fail(error),
            None => work.run(),
        }
    }
}

impl ThreadPool {
    /// A pool of `max_workers` workers (0: one per CPU) named `ThreadPool_0`, ...
    ///
    /// # Errors
    /// [`Error::Spawn`] when a worker cannot be started.
    pub fn new(max_workers: usize) -> Result<Self, Error> {
        Self::builder().max_workers(max_workers).build()
    }

    /// A builder to set the workers' number, names and initializer.
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder {
            max_workers: 0,
            prefix: "ThreadPool".to_string(),
            initializer: None,
            stack_size: None,
        }
    }

    fn assemble(
        sender: Sender<Work>,
        receiver: Receiver<Work>,
        shared: Arc<Shared>,
        workers: Vec<crate::JoinHandle<()>>,
        max_workers: usize,
    ) -> Self {
        ThreadPool {
            sender: RwLock::new(Some(sender)),
            receiver,
            shared,
            worker_ids: workers.iter().map(crate::JoinHandle::id).collect(),
            workers: Mutex::new(workers),
            max_workers,
        }
    }

    /// The number of workers.
    pub fn max_workers(&self) -> usize {
        self.max_workers
    }

    /// Whether the pool was shut down.
    pub fn is_shutdown(&self) -> bool {
        self.sender.read().is_none()
    }

    /// Queues `work`, unless the pool is shut down or broken.
    fn send(&self, work: Work) -> Result<(), braid_core::Error> {
        if let Some(error) = self.shared.broken() {
            return Err(error);
        }
        let sender = self.sender.read();
        let Some(sender) = sender.as_ref() else {
            return Err(braid_core::Error::Shutdown);
        };
        // The pool holds a receiver, so the channel cannot be disconnected here.
        sender.send(work).map_err(|_| braid_core::Error::Shutdown)
    }

    /// Runs `f` on a worker (Python's `submit(fn)`); returns its handle.
    ///
    /// A panic in `f` becomes the handle's [`braid_core::Error::Task`] (kind `Panic`,
    /// with the panic message); the worker goes on.
    ///
    /// # Errors
    /// [`braid_core::Error::Shutdown`] after shutdown; [`braid_core::Error::WorkerLost`]
    /// when the pool is broken (an initializer panicked).
    pub fn submit_fn<F, T>(&self, f: F) -> Result<Handle<T>, braid_core::Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (promise, handle) = braid_core::promise();
        self.send(Work::Closure(Box::new(Closure { f, promise })))?;
        Ok(handle)
    }

    /// Applies `f` to every input on the workers, yielding the results in input order
    /// (Python's `map`).
    ///
    /// Lazy, with bounded look-ahead: nothing is submitted until the first `next`, and at
    /// most two items per worker are in flight, so an endless input is fine. Each item's
    /// outcome is its own (a panic is that item's [`braid_core::Error::Task`]). Dropping
    /// the iterator cancels the items submitted and not yet started.
    pub fn map_fn<F, A, T, I>(
        &self,
        f: F,
        inputs: I,
    ) -> impl Iterator<Item = Result<T, braid_core::Error>>
    where
        F: Fn(A) -> T + Send + Sync + 'static,
        A: Send + 'static,
        T: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        MapFn {
            pool: self,
            f: Arc::new(f),
            inputs: inputs.into_iter(),
            in_flight: VecDeque::new(),
            window: self.max_workers * 2,
        }
    }

    /// Waits until every worker has exited, except the calling thread if it is one.
    fn wait_for_workers(&self) {
        if self.worker_ids.contains(&std::thread::current().id()) {
            tracing::warn!(
                "a thread pool was shut down with wait from one of its own workers; not waiting"
            );
            return;
        }
        let mut running = self.shared.running.lock();
        while *running > 0 {
            self.shared.all_exited.wait(&mut running);
        }
        drop(running);
        for handle in std::mem::take(&mut *self.workers.lock()) {
            if let Err(error) = handle.join() {
                tracing::error!(%error, "a thread pool worker panicked");
            }
        }
    }
}

impl Executor for ThreadPool {
    /// Queues `job` to run on a worker ([`Job::run_here`]).
    ///
    /// # Errors
    /// [`braid_core::Error::Shutdown`] after shutdown; [`braid_core::Error::WorkerLost`]
    /// when the pool is broken.
    fn execute(&self, job: Job) -> Result<(), braid_core::Error> {
        self.send(Work::Job(job))
    }

    /// Stops taking work: later submissions fail with
    /// [`braid_core::Error::Shutdown`]. With `cancel_pending`, work queued and not yet
    /// started finishes at once with [`braid_core::Error::Cancelled`]; otherwise it still
    /// runs. With `wait`, blocks until the workers have finished it all and exited
    /// (unless called from a worker of this pool, which cannot wait for itself).
    /// Calling it again is harmless.
    fn shutdown(&self, wait: bool, cancel_pending: bool) {
        drop(self.sender.write().take());
        if cancel_pending {
            while let Ok(work) = self.receiver.try_recv() {
                work.cancel();
            }
        }
        if wait {
            self.wait_for_workers();
        }
    }

    fn parallelism(&self) -> usize {
        self.max_workers
    }
}

impl Drop for ThreadPool {
    /// Shuts down and waits for the queued work, as `shutdown(true, false)`.
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("max_workers", &self.max_workers)
            .field("queued", &self.receiver.len())
            .field("is_shutdown", &self.is_shutdown())
            .field("is_broken", &self.shared.is_broken.load(Ordering::Acquire))
            .finish()
    }
}

impl std::fmt::Debug for ThreadPoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("max_workers", &self.max_workers)
            .field("thread_name_prefix", &self.prefix)
            .field("initializer", &self.initializer.is_some())
            .field("stack_size", &self.stack_size)
            .finish()
    }
}

/// The iterator of [`ThreadPool::map_fn`].
struct MapFn<'a, F, I: Iterator, T> {
    pool: &'a ThreadPool,
    f: Arc<F>,
    inputs: I,
    in_flight: VecDeque<Result<Handle<T>, braid_core::Error>>,
    window: usize,
}

impl<F, A, T, I> Iterator for MapFn<'_, F, I, T>
where
    F: Fn(A) -> T + Send + Sync + 'static,
    A: Send + 'static,
    T: Send + 'static,
    I: Iterator<Item = A>,
{
    type Item = Result<T, braid_core::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.in_flight.len() < self.window.max(1) {
            let Some(input) = self.inputs.next() else {
                break;
            };
            let f = self.f.clone();
            self.in_flight
                .push_back(self.pool.submit_fn(move || f(input)));
        }
        Some(self.in_flight.pop_front()?.and_then(Handle::result))
    }
}

impl<F, I: Iterator, T> Drop for MapFn<'_, F, I, T> {
    fn drop(&mut self) {
        for handle in self.in_flight.drain(..).flatten() {
            handle.cancel();
        }
    }
}
