//! Book recipe (ch. 5): chaining objects with Pyro4. Three servers form a ring; each
//! holds a proxy for the next one. A client sends a message to the first server; each
//! server appends its name and passes the message on through its proxy until it reaches
//! the server the message is meant for. The proxies reach the servers by name through the
//! name server, and the last link is wired by passing a proxy as an argument: a proxy sent
//! over the wire arrives as a proxy.
//!
//! Python (Pyro4, the book's chainTopology):
//! ```python
//! @Pyro4.expose
//! class Chain(object):
//!     def __init__(self, name, next):
//!         self.name = name
//!         self.nextName = next
//!         self.next = None
//!     def process(self, message):
//!         if self.next is None:
//!             self.next = Pyro4.core.Proxy("PYRONAME:example.chain." + self.nextName)
//!         if self.name in message:
//!             print("Back at %s; the chain is closed!" % self.name)
//!             return ["complete at " + self.name]
//!         else:
//!             print("%s forwarding the message to the object %s" % (self.name, self.nextName))
//!             message.append(self.name)
//!             result = self.next.process(message)
//!             result.insert(0, "passed on from " + self.name)
//!             return result
//! ```
//!
//! Run: `cargo run --example ch5_pyro_chain`

use std::sync::{Mutex, PoisonError};

use braid::rpc::{Daemon, NameServer, service, start_nameserver};

/// One server of the chain.
#[service]
pub trait Chain {
    /// Passes `message` on until it comes back to a server already in it.
    fn process(&self, message: Vec<String>) -> Vec<String>;
    /// Wires the next server directly (instead of by name).
    fn link(&self, next: ChainProxy);
}

struct Link {
    name: String,
    next_name: String,
    ns_port: u16,
    next: Mutex<Option<ChainProxy>>,
}

impl Chain for Link {
    fn process(&self, mut message: Vec<String>) -> Vec<String> {
        if message.contains(&self.name) {
            println!("Back at {}; the chain is closed!", self.name);
            return vec![format!("complete at {}", self.name)];
        }
        let next = self
            .next
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| {
                // Resolved by name at the first call, like PYRONAME: in the recipe.
                let uri = format!(
                    "braidname://example.chain.{}@127.0.0.1:{}",
                    self.next_name, self.ns_port
                );
                ChainProxy::connect(uri).expect("a valid URI")
            })
            .clone();
        println!(
            "{} forwarding the message to the object {}",
            self.name, self.next_name
        );
        message.push(self.name.clone());
        let mut result = match next.process(message) {
            Ok(result) => result,
            Err(e) => vec![format!(
                "{} could not reach {}: {e}",
                self.name, self.next_name
            )],
        };
        result.insert(0, format!("passed on from {}", self.name));
        result
    }

    fn link(&self, next: ChainProxy) {
        *self.next.lock().unwrap_or_else(PoisonError::into_inner) = Some(next);
    }
}

fn main() -> Result<(), braid::rpc::Error> {
    let ns_daemon = start_nameserver(Daemon::builder())?;
    let ns_port = ns_daemon.local_addr().port();
    let ns = NameServer::locate("127.0.0.1", ns_port)?;

    // Three servers, each in a daemon of its own (three programs in the book).
    let ring = [("1", "2"), ("2", "3"), ("3", "1")];
    let mut daemons = Vec::new();
    for (name, next) in ring {
        let daemon = Daemon::start()?;
        let link = Link {
            name: name.to_string(),
            next_name: next.to_string(),
            ns_port,
            next: Mutex::new(None),
        };
        let uri = daemon.register(&format!("example.chain.{name}"), link.into_object())?;
        ns.register(&format!("example.chain.{name}"), &uri, ["chain"])?;
        daemons.push(daemon);
    }
    println!(
        "servers registered: {:?}",
        ns.list("example.chain.")?.keys().collect::<Vec<_>>()
    );

    let first: ChainProxy = ns.proxy_for("example.chain.1")?;
    let result = first.process(vec!["hello".to_string()])?;
    println!("result = {result:?}");
    assert_eq!(
        result,
        [
            "passed on from 1",
            "passed on from 2",
            "passed on from 3",
            "complete at 1"
        ]
    );

    // Rewire server 3 to skip straight to server 2 by passing it a proxy.
    let second: ChainProxy = ns.proxy_for("example.chain.2")?;
    let third: ChainProxy = ns.proxy_for("example.chain.3")?;
    third.link(second.clone())?;
    let result = second.process(vec![])?;
    println!("after relinking, result = {result:?}");
    assert_eq!(result.last().map(String::as_str), Some("complete at 2"));
    Ok(())
}
