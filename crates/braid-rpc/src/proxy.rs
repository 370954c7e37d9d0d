use std::future::Future;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::net::{TcpStream, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::{Scope, Settings, current_call, inherited_settings};
use crate::error::{Error, Fault};
use crate::frame::{
    FrameError, FrameReader, Peeked, Request, Response, decode_body, encode_frame, peek,
};
use crate::nameserver;
use crate::pool::Pool;
use crate::security::{self, ClientTls, Stream};
use crate::uri::Uri;

/// Anything that names a remote object: a [`Uri`] or its text.
pub trait IntoUri {
    /// Parses or hands over the URI.
    ///
    /// # Errors
    /// [`Error::InvalidUri`] when the text does not parse.
    fn into_uri(self) -> Result<Uri, Error>;
}

impl IntoUri for Uri {
    fn into_uri(self) -> Result<Uri, Error> {
        Ok(self)
    }
}

impl IntoUri for &Uri {
    fn into_uri(self) -> Result<Uri, Error> {
        Ok(self.clone())
    }
}

impl IntoUri for &str {
    fn into_uri(self) -> Result<Uri, Error> {
        self.parse()
    }
}

impl IntoUri for String {
    fn into_uri(self) -> Result<Uri, Error> {
        self.parse()
    }
}

impl IntoUri for &String {
    fn into_uri(self) -> Result<Uri, Error> {
        self.parse()
    }
}

/// Where a proxy's calls go once its URI is resolved.
#[derive(Debug, Clone)]
struct Target {
    host: String,
    port: u16,
    object: String,
    tls: bool,
}

impl Target {
    fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One open connection to a daemon.
struct Conn {
    stream: Stream,
    reader: FrameReader,
    target: Target,
    address: String,
}

impl Conn {
    /// Whether the daemon closed this idle connection (or sent something unasked).
    fn is_stale(&mut self) -> bool {
        if self.reader.has_buffered() {
            return true;
        }
        match peek(self.stream.tcp(), false) {
            Peeked::Nothing => false,
            Peeked::Closed | Peeked::Failed => true,
            Peeked::Bytes => match &mut self.stream {
                // TLS has records of its own (session tickets, a close_notify): let rustls
                // read them and say whether the daemon closed the session.
                Stream::ClientTls(tls) => tls_peer_closed(tls),
                _ => true,
            },
        }
    }
}

fn tls_peer_closed(tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> bool {
    if tls.sock.set_nonblocking(true).is_err() {
        return true;
    }
    let mut closed = loop {
        match tls.conn.read_tls(&mut tls.sock) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    if !closed {
        closed = match tls.conn.process_new_packets() {
            Ok(state) => state.peer_has_closed() || state.plaintext_bytes_to_read() > 0,
            Err(_) => true,
        };
    }
    tls.sock.set_nonblocking(false).is_err() || closed
}

/// A session id unique to this proxy among the daemon's clients: a random number drawn
/// once per process, and a counter.
fn new_session() -> u128 {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| {
        let mut bytes = [0u8; 8];
        match rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()) {
            Ok(_) => u64::from_le_bytes(bytes),
            Err(e) => {
                // Without randomness the process id and the time tell processes apart.
                tracing::warn!("no random session id: {e}");
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |t| t.as_nanos() as u64);
                now ^ (u64::from(std::process::id()) << 32)
            }
        }
    });
    (u128::from(process) << 64) | u128::from(COUNTER.fetch_add(1, Ordering::Relaxed))
}

struct Inner {
    uri: Uri,
    settings: Settings,
    /// Sent in each connection's handshake; see [`InstanceMode::Session`].
    ///
    /// [`InstanceMode::Session`]: crate::InstanceMode::Session
    session: Mutex<u128>,
    resolved: Mutex<Option<Target>>,
    idle: Mutex<Vec<Conn>>,
    next_id: AtomicU64,
}

/// An untyped proxy for a remote object; `#[service]` generates typed proxies over it.
///
/// It connects on the first call and keeps its connections for the next ones; clones
/// share them, and calls from several threads at once use one connection each. A proxy
/// and its clones are one session for objects served in
/// [`InstanceMode::Session`](crate::InstanceMode::Session). A proxy serialises as its
/// URI: passed to or returned from a remote method, it arrives as a proxy for the same
/// object, with the key and TLS settings of the side that decodes it.
///
/// # Reconnection
///
/// After the daemon restarts or closes a connection, the next call connects again
/// (resolving a `braidname:` URI anew) and succeeds if the daemon is back. A pooled
/// connection is checked before it is used, and one found closed is replaced. A call
/// whose request could not be written on a pooled connection is sent again, once, on a
/// new connection: the daemon runs only whole requests, so it cannot have run it. A call
/// whose request was written is never sent again, because the daemon may have run it
/// (non-idempotent methods would run twice): when the connection breaks before the
/// answer, the call fails with [`Error::ConnectionLost`] or [`Error::Timeout`] and the
/// caller decides.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("uri", &self.inner.uri.to_string())
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl PartialEq for Proxy {
    /// Proxies are equal when they name the same object.
    fn eq(&self, other: &Self) -> bool {
        self.inner.uri == other.inner.uri
    }
}

impl Proxy {
    /// A proxy for the object at `uri`. Nothing is connected until the first call. Made
    /// inside a remote method, it starts with the daemon's key and client TLS settings.
    ///
    /// # Errors
    /// [`Error::InvalidUri`] when the URI does not parse.
    pub fn new(uri: impl IntoUri) -> Result<Proxy, Error> {
        Ok(Proxy::with_settings(uri.into_uri()?, inherited_settings()))
    }

    pub(crate) fn with_settings(uri: Uri, settings: Settings) -> Proxy {
        Proxy::in_session(uri, settings, new_session())
    }

    fn in_session(uri: Uri, settings: Settings, session: u128) -> Proxy {
        Proxy {
            inner: Arc::new(Inner {
                uri,
                settings,
                session: Mutex::new(session),
                resolved: Mutex::new(None),
                idle: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    fn reconfigured(&self, change: impl FnOnce(&mut Settings)) -> Proxy {
        let mut settings = self.inner.settings.clone();
        change(&mut settings);
        Proxy::in_session(self.inner.uri.clone(), settings, *self.inner.session.lock())
    }

    /// The object's URI.
    pub fn uri(&self) -> &Uri {
        &self.inner.uri
    }

    /// The same object, with calls that fail with [`Error::Timeout`] when the daemon sends
    /// nothing for `timeout` (connections are separate from this proxy's).
    pub fn with_timeout(&self, timeout: Duration) -> Proxy {
        self.reconfigured(|s| s.timeout = Some(timeout))
    }

    /// The same object, proving knowledge of `key` when connecting.
    pub fn with_key(&self, key: impl AsRef<[u8]>) -> Proxy {
        let key: Arc<[u8]> = Arc::from(key.as_ref());
        self.reconfigured(|s| s.key = Some(key))
    }

    /// The same object, reached over TLS checked with `tls` (needed for `braids://`).
    pub fn with_tls(&self, tls: ClientTls) -> Proxy {
        self.reconfigured(|s| s.tls = Some(tls))
    }

    /// The same object, refusing replies larger than `bytes` (default 64 MiB).
    pub fn with_max_message_size(&self, bytes: usize) -> Proxy {
        self.reconfigured(|s| s.max_message_size = bytes)
    }

    /// Connects now (resolving the name and completing the handshake) instead of at the
    /// first call, like Pyro's `_pyroBind`.
    ///
    /// # Errors
    /// What connecting can fail with: [`Error::Connect`], [`Error::Authentication`],
    /// [`Error::Tls`], [`Error::NameNotFound`].
    pub fn bind(&self) -> Result<(), Error> {
        let (conn, _) = self.checkout()?;
        self.checkin(conn);
        Ok(())
    }

    /// Closes the idle connections, like Pyro's `_pyroRelease`; the next call connects
    /// again, in a new session (so objects served in
    /// [`InstanceMode::Session`](crate::InstanceMode::Session) start a new instance).
    pub fn release(&self) {
        *self.inner.session.lock() = new_session();
        for mut conn in self.inner.idle.lock().drain(..) {
            conn.stream.close();
        }
    }

    fn target(&self) -> Result<Target, Error> {
        match &self.inner.uri {
            Uri::Direct {
                host,
                port,
                object,
                tls,
            } => Ok(Target {
                host: host.clone(),
                port: *port,
                object: object.clone(),
                tls: *tls,
            }),
            Uri::Name { name, nameserver } => {
                if let Some(target) = self.inner.resolved.lock().clone() {
                    return Ok(target);
                }
                let uri = nameserver::resolve(name, nameserver.clone(), &self.inner.settings)?;
                let Uri::Direct {
                    host,
                    port,
                    object,
                    tls,
                } = uri
                else {
                    return Err(Error::Protocol(format!(
                        "the name server resolved `{name}` to another name, `{uri}`"
                    )));
                };
                let target = Target {
                    host,
                    port,
                    object,
                    tls,
                };
                *self.inner.resolved.lock() = Some(target.clone());
                Ok(target)
            }
        }
    }

    fn forget_resolution(&self) {
        self.inner.resolved.lock().take();
    }

    fn connect(&self) -> Result<Conn, Error> {
        let cached = self.inner.resolved.lock().is_some();
        let target = self.target()?;
        match self.open(&target) {
            Ok(conn) => Ok(conn),
            Err(e) => {
                self.forget_resolution();
                if !(cached && e.is_connection_error()) {
                    return Err(e);
                }
                // The name was resolved a while ago and the object may have moved: ask the
                // name server again (nothing was sent, so trying again is safe).
                tracing::debug!("{} unreachable ({e}); resolving it again", target.address());
                let target = self.target()?;
                self.open(&target).inspect_err(|_| self.forget_resolution())
            }
        }
    }

    fn open(&self, target: &Target) -> Result<Conn, Error> {
        let settings = &self.inner.settings;
        let address = target.address();
        let connect_error = |message: String| Error::Connect {
            address: address.clone(),
            message,
        };
        let addrs: Vec<_> = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map_err(|e| connect_error(e.to_string()))?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for addr in &addrs {
            let attempt = match settings.timeout {
                Some(timeout) => TcpStream::connect_timeout(addr, timeout),
                None => TcpStream::connect(addr),
            };
            match attempt {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            connect_error(last.map_or_else(
                || "the host name resolves to no address".to_string(),
                |e| e.to_string(),
            ))
        })?;
        let handshake_timeout = settings.timeout.unwrap_or(Duration::from_secs(10));
        tcp.set_nodelay(true)
            .and_then(|()| tcp.set_read_timeout(Some(handshake_timeout)))
            .and_then(|()| tcp.set_write_timeout(Some(handshake_timeout)))
            .map_err(|e| connect_error(e.to_string()))?;
        let tls = if target.tls {
            Some(settings.tls.as_ref().ok_or_else(|| {
                Error::Tls(format!(
                    "{} is served over TLS; give the proxy a ClientTls (with_tls)",
                    self.inner.uri
                ))
            })?)
        } else {
            None
        };
        let mut stream = Stream::client(tcp, &target.host, tls)?;
        let mut reader = FrameReader::new();
        let session = *self.inner.session.lock();
        security::connect(
            &mut stream,
            &mut reader,
            settings.key.as_deref(),
            session,
            &address,
        )?;
        stream
            .tcp()
            .set_read_timeout(settings.timeout)
            .and_then(|()| stream.tcp().set_write_timeout(settings.timeout))
            .map_err(|e| connect_error(e.to_string()))?;
        Ok(Conn {
            stream,
            reader,
            target: target.clone(),
            address,
        })
    }

    /// A connection, and whether it was pooled (used before).
    fn checkout(&self) -> Result<(Conn, bool), Error> {
        loop {
            let Some(mut conn) = self.inner.idle.lock().pop() else {
                break;
            };
            // Every time, however recently it was used (a daemon restarts in less than a
            // millisecond): a request written into a connection the daemon has closed
            // fails after it was sent, and cannot be sent again safely (see `Proxy`). The
            // check costs one non-blocking system call.
            if conn.is_stale() {
                tracing::debug!("connection to {} was closed; reconnecting", conn.address);
                conn.stream.close();
                continue;
            }
            return Ok((conn, true));
        }
        Ok((self.connect()?, false))
    }

    fn checkin(&self, conn: Conn) {
        self.inner.idle.lock().push(conn);
    }

    fn io_error(&self, conn: &Conn, e: io::Error) -> Error {
        if let Some(tls) = security::io_error_kind(&e) {
            return Error::Tls(tls);
        }
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                Error::Timeout(self.inner.settings.timeout.unwrap_or_default())
            }
            _ => Error::ConnectionLost {
                address: conn.address.clone(),
                message: e.to_string(),
            },
        }
    }

    /// Sends one request and, unless it is one-way, reads its answer.
    fn exchange(
        &self,
        request: impl FnOnce(&str, u64) -> Request,
        oneway: bool,
    ) -> Result<Option<Response>, Error> {
        let (mut conn, mut pooled) = self.checkout()?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut request = request(&conn.target.object, id);
        let limit = self.inner.settings.max_message_size;
        loop {
            let frame = match encode_frame(&request) {
                Ok(frame) => frame,
                Err(e) => {
                    self.checkin(conn);
                    return Err(Error::Encode(e.to_string()));
                }
            };
            if frame.len() - 4 > limit {
                self.checkin(conn);
                return Err(Error::MessageTooLarge {
                    size: (frame.len() - 4) as u64,
                    limit: limit as u64,
                });
            }
            let Err(e) = conn
                .stream
                .write_all(&frame)
                .and_then(|()| conn.stream.flush())
            else {
                break;
            };
            self.forget_resolution();
            if !pooled {
                return Err(self.io_error(&conn, e));
            }
            // The daemon runs only whole requests, and this one was not written whole:
            // it has not run, and may go once more on a new connection.
            tracing::debug!(
                "writing to a pooled connection to {} failed ({e}); reconnecting",
                conn.address
            );
            conn.stream.close();
            conn = self.connect()?;
            pooled = false;
            request.set_object(&conn.target.object);
        }
        if oneway {
            self.checkin(conn);
            return Ok(None);
        }
        conn.reader.await_bytes(conn.stream.tcp());
        let response = match conn.reader.read_frame(&mut conn.stream, limit) {
            Ok(Some(body)) => decode_body::<Response>(body)
                .map_err(|e| Error::Protocol(format!("the reply does not decode: {e}"))),
            Ok(None) => Err(Error::ConnectionLost {
                address: conn.address.clone(),
                message: "the daemon closed the connection".into(),
            }),
            Err(FrameError::Io(e)) => Err(self.io_error(&conn, e)),
            Err(FrameError::TooLarge { size, limit }) => Err(Error::MessageTooLarge {
                size: size as u64,
                limit: limit as u64,
            }),
            Err(e @ FrameError::Truncated { .. }) => Err(Error::ConnectionLost {
                address: conn.address.clone(),
                message: e.to_string(),
            }),
        };
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                self.forget_resolution();
                return Err(e);
            }
        };
        let answered = match &response {
            Response::Reply { id: got, .. } | Response::Batch { id: got, .. } => *got == id,
            Response::Fatal { fault } => return Err(fault.clone().into()),
        };
        if !answered {
            return Err(Error::Protocol(format!(
                "the daemon answered another call than {id}"
            )));
        }
        self.checkin(conn);
        Ok(Some(response))
    }

    fn decode<R: DeserializeOwned>(&self, bytes: &[u8]) -> Result<R, Error> {
        let _scope = Scope::enter(self.inner.settings.clone(), current_call());
        let (value, rest) = postcard::take_from_bytes(bytes).map_err(Error::decode::<R>)?;
        if rest.is_empty() {
            Ok(value)
        } else {
            Err(Error::decode::<R>(format!(
                "{} trailing bytes after the value",
                rest.len()
            )))
        }
    }

    fn call_encoded(&self, method: &str, args: Vec<u8>) -> Result<Vec<u8>, Error> {
        let response = self.exchange(
            |object, id| Request::Call {
                id,
                object: object.to_string(),
                method: method.to_string(),
                oneway: false,
                args,
            },
            false,
        )?;
        match response {
            Some(Response::Reply { outcome, .. }) => outcome.map_err(Error::from),
            _ => Err(Error::Protocol(
                "the daemon answered a call with a batch".into(),
            )),
        }
    }

    /// Calls `method` with the argument tuple `args` and waits for its result.
    ///
    /// # Errors
    /// A connection error ([`Error::Connect`], [`Error::ConnectionLost`],
    /// [`Error::Timeout`], ...), one raised by the daemon ([`Error::UnknownObject`],
    /// [`Error::UnknownMethod`], [`Error::BadArguments`], [`Error::Panicked`]), or a result
    /// that does not decode as `R`.
    pub fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<R, Error> {
        let args = postcard::to_stdvec(args).map_err(|e| Error::Encode(e.to_string()))?;
        let bytes = self.call_encoded(method, args)?;
        self.decode(&bytes)
    }

    /// Sends a one-way call: returns once it is written, without waiting for the method
    /// to run. Errors it meets in the daemon are logged there.
    ///
    /// # Errors
    /// A connection error, or arguments that cannot be encoded.
    pub fn call_oneway<A: Serialize + ?Sized>(&self, method: &str, args: &A) -> Result<(), Error> {
        let args = postcard::to_stdvec(args).map_err(|e| Error::Encode(e.to_string()))?;
        self.exchange(
            |object, id| Request::Call {
                id,
                object: object.to_string(),
                method: method.to_string(),
                oneway: true,
                args,
            },
            true,
        )?;
        Ok(())
    }

    /// Starts `method` on a background thread and returns at once; the result arrives in
    /// the [`AsyncResult`] (Pyro4's asynchronous proxy and `FutureResult`), which can be
    /// waited for or awaited. At most 256 asynchronous calls (of all proxies) run at
    /// once; more wait in a queue for a thread.
    pub fn call_async<A: Serialize + ?Sized, R: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        args: &A,
    ) -> AsyncResult<R> {
        let (completer, result) = async_pair();
        let args = match postcard::to_stdvec(args) {
            Ok(args) => args,
            Err(e) => {
                completer.complete(Err(Error::Encode(e.to_string())));
                return result;
            }
        };
        let proxy = self.clone();
        let method = method.to_string();
        let job = Box::new(move || {
            let outcome = proxy
                .call_encoded(&method, args)
                .and_then(|bytes| proxy.decode(&bytes));
            completer.complete(outcome);
        });
        // When every thread of the pool is busy the call waits for one: the number of
        // threads stays bounded however many calls are started.
        async_pool().execute_or_queue(job);
        result
    }

    /// Starts a batch of calls to send in one message.
    pub fn batch(&self) -> Batch {
        Batch {
            proxy: self.clone(),
            calls: Vec::new(),
            error: None,
        }
    }
}

