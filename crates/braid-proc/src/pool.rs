//! [`ProcessPool`]: worker processes running registered tasks, like Python's
//! `multiprocessing.Pool` and `concurrent.futures.ProcessPoolExecutor`.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use braid_core::{Codec, Executor, Handle, Job, Promise, TaskRef};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::child::{self, Spawned};
use crate::pool_wire::{self as pw, Reader};
use crate::pool_worker::WorkerConfig;
use crate::wire::Wire;
use crate::{Error, Result, share};

type CoreResult<T> = std::result::Result<T, braid_core::Error>;

/// How long an idle worker's thread waits for work before it checks the worker is alive.
const IDLE_CHECK: Duration = Duration::from_millis(100);
/// Requests a worker is sent ahead are capped by this much expected work, so that a
/// slow task holds up at most this much queued behind it.
const AHEAD_BUDGET: Duration = Duration::from_micros(100);
const MAX_AHEAD: usize = 64;

/// A pool of worker processes running registered tasks, like Python's
/// `multiprocessing.Pool`; it is also a [`braid_core::Executor`] (Python's
/// `ProcessPoolExecutor`).
///
/// | Python `Pool` | `ProcessPool` |
/// |---|---|
/// | `Pool(processes, initializer, initargs, maxtasksperchild)` | [`ProcessPool::builder`] |
/// | `map(f, xs, chunksize)` | [`map`](ProcessPool::map), [`map_chunked`](ProcessPool::map_chunked) |
/// | `starmap(f, [(a, b), ...])` | [`starmap`](ProcessPool::starmap), [`starmap_chunked`](ProcessPool::starmap_chunked) |
/// | `imap`, `imap_unordered` | [`imap`](ProcessPool::imap), [`imap_unordered`](ProcessPool::imap_unordered) |
/// | `apply`, `apply_async(callback, error_callback)` | [`apply`](ProcessPool::apply), [`apply_async`](ProcessPool::apply_async), [`apply_async_with`](ProcessPool::apply_async_with) |
/// | `close`, `terminate`, `join` | [`close`](ProcessPool::close), [`terminate`](ProcessPool::terminate), [`join`](ProcessPool::join) |
///
/// Work is a registered task (`#[braid::task]`) and serde arguments. A task's failure
/// carries its name and the child's message. `map` without a chunk size splits the
/// input as Python does (`ceil(len / (4 × processes))` items per chunk).
///
/// Faults never hang a call: when a worker dies mid-task (killed, aborted, out of
/// memory) exactly the tasks it held finish with [`braid_core::Error::WorkerLost`] (or
/// run again once, with [`retry_lost_tasks`](ProcessPoolBuilder::retry_lost_tasks)),
/// and a replacement worker starts. (CPython's `Pool` hangs forever here.) Dropping the
/// pool finishes the queued work and then stops and reaps every worker; the workers
/// also die with this process.
///
/// ```no_run
/// use braid_proc::ProcessPool;
///
/// #[braid_core::task]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() {
///     braid_core::init();
///     let pool = ProcessPool::new(2).unwrap();
///     let squares = pool.map(square::task(), 0..10u64).unwrap();
///     assert_eq!(squares[9], 81);
///     let handle = pool.apply_async(square::task(), (12,)).unwrap();
///     assert_eq!(handle.result().unwrap(), 144);
/// }
/// ```
pub struct ProcessPool {
    sender: RwLock<Option<Sender<PoolWork>>>,
    shared: Arc<Shared>,
    links: Mutex<Vec<std::thread::JoinHandle<()>>>,
    processes: usize,
}

/// An initializer: the task's name, its encoded arguments, the descriptors they carry.
type Initializer = (String, Vec<u8>, Vec<OwnedFd>);

/// Configures a [`ProcessPool`]: processes, initializer, tasks per worker, retries.
pub struct ProcessPoolBuilder {
    processes: usize,
    initializer: Option<Result<Initializer>>,
    maxtasksperchild: usize,
    retry_lost: bool,
}

/// What the pool's threads share.
struct Shared {
    jobs: Receiver<PoolWork>,
    retry_tx: Sender<PoolWork>,
    retry_rx: Receiver<PoolWork>,
    config: WorkerConfig,
    init_fds: Vec<OwnedFd>,
    maxtasksperchild: usize,
    retry_lost: bool,
    state: Mutex<State>,
    next_id: AtomicU64,
    worker_number: AtomicUsize,
}

#[derive(Default)]
struct State {
    closed: bool,
    terminated: bool,
    broken: Option<String>,
    /// The worker pid of each link, while it is not reaped.
    pids: Vec<Option<u32>>,
}

/// One unit of work waiting for, or held by, a worker.
enum PoolWork {
    /// A call through the `Executor` interface (`apply`, `submit`).
    Job { job: Job, retried: bool },
    /// Calls of one task in one request (`map` and friends); the promise gets the raw
    /// outcomes.
    Chunk {
        name: &'static str,
        count: u32,
        items: Vec<u8>,
        promise: Promise<Vec<u8>>,
        retried: bool,
    },
}

impl PoolWork {
    fn start(&self) -> bool {
        match self {
            PoolWork::Job { job, .. } => job.start(),
            PoolWork::Chunk { promise, .. } => promise.start(),
        }
    }

    fn encode(&self, id: u64, out: &mut Vec<u8>) -> Result<()> {
        match self {
            PoolWork::Job { job, .. } => {
                let call = job.call();
                pw::push_call(out, id, call.name(), call.codec(), call.args())
            }
            PoolWork::Chunk {
                name, count, items, ..
            } => pw::push_chunk(out, id, name, *count, items),
        }
    }

    fn fail(self, error: braid_core::Error) {
        settle(|| match self {
            PoolWork::Job { job, .. } => job.complete(Err(error)),
            PoolWork::Chunk { promise, .. } => promise.complete(Err(error)),
        });
    }

