//! The in-memory broker: queues in this process, shared by every app that names the same
//! `memory://NAME`. The embedded default for tests, examples and `braid tour`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::{BoxFuture, Broker, Delivery, Outgoing, WorkerBeat, priority_step};
use crate::url::DEFAULT_VISIBILITY_TIMEOUT;
use crate::{Result, clock};

/// How many events a subscriber may have waiting before newer ones are dropped for it.
const EVENT_BACKLOG: usize = 10_000;

/// An in-memory broker; clones of one name share the same queues.
#[derive(Clone)]
pub(crate) struct MemoryBroker {
    hub: Arc<Hub>,
}

struct Hub {
    state: Mutex<State>,
    arrived: Notify,
    replied: Notify,
}

struct Unacked {
    delivery: Delivery,
    at: f64,
}

#[derive(Default)]
struct State {
    queues: HashMap<String, [VecDeque<Vec<u8>>; 4]>,
    unacked: HashMap<String, Unacked>,
    schedule: BTreeMap<(i64, u64), (String, usize, Vec<u8>)>,
    dead: Vec<Value>,
    revoked: Vec<(f64, String)>,
    workers: HashMap<String, WorkerBeat>,
    subscribers: Vec<UnboundedSender<Value>>,
    event_subscribers: Vec<tokio::sync::mpsc::Sender<Value>>,
    locks: HashMap<String, (String, std::time::Instant)>,
    replies: HashMap<String, Vec<Value>>,
    seq: u64,
}

impl State {
    fn push_back(&mut self, queue: &str, step: usize, payload: Vec<u8>) {
        // New messages go in at the front and are consumed from the back, like kombu's
        // LPUSH/RPOP: a message given back goes to the back, so it is served next.
        self.queues.entry(queue.to_string()).or_default()[step].push_back(payload);
    }
}

impl MemoryBroker {
    /// The broker named `name` in this process, created on first use.
    pub(crate) fn named(name: &str) -> Self {
        static HUBS: OnceLock<Mutex<HashMap<String, Arc<Hub>>>> = OnceLock::new();
        let hub = HUBS
            .get_or_init(Default::default)
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Hub {
                    state: Mutex::new(State::default()),
                    arrived: Notify::new(),
                    replied: Notify::new(),
                })
            })
            .clone();
        MemoryBroker { hub }
    }

    fn take(&self, queues: &[String], max: usize) -> Vec<Delivery> {
        let mut state = self.hub.state.lock();
        let mut out = Vec::new();
        let now = clock::epoch_seconds();
        for step in 0..4 {
            for queue in queues {
                while out.len() < max {
                    let Some(lists) = state.queues.get_mut(queue) else {
                        break;
                    };
                    let Some(payload) = lists[step].pop_back() else {
                        break;
                    };
                    state.seq += 1;
                    let delivery = Delivery {
                        tag: format!("memory.{}", state.seq),
                        queue: queue.clone(),
                        step,
                        payload,
                    };
                    state.unacked.insert(
                        delivery.tag.clone(),
                        Unacked {
                            delivery: delivery.clone(),
                            at: now,
                        },
                    );
                    out.push(delivery);
                }
            }
        }
        out
    }
}

fn eta_key(eta: f64) -> i64 {
    (eta * 1e6) as i64
}

