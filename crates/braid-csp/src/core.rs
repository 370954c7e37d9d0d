//! The shared state of one channel: its buffer, its queues of blocked parties, its counts
//! of readers and writers, and how (if) it has ended.
//!
//! Every operation runs under the channel's lock and never blocks there: it completes
//! at once, leaves an entry in a queue, or fails. Wakers to wake and values to drop are
//! collected in an [`After`] and dealt with once the lock is released (a value may be a
//! channel end whose drop locks another channel).
//!
//! A plain blocked read or write lives in the channel itself (a [`Single`] in a slot
//! table), decided and polled under the channel's lock: no allocation and no lock of its
//! own. An alternation's guard is an [`Op`] shared with the alternation, which may wait
//! on several channels at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;

use parking_lot::{Mutex, MutexGuard};

use crate::Error;
use crate::party::{Decision, Pair, Party, PartyState, decide_pair};

/// A guard of an alternation waiting in a channel: the alternation's party, and where
/// the guard's value waits to be handed over (the value it offers to write, or the
/// place a value read arrives).
pub(crate) struct Op<T> {
    party: Arc<Party>,
    value: Mutex<Option<T>>,
}

impl<T> Op<T> {
    /// A guard of the alternation `party`.
    pub(crate) fn guard(party: &Arc<Party>, value: Option<T>) -> Arc<Self> {
        Arc::new(Op {
            party: Arc::clone(party),
            value: Mutex::new(value),
        })
    }

    /// Takes its value out.
    pub(crate) fn take(&self) -> Option<T> {
        self.value.lock().take()
    }
}

/// A plain read or write blocked in the channel.
struct Single<T> {
    party: PartyState,
    value: Option<T>,
}

/// The key of a blocked plain read or write in its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key(usize);

/// Which side of a channel an end is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Side {
    /// A reading end.
    Reader,
    /// A writing end.
    Writer,
}

/// A blocked party's entry in one of the channel's queues.
enum Waiting<T> {
    Single(Key),
    Guard(Arc<Op<T>>, usize),
}

/// What claiming a waiting entry found.
enum Claim<R> {
    /// Decided for the claimer; what the claimer did with its value, and the waker to
    /// wake once the channel's lock is released.
    Matched(R, Option<Waker>),
    /// It had been decided by someone else: a stale entry.
    PeerTaken,
    /// The claiming alternation had been decided by someone else.
    OwnTaken,
}

/// How the channel ended, and from which side. An end on the *other* side still drains
/// the buffer before it sees the error (a writer's poison or retirement lets readers
/// take what was written first).
#[derive(Debug, Clone)]
struct Ended {
    by: Side,
    error: Error,
}

/// Who is acting on the channel: a plain read or write that is not waiting anywhere, or
/// an alternation offering guard `guard`, which may already wait on other channels.
#[derive(Clone, Copy)]
pub(crate) enum Actor<'a> {
    Plain,
    Alt { party: &'a Arc<Party>, guard: usize },
}

impl Actor<'_> {
    /// Decides the actor for itself (the channel was ready without a peer).
    fn claim_alone(self) -> bool {
        match self {
            Actor::Plain => true,
            Actor::Alt { party, guard } => party.decide_self(Decision::Fired(guard)),
        }
    }

    /// Whether `entry` is a guard of the acting alternation itself.
    fn owns<T>(self, entry: &Waiting<T>) -> bool {
        match (self, entry) {
            (Actor::Alt { party, .. }, Waiting::Guard(op, _)) => Arc::ptr_eq(&op.party, party),
            _ => false,
        }
    }
}

/// What to do once the channel's lock is released.
pub(crate) struct After<T> {
    wake: Option<Waker>,
    more: Vec<Waker>,
    values: Vec<T>,
    ops: Vec<Arc<Op<T>>>,
}

impl<T> After<T> {
    pub(crate) fn new() -> Self {
        After {
            wake: None,
            more: Vec::new(),
            values: Vec::new(),
            ops: Vec::new(),
        }
    }

