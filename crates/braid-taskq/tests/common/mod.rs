//! What the Celery interop tests share: the tasks Python's test apps call by name, the
//! venv's Python, and helpers that run Python clients and workers without leaking them.
#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use braid_taskq::{App, CallOptions, ClusterState, Event, EventReceiver, Signature, chain, group};
use serde_json::{Value, json};

#[braid_core::task(name = "tasks.add")]
pub fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[braid_core::task(name = "tasks.mul")]
pub fn mul(x: i64, y: i64) -> i64 {
    x * y
}

#[braid_core::task(name = "tasks.xsum")]
pub fn xsum(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[braid_core::task(name = "tasks.double")]
pub fn double(x: i64) -> i64 {
    2 * x
}

/// The error braid's `tasks.fail` returns: Python sees an exception of this name.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TaskFailed(String);

#[braid_core::task(name = "tasks.fail")]
pub fn fail(message: String) -> Result<(), TaskFailed> {
    Err(TaskFailed(message))
}

/// Retries once, then returns its argument and the retry count.
#[braid_core::task(name = "tasks.flaky")]
pub fn flaky(x: i64) -> Result<(i64, u32), braid_taskq::Retry> {
    let retries = braid_taskq::current().map_or(0, |c| c.retries());
    if retries == 0 {
        return Err(braid_taskq::retry(Some(Duration::from_millis(200))));
    }
    Ok((x, retries))
}

/// Sleeps `ms` milliseconds: a task that is surely running while a test inspects it.
#[braid_core::task(name = "tasks.sleep")]
pub fn sleep(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// An App on the broker at `broker` with results in `backend`, sending to `queue` by
/// default.
pub fn app_on(broker: &str, backend: &str, queue: &str) -> App {
    App::builder(broker, Some(backend))
        .default_queue(queue)
        .build()
        .unwrap()
}

/// Reads events until `done` says the collected ones are enough; panics after 30 s.
pub fn collect_until(
    receiver: &mut EventReceiver,
    mut done: impl FnMut(&[Event]) -> bool,
) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut events = Vec::new();
    while !done(&events) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "events missing; got {:#?}", kinds(&events));
        if let Some(event) = receiver.recv_timeout(left).unwrap() {
            events.push(event);
        }
    }
    events
}

/// The types of `events`, in order.
pub fn kinds(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.kind().to_string()).collect()
}

/// Whether `events` hold one of type `kind` for the task `uuid`.
pub fn has(events: &[Event], kind: &str, uuid: &str) -> bool {
    events
        .iter()
        .any(|e| e.kind() == kind && e.uuid() == Some(uuid))
}

/// The event of type `kind` for the task `id`; panics when there is none.
pub fn find<'a>(events: &'a [Event], kind: &str, id: &str) -> &'a Event {
    events
        .iter()
        .find(|e| e.kind() == kind && e.uuid() == Some(id))
        .unwrap_or_else(|| panic!("no {kind} for {id} in {:?}", kinds(events)))
}

/// The cluster state `events` build, in order.
pub fn cluster(events: &[Event]) -> ClusterState {
    let mut state = ClusterState::new();
    for e in events {
        state.event(e);
    }
    state
}

/// Pings the worker `name` until it answers pong; panics after `limit`. A broker that
/// cannot be reached yet (RabbitMQ restarting) is asked again.
pub fn wait_for_pong(app: &App, name: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let replies = app.control("ping", json!({}), Duration::from_millis(500), None);
        if let Ok(replies) = &replies
            && replies
                .iter()
                .any(|r| r.get(name) == Some(&json!({"ok": "pong"})))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no pong from {name} within {limit:?}: {replies:?}"
        );
    }
}

/// The JSON lines `stdout` prints, as they come (a thread reads them; other lines are
/// passed over).
pub fn json_lines(stdout: impl Read + Send + 'static) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Ok(v) = serde_json::from_str(&line)
                && tx.send(v).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// Deletes the keys under `prefix` in the Redis database at `url`.
pub fn clean_redis(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap();
    if !keys.is_empty() {
        let _removed: i64 = redis::cmd("DEL").arg(keys).query(&mut conn).unwrap();
    }
}

pub fn python() -> PathBuf {
    let python = std::env::var_os("BRAID_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/venv/bin/python")
        });
    let check = Command::new(&python)
        .args(["-c", "import celery, redis; print(celery.__version__)"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "these tests need Python with Celery at {} (scripts/test installs it): {e}",
                python.display()
            )
        });
    assert!(
        check.status.success(),
        "these tests need Celery 5 in {} (scripts/test installs celery[redis]): {}",
        python.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    python
}

