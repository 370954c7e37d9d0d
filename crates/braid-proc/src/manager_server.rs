//! [`ManagerServer`]: the process that holds a manager's objects and serves every
//! client connection on a thread of its own.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use braid_core::Codec;
use indexmap::IndexMap;
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

use crate::channel::ChannelEnd;
use crate::manager_wire::{
    self as mw, Address, DictOp, ListOp, NamespaceOp, ObjectKind, QueueOp, Reply, Request,
};
use crate::wire::Wire;
use crate::{Error, Result};

/// A manager's server, like the server of Python's `multiprocessing.managers`: it holds
/// dicts, lists, namespaces and queues, and serves them to clients that prove they know
/// the authentication key.
///
/// [`Manager::start`](crate::Manager::start) runs one in a child process. Run one
/// yourself to serve other machines: bind to a TCP address and
/// [`serve_forever`](ManagerServer::serve_forever); clients anywhere then
/// [`connect`](crate::ManagerClient::connect) with the address and the key.
///
/// ```no_run
/// use braid_proc::{Address, ManagerServer};
///
/// let server = ManagerServer::bind(&"tcp://0.0.0.0:50000".parse().unwrap(), b"secret").unwrap();
/// println!("serving on {}", server.address());
/// server.serve_forever().unwrap();
/// ```
pub struct ManagerServer {
    listener: Listener,
    address: Address,
    state: Arc<State>,
}

enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

struct State {
    key: Vec<u8>,
    objects: Mutex<HashMap<u64, Arc<Object>>>,
    names: Mutex<HashMap<String, u64>>,
    next_id: AtomicU64,
}

enum Object {
    Dict(Mutex<IndexMap<Vec<u8>, Vec<u8>>>),
    List(Mutex<Vec<Vec<u8>>>),
    Namespace(Mutex<IndexMap<String, Vec<u8>>>),
    Queue(ServerQueue),
}

struct ServerQueue {
    items: Mutex<VecDeque<Vec<u8>>>,
    maxsize: usize,
    changed: Condvar,
}

impl Object {
    fn kind(&self) -> ObjectKind {
        match self {
            Object::Dict(_) => ObjectKind::Dict,
            Object::List(_) => ObjectKind::List,
            Object::Namespace(_) => ObjectKind::Namespace,
            Object::Queue(_) => ObjectKind::Queue,
        }
    }

    fn new(kind: ObjectKind, maxsize: u64) -> Object {
        match kind {
            ObjectKind::Dict => Object::Dict(Mutex::new(IndexMap::new())),
            ObjectKind::List => Object::List(Mutex::new(Vec::new())),
            ObjectKind::Namespace => Object::Namespace(Mutex::new(IndexMap::new())),
            ObjectKind::Queue => Object::Queue(ServerQueue {
                items: Mutex::new(VecDeque::new()),
                maxsize: maxsize as usize,
                changed: Condvar::new(),
            }),
        }
    }
}

