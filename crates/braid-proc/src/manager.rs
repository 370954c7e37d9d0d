//! [`Manager`], [`ManagerClient`] and the proxies: shared objects held by a server
//! process and used from any process or machine, like Python's
//! `multiprocessing.Manager()`.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use braid_core::Codec;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::ChannelEnd;
use crate::child::{self, Spawned};
use crate::manager_server::ServerConfig;
use crate::manager_wire::{
    self as mw, Address, DictOp, ListOp, NamespaceOp, ObjectKind, QueueOp, Reply, Request,
};
use crate::wire::Wire;
use crate::{Error, Result, sys};

/// How long a starting manager child may take to tell where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to a manager: its address and key, and idle connections for reuse
/// (one per thread in flight, as Python's proxies use one per thread).
struct Client {
    address: Address,
    key: Vec<u8>,
    idle: Mutex<Vec<Conn>>,
}

/// One connection to a manager: a socket (TCP), or a shared-memory channel with the
/// socket as its doorbell (a Unix socket on this machine).
enum Conn {
    Socket(Wire),
    Channel(ChannelEnd),
}

impl Conn {
    fn call(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        match self {
            Conn::Socket(wire) => {
                wire.send(request)?;
                Ok(wire.recv_blocking()?.to_vec())
            }
            Conn::Channel(end) => {
                end.send(request)?;
                end.recv(None)?.ok_or(Error::Closed)
            }
        }
    }
}

/// Clients by address and key.
type Clients = Mutex<HashMap<(Address, Vec<u8>), Weak<Client>>>;