    fn cancel(self) {
        match self {
            PoolWork::Job { job, .. } => job.cancel(),
            PoolWork::Chunk { promise, .. } => promise.cancel(),
        }
    }

    fn retried(&mut self) -> &mut bool {
        match self {
            PoolWork::Job { retried, .. } | PoolWork::Chunk { retried, .. } => retried,
        }
    }
}

/// What filling a worker led to.
enum Fill {
    /// Work was sent (or none was there and the worker holds some).
    Sent,
    /// Something changed (the worker died, the pool broke): look again.
    Again,
    /// The pool is closed and this worker holds nothing.
    Closed,
}

enum Next {
    Work(PoolWork),
    /// Nothing now (non-blocking), or nothing within the idle check (blocking).
    Empty,
    /// The pool is closed and nothing is left.
    Closed,
}

impl Shared {
    fn terminated(&self) -> bool {
        self.state.lock().terminated
    }

    fn closed(&self) -> bool {
        self.state.lock().closed
    }

    fn broken(&self) -> Option<String> {
        self.state.lock().broken.clone()
    }

    fn break_pool(&self, why: String) {
        let mut state = self.state.lock();
        if state.broken.is_none() {
            tracing::error!(%why, "the process pool is broken");
            state.broken = Some(why);
        }
    }

    fn next_now(&self) -> Next {
        if let Ok(work) = self.retry_rx.try_recv() {
            return Next::Work(work);
        }
        match self.jobs.try_recv() {
            Ok(work) => Next::Work(work),
            Err(crossbeam_channel::TryRecvError::Empty) => Next::Empty,
            Err(crossbeam_channel::TryRecvError::Disconnected) => Next::Closed,
        }
    }

    fn next_blocking(&self) -> Next {
        if let Ok(work) = self.retry_rx.try_recv() {
            return Next::Work(work);
        }
        // A caller submitting one task after another is often microseconds away: catch
        // its next task spinning rather than through a kernel wake-up.
        let mut next = None;
        crate::sys::spin_until(|| match self.jobs.try_recv() {
            Ok(work) => {
                next = Some(Next::Work(work));
                true
            }
            Err(crossbeam_channel::TryRecvError::Empty) => false,
            Err(crossbeam_channel::TryRecvError::Disconnected) => true,
        });
        if let Some(next) = next {
            return next;
        }
        crossbeam_channel::select! {
            recv(self.retry_rx) -> work => work.map_or(Next::Empty, Next::Work),
            recv(self.jobs) -> work => match work {
                Ok(work) => Next::Work(work),
                Err(_) => match self.retry_rx.try_recv() {
                    Ok(work) => Next::Work(work),
                    Err(_) => Next::Closed,
                },
            },
            default(IDLE_CHECK) => Next::Empty,
        }
    }

    fn set_pid(&self, link: usize, pid: Option<u32>) {
        self.state.lock().pids[link] = pid;
    }
}

/// A worker process as its link thread holds it.
struct Worker {
    process: std::process::Child,
    wire: Wire,
    pid: u32,
    /// Requests sent to it (a chunk counts once, as in Python).
    tasks: usize,
}

impl ProcessPoolBuilder {
    /// The number of worker processes; 0 (the default) means one per CPU.
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = n;
        self
    }

    /// Runs the registered `task` with `args` once in each worker when it starts,
    /// before it takes any work (Python's `initializer`/`initargs`). The arguments may
    /// hold shared objects ([`Queue`](crate::Queue), [`Value`](crate::Value),
    /// [`Lock`](crate::Lock), ...). If it fails in a worker, the pool is broken: queued
    /// and later work fails with [`braid_core::Error::WorkerLost`] naming the failure.
    pub fn initializer<A: Serialize, R: DeserializeOwned>(
        mut self,
        task: TaskRef<A, R>,
        args: A,
    ) -> Self {
        let (bytes, fds) = share::collect(|| share::encode(&args));
        self.initializer = Some(
            bytes
                .map(|bytes| (task.name().to_string(), bytes, fds))
                .map_err(Error::from),
        );
        self
    }

    /// Replaces each worker by a fresh process after it has run `n` tasks (a chunk of
    /// `map` counts as one, as in Python); 0 (the default) keeps workers for the pool's
    /// life.
    pub fn maxtasksperchild(mut self, n: usize) -> Self {
        self.maxtasksperchild = n;
        self
    }

    /// When a worker dies mid-task, runs the tasks it held once more on another worker
    /// before reporting them lost (default: report them lost at once).
    pub fn retry_lost_tasks(mut self, retry: bool) -> Self {
        self.retry_lost = retry;
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    /// An initializer argument that could not be encoded; [`Error::NotInitialized`];
    /// [`Error::Os`] when a worker cannot be started (those started are stopped).
    pub fn build(self) -> Result<ProcessPool> {
        let processes = match self.processes {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (initializer, init_fds) = match self.initializer {
            Some(init) => {
                let (name, args, fds) = init?;
                braid_core::lookup(&name)?;
                (Some((name, args)), fds)
            }
            None => (None, Vec::new()),
        };
        let (sender, jobs) = crossbeam_channel::unbounded();
        let (retry_tx, retry_rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            jobs,
            retry_tx,
            retry_rx,
            config: WorkerConfig { initializer },
            init_fds,
            maxtasksperchild: self.maxtasksperchild,
            retry_lost: self.retry_lost,
            state: Mutex::new(State {
                pids: vec![None; processes],
                ..State::default()
            }),
            next_id: AtomicU64::new(1),
            worker_number: AtomicUsize::new(0),
        });
        // Start every worker here, so that start-up errors surface now.
        let mut workers = Vec::with_capacity(processes);
        for index in 0..processes {
            match spawn_worker(&shared, index) {
                Ok(worker) => workers.push(worker),
                Err(e) => {
                    for worker in workers {
                        stop_worker(&shared, worker, None);
                    }
                    return Err(e);
                }
            }
        }
        let mut links = Vec::with_capacity(processes);
        for (index, worker) in workers.into_iter().enumerate() {
            let link_shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("braid-pool-{index}"))
                .spawn(move || Link::new(index, link_shared, worker).run());
            match spawned {
                Ok(handle) => links.push(handle),
                Err(e) => {
                    let pool = ProcessPool {
                        sender: RwLock::new(Some(sender)),
                        shared,
                        links: Mutex::new(links),
                        processes,
                    };
                    pool.terminate();
                    return Err(Error::os("starting a pool thread", e));
                }
            }
        }
        Ok(ProcessPool {
            sender: RwLock::new(Some(sender)),
            shared,
            links: Mutex::new(links),
            processes,
        })
    }
}

