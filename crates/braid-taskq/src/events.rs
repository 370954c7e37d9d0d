//! Celery's monitoring events: what workers (and, when asked, clients) publish to the
//! `celeryev` exchange, a receiver that reads them from braid and Python workers alike, and
//! a state tracker that keeps workers and tasks by state, like `celery.events.state`.
//!
//! | Celery | braid-taskq |
//! |---|---|
//! | `celery worker -E` / `worker_send_task_events` | [`WorkerBuilder::events`](crate::WorkerBuilder::events) (and `braid worker -E`) |
//! | `task_send_sent_event` | [`AppBuilder::send_sent_events`](crate::AppBuilder::send_sent_events) |
//! | `app.events.Receiver(conn, handlers={"*": ...})` | [`EventReceiver`] |
//! | `app.events.State()`, `state.event(e)`, `state.tasks_by_type` | [`ClusterState`] |
//!
//! Events are fire-and-forget: a worker hands each one to a bounded buffer that a
//! background task publishes in batches; when the buffer is full (the broker is slow or
//! gone) new events are dropped and counted, never waited for. A receiver that falls
//! behind loses events; it never slows a worker.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::broker::Broker;
use crate::{App, Error, Result, State, clock, runtime};

/// How many events a worker buffers before it drops new ones.
const BUFFER: usize = 65_536;

/// The most events published in one round trip.
const BATCH: usize = 1_000;

/// The heartbeat interval workers announce (`freq`), in seconds: Celery's default.
pub(crate) const HEARTBEAT_FREQ: f64 = 2.0;

/// How many tasks a [`ClusterState`] keeps by default (Celery's `max_tasks_in_memory`).
pub const MAX_TASKS: usize = 10_000;

/// Celery's `utcoffset()`: the local offset to UTC in hours, positive west of Greenwich.
pub(crate) fn utcoffset() -> f64 {
    use chrono::Offset;
    let west = -chrono::Local::now().offset().fix().local_minus_utc();
    f64::from(west) / 3600.0
}

/// The load averages over 1, 5 and 15 minutes, rounded as Celery sends them.
pub(crate) fn loadavg() -> Vec<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|s| s.parse::<f64>().ok())
        .map(|l| (l * 100.0).round() / 100.0)
        .collect();
    out.resize(3, 0.0);
    out
}

/// The operating system's name as Python's `platform.system()` gives it.
fn sw_sys() -> &'static str {
    match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        "windows" => "Windows",
        "freebsd" => "FreeBSD",
        other => other,
    }
}

