//! Handles to work running elsewhere, like Python's `concurrent.futures.Future`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::Error;

/// Where a piece of submitted work stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Submitted, not started; it can still be cancelled.
    Pending,
    /// A worker is running it.
    Running,
    /// It finished with a value or an error.
    Finished,
    /// It was cancelled before it started.
    Cancelled,
}

type Callback<T> = Box<dyn FnOnce(&Result<T, Error>) + Send>;

struct Inner<T> {
    status: Status,
    outcome: Option<Result<T, Error>>,
    failed: bool,
    callbacks: Vec<Callback<T>>,
    watchers: Vec<(Arc<Watcher>, usize)>,
}

struct Shared<T> {
    inner: Mutex<Inner<T>>,
    done: Condvar,
}

impl<T> Shared<T> {
    /// Records the outcome, runs callbacks and wakes every waiter; the caller holds the lock.
    fn finish(&self, inner: &mut Inner<T>, status: Status, outcome: Result<T, Error>) {
        inner.status = status;
        inner.failed = outcome.is_err();
        for callback in inner.callbacks.drain(..) {
            callback(&outcome);
        }
        inner.outcome = Some(outcome);
        for (watcher, index) in inner.watchers.drain(..) {
            watcher.ready(index);
        }
        self.done.notify_all();
    }
}

/// The caller's side of submitted work: wait for it, cancel it, take its result.
///
/// Like Python's `Future`, a handle never hangs on lost work: when the worker side is
/// dropped without an outcome (a worker died, a pool was torn down) the handle finishes
/// with [`Error::WorkerLost`].
pub struct Handle<T> {
    shared: Arc<Shared<T>>,
}

/// The worker's side of submitted work: mark it started, then complete it once.
///
/// Dropping a promise that was never completed finishes its handle with
/// [`Error::WorkerLost`], so no waiter is left behind.
pub struct Promise<T> {
    shared: Option<Arc<Shared<T>>>,
}

/// Creates a connected handle and promise.
pub fn promise<T>() -> (Promise<T>, Handle<T>) {
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            status: Status::Pending,
            outcome: None,
            failed: false,
            callbacks: Vec::new(),
            watchers: Vec::new(),
        }),
        done: Condvar::new(),
    });
    (
        Promise {
            shared: Some(shared.clone()),
        },
        Handle { shared },
    )
}

impl<T> Promise<T> {
    /// Marks the work as running. Returns false when it was cancelled first: the worker
    /// must then skip it (the handle already holds [`Error::Cancelled`]).
    pub fn start(&self) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let mut inner = shared.inner.lock();
        match inner.status {
            Status::Pending => {
                inner.status = Status::Running;
                true
            }
            Status::Running => true,
            Status::Finished | Status::Cancelled => false,
        }
    }

    /// Whether the caller cancelled the work.
    pub fn is_cancelled(&self) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|s| s.inner.lock().status == Status::Cancelled)
    }

    /// Cancels work that has not started, from the worker's side (a pool shutting down with
    /// `cancel_pending`): the handle ends [`Status::Cancelled`] with [`Error::Cancelled`].
    /// Work already running or finished is left as it is, and its handle will get the
    /// outcome this promise would have given, or [`Error::WorkerLost`] once it is dropped.
    pub fn cancel(mut self) {
        if let Some(shared) = self.shared.take() {
            let mut inner = shared.inner.lock();
            match inner.status {
                Status::Pending => {
                    shared.finish(&mut inner, Status::Cancelled, Err(Error::Cancelled))
                }
                Status::Running => {
                    shared.finish(&mut inner, Status::Finished, Err(Error::Cancelled))
                }
                Status::Finished | Status::Cancelled => {}
            }
        }
    }

    /// Completes the work with its outcome. Done-callbacks run on this thread.
    /// A promise whose work was cancelled ignores the outcome.
    pub fn complete(mut self, outcome: Result<T, Error>) {
        if let Some(shared) = self.shared.take() {
            let mut inner = shared.inner.lock();
            if matches!(inner.status, Status::Pending | Status::Running) {
                shared.finish(&mut inner, Status::Finished, outcome);
            }
        }
    }
}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let mut inner = shared.inner.lock();
            if matches!(inner.status, Status::Pending | Status::Running) {
                shared.finish(
                    &mut inner,
                    Status::Finished,
                    Err(Error::WorkerLost(
                        "the work was dropped without a result".to_string(),
                    )),
                );
            }
        }
    }
}