fn spawn_worker(shared: &Shared, link: usize) -> Result<Worker> {
    let number = shared.worker_number.fetch_add(1, Ordering::Relaxed) + 1;
    let Spawned { process, wire } = child::spawn(
        &format!("PoolWorker-{number}"),
        true,
        child::Work::PoolWorker(shared.config.clone()),
        &shared.init_fds,
    )?;
    let pid = process.id();
    shared.set_pid(link, Some(pid));
    Ok(Worker {
        process,
        wire,
        pid,
        tasks: 0,
    })
}

/// Stops a worker: closes its socket (it exits when it reads the end), or kills it
/// with `kill`; then reaps it. Returns how it ended.
fn stop_worker(
    shared: &Shared,
    worker: Worker,
    link: Option<usize>,
) -> Option<std::process::ExitStatus> {
    let Worker {
        mut process,
        wire,
        pid,
        ..
    } = worker;
    drop(wire);
    if let Some(link) = link {
        shared.set_pid(link, None);
    }
    match process.wait() {
        Ok(status) => Some(status),
        Err(e) => {
            tracing::warn!(pid, error = %e, "cannot reap a pool worker");
            None
        }
    }
}

/// How a dead worker ended, in words.
fn describe(status: Option<std::process::ExitStatus>) -> String {
    match status.map(crate::process::exit_code) {
        Some(code) if code < 0 => format!(
            "was killed by signal {} ({})",
            -code,
            crate::signal_name(-code)
        ),
        Some(code) => format!("exited with code {code}"),
        None => "ended".to_string(),
    }
}

/// Delivers a result: a done-callback that panics (it runs on this thread) is reported
/// and does not take the pool's thread down with it.
fn settle(deliver: impl FnOnce()) {
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(deliver)) {
        tracing::error!(
            panic = %braid_core::panic_message(&*payload),
            "a done-callback of a pool task panicked"
        );
    }
}

/// The thread that feeds one worker and collects its results.
struct Link {
    index: usize,
    shared: Arc<Shared>,
    worker: Option<Worker>,
    in_flight: VecDeque<(u64, PoolWork, Instant)>,
    /// Requests encoded for the worker; `out[sent..]` is not sent yet.
    out: Vec<u8>,
    sent: usize,
    /// Smoothed time a request takes, to size how many are sent ahead.
    service: Duration,
    last_reply: Instant,
}

impl Link {
    fn new(index: usize, shared: Arc<Shared>, worker: Worker) -> Link {
        Link {
            index,
            shared,
            worker: Some(worker),
            in_flight: VecDeque::new(),
            out: Vec::new(),
            sent: 0,
            service: Duration::from_millis(1),
            last_reply: Instant::now(),
        }
    }

    fn ahead(&self) -> usize {
        if self.service >= Duration::from_millis(1) {
            return 1;
        }
        let nanos = self.service.as_nanos().max(1);
        ((AHEAD_BUDGET.as_nanos() / nanos) as usize).clamp(2, MAX_AHEAD)
    }

    fn run(mut self) {
        loop {
            if self.shared.terminated() {
                self.finish_terminated();
                return;
            }
            if let Some(why) = self.shared.broken() {
                self.fail_everything(&why);
                return;
            }
            if self.worker.is_none() {
                if self.shared.closed()
                    && self.shared.jobs.is_empty()
                    && self.shared.retry_rx.is_empty()
                {
                    return;
                }
                match spawn_worker(&self.shared, self.index) {
                    Ok(worker) => self.worker = Some(worker),
                    Err(e) => {
                        self.shared
                            .break_pool(format!("cannot start a worker process: {e}"));
                        continue;
                    }
                }
            }
            match self.fill() {
                Fill::Sent => {}
                Fill::Again => continue,
                Fill::Closed => {
                    if let Some(worker) = self.worker.take() {
                        stop_worker(&self.shared, worker, Some(self.index));
                    }
                    return;
                }
            }
            if self.in_flight.is_empty() {
                self.retire_if_spent();
                continue;
            }
            self.collect();
        }
    }

    /// Whether the worker process has exited (reaping it if so).
    fn worker_exited(&mut self) -> bool {
        match self.worker.as_mut() {
            Some(worker) => match worker.process.try_wait() {
                Ok(Some(_)) => true,
                Ok(None) => false,
                Err(e) => {
                    tracing::debug!(error = %e, "try_wait on a pool worker");
                    false
                }
            },
            None => true,
        }
    }

