//! The app: a broker, a result backend, task options, and the calls that send tasks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::OnceCell;

use braid_core::{Codec, TaskRef};

use crate::backend::{self, Backend, DEFAULT_RESULT_EXPIRES};
use crate::broker::{self, Broker, WorkerBeat};
use crate::send::{Draft, Parent, Plan, plan};
use crate::url::Url;
use crate::{
    AsyncResult, CallOptions, Error, GroupResult, Result, Serializer, Signature, TaskOptions,
    runtime,
};

/// What every part of an app (clients, workers) reads: URLs, defaults and task options.
pub(crate) struct AppConfig {
    pub broker_text: String,
    pub broker_url: Url,
    pub backend_text: Option<String>,
    pub backend_url: Option<Url>,
    pub default_queue: String,
    pub serializer: Serializer,
    pub result_expires: Duration,
    pub origin: String,
    /// Whether clients publish Celery's `task-sent` events.
    pub send_sent_events: bool,
    /// The Lamport clock of this app's `task-sent` events.
    pub sent_clock: std::sync::atomic::AtomicU64,
    tasks: RwLock<HashMap<String, Arc<TaskOptions>>>,
    defaults: Arc<TaskOptions>,
}

impl AppConfig {
    /// Changes the rate limit of `task` (remote `rate_limit`), keeping its other options.
    pub(crate) fn set_rate_limit(&self, task: &str, limit: Option<crate::RateLimit>) {
        let mut tasks = self.tasks.write();
        let mut options = tasks
            .get(task)
            .map_or_else(|| (*self.defaults).clone(), |o| (**o).clone());
        options.rate_limit = limit;
        tasks.insert(task.to_string(), Arc::new(options));
    }

    /// The options of `task` (its own, else the app's defaults).
    pub(crate) fn options(&self, task: &str) -> Arc<TaskOptions> {
        self.tasks
            .read()
            .get(task)
            .cloned()
            .unwrap_or_else(|| self.defaults.clone())
    }
}

struct Connections {
    broker: OnceCell<Arc<dyn Broker>>,
    backend: OnceCell<Arc<dyn Backend>>,
}

/// The app as a [`braid_core::Executor`]: jobs in flight, and whether it still takes work.
#[derive(Default)]
struct ExecutorState {
    closed: std::sync::atomic::AtomicBool,
    pending: parking_lot::Mutex<usize>,
    idle: parking_lot::Condvar,
}

pub(crate) struct AppInner {
    pub config: Arc<AppConfig>,
    client: Connections,
    executor: ExecutorState,
    parallelism: usize,
}

/// A Celery app: where tasks are sent (the broker), where results are kept (the result
/// backend), and how each task is run (its [`TaskOptions`]).
///
/// Cloning is cheap; clones share connections and options. Calls block the calling thread
/// until the broker has the message (use them from async code inside
/// `spawn_blocking`, or on a runtime that tolerates brief blocking).
///
/// ```
/// use std::time::Duration;
/// use braid_taskq::{App, Worker};
///
/// #[braid_core::task(name = "doc.app.add")]
/// fn add(x: i64, y: i64) -> i64 {
///     x + y
/// }
///
/// let app = App::new("memory://doc-app", Some("memory://doc-app")).unwrap();
/// let worker = Worker::builder(&app).concurrency(2).start().unwrap();
/// let result = app.delay(add::task(), (2, 3)).unwrap();
/// assert_eq!(result.get(Duration::from_secs(10)).unwrap(), 5);
/// worker.shutdown();
/// ```
#[derive(Clone)]
pub struct App {
    pub(crate) inner: Arc<AppInner>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("broker", &self.inner.config.broker_text)
            .field("backend", &self.inner.config.backend_text)
            .finish_non_exhaustive()
    }
}