    fn wake(&mut self, waker: Option<Waker>) {
        if let Some(waker) = waker {
            if self.wake.is_none() {
                self.wake = Some(waker);
            } else {
                self.more.push(waker);
            }
        }
    }

    /// Keeps a removed entry's guard (and any value in it) to drop later.
    fn keep(&mut self, entry: Waiting<T>) {
        if let Waiting::Guard(op, _) = entry {
            self.ops.push(op);
        }
    }

    /// Wakes the parties decided and drops what was removed; call with no lock held.
    pub(crate) fn finish(self) {
        let After {
            wake,
            more,
            values,
            ops,
        } = self;
        drop(values);
        drop(ops);
        if let Some(waker) = wake {
            waker.wake();
        }
        for waker in more {
            waker.wake();
        }
    }
}

/// The outcome of a read attempted at once.
pub(crate) enum ReadNow<T> {
    /// A value was taken.
    Value(T),
    /// Nothing to take: the caller must wait (enqueue itself).
    Wait,
    /// The channel has ended.
    Failed(Error),
    /// The acting alternation was decided by another of its guards meanwhile.
    OwnTaken,
}

/// The outcome of a write attempted at once.
pub(crate) enum WriteNow<T> {
    /// The value was delivered (to a reader or into the buffer).
    Done,
    /// No room and no reader: the caller must wait; the value comes back.
    Wait(T),
    /// The channel has ended; the value comes back.
    Failed(Error, T),
    /// The acting alternation was decided by another of its guards meanwhile.
    OwnTaken(T),
}

/// The state of one channel, under its lock.
pub(crate) struct State<T> {
    readers: usize,
    writers: usize,
    /// `Channel` handles alive; with none left, no end can be added to a side that has
    /// none, and the channel retires rather than letting the other side wait for ever.
    handles: usize,
    ended: Option<Ended>,
    capacity: usize,
    buffer: VecDeque<T>,
    reads: VecDeque<Waiting<T>>,
    writes: VecDeque<Waiting<T>>,
    /// Blocked plain reads and writes, by key; freed by their owners.
    singles: Vec<Option<Single<T>>>,
    free: Vec<usize>,
}

/// One channel: its state behind a lock.
pub(crate) struct Core<T> {
    state: Mutex<State<T>>,
}

impl<T> Core<T> {
    /// A channel with one handle, no ends and room for `capacity` values.
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Core {
            state: Mutex::new(State {
                readers: 0,
                writers: 0,
                handles: 1,
                ended: None,
                capacity,
                buffer: VecDeque::with_capacity(capacity),
                reads: VecDeque::new(),
                writes: VecDeque::new(),
                singles: Vec::new(),
                free: Vec::new(),
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock()
    }

    /// Runs `f` under the lock, then wakes and drops what it collected.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State<T>, &mut After<T>) -> R) -> R {
        let mut after = After::new();
        let result = f(&mut self.lock(), &mut after);
        after.finish();
        result
    }
}

impl<T> State<T> {
    fn single(&mut self, key: Key) -> &mut Single<T> {
        self.singles[key.0]
            .as_mut()
            .expect("a blocked operation's key names a live entry")
    }

