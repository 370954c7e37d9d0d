//! Both sides of starting a process: the parent re-executes the current binary with a
//! socket as the child's standard input and sends it a start message; `braid::init()` in
//! the child finds the socket (through [`ENV`]), reads the message, becomes the worker it
//! describes, and exits.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use braid_core::Codec;
use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};

use crate::wire::{self, Wire};
use crate::{Error, Result, share};

/// Set in a child's environment: `<parent pid>:<token>`. Its standard input is then the
/// socket the start message arrives on.
pub(crate) const ENV: &str = "BRAID_PROC_CHILD";

/// Whether `braid::init()` ran in this process (it must, before processes are started).
static INITIALIZED: AtomicBool = AtomicBool::new(false);

inventory::submit! {
    braid_core::StartupHook::new("braid-proc", startup)
}

/// What a process knows about itself, like Python's `multiprocessing.current_process()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The name given at start (`Process-1`, ...), or `MainProcess`.
    pub name: String,
    /// The process id.
    pub pid: u32,
    /// Whether it is a daemon (killed when its parent dies).
    pub daemon: bool,
    /// The id of the process that started it; `None` for the main process.
    pub parent_pid: Option<u32>,
}

static CURRENT: OnceLock<ProcessInfo> = OnceLock::new();

/// This process's name, pid and parent, like Python's `current_process()`.
pub fn current_process() -> ProcessInfo {
    CURRENT.get().cloned().unwrap_or_else(|| ProcessInfo {
        name: "MainProcess".to_string(),
        pid: std::process::id(),
        daemon: false,
        parent_pid: None,
    })
}

/// What a started process does.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Work {
    /// Run a registered task once.
    Task {
        name: String,
        codec: Codec,
        args: Vec<u8>,
    },
    /// Run an entry function or a `Run` value.
    Entry {
        entry: crate::entry::EntryPoint,
        args: Vec<u8>,
    },
    /// Serve a process pool.
    PoolWorker(crate::pool_worker::WorkerConfig),
    /// Serve a manager.
    Manager(crate::manager_server::ServerConfig),
}

/// The start message.
#[derive(Debug, Serialize, Deserialize)]
struct Launch {
    token: u64,
    parent: u32,
    name: String,
    daemon: bool,
    work: Work,
}

/// The last message of a process that ran a task: how the work ended.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Report {
    pub outcome: std::result::Result<(), braid_core::Error>,
}

/// The start-up hook: in a child, becomes its work and exits; otherwise notes that
/// `init` ran and returns.
fn startup() {
    INITIALIZED.store(true, Ordering::SeqCst);
    let Some(value) = std::env::var_os(ENV) else {
        return;
    };
    let Some((parent, token)) = parse_env(&value) else {
        tracing::warn!(?value, "{ENV} is set but malformed; starting normally");
        return;
    };
    // Only a socket on standard input means this process was started by braid; the
    // variable alone may have leaked into an unrelated program's environment.
    let stdin = std::io::stdin();
    let is_socket = rustix::fs::fstat(stdin.as_fd()).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Socket
    });
    if !is_socket {
        return;
    }
    let control = match stdin.as_fd().try_clone_to_owned() {
        Ok(fd) => fd,
        Err(e) => die(&format!("cannot take the start socket: {e}")),
    };
    match std::fs::File::open("/dev/null") {
        Ok(null) => {
            if let Err(e) = rustix::stdio::dup2_stdin(&null) {
                tracing::debug!(error = %e, "could not point stdin at /dev/null");
            }
        }
        Err(e) => tracing::debug!(error = %e, "could not open /dev/null"),
    }
    run_child(parent, token, control)
}

fn parse_env(value: &OsString) -> Option<(u32, u64)> {
    let text = value.to_str()?;
    let (parent, token) = text.split_once(':')?;
    Some((parent.parse().ok()?, u64::from_str_radix(token, 16).ok()?))
}

/// Ends a child that cannot run its work.
fn die(message: &str) -> ! {
    tracing::error!(
        pid = std::process::id(),
        "a braid child process cannot run its work: {message}"
    );
    std::process::exit(111)
}

/// Ends the process after flushing standard output.
pub(crate) fn exit(code: i32) -> ! {
    use std::io::Write;
    if let Err(e) = std::io::stdout().flush() {
        tracing::debug!(error = %e, "flushing stdout at exit");
    }
    std::process::exit(code)
}

