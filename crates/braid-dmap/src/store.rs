//! Shared constants: written once by the program, read once per worker process.
//!
//! The constants live in a store every worker can reach: a directory on this machine
//! (threads, local processes, task-queue workers of one machine) or a Redis hash (a
//! cluster). A worker fetches a constant the first time one of its tasks asks for it and
//! keeps it, decoded, for the life of the process.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use braid_core::Codec;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where a Dmap's shared constants are kept; travels with every task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Locator {
    /// One file per constant in this directory.
    Dir(String),
    /// One field per constant in this Redis hash.
    Redis {
        /// The server, without query parameters.
        url: String,
        /// The hash's key.
        key: String,
    },
}

/// How long a Redis hash of constants outlives a program that did not clean up.
const REDIS_TTL_SECS: i64 = 7 * 24 * 3600;

static FETCHES: AtomicU64 = AtomicU64::new(0);

/// How many times this process has fetched a shared constant from its store.
///
/// Each constant is fetched once per process and then served from memory, so after any
/// number of tasks reading `k` constants a worker process has fetched `k` times.
pub fn constant_fetches() -> u64 {
    FETCHES.load(Ordering::Relaxed)
}

type Decoded = Arc<dyn Any + Send + Sync>;

#[derive(Default)]
struct Cache {
    bytes: HashMap<(Locator, String), Arc<Vec<u8>>>,
    decoded: HashMap<(Locator, String, TypeId), Decoded>,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: std::sync::OnceLock<Mutex<Cache>> = std::sync::OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

fn redis_connections() -> &'static Mutex<HashMap<String, redis::Connection>> {
    static CONNS: std::sync::OnceLock<Mutex<HashMap<String, redis::Connection>>> =
        std::sync::OnceLock::new();
    CONNS.get_or_init(Mutex::default)
}

fn store_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Store(format!("{what}: {e}"))
}

fn with_redis<T>(
    url: &str,
    f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
) -> Result<T> {
    let mut conns = redis_connections().lock();
    if !conns.contains_key(url) {
        let client = redis::Client::open(url).map_err(|e| store_error(url, e))?;
        let conn = client.get_connection().map_err(|e| store_error(url, e))?;
        conns.insert(url.to_string(), conn);
    }
    let conn = conns.get_mut(url).expect("inserted above");
    let outcome = f(conn);
    if outcome.is_err() {
        // A broken connection is opened again on the next call.
        conns.remove(url);
    }
    outcome.map_err(|e| store_error(url, e))
}

fn valid_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::Store(format!(
            "`{name}` is not a valid constant name (use 1 to 200 letters, digits, `_`, `-`, `.`, not starting with `.`)"
        )))
    }
}

impl Locator {
    /// A fresh directory under the system's temporary directory.
    pub(crate) fn new_dir() -> Result<Locator> {
        let dir = std::env::temp_dir().join(format!(
            "braid-dmap-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| store_error(&dir.display().to_string(), e))?;
        Ok(Locator::Dir(dir.to_string_lossy().into_owned()))
    }

    /// A fresh hash on the Redis server of `url` (query parameters other than a
    /// `global_keyprefix`, which prefixes the key, are left out).
    pub(crate) fn new_redis(url: &str) -> Locator {
        let (server, query) = url.split_once('?').unwrap_or((url, ""));
        let prefix = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("global_keyprefix="))
            .unwrap_or("");
        Locator::Redis {
            url: server.to_string(),
            key: format!("{prefix}braid-dmap:{:016x}:constants", fastrand::u64(..)),
        }
    }

    /// Stores a constant; it must not exist yet.
    pub(crate) fn set(&self, name: &str, bytes: &[u8]) -> Result<()> {
        valid_name(name)?;
        match self {
            Locator::Dir(dir) => {
                let dir = Path::new(dir);
                let staged = dir.join(format!(".{name}.{:016x}", fastrand::u64(..)));
                let outcome = write_file(&staged, bytes).and_then(|()| {
                    // A hard link fails when the name exists: set-once, atomically.
                    std::fs::hard_link(&staged, dir.join(name)).map_err(|e| {
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            Error::ConstantExists(name.to_string())
                        } else {
                            store_error(&dir.join(name).display().to_string(), e)
                        }
                    })
                });
                if let Err(e) = std::fs::remove_file(&staged) {
                    tracing::debug!(error = %e, path = %staged.display(), "removing a staged constant");
                }
                outcome
            }
            Locator::Redis { url, key } => {
                let added: i64 = with_redis(url, |c| {
                    let added = redis::cmd("HSETNX")
                        .arg(key)
                        .arg(name)
                        .arg(bytes)
                        .query(c)?;
                    redis::cmd("EXPIRE")
                        .arg(key)
                        .arg(REDIS_TTL_SECS)
                        .query::<i64>(c)?;
                    Ok(added)
                })?;
                if added == 1 {
                    Ok(())
                } else {
                    Err(Error::ConstantExists(name.to_string()))
                }
            }
        }
    }

