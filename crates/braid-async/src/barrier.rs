//! [`Barrier`]: a meeting point for a fixed number of tasks, like Python's
//! `asyncio.Barrier`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::Error;

/// A meeting point for `parties` tasks, like Python's `asyncio.Barrier`: each
/// [`wait`](Barrier::wait) waits until `parties` tasks are waiting, then all go on
/// together.
///
/// The barrier is reusable: once a round passes, the next `parties` waits form the next
/// round. Each waiter of a round gets its arrival index in `0..parties`.
///
/// [`abort`](Barrier::abort) breaks the barrier: every task waiting then, and every later
/// wait, gets [`Error::BrokenBarrier`] until [`reset`](Barrier::reset). `reset` sends the
/// tasks waiting then away with the same error and makes the barrier empty and whole.
/// A cancelled wait (a time-out, say) leaves the round, as in asyncio, and does not break
/// the barrier; use [`wait_timeout`](Barrier::wait_timeout) to break it on a time-out, as
/// Python's `threading.Barrier` does.
///
/// ```
/// use braid_async::{Barrier, gather};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let start = Barrier::new(3);
/// let mut indices: Vec<usize> = gather((0..3).map(|_| start.wait()))
///     .await
///     .into_iter()
///     .collect::<Result<_, _>>()
///     .unwrap();
/// indices.sort();
/// assert_eq!(indices, [0, 1, 2]);
/// # }
/// ```
pub struct Barrier {
    state: Mutex<State>,
    changed: Notify,
    parties: usize,
}

struct State {
    /// The round being filled.
    round: Arc<Round>,
    /// Tasks waiting in that round.
    arrived: usize,
    broken: bool,
}

const FILLING: u8 = 0;
const PASSED: u8 = 1;
const BROKEN: u8 = 2;

/// How one round ended; waiters of the round keep it, so a later round does not confuse
/// them.
struct Round {
    outcome: AtomicU8,
}

impl Round {
    fn new() -> Arc<Round> {
        Arc::new(Round {
            outcome: AtomicU8::new(FILLING),
        })
    }
}

impl State {
    /// Ends the round being filled with `outcome` and starts an empty one.
    fn end_round(&mut self, outcome: u8) {
        self.round.outcome.store(outcome, Ordering::Release);
        self.round = Round::new();
        self.arrived = 0;
    }
}

/// A wait in progress: leaves the round if dropped before the round ends.
struct Arrival<'a> {
    barrier: &'a Barrier,
    round: Arc<Round>,
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        let mut state = self.barrier.state.lock();
        if Arc::ptr_eq(&state.round, &self.round) {
            state.arrived -= 1;
        }
    }
}

impl Barrier {
    /// A barrier for `parties` tasks.
    ///
    /// # Panics
    /// When `parties` is 0 (Python raises `ValueError`): no round could ever pass.
    pub fn new(parties: usize) -> Self {
        assert!(parties >= 1, "a Barrier needs at least one party, got 0");
        Barrier {
            state: Mutex::new(State {
                round: Round::new(),
                arrived: 0,
                broken: false,
            }),
            changed: Notify::new(),
            parties,
        }
    }

    /// Waits until `parties` tasks are waiting; returns this task's arrival index.
    ///
    /// # Errors
    /// [`Error::BrokenBarrier`] when the barrier is or becomes broken, or is reset while
    /// this task waits.
    ///
    /// # Cancel safety
    /// Cancelling a wait before its round passes takes the task out of the round (the
    /// others wait on for a full count); the barrier is not broken. Indices of that round
    /// may then repeat, as in asyncio.
    pub async fn wait(&self) -> Result<usize, Error> {
        let (index, arrival) = {
            let mut state = self.state.lock();
            if state.broken {
                return Err(Error::BrokenBarrier);
            }
            let index = state.arrived;
            state.arrived += 1;
            if state.arrived == self.parties {
                state.end_round(PASSED);
                drop(state);
                self.changed.notify_waiters();
                return Ok(index);
            }
            (
                index,
                Arrival {
                    barrier: self,
                    round: state.round.clone(),
                },
            )
        };
        loop {
            let notified = self.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match arrival.round.outcome.load(Ordering::Acquire) {
                PASSED => return Ok(index),
                BROKEN => return Err(Error::BrokenBarrier),
                _ => notified.await,
            }
        }
    }

    /// Like [`wait`](Barrier::wait), breaking the barrier if the round has not passed
    /// after `timeout` (as Python's `threading.Barrier.wait(timeout)`): every task of the
    /// round then gets [`Error::BrokenBarrier`].
    ///
    /// # Errors
    /// [`Error::Timeout`] for this task when time ran out; [`Error::BrokenBarrier`] as for
    /// `wait`.
    ///
    /// # Cancel safety
    /// As [`wait`](Barrier::wait).
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<usize, Error> {
        match crate::timeout(timeout, self.wait()).await {
            Ok(outcome) => outcome,
            Err(timed_out) => {
                self.abort();
                Err(timed_out)
            }
        }
    }

    /// Breaks the barrier: the tasks waiting now and every later wait get
    /// [`Error::BrokenBarrier`], until [`reset`](Barrier::reset).
    pub fn abort(&self) {
        let mut state = self.state.lock();
        state.broken = true;
        state.end_round(BROKEN);
        drop(state);
        self.changed.notify_waiters();
    }

    /// Makes the barrier empty and whole again; tasks waiting now get
    /// [`Error::BrokenBarrier`].
    pub fn reset(&self) {
        let mut state = self.state.lock();
        state.broken = false;
        if state.arrived > 0 {
            state.end_round(BROKEN);
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// How many tasks must wait for a round to pass.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// How many tasks wait in the current round; only a snapshot.
    pub fn n_waiting(&self) -> usize {
        self.state.lock().arrived
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.state.lock().broken
    }
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock();
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("n_waiting", &state.arrived)
            .field("broken", &state.broken)
            .finish()
    }
}
