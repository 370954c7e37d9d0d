//! [`NameServer`]: where hosts register their channels by name and remote ends find
//! them.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::{receive, runtime, send};
use crate::Error;

/// A request to the name server.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToNames {
    /// Registers `name` as hosted at `host`, for as long as this connection stays open.
    Register {
        name: String,
        host: SocketAddr,
    },
    Lookup {
        name: String,
    },
}

/// The name server's answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromNames {
    Registered,
    Taken,
    Found(SocketAddr),
    NotFound,
}

/// A small name service for network channels (the role of PyCSP's name server): hosts
/// register each channel they publish under a name, and programs that want an end ask
/// for the name.
///
/// A registration lasts as long as the host's connection to the name server: when a
/// host goes away, its names go with it. The server runs on braid-csp's network thread
/// until the `NameServer` is dropped.
///
/// ```
/// use braid_csp::{Channel, ChannelHost, NameServer, blocking_connect_writer};
///
/// let names = NameServer::bind("127.0.0.1:0").unwrap();
/// let host = ChannelHost::bind("127.0.0.1:0", Some(names.addr())).unwrap();
/// let results = Channel::<String>::buffered(1);
/// host.publish("results", &results).unwrap();
///
/// // Usually in another program, given the name server's address:
/// let out = blocking_connect_writer::<String>(names.addr(), "results").unwrap();
/// out.blocking_write("hello".to_string()).unwrap();
/// assert_eq!(results.reader().blocking_read().unwrap(), "hello");
/// ```
pub struct NameServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl NameServer {
    /// Starts a name server listening on `addr` (port 0 picks a free port; see
    /// [`addr`](Self::addr)).
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be listened on.
    pub fn bind(addr: impl ToSocketAddrs + fmt::Display) -> Result<Self, Error> {
        let (listener, addr) = listen(addr)?;
        let table = Arc::new(Mutex::new(HashMap::new()));
        let task = runtime()?.spawn(async move {
            let mut connections = JoinSet::new();
            let mut next_id = 0u64;
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        next_id += 1;
                        connections.spawn(serve(stream, peer, Arc::clone(&table), next_id));
                    }
                    Err(error) => tracing::warn!(%error, "name server: accept failed"),
                }
                while let Some(done) = connections.try_join_next() {
                    if let Err(error) = done {
                        tracing::warn!(%error, "name server: a connection task failed");
                    }
                }
            }
        });
        Ok(NameServer { addr, task })
    }

    /// The address it listens on, to give to hosts and to programs that connect ends.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

impl fmt::Debug for NameServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NameServer")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Binds a listener on the network runtime.
pub(crate) fn listen(
    addr: impl ToSocketAddrs + fmt::Display,
) -> Result<(tokio::net::TcpListener, SocketAddr), Error> {
    let bind_error = |reason: std::io::Error| Error::Bind {
        addr: addr.to_string(),
        reason: reason.to_string(),
    };
    let listener = std::net::TcpListener::bind(&addr).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    let _entered = runtime()?.enter();
    let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_error)?;
    Ok((listener, local))
}

/// Answers one connection's requests; its registrations end with it.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    table: Arc<Mutex<HashMap<String, (SocketAddr, u64)>>>,
    id: u64,
) {
    let (mut read, mut write) = stream.into_split();
    loop {
        let request = match receive::<ToNames>(&mut read).await {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(error) => {
                tracing::debug!(%peer, %error, "name server: dropping a connection");
                break;
            }
        };
        let answer = {
            let mut table = table.lock();
            match request {
                ToNames::Register { name, host } => match table.entry(name) {
                    Entry::Occupied(_) => FromNames::Taken,
                    Entry::Vacant(entry) => {
                        entry.insert((host, id));
                        FromNames::Registered
                    }
                },
                ToNames::Lookup { name } => match table.get(&name) {
                    Some((host, _)) => FromNames::Found(*host),
                    None => FromNames::NotFound,
                },
            }
        };
        if let Err(error) = send(&mut write, &answer).await {
            tracing::debug!(%peer, %error, "name server: cannot answer");
            break;
        }
    }
    table.lock().retain(|_, (_, owner)| *owner != id);
}

/// Opens a TCP connection for braid-csp's protocol.
pub(crate) async fn connect(addr: SocketAddr) -> Result<TcpStream, Error> {
    let connect_error = |reason: std::io::Error| Error::Connect {
        addr: addr.to_string(),
        reason: reason.to_string(),
    };
    let stream = TcpStream::connect(addr).await.map_err(connect_error)?;
    stream.set_nodelay(true).map_err(connect_error)?;
    Ok(stream)
}

/// The error for a connection that broke in the middle of an exchange.
pub(crate) fn lost(peer: impl fmt::Display, reason: impl fmt::Display) -> Error {
    Error::ConnectionLost {
        peer: peer.to_string(),
        reason: reason.to_string(),
    }
}

/// Sends one request on `stream` and reads the answer.
async fn ask(
    stream: &mut TcpStream,
    peer: SocketAddr,
    request: &ToNames,
) -> Result<FromNames, Error> {
    send(stream, request).await.map_err(|e| lost(peer, e))?;
    match receive(stream).await {
        Ok(Some(answer)) => Ok(answer),
        Ok(None) => Err(lost(peer, "the name server closed the connection")),
        Err(error) => Err(lost(peer, error)),
    }
}

/// The host a channel name is registered at.
pub(crate) async fn lookup(nameserver: SocketAddr, name: &str) -> Result<SocketAddr, Error> {
    let mut stream = connect(nameserver).await?;
    let request = ToNames::Lookup {
        name: name.to_string(),
    };
    match ask(&mut stream, nameserver, &request).await? {
        FromNames::Found(host) => Ok(host),
        FromNames::NotFound => Err(Error::UnknownName(name.to_string())),
        other => Err(Error::Protocol(format!(
            "the name server answered a lookup with {other:?}"
        ))),
    }
}

/// A host's connection to the name server, which keeps its registrations alive.
pub(crate) struct Registrar {
    nameserver: SocketAddr,
    stream: TcpStream,
}

impl Registrar {
    pub(crate) async fn connect(nameserver: SocketAddr) -> Result<Self, Error> {
        Ok(Registrar {
            nameserver,
            stream: connect(nameserver).await?,
        })
    }

    /// Registers `name` as hosted at `host`.
    pub(crate) async fn register(&mut self, name: &str, host: SocketAddr) -> Result<(), Error> {
        let request = ToNames::Register {
            name: name.to_string(),
            host,
        };
        match ask(&mut self.stream, self.nameserver, &request).await? {
            FromNames::Registered => Ok(()),
            FromNames::Taken => Err(Error::NameTaken(name.to_string())),
            other => Err(Error::Protocol(format!(
                "the name server answered a registration with {other:?}"
            ))),
        }
    }
}
