//! The errors of braid-proc.

use std::time::Duration;

/// Every way a process, connection, queue, lock or shared object can fail.
///
/// The type is `Clone` so that one outcome can reach several waiters; operating-system
/// errors keep their text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A process was started from a program whose `main` did not call `braid::init()`
    /// first: the child would run that program's `main` instead of its work.
    #[error(
        "braid::init() was not called: call it first thing in main before starting processes \
         (a child re-executes this program, and init() is what turns it into the worker)"
    )]
    NotInitialized,
    /// The operating system refused something (a fork, a socket, a mapping).
    #[error("{what}: {message}")]
    Os {
        /// What was being done.
        what: String,
        /// The system's message.
        message: String,
    },
    /// The other end of a connection is gone (closed, or its process exited): nothing
    /// more will arrive, and nothing sent will be read.
    #[error("the other end of the connection is closed")]
    Closed,
    /// A wait gave up after this long.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Encoding, decoding, a task's own failure, an unknown task, a lost worker.
    #[error(transparent)]
    Core(#[from] braid_core::Error),
    /// The process exited with a non-zero code.
    #[error("process `{name}` (pid {pid}) exited with code {code}")]
    Exited {
        /// The process's name.
        name: String,
        /// Its process id.
        pid: u32,
        /// Its exit code.
        code: i32,
    },
    /// The process was killed by a signal.
    #[error("process `{name}` (pid {pid}) was killed by signal {signal} ({})", signal_name(*.signal))]
    Killed {
        /// The process's name.
        name: String,
        /// Its process id.
        pid: u32,
        /// The signal number.
        signal: i32,
    },
    /// `join`, `terminate` or `kill` on a process that was never started.
    #[error("the process has not been started")]
    NotStarted,
    /// `start` on a process that was started already.
    #[error("a process can be started only once")]
    AlreadyStarted,
    /// An `RLock` was released by a thread that does not hold it.
    #[error("the lock is not held by the calling thread")]
    NotOwner,
    /// A lock or bounded semaphore was released more times than it was acquired.
    #[error("released too many times: the value would exceed its bound of {bound}")]
    Overflow {
        /// The largest value allowed.
        bound: usize,
    },
    /// The barrier is broken (aborted, reset while waiting, or a wait timed out).
    #[error("the barrier is broken")]
    BrokenBarrier,
    /// A non-blocking get found the queue empty.
    #[error("the queue is empty")]
    Empty,
    /// A non-blocking put found the queue full.
    #[error("the queue is full")]
    Full,
    /// An encoded item is larger than the queue's whole buffer.
    #[error("an item of {size} bytes does not fit in the queue's buffer of {capacity} bytes")]
    TooLarge {
        /// The encoded item's size.
        size: usize,
        /// The queue's buffer size.
        capacity: usize,
    },
    /// `task_done` was called more times than items were put.
    #[error("task_done() called more times than there were items put")]
    TooManyTaskDone,
    /// An index past the end of a shared array or memory block.
    #[error("index {index} is out of bounds for length {len}")]
    OutOfBounds {
        /// The index asked for.
        index: usize,
        /// The length.
        len: usize,
    },
    /// The peer refused the authentication key, or gave a wrong answer to ours.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// A manager refused a request (no such object, wrong type, missing key...).
    #[error("manager: {0}")]
    Remote(String),
    /// `join` on a pool that was neither closed nor terminated (it would wait forever).
    #[error("join() needs close() or terminate() first: the pool is still taking work")]
    PoolRunning,
}

impl Error {
    pub(crate) fn os(what: impl Into<String>, error: impl std::fmt::Display) -> Self {
        Error::Os {
            what: what.into(),
            message: error.to_string(),
        }
    }

    /// Whether this is a [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }
}

/// braid-proc's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The conventional name of a signal number (`SIGKILL` for 9), or `"unknown signal"`.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "unknown signal",
    }
}