/// Clients by address and key, so that every proxy of one manager in this process
/// shares its connections.
fn clients() -> &'static Clients {
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    CLIENTS.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Client {
    fn shared(address: &Address, key: &[u8]) -> Arc<Client> {
        let mut all = clients().lock();
        let id = (address.clone(), key.to_vec());
        if let Some(client) = all.get(&id).and_then(Weak::upgrade) {
            return client;
        }
        all.retain(|_, weak| weak.strong_count() > 0);
        let client = Arc::new(Client {
            address: address.clone(),
            key: key.to_vec(),
            idle: Mutex::new(Vec::new()),
        });
        all.insert(id, Arc::downgrade(&client));
        client
    }

    fn connect(&self) -> Result<Conn> {
        let mut wire = mw::connect(&self.address)?;
        mw::handshake_client(&mut wire, &self.key)?;
        match self.address {
            Address::Tcp(_) => Ok(Conn::Socket(wire)),
            Address::Unix(_) => {
                let (end, region) = ChannelEnd::over(wire.into_fd()?)?;
                crate::wire::send_with_fds(end.fds().1, mw::CHANNEL, &[region])?;
                Ok(Conn::Channel(end))
            }
        }
    }

    fn call(&self, request: &Request) -> Result<Reply> {
        let bytes = Codec::Binary.encode(request)?;
        let mut conn = match self.idle.lock().pop() {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let reply = Codec::Binary.decode::<Reply>(&conn.call(&bytes)?)?;
        self.idle.lock().push(conn);
        match reply {
            Reply::Failed(why) => Err(Error::Remote(why)),
            other => Ok(other),
        }
    }

    fn open(&self, kind: ObjectKind, name: Option<&str>, maxsize: usize) -> Result<u64> {
        match self.call(&Request::Open {
            kind,
            name: name.map(str::to_string),
            maxsize: maxsize as u64,
        })? {
            Reply::Id(id) => Ok(id),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(reply: &Reply) -> Error {
    Error::Remote(format!("unexpected reply {reply:?}"))
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    Ok(crate::share::encode(value)?)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(Codec::Binary.decode(bytes)?)
}

/// A connection to a manager, local or on another machine: opens its dicts, lists,
/// namespaces and queues, by name (shared with every client that asks for that name)
/// or new and anonymous.
///
/// ```no_run
/// use braid_proc::ManagerClient;
///
/// let client = ManagerClient::connect(&"tcp://10.0.0.5:50000".parse().unwrap(), b"secret").unwrap();
/// let jobs = client.queue_named::<String>("jobs", 0).unwrap();
/// jobs.put(&"resize photo 7".to_string()).unwrap();
/// ```
#[derive(Clone)]
pub struct ManagerClient {
    client: Arc<Client>,
}

impl ManagerClient {
    /// Connects to the manager at `address`, proving knowledge of `key` (and checking
    /// that the manager knows it too).
    ///
    /// # Errors
    /// [`Error::Auth`] for a wrong key ("the manager refused the authentication key");
    /// [`Error::Os`] when nothing listens there.
    pub fn connect(address: &Address, key: &[u8]) -> Result<ManagerClient> {
        let client = Client::shared(address, key);
        let conn = client.connect()?;
        client.idle.lock().push(conn);
        Ok(ManagerClient { client })
    }

    /// The manager's address.
    pub fn address(&self) -> &Address {
        &self.client.address
    }

    /// A new dict on the manager (Python's `manager.dict()`).
    ///
    /// # Errors
    /// [`Error::Closed`] when the manager is gone; [`Error::Remote`].
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>> {
        self.proxy(ObjectKind::Dict, None, 0)
    }

    /// The dict named `name`, created if it does not exist.
    ///
    /// # Errors
    /// [`Error::Remote`] when `name` is another kind of object.
    pub fn dict_named<K, V>(&self, name: &str) -> Result<DictProxy<K, V>> {
        self.proxy(ObjectKind::Dict, Some(name), 0)
    }

    /// A new list (Python's `manager.list()`).
    ///
    /// # Errors
    /// As [`dict`](ManagerClient::dict).
    pub fn list<T>(&self) -> Result<ListProxy<T>> {
        self.proxy(ObjectKind::List, None, 0)
    }

    /// The list named `name`, created if it does not exist.
    ///
    /// # Errors
    /// As [`dict_named`](ManagerClient::dict_named).
    pub fn list_named<T>(&self, name: &str) -> Result<ListProxy<T>> {
        self.proxy(ObjectKind::List, Some(name), 0)
    }

    /// A new namespace (Python's `manager.Namespace()`).
    ///
    /// # Errors
    /// As [`dict`](ManagerClient::dict).
    pub fn namespace(&self) -> Result<NamespaceProxy> {
        self.proxy(ObjectKind::Namespace, None, 0)
    }

    /// The namespace named `name`, created if it does not exist.
    ///
    /// # Errors
    /// As [`dict_named`](ManagerClient::dict_named).
    pub fn namespace_named(&self, name: &str) -> Result<NamespaceProxy> {
        self.proxy(ObjectKind::Namespace, Some(name), 0)
    }

    /// A new queue of at most `maxsize` items (0: unbounded; Python's
    /// `manager.Queue(maxsize)`).
    ///
    /// # Errors
    /// As [`dict`](ManagerClient::dict).
    pub fn queue<T>(&self, maxsize: usize) -> Result<QueueProxy<T>> {
        self.proxy(ObjectKind::Queue, None, maxsize)
    }

    /// The queue named `name`, created (with `maxsize`) if it does not exist.
    ///
    /// # Errors
    /// As [`dict_named`](ManagerClient::dict_named).
    pub fn queue_named<T>(&self, name: &str, maxsize: usize) -> Result<QueueProxy<T>> {
        self.proxy(ObjectKind::Queue, Some(name), maxsize)
    }

    fn proxy<P: FromTarget>(
        &self,
        kind: ObjectKind,
        name: Option<&str>,
        maxsize: usize,
    ) -> Result<P> {
        let id = self.client.open(kind, name, maxsize)?;
        Ok(P::from_target(Target {
            client: self.client.clone(),
            id,
        }))
    }
}

impl std::fmt::Debug for ManagerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerClient")
            .field("address", &self.client.address)
            .finish_non_exhaustive()
    }
}

/// A manager running in a child process, like Python's `multiprocessing.Manager()`:
/// it holds dicts, lists, namespaces and queues that every process reaches through
/// proxies. It derefs to a [`ManagerClient`] connected to it.
///
/// By default it listens on an abstract Unix socket with a random key (this machine
/// only); [`ManagerBuilder::tcp`] makes it reachable from other machines, with the key
/// of [`ManagerBuilder::authkey`]. The server dies with this process; dropping the
/// `Manager` (or [`shutdown`](Manager::shutdown)) stops it.
///
/// Proxies serialise as the manager's address, key and object, so they may be passed
/// to processes in any way (start arguments, queues, pipes, other managers) and work
/// there.
///
/// ```no_run
/// use braid_proc::Manager;
///
/// fn main() {
///     braid_core::init();
///     let manager = Manager::start().unwrap();
///     let scores = manager.dict::<String, u32>().unwrap();
///     scores.insert(&"ada".to_string(), &3).unwrap();
///     assert_eq!(scores.get(&"ada".to_string()).unwrap(), Some(3));
/// }
/// ```
pub struct Manager {
    client: ManagerClient,
    key: Vec<u8>,
    server: Option<Spawned>,
}

/// Configures a [`Manager`]: where it listens and its key.
#[derive(Debug, Clone, Default)]
pub struct ManagerBuilder {
    tcp: Option<SocketAddr>,
    key: Option<Vec<u8>>,
}

impl ManagerBuilder {
    /// Listens on this TCP address (port 0: any free port) instead of a Unix socket,
    /// so that other machines can connect.
    pub fn tcp(mut self, address: SocketAddr) -> Self {
        self.tcp = Some(address);
        self
    }

    /// The authentication key clients must know (default: 32 random bytes).
    pub fn authkey(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Starts the manager's server process and connects to it.
    ///
    /// # Errors
    /// [`Error::NotInitialized`]; [`Error::Os`] when the process cannot start or the
    /// address cannot be bound.
    pub fn start(self) -> Result<Manager> {
        let key = match self.key {
            Some(key) => key,
            None => {
                let mut key = vec![0u8; 32];
                rustix::rand::getrandom(&mut key, rustix::rand::GetRandomFlags::empty())
                    .map_err(|e| Error::os("drawing a manager key", e))?;
                key
            }
        };
        let address = match self.tcp {
            Some(addr) => Address::Tcp(addr),
            None => Address::Unix(String::new()),
        };
        let config = ServerConfig {
            address,
            key: key.clone(),
        };
        let mut spawned = child::spawn("Manager", true, child::Work::Manager(config), &[])?;
        let deadline = sys::deadline(START_TIMEOUT);
        let reply: std::result::Result<Address, String> = match spawned.wire.recv(deadline) {
            Ok(Some(frame)) => Codec::Binary.decode(frame)?,
            Ok(None) => Err(format!("it did not start within {START_TIMEOUT:?}")),
            Err(e) => Err(format!("it ended before listening ({e})")),
        };
        let address = match reply {
            Ok(address) => address,
            Err(why) => {
                child::reap_after_failure(&mut spawned.process);
                return Err(Error::os("starting a manager", why));
            }
        };
        let client = match ManagerClient::connect(&address, &key) {
            Ok(client) => client,
            Err(e) => {
                child::reap_after_failure(&mut spawned.process);
                return Err(e);
            }
        };
        Ok(Manager {
            client,
            key,
            server: Some(spawned),
        })
    }
}

impl Manager {
    /// Starts a manager on an abstract Unix socket with a random key.
    ///
    /// # Errors
    /// As [`ManagerBuilder::start`].
    pub fn start() -> Result<Manager> {
        ManagerBuilder::default().start()
    }

    /// A builder to choose the address and the key.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }

    /// The key clients must know.
    pub fn authkey(&self) -> &[u8] {
        &self.key
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(|s| s.process.id())
    }

    /// Stops the server and waits for it; its objects are gone, and proxies to them
    /// fail with [`Error::Closed`] or [`Error::Os`].
    ///
    /// # Errors
    /// [`Error::Os`] when the server process cannot be waited for.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        if let Some(Spawned { mut process, wire }) = self.server.take() {
            drop(wire); // the server exits when its control socket closes
            process
                .wait()
                .map_err(|e| Error::os("waiting for the manager process", e))?;
        }
        Ok(())
    }
}

impl std::ops::Deref for Manager {
    type Target = ManagerClient;

    fn deref(&self) -> &ManagerClient {
        &self.client
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "stopping a manager");
        }
    }
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("address", self.client.address())
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

