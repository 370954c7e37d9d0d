use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::context::{CallInfo, Scope, Settings};
use crate::error::{DispatchError, Error, Fault};
use crate::frame::{
    DEFAULT_MAX_MESSAGE_SIZE, FrameError, FrameReader, Peeked, Request, Response, decode_body,
    encode_frame, peek,
};
use crate::pool::Pool;
use crate::proxy::Proxy;
use crate::security::{self, ClientTls, ServerTls, Stream};
use crate::uri::Uri;

/// A remote object's dispatcher: decodes a call's arguments, runs the method, encodes the
/// result. `#[service]` writes it; implement it by hand only for dynamic objects.
pub trait Dispatch: Send + Sync + 'static {
    /// The service's name (the trait's name), for error messages.
    fn service(&self) -> &'static str;
    /// The methods that can be called; the daemon refuses a one-way call to any other
    /// method as soon as it arrives.
    fn methods(&self) -> &'static [&'static str];
    /// Runs `method` with the encoded `args` and returns the encoded result.
    ///
    /// # Errors
    /// [`DispatchError`] for an unknown method or arguments that do not decode.
    fn dispatch(&self, method: &str, args: &[u8]) -> Result<Vec<u8>, DispatchError>;
}

/// An object a [`Daemon`] can serve: an implementation of a `#[service]` trait, made with
/// its `into_object()`.
#[derive(Clone)]
pub struct Object {
    inner: Arc<dyn Dispatch>,
}

impl Object {
    /// Wraps a dispatcher.
    pub fn new(dispatch: impl Dispatch) -> Object {
        Object {
            inner: Arc::new(dispatch),
        }
    }

    /// The service's name.
    pub fn service(&self) -> &'static str {
        self.inner.service()
    }

    /// The methods that can be called.
    pub fn methods(&self) -> &'static [&'static str] {
        self.inner.methods()
    }
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object")
            .field("service", &self.inner.service())
            .finish()
    }
}

/// How many instances of an object a daemon makes (Pyro's `instance_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InstanceMode {
    /// One instance serves every call (Pyro's `single`).
    #[default]
    Single,
    /// Each proxy gets its own instance, made at its first call (Pyro's `session`).
    ///
    /// A proxy and its clones form one session, however many connections they open (one
    /// per thread calling at once, one per asynchronous call under way): every call of
    /// theirs reaches the same instance. Proxies made separately (by [`Proxy::new`],
    /// [`Daemon::proxy`], decoding one received over the wire) are separate sessions;
    /// proxies derived with `with_timeout`, `with_key` and the like stay in their
    /// original's session. The daemon drops the instance when the last connection of the
    /// session closes: when the proxy and its clones are dropped, after
    /// [`Proxy::release`] (which also starts a new session), or when the daemon closes
    /// the connections. Calls of one session made at the same time run at the same time,
    /// so the instance must be `Sync` like any other.
    Session,
    /// Each call gets a fresh instance (Pyro's `percall`).
    PerCall,
}

type Factory = Arc<dyn Fn() -> Object + Send + Sync>;

enum Source {
    Instance(Object),
    Factory(Factory),
}

struct Entry {
    serial: u64,
    mode: InstanceMode,
    source: Source,
}

/// Configures and starts a [`Daemon`].
#[derive(Debug, Clone)]
pub struct DaemonBuilder {
    host: String,
    port: u16,
    advertise: Option<String>,
    key: Option<Arc<[u8]>>,
    tls: Option<ServerTls>,
    client_tls: Option<ClientTls>,
    max_connections: usize,
    max_message_size: usize,
    handshake_timeout: Duration,
    frame_timeout: Duration,
    idle_timeout: Option<Duration>,
}

impl Default for DaemonBuilder {
    fn default() -> Self {
        DaemonBuilder {
            host: "127.0.0.1".into(),
            port: 0,
            advertise: None,
            key: None,
            tls: None,
            client_tls: None,
            max_connections: 1024,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            handshake_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(30),
            idle_timeout: None,
        }
    }
}