impl Serialize for Proxy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.inner.uri)
    }
}

impl<'de> serde::Deserialize<'de> for Proxy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let uri: Uri = text.parse().map_err(serde::de::Error::custom)?;
        Ok(Proxy::with_settings(uri, inherited_settings()))
    }
}

fn async_pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::new("braid-rpc-async", 256, Duration::from_secs(10)))
}

struct AsyncState<T> {
    outcome: Option<Result<T, Error>>,
    /// The task awaiting the result, woken when it arrives.
    waker: Option<Waker>,
    /// Whether the result was handed out already.
    taken: bool,
}

struct AsyncSlot<T> {
    state: Mutex<AsyncState<T>>,
    ready: Condvar,
}

impl<T> AsyncSlot<T> {
    fn fill(&self, outcome: Result<T, Error>) {
        let waker = {
            let mut state = self.state.lock();
            state.outcome = Some(outcome);
            state.waker.take()
        };
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Fills an [`AsyncResult`]; dropped unfilled, it fills it with [`Error::Lost`].
struct Completer<T> {
    slot: Option<Arc<AsyncSlot<T>>>,
}

impl<T> Completer<T> {
    fn complete(mut self, outcome: Result<T, Error>) {
        if let Some(slot) = self.slot.take() {
            slot.fill(outcome);
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.fill(Err(Error::Lost(
                "the thread running it ended without a result".into(),
            )));
        }
    }
}

fn async_pair<T>() -> (Completer<T>, AsyncResult<T>) {
    let slot = Arc::new(AsyncSlot {
        state: Mutex::new(AsyncState {
            outcome: None,
            waker: None,
            taken: false,
        }),
        ready: Condvar::new(),
    });
    (
        Completer {
            slot: Some(slot.clone()),
        },
        AsyncResult { slot },
    )
}

/// The result of an asynchronous call, to be read when it is ready (Pyro4's
/// `FutureResult`).
///
/// Read it by blocking ([`result`](AsyncResult::result),
/// [`wait_timeout`](AsyncResult::wait_timeout)) or by awaiting it: `AsyncResult` is a
/// [`Future`] woken when the call completes, so an async task waits without blocking its
/// runtime's thread (the call itself runs on a thread of braid-rpc's own pool).
///
/// ```no_run
/// # #[braid_rpc::service]
/// # pub trait Calculator { fn add(&self, a: i64, b: i64) -> i64; }
/// # async fn run(calc: CalculatorProxy) -> Result<(), braid_rpc::Error> {
/// let sum = calc.add_async(2, 3).await?;
/// # Ok(()) }
/// ```
///
/// # Cancel safety
///
/// Dropping the future does not cancel the call: the daemon runs it anyway and its result
/// is dropped.
pub struct AsyncResult<T> {
    slot: Arc<AsyncSlot<T>>,
}

impl<T> std::fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.is_ready())
            .finish()
    }
}

