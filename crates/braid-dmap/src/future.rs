//! [`Future`]: the handle of one submission, with retries of lost work and waits that
//! help instead of blocking a pool's worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use braid_core::{Codec, Executor, Handle, Job, Status, TaskCall};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::{Result, context};

type CoreResult<T> = std::result::Result<T, braid_core::Error>;
type Finisher = Box<dyn FnOnce(CoreResult<Vec<u8>>) + Send>;

/// The attempts at running one call: the current one's handle, and what to do with the
/// outcome.
pub(crate) struct Attempts {
    call: TaskCall,
    executor: Arc<dyn Executor>,
    current: Mutex<Option<Arc<Handle<Vec<u8>>>>>,
    /// Set while a waiting task takes the call over to run it itself.
    helped: AtomicBool,
    retries_left: AtomicU32,
    finisher: Mutex<Option<Finisher>>,
}

impl Attempts {
    fn launch(self: &Arc<Self>) {
        let (job, handle) = Job::new::<Vec<u8>>(self.call.clone());
        let handle = Arc::new(handle);
        *self.current.lock() = Some(handle.clone());
        if let Err(e) = self.executor.execute(job) {
            self.finish(Err(e));
            return;
        }
        let me = self.clone();
        handle.add_done_callback(move |outcome| me.on_done(outcome));
    }

    fn on_done(self: &Arc<Self>, outcome: &CoreResult<Vec<u8>>) {
        match outcome {
            Err(braid_core::Error::Cancelled) if self.helped.load(Ordering::SeqCst) => {}
            Err(braid_core::Error::WorkerLost(why)) if self.take_retry() => {
                tracing::warn!(task = self.call.name(), %why, "a worker was lost; running its task again");
                self.launch();
            }
            _ => self.finish(outcome.clone()),
        }
    }

    fn take_retry(&self) -> bool {
        self.retries_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn finish(&self, outcome: CoreResult<Vec<u8>>) {
        let finisher = self.finisher.lock().take();
        if let Some(finisher) = finisher {
            finisher(outcome);
        }
    }

    /// Runs the call on this thread if no worker has started it yet; true if it did.
    ///
    /// A task waiting on work it submitted to its own pool must not hold a worker idle
    /// while that work sits in the queue behind it: it takes the work back and runs it.
    fn help(&self) -> bool {
        let Some(handle) = self.current.lock().clone() else {
            return false;
        };
        if handle.status() != Status::Pending {
            return false;
        }
        self.helped.store(true, Ordering::SeqCst);
        if !handle.cancel() {
            self.helped.store(false, Ordering::SeqCst);
            return false;
        }
        let outcome = self
            .call
            .run()
            .and_then(|bytes| Codec::Binary.decode::<Vec<u8>>(&bytes));
        self.finish(outcome);
        true
    }

    fn current(&self) -> Option<Arc<Handle<Vec<u8>>>> {
        self.current.lock().clone()
    }
}

/// The handle of one submitted call, like SCOOP's (and `concurrent.futures`') `Future`.
///
/// Waiting never hangs on lost work: a call whose worker died runs again (up to the
/// Dmap's retry budget), then ends with [`braid_core::Error::WorkerLost`]. Waiting from
/// inside a task on work that no worker has started yet runs that work on the waiting
/// thread, so nested submissions cannot starve a pool.
pub struct Future<R> {
    handle: Handle<R>,
    attempts: Arc<Attempts>,
}

impl<R: Send + 'static> Future<R> {
    /// Submits `call` to `executor`; `decode` turns the envelope's payload into `R`.
    pub(crate) fn spawn(
        executor: Arc<dyn Executor>,
        call: TaskCall,
        retries: u32,
        decode: impl FnOnce(Vec<u8>) -> CoreResult<R> + Send + 'static,
    ) -> Future<R> {
        let (promise, handle) = braid_core::promise::<R>();
        let finisher: Finisher = Box::new(move |outcome| match outcome {
            Err(braid_core::Error::Cancelled) => promise.cancel(),
            other => promise.complete(other.and_then(decode)),
        });
        let attempts = Arc::new(Attempts {
            call,
            executor,
            current: Mutex::new(None),
            helped: AtomicBool::new(false),
            retries_left: AtomicU32::new(retries),
            finisher: Mutex::new(Some(finisher)),
        });
        attempts.launch();
        Future { handle, attempts }
    }
}