/// The software fields every worker event carries.
pub(crate) fn software() -> [(&'static str, Value); 3] {
    [
        ("sw_ident", Value::from("braid")),
        ("sw_ver", Value::from(env!("CARGO_PKG_VERSION"))),
        ("sw_sys", Value::from(sw_sys())),
    ]
}

/// An event of `kind` with the fields Celery's `EventDispatcher` adds to every event.
pub(crate) fn stamp(hostname: &str, clock: u64, kind: &str, fields: Map<String, Value>) -> Value {
    let mut event = fields;
    event.insert("hostname".into(), Value::from(hostname));
    event.insert("utcoffset".into(), Value::from(utcoffset()));
    event.insert("pid".into(), Value::from(std::process::id()));
    event.insert("clock".into(), Value::from(clock));
    event.insert("timestamp".into(), Value::from(clock::epoch_seconds()));
    event.insert("type".into(), Value::from(kind));
    Value::Object(event)
}

/// Celery's `task-sent` events for messages a client has just published.
pub(crate) fn sent_events(
    hostname: &str,
    clock: &AtomicU64,
    messages: &[crate::broker::Outgoing],
) -> Vec<(String, Value)> {
    messages
        .iter()
        .filter_map(|m| {
            let message = crate::TaskMessage::decode(&m.payload).ok()?;
            let mut f = task_fields(&message);
            f.insert("queue".into(), Value::from(m.queue.as_str()));
            f.insert("exchange".into(), Value::from(""));
            f.insert("routing_key".into(), Value::from(m.queue.as_str()));
            let n = clock.fetch_add(1, Ordering::Relaxed) + 1;
            Some(("task.sent".to_string(), stamp(hostname, n, "task-sent", f)))
        })
        .collect()
}

/// Publishes events for one node (a worker, or a client's `task-sent`): stamps them as
/// Celery's `EventDispatcher` does and hands them to a background publisher.
pub(crate) struct Eventer {
    hostname: Arc<str>,
    enabled: AtomicBool,
    clock: AtomicU64,
    tx: mpsc::Sender<Item>,
    dropped: AtomicU64,
}

/// What the background publisher takes: an event, or a request to say when every event
/// before it is out.
enum Item {
    Event(String, Value),
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl Eventer {
    /// An eventer whose background publisher runs on the current tokio runtime.
    pub(crate) fn start(broker: Arc<dyn Broker>, hostname: Arc<str>, enabled: bool) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(publish_loop(broker, rx));
        Arc::new(Eventer {
            hostname,
            enabled: AtomicBool::new(enabled),
            clock: AtomicU64::new(0),
            tx,
            dropped: AtomicU64::new(0),
        })
    }

    /// Whether events are sent.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns events on or off (remote `enable_events` / `disable_events`).
    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// How many events were dropped because the buffer was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Builds an event of `kind` with Celery's common fields and `fields`.
    pub(crate) fn stamp(&self, kind: &str, fields: Map<String, Value>) -> Value {
        let clock = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        stamp(&self.hostname, clock, kind, fields)
    }

    /// Sends an event if events are enabled; never waits.
    pub(crate) fn send(&self, kind: &str, fields: Map<String, Value>) {
        if self.enabled() {
            self.send_always(kind, fields);
        }
    }

    /// Sends an event whether or not events are enabled (`worker-offline` of a worker
    /// that had them on is sent by the caller itself); never waits.
    pub(crate) fn send_always(&self, kind: &str, fields: Map<String, Value>) {
        let event = self.stamp(kind, fields);
        if let Err(e) = self.tx.try_send(Item::Event(kind.replace('-', "."), event)) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(dropped = n + 1, error = %e, "the event buffer is full; dropping events");
            }
        }
    }
}

impl Eventer {
    /// Waits (up to `limit`) until every event sent so far is published: before a worker
    /// goes away.
    pub(crate) async fn flush(&self, limit: Duration) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = tokio::time::timeout(limit, self.tx.send(Item::Flush(tx))).await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::warn!("could not flush the worker's events");
            return;
        }
        if tokio::time::timeout(limit, rx).await.is_err() {
            tracing::warn!("the worker's last events were not all published in time");
        }
    }
}

async fn publish_loop(broker: Arc<dyn Broker>, mut rx: mpsc::Receiver<Item>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut failures = 0u64;
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut events = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        for item in batch.drain(..) {
            match item {
                Item::Event(key, body) => events.push((key, body)),
                Item::Flush(done) => flushes.push(done),
            }
        }
        if !events.is_empty()
            && let Err(e) = broker.publish_events(events).await
        {
            failures += 1;
            if failures.is_power_of_two() {
                tracing::warn!(error = %e, failures, "publishing events failed; they are dropped");
            }
        }
        for done in flushes {
            // The flusher may have given up waiting; nothing to tell then.
            if done.send(()).is_err() {
                tracing::debug!("an event flush was no longer awaited");
            }
        }
    }
}

/// Celery's task-message fields for `task-sent` and `task-received`.
pub(crate) fn task_fields(message: &crate::TaskMessage) -> Map<String, Value> {
    let h = &message.headers;
    let mut f = Map::new();
    f.insert("uuid".into(), Value::from(message.id()));
    f.insert("name".into(), Value::from(message.task()));
    f.insert(
        "args".into(),
        Value::from(
            h.argsrepr
                .clone()
                .unwrap_or_else(|| message.args.get().to_string()),
        ),
    );
    f.insert(
        "kwargs".into(),
        Value::from(h.kwargsrepr.clone().unwrap_or_else(|| {
            serde_json::to_string(&message.kwargs).unwrap_or_else(|_| "{}".into())
        })),
    );
    f.insert("root_id".into(), json!(h.root_id));
    f.insert("parent_id".into(), json!(h.parent_id));
    f.insert("retries".into(), Value::from(h.retries));
    f.insert("eta".into(), json!(h.eta));
    f.insert("expires".into(), json!(h.expires));
    f
}