impl DaemonBuilder {
    /// The host or address to listen on (default `127.0.0.1`; `0.0.0.0` for every
    /// interface).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The port to listen on (default 0: any free port; read it back with
    /// [`Daemon::local_addr`]).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The host written into the URIs this daemon hands out, when clients reach it under
    /// another name than the one it listens on (Pyro's `nathost`).
    pub fn advertise(mut self, host: impl Into<String>) -> Self {
        self.advertise = Some(host.into());
        self
    }

    /// Requires every client to prove it knows `key` (an HMAC-SHA256 challenge on
    /// connect); proxies decoded inside this daemon's calls use the key too.
    pub fn key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key = Some(Arc::from(key.as_ref()));
        self
    }

    /// Speaks TLS; the URIs handed out become `braids://`.
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The TLS configuration of proxies decoded inside this daemon's calls (to reach
    /// `braids://` objects, for example a TLS client's callback object).
    pub fn client_tls(mut self, tls: ClientTls) -> Self {
        self.client_tls = Some(tls);
        self
    }

    /// How many connections are served at once (default 1024); each has a thread while
    /// it is open. A client beyond the limit gets [`Error::Busy`].
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// The largest message accepted or sent (default 64 MiB). A bigger request ends its
    /// connection with [`Error::MessageTooLarge`]; a bigger reply is replaced by that error.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// How long a new connection may take to complete its handshake (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long the rest of a message may take to arrive once its first byte has
    /// (default 30 s), and how long a reply may wait for the client to take it. A peer
    /// that stops halfway through a message is disconnected after this long, so it holds
    /// a thread and a place among [`max_connections`](Self::max_connections) no longer.
    pub fn frame_timeout(mut self, timeout: Duration) -> Self {
        self.frame_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Closes a connection on which no call arrives for `timeout` (default: never, as in
    /// Pyro). Proxies notice the closed connection and reconnect at their next call; a
    /// session ([`InstanceMode::Session`]) whose connections are all closed loses its
    /// instances.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout.map(|t| t.max(Duration::from_millis(1)));
        self
    }

    /// Binds the address and starts serving.
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be listened on.
    pub fn start(self) -> Result<Daemon, Error> {
        let address = format!("{}:{}", self.host, self.port);
        let bind_error = |e: io::Error| Error::Bind {
            address: address.clone(),
            message: e.to_string(),
        };
        let listener = TcpListener::bind((self.host.as_str(), self.port)).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let advertised = self.advertise.clone().unwrap_or_else(|| {
            if local.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                local.ip().to_string()
            }
        });
        let shared = Arc::new(Shared {
            objects: RwLock::new(HashMap::new()),
            serial: AtomicU64::new(0),
            key: self.key.clone(),
            tls: self.tls.clone(),
            settings: Settings {
                key: self.key,
                tls: self.client_tls,
                timeout: None,
                max_message_size: self.max_message_size,
            },
            max_message_size: self.max_message_size,
            handshake_timeout: self.handshake_timeout,
            frame_timeout: self.frame_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            host: advertised,
            local,
            stopping: AtomicBool::new(false),
            stopped: Mutex::new(false),
            stopped_cv: Condvar::new(),
            open: AtomicUsize::new(0),
            connections: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            next_connection: AtomicU64::new(0),
            connection_pool: Pool::new(
                "braid-rpc-conn",
                self.max_connections,
                Duration::from_secs(30),
            ),
            oneway_pool: Pool::new("braid-rpc-oneway", 64, Duration::from_secs(30)),
            refusal_pool: Pool::new("braid-rpc-refuse", 4, Duration::from_secs(30)),
        });
        let accept = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("braid-rpc-accept".into())
                .spawn(move || accept_loop(&shared, &listener))
                .map_err(bind_error)?
        };
        tracing::info!("braid-rpc daemon listening on {local}");
        Ok(Daemon {
            shared,
            accept: Mutex::new(Some(accept)),
        })
    }
}

