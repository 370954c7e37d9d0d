//! What a manager and its clients say to each other: addresses, the handshake that
//! proves both sides know the authentication key, and the requests and replies.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::wire::Wire;
use crate::{Error, Result};

/// Where a manager listens: a TCP address (reachable from other machines) or an
/// abstract Unix socket name (this machine only, and faster).
///
/// Written as `tcp://HOST:PORT` or `unix://@NAME`, and parsed back from that.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Address {
    /// A TCP socket address.
    Tcp(SocketAddr),
    /// An abstract Unix socket (Linux), by name.
    Unix(String),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "tcp://{addr}"),
            Address::Unix(name) => write!(f, "unix://@{name}"),
        }
    }
}

impl std::str::FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Address> {
        if let Some(rest) = s.strip_prefix("tcp://") {
            return rest
                .parse()
                .map(Address::Tcp)
                .map_err(|e| Error::os(format!("manager address `{s}`"), e));
        }
        if let Some(name) = s.strip_prefix("unix://@") {
            return Ok(Address::Unix(name.to_string()));
        }
        Err(Error::os(
            format!("manager address `{s}`"),
            "expected tcp://HOST:PORT or unix://@NAME",
        ))
    }
}

/// The kinds of object a manager holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ObjectKind {
    Dict,
    List,
    Namespace,
    Queue,
}

impl ObjectKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ObjectKind::Dict => "dict",
            ObjectKind::List => "list",
            ObjectKind::Namespace => "namespace",
            ObjectKind::Queue => "queue",
        }
    }
}

/// A request; keys and values are encoded by the client, the server keeps bytes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Opens the object named `name` (creating it), or a new anonymous one.
    Open {
        kind: ObjectKind,
        name: Option<String>,
        maxsize: u64,
    },
    Dict(u64, DictOp),
    List(u64, ListOp),
    Namespace(u64, NamespaceOp),
    Queue(u64, QueueOp),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum DictOp {
    Get(Vec<u8>),
    Set(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
    Contains(Vec<u8>),
    Len,
    Keys,
    Values,
    Items,
    Clear,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ListOp {
    Append(Vec<u8>),
    Extend(Vec<Vec<u8>>),
    Get(u64),
    Set(u64, Vec<u8>),
    Insert(u64, Vec<u8>),
    Pop,
    Len,
    All,
    Clear,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum NamespaceOp {
    Get(String),
    Set(String, Vec<u8>),
    Remove(String),
    Names,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum QueueOp {
    /// Waits up to `timeout` (forever when `None`) for room; `Some(ZERO)` does not wait.
    Put(Vec<u8>, Option<Duration>),
    /// Waits up to `timeout` for an item.
    Get(Option<Duration>),
    Len,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Done,
    Id(u64),
    Value(Option<Vec<u8>>),
    Values(Vec<Vec<u8>>),
    Pairs(Vec<(Vec<u8>, Vec<u8>)>),
    Names(Vec<String>),
    Bool(bool),
    Len(u64),
    /// A queue wait ran out (empty for a get, full for a put).
    TimedOut,
    Failed(String),
}

/// After the handshake on a Unix socket, the client sends this with a shared region:
/// from then on frames go through a [`ChannelEnd`](crate::channel::ChannelEnd).
pub(crate) const CHANNEL: &[u8] = b"#CHANNEL#";

const NONCE: usize = 32;
const WELCOME: &[u8] = b"#WELCOME#";
/// The server's last word: the client may send (its next frame may carry descriptors,
/// which must not arrive while the server still reads the handshake).
const READY: &[u8] = b"#READY#";
const FAILURE: &[u8] = b"#FAILURE#";
/// How long a handshake may take before the peer counts as not a manager.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn digest(key: &[u8], nonce: &[u8]) -> Result<Vec<u8>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|e| Error::Auth(format!("unusable key: {e}")))?;
    mac.update(nonce);
    Ok(mac.finalize().into_bytes().to_vec())
}

fn verify(key: &[u8], nonce: &[u8], answer: &[u8]) -> bool {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(nonce);
            mac.verify_slice(answer).is_ok()
        }
        Err(_) => false,
    }
}

fn nonce() -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; NONCE];
    rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| Error::os("drawing a random challenge", e))?;
    Ok(bytes)
}

