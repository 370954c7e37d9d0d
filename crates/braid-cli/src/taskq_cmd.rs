//! The task-queue commands: `braid worker`, `submit`, `result`, `purge`, `inspect`,
//! `control`, `beat`, `events`, and the demo tasks every `braid` binary carries under
//! Celery's names (`tasks.add`, ...).

use std::process::ExitCode;
use std::time::Duration;

use braid::taskq::{App, Beat, CallOptions, ClusterState, Error, EventReceiver, Worker};
use serde_json::{Value, json};

use crate::signals::Signals;

/// The broker when none is given: a local Redis.
const DEFAULT_BROKER: &str = "redis://127.0.0.1:6379/0";

/// Where to find the broker and backend.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The broker URL (redis://host:port/db, sqlite:///path.db, memory://NAME); default
    /// $BRAID_BROKER, else
    /// redis://127.0.0.1:6379/0.
    #[arg(long, short = 'b', value_name = "URL")]
    pub broker: Option<String>,
    /// The result backend URL; default $BRAID_RESULT_BACKEND, else the broker's URL.
    #[arg(long, value_name = "URL")]
    pub result_backend: Option<String>,
}

impl Connection {
    fn app(&self) -> Result<App, Error> {
        let broker = self
            .broker
            .clone()
            .or_else(|| std::env::var("BRAID_BROKER").ok())
            .unwrap_or_else(|| DEFAULT_BROKER.to_string());
        let backend = self
            .result_backend
            .clone()
            .or_else(|| std::env::var("BRAID_RESULT_BACKEND").ok())
            .unwrap_or_else(|| broker.clone());
        App::new(&broker, Some(&backend))
    }
}

/// `braid worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    connection: Connection,
    /// Queues to consume, comma separated.
    #[arg(long, short = 'Q', value_delimiter = ',', default_value = "celery")]
    queues: Vec<String>,
    /// How many tasks run at once (default: the number of CPUs).
    #[arg(long, short = 'c')]
    concurrency: Option<usize>,
    /// How many messages the worker may hold at once (default: 4 x concurrency).
    #[arg(long)]
    prefetch: Option<usize>,
    /// The worker's node name.
    #[arg(long, short = 'n')]
    hostname: Option<String>,
    /// Publish Celery's monitoring events (for Flower, `celery events`, `braid events`).
    #[arg(long = "events", short = 'E')]
    events: bool,
}

/// `braid submit`.
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    connection: Connection,
    /// The task's name, e.g. tasks.add.
    task: String,
    /// Arguments: each is read as JSON (2, 1.5, "text", [1,2], {"a":1}), else taken as text.
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    /// Keyword arguments, as a JSON object.
    #[arg(long, value_name = "JSON")]
    kwargs: Option<String>,
    /// The queue to send to.
    #[arg(long, short = 'Q')]
    queue: Option<String>,
    /// Seconds to wait before running.
    #[arg(long)]
    countdown: Option<f64>,
    /// Seconds after which the call is revoked if not started.
    #[arg(long)]
    expires: Option<f64>,
    /// Priority 0-9 (lower runs first on Redis).
    #[arg(long)]
    priority: Option<u8>,
    /// Wait for the result and print it.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

/// `braid result`.
#[derive(Debug, Clone, clap::Args)]
pub struct ResultArgs {
    #[command(flatten)]
    connection: Connection,
    /// The task id.
    id: String,
    /// Wait until the task has finished.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

/// `braid purge`.
#[derive(Debug, Clone, clap::Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    connection: Connection,
    /// Queues to empty, comma separated.
    #[arg(long, short = 'Q', value_delimiter = ',', default_value = "celery")]
    queues: Vec<String>,
}

/// What `braid inspect` asks the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InspectCommand {
    /// Whether they answer.
    Ping,
    /// The tasks they are running.
    Active,
    /// The tasks they hold, not yet started.
    Reserved,
    /// Their counters and settings.
    Stats,
    /// The tasks they can run.
    Registered,
    /// The tasks they hold with an ETA still to come.
    Scheduled,
    /// The task ids they know as revoked.
    Revoked,
    /// The queues they consume.
    #[value(name = "active_queues", alias = "active-queues")]
    ActiveQueues,
}

