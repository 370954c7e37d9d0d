//! Book recipe (ch. 5): remote procedure calls with RPyC. A service exposes methods; the
//! server gives each connection its own service instance (RPyC's `on_connect` /
//! `on_disconnect` are the instance's creation and drop); the client calls the methods,
//! asynchronously too (`rpyc.async_`), and passes a callback the server calls on the
//! client's side. braid has no equivalent of RPyC's classic mode (evaluating code sent by
//! the client); the remote interface is a trait, checked by the compiler on both sides.
//!
//! Python (RPyC):
//! ```python
//! class MyService(rpyc.Service):
//!     def on_connect(self, conn): print("client connected")
//!     def on_disconnect(self, conn): print("client disconnected")
//!     def exposed_get_answer(self): return 42
//!     def exposed_square_all(self, xs, progress): ...   # progress is a client callback
//!
//! ThreadedServer(MyService, port=18861).start()
//! c = rpyc.connect("localhost", 18861)
//! c.root.get_answer()
//! res = rpyc.async_(c.root.get_answer)(); res.value
//! ```
//!
//! Run: `cargo run --example ch5_rpyc_remote_calls`

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use braid::rpc::{Daemon, InstanceMode, service};

/// The service's exposed methods.
#[service]
pub trait MyService {
    /// The answer.
    fn get_answer(&self) -> u32;
    /// Squares `xs`, reporting progress to the client's callback.
    fn square_all(&self, xs: Vec<i64>, progress: ProgressProxy) -> Vec<i64>;
    /// How many calls this connection made.
    fn calls_so_far(&self) -> u32;
}

/// A callback the client serves.
#[service]
pub trait Progress {
    /// `done` of `total` items are squared.
    fn report(&self, done: usize, total: usize);
}

/// One instance per client proxy (its session): created at its first call, dropped when it
/// disconnects.
struct Session {
    id: u32,
    calls: AtomicU32,
}

impl Session {
    fn new(id: u32) -> Session {
        println!("server: client {id} connected");
        Session {
            id,
            calls: AtomicU32::new(0),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        println!("server: client {} disconnected", self.id);
    }
}

impl MyService for Session {
    fn get_answer(&self) -> u32 {
        self.calls.fetch_add(1, Ordering::Relaxed);
        42
    }

    fn square_all(&self, xs: Vec<i64>, progress: ProgressProxy) -> Vec<i64> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::with_capacity(xs.len());
        for (i, x) in xs.iter().enumerate() {
            out.push(x * x);
            if let Err(e) = progress.report(i + 1, xs.len()) {
                println!("server: the client's callback failed: {e}");
            }
        }
        out
    }

    fn calls_so_far(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }
}

struct Printer(Mutex<Vec<usize>>);

impl Progress for Printer {
    fn report(&self, done: usize, total: usize) {
        println!("client: {done}/{total} squared");
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(done);
    }
}

fn main() -> Result<(), braid::rpc::Error> {
    // ThreadedServer(MyService, port=...): a thread per connection, an instance each.
    let server = Daemon::start()?;
    let next_id = AtomicU32::new(1);
    let uri = server.register_factory("MyService", InstanceMode::Session, move || {
        Session::new(next_id.fetch_add(1, Ordering::Relaxed)).into_object()
    })?;
    println!("serving {uri}");

    // c = rpyc.connect(...); c.root.get_answer()
    let root = MyServiceProxy::connect(&uri)?;
    let answer = root.get_answer()?;
    println!("client: the answer is {answer}");
    assert_eq!(answer, 42);

    // rpyc.async_: the call runs in the background; read its value later.
    let pending = root.get_answer_async();
    println!("client: asked asynchronously, doing other work meanwhile");
    assert_eq!(pending.result()?, 42);

    // A callback: the client serves a Progress object; the server calls it back.
    let client_side = Daemon::start()?;
    let printer = Arc::new(Printer(Mutex::new(Vec::new())));
    client_side.register("progress", printer.clone().into_object())?;
    let squares = root.square_all(vec![1, 2, 3, 4], client_side.proxy("progress"))?;
    println!("client: squares = {squares:?}");
    assert_eq!(squares, [1, 4, 9, 16]);
    assert_eq!(
        *printer.0.lock().unwrap_or_else(PoisonError::into_inner),
        [1, 2, 3, 4]
    );

    // This connection's instance counted its own calls; a new connection starts afresh.
    assert_eq!(root.calls_so_far()?, 3);
    let other = MyServiceProxy::connect(&uri)?;
    assert_eq!(other.calls_so_far()?, 0);
    other.proxy().release(); // disconnect: the server drops that session
    println!("client: done");
    Ok(())
}