/// What every proxy holds: the manager and the object's id there.
#[derive(Clone)]
struct Target {
    client: Arc<Client>,
    id: u64,
}

#[derive(Serialize, Deserialize)]
struct TargetWire {
    address: Address,
    key: Vec<u8>,
    id: u64,
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        TargetWire {
            address: self.client.address.clone(),
            key: self.client.key.clone(),
            id: self.id,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let wire = TargetWire::deserialize(d)?;
        Ok(Target {
            client: Client::shared(&wire.address, &wire.key),
            id: wire.id,
        })
    }
}

trait FromTarget {
    fn from_target(target: Target) -> Self;
}

macro_rules! proxy_common {
    ($name:ident) => {
        proxy_common!($name<>);
    };
    ($name:ident < $($p:ident),* >) => {
        impl<$($p),*> FromTarget for $name<$($p),*> {
            fn from_target(target: Target) -> Self {
                $name { target, _types: PhantomData }
            }
        }

        impl<$($p),*> Clone for $name<$($p),*> {
            /// Another proxy for the same object.
            fn clone(&self) -> Self {
                $name { target: self.target.clone(), _types: PhantomData }
            }
        }

        impl<$($p),*> Serialize for $name<$($p),*> {
            /// The manager's address and key and the object's id: the proxy works in
            /// whichever process decodes it.
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.target.serialize(s)
            }
        }

        impl<'de, $($p),*> Deserialize<'de> for $name<$($p),*> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                Ok($name { target: Target::deserialize(d)?, _types: PhantomData })
            }
        }

        impl<$($p),*> std::fmt::Debug for $name<$($p),*> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("manager", &self.target.client.address)
                    .field("id", &self.target.id)
                    .finish()
            }
        }
    };
}

