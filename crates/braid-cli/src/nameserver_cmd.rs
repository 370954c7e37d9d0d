//! `braid nameserver`: a name server for remote objects, like Pyro's `pyro5-ns`, and its
//! client commands (`list`, `lookup`, `register`, `remove`, `ping`), like `pyro5-nsc`.
//!
//! Plain `braid nameserver` serves; the client commands are its subcommands. Client
//! output is plain text, one registration a line: name, URI and the comma-separated
//! metadata, separated by tabs (the metadata column is left out when there is none).

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use braid::rpc::{
    ClientTls, DEFAULT_NAMESERVER_PORT, Daemon, NAMESERVER_NAME, NameServer, Proxy, Query,
    Registration, ServerTls, Uri, default_nameserver, start_nameserver,
};

use crate::signals::Signals;

/// The environment variable holding the shared key when `--key` is not given.
const KEY_ENV: &str = "BRAID_NS_KEY";

/// `braid nameserver`: serves, or with a subcommand talks to a running name server.
#[derive(Debug, Clone, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Without a subcommand, serves until Ctrl-C or SIGTERM; the first line on \
stdout is the name server's URI (braid://host:port/braid.NameServer). The subcommands talk \
to a running name server: `braid nameserver list --ns braid://127.0.0.1:9090`."
)]
pub struct NameserverArgs {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<ClientCommand>,
}

/// The flags of the serving name server.
#[derive(Debug, Clone, clap::Args)]
struct ServeArgs {
    /// The host or address to listen on (0.0.0.0 for every interface).
    #[arg(long, short = 'n', default_value = "127.0.0.1")]
    host: String,
    /// The port to listen on (0: any free port, printed in the URI).
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
    /// Serve over TLS with this PEM certificate chain (leaf first); needs --tls-key. The
    /// URI becomes braids://.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// The client commands, like Pyro's `pyro5-nsc`.
#[derive(Debug, Clone, clap::Subcommand)]
enum ClientCommand {
    /// List registrations, by name prefix and metadata (Pyro's `list`, `listmatching`,
    /// `yplookup`): one a line, NAME<TAB>URI[<TAB>METADATA,...].
    List(ListArgs),
    /// Print the registration of NAME (NAME<TAB>URI[<TAB>METADATA,...]); fails when the
    /// name is not registered.
    Lookup(LookupArgs),
    /// Register NAME for URI, replacing an earlier registration of the name unless
    /// --unique is given.
    Register(RegisterArgs),
    /// Remove the registration of NAME; fails when the name is not registered.
    Remove(RemoveArgs),
    /// Check that the name server answers (and that the key is right).
    Ping(ClientArgs),
}

/// How to reach the name server; every client command takes these.
#[derive(Debug, Clone, clap::Args)]
struct ClientArgs {
    /// The name server: braid://HOST:PORT (braids:// for TLS), with or without the
    /// /braid.NameServer path, or HOST:PORT; default $BRAID_NS_HOST:$BRAID_NS_PORT, else
    /// 127.0.0.1:9090.
    #[arg(long, value_name = "URI")]
    ns: Option<String>,
    /// The name server's shared key; default $BRAID_NS_KEY, else none.
    #[arg(long, short = 'k', value_name = "KEY")]
    key: Option<String>,
    /// Speak TLS, trusting the PEM certificates (CA or self-signed) in FILE.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// How long to wait for the name server, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds)]
    timeout: Duration,
}

/// `braid nameserver list`.
#[derive(Debug, Clone, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Only names starting with this.
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Only registrations carrying this tag; repeat it to require every tag given.
    #[arg(long, short = 'm', value_name = "TAG")]
    metadata: Vec<String>,
    /// Only registrations carrying at least one of the tags given this way.
    #[arg(long, value_name = "TAG")]
    metadata_any: Vec<String>,
}

/// `braid nameserver lookup`.
#[derive(Debug, Clone, clap::Args)]
struct LookupArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The registered name.
    name: String,
}