struct Shared {
    objects: RwLock<HashMap<String, Entry>>,
    serial: AtomicU64,
    key: Option<Arc<[u8]>>,
    tls: Option<ServerTls>,
    settings: Settings,
    max_message_size: usize,
    handshake_timeout: Duration,
    frame_timeout: Duration,
    idle_timeout: Option<Duration>,
    max_connections: usize,
    host: String,
    local: SocketAddr,
    stopping: AtomicBool,
    stopped: Mutex<bool>,
    stopped_cv: Condvar,
    open: AtomicUsize,
    connections: Mutex<HashMap<u64, TcpStream>>,
    /// The sessions with connections open: how many, and their instances.
    sessions: Mutex<HashMap<u128, (usize, Arc<SessionObjects>)>>,
    next_connection: AtomicU64,
    connection_pool: Pool,
    oneway_pool: Pool,
    /// Threads that tell TLS clients the daemon is busy (a TLS handshake takes a while,
    /// and the accepting thread must not wait for it).
    refusal_pool: Pool,
}

/// A session's instances of [`InstanceMode::Session`] objects, by name, with the serial of
/// the registration that made them.
type SessionObjects = Mutex<HashMap<String, (u64, Object)>>;

/// One connection's membership of its session; the last one to go drops the instances.
struct SessionGuard {
    shared: Arc<Shared>,
    id: u128,
    objects: Arc<SessionObjects>,
}

impl SessionGuard {
    fn join(shared: &Arc<Shared>, id: u128) -> SessionGuard {
        let objects = {
            let mut sessions = shared.sessions.lock();
            let (count, objects) = sessions.entry(id).or_default();
            *count += 1;
            objects.clone()
        };
        SessionGuard {
            shared: shared.clone(),
            id,
            objects,
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let ended = {
            let mut sessions = self.shared.sessions.lock();
            match sessions.get_mut(&self.id) {
                Some((count, _)) if *count > 1 => {
                    *count -= 1;
                    None
                }
                Some(_) => sessions.remove(&self.id),
                None => None,
            }
        };
        // The instances are dropped here, outside the lock: their `Drop` may take a while.
        drop(ended);
    }
}

/// Keeps a connection's place among the daemon's open connections; gives it back however
/// the connection's job ends, a panic included.
struct ConnectionGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        // The place first: removing the handle closes the socket, and a peer that sees
        // it closed may connect again at once.
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
        self.shared.connections.lock().remove(&self.id);
    }
}

/// A server hosting remote objects, each at a URI `braid://host:port/name`, like Pyro's
/// `Daemon`.
///
/// Each connection is served by a thread of the daemon's pool (made on demand up to
/// [`DaemonBuilder::max_connections`], kept a while when idle): calls from one connection
/// run in order, calls from different connections at once. One-way calls run on a
/// separate pool so the connection goes on. The daemon stops when [`shutdown`] is called
/// or it is dropped.
///
/// [`shutdown`]: Daemon::shutdown
///
/// ```no_run
/// use braid_rpc::{service, Daemon};
///
/// #[service]
/// pub trait Greeter {
///     fn greet(&self, name: String) -> String;
/// }
///
/// struct English;
/// impl Greeter for English {
///     fn greet(&self, name: String) -> String {
///         format!("Hello, {name}")
///     }
/// }
///
/// let daemon = Daemon::builder().port(9000).start()?;
/// let uri = daemon.register("example.greeter", English.into_object())?;
/// println!("serving {uri}");
/// let greeter = GreeterProxy::connect(&uri)?;
/// assert_eq!(greeter.greet("Ada".into())?, "Hello, Ada");
/// # Ok::<(), braid_rpc::Error>(())
/// ```
pub struct Daemon {
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("address", &self.shared.local)
            .field("objects", &self.shared.objects.read().len())
            .finish()
    }
}

