//! Broker and result-backend URLs.

use std::time::Duration;

use crate::{Error, Result};

/// kombu's default visibility timeout.
pub(crate) const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(3600);

/// A parsed broker or backend URL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Url {
    /// `memory://` or `memory://NAME`: in this process, shared by every app naming it.
    Memory(String),
    /// `redis://[:password@]host[:port][/db][?options]`.
    Redis(RedisUrl),
    /// `sqlite:///absolute/path.db` or `sqlite://relative/path.db`: a file that survives
    /// restarts, shared by the processes of one machine.
    Sqlite(SqliteUrl),
    /// `amqp://user:pass@host:port/vhost` (also `pyamqp://`): RabbitMQ with kombu's layout.
    Amqp(AmqpUrl),
    /// `rpc://`: results sent as messages to the caller's reply queue on the AMQP broker
    /// (Celery's rpc backend); `rpc://user:pass@host:port/vhost` names the broker.
    Rpc(RpcUrl),
    /// `db+postgresql://user:pass@host:port/db`: results in PostgreSQL tables.
    Postgres(PostgresUrl),
}

/// A RabbitMQ URL and the transport options taken from its query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AmqpUrl {
    /// The URL given to the AMQP client (the vhost percent-encoded, braid's options removed).
    pub connect: String,
    /// The URL without the password, for logs.
    pub display: String,
    /// `x-max-priority` for the task queues braid declares (Celery's
    /// `task_queue_max_priority`); none by default, as Celery.
    pub max_priority: Option<u8>,
    /// `x-expires` for the task queues braid declares (`?queue_expires=SECONDS`): a queue
    /// unused that long is deleted with its messages. For short-lived queues (tests,
    /// examples); a Python app must declare such a queue with the same argument.
    pub queue_expires: Option<Duration>,
    /// The reply queue (the client's oid) put in `reply_to` of messages sent without one,
    /// when the result backend is `rpc://`.
    pub reply_to: Option<String>,
}

/// The rpc result backend: where its broker is and the caller's reply queue.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcUrl {
    /// The AMQP broker; `None` for plain `rpc://` until [`link`] gives it the app's broker.
    pub amqp: Option<AmqpUrl>,
    /// The caller's reply queue (Celery's `oid`).
    pub oid: String,
}

/// A PostgreSQL result backend.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PostgresUrl {
    /// The connection string given to the driver (`postgresql://...`).
    pub connect: String,
    /// The URL without the password, for logs.
    pub display: String,
}

/// Ties a backend URL to the broker URL: plain `rpc://` uses the app's AMQP broker, and
/// the broker then puts the rpc backend's reply queue in every message it sends. An
/// `amqp://` result backend (what `braid worker --broker amqp://...` gets by default)
/// means results sent back over that RabbitMQ, as `rpc://` does.
///
/// Results travel back on the reply queue named in each message, which only the AMQP
/// broker records: an rpc backend with any other broker would drop every result, so it is
/// refused with [`Error::Url`] naming `backend_text`.
pub(crate) fn link(
    broker: Url,
    backend: Option<Url>,
    backend_text: &str,
) -> Result<(Url, Option<Url>)> {
    let backend = match backend {
        Some(Url::Amqp(amqp)) => Some(Url::Rpc(RpcUrl {
            amqp: Some(amqp),
            oid: uuid::Uuid::new_v4().to_string(),
        })),
        other => other,
    };
    match (broker, backend) {
        (Url::Amqp(mut amqp), Some(Url::Rpc(mut rpc))) => {
            if rpc.amqp.is_none() {
                rpc.amqp = Some(amqp.clone());
            }
            amqp.reply_to = Some(rpc.oid.clone());
            Ok((Url::Amqp(amqp), Some(Url::Rpc(rpc))))
        }
        (_, Some(Url::Rpc(_))) => Err(Error::Url {
            url: backend_text.to_string(),
            reason: "the rpc result backend needs an amqp:// broker (results go back on \
                     RabbitMQ reply queues); use a redis://, db+ or sqlite:// backend here"
                .into(),
        }),
        (broker, backend) => Ok((broker, backend)),
    }
}

/// Percent-decodes a URL part.
fn percent_decode(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in `{text}`"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{text}` is not UTF-8 once decoded"))
}

/// Percent-encodes everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The parts of `user:pass@host:port/path`.
struct Authority {
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<u16>,
    path: String,
}