    /// Sends the worker as much work as it should hold ahead.
    fn fill(&mut self) -> Fill {
        let max = self.shared.maxtasksperchild;
        let ahead = self.ahead();
        let mut closed = false;
        loop {
            let Some(tasks) = self.worker.as_ref().map(|w| w.tasks) else {
                return Fill::Again;
            };
            if self.in_flight.len() >= ahead || (max > 0 && tasks >= max) {
                break;
            }
            let next = if self.in_flight.is_empty() && self.out.is_empty() {
                match self.shared.next_blocking() {
                    Next::Empty => {
                        // Idle: make sure the worker is still there.
                        if self.worker_exited() {
                            self.on_death(None);
                            return Fill::Again;
                        }
                        if self.shared.terminated() || self.shared.broken().is_some() {
                            return Fill::Again;
                        }
                        continue;
                    }
                    other => other,
                }
            } else {
                self.shared.next_now()
            };
            match next {
                Next::Work(work) => {
                    if !work.start() {
                        continue; // cancelled while queued
                    }
                    let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = work.encode(id, &mut self.out) {
                        work.fail(braid_core::Error::Encode(e.to_string()));
                        continue;
                    }
                    if let Some(worker) = self.worker.as_mut() {
                        worker.tasks += 1;
                    }
                    self.in_flight.push_back((id, work, Instant::now()));
                }
                Next::Empty => break,
                Next::Closed => {
                    closed = true;
                    break;
                }
            }
        }
        if self.flush().is_err() {
            self.on_death(None);
            return Fill::Again;
        }
        if closed && self.in_flight.is_empty() {
            Fill::Closed
        } else {
            Fill::Sent
        }
    }

    /// Sends what the socket takes of the pending requests, without waiting: a worker
    /// blocked sending its results must never find this thread blocked sending too.
    fn flush(&mut self) -> Result<()> {
        let Some(worker) = self.worker.as_ref() else {
            return Ok(());
        };
        while self.sent < self.out.len() {
            let n = crate::wire::send_some(worker.wire.fd(), &self.out[self.sent..])?;
            if n == 0 {
                return Ok(());
            }
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        Ok(())
    }

    /// Replaces the worker once it has run its `maxtasksperchild`.
    fn retire_if_spent(&mut self) {
        let max = self.shared.maxtasksperchild;
        if max > 0
            && self.worker.as_ref().is_some_and(|w| w.tasks >= max)
            && let Some(worker) = self.worker.take()
        {
            stop_worker(&self.shared, worker, Some(self.index));
        }
    }

    /// Reads the replies that are there (waiting for at least one).
    fn collect(&mut self) {
        if self.sent < self.out.len() {
            self.collect_while_sending();
            return;
        }
        let Some(worker) = self.worker.as_mut() else {
            return;
        };
        let first = worker.wire.recv(None).map(|f| f.map(<[u8]>::to_vec));
        let frame = match first {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(Error::Closed) => {
                self.on_death(None);
                return;
            }
            Err(e) => {
                self.on_death(Some(e.to_string()));
                return;
            }
        };
        self.reply(&frame);
        loop {
            let Some(worker) = self.worker.as_mut() else {
                return;
            };
            if !worker.wire.has_frame() {
                return;
            }
            let frame = match worker.wire.take() {
                Ok(frame) => frame.to_vec(),
                Err(_) => return,
            };
            self.reply(&frame);
        }
    }

    /// With requests still to send: wait until the worker takes more or replies, and
    /// do whichever it allows.
    fn collect_while_sending(&mut self) {
        let Some(worker) = self.worker.as_ref() else {
            return;
        };
        let (readable, writable) = match crate::wire::wait_ready(worker.wire.fd(), true) {
            Ok(ready) => ready,
            Err(e) => {
                self.on_death(Some(e.to_string()));
                return;
            }
        };
        if writable && self.flush().is_err() {
            self.on_death(None);
            return;
        }
        if readable {
            let mut frames = Vec::new();
            let mut ended = None;
            if let Some(worker) = self.worker.as_mut() {
                loop {
                    match worker.wire.ready().and_then(|ready| {
                        if ready {
                            worker.wire.take().map(|f| Some(f.to_vec()))
                        } else {
                            Ok(None)
                        }
                    }) {
                        Ok(Some(frame)) => frames.push(frame),
                        Ok(None) => break,
                        Err(Error::Closed) => {
                            ended = Some(None);
                            break;
                        }
                        Err(e) => {
                            ended = Some(Some(e.to_string()));
                            break;
                        }
                    }
                }
            }
            // Replies that came before the end still count.
            for frame in frames {
                self.reply(&frame);
            }
            if let Some(problem) = ended {
                self.on_death(problem);
            }
        }
    }

    fn reply(&mut self, frame: &[u8]) {
        if let Err(e) = self.try_reply(frame) {
            if let Some(worker) = self.worker.as_mut()
                && let Err(e) = worker.process.kill()
            {
                tracing::debug!(error = %e, "killing a worker that sent a corrupt reply");
            }
            self.on_death(Some(format!("sent a corrupt reply ({e})")));
        }
    }

    fn try_reply(&mut self, frame: &[u8]) -> Result<()> {
        let mut r = Reader::new(frame);
        match r.u8()? {
            pw::REP_READY => Ok(()),
            pw::REP_INIT_FAILED => {
                let why = match r.outcome()? {
                    Err(e) => e.to_string(),
                    Ok(_) => "an unknown error".to_string(),
                };
                self.shared
                    .break_pool(format!("the pool's initializer failed in a worker: {why}"));
                Ok(())
            }
            kind @ (pw::REP_DONE | pw::REP_CHUNK_DONE) => {
                let id = r.u64()?;
                let Some(at) = self.in_flight.iter().position(|(i, _, _)| *i == id) else {
                    return Err(Error::os(
                        "a pool reply",
                        format!("for unknown request {id}"),
                    ));
                };
                let (_, work, sent) = self
                    .in_flight
                    .remove(at)
                    .ok_or_else(|| Error::os("a pool reply", "lost request"))?;
                let now = Instant::now();
                let took = now.duration_since(sent.max(self.last_reply));
                self.last_reply = now;
                self.service = (self.service * 3 + took) / 4;
                match (kind, work) {
                    (pw::REP_DONE, PoolWork::Job { job, .. }) => {
                        let outcome = r.outcome()?.map(<[u8]>::to_vec);
                        settle(|| job.complete(outcome));
                    }
                    (pw::REP_CHUNK_DONE, PoolWork::Chunk { count, promise, .. }) => {
                        let got = r.u32()?;
                        if got != count {
                            return Err(Error::os("a pool reply", "a chunk of the wrong size"));
                        }
                        let blob = r.rest().to_vec();
                        settle(|| promise.complete(Ok(blob)));
                    }
                    (_, work) => {
                        work.fail(braid_core::Error::WorkerLost(
                            "a reply of the wrong kind".into(),
                        ));
                    }
                }
                Ok(())
            }
            other => Err(Error::os("a pool reply", format!("unknown kind {other}"))),
        }
    }

    /// The worker is gone (or must go): reap it, start its replacement, and settle what
    /// it held, in that order, so that whoever hears of the loss finds the pool whole.
    fn on_death(&mut self, problem: Option<String>) {
        let Some(mut worker) = self.worker.take() else {
            return;
        };
        self.out.clear();
        self.sent = 0;
        // Replies it sent before it died still count.
        let mut frames = Vec::new();
        while let Ok(true) = worker.wire.ready() {
            match worker.wire.take() {
                Ok(frame) => frames.push(frame.to_vec()),
                Err(_) => break,
            }
        }
        for frame in frames {
            if let Err(e) = self.try_reply(&frame) {
                tracing::warn!(error = %e, "a dying pool worker sent a corrupt reply");
            }
        }
        if let Err(e) = worker.process.kill() {
            tracing::debug!(error = %e, "killing a dead pool worker");
        }
        let pid = worker.pid;
        let status = stop_worker(&self.shared, worker, Some(self.index));
        let why = match problem {
            Some(problem) => problem,
            None => describe(status),
        };
        let terminated = self.shared.terminated();
        let broken = self.shared.broken();
        if !terminated && broken.is_none() {
            if !self.in_flight.is_empty() {
                tracing::warn!(pid, %why, held = self.in_flight.len(), "a pool worker died holding work");
            }
            match spawn_worker(&self.shared, self.index) {
                Ok(replacement) => self.worker = Some(replacement),
                Err(e) => self
                    .shared
                    .break_pool(format!("cannot start a replacement worker process: {e}")),
            }
        }
        let lost = |why: &str| {
            braid_core::Error::WorkerLost(format!(
                "worker process {pid} {why} while running this task"
            ))
        };
        for (_, mut work, _) in self.in_flight.drain(..) {
            if terminated {
                work.fail(braid_core::Error::WorkerLost(
                    "the pool was terminated".into(),
                ));
            } else if let Some(broken) = &broken {
                work.fail(braid_core::Error::WorkerLost(format!(
                    "the pool is broken: {broken}"
                )));
            } else if self.shared.retry_lost && !*work.retried() {
                *work.retried() = true;
                if let Err(e) = self.shared.retry_tx.send(work) {
                    e.into_inner().fail(lost(&why));
                }
            } else {
                work.fail(lost(&why));
            }
        }
    }

    fn finish_terminated(&mut self) {
        if let Some(worker) = self.worker.as_mut()
            && let Err(e) = worker.process.kill()
        {
            tracing::debug!(error = %e, "killing a pool worker at terminate");
        }
        self.on_death(Some("the pool was terminated".into()));
    }

    /// The pool is broken: fail what is held and everything that arrives until it closes.
    fn fail_everything(&mut self, why: &str) {
        if let Some(worker) = self.worker.as_mut()
            && let Err(e) = worker.process.kill()
        {
            tracing::debug!(error = %e, "killing a worker of a broken pool");
        }
        let lost = || braid_core::Error::WorkerLost(format!("the pool is broken: {why}"));
        if let Some(worker) = self.worker.take() {
            stop_worker(&self.shared, worker, Some(self.index));
        }
        for (_, work, _) in self.in_flight.drain(..) {
            work.fail(lost());
        }
        loop {
            match self.shared.next_blocking() {
                Next::Work(work) => work.fail(lost()),
                Next::Empty => {}
                Next::Closed => return,
            }
        }
    }
}

/// Python's default chunk size for `map`: `ceil(len / (4 × processes))`.
pub(crate) fn default_chunksize(len: usize, processes: usize) -> usize {
    len.div_ceil(4 * processes.max(1)).max(1)
}

/// Items of one chunk, encoded as the worker reads them.
struct ChunkBuf {
    items: Vec<u8>,
    count: u32,
}

impl ChunkBuf {
    fn new() -> Self {
        ChunkBuf {
            items: Vec::new(),
            count: 0,
        }
    }