impl<R> Future<R> {
    /// Waits for the value and returns it, or the call's error: the task's own
    /// ([`braid_core::Error::Task`]), a decode error, [`braid_core::Error::Cancelled`],
    /// or [`braid_core::Error::WorkerLost`] once retries are spent.
    ///
    /// # Errors
    /// As above, wrapped in [`Error::Core`](crate::Error::Core).
    pub fn result(self) -> Result<R> {
        self.wait();
        Ok(self.handle.result()?)
    }

    /// Blocks until the call is done (helping, inside a task; see [`Future`]).
    pub fn wait(&self) {
        if context::in_task() && !self.handle.is_done() {
            self.attempts.help();
        }
        self.handle.wait();
    }

    /// Waits at most `timeout`; returns whether the call is done.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if context::in_task() && !self.handle.is_done() {
            self.attempts.help();
        }
        self.handle.wait_timeout(timeout)
    }

    /// Whether the call has finished (with a value or an error) or was cancelled.
    pub fn done(&self) -> bool {
        self.handle.is_done()
    }

    /// Whether a worker is running the call now.
    pub fn running(&self) -> bool {
        !self.handle.is_done() && self.attempts.current().is_some_and(|h| h.is_running())
    }

    /// Whether the call was cancelled.
    pub fn cancelled(&self) -> bool {
        self.handle.is_cancelled()
    }

    /// Cancels the call if no worker has started it; returns whether it is cancelled.
    pub fn cancel(&self) -> bool {
        match self.attempts.current() {
            Some(current) if current.cancel() => {
                self.handle.wait();
                self.handle.is_cancelled()
            }
            _ => self.handle.is_cancelled(),
        }
    }

    /// Runs `callback` with the outcome when the call finishes, on the thread that
    /// finishes it (or here, when it is done already).
    pub fn add_done_callback(
        &self,
        callback: impl FnOnce(&std::result::Result<R, braid_core::Error>) + Send + 'static,
    ) {
        self.handle.add_done_callback(callback);
    }

    /// The plain braid-core [`Handle`], for [`braid_core::wait`] and
    /// [`braid_core::as_completed`] (its waits do not help; see [`Future`]).
    pub fn into_handle(self) -> Handle<R> {
        self.handle
    }

    pub(crate) fn handle_ref(&self) -> &Handle<R> {
        &self.handle
    }

    /// Helps with the call if nobody has started it; true if it ran here.
    pub(crate) fn help(&self) -> bool {
        !self.handle.is_done() && self.attempts.help()
    }
}

impl<R> std::fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Future")
            .field("task", &self.attempts.call.name())
            .field("status", &self.handle.status())
            .finish()
    }
}

/// Yields futures as they finish, like SCOOP's `futures.as_completed`.
///
/// Inside a task, while none has finished, it runs one that no worker has started yet,
/// as [`Future::wait`] does.
pub struct AsCompleted<R> {
    slots: Vec<Option<Future<R>>>,
    done: Receiver<usize>,
    remaining: usize,
}

/// Yields each future as it finishes (or is cancelled), blocking as needed.
pub fn as_completed<R>(futures: impl IntoIterator<Item = Future<R>>) -> AsCompleted<R> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let slots: Vec<Option<Future<R>>> = futures.into_iter().map(Some).collect();
    for (index, future) in slots.iter().enumerate() {
        if let Some(future) = future {
            notify_when_done(&future.handle, &tx, index);
        }
    }
    AsCompleted {
        remaining: slots.len(),
        slots,
        done: rx,
    }
}

pub(crate) fn notify_when_done<R>(handle: &Handle<R>, tx: &Sender<usize>, index: usize) {
    let tx = tx.clone();
    handle.add_done_callback(move |_| {
        if tx.send(index).is_err() {
            // The iterator was dropped: nobody is waiting for this index.
            tracing::trace!(
                index,
                "a future finished after its as_completed was dropped"
            );
        }
    });
}

/// Waits for the next index on `done`, helping one of `pending` at a time inside a task.
pub(crate) fn next_done<'a, R: 'a>(
    done: &Receiver<usize>,
    pending: impl Fn() -> Vec<&'a Future<R>>,
) -> Option<usize> {
    loop {
        if let Ok(index) = done.try_recv() {
            return Some(index);
        }
        if context::in_task() && pending().iter().any(|f| f.help()) {
            continue;
        }
        return done.recv().ok();
    }
}

impl<R> Iterator for AsCompleted<R> {
    type Item = Future<R>;

