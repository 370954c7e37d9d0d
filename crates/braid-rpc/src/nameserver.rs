//! The name server: a directory from names to URIs with metadata, served as a remote object
//! like Pyro's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::context::Settings;
use crate::daemon::{Daemon, DaemonBuilder};
use crate::error::Error;
use crate::proxy::{IntoUri, Proxy};
use crate::service;
use crate::uri::{DEFAULT_NAMESERVER_PORT, Uri, parse_host_port};

/// The object name the name server has in its daemon (Pyro's `Pyro.NameServer`).
pub const NAMESERVER_NAME: &str = "braid.NameServer";

/// One entry of the name server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The registered name.
    pub name: String,
    /// Where the object is.
    pub uri: Uri,
    /// Free-form tags to look objects up by (Pyro's metadata).
    pub metadata: BTreeSet<String>,
}

/// Which registrations [`NameServer::query`] returns: all conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Names starting with this.
    pub prefix: Option<String>,
    /// Registrations carrying every one of these tags.
    pub metadata_all: BTreeSet<String>,
    /// Registrations carrying at least one of these tags (ignored when empty).
    pub metadata_any: BTreeSet<String>,
}

impl Query {
    fn matches(&self, r: &Registration) -> bool {
        self.prefix
            .as_ref()
            .is_none_or(|p| r.name.starts_with(p.as_str()))
            && self.metadata_all.is_subset(&r.metadata)
            && (self.metadata_any.is_empty() || !self.metadata_any.is_disjoint(&r.metadata))
    }
}

/// The name server's remote interface; [`NameServer`] is the friendlier client.
#[service]
pub trait NameService {
    /// Registers `registration`; with `replace` false, an existing name is left alone and
    /// `false` returned.
    fn register(&self, registration: Registration, replace: bool) -> bool;
    /// The registration of `name`.
    fn lookup(&self, name: String) -> Option<Registration>;
    /// The registrations that match `query`, sorted by name.
    fn list(&self, query: Query) -> Vec<Registration>;
    /// Removes `name`; returns whether it was registered.
    fn remove(&self, name: String) -> bool;
}

/// The name server's table, in memory.
#[derive(Debug, Default)]
pub struct NameRegistry {
    entries: RwLock<BTreeMap<String, Registration>>,
}

impl NameService for NameRegistry {
    fn register(&self, registration: Registration, replace: bool) -> bool {
        let mut entries = self.entries.write();
        if !replace && entries.contains_key(&registration.name) {
            return false;
        }
        tracing::info!("name server: {} -> {}", registration.name, registration.uri);
        entries.insert(registration.name.clone(), registration);
        true
    }

    fn lookup(&self, name: String) -> Option<Registration> {
        self.entries.read().get(&name).cloned()
    }

    fn list(&self, query: Query) -> Vec<Registration> {
        let entries = self.entries.read();
        let range: Box<dyn Iterator<Item = &Registration>> = match &query.prefix {
            Some(prefix) => Box::new(
                entries
                    .range(prefix.clone()..)
                    .take_while(|(name, _)| name.starts_with(prefix.as_str()))
                    .map(|(_, r)| r),
            ),
            None => Box::new(entries.values()),
        };
        range.filter(|r| query.matches(r)).cloned().collect()
    }

    fn remove(&self, name: String) -> bool {
        self.entries.write().remove(&name).is_some()
    }
}

/// Starts a name server: a daemon configured by `builder` serving a [`NameRegistry`] as
/// [`NAMESERVER_NAME`], registered in itself. `braid nameserver` runs this.
///
/// # Errors
/// [`Error::Bind`] when the daemon cannot listen.
pub fn start_nameserver(builder: DaemonBuilder) -> Result<Daemon, Error> {
    let daemon = builder.start()?;
    let registry = Arc::new(NameRegistry::default());
    let uri = daemon.register(NAMESERVER_NAME, registry.clone().into_object())?;
    registry.register(
        Registration {
            name: NAMESERVER_NAME.to_string(),
            uri,
            metadata: BTreeSet::from(["class:braid.NameServer".to_string()]),
        },
        true,
    );
    Ok(daemon)
}