    fn push<A: Serialize>(&mut self, args: &A) -> CoreResult<()> {
        let at = self.items.len();
        self.items.extend_from_slice(&[0; 4]);
        if let Err(e) = share::encode_into(args, &mut self.items) {
            self.items.truncate(at);
            return Err(e);
        }
        let len = (self.items.len() - at - 4) as u32;
        self.items[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self.count += 1;
        Ok(())
    }
}

/// Decodes a chunk's outcomes into `out`.
fn decode_chunk<R: DeserializeOwned>(
    outcome: CoreResult<Vec<u8>>,
    count: usize,
    out: &mut VecDeque<CoreResult<R>>,
) {
    let blob = match outcome {
        Ok(blob) => blob,
        Err(e) => {
            out.extend(std::iter::repeat_n(e, count).map(Err));
            return;
        }
    };
    let mut r = Reader::new(&blob);
    for _ in 0..count {
        out.push_back(match r.outcome() {
            Ok(Ok(bytes)) => Codec::Binary.decode(bytes),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(braid_core::Error::WorkerLost(format!(
                "a corrupt chunk reply: {e}"
            ))),
        });
    }
}

impl ProcessPool {
    /// A pool of `processes` workers (0: one per CPU).
    ///
    /// # Errors
    /// As [`ProcessPoolBuilder::build`].
    pub fn new(processes: usize) -> Result<Self> {
        Self::builder().processes(processes).build()
    }

