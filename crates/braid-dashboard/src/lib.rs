//! A live web dashboard for braid's task queue, as Flower is for Celery: the workers with
//! their state and load, tasks by state with search by id and name, a live throughput
//! chart, each task's detail (arguments, result, traceback, retries, times), and revoke and
//! retry buttons. It reads Celery's events, turns them on in workers started without them
//! (`enable_events`, as Flower does), and asks the workers for their stats now and then;
//! the page updates itself through server-sent events. Retry reads the arguments of tasks
//! sent by Python clients (Python reprs) as well as braid's (JSON).
//!
//! | Flower | braid-dashboard |
//! |---|---|
//! | `celery -A proj flower --port=5555` | `braid dashboard --broker URL --port 5555`, [`run`] |
//! | embedded in your own server | [`Dashboard::router`] (an axum `Router`) |
//!
//! Routes: `/` (the page), `/api/snapshot`, `/api/tasks?search=&state=&limit=`,
//! `/api/task/{id}`, `/api/events` (server-sent events, one snapshot per change, at most
//! twice a second), `POST /api/task/{id}/revoke?terminate=true`, `POST /api/task/{id}/retry`.
//!
//! ```no_run
//! use braid_taskq::App;
//!
//! let app = App::new("redis://127.0.0.1:6379/0", Some("redis://127.0.0.1:6379/0")).unwrap();
//! let running = braid_dashboard::spawn(&app, "127.0.0.1:5555".parse().unwrap()).unwrap();
//! println!("open http://{}/", running.addr());
//! # running.shutdown();
//! ```
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use braid_taskq::{App, CallOptions, ClusterState, EventReceiver, State, TaskInfo};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

mod pyrepr;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");

/// How many seconds of throughput the chart shows.
const THROUGHPUT_SECONDS: u64 = 60;

/// How often the workers are asked for their stats.
const INSPECT_EVERY: Duration = Duration::from_secs(5);

/// How often a changed state is pushed to the pages.
const PUSH_EVERY: Duration = Duration::from_millis(500);