/// One event, as Celery's receiver hands it over: the JSON object with `type`,
/// `hostname`, `timestamp`, `clock`, ... and `local_received` (when it arrived here).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    body: Map<String, Value>,
}

impl Event {
    /// An event from its JSON body; `None` when it is not an object with a `type`.
    pub fn from_json(body: Value) -> Option<Event> {
        match body {
            Value::Object(map) if map.get("type").is_some_and(Value::is_string) => {
                Some(Event { body: map })
            }
            _ => None,
        }
    }

    /// Its type: `worker-heartbeat`, `task-succeeded`, ...
    pub fn kind(&self) -> &str {
        self.body.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// The node that sent it.
    pub fn hostname(&self) -> &str {
        self.body
            .get("hostname")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The task id of a task event.
    pub fn uuid(&self) -> Option<&str> {
        self.body.get("uuid").and_then(Value::as_str)
    }

    /// When it was sent, in seconds since the epoch.
    pub fn timestamp(&self) -> f64 {
        self.f64("timestamp").unwrap_or(0.0)
    }

    /// A field.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.body.get(field)
    }

    /// A numeric field.
    pub fn f64(&self, field: &str) -> Option<f64> {
        self.body.get(field).and_then(Value::as_f64)
    }

    /// A text field.
    pub fn str(&self, field: &str) -> Option<&str> {
        self.body.get(field).and_then(Value::as_str)
    }

    /// The whole body.
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    /// The body as JSON.
    pub fn into_json(self) -> Value {
        Value::Object(self.body)
    }
}

/// Reads the events every worker on the broker publishes, braid's and Python Celery's
/// (`celery worker -E`): Celery's `app.events.Receiver`.
///
/// Only events published after it subscribed arrive. It buffers up to about 10,000
/// events; when it falls further behind, events are lost (never the workers slowed).
///
/// ```no_run
/// use std::time::Duration;
/// use braid_taskq::{App, ClusterState, EventReceiver};
///
/// let app = App::new("redis://127.0.0.1:6379/0", None).unwrap();
/// let mut receiver = EventReceiver::new(&app).unwrap();
/// let mut state = ClusterState::new();
/// while let Some(event) = receiver.recv_timeout(Duration::from_secs(5)).unwrap() {
///     state.event(&event);
///     println!("{} from {}", event.kind(), event.hostname());
/// }
/// ```
#[derive(Debug)]
pub struct EventReceiver {
    rx: mpsc::Receiver<Value>,
    pending: VecDeque<Event>,
}

impl EventReceiver {
    /// Subscribes to `app`'s broker's events.
    ///
    /// # Errors
    /// A broker that cannot be reached or does not carry events.
    pub fn new(app: &App) -> Result<EventReceiver> {
        let app = app.clone();
        let rx = runtime::block_on(async move { app.broker().await?.subscribe_events().await })??;
        Ok(EventReceiver {
            rx,
            pending: VecDeque::new(),
        })
    }

    /// Subscribes from async code.
    ///
    /// # Errors
    /// As for [`EventReceiver::new`].
    pub async fn subscribe(app: &App) -> Result<EventReceiver> {
        let rx = app.broker().await?.subscribe_events().await?;
        Ok(EventReceiver {
            rx,
            pending: VecDeque::new(),
        })
    }

    fn take(&mut self, body: Value) {
        let now = clock::epoch_seconds();
        let mut push = |body: Value| {
            if let Some(mut event) = Event::from_json(body) {
                event.body.insert("local_received".into(), Value::from(now));
                self.pending.push_back(event);
            }
        };
        match body {
            // Celery 4+ batches task events as lists (`task.multi`).
            Value::Array(items) => items.into_iter().for_each(&mut push),
            other => push(other),
        }
    }

