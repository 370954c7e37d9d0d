//! The worker: fetches messages, runs tasks (sync ones on a thread pool, async ones on
//! tokio), stores results, sends follow-ups, and acknowledges.

mod exec;
mod finish;
mod pool;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, watch};

use crate::app::AppConfig;
use crate::backend::{Backend, Record};
use crate::broker::{Broker, Delivery, WorkerBeat};
use crate::context::{TaskContext, with_async, with_sync};
use crate::events::Eventer;
use crate::state::ExceptionInfo;
use crate::{App, Error, Result, TaskMessage, clock};

use exec::{Call, Failed};
use pool::{Claim, Pool};

pub(crate) use exec::BINARY_CODEC_HEADER;

/// An ETA closer than this is waited for in memory; a later one goes to the broker's
/// durable schedule.
const HOLD_IN_MEMORY: Duration = Duration::from_secs(1);

/// How often a worker reports that it is alive.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// How many revoked ids a worker remembers (Celery's `REVOKES_MAX`).
const REVOKES_MAX: usize = 50_000;

/// Where a worker's shutdown stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    /// Finish running tasks, give reserved ones back.
    Warm,
    /// Give everything back now.
    Cold,
}

/// What a finished (or given up) delivery leaves for the completion step.
pub(crate) struct Done {
    pub delivery: Delivery,
    pub message: Option<Arc<TaskMessage>>,
    pub outcome: Outcome,
    pub runtime: Duration,
}

/// How a delivery ended.
pub(crate) enum Outcome {
    /// The task returned this JSON value.
    Success(Box<serde_json::value::RawValue>),
    /// The task failed.
    Failure {
        exception: ExceptionInfo,
        error_type: String,
        retry_request: Option<Option<Duration>>,
        dead_letter: Option<String>,
    },
    /// Revoked or expired before it ran.
    Revoked(&'static str),
    /// Not run: back to its queue (shutdown).
    GiveBack,
    /// Did not decode: to the dead-letter list, with a FAILURE when it has an id.
    Malformed(String),
}

/// What the completion step receives.
pub(crate) enum Event {
    Done(Box<Done>),
    Store(Record),
    Ack(String),
}

struct Held {
    /// `None` for a message that did not decode.
    message: Option<Arc<TaskMessage>>,
    received: f64,
    started: Option<f64>,
}

/// A delivery and its message, taken by whoever finishes the task first.
type Slot = Arc<Mutex<Option<(Delivery, Arc<TaskMessage>)>>>;

enum Running {
    Sync {
        id: String,
        claim: Arc<Claim>,
        slot: Slot,
    },
    Async {
        id: String,
        abort: tokio::task::AbortHandle,
        claimed: Arc<AtomicBool>,
        slot: Slot,
    },
}

impl Running {
    fn id(&self) -> &str {
        match self {
            Running::Sync { id, .. } | Running::Async { id, .. } => id,
        }
    }
}

#[derive(Default)]
struct Revoked {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Revoked {
    fn add(&mut self, id: String) {
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
            while self.order.len() > REVOKES_MAX {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
    }
}

#[derive(Default)]
struct Counters {
    processed: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    revoked: AtomicU64,
    dead_lettered: AtomicU64,
    by_task: Mutex<HashMap<String, u64>>,
}

/// A snapshot of a worker's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Tasks finished (any outcome).
    pub processed: u64,
    /// Tasks that returned a value.
    pub succeeded: u64,
    /// Tasks that failed for good.
    pub failed: u64,
    /// Retries sent.
    pub retried: u64,
    /// Tasks skipped because they were revoked or expired.
    pub revoked: u64,
    /// Messages moved to the dead-letter list.
    pub dead_lettered: u64,
    /// Messages held now (running, waiting to run, or being finished).
    pub held: u64,
}

pub(crate) struct Shared {
    config: Arc<AppConfig>,
    broker: Arc<dyn Broker>,
    backend: Option<Arc<dyn Backend>>,
    hostname: Arc<str>,
    queues: Vec<String>,
    prefetch: usize,
    concurrency: AtomicUsize,
    pool: Arc<Pool>,
    pub(crate) eventer: Arc<Eventer>,
    events: mpsc::UnboundedSender<Event>,
    in_flight: AtomicUsize,
    capacity: Notify,
    drained: Notify,
    stop: watch::Sender<Stop>,
    held: Mutex<HashMap<String, Held>>,
    revoked: Mutex<Revoked>,
    /// Running tasks by delivery tag.
    running: Mutex<HashMap<String, Running>>,
    counters: Counters,
    next_start: Mutex<HashMap<String, Instant>>,
    shutdown_requested: (Mutex<bool>, Condvar),
    started_at: Instant,
}

/// A running worker: takes messages from its queues and runs the tasks registered in this
/// binary. It runs on threads of its own until [`Worker::shutdown`].
///
/// Dropping a worker without shutting it down stops it cold: nothing still held is lost,
/// it is all given back to the broker.
pub struct Worker {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    fetcher: Option<tokio::task::JoinHandle<()>>,
    loops: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("hostname", &self.shared.hostname)
            .field("queues", &self.shared.queues)
            .finish_non_exhaustive()
    }
}

/// Configures and starts a [`Worker`].
#[derive(Debug, Clone)]
pub struct WorkerBuilder {
    app: App,
    queues: Vec<String>,
    concurrency: usize,
    prefetch: Option<usize>,
    hostname: Option<String>,
    events: bool,
}

static WORKERS_STARTED: AtomicUsize = AtomicUsize::new(0);

impl WorkerBuilder {
    /// The queues to consume (default: the app's default queue).
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// How many tasks run at once (default: the number of CPUs).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How many messages the worker may hold at once, running or waiting to run
    /// (default: four per unit of concurrency, like Celery's prefetch multiplier).
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = Some(n.max(1));
        self
    }

