//! A pool of threads that grows on demand up to a limit and lets idle threads go.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Threads that run jobs; a job goes to an idle thread, else to a new one while fewer than
/// `max` are alive. Threads idle for `keep_alive` end.
pub(crate) struct Pool {
    handoff: Sender<Job>,
    waiting: Receiver<Job>,
    alive: Arc<AtomicUsize>,
    max: usize,
    keep_alive: Duration,
    name: String,
}

impl Pool {
    pub fn new(name: impl Into<String>, max: usize, keep_alive: Duration) -> Pool {
        // A rendezvous channel: a send succeeds only when a thread is waiting for work.
        let (handoff, waiting) = crossbeam_channel::bounded(0);
        Pool {
            handoff,
            waiting,
            alive: Arc::new(AtomicUsize::new(0)),
            max: max.max(1),
            keep_alive,
            name: name.into(),
        }
    }

    /// Runs `job` on a pool thread; gives the job back when every thread is busy and the
    /// pool is at its limit (or a thread cannot be started).
    pub fn execute(&self, job: Job) -> Result<(), Job> {
        let job = match self.handoff.try_send(job) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => job,
        };
        let mut alive = self.alive.load(Ordering::Acquire);
        loop {
            if alive >= self.max {
                return Err(job);
            }
            match self.alive.compare_exchange_weak(
                alive,
                alive + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => alive = now,
            }
        }
        let waiting = self.waiting.clone();
        let counter = self.alive.clone();
        let keep_alive = self.keep_alive;
        let (first_tx, first_rx) = crossbeam_channel::bounded::<Job>(1);
        let spawned = std::thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || {
                if let Ok(job) = first_rx.recv() {
                    job();
                }
                // Ends after `keep_alive` without work, or when the pool is dropped.
                while let Ok(job) = waiting.recv_timeout(keep_alive) {
                    job();
                }
                counter.fetch_sub(1, Ordering::AcqRel);
            });
        match spawned {
            Ok(_) => match first_tx.send(job) {
                Ok(()) => Ok(()),
                Err(e) => Err(e.into_inner()),
            },
            Err(e) => {
                tracing::warn!("cannot start a {} thread: {e}", self.name);
                self.alive.fetch_sub(1, Ordering::AcqRel);
                Err(job)
            }
        }
    }

    /// Threads alive now (busy or idle).
    #[cfg(test)]
    pub fn alive(&self) -> usize {
        self.alive.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn grows_to_its_limit_then_gives_jobs_back() {
        let pool = Pool::new("test", 2, Duration::from_secs(30));
        let gate = Arc::new(Barrier::new(3));
        for _ in 0..2 {
            let gate = gate.clone();
            assert!(
                pool.execute(Box::new(move || {
                    gate.wait();
                }))
                .is_ok()
            );
        }
        assert_eq!(pool.alive(), 2);
        assert!(pool.execute(Box::new(|| {})).is_err());
        gate.wait();
    }

    #[test]
    fn idle_threads_take_new_jobs() {
        let pool = Pool::new("test", 4, Duration::from_secs(30));
        let (tx, rx) = crossbeam_channel::unbounded();
        for i in 0..20 {
            let tx = tx.clone();
            let job: Job = Box::new(move || tx.send(i).expect("the test is listening"));
            if let Err(job) = pool.execute(job) {
                job();
            }
        }
        let mut got: Vec<i32> = (0..20).map(|_| rx.recv().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
        assert!(pool.alive() <= 4);
    }
}
