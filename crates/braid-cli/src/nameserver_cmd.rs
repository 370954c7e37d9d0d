//! `braid nameserver`: a name server for remote objects, like Pyro's
//! `python -m Pyro5.nameserver`.

use std::process::ExitCode;

use braid::rpc::{DEFAULT_NAMESERVER_PORT, Daemon, NAMESERVER_NAME, start_nameserver};

/// `braid nameserver`.
#[derive(Debug, Clone, clap::Args)]
pub struct NameserverArgs {
    /// The host or address to listen on (0.0.0.0 for every interface).
    #[arg(long, short = 'n', default_value = "127.0.0.1")]
    host: String,
    /// The port to listen on.
    #[arg(long, short = 'p', default_value_t = DEFAULT_NAMESERVER_PORT)]
    port: u16,
    /// A shared key clients must know (HMAC challenge on connect); default
    /// $BRAID_NS_KEY, else none.
    #[arg(long, short = 'k', value_name = "KEY")]
    key: Option<String>,
    /// The host name written into the URIs handed out, when clients reach this machine
    /// under another name.
    #[arg(long, value_name = "HOST")]
    advertise: Option<String>,
}

/// Runs a name server until the process is stopped (Ctrl-C).
pub fn nameserver(args: NameserverArgs) -> ExitCode {
    let mut builder = Daemon::builder().host(args.host).port(args.port);
    if let Some(key) = args.key.or_else(|| std::env::var("BRAID_NS_KEY").ok()) {
        builder = builder.key(key);
    }
    if let Some(host) = args.advertise {
        builder = builder.advertise(host);
    }
    match start_nameserver(builder) {
        Ok(daemon) => {
            println!("name server running at {}", daemon.uri(NAMESERVER_NAME));
            daemon.wait();
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
