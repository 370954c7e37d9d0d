//! The client side of a network end: a connection to the channel's host that carries
//! the end's operations as requests.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use super::names::{connect, lookup, lost};
use super::{FromHost, ToHost, receive, send};
use crate::core::{Side, Terminate};
use crate::{Error, WriteError};

type Reply = Result<Option<Vec<u8>>, Error>;

/// Requests waiting for their answers, and the error once the connection has broken.
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
    lost: Option<Error>,
}

/// What the connection's reader task shares with the ends.
struct Shared {
    pending: Mutex<Pending>,
}

impl Shared {
    /// The connection broke: every request waiting, and every later one, fails.
    fn fail(&self, error: Error) {
        let waiting = {
            let mut pending = self.pending.lock();
            if pending.lost.is_none() {
                pending.lost = Some(error.clone());
            }
            std::mem::take(&mut pending.waiting)
        };
        for (_, answer) in waiting {
            // A request whose future was dropped has no one to tell.
            if answer.send(Err(error.clone())).is_err() {
                tracing::trace!("a cancelled network request saw its connection break");
            }
        }
    }

    fn answer(&self, id: u64, reply: Reply) {
        let waiting = self.pending.lock().waiting.remove(&id);
        match waiting {
            Some(answer) => {
                if answer.send(reply).is_err() {
                    tracing::debug!(id, "the answer to a cancelled network request was dropped");
                }
            }
            None => tracing::warn!(id, "an answer to no request"),
        }
    }
}

/// One connection to a host, for one end (and its clones in this program).
pub(crate) struct Connection {
    peer: SocketAddr,
    side: Side,
    /// Requests to the writer task; taken away (closing the connection) when the last
    /// end retires.
    outgoing: Mutex<Option<mpsc::UnboundedSender<ToHost>>>,
    /// The task that writes requests, to wait for the last ones to leave.
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    /// Ends in this program sharing the connection; the host's end retires with the last.
    ends: AtomicUsize,
}

impl Connection {
    /// Sends a request and waits for its answer.
    async fn request(&self, make: impl FnOnce(u64) -> ToHost) -> Reply {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        {
            let mut pending = self.shared.pending.lock();
            if let Some(error) = &pending.lost {
                return Err(error.clone());
            }
            pending.waiting.insert(id, answer);
        }
        let sent = match &*self.outgoing.lock() {
            Some(outgoing) => outgoing.send(make(id)).is_ok(),
            None => false,
        };
        if !sent {
            self.shared.pending.lock().waiting.remove(&id);
            return Err(self.lost_error("the connection is closed"));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(self.lost_error("the connection is closed")))
    }

    fn lost_error(&self, reason: &str) -> Error {
        self.shared
            .pending
            .lock()
            .lost
            .clone()
            .unwrap_or_else(|| lost(self.peer, reason))
    }

    /// Queues a message that has no answer.
    fn notify(&self, message: ToHost) {
        let sent = match &*self.outgoing.lock() {
            Some(outgoing) => outgoing.send(message).is_ok(),
            None => false,
        };
        if !sent {
            tracing::debug!(peer = %self.peer, "not sent: the connection is already closed");
        }
    }

    /// Sends the retirement of the last end and closes the connection; waits until it
    /// has left, unless this thread runs processes (then [`shutdown`](crate::shutdown)
    /// waits for it).
    fn close(&self) {
        self.notify(ToHost::Retire);
        drop(self.outgoing.lock().take());
        if let Some(writer) = self.writer.lock().take() {
            flush_or_defer(writer);
        }
    }
}

/// How long a closing connection may take to send its last messages.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Writer tasks of closed connections that may still be sending, for `shutdown`.
static CLOSING: LazyLock<Mutex<Vec<tokio::task::JoinHandle<()>>>> =
    LazyLock::new(|| Mutex::new(Vec::new()));

/// Waits for a closing connection's writer here, on a thread that may block; else
/// leaves it for [`flush_all`].
fn flush_or_defer(writer: tokio::task::JoinHandle<()>) {
    let may_block = crate::block::check().is_ok() && tokio::runtime::Handle::try_current().is_err();
    if may_block {
        wait_for(writer);
    } else {
        let mut closing = CLOSING.lock();
        closing.retain(|task| !task.is_finished());
        closing.push(writer);
    }
}

fn wait_for(writer: tokio::task::JoinHandle<()>) {
    let waited = super::blocking_on_network(async move {
        match tokio::time::timeout(CLOSE_TIMEOUT, writer).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Error::Protocol(format!(
                "a connection's writer failed: {error}"
            ))),
            Err(_) => Err(Error::Protocol(format!(
                "a closing connection could not send its last messages in {CLOSE_TIMEOUT:?}"
            ))),
        }
    });
    if let Err(error) = waited {
        tracing::warn!(%error, "closing a network end");
    }
}

/// Waits until every closed connection has sent its last messages (its retirement).
pub(crate) fn flush_all() {
    let closing = std::mem::take(&mut *CLOSING.lock());
    for writer in closing {
        wait_for(writer);
    }
}

impl Terminate for Connection {
    fn leave(&self, side: Side) {
        debug_assert_eq!(side, self.side);
        if self.ends.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }

