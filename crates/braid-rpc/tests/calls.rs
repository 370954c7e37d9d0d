//! Calls through typed proxies: results, errors raised remotely, instance modes, one-way,
//! asynchronous and batched calls, timeouts, reconnection, size limits.

mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use braid_rpc::{Daemon, Error, InstanceMode, Proxy};
use common::*;
use parking_lot::Mutex;

fn calc_daemon() -> (Daemon, CalculatorProxy) {
    let daemon = Daemon::start().unwrap();
    let uri = daemon.register("calc", Calc.into_object()).unwrap();
    assert_eq!(
        uri.to_string(),
        format!("braid://127.0.0.1:{}/calc", daemon.local_addr().port())
    );
    let calc = CalculatorProxy::connect(&uri).unwrap();
    (daemon, calc)
}

#[test]
fn typed_calls_return_values_and_remote_errors() {
    let (_daemon, calc) = calc_daemon();
    assert_eq!(calc.add(2, 3).unwrap(), 5);
    assert_eq!(calc.divide(7, 2).unwrap(), Ok(3));
    assert_eq!(
        calc.divide(7, 0).unwrap(),
        Err("division by zero".to_string())
    );
    assert_eq!(calc.whoami().unwrap(), "calc.whoami from 127.0.0.1");
}

#[test]
fn bad_calls_get_clear_errors_and_the_daemon_keeps_serving() {
    let (daemon, calc) = calc_daemon();
    let err = calc.explode("boom".into()).unwrap_err();
    assert_eq!(
        err,
        Error::Panicked {
            object: "calc".into(),
            method: "explode".into(),
            message: "boom".into()
        }
    );

    let missing = Proxy::new(daemon.uri("nothing")).unwrap();
    let err = missing.call::<_, i64>("add", &(1i64, 2i64)).unwrap_err();
    assert_eq!(
        err,
        Error::UnknownObject {
            object: "nothing".into()
        }
    );
    assert!(
        err.to_string().contains("unknown object `nothing`"),
        "{err}"
    );

    let raw = calc.proxy().clone();
    let err = raw.call::<_, i64>("multiply", &(1i64, 2i64)).unwrap_err();
    assert_eq!(
        err,
        Error::UnknownMethod {
            object: "calc".into(),
            service: "Calculator".into(),
            method: "multiply".into()
        }
    );

    let err = raw.call::<_, i64>("add", &("one", "two")).unwrap_err();
    assert!(
        matches!(&err, Error::BadArguments { object, method, .. } if object == "calc" && method == "add"),
        "{err}"
    );
    let err = raw.call::<_, i64>("add", &(1i64,)).unwrap_err();
    assert!(matches!(&err, Error::BadArguments { .. }), "{err}");

    // A result that does not decode as what the caller expects is the caller's error.
    let err = raw.call::<_, String>("add", &(1i64, 2i64)).unwrap_err();
    assert!(matches!(&err, Error::Decode { .. }), "{err}");

    // After all that, the same connection and new ones still work.
    assert_eq!(calc.add(1, 1).unwrap(), 2);
    assert_eq!(
        CalculatorProxy::connect(daemon.uri("calc"))
            .unwrap()
            .add(2, 2)
            .unwrap(),
        4
    );

    assert!(daemon.unregister("calc"));
    let err = calc.add(1, 1).unwrap_err();
    assert!(matches!(err, Error::UnknownObject { .. }), "{err}");
}

#[test]
fn instance_modes_single_per_connection_per_call() {
    let daemon = Daemon::start().unwrap();
    daemon
        .register_factory("single", InstanceMode::Single, || {
            Count::default().into_object()
        })
        .unwrap();
    daemon
        .register_factory("session", InstanceMode::Session, || {
            Count::default().into_object()
        })
        .unwrap();
    daemon
        .register_factory("percall", InstanceMode::PerCall, || {
            Count::default().into_object()
        })
        .unwrap();
    let err = daemon
        .register("single", Count::default().into_object())
        .unwrap_err();
    assert_eq!(err, Error::DuplicateObject("single".into()));
    assert_eq!(daemon.objects(), ["percall", "session", "single"]);

    let a: CounterProxy = daemon.proxy("single");
    let b: CounterProxy = daemon.proxy("single");
    assert_eq!(a.next().unwrap(), 1);
    assert_eq!(b.next().unwrap(), 2);
    assert_eq!(a.next().unwrap(), 3);

    let a: CounterProxy = daemon.proxy("session");
    let b: CounterProxy = daemon.proxy("session");
    assert_eq!(a.next().unwrap(), 1);
    assert_eq!(a.next().unwrap(), 2);
    assert_eq!(b.next().unwrap(), 1);
    assert_eq!(a.next().unwrap(), 3);
    a.proxy().release();
    assert_eq!(a.next().unwrap(), 1, "a new connection gets a new instance");

    let a: CounterProxy = daemon.proxy("percall");
    assert_eq!(a.next().unwrap(), 1);
    assert_eq!(a.next().unwrap(), 1);
}

