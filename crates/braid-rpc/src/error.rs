use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every way a remote call, a daemon or a name-server operation can fail.
///
/// Errors raised by the daemon (an unknown object, a method that panicked) arrive with
/// the same variant on the client. The type is `Clone` so one outcome can be handed to
/// several waiters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URI does not parse.
    #[error("invalid URI `{uri}`: {reason}")]
    InvalidUri {
        /// The text given.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection could be made to the daemon.
    #[error("cannot connect to {address}: {message}")]
    Connect {
        /// The daemon's address.
        address: String,
        /// What the operating system said.
        message: String,
    },
    /// The connection broke while a call was under way (the daemon stopped or the network
    /// failed). The call may or may not have run; the next call reconnects.
    #[error("connection to {address} lost: {message}")]
    ConnectionLost {
        /// The daemon's address.
        address: String,
        /// What happened.
        message: String,
    },
    /// The daemon did not answer in time; the connection is dropped and the next call
    /// reconnects.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The shared-key handshake failed: a wrong or missing key on either side.
    #[error("authentication with {address} failed: {message}")]
    Authentication {
        /// The daemon's address.
        address: String,
        /// Why.
        message: String,
    },
    /// TLS could not be set up (a missing configuration, a certificate that does not check
    /// out, a handshake failure).
    #[error("TLS: {0}")]
    Tls(String),
    /// A message was bigger than the limit of the side that refused it.
    #[error("a message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// The message's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The other side broke the protocol (a truncated or undecodable frame, a reply to a
    /// call that was not made, a different protocol version).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The daemon hosts no object of that name.
    #[error("unknown object `{object}`: the daemon hosts no object of this name")]
    UnknownObject {
        /// The object name asked for.
        object: String,
    },
    /// The object has no such method.
    #[error("object `{object}` ({service}) has no method `{method}`")]
    UnknownMethod {
        /// The object.
        object: String,
        /// The object's service (trait) name.
        service: String,
        /// The method asked for.
        method: String,
    },
    /// The arguments sent do not decode as the method's parameter types.
    #[error("arguments for `{object}.{method}` do not decode: {message}")]
    BadArguments {
        /// The object.
        object: String,
        /// The method.
        method: String,
        /// What the decoder said.
        message: String,
    },
    /// The remote method panicked; the daemon caught it and goes on serving.
    #[error("`{object}.{method}` panicked: {message}")]
    Panicked {
        /// The object.
        object: String,
        /// The method.
        method: String,
        /// The panic message.
        message: String,
    },
    /// The daemon is serving as many connections as it is allowed to.
    #[error("the daemon is busy: {0}")]
    Busy(String),
    /// A value could not be encoded.
    #[error("value could not be encoded: {0}")]
    Encode(String),
    /// A value did not decode as the expected type.
    #[error("value does not decode as {expected}: {message}")]
    Decode {
        /// The type that was expected.
        expected: String,
        /// What the decoder said.
        message: String,
    },
    /// An earlier call of the same batch failed, so this one was not run.
    #[error("not run: call {failed} of the batch failed first")]
    BatchAborted {
        /// The index of the call that failed.
        failed: usize,
    },
    /// The name server has no registration of that name.
    #[error("the name server knows no object named `{0}`")]
    NameNotFound(String),
    /// The name is registered already (and replacing was not asked for).
    #[error("the name `{0}` is registered already")]
    NameTaken(String),
    /// The daemon could not listen on its address.
    #[error("cannot listen on {address}: {message}")]
    Bind {
        /// The address.
        address: String,
        /// What the operating system said.
        message: String,
    },
    /// An object of that name is registered on this daemon already.
    #[error("an object named `{0}` is registered on this daemon already")]
    DuplicateObject(String),
    /// The daemon has been shut down.
    #[error("the daemon has been shut down")]
    Shutdown,
    /// The asynchronous call's worker thread went away without a result.
    #[error("the asynchronous call was lost: {0}")]
    Lost(String),
}

impl Error {
    pub(crate) fn decode<T: ?Sized>(message: impl std::fmt::Display) -> Self {
        Error::Decode {
            expected: std::any::type_name::<T>().to_string(),
            message: message.to_string(),
        }
    }

    /// Whether this error means the connection is unusable (it is then dropped, and the
    /// next call connects again).
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::ConnectionLost { .. }
                | Error::Timeout(_)
                | Error::Protocol(_)
                | Error::Tls(_)
                | Error::MessageTooLarge { .. }
                | Error::Authentication { .. }
                | Error::Busy(_)
        )
    }
}

/// Why a generated dispatcher could not run a call; the daemon turns it into an [`Error`]
/// naming the object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DispatchError {
    /// The service has no method of that name.
    UnknownMethod,
    /// The arguments do not decode as the method's parameters (the decoder's message).
    BadArguments(String),
    /// The result could not be encoded (the encoder's message).
    Encode(String),
}

/// An error as it travels from the daemon to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Fault {
    UnknownObject {
        object: String,
    },
    UnknownMethod {
        object: String,
        service: String,
        method: String,
    },
    BadArguments {
        object: String,
        method: String,
        message: String,
    },
    Panicked {
        object: String,
        method: String,
        message: String,
    },
    Encode(String),
    MessageTooLarge {
        size: u64,
        limit: u64,
    },
    Protocol(String),
    Busy(String),
}

impl From<Fault> for Error {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::UnknownObject { object } => Error::UnknownObject { object },
            Fault::UnknownMethod {
                object,
                service,
                method,
            } => Error::UnknownMethod {
                object,
                service,
                method,
            },
            Fault::BadArguments {
                object,
                method,
                message,
            } => Error::BadArguments {
                object,
                method,
                message,
            },
            Fault::Panicked {
                object,
                method,
                message,
            } => Error::Panicked {
                object,
                method,
                message,
            },
            Fault::Encode(message) => Error::Encode(message),
            Fault::MessageTooLarge { size, limit } => Error::MessageTooLarge { size, limit },
            Fault::Protocol(message) => Error::Protocol(format!("the daemon says: {message}")),
            Fault::Busy(message) => Error::Busy(message),
        }
    }
}

/// braid-rpc's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
