//! Shared keys (HMAC challenge both ways) and TLS.

mod common;

use braid_rpc::{ClientTls, Daemon, Error, ServerTls};
use common::*;

#[test]
fn the_right_key_is_let_in_and_a_wrong_or_missing_key_refused() {
    let daemon = Daemon::builder().key("right key").start().unwrap();
    daemon.register("calc", Calc.into_object()).unwrap();
    let plain = CalculatorProxy::connect(daemon.uri("calc")).unwrap();

    assert_eq!(plain.with_key("right key").add(1, 2).unwrap(), 3);

    let err = plain.with_key("wrong key").add(1, 2).unwrap_err();
    match &err {
        Error::Authentication { message, .. } => {
            assert!(message.contains("wrong key"), "{message}");
        }
        other => panic!("expected an authentication error, got {other}"),
    }

    let err = plain.add(1, 2).unwrap_err();
    match &err {
        Error::Authentication { message, .. } => {
            assert!(message.contains("requires a key"), "{message}");
        }
        other => panic!("expected an authentication error, got {other}"),
    }

    // A proxy with a key refuses a daemon that cannot prove it knows the key.
    let open = Daemon::start().unwrap();
    open.register("calc", Calc.into_object()).unwrap();
    let err = CalculatorProxy::connect(open.uri("calc"))
        .unwrap()
        .with_key("right key")
        .add(1, 2)
        .unwrap_err();
    assert!(matches!(err, Error::Authentication { .. }), "{err}");

    // The daemon goes on serving those who know the key.
    assert_eq!(plain.with_key("right key").add(2, 2).unwrap(), 4);
}

fn self_signed() -> (ServerTls, ClientTls) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = cert.cert.pem();
    let key_pem = cert.signing_key.serialize_pem();
    (
        ServerTls::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap(),
        ClientTls::trusting_pem(cert_pem.as_bytes()).unwrap(),
    )
}

#[test]
fn calls_go_over_tls_with_a_key_too() {
    let (server_tls, client_tls) = self_signed();
    let daemon = Daemon::builder()
        .tls(server_tls)
        .advertise("localhost")
        .key("k")
        .start()
        .unwrap();
    let uri = daemon.register("calc", Calc.into_object()).unwrap();
    assert!(uri.to_string().starts_with("braids://localhost:"), "{uri}");

    let calc = CalculatorProxy::connect(&uri)
        .unwrap()
        .with_tls(client_tls.clone())
        .with_key("k");
    assert_eq!(calc.add(40, 2).unwrap(), 42);
    let mut batch = calc.batch();
    let slot = batch.make(100_000);
    assert_eq!(batch.execute().unwrap().get(&slot).unwrap().len(), 100_000);
    assert_eq!(calc.echo(vec![3; 70_000]).unwrap().len(), 70_000);
    for i in 0..20 {
        assert_eq!(calc.add(i, 1).unwrap(), i + 1);
    }

    // braids:// without a TLS configuration is refused before connecting.
    let err = CalculatorProxy::connect(&uri)
        .unwrap()
        .add(1, 1)
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err}");

    // A certificate that the client does not trust fails the handshake.
    let (_, stranger) = self_signed();
    let err = CalculatorProxy::connect(&uri)
        .unwrap()
        .with_tls(stranger)
        .with_key("k")
        .add(1, 1)
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err}");

    // A plain client talking to the TLS daemon gets a clear error, not a hang.
    let plain_uri = format!("braid://localhost:{}/calc", daemon.local_addr().port());
    let err = CalculatorProxy::connect(plain_uri)
        .unwrap()
        .with_key("k")
        .with_timeout(std::time::Duration::from_millis(200))
        .add(1, 1)
        .unwrap_err();
    assert!(err.is_connection_error(), "{err}");

    assert_eq!(calc.add(1, 1).unwrap(), 2);
}

#[test]
fn a_tls_client_survives_a_daemon_restart() {
    let (server_tls, client_tls) = self_signed();
    let first = Daemon::builder()
        .tls(server_tls.clone())
        .advertise("localhost")
        .start()
        .unwrap();
    let port = first.local_addr().port();
    let uri = first.register("calc", Calc.into_object()).unwrap();
    let calc = CalculatorProxy::connect(&uri).unwrap().with_tls(client_tls);
    assert_eq!(calc.add(1, 2).unwrap(), 3);
    first.shutdown();
    drop(first);
    let second = Daemon::builder()
        .tls(server_tls)
        .advertise("localhost")
        .port(port)
        .start()
        .unwrap();
    second.register("calc", Calc.into_object()).unwrap();
    assert_eq!(
        calc.add(2, 3).unwrap(),
        5,
        "the first call after the restart"
    );
    assert_eq!(calc.add(3, 3).unwrap(), 6);
}

#[test]
fn a_tls_daemon_at_its_connection_limit_says_it_is_busy() {
    let (server_tls, client_tls) = self_signed();
    let daemon = Daemon::builder()
        .tls(server_tls)
        .advertise("localhost")
        .max_connections(1)
        .start()
        .unwrap();
    let uri = daemon.register("calc", Calc.into_object()).unwrap();
    let first = CalculatorProxy::connect(&uri)
        .unwrap()
        .with_tls(client_tls.clone());
    first.proxy().bind().unwrap();
    let second = CalculatorProxy::connect(&uri).unwrap().with_tls(client_tls);
    let err = second.add(1, 2).unwrap_err();
    assert!(matches!(err, Error::Busy(_)), "{err}");
    assert_eq!(first.add(1, 2).unwrap(), 3);
}