/// Marks the key and value types of a [`DictProxy`] (neither is stored here).
type Entry<K, V> = fn(K, V) -> (K, V);

/// A dict held by a manager (Python's `DictProxy`); keys and values are encoded with
/// serde, and the dict keeps insertion order.
///
/// Every call is a round trip to the manager. Errors: [`Error::Closed`] or
/// [`Error::Os`] when the manager is gone, [`Error::Remote`] when it refuses.
pub struct DictProxy<K, V> {
    target: Target,
    _types: PhantomData<Entry<K, V>>,
}

proxy_common!(DictProxy<K, V>);

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    fn call(&self, op: DictOp) -> Result<Reply> {
        self.target.client.call(&Request::Dict(self.target.id, op))
    }

    /// The value for `key` (Python's `d.get(key)`).
    ///
    /// # Errors
    /// See the type.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        match self.call(DictOp::Get(encode(key)?))? {
            Reply::Value(value) => value.map(|v| decode(&v)).transpose(),
            other => Err(unexpected(&other)),
        }
    }

    /// Sets `key` to `value` (Python's `d[key] = value`).
    ///
    /// # Errors
    /// See the type.
    pub fn insert(&self, key: &K, value: &V) -> Result<()> {
        self.call(DictOp::Set(encode(key)?, encode(value)?))
            .map(drop)
    }

    /// Removes `key`, returning its value (Python's `d.pop(key, None)`).
    ///
    /// # Errors
    /// See the type.
    pub fn remove(&self, key: &K) -> Result<Option<V>> {
        match self.call(DictOp::Remove(encode(key)?))? {
            Reply::Value(value) => value.map(|v| decode(&v)).transpose(),
            other => Err(unexpected(&other)),
        }
    }

    /// Whether `key` is in the dict.
    ///
    /// # Errors
    /// See the type.
    pub fn contains_key(&self, key: &K) -> Result<bool> {
        match self.call(DictOp::Contains(encode(key)?))? {
            Reply::Bool(b) => Ok(b),
            other => Err(unexpected(&other)),
        }
    }

    /// The number of entries.
    ///
    /// # Errors
    /// See the type.
    pub fn len(&self) -> Result<usize> {
        match self.call(DictOp::Len)? {
            Reply::Len(n) => Ok(n as usize),
            other => Err(unexpected(&other)),
        }
    }

    /// Whether the dict is empty.
    ///
    /// # Errors
    /// See the type.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The keys, in insertion order.
    ///
    /// # Errors
    /// See the type.
    pub fn keys(&self) -> Result<Vec<K>> {
        match self.call(DictOp::Keys)? {
            Reply::Values(keys) => keys.iter().map(|k| decode(k)).collect(),
            other => Err(unexpected(&other)),
        }
    }

    /// The values, in insertion order.
    ///
    /// # Errors
    /// See the type.
    pub fn values(&self) -> Result<Vec<V>> {
        match self.call(DictOp::Values)? {
            Reply::Values(values) => values.iter().map(|v| decode(v)).collect(),
            other => Err(unexpected(&other)),
        }
    }

    /// The entries, in insertion order (a copy: Python's `d.copy().items()`).
    ///
    /// # Errors
    /// See the type.
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        match self.call(DictOp::Items)? {
            Reply::Pairs(pairs) => pairs
                .iter()
                .map(|(k, v)| Ok((decode(k)?, decode(v)?)))
                .collect(),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes every entry.
    ///
    /// # Errors
    /// See the type.
    pub fn clear(&self) -> Result<()> {
        self.call(DictOp::Clear).map(drop)
    }
}