#[test]
fn a_shared_instance_stays_reachable_to_the_server() {
    let daemon = Daemon::start().unwrap();
    let count = Arc::new(Count::default());
    daemon
        .register("count", count.clone().into_object())
        .unwrap();
    let proxy: CounterProxy = daemon.proxy("count");
    for _ in 0..5 {
        proxy.next().unwrap();
    }
    assert_eq!(count.next(), 6);
}

fn gated_daemon() -> (Daemon, mpsc::Sender<()>, mpsc::Receiver<String>) {
    let (gate_tx, gate_rx) = mpsc::channel();
    let (notes_tx, notes_rx) = mpsc::channel();
    let daemon = Daemon::start().unwrap();
    daemon
        .register(
            "gated",
            Gate {
                gate: Mutex::new(gate_rx),
                notes: Mutex::new(notes_tx),
            }
            .into_object(),
        )
        .unwrap();
    (daemon, gate_tx, notes_rx)
}

#[test]
fn one_way_calls_return_before_the_method_runs() {
    let (daemon, gate, notes) = gated_daemon();
    let gated: GatedProxy = daemon.proxy("gated");
    // The method cannot finish until the gate opens, which happens after the call returned.
    gated.record_later("first".into()).unwrap();
    gated.record_later("second".into()).unwrap();
    gate.send(()).unwrap();
    gate.send(()).unwrap();
    let mut got = vec![
        notes.recv_timeout(PATIENCE).unwrap(),
        notes.recv_timeout(PATIENCE).unwrap(),
    ];
    got.sort();
    assert_eq!(got, ["first", "second"]);
}

#[test]
fn async_calls_deliver_results_later() {
    let (daemon, gate, _notes) = gated_daemon();
    let gated: GatedProxy = daemon.proxy("gated");
    let pending = gated.answer_later_async();
    assert!(!pending.is_ready(), "the gate is still closed");
    gate.send(()).unwrap();
    assert_eq!(pending.result().unwrap(), 42);

    let (_calc_daemon, calc) = calc_daemon();
    let pending: Vec<_> = (0..20).map(|i| calc.add_async(i, i)).collect();
    let sums: Vec<i64> = pending.into_iter().map(|p| p.result().unwrap()).collect();
    assert_eq!(sums, (0..20).map(|i| 2 * i).collect::<Vec<_>>());
    let err = calc.explode_async("later".into()).result().unwrap_err();
    assert!(matches!(err, Error::Panicked { .. }), "{err}");
}

#[test]
fn batches_run_in_order_and_stop_at_the_first_failure() {
    let (_daemon, calc) = calc_daemon();
    let mut batch = calc.batch();
    let a = batch.add(1, 2);
    let b = batch.divide(10, 5);
    let c = batch.make(3);
    let results = batch.execute().unwrap();
    assert_eq!(results.ran(), 3);
    assert_eq!(results.get(&a).unwrap(), 3);
    assert_eq!(results.get(&b).unwrap(), Ok(2));
    assert_eq!(results.get(&c).unwrap(), vec![7, 7, 7]);

    let mut batch = calc.batch();
    let a = batch.add(1, 2);
    let boom = batch.explode("in a batch".into());
    let after = batch.add(3, 4);
    let results = batch.execute().unwrap();
    assert_eq!(results.get(&a).unwrap(), 3);
    assert!(matches!(results.get(&boom), Err(Error::Panicked { .. })));
    assert_eq!(
        results.get(&after).unwrap_err(),
        Error::BatchAborted { failed: 1 }
    );
}

#[test]
fn a_call_times_out_and_the_next_one_reconnects() {
    let (daemon, gate, _notes) = gated_daemon();
    let gated: GatedProxy = daemon.proxy("gated");
    let impatient = gated.with_timeout(Duration::from_millis(50));
    let err = impatient.answer_later().unwrap_err();
    assert_eq!(err, Error::Timeout(Duration::from_millis(50)));
    gate.send(()).unwrap();
    // The next call gets a fresh connection, not the late answer of the first.
    gate.send(()).unwrap();
    assert_eq!(impatient.with_timeout(PATIENCE).answer_later().unwrap(), 42);
}

