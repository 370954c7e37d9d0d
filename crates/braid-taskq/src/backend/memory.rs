//! The in-memory result backend, shared by every app naming the same `memory://NAME`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::{Backend, ChordPart, Record, is_ready};
use crate::Result;
use crate::broker::BoxFuture;

/// An in-memory result store; clones of one name share the same results.
#[derive(Clone)]
pub(crate) struct MemoryBackend {
    hub: Arc<Hub>,
    expires: Duration,
}

struct Hub {
    state: Mutex<State>,
    stored: Notify,
}

#[derive(Default)]
struct Chord {
    size: Option<usize>,
    parts: BTreeMap<(u64, String), Vec<u8>>,
    claimed: bool,
    done: bool,
}

#[derive(Default)]
struct State {
    results: HashMap<String, (Vec<u8>, Option<Instant>)>,
    chords: HashMap<String, Chord>,
    stores: u64,
}

impl State {
    fn sweep(&mut self) {
        let now = Instant::now();
        self.results
            .retain(|_, (_, deadline)| deadline.is_none_or(|d| d > now));
    }

    fn get(&self, id: &str) -> Option<Vec<u8>> {
        self.results
            .get(id)
            .filter(|(_, deadline)| deadline.is_none_or(|d| d > Instant::now()))
            .map(|(meta, _)| meta.clone())
    }
}

impl MemoryBackend {
    /// The backend named `name` in this process, created on first use.
    pub(crate) fn named(name: &str, expires: Duration) -> Self {
        static HUBS: OnceLock<Mutex<HashMap<String, Arc<Hub>>>> = OnceLock::new();
        let hub = HUBS
            .get_or_init(Default::default)
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Hub {
                    state: Mutex::new(State::default()),
                    stored: Notify::new(),
                })
            })
            .clone();
        MemoryBackend { hub, expires }
    }
}

impl Backend for MemoryBackend {
    fn store(&self, records: Vec<Record>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            {
                let deadline = Instant::now().checked_add(self.expires);
                let mut state = self.hub.state.lock();
                for record in records {
                    if record.keep_success
                        && state.get(&record.task_id).is_some_and(|m| {
                            serde_json::from_slice::<serde_json::Value>(&m)
                                .is_ok_and(|v| v["status"] == "SUCCESS")
                        })
                    {
                        continue;
                    }
                    state
                        .results
                        .insert(record.task_id, (record.meta, deadline));
                }
                state.stores += 1;
                if state.stores.is_multiple_of(1024) {
                    state.sweep();
                }
            }
            self.hub.stored.notify_waiters();
            Ok(())
        })
    }

    fn get<'a>(&'a self, task_id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move { Ok(self.hub.state.lock().get(task_id)) })
    }

    fn wait<'a>(
        &'a self,
        task_id: &'a str,
        timeout: Option<Duration>,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
            loop {
                let notified = self.hub.stored.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(meta) = self.hub.state.lock().get(task_id)
                    && is_ready(&meta)
                {
                    return Ok(Some(meta));
                }
                match deadline {
                    Some(deadline) => {
                        if tokio::time::timeout_at(deadline, notified).await.is_err() {
                            return Ok(None);
                        }
                    }
                    None => notified.await,
                }
            }
        })
    }

    fn forget(&self, task_ids: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut state = self.hub.state.lock();
            for id in task_ids {
                state.results.remove(&id);
            }
            Ok(())
        })
    }

    fn set_chord_size<'a>(&'a self, group_id: &'a str, size: usize) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut state = self.hub.state.lock();
            let chord = state.chords.entry(group_id.to_string()).or_default();
            *chord = Chord {
                size: Some(size),
                ..Chord::default()
            };
            Ok(())
        })
    }

    fn chord_part(&self, part: ChordPart) -> BoxFuture<'_, Result<Option<Vec<Vec<u8>>>>> {
        Box::pin(async move {
            let mut state = self.hub.state.lock();
            let chord = state.chords.entry(part.group_id).or_default();
            if chord.done {
                return Ok(None);
            }
            chord
                .parts
                .entry((part.group_index.unwrap_or(u64::MAX), part.task_id))
                .or_insert(part.encoded);
            match chord.size {
                Some(size) if chord.parts.len() == size && !chord.claimed => {
                    chord.claimed = true;
                    Ok(Some(chord.parts.values().cloned().collect()))
                }
                _ => Ok(None),
            }
        })
    }

    fn chord_done<'a>(&'a self, group_id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut state = self.hub.state.lock();
            let chord = state.chords.entry(group_id.to_string()).or_default();
            chord.parts.clear();
            chord.done = true;
            Ok(())
        })
    }
}