impl<T> std::fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Promise").finish_non_exhaustive()
    }
}

impl<T> Handle<T> {
    /// A handle that is already finished with `outcome`.
    pub fn ready(outcome: Result<T, Error>) -> Self {
        let (promise, handle) = promise();
        promise.complete(outcome);
        handle
    }

    /// Where the work stands now.
    pub fn status(&self) -> Status {
        self.shared.inner.lock().status
    }

    /// Whether the work has finished or was cancelled.
    pub fn is_done(&self) -> bool {
        matches!(self.status(), Status::Finished | Status::Cancelled)
    }

    /// Whether a worker is running the work now.
    pub fn is_running(&self) -> bool {
        self.status() == Status::Running
    }

    /// Whether the work was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.status() == Status::Cancelled
    }

    /// Whether the work finished with an error (including cancellation).
    pub fn is_failed(&self) -> bool {
        let inner = self.shared.inner.lock();
        inner.outcome.is_some() && inner.failed
    }

    /// Cancels the work if it has not started. Returns true when the work is cancelled
    /// (now or before), false when it is running or finished.
    pub fn cancel(&self) -> bool {
        let mut inner = self.shared.inner.lock();
        match inner.status {
            Status::Pending => {
                self.shared
                    .finish(&mut inner, Status::Cancelled, Err(Error::Cancelled));
                true
            }
            Status::Cancelled => true,
            Status::Running | Status::Finished => false,
        }
    }

    /// Blocks until the work is done.
    pub fn wait(&self) {
        let mut inner = self.shared.inner.lock();
        while inner.outcome.is_none() {
            self.shared.done.wait(&mut inner);
        }
    }

    /// Blocks until the work is done or `timeout` passes; returns whether it is done.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut inner = self.shared.inner.lock();
        while inner.outcome.is_none() {
            match deadline {
                Some(deadline) => {
                    if self
                        .shared
                        .done
                        .wait_until(&mut inner, deadline)
                        .timed_out()
                    {
                        return inner.outcome.is_some();
                    }
                }
                None => self.shared.done.wait(&mut inner),
            }
        }
        true
    }

    /// Waits for the work and returns its value, or its error: the task's own
    /// ([`Error::Task`]), [`Error::Cancelled`], or [`Error::WorkerLost`].
    ///
    /// # Errors
    /// As above.
    pub fn result(self) -> Result<T, Error> {
        self.wait();
        self.take()
    }

    /// Waits at most `timeout` for the value. On timeout the handle is given back inside
    /// `Err`, so the work is not lost and can be waited for again.
    ///
    /// # Errors
    /// `Err(Ok(handle))` on timeout; `Err(Err(error))` when the work failed.
    pub fn result_timeout(self, timeout: Duration) -> Result<T, Result<Self, Error>> {
        if self.wait_timeout(timeout) {
            self.take().map_err(Err)
        } else {
            Err(Ok(self))
        }
    }

    fn take(self) -> Result<T, Error> {
        self.shared
            .inner
            .lock()
            .outcome
            .take()
            .unwrap_or_else(|| Err(Error::WorkerLost("result already taken".to_string())))
    }

    /// Runs `callback` with the outcome when the work finishes or is cancelled: on the
    /// thread that finishes it, or right here when it is done already.
    pub fn add_done_callback(&self, callback: impl FnOnce(&Result<T, Error>) + Send + 'static) {
        let mut inner = self.shared.inner.lock();
        match &inner.outcome {
            Some(outcome) => callback(outcome),
            None => inner.callbacks.push(Box::new(callback)),
        }
    }

    fn watch(&self, watcher: &Arc<Watcher>, index: usize) {
        let mut inner = self.shared.inner.lock();
        if inner.outcome.is_some() {
            watcher.ready(index);
        } else {
            inner.watchers.push((watcher.clone(), index));
        }
    }
}

impl<T> std::fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("status", &self.status())
            .finish()
    }
}

/// Collects the indices of handles as they finish.
struct Watcher {
    ready: Mutex<VecDeque<usize>>,
    wake: Condvar,
}

impl Watcher {
    fn new() -> Arc<Self> {
        Arc::new(Watcher {
            ready: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
        })
    }

