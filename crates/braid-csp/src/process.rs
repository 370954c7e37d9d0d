//! [`Process`]: a CSP process, and what runs it: the context that collects the channel
//! ends a process leaves behind, so that a process that stops on poison passes the
//! poison on through every channel it held (PyCSP's `@process`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use crate::Error;
use crate::core::{Side, Terminate};
use crate::scheduler::Spawner;
use crate::{block, coop};

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send>>;

/// A CSP process: a piece of work that talks to others only through channel ends, made
/// with [`process`] (async, for every scheduler) or [`blocking_process`] (a plain
/// function on its own OS thread), and run by [`Parallel`](crate::Parallel),
/// [`Sequence`](crate::Sequence) or [`spawn`](crate::spawn).
///
/// The body returns `Result<T, Error>`, so channel failures pass up with `?`. When the
/// body ends, the channel ends it still holds retire, or, if it ended with any error
/// other than [`Error::Retired`] (poison, a panic, a lost connection, an error of its
/// own), they are poisoned: PyCSP's propagation, which stops a whole network from one
/// poisoned channel.
#[must_use = "a process does nothing until Parallel, Sequence or spawn runs it"]
pub struct Process<T = ()> {
    pub(crate) name: Cow<'static, str>,
    pub(crate) body: Body<T>,
}

pub(crate) enum Body<T> {
    Async(BoxFuture<T>),
    Blocking(Box<dyn FnOnce() -> Result<T, Error> + Send>),
}

/// A process from an async body, typically an `async move` block that owns the channel
/// ends it uses (the counterpart of a PyCSP `@process` function):
///
/// ```
/// use braid_csp::{Error, Process, Writer, process};
///
/// fn numbers(out: Writer<u64>, n: u64) -> Process {
///     process(async move {
///         for i in 0..n {
///             out.write(i).await?;
///         }
///         Ok(())
///     })
/// }
/// ```
///
/// It runs on the scheduler of whatever runs it (cooperative by default).
pub fn process<T, F>(body: F) -> Process<T>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
{
    Process {
        name: Cow::Borrowed(std::any::type_name::<F>()),
        body: Body::Async(Box::pin(body)),
    }
}

/// A process from a plain function that uses the blocking operations
/// ([`blocking_read`](crate::Reader::blocking_read), ...); it always runs on its own OS
/// thread, whatever the scheduler of the processes around it.
pub fn blocking_process<T, F>(body: F) -> Process<T>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    Process {
        name: Cow::Borrowed(std::any::type_name::<F>()),
        body: Body::Blocking(Box::new(body)),
    }
}

impl<T> Process<T> {
    /// Names the process (for panics, errors and thread names; by default the type of
    /// its body).
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The process's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<T> fmt::Debug for Process<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("blocking", &matches!(self.body, Body::Blocking(_)))
            .finish()
    }
}

/// How a process ended.
#[derive(Debug)]
pub(crate) enum Outcome<T> {
    /// Its body returned a value.
    Returned(T),
    /// It stopped on poison or retirement (the error): the network's normal way to
    /// shut down.
    Stopped(Error),
    /// It failed: a panic, a lost connection, or an error of its own.
    Failed(Error),
}

impl<T> Outcome<T> {
    fn of(result: Result<T, Error>) -> Self {
        match result {
            Ok(value) => Outcome::Returned(value),
            Err(error) if error.is_shutdown() => Outcome::Stopped(error),
            Err(error) => Outcome::Failed(error),
        }
    }

    /// Whether the ends the process leaves are poisoned rather than retired.
    fn poisons(&self) -> bool {
        match self {
            Outcome::Returned(_) => false,
            Outcome::Stopped(error) => !error.is_retired(),
            Outcome::Failed(_) => true,
        }
    }

    /// The outcome once the children are done: a child's failure counts unless the
    /// process failed itself.
    fn with_child_failure(self, child_failure: Option<Error>) -> Self {
        match (self, child_failure) {
            (Outcome::Failed(error), _) | (_, Some(error)) => Outcome::Failed(error),
            (outcome, None) => outcome,
        }
    }

