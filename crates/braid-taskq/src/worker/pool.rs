//! The thread pool that runs synchronous tasks. A thread whose task runs past its hard
//! time limit (or is terminated) is retired and replaced, so the pool keeps its size.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    static RETIRED: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// The runner and the supervisor of one job race to finish it; the first wins.
#[derive(Debug, Default)]
pub(crate) struct Claim {
    /// 0: queued, 1: running, 2: finished (by whoever won).
    state: AtomicU8,
    thread: Mutex<Option<Arc<AtomicBool>>>,
}

impl Claim {
    /// The runner starts the job; false when it was finished before it started.
    pub(crate) fn start(&self) -> bool {
        // The thread is recorded before the job counts as running, so whoever abandons
        // a running job always finds the thread to retire.
        let mut thread = self.thread.lock();
        *thread = RETIRED.with(|r| r.borrow().clone());
        self.state
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Finishes a running job; true for the winner.
    pub(crate) fn finish(&self) -> bool {
        self.state
            .compare_exchange(1, 2, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Finishes a job that has not started; true for the winner.
    pub(crate) fn cancel_queued(&self) -> bool {
        self.state
            .compare_exchange(0, 2, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Takes a running job away from its thread, which is retired; true for the winner.
    pub(crate) fn abandon(&self) -> bool {
        if !self.finish() {
            return false;
        }
        if let Some(flag) = self.thread.lock().take() {
            flag.store(true, Ordering::Release);
        }
        true
    }
}

/// A fixed number of threads taking jobs from one channel.
pub(crate) struct Pool {
    tx: Mutex<Option<Sender<Job>>>,
    rx: Receiver<Job>,
    name: String,
    spawned: AtomicUsize,
    threads: Mutex<Vec<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>>,
}

impl Pool {
    /// Starts `size` threads named `name-N`.
    pub(crate) fn new(size: usize, name: &str) -> std::io::Result<Arc<Pool>> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let pool = Arc::new(Pool {
            tx: Mutex::new(Some(tx)),
            rx,
            name: name.to_string(),
            spawned: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
        });
        for _ in 0..size.max(1) {
            pool.spawn_thread()?;
        }
        Ok(pool)
    }

    fn spawn_thread(&self) -> std::io::Result<()> {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let rx = self.rx.clone();
        let retired = Arc::new(AtomicBool::new(false));
        let flag = retired.clone();
        let handle = std::thread::Builder::new()
            .name(format!("{}-{n}", self.name))
            .spawn(move || {
                RETIRED.with(|r| *r.borrow_mut() = Some(flag.clone()));
                while let Ok(job) = rx.recv() {
                    job();
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                }
            })?;
        self.threads.lock().push((retired, handle));
        Ok(())
    }

    /// Queues a job; false when the pool is closed.
    pub(crate) fn submit(&self, job: impl FnOnce() + Send + 'static) -> bool {
        match &*self.tx.lock() {
            Some(tx) => tx.send(Box::new(job)).is_ok(),
            None => false,
        }
    }

    /// Starts `n` more threads (remote `pool_grow`).
    pub(crate) fn grow(&self, n: usize) -> std::io::Result<()> {
        for _ in 0..n {
            self.spawn_thread()?;
        }
        Ok(())
    }

    /// Retires `n` threads as they become free (remote `pool_shrink`): each takes one
    /// retirement job after the tasks queued before it, and ends.
    pub(crate) fn shrink(&self, n: usize) {
        for _ in 0..n {
            let queued = self.submit(|| {
                RETIRED.with(|r| {
                    if let Some(flag) = &*r.borrow() {
                        flag.store(true, Ordering::Release);
                    }
                });
            });
            if !queued {
                return;
            }
        }
    }

    /// Starts a thread in place of one retired by [`Claim::abandon`].
    pub(crate) fn replace_retired(&self) {
        if let Err(e) = self.spawn_thread() {
            tracing::error!(error = %e, "cannot start a thread to replace a retired one");
        }
    }

    /// Closes the pool and joins its threads, except retired ones still running a task
    /// that was given up on (they end with the process, or when their task returns).
    pub(crate) fn close(&self) {
        self.tx.lock().take();
        let threads = std::mem::take(&mut *self.threads.lock());
        for (retired, handle) in threads {
            if retired.load(Ordering::Acquire) {
                continue;
            }
            if handle.join().is_err() {
                tracing::error!("a pool thread panicked outside a task");
            }
        }
    }
}