    /// A builder for the initializer, `maxtasksperchild` and retries.
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder {
            processes: 0,
            initializer: None,
            maxtasksperchild: 0,
            retry_lost: false,
        }
    }

    /// The number of worker processes.
    pub fn processes(&self) -> usize {
        self.processes
    }

    /// The process ids of the current workers.
    pub fn pids(&self) -> Vec<u32> {
        self.shared
            .state
            .lock()
            .pids
            .iter()
            .flatten()
            .copied()
            .collect()
    }

    fn send(&self, work: PoolWork) -> CoreResult<()> {
        if let Some(why) = self.shared.broken() {
            work.fail(braid_core::Error::WorkerLost(format!(
                "the pool is broken: {why}"
            )));
            return Err(braid_core::Error::WorkerLost(format!(
                "the pool is broken: {why}"
            )));
        }
        let sender = self.sender.read();
        let Some(sender) = sender.as_ref() else {
            work.cancel();
            return Err(braid_core::Error::Shutdown);
        };
        sender.send(work).map_err(|e| {
            e.into_inner().cancel();
            braid_core::Error::Shutdown
        })
    }

    fn submit_chunk(&self, name: &'static str, chunk: ChunkBuf) -> CoreResult<Handle<Vec<u8>>> {
        let (promise, handle) = braid_core::promise();
        self.send(PoolWork::Chunk {
            name,
            count: chunk.count,
            items: chunk.items,
            promise,
            retried: false,
        })?;
        Ok(handle)
    }

    /// Encodes and submits `inputs` in chunks of `chunksize`; returns each chunk's
    /// handle and size (or the error of a chunk that could not be sent).
    fn submit_chunks<A: Serialize>(
        &self,
        name: &'static str,
        inputs: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> CoreResult<Vec<(Handle<Vec<u8>>, usize)>> {
        braid_core::lookup(name)?;
        let mut handles = Vec::new();
        let mut chunk = ChunkBuf::new();
        for args in inputs {
            chunk.push(&args)?;
            if chunk.count as usize >= chunksize.max(1) {
                let count = chunk.count as usize;
                handles.push((
                    self.submit_chunk(name, std::mem::replace(&mut chunk, ChunkBuf::new()))?,
                    count,
                ));
            }
        }
        if chunk.count > 0 {
            let count = chunk.count as usize;
            handles.push((self.submit_chunk(name, chunk)?, count));
        }
        Ok(handles)
    }

    fn gather<R: DeserializeOwned>(handles: Vec<(Handle<Vec<u8>>, usize)>) -> CoreResult<Vec<R>> {
        let total = handles.iter().map(|(_, n)| n).sum();
        let mut results = Vec::with_capacity(total);
        let mut ready = VecDeque::new();
        for (handle, count) in handles {
            decode_chunk::<R>(handle.result(), count, &mut ready);
            for item in ready.drain(..) {
                results.push(item?);
            }
        }
        Ok(results)
    }

    /// Applies a one-argument task to every input, returning the results in input order
    /// (Python's `map`), in chunks of Python's default size.
    ///
    /// # Errors
    /// The first failed item's error, in input order; [`braid_core::Error::Shutdown`]
    /// after close.
    pub fn map<X: Serialize, R: DeserializeOwned + Send + 'static>(
        &self,
        task: TaskRef<(X,), R>,
        inputs: impl IntoIterator<Item = X>,
    ) -> CoreResult<Vec<R>> {
        let inputs: Vec<X> = inputs.into_iter().collect();
        let chunksize = default_chunksize(inputs.len(), self.processes);
        self.map_chunked(task, inputs, chunksize)
    }

    /// [`map`](ProcessPool::map) with `chunksize` items per request to a worker.
    ///
    /// # Errors
    /// As [`map`](ProcessPool::map).
    pub fn map_chunked<X: Serialize, R: DeserializeOwned + Send + 'static>(
        &self,
        task: TaskRef<(X,), R>,
        inputs: impl IntoIterator<Item = X>,
        chunksize: usize,
    ) -> CoreResult<Vec<R>> {
        let handles =
            self.submit_chunks(task.name(), inputs.into_iter().map(|x| (x,)), chunksize)?;
        Self::gather(handles)
    }