    fn poison(&self, side: Side) {
        debug_assert_eq!(side, self.side);
        self.notify(ToHost::Poison);
    }
}

/// Looks `name` up, connects to its host and opens an end of `side` there.
pub(crate) async fn open(
    nameserver: SocketAddr,
    name: String,
    side: Side,
) -> Result<Arc<Connection>, Error> {
    let peer = lookup(nameserver, &name).await?;
    let stream = connect(peer).await?;
    let (mut read, mut write) = stream.into_split();
    send(
        &mut write,
        &ToHost::Open {
            channel: name,
            side,
        },
    )
    .await
    .map_err(|e| lost(peer, e))?;
    match receive::<FromHost>(&mut read).await {
        Ok(Some(FromHost::Opened)) => {}
        Ok(Some(FromHost::Refused(error))) => return Err(error.into()),
        Ok(Some(other)) => {
            return Err(Error::Protocol(format!(
                "the host answered Open with {other:?}"
            )));
        }
        Ok(None) => return Err(lost(peer, "the host closed the connection")),
        Err(error) => return Err(lost(peer, error)),
    }

    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending {
            waiting: HashMap::new(),
            lost: None,
        }),
    });
    let (outgoing, mut queued) = mpsc::unbounded_channel::<ToHost>();
    let writer_shared = Arc::clone(&shared);
    let writer = tokio::spawn(async move {
        while let Some(message) = queued.recv().await {
            if let Err(error) = send(&mut write, &message).await {
                writer_shared.fail(lost(peer, error));
                return;
            }
        }
        // Every end is gone: closing our half tells the host we are done.
    });
    let reader_shared = Arc::clone(&shared);
    tokio::spawn(async move {
        loop {
            match receive::<FromHost>(&mut read).await {
                Ok(Some(FromHost::Value { id, value })) => {
                    reader_shared.answer(id, Ok(Some(value)))
                }
                Ok(Some(FromHost::Written { id })) => reader_shared.answer(id, Ok(None)),
                Ok(Some(FromHost::Failed { id, error })) => {
                    reader_shared.answer(id, Err(error.into()))
                }
                Ok(Some(other)) => {
                    reader_shared.fail(Error::Protocol(format!(
                        "unexpected {other:?} from the host"
                    )));
                    return;
                }
                Ok(None) => {
                    reader_shared.fail(lost(peer, "the host closed the connection"));
                    return;
                }
                Err(error) => {
                    reader_shared.fail(lost(peer, error));
                    return;
                }
            }
        }
    });
    Ok(Arc::new(Connection {
        peer,
        side,
        outgoing: Mutex::new(Some(outgoing)),
        writer: Mutex::new(Some(writer)),
        shared,
        next_id: AtomicU64::new(0),
        ends: AtomicUsize::new(1),
    }))
}

/// A network end's link: the connection, and how to encode its values.
pub(crate) struct Remote<T> {
    connection: Arc<Connection>,
    encode: fn(&T) -> Result<Vec<u8>, braid_core::Error>,
    decode: fn(&[u8]) -> Result<T, braid_core::Error>,
    _values: PhantomData<fn(T) -> T>,
}

const CODEC: braid_core::Codec = braid_core::Codec::Binary;

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, braid_core::Error> {
    CODEC.encode(value)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, braid_core::Error> {
    CODEC.decode(bytes)
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Remote<T> {
    pub(crate) fn new(connection: Arc<Connection>) -> Self {
        Remote {
            connection,
            encode: encode::<T>,
            decode: decode::<T>,
            _values: PhantomData,
        }
    }
}

impl<T: Send + 'static> Remote<T> {
    pub(crate) fn read(&self) -> Pin<Box<dyn Future<Output = Result<T, Error>> + Send>> {
        let (connection, decode) = (Arc::clone(&self.connection), self.decode);
        Box::pin(async move {
            match connection.request(|id| ToHost::Read { id }).await? {
                Some(bytes) => Ok(decode(&bytes)?),
                None => Err(Error::Protocol(
                    "the host answered a read with Written".into(),
                )),
            }
        })
    }

    pub(crate) fn write(
        &self,
        value: T,
    ) -> Pin<Box<dyn Future<Output = Result<(), WriteError<T>>> + Send>> {
        let (connection, encode) = (Arc::clone(&self.connection), self.encode);
        Box::pin(async move {
            let bytes = match encode(&value) {
                Ok(bytes) => bytes,
                Err(error) => {
                    return Err(WriteError {
                        error: error.into(),
                        value,
                    });
                }
            };
            match connection
                .request(|id| ToHost::Write { id, value: bytes })
                .await
            {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err(WriteError {
                    error: Error::Protocol("the host answered a write with a value".into()),
                    value,
                }),
                Err(error) => Err(WriteError { error, value }),
            }
        })
    }

    pub(crate) fn terminator(&self) -> Arc<dyn Terminate> {
        Arc::clone(&self.connection) as Arc<dyn Terminate>
    }

    /// Another end in this program on the same connection.
    pub(crate) fn clone_end(&self) -> Remote<T> {
        self.connection.ends.fetch_add(1, Ordering::AcqRel);
        Remote {
            connection: Arc::clone(&self.connection),
            encode: self.encode,
            decode: self.decode,
            _values: PhantomData,
        }
    }
}