/// `braid nameserver register`.
#[derive(Debug, Clone, clap::Args)]
struct RegisterArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The name to register.
    name: String,
    /// Where the object is: braid://host:port/object (or braids://, braidname://).
    uri: Uri,
    /// A tag to find the registration by; repeat it for more.
    #[arg(long, short = 'm', value_name = "TAG")]
    metadata: Vec<String>,
    /// Fail when the name is registered already instead of replacing it (Pyro's
    /// `safe=True`).
    #[arg(long)]
    unique: bool,
}

/// `braid nameserver remove`.
#[derive(Debug, Clone, clap::Args)]
struct RemoveArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The registered name.
    name: String,
}

/// What can go wrong in `braid nameserver`.
#[derive(Debug, thiserror::Error)]
enum NameserverError {
    /// A name-server or connection error.
    #[error("{0}")]
    Rpc(#[from] braid::rpc::Error),
    /// A TLS file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// `--ns` does not name a name server.
    #[error("--ns {given}: {reason}")]
    Address {
        /// The text given.
        given: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The signal handlers could not be installed.
    #[error("cannot watch signals: {0}")]
    Signals(io::Error),
}

impl NameserverError {
    /// A hint on what to do, for the errors a user can fix from the command line.
    fn hint(&self) -> Option<&'static str> {
        match self {
            NameserverError::Rpc(braid::rpc::Error::Authentication { .. }) => {
                Some("give the name server's key with --key or $BRAID_NS_KEY")
            }
            NameserverError::Rpc(braid::rpc::Error::Connect { .. }) => {
                Some("is the name server running there? Start one with `braid nameserver`")
            }
            _ => None,
        }
    }
}

/// Runs `braid nameserver`: serves until Ctrl-C or SIGTERM, or runs a client subcommand.
pub fn nameserver(args: NameserverArgs) -> ExitCode {
    let outcome = match args.command {
        None => serve(args.serve),
        Some(ClientCommand::List(args)) => list(args),
        Some(ClientCommand::Lookup(args)) => lookup(args),
        Some(ClientCommand::Register(args)) => register(args),
        Some(ClientCommand::Remove(args)) => remove(args),
        Some(ClientCommand::Ping(args)) => ping(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            if let Some(hint) = error.hint() {
                eprintln!("  hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Parses `--timeout`.
fn seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 => Duration::try_from_secs_f64(s)
            .map_err(|e| format!("`{text}` is not a number of seconds: {e}")),
        _ => Err(format!("`{text}` is not a positive number of seconds")),
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, NameserverError> {
    std::fs::read(path).map_err(|source| NameserverError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn key_or_env(key: Option<String>) -> Option<String> {
    key.or_else(|| std::env::var(KEY_ENV).ok())
}

/// Serves a name server; prints its URI as the first line on stdout once it listens.
fn serve(args: ServeArgs) -> Result<(), NameserverError> {
    let mut builder = Daemon::builder().host(args.host).port(args.port);
    if let Some(key) = key_or_env(args.key) {
        builder = builder.key(key);
    }
    if let Some(host) = args.advertise {
        builder = builder.advertise(host);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let tls = ServerTls::from_pem(
            &read("the TLS certificate", cert)?,
            &read("the TLS key", key)?,
        )?;
        builder = builder.tls(tls);
    }
    // Watch the signals before the URI is out, so a client that stops the server as soon
    // as it has read the URI still gets a clean exit.
    let mut signals = Signals::watch().map_err(NameserverError::Signals)?;
    let daemon = start_nameserver(builder)?;
    println!("{}", daemon.uri(NAMESERVER_NAME));
    eprintln!("braid name server running; Ctrl-C or SIGTERM stops it");
    signals.wait();
    daemon.shutdown();
    eprintln!("braid name server stopped");
    Ok(())
}

/// The name server's URI from `--ns` (or the default location), with TLS when the URI
/// says `braids://` or a CA file is given.
fn nameserver_uri(given: Option<&str>, tls: bool) -> Result<Uri, NameserverError> {
    let (host, port, braids) = match given {
        None => {
            let (host, port) = default_nameserver()?;
            (host, port, false)
        }
        Some(text) => {
            let address_error = |reason: String| NameserverError::Address {
                given: text.to_string(),
                reason,
            };
            let (full, braids) = if let Some(rest) = text.strip_prefix("braid://") {
                (rest, false)
            } else if let Some(rest) = text.strip_prefix("braids://") {
                (rest, true)
            } else if text.contains("://") {
                return Err(address_error(
                    "expected braid://HOST:PORT, braids://HOST:PORT or HOST:PORT".into(),
                ));
            } else {
                (text, false)
            };
            let address = full.split_once('/').map_or(full, |(address, _)| address);
            match format!("braid://{address}/{NAMESERVER_NAME}").parse::<Uri>() {
                Ok(Uri::Direct { host, port, .. }) => (host, port, braids),
                Ok(Uri::Name { .. }) => return Err(address_error("expected HOST:PORT".into())),
                Err(braid::rpc::Error::InvalidUri { reason, .. }) => {
                    return Err(address_error(reason));
                }
                Err(error) => return Err(error.into()),
            }
        }
    };
    Ok(Uri::direct(host, port, NAMESERVER_NAME, braids || tls))
}

/// Connects to the name server `args` name (checking it is there and the key is right).
fn connect(args: &ClientArgs) -> Result<NameServer, NameserverError> {
    let uri = nameserver_uri(args.ns.as_deref(), args.tls_ca.is_some())?;
    let mut proxy = Proxy::new(&uri)?.with_timeout(args.timeout);
    if let Some(key) = key_or_env(args.key.clone()) {
        proxy = proxy.with_key(key);
    }
    match &args.tls_ca {
        Some(ca) => proxy = proxy.with_tls(ClientTls::trusting_pem(&read("the TLS CA", ca)?)?),
        None if matches!(uri, Uri::Direct { tls: true, .. }) => {
            return Err(NameserverError::Address {
                given: uri.to_string(),
                reason: "a braids:// name server needs --tls-ca FILE".into(),
            });
        }
        None => {}
    }
    Ok(NameServer::through(proxy)?)
}

/// Prints one registration as NAME<TAB>URI[<TAB>METADATA,...].
fn print_registration(registration: &Registration) {
    let Registration {
        name,
        uri,
        metadata,
    } = registration;
    if metadata.is_empty() {
        println!("{name}\t{uri}");
    } else {
        let tags: Vec<&str> = metadata.iter().map(String::as_str).collect();
        println!("{name}\t{uri}\t{}", tags.join(","));
    }
}

/// `braid nameserver list`.
fn list(args: ListArgs) -> Result<(), NameserverError> {
    let ns = connect(&args.client)?;
    let query = Query {
        prefix: args.prefix,
        metadata_all: args.metadata.into_iter().collect(),
        metadata_any: args.metadata_any.into_iter().collect(),
    };
    for registration in ns.query(&query)? {
        print_registration(&registration);
    }
    Ok(())
}

/// `braid nameserver lookup`.
fn lookup(args: LookupArgs) -> Result<(), NameserverError> {
    let ns = connect(&args.client)?;
    print_registration(&ns.registration(&args.name)?);
    Ok(())
}

/// `braid nameserver register`.
fn register(args: RegisterArgs) -> Result<(), NameserverError> {
    let ns = connect(&args.client)?;
    if args.unique {
        ns.register_unique(&args.name, &args.uri, args.metadata)?;
    } else {
        ns.register(&args.name, &args.uri, args.metadata)?;
    }
    println!("registered {} -> {}", args.name, args.uri);
    Ok(())
}

/// `braid nameserver remove`.
fn remove(args: RemoveArgs) -> Result<(), NameserverError> {
    let ns = connect(&args.client)?;
    if ns.remove(&args.name)? {
        println!("removed {}", args.name);
        Ok(())
    } else {
        Err(braid::rpc::Error::NameNotFound(args.name).into())
    }
}

/// `braid nameserver ping`: connects, then asks for the name server's own registration
/// so that a daemon which is not a name server fails.
fn ping(args: ClientArgs) -> Result<(), NameserverError> {
    let ns = connect(&args)?;
    let registration = ns.registration(NAMESERVER_NAME)?;
    println!("name server at {} is running", registration.uri);
    Ok(())
}