    fn ready(&self, index: usize) {
        self.ready.lock().push_back(index);
        self.wake.notify_all();
    }

    /// The next finished index, waiting until `deadline`; `None` on timeout.
    fn next(&self, deadline: Option<Instant>) -> Option<usize> {
        let mut ready = self.ready.lock();
        loop {
            if let Some(index) = ready.pop_front() {
                return Some(index);
            }
            match deadline {
                Some(deadline) => {
                    if self.wake.wait_until(&mut ready, deadline).timed_out() {
                        return ready.pop_front();
                    }
                }
                None => self.wake.wait(&mut ready),
            }
        }
    }
}

/// Yields handles in the order they finish, like Python's `as_completed`.
///
/// Created by [`as_completed`] and [`as_completed_timeout`]. With a timeout, the iterator
/// yields `Err(Error::Timeout)` once when time runs out and then stops; the handles not yet
/// yielded are returned by [`AsCompleted::into_pending`], so nothing is lost.
pub struct AsCompleted<T> {
    slots: Vec<Option<Handle<T>>>,
    watcher: Arc<Watcher>,
    remaining: usize,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    timed_out: bool,
}

/// Yields each handle as it finishes (or is cancelled), blocking as needed.
pub fn as_completed<T>(handles: impl IntoIterator<Item = Handle<T>>) -> AsCompleted<T> {
    build_as_completed(handles, None)
}

/// Like [`as_completed`], giving up after `timeout` in all.
pub fn as_completed_timeout<T>(
    handles: impl IntoIterator<Item = Handle<T>>,
    timeout: Duration,
) -> AsCompleted<T> {
    build_as_completed(handles, Some(timeout))
}

fn build_as_completed<T>(
    handles: impl IntoIterator<Item = Handle<T>>,
    timeout: Option<Duration>,
) -> AsCompleted<T> {
    let watcher = Watcher::new();
    let slots: Vec<Option<Handle<T>>> = handles.into_iter().map(Some).collect();
    for (index, handle) in slots.iter().enumerate() {
        if let Some(handle) = handle {
            handle.watch(&watcher, index);
        }
    }
    AsCompleted {
        remaining: slots.len(),
        slots,
        watcher,
        deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
        timeout,
        timed_out: false,
    }
}

impl<T> AsCompleted<T> {
    /// The handles not yet yielded.
    pub fn into_pending(self) -> Vec<Handle<T>> {
        self.slots.into_iter().flatten().collect()
    }
}

impl<T> Iterator for AsCompleted<T> {
    type Item = Result<Handle<T>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 || self.timed_out {
            return None;
        }
        match self.watcher.next(self.deadline) {
            Some(index) => {
                self.remaining -= 1;
                self.slots[index].take().map(Ok)
            }
            None => {
                self.timed_out = true;
                Some(Err(Error::Timeout(self.timeout.unwrap_or_default())))
            }
        }
    }
}

/// When [`wait`] returns, as in Python's `concurrent.futures.wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnWhen {
    /// As soon as any handle finishes or is cancelled.
    FirstCompleted,
    /// As soon as any handle fails, or when all have finished.
    FirstException,
    /// When all handles have finished.
    AllCompleted,
}

/// The two sets [`wait`] returns, each in submission order.
#[derive(Debug)]
pub struct Waited<T> {
    /// Handles that are done.
    pub done: Vec<Handle<T>>,
    /// Handles still pending or running.
    pub not_done: Vec<Handle<T>>,
}