/// Builds an [`App`] with settings beyond the broker and backend URLs.
#[derive(Debug, Clone)]
pub struct AppBuilder {
    broker: String,
    backend: Option<String>,
    default_queue: String,
    serializer: Serializer,
    result_expires: Duration,
    defaults: TaskOptions,
    tasks: Vec<(String, TaskOptions)>,
    parallelism: usize,
    send_sent_events: bool,
}

impl AppBuilder {
    /// How many jobs the app reports it runs at once as an
    /// [`Executor`](braid_core::Executor) (the workers' total concurrency; default: the
    /// number of CPUs here). `map` keeps twice this many chunks in flight.
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = n.max(1);
        self
    }

    /// Whether sending a task also publishes Celery's `task-sent` event (Celery's
    /// `task_send_sent_event`; off by default). Costs one more broker round trip per send.
    pub fn send_sent_events(mut self, on: bool) -> Self {
        self.send_sent_events = on;
        self
    }

    /// The queue tasks go to when neither the call nor the task names one (`celery`).
    pub fn default_queue(mut self, queue: impl Into<String>) -> Self {
        self.default_queue = queue.into();
        self
    }

    /// How message bodies are serialized (JSON by default).
    pub fn serializer(mut self, serializer: Serializer) -> Self {
        self.serializer = serializer;
        self
    }

    /// How long results are kept (one day by default).
    pub fn result_expires(mut self, expires: Duration) -> Self {
        self.result_expires = expires;
        self
    }

    /// The options of every task that has none of its own.
    pub fn task_defaults(mut self, options: TaskOptions) -> Self {
        self.defaults = options;
        self
    }

    /// The options of the task named `task`.
    pub fn task_options(mut self, task: impl Into<String>, options: TaskOptions) -> Self {
        self.tasks.push((task.into(), options));
        self
    }

    /// Checks the URLs and builds the app; nothing connects until the first call.
    ///
    /// # Errors
    /// [`Error::Url`] for a URL that cannot be used, also for an `rpc://` result backend
    /// with a broker other than RabbitMQ (its results would have nowhere to go).
    pub fn build(self) -> Result<App> {
        let broker_url = Url::parse(&self.broker)?;
        let backend_url = self.backend.as_deref().map(Url::parse).transpose()?;
        let (broker_url, backend_url) = crate::url::link(
            broker_url,
            backend_url,
            self.backend.as_deref().unwrap_or_default(),
        )?;
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let config = AppConfig {
            broker_text: self.broker,
            broker_url,
            backend_text: self.backend,
            backend_url,
            default_queue: self.default_queue,
            serializer: self.serializer,
            result_expires: self.result_expires,
            origin: format!("gen{}@{host}", std::process::id()),
            send_sent_events: self.send_sent_events,
            sent_clock: std::sync::atomic::AtomicU64::new(0),
            tasks: RwLock::new(
                self.tasks
                    .into_iter()
                    .map(|(name, o)| (name, Arc::new(o)))
                    .collect(),
            ),
            defaults: Arc::new(self.defaults),
        };
        Ok(App {
            inner: Arc::new(AppInner {
                config: Arc::new(config),
                client: Connections {
                    broker: OnceCell::new(),
                    backend: OnceCell::new(),
                },
                executor: ExecutorState::default(),
                parallelism: self.parallelism,
            }),
        })
    }
}

impl App {
    /// An app on `broker` with results in `backend` (none: results are not kept).
    ///
    /// URLs: `memory://NAME` (in this process), `sqlite:///path/file.db` (a durable file;
    /// `?visibility_timeout=SECONDS`), `redis://host:port/db` (with kombu's
    /// `?global_keyprefix=` and `?visibility_timeout=SECONDS` options).
    ///
    /// # Errors
    /// [`Error::Url`] for a URL that cannot be used, as for [`AppBuilder::build`].
    pub fn new(broker: &str, backend: Option<&str>) -> Result<App> {
        App::builder(broker, backend).build()
    }

