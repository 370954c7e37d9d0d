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
            "amqp" | "pyamqp" => Err(bad(
                "RabbitMQ is not supported yet; use redis:// (or memory:// in one process)",
            )),
            other => Err(bad(&format!(
                "unknown scheme `{other}`; expected redis://, sqlite:// or memory://"
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
            "amqp://guest@localhost//",
        ] {
            assert!(matches!(Url::parse(bad), Err(Error::Url { .. })), "{bad}");
        }
    }
}