impl Daemon {
    /// A builder with the defaults: `127.0.0.1`, any free port, no key, no TLS.
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder::default()
    }

    /// A daemon on `127.0.0.1`, any free port, with the defaults.
    ///
    /// # Errors
    /// [`Error::Bind`] when no port can be listened on.
    pub fn start() -> Result<Daemon, Error> {
        DaemonBuilder::default().start()
    }

    /// The address the daemon listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// The URI an object registered as `name` has here (registered or not).
    pub fn uri(&self, name: &str) -> Uri {
        Uri::direct(
            self.shared.host.clone(),
            self.shared.local.port(),
            name,
            self.shared.tls.is_some(),
        )
    }

    /// A proxy (with this daemon's key and client TLS settings) for the object registered
    /// as `name` here; typed proxies convert from it with `From`.
    pub fn proxy<P: From<Proxy>>(&self, name: &str) -> P {
        P::from(Proxy::with_settings(
            self.uri(name),
            self.shared.settings.clone(),
        ))
    }

    /// Serves `object` as `name`: one instance for every call ([`InstanceMode::Single`]).
    ///
    /// # Errors
    /// [`Error::DuplicateObject`] when the name is taken on this daemon;
    /// [`Error::Shutdown`] after the daemon stopped.
    pub fn register(&self, name: &str, object: Object) -> Result<Uri, Error> {
        self.insert(name, InstanceMode::Single, Source::Instance(object))
    }

    /// Serves objects made by `factory` as `name`, as many as `mode` says: one made now
    /// ([`InstanceMode::Single`]), one per proxy ([`InstanceMode::Session`]), or one per
    /// call.
    ///
    /// # Errors
    /// [`Error::DuplicateObject`] when the name is taken on this daemon;
    /// [`Error::Shutdown`] after the daemon stopped.
    pub fn register_factory(
        &self,
        name: &str,
        mode: InstanceMode,
        factory: impl Fn() -> Object + Send + Sync + 'static,
    ) -> Result<Uri, Error> {
        if self.shared.stopping.load(Ordering::Acquire) {
            return Err(Error::Shutdown);
        }
        let source = match mode {
            InstanceMode::Single => Source::Instance(factory()),
            _ => Source::Factory(Arc::new(factory)),
        };
        self.insert(name, mode, source)
    }

    fn insert(&self, name: &str, mode: InstanceMode, source: Source) -> Result<Uri, Error> {
        if self.shared.stopping.load(Ordering::Acquire) {
            return Err(Error::Shutdown);
        }
        let mut objects = self.shared.objects.write();
        if objects.contains_key(name) {
            return Err(Error::DuplicateObject(name.to_string()));
        }
        let serial = self.shared.serial.fetch_add(1, Ordering::Relaxed);
        objects.insert(
            name.to_string(),
            Entry {
                serial,
                mode,
                source,
            },
        );
        Ok(self.uri(name))
    }

    /// Stops serving `name`; calls to it then fail with [`Error::UnknownObject`]. Returns
    /// whether it was registered.
    pub fn unregister(&self, name: &str) -> bool {
        self.shared.objects.write().remove(name).is_some()
    }

    /// The names of the objects served, sorted.
    pub fn objects(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.objects.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// A handle that stops this daemon from anywhere (another thread, a remote method).
    pub fn stopper(&self) -> DaemonStopper {
        DaemonStopper {
            shared: self.shared.clone(),
        }
    }

    /// Blocks until the daemon is stopped (by [`DaemonStopper::stop`]), like Pyro's
    /// `requestLoop`.
    pub fn wait(&self) {
        let mut stopped = self.shared.stopped.lock();
        while !*stopped {
            self.shared.stopped_cv.wait(&mut stopped);
        }
    }

    /// Stops accepting connections, closes the open ones and waits for the accepting
    /// thread. Calls under way finish on their threads, but their answers are not
    /// delivered. Idempotent.
    pub fn shutdown(&self) {
        stop(&self.shared);
        if let Some(accept) = self.accept.lock().take()
            && accept.join().is_err()
        {
            tracing::error!("the daemon's accepting thread panicked");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Stops a [`Daemon`] from anywhere; cheap to clone.
#[derive(Clone)]
pub struct DaemonStopper {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DaemonStopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonStopper")
            .field("address", &self.shared.local)
            .finish()
    }
}

impl DaemonStopper {
    /// Stops the daemon (as [`Daemon::shutdown`] does, without waiting for its accepting
    /// thread) and wakes [`Daemon::wait`].
    pub fn stop(&self) {
        stop(&self.shared);
    }
}

fn stop(shared: &Shared) {
    if shared.stopping.swap(true, Ordering::AcqRel) {
        return;
    }
    // Wake the accepting thread with a connection of our own; it sees `stopping` and ends.
    let mut wake = shared.local;
    if wake.ip().is_unspecified() {
        wake.set_ip(match wake {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    if let Err(e) = TcpStream::connect_timeout(&wake, Duration::from_secs(5)) {
        tracing::warn!("waking the daemon's accepting thread: {e}");
    }
    for (_, connection) in shared.connections.lock().drain() {
        if let Err(e) = connection.shutdown(Shutdown::Both) {
            tracing::trace!("closing a connection: {e}");
        }
    }
    *shared.stopped.lock() = true;
    shared.stopped_cv.notify_all();
    tracing::info!("braid-rpc daemon on {} stopped", shared.local);
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accepting a connection: {e}");
                // Out of file descriptors and the like: give the system a moment.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if shared.open.load(Ordering::Acquire) >= shared.max_connections {
            turn_away(shared, tcp, peer);
            continue;
        }
        let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
        match tcp.try_clone() {
            Ok(clone) => {
                shared.connections.lock().insert(id, clone);
            }
            Err(e) => {
                tracing::warn!("cannot keep a handle on the connection from {peer}: {e}");
                continue;
            }
        }
        shared.open.fetch_add(1, Ordering::AcqRel);
        let guard = ConnectionGuard {
            shared: shared.clone(),
            id,
        };
        let job = Box::new(move || {
            serve_connection(&guard.shared, tcp, peer);
            drop(guard);
        });
        // The pool has a thread per place, but a thread whose connection has just given
        // its place back may not be waiting for work yet: the connection then waits for it
        // in the pool's queue.
        shared.connection_pool.execute_or_queue(job);
    }
}

fn turn_away(shared: &Shared, tcp: TcpStream, peer: SocketAddr) {
    let reason = format!(
        "the daemon serves at most {} connections at once",
        shared.max_connections
    );
    tracing::warn!("turning away {peer}: {reason}");
    let patience = Some(Duration::from_secs(1));
    if let Err(e) = tcp
        .set_write_timeout(patience)
        .and_then(|()| tcp.set_read_timeout(patience))
    {
        tracing::debug!("turning away {peer}: {e}");
        return;
    }
    let Some(tls) = shared.tls.clone() else {
        // A small write into an empty socket buffer: it does not block the accepting
        // thread.
        refuse(Stream::Plain(tcp), peer, reason);
        return;
    };
    // Over TLS the reply needs a handshake first, a round trip or more: a thread of the
    // small refusal pool does it. When that pool is busy too, the client only sees the
    // connection closed.
    let job = Box::new(move || match Stream::server(tcp, Some(&tls)) {
        Ok(stream) => refuse(stream, peer, reason),
        Err(e) => tracing::debug!("telling {peer} the daemon is busy: {e}"),
    });
    if shared.refusal_pool.execute(job).is_err() {
        tracing::debug!("no thread to tell {peer} the daemon is busy; closing");
    }
}

fn refuse(mut stream: Stream, peer: SocketAddr, reason: String) {
    match security::refuse_busy(&mut stream, reason) {
        Ok(()) => stream.close(),
        Err(e) => tracing::debug!("telling {peer} the daemon is busy: {e}"),
    }
}

fn send(stream: &mut Stream, response: &Response, limit: usize) -> io::Result<()> {
    let frame = match encode_frame(response) {
        Ok(frame) => frame,
        Err(e) => encode_frame(&Response::Fatal {
            fault: Fault::Encode(e.to_string()),
        })
        .map_err(io::Error::other)?,
    };
    let frame = if frame.len() - 4 > limit {
        let fault = Fault::MessageTooLarge {
            size: (frame.len() - 4) as u64,
            limit: limit as u64,
        };
        let replacement = match response {
            Response::Reply { id, .. } => Response::Reply {
                id: *id,
                outcome: Err(fault),
            },
            Response::Batch { id, .. } => Response::Reply {
                id: *id,
                outcome: Err(fault),
            },
            Response::Fatal { .. } => Response::Fatal { fault },
        };
        encode_frame(&replacement).map_err(io::Error::other)?
    } else {
        frame
    };
    stream.write_all(&frame)?;
    stream.flush()
}

fn serve_connection(shared: &Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    let setup = tcp
        .set_nodelay(true)
        .and_then(|()| tcp.set_read_timeout(Some(shared.handshake_timeout)))
        .and_then(|()| tcp.set_write_timeout(Some(shared.handshake_timeout)));
    if let Err(e) = setup {
        tracing::debug!("connection from {peer}: {e}");
        return;
    }
    let mut stream = match Stream::server(tcp, shared.tls.as_ref()) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!("connection from {peer}: {e}");
            return;
        }
    };
    let mut reader = FrameReader::new();
    let session = match security::accept(&mut stream, &mut reader, shared.key.as_deref()) {
        Ok(session) => SessionGuard::join(shared, session),
        Err(reason) => {
            tracing::info!("refused connection from {peer}: {reason}");
            stream.close();
            return;
        }
    };
    // Reads block at most `tick` at a time, so that a wait for the next request can look
    // at the idle timeout; a frame under way gets the rest of its deadline (see `Timed`).
    let tick = shared
        .idle_timeout
        .map_or(shared.frame_timeout, |idle| idle.min(shared.frame_timeout));
    let timeouts = stream
        .tcp()
        .set_read_timeout(Some(tick))
        .and_then(|()| stream.tcp().set_write_timeout(Some(shared.frame_timeout)));
    if let Err(e) = timeouts {
        tracing::debug!("connection from {peer}: {e}");
        return;
    }
    let mut socket_timeout = tick;
    tracing::debug!("connection from {peer} accepted");
    let mut last_frame = Instant::now();
    loop {
        if socket_timeout != tick {
            if let Err(e) = stream.tcp().set_read_timeout(Some(tick)) {
                tracing::debug!("connection from {peer}: {e}");
                break;
            }
            socket_timeout = tick;
        }
        if !reader.await_bytes(stream.tcp()) && !stream.has_pending_plaintext() {
            match wait_for_request(stream.tcp(), last_frame, shared.idle_timeout) {
                Waited::Ready => {}
                Waited::Idle(idle) => {
                    tracing::info!("closing the connection from {peer}: idle for {idle:?}");
                    break;
                }
            }
        }
        let mut timed = Timed {
            stream: &mut stream,
            deadline: Instant::now() + shared.frame_timeout,
            socket_timeout: &mut socket_timeout,
        };
        let request = match reader.read_frame(&mut timed, shared.max_message_size) {
            Ok(Some(body)) => match decode_body::<Request>(body) {
                Ok(request) => request,
                Err(e) => {
                    tracing::warn!("undecodable request from {peer}: {e}; closing");
                    let fatal = Response::Fatal {
                        fault: Fault::Protocol(format!("the request does not decode: {e}")),
                    };
                    if let Err(e) = send(&mut stream, &fatal, shared.max_message_size) {
                        tracing::debug!("telling {peer}: {e}");
                    }
                    break;
                }
            },
            Ok(None) => break,
            Err(FrameError::TooLarge { size, limit }) => {
                tracing::warn!("{peer} sent a message of {size} bytes (limit {limit}); closing");
                let fatal = Response::Fatal {
                    fault: Fault::MessageTooLarge {
                        size: size as u64,
                        limit: limit as u64,
                    },
                };
                if let Err(e) = send(&mut stream, &fatal, shared.max_message_size) {
                    tracing::debug!("telling {peer}: {e}");
                }
                break;
            }
            Err(FrameError::Truncated { expected, got }) => {
                tracing::warn!(
                    "{peer} closed the connection {got} bytes into a frame of {expected} bytes"
                );
                break;
            }
            Err(FrameError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                tracing::warn!(
                    "{peer} sent part of a message and not the rest within {:?}; closing",
                    shared.frame_timeout
                );
                break;
            }
            Err(FrameError::Io(e)) => {
                if !shared.stopping.load(Ordering::Acquire) {
                    tracing::debug!("connection from {peer}: {e}");
                }
                break;
            }
        };
        last_frame = Instant::now();
        let response = match request {
            Request::Call {
                id,
                object,
                method,
                oneway,
                args,
            } => {
                let target = resolve(shared, &session.objects, &object);
                if oneway {
                    match target {
                        Ok(target) if !target.methods().contains(&method.as_str()) => {
                            tracing::warn!(
                                "one-way call from {peer} to {object}.{method}: {} has no such method",
                                target.service()
                            );
                        }
                        Ok(target) => run_oneway(shared, target, object, method, args, peer),
                        Err(fault) => {
                            tracing::warn!("one-way call from {peer} failed: {fault:?}");
                        }
                    }
                    continue;
                }
                let outcome = target
                    .and_then(|target| invoke(shared, &target, &object, &method, &args, peer));
                Response::Reply { id, outcome }
            }
            Request::Batch { id, object, calls } => {
                let mut outcomes = Vec::with_capacity(calls.len());
                for (method, args) in calls {
                    let outcome = resolve(shared, &session.objects, &object)
                        .and_then(|target| invoke(shared, &target, &object, &method, &args, peer));
                    let failed = outcome.is_err();
                    outcomes.push(outcome);
                    if failed {
                        break;
                    }
                }
                Response::Batch { id, outcomes }
            }
        };
        if let Err(e) = send(&mut stream, &response, shared.max_message_size) {
            tracing::debug!("answering {peer}: {e}");
            break;
        }
    }
    stream.close();
    drop(session);
    tracing::debug!("connection from {peer} closed");
}

/// What waiting for the next request came to.
enum Waited {
    /// Bytes are there to read (or the end of the stream, or an error, for the read to
    /// report).
    Ready,
    /// Nothing came for the idle timeout.
    Idle(Duration),
}

/// Blocks until the socket has something to read, looking at the idle timeout each time
/// the socket's read timeout passes.
fn wait_for_request(socket: &TcpStream, since: Instant, idle_timeout: Option<Duration>) -> Waited {
    loop {
        match peek(socket, true) {
            Peeked::Nothing => {
                if let Some(idle) = idle_timeout
                    && since.elapsed() >= idle
                {
                    return Waited::Idle(idle);
                }
            }
            Peeked::Bytes | Peeked::Closed | Peeked::Failed => return Waited::Ready,
        }
    }
}

/// A connection's stream while a frame is read: each read blocks no longer than what is
/// left of the frame's deadline, and a read past it fails with `TimedOut`.
struct Timed<'a> {
    stream: &'a mut Stream,
    deadline: Instant,
    /// The socket's read timeout now, to set it only when it must change.
    socket_timeout: &'a mut Duration,
}