fn run_child(parent: u32, token: u64, control: OwnedFd) -> ! {
    let mut wire = Wire::new(control);
    let (frame, fds) = match wire.recv_with_fds() {
        Ok(received) => received,
        // The parent went away before it sent the work: nothing to do.
        Err(Error::Closed) => exit(1),
        Err(e) => die(&format!("cannot read the start message: {e}")),
    };
    let launch: Launch = match Codec::Binary.decode(&frame) {
        Ok(launch) => launch,
        Err(e) => die(&format!(
            "undecodable start message (is the binary the same?): {e}"
        )),
    };
    if launch.token != token || launch.parent != parent {
        die("the start message does not match this process's token");
    }
    share::install(fds);
    let info = ProcessInfo {
        name: launch.name,
        pid: std::process::id(),
        daemon: launch.daemon,
        parent_pid: Some(parent),
    };
    if CURRENT.set(info).is_err() {
        tracing::debug!("process info set twice");
    }
    if launch.daemon {
        // Killed with the parent. Set after exec (it is kept across exec, but cannot be
        // set before it without code between fork and exec); the check after it closes
        // the window where the parent died first.
        if let Err(e) =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        {
            tracing::warn!(error = %e, "cannot ask to die with the parent");
        }
        if rustix::process::getppid().map(|p| p.as_raw_nonzero().get().unsigned_abs())
            != Some(parent)
        {
            exit(1);
        }
    }
    let outcome = match launch.work {
        Work::Task { name, codec, args } => braid_core::call(&name, codec, &args).map(drop),
        Work::Entry { entry, args } => entry.call(&args),
        Work::PoolWorker(config) => crate::pool_worker::run(wire, config),
        Work::Manager(config) => crate::manager_server::run(wire, config),
    };
    let failed = outcome.is_err();
    match Codec::Binary.encode(&Report { outcome }) {
        Ok(report) => {
            if let Err(e) = wire.send(&report) {
                tracing::debug!(error = %e, "the parent is not listening for the report");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot encode the report"),
    }
    exit(i32::from(failed))
}

/// A freshly started child: the process and the parent's end of its socket.
pub(crate) struct Spawned {
    pub process: std::process::Child,
    pub wire: Wire,
}

struct SpawnRequest {
    stdin: OwnedFd,
    env: String,
    reply: Sender<std::io::Result<std::process::Child>>,
}

/// The program and arguments a child is started with: this very binary, with the same
/// arguments (as Python's spawn gives the child the parent's `sys.argv`).
fn program() -> Result<&'static (PathBuf, Vec<OsString>)> {
    static PROGRAM: OnceLock<std::result::Result<(PathBuf, Vec<OsString>), String>> =
        OnceLock::new();
    PROGRAM
        .get_or_init(|| {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            Ok((exe, std::env::args_os().skip(1).collect()))
        })
        .as_ref()
        .map_err(|e| Error::os("finding the current executable", e))
}

/// The thread every child is started from.
///
/// A child's parent-death signal fires when the *thread* that started it ends, so
/// children are started from one thread that lives as long as the process.
fn spawner() -> Result<&'static Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<std::result::Result<Sender<SpawnRequest>, String>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (tx, rx) = crossbeam_channel::unbounded::<SpawnRequest>();
            std::thread::Builder::new()
                .name("braid-spawner".into())
                .spawn(move || serve_spawns(&rx))
                .map_err(|e| e.to_string())?;
            Ok(tx)
        })
        .as_ref()
        .map_err(|e| Error::os("starting the spawner thread", e))
}

fn serve_spawns(requests: &Receiver<SpawnRequest>) {
    for request in requests {
        let result = program()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|(exe, args)| {
                Command::new(exe)
                    .args(args)
                    .env(ENV, &request.env)
                    .stdin(Stdio::from(request.stdin))
                    .spawn()
            });
        if request.reply.send(result).is_err() {
            tracing::debug!("a spawn's requester went away");
        }
    }
}

/// Starts a child that will run `work`; `fds` travel with the start message.
pub(crate) fn spawn(name: &str, daemon: bool, work: Work, fds: &[OwnedFd]) -> Result<Spawned> {
    if !INITIALIZED.load(Ordering::SeqCst) {
        return Err(Error::NotInitialized);
    }
    let token = crate::sys::random_u64();
    let parent = std::process::id();
    let launch = Launch {
        token,
        parent,
        name: name.to_string(),
        daemon,
        work,
    };
    let frame = Codec::Binary.encode(&launch)?;
    let (wire, theirs) = Wire::pair()?;
    let (reply, answer) = crossbeam_channel::bounded(1);
    spawner()?
        .send(SpawnRequest {
            stdin: theirs,
            env: format!("{parent}:{token:x}"),
            reply,
        })
        .map_err(|_| Error::os("starting a process", "the spawner thread is gone"))?;
    let mut process = answer
        .recv()
        .map_err(|_| Error::os("starting a process", "the spawner thread is gone"))?
        .map_err(|e| Error::os("starting a process", e))?;
    if let Err(e) = wire::send_with_fds(wire.fd(), &frame, fds) {
        reap_after_failure(&mut process);
        return Err(e);
    }
    tracing::debug!(pid = process.id(), name, "started a process");
    Ok(Spawned { process, wire })
}

/// Kills and reaps a child that cannot be used.
pub(crate) fn reap_after_failure(process: &mut std::process::Child) {
    if let Err(e) = process.kill() {
        tracing::debug!(error = %e, "killing a failed child");
    }
    if let Err(e) = process.wait() {
        tracing::debug!(error = %e, "reaping a failed child");
    }
}
