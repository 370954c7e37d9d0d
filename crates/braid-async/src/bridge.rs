//! Bridges between async code and braid's [`Executor`]s: await any executor's [`Handle`]
//! ([`wrap_future`], [`HandleExt::into_async`]), and run blocking work on an executor from
//! async code ([`run_in_executor`], [`run_fn_in_executor`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use braid_core::{Error, Executor, ExecutorExt, Handle, TaskRef};
use braid_sync::ThreadPool;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

/// A braid [`Handle`] as a future, like Python's `asyncio.wrap_future`: resolves to the
/// work's outcome without blocking the runtime's threads.
///
/// Made by [`wrap_future`], [`HandleExt::into_async`], [`run_in_executor`] and
/// [`run_fn_in_executor`]. The handle's done-callback signals the future, so awaiting it
/// costs no thread; the outcome is read from the handle once it is done.
#[must_use = "dropping a HandleFuture cancels its work if it has not started"]
pub struct HandleFuture<T> {
    handle: Option<Handle<T>>,
    done: oneshot::Receiver<()>,
}

/// Makes `handle` awaitable (Python's `asyncio.wrap_future`); works with the handles of
/// every executor: a [`ThreadPool`], a process pool, a cluster's task queue.
///
/// ```
/// use braid_async::wrap_future;
/// use braid_sync::ThreadPool;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = ThreadPool::new(2).unwrap();
/// let handle = pool.submit_fn(|| 6 * 7).unwrap();
/// assert_eq!(wrap_future(handle).await, Ok(42));
/// # }
/// ```
pub fn wrap_future<T: Send + 'static>(handle: Handle<T>) -> HandleFuture<T> {
    let (signal, done) = oneshot::channel();
    handle.add_done_callback(move |_outcome| {
        if signal.send(()).is_err() {
            // The HandleFuture was dropped: nobody waits for the outcome any more.
            tracing::trace!("a wrapped handle finished after its future was dropped");
        }
    });
    HandleFuture {
        handle: Some(handle),
        done,
    }
}

/// Awaiting braid [`Handle`]s: `handle.into_async().await`.
///
/// (A handle cannot implement `IntoFuture` itself: both live in other crates.)
pub trait HandleExt<T> {
    /// The handle as a future; see [`wrap_future`].
    fn into_async(self) -> HandleFuture<T>;
}

impl<T: Send + 'static> HandleExt<T> for Handle<T> {
    fn into_async(self) -> HandleFuture<T> {
        wrap_future(self)
    }
}

impl<T> HandleFuture<T> {
    /// The handle back, without cancelling the work (to wait on it from a thread, say).
    pub fn into_handle(mut self) -> Option<Handle<T>> {
        self.handle.take()
    }

    /// Whether the work is done.
    pub fn is_done(&self) -> bool {
        self.handle.as_ref().is_none_or(Handle::is_done)
    }
}

impl<T> Future for HandleFuture<T> {
    type Output = Result<T, Error>;

    /// The work's value or its error: the task's own, [`Error::Cancelled`],
    /// [`Error::WorkerLost`], or a submission error from [`run_in_executor`].
    ///
    /// # Cancel safety
    /// Dropping a `HandleFuture` before it resolves cancels the work if it has not started
    /// yet (as cancelling the asyncio future of `run_in_executor` cancels the
    /// `concurrent.futures` one); work already running finishes and its result is dropped.
    /// To stop waiting without cancelling, keep the future (time out `&mut fut`) or take
    /// the handle back with [`into_handle`](HandleFuture::into_handle).
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let signalled = Pin::new(&mut self.done).poll(cx);
        if signalled.is_pending() {
            return Poll::Pending;
        }
        let Some(handle) = self.handle.take() else {
            return Poll::Ready(Err(Error::WorkerLost(
                "the HandleFuture was polled after it resolved".to_string(),
            )));
        };
        if !handle.is_done() {
            // The callback was dropped without running: no outcome will ever come.
            return Poll::Ready(Err(Error::WorkerLost(
                "the handle's done-callback was dropped before the work finished".to_string(),
            )));
        }
        // Done: this only reads the outcome.
        Poll::Ready(handle.result())
    }
}

impl<T> Drop for HandleFuture<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // Only work that has not started can be cancelled; false otherwise.
            if !handle.is_done() && handle.cancel() {
                tracing::debug!("a dropped HandleFuture cancelled its pending work");
            }
        }
    }
}

impl<T> std::fmt::Debug for HandleFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandleFuture")
            .field("handle", &self.handle)
            .finish()
    }
}

/// Submits a registered task to any executor and returns a future of its result, like
/// Python's `loop.run_in_executor(executor, fn, *args)`: the work runs on the executor's
/// workers (threads, processes, a cluster), never on the runtime's threads.
///
/// Submission happens now, not when the future is first polled; a submission error (the
/// executor is shut down, an argument does not encode) is the future's output.
///
/// ```
/// use braid_async::run_in_executor;
/// use braid_sync::ThreadPool;
///
/// #[braid_core::task(name = "doc.async.fib")]
/// fn fib(n: u64) -> u64 {
///     if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = ThreadPool::new(2).unwrap();
/// let (a, b) = tokio::join!(
///     run_in_executor(&pool, fib::task(), (20,)),
///     run_in_executor(&pool, fib::task(), (21,)),
/// );
/// assert_eq!((a, b), (Ok(6765), Ok(10946)));
/// # }
/// ```
pub fn run_in_executor<E, A, R>(executor: &E, task: TaskRef<A, R>, args: A) -> HandleFuture<R>
where
    E: Executor + ?Sized,
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
{
    wrap_future(
        executor
            .submit(task, args)
            .unwrap_or_else(|error| Handle::ready(Err(error))),
    )
}

/// Runs a closure on a [`ThreadPool`] and returns a future of its result: blocking or
/// CPU-heavy work from async code without blocking the runtime, like Python's
/// `loop.run_in_executor(pool, fn)` or `asyncio.to_thread`.
///
/// A panic in `f` is the output's [`Error::Task`]; a pool that is shut down gives
/// [`Error::Shutdown`].
///
/// ```
/// use braid_async::run_fn_in_executor;
/// use braid_sync::ThreadPool;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = ThreadPool::new(1).unwrap();
/// let worker = run_fn_in_executor(&pool, || braid_sync::current().name).await.unwrap();
/// assert!(worker.starts_with("ThreadPool"));
/// # }
/// ```
pub fn run_fn_in_executor<F, T>(pool: &ThreadPool, f: F) -> HandleFuture<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    wrap_future(
        pool.submit_fn(f)
            .unwrap_or_else(|error| Handle::ready(Err(error))),
    )
}
