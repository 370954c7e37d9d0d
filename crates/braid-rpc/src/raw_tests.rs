//! A daemon facing peers that do not speak the protocol: raw sockets sending garbage,
//! truncated frames, oversized lengths and undecodable requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::error::Fault;
use crate::frame::{
    ClientHello, FrameReader, PROTOCOL, Request, Response, ServerHello, ServerVerdict, decode_body,
    encode_frame,
};
use crate::{Daemon, Error, service};

#[service]
pub trait Adder {
    fn add(&self, a: u32, b: u32) -> u32;
}

struct Add;

impl Adder for Add {
    fn add(&self, a: u32, b: u32) -> u32 {
        a + b
    }
}

const PATIENCE: Duration = Duration::from_secs(30);

fn daemon() -> (Daemon, AdderProxy) {
    let daemon = Daemon::builder().max_message_size(4096).start().unwrap();
    daemon.register("add", Add.into_object()).unwrap();
    let proxy = daemon.proxy("add");
    (daemon, proxy)
}

struct Raw {
    tcp: TcpStream,
    reader: FrameReader,
}

impl Raw {
    fn connect(daemon: &Daemon) -> Raw {
        let tcp = TcpStream::connect(daemon.local_addr()).unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut raw = Raw {
            tcp,
            reader: FrameReader::new(),
        };
        let hello: ServerHello = raw.read().expect("a greeting");
        assert_eq!(hello.protocol, PROTOCOL);
        assert!(!hello.key_required);
        raw
    }

    fn handshake(daemon: &Daemon) -> Raw {
        let mut raw = Raw::connect(daemon);
        raw.send(&ClientHello {
            protocol: PROTOCOL,
            nonce: vec![1; 32],
            mac: None,
        });
        let verdict: ServerVerdict = raw.read().expect("a verdict");
        assert_eq!(verdict, ServerVerdict::Welcome { mac: None });
        raw
    }

    fn send<T: serde::Serialize>(&mut self, message: &T) {
        self.tcp.write_all(&encode_frame(message).unwrap()).unwrap();
    }

    fn read<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        match self.reader.read_frame(&mut self.tcp, 1 << 20) {
            Ok(Some(body)) => Some(decode_body(body).unwrap()),
            Ok(None) => None,
            Err(e) => panic!("{e}"),
        }
    }

    /// Whether the daemon closed the connection (reads end of stream, or a reset).
    fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.tcp.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

fn still_serves(proxy: &AdderProxy) {
    assert_eq!(proxy.add(2, 3).unwrap(), 5);
    // A fresh connection too, not only one that was open before.
    assert_eq!(
        AdderProxy::connect(proxy.proxy().uri())
            .unwrap()
            .add(1, 1)
            .unwrap(),
        2
    );
}

#[test]
fn garbage_instead_of_a_handshake_closes_only_that_connection() {
    let (daemon, proxy) = daemon();
    still_serves(&proxy);
    let mut raw = Raw::connect(&daemon);
    raw.tcp
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(raw.closed());
    still_serves(&proxy);
}

#[test]
fn a_truncated_frame_closes_only_that_connection() {
    let (daemon, proxy) = daemon();
    let mut raw = Raw::handshake(&daemon);
    raw.tcp.write_all(&100u32.to_le_bytes()).unwrap();
    raw.tcp.write_all(&[1, 2, 3]).unwrap();
    raw.tcp.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(raw.closed());
    still_serves(&proxy);
}

#[test]
fn an_oversized_frame_is_refused_with_an_error() {
    let (daemon, proxy) = daemon();
    let mut raw = Raw::handshake(&daemon);
    raw.tcp.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let response: Response = raw.read().expect("an answer");
    assert_eq!(
        response,
        Response::Fatal {
            fault: Fault::MessageTooLarge {
                size: u64::from(u32::MAX),
                limit: 4096
            }
        }
    );
    assert!(raw.closed());
    still_serves(&proxy);
}

#[test]
fn an_undecodable_request_is_refused_with_an_error() {
    let (daemon, proxy) = daemon();
    let mut raw = Raw::handshake(&daemon);
    raw.tcp.write_all(&5u32.to_le_bytes()).unwrap();
    raw.tcp.write_all(&[0xff; 5]).unwrap();
    match raw.read::<Response>().expect("an answer") {
        Response::Fatal {
            fault: Fault::Protocol(message),
        } => assert!(message.contains("does not decode"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(raw.closed());
    still_serves(&proxy);
}

#[test]
fn undecodable_arguments_get_an_error_and_the_connection_goes_on() {
    let (daemon, proxy) = daemon();
    let mut raw = Raw::handshake(&daemon);
    raw.send(&Request::Call {
        id: 7,
        object: "add".into(),
        method: "add".into(),
        oneway: false,
        args: vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    });
    match raw.read::<Response>().expect("an answer") {
        Response::Reply {
            id: 7,
            outcome: Err(Fault::BadArguments { object, method, .. }),
        } => assert_eq!((object.as_str(), method.as_str()), ("add", "add")),
        other => panic!("{other:?}"),
    }
    raw.send(&Request::Call {
        id: 8,
        object: "add".into(),
        method: "add".into(),
        oneway: false,
        args: postcard::to_stdvec(&(4u32, 5u32)).unwrap(),
    });
    let answer: Response = raw.read().expect("an answer");
    let expected = postcard::to_stdvec(&9u32).unwrap();
    assert_eq!(
        answer,
        Response::Reply {
            id: 8,
            outcome: Ok(expected)
        }
    );
    // A one-way call to an unknown object is dropped (and logged), and the connection
    // goes on.
    raw.send(&Request::Call {
        id: 9,
        object: "nobody".into(),
        method: "add".into(),
        oneway: true,
        args: vec![],
    });
    raw.send(&Request::Batch {
        id: 10,
        object: "nobody".into(),
        calls: vec![("add".into(), vec![])],
    });
    match raw.read::<Response>().expect("an answer") {
        Response::Batch { id: 10, outcomes } => {
            assert_eq!(
                outcomes,
                vec![Err(Fault::UnknownObject {
                    object: "nobody".into()
                })]
            );
        }
        other => panic!("{other:?}"),
    }
    still_serves(&proxy);
}

#[test]
fn a_silent_peer_does_not_hold_up_others_and_is_dropped_after_the_handshake_timeout() {
    let daemon = Daemon::builder()
        .handshake_timeout(Duration::from_millis(200))
        .start()
        .unwrap();
    daemon.register("add", Add.into_object()).unwrap();
    let proxy: AdderProxy = daemon.proxy("add");
    let mut silent = Raw::connect(&daemon);
    still_serves(&proxy);
    assert!(silent.closed());
}

#[test]
fn a_wrong_protocol_version_is_refused() {
    let (daemon, proxy) = daemon();
    let mut raw = Raw::connect(&daemon);
    raw.send(&ClientHello {
        protocol: PROTOCOL + 1,
        nonce: vec![],
        mac: None,
    });
    match raw.read::<ServerVerdict>().expect("a verdict") {
        ServerVerdict::Refused { reason } => assert!(reason.contains("protocol"), "{reason}"),
        other => panic!("{other:?}"),
    }
    still_serves(&proxy);
    let err: Error = Error::from(Fault::Busy("x".into()));
    assert!(err.is_connection_error());
}