    /// Applies a task to every argument tuple (Python's `starmap`), in chunks of
    /// Python's default size.
    ///
    /// # Errors
    /// As [`map`](ProcessPool::map).
    pub fn starmap<A: Serialize, R: DeserializeOwned + Send + 'static>(
        &self,
        task: TaskRef<A, R>,
        inputs: impl IntoIterator<Item = A>,
    ) -> CoreResult<Vec<R>> {
        let inputs: Vec<A> = inputs.into_iter().collect();
        let chunksize = default_chunksize(inputs.len(), self.processes);
        self.starmap_chunked(task, inputs, chunksize)
    }

    /// [`starmap`](ProcessPool::starmap) with `chunksize` items per request.
    ///
    /// # Errors
    /// As [`map`](ProcessPool::map).
    pub fn starmap_chunked<A: Serialize, R: DeserializeOwned + Send + 'static>(
        &self,
        task: TaskRef<A, R>,
        inputs: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> CoreResult<Vec<R>> {
        let handles = self.submit_chunks(task.name(), inputs, chunksize)?;
        Self::gather(handles)
    }

    /// A lazy, ordered map (Python's `imap`): items are sent as they are needed, a few
    /// chunks per worker ahead, so an endless input is fine. Each item's outcome is its
    /// own.
    pub fn imap<'a, X, R, I>(
        &'a self,
        task: TaskRef<(X,), R>,
        inputs: I,
        chunksize: usize,
    ) -> Imap<'a, X, R, I::IntoIter>
    where
        X: Serialize,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = X>,
    {
        Imap {
            pool: self,
            name: task.name(),
            inputs: inputs.into_iter(),
            chunksize: chunksize.max(1),
            in_flight: VecDeque::new(),
            ready: VecDeque::new(),
            _types: std::marker::PhantomData,
        }
    }

    /// A lazy map yielding results as they finish (Python's `imap_unordered`).
    pub fn imap_unordered<'a, X, R, I>(
        &'a self,
        task: TaskRef<(X,), R>,
        inputs: I,
        chunksize: usize,
    ) -> ImapUnordered<'a, X, R, I::IntoIter>
    where
        X: Serialize,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = X>,
    {
        let (tx, rx) = crossbeam_channel::unbounded();
        ImapUnordered {
            pool: self,
            name: task.name(),
            inputs: inputs.into_iter(),
            chunksize: chunksize.max(1),
            tx,
            rx,
            in_flight: 0,
            ready: VecDeque::new(),
            _types: std::marker::PhantomData,
        }
    }

    /// Runs a task on a worker and waits for its result (Python's `apply`).
    ///
    /// # Errors
    /// The task's error; [`braid_core::Error::WorkerLost`]; [`braid_core::Error::Shutdown`].
    pub fn apply<A: Serialize, R: DeserializeOwned + Send + 'static>(
        &self,
        task: TaskRef<A, R>,
        args: A,
    ) -> CoreResult<R> {
        let handle = self.apply_async(task, args)?;
        // A quick task's result is microseconds away: spin for it before sleeping.
        crate::sys::spin_until(|| handle.is_done());
        handle.result()
    }

    /// Submits a task; its [`Handle`] gives the result (Python's `apply_async`).
    ///
    /// # Errors
    /// An encoding error; [`braid_core::Error::Shutdown`] after close.
    pub fn apply_async<A: Serialize, R: DeserializeOwned + Send + 'static>(
        &self,
        task: TaskRef<A, R>,
        args: A,
    ) -> CoreResult<Handle<R>> {
        let call =
            braid_core::TaskCall::from_parts(task.name(), Codec::Binary, share::encode(&args)?);
        let (job, handle) = Job::new(call);
        self.execute(job)?;
        Ok(handle)
    }

    /// [`apply_async`](ProcessPool::apply_async) with Python's `callback` (given the
    /// value) and `error_callback` (given the error), run on a pool thread when the
    /// task finishes.
    ///
    /// # Errors
    /// As [`apply_async`](ProcessPool::apply_async).
    pub fn apply_async_with<A, R>(
        &self,
        task: TaskRef<A, R>,
        args: A,
        callback: impl FnOnce(&R) + Send + 'static,
        error_callback: impl FnOnce(&braid_core::Error) + Send + 'static,
    ) -> CoreResult<Handle<R>>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        let handle = self.apply_async(task, args)?;
        handle.add_done_callback(move |outcome| match outcome {
            Ok(value) => callback(value),
            Err(e) => error_callback(e),
        });
        Ok(handle)
    }

    /// Stops taking work; the workers exit once the queued work is done (Python's
    /// `close`).
    pub fn close(&self) {
        self.shared.state.lock().closed = true;
        drop(self.sender.write().take());
    }

    /// Stops at once (Python's `terminate`): queued work is cancelled, workers are
    /// killed, and the tasks they held fail with [`braid_core::Error::WorkerLost`].
    pub fn terminate(&self) {
        {
            let mut state = self.shared.state.lock();
            state.terminated = true;
            for pid in state.pids.iter().flatten() {
                if let Some(pid) = rustix::process::Pid::from_raw(*pid as i32)
                    && let Err(e) =
                        rustix::process::kill_process(pid, rustix::process::Signal::KILL)
                {
                    tracing::debug!(error = %e, "killing a pool worker");
                }
            }
        }
        self.close();
        self.cancel_queued();
    }

    fn cancel_queued(&self) {
        while let Ok(work) = self.shared.jobs.try_recv() {
            work.cancel();
        }
        while let Ok(work) = self.shared.retry_rx.try_recv() {
            work.cancel();
        }
    }

    /// Waits for the workers to exit after [`close`](ProcessPool::close) or
    /// [`terminate`](ProcessPool::terminate) (Python's `join`).
    ///
    /// # Errors
    /// [`Error::PoolRunning`] when the pool was neither closed nor terminated.
    pub fn join(&self) -> Result<()> {
        if self.sender.read().is_some() {
            return Err(Error::PoolRunning);
        }
        let links = std::mem::take(&mut *self.links.lock());
        for link in links {
            if link.join().is_err() {
                tracing::error!("a pool thread panicked");
            }
        }
        Ok(())
    }
}

impl Executor for ProcessPool {
    /// Queues `job` for a worker process.
    ///
    /// # Errors
    /// [`braid_core::Error::Shutdown`] after close; [`braid_core::Error::WorkerLost`]
    /// when the pool is broken.
    fn execute(&self, job: Job) -> CoreResult<()> {
        if let Err(e) = braid_core::lookup(job.call().name()) {
            job.complete(Err(e));
            return Ok(());
        }
        self.send(PoolWork::Job {
            job,
            retried: false,
        })
    }

    /// Stops taking work; with `cancel_pending`, queued work is cancelled; with `wait`,
    /// blocks until the workers have finished and exited.
    fn shutdown(&self, wait: bool, cancel_pending: bool) {
        self.close();
        if cancel_pending {
            self.cancel_queued();
        }
        if wait && let Err(e) = self.join() {
            tracing::error!(error = %e, "joining a closed pool");
        }
    }

    fn parallelism(&self) -> usize {
        self.processes
    }
}