fn recv_until(wire: &mut Wire, deadline: Instant) -> Result<Vec<u8>> {
    match wire.recv(Some(deadline))? {
        Some(frame) => Ok(frame.to_vec()),
        None => Err(Error::Auth(
            "the peer did not answer the handshake in time (is it a braid manager?)".into(),
        )),
    }
}

/// Challenges the client, then answers its challenge (the server's side).
pub(crate) fn handshake_server(wire: &mut Wire, key: &[u8]) -> Result<()> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let challenge = nonce()?;
    wire.send(&challenge)?;
    let answer = recv_until(wire, deadline)?;
    if !verify(key, &challenge, &answer) {
        wire.send(FAILURE)?;
        return Err(Error::Auth(
            "a client gave a wrong digest for the key".into(),
        ));
    }
    wire.send(WELCOME)?;
    let theirs = recv_until(wire, deadline)?;
    wire.send(&digest(key, &theirs)?)?;
    if recv_until(wire, deadline)? != WELCOME {
        return Err(Error::Auth(
            "the client refused this server's digest".into(),
        ));
    }
    wire.send(READY)
}

/// Answers the server's challenge, then challenges it (the client's side).
pub(crate) fn handshake_client(wire: &mut Wire, key: &[u8]) -> Result<()> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let challenge = recv_until(wire, deadline)?;
    wire.send(&digest(key, &challenge)?)?;
    match recv_until(wire, deadline) {
        Ok(reply) if reply == WELCOME => {}
        Ok(_) | Err(Error::Closed) => {
            return Err(Error::Auth(
                "the manager refused the authentication key (wrong key)".into(),
            ));
        }
        Err(e) => return Err(e),
    }
    let ours = nonce()?;
    wire.send(&ours)?;
    let answer = recv_until(wire, deadline)?;
    if verify(key, &ours, &answer) {
        wire.send(WELCOME)?;
        if recv_until(wire, deadline)? == READY {
            Ok(())
        } else {
            Err(Error::Auth(
                "the manager did not finish the handshake".into(),
            ))
        }
    } else {
        wire.send(FAILURE)?;
        Err(Error::Auth(
            "the server does not know the authentication key: not the expected manager".into(),
        ))
    }
}

/// Connects to `address` (TCP with `TCP_NODELAY`, or the abstract Unix socket).
pub(crate) fn connect(address: &Address) -> Result<Wire> {
    let fd: OwnedFd = match address {
        Address::Tcp(addr) => {
            let stream = std::net::TcpStream::connect_timeout(addr, HANDSHAKE_TIMEOUT)
                .map_err(|e| Error::os(format!("connecting to the manager at {address}"), e))?;
            stream
                .set_nodelay(true)
                .map_err(|e| Error::os("setting TCP_NODELAY", e))?;
            stream.into()
        }
        Address::Unix(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .map_err(|e| Error::os(format!("manager address {address}"), e))?;
            std::os::unix::net::UnixStream::connect_addr(&addr)
                .map_err(|e| Error::os(format!("connecting to the manager at {address}"), e))?
                .into()
        }
    };
    Ok(Wire::new(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_and_parse_back() {
        for text in ["tcp://127.0.0.1:5000", "tcp://[::1]:80", "unix://@braid-7"] {
            let address: Address = text.parse().unwrap();
            assert_eq!(address.to_string(), text);
        }
        assert!("http://x".parse::<Address>().is_err());
    }

    #[test]
    fn the_handshake_checks_both_keys() {
        for (server_key, client_key, ok) in [(b"k1", b"k1", true), (b"k1", b"k2", false)] {
            let (a, b) = Wire::pair().unwrap();
            let mut server = a;
            let mut client = Wire::new(b);
            let outcome = std::thread::scope(|s| {
                let served = s.spawn(move || handshake_server(&mut server, server_key));
                let client_side = handshake_client(&mut client, client_key);
                (served.join().unwrap(), client_side)
            });
            assert_eq!(outcome.0.is_ok(), ok, "{outcome:?}");
            match outcome.1 {
                Ok(()) => assert!(ok),
                Err(Error::Auth(why)) => {
                    assert!(!ok);
                    assert!(why.contains("wrong key"), "{why}");
                }
                Err(other) => panic!("{other}"),
            }
        }
    }
}
