//! Book recipe (ch. 5): PyCSP's channels across processes and machines. A name server
//! and a channel host publish a channel under a name; a remote end, found by that name,
//! reads and writes it over TCP exactly like a local end: the write waits for the reader
//! (a rendezvous across the network), and poison crosses the network too. Here both sides
//! run in one program for brevity; in real use the remote side is another program given
//! the name server's address.
//!
//! Python (PyCSP):
//! ```python
//! A = Channel("A")                      # hosted here; A.address is (host, port)
//! # in another interpreter:
//! B = Channel("A", connect=A.address)
//! cout = B.writer(); cout("hello")
//! ```
//!
//! Run: `cargo run --example ch5_csp_network_channels`

use braid::csp::{
    Channel, ChannelHost, Error, NameServer, Parallel, blocking_connect_writer, blocking_process,
    process, shutdown,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    let names = NameServer::bind("127.0.0.1:0")?;
    let host = ChannelHost::bind("127.0.0.1:0", Some(names.addr()))?;
    let words = Channel::<String>::new();
    host.publish("words", &words)?;
    println!(
        "name server on {}, channel `words` hosted on {}",
        names.addr(),
        host.addr()
    );

    let nameserver = names.addr();
    let input = words.reader();
    let results = Parallel::new([
        // The remote side: it knows only the name server's address and the name.
        blocking_process(move || {
            let out = blocking_connect_writer::<String>(nameserver, "words")?;
            for word in ["communicating", "sequential", "processes"] {
                out.blocking_write(word.to_string())?;
            }
            out.poison(); // crosses the network: the reader stops
            Ok(Vec::new())
        }),
        // The local side reads the hosted channel.
        process(async move {
            let mut got = Vec::new();
            loop {
                match input.read().await {
                    Ok(word) => got.push(word),
                    Err(Error::Poisoned) => return Ok(got),
                    Err(e) => return Err(e),
                }
            }
        }),
    ])
    .run()?;
    let got = results[1].clone().ok_or("the reader did not finish")?;
    println!("read over the network: {}", got.join(" "));
    shutdown()?;
    if got != ["communicating", "sequential", "processes"] {
        return Err(format!("read {got:?}").into());
    }
    Ok(())
}