fn take_outcome<T>(state: &mut AsyncState<T>) -> Result<T, Error> {
    match state.outcome.take() {
        Some(outcome) => {
            state.taken = true;
            outcome
        }
        None => Err(Error::Lost("the result was taken already".into())),
    }
}

impl<T> AsyncResult<T> {
    /// Whether the result has arrived.
    pub fn is_ready(&self) -> bool {
        let state = self.slot.state.lock();
        state.outcome.is_some() || state.taken
    }

    /// Waits up to `timeout` for the result; returns whether it has arrived.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let mut state = self.slot.state.lock();
        if state.outcome.is_none() && !state.taken {
            self.slot.ready.wait_while_for(
                &mut state,
                |s| s.outcome.is_none() && !s.taken,
                timeout,
            );
        }
        state.outcome.is_some() || state.taken
    }

    /// Waits for the result and returns it; blocks the thread (in async code, `.await`
    /// the `AsyncResult` instead).
    ///
    /// # Errors
    /// Whatever the call failed with.
    pub fn result(self) -> Result<T, Error> {
        let mut state = self.slot.state.lock();
        self.slot
            .ready
            .wait_while(&mut state, |s| s.outcome.is_none() && !s.taken);
        take_outcome(&mut state)
    }
}

impl<T> Future for AsyncResult<T> {
    type Output = Result<T, Error>;