/// What can go wrong starting a dashboard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The broker could not be reached or carries no events.
    #[error(transparent)]
    Queue(#[from] braid_taskq::Error),
    /// The server's runtime could not start or the server failed.
    #[error("dashboard server: {0}")]
    Server(String),
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

struct Inner {
    app: App,
    state: Mutex<ClusterState>,
    /// Tasks finished per second: second -> (succeeded, failed).
    throughput: Mutex<BTreeMap<u64, (u64, u64)>>,
    /// The last `stats` reply of each worker, and when it came.
    inspected: Mutex<HashMap<String, (f64, Value)>>,
    version: AtomicU64,
    updates: broadcast::Sender<Arc<str>>,
    /// Set when the server stops: open event streams end, so a graceful stop completes.
    closing: tokio::sync::watch::Sender<bool>,
}

/// The dashboard's state and its web routes. Cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("broker", &self.inner.app.broker_url())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct TaskQuery {
    #[serde(default)]
    search: String,
    #[serde(default)]
    state: String,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct RevokeQuery {
    #[serde(default)]
    terminate: bool,
}

fn task_row(t: &TaskInfo) -> Value {
    json!({
        "uuid": t.uuid,
        "name": t.name,
        "state": t.state,
        "worker": t.worker,
        "args": t.args,
        "retries": t.retries,
        "received": t.received,
        "started": t.started,
        "runtime": t.runtime,
        "timestamp": t.timestamp,
    })
}

impl Dashboard {
    /// A dashboard of `app`'s broker; it shows nothing until [`Dashboard::follow`] runs.
    pub fn new(app: &App) -> Dashboard {
        let (updates, _) = broadcast::channel(16);
        Dashboard {
            inner: Arc::new(Inner {
                app: app.clone(),
                state: Mutex::new(ClusterState::new()),
                throughput: Mutex::new(BTreeMap::new()),
                inspected: Mutex::new(HashMap::new()),
                version: AtomicU64::new(0),
                updates,
                closing: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    /// Takes one event into account (what [`Dashboard::follow`] does with each).
    pub fn event(&self, event: &braid_taskq::Event) {
        self.inner.state.lock().event(event);
        if matches!(event.kind(), "task-succeeded" | "task-failed") {
            let second = event.f64("local_received").unwrap_or_else(now).max(0.0) as u64;
            let mut t = self.inner.throughput.lock();
            let slot = t.entry(second).or_default();
            if event.kind() == "task-succeeded" {
                slot.0 += 1;
            } else {
                slot.1 += 1;
            }
            while t.len() as u64 > THROUGHPUT_SECONDS * 2 {
                t.pop_first();
            }
        }
        self.inner.version.fetch_add(1, Ordering::Release);
    }

    /// Feeds the dashboard from `receiver` until it ends, while asking the workers for
    /// their stats every few seconds and pushing changes to open pages. Like Flower, it
    /// sends `enable_events` to the workers on start and every few seconds, so workers
    /// started without events (Celery's without `-E`) show their tasks too.
    pub async fn follow(&self, mut receiver: EventReceiver) {
        let inspector = tokio::spawn(self.clone().inspect_loop());
        let pusher = tokio::spawn(self.clone().push_loop());
        while let Some(event) = receiver.recv().await {
            self.event(&event);
        }
        inspector.abort();
        pusher.abort();
        tracing::warn!("dashboard: the event subscription ended");
    }

    async fn inspect_loop(self) {
        loop {
            let app = self.inner.app.clone();
            let replies = tokio::task::spawn_blocking(move || {
                // As Flower does: workers started without events (`-E`) turn them on, and
                // so do workers that started since the last round.
                if let Err(e) =
                    app.control_to("enable_events", json!({}), None, Duration::ZERO, None)
                {
                    tracing::warn!(error = %e, "dashboard: could not turn the workers' events on");
                }
                app.control("stats", json!({}), Duration::from_secs(1), None)
            })
            .await;
            match replies {
                Ok(Ok(replies)) => {
                    let at = now();
                    let mut inspected = self.inner.inspected.lock();
                    for reply in replies {
                        if let Value::Object(map) = reply {
                            for (worker, stats) in map {
                                inspected.insert(worker, (at, stats));
                            }
                        }
                    }
                    inspected.retain(|_, (seen, _)| at - *seen < 60.0);
                    drop(inspected);
                    self.inner.version.fetch_add(1, Ordering::Release);
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "dashboard: asking the workers failed"),
                Err(e) => tracing::warn!(error = %e, "dashboard: the stats call panicked"),
            }
            tokio::time::sleep(INSPECT_EVERY).await;
        }
    }

    async fn push_loop(self) {
        let mut seen = u64::MAX;
        loop {
            let version = self.inner.version.load(Ordering::Acquire);
            if version != seen && self.inner.updates.receiver_count() > 0 {
                seen = version;
                let text: Arc<str> = self.snapshot().to_string().into();
                // No page open between the check and now: nothing to tell.
                if self.inner.updates.send(text).is_err() {
                    seen = u64::MAX;
                }
            }
            tokio::time::sleep(PUSH_EVERY).await;
        }
    }

    /// Everything the page shows: task counts by state, workers, the newest tasks, and
    /// tasks finished per second over the last minute.
    pub fn snapshot(&self) -> Value {
        let t = now();
        let state = self.inner.state.lock();
        let mut workers: BTreeMap<String, Value> = BTreeMap::new();
        for w in state.workers().values() {
            workers.insert(
                w.hostname.clone(),
                json!({
                    "hostname": w.hostname,
                    "alive": w.alive_at(t),
                    "active": w.active,
                    "processed": w.processed,
                    "loadavg": w.loadavg,
                    "sw_ident": w.sw_ident,
                    "sw_ver": w.sw_ver,
                    "last_heartbeat": w.last_heartbeat,
                    "events": true,
                }),
            );
        }
        for (name, (seen, stats)) in self.inner.inspected.lock().iter() {
            let entry = workers.entry(name.clone()).or_insert_with(|| {
                json!({
                    "hostname": name, "alive": t - seen < 15.0, "active": null,
                    "processed": null, "loadavg": [], "events": false,
                    "sw_ident": stats.get("sw_ident"),
                })
            });
            entry["concurrency"] = stats
                .pointer("/pool/max-concurrency")
                .cloned()
                .unwrap_or(Value::Null);
            if entry["processed"].is_null() {
                entry["processed"] = stats
                    .get("processed")
                    .cloned()
                    .or_else(|| {
                        stats
                            .get("total")
                            .and_then(Value::as_object)
                            .map(|m| Value::from(m.values().filter_map(Value::as_u64).sum::<u64>()))
                    })
                    .unwrap_or(Value::Null);
            }
        }
        let recent: Vec<Value> = state.search("", 50).into_iter().map(task_row).collect();
        let now_s = t as u64;
        let throughput = self.inner.throughput.lock();
        let series: Vec<Value> = (now_s.saturating_sub(THROUGHPUT_SECONDS)..now_s)
            .map(|s| {
                let (ok, failed) = throughput.get(&s).copied().unwrap_or_default();
                json!([s, ok, failed])
            })
            .collect();
        json!({
            "now": t,
            "broker": self.inner.app.broker_url(),
            "counts": state.counts(),
            "seen": state.task_count(),
            "events": state.event_count(),
            "workers": workers.into_values().collect::<Vec<_>>(),
            "tasks": recent,
            "throughput": series,
        })
    }

    /// The tasks whose id or name contains `search`, in `state` (any when empty), newest
    /// first.
    pub fn tasks(&self, search: &str, state: &str, limit: usize) -> Vec<Value> {
        let st = self.inner.state.lock();
        let wanted = (!state.is_empty()).then(|| State::from_name(&state.to_uppercase()));
        st.search(search, usize::MAX)
            .into_iter()
            .filter(|t| wanted.as_ref().is_none_or(|w| &t.state == w))
            .take(limit)
            .map(task_row)
            .collect()
    }

    /// One task's detail.
    pub fn task(&self, id: &str) -> Option<TaskInfo> {
        self.inner.state.lock().task(id).cloned()
    }

    /// The web routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(index))
            .route("/app.js", get(script))
            .route("/api/snapshot", get(snapshot))
            .route("/api/tasks", get(tasks))
            .route("/api/task/{id}", get(task))
            .route("/api/task/{id}/revoke", post(revoke))
            .route("/api/task/{id}/retry", post(retry))
            .route("/api/events", get(events))
            .with_state(self.clone())
    }
}

async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

async fn snapshot(AxState(d): AxState<Dashboard>) -> Json<Value> {
    Json(d.snapshot())
}

async fn tasks(AxState(d): AxState<Dashboard>, Query(q): Query<TaskQuery>) -> Json<Value> {
    Json(Value::Array(d.tasks(
        &q.search,
        &q.state,
        q.limit.unwrap_or(100).min(1000),
    )))
}

async fn task(AxState(d): AxState<Dashboard>, Path(id): Path<String>) -> Response {
    match d.task(&id) {
        Some(t) => Json(t).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no task {id} seen")})),
        )
            .into_response(),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

async fn revoke(
    AxState(d): AxState<Dashboard>,
    Path(id): Path<String>,
    Query(q): Query<RevokeQuery>,
) -> Response {
    let app = d.inner.app.clone();
    let task_id = id.clone();
    let done =
        tokio::task::spawn_blocking(move || app.revoke(&[task_id.as_str()], q.terminate)).await;
    match done {
        Ok(Ok(())) => Json(json!({"ok": format!("task {id} revoked")})).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_GATEWAY, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Sends the task again with the same name and arguments. The event's arguments are
/// JSON (braid's clients) or Python's `repr()` (Celery's clients), read by [`pyrepr`];
/// arguments that cannot be read (cut short, or no JSON form) are a 422 saying why.
async fn retry(AxState(d): AxState<Dashboard>, Path(id): Path<String>) -> Response {
    let Some(t) = d.task(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no task {id} seen"));
    };
    let Some(name) = t.name.clone() else {
        return error(StatusCode::CONFLICT, format!("task {id} has no known name"));
    };
    let args: Vec<Value> = match t.args.as_deref().map(pyrepr::parse) {
        None => Vec::new(),
        Some(Ok(Value::Array(a))) => a,
        Some(Ok(other)) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the arguments of {id} are {other}, not a list; it cannot be sent again"),
            );
        }
        Some(Err(e)) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the arguments of {id} cannot be sent again: {e}"),
            );
        }
    };
    let mut options = CallOptions::new();
    match t.kwargs.as_deref().map(pyrepr::parse) {
        None | Some(Ok(Value::Null)) => {}
        Some(Ok(Value::Object(map))) => {
            for (k, v) in map {
                options = options.kwarg(&k, v);
            }
        }
        Some(Ok(other)) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the keyword arguments of {id} are {other}, not a dict"),
            );
        }
        Some(Err(e)) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the keyword arguments of {id} cannot be sent again: {e}"),
            );
        }
    }
    let app = d.inner.app.clone();
    match tokio::task::spawn_blocking(move || app.send_task(&name, args, options)).await {
        Ok(Ok(result)) => Json(json!({"ok": "sent again", "id": result.id()})).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_GATEWAY, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn events(
    AxState(d): AxState<Dashboard>,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let rx = d.inner.updates.subscribe();
    let closing = d.inner.closing.subscribe();
    let first: Arc<str> = d.snapshot().to_string().into();
    let stream = futures_util::stream::unfold(
        (Some(first), rx, closing),
        |(first, mut rx, mut closing)| async move {
            if let Some(text) = first {
                return Some((Ok(SseEvent::default().data(&*text)), (None, rx, closing)));
            }
            loop {
                let got = tokio::select! {
                    got = rx.recv() => Some(got),
                    // The server stops (or is gone): end the stream.
                    _ = closing.wait_for(|c| *c) => None,
                };
                match got {
                    Some(Ok(text)) => {
                        return Some((Ok(SseEvent::default().data(&*text)), (None, rx, closing)));
                    }
                    // Fell behind: the next snapshot has everything anyway.
                    Some(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                    Some(Err(broadcast::error::RecvError::Closed)) | None => return None,
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A dashboard serving on its own threads; stops when [`RunningDashboard::shutdown`] is
/// called or it is dropped.
#[derive(Debug)]
pub struct RunningDashboard {
    addr: SocketAddr,
    dashboard: Dashboard,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), DashboardError>>>,
}

impl RunningDashboard {
    /// The address it listens on (useful after binding port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The dashboard's state.
    pub fn dashboard(&self) -> &Dashboard {
        &self.dashboard
    }

    /// Blocks until the server stops by itself (an error); returns that error.
    ///
    /// # Errors
    /// What stopped the server.
    pub fn wait(mut self) -> Result<(), DashboardError> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| DashboardError::Server("the server thread panicked".into()))?,
            None => Ok(()),
        }
    }

    /// Stops serving and waits for the server to end.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The server may have ended already; then there is nobody to tell.
            if stop.send(()).is_err() {
                tracing::debug!("dashboard: the server had already stopped");
            }
        }
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "dashboard: the server failed"),
                Err(_) => tracing::error!("dashboard: the server thread panicked"),
            }
        }
    }
}