/// Waits on many handles until `when` holds or `timeout` passes, then splits them into done
/// and not done, like Python's `concurrent.futures.wait`.
pub fn wait<T>(
    handles: impl IntoIterator<Item = Handle<T>>,
    timeout: Option<Duration>,
    when: ReturnWhen,
) -> Waited<T> {
    let handles: Vec<Handle<T>> = handles.into_iter().collect();
    let watcher = Watcher::new();
    for (index, handle) in handles.iter().enumerate() {
        handle.watch(&watcher, index);
    }
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut finished = 0;
    while finished < handles.len() {
        let Some(index) = watcher.next(deadline) else {
            break;
        };
        finished += 1;
        let stop = match when {
            ReturnWhen::FirstCompleted => true,
            ReturnWhen::FirstException => handles[index].is_failed(),
            ReturnWhen::AllCompleted => false,
        };
        if stop {
            break;
        }
    }
    let (done, not_done) = handles.into_iter().partition(Handle::is_done);
    Waited { done, not_done }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn complete_then_result() {
        let (p, h) = promise();
        assert_eq!(h.status(), Status::Pending);
        assert!(p.start());
        assert!(h.is_running());
        assert!(!h.cancel());
        p.complete(Ok(5));
        assert!(h.is_done());
        assert_eq!(h.result(), Ok(5));
    }

    #[test]
    fn cancel_before_start_wins() {
        let (p, h) = promise::<i32>();
        assert!(h.cancel());
        assert!(h.cancel(), "cancelling twice still reports cancelled");
        assert!(!p.start());
        assert!(p.is_cancelled());
        p.complete(Ok(1));
        assert_eq!(h.result(), Err(Error::Cancelled));
    }

    #[test]
    fn cancel_from_the_worker_side() {
        let (p, h) = promise::<i32>();
        p.cancel();
        assert!(h.is_cancelled());
        assert_eq!(h.result(), Err(Error::Cancelled));
    }

    #[test]
    fn dropped_promise_is_worker_lost_not_a_hang() {
        let (p, h) = promise::<i32>();
        std::thread::spawn(move || drop(p)).join().unwrap();
        assert!(matches!(h.result(), Err(Error::WorkerLost(_))));
    }

    #[test]
    fn result_timeout_returns_the_handle() {
        let (p, h) = promise::<i32>();
        let h = match h.result_timeout(Duration::from_millis(1)) {
            Err(Ok(h)) => h,
            other => panic!("expected a timeout, got {other:?}"),
        };
        p.complete(Ok(3));
        assert_eq!(h.result_timeout(Duration::from_secs(5)).ok(), Some(3));
    }

    #[test]
    fn callbacks_run_once_before_and_after_completion() {
        let count = Arc::new(AtomicUsize::new(0));
        let (p, h) = promise::<i32>();
        let c = count.clone();
        h.add_done_callback(move |r| {
            assert_eq!(r, &Ok(2));
            c.fetch_add(1, Ordering::SeqCst);
        });
        p.complete(Ok(2));
        let c = count.clone();
        h.add_done_callback(move |_| {
            c.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(count.load(Ordering::SeqCst), 11);
    }

    #[test]
    fn as_completed_yields_in_finish_order() {
        let (promises, handles): (Vec<_>, Vec<_>) = (0..3).map(|_| promise::<usize>()).unzip();
        let mut it = as_completed(handles);
        let mut promises: Vec<_> = promises.into_iter().map(Some).collect();
        for i in [2, 0, 1] {
            promises[i].take().unwrap().complete(Ok(i));
            assert_eq!(it.next().unwrap().unwrap().result(), Ok(i));
        }
        assert!(it.next().is_none());
    }

    #[test]
    fn as_completed_timeout_gives_back_pending() {
        let (p, h) = promise::<i32>();
        let (_p2, h2) = promise::<i32>();
        p.complete(Ok(1));
        let mut it = as_completed_timeout([h, h2], Duration::from_millis(5));
        assert_eq!(it.next().unwrap().unwrap().result(), Ok(1));
        assert!(matches!(it.next(), Some(Err(Error::Timeout(_)))));
        assert!(it.next().is_none());
        assert_eq!(it.into_pending().len(), 1);
    }

    #[test]
    fn wait_modes() {
        let (p1, h1) = promise::<i32>();
        let (_p2, h2) = promise::<i32>();
        p1.complete(Ok(1));
        let w = wait([h1, h2], None, ReturnWhen::FirstCompleted);
        assert_eq!((w.done.len(), w.not_done.len()), (1, 1));

        let (p1, h1) = promise::<i32>();
        let (_p2, h2) = promise::<i32>();
        p1.complete(Err(Error::Cancelled));
        let w = wait([h1, h2], None, ReturnWhen::FirstException);
        assert_eq!((w.done.len(), w.not_done.len()), (1, 1));

        let (p1, h1) = promise::<i32>();
        let (_p2, h2) = promise::<i32>();
        p1.complete(Ok(1));
        let w = wait(
            [h1, h2],
            Some(Duration::from_millis(5)),
            ReturnWhen::AllCompleted,
        );
        assert_eq!((w.done.len(), w.not_done.len()), (1, 1));
    }
}