/// Where the name server is when a URI does not say: `$BRAID_NS_HOST` (default
/// `127.0.0.1`) and `$BRAID_NS_PORT` (default 9090).
///
/// # Errors
/// [`Error::InvalidUri`] when `$BRAID_NS_PORT` is not a port number.
pub fn default_nameserver() -> Result<(String, u16), Error> {
    let host = std::env::var("BRAID_NS_HOST").unwrap_or_else(|_| "127.0.0.1".to_string());
    let port = match std::env::var("BRAID_NS_PORT") {
        Ok(port) => parse_host_port(&port, &format!("{host}:{port}"))?.1,
        Err(_) => DEFAULT_NAMESERVER_PORT,
    };
    Ok((host, port))
}

/// A client of a name server, like Pyro's `locate_ns()` result.
///
/// ```no_run
/// use braid_rpc::NameServer;
///
/// let ns = NameServer::locate("127.0.0.1", 9090)?;
/// ns.register("example.shop", "braid://127.0.0.1:9000/shop", ["shop"])?;
/// assert_eq!(ns.lookup("example.shop")?.to_string(), "braid://127.0.0.1:9000/shop");
/// # Ok::<(), braid_rpc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct NameServer {
    proxy: NameServiceProxy,
}

impl NameServer {
    /// The name server at `host:port`, with a connection made now to check it is there.
    ///
    /// # Errors
    /// [`Error::Connect`] and the like when it cannot be reached.
    pub fn locate(host: &str, port: u16) -> Result<NameServer, Error> {
        NameServer::through(Proxy::new(Uri::direct(host, port, NAMESERVER_NAME, false))?)
    }

    /// The name server at [`default_nameserver`].
    ///
    /// # Errors
    /// As [`locate`](NameServer::locate).
    pub fn locate_default() -> Result<NameServer, Error> {
        let (host, port) = default_nameserver()?;
        NameServer::locate(&host, port)
    }

    /// The name server reached through `proxy` (set a key or TLS on it first); connects
    /// now to check it is there.
    ///
    /// # Errors
    /// As [`locate`](NameServer::locate).
    pub fn through(proxy: Proxy) -> Result<NameServer, Error> {
        proxy.bind()?;
        Ok(NameServer {
            proxy: NameServiceProxy::from_proxy(proxy),
        })
    }

    /// The proxy underneath.
    pub fn proxy(&self) -> &Proxy {
        self.proxy.proxy()
    }

    /// Registers `name` for `uri` with tags `metadata`, replacing an earlier registration
    /// of the name (as Pyro's `register` does).
    ///
    /// # Errors
    /// A connection error, or an invalid URI.
    pub fn register<S: Into<String>>(
        &self,
        name: &str,
        uri: impl IntoUri,
        metadata: impl IntoIterator<Item = S>,
    ) -> Result<(), Error> {
        self.insert(name, uri, metadata, true)
    }

    /// Registers `name` only when it is free (Pyro's `safe=True`).
    ///
    /// # Errors
    /// [`Error::NameTaken`] when it is registered already, or a connection error.
    pub fn register_unique<S: Into<String>>(
        &self,
        name: &str,
        uri: impl IntoUri,
        metadata: impl IntoIterator<Item = S>,
    ) -> Result<(), Error> {
        self.insert(name, uri, metadata, false)
    }

    fn insert<S: Into<String>>(
        &self,
        name: &str,
        uri: impl IntoUri,
        metadata: impl IntoIterator<Item = S>,
        replace: bool,
    ) -> Result<(), Error> {
        let registration = Registration {
            name: name.to_string(),
            uri: uri.into_uri()?,
            metadata: metadata.into_iter().map(Into::into).collect(),
        };
        if self.proxy.register(registration, replace)? {
            Ok(())
        } else {
            Err(Error::NameTaken(name.to_string()))
        }
    }

