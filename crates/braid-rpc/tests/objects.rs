//! Proxies as values: object chaining, callbacks, the name server and `braidname:` URIs.

mod common;

use std::sync::mpsc;

use braid_rpc::{Daemon, Error, NameServer, Proxy, Query, Uri, service, start_nameserver};
use common::*;
use parking_lot::Mutex;

/// A link of the book's chain of servers: passes a message on, adding its name.
#[service]
pub trait Link {
    /// Sets the next link.
    fn set_next(&self, next: LinkProxy);
    /// Passes `message` along the chain until it reaches `stop`.
    fn process(&self, message: Vec<String>, stop: String) -> Vec<String>;
    /// The next link, as a proxy.
    fn next_link(&self) -> Option<LinkProxy>;
}

struct Server {
    name: String,
    next: Mutex<Option<LinkProxy>>,
}

impl Link for Server {
    fn set_next(&self, next: LinkProxy) {
        *self.next.lock() = Some(next);
    }
    fn process(&self, mut message: Vec<String>, stop: String) -> Vec<String> {
        message.push(self.name.clone());
        if self.name == stop {
            return message;
        }
        let next = self.next.lock().clone().expect("a next link");
        next.process(message, stop).expect("the next link answers")
    }
    fn next_link(&self) -> Option<LinkProxy> {
        self.next.lock().clone()
    }
}

#[test]
fn chained_objects_pass_calls_along_through_proxies_sent_over_the_wire() {
    let daemons: Vec<Daemon> = (0..3).map(|_| Daemon::start().unwrap()).collect();
    let names = ["A", "B", "C"];
    let links: Vec<LinkProxy> = daemons
        .iter()
        .zip(names)
        .map(|(daemon, name)| {
            let server = Server {
                name: name.to_string(),
                next: Mutex::new(None),
            };
            LinkProxy::connect(daemon.register(name, server.into_object()).unwrap()).unwrap()
        })
        .collect();
    // A -> B -> C -> A: each link gets the next one's proxy as an argument.
    for i in 0..3 {
        links[i].set_next(links[(i + 1) % 3].clone()).unwrap();
    }
    assert_eq!(
        links[0].process(vec![], "C".into()).unwrap(),
        ["A", "B", "C"]
    );
    assert_eq!(
        links[1].process(vec![], "A".into()).unwrap(),
        ["B", "C", "A"]
    );
    // A proxy returned by a remote method is a proxy for the same object.
    let b = links[0].next_link().unwrap().unwrap();
    assert_eq!(b.proxy().uri(), links[1].proxy().uri());
    assert_eq!(b.process(vec![], "B".into()).unwrap(), ["B"]);
}

/// What a client exposes for the server to call back.
#[service]
pub trait Listener {
    /// Hears about a new price.
    fn price_changed(&self, item: String, price: u32);
}

/// A server that calls its listeners back.
#[service]
pub trait Ticker {
    /// Adds a listener.
    fn subscribe(&self, listener: ListenerProxy);
    /// Announces a price to every listener, returning how many heard it.
    fn publish(&self, item: String, price: u32) -> usize;
}

#[derive(Default)]
struct Exchange {
    listeners: Mutex<Vec<ListenerProxy>>,
}

impl Ticker for Exchange {
    fn subscribe(&self, listener: ListenerProxy) {
        self.listeners.lock().push(listener);
    }
    fn publish(&self, item: String, price: u32) -> usize {
        let listeners = self.listeners.lock().clone();
        for listener in &listeners {
            listener
                .price_changed(item.clone(), price)
                .expect("the listener's daemon answers");
        }
        listeners.len()
    }
}

struct Recorder(Mutex<mpsc::Sender<(String, u32)>>);

impl Listener for Recorder {
    fn price_changed(&self, item: String, price: u32) {
        self.0.lock().send((item, price)).expect("the test listens");
    }
}

#[test]
fn a_server_calls_back_an_object_its_client_serves() {
    let server = Daemon::builder().key("shared secret").start().unwrap();
    server
        .register("ticker", Exchange::default().into_object())
        .unwrap();
    let ticker: TickerProxy = server.proxy("ticker");

    // The client serves its callback object in a daemon of its own, with the same key:
    // the server decodes the listener's proxy with its own key and reaches it.
    let client = Daemon::builder().key("shared secret").start().unwrap();
    let (tx, rx) = mpsc::channel();
    client
        .register("listener", Recorder(Mutex::new(tx)).into_object())
        .unwrap();
    let listener: ListenerProxy = client.proxy("listener");
    ticker.subscribe(listener).unwrap();

    assert_eq!(ticker.publish("tea".into(), 3).unwrap(), 1);
    assert_eq!(ticker.publish("milk".into(), 2).unwrap(), 1);
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), ("tea".to_string(), 3));
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), ("milk".to_string(), 2));
}