    /// Ready once the call completed; polled again after that, it gives
    /// [`Error::Lost`].
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.state.lock();
        if state.outcome.is_some() || state.taken {
            return Poll::Ready(take_outcome(&mut state));
        }
        match &mut state.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            None => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// A place in a [`Batch`] where one call's result of type `R` will be.
#[derive(Debug)]
pub struct Slot<R> {
    index: usize,
    _result: PhantomData<fn() -> R>,
}

/// Calls recorded to go to one object in one message (Pyro's `BatchProxy`); the daemon runs
/// them in order and stops at the first that fails.
pub struct Batch {
    proxy: Proxy,
    calls: Vec<(String, Vec<u8>)>,
    error: Option<Error>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("uri", &self.proxy.uri().to_string())
            .field("calls", &self.calls.len())
            .finish()
    }
}

impl Batch {
    /// Records a call to `method` with the argument tuple `args`.
    pub fn push<A: Serialize + ?Sized, R>(&mut self, method: &str, args: &A) -> Slot<R> {
        let index = self.calls.len();
        match postcard::to_stdvec(args) {
            Ok(args) => self.calls.push((method.to_string(), args)),
            Err(e) => {
                self.calls.push((method.to_string(), Vec::new()));
                if self.error.is_none() {
                    self.error = Some(Error::Encode(format!("arguments of call {index}: {e}")));
                }
            }
        }
        Slot {
            index,
            _result: PhantomData,
        }
    }

