//! A party: one blocked channel operation or alternation, decided at most once.
//!
//! A blocked read or write, or an alternation waiting on several guards, leaves entries
//! in channel queues that point at its party. Whoever completes it (a peer on one of the
//! channels, the timer, a poisoner) must *decide* the party first, under its lock; only
//! one decision ever wins. A rendezvous between two parties that may both be offered
//! elsewhere (an alternation meeting an alternation) decides both under both locks,
//! taken in address order, so no other party can slip in between.
//!
//! Lock order: a channel's lock, then party locks (in address order), then the value
//! slots of alternation guards. Nothing that takes a channel lock is ever called under a
//! party lock.

use std::sync::Arc;
use std::task::Waker;

use parking_lot::{Mutex, MutexGuard};

use crate::Error;

/// How a party was decided.
#[derive(Debug, Clone)]
pub(crate) enum Decision {
    /// Guard (or operation) `usize` completed.
    Fired(usize),
    /// Guard `usize`'s channel ended (poisoned, retired, lost) while the party waited.
    Failed(usize, Error),
}

/// A party's state, under the lock of whatever holds it.
#[derive(Debug)]
pub(crate) struct PartyState {
    decision: Option<Decision>,
    /// Set once the owner has taken the decision out or gone away; a taken party stays
    /// decided.
    taken: bool,
    waker: Option<Waker>,
}

impl PartyState {
    /// Undecided; wakes `waker` when decided.
    pub(crate) fn new(waker: Option<Waker>) -> Self {
        PartyState {
            decision: None,
            taken: false,
            waker,
        }
    }

    /// Whether it can still be decided.
    pub(crate) fn is_open(&self) -> bool {
        self.decision.is_none() && !self.taken
    }

    /// Decides it if it is still open; returns the waker to wake (outside every lock),
    /// or `None` (in the outer option) when it was already decided.
    pub(crate) fn decide(&mut self, decision: Decision) -> Option<Option<Waker>> {
        if !self.is_open() {
            return None;
        }
        self.decision = Some(decision);
        Some(self.waker.take())
    }

    /// The decision, once made (taken out: a second call returns `None`); otherwise
    /// registers `waker` to be woken by it.
    pub(crate) fn poll(&mut self, waker: &Waker) -> Option<Decision> {
        match self.decision.take() {
            Some(decision) => {
                self.taken = true;
                Some(decision)
            }
            None => {
                match &self.waker {
                    Some(old) if old.will_wake(waker) => {}
                    _ => self.waker = Some(waker.clone()),
                }
                None
            }
        }
    }

    /// Closes it for good on behalf of its owner, who is going away: returns the decision
    /// if one was made and not taken (so that the owner can undo it), and makes every
    /// later claim fail.
    pub(crate) fn close(&mut self) -> Option<Decision> {
        self.taken = true;
        self.waker = None;
        self.decision.take()
    }
}

/// A party shared by the guards of an alternation.
#[derive(Debug)]
pub(crate) struct Party {
    state: Mutex<PartyState>,
}

/// What a claim of two parties found.
pub(crate) enum Pair {
    /// Both were undecided and are now decided for each other; the peer's waker must be
    /// woken once the channel's lock is released.
    Matched(Option<Waker>),
    /// The claiming party had already been decided by someone else.
    OwnTaken,
    /// The peer had already been decided; its entry is stale.
    PeerTaken,
}

impl Party {
    /// An undecided party that wakes `waker` when decided.
    pub(crate) fn new(waker: Option<Waker>) -> Arc<Party> {
        Arc::new(Party {
            state: Mutex::new(PartyState::new(waker)),
        })
    }

    /// The lock, to order it against other party locks.
    pub(crate) fn mutex(&self) -> &Mutex<PartyState> {
        &self.state
    }

    /// [`PartyState::decide`] under the lock.
    pub(crate) fn decide(&self, decision: Decision) -> Option<Option<Waker>> {
        self.state.lock().decide(decision)
    }

    /// Decides the party for itself (a skip guard, a guard whose channel was ready while
    /// the party was offering); no one is woken, the owner is running. False when
    /// someone else decided it first.
    pub(crate) fn decide_self(&self, decision: Decision) -> bool {
        self.decide(decision).is_some()
    }

    /// [`PartyState::poll`] under the lock.
    pub(crate) fn poll(&self, waker: &Waker) -> Option<Decision> {
        self.state.lock().poll(waker)
    }

    /// [`PartyState::close`] under the lock.
    pub(crate) fn close(&self) -> Option<Decision> {
        self.state.lock().close()
    }
}

/// Locks two distinct mutexes in address order; returns the guards as (a, b).
pub(crate) fn lock_two<'a, A, B>(
    a: &'a Mutex<A>,
    b: &'a Mutex<B>,
) -> (MutexGuard<'a, A>, MutexGuard<'a, B>) {
    let (first, second) = (std::ptr::from_ref(a).addr(), std::ptr::from_ref(b).addr());
    debug_assert_ne!(first, second, "a party cannot meet itself");
    if first < second {
        let a = a.lock();
        (a, b.lock())
    } else {
        let b = b.lock();
        (a.lock(), b)
    }
}

/// Decides two open parties for each other, or neither.
pub(crate) fn decide_pair(
    own: &mut PartyState,
    own_guard: usize,
    peer: &mut PartyState,
    peer_guard: usize,
) -> Pair {
    if !own.is_open() {
        return Pair::OwnTaken;
    }
    if !peer.is_open() {
        return Pair::PeerTaken;
    }
    own.decision = Some(Decision::Fired(own_guard));
    peer.decision = Some(Decision::Fired(peer_guard));
    Pair::Matched(peer.waker.take())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_party_is_decided_once() {
        let party = Party::new(None);
        assert!(party.decide_self(Decision::Fired(1)));
        assert!(!party.decide_self(Decision::Fired(2)));
        assert!(party.decide(Decision::Failed(0, Error::Poisoned)).is_none());
        let waker = Waker::noop();
        assert!(matches!(party.poll(waker), Some(Decision::Fired(1))));
        assert!(party.poll(waker).is_none());
        // Taken: still closed to new claims.
        assert!(!party.decide_self(Decision::Fired(3)));
    }

    fn pair(a: &Party, b: &Party) -> Pair {
        let (mut a, mut b) = lock_two(a.mutex(), b.mutex());
        decide_pair(&mut a, 0, &mut b, 1)
    }

    #[test]
    fn pairs_are_decided_together_or_not_at_all() {
        let a = Party::new(None);
        let b = Party::new(None);
        assert!(matches!(pair(&a, &b), Pair::Matched(None)));
        let c = Party::new(None);
        assert!(matches!(pair(&c, &b), Pair::PeerTaken));
        assert!(matches!(pair(&a, &c), Pair::OwnTaken));
        // c was not touched by the failed claims.
        assert!(c.decide_self(Decision::Fired(4)));
    }

    #[test]
    fn a_closed_party_refuses_claims_and_returns_its_pending_decision() {
        let a = Party::new(None);
        assert!(a.decide_self(Decision::Fired(2)));
        assert!(matches!(a.close(), Some(Decision::Fired(2))));
        let b = Party::new(None);
        assert!(b.close().is_none());
        assert!(!b.decide_self(Decision::Fired(0)));
    }
}
