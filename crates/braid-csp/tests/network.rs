//! Network channels between two processes: this test binary runs the parent, and starts
//! itself again as the child (the environment variable says which child). Values, poison
//! and retirement cross in both directions, and a lost connection is an error on both
//! sides. Runs without libtest's harness, so that a child is a plain program.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use braid_csp::{
    Alternation, Channel, ChannelHost, Error, NameServer, Parallel, blocking_connect_reader,
    blocking_connect_writer, connect_reader, process,
};

const ROLE: &str = "BRAID_CSP_NET_CHILD";
const NAMESERVER: &str = "BRAID_CSP_NAMESERVER";

fn main() {
    match std::env::var(ROLE) {
        Ok(role) => child(&role),
        Err(_) => parent(),
    }
}

// ---- the child ----

fn child(role: &str) {
    let nameserver: SocketAddr = std::env::var(NAMESERVER)
        .expect("the parent gives the name server's address")
        .parse()
        .expect("a socket address");
    match role {
        // Writes 0..100 and retires (by dropping its end).
        "writer" => {
            let out = blocking_connect_writer::<u64>(nameserver, "numbers").unwrap();
            for i in 0..100 {
                out.blocking_write(i).unwrap();
            }
        }
        // Reads three values, then poisons the channel.
        "poisoner" => {
            let input = blocking_connect_reader::<String>(nameserver, "words").unwrap();
            for _ in 0..3 {
                input.blocking_read().unwrap();
            }
            input.poison();
        }
        // Runs a network reader inside ordinary processes, until the parent poisons.
        "poisoned" => {
            let input = blocking_connect_reader::<u64>(nameserver, "stream").unwrap();
            let ch = Channel::new();
            let (out, local_in) = (ch.writer(), ch.reader());
            let results = Parallel::new([
                process(async move {
                    loop {
                        let v = input.read().await?;
                        out.write(v).await?;
                    }
                }),
                process(async move {
                    let mut sum = 0;
                    loop {
                        match local_in.read().await {
                            Ok(v) => sum += v,
                            Err(Error::Poisoned) => return Ok(sum),
                            Err(e) => return Err(e),
                        }
                    }
                }),
            ])
            .run()
            .unwrap();
            assert_eq!(results, [None, Some(45)]);
            println!("poisoned after {}", results[1].unwrap());
        }
        // Writes one value, says so, and dies without retiring.
        "dies" => {
            let out = blocking_connect_writer::<u64>(nameserver, "fragile").unwrap();
            out.blocking_write(1).unwrap();
            println!("ready");
            std::process::exit(3);
        }
        // Waits in a read until the host goes away.
        "orphan" => {
            let input = blocking_connect_reader::<u64>(nameserver, "orphaned").unwrap();
            println!("ready");
            match input.blocking_read() {
                Err(Error::ConnectionLost { .. }) => println!("lost"),
                other => panic!("expected a lost connection, got {other:?}"),
            }
        }
        other => panic!("unknown child role {other}"),
    }
    // Like PyCSP: let every closed network end tell its host before the program ends.
    braid_csp::shutdown().unwrap();
}

// ---- the parent ----

fn start(role: &str, nameserver: SocketAddr) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(ROLE, role)
        .env(NAMESERVER, nameserver.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits for the child's next line of output.
fn next_line(child: &mut Child) -> String {
    let stdout = child.stdout.as_mut().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    line.trim().to_string()
}

fn finished(child: Child) -> (i32, String) {
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
    )
}

fn run(name: &str, test: fn()) {
    test();
    println!("test {name} ... ok");
}

fn parent() {
    // Nothing here may hang the test suite: a watchdog ends the run after a minute.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        eprintln!("network tests: still running after 60 s, giving up");
        std::process::exit(1);
    });
    run(
        "values_and_retirement_cross_from_another_process",
        values_and_retirement_cross,
    );
    run("poison_crosses_from_another_process", poison_from_the_child);
    run("poison_crosses_to_another_process", poison_to_the_child);
    run(
        "a_dead_writer_process_is_a_lost_connection",
        a_dead_writer_is_lost,
    );
    run("a_host_that_goes_away_is_a_lost_connection", a_lost_host);
    run("names_and_bad_uses", names_and_bad_uses);
    println!("\ntest result: ok. 6 passed");
}