    /// Whether the worker publishes Celery's monitoring events (`celery worker -E`):
    /// `worker-online`/`-heartbeat`/`-offline` and `task-received`/`-started`/
    /// `-succeeded`/`-failed`/`-retried`/`-revoked`, which Flower, `celery events` and
    /// [`EventReceiver`](crate::EventReceiver) read. Off by default, as in Celery; the
    /// remote commands `enable_events` and `disable_events` switch them at run time.
    pub fn events(mut self, on: bool) -> Self {
        self.events = on;
        self
    }

    /// The worker's node name (default: `braid-PID-N@HOST`).
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = Some(name.into());
        self
    }

    /// Connects and starts the worker.
    ///
    /// # Errors
    /// A broker or backend that cannot be reached, or threads that cannot be started.
    pub fn start(self) -> Result<Worker> {
        // The worker drives a runtime of its own, which cannot be entered from inside
        // another: from async code, start it on a plain thread.
        if tokio::runtime::Handle::try_current().is_ok() {
            return std::thread::scope(|scope| {
                scope
                    .spawn(move || self.start_here())
                    .join()
                    .unwrap_or_else(|_| Err(Error::Broker("starting the worker panicked".into())))
            });
        }
        self.start_here()
    }

    fn start_here(self) -> Result<Worker> {
        let n = WORKERS_STARTED.fetch_add(1, Ordering::Relaxed);
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let hostname = self
            .hostname
            .unwrap_or_else(|| format!("braid-{}-{n}@{host}", std::process::id()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("braid-worker-{n}"))
            .enable_all()
            .build()
            .map_err(|e| Error::Broker(format!("cannot start the worker's runtime: {e}")))?;
        let config = self.app.config().clone();
        let (broker, backend) = runtime.block_on(async {
            let broker = crate::broker::open(&config.broker_url).await?;
            let backend = match &config.backend_url {
                Some(url) => Some(crate::backend::open(url, config.result_expires).await?),
                None => None,
            };
            Ok::<_, Error>((broker, backend))
        })?;
        let pool = Pool::new(self.concurrency, &format!("braid-task-{n}"))
            .map_err(|e| Error::Broker(format!("cannot start the worker's threads: {e}")))?;
        let queues = if self.queues.is_empty() {
            vec![config.default_queue.clone()]
        } else {
            self.queues
        };
        let (events, events_rx) = mpsc::unbounded_channel();
        let (stop, _) = watch::channel(Stop::Running);
        let hostname: Arc<str> = hostname.into();
        let eventer = {
            let _entered = runtime.enter();
            Eventer::start(broker.clone(), hostname.clone(), self.events)
        };
        let shared = Arc::new(Shared {
            config,
            broker,
            backend,
            hostname,
            queues,
            prefetch: self.prefetch.unwrap_or(self.concurrency * 4).max(1),
            concurrency: AtomicUsize::new(self.concurrency),
            pool,
            eventer,
            events,
            in_flight: AtomicUsize::new(0),
            capacity: Notify::new(),
            drained: Notify::new(),
            stop,
            held: Mutex::new(HashMap::new()),
            revoked: Mutex::new(Revoked::default()),
            running: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            next_start: Mutex::new(HashMap::new()),
            shutdown_requested: (Mutex::new(false), Condvar::new()),
            started_at: Instant::now(),
        });
        let control = runtime.block_on(async {
            let revoked = shared.broker.revoked_since(0.0).await?;
            {
                let mut set = shared.revoked.lock();
                for id in revoked {
                    set.add(id);
                }
            }
            shared.broker.control().await
        })?;
        let loops = vec![
            runtime.spawn(finish::completion_loop(shared.clone(), events_rx)),
            runtime.spawn(maintenance_loop(shared.clone())),
            runtime.spawn(control_loop(shared.clone(), control)),
        ];
        let fetcher = Some(runtime.spawn(fetch_loop(shared.clone())));
        shared
            .eventer
            .send("worker-online", heartbeat_fields(&shared));
        tracing::info!(
            hostname = %shared.hostname,
            queues = ?shared.queues,
            concurrency = self.concurrency,
            prefetch = shared.prefetch,
            "worker started"
        );
        Ok(Worker {
            shared,
            runtime: Some(runtime),
            fetcher,
            loops,
        })
    }
}

impl Worker {
    /// A builder for a worker of `app`.
    pub fn builder(app: &App) -> WorkerBuilder {
        WorkerBuilder {
            app: app.clone(),
            queues: Vec::new(),
            concurrency: std::thread::available_parallelism().map_or(2, usize::from),
            prefetch: None,
            hostname: None,
            events: false,
        }
    }

    /// The worker's node name.
    pub fn hostname(&self) -> &str {
        &self.shared.hostname
    }

    /// The queues it consumes.
    pub fn queues(&self) -> &[String] {
        &self.shared.queues
    }

    /// Its counters now.
    pub fn stats(&self) -> WorkerStats {
        self.shared.stats()
    }

    /// Blocks until a remote `shutdown` command arrives or `timeout` passes; returns
    /// whether one arrived.
    pub fn wait_for_shutdown_request(&self, timeout: Duration) -> bool {
        let (flag, condvar) = &self.shared.shutdown_requested;
        let mut requested = flag.lock();
        let deadline = Instant::now().checked_add(timeout);
        while !*requested {
            match deadline {
                Some(d) => {
                    if condvar.wait_until(&mut requested, d).timed_out() {
                        break;
                    }
                }
                None => condvar.wait(&mut requested),
            }
        }
        *requested
    }

    /// Warm shutdown: takes no more messages, gives back those not started, waits for
    /// running tasks to finish and their results to be stored, then stops.
    pub fn shutdown(mut self) {
        self.stop(Stop::Warm);
    }