/// A list held by a manager (Python's `ListProxy`).
///
/// Every call is a round trip to the manager; errors as for [`DictProxy`].
pub struct ListProxy<T> {
    target: Target,
    _types: PhantomData<fn(T) -> T>,
}

proxy_common!(ListProxy<T>);

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    fn call(&self, op: ListOp) -> Result<Reply> {
        self.target.client.call(&Request::List(self.target.id, op))
    }

    /// Appends an item (Python's `append`).
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn push(&self, item: &T) -> Result<()> {
        self.call(ListOp::Append(encode(item)?)).map(drop)
    }

    /// Appends every item, in one round trip (Python's `extend`).
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn extend<'a>(&self, items: impl IntoIterator<Item = &'a T>) -> Result<()>
    where
        T: 'a,
    {
        let items = items.into_iter().map(encode).collect::<Result<Vec<_>>>()?;
        self.call(ListOp::Extend(items)).map(drop)
    }

    /// Item `i`, or `None` past the end.
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn get(&self, i: usize) -> Result<Option<T>> {
        match self.call(ListOp::Get(i as u64))? {
            Reply::Value(value) => value.map(|v| decode(&v)).transpose(),
            other => Err(unexpected(&other)),
        }
    }

    /// Replaces item `i` (Python's `l[i] = item`).
    ///
    /// # Errors
    /// [`Error::Remote`] past the end; see [`DictProxy`].
    pub fn set(&self, i: usize, item: &T) -> Result<()> {
        self.call(ListOp::Set(i as u64, encode(item)?)).map(drop)
    }

    /// Inserts `item` before position `i` (at the end when `i` is past it).
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn insert(&self, i: usize, item: &T) -> Result<()> {
        self.call(ListOp::Insert(i as u64, encode(item)?)).map(drop)
    }

    /// Removes and returns the last item.
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn pop(&self) -> Result<Option<T>> {
        match self.call(ListOp::Pop)? {
            Reply::Value(value) => value.map(|v| decode(&v)).transpose(),
            other => Err(unexpected(&other)),
        }
    }

    /// The number of items.
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn len(&self) -> Result<usize> {
        match self.call(ListOp::Len)? {
            Reply::Len(n) => Ok(n as usize),
            other => Err(unexpected(&other)),
        }
    }

    /// Whether the list is empty.
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// A copy of every item (Python's `l[:]`).
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn to_vec(&self) -> Result<Vec<T>> {
        match self.call(ListOp::All)? {
            Reply::Values(items) => items.iter().map(|i| decode(i)).collect(),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes every item.
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn clear(&self) -> Result<()> {
        self.call(ListOp::Clear).map(drop)
    }
}

/// A namespace held by a manager (Python's `Namespace`): named attributes of any serde
/// type.
///
/// Every call is a round trip to the manager; errors as for [`DictProxy`].
pub struct NamespaceProxy {
    target: Target,
    _types: PhantomData<()>,
}

proxy_common!(NamespaceProxy);

impl NamespaceProxy {
    fn call(&self, op: NamespaceOp) -> Result<Reply> {
        self.target
            .client
            .call(&Request::Namespace(self.target.id, op))
    }

    /// The attribute `name` (Python's `ns.name`).
    ///
    /// # Errors
    /// [`Error::Remote`] when there is no such attribute (Python's `AttributeError`); a
    /// decoding error when it is not a `T`; see [`DictProxy`].
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        match self.call(NamespaceOp::Get(name.to_string()))? {
            Reply::Value(Some(value)) => decode(&value),
            Reply::Value(None) => Err(Error::Remote(format!(
                "the namespace has no attribute `{name}`"
            ))),
            other => Err(unexpected(&other)),
        }
    }

    /// Sets the attribute `name` (Python's `ns.name = value`).
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn set<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        self.call(NamespaceOp::Set(name.to_string(), encode(value)?))
            .map(drop)
    }

    /// Removes the attribute `name`; whether it was there (Python's `del ns.name`).
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn remove(&self, name: &str) -> Result<bool> {
        match self.call(NamespaceOp::Remove(name.to_string()))? {
            Reply::Value(value) => Ok(value.is_some()),
            other => Err(unexpected(&other)),
        }
    }

    /// The attribute names, in the order they were first set.
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn names(&self) -> Result<Vec<String>> {
        match self.call(NamespaceOp::Names)? {
            Reply::Names(names) => Ok(names),
            other => Err(unexpected(&other)),
        }
    }
}

