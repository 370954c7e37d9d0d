//! Deadlines for timeout guards: one background thread, started on first use, decides a
//! waiting alternation for its timeout guard when the deadline passes. It does not
//! depend on any runtime, so timeouts work on every scheduler.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::Error;
use crate::party::{Decision, Party};

/// A registered deadline, to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TimerId(u64);

struct Entry {
    at: Instant,
    party: Arc<Party>,
    guard: usize,
}

#[derive(Default)]
struct State {
    /// Deadlines in order; cancelled ones stay until they come up or the heap is rebuilt.
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    entries: HashMap<u64, Entry>,
    next: u64,
}

struct Timer {
    state: Mutex<State>,
    changed: Condvar,
}

static TIMER: OnceLock<Result<Arc<Timer>, Error>> = OnceLock::new();

fn timer() -> Result<&'static Arc<Timer>, Error> {
    TIMER
        .get_or_init(|| {
            let timer = Arc::new(Timer {
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
            });
            let worker = Arc::clone(&timer);
            std::thread::Builder::new()
                .name("braid-csp-timer".into())
                .spawn(move || worker.run())
                .map_err(Error::other)?;
            Ok(timer)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Decides `party` for `guard` at `at`, unless cancelled first.
pub(crate) fn add(at: Instant, party: Arc<Party>, guard: usize) -> Result<TimerId, Error> {
    let timer = timer()?;
    let mut state = timer.state.lock();
    let id = state.next;
    state.next += 1;
    let earliest = state
        .heap
        .peek()
        .is_none_or(|Reverse((first, _))| at < *first);
    state.heap.push(Reverse((at, id)));
    state.entries.insert(id, Entry { at, party, guard });
    drop(state);
    if earliest {
        timer.changed.notify_one();
    }
    Ok(TimerId(id))
}

/// Forgets a deadline (it may already have passed).
pub(crate) fn cancel(id: TimerId) {
    let Some(Ok(timer)) = TIMER.get() else {
        return;
    };
    let mut state = timer.state.lock();
    if state.entries.remove(&id.0).is_some() && state.heap.len() > 2 * state.entries.len() + 64 {
        // Mostly cancelled deadlines: rebuild, so that the heap does not grow without
        // bound under alternations whose long timeouts never fire.
        let heap = state
            .entries
            .iter()
            .map(|(id, entry)| Reverse((entry.at, *id)))
            .collect();
        state.heap = heap;
    }
}

impl Timer {
    fn run(&self) {
        let mut state = self.state.lock();
        loop {
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(Reverse((at, id))) = state.heap.peek().copied()
                && at <= now
            {
                state.heap.pop();
                if let Some(entry) = state.entries.remove(&id) {
                    due.push(entry);
                }
            }
            if !due.is_empty() {
                drop(state);
                for entry in due {
                    if let Some(Some(waker)) = entry.party.decide(Decision::Fired(entry.guard)) {
                        waker.wake();
                    }
                }
                state = self.state.lock();
                continue;
            }
            match state.heap.peek().copied() {
                Some(Reverse((at, _))) => {
                    self.changed.wait_until(&mut state, at);
                }
                None => self.changed.wait(&mut state),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_deadline_decides_the_party_and_a_cancelled_one_does_not() {
        let fired = Party::new(None);
        let cancelled = Party::new(None);
        let start = Instant::now();
        add(start + Duration::from_millis(5), Arc::clone(&fired), 3).unwrap();
        let id = add(start + Duration::from_millis(1), Arc::clone(&cancelled), 1).unwrap();
        cancel(id);
        // Wait for the timer through the party itself: a waker that unparks this thread.
        let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
        let decision = loop {
            if let Some(decision) = fired.poll(&waker) {
                break decision;
            }
            std::thread::park();
        };
        assert!(matches!(decision, Decision::Fired(3)));
        assert!(start.elapsed() >= Duration::from_millis(5));
        // The cancelled one is still undecided.
        assert!(cancelled.decide_self(Decision::Fired(9)));
    }

    struct Unpark(std::thread::Thread);

    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
}