    /// Cold shutdown: gives back every message it holds, running or not, and stops now.
    /// Tasks that were running may run again elsewhere (at-least-once).
    pub fn shutdown_cold(mut self) {
        self.stop(Stop::Cold);
    }

    fn stop(&mut self, how: Stop) {
        if tokio::runtime::Handle::try_current().is_ok() {
            // Inside another runtime: block (and drop ours) on a plain thread.
            std::thread::scope(|scope| {
                if scope.spawn(|| self.stop_here(how)).join().is_err() {
                    tracing::error!("stopping the worker panicked");
                }
            });
        } else {
            self.stop_here(how);
        }
    }

    fn stop_here(&mut self, how: Stop) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let shared = self.shared.clone();
        tracing::info!(hostname = %shared.hostname, ?how, "worker shutting down");
        shared.stop.send_replace(how);
        shared.capacity.notify_waiters();
        match how {
            Stop::Cold => shared.abandon_running(),
            Stop::Warm => shared.give_back_queued(),
            Stop::Running => {}
        }
        let loops = std::mem::take(&mut self.loops);
        let fetcher = self.fetcher.take();
        let cold_deadline = (how == Stop::Cold).then(|| Instant::now() + Duration::from_secs(10));
        runtime.block_on(async {
            // The fetch loop settles what it has taken before it stops.
            if let Some(fetcher) = fetcher
                && let Err(e) = fetcher.await
            {
                tracing::error!(error = %e, "the fetch loop failed");
            }
            if let Err(e) = shared.broker.stop_fetching().await {
                tracing::warn!(error = %e, "could not stop fetching; the broker takes back what is held when the worker disconnects");
            }
            loop {
                let drained = shared.drained.notified();
                tokio::pin!(drained);
                drained.as_mut().enable();
                if shared.in_flight.load(Ordering::Acquire) == 0 {
                    break;
                }
                if how == Stop::Cold {
                    shared.abandon_running();
                    if cold_deadline.is_some_and(|d| Instant::now() >= d) {
                        tracing::warn!(
                            held = shared.in_flight.load(Ordering::Acquire),
                            "cold shutdown: messages left unacknowledged are restored after the visibility timeout"
                        );
                        break;
                    }
                }
                if tokio::time::timeout(Duration::from_millis(200), drained)
                    .await
                    .is_err()
                {
                    tracing::debug!(
                        held = shared.in_flight.load(Ordering::Acquire),
                        "waiting for held messages to finish"
                    );
                }
            }
            // No heartbeat may land after the worker is forgotten.
            for handle in loops {
                handle.abort();
                if let Err(e) = handle.await
                    && !e.is_cancelled()
                {
                    tracing::error!(error = %e, "a worker loop failed");
                }
            }
            if shared.eventer.enabled() {
                shared
                    .eventer
                    .send("worker-offline", heartbeat_fields(&shared));
            }
            shared.eventer.flush(Duration::from_secs(5)).await;
            if let Err(e) = shared.broker.forget_worker(&shared.hostname).await {
                tracing::warn!(error = %e, "could not remove the worker's heartbeat");
            }
        });
        shared.pool.close();
        runtime.shutdown_timeout(Duration::from_secs(1));
        tracing::info!(hostname = %shared.hostname, "worker stopped");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop(Stop::Cold);
    }
}

impl Shared {
    fn stop_state(&self) -> Stop {
        *self.stop.borrow()
    }

    pub(crate) fn send(&self, event: Event) {
        if self.events.send(event).is_err() {
            tracing::error!("the completion step has stopped; an outcome is dropped");
        }
    }

    fn stats(&self) -> WorkerStats {
        let c = &self.counters;
        WorkerStats {
            processed: c.processed.load(Ordering::Relaxed),
            succeeded: c.succeeded.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            revoked: c.revoked.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            held: self.in_flight.load(Ordering::Relaxed) as u64,
        }
    }

    /// A delivery is finished with: free its slot.
    pub(crate) fn release(&self, tag: &str) {
        self.held.lock().remove(tag);
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drained.notify_waiters();
        }
        self.capacity.notify_one();
    }

    fn is_revoked(&self, id: &str) -> bool {
        self.revoked.lock().ids.contains(id)
    }

    /// Ends a running (or queued) task now with `outcome`; false when it had finished.
    fn end_task(&self, tag: &str, outcome: impl FnOnce() -> Outcome) -> bool {
        let Some(running) = self.running.lock().remove(tag) else {
            return false;
        };
        let slot = match running {
            Running::Sync { claim, slot, .. } => {
                if claim.cancel_queued() {
                    slot
                } else if claim.abandon() {
                    self.pool.replace_retired();
                    slot
                } else {
                    return false;
                }
            }
            Running::Async {
                abort,
                claimed,
                slot,
                ..
            } => {
                if claimed.swap(true, Ordering::AcqRel) {
                    return false;
                }
                abort.abort();
                slot
            }
        };
        match slot.lock().take() {
            Some((delivery, message)) => {
                done(self, delivery, message, outcome());
                true
            }
            None => false,
        }
    }

    /// Warm shutdown: tasks waiting for a thread go back to their queues now, not once a
    /// running task frees one (which may be long).
    fn give_back_queued(&self) {
        let queued: Vec<(String, Slot)> = self
            .running
            .lock()
            .iter()
            .filter_map(|(tag, running)| match running {
                Running::Sync { claim, slot, .. } if claim.cancel_queued() => {
                    Some((tag.clone(), slot.clone()))
                }
                _ => None,
            })
            .collect();
        for (tag, slot) in queued {
            self.running.lock().remove(&tag);
            if let Some((delivery, message)) = slot.lock().take() {
                done(self, delivery, message, Outcome::GiveBack);
            }
        }
    }

    /// Cold shutdown: every running task is given up on and its message given back.
    fn abandon_running(&self) {
        let tags: Vec<String> = self.running.lock().keys().cloned().collect();
        for tag in tags {
            if self.end_task(&tag, || Outcome::GiveBack) {
                tracing::warn!(tag, "cold shutdown: a running task is given back");
            }
        }
    }
}