    /// The registration of `name`.
    ///
    /// # Errors
    /// [`Error::NameNotFound`], or a connection error.
    pub fn registration(&self, name: &str) -> Result<Registration, Error> {
        self.proxy
            .lookup(name.to_string())?
            .ok_or_else(|| Error::NameNotFound(name.to_string()))
    }

    /// The URI registered as `name`.
    ///
    /// # Errors
    /// [`Error::NameNotFound`], or a connection error.
    pub fn lookup(&self, name: &str) -> Result<Uri, Error> {
        Ok(self.registration(name)?.uri)
    }

    /// A proxy for the object registered as `name`, with this name server proxy's key and
    /// TLS settings.
    ///
    /// # Errors
    /// [`Error::NameNotFound`], or a connection error.
    pub fn proxy_for<P: From<Proxy>>(&self, name: &str) -> Result<P, Error> {
        let uri = self.lookup(name)?;
        Ok(P::from(Proxy::with_settings(
            uri,
            self.proxy.proxy().settings().clone(),
        )))
    }

    /// The names starting with `prefix` (everything for `""`) and their URIs.
    ///
    /// # Errors
    /// A connection error.
    pub fn list(&self, prefix: &str) -> Result<BTreeMap<String, Uri>, Error> {
        let query = Query {
            prefix: Some(prefix.to_string()),
            ..Query::default()
        };
        Ok(self
            .query(&query)?
            .into_iter()
            .map(|r| (r.name, r.uri))
            .collect())
    }

    /// The registrations that match `query` (prefix and metadata, like Pyro's `list` and
    /// `yplookup`).
    ///
    /// # Errors
    /// A connection error.
    pub fn query(&self, query: &Query) -> Result<Vec<Registration>, Error> {
        self.proxy.list(query.clone())
    }

    /// Removes `name`; returns whether it was registered.
    ///
    /// # Errors
    /// A connection error.
    pub fn remove(&self, name: &str) -> Result<bool, Error> {
        self.proxy.remove(name.to_string())
    }
}

/// Looks `name` up for a `braidname:` proxy with its settings.
pub(crate) fn resolve(
    name: &str,
    nameserver: Option<(String, u16)>,
    settings: &Settings,
) -> Result<Uri, Error> {
    let (host, port) = match nameserver {
        Some(location) => location,
        None => default_nameserver()?,
    };
    let proxy = Proxy::with_settings(
        Uri::direct(host, port, NAMESERVER_NAME, false),
        Settings {
            tls: None,
            ..settings.clone()
        },
    );
    let ns = NameServer {
        proxy: NameServiceProxy::from_proxy(proxy),
    };
    ns.lookup(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str, tags: &[&str]) -> Registration {
        Registration {
            name: name.into(),
            uri: Uri::direct("h", 1, name, false),
            metadata: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn queries_filter_by_prefix_and_metadata() {
        let registry = NameRegistry::default();
        assert!(registry.register(reg("shop.a", &["x", "y"]), false));
        assert!(registry.register(reg("shop.b", &["y"]), false));
        assert!(registry.register(reg("warehouse", &["x"]), false));
        assert!(!registry.register(reg("shop.a", &[]), false));
        let names =
            |q: Query| -> Vec<String> { registry.list(q).into_iter().map(|r| r.name).collect() };
        assert_eq!(
            names(Query {
                prefix: Some("shop.".into()),
                ..Query::default()
            }),
            ["shop.a", "shop.b"]
        );
        assert_eq!(
            names(Query {
                metadata_all: ["x".to_string()].into(),
                ..Query::default()
            }),
            ["shop.a", "warehouse"]
        );
        assert_eq!(
            names(Query {
                prefix: Some("shop".into()),
                metadata_any: ["x".to_string(), "z".to_string()].into(),
                ..Query::default()
            }),
            ["shop.a"]
        );
        assert!(registry.remove("shop.a".into()));
        assert!(!registry.remove("shop.a".into()));
    }
}
