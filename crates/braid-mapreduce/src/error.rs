use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Phase;

/// Every way a MapReduce job can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The job has no output directory.
    #[error("the job has no output directory: call Job::output_dir")]
    NoOutputDir,
    /// The job has no inputs, or a pattern matched no file.
    #[error("no input: {0}")]
    NoInput(String),
    /// A glob pattern is malformed.
    #[error("bad input pattern `{pattern}`: {message}")]
    BadPattern {
        /// The pattern given.
        pattern: String,
        /// What the glob parser said.
        message: String,
    },
    /// A setting cannot be used (zero partitions, a zero memory budget, ...).
    #[error("invalid job setting: {0}")]
    InvalidSetting(String),
    /// The output directory holds a finished or partial output already, and the job was
    /// not told to overwrite it.
    #[error("output directory {} already holds {what}; remove it or set Job::overwrite(true)", path.display())]
    OutputExists {
        /// The output directory.
        path: PathBuf,
        /// What is there (`_SUCCESS`, a partition file).
        what: String,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An input file is not valid UTF-8 text.
    #[error("{}: not UTF-8 text (invalid byte at offset {offset})", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The byte offset of the first invalid byte.
        offset: u64,
    },
    /// No program of this name is registered in the binary running the task.
    #[error(
        "unknown MapReduce program `{0}`: register it with braid_mapreduce::register!(Type) in the binary that runs the workers"
    )]
    UnknownProgram(String),
    /// Two programs were registered under one name.
    #[error("MapReduce program name `{0}` is registered more than once")]
    DuplicateProgram(String),
    /// The program's settings could not be encoded or decoded.
    #[error("program `{program}`: its settings do not encode or decode: {message}")]
    Params {
        /// The program.
        program: String,
        /// What the codec said.
        message: String,
    },
    /// The partition function returned a number outside `0..partitions`.
    #[error("the partition function returned {returned} for {partitions} partitions")]
    BadPartition {
        /// What it returned.
        returned: u32,
        /// How many partitions the job has.
        partitions: u32,
    },
    /// An intermediate or output file is not in the expected format.
    #[error("{}: corrupt record file: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The program's map or reduce function returned an error (the task is retried).
    #[error("{0}")]
    Program(String),
    /// A map task kept failing: the job stopped.
    #[error("map task {task} ({input}) failed {attempts} times; last error: {cause}")]
    MapFailed {
        /// The map task's number.
        task: usize,
        /// The input split it reads (`file [start..end)`).
        input: String,
        /// How many attempts ran.
        attempts: u32,
        /// The last attempt's error.
        cause: String,
    },
    /// A reducer kept failing: the job stopped and no output was committed.
    #[error("reduce of partition {partition} failed {attempts} times; last error: {cause}")]
    ReduceFailed {
        /// The partition.
        partition: u32,
        /// How many attempts ran.
        attempts: u32,
        /// The last attempt's error.
        cause: String,
    },
    /// The executor refused the work (shut down, broken).
    #[error("the executor refused a {phase} task: {source}")]
    Executor {
        /// The phase.
        phase: Phase,
        /// The executor's error.
        #[source]
        source: braid_core::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// A result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A task's failure that running it again cannot fix; it ends the job at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Permanent {
    NotUtf8 { path: PathBuf, offset: u64 },
    UnknownProgram(String),
    DuplicateProgram(String),
    Params { program: String, message: String },
    BadPartition { returned: u32, partitions: u32 },
}

impl From<Permanent> for Error {
    fn from(p: Permanent) -> Self {
        match p {
            Permanent::NotUtf8 { path, offset } => Error::NotUtf8 { path, offset },
            Permanent::UnknownProgram(name) => Error::UnknownProgram(name),
            Permanent::DuplicateProgram(name) => Error::DuplicateProgram(name),
            Permanent::Params { program, message } => Error::Params { program, message },
            Permanent::BadPartition {
                returned,
                partitions,
            } => Error::BadPartition {
                returned,
                partitions,
            },
        }
    }
}

/// How a task failed inside a worker: worth another attempt, or not.
#[derive(Debug)]
pub(crate) enum TaskFailure {
    Permanent(Permanent),
    Retry(String),
}

impl From<Error> for TaskFailure {
    fn from(e: Error) -> Self {
        match e {
            Error::NotUtf8 { path, offset } => {
                TaskFailure::Permanent(Permanent::NotUtf8 { path, offset })
            }
            Error::UnknownProgram(name) => TaskFailure::Permanent(Permanent::UnknownProgram(name)),
            Error::DuplicateProgram(name) => {
                TaskFailure::Permanent(Permanent::DuplicateProgram(name))
            }
            Error::Params { program, message } => {
                TaskFailure::Permanent(Permanent::Params { program, message })
            }
            Error::BadPartition {
                returned,
                partitions,
            } => TaskFailure::Permanent(Permanent::BadPartition {
                returned,
                partitions,
            }),
            other => TaskFailure::Retry(other.to_string()),
        }
    }
}

/// The error type user map and reduce functions return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
