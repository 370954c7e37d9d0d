//! `braid nameserver` through the built binary: a server on a free port, read its URI from
//! its first line, then the client subcommands (`ping`, `register`, `list`, `lookup`,
//! `remove`) against it, with a shared key and over TLS.

mod common;

use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};

use common::{Background, WAIT, stderr, stdout};

/// The environment variable the name server and its clients read the key from.
const KEY_ENV: &str = "BRAID_NS_KEY";

/// `braid nameserver` in the background, killed when dropped.
struct Server {
    process: Background,
    uri: String,
}

impl Server {
    /// Starts `braid nameserver --port 0 ARGS` and reads the URI it prints first.
    fn start(args: &[&str]) -> Server {
        let mut command = common::command(&["nameserver", "--port", "0"]);
        command.args(args).env_remove(KEY_ENV).stderr(Stdio::null());
        let process = Background::spawn(command, "nameserver");
        let uri = process.line();
        assert!(
            uri.ends_with("/braid.NameServer"),
            "the name server's first line was {uri:?}"
        );
        Server { process, uri }
    }

    /// Stops the server with SIGTERM and returns how it exited.
    fn terminate(self) -> ExitStatus {
        self.process.terminate().0
    }
}

/// Runs `braid nameserver ARGS` to the end, without $BRAID_NS_KEY unless `key_env`.
fn client(args: &[&str], key_env: Option<&str>) -> Output {
    let mut command = common::command(&["nameserver"]);
    command.args(args).env_remove(KEY_ENV);
    if let Some(key) = key_env {
        command.env(KEY_ENV, key);
    }
    common::output(command, WAIT).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a client command that must succeed and returns its stdout.
fn ok(args: &[&str]) -> String {
    let output = client(args, None);
    assert!(
        output.status.success(),
        "braid nameserver {args:?}: {output:?}"
    );
    stdout(&output)
}

/// Runs a client command that must fail and returns its stderr.
fn fails(args: &[&str]) -> String {
    let output = client(args, None);
    assert!(
        !output.status.success(),
        "braid nameserver {args:?} should fail: {output:?}"
    );
    stderr(&output)
}

#[test]
fn register_list_lookup_remove() {
    let server = Server::start(&[]);
    let ns = server.uri.as_str();
    let books = "braid://127.0.0.1:9000/books";
    let toys = "braid://127.0.0.1:9001/toys";
    let stock = "braid://127.0.0.1:9002/stock";

    assert_eq!(
        ok(&["ping", "--ns", ns]),
        format!("name server at {ns} is running\n")
    );
    let out = ok(&[
        "register",
        "--ns",
        ns,
        "shop.books",
        books,
        "-m",
        "shop",
        "-m",
        "books",
    ]);
    assert_eq!(out, format!("registered shop.books -> {books}\n"));
    ok(&[
        "register",
        "--ns",
        ns,
        "shop.toys",
        toys,
        "--metadata",
        "shop",
        "-m",
        "toys",
    ]);
    ok(&["register", "--ns", ns, "warehouse", stock]);

    assert_eq!(
        ok(&["list", "--ns", ns]),
        format!(
            "braid.NameServer\t{ns}\tclass:braid.NameServer\n\
             shop.books\t{books}\tbooks,shop\n\
             shop.toys\t{toys}\tshop,toys\n\
             warehouse\t{stock}\n"
        )
    );
    assert_eq!(
        ok(&["list", "--ns", ns, "--prefix", "shop."]),
        format!("shop.books\t{books}\tbooks,shop\nshop.toys\t{toys}\tshop,toys\n")
    );
    assert_eq!(
        ok(&["list", "--ns", ns, "-m", "shop", "-m", "toys"]),
        format!("shop.toys\t{toys}\tshop,toys\n")
    );
    assert_eq!(
        ok(&[
            "list",
            "--ns",
            ns,
            "--metadata-any",
            "books",
            "--metadata-any",
            "class:braid.NameServer"
        ]),
        format!(
            "braid.NameServer\t{ns}\tclass:braid.NameServer\nshop.books\t{books}\tbooks,shop\n"
        )
    );
    assert_eq!(ok(&["list", "--ns", ns, "--prefix", "nothing"]), "");

    // `--ns` takes the URI with or without the object path, or host:port.
    let address = ns
        .strip_prefix("braid://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(address, _)| address)
        .unwrap();
    let line = format!("shop.books\t{books}\tbooks,shop\n");
    assert_eq!(ok(&["lookup", "--ns", ns, "shop.books"]), line);
    assert_eq!(
        ok(&[
            "lookup",
            "--ns",
            &format!("braid://{address}"),
            "shop.books"
        ]),
        line
    );
    assert_eq!(ok(&["lookup", "--ns", address, "shop.books"]), line);

    // Registering replaces, unless --unique.
    let err = fails(&["register", "--ns", ns, "--unique", "shop.books", toys]);
    assert!(err.contains("`shop.books` is registered already"), "{err}");
    ok(&["register", "--ns", ns, "warehouse", toys, "-m", "moved"]);
    assert_eq!(
        ok(&["lookup", "--ns", ns, "warehouse"]),
        format!("warehouse\t{toys}\tmoved\n")
    );

    assert_eq!(
        ok(&["remove", "--ns", ns, "shop.books"]),
        "removed shop.books\n"
    );
    let err = fails(&["lookup", "--ns", ns, "shop.books"]);
    assert!(
        err.contains("the name server knows no object named `shop.books`"),
        "{err}"
    );
    let err = fails(&["remove", "--ns", ns, "shop.books"]);
    assert!(err.contains("no object named `shop.books`"), "{err}");
    assert_eq!(
        ok(&["list", "--ns", ns, "--prefix", "shop"]),
        format!("shop.toys\t{toys}\tshop,toys\n")
    );

    let status = server.terminate();
    assert!(status.success(), "SIGTERM should stop it cleanly: {status}");
}

#[test]
fn a_wrong_or_missing_key_is_refused() {
    let server = Server::start(&["--key", "s3cret"]);
    let ns = server.uri.as_str();

    assert!(ok(&["ping", "--ns", ns, "--key", "s3cret"]).contains("is running"));
    let err = fails(&["ping", "--ns", ns, "--key", "wrong"]);
    assert!(err.contains("authentication with"), "{err}");
    assert!(err.contains("wrong key"), "{err}");
    assert!(
        err.contains("--key"),
        "the error should say how to give the key: {err}"
    );
    let err = fails(&["list", "--ns", ns]);
    assert!(err.contains("requires a key"), "{err}");

    // The key also comes from $BRAID_NS_KEY; --key wins over it.
    let output = client(
        &["register", "--ns", ns, "a", "braid://h:1/a"],
        Some("s3cret"),
    );
    assert!(output.status.success(), "{output:?}");
    let output = client(
        &["lookup", "--ns", ns, "a", "--key", "wrong"],
        Some("s3cret"),
    );
    assert!(!output.status.success(), "{output:?}");
    assert_eq!(
        ok(&["lookup", "--ns", ns, "a", "-k", "s3cret"]),
        "a\tbraid://h:1/a\n"
    );

    let status = server.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn serves_over_tls_from_pem_files() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let (cert, key) = (path(&cert), path(&key));

    let server = Server::start(&[
        "--advertise",
        "localhost",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let ns = server.uri.as_str();
    assert!(ns.starts_with("braids://localhost:"), "{ns}");

    ok(&[
        "register",
        "--ns",
        ns,
        "--tls-ca",
        &cert,
        "secure",
        "braids://localhost:1/x",
    ]);
    assert_eq!(
        ok(&["lookup", "--ns", ns, "--tls-ca", &cert, "secure"]),
        "secure\tbraids://localhost:1/x\n"
    );
    let err = fails(&["ping", "--ns", ns]);
    assert!(err.contains("needs --tls-ca"), "{err}");

    let status = server.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn bad_arguments_get_clear_errors() {
    let err = fails(&["lookup", "--ns", "http://127.0.0.1:1", "x"]);
    assert!(err.contains("expected braid://HOST:PORT"), "{err}");
    let err = fails(&["lookup", "--ns", "braid://127.0.0.1:notaport", "x"]);
    assert!(err.contains("is not a port number"), "{err}");
    let err = fails(&["register", "--ns", "127.0.0.1:1", "x", "not-a-uri"]);
    assert!(err.contains("invalid URI `not-a-uri`"), "{err}");
    // Serving flags do not mix with the client commands.
    let err = fails(&["--port", "0", "list"]);
    assert!(err.contains("cannot be used with"), "{err}");
}