    /// A builder for an app with more settings.
    pub fn builder(broker: &str, backend: Option<&str>) -> AppBuilder {
        AppBuilder {
            broker: broker.to_string(),
            backend: backend.map(str::to_string),
            default_queue: "celery".into(),
            serializer: Serializer::Json,
            result_expires: DEFAULT_RESULT_EXPIRES,
            defaults: TaskOptions::default(),
            tasks: Vec::new(),
            parallelism: std::thread::available_parallelism().map_or(2, usize::from),
            send_sent_events: false,
        }
    }

    /// The broker URL.
    pub fn broker_url(&self) -> &str {
        &self.inner.config.broker_text
    }

    /// The result backend URL.
    pub fn backend_url(&self) -> Option<&str> {
        self.inner.config.backend_text.as_deref()
    }

    /// The queue tasks go to by default.
    pub fn default_queue(&self) -> &str {
        &self.inner.config.default_queue
    }

    /// Sets the options of the task named `task` (what Celery gives as decorator
    /// arguments); workers of this app read them when they run the task.
    pub fn task_options(&self, task: impl Into<String>, options: TaskOptions) {
        self.inner
            .config
            .tasks
            .write()
            .insert(task.into(), Arc::new(options));
    }

    /// The options the task named `task` runs with.
    pub fn options_of(&self, task: &str) -> TaskOptions {
        (*self.inner.config.options(task)).clone()
    }

    pub(crate) fn config(&self) -> &Arc<AppConfig> {
        &self.inner.config
    }

    pub(crate) async fn broker(&self) -> Result<Arc<dyn Broker>> {
        let url = &self.inner.config.broker_url;
        self.inner
            .client
            .broker
            .get_or_try_init(|| broker::open(url))
            .await
            .cloned()
    }

    pub(crate) async fn backend(&self) -> Result<Arc<dyn Backend>> {
        let Some(url) = &self.inner.config.backend_url else {
            return Err(Error::NoBackend);
        };
        let expires = self.inner.config.result_expires;
        self.inner
            .client
            .backend
            .get_or_try_init(|| backend::open(url, expires))
            .await
            .cloned()
    }

    /// Sends a registered task with its arguments: Celery's `task.delay(*args)`.
    ///
    /// # Errors
    /// An argument that does not encode, or a broker that cannot take the message.
    pub fn delay<A: Serialize, R: DeserializeOwned>(
        &self,
        task: TaskRef<A, R>,
        args: A,
    ) -> Result<AsyncResult<R>> {
        self.apply_async(task, args, CallOptions::new())
    }

    /// Sends a registered task with options: Celery's `task.apply_async(args, ...)`.
    ///
    /// # Errors
    /// As for [`App::delay`], and [`Error::InvalidOption`] for options that conflict.
    pub fn apply_async<A: Serialize, R: DeserializeOwned>(
        &self,
        task: TaskRef<A, R>,
        args: A,
        options: CallOptions,
    ) -> Result<AsyncResult<R>> {
        let args = encode_args(&args)?;
        let id = self.send_draft(Draft::from_call(
            &self.inner.config,
            task.name(),
            args,
            options,
        )?)?;
        Ok(AsyncResult::new(self.clone(), id))
    }

    /// Sends a task by name with JSON arguments, as Celery's `app.send_task` does; the
    /// task may be a Python one.
    ///
    /// # Errors
    /// A broker that cannot take the message.
    pub fn send_task(
        &self,
        name: &str,
        args: Vec<Value>,
        options: CallOptions,
    ) -> Result<AsyncResult<Value>> {
        let args = serde_json::value::to_raw_value(&args)
            .map_err(|e| braid_core::Error::Encode(e.to_string()))?;
        let id = self.send_draft(Draft::from_call(&self.inner.config, name, args, options)?)?;
        Ok(AsyncResult::new(self.clone(), id))
    }

