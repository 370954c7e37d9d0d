//! [`ChannelHost`]: serves channels of this program to network ends in others.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::names::{Registrar, listen};
use super::{FromHost, ToHost, WireError, blocking_on_network, receive, runtime, send};
use crate::Error;
use crate::channel::{Channel, Link, Reader, Writer};
use crate::core::Side;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Serves channels of this program to network ends in other programs or on other
/// machines (the role of PyCSP's channel home): [`publish`](Self::publish) a channel
/// under a name, and [`connect_reader`](crate::connect_reader) /
/// [`connect_writer`](crate::connect_writer) elsewhere get ends of it.
///
/// The host performs each remote end's operations on the real channel, so the channel
/// keeps its semantics (rendezvous, poison, retire) whoever holds its ends. Dropping the
/// host closes every connection: the remote ends' next operations fail with
/// [`Error::ConnectionLost`], and the ends the host held for them retire.
pub struct ChannelHost {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    channels: Mutex<HashMap<String, Arc<dyn Hosted>>>,
    nameserver: Option<SocketAddr>,
    registrar: tokio::sync::Mutex<Option<Registrar>>,
}

impl ChannelHost {
    /// Starts a host listening on `addr` (port 0 picks a free port) that registers the
    /// channels it publishes at `nameserver`, if given.
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be listened on.
    pub fn bind(
        addr: impl ToSocketAddrs + fmt::Display,
        nameserver: Option<SocketAddr>,
    ) -> Result<Self, Error> {
        let (listener, addr) = listen(addr)?;
        let shared = Arc::new(Shared {
            channels: Mutex::new(HashMap::new()),
            nameserver,
            registrar: tokio::sync::Mutex::new(None),
        });
        let serving = Arc::clone(&shared);
        let task = runtime()?.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        connections.spawn(serve(stream, peer, Arc::clone(&serving)));
                    }
                    Err(error) => tracing::warn!(%error, "channel host: accept failed"),
                }
                while let Some(done) = connections.try_join_next() {
                    if let Err(error) = done {
                        tracing::warn!(%error, "channel host: a connection task failed");
                    }
                }
            }
        });
        Ok(ChannelHost { addr, shared, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `channel` under `name`, registering the name at the name server; network
    /// ends connected to the name read and write this channel. The host keeps a handle
    /// to the channel, so new ends can join it for as long as the host lives.
    ///
    /// Blocking: call it while setting up, before the processes run (or from a blocking
    /// process).
    ///
    /// # Errors
    /// [`Error::NameTaken`] when the name is already published here or registered at the
    /// name server; [`Error::Connect`] when the name server cannot be reached;
    /// [`Error::BlockingInScheduler`] on a scheduler's thread.
    pub fn publish<T>(&self, name: &str, channel: &Channel<T>) -> Result<(), Error>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        {
            let mut channels = self.shared.channels.lock();
            if channels.contains_key(name) {
                return Err(Error::NameTaken(name.to_string()));
            }
            channels.insert(
                name.to_string(),
                Arc::new(HostedChannel {
                    channel: channel.clone(),
                }),
            );
        }
        let Some(nameserver) = self.shared.nameserver else {
            return Ok(());
        };
        let shared = Arc::clone(&self.shared);
        let (name_owned, host) = (name.to_string(), self.addr);
        let registered = blocking_on_network(async move {
            let mut registrar = shared.registrar.lock().await;
            if registrar.is_none() {
                *registrar = Some(Registrar::connect(nameserver).await?);
            }
            let registrar = registrar.as_mut().expect("connected just above");
            registrar.register(&name_owned, host).await
        });
        if registered.is_err() {
            self.shared.channels.lock().remove(name);
        }
        registered
    }
}