/// `braid inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    #[command(flatten)]
    connection: Connection,
    /// What to ask.
    command: InspectCommand,
    /// How long to wait for replies, in seconds.
    #[arg(long, default_value_t = 1.0)]
    timeout: f64,
    /// Ask only these workers (comma separated node names).
    #[arg(long, short = 'd', value_delimiter = ',')]
    destination: Vec<String>,
}

/// What `braid control` tells the workers.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ControlCommand {
    /// Revoke tasks: workers skip them; with --terminate a running one is ended too.
    Revoke {
        /// Task ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Also end the task if it is running.
        #[arg(long)]
        terminate: bool,
    },
    /// Set a task's rate limit on the workers (e.g. 10/s, 100/m; 0 turns it off).
    #[command(name = "rate_limit", alias = "rate-limit")]
    RateLimit {
        /// The task's name.
        task: String,
        /// The new limit.
        rate: String,
    },
    /// Add threads to the workers' pools.
    #[command(name = "pool_grow", alias = "pool-grow")]
    PoolGrow {
        /// How many.
        #[arg(default_value_t = 1)]
        n: u64,
    },
    /// Retire threads from the workers' pools.
    #[command(name = "pool_shrink", alias = "pool-shrink")]
    PoolShrink {
        /// How many.
        #[arg(default_value_t = 1)]
        n: u64,
    },
    /// Warm shutdown of the workers.
    Shutdown,
    /// Make the workers publish events.
    #[command(name = "enable_events", alias = "enable-events")]
    EnableEvents,
    /// Make the workers stop publishing events.
    #[command(name = "disable_events", alias = "disable-events")]
    DisableEvents,
}

/// `braid control`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControlArgs {
    #[command(flatten)]
    connection: Connection,
    /// What to tell them.
    #[command(subcommand)]
    command: ControlCommand,
    /// How long to wait for replies, in seconds.
    #[arg(long, default_value_t = 1.0, global = true)]
    timeout: f64,
    /// Tell only these workers (comma separated node names).
    #[arg(long, short = 'd', value_delimiter = ',', global = true)]
    destination: Vec<String>,
}

/// `braid beat`.
#[derive(Debug, Clone, clap::Args)]
pub struct BeatArgs {
    #[command(flatten)]
    connection: Connection,
    /// The schedule file (TOML or JSON); last runs are kept in NAME.state.json beside it.
    #[arg(long, short = 's', value_name = "FILE")]
    schedule: std::path::PathBuf,
    /// How long the beat lock lasts without renewal: how soon a standby beat takes over.
    #[arg(long, default_value_t = 15.0)]
    lock_ttl: f64,
}

/// `braid events`.
#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    #[command(flatten)]
    connection: Connection,
    /// Stop after this many events (default: run until Ctrl-C).
    #[arg(long)]
    limit: Option<u64>,
    /// Print a summary of workers and task states every this many seconds instead of
    /// every event.
    #[arg(long, value_name = "SECONDS")]
    summary: Option<f64>,
}

/// `braid dashboard`.
#[derive(Debug, Clone, clap::Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    connection: Connection,
    /// The port to serve on.
    #[arg(long, short = 'p', default_value_t = 5555)]
    port: u16,
    /// The address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    address: std::net::IpAddr,
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::FAILURE
}

fn seconds(s: f64, what: &str) -> Result<Duration, String> {
    if s.is_finite() && s >= 0.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(format!("{what} must be a number of seconds, not {s}"))
    }
}