    /// Sends many calls of one task in one round trip; returns their results in order.
    ///
    /// # Errors
    /// As for [`App::delay`]; nothing is sent when an argument does not encode.
    pub fn delay_many<A: Serialize, R: DeserializeOwned>(
        &self,
        task: TaskRef<A, R>,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Vec<AsyncResult<R>>> {
        let config = &self.inner.config;
        let mut messages = Vec::new();
        let mut ids = Vec::new();
        for a in args {
            let draft =
                Draft::from_call(config, task.name(), encode_args(&a)?, CallOptions::new())?;
            ids.push(draft.task_id.clone());
            messages.push(draft.outgoing(&config.origin)?);
        }
        let app = self.clone();
        runtime::block_on(async move { app.publish(messages).await })??;
        Ok(ids
            .into_iter()
            .map(|id| AsyncResult::new(self.clone(), id))
            .collect())
    }

    fn send_draft(&self, draft: Draft) -> Result<String> {
        let id = draft.task_id.clone();
        let outgoing = draft.outgoing(&self.inner.config.origin)?;
        let app = self.clone();
        runtime::block_on(async move { app.publish(vec![outgoing]).await })??;
        Ok(id)
    }

    /// Applies a signature, chain or chord; returns the result it ends with (the last step
    /// of a chain, the body of a chord). Use [`App::apply_group`] for a group.
    ///
    /// # Errors
    /// A malformed signature, a broker that cannot take the messages, or (for a chord) a
    /// backend that cannot count the header.
    pub fn apply(&self, signature: &Signature) -> Result<AsyncResult<Value>> {
        let planned = self.apply_plan(signature)?;
        Ok(AsyncResult::new(self.clone(), planned.id))
    }

    /// Applies a group; returns its members' results.
    ///
    /// # Errors
    /// As for [`App::apply`], and [`Error::InvalidOption`] when the signature is not a group.
    pub fn apply_group(&self, signature: &Signature) -> Result<GroupResult> {
        if signature.subtask_type.as_deref() != Some("group") {
            return Err(Error::InvalidOption(format!(
                "apply_group takes a group, not {}",
                signature.task
            )));
        }
        let planned = self.apply_plan(signature)?;
        let results = planned
            .children
            .unwrap_or_default()
            .into_iter()
            .map(|id| AsyncResult::new(self.clone(), id))
            .collect();
        Ok(GroupResult::new(planned.id, results))
    }

    fn apply_plan(&self, signature: &Signature) -> Result<crate::send::Planned> {
        let mut layout = Plan::default();
        let planned = plan(
            &self.inner.config,
            signature,
            None,
            &Parent::default(),
            &mut layout,
        )?;
        let app = self.clone();
        runtime::block_on(async move { app.dispatch(layout).await })??;
        Ok(planned)
    }

    /// Records chord sizes, then publishes the plan's messages.
    pub(crate) async fn dispatch(&self, layout: Plan) -> Result<()> {
        if !layout.chord_sizes.is_empty() {
            let backend = self.backend().await?;
            for (group_id, size) in &layout.chord_sizes {
                backend.set_chord_size(group_id, *size).await?;
            }
        }
        self.publish(layout.messages).await
    }

    /// Publishes task messages, and their `task-sent` events when the app sends them.
    pub(crate) async fn publish(&self, messages: Vec<crate::broker::Outgoing>) -> Result<()> {
        let broker = self.broker().await?;
        let config = &self.inner.config;
        let events = config
            .send_sent_events
            .then(|| crate::events::sent_events(&config.origin, &config.sent_clock, &messages));
        broker.publish(messages).await?;
        if let Some(events) = events
            && let Err(e) = broker.publish_events(events).await
        {
            tracing::warn!(error = %e, "could not publish task-sent events");
        }
        Ok(())
    }

    /// The result of the task with id `id` (Celery's `app.AsyncResult(id)`).
    pub fn result(&self, id: impl Into<String>) -> AsyncResult<Value> {
        AsyncResult::new(self.clone(), id.into())
    }

    /// Revokes tasks: workers skip them (storing `REVOKED`), now and when they get them
    /// later; with `terminate`, a running one is ended too. The revocation is kept in the
    /// broker, so workers started later know it.
    ///
    /// # Errors
    /// A broker that cannot be reached.
    pub fn revoke(&self, ids: &[&str], terminate: bool) -> Result<()> {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let app = self.clone();
        runtime::block_on(async move {
            let broker = app.broker().await?;
            broker.revoke(ids.clone()).await?;
            let arguments = serde_json::json!({
                "task_id": ids,
                "terminate": terminate,
                "signal": "SIGTERM",
            });
            broker
                .broadcast(broker::control_command("revoke", arguments, None, None))
                .await
        })?
    }

    /// Removes every waiting message (and scheduled one) of `queue`; returns how many.
    ///
    /// # Errors
    /// A broker that cannot be reached.
    pub fn purge(&self, queue: &str) -> Result<u64> {
        let app = self.clone();
        let queue = queue.to_string();
        runtime::block_on(async move { app.broker().await?.purge(&queue).await })?
    }

    /// How many messages wait on `queue`.
    ///
    /// # Errors
    /// A broker that cannot be reached.
    pub fn queue_len(&self, queue: &str) -> Result<u64> {
        let app = self.clone();
        let queue = queue.to_string();
        runtime::block_on(async move { app.broker().await?.len(&queue).await })?
    }

    /// The dead-letter list: messages workers could not run, with the reason, oldest first.
    ///
    /// # Errors
    /// A broker that cannot be reached.
    pub fn dead_letters(&self) -> Result<Vec<Value>> {
        let app = self.clone();
        runtime::block_on(async move { app.broker().await?.dead_letters().await })?
    }

    /// Sends a remote-control command to the workers and collects their replies for up to
    /// `timeout` (Celery's `app.control.broadcast(..., reply=True)`): `ping`, `stats`,
    /// `active`, `reserved`, ... Each reply maps a worker's name to its answer.
    ///
    /// # Errors
    /// A broker that cannot be reached.
    pub fn control(
        &self,
        method: &str,
        arguments: Value,
        timeout: Duration,
        limit: Option<usize>,
    ) -> Result<Vec<Value>> {
        self.control_to(method, arguments, None, timeout, limit)
    }

    /// [`App::control`] for the workers named in `destination` only (all when `None`),
    /// as Celery's `destination=[...]`. With a zero `timeout` the command is sent and no
    /// reply is awaited.
    ///
    /// # Errors
    /// A broker that cannot be reached.
    pub fn control_to(
        &self,
        method: &str,
        arguments: Value,
        destination: Option<Vec<String>>,
        timeout: Duration,
        limit: Option<usize>,
    ) -> Result<Vec<Value>> {
        let app = self.clone();
        let method = method.to_string();
        runtime::block_on(async move {
            let broker = app.broker().await?;
            let oid = uuid::Uuid::new_v4().to_string();
            let ticket = uuid::Uuid::new_v4().to_string();
            if timeout.is_zero() {
                return broker
                    .broadcast(broker::control_command(
                        &method,
                        arguments,
                        destination,
                        None,
                    ))
                    .await
                    .map(|()| Vec::new());
            }
            broker.declare_reply_queue(&oid).await?;
            broker
                .broadcast(broker::control_command(
                    &method,
                    arguments,
                    destination,
                    Some((&oid, &ticket)),
                ))
                .await?;
            broker.collect_replies(&oid, timeout, limit).await
        })?
    }

    /// The braid workers whose heartbeat is at most `within` old, with what each reports.
    ///
    /// # Errors
    /// A broker that cannot be reached.
    pub fn workers(&self, within: Duration) -> Result<Vec<Value>> {
        let app = self.clone();
        runtime::block_on(async move {
            let beats: Vec<WorkerBeat> = app.broker().await?.workers(within).await?;
            Ok(beats
                .into_iter()
                .map(|b| serde_json::json!({"hostname": b.hostname, "at": b.at, "info": b.info}))
                .collect())
        })?
    }
}

/// Encodes an argument tuple as the JSON array Celery's body carries.
pub(crate) fn encode_args<A: Serialize>(args: &A) -> Result<Box<serde_json::value::RawValue>> {
    let bytes = Codec::Json.encode(args)?;
    let text = String::from_utf8(bytes).map_err(|e| braid_core::Error::Encode(e.to_string()))?;
    if !text.starts_with('[') {
        return Err(Error::InvalidOption(format!(
            "task arguments must encode as a JSON list (a tuple), not {}",
            crate::message::truncate(&text, 80)
        )));
    }
    serde_json::value::RawValue::from_string(text)
        .map_err(|e| braid_core::Error::Encode(e.to_string()).into())
}

/// The app runs registered tasks on its workers: the cluster behind braid's executors
/// (`submit`, `map` from [`braid_core::ExecutorExt`]). Calls in braid's binary codec
/// travel as `[base64]` with a `braid_codec: binary` header, which braid workers
/// understand (Python workers do not).
impl braid_core::Executor for App {
    fn execute(&self, job: braid_core::Job) -> std::result::Result<(), braid_core::Error> {
        use std::sync::atomic::Ordering;
        let state = &self.inner.executor;
        if state.closed.load(Ordering::Acquire) {
            return Err(braid_core::Error::Shutdown);
        }
        let call = job.call();
        let codec = call.codec();
        let (args, options) = match codec {
            Codec::Json => (
                serde_json::value::RawValue::from_string(
                    String::from_utf8(call.args().to_vec())
                        .map_err(|e| braid_core::Error::Encode(e.to_string()))?,
                )
                .map_err(|e| braid_core::Error::Encode(e.to_string()))?,
                CallOptions::new(),
            ),
            Codec::Binary => {
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD.encode(call.args());
                (
                    serde_json::value::to_raw_value(&[encoded])
                        .map_err(|e| braid_core::Error::Encode(e.to_string()))?,
                    CallOptions::new().header(crate::worker::BINARY_CODEC_HEADER, "binary"),
                )
            }
        };
        let draft = Draft::from_call(&self.inner.config, call.name(), args, options)?;
        let id = draft.task_id.clone();
        let outgoing = draft.outgoing(&self.inner.config.origin)?;
        if !job.start() {
            return Ok(());
        }
        *state.pending.lock() += 1;
        let app = self.clone();
        runtime::client()?.spawn(async move {
            let outcome = async {
                app.publish(vec![outgoing]).await?;
                let meta = app.backend().await?.wait(&id, None).await?;
                let meta = meta.ok_or_else(|| Error::Backend("no result".into()))?;
                let value: Value = crate::result::outcome(&id, crate::result::decode_meta(&meta)?)?;
                match codec {
                    Codec::Json => serde_json::to_vec(&value)
                        .map_err(|e| Error::Core(braid_core::Error::Encode(e.to_string()))),
                    Codec::Binary => {
                        use base64::Engine as _;
                        let text = value.as_str().unwrap_or_default();
                        base64::engine::general_purpose::STANDARD
                            .decode(text)
                            .map_err(|e| {
                                Error::Protocol(format!("a binary result is not base64: {e}"))
                            })
                    }
                }
            }
            .await;
            job.complete(outcome.map_err(braid_core::Error::from));
            let state = &app.inner.executor;
            let mut pending = state.pending.lock();
            *pending -= 1;
            if *pending == 0 {
                state.idle.notify_all();
            }
        });
        Ok(())
    }

    fn shutdown(&self, wait: bool, _cancel_pending: bool) {
        // Sent work belongs to the broker now; it cannot be called back.
        let state = &self.inner.executor;
        state
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        if wait {
            let mut pending = state.pending.lock();
            while *pending > 0 {
                state.idle.wait(&mut pending);
            }
        }
    }

    fn parallelism(&self) -> usize {
        self.inner.parallelism
    }
}