    /// The process's value (`None` when it stopped on poison or retirement), or its
    /// failure.
    pub(crate) fn into_result(self) -> Result<Option<T>, Error> {
        match self {
            Outcome::Returned(value) => Ok(Some(value)),
            Outcome::Stopped(_) => Ok(None),
            Outcome::Failed(error) => Err(error),
        }
    }
}

thread_local! {
    /// The process being polled on this thread, if any.
    static CURRENT: RefCell<Option<Arc<ProcessContext>>> = const { RefCell::new(None) };
}

/// What braid-csp knows about a running process.
pub(crate) struct ProcessContext {
    name: Cow<'static, str>,
    /// Where the processes it spawns run.
    pub(crate) spawner: Spawner,
    /// Ends dropped while the process ran, not yet retired.
    released: Mutex<Vec<(Arc<dyn Terminate>, Side)>>,
    /// Whether `released` may hold ends: checked at the end of every poll, so cheaply.
    dirty: AtomicBool,
    /// Processes it spawned; it ends after them.
    children: Mutex<Vec<Arc<dyn Child>>>,
}

impl ProcessContext {
    pub(crate) fn new(name: Cow<'static, str>, spawner: Spawner) -> Arc<Self> {
        Arc::new(ProcessContext {
            name,
            spawner,
            released: Mutex::new(Vec::new()),
            dirty: AtomicBool::new(false),
            children: Mutex::new(Vec::new()),
        })
    }

    /// Retires (or, after a failure, poisons) the ends released so far.
    fn flush(&self, poison: bool) {
        if !self.dirty.load(Ordering::Relaxed) || !self.dirty.swap(false, Ordering::Acquire) {
            return;
        }
        let released = std::mem::take(&mut *self.released.lock());
        for (end, side) in released {
            if poison {
                end.poison(side);
            }
            end.leave(side);
        }
    }

    pub(crate) fn adopt(&self, child: Arc<dyn Child>) {
        self.children.lock().push(child);
    }

    /// Ready once every child has finished; with the failure of a child whose handle
    /// was dropped, if one failed.
    fn poll_children(&self, cx: &mut Context<'_>) -> Poll<Option<Error>> {
        let mut children = self.children.lock();
        let mut failure = None;
        let mut pending = false;
        children.retain(|child| match child.poll_finished(cx) {
            Poll::Pending => {
                pending = true;
                true
            }
            Poll::Ready(error) => {
                if failure.is_none() {
                    failure = error;
                }
                false
            }
        });
        if pending {
            // Keep the failure for when the rest are done.
            if let Some(error) = failure {
                children.push(Arc::new(Failed(Mutex::new(Some(error)))));
            }
            Poll::Pending
        } else {
            Poll::Ready(failure)
        }
    }
}

/// A child that has already failed, kept so that its error is reported with the rest.
struct Failed(Mutex<Option<Error>>);

impl Child for Failed {
    fn poll_finished(&self, _cx: &mut Context<'_>) -> Poll<Option<Error>> {
        Poll::Ready(self.0.lock().take())
    }
}

/// The context of the process being polled on this thread.
pub(crate) fn current() -> Option<Arc<ProcessContext>> {
    CURRENT
        .try_with(|current| current.borrow().clone())
        .ok()
        .flatten()
}

/// Retires the ends the current process has dropped so far (it is about to block).
pub(crate) fn flush_current() {
    CURRENT
        .try_with(|current| {
            if let Some(context) = &*current.borrow() {
                context.flush(false);
            }
        })
        .unwrap_or(());
}

/// Runs `f` with `context` as the current process, restoring the previous one after.
fn enter<R>(context: Arc<ProcessContext>, f: impl FnOnce() -> R) -> (R, Arc<ProcessContext>) {
    let previous = CURRENT.with(|current| current.replace(Some(context)));
    let result = f();
    let context = CURRENT
        .with(|current| current.replace(previous))
        .expect("the context entered is still current");
    (result, context)
}