async fn backoff(shared: &Shared, attempt: &mut u32) {
    let delay = Duration::from_millis(50u64 << (*attempt).min(5));
    *attempt += 1;
    let mut stop = shared.stop.subscribe();
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        _ = stop.changed() => {}
    }
}

async fn fetch_loop(shared: Arc<Shared>) {
    let mut attempt = 0;
    let mut stop = shared.stop.subscribe();
    // Fetch in batches: wait until a quarter of the prefetch is free (or nothing is held),
    // so a busy worker makes one broker round trip per many messages.
    let low_water = shared.prefetch - (shared.prefetch / 4).max(1);
    loop {
        if shared.stop_state() != Stop::Running {
            return;
        }
        let held = shared.in_flight.load(Ordering::Acquire);
        if held > 0 && held > low_water {
            let notified = shared.capacity.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let held = shared.in_flight.load(Ordering::Acquire);
            if held > 0 && held > low_water {
                tokio::select! {
                    () = notified => {}
                    _ = stop.changed() => {}
                }
            }
            continue;
        }
        let room = shared.prefetch - held;
        // Not cancelled: what it takes is settled below, even during a shutdown.
        match shared.broker.fetch(&shared.queues, room).await {
            Ok(deliveries) if deliveries.is_empty() => {
                attempt = 0;
                tokio::select! {
                    waited = shared.broker.wait_for_messages(&shared.queues, Duration::from_secs(1)) => {
                        if let Err(e) = waited {
                            tracing::warn!(error = %e, "waiting for messages failed; retrying");
                            backoff(&shared, &mut attempt).await;
                        }
                    }
                    _ = stop.changed() => {}
                }
            }
            Ok(deliveries) => {
                attempt = 0;
                shared
                    .in_flight
                    .fetch_add(deliveries.len(), Ordering::AcqRel);
                for delivery in deliveries {
                    accept(&shared, delivery);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "fetching messages failed; retrying");
                backoff(&shared, &mut attempt).await;
            }
        }
    }
}

/// Decides what to do with a fresh delivery.
fn accept(shared: &Arc<Shared>, delivery: Delivery) {
    let message = match TaskMessage::decode(&delivery.payload) {
        Ok(m) => m,
        Err(e) => {
            let reason = e.to_string();
            tracing::error!(queue = %delivery.queue, %reason, "malformed message; moving it to the dead-letter list");
            shared.held.lock().insert(
                delivery.tag.clone(),
                Held {
                    message: None,
                    received: clock::epoch_seconds(),
                    started: None,
                },
            );
            shared.send(Event::Done(Box::new(Done {
                delivery,
                message: None,
                outcome: Outcome::Malformed(reason),
                runtime: Duration::ZERO,
            })));
            return;
        }
    };
    let message = Arc::new(message);
    let stopping = shared.stop_state() != Stop::Running;
    shared.held.lock().insert(
        delivery.tag.clone(),
        Held {
            message: Some(message.clone()),
            received: clock::epoch_seconds(),
            started: None,
        },
    );
    if stopping {
        return done(shared, delivery, message, Outcome::GiveBack);
    }
    if shared.eventer.enabled() {
        shared
            .eventer
            .send("task-received", crate::events::task_fields(&message));
    }
    schedule_or_run(shared, delivery, message);
}

fn done(shared: &Shared, delivery: Delivery, message: Arc<TaskMessage>, outcome: Outcome) {
    shared.send(Event::Done(Box::new(Done {
        delivery,
        message: Some(message),
        outcome,
        runtime: Duration::ZERO,
    })));
}

fn schedule_or_run(shared: &Arc<Shared>, delivery: Delivery, message: Arc<TaskMessage>) {
    if shared.is_revoked(message.id()) {
        tracing::info!(
            task = message.task(),
            id = message.id(),
            "revoked; skipping"
        );
        return done(shared, delivery, message, Outcome::Revoked("revoked"));
    }
    match message.headers.expires() {
        Ok(Some(expires)) if expires <= clock::now() => {
            tracing::info!(
                task = message.task(),
                id = message.id(),
                "expired; revoking"
            );
            return done(shared, delivery, message, Outcome::Revoked("expired"));
        }
        Ok(_) => {}
        Err(e) => {
            return done(
                shared,
                delivery,
                message,
                Outcome::Failure {
                    exception: ExceptionInfo::celery("InvalidTaskError", e.to_string()),
                    error_type: "InvalidTaskError".into(),
                    retry_request: None,
                    dead_letter: Some(e.to_string()),
                },
            );
        }
    }
    let eta = match message.headers.eta() {
        Ok(eta) => eta,
        Err(e) => {
            return done(
                shared,
                delivery,
                message,
                Outcome::Failure {
                    exception: ExceptionInfo::celery("InvalidTaskError", e.to_string()),
                    error_type: "InvalidTaskError".into(),
                    retry_request: None,
                    dead_letter: Some(e.to_string()),
                },
            );
        }
    };
    let wait = eta.map_or(Duration::ZERO, clock::until);
    if wait > HOLD_IN_MEMORY {
        // Far off: into the durable schedule, out of this worker's memory.
        let shared = shared.clone();
        let eta = clock::to_epoch(eta.unwrap_or_else(clock::now));
        tokio::spawn(async move {
            let tag = delivery.tag.clone();
            let mut attempt = 0;
            loop {
                match shared.broker.schedule(delivery.clone(), eta).await {
                    Ok(()) => break,
                    Err(e) if shared.stop_state() == Stop::Running => {
                        tracing::warn!(error = %e, "scheduling a message failed; retrying");
                        backoff(&shared, &mut attempt).await;
                    }
                    Err(e) => {
                        // It stays unacknowledged and is restored after the visibility
                        // timeout; nothing is lost.
                        tracing::warn!(error = %e, "could not schedule a message before shutdown");
                        break;
                    }
                }
            }
            shared.release(&tag);
        });
        return;
    }
    let options = shared.config.options(message.task());
    let rate_wait = options.rate_limit.map_or(Duration::ZERO, |limit| {
        let interval = limit.interval();
        let mut next = shared.next_start.lock();
        let now = Instant::now();
        let at = next
            .get(message.task())
            .copied()
            .filter(|t| *t > now)
            .unwrap_or(now)
            .max(now + wait);
        next.insert(message.task().to_string(), at + interval);
        at - now
    });
    let wait = wait.max(rate_wait);
    if wait.is_zero() {
        return run(shared, delivery, message);
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut stop = shared.stop.subscribe();
        let given_back = tokio::select! {
            () = tokio::time::sleep(wait) => false,
            _ = stop.wait_for(|s| *s != Stop::Running) => true,
        };
        if given_back {
            done(&shared, delivery, message, Outcome::GiveBack);
        } else {
            run(&shared, delivery, message);
        }
    });
}

