//! A pool of threads that grows on demand up to a limit and lets idle threads go.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Threads that run jobs; a job goes to an idle thread, else to a new one while fewer than
/// `max` are alive. Threads idle for `keep_alive` end. A job that panics is logged and its
/// thread goes on.
pub(crate) struct Pool {
    handoff: Sender<Job>,
    waiting: Receiver<Job>,
    /// Jobs queued by [`Pool::execute_or_queue`] while every thread is busy.
    backlog: (Sender<Job>, Receiver<Job>),
    alive: Arc<AtomicUsize>,
    max: usize,
    keep_alive: Duration,
    name: String,
}

/// Gives a pool thread's place back when the thread ends, however it ends.
struct AliveGuard(Arc<AtomicUsize>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn run(job: Job, name: &str) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(job)) {
        let message = payload
            .downcast_ref::<&'static str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-string payload".to_string());
        tracing::error!("a job on a {name} thread panicked: {message}");
    }
}

impl Pool {
    pub fn new(name: impl Into<String>, max: usize, keep_alive: Duration) -> Pool {
        // A rendezvous channel: a send succeeds only when a thread is waiting for work.
        let (handoff, waiting) = crossbeam_channel::bounded(0);
        Pool {
            handoff,
            waiting,
            backlog: crossbeam_channel::unbounded(),
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
        self.spawn(Some(job))
    }

    /// Runs `job` on a pool thread, or queues it for the first thread that is free when
    /// every thread is busy and the pool is at its limit: the number of threads stays
    /// bounded however many jobs come.
    pub fn execute_or_queue(&self, job: Job) {
        let Err(job) = self.execute(job) else {
            return;
        };
        // The backlog's receiver lives as long as the pool, so this cannot fail.
        if let Err(e) = self.backlog.0.send(job) {
            tracing::error!("the {} backlog is closed; running a job here", self.name);
            (e.into_inner())();
            return;
        }
        // A thread that was ending as the job was queued looks at the backlog after it
        // gives its place back (see `spawn`), and a place given back here starts a thread:
        // either way someone takes the job.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.alive.load(Ordering::SeqCst) < self.max {
            // With no first job there is nothing to give back; a thread that cannot be
            // started is logged, and the job waits for the next thread.
            self.spawn(None).unwrap_or_else(drop);
        }
    }

    /// Starts a thread that runs `first` (if any), then jobs handed off or queued.
    fn spawn(&self, first: Option<Job>) -> Result<(), Job> {
        let mut alive = self.alive.load(Ordering::SeqCst);
        loop {
            if alive >= self.max {
                return match first {
                    Some(job) => Err(job),
                    None => Ok(()),
                };
            }
            match self.alive.compare_exchange_weak(
                alive,
                alive + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(now) => alive = now,
            }
        }
        let waiting = self.waiting.clone();
        let backlog = self.backlog.1.clone();
        let counter = self.alive.clone();
        let keep_alive = self.keep_alive;
        let max = self.max;
        let name = self.name.clone();
        let (first_tx, first_rx) = crossbeam_channel::bounded::<Job>(1);
        let spawned = std::thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || {
                let mut guard = Some(AliveGuard(counter.clone()));
                if let Ok(job) = first_rx.recv() {
                    run(job, &name);
                }
                loop {
                    if let Ok(job) = backlog.try_recv() {
                        run(job, &name);
                        continue;
                    }
                    crossbeam_channel::select! {
                        recv(waiting) -> job => match job {
                            Ok(job) => run(job, &name),
                            // The pool is gone.
                            Err(_) => break,
                        },
                        recv(backlog) -> job => match job {
                            Ok(job) => run(job, &name),
                            Err(_) => break,
                        },
                        default(keep_alive) => {
                            // Give the place back, then look at the backlog once more: a
                            // job queued while this thread still counted as alive would
                            // otherwise wait for the next one.
                            drop(guard.take());
                            std::sync::atomic::fence(Ordering::SeqCst);
                            if backlog.is_empty() {
                                break;
                            }
                            let now = counter.load(Ordering::SeqCst);
                            if now >= max
                                || counter
                                    .compare_exchange(now, now + 1, Ordering::SeqCst, Ordering::SeqCst)
                                    .is_err()
                            {
                                break;
                            }
                            guard = Some(AliveGuard(counter.clone()));
                        }
                    }
                }
            });
        match spawned {
            Ok(_) => match first {
                Some(job) => match first_tx.send(job) {
                    Ok(()) => Ok(()),
                    Err(e) => Err(e.into_inner()),
                },
                None => Ok(()),
            },
            Err(e) => {
                tracing::warn!("cannot start a {} thread: {e}", self.name);
                self.alive.fetch_sub(1, Ordering::SeqCst);
                match first {
                    Some(job) => Err(job),
                    None => Ok(()),
                }
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

    const PATIENCE: Duration = Duration::from_secs(30);

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

    #[test]
    fn a_thread_that_ends_in_a_panic_gives_its_place_back() {
        let alive = Arc::new(AtomicUsize::new(1));
        let guarded = alive.clone();
        let outcome = std::thread::spawn(move || {
            let _guard = AliveGuard(guarded);
            panic!("a job escaped");
        })
        .join();
        assert!(outcome.is_err());
        assert_eq!(alive.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_panicking_job_leaves_its_thread_serving() {
        let pool = Pool::new("test", 1, Duration::from_secs(30));
        let (tx, rx) = crossbeam_channel::unbounded();
        let done = tx.clone();
        pool.execute_or_queue(Box::new(move || {
            done.send(()).expect("the test is listening");
            panic!("a job that panics");
        }));
        pool.execute_or_queue(Box::new(move || {
            tx.send(()).expect("the test is listening");
        }));
        rx.recv_timeout(PATIENCE).expect("the first job ran");
        rx.recv_timeout(PATIENCE)
            .expect("the queued job ran after the panic");
        assert_eq!(pool.alive(), 1);
    }

    #[test]
    fn a_full_pool_queues_jobs_without_more_threads() {
        let pool = Pool::new("test", 2, Duration::from_secs(30));
        let gate = Arc::new(Barrier::new(3));
        for _ in 0..2 {
            let gate = gate.clone();
            pool.execute_or_queue(Box::new(move || {
                gate.wait();
            }));
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        for i in 0..10 {
            let tx = tx.clone();
            pool.execute_or_queue(Box::new(move || tx.send(i).expect("the test is listening")));
        }
        assert_eq!(pool.alive(), 2, "queued, not given threads of their own");
        assert!(rx.is_empty(), "every thread is held at the gate");
        gate.wait();
        let mut got: Vec<i32> = (0..10)
            .map(|_| rx.recv_timeout(PATIENCE).unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert!(pool.alive() <= 2);
    }
}