/// An end was dropped: inside a process it retires when the process's poll (or body)
/// returns, poisoned instead if the process failed; elsewhere it retires now.
pub(crate) fn release(end: Arc<dyn Terminate>, side: Side) {
    let mut end = Some(end);
    // Outside a process, or while the thread's locals are being destroyed (try_with
    // fails and `end` is still here): retire now.
    CURRENT
        .try_with(|current| {
            if let Some(context) = &*current.borrow()
                && let Some(end) = end.take()
            {
                context.released.lock().push((end, side));
                context.dirty.store(true, Ordering::Release);
            }
        })
        .unwrap_or(());
    if let Some(end) = end {
        end.leave(side);
    }
}

/// Something that finishes: a spawned process, seen by the process that spawned it.
pub(crate) trait Child: Send + Sync {
    /// Ready once finished, with its failure if it failed and nobody holds its handle.
    fn poll_finished(&self, cx: &mut Context<'_>) -> Poll<Option<Error>>;
}

/// An async process being run: its body, then the children it spawned.
pub(crate) struct Running<T> {
    body: Option<BoxFuture<T>>,
    context: Option<Arc<ProcessContext>>,
    outcome: Option<Outcome<T>>,
}

impl<T> Running<T> {
    pub(crate) fn new(body: BoxFuture<T>, context: Arc<ProcessContext>) -> Self {
        Running {
            body: Some(body),
            context: Some(context),
            outcome: None,
        }
    }
}

fn panicked(context: &ProcessContext, payload: &(dyn std::any::Any + Send)) -> Error {
    Error::Panicked {
        process: context.name.to_string(),
        message: braid_core::panic_message(payload),
    }
}

/// Turns how a body ended into an outcome, then retires the ends it left behind, or
/// poisons them if it failed or stopped on poison.
fn settle<T>(
    context: &ProcessContext,
    result: std::thread::Result<Result<T, Error>>,
) -> Outcome<T> {
    let outcome = match result {
        Ok(result) => Outcome::of(result),
        Err(payload) => Outcome::Failed(panicked(context, &*payload)),
    };
    context.flush(outcome.poisons());
    outcome
}

/// Drops a finished body inside the process's context, so that the ends it held are
/// collected; a panic while dropping counts as the body's panic.
fn drop_body<T>(
    body: BoxFuture<T>,
    result: std::thread::Result<Result<T, Error>>,
) -> std::thread::Result<Result<T, Error>> {
    match (catch_unwind(AssertUnwindSafe(move || drop(body))), result) {
        (Ok(()), result) => result,
        (Err(payload), Ok(_)) => Err(payload),
        (Err(payload), Err(first)) => {
            tracing::warn!(
                message = %braid_core::panic_message(&*payload),
                "a CSP process panicked again while its body was dropped"
            );
            Err(first)
        }
    }
}

// The outcome is never pinned: the body is boxed, and the outcome is moved out.
impl<T> Unpin for Running<T> {}

impl<T> Future for Running<T> {
    type Output = Outcome<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<T>> {
        let this = self.get_mut();
        if this.outcome.is_none() {
            let context = this
                .context
                .take()
                .expect("a running process has a context");
            let slot = &mut this.body;
            let budget = coop::start();
            let (finished, context) = enter(context, || {
                let body = slot.as_mut().expect("an unfinished process has its body");
                let polled = catch_unwind(AssertUnwindSafe(|| body.as_mut().poll(cx)));
                let result = match polled {
                    Ok(Poll::Pending) => return None,
                    Ok(Poll::Ready(result)) => Ok(result),
                    Err(payload) => Err(payload),
                };
                let body = slot.take().expect("an unfinished process has its body");
                Some(drop_body(body, result))
            });
            coop::restore(budget);
            let context = this.context.insert(context);
            match finished {
                None => {
                    context.flush(false);
                    return Poll::Pending;
                }
                Some(result) => this.outcome = Some(settle(context, result)),
            }
        }
        let context = this
            .context
            .as_ref()
            .expect("a running process has a context");
        match context.poll_children(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(child_failure) => {
                let outcome = this.outcome.take().expect("the body has finished");
                Poll::Ready(outcome.with_child_failure(child_failure))
            }
        }
    }
}

/// Runs a blocking body on the calling thread as the process `context`, then waits for
/// the processes it spawned.
pub(crate) fn run_blocking<T>(
    body: Box<dyn FnOnce() -> Result<T, Error> + Send>,
    context: Arc<ProcessContext>,
) -> Outcome<T> {
    let (result, context) = enter(context, || catch_unwind(AssertUnwindSafe(body)));
    let outcome = settle(&context, result);
    let child_failure = block::block_on(std::future::poll_fn(|cx| context.poll_children(cx)));
    outcome.with_child_failure(child_failure)
}

/// Where a spawned process's outcome goes: its handle, and the process that spawned it.
pub(crate) struct Completion<T> {
    state: Mutex<CompletionState<T>>,
}

struct CompletionState<T> {
    outcome: Option<Outcome<T>>,
    finished: bool,
    /// The handle was dropped: a failure goes to the parent instead.
    detached: bool,
    handle_waker: Option<Waker>,
    parent_waker: Option<Waker>,
}

impl<T> Completion<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Completion {
            state: Mutex::new(CompletionState {
                outcome: None,
                finished: false,
                detached: false,
                handle_waker: None,
                parent_waker: None,
            }),
        })
    }

    /// Records the outcome (the first one counts) and wakes whoever waits.
    pub(crate) fn complete(&self, outcome: Outcome<T>) {
        let wakers = {
            let mut state = self.state.lock();
            if state.finished {
                return;
            }
            state.finished = true;
            if let (true, Outcome::Failed(error)) = (state.detached, &outcome) {
                tracing::debug!(%error, "a detached CSP process failed");
            }
            state.outcome = Some(outcome);
            [state.handle_waker.take(), state.parent_waker.take()]
        };
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    /// The outcome, for the handle.
    pub(crate) fn poll_outcome(&self, cx: &mut Context<'_>) -> Poll<Outcome<T>> {
        let mut state = self.state.lock();
        if state.finished {
            Poll::Ready(state.outcome.take().unwrap_or_else(|| {
                Outcome::Failed(Error::Cancelled("a process whose outcome was taken".into()))
            }))
        } else {
            state.handle_waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    /// Whether the outcome is in.
    pub(crate) fn is_finished(&self) -> bool {
        self.state.lock().finished
    }

    /// The handle is gone: a failure is now the parent's to report.
    pub(crate) fn detach(&self) {
        self.state.lock().detached = true;
    }
}

impl<T: Send> Child for Completion<T> {
    fn poll_finished(&self, cx: &mut Context<'_>) -> Poll<Option<Error>> {
        let mut state = self.state.lock();
        if !state.finished {
            state.parent_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if !state.detached {
            return Poll::Ready(None);
        }
        match state.outcome.take() {
            Some(Outcome::Failed(error)) => Poll::Ready(Some(error)),
            _ => Poll::Ready(None),
        }
    }
}

/// Completes a [`Completion`] with [`Error::Cancelled`] if it is dropped before the
/// process finished: a runtime that drops a task must not leave its waiters hanging.
pub(crate) struct CompleteOnDrop<T> {
    pub(crate) completion: Arc<Completion<T>>,
    pub(crate) name: Cow<'static, str>,
}

impl<T> Drop for CompleteOnDrop<T> {
    fn drop(&mut self) {
        self.completion
            .complete(Outcome::Failed(Error::Cancelled(self.name.to_string())));
    }
}