impl Drop for ChannelHost {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

impl fmt::Debug for ChannelHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelHost")
            .field("addr", &self.addr)
            .field("nameserver", &self.shared.nameserver)
            .field(
                "channels",
                &self.shared.channels.lock().keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A published channel, whatever its value type.
trait Hosted: Send + Sync {
    /// A new end of the channel for a remote end.
    fn open(&self, side: Side) -> Arc<dyn HostedEnd>;
}

/// The host's end for one remote end: performs its operations on encoded values.
trait HostedEnd: Send + Sync {
    fn read(&self) -> BoxFuture<'_, Result<Vec<u8>, Error>>;
    fn write(&self, value: Vec<u8>) -> BoxFuture<'_, Result<(), Error>>;
    /// Returns a value read for a remote end that can no longer receive it.
    fn unread(&self, value: Vec<u8>);
    fn poison(&self);
    fn retire(&self);
    /// The remote end's connection broke: the channel ends from its side with `error`.
    fn lose(&self, error: Error);
}

struct HostedChannel<T> {
    channel: Channel<T>,
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Hosted for HostedChannel<T> {
    fn open(&self, side: Side) -> Arc<dyn HostedEnd> {
        match side {
            Side::Reader => Arc::new(HostedReader(self.channel.reader())),
            Side::Writer => Arc::new(HostedWriter(self.channel.writer())),
        }
    }
}

struct HostedReader<T>(Reader<T>);
struct HostedWriter<T>(Writer<T>);

const CODEC: braid_core::Codec = braid_core::Codec::Binary;

fn lose_local<T>(link: &Link<T>, side: Side, error: Error) {
    if let Link::Local(core) = link {
        core.with(|state, after| state.end(side, error, after));
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> HostedEnd for HostedReader<T> {
    fn read(&self) -> BoxFuture<'_, Result<Vec<u8>, Error>> {
        Box::pin(async move {
            let value = self.0.read().await?;
            Ok(CODEC.encode(&value)?)
        })
    }

    fn write(&self, _value: Vec<u8>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Err(Error::Protocol("a write on a reading end".into())) })
    }

    fn unread(&self, value: Vec<u8>) {
        match (CODEC.decode::<T>(&value), &self.0.link) {
            (Ok(value), Link::Local(core)) => {
                core.with(|state, after| state.put_back(value, after))
            }
            (Err(error), _) => {
                tracing::error!(%error, "a value read for a lost end does not decode")
            }
            (Ok(_), Link::Remote(_)) => unreachable!("a host's ends are local"),
        }
    }

    fn poison(&self) {
        self.0.poison();
    }

    fn retire(&self) {
        self.0.retire();
    }

    fn lose(&self, error: Error) {
        lose_local(&self.0.link, Side::Reader, error);
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> HostedEnd for HostedWriter<T> {
    fn read(&self) -> BoxFuture<'_, Result<Vec<u8>, Error>> {
        Box::pin(async { Err(Error::Protocol("a read on a writing end".into())) })
    }

    fn write(&self, value: Vec<u8>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let value: T = CODEC.decode(&value)?;
            Ok(self.0.write(value).await?)
        })
    }

    fn unread(&self, _value: Vec<u8>) {}

    fn poison(&self) {
        self.0.poison();
    }

    fn retire(&self) {
        self.0.retire();
    }

    fn lose(&self, error: Error) {
        lose_local(&self.0.link, Side::Writer, error);
    }
}

/// Serves one remote end until its connection ends.
async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "channel host: cannot disable Nagle's algorithm");
    }
    let (mut read, mut write) = stream.into_split();
    let (channel, side) = match receive::<ToHost>(&mut read).await {
        Ok(Some(ToHost::Open { channel, side })) => (channel, side),
        Ok(other) => {
            tracing::debug!(%peer, ?other, "channel host: a connection did not open a channel");
            return;
        }
        Err(error) => {
            tracing::debug!(%peer, %error, "channel host: a connection broke before it opened");
            return;
        }
    };
    let hosted = shared.channels.lock().get(&channel).cloned();
    let Some(hosted) = hosted else {
        let refusal = FromHost::Refused(WireError::UnknownName(channel));
        if let Err(error) = send(&mut write, &refusal).await {
            tracing::debug!(%peer, %error, "channel host: cannot refuse a connection");
        }
        return;
    };
    let end = hosted.open(side);
    if let Err(error) = send(&mut write, &FromHost::Opened).await {
        end.lose(super::names::lost(peer, error));
        return;
    }

    let (outgoing, mut queued) = mpsc::unbounded_channel::<FromHost>();
    let writer = tokio::spawn(async move {
        while let Some(message) = queued.recv().await {
            send(&mut write, &message).await?;
        }
        Ok::<(), std::io::Error>(())
    });
    let mut operations = JoinSet::new();
    let mut retired = false;
    let broken = loop {
        let message = match receive::<ToHost>(&mut read).await {
            Ok(Some(message)) => message,
            Ok(None) if retired => break None,
            Ok(None) => break Some("the connection closed before its end retired".to_string()),
            Err(error) => break Some(error.to_string()),
        };
        match message {
            ToHost::Read { id } => {
                let (end, outgoing) = (Arc::clone(&end), outgoing.clone());
                operations.spawn(async move {
                    match end.read().await {
                        Ok(value) => {
                            if let Err(unsent) = outgoing.send(FromHost::Value { id, value })
                                && let FromHost::Value { value, .. } = unsent.0
                            {
                                end.unread(value);
                            }
                        }
                        Err(error) => reply(
                            &outgoing,
                            FromHost::Failed {
                                id,
                                error: (&error).into(),
                            },
                        ),
                    }
                });
            }
            ToHost::Write { id, value } => {
                let (end, outgoing) = (Arc::clone(&end), outgoing.clone());
                operations.spawn(async move {
                    let answer = match end.write(value).await {
                        Ok(()) => FromHost::Written { id },
                        Err(error) => FromHost::Failed {
                            id,
                            error: (&error).into(),
                        },
                    };
                    reply(&outgoing, answer);
                });
            }
            ToHost::Poison => end.poison(),
            ToHost::Retire => {
                end.retire();
                retired = true;
            }
            ToHost::Open { .. } => break Some("a second Open on one connection".to_string()),
        }
        while let Some(done) = operations.try_join_next() {
            if let Err(error) = done {
                tracing::warn!(%peer, %error, "channel host: an operation task failed");
            }
        }
    };
    if let Some(reason) = broken {
        tracing::debug!(%peer, %reason, "channel host: a remote end was lost");
        end.lose(super::names::lost(peer, reason));
    }
    // Pending operations are cancelled: a value a read had taken goes back to the channel.
    operations.shutdown().await;
    drop(outgoing);
    match writer.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%peer, %error, "channel host: writing to a closed end"),
        Err(error) => tracing::warn!(%peer, %error, "channel host: the writer task failed"),
    }
}

/// Queues an answer; if the connection is already gone there is no one to tell.
fn reply(outgoing: &mpsc::UnboundedSender<FromHost>, answer: FromHost) {
    if outgoing.send(answer).is_err() {
        tracing::debug!("channel host: an answer for a closed connection was dropped");
    }
}