    /// The next event; `None` when the subscription has ended.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let body = self.rx.recv().await?;
            self.take(body);
        }
    }

    /// The next event if one is here now.
    pub fn try_recv(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let body = self.rx.try_recv().ok()?;
            self.take(body);
        }
    }

    /// Waits up to `timeout` for the next event, from sync code; `Ok(None)` when none
    /// came.
    ///
    /// # Errors
    /// [`Error::Shutdown`] when the subscription has ended; [`Error::InvalidOption`] when
    /// called from inside a tokio runtime (use [`EventReceiver::recv`] there).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Event>> {
        if let Some(event) = self.try_recv() {
            return Ok(Some(event));
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::InvalidOption(
                "EventReceiver::recv_timeout blocks: inside async code, use recv().await".into(),
            ));
        }
        let rt = runtime::client()?;
        let got = rt.block_on(async { tokio::time::timeout(timeout, self.recv()).await });
        match got {
            Ok(Some(event)) => Ok(Some(event)),
            Ok(None) => Err(Error::Shutdown),
            Err(_) => Ok(None),
        }
    }
}

/// A worker as its events describe it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerInfo {
    /// Its node name.
    pub hostname: String,
    /// Its process id.
    pub pid: Option<u64>,
    /// `braid` or `py-celery`.
    pub sw_ident: Option<String>,
    /// Its software version.
    pub sw_ver: Option<String>,
    /// Its operating system.
    pub sw_sys: Option<String>,
    /// Seconds between heartbeats.
    pub freq: f64,
    /// Tasks running at its last heartbeat.
    pub active: u64,
    /// Tasks it had finished at its last heartbeat.
    pub processed: u64,
    /// Its load averages at its last heartbeat.
    pub loadavg: Vec<f64>,
    /// When its last event was sent.
    pub last_heartbeat: f64,
    /// Whether it said goodbye (`worker-offline`).
    pub offline: bool,
}

impl WorkerInfo {
    /// Whether it is alive at `now` (seconds since the epoch): it has not gone offline and
    /// its last heartbeat is at most two intervals old, as Celery judges.
    pub fn alive_at(&self, now: f64) -> bool {
        !self.offline && now <= self.last_heartbeat + self.freq * 2.0 + 1.0
    }

    /// Whether it is alive now.
    pub fn alive(&self) -> bool {
        self.alive_at(clock::epoch_seconds())
    }
}

/// A task as its events describe it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskInfo {
    /// Its id.
    pub uuid: String,
    /// Its name (from `task-sent` or `task-received`).
    pub name: Option<String>,
    /// Its state after the events seen so far.
    pub state: State,
    /// The worker that received it.
    pub worker: Option<String>,
    /// Its positional arguments, as printed by the sender.
    pub args: Option<String>,
    /// Its keyword arguments, as printed by the sender.
    pub kwargs: Option<String>,
    /// Its result, as printed by the worker.
    pub result: Option<String>,
    /// The exception it failed (or was retried) with.
    pub exception: Option<String>,
    /// The traceback of that exception.
    pub traceback: Option<String>,
    /// How many times it has been retried.
    pub retries: u64,
    /// Its ETA, when it has one.
    pub eta: Option<String>,
    /// When it expires, when it does.
    pub expires: Option<String>,
    /// How long it ran, in seconds.
    pub runtime: Option<f64>,
    /// When it was sent.
    pub sent: Option<f64>,
    /// When a worker received it.
    pub received: Option<f64>,
    /// When it started.
    pub started: Option<f64>,
    /// When it succeeded.
    pub succeeded: Option<f64>,
    /// When it failed.
    pub failed: Option<f64>,
    /// When it was retried.
    pub retried: Option<f64>,
    /// When it was revoked.
    pub revoked: Option<f64>,
    /// The time of the last event about it.
    pub timestamp: f64,
    /// The first task of its workflow.
    pub root_id: Option<String>,
    /// The task that sent it.
    pub parent_id: Option<String>,
}

