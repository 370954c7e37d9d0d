use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The name server's port when none is given (Pyro's, too).
pub const DEFAULT_NAMESERVER_PORT: u16 = 9090;

/// Where a remote object lives, like Pyro's `PYRO:name@host:port` and `PYRONAME:name`.
///
/// - `braid://host:port/name`: the object `name` in the daemon at `host:port`;
/// - `braids://host:port/name`: the same over TLS;
/// - `braidname://name` or `braidname://name@host:port`: whatever the name server (at
///   `host:port`, else `$BRAID_NS_HOST:$BRAID_NS_PORT`, else `127.0.0.1:9090`) has
///   registered under `name`, looked up when the proxy connects.
///
/// IPv6 hosts are written in brackets: `braid://[::1]:9000/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Uri {
    /// An object at a known daemon.
    Direct {
        /// The daemon's host name or IP address.
        host: String,
        /// The daemon's port.
        port: u16,
        /// The object's name in the daemon.
        object: String,
        /// Whether the daemon speaks TLS.
        tls: bool,
    },
    /// An object found through the name server.
    Name {
        /// The registered name.
        name: String,
        /// The name server's host and port, when given in the URI.
        nameserver: Option<(String, u16)>,
    },
}

impl Uri {
    /// The URI of object `object` in the daemon at `host:port`.
    pub fn direct(host: impl Into<String>, port: u16, object: impl Into<String>, tls: bool) -> Uri {
        Uri::Direct {
            host: host.into(),
            port,
            object: object.into(),
            tls,
        }
    }

    /// The object name (the registered name for a `braidname:` URI).
    pub fn object(&self) -> &str {
        match self {
            Uri::Direct { object, .. } => object,
            Uri::Name { name, .. } => name,
        }
    }
}

fn invalid(uri: &str, reason: impl Into<String>) -> Error {
    Error::InvalidUri {
        uri: uri.to_string(),
        reason: reason.into(),
    }
}

/// Splits `host:port`, with IPv6 hosts in brackets.
pub(crate) fn parse_host_port(uri: &str, text: &str) -> Result<(String, u16), Error> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid(uri, "an IPv6 host needs its closing `]`"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| invalid(uri, "expected `:port` after the host"))?;
        (host, port)
    } else {
        text.rsplit_once(':')
            .ok_or_else(|| invalid(uri, "expected host:port"))?
    };
    if host.is_empty() {
        return Err(invalid(uri, "the host is empty"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| invalid(uri, format!("`{port}` is not a port number")))?;
    Ok((host.to_string(), port))
}

fn format_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl FromStr for Uri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("braidname://") {
            let (name, nameserver) = match rest.rsplit_once('@') {
                Some((name, at)) => (name, Some(parse_host_port(s, at)?)),
                None => (rest, None),
            };
            if name.is_empty() {
                return Err(invalid(s, "the name is empty"));
            }
            return Ok(Uri::Name {
                name: name.to_string(),
                nameserver,
            });
        }
        let (rest, tls) = if let Some(rest) = s.strip_prefix("braid://") {
            (rest, false)
        } else if let Some(rest) = s.strip_prefix("braids://") {
            (rest, true)
        } else {
            return Err(invalid(
                s,
                "expected braid://host:port/name, braids://host:port/name or braidname://name",
            ));
        };
        let (address, object) = rest
            .split_once('/')
            .ok_or_else(|| invalid(s, "expected `/name` after host:port"))?;
        if object.is_empty() {
            return Err(invalid(s, "the object name is empty"));
        }
        let (host, port) = parse_host_port(s, address)?;
        Ok(Uri::Direct {
            host,
            port,
            object: object.to_string(),
            tls,
        })
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Direct {
                host,
                port,
                object,
                tls,
            } => {
                let scheme = if *tls { "braids" } else { "braid" };
                write!(f, "{scheme}://{}:{port}/{object}", format_host(host))
            }
            Uri::Name {
                name,
                nameserver: None,
            } => write!(f, "braidname://{name}"),
            Uri::Name {
                name,
                nameserver: Some((host, port)),
            } => write!(f, "braidname://{name}@{}:{port}", format_host(host)),
        }
    }
}

impl serde::Serialize for Uri {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Uri {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn uris_parse() {
        assert_eq!(
            "braid://127.0.0.1:9000/shop".parse::<Uri>().unwrap(),
            Uri::direct("127.0.0.1", 9000, "shop", false)
        );
        assert_eq!(
            "braids://[::1]:1/a/b".parse::<Uri>().unwrap(),
            Uri::direct("::1", 1, "a/b", true)
        );
        assert_eq!(
            "braidname://example.shop@ns.local:9090"
                .parse::<Uri>()
                .unwrap(),
            Uri::Name {
                name: "example.shop".into(),
                nameserver: Some(("ns.local".into(), 9090))
            }
        );
        for bad in [
            "http://x:1/a",
            "braid://x/a",
            "braid://x:1/",
            "braid://x:99999/a",
            "braidname://",
            "braid://[::1/a",
            "braid://:5/a",
        ] {
            let err = bad.parse::<Uri>().unwrap_err();
            assert!(matches!(err, Error::InvalidUri { .. }), "{bad}: {err}");
        }
    }

    proptest! {
        #[test]
        fn direct_uris_round_trip(host in "[a-z0-9.-]{1,20}|[0-9a-f:]{2,20}", port in any::<u16>(), object in "[^\\s]{1,20}", tls in any::<bool>()) {
            let uri = Uri::direct(host, port, object, tls);
            prop_assert_eq!(uri.to_string().parse::<Uri>().unwrap(), uri);
        }

        #[test]
        fn any_text_parses_or_fails_cleanly(text in ".{0,40}") {
            let _outcome = text.parse::<Uri>();
        }
    }
}