impl Drop for ProcessPool {
    /// Finishes the queued work, then stops and reaps every worker.
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

impl std::fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPool")
            .field("processes", &self.processes)
            .field("pids", &self.pids())
            .field("queued", &self.shared.jobs.len())
            .finish()
    }
}

impl std::fmt::Debug for ProcessPoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPoolBuilder")
            .field("processes", &self.processes)
            .field("initializer", &self.initializer.is_some())
            .field("maxtasksperchild", &self.maxtasksperchild)
            .field("retry_lost_tasks", &self.retry_lost)
            .finish()
    }
}

/// The ordered lazy iterator of [`ProcessPool::imap`].
pub struct Imap<'a, X, R, I> {
    pool: &'a ProcessPool,
    name: &'static str,
    inputs: I,
    chunksize: usize,
    in_flight: VecDeque<(CoreResult<Handle<Vec<u8>>>, usize)>,
    ready: VecDeque<CoreResult<R>>,
    _types: std::marker::PhantomData<fn(X)>,
}

/// Encodes the next chunk of `inputs`; `None` when they are exhausted.
fn next_chunk<X: Serialize>(
    inputs: &mut impl Iterator<Item = X>,
    chunksize: usize,
) -> Option<CoreResult<ChunkBuf>> {
    let mut chunk = ChunkBuf::new();
    for x in inputs.by_ref().take(chunksize) {
        if let Err(e) = chunk.push(&(x,)) {
            return Some(Err(e));
        }
    }
    (chunk.count > 0).then_some(Ok(chunk))
}

impl<X, R, I> Iterator for Imap<'_, X, R, I>
where
    X: Serialize,
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = X>,
{
    type Item = CoreResult<R>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(item) = self.ready.pop_front() {
            return Some(item);
        }
        let window = self.pool.processes * 2;
        while self.in_flight.len() < window {
            match next_chunk(&mut self.inputs, self.chunksize) {
                None => break,
                Some(Ok(chunk)) => {
                    let count = chunk.count as usize;
                    let submitted = braid_core::lookup(self.name)
                        .and_then(|_| self.pool.submit_chunk(self.name, chunk));
                    self.in_flight.push_back((submitted, count));
                }
                Some(Err(e)) => self.in_flight.push_back((Err(e), 1)),
            }
        }
        let (handle, count) = self.in_flight.pop_front()?;
        decode_chunk(handle.and_then(Handle::result), count, &mut self.ready);
        self.ready.pop_front()
    }
}

impl<X, R, I> std::fmt::Debug for Imap<'_, X, R, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imap")
            .field("task", &self.name)
            .finish_non_exhaustive()
    }
}

type ChunkDone = (CoreResult<Vec<u8>>, usize);

/// The lazy iterator of [`ProcessPool::imap_unordered`], yielding results as they
/// finish.
pub struct ImapUnordered<'a, X, R, I> {
    pool: &'a ProcessPool,
    name: &'static str,
    inputs: I,
    chunksize: usize,
    tx: Sender<ChunkDone>,
    rx: Receiver<ChunkDone>,
    in_flight: usize,
    ready: VecDeque<CoreResult<R>>,
    _types: std::marker::PhantomData<fn(X)>,
}

impl<X, R, I> Iterator for ImapUnordered<'_, X, R, I>
where
    X: Serialize,
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = X>,
{
    type Item = CoreResult<R>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(item) = self.ready.pop_front() {
            return Some(item);
        }
        let window = self.pool.processes * 2;
        while self.in_flight < window {
            let Some(chunk) = next_chunk(&mut self.inputs, self.chunksize) else {
                break;
            };
            self.in_flight += 1;
            let submitted = chunk.and_then(|chunk| {
                let count = chunk.count as usize;
                braid_core::lookup(self.name)?;
                let handle = self.pool.submit_chunk(self.name, chunk)?;
                Ok((handle, count))
            });
            match submitted {
                Ok((handle, count)) => {
                    let tx = self.tx.clone();
                    handle.add_done_callback(move |outcome| {
                        if tx.send((outcome.clone(), count)).is_err() {
                            tracing::debug!("an imap_unordered iterator was dropped");
                        }
                    });
                }
                Err(e) => {
                    if self.tx.send((Err(e), 1)).is_err() {
                        tracing::debug!("cannot queue an imap_unordered error");
                    }
                }
            }
        }
        if self.in_flight == 0 {
            return None;
        }
        let (outcome, count) = self.rx.recv().ok()?;
        self.in_flight -= 1;
        decode_chunk(outcome, count, &mut self.ready);
        self.ready.pop_front()
    }
}

impl<X, R, I> std::fmt::Debug for ImapUnordered<'_, X, R, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapUnordered")
            .field("task", &self.name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_chunking_is_pythons() {
        // divmod(len, 4 * workers), plus one when there is a remainder.
        assert_eq!(default_chunksize(100_000, 2), 12_500);
        assert_eq!(default_chunksize(10, 2), 2);
        assert_eq!(default_chunksize(9, 2), 2);
        assert_eq!(default_chunksize(1, 8), 1);
        assert_eq!(default_chunksize(0, 2), 1);
    }

    #[test]
    fn chunks_decode_item_by_item() {
        let mut blob = Vec::new();
        pw::push_outcome(&mut blob, &Ok(Codec::Binary.encode(&5u32).unwrap()));
        pw::push_outcome(&mut blob, &Err(braid_core::Error::Cancelled));
        let mut out = VecDeque::new();
        decode_chunk::<u32>(Ok(blob), 2, &mut out);
        assert_eq!(out.pop_front(), Some(Ok(5)));
        assert_eq!(out.pop_front(), Some(Err(braid_core::Error::Cancelled)));
        decode_chunk::<u32>(Err(braid_core::Error::Shutdown), 3, &mut out);
        assert_eq!(out.len(), 3);
    }
}