    fn fetch(&self, name: &str) -> Result<Option<Vec<u8>>> {
        valid_name(name)?;
        FETCHES.fetch_add(1, Ordering::Relaxed);
        match self {
            Locator::Dir(dir) => match std::fs::read(Path::new(dir).join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(store_error(dir, e)),
            },
            Locator::Redis { url, key } => {
                with_redis(url, |c| redis::cmd("HGET").arg(key).arg(name).query(c))
            }
        }
    }

    /// The constant `name`, decoded as `T`: fetched once per process, then from memory.
    pub(crate) fn get<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        name: &str,
    ) -> Result<Arc<T>> {
        let typed = (self.clone(), name.to_string(), TypeId::of::<T>());
        if let Some(value) = cache().lock().decoded.get(&typed)
            && let Ok(value) = value.clone().downcast::<T>()
        {
            return Ok(value);
        }
        let key = (self.clone(), name.to_string());
        let cached = cache().lock().bytes.get(&key).cloned();
        let bytes = match cached {
            Some(bytes) => bytes,
            None => {
                let bytes = Arc::new(
                    self.fetch(name)?
                        .ok_or_else(|| Error::ConstantMissing(name.to_string()))?,
                );
                cache().lock().bytes.insert(key, bytes.clone());
                bytes
            }
        };
        let value: Arc<T> = Arc::new(Codec::Binary.decode(&bytes)?);
        cache().lock().decoded.insert(typed, value.clone());
        Ok(value)
    }

    /// Removes the store and forgets what this process cached from it.
    pub(crate) fn remove(&self) {
        {
            let mut cache = cache().lock();
            cache.bytes.retain(|(loc, _), _| loc != self);
            cache.decoded.retain(|(loc, _, _), _| loc != self);
        }
        match self {
            Locator::Dir(dir) => {
                if let Err(e) = std::fs::remove_dir_all(dir) {
                    tracing::warn!(error = %e, dir, "removing the shared-constant directory");
                }
            }
            Locator::Redis { url, key } => {
                if let Err(e) = with_redis(url, |c| redis::cmd("DEL").arg(key).query::<i64>(c)) {
                    tracing::warn!(error = %e, key, "removing the shared-constant hash");
                }
            }
        }
    }
}

fn write_file(path: &PathBuf, bytes: &[u8]) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| store_error(&path.display().to_string(), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .map_err(|e| store_error(&path.display().to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_once_then_read_once() {
        let store = Locator::new_dir().unwrap();
        store
            .set("k", &Codec::Binary.encode(&41u64).unwrap())
            .unwrap();
        assert_eq!(
            store.set("k", &[1]).unwrap_err(),
            Error::ConstantExists("k".into())
        );
        let before = constant_fetches();
        for _ in 0..10 {
            assert_eq!(*store.get::<u64>("k").unwrap(), 41);
        }
        assert_eq!(constant_fetches() - before, 1);
        assert_eq!(
            store.get::<u64>("nope").unwrap_err(),
            Error::ConstantMissing("nope".into())
        );
        assert!(matches!(store.set("../x", &[1]), Err(Error::Store(_))));
        store.remove();
    }
}