pub fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// The venv's Python, run in the scripts' folder with them on `PYTHONPATH`, unbuffered,
/// with no stdin; the test adds its `BRAID_TEST_*` settings.
pub fn python_in_scripts() -> Command {
    in_scripts(python())
}

/// Python's `celery` command (the venv's `celery` script, or `python -m celery` where
/// there is none), run as [`python_in_scripts`] runs Python.
pub fn celery_in_scripts() -> Command {
    let script = python().with_file_name("celery");
    if script.is_file() {
        in_scripts(script)
    } else {
        let mut command = python_in_scripts();
        command.args(["-m", "celery"]);
        command
    }
}

fn in_scripts(program: PathBuf) -> Command {
    let mut command = Command::new(program);
    command
        .current_dir(scripts())
        .env("PYTHONPATH", scripts())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    command
}

/// Runs a command to completion, killing it after `limit`.
pub fn output_within(mut command: Command, limit: Duration) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("wait for python"),
        Err(_) => {
            kill(pid);
            panic!("the Python client did not finish within {limit:?}");
        }
    }
}

pub fn kill(pid: u32) {
    let status = Command::new("kill").args(["-9", &pid.to_string()]).status();
    if let Err(e) = status {
        eprintln!("could not kill {pid}: {e}");
    }
}

/// A Python Celery worker, killed when dropped (also when a test fails).
pub struct PythonWorker(Child);

impl PythonWorker {
    /// Starts `celery -A app_module worker -Q queue` through `command` (Python with the
    /// test's environment).
    pub fn start(command: Command, app_module: &str, queue: &str) -> PythonWorker {
        PythonWorker::start_with(command, app_module, queue, &[])
    }

    /// [`PythonWorker::start`] with more worker options (`-E` for events).
    pub fn start_with(
        mut command: Command,
        app_module: &str,
        queue: &str,
        options: &[&str],
    ) -> PythonWorker {
        let child = command
            .args([
                "-m",
                "celery",
                "-A",
                app_module,
                "worker",
                "-Q",
                queue,
                "--pool",
                "threads",
                "-c",
                "4",
                "--without-mingle",
                "--without-gossip",
                "-n",
                &format!("py-{queue}@localhost"),
                "-l",
                "warning",
            ])
            .args(options)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Python worker");
        PythonWorker(child)
    }
}

impl Drop for PythonWorker {
    fn drop(&mut self) {
        kill(self.0.id());
        if let Err(e) = self.0.wait() {
            eprintln!("could not reap the Python worker: {e}");
        }
    }
}

/// A chain, a group and a chord whose tasks alternate between braid workers on `rs_queue`
/// and Python workers on `py_queue` (which run `py.add` and `py.mul`).
pub fn canvas_across_languages(app: &App, rs_queue: &str, py_queue: &str, wait: Duration) {
    // A chain across both: braid adds, Python multiplies, braid adds again.
    let on = |q: &str| CallOptions::new().queue(q);
    let c = chain([
        Signature::new("tasks.add", vec![json!(1), json!(2)]).set(on(rs_queue)),
        Signature::new("py.mul", vec![json!(10)]).set(on(py_queue)),
        Signature::new("tasks.add", vec![json!(5)]).set(on(rs_queue)),
    ]);
    assert_eq!(app.apply(&c).unwrap().get(wait).unwrap(), json!(35));

    // A group across both, and a chord whose header runs in Python and body in braid.
    let g = group([
        Signature::new("py.add", vec![json!(1), json!(1)]).set(on(py_queue)),
        Signature::new("tasks.add", vec![json!(2), json!(2)]).set(on(rs_queue)),
    ]);
    let values: Vec<i64> = app.apply_group(&g).unwrap().get(wait).unwrap();
    assert_eq!(values, [2, 4]);
    let ch = braid_taskq::chord(
        (0..4).map(|i| Signature::new("py.add", vec![json!(i), json!(i)]).set(on(py_queue))),
        Signature::new("tasks.xsum", vec![]).set(on(rs_queue)),
    );
    assert_eq!(app.apply(&ch).unwrap().get(wait).unwrap(), json!(12));
}