fn authority(rest: &str) -> std::result::Result<Authority, String> {
    let (auth, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (credentials, hostport) = match auth.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, auth),
    };
    let (user, password) = match credentials {
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (Some(percent_decode(u)?), Some(percent_decode(p)?)),
            None => (Some(percent_decode(c)?), None),
        },
        None => (None, None),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !hostport.ends_with(']') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("the port `{p}` is not a number"))?;
            (h.to_string(), Some(port))
        }
        _ => (hostport.to_string(), None),
    };
    Ok(Authority {
        user,
        password,
        host: if host.is_empty() {
            "localhost".into()
        } else {
            host
        },
        port,
        path: path.to_string(),
    })
}

/// Parses the AMQP part of `amqp://`, `pyamqp://` and `rpc://` URLs.
fn amqp_url(rest: &str) -> std::result::Result<AmqpUrl, String> {
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, query),
        None => (rest, ""),
    };
    let a = authority(base)?;
    // kombu: `amqp://host//` is the vhost `/`, `amqp://host/name` is `name`, and no path
    // at all is `/`.
    let vhost = match a.path.as_str() {
        "" | "/" => "/".to_string(),
        path => percent_decode(&path[1..])?,
    };
    let mut max_priority = None;
    let mut queue_expires = None;
    let mut heartbeat = 10u32;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("queue_max_priority" | "x-max-priority", value)) => {
                max_priority = Some(value.parse::<u8>().map_err(|_| {
                    "queue_max_priority must be a number from 0 to 255".to_string()
                })?);
            }
            Some(("queue_expires", value)) => {
                let seconds: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 1.0 && *s < 2e6)
                    .ok_or_else(|| "queue_expires must be seconds, at least 1".to_string())?;
                queue_expires = Some(Duration::from_secs_f64(seconds));
            }
            Some(("heartbeat", value)) => {
                heartbeat = value
                    .parse()
                    .map_err(|_| "heartbeat must be whole seconds".to_string())?;
            }
            _ => return Err(format!("unknown option `{pair}`")),
        }
    }
    let user = a.user.unwrap_or_else(|| "guest".into());
    let password = a.password.unwrap_or_else(|| "guest".into());
    let port = a.port.unwrap_or(5672);
    let vhost_part = percent_encode(&vhost);
    Ok(AmqpUrl {
        connect: format!(
            "amqp://{}:{}@{}:{port}/{vhost_part}?heartbeat={heartbeat}",
            percent_encode(&user),
            percent_encode(&password),
            a.host
        ),
        display: format!("amqp://{user}@{}:{port}/{vhost_part}", a.host),
        max_priority,
        queue_expires,
        reply_to: None,
    })
}

fn postgres_url(rest: &str) -> std::result::Result<PostgresUrl, String> {
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (rest, None),
    };
    let a = authority(base)?;
    let db = a.path.trim_start_matches('/');
    if db.is_empty() {
        return Err("expected db+postgresql://user:pass@host:port/database".into());
    }
    let mut connect = String::from("postgresql://");
    let mut display = String::from("postgresql://");
    if let Some(user) = &a.user {
        connect.push_str(&percent_encode(user));
        display.push_str(&percent_encode(user));
        if let Some(password) = &a.password {
            connect.push(':');
            connect.push_str(&percent_encode(password));
        }
        connect.push('@');
        display.push('@');
    }
    let hostport = match a.port {
        Some(port) => format!("{}:{port}", a.host),
        None => a.host.clone(),
    };
    connect.push_str(&format!("{hostport}/{db}"));
    display.push_str(&format!("{hostport}/{db}"));
    if let Some(query) = query {
        connect.push('?');
        connect.push_str(query);
    }
    Ok(PostgresUrl { connect, display })
}

/// An SQLite database file and its options.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SqliteUrl {
    /// The database file.
    pub path: std::path::PathBuf,
    /// How long a fetched message stays with its worker before it is restored.
    pub visibility_timeout: Duration,
}

/// A Redis URL and the transport options taken from its query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RedisUrl {
    /// The URL given to the Redis client (braid's options removed).
    pub connect: String,
    /// The database number.
    pub db: i64,
    /// kombu's `global_keyprefix`: put before every key and channel name.
    pub prefix: String,
    /// How long an unacknowledged message stays with its worker before it is restored.
    pub visibility_timeout: Duration,
}

