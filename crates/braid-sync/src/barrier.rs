//! [`Barrier`]: a meeting point for a fixed number of threads, like Python's
//! `threading.Barrier`.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::Error;

type Action = Box<dyn Fn() + Send + Sync>;

/// A meeting point for `parties` threads, like Python's `threading.Barrier`: each
/// [`wait`](Barrier::wait) blocks until `parties` threads are waiting, then all go on
/// together.
///
/// The barrier is reusable: once a round passes, the next `parties` waits form the next
/// round. Each waiter of a round gets a distinct arrival index in `0..parties`. An
/// optional action runs once per round, on the last thread to arrive, before any is
/// released.
///
/// A barrier breaks when a wait times out, when [`abort`](Barrier::abort) is called, or
/// when the action panics: every thread waiting then, and every later wait, gets
/// [`Error::BrokenBarrier`] until [`reset`](Barrier::reset).
///
/// ```
/// use std::sync::Arc;
/// use braid_sync::{Barrier, spawn};
///
/// let start = Arc::new(Barrier::new(3));
/// let runners: Vec<_> = (0..2)
///     .map(|i| {
///         let start = start.clone();
///         spawn(format!("runner-{i}"), move || start.wait()).unwrap()
///     })
///     .collect();
/// let mine = start.wait().unwrap();
/// let mut indices = vec![mine];
/// for r in runners {
///     indices.push(r.join().unwrap().unwrap());
/// }
/// indices.sort();
/// assert_eq!(indices, [0, 1, 2]);
/// ```
pub struct Barrier {
    state: Mutex<State>,
    changed: Condvar,
    parties: usize,
    action: Option<Action>,
}

/// Where a round stands, as in CPython's `Barrier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Threads are arriving.
    Filling,
    /// The last thread runs the action (without the lock); the others keep waiting.
    Releasing,
    /// The round passed; its threads are leaving. New arrivals wait for them to go.
    Draining,
    /// `reset` was called with threads waiting; they leave with an error, then the
    /// barrier is empty again.
    Resetting,
    /// Broken until `reset`.
    Broken,
}

struct State {
    phase: Phase,
    /// Threads inside `wait` for the current round.
    count: usize,
}

/// How one thread's wait ended, before it leaves the barrier.
enum Outcome {
    Passed,
    Broken,
    ActionPanicked(Box<dyn std::any::Any + Send>),
}

impl Barrier {
    /// A barrier for `parties` threads.
    ///
    /// # Panics
    /// When `parties` is 0 (Python raises `ValueError`): no round could ever pass.
    pub fn new(parties: usize) -> Self {
        Self::build(parties, None)
    }

    /// A barrier for `parties` threads that runs `action` once per round, on the last
    /// thread to arrive, before the others are released. An action that panics breaks the
    /// barrier (the other waiters get [`Error::BrokenBarrier`]) and the panic goes on in
    /// the thread that ran it, as Python re-raises the action's exception.
    ///
    /// # Panics
    /// When `parties` is 0.
    pub fn with_action(parties: usize, action: impl Fn() + Send + Sync + 'static) -> Self {
        Self::build(parties, Some(Box::new(action)))
    }

    fn build(parties: usize, action: Option<Action>) -> Self {
        assert!(parties >= 1, "a Barrier needs at least one party, got 0");
        Barrier {
            state: Mutex::new(State {
                phase: Phase::Filling,
                count: 0,
            }),
            changed: Condvar::new(),
            parties,
            action,
        }
    }

    /// Waits until `parties` threads are waiting; returns this thread's arrival index.
    ///
    /// # Errors
    /// [`Error::BrokenBarrier`] when the barrier is or becomes broken, or is reset while
    /// this thread waits.
    pub fn wait(&self) -> Result<usize, Error> {
        self.wait_deadline(None)
    }

