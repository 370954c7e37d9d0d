//! Book recipe (ch. 5): a first remote object with Pyro4. A server exposes an object with
//! one method, registers it with the name server, and serves it; a client finds it by
//! name and calls the method as if the object were local. Here the name server, the
//! server and the client run in one program (on free ports) so the recipe runs anywhere;
//! in real use they are three programs: `braid nameserver`, the server, the client.
//!
//! Python (Pyro4):
//! ```python
//! @Pyro4.expose
//! class Server(object):
//!     def welcomeMessage(self, name):
//!         return "Hi welcome " + str(name)
//!
//! daemon = Pyro4.Daemon()
//! ns = Pyro4.locateNS()
//! uri = daemon.register(Server)
//! ns.register("server", uri)
//! daemon.requestLoop()
//! # client:
//! server = Pyro4.Proxy("PYRONAME:server")
//! print(server.welcomeMessage("Ada"))
//! ```
//!
//! Run: `cargo run --example ch5_pyro_first_object`

use braid::rpc::{Daemon, NameServer, service, start_nameserver};

/// The remote interface: what Pyro's `@expose` marks.
#[service]
pub trait Server {
    /// A greeting for `name`.
    fn welcome_message(&self, name: String) -> String;
}

struct Welcomer;

impl Server for Welcomer {
    fn welcome_message(&self, name: String) -> String {
        format!("Hi welcome {name}")
    }
}

fn main() -> Result<(), braid::rpc::Error> {
    // `braid nameserver` in real use; here on a free port.
    let ns_daemon = start_nameserver(Daemon::builder())?;
    let ns_port = ns_daemon.local_addr().port();
    println!("name server on port {ns_port}");

    // The server: a daemon hosting the object, registered by name.
    let daemon = Daemon::start()?;
    let uri = daemon.register("server", Welcomer.into_object())?;
    let ns = NameServer::locate("127.0.0.1", ns_port)?;
    ns.register("server", &uri, ["example"])?;
    println!("object registered as `server` at {uri}");

    // The client: knows only the name (and where the name server is).
    let server = ServerProxy::connect(format!("braidname://server@127.0.0.1:{ns_port}"))?;
    for name in ["Ada", "Grace"] {
        let message = server.welcome_message(name.to_string())?;
        println!("{message}");
        assert_eq!(message, format!("Hi welcome {name}"));
    }
    Ok(())
}
