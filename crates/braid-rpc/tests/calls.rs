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
        .register_factory("session", InstanceMode::PerConnection, || {
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

    let err = calc.add(1, 2).unwrap_err();
    assert!(
        matches!(err, Error::Connect { .. } | Error::ConnectionLost { .. }),
        "{err}"
    );

    let second = Daemon::builder().port(port).start().unwrap();
    second.register("calc", Calc.into_object()).unwrap();
    let (sum, errors) = eventually(3, || calc.add(2, 3));
    assert_eq!(sum, 5);
    assert!(errors.len() <= 1, "{errors:?}");
    assert_eq!(calc.add(4, 4).unwrap(), 8);
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