fn context_for(
    shared: &Shared,
    message: &Arc<TaskMessage>,
    queue: &str,
    soft: Option<f64>,
) -> Arc<TaskContext> {
    Arc::new(TaskContext {
        message: message.clone(),
        hostname: shared.hostname.clone(),
        queue: queue.to_string(),
        soft_deadline: soft
            .filter(|s| s.is_finite() && *s > 0.0)
            .and_then(|s| Instant::now().checked_add(Duration::from_secs_f64(s))),
        retry_request: Mutex::new(None),
    })
}

/// Runs a message's task now.
fn run(shared: &Arc<Shared>, delivery: Delivery, message: Arc<TaskMessage>) {
    if shared.is_revoked(message.id()) {
        tracing::info!(
            task = message.task(),
            id = message.id(),
            "revoked; skipping"
        );
        return done(shared, delivery, message, Outcome::Revoked("revoked"));
    }
    let call = match exec::prepare(&message) {
        Ok(call) => call,
        Err(unrunnable) => {
            tracing::error!(task = message.task(), id = message.id(), reason = %unrunnable.reason, "cannot run; moving it to the dead-letter list");
            return done(
                shared,
                delivery,
                message,
                Outcome::Failure {
                    error_type: unrunnable.exception.exc_type.clone(),
                    exception: unrunnable.exception,
                    retry_request: None,
                    dead_letter: Some(unrunnable.reason),
                },
            );
        }
    };
    let options = shared.config.options(message.task());
    let (hard, soft) = message.headers.timelimit;
    let hard = hard
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .or(options.time_limit);
    let soft = soft.or(options.soft_time_limit.map(|d| d.as_secs_f64()));
    let context = context_for(shared, &message, &delivery.queue, soft);
    let id = message.id().to_string();
    if call.is_async() {
        run_async(shared, delivery, message, call, context, hard, id);
    } else {
        run_sync(shared, delivery, message, call, context, hard, id);
    }
}

/// What happens as a task starts: it is marked started, acknowledged now when it does
/// not ack late, and stored as `STARTED` when it tracks starts.
fn on_start(shared: &Shared, tag: &str, context: &TaskContext) {
    let options = shared.config.options(context.name());
    if !options.acks_late {
        shared.send(Event::Ack(tag.to_string()));
    }
    if options.track_started {
        shared.send(Event::Store(finish::started_record(
            shared,
            &context.message,
        )));
    }
    if let Some(held) = shared.held.lock().get_mut(tag) {
        held.started = Some(clock::epoch_seconds());
    }
    if shared.eventer.enabled() {
        let mut fields = serde_json::Map::new();
        fields.insert("uuid".into(), Value::from(context.message.id()));
        shared.eventer.send("task-started", fields);
    }
}

fn outcome_of(
    result: std::result::Result<Vec<u8>, braid_core::Error>,
    codec: braid_core::Codec,
    context: &TaskContext,
) -> Outcome {
    match result {
        Ok(out) => match exec::result_json(codec, out) {
            Ok(value) => Outcome::Success(value),
            Err(e) => Outcome::Failure {
                exception: ExceptionInfo::builtin(
                    "ValueError",
                    format!("the result is not JSON: {e}"),
                ),
                error_type: "EncodeError".into(),
                retry_request: None,
                dead_letter: None,
            },
        },
        Err(error) => {
            let Failed {
                exception,
                error_type,
                dead_letter,
            } = exec::failed(error);
            Outcome::Failure {
                dead_letter: dead_letter
                    .then(|| format!("{}: {}", exception.exc_type, exception.message())),
                exception,
                error_type,
                retry_request: context.take_retry_request(),
            }
        }
    }
}

fn time_limit_outcome(limit: Duration) -> Outcome {
    Outcome::Failure {
        exception: ExceptionInfo::celery("TimeLimitExceeded", format!("{}", limit.as_secs_f64())),
        error_type: "TimeLimitExceeded".into(),
        retry_request: None,
        dead_letter: None,
    }
}

/// Ends the task at its hard time limit, if it is still running then.
fn watch_time_limit(shared: &Arc<Shared>, tag: &str, limit: Duration) {
    let (shared, tag) = (shared.clone(), tag.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(limit).await;
        if shared.end_task(&tag, || time_limit_outcome(limit)) {
            tracing::error!(tag, ?limit, "hard time limit exceeded; the task was ended");
        }
    });
}

