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
            session: 1,
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
        session: 1,
    });
    match raw.read::<ServerVerdict>().expect("a verdict") {
        ServerVerdict::Refused { reason } => assert!(reason.contains("protocol"), "{reason}"),
        other => panic!("{other:?}"),
    }
    still_serves(&proxy);
    let err: Error = Error::from(Fault::Busy("x".into()));
    assert!(err.is_connection_error());
}

#[test]
fn a_peer_that_stops_halfway_through_a_frame_is_dropped_after_the_frame_timeout() {
    let daemon = Daemon::builder()
        .frame_timeout(Duration::from_millis(200))
        .start()
        .unwrap();
    daemon.register("add", Add.into_object()).unwrap();
    let proxy: AdderProxy = daemon.proxy("add");
    let mut half_body = Raw::handshake(&daemon);
    half_body.tcp.write_all(&100u32.to_le_bytes()).unwrap();
    half_body.tcp.write_all(&[1, 2, 3]).unwrap();
    let mut half_header = Raw::handshake(&daemon);
    half_header.tcp.write_all(&[9, 0]).unwrap();
    // A proxy is served meanwhile, and after both stalled peers are gone.
    still_serves(&proxy);
    assert!(half_body.closed());
    assert!(half_header.closed());
    still_serves(&proxy);
}

#[test]
fn stalled_peers_give_their_places_back() {
    let daemon = Daemon::builder()
        .frame_timeout(Duration::from_millis(100))
        .max_connections(2)
        .start()
        .unwrap();
    daemon.register("add", Add.into_object()).unwrap();
    for _ in 0..3 {
        let mut stalled = Raw::handshake(&daemon);
        stalled.tcp.write_all(&[9]).unwrap();
        assert!(stalled.closed());
    }
    // The daemon gives a connection's place back before its socket closes.
    let proxy: AdderProxy = daemon.proxy("add");
    assert_eq!(proxy.add(2, 3).unwrap(), 5);
}

#[test]
fn an_idle_timeout_closes_quiet_connections_and_proxies_reconnect() {
    let daemon = Daemon::builder()
        .idle_timeout(Some(Duration::from_millis(100)))
        .start()
        .unwrap();
    daemon.register("add", Add.into_object()).unwrap();
    let proxy: AdderProxy = daemon.proxy("add");
    assert_eq!(proxy.add(1, 1).unwrap(), 2);
    for _ in 0..2 {
        let mut quiet = Raw::handshake(&daemon);
        assert!(quiet.closed());
    }
    // The proxy's pooled connection has been quiet longer: it is found closed and
    // replaced.
    assert_eq!(proxy.add(2, 2).unwrap(), 4);
}

#[test]
fn a_one_way_call_to_an_unknown_method_is_refused_and_the_connection_goes_on() {
    let (daemon, proxy) = daemon();
    let mut raw = Raw::handshake(&daemon);
    raw.send(&Request::Call {
        id: 1,
        object: "add".into(),
        method: "nothing".into(),
        oneway: true,
        args: Vec::new(),
    });
    raw.send(&Request::Call {
        id: 2,
        object: "add".into(),
        method: "add".into(),
        oneway: false,
        args: postcard::to_stdvec(&(2u32, 2u32)).unwrap(),
    });
    match raw.read::<Response>().expect("a reply") {
        Response::Reply { id: 2, outcome } => {
            assert_eq!(postcard::from_bytes::<u32>(&outcome.unwrap()).unwrap(), 4);
        }
        other => panic!("{other:?}"),
    }
    still_serves(&proxy);
}

/// Only its proxy is used, against a daemon faked by hand.
#[service]
#[allow(dead_code, reason = "no implementation: the daemon is faked")]
pub trait Sink {
    fn take(&self, data: Vec<u8>) -> u32;
}

/// A daemon's side of a connection, by hand: the handshake, then one reply to call `id`.
fn fake_serve(tcp: TcpStream) -> (crate::security::Stream, FrameReader) {
    let mut stream = crate::security::Stream::Plain(tcp);
    let mut reader = FrameReader::new();
    crate::security::accept(&mut stream, &mut reader, None).unwrap();
    (stream, reader)
}

fn fake_answer(stream: &mut crate::security::Stream, reader: &mut FrameReader, id: u64) -> usize {
    let size = reader.read_frame(stream, 1 << 30).unwrap().unwrap().len();
    let reply = Response::Reply {
        id,
        outcome: Ok(postcard::to_stdvec(&7u32).unwrap()),
    };
    stream.write_all(&encode_frame(&reply).unwrap()).unwrap();
    size
}

#[test]
fn a_request_not_written_whole_on_a_pooled_connection_goes_again_on_a_new_one() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // A small receive buffer, so that a request the daemon does not read fills the
    // connection and its write times out.
    rustix::net::sockopt::set_socket_recv_buffer_size(&listener, 4096).unwrap();
    let port = listener.local_addr().unwrap().port();
    const BIG: usize = 8 << 20;
    let daemon = std::thread::spawn(move || {
        let (mut first, mut first_reader) = fake_serve(listener.accept().unwrap().0);
        fake_answer(&mut first, &mut first_reader, 1);
        // The first connection is not read from again; the request comes on a second.
        let (mut second, mut second_reader) = fake_serve(listener.accept().unwrap().0);
        let size = fake_answer(&mut second, &mut second_reader, 2);
        drop(first);
        size
    });
    let proxy = crate::Proxy::new(format!("braid://127.0.0.1:{port}/sink"))
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let sink = SinkProxy::from(proxy);
    assert_eq!(sink.take(vec![1]).unwrap(), 7);
    assert_eq!(sink.take(vec![0; BIG]).unwrap(), 7, "sent again, answered");
    assert!(
        daemon.join().unwrap() > BIG,
        "the whole request came the second time"
    );
}