#[test]
fn a_client_survives_a_daemon_restart_on_the_same_port() {
    let first = Daemon::start().unwrap();
    let port = first.local_addr().port();
    first.register("calc", Calc.into_object()).unwrap();
    let calc: CalculatorProxy = first.proxy("calc");
    assert_eq!(calc.add(1, 2).unwrap(), 3);
    first.shutdown();
    drop(first);

    // While the daemon is away calls fail: its pooled connection is found closed, and
    // nothing listens.
    let err = calc.add(1, 2).unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");

    let second = Daemon::builder().port(port).start().unwrap();
    second.register("calc", Calc.into_object()).unwrap();
    assert_eq!(
        calc.add(2, 3).unwrap(),
        5,
        "the first call after the restart"
    );
    assert_eq!(calc.add(4, 4).unwrap(), 8);
}

#[test]
fn the_first_call_after_a_restart_succeeds_on_every_pooled_connection() {
    let first = Daemon::start().unwrap();
    let port = first.local_addr().port();
    first
        .register("meeting", Meet::default().into_object())
        .unwrap();
    let meeting: MeetingProxy = first.proxy("meeting");
    // Three calls at once leave three connections in the pool.
    std::thread::scope(|s| {
        for _ in 0..3 {
            let meeting = meeting.clone();
            s.spawn(move || assert!(meeting.meet(3).unwrap()));
        }
    });
    first.shutdown();
    drop(first);

    let second = Daemon::builder().port(port).start().unwrap();
    second
        .register("meeting", Meet::default().into_object())
        .unwrap();
    for _ in 0..3 {
        assert!(meeting.meet(1).unwrap(), "every call after the restart");
    }
    std::thread::scope(|s| {
        for _ in 0..3 {
            let meeting = meeting.clone();
            s.spawn(move || assert!(meeting.meet(6).unwrap()));
        }
    });
}

#[test]
fn a_slow_call_does_not_hold_up_calls_from_another_proxy() {
    let daemon = Daemon::start().unwrap();
    daemon
        .register("meeting", Meet::default().into_object())
        .unwrap();
    let first: MeetingProxy = daemon.proxy("meeting");
    let second: MeetingProxy = daemon.proxy("meeting");
    // Each call waits inside the method for the other: both return true only if the
    // daemon serves the two connections at the same time.
    std::thread::scope(|s| {
        let waiting = s.spawn(|| first.meet(2).unwrap());
        assert!(second.meet(2).unwrap());
        assert!(waiting.join().unwrap());
    });
}

/// A session object: counts calls, meets callers, reports when it is dropped.
#[braid_rpc::service]
pub trait Tab {
    /// The next number: 1 for the instance's first call.
    fn next(&self) -> u64;
    /// Waits until `n` calls are inside `meet` of this instance (at most `PATIENCE`).
    fn meet(&self, n: u32) -> bool;
    /// This instance's number.
    fn id(&self) -> u32;
}

struct SessionTab {
    id: u32,
    count: Count,
    meeting: Meet,
    dropped: Mutex<mpsc::Sender<u32>>,
}

impl Tab for SessionTab {
    fn next(&self) -> u64 {
        self.count.next()
    }
    fn meet(&self, n: u32) -> bool {
        self.meeting.meet(n)
    }
    fn id(&self) -> u32 {
        self.id
    }
}

impl Drop for SessionTab {
    fn drop(&mut self) {
        self.dropped.lock().send(self.id).expect("the test listens");
    }
}

#[test]
fn a_session_is_one_instance_per_proxy_whatever_its_connections() {
    let daemon = Daemon::start().unwrap();
    let (dropped_tx, dropped) = mpsc::channel();
    let made = std::sync::atomic::AtomicU32::new(0);
    daemon
        .register_factory("tab", InstanceMode::Session, move || {
            SessionTab {
                id: made.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
                count: Count::default(),
                meeting: Meet::default(),
                dropped: Mutex::new(dropped_tx.clone()),
            }
            .into_object()
        })
        .unwrap();
    let tab: TabProxy = daemon.proxy("tab");
    // Four threads and an asynchronous call, all inside the method at once (so on five
    // connections), meet only if they reach one instance.
    let pending = tab.meet_async(5);
    std::thread::scope(|s| {
        for _ in 0..4 {
            let tab = tab.clone();
            s.spawn(move || assert!(tab.meet(5).unwrap()));
        }
    });
    assert!(pending.result().unwrap());
    let pending = tab.next_async();
    let mut numbers: Vec<u64> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let tab = tab.clone();
                s.spawn(move || (0..10).map(|_| tab.next().unwrap()).collect::<Vec<_>>())
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    numbers.push(pending.result().unwrap());
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=41).collect::<Vec<_>>(), "one counter");

    let other: TabProxy = daemon.proxy("tab");
    assert_eq!(other.next().unwrap(), 1, "another proxy, another instance");
    let first_id = tab.id().unwrap();
    assert_ne!(other.id().unwrap(), first_id);
    // Derived proxies stay in the session.
    let derived = TabProxy::from(tab.proxy().with_timeout(PATIENCE));
    assert_eq!(derived.id().unwrap(), first_id);

    drop((tab, derived));
    assert_eq!(dropped.recv_timeout(PATIENCE).unwrap(), first_id);
    assert_eq!(other.next().unwrap(), 2, "the other session goes on");
    assert!(dropped.try_recv().is_err());
    drop(other);
    assert_ne!(dropped.recv_timeout(PATIENCE).unwrap(), first_id);
}