fn run_sync(
    shared: &Arc<Shared>,
    delivery: Delivery,
    message: Arc<TaskMessage>,
    call: Call,
    context: Arc<TaskContext>,
    hard: Option<Duration>,
    id: String,
) {
    let claim = Arc::new(Claim::default());
    let tag = delivery.tag.clone();
    let slot: Slot = Arc::new(Mutex::new(Some((delivery, message))));
    shared.running.lock().insert(
        tag.clone(),
        Running::Sync {
            id: id.clone(),
            claim: claim.clone(),
            slot: slot.clone(),
        },
    );
    let shared2 = shared.clone();
    let job_id = tag.clone();
    let submitted = shared.pool.submit(move || {
        // Shutting down: what has not started goes back to its queue; revoked while
        // it waited: it does not run.
        let instead = if shared2.stop_state() != Stop::Running {
            Some(Outcome::GiveBack)
        } else if shared2.is_revoked(&id) {
            Some(Outcome::Revoked("revoked"))
        } else {
            None
        };
        if let Some(outcome) = instead {
            if claim.cancel_queued() {
                shared2.running.lock().remove(&job_id);
                if let Some((delivery, message)) = slot.lock().take() {
                    done(&shared2, delivery, message, outcome);
                }
            }
            return;
        }
        if !claim.start() {
            return;
        }
        on_start(&shared2, &job_id, &context);
        let started = Instant::now();
        let codec = match &call {
            Call::Plain { codec, .. } => *codec,
            Call::Map { .. } => braid_core::Codec::Json,
        };
        let result = with_sync(context.clone(), || exec::run_blocking(&call));
        let outcome = outcome_of(result, codec, &context);
        if claim.finish() {
            shared2.running.lock().remove(&job_id);
            if let Some((delivery, message)) = slot.lock().take() {
                shared2.send(Event::Done(Box::new(Done {
                    delivery,
                    message: Some(message),
                    outcome,
                    runtime: started.elapsed(),
                })));
            }
        }
    });
    if !submitted {
        tracing::error!("the task pool is closed; the message stays unacknowledged");
        return;
    }
    if let Some(limit) = hard {
        watch_time_limit(shared, &tag, limit);
    }
}

fn run_async(
    shared: &Arc<Shared>,
    delivery: Delivery,
    message: Arc<TaskMessage>,
    call: Call,
    context: Arc<TaskContext>,
    hard: Option<Duration>,
    id: String,
) {
    let Call::Plain { entry, codec, args } = call else {
        // Maps always run on the pool.
        return run_sync(shared, delivery, message, call, context, hard, id);
    };
    let claimed = Arc::new(AtomicBool::new(false));
    let tag = delivery.tag.clone();
    let slot: Slot = Arc::new(Mutex::new(Some((delivery, message))));
    // Registered before the task starts, so a quick task finds its entry to remove.
    let mut running = shared.running.lock();
    let (shared2, claimed2, slot2, id2) =
        (shared.clone(), claimed.clone(), slot.clone(), tag.clone());
    let handle = tokio::spawn(async move {
        on_start(&shared2, &id2, &context);
        let started = Instant::now();
        let result = with_async(context.clone(), entry.call_async(codec, args)).await;
        if claimed2.swap(true, Ordering::AcqRel) {
            return;
        }
        shared2.running.lock().remove(&id2);
        let outcome = outcome_of(result, codec, &context);
        if let Some((delivery, message)) = slot2.lock().take() {
            shared2.send(Event::Done(Box::new(Done {
                delivery,
                message: Some(message),
                outcome,
                runtime: started.elapsed(),
            })));
        }
    });
    running.insert(
        tag.clone(),
        Running::Async {
            id,
            abort: handle.abort_handle(),
            claimed,
            slot,
        },
    );
    drop(running);
    if let Some(limit) = hard {
        watch_time_limit(shared, &tag, limit);
    }
}

/// Ends a running task (revoke with `terminate`): it is stored as REVOKED.
fn terminate(shared: &Arc<Shared>, id: &str) {
    let tags: Vec<String> = shared
        .running
        .lock()
        .iter()
        .filter(|(_, r)| r.id() == id)
        .map(|(tag, _)| tag.clone())
        .collect();
    for tag in tags {
        if shared.end_task(&tag, || Outcome::Revoked("terminated")) {
            tracing::warn!(id, "terminated a running task");
        }
    }
}