impl io::Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the rest of the message did not come in time",
                ));
            }
            if left < *self.socket_timeout {
                self.stream.tcp().set_read_timeout(Some(left))?;
                *self.socket_timeout = left;
            }
            match self.stream.read(buf) {
                // The socket's timeout is shorter than the frame's when an idle timeout is
                // set: go on until the frame's own deadline.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) => {}
                outcome => return outcome,
            }
        }
    }
}

fn run_oneway(
    shared: &Arc<Shared>,
    target: Object,
    object: String,
    method: String,
    args: Vec<u8>,
    peer: SocketAddr,
) {
    let job_shared = shared.clone();
    let job = Box::new(move || {
        if let Err(fault) = invoke(&job_shared, &target, &object, &method, &args, peer) {
            tracing::warn!("one-way call {object}.{method} from {peer} failed: {fault:?}");
        }
    });
    // When every one-way thread is busy the call runs here, which slows this client only.
    if let Err(job) = shared.oneway_pool.execute(job) {
        job();
    }
}

fn resolve(shared: &Shared, session: &SessionObjects, name: &str) -> Result<Object, Fault> {
    let (serial, mode, factory) = {
        let objects = shared.objects.read();
        let entry = objects.get(name).ok_or_else(|| Fault::UnknownObject {
            object: name.to_string(),
        })?;
        match &entry.source {
            Source::Instance(object) => return Ok(object.clone()),
            Source::Factory(factory) => (entry.serial, entry.mode, factory.clone()),
        }
    };
    let make = || {
        catch_unwind(AssertUnwindSafe(|| factory())).map_err(|payload| Fault::Panicked {
            object: name.to_string(),
            method: "<factory>".to_string(),
            message: panic_message(payload.as_ref()),
        })
    };
    if mode != InstanceMode::Session {
        return make();
    }
    // Held while the factory runs, so that two connections of the session calling at once
    // get one instance.
    let mut session = session.lock();
    if let Some((cached, object)) = session.get(name)
        && *cached == serial
    {
        return Ok(object.clone());
    }
    let object = make()?;
    session.insert(name.to_string(), (serial, object.clone()));
    Ok(object)
}