    /// Decides a waiting entry for `actor` and, on a match, lets `f` take or fill its
    /// value. The entry has been taken out of its queue.
    fn claim<R>(
        &mut self,
        entry: &Waiting<T>,
        actor: Actor<'_>,
        f: impl FnOnce(&mut Option<T>) -> R,
    ) -> Claim<R> {
        match (entry, actor) {
            (Waiting::Single(key), Actor::Plain) => {
                let single = self.single(*key);
                match single.party.decide(Decision::Fired(0)) {
                    Some(waker) => Claim::Matched(f(&mut single.value), waker),
                    None => Claim::PeerTaken,
                }
            }
            (Waiting::Single(key), Actor::Alt { party, guard }) => {
                let single = self.single(*key);
                let pair = decide_pair(&mut party.mutex().lock(), guard, &mut single.party, 0);
                match pair {
                    Pair::Matched(waker) => Claim::Matched(f(&mut single.value), waker),
                    Pair::PeerTaken => Claim::PeerTaken,
                    Pair::OwnTaken => Claim::OwnTaken,
                }
            }
            (Waiting::Guard(op, index), Actor::Plain) => {
                match op.party.decide(Decision::Fired(*index)) {
                    Some(waker) => Claim::Matched(f(&mut op.value.lock()), waker),
                    None => Claim::PeerTaken,
                }
            }
            (Waiting::Guard(op, index), Actor::Alt { party, guard }) => {
                let pair = {
                    let (mut own, mut peer) =
                        crate::party::lock_two(party.mutex(), op.party.mutex());
                    decide_pair(&mut own, guard, &mut peer, *index)
                };
                match pair {
                    Pair::Matched(waker) => Claim::Matched(f(&mut op.value.lock()), waker),
                    Pair::PeerTaken => Claim::PeerTaken,
                    Pair::OwnTaken => Claim::OwnTaken,
                }
            }
        }
    }

    /// Decides a waiting entry as failed (its channel ended).
    fn fail(&mut self, entry: &Waiting<T>, error: Error) -> Option<Option<Waker>> {
        match entry {
            Waiting::Single(key) => self.single(*key).party.decide(Decision::Failed(0, error)),
            Waiting::Guard(op, index) => op.party.decide(Decision::Failed(*index, error)),
        }
    }

    /// Tries to take a value now.
    pub(crate) fn read_now(&mut self, actor: Actor<'_>, after: &mut After<T>) -> ReadNow<T> {
        if let Some(ended) = &self.ended
            && ended.by == Side::Reader
        {
            return ReadNow::Failed(ended.error.clone());
        }
        if !self.buffer.is_empty() {
            if !actor.claim_alone() {
                return ReadNow::OwnTaken;
            }
            let value = self.buffer.pop_front().expect("the buffer is not empty");
            self.refill(after);
            return ReadNow::Value(value);
        }
        if let Some(ended) = &self.ended {
            return ReadNow::Failed(ended.error.clone());
        }
        let mut own = Vec::new();
        let outcome = loop {
            let Some(writer) = self.writes.pop_front() else {
                break ReadNow::Wait;
            };
            if actor.owns(&writer) {
                own.push(writer);
                continue;
            }
            match self.claim(&writer, actor, Option::take) {
                Claim::Matched(value, waker) => {
                    let value = value.expect("a waiting writer holds its value");
                    after.wake(waker);
                    after.keep(writer);
                    break ReadNow::Value(value);
                }
                Claim::PeerTaken => after.keep(writer),
                Claim::OwnTaken => {
                    self.writes.push_front(writer);
                    break ReadNow::OwnTaken;
                }
            }
        };
        if !own.is_empty() {
            for entry in own.into_iter().rev() {
                self.writes.push_front(entry);
            }
        }
        outcome
    }

    /// Moves the values of waiting writers into the buffer while there is room; each
    /// such write completes.
    fn refill(&mut self, after: &mut After<T>) {
        while self.buffer.len() < self.capacity {
            let Some(writer) = self.writes.pop_front() else {
                return;
            };
            if let Claim::Matched(value, waker) = self.claim(&writer, Actor::Plain, Option::take) {
                self.buffer
                    .push_back(value.expect("a waiting writer holds its value"));
                after.wake(waker);
            }
            after.keep(writer);
        }
    }