async fn maintenance_loop(shared: Arc<Shared>) {
    let vt = visibility_timeout(&shared);
    let refresh_every = (vt / 4).clamp(Duration::from_millis(250), Duration::from_secs(300));
    let restore_every = (vt / 2).clamp(Duration::from_millis(500), Duration::from_secs(30));
    let mut last_refresh = Instant::now();
    let mut last_restore = Instant::now() - restore_every;
    let mut last_beat = Instant::now() - HEARTBEAT;
    let mut revoked_checked = clock::epoch_seconds();
    let mut stop = shared.stop.subscribe();
    loop {
        if shared.stop_state() == Stop::Cold {
            return;
        }
        let mut next_due = None;
        match shared.broker.move_due(&shared.queues).await {
            Ok((moved, next)) => {
                if moved > 0 {
                    tracing::debug!(moved, "scheduled messages are due");
                }
                next_due = next;
            }
            Err(e) => tracing::warn!(error = %e, "moving due messages failed"),
        }
        if last_refresh.elapsed() >= refresh_every {
            last_refresh = Instant::now();
            let tags: Vec<String> = shared.held.lock().keys().cloned().collect();
            if let Err(e) = shared.broker.keep_alive(tags).await {
                tracing::warn!(error = %e, "refreshing held messages failed");
            }
        }
        if last_restore.elapsed() >= restore_every && shared.stop_state() == Stop::Running {
            last_restore = Instant::now();
            match shared.broker.restore_visible().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    restored = n,
                    "restored messages past the visibility timeout"
                ),
                Err(e) => tracing::warn!(error = %e, "restoring unacknowledged messages failed"),
            }
        }
        if last_beat.elapsed() >= HEARTBEAT && shared.stop_state() == Stop::Running {
            last_beat = Instant::now();
            let since = revoked_checked - 5.0;
            revoked_checked = clock::epoch_seconds();
            match shared.broker.revoked_since(since).await {
                Ok(ids) => {
                    for id in ids {
                        let mut revoked = shared.revoked.lock();
                        revoked.add(id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading revoked ids failed"),
            }
            let beat = WorkerBeat {
                hostname: shared.hostname.to_string(),
                at: clock::epoch_seconds(),
                info: stats_json(&shared),
            };
            if let Err(e) = shared.broker.heartbeat(beat).await {
                tracing::warn!(error = %e, "heartbeat failed");
            }
            shared
                .eventer
                .send("worker-heartbeat", heartbeat_fields(&shared));
        }
        let mut sleep = Duration::from_millis(200);
        if let Some(next) = next_due {
            let until = Duration::from_secs_f64((next - clock::epoch_seconds()).max(0.0));
            sleep = sleep.min(until.max(Duration::from_millis(5)));
        }
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            _ = stop.changed() => {}
        }
    }
}

fn visibility_timeout(shared: &Shared) -> Duration {
    match &shared.config.broker_url {
        crate::url::Url::Redis(r) => r.visibility_timeout,
        crate::url::Url::Sqlite(s) => s.visibility_timeout,
        // Memory, and brokers that redeliver by themselves (AMQP).
        _ => crate::url::DEFAULT_VISIBILITY_TIMEOUT,
    }
}

fn stats_json(shared: &Shared) -> Value {
    let s = shared.stats();
    let by_task = shared.counters.by_task.lock().clone();
    json!({
        "hostname": &*shared.hostname,
        "pid": std::process::id(),
        "queues": shared.queues,
        "concurrency": shared.concurrency.load(Ordering::Relaxed),
        "prefetch": shared.prefetch,
        "uptime": shared.started_at.elapsed().as_secs_f64(),
        "total": by_task,
        "processed": s.processed,
        "succeeded": s.succeeded,
        "failed": s.failed,
        "retried": s.retried,
        "revoked": s.revoked,
        "dead_lettered": s.dead_lettered,
        "held": s.held,
        "pool": {
            "implementation": "braid threads",
            "max-concurrency": shared.concurrency.load(Ordering::Relaxed),
            "processes": [std::process::id()],
        },
        "events": {"enabled": shared.eventer.enabled(), "dropped": shared.eventer.dropped()},
        "sw_ident": "braid",
        "sw_ver": env!("CARGO_PKG_VERSION"),
        "broker": {"transport": shared.config.broker_text.split("://").next().unwrap_or("")},
    })
}

/// The fields of Celery's worker events (`worker-online`, `-heartbeat`, `-offline`).
fn heartbeat_fields(shared: &Shared) -> serde_json::Map<String, Value> {
    let mut f = serde_json::Map::new();
    f.insert("freq".into(), Value::from(crate::events::HEARTBEAT_FREQ));
    f.insert("active".into(), Value::from(shared.running.lock().len()));
    f.insert(
        "processed".into(),
        Value::from(shared.counters.processed.load(Ordering::Relaxed)),
    );
    f.insert("loadavg".into(), Value::from(crate::events::loadavg()));
    for (k, v) in crate::events::software() {
        f.insert(k.into(), v);
    }
    f
}

/// Celery's request layout (`Request.info()`) for `active`, `reserved` and `scheduled`
/// replies: the arguments as they are (Celery's default, `safe=False`).
fn request_json(shared: &Shared, m: &TaskMessage, h: &Held) -> Value {
    let args = serde_json::from_str::<Value>(m.args.get())
        .unwrap_or_else(|_| Value::String(m.args.get().to_string()));
    json!({
        "id": m.id(),
        "name": m.task(),
        "args": args,
        "kwargs": m.kwargs,
        "type": m.task(),
        "hostname": &*shared.hostname,
        "time_start": h.started,
        "received": h.received,
        "acknowledged": false,
        "delivery_info": {
            "exchange": m.properties.delivery_info.exchange,
            "routing_key": m.properties.delivery_info.routing_key,
            "priority": m.properties.priority,
            "redelivered": m.redelivered(),
        },
        "worker_pid": std::process::id(),
    })
}

/// Tasks held with an ETA still to come: Celery's `scheduled` reply.
fn scheduled_json(shared: &Shared) -> Value {
    let now = clock::now();
    let held = shared.held.lock();
    let items: Vec<Value> = held
        .values()
        .filter(|h| h.started.is_none())
        .filter_map(|h| {
            let m = h.message.as_ref()?;
            let eta = m.headers.eta().ok().flatten().filter(|eta| *eta > now)?;
            Some(json!({
                "eta": clock::isoformat(eta),
                "priority": m.properties.priority,
                "request": request_json(shared, m, h),
            }))
        })
        .collect();
    Value::Array(items)
}

/// Celery's `active` (started) or `reserved` (prefetched, not started, and not waiting
/// for an ETA: those are `scheduled`) reply.
fn held_json(shared: &Shared, started: bool) -> Value {
    let now = clock::now();
    let held = shared.held.lock();
    let items: Vec<Value> = held
        .values()
        .filter(|h| h.started.is_some() == started)
        .filter_map(|h| {
            let m = h.message.as_ref()?;
            let waiting = m.headers.eta().ok().flatten().is_some_and(|eta| eta > now);
            (started || !waiting).then(|| request_json(shared, m, h))
        })
        .collect();
    Value::Array(items)
}

