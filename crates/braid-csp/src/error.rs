//! The errors of braid-csp.

use std::sync::Arc;

/// Every way a channel operation, an alternation or a process can fail.
///
/// [`Poisoned`](Error::Poisoned) and [`Retired`](Error::Retired) are how a CSP network
/// shuts down: a process that returns them with `?` ends cleanly, and
/// [`Parallel`](crate::Parallel) counts it as stopped, not failed. Every other variant is
/// a real failure: the process that returns it poisons the channels it holds, so that the
/// rest of the network stops too, and `Parallel` reports the error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The channel was poisoned (PyCSP's `ChannelPoisonException`).
    #[error("the channel is poisoned")]
    Poisoned,
    /// The channel end, or the whole channel, has retired (PyCSP's
    /// `ChannelRetireException`): the end was retired, or every reader or every writer of
    /// the channel has.
    #[error("the channel is retired")]
    Retired,
    /// The connection behind a network channel was lost (PyCSP's `ChannelLostException`).
    #[error("the connection to {peer} was lost: {reason}")]
    ConnectionLost {
        /// The other side's address.
        peer: String,
        /// What the socket said.
        reason: String,
    },
    /// A network channel, host or name server could not be reached
    /// (PyCSP's `ChannelConnectException`).
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address tried.
        addr: String,
        /// What the socket said.
        reason: String,
    },
    /// A listening socket could not be opened (PyCSP's `ChannelBindException`).
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the socket said.
        reason: String,
    },
    /// No channel is registered under this name (at the name server or at a host).
    #[error("no channel named `{0}`")]
    UnknownName(String),
    /// A channel is already registered under this name.
    #[error("a channel named `{0}` is already registered")]
    NameTaken(String),
    /// The peer sent something that is not braid-csp's protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A value could not be encoded or decoded for the network.
    #[error(transparent)]
    Codec(#[from] braid_core::Error),
    /// A process panicked; the panic was caught.
    #[error("process `{process}` panicked: {message}")]
    Panicked {
        /// The process's name.
        process: String,
        /// The panic message.
        message: String,
    },
    /// A blocking call (`blocking_read`, `Parallel::run`, ...) was made on a thread of a
    /// braid-csp scheduler, where it would stop every process of that thread.
    #[error("a blocking call was made inside an async CSP process; use the async form (`.await`)")]
    BlockingInScheduler,
    /// An alternation was asked to choose, but none of its guards is enabled, so it
    /// could never return.
    #[error("no guard of the alternation is enabled")]
    NoGuardEnabled,
    /// The operation is not available on this kind of channel end.
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// The scheduler dropped the process before it finished (its runtime was shut down).
    #[error("process `{0}` was dropped before it finished")]
    Cancelled(String),
    /// A process failed with an error of its own.
    #[error(transparent)]
    Other(Arc<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wraps any error as [`Error::Other`], e.g. `parse().map_err(Error::other)?` in a
    /// process.
    pub fn other(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Other(Arc::new(error))
    }

    /// True for [`Error::Poisoned`].
    pub fn is_poisoned(&self) -> bool {
        matches!(self, Error::Poisoned)
    }

    /// True for [`Error::Retired`].
    pub fn is_retired(&self) -> bool {
        matches!(self, Error::Retired)
    }

    /// True when the error is how a network shuts down (poison or retire) rather than a
    /// failure.
    pub fn is_shutdown(&self) -> bool {
        self.is_poisoned() || self.is_retired()
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::other(error)
    }
}

impl PartialEq for Error {
    /// Errors are equal when they are the same variant with equal fields; two
    /// [`Error::Other`] are equal when they hold the same error object.
    fn eq(&self, other: &Self) -> bool {
        use Error::*;
        match (self, other) {
            (Poisoned, Poisoned)
            | (Retired, Retired)
            | (BlockingInScheduler, BlockingInScheduler)
            | (NoGuardEnabled, NoGuardEnabled) => true,
            (ConnectionLost { peer: a, reason: b }, ConnectionLost { peer: c, reason: d })
            | (Connect { addr: a, reason: b }, Connect { addr: c, reason: d })
            | (Bind { addr: a, reason: b }, Bind { addr: c, reason: d })
            | (
                Panicked {
                    process: a,
                    message: b,
                },
                Panicked {
                    process: c,
                    message: d,
                },
            ) => a == c && b == d,
            (UnknownName(a), UnknownName(b))
            | (NameTaken(a), NameTaken(b))
            | (Protocol(a), Protocol(b))
            | (Cancelled(a), Cancelled(b)) => a == b,
            (Codec(a), Codec(b)) => a == b,
            (Unsupported(a), Unsupported(b)) => a == b,
            (Other(a), Other(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// A write that failed; the value that was not delivered comes back inside, so nothing
/// is lost.
///
/// `?` turns it into the [`Error`] (dropping the value), so a process can write
/// `out.write(v).await?`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct WriteError<T> {
    /// Why the write failed.
    pub error: Error,
    /// The value that was not written.
    pub value: T,
}

impl<T> WriteError<T> {
    /// The value that was not written.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> From<WriteError<T>> for Error {
    fn from(error: WriteError<T>) -> Self {
        error.error
    }
}

/// braid-csp's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