#[test]
fn the_name_server_registers_looks_up_lists_and_removes() {
    let ns_daemon = start_nameserver(Daemon::builder()).unwrap();
    let port = ns_daemon.local_addr().port();
    let ns = NameServer::locate("127.0.0.1", port).unwrap();

    let daemon = Daemon::start().unwrap();
    let uri = daemon.register("calc", Calc.into_object()).unwrap();
    ns.register("example.calc", &uri, ["math", "fast"]).unwrap();
    ns.register("example.other", "braid://10.0.0.1:1/x", ["math"])
        .unwrap();
    ns.register("misc.thing", "braid://10.0.0.1:1/y", Vec::<String>::new())
        .unwrap();

    assert_eq!(ns.lookup("example.calc").unwrap(), uri);
    let err = ns.lookup("nothing").unwrap_err();
    assert_eq!(err, Error::NameNotFound("nothing".into()));
    let err = ns
        .register_unique("example.calc", &uri, Vec::<String>::new())
        .unwrap_err();
    assert_eq!(err, Error::NameTaken("example.calc".into()));

    let listed: Vec<String> = ns.list("example.").unwrap().into_keys().collect();
    assert_eq!(listed, ["example.calc", "example.other"]);
    let everything = ns.list("").unwrap();
    assert!(everything.contains_key(braid_rpc::NAMESERVER_NAME));
    assert_eq!(everything.len(), 4);
    let fast = ns
        .query(&Query {
            metadata_all: ["math".to_string(), "fast".to_string()].into(),
            ..Query::default()
        })
        .unwrap();
    assert_eq!(fast.len(), 1);
    assert_eq!(fast[0].name, "example.calc");
    let any = ns
        .query(&Query {
            metadata_any: ["fast".to_string(), "slow".to_string()].into(),
            prefix: Some("example".into()),
            ..Query::default()
        })
        .unwrap();
    assert_eq!(any.len(), 1);

    // Resolved by name, like Pyro's PYRONAME:
    let by_name =
        CalculatorProxy::connect(format!("braidname://example.calc@127.0.0.1:{port}")).unwrap();
    assert_eq!(by_name.add(20, 22).unwrap(), 42);
    let through_ns: CalculatorProxy = ns.proxy_for("example.calc").unwrap();
    assert_eq!(through_ns.add(1, 1).unwrap(), 2);

    assert!(ns.remove("example.calc").unwrap());
    assert!(!ns.remove("example.calc").unwrap());
    let gone =
        CalculatorProxy::connect(format!("braidname://example.calc@127.0.0.1:{port}")).unwrap();
    assert_eq!(
        gone.add(1, 1).unwrap_err(),
        Error::NameNotFound("example.calc".into())
    );
}

#[test]
fn a_name_is_resolved_again_after_its_object_moves() {
    let ns_daemon = start_nameserver(Daemon::builder()).unwrap();
    let port = ns_daemon.local_addr().port();
    let ns = NameServer::locate("127.0.0.1", port).unwrap();

    let first = Daemon::start().unwrap();
    ns.register(
        "moving",
        first.register("calc", Calc.into_object()).unwrap(),
        Vec::<String>::new(),
    )
    .unwrap();
    let calc = CalculatorProxy::connect(format!("braidname://moving@127.0.0.1:{port}")).unwrap();
    assert_eq!(calc.add(1, 2).unwrap(), 3);

    first.shutdown();
    let second = Daemon::start().unwrap();
    ns.register(
        "moving",
        second.register("calc", Calc.into_object()).unwrap(),
        Vec::<String>::new(),
    )
    .unwrap();
    // The pooled connection is found closed and the cached address refuses: the name is
    // resolved again, and the first call after the move succeeds.
    assert_eq!(calc.add(3, 4).unwrap(), 7);
}

#[test]
fn a_keyed_name_server_needs_the_key() {
    let ns_daemon = start_nameserver(Daemon::builder().key("ns key")).unwrap();
    let port = ns_daemon.local_addr().port();
    let err = NameServer::locate("127.0.0.1", port).unwrap_err();
    assert!(matches!(err, Error::Authentication { .. }), "{err}");
    let uri = Uri::direct("127.0.0.1", port, braid_rpc::NAMESERVER_NAME, false);
    let ns = NameServer::through(Proxy::new(uri).unwrap().with_key("ns key")).unwrap();
    assert_eq!(ns.list("").unwrap().len(), 1);
}