#[test]
fn async_results_can_be_awaited_without_blocking_the_runtime() {
    let (daemon, gate, _notes) = gated_daemon();
    let gated: GatedProxy = daemon.proxy("gated");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let answer = runtime.block_on(async {
        // One runtime thread: the gate opens only if awaiting the answer leaves the
        // thread free for the task that opens it.
        let pending = gated.answer_later_async();
        let opener = tokio::spawn(async move { gate.send(()).unwrap() });
        let answer = pending.await;
        opener.await.unwrap();
        answer
    });
    assert_eq!(answer.unwrap(), 42);

    let (_calc_daemon, calc) = calc_daemon();
    let sums = runtime.block_on(async {
        let mut sums = Vec::new();
        for i in 0..10 {
            sums.push(calc.add_async(i, i).await.unwrap());
        }
        sums
    });
    assert_eq!(sums, (0..10).map(|i| 2 * i).collect::<Vec<_>>());
    let err = runtime
        .block_on(calc.explode_async("awaited".into()))
        .unwrap_err();
    assert!(matches!(err, Error::Panicked { .. }), "{err}");
}

#[test]
fn message_size_limits_are_enforced_on_both_sides() {
    let daemon = Daemon::builder().max_message_size(1024).start().unwrap();
    daemon.register("calc", Calc.into_object()).unwrap();
    let calc: CalculatorProxy = daemon.proxy("calc");
    assert_eq!(calc.echo(vec![1; 100]).unwrap().len(), 100);

    // Too big for the proxy's own limit: refused before sending.
    let small = calc.proxy().with_max_message_size(64);
    let err = CalculatorProxy::from(small.clone())
        .echo(vec![0; 200])
        .unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { limit: 64, .. }),
        "{err}"
    );
    // A reply bigger than the proxy's limit.
    let err = CalculatorProxy::from(small).make(200).unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { limit: 64, .. }),
        "{err}"
    );

    // Too big for the daemon: it answers with the error and closes that connection.
    let err = calc.echo(vec![0; 5000]).unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { limit: 1024, .. }),
        "{err}"
    );
    // A reply too big for the daemon's limit is replaced by the error.
    let err = calc.make(5000).unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { limit: 1024, .. }),
        "{err}"
    );
    assert_eq!(calc.add(1, 2).unwrap(), 3);
}

#[test]
fn many_threads_share_one_proxy() {
    let (_daemon, calc) = calc_daemon();
    std::thread::scope(|s| {
        for t in 0..8i64 {
            let calc = calc.clone();
            s.spawn(move || {
                for i in 0..50 {
                    assert_eq!(calc.add(t, i).unwrap(), t + i);
                }
            });
        }
    });
}

#[test]
fn a_daemon_at_its_connection_limit_says_it_is_busy() {
    let daemon = Daemon::builder().max_connections(1).start().unwrap();
    daemon.register("calc", Calc.into_object()).unwrap();
    let first: CalculatorProxy = daemon.proxy("calc");
    first.proxy().bind().unwrap();
    let second: CalculatorProxy = daemon.proxy("calc");
    let err = second.add(1, 2).unwrap_err();
    assert!(matches!(err, Error::Busy(_)), "{err}");
    assert_eq!(first.add(1, 2).unwrap(), 3);
    first.proxy().release();
    // The daemon notices the closed connection on its own thread; try until it has.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        match second.add(1, 2) {
            Ok(sum) => {
                assert_eq!(sum, 3);
                break;
            }
            Err(Error::Busy(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn invalid_uris_and_unreachable_daemons_are_clear_errors() {
    let err = CalculatorProxy::connect("pyro://x:1/a").unwrap_err();
    assert!(matches!(err, Error::InvalidUri { .. }), "{err}");
    // Find a port nobody listens on by binding and closing it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let calc = CalculatorProxy::connect(format!("braid://127.0.0.1:{port}/calc")).unwrap();
    let err = calc.add(1, 2).unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
}