impl Drop for RunningDashboard {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Subscribes to `app`'s events, binds `addr` and serves the dashboard on threads of its
/// own. Events published from now on are shown.
///
/// # Errors
/// A broker without events, an address that cannot be bound, threads that cannot start.
pub fn spawn(app: &App, addr: SocketAddr) -> Result<RunningDashboard, DashboardError> {
    // Subscribed on the task queue's own client runtime, so the subscription does not
    // depend on the server's runtime.
    let receiver = EventReceiver::new(app)?;
    let dashboard = Dashboard::new(app);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("braid-dashboard")
        .enable_all()
        .build()
        .map_err(|e| DashboardError::Server(e.to_string()))?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|e| DashboardError::Bind {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    let bound = listener
        .local_addr()
        .map_err(|e| DashboardError::Server(e.to_string()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let d = dashboard.clone();
    let thread = std::thread::Builder::new()
        .name("braid-dashboard-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let follower = tokio::spawn({
                    let d = d.clone();
                    async move { d.follow(receiver).await }
                });
                let closing = d.clone();
                let served = axum::serve(listener, d.router())
                    .with_graceful_shutdown(async move {
                        if stopped.await.is_err() {
                            tracing::debug!("dashboard: its handle was dropped; stopping");
                        }
                        closing.inner.closing.send_replace(true);
                    })
                    .await;
                follower.abort();
                served.map_err(|e| DashboardError::Server(e.to_string()))
            })
        })
        .map_err(|e| DashboardError::Server(e.to_string()))?;
    tracing::info!(addr = %bound, "dashboard: serving");
    Ok(RunningDashboard {
        addr: bound,
        dashboard,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Serves the dashboard of the broker at `broker_url` on `addr` until the server fails:
/// what `braid dashboard` runs.
///
/// # Errors
/// As for [`spawn`].
pub fn run(
    broker_url: &str,
    backend_url: Option<&str>,
    addr: SocketAddr,
) -> Result<(), DashboardError> {
    let app = App::new(broker_url, backend_url)?;
    spawn(&app, addr)?.wait()
}