    fn next(&mut self) -> Option<Future<R>> {
        if self.remaining == 0 {
            return None;
        }
        let slots = &self.slots;
        let index = next_done(&self.done, || slots.iter().flatten().collect())?;
        self.remaining -= 1;
        self.slots[index].take()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use braid_core::Job;

    use super::*;
    use crate::context::Ctx;
    use crate::store::Locator;
    use crate::{Dmap, Error};

    #[braid_core::task(name = "dmap.unit.square")]
    fn square(x: u64) -> u64 {
        x * x
    }

    /// Holds every job without running it, like a pool whose workers are all busy.
    #[derive(Default)]
    struct Busy(Arc<Mutex<Vec<Job>>>);

    impl Executor for Busy {
        fn execute(&self, job: Job) -> CoreResult<()> {
            self.0.lock().push(job);
            Ok(())
        }
        fn shutdown(&self, _wait: bool, _cancel_pending: bool) {}
        fn parallelism(&self) -> usize {
            1
        }
    }

    /// Loses (drops) the first `lose` jobs, as a dying worker does, then runs jobs here.
    struct Lossy {
        lose: usize,
        seen: Arc<AtomicUsize>,
    }

    impl Executor for Lossy {
        fn execute(&self, job: Job) -> CoreResult<()> {
            if self.seen.fetch_add(1, Ordering::SeqCst) < self.lose {
                drop(job);
            } else {
                job.run_here();
            }
            Ok(())
        }
        fn shutdown(&self, _wait: bool, _cancel_pending: bool) {}
        fn parallelism(&self) -> usize {
            1
        }
    }

    fn in_a_task<T>(f: impl FnOnce() -> T) -> T {
        let ctx = Ctx {
            dmap: 0,
            pid: 0,
            store: Locator::Dir("/nonexistent".into()),
        };
        context::enter(ctx, f)
    }

    #[test]
    fn a_waiting_task_runs_unstarted_work_itself_and_it_runs_once() {
        let held = Arc::new(Mutex::new(Vec::new()));
        let dmap = Dmap::new(Busy(held.clone())).unwrap();
        let future = dmap.submit(square::task(), (7,)).unwrap();
        assert_eq!(in_a_task(|| future.result()).unwrap(), 49);
        let jobs = std::mem::take(&mut *held.lock());
        assert_eq!(jobs.len(), 1);
        for job in jobs {
            assert!(
                !job.start(),
                "the pool must skip work a waiting task took over"
            );
        }
    }

    #[test]
    fn outside_a_task_a_wait_does_not_take_work_over() {
        let held = Arc::new(Mutex::new(Vec::new()));
        let dmap = Dmap::new(Busy(held.clone())).unwrap();
        let future = dmap.submit(square::task(), (3,)).unwrap();
        assert!(!future.wait_timeout(Duration::from_millis(10)));
        for job in std::mem::take(&mut *held.lock()) {
            job.run_here();
        }
        assert_eq!(future.result().unwrap(), 9);
    }

    #[test]
    fn lost_work_runs_again_until_the_retries_are_spent() {
        let seen = Arc::new(AtomicUsize::new(0));
        let dmap = Dmap::builder(Lossy {
            lose: 2,
            seen: seen.clone(),
        })
        .max_retries(2)
        .build()
        .unwrap();
        assert_eq!(dmap.submit(square::task(), (5,)).unwrap().result(), Ok(25));
        assert_eq!(seen.load(Ordering::SeqCst), 3);

        let seen = Arc::new(AtomicUsize::new(0));
        let dmap = Dmap::builder(Lossy {
            lose: 10,
            seen: seen.clone(),
        })
        .max_retries(2)
        .build()
        .unwrap();
        let outcome = dmap.submit(square::task(), (5,)).unwrap().result();
        assert!(
            matches!(outcome, Err(Error::Core(braid_core::Error::WorkerLost(_)))),
            "{outcome:?}"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 3, "one try and two retries");
    }

    #[test]
    fn cancel_before_start() {
        let held = Arc::new(Mutex::new(Vec::new()));
        let dmap = Dmap::new(Busy(held.clone())).unwrap();
        let future = dmap.submit(square::task(), (2,)).unwrap();
        assert!(future.cancel());
        assert!(future.cancelled());
        assert_eq!(
            future.result(),
            Err(Error::Core(braid_core::Error::Cancelled))
        );
    }
}