    /// Tries to deliver `value` now.
    pub(crate) fn write_now(
        &mut self,
        actor: Actor<'_>,
        value: T,
        after: &mut After<T>,
    ) -> WriteNow<T> {
        if let Some(ended) = &self.ended {
            return WriteNow::Failed(ended.error.clone(), value);
        }
        match self.hand_to_reader(actor, value, after) {
            Handed::Done => WriteNow::Done,
            Handed::OwnTaken(value) => WriteNow::OwnTaken(value),
            Handed::NoReader(value) => {
                if self.buffer.len() < self.capacity {
                    if !actor.claim_alone() {
                        return WriteNow::OwnTaken(value);
                    }
                    self.buffer.push_back(value);
                    WriteNow::Done
                } else {
                    WriteNow::Wait(value)
                }
            }
        }
    }

    /// Gives `value` to the first waiting reader that can still take it.
    fn hand_to_reader(&mut self, actor: Actor<'_>, value: T, after: &mut After<T>) -> Handed<T> {
        let mut own = Vec::new();
        let mut value = Some(value);
        let outcome = loop {
            let Some(reader) = self.reads.pop_front() else {
                break Handed::NoReader(value.take().expect("the value is handed over once"));
            };
            if actor.owns(&reader) {
                own.push(reader);
                continue;
            }
            match self.claim(&reader, actor, |slot| *slot = value.take()) {
                Claim::Matched((), waker) => {
                    after.wake(waker);
                    after.keep(reader);
                    break Handed::Done;
                }
                Claim::PeerTaken => after.keep(reader),
                Claim::OwnTaken => {
                    self.reads.push_front(reader);
                    break Handed::OwnTaken(value.take().expect("the value is handed over once"));
                }
            }
        };
        if !own.is_empty() {
            for entry in own.into_iter().rev() {
                self.reads.push_front(entry);
            }
        }
        outcome
    }

    fn insert_single(&mut self, single: Single<T>) -> Key {
        match self.free.pop() {
            Some(index) => {
                self.singles[index] = Some(single);
                Key(index)
            }
            None => {
                self.singles.push(Some(single));
                Key(self.singles.len() - 1)
            }
        }
    }

    /// Blocks a plain read: it waits at the back of the queue and wakes `waker` when
    /// decided.
    pub(crate) fn block_read(&mut self, waker: Waker) -> Key {
        let key = self.insert_single(Single {
            party: PartyState::new(Some(waker)),
            value: None,
        });
        self.reads.push_back(Waiting::Single(key));
        key
    }

    /// Blocks a plain write of `value`.
    pub(crate) fn block_write(&mut self, waker: Waker, value: T) -> Key {
        let key = self.insert_single(Single {
            party: PartyState::new(Some(waker)),
            value: Some(value),
        });
        self.writes.push_back(Waiting::Single(key));
        key
    }

    /// For the owner of a blocked plain operation: once decided, the decision and the
    /// value (read, or not written), and the entry is freed; otherwise registers `waker`.
    pub(crate) fn poll_single(&mut self, key: Key, waker: &Waker) -> Option<(Decision, Option<T>)> {
        let single = self.single(key);
        let decision = single.party.poll(waker)?;
        let value = single.value.take();
        self.singles[key.0] = None;
        self.free.push(key.0);
        Some((decision, value))
    }

    /// For the owner of a blocked plain operation that goes away: removes it, and returns
    /// the decision not yet taken and the value (read, or not written).
    pub(crate) fn cancel_single(
        &mut self,
        key: Key,
        after: &mut After<T>,
    ) -> (Option<Decision>, Option<T>) {
        let waiting = |entry: &Waiting<T>| matches!(entry, Waiting::Single(k) if *k == key);
        self.withdraw(waiting, after);
        let mut single = self.singles[key.0]
            .take()
            .expect("a blocked operation's key names a live entry");
        self.free.push(key.0);
        (single.party.close(), single.value.take())
    }

    /// Puts an alternation's guard at the back of the read queue.
    pub(crate) fn enqueue_read(&mut self, op: Arc<Op<T>>, guard: usize) {
        self.reads.push_back(Waiting::Guard(op, guard));
    }