fn values_and_retirement_cross() {
    let names = NameServer::bind("127.0.0.1:0").unwrap();
    let host = ChannelHost::bind("127.0.0.1:0", Some(names.addr())).unwrap();
    let ch = Channel::<u64>::new();
    host.publish("numbers", &ch).unwrap();
    let input = ch.reader();
    let child = start("writer", names.addr());
    let mut got = Vec::new();
    loop {
        match input.blocking_read() {
            Ok(v) => got.push(v),
            Err(Error::Retired) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(finished(child).0, 0);
}

fn poison_from_the_child() {
    let names = NameServer::bind("127.0.0.1:0").unwrap();
    let host = ChannelHost::bind("127.0.0.1:0", Some(names.addr())).unwrap();
    let ch = Channel::<String>::new();
    host.publish("words", &ch).unwrap();
    let out = ch.writer();
    let child = start("poisoner", names.addr());
    let mut written = 0;
    let error = loop {
        match out.blocking_write(format!("word {written}")) {
            Ok(()) => written += 1,
            Err(e) => break e.error,
        }
    };
    assert_eq!(error, Error::Poisoned);
    assert_eq!(written, 3);
    assert_eq!(finished(child).0, 0);
}

fn poison_to_the_child() {
    let names = NameServer::bind("127.0.0.1:0").unwrap();
    let host = ChannelHost::bind("127.0.0.1:0", Some(names.addr())).unwrap();
    let ch = Channel::<u64>::new();
    host.publish("stream", &ch).unwrap();
    let out = ch.writer();
    let child = start("poisoned", names.addr());
    for i in 0..10 {
        out.blocking_write(i).unwrap();
    }
    out.poison();
    let (code, stdout) = finished(child);
    assert_eq!((code, stdout.as_str()), (0, "poisoned after 45"));
}

fn a_dead_writer_is_lost() {
    let names = NameServer::bind("127.0.0.1:0").unwrap();
    let host = ChannelHost::bind("127.0.0.1:0", Some(names.addr())).unwrap();
    let ch = Channel::<u64>::new();
    host.publish("fragile", &ch).unwrap();
    let input = ch.reader();
    let mut child = start("dies", names.addr());
    assert_eq!(input.blocking_read(), Ok(1));
    assert_eq!(next_line(&mut child), "ready");
    match input.blocking_read() {
        Err(Error::ConnectionLost { .. }) => {}
        other => panic!("expected a lost connection, got {other:?}"),
    }
    assert_eq!(finished(child).0, 3);
}

fn a_lost_host() {
    let names = NameServer::bind("127.0.0.1:0").unwrap();
    let host = ChannelHost::bind("127.0.0.1:0", Some(names.addr())).unwrap();
    let ch = Channel::<u64>::new();
    host.publish("orphaned", &ch).unwrap();
    let mut child = start("orphan", names.addr());
    assert_eq!(next_line(&mut child), "ready");
    drop(host);
    let (code, stdout) = finished(child);
    assert_eq!((code, stdout.as_str()), (0, "lost"));
}

fn names_and_bad_uses() {
    let names = NameServer::bind("127.0.0.1:0").unwrap();
    let host = ChannelHost::bind("127.0.0.1:0", Some(names.addr())).unwrap();
    let ch = Channel::<u64>::buffered(1);
    host.publish("here", &ch).unwrap();
    assert_eq!(
        host.publish("here", &ch),
        Err(Error::NameTaken("here".into()))
    );
    let other = ChannelHost::bind("127.0.0.1:0", Some(names.addr())).unwrap();
    assert_eq!(
        other.publish("here", &ch),
        Err(Error::NameTaken("here".into()))
    );
    assert_eq!(
        blocking_connect_reader::<u64>(names.addr(), "nowhere").unwrap_err(),
        Error::UnknownName("nowhere".into())
    );
    // A network end cannot be a guard.
    let input = blocking_connect_reader::<u64>(names.addr(), "here").unwrap();
    let mut alt = Alternation::new().input(&input, |v| v);
    assert_eq!(
        alt.blocking_select(),
        Err(Error::Unsupported("alternation over a network channel end"))
    );
    // The async connect works from a process.
    let results = Parallel::new([process(async move {
        let input = connect_reader::<u64>(names.addr(), "here").await?;
        drop(input);
        Ok(())
    })])
    .run()
    .unwrap();
    assert_eq!(results, [Some(())]);
    // A name server that is not there.
    drop(other);
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    assert!(matches!(
        blocking_connect_reader::<u64>(unreachable, "here"),
        Err(Error::Connect { .. })
    ));
}