/// A queue held by a manager (Python's `manager.Queue()`): usable from any process
/// or machine that reaches the manager, and passable anywhere.
///
/// Every call is a round trip to the manager; a waiting `get` waits in the manager, and
/// ends with [`Error::Closed`] if the manager goes away.
pub struct QueueProxy<T> {
    target: Target,
    _types: PhantomData<fn(T) -> T>,
}

proxy_common!(QueueProxy<T>);

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    fn call(&self, op: QueueOp) -> Result<Reply> {
        self.target.client.call(&Request::Queue(self.target.id, op))
    }

    fn put_waiting(&self, item: &T, timeout: Option<Duration>) -> Result<bool> {
        match self.call(QueueOp::Put(encode(item)?, timeout))? {
            Reply::Done => Ok(true),
            Reply::TimedOut => Ok(false),
            other => Err(unexpected(&other)),
        }
    }

    /// Puts an item, waiting for room as long as it takes.
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn put(&self, item: &T) -> Result<()> {
        self.put_waiting(item, None).map(drop)
    }

    /// Puts an item, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the queue stayed full; see [`DictProxy`].
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<()> {
        if self.put_waiting(item, Some(timeout))? {
            Ok(())
        } else {
            Err(Error::Timeout(timeout))
        }
    }

    fn get_waiting(&self, timeout: Option<Duration>) -> Result<Option<T>> {
        match self.call(QueueOp::Get(timeout))? {
            Reply::Value(Some(item)) => decode(&item).map(Some),
            Reply::TimedOut => Ok(None),
            other => Err(unexpected(&other)),
        }
    }

    /// Takes the oldest item, waiting as long as it takes.
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn get(&self) -> Result<T> {
        self.get_waiting(None)?.ok_or(Error::Empty)
    }

    /// Takes the oldest item, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when nothing came; see [`DictProxy`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_waiting(Some(timeout))?
            .ok_or(Error::Timeout(timeout))
    }

    /// Takes the oldest item if there is one now.
    ///
    /// # Errors
    /// [`Error::Empty`]; see [`DictProxy`].
    pub fn try_get(&self) -> Result<T> {
        self.get_waiting(Some(Duration::ZERO))?.ok_or(Error::Empty)
    }

    /// The number of items now.
    ///
    /// # Errors
    /// See [`DictProxy`].
    pub fn qsize(&self) -> Result<usize> {
        match self.call(QueueOp::Len)? {
            Reply::Len(n) => Ok(n as usize),
            other => Err(unexpected(&other)),
        }
    }
}