    /// Like [`wait`](Barrier::wait), giving up after `timeout`; giving up breaks the
    /// barrier, so every other waiter gets the error too.
    ///
    /// # Errors
    /// [`Error::BrokenBarrier`], also on timeout.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize, Error> {
        self.wait_deadline(crate::shim::deadline(timeout))
    }

    fn wait_deadline(&self, deadline: Option<Instant>) -> Result<usize, Error> {
        let mut state = self.state.lock();
        // Block while the previous round's threads are still leaving.
        while matches!(
            state.phase,
            Phase::Releasing | Phase::Draining | Phase::Resetting
        ) {
            self.changed.wait(&mut state);
        }
        if state.phase == Phase::Broken {
            return Err(Error::BrokenBarrier);
        }
        let index = state.count;
        state.count += 1;
        let outcome = if index + 1 == self.parties {
            self.release(&mut state)
        } else {
            self.wait_for_release(&mut state, deadline)
        };
        state.count -= 1;
        if state.count == 0 && matches!(state.phase, Phase::Draining | Phase::Resetting) {
            state.phase = Phase::Filling;
            self.changed.notify_all();
        }
        drop(state);
        match outcome {
            Outcome::Passed => Ok(index),
            Outcome::Broken => Err(Error::BrokenBarrier),
            Outcome::ActionPanicked(payload) => resume_unwind(payload),
        }
    }

    /// The last thread's part: run the action, then release the round.
    fn release(&self, state: &mut MutexGuard<'_, State>) -> Outcome {
        if let Some(action) = &self.action {
            state.phase = Phase::Releasing;
            let ran = MutexGuard::unlocked(state, || catch_unwind(AssertUnwindSafe(action)));
            if let Err(payload) = ran {
                self.break_locked(state);
                return Outcome::ActionPanicked(payload);
            }
            if state.phase != Phase::Releasing {
                // Aborted or reset while the action ran.
                return Outcome::Broken;
            }
        }
        state.phase = Phase::Draining;
        self.changed.notify_all();
        Outcome::Passed
    }

    fn wait_for_release(
        &self,
        state: &mut MutexGuard<'_, State>,
        deadline: Option<Instant>,
    ) -> Outcome {
        loop {
            match state.phase {
                Phase::Draining => return Outcome::Passed,
                Phase::Resetting | Phase::Broken => return Outcome::Broken,
                // The round is complete; its action is running: no timeout now.
                Phase::Releasing => self.changed.wait(state),
                Phase::Filling => match deadline {
                    None => self.changed.wait(state),
                    Some(deadline) => {
                        if Instant::now() >= deadline {
                            self.break_locked(state);
                            return Outcome::Broken;
                        }
                        // Timed out or not, the loop re-checks the phase first.
                        self.changed.wait_until(state, deadline);
                    }
                },
            }
        }
    }

    fn break_locked(&self, state: &mut State) {
        state.phase = Phase::Broken;
        self.changed.notify_all();
    }

    /// Breaks the barrier: every thread waiting now, and every later wait, gets
    /// [`Error::BrokenBarrier`] until [`reset`](Barrier::reset).
    pub fn abort(&self) {
        self.break_locked(&mut self.state.lock());
    }

    /// Puts the barrier back to empty and unbroken; threads waiting now get
    /// [`Error::BrokenBarrier`], and new waits wait for them to leave first.
    pub fn reset(&self) {
        let mut state = self.state.lock();
        if state.count > 0 {
            if state.phase != Phase::Draining {
                state.phase = Phase::Resetting;
            }
        } else {
            state.phase = Phase::Filling;
        }
        self.changed.notify_all();
    }

    /// How many threads the barrier releases together.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// How many threads are waiting in the current round; only a snapshot.
    pub fn n_waiting(&self) -> usize {
        let state = self.state.lock();
        if state.phase == Phase::Filling {
            state.count
        } else {
            0
        }
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.state.lock().phase == Phase::Broken
    }
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock();
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("phase", &state.phase)
            .field("count", &state.count)
            .finish_non_exhaustive()
    }
}