impl Url {
    /// Parses a URL.
    ///
    /// # Errors
    /// [`Error::Url`] for an unknown scheme or a bad option.
    pub(crate) fn parse(url: &str) -> Result<Url> {
        let bad = |reason: &str| Error::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            bad("expected SCHEME://..., e.g. redis://127.0.0.1:6379/0 or memory://")
        })?;
        match scheme {
            "memory" => Ok(Url::Memory(rest.trim_end_matches('/').to_string())),
            "redis" => {
                let (base, query) = match rest.split_once('?') {
                    Some((base, query)) => (base, query),
                    None => (rest, ""),
                };
                let mut prefix = String::new();
                let mut visibility_timeout = DEFAULT_VISIBILITY_TIMEOUT;
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    match key {
                        "global_keyprefix" => prefix = value.to_string(),
                        "visibility_timeout" => {
                            let seconds: f64 = value
                                .parse()
                                .ok()
                                .filter(|s: &f64| s.is_finite() && *s > 0.0)
                                .ok_or_else(|| {
                                    bad("visibility_timeout must be positive seconds")
                                })?;
                            visibility_timeout = Duration::from_secs_f64(seconds);
                        }
                        _ => kept.push(pair),
                    }
                }
                let db = match base.rsplit_once('/') {
                    Some((_, db)) if !db.is_empty() => db
                        .parse::<i64>()
                        .map_err(|_| bad("the database after the last / must be a number"))?,
                    _ => 0,
                };
                let connect = if kept.is_empty() {
                    format!("redis://{base}")
                } else {
                    format!("redis://{base}?{}", kept.join("&"))
                };
                Ok(Url::Redis(RedisUrl {
                    connect,
                    db,
                    prefix,
                    visibility_timeout,
                }))
            }
            "rediss" => Err(bad("TLS (rediss://) is not supported yet; use redis://")),
            "sqlite" | "sqla+sqlite" | "db+sqlite" => {
                let (path, query) = match rest.split_once('?') {
                    Some((path, query)) => (path, query),
                    None => (rest, ""),
                };
                if path.is_empty() {
                    return Err(bad("expected sqlite:///path/to/file.db"));
                }
                let mut visibility_timeout = DEFAULT_VISIBILITY_TIMEOUT;
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    match pair.split_once('=') {
                        Some(("visibility_timeout", value)) => {
                            let seconds: f64 = value
                                .parse()
                                .ok()
                                .filter(|s: &f64| s.is_finite() && *s > 0.0)
                                .ok_or_else(|| {
                                    bad("visibility_timeout must be positive seconds")
                                })?;
                            visibility_timeout = Duration::from_secs_f64(seconds);
                        }
                        _ => return Err(bad(&format!("unknown option `{pair}`"))),
                    }
                }
                Ok(Url::Sqlite(SqliteUrl {
                    path: std::path::PathBuf::from(path),
                    visibility_timeout,
                }))
            }
            "amqp" | "pyamqp" | "librabbitmq" => {
                Ok(Url::Amqp(amqp_url(rest).map_err(|r| bad(&r))?))
            }
            "amqps" => Err(bad("TLS (amqps://) is not supported yet; use amqp://")),
            "rpc" => {
                let amqp = if rest.trim_matches('/').is_empty() {
                    None
                } else {
                    Some(amqp_url(rest).map_err(|r| bad(&r))?)
                };
                Ok(Url::Rpc(RpcUrl {
                    amqp,
                    oid: uuid::Uuid::new_v4().to_string(),
                }))
            }
            "db+postgresql"
            | "db+postgres"
            | "postgresql"
            | "postgres"
            | "db+postgresql+psycopg2"
            | "db+postgresql+psycopg" => {
                Ok(Url::Postgres(postgres_url(rest).map_err(|r| bad(&r))?))
            }
            other => Err(bad(&format!(
                "unknown scheme `{other}`; expected redis://, amqp://, sqlite://, memory:// \
                 (or, for results, rpc:// and db+postgresql://)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_keep_their_options_apart() {
        let Url::Redis(r) = Url::parse(
            "redis://127.0.0.1:6379/9?global_keyprefix=t1-&visibility_timeout=2.5&protocol=resp3",
        )
        .unwrap() else {
            panic!("not redis")
        };
        assert_eq!(r.connect, "redis://127.0.0.1:6379/9?protocol=resp3");
        assert_eq!(r.db, 9);
        assert_eq!(r.prefix, "t1-");
        assert_eq!(r.visibility_timeout, Duration::from_millis(2500));
        let Url::Redis(r) = Url::parse("redis://localhost").unwrap() else {
            panic!("not redis")
        };
        assert_eq!((r.db, r.prefix.as_str()), (0, ""));
        assert_eq!(r.visibility_timeout, DEFAULT_VISIBILITY_TIMEOUT);
    }

    #[test]
    fn sqlite_urls_name_a_file() {
        let Url::Sqlite(s) = Url::parse("sqlite:///tmp/q.db?visibility_timeout=5").unwrap() else {
            panic!("not sqlite")
        };
        assert_eq!(s.path, std::path::PathBuf::from("/tmp/q.db"));
        assert_eq!(s.visibility_timeout, Duration::from_secs(5));
        let Url::Sqlite(s) = Url::parse("db+sqlite://results.db").unwrap() else {
            panic!("not sqlite")
        };
        assert_eq!(s.path, std::path::PathBuf::from("results.db"));
        assert!(Url::parse("sqlite://").is_err());
        assert!(Url::parse("sqlite:///x.db?nope=1").is_err());
    }

    #[test]
    fn other_urls() {
        assert_eq!(Url::parse("memory://").unwrap(), Url::Memory(String::new()));
        assert_eq!(Url::parse("memory://x").unwrap(), Url::Memory("x".into()));
        for bad in [
            "nothing",
            "ftp://x",
            "redis://h/notanumber",
            "redis://h/0?visibility_timeout=-1",
            "amqps://guest@localhost//",
            "amqp://h:notaport//",
            "amqp://h//?nope=1",
            "db+postgresql://u@h",
        ] {
            assert!(matches!(Url::parse(bad), Err(Error::Url { .. })), "{bad}");
        }
    }

    #[test]
    fn amqp_urls_follow_kombu() {
        let Url::Amqp(a) = Url::parse("amqp://guest:guest@localhost:5672//").unwrap() else {
            panic!("not amqp")
        };
        assert_eq!(
            a.connect,
            "amqp://guest:guest@localhost:5672/%2F?heartbeat=10"
        );
        assert_eq!(a.max_priority, None);
        let Url::Amqp(a) =
            Url::parse("pyamqp://u:p%40ss@rabbit/prod?queue_max_priority=10").unwrap()
        else {
            panic!("not amqp")
        };
        assert_eq!(a.connect, "amqp://u:p%40ss@rabbit:5672/prod?heartbeat=10");
        assert_eq!(a.display, "amqp://u@rabbit:5672/prod");
        assert_eq!(a.max_priority, Some(10));
        let Url::Amqp(a) = Url::parse("amqp://h//?queue_expires=60").unwrap() else {
            panic!("not amqp")
        };
        assert_eq!(a.queue_expires, Some(Duration::from_secs(60)));
        assert!(Url::parse("amqp://h//?queue_expires=0").is_err());
        let Url::Amqp(a) = Url::parse("amqp://").unwrap() else {
            panic!("not amqp")
        };
        assert_eq!(
            a.connect,
            "amqp://guest:guest@localhost:5672/%2F?heartbeat=10"
        );
    }

    #[test]
    fn rpc_links_to_the_broker() {
        let broker = Url::parse("amqp://h//").unwrap();
        let backend = Url::parse("rpc://").unwrap();
        let (Url::Amqp(amqp), Some(Url::Rpc(rpc))) = link(broker, Some(backend), "rpc://").unwrap()
        else {
            panic!("not linked")
        };
        assert_eq!(amqp.reply_to.as_deref(), Some(rpc.oid.as_str()));
        assert_eq!(rpc.amqp.unwrap().connect, amqp.connect);
        let (Url::Amqp(amqp), Some(Url::Rpc(rpc))) = link(
            Url::parse("amqp://h//").unwrap(),
            Some(Url::parse("rpc://u:p@other:5673//").unwrap()),
            "rpc://u:p@other:5673//",
        )
        .unwrap() else {
            panic!("changed")
        };
        assert!(rpc.amqp.unwrap().connect.contains("other:5673"));
        assert_eq!(amqp.reply_to.as_deref(), Some(rpc.oid.as_str()));
        // Any other broker would never record where replies go: refused.
        for broker in ["redis://h", "memory://x", "sqlite:///tmp/x.db"] {
            let err = link(
                Url::parse(broker).unwrap(),
                Some(Url::parse("rpc://").unwrap()),
                "rpc://",
            )
            .unwrap_err();
            assert!(
                matches!(&err, Error::Url { url, .. } if url == "rpc://"),
                "{err:?}"
            );
        }
        // An amqp:// backend (the CLI's default: the broker's URL) is rpc over it.
        let (Url::Amqp(amqp), Some(Url::Rpc(rpc))) = link(
            Url::parse("amqp://h//").unwrap(),
            Some(Url::parse("amqp://h//").unwrap()),
            "amqp://h//",
        )
        .unwrap() else {
            panic!("not linked")
        };
        assert_eq!(amqp.reply_to.as_deref(), Some(rpc.oid.as_str()));
    }

    #[test]
    fn postgres_urls_take_celerys_form() {
        let Url::Postgres(p) = Url::parse("db+postgresql://u:s%3Acret@db:5433/results").unwrap()
        else {
            panic!("not postgres")
        };
        assert_eq!(p.connect, "postgresql://u:s%3Acret@db:5433/results");
        assert_eq!(p.display, "postgresql://u@db:5433/results");
    }
}
