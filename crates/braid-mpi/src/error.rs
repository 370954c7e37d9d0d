//! [`Error`]: everything a call of this crate can fail with.

use crate::ElementKind;

/// What went wrong in an MPI call. Every blocking call returns one of these instead of
/// hanging when a rank dies, and instead of undefined behaviour on a mismatched receive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another rank failed (panicked, returned an error, or its process died), so the job
    /// was aborted; every rank's pending and later calls return this.
    #[error("the job was aborted: rank {rank} failed")]
    Aborted {
        /// The world rank that failed first.
        rank: usize,
    },
    /// The rank this call waits on has finished (or exited) without sending what the call
    /// waits for.
    #[error("rank {rank} has finished and will never send or receive again")]
    PeerGone {
        /// The rank (in the communicator of the call) that is gone.
        rank: usize,
    },
    /// A receive from any source waits, but every other rank has finished.
    #[error("every other rank has finished; nothing can arrive")]
    AllPeersGone,
    /// The process that launched this rank (`braid run`) is gone.
    #[error("the launcher of this job (pid {pid}) is gone")]
    LauncherGone {
        /// The launcher's pid.
        pid: u32,
    },
    /// A rank's closure panicked (thread mode) or its process exited with a failure
    /// (process mode).
    #[error("rank {rank} failed: {message}")]
    RankFailed {
        /// The world rank.
        rank: usize,
        /// The panic message or exit status.
        message: String,
    },
    /// An object was received where a typed buffer was expected, or the other way round.
    #[error(
        "a {found} message arrived where a {expected} was expected (source {source_rank}, tag {tag})"
    )]
    KindMismatch {
        /// What the receive expected: "object" or "buffer".
        expected: &'static str,
        /// What arrived.
        found: &'static str,
        /// The sender's rank.
        source_rank: usize,
        /// The message's tag.
        tag: i32,
    },
    /// A typed buffer of another element type arrived.
    #[error(
        "a buffer of {found} arrived where {expected} was expected (source {source_rank}, tag {tag})"
    )]
    TypeMismatch {
        /// The element type of the receive.
        expected: ElementKind,
        /// The element type that was sent.
        found: ElementKind,
        /// The sender's rank.
        source_rank: usize,
        /// The message's tag.
        tag: i32,
    },
    /// The message is longer than the receive buffer (MPI's `MPI_ERR_TRUNCATE`).
    #[error(
        "a message of {found} elements does not fit a buffer of {capacity} (source {source_rank}, tag {tag})"
    )]
    Truncated {
        /// The elements that arrived.
        found: usize,
        /// The elements the buffer holds.
        capacity: usize,
        /// The sender's rank.
        source_rank: usize,
        /// The message's tag.
        tag: i32,
    },
    /// The bytes of a buffer message are not a whole number of elements of the receive's
    /// type. Only the Open MPI backend returns this: MPI messages do not carry their
    /// element type, so a buffer of another type is seen only by its size.
    #[error(
        "a message of {bytes} bytes is not a whole number of {expected} elements (source {source_rank}, tag {tag})"
    )]
    NotWholeElements {
        /// The bytes that arrived.
        bytes: usize,
        /// The element type of the receive.
        expected: ElementKind,
        /// The sender's rank.
        source_rank: usize,
        /// The message's tag.
        tag: i32,
    },
    /// An MPI call failed (the Open MPI backend).
    #[error("{call} failed: {message} (MPI error {code})")]
    Mpi {
        /// The MPI function.
        call: &'static str,
        /// Its error code.
        code: i32,
        /// MPI's description of the error.
        message: String,
    },
    /// An object message could not be decoded as the type asked for.
    #[error("cannot decode the object from rank {source_rank} (tag {tag}): {reason}")]
    Decode {
        /// The sender's rank.
        source_rank: usize,
        /// The message's tag.
        tag: i32,
        /// The decoder's message.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("cannot encode the object: {0}")]
    Encode(String),
    /// An argument is out of range: a rank, a tag, a root, a count, a dimension.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A reduction was asked for an operation its type does not have (a bitwise AND of
    /// floats, say).
    #[error("the operation {op} is not defined for {ty}")]
    OpNotDefined {
        /// The operation.
        op: &'static str,
        /// The type.
        ty: &'static str,
    },
    /// Another rank's part of a collective failed (its operation was not defined for the
    /// type, say), so this rank's part cannot complete either.
    #[error("rank {rank} failed in the collective: {message}")]
    Remote {
        /// The rank (in the communicator) whose part failed.
        rank: usize,
        /// Its error.
        message: String,
    },
    /// A request was waited for or tested after it had completed.
    #[error("the request has already completed")]
    RequestDone,
    /// This process was not started by `braid run` (nor by anything that sets the same
    /// environment).
    #[error("not started by `braid run`: {0}")]
    NotLaunched(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn os(what: impl Into<String>, source: impl Into<std::io::Error>) -> Error {
        Error::Os {
            what: what.into(),
            source: source.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidArgument(message.into())
    }
}

/// The result of every fallible call in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