impl ManagerServer {
    /// Binds a server to `address` (a TCP port 0 or an empty Unix name picks a free
    /// one; see [`address`](ManagerServer::address)) with the authentication key `key`.
    ///
    /// # Errors
    /// [`Error::Os`] when the address cannot be bound.
    pub fn bind(address: &Address, key: &[u8]) -> Result<ManagerServer> {
        let (listener, address) = match address {
            Address::Tcp(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .map_err(|e| Error::os(format!("binding a manager to {address}"), e))?;
                let bound = listener
                    .local_addr()
                    .map_err(|e| Error::os("reading the manager's address", e))?;
                (Listener::Tcp(listener), Address::Tcp(bound))
            }
            Address::Unix(name) => {
                use std::os::linux::net::SocketAddrExt;
                let name = if name.is_empty() {
                    format!(
                        "braid-manager-{}-{:x}",
                        std::process::id(),
                        crate::sys::random_u64()
                    )
                } else {
                    name.clone()
                };
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                    .map_err(|e| Error::os(format!("manager address {address}"), e))?;
                let listener = std::os::unix::net::UnixListener::bind_addr(&addr)
                    .map_err(|e| Error::os(format!("binding a manager to {address}"), e))?;
                (Listener::Unix(listener), Address::Unix(name))
            }
        };
        Ok(ManagerServer {
            listener,
            address,
            state: Arc::new(State {
                key: key.to_vec(),
                objects: Mutex::new(HashMap::new()),
                names: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// The address clients connect to.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Accepts and serves clients until the listener fails; each client gets a thread.
    ///
    /// # Errors
    /// [`Error::Os`] when accepting fails for good.
    pub fn serve_forever(self) -> Result<()> {
        loop {
            let unix = matches!(self.listener, Listener::Unix(_));
            let accepted: std::io::Result<OwnedFd> = match &self.listener {
                Listener::Tcp(l) => l.accept().and_then(|(s, _)| {
                    s.set_nodelay(true)?;
                    Ok(s.into())
                }),
                Listener::Unix(l) => l.accept().map(|(s, _)| s.into()),
            };
            let fd = match accepted {
                Ok(fd) => fd,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(24 | 23)) => {
                    // Out of descriptors: refuse this one, keep serving the others.
                    tracing::warn!(error = %e, "a manager cannot accept a client now");
                    continue;
                }
                Err(e) => return Err(Error::os("accepting a manager client", e)),
            };
            let state = self.state.clone();
            let spawned = std::thread::Builder::new()
                .name("braid-manager-client".into())
                .spawn(move || serve_client(Wire::new(fd), &state, unix));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a thread for a manager client");
            }
        }
    }
}

impl std::fmt::Debug for ManagerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

fn serve_client(mut wire: Wire, state: &State, unix: bool) {
    if let Err(e) = mw::handshake_server(&mut wire, &state.key) {
        tracing::info!(error = %e, "a manager client failed the handshake");
        return;
    }
    if unix {
        // The client moves to a shared-memory channel, the socket as its doorbell.
        let end = wire.recv_with_fds().and_then(|(frame, mut fds)| {
            if frame != mw::CHANNEL || fds.len() != 1 {
                return Err(Error::os(
                    "a manager client",
                    "expected a channel after the handshake",
                ));
            }
            let region = fds.remove(0);
            ChannelEnd::join(region, wire.into_fd()?, 1, true)
        });
        match end {
            Ok(end) => serve_channel(&end, state),
            Err(e) => tracing::info!(error = %e, "a manager client sent no channel"),
        }
        return;
    }
    loop {
        let reply = match wire.recv_blocking() {
            Ok(frame) => answer(state, frame),
            Err(_) => return, // the client went away
        };
        let Some(bytes) = reply else { return };
        if wire.send(&bytes).is_err() {
            return;
        }
    }
}

fn serve_channel(end: &ChannelEnd, state: &State) {
    loop {
        let reply = match end.recv(None) {
            Ok(Some(frame)) => answer(state, &frame),
            Ok(None) | Err(_) => return, // the client went away
        };
        let Some(bytes) = reply else { return };
        if end.send(&bytes).is_err() {
            return;
        }
    }
}

/// Decodes, runs and encodes one request; `None` when the reply cannot be encoded.
fn answer(state: &State, frame: &[u8]) -> Option<Vec<u8>> {
    let reply = match Codec::Binary.decode::<Request>(frame) {
        Ok(request) => handle(state, request),
        Err(e) => Reply::Failed(format!("undecodable request: {e}")),
    };
    match Codec::Binary.encode(&reply) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a manager reply");
            None
        }
    }
}

fn object(state: &State, id: u64) -> std::result::Result<Arc<Object>, Reply> {
    state
        .objects
        .lock()
        .get(&id)
        .cloned()
        .ok_or_else(|| Reply::Failed(format!("no object #{id} on this manager")))
}

fn handle(state: &State, request: Request) -> Reply {
    match request {
        Request::Open {
            kind,
            name,
            maxsize,
        } => open(state, kind, name, maxsize),
        Request::Dict(id, op) => match object(state, id) {
            Ok(obj) => match &*obj {
                Object::Dict(map) => dict(&mut map.lock(), op),
                other => wrong_kind(id, other, ObjectKind::Dict),
            },
            Err(reply) => reply,
        },
        Request::List(id, op) => match object(state, id) {
            Ok(obj) => match &*obj {
                Object::List(list) => list_op(&mut list.lock(), op),
                other => wrong_kind(id, other, ObjectKind::List),
            },
            Err(reply) => reply,
        },
        Request::Namespace(id, op) => match object(state, id) {
            Ok(obj) => match &*obj {
                Object::Namespace(ns) => namespace(&mut ns.lock(), op),
                other => wrong_kind(id, other, ObjectKind::Namespace),
            },
            Err(reply) => reply,
        },
        Request::Queue(id, op) => match object(state, id) {
            Ok(obj) => match &*obj {
                Object::Queue(q) => queue(q, op),
                other => wrong_kind(id, other, ObjectKind::Queue),
            },
            Err(reply) => reply,
        },
    }
}

fn wrong_kind(id: u64, found: &Object, wanted: ObjectKind) -> Reply {
    Reply::Failed(format!(
        "object #{id} is a {}, not a {}",
        found.kind().name(),
        wanted.name()
    ))
}

fn open(state: &State, kind: ObjectKind, name: Option<String>, maxsize: u64) -> Reply {
    let mut names = state.names.lock();
    if let Some(name) = &name
        && let Some(&id) = names.get(name)
    {
        return match state.objects.lock().get(&id).map(|o| o.kind()) {
            Some(found) if found == kind => Reply::Id(id),
            Some(found) => Reply::Failed(format!(
                "`{name}` is a {} on this manager, not a {}",
                found.name(),
                kind.name()
            )),
            None => Reply::Failed(format!("`{name}` names a missing object")),
        };
    }
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    state
        .objects
        .lock()
        .insert(id, Arc::new(Object::new(kind, maxsize)));
    if let Some(name) = name {
        names.insert(name, id);
    }
    Reply::Id(id)
}

fn dict(map: &mut IndexMap<Vec<u8>, Vec<u8>>, op: DictOp) -> Reply {
    match op {
        DictOp::Get(key) => Reply::Value(map.get(&key).cloned()),
        DictOp::Set(key, value) => {
            map.insert(key, value);
            Reply::Done
        }
        DictOp::Remove(key) => Reply::Value(map.shift_remove(&key)),
        DictOp::Contains(key) => Reply::Bool(map.contains_key(&key)),
        DictOp::Len => Reply::Len(map.len() as u64),
        DictOp::Keys => Reply::Values(map.keys().cloned().collect()),
        DictOp::Values => Reply::Values(map.values().cloned().collect()),
        DictOp::Items => Reply::Pairs(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        DictOp::Clear => {
            map.clear();
            Reply::Done
        }
    }
}

fn list_op(list: &mut Vec<Vec<u8>>, op: ListOp) -> Reply {
    let out_of_range =
        |i: u64, len: usize| Reply::Failed(format!("list index {i} out of range (length {len})"));
    match op {
        ListOp::Append(item) => {
            list.push(item);
            Reply::Done
        }
        ListOp::Extend(items) => {
            list.extend(items);
            Reply::Done
        }
        ListOp::Get(i) => Reply::Value(list.get(i as usize).cloned()),
        ListOp::Set(i, item) => match list.get_mut(i as usize) {
            Some(slot) => {
                *slot = item;
                Reply::Done
            }
            None => out_of_range(i, list.len()),
        },
        ListOp::Insert(i, item) => {
            let at = (i as usize).min(list.len());
            list.insert(at, item);
            Reply::Done
        }
        ListOp::Pop => Reply::Value(list.pop()),
        ListOp::Len => Reply::Len(list.len() as u64),
        ListOp::All => Reply::Values(list.clone()),
        ListOp::Clear => {
            list.clear();
            Reply::Done
        }
    }
}

fn namespace(ns: &mut IndexMap<String, Vec<u8>>, op: NamespaceOp) -> Reply {
    match op {
        NamespaceOp::Get(name) => Reply::Value(ns.get(&name).cloned()),
        NamespaceOp::Set(name, value) => {
            ns.insert(name, value);
            Reply::Done
        }
        NamespaceOp::Remove(name) => Reply::Value(ns.shift_remove(&name)),
        NamespaceOp::Names => Reply::Names(ns.keys().cloned().collect()),
    }
}

fn queue(q: &ServerQueue, op: QueueOp) -> Reply {
    let deadline = |timeout: Option<Duration>| timeout.and_then(|t| Instant::now().checked_add(t));
    match op {
        QueueOp::Put(item, timeout) => {
            let deadline = deadline(timeout);
            let mut items = q.items.lock();
            while q.maxsize > 0 && items.len() >= q.maxsize {
                match deadline {
                    Some(d) => {
                        if q.changed.wait_until(&mut items, d).timed_out()
                            && items.len() >= q.maxsize
                        {
                            return Reply::TimedOut;
                        }
                    }
                    None => q.changed.wait(&mut items),
                }
            }
            items.push_back(item);
            q.changed.notify_all();
            Reply::Done
        }
        QueueOp::Get(timeout) => {
            let deadline = deadline(timeout);
            let mut items = q.items.lock();
            loop {
                if let Some(item) = items.pop_front() {
                    q.changed.notify_all();
                    return Reply::Value(Some(item));
                }
                match deadline {
                    Some(d) => {
                        if q.changed.wait_until(&mut items, d).timed_out() && items.is_empty() {
                            return Reply::TimedOut;
                        }
                    }
                    None => q.changed.wait(&mut items),
                }
            }
        }
        QueueOp::Len => Reply::Len(q.items.lock().len() as u64),
    }
}

/// How a manager child is started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerConfig {
    pub address: Address,
    pub key: Vec<u8>,
}

/// The manager child: binds, tells its parent where, serves until the parent goes.
pub(crate) fn run(mut control: Wire, config: ServerConfig) -> ! {
    let server = match ManagerServer::bind(&config.address, &config.key) {
        Ok(server) => server,
        Err(e) => {
            let reply: std::result::Result<Address, String> = Err(e.to_string());
            if let Ok(bytes) = Codec::Binary.encode(&reply)
                && control.send(&bytes).is_err()
            {
                tracing::debug!("the manager's parent is gone");
            }
            crate::child::exit(1);
        }
    };
    let reply: std::result::Result<Address, String> = Ok(server.address().clone());
    match Codec::Binary.encode(&reply) {
        Ok(bytes) if control.send(&bytes).is_ok() => {}
        _ => crate::child::exit(1),
    }
    let served = std::thread::Builder::new()
        .name("braid-manager".into())
        .spawn(move || server.serve_forever());
    if served.is_err() {
        crate::child::exit(1);
    }
    // Serve until the parent closes the control socket (shutdown, or it died).
    loop {
        match control.recv_blocking() {
            Ok(_) => {}
            Err(_) => crate::child::exit(0),
        }
    }
}