impl Broker for MemoryBroker {
    fn publish(&self, messages: Vec<Outgoing>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            {
                let mut state = self.hub.state.lock();
                for m in messages {
                    state.queues.entry(m.queue).or_default()[priority_step(m.priority)]
                        .push_front(m.payload);
                }
            }
            self.hub.arrived.notify_waiters();
            Ok(())
        })
    }

    fn fetch<'a>(
        &'a self,
        queues: &'a [String],
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<Delivery>>> {
        Box::pin(async move { Ok(self.take(queues, max.max(1))) })
    }

    fn wait_for_messages<'a>(
        &'a self,
        queues: &'a [String],
        wait: Duration,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let notified = self.hub.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let waiting = {
                let state = self.hub.state.lock();
                queues.iter().any(|q| {
                    state
                        .queues
                        .get(q)
                        .is_some_and(|lists| lists.iter().any(|l| !l.is_empty()))
                })
            };
            if !waiting && tokio::time::timeout(wait, notified).await.is_err() {
                tracing::trace!("no message arrived");
            }
            Ok(())
        })
    }

    fn ack(&self, tags: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut state = self.hub.state.lock();
            for tag in tags {
                state.unacked.remove(&tag);
            }
            Ok(())
        })
    }

    fn give_back(&self, deliveries: Vec<Delivery>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            {
                let mut state = self.hub.state.lock();
                for d in deliveries {
                    if state.unacked.remove(&d.tag).is_some() {
                        state.push_back(&d.queue, d.step, d.payload);
                    }
                }
            }
            self.hub.arrived.notify_waiters();
            Ok(())
        })
    }

    fn dead_letter(&self, delivery: Delivery, reason: String) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut state = self.hub.state.lock();
            if state.unacked.remove(&delivery.tag).is_some() {
                state.dead.push(super::redis::dead_letter_record(
                    &delivery.queue,
                    &reason,
                    &delivery.payload,
                ));
            }
            Ok(())
        })
    }

    fn schedule(&self, delivery: Delivery, eta: f64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut state = self.hub.state.lock();
            if state.unacked.remove(&delivery.tag).is_some() {
                state.seq += 1;
                let seq = state.seq;
                state.schedule.insert(
                    (eta_key(eta), seq),
                    (delivery.queue, delivery.step, delivery.payload),
                );
            }
            Ok(())
        })
    }

    fn schedule_new(&self, message: Outgoing, eta: f64) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut state = self.hub.state.lock();
            state.seq += 1;
            let seq = state.seq;
            state.schedule.insert(
                (eta_key(eta), seq),
                (
                    message.queue,
                    priority_step(message.priority),
                    message.payload,
                ),
            );
            Ok(())
        })
    }

    fn move_due<'a>(&'a self, queues: &'a [String]) -> BoxFuture<'a, Result<(usize, Option<f64>)>> {
        Box::pin(async move {
            let now = eta_key(clock::epoch_seconds());
            let mut moved = 0;
            let next;
            {
                let mut state = self.hub.state.lock();
                let due: Vec<(i64, u64)> = state
                    .schedule
                    .iter()
                    .filter(|((at, _), (queue, _, _))| *at <= now && queues.contains(queue))
                    .map(|(key, _)| *key)
                    .collect();
                for key in due {
                    if let Some((queue, step, payload)) = state.schedule.remove(&key) {
                        state.push_back(&queue, step, payload);
                        moved += 1;
                    }
                }
                next = state
                    .schedule
                    .iter()
                    .find(|(_, (queue, _, _))| queues.contains(queue))
                    .map(|((at, _), _)| *at as f64 / 1e6);
            }
            if moved > 0 {
                self.hub.arrived.notify_waiters();
            }
            Ok((moved, next))
        })
    }

    fn keep_alive(&self, tags: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let now = clock::epoch_seconds();
            let mut state = self.hub.state.lock();
            for tag in tags {
                if let Some(u) = state.unacked.get_mut(&tag) {
                    u.at = now;
                }
            }
            Ok(())
        })
    }

    fn restore_visible(&self) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move {
            let ceiling = clock::epoch_seconds() - DEFAULT_VISIBILITY_TIMEOUT.as_secs_f64();
            let restored = {
                let mut state = self.hub.state.lock();
                let old: Vec<String> = state
                    .unacked
                    .iter()
                    .filter(|(_, u)| u.at < ceiling)
                    .map(|(tag, _)| tag.clone())
                    .collect();
                for tag in &old {
                    if let Some(u) = state.unacked.remove(tag) {
                        let d = u.delivery;
                        state.push_back(&d.queue, d.step, d.payload);
                    }
                }
                old.len()
            };
            if restored > 0 {
                self.hub.arrived.notify_waiters();
            }
            Ok(restored)
        })
    }

    fn purge<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let mut state = self.hub.state.lock();
            Ok(state
                .queues
                .remove(queue)
                .map_or(0, |lists| lists.iter().map(|l| l.len() as u64).sum()))
        })
    }

    fn len<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let state = self.hub.state.lock();
            Ok(state
                .queues
                .get(queue)
                .map_or(0, |lists| lists.iter().map(|l| l.len() as u64).sum()))
        })
    }

    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<Value>>> {
        Box::pin(async move { Ok(self.hub.state.lock().dead.clone()) })
    }

    fn revoke(&self, ids: Vec<String>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let now = clock::epoch_seconds();
            let mut state = self.hub.state.lock();
            state.revoked.extend(ids.into_iter().map(|id| (now, id)));
            Ok(())
        })
    }

    fn revoked_since(&self, since: f64) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let state = self.hub.state.lock();
            Ok(state
                .revoked
                .iter()
                .filter(|(at, _)| *at >= since)
                .map(|(_, id)| id.clone())
                .collect())
        })
    }

    fn broadcast(&self, command: Value) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut state = self.hub.state.lock();
            state
                .subscribers
                .retain(|subscriber| subscriber.send(command.clone()).is_ok());
            Ok(())
        })
    }

    fn control(&self) -> BoxFuture<'_, Result<UnboundedReceiver<Value>>> {
        Box::pin(async move {
            let (tx, rx) = unbounded_channel();
            self.hub.state.lock().subscribers.push(tx);
            Ok(rx)
        })
    }

    fn reply(&self, reply_to: Value, _ticket: String, body: Value) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if let Some(oid) = reply_to.get("routing_key").and_then(Value::as_str) {
                let mut state = self.hub.state.lock();
                if let Some(replies) = state.replies.get_mut(oid) {
                    replies.push(body);
                }
            }
            self.hub.replied.notify_waiters();
            Ok(())
        })
    }

    fn collect_replies<'a>(
        &'a self,
        oid: &'a str,
        timeout: Duration,
        limit: Option<usize>,
    ) -> BoxFuture<'a, Result<Vec<Value>>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let notified = self.hub.replied.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                {
                    let state = self.hub.state.lock();
                    let n = state.replies.get(oid).map_or(0, Vec::len);
                    if limit.is_some_and(|limit| n >= limit) {
                        break;
                    }
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    break;
                }
            }
            Ok(self
                .hub
                .state
                .lock()
                .replies
                .remove(oid)
                .unwrap_or_default())
        })
    }

    fn declare_reply_queue<'a>(&'a self, oid: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.hub
                .state
                .lock()
                .replies
                .insert(oid.to_string(), Vec::new());
            Ok(())
        })
    }

    fn heartbeat(&self, beat: WorkerBeat) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.hub
                .state
                .lock()
                .workers
                .insert(beat.hostname.clone(), beat);
            Ok(())
        })
    }

    fn forget_worker<'a>(&'a self, hostname: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.hub.state.lock().workers.remove(hostname);
            Ok(())
        })
    }

    fn workers(&self, within: Duration) -> BoxFuture<'_, Result<Vec<WorkerBeat>>> {
        Box::pin(async move {
            let since = clock::epoch_seconds() - within.as_secs_f64();
            let state = self.hub.state.lock();
            let mut beats: Vec<WorkerBeat> = state
                .workers
                .values()
                .filter(|b| b.at >= since)
                .cloned()
                .collect();
            beats.sort_by(|a, b| a.hostname.cmp(&b.hostname));
            Ok(beats)
        })
    }

    fn publish_events(&self, events: Vec<(String, Value)>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut state = self.hub.state.lock();
            state.event_subscribers.retain(|subscriber| {
                for (_, body) in &events {
                    match subscriber.try_send(body.clone()) {
                        Ok(()) => {}
                        // A subscriber that falls behind loses events; nobody waits for it.
                        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {}
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return false,
                    }
                }
                true
            });
            Ok(())
        })
    }

    fn subscribe_events(&self) -> BoxFuture<'_, Result<tokio::sync::mpsc::Receiver<Value>>> {
        Box::pin(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(EVENT_BACKLOG);
            self.hub.state.lock().event_subscribers.push(tx);
            Ok(rx)
        })
    }

    fn lock<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let now = std::time::Instant::now();
            let mut state = self.hub.state.lock();
            let free = match state.locks.get(name) {
                None => true,
                Some((holder, until)) => holder == owner || *until <= now,
            };
            if free {
                state
                    .locks
                    .insert(name.to_string(), (owner.to_string(), now + ttl));
            }
            Ok(free)
        })
    }
}