/// A command-line argument as JSON, or as text when it is not JSON.
fn parse_arg(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Runs `braid worker` until Ctrl-C, SIGTERM or a remote `shutdown`: a warm shutdown;
/// a second signal exits at once (held messages return after the visibility timeout).
pub fn worker(args: WorkerArgs) -> ExitCode {
    let app = match args.connection.app() {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    let mut builder = Worker::builder(&app).queues(args.queues.clone());
    if let Some(c) = args.concurrency {
        builder = builder.concurrency(c);
    }
    if let Some(p) = args.prefetch {
        builder = builder.prefetch(p);
    }
    if let Some(h) = args.hostname {
        builder = builder.hostname(h);
    }
    builder = builder.events(args.events);
    let worker = match builder.start() {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    // Watched before the worker says it is ready, so a signal sent once it has is caught.
    let signals = Signals::watch();
    println!(
        "braid worker {} ready: broker {}, queues {}, tasks: {}",
        worker.hostname(),
        app.broker_url(),
        worker.queues().join(","),
        braid::tasks()
            .iter()
            .map(|t| t.name())
            .filter(|n| !n.starts_with("braid."))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Ctrl-C or SIGTERM: warm shutdown; a second one: exit at once.
    let (signalled, signal) = std::sync::mpsc::channel();
    match signals {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                signals.wait();
                if signalled.send(()).is_err() {
                    return;
                }
                signals.wait();
                eprintln!(
                    "worker: cold shutdown; held messages return after the visibility timeout"
                );
                std::process::exit(130);
            });
        }
        Err(e) => eprintln!("cannot watch signals: {e}"),
    }
    loop {
        if worker.wait_for_shutdown_request(Duration::from_millis(200)) {
            println!("worker: remote shutdown");
            break;
        }
        if signal.try_recv().is_ok() {
            println!("worker: warm shutdown (press Ctrl-C again to exit at once)");
            break;
        }
    }
    let stats = worker.stats();
    worker.shutdown();
    println!(
        "worker: stopped after {} tasks ({} succeeded, {} failed, {} retried, {} revoked, {} dead-lettered)",
        stats.processed,
        stats.succeeded,
        stats.failed,
        stats.retried,
        stats.revoked,
        stats.dead_lettered
    );
    ExitCode::SUCCESS
}

/// `braid submit`: sends a task and prints its id (and its result with `--wait`).
pub fn submit(args: SubmitArgs) -> ExitCode {
    let app = match args.connection.app() {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    let mut options = CallOptions::new();
    if let Some(kwargs) = &args.kwargs {
        match serde_json::from_str::<Value>(kwargs) {
            Ok(Value::Object(map)) => {
                for (k, v) in map {
                    options = options.kwarg(&k, v);
                }
            }
            _ => return fail("--kwargs must be a JSON object"),
        }
    }
    if let Some(q) = &args.queue {
        options = options.queue(q);
    }
    if let Some(p) = args.priority {
        options = options.priority(p);
    }
    match args
        .countdown
        .map(|s| seconds(s, "--countdown"))
        .transpose()
    {
        Ok(Some(d)) => options = options.countdown(d),
        Ok(None) => {}
        Err(e) => return fail(e),
    }
    match args.expires.map(|s| seconds(s, "--expires")).transpose() {
        Ok(Some(d)) => options = options.expires_in(d),
        Ok(None) => {}
        Err(e) => return fail(e),
    }
    let call_args: Vec<Value> = args.args.iter().map(|a| parse_arg(a)).collect();
    let result = match app.send_task(&args.task, call_args, options) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    println!("{}", result.id());
    if !args.wait {
        return ExitCode::SUCCESS;
    }
    let timeout = match seconds(args.timeout, "--timeout") {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    print_outcome(result.get(timeout))
}

fn print_outcome(outcome: Result<Value, Error>) -> ExitCode {
    match outcome {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(Error::Task(failure)) => {
            println!(
                "FAILURE {}: {}",
                failure.exception.qualified_type(),
                failure.message()
            );
            ExitCode::FAILURE
        }
        Err(e) => fail(e),
    }
}

/// `braid result`: prints a task's state, and its value or error when it has finished.
pub fn result(args: ResultArgs) -> ExitCode {
    let app = match args.connection.app() {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    let result = app.result(args.id);
    if args.wait {
        let timeout = match seconds(args.timeout, "--timeout") {
            Ok(t) => t,
            Err(e) => return fail(e),
        };
        return print_outcome(result.get(timeout));
    }
    match result.state() {
        Ok(state) if state.is_ready() => {
            println!("{state}");
            print_outcome(result.get(Duration::ZERO))
        }
        Ok(state) => {
            println!("{state}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `braid purge`: empties queues and prints how many messages went.
pub fn purge(args: PurgeArgs) -> ExitCode {
    let app = match args.connection.app() {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    let mut total = 0;
    for queue in &args.queues {
        match app.purge(queue) {
            Ok(n) => total += n,
            Err(e) => return fail(e),
        }
    }
    println!(
        "purged {total} message{} from {}",
        if total == 1 { "" } else { "s" },
        args.queues.join(",")
    );
    ExitCode::SUCCESS
}

/// `braid inspect`: asks every worker (braid's and Celery's) and prints the replies.
pub fn inspect(args: InspectArgs) -> ExitCode {
    let app = match args.connection.app() {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    let timeout = match seconds(args.timeout, "--timeout") {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let method = match args.command {
        InspectCommand::Ping => "ping",
        InspectCommand::Active => "active",
        InspectCommand::Reserved => "reserved",
        InspectCommand::Stats => "stats",
        InspectCommand::Registered => "registered",
        InspectCommand::Scheduled => "scheduled",
        InspectCommand::Revoked => "revoked",
        InspectCommand::ActiveQueues => "active_queues",
    };
    let destination = (!args.destination.is_empty()).then_some(args.destination);
    let limit = destination.as_ref().map(Vec::len);
    let replies = match app.control_to(method, json!({}), destination, timeout, limit) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    match print_replies(replies, timeout) {
        Ok(_) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// Prints each worker's answer, `worker: answer` a line, and returns how many answers were
/// not an error (`{"error": ...}`); fails when no worker replied within `timeout`.
fn print_replies(replies: Vec<Value>, timeout: Duration) -> Result<usize, ExitCode> {
    if replies.is_empty() {
        eprintln!("error: no worker replied within {timeout:?}");
        return Err(ExitCode::FAILURE);
    }
    let mut accepted = 0;
    for reply in replies {
        if let Value::Object(map) = reply {
            for (worker, answer) in map {
                println!("{worker}: {answer}");
                if answer.get("error").is_none() {
                    accepted += 1;
                }
            }
        }
    }
    Ok(accepted)
}

/// `braid control`: sends a remote-control command to the workers (braid's and Celery's)
/// and prints their replies.
pub fn control(args: ControlArgs) -> ExitCode {
    let app = match args.connection.app() {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    let timeout = match seconds(args.timeout, "--timeout") {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let (method, arguments) = match &args.command {
        ControlCommand::Revoke { ids, terminate } => {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            // Recorded in the broker too, so workers started later skip them.
            if let Err(e) = app.revoke(&refs, *terminate) {
                return fail(e);
            }
            println!("revoked {}", ids.join(", "));
            return ExitCode::SUCCESS;
        }
        ControlCommand::RateLimit { task, rate } => {
            ("rate_limit", json!({"task_name": task, "rate_limit": rate}))
        }
        ControlCommand::PoolGrow { n } => ("pool_grow", json!({"n": n})),
        ControlCommand::PoolShrink { n } => ("pool_shrink", json!({"n": n})),
        ControlCommand::Shutdown => ("shutdown", json!({})),
        ControlCommand::EnableEvents => ("enable_events", json!({})),
        ControlCommand::DisableEvents => ("disable_events", json!({})),
    };
    let destination = (!args.destination.is_empty()).then_some(args.destination);
    let limit = destination.as_ref().map(Vec::len);
    match app.control_to(method, arguments, destination, timeout, limit) {
        Ok(replies) => match print_replies(replies, timeout) {
            Ok(0) => fail(format!(
                "no worker accepted {method}: every reply was an error"
            )),
            Ok(_) => ExitCode::SUCCESS,
            Err(code) => code,
        },
        Err(e) => fail(e),
    }
}

/// `braid beat`: sends the schedule's entries when due until Ctrl-C or SIGTERM.
pub fn beat(args: BeatArgs) -> ExitCode {
    let app = match args.connection.app() {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    let ttl = match seconds(args.lock_ttl, "--lock-ttl") {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let mut beat = match Beat::from_file(&app, &args.schedule) {
        Ok(b) => b.lock_ttl(ttl),
        Err(e) => return fail(e),
    };
    let signals = Signals::watch();
    println!(
        "braid beat: {} entries from {} on {}",
        beat.entries().len(),
        args.schedule.display(),
        app.broker_url()
    );
    for entry in beat.entries() {
        println!("  {} -> {} ({:?})", entry.name, entry.task, entry.schedule);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    match signals {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                signals.wait();
                flag.store(true, std::sync::atomic::Ordering::Release);
            });
        }
        Err(e) => eprintln!("cannot watch signals: {e}"),
    }
    match beat.run(&stop) {
        Ok(()) => {
            println!("braid beat: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// `braid events`: prints the events of every worker on the broker (braid's and Celery's
/// with `-E`) as JSON lines, or a periodic summary.
pub fn events(args: EventsArgs) -> ExitCode {
    let app = match args.connection.app() {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    let summary = match args.summary.map(|s| seconds(s, "--summary")).transpose() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut receiver = match EventReceiver::new(&app) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    // Ask the workers for a heartbeat now, as Celery's receiver does on start.
    if let Err(e) = app.control_to("heartbeat", json!({}), None, Duration::ZERO, None) {
        eprintln!("warning: could not wake the workers up: {e}");
    }
    let mut state = ClusterState::new();
    let mut seen = 0u64;
    let mut last_summary = std::time::Instant::now();
    loop {
        if args.limit.is_some_and(|l| seen >= l) {
            return ExitCode::SUCCESS;
        }
        match receiver.recv_timeout(Duration::from_millis(500)) {
            Ok(Some(event)) => {
                seen += 1;
                state.event(&event);
                if summary.is_none() {
                    println!("{}", Value::Object(event.body().clone()));
                }
            }
            Ok(None) => {}
            Err(e) => return fail(e),
        }
        if let Some(every) = summary
            && last_summary.elapsed() >= every
        {
            last_summary = std::time::Instant::now();
            let mut workers: Vec<_> = state.workers().values().collect();
            workers.sort_by(|a, b| a.hostname.cmp(&b.hostname));
            for w in workers {
                println!(
                    "worker {} {} active={} processed={} load={:?}",
                    w.hostname,
                    if w.alive() { "online" } else { "offline" },
                    w.active,
                    w.processed,
                    w.loadavg
                );
            }
            let mut counts: Vec<_> = state.counts().into_iter().collect();
            counts.sort();
            println!("tasks {counts:?}");
        }
    }
}

/// `braid dashboard`: serves the live web dashboard (like Flower) until Ctrl-C or SIGTERM.
pub fn dashboard(args: DashboardArgs) -> ExitCode {
    let app = match args.connection.app() {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    let addr = std::net::SocketAddr::new(args.address, args.port);
    let mut signals = match Signals::watch() {
        Ok(signals) => signals,
        Err(e) => return fail(format!("cannot watch signals: {e}")),
    };
    let running = match braid::dashboard::spawn(&app, addr) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    println!(
        "braid dashboard: http://{}/ (broker {}); Ctrl-C stops it",
        running.addr(),
        app.broker_url()
    );
    // Workers report themselves within a heartbeat; ask for one now.
    if let Err(e) = app.control_to("heartbeat", json!({}), None, Duration::ZERO, None) {
        eprintln!("warning: could not wake the workers up: {e}");
    }
    signals.wait();
    running.shutdown();
    println!("braid dashboard: stopped");
    ExitCode::SUCCESS
}

pub(crate) use tasks::noop;

/// The demo tasks under Celery's names.
mod tasks {
    use serde_json::Value;

    /// The error `tasks.fail` raises; a Python client sees an exception named `TaskFailed`.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    pub struct TaskFailed(pub String);

    fn number(v: &Value) -> Result<f64, TaskFailed> {
        v.as_f64()
            .ok_or_else(|| TaskFailed(format!("not a number: {v}")))
    }

    fn both_ints(x: &Value, y: &Value) -> Option<(i64, i64)> {
        Some((x.as_i64()?, y.as_i64()?))
    }

    /// `x + y` for numbers (integers stay integers), text and lists, as Python's `+`.
    #[braid::task(name = "tasks.add")]
    fn add(x: Value, y: Value) -> Result<Value, TaskFailed> {
        if let Some((a, b)) = both_ints(&x, &y)
            && let Some(sum) = a.checked_add(b)
        {
            return Ok(sum.into());
        }
        match (x, y) {
            (Value::String(a), Value::String(b)) => Ok(Value::String(a + &b)),
            (Value::Array(mut a), Value::Array(b)) => {
                a.extend(b);
                Ok(Value::Array(a))
            }
            (a, b) => Ok((number(&a)? + number(&b)?).into()),
        }
    }

    /// `x * y` for numbers.
    #[braid::task(name = "tasks.mul")]
    fn mul(x: Value, y: Value) -> Result<Value, TaskFailed> {
        if let Some((a, b)) = both_ints(&x, &y)
            && let Some(product) = a.checked_mul(b)
        {
            return Ok(product.into());
        }
        Ok((number(&x)? * number(&y)?).into())
    }

    /// The sum of a list of numbers.
    #[braid::task(name = "tasks.xsum")]
    fn xsum(numbers: Vec<Value>) -> Result<Value, TaskFailed> {
        if let Some(ints) = numbers
            .iter()
            .map(Value::as_i64)
            .collect::<Option<Vec<i64>>>()
        {
            return Ok(ints.iter().sum::<i64>().into());
        }
        let mut total = 0.0;
        for n in &numbers {
            total += number(n)?;
        }
        Ok(total.into())
    }

    /// Does nothing (for measuring the queue itself).
    #[braid::task(name = "tasks.noop")]
    pub(crate) fn noop() {}

    /// Sleeps for `seconds` and returns them.
    #[braid::task(name = "tasks.sleep")]
    fn sleep(seconds: f64) -> Result<f64, TaskFailed> {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(TaskFailed(format!("cannot sleep {seconds} seconds")));
        }
        std::thread::sleep(std::time::Duration::from_secs_f64(seconds));
        Ok(seconds)
    }

    /// Fails with the given message.
    #[braid::task(name = "tasks.fail")]
    fn fail(message: String) -> Result<(), TaskFailed> {
        Err(TaskFailed(message))
    }

    /// The book's recipe task (`addTask.py`): `add(x, y)`.
    #[braid::task(name = "addTask.add")]
    fn book_add(x: Value, y: Value) -> Result<Value, TaskFailed> {
        add(x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_tasks_behave_like_pythons() {
        let call = |name: &str, args: &str| {
            braid::call(name, braid::Codec::Json, args.as_bytes())
                .map(|out| String::from_utf8(out).unwrap())
        };
        assert_eq!(call("tasks.add", "[2, 3]").unwrap(), "5");
        assert_eq!(call("tasks.add", "[2, 0.5]").unwrap(), "2.5");
        assert_eq!(call("tasks.add", r#"["a", "b"]"#).unwrap(), r#""ab""#);
        assert_eq!(call("tasks.mul", "[6, 7]").unwrap(), "42");
        assert_eq!(call("tasks.xsum", "[[1, 2, 3]]").unwrap(), "6");
        assert_eq!(call("tasks.xsum", "[[1, 2.5]]").unwrap(), "3.5");
        assert_eq!(call("tasks.noop", "[]").unwrap(), "null");
        assert_eq!(call("tasks.sleep", "[0.001]").unwrap(), "0.001");
        assert_eq!(call("addTask.add", "[5, 5]").unwrap(), "10");
        let err = call("tasks.fail", r#"["boom"]"#).unwrap_err();
        assert!(
            matches!(&err, braid::Error::Task(t) if t.message == "boom" && t.error_type.ends_with("TaskFailed")),
            "{err:?}"
        );
        assert!(call("tasks.add", r#"[1, null]"#).is_err());
    }

    #[test]
    fn arguments_are_json_or_text() {
        assert_eq!(parse_arg("2"), json!(2));
        assert_eq!(parse_arg("[1,2]"), json!([1, 2]));
        assert_eq!(parse_arg("boom"), json!("boom"));
        assert_eq!(parse_arg("\"2\""), json!("2"));
    }
}