fn invoke(
    shared: &Shared,
    target: &Object,
    object: &str,
    method: &str,
    args: &[u8],
    peer: SocketAddr,
) -> Result<Vec<u8>, Fault> {
    let _scope = Scope::enter(
        shared.settings.clone(),
        Some(CallInfo {
            peer,
            object: object.to_string(),
            method: method.to_string(),
        }),
    );
    match catch_unwind(AssertUnwindSafe(|| target.inner.dispatch(method, args))) {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(DispatchError::UnknownMethod)) => Err(Fault::UnknownMethod {
            object: object.to_string(),
            service: target.service().to_string(),
            method: method.to_string(),
        }),
        Ok(Err(DispatchError::BadArguments(message))) => Err(Fault::BadArguments {
            object: object.to_string(),
            method: method.to_string(),
            message,
        }),
        Ok(Err(DispatchError::Encode(message))) => Err(Fault::Encode(message)),
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            tracing::warn!("{object}.{method} panicked: {message}");
            Err(Fault::Panicked {
                object: object.to_string(),
                method: method.to_string(),
                message,
            })
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_thread_that_panics_gives_its_place_back() {
        let daemon = Daemon::start().unwrap();
        let shared = daemon.shared.clone();
        let tcp = TcpStream::connect(daemon.local_addr()).unwrap();
        shared.connections.lock().insert(u64::MAX, tcp);
        shared.open.fetch_add(1, Ordering::AcqRel);
        let guard = ConnectionGuard {
            shared: shared.clone(),
            id: u64::MAX,
        };
        let outcome = std::thread::spawn(move || {
            let _guard = guard;
            panic!("outside any method");
        })
        .join();
        assert!(outcome.is_err());
        assert!(!shared.connections.lock().contains_key(&u64::MAX));
        // The daemon's own connection from `TcpStream::connect` may still be open.
        assert!(shared.open.load(Ordering::Acquire) <= 1);
    }

    #[test]
    fn a_session_ends_with_its_last_connection() {
        let daemon = Daemon::start().unwrap();
        let first = SessionGuard::join(&daemon.shared, 7);
        let second = SessionGuard::join(&daemon.shared, 7);
        assert!(Arc::ptr_eq(&first.objects, &second.objects));
        drop(first);
        assert_eq!(daemon.shared.sessions.lock().get(&7).map(|s| s.0), Some(1));
        drop(second);
        assert!(daemon.shared.sessions.lock().is_empty());
    }

    #[test]
    fn a_stopped_daemon_registers_nothing() {
        let daemon = Daemon::start().unwrap();
        daemon.shutdown();
        let err = daemon.register("x", Object::new(Nothing)).unwrap_err();
        assert_eq!(err, Error::Shutdown);
    }

    struct Nothing;

    impl Dispatch for Nothing {
        fn service(&self) -> &'static str {
            "Nothing"
        }
        fn methods(&self) -> &'static [&'static str] {
            &[]
        }
        fn dispatch(&self, _method: &str, _args: &[u8]) -> Result<Vec<u8>, DispatchError> {
            Err(DispatchError::UnknownMethod)
        }
    }
}