    /// How many calls are recorded.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether no call is recorded.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Sends the calls and waits for their results.
    ///
    /// # Errors
    /// A connection error, or the first arguments that could not be encoded (then nothing
    /// is sent). A call that fails in the daemon is reported through its slot.
    pub fn execute(self) -> Result<BatchResults, Error> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let calls = self.calls;
        let response = self.proxy.exchange(
            |object, id| Request::Batch {
                id,
                object: object.to_string(),
                calls,
            },
            false,
        )?;
        match response {
            Some(Response::Batch { outcomes, .. }) => Ok(BatchResults {
                outcomes,
                proxy: self.proxy,
            }),
            Some(Response::Reply {
                outcome: Err(fault),
                ..
            }) => Err(fault.into()),
            _ => Err(Error::Protocol(
                "the daemon answered a batch with a single reply".into(),
            )),
        }
    }
}

/// The results of an executed [`Batch`].
pub struct BatchResults {
    outcomes: Vec<Result<Vec<u8>, Fault>>,
    proxy: Proxy,
}

impl std::fmt::Debug for BatchResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchResults")
            .field("ran", &self.outcomes.len())
            .finish()
    }
}

impl BatchResults {
    /// The result of the call recorded as `slot`.
    ///
    /// # Errors
    /// The call's own error, [`Error::BatchAborted`] when an earlier call failed and this
    /// one did not run, or a result that does not decode as `R`.
    pub fn get<R: DeserializeOwned>(&self, slot: &Slot<R>) -> Result<R, Error> {
        match self.outcomes.get(slot.index) {
            Some(Ok(bytes)) => self.proxy.decode(bytes),
            Some(Err(fault)) => Err(fault.clone().into()),
            None => Err(Error::BatchAborted {
                failed: self.outcomes.len().saturating_sub(1),
            }),
        }
    }

    /// How many calls ran (all, unless one failed).
    pub fn ran(&self) -> usize {
        self.outcomes.len()
    }
}
