//! The RPC recipe: remote objects (Pyro/RPyC): a daemon hosts a counter per proxy (session) and
//! a shared stock, a name server finds them, proxies call them, one batch and one callback.

use std::sync::Mutex;

use braid::rpc::{Daemon, InstanceMode, NameServer, service, start_nameserver};

/// A remote summing service.
#[service]
pub trait Summer {
    /// Adds `x` to this session's total and returns it.
    fn add(&self, x: u64) -> u64;
    /// Calls `sink` back with this session's total.
    fn report(&self, sink: SinkProxy);
}

/// What the client serves for the callback.
#[service]
pub trait Sink {
    /// Takes a total.
    fn total(&self, total: u64);
}

#[derive(Default)]
struct Session(Mutex<u64>);

impl Summer for Session {
    fn add(&self, x: u64) -> u64 {
        let mut total = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *total += x;
        *total
    }

    fn report(&self, sink: SinkProxy) {
        let total = *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = sink.total(total) {
            tracing::warn!("calling the sink back: {e}");
        }
    }
}

#[derive(Default)]
struct Received(Mutex<Vec<u64>>);

impl Sink for Received {
    fn total(&self, total: u64) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(total);
    }
}

const N: u64 = 1000;

/// Sums 1..=N with one remote call each, then 1..=N again in one batch, then has the
/// total called back.
pub fn run() -> Result<String, String> {
    let fail = |e: braid::rpc::Error| e.to_string();
    let ns_daemon = start_nameserver(Daemon::builder()).map_err(fail)?;
    let ns_port = ns_daemon.local_addr().port();
    let daemon = Daemon::start().map_err(fail)?;
    let uri = daemon
        .register_factory("summer", InstanceMode::Session, || {
            Session::default().into_object()
        })
        .map_err(fail)?;
    let ns = NameServer::locate("127.0.0.1", ns_port).map_err(fail)?;
    ns.register("tour.summer", &uri, ["tour"]).map_err(fail)?;

    let summer = SummerProxy::connect(format!("braidname://tour.summer@127.0.0.1:{ns_port}"))
        .map_err(fail)?;
    let mut last = 0;
    for x in 1..=N {
        last = summer.add(x).map_err(fail)?;
    }
    let mut batch = summer.batch();
    let slots: Vec<_> = (1..=N).map(|x| batch.add(x)).collect();
    let results = batch.execute().map_err(fail)?;
    let batched = results
        .get(slots.last().ok_or("an empty batch")?)
        .map_err(fail)?;

    let client = Daemon::start().map_err(fail)?;
    let received = std::sync::Arc::new(Received::default());
    client
        .register("sink", received.clone().into_object())
        .map_err(fail)?;
    summer.report(client.proxy("sink")).map_err(fail)?;
    let called_back = received
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();

    let expected = N * (N + 1) / 2;
    if last != expected || batched != 2 * expected || called_back != [2 * expected] {
        return Err(format!(
            "totals {last}, {batched}, {called_back:?}; expected {expected}, {}, [{}]",
            2 * expected,
            2 * expected
        ));
    }
    Ok(format!(
        "{N} calls summed to {last}, a batch of {N} to {batched}, total called back"
    ))
}