    /// Puts an alternation's guard at the back of the write queue.
    pub(crate) fn enqueue_write(&mut self, op: Arc<Op<T>>, guard: usize) {
        self.writes.push_back(Waiting::Guard(op, guard));
    }

    /// Removes every entry of an alternation that stopped waiting.
    pub(crate) fn withdraw_party(&mut self, party: &Arc<Party>, after: &mut After<T>) {
        self.withdraw(
            |entry| matches!(entry, Waiting::Guard(op, _) if Arc::ptr_eq(&op.party, party)),
            after,
        );
    }

    fn withdraw(&mut self, mine: impl Fn(&Waiting<T>) -> bool + Copy, after: &mut After<T>) {
        for queue in [&mut self.reads, &mut self.writes] {
            if queue.iter().any(mine) {
                let (gone, kept): (VecDeque<_>, VecDeque<_>) =
                    std::mem::take(queue).into_iter().partition(mine);
                *queue = kept;
                for entry in gone {
                    after.keep(entry);
                }
            }
        }
    }

    /// Returns a value that a reader received but will never use (its operation was
    /// cancelled): to a waiting reader, else to the front of the buffer, so that it is
    /// the next value read.
    pub(crate) fn put_back(&mut self, value: T, after: &mut After<T>) {
        if matches!(&self.ended, Some(ended) if ended.by == Side::Reader) {
            after.values.push(value);
            return;
        }
        match self.hand_to_reader(Actor::Plain, value, after) {
            Handed::Done => {}
            Handed::NoReader(value) | Handed::OwnTaken(value) => self.buffer.push_front(value),
        }
    }

    /// Adds an end.
    pub(crate) fn join(&mut self, side: Side) {
        match side {
            Side::Reader => self.readers += 1,
            Side::Writer => self.writers += 1,
        }
    }

    /// Adds a `Channel` handle.
    pub(crate) fn add_handle(&mut self) {
        self.handles += 1;
    }

    /// Removes an end (it retired); the channel retires when its side has none left.
    pub(crate) fn leave(&mut self, side: Side, after: &mut After<T>) {
        let left = match side {
            Side::Reader => {
                self.readers = self.readers.saturating_sub(1);
                self.readers
            }
            Side::Writer => {
                self.writers = self.writers.saturating_sub(1);
                self.writers
            }
        };
        if left == 0 {
            self.end(side, Error::Retired, after);
        }
    }

    /// Removes a `Channel` handle.
    pub(crate) fn drop_handle(&mut self, after: &mut After<T>) {
        self.handles -= 1;
        if self.handles == 0 {
            if self.writers == 0 {
                self.end(Side::Writer, Error::Retired, after);
            } else if self.readers == 0 {
                self.end(Side::Reader, Error::Retired, after);
            }
        }
    }

    /// Poisons the channel from `by`'s side.
    pub(crate) fn poison(&mut self, by: Side, after: &mut After<T>) {
        self.end(by, Error::Poisoned, after);
    }

    /// Ends the channel: poison overrides retirement, and the first poison or lost
    /// connection stays. Every blocked party fails; a reader-side end drops the buffer.
    pub(crate) fn end(&mut self, by: Side, error: Error, after: &mut After<T>) {
        let replace = match &self.ended {
            None => true,
            Some(ended) => ended.error.is_retired() && !error.is_retired(),
        };
        if !replace {
            return;
        }
        if by == Side::Reader {
            after.values.extend(self.buffer.drain(..));
        }
        let waiting: Vec<Waiting<T>> = self.reads.drain(..).chain(self.writes.drain(..)).collect();
        for entry in waiting {
            if let Some(waker) = self.fail(&entry, error.clone()) {
                after.wake(waker);
            }
            after.keep(entry);
        }
        self.ended = Some(Ended { by, error });
    }