/// The `n` of `pool_grow` / `pool_shrink` (Celery's default: 1).
fn count_argument(arguments: &Value) -> usize {
    arguments
        .get("n")
        .and_then(Value::as_u64)
        .map_or(1, |n| n as usize)
        .max(1)
}

/// Celery's `rate_limit` command: `{"task_name": ..., "rate_limit": "10/s" | null}`.
fn set_rate_limit(shared: &Shared, arguments: &Value) -> Value {
    let Some(task) = arguments.get("task_name").and_then(Value::as_str) else {
        return json!({"error": "rate_limit needs a task_name"});
    };
    if braid_core::lookup(task).is_err() {
        return json!({"error": "unknown task"});
    }
    let limit = match arguments.get("rate_limit") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() || s.trim() == "0" => None,
        Some(Value::String(s)) => match s.parse::<crate::RateLimit>() {
            Ok(l) if l.count == 0 => None,
            Ok(l) => Some(l),
            Err(e) => return json!({"error": format!("Invalid rate limit string: {e}")}),
        },
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => None,
        Some(Value::Number(n)) => match n.to_string().parse::<crate::RateLimit>() {
            Ok(l) => Some(l),
            Err(e) => return json!({"error": format!("Invalid rate limit string: {e}")}),
        },
        Some(other) => return json!({"error": format!("Invalid rate limit string: {other}")}),
    };
    shared.config.set_rate_limit(task, limit);
    shared.next_start.lock().remove(task);
    tracing::info!(task, ?limit, "rate limit changed");
    if limit.is_some() {
        json!({"ok": "new rate limit set successfully"})
    } else {
        json!({"ok": "rate limit disabled successfully"})
    }
}

async fn control_loop(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Value>) {
    while let Some(command) = commands.recv().await {
        if let Some(destination) = command.get("destination").and_then(Value::as_array)
            && !destination
                .iter()
                .any(|d| d.as_str() == Some(&*shared.hostname))
        {
            continue;
        }
        let method = command.get("method").and_then(Value::as_str).unwrap_or("");
        let arguments = command.get("arguments").cloned().unwrap_or(Value::Null);
        let reply = match method {
            "revoke" => {
                let ids: Vec<String> = match arguments.get("task_id") {
                    Some(Value::String(id)) => vec![id.clone()],
                    Some(Value::Array(ids)) => ids
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                let terminate_running = arguments
                    .get("terminate")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                for id in &ids {
                    shared.revoked.lock().add(id.clone());
                    if terminate_running {
                        terminate(&shared, id);
                    }
                }
                json!({"ok": format!("tasks {} flagged as revoked", ids.join(", "))})
            }
            "ping" => json!({"ok": "pong"}),
            "stats" => stats_json(&shared),
            "scheduled" => scheduled_json(&shared),
            "rate_limit" => set_rate_limit(&shared, &arguments),
            "pool_grow" => {
                let n = count_argument(&arguments);
                match shared.pool.grow(n) {
                    Ok(()) => {
                        shared.concurrency.fetch_add(n, Ordering::AcqRel);
                        shared.capacity.notify_one();
                        json!({"ok": "pool will grow"})
                    }
                    Err(e) => json!({"error": format!("cannot grow the pool: {e}")}),
                }
            }
            "pool_shrink" => {
                let n = count_argument(&arguments);
                let now = shared.concurrency.load(Ordering::Acquire);
                if n >= now {
                    json!({"error": format!("cannot shrink a pool of {now} by {n}: one thread must stay")})
                } else {
                    shared.concurrency.fetch_sub(n, Ordering::AcqRel);
                    shared.pool.shrink(n);
                    json!({"ok": "pool will shrink"})
                }
            }
            "enable_events" => {
                shared.eventer.set_enabled(true);
                json!({"ok": "task events enabled"})
            }
            "disable_events" => {
                shared.eventer.set_enabled(false);
                json!({"ok": "task events disabled"})
            }
            "heartbeat" => {
                shared
                    .eventer
                    .send("worker-heartbeat", heartbeat_fields(&shared));
                json!({"ok": "heartbeat sent"})
            }
            "active" => held_json(&shared, true),
            "reserved" => held_json(&shared, false),
            "revoked" => Value::Array(
                shared
                    .revoked
                    .lock()
                    .order
                    .iter()
                    .map(|id| Value::String(id.clone()))
                    .collect(),
            ),
            "registered" => Value::Array(
                braid_core::tasks()
                    .iter()
                    .map(|t| Value::String(t.name().to_string()))
                    .collect(),
            ),
            "active_queues" => Value::Array(
                shared
                    .queues
                    .iter()
                    .map(|q| json!({"name": q, "exchange": {"name": ""}, "routing_key": q}))
                    .collect(),
            ),
            // The flag is raised after the reply is out, so the reply is not lost.
            "shutdown" => json!({"ok": "shutting down"}),
            other => json!({"error": format!("unknown command {other:?}")}),
        };
        if let (Some(reply_to), Some(ticket)) = (
            command.get("reply_to").filter(|r| !r.is_null()),
            command.get("ticket").and_then(Value::as_str),
        ) {
            let body = json!({ shared.hostname.to_string(): reply });
            if let Err(e) = shared
                .broker
                .reply(reply_to.clone(), ticket.to_string(), body)
                .await
            {
                tracing::warn!(error = %e, method, "could not reply to a remote-control command");
            }
        }
        if method == "shutdown" {
            let (flag, condvar) = &shared.shutdown_requested;
            *flag.lock() = true;
            condvar.notify_all();
        }
    }
}