impl TaskInfo {
    fn new(uuid: &str) -> TaskInfo {
        TaskInfo {
            uuid: uuid.to_string(),
            name: None,
            state: State::Pending,
            worker: None,
            args: None,
            kwargs: None,
            result: None,
            exception: None,
            traceback: None,
            retries: 0,
            eta: None,
            expires: None,
            runtime: None,
            sent: None,
            received: None,
            started: None,
            succeeded: None,
            failed: None,
            retried: None,
            revoked: None,
            timestamp: 0.0,
            root_id: None,
            parent_id: None,
        }
    }
}

fn text(event: &Event, field: &str) -> Option<String> {
    match event.get(field)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Workers and tasks as the events seen so far describe them: Celery's
/// `celery.events.state.State`. Feed it every event with [`ClusterState::event`].
///
/// Events may arrive out of order (several workers, several connections): a task that
/// has finished (success, failure, revoked) keeps that state when an older event about it
/// arrives late. It keeps the newest [`MAX_TASKS`] tasks (or as many as
/// [`ClusterState::with_max_tasks`] says).
#[derive(Debug, Clone)]
pub struct ClusterState {
    workers: HashMap<String, WorkerInfo>,
    tasks: HashMap<String, TaskInfo>,
    order: VecDeque<String>,
    max_tasks: usize,
    event_count: u64,
    task_count: u64,
}

impl Default for ClusterState {
    fn default() -> Self {
        ClusterState::new()
    }
}

impl ClusterState {
    /// An empty state keeping up to [`MAX_TASKS`] tasks.
    pub fn new() -> ClusterState {
        ClusterState::with_max_tasks(MAX_TASKS)
    }

    /// An empty state keeping up to `max` tasks (the oldest are forgotten first).
    pub fn with_max_tasks(max: usize) -> ClusterState {
        ClusterState {
            workers: HashMap::new(),
            tasks: HashMap::new(),
            order: VecDeque::new(),
            max_tasks: max.max(1),
            event_count: 0,
            task_count: 0,
        }
    }

    /// Takes one event into account.
    pub fn event(&mut self, event: &Event) {
        self.event_count += 1;
        let kind = event.kind();
        if let Some(rest) = kind.strip_prefix("worker-") {
            self.worker_event(rest, event);
        } else if let Some(rest) = kind.strip_prefix("task-") {
            // Task events also tell that their worker is alive.
            if rest != "sent" && !event.hostname().is_empty() {
                let worker = self.worker_entry(event.hostname());
                worker.last_heartbeat = worker.last_heartbeat.max(event.timestamp());
                worker.offline = false;
            }
            self.task_event(rest, event);
        }
    }

    fn worker_entry(&mut self, hostname: &str) -> &mut WorkerInfo {
        self.workers
            .entry(hostname.to_string())
            .or_insert_with(|| WorkerInfo {
                hostname: hostname.to_string(),
                pid: None,
                sw_ident: None,
                sw_ver: None,
                sw_sys: None,
                freq: HEARTBEAT_FREQ,
                active: 0,
                processed: 0,
                loadavg: Vec::new(),
                last_heartbeat: 0.0,
                offline: false,
            })
    }

    fn worker_event(&mut self, kind: &str, event: &Event) {
        let w = self.worker_entry(event.hostname());
        let ts = event.timestamp();
        if ts < w.last_heartbeat && kind != "offline" {
            return;
        }
        w.last_heartbeat = w.last_heartbeat.max(ts);
        w.pid = event.get("pid").and_then(Value::as_u64).or(w.pid);
        if let Some(freq) = event.f64("freq").filter(|f| *f > 0.0) {
            w.freq = freq;
        }
        for (field, slot) in [
            ("sw_ident", &mut w.sw_ident),
            ("sw_ver", &mut w.sw_ver),
            ("sw_sys", &mut w.sw_sys),
        ] {
            if let Some(v) = event.str(field) {
                *slot = Some(v.to_string());
            }
        }
        if let Some(n) = event.get("active").and_then(Value::as_u64) {
            w.active = n;
        }
        if let Some(n) = event.get("processed").and_then(Value::as_u64) {
            w.processed = n;
        }
        if let Some(Value::Array(load)) = event.get("loadavg") {
            w.loadavg = load.iter().filter_map(Value::as_f64).collect();
        }
        w.offline = kind == "offline";
    }

    fn task_event(&mut self, kind: &str, event: &Event) {
        let Some(uuid) = event.uuid() else {
            return;
        };
        if !self.tasks.contains_key(uuid) {
            self.task_count += 1;
            self.tasks.insert(uuid.to_string(), TaskInfo::new(uuid));
            self.order.push_back(uuid.to_string());
            while self.order.len() > self.max_tasks {
                if let Some(old) = self.order.pop_front() {
                    self.tasks.remove(&old);
                }
            }
        }
        let Some(task) = self.tasks.get_mut(uuid) else {
            return;
        };
        let ts = event.timestamp();
        let state = match kind {
            "sent" => {
                task.sent = Some(ts);
                State::Pending
            }
            "received" => {
                task.received = Some(ts);
                task.worker = Some(event.hostname().to_string());
                State::Received
            }
            "started" => {
                task.started = Some(ts);
                task.worker = Some(event.hostname().to_string());
                State::Started
            }
            "succeeded" => {
                task.succeeded = Some(ts);
                task.result = text(event, "result");
                task.runtime = event.f64("runtime");
                State::Success
            }
            "failed" => {
                task.failed = Some(ts);
                task.exception = text(event, "exception");
                task.traceback = text(event, "traceback");
                State::Failure
            }
            "retried" => {
                task.retried = Some(ts);
                task.exception = text(event, "exception");
                task.traceback = text(event, "traceback");
                State::Retry
            }
            "revoked" => {
                task.revoked = Some(ts);
                State::Revoked
            }
            _ => return,
        };
        for (field, slot) in [
            ("name", &mut task.name),
            ("args", &mut task.args),
            ("kwargs", &mut task.kwargs),
            ("eta", &mut task.eta),
            ("expires", &mut task.expires),
            ("root_id", &mut task.root_id),
            ("parent_id", &mut task.parent_id),
        ] {
            if let Some(v) = text(event, field) {
                *slot = Some(v);
            }
        }
        if let Some(r) = event.get("retries").and_then(Value::as_u64) {
            task.retries = task.retries.max(r);
        }
        // A finished task keeps its state against older news; a retried one runs again.
        if ts >= task.timestamp || (state.is_ready() && !task.state.is_ready()) {
            task.state = state;
        }
        task.timestamp = task.timestamp.max(ts);
    }

    /// Every worker seen, by name.
    pub fn workers(&self) -> &HashMap<String, WorkerInfo> {
        &self.workers
    }

    /// One worker.
    pub fn worker(&self, hostname: &str) -> Option<&WorkerInfo> {
        self.workers.get(hostname)
    }

    /// Every task kept, by id.
    pub fn tasks(&self) -> &HashMap<String, TaskInfo> {
        &self.tasks
    }

    /// One task.
    pub fn task(&self, uuid: &str) -> Option<&TaskInfo> {
        self.tasks.get(uuid)
    }

    /// The tasks in `state`, newest first.
    pub fn tasks_in(&self, state: &State) -> Vec<&TaskInfo> {
        let mut out: Vec<&TaskInfo> = self.tasks.values().filter(|t| &t.state == state).collect();
        out.sort_by(|a, b| b.timestamp.total_cmp(&a.timestamp));
        out
    }

    /// How many tasks are in each state.
    pub fn counts(&self) -> HashMap<String, u64> {
        let mut counts = HashMap::new();
        for task in self.tasks.values() {
            *counts.entry(task.state.as_str().to_string()).or_insert(0) += 1;
        }
        counts
    }

    /// The tasks whose id or name contains `needle` (case-insensitive), newest first,
    /// at most `limit`.
    pub fn search(&self, needle: &str, limit: usize) -> Vec<&TaskInfo> {
        let needle = needle.to_lowercase();
        let mut out: Vec<&TaskInfo> = self
            .tasks
            .values()
            .filter(|t| {
                needle.is_empty()
                    || t.uuid.to_lowercase().contains(&needle)
                    || t.name
                        .as_deref()
                        .is_some_and(|n| n.to_lowercase().contains(&needle))
            })
            .collect();
        out.sort_by(|a, b| b.timestamp.total_cmp(&a.timestamp));
        out.truncate(limit);
        out
    }

    /// How many events it has taken.
    pub fn event_count(&self) -> u64 {
        self.event_count
    }

    /// How many distinct tasks it has seen (also those forgotten since).
    pub fn task_count(&self) -> u64 {
        self.task_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(body: Value) -> Event {
        Event::from_json(body).unwrap()
    }

    #[test]
    fn tasks_move_through_states_and_keep_finished_ones() {
        let mut s = ClusterState::new();
        s.event(&ev(
            json!({"type": "task-received", "uuid": "a", "name": "t.add", "args": "[1, 2]", "hostname": "w1", "timestamp": 10.0}),
        ));
        assert_eq!(s.task("a").unwrap().state, State::Received);
        s.event(&ev(
            json!({"type": "task-succeeded", "uuid": "a", "result": "3", "runtime": 0.5, "hostname": "w1", "timestamp": 12.0}),
        ));
        // A late started event does not undo the success.
        s.event(&ev(
            json!({"type": "task-started", "uuid": "a", "hostname": "w1", "timestamp": 11.0}),
        ));
        let a = s.task("a").unwrap();
        assert_eq!(a.state, State::Success);
        assert_eq!(a.name.as_deref(), Some("t.add"));
        assert_eq!(a.result.as_deref(), Some("3"));
        assert_eq!(a.started, Some(11.0));
        assert_eq!(s.counts()["SUCCESS"], 1);
        assert_eq!(s.search("ADD", 10).len(), 1);
        assert!(s.worker("w1").unwrap().alive_at(12.0));
    }

    #[test]
    fn retried_tasks_run_again_and_workers_go_offline() {
        let mut s = ClusterState::new();
        for (kind, ts) in [
            ("task-received", 1.0),
            ("task-started", 2.0),
            ("task-retried", 3.0),
            ("task-received", 4.0),
            ("task-started", 5.0),
            ("task-failed", 6.0),
        ] {
            s.event(&ev(
                json!({"type": kind, "uuid": "b", "hostname": "w", "timestamp": ts, "exception": "ValueError('x')"}),
            ));
        }
        assert_eq!(s.task("b").unwrap().state, State::Failure);
        s.event(&ev(
            json!({"type": "worker-heartbeat", "hostname": "w", "timestamp": 7.0, "freq": 2.0, "active": 3, "processed": 9, "loadavg": [0.5, 0.2, 0.1]}),
        ));
        let w = s.worker("w").unwrap();
        assert_eq!((w.active, w.processed), (3, 9));
        assert!(w.alive_at(8.0));
        assert!(!w.alive_at(100.0));
        s.event(&ev(
            json!({"type": "worker-offline", "hostname": "w", "timestamp": 8.0}),
        ));
        assert!(!s.worker("w").unwrap().alive_at(8.0));
    }

    #[test]
    fn old_tasks_are_forgotten() {
        let mut s = ClusterState::with_max_tasks(3);
        for i in 0..5 {
            s.event(&ev(
                json!({"type": "task-received", "uuid": format!("t{i}"), "hostname": "w", "timestamp": i}),
            ));
        }
        assert_eq!(s.tasks().len(), 3);
        assert!(s.task("t0").is_none());
        assert_eq!(s.task_count(), 5);
        assert!(Event::from_json(json!({"no": "type"})).is_none());
    }
}