    /// How many values are buffered.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

/// The outcome of [`State::hand_to_reader`].
enum Handed<T> {
    Done,
    NoReader(T),
    OwnTaken(T),
}

/// Ending and leaving a channel without knowing its value type: what a process does with
/// the ends it held when it finishes.
pub(crate) trait Terminate: Send + Sync {
    /// One end of `side` leaves (retires).
    fn leave(&self, side: Side);
    /// Poisons the channel from `side`.
    fn poison(&self, side: Side);
}

impl<T: Send> Terminate for Core<T> {
    fn leave(&self, side: Side) {
        self.with(|state, after| state.leave(side, after));
    }

    fn poison(&self, side: Side) {
        self.with(|state, after| state.poison(side, after));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(capacity: usize) -> Arc<Core<u32>> {
        let core = Core::new(capacity);
        core.with(|s, _| {
            s.join(Side::Reader);
            s.join(Side::Writer);
        });
        core
    }

    #[test]
    fn a_buffer_fills_then_makes_writers_wait() {
        let core = core(2);
        core.with(|s, after| {
            assert!(matches!(
                s.write_now(Actor::Plain, 1, after),
                WriteNow::Done
            ));
            assert!(matches!(
                s.write_now(Actor::Plain, 2, after),
                WriteNow::Done
            ));
            assert!(matches!(
                s.write_now(Actor::Plain, 3, after),
                WriteNow::Wait(3)
            ));
            assert_eq!(s.buffered(), 2);
            assert!(matches!(s.read_now(Actor::Plain, after), ReadNow::Value(1)));
        });
    }

    #[test]
    fn writer_poison_lets_readers_drain_the_buffer_first() {
        let core = core(4);
        core.with(|s, after| {
            assert!(matches!(
                s.write_now(Actor::Plain, 7, after),
                WriteNow::Done
            ));
            s.poison(Side::Writer, after);
            assert!(matches!(
                s.write_now(Actor::Plain, 8, after),
                WriteNow::Failed(Error::Poisoned, 8)
            ));
            assert!(matches!(s.read_now(Actor::Plain, after), ReadNow::Value(7)));
            assert!(matches!(
                s.read_now(Actor::Plain, after),
                ReadNow::Failed(Error::Poisoned)
            ));
        });
    }

    #[test]
    fn reader_poison_drops_the_buffer() {
        let core = core(4);
        core.with(|s, after| {
            assert!(matches!(
                s.write_now(Actor::Plain, 7, after),
                WriteNow::Done
            ));
            s.poison(Side::Reader, after);
            assert!(matches!(
                s.read_now(Actor::Plain, after),
                ReadNow::Failed(Error::Poisoned)
            ));
        });
    }

    #[test]
    fn poison_overrides_retirement_but_not_the_reverse() {
        let core = core(0);
        core.with(|s, after| {
            s.leave(Side::Writer, after);
            assert!(matches!(
                s.read_now(Actor::Plain, after),
                ReadNow::Failed(Error::Retired)
            ));
            s.poison(Side::Reader, after);
            s.leave(Side::Reader, after);
            assert!(matches!(
                s.read_now(Actor::Plain, after),
                ReadNow::Failed(Error::Poisoned)
            ));
        });
    }

    #[test]
    fn the_last_handle_retires_a_channel_that_can_get_no_writer() {
        let core: Arc<Core<u32>> = Core::new(0);
        core.with(|s, after| {
            s.join(Side::Reader);
            s.drop_handle(after);
            assert!(matches!(
                s.read_now(Actor::Plain, after),
                ReadNow::Failed(Error::Retired)
            ));
        });
    }

    #[test]
    fn a_value_put_back_is_read_next() {
        let core = core(1);
        core.with(|s, after| {
            assert!(matches!(
                s.write_now(Actor::Plain, 2, after),
                WriteNow::Done
            ));
            s.put_back(1, after);
            assert!(matches!(s.read_now(Actor::Plain, after), ReadNow::Value(1)));
            assert!(matches!(s.read_now(Actor::Plain, after), ReadNow::Value(2)));
        });
    }
}
