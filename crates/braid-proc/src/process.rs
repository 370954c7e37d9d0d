//! [`Process`]: work running in another process of this program, like Python's
//! `multiprocessing.Process`.

use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use braid_core::{Codec, TaskRef};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::child::{Report, Spawned, Work};
use crate::entry::{EntryPoint, Run};
use crate::wire::Wire;
use crate::{Error, Result, share, sys};

/// Work running in a separate process of this program, like Python's
/// `multiprocessing.Process`.
///
/// The child is this same executable started again (Python's "spawn"; no `fork` of a
/// threaded process): `braid::init()`, the first statement of `main`, turns it into the
/// worker. It runs one of:
/// - a registered task with its arguments ([`Process::new`]),
/// - a plain function of one serde argument ([`Process::from_fn`]),
/// - a value of a type implementing [`Run`] ([`Process::from_run`]), the counterpart of
///   subclassing `Process` and overriding `run()`.
///
/// Arguments are encoded with serde. Shared objects of this crate (a [`Queue`], a
/// [`Lock`], a [`Connection`], a [`Value`], ...) may be among them: the child gets its own
/// handle on the same object, as with Python's inheritance.
///
/// [`join`](Process::join) returns `Ok` when the child exited with code 0, the task's own
/// error when it failed or panicked (the panic message crosses over), and
/// [`Error::Exited`] / [`Error::Killed`] otherwise. [`exitcode`](Process::exitcode) is
/// Python's: the code, or minus the signal number. A daemon child is killed when this
/// process dies. Dropping a `Process` neither kills nor waits for the child; a
/// background thread reaps it, so no zombie is left.
///
/// [`Queue`]: crate::Queue
/// [`Lock`]: crate::Lock
/// [`Connection`]: crate::Connection
/// [`Value`]: crate::Value
///
/// ```no_run
/// use braid_proc::Process;
///
/// #[braid_core::task]
/// fn greet(name: String) {
///     println!("hello, {name}, from {}", braid_proc::current_process().name);
/// }
///
/// fn main() {
///     braid_core::init(); // first: in the child, this runs `greet` and exits
///     let mut p = Process::new(greet::task(), ("world".to_string(),)).named("greeter");
///     p.start().unwrap();
///     p.join().unwrap();
///     assert_eq!(p.exitcode(), Some(0));
/// }
/// ```
pub struct Process {
    name: String,
    daemon: bool,
    /// The encoded work and the descriptors it carries, until `start`.
    payload: Option<Result<(Work, Vec<OwnedFd>)>>,
    pid: Option<u32>,
    /// The socket the child reports on; whoever waits holds it.
    wire: Mutex<Option<Wire>>,
    child: Mutex<ChildState>,
    /// How the work ended, as the child reported it.
    report: Mutex<Option<std::result::Result<(), braid_core::Error>>>,
}

enum ChildState {
    NotStarted,
    Running(std::process::Child),
    Exited(ExitStatus),
}

static NEXT_NUMBER: AtomicUsize = AtomicUsize::new(1);

fn default_name() -> String {
    format!("Process-{}", NEXT_NUMBER.fetch_add(1, Ordering::Relaxed))
}

fn encode<A: Serialize + ?Sized>(args: &A) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let (bytes, fds) = share::collect(|| share::encode(args));
    Ok((bytes?, fds))
}

impl Process {
    fn with_payload(payload: Result<(Work, Vec<OwnedFd>)>) -> Process {
        Process {
            name: default_name(),
            daemon: false,
            payload: Some(payload),
            pid: None,
            wire: Mutex::new(None),
            child: Mutex::new(ChildState::NotStarted),
            report: Mutex::new(None),
        }
    }

    /// A process that will run the registered `task` with `args` (not started yet).
    ///
    /// The arguments are encoded now; an argument that cannot be encoded makes
    /// [`start`](Process::start) fail.
    pub fn new<A: Serialize, R: DeserializeOwned>(task: TaskRef<A, R>, args: A) -> Process {
        let payload = encode(&args).map(|(args, fds)| {
            (
                Work::Task {
                    name: task.name().to_string(),
                    codec: Codec::Binary,
                    args,
                },
                fds,
            )
        });
        Process::with_payload(payload)
    }

    /// A process that will call `f(arg)`: any plain function of this program (not a
    /// closure), no registration needed. Take a tuple or a struct for several values.
    pub fn from_fn<A: Serialize + DeserializeOwned>(f: fn(A), arg: A) -> Process {
        let payload = EntryPoint::function(f)
            .map_err(|why| Error::Core(braid_core::Error::Encode(why)))
            .and_then(|entry| encode(&arg).map(|(args, fds)| (Work::Entry { entry, args }, fds)));
        Process::with_payload(payload)
    }

    /// A process that will run `target.run()`: the counterpart of a `Process` subclass.
    pub fn from_run<T: Run>(target: T) -> Process {
        let payload = EntryPoint::runnable::<T>()
            .map_err(|why| Error::Core(braid_core::Error::Encode(why)))
            .and_then(|entry| {
                encode(&target).map(|(args, fds)| (Work::Entry { entry, args }, fds))
            });
        Process::with_payload(payload)
    }

    /// Names the process (default `Process-N`); the child sees it in
    /// [`current_process`](crate::current_process).
    pub fn named(mut self, name: impl Into<String>) -> Process {
        self.name = name.into();
        self
    }

    /// Makes the process a daemon: the system kills it when this process dies.
    pub fn daemon(mut self, daemon: bool) -> Process {
        self.daemon = daemon;
        self
    }

    /// The process's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is a daemon.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// The child's process id, once started.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Starts the child.
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`]; an argument that could not be encoded;
    /// [`Error::NotInitialized`] when `braid::init()` did not run in this program;
    /// [`Error::Os`] when the system refuses to start a process.
    pub fn start(&mut self) -> Result<()> {
        let (work, fds) = self.payload.take().ok_or(Error::AlreadyStarted)??;
        let Spawned { process, wire } = crate::child::spawn(&self.name, self.daemon, work, &fds)?;
        self.pid = Some(process.id());
        *self.wire.lock() = Some(wire);
        *self.child.lock() = ChildState::Running(process);
        Ok(())
    }

    /// Whether the child has started and not yet exited.
    pub fn is_alive(&self) -> bool {
        let mut child = self.child.lock();
        match &mut *child {
            ChildState::Running(process) => match process.try_wait() {
                Ok(Some(status)) => {
                    *child = ChildState::Exited(status);
                    false
                }
                Ok(None) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "try_wait failed");
                    true
                }
            },
            ChildState::NotStarted | ChildState::Exited(_) => false,
        }
    }

    /// Python's `exitcode`: `None` while running (or not started), the exit code once it
    /// exited, minus the signal number when a signal killed it.
    pub fn exitcode(&self) -> Option<i32> {
        if self.is_alive() {
            return None;
        }
        match &*self.child.lock() {
            ChildState::Exited(status) => Some(exit_code(*status)),
            _ => None,
        }
    }

    /// Waits for the child to exit.
    ///
    /// # Errors
    /// The task's error when it failed or panicked (its message crossed over);
    /// [`Error::Exited`] for another non-zero exit; [`Error::Killed`] when a signal
    /// ended it; [`Error::NotStarted`].
    pub fn join(&self) -> Result<()> {
        self.join_deadline(None, Duration::MAX)
    }

    /// Like [`join`](Process::join), giving up after `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the child still runs (it is left running), or as `join`.
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.join_deadline(sys::deadline(timeout), timeout)
    }

    fn join_deadline(&self, deadline: Option<Instant>, timeout: Duration) -> Result<()> {
        {
            let mut wire = self.wire.lock();
            if matches!(*self.child.lock(), ChildState::NotStarted) {
                return Err(Error::NotStarted);
            }
            // The child's end closes when it exits; its report, if any, comes first.
            if let Some(w) = wire.as_mut() {
                loop {
                    if !w.wait(deadline, false)? {
                        return Err(Error::Timeout(timeout));
                    }
                    match w.take() {
                        Ok(frame) => match Codec::Binary.decode::<Report>(frame) {
                            Ok(report) => *self.report.lock() = Some(report.outcome),
                            Err(e) => tracing::warn!(error = %e, "undecodable report from a child"),
                        },
                        Err(Error::Closed) => break,
                        Err(e) => return Err(e),
                    }
                }
                *wire = None;
            }
        }
        let status = self.reap()?;
        let report = self.report.lock().clone();
        self.result(status, report)
    }

    fn reap(&self) -> Result<ExitStatus> {
        let mut child = self.child.lock();
        let status = match &mut *child {
            ChildState::Running(process) => process
                .wait()
                .map_err(|e| Error::os("waiting for a process", e))?,
            ChildState::Exited(status) => *status,
            ChildState::NotStarted => return Err(Error::NotStarted),
        };
        *child = ChildState::Exited(status);
        Ok(status)
    }

    fn result(
        &self,
        status: ExitStatus,
        report: Option<std::result::Result<(), braid_core::Error>>,
    ) -> Result<()> {
        let pid = self.pid.unwrap_or(0);
        if status.success() {
            return Ok(());
        }
        if let Some(Err(e)) = report {
            return Err(Error::Core(e));
        }
        match (status.code(), status.signal()) {
            (_, Some(signal)) => Err(Error::Killed {
                name: self.name.clone(),
                pid,
                signal,
            }),
            (code, None) => Err(Error::Exited {
                name: self.name.clone(),
                pid,
                code: code.unwrap_or(-1),
            }),
        }
    }

    fn signal(&self, signal: rustix::process::Signal) -> Result<()> {
        let child = self.child.lock();
        match &*child {
            ChildState::NotStarted => Err(Error::NotStarted),
            ChildState::Exited(_) => Ok(()),
            ChildState::Running(process) => {
                // The child is not reaped while we hold the lock, so its pid is still its.
                let pid = rustix::process::Pid::from_child(process);
                match rustix::process::kill_process(pid, signal) {
                    Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
                    Err(e) => Err(Error::os("signalling a process", e)),
                }
            }
        }
    }

    /// Asks the child to stop (`SIGTERM`), like Python's `terminate()`; `join` then
    /// reports [`Error::Killed`] with signal 15 unless the child handled it.
    ///
    /// # Errors
    /// [`Error::NotStarted`]; a system error.
    pub fn terminate(&self) -> Result<()> {
        self.signal(rustix::process::Signal::TERM)
    }

    /// Kills the child (`SIGKILL`), like Python's `kill()`.
    ///
    /// # Errors
    /// [`Error::NotStarted`]; a system error.
    pub fn kill(&self) -> Result<()> {
        self.signal(rustix::process::Signal::KILL)
    }
}

/// Python's exit code: the code, or minus the signal number.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => -signal,
        (None, None) => -1,
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let child = std::mem::replace(&mut *self.child.lock(), ChildState::NotStarted);
        if let ChildState::Running(mut process) = child {
            let reaped = std::thread::Builder::new()
                .name("braid-reaper".into())
                .spawn(move || {
                    if let Err(e) = process.wait() {
                        tracing::debug!(error = %e, "reaping a dropped process");
                    }
                });
            if let Err(e) = reaped {
                tracing::warn!(error = %e, "cannot start a thread to reap a dropped process");
            }
        }
    }
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("daemon", &self.daemon)
            .field("pid", &self.pid)
            .finish()
    }
}
