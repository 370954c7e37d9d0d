//! [`gather`], [`try_gather`] and [`gather_tasks`]: run many futures concurrently and
//! collect their results in order, like Python's `asyncio.gather`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::Error;

/// Runs every future concurrently and returns all their outputs in input order, like
/// Python's `asyncio.gather(*aws, return_exceptions=True)`: with futures that return
/// `Result`, each item's success or error is its own, and none stops the others.
///
/// The futures are polled in place, inside the future `gather` returns: nothing is
/// spawned, so they need not be `Send` or `'static` and may borrow, and they run on the
/// task that awaits the gather (concurrently, not in parallel). Each future is polled
/// once as it is taken from the iterator, and only those still pending are tracked
/// further, so a gather of many short futures costs tens of nanoseconds a future. To run them on tokio tasks, in
/// parallel on a multi-thread runtime, use [`gather_tasks`] or a
/// [`TaskGroup`](crate::TaskGroup).
///
/// ```
/// use braid_async::gather;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let squares = gather((1..=4).map(|x| async move { x * x })).await;
/// assert_eq!(squares, [1, 4, 9, 16]);
///
/// // Errors stay in their places, as with return_exceptions=True.
/// let parsed = gather(["1", "x", "3"].map(|s| async move { s.parse::<u8>() })).await;
/// assert!(parsed[0].is_ok() && parsed[1].is_err() && parsed[2].is_ok());
/// # }
/// ```
///
/// # Cancel safety
/// Cancelling the gather drops (cancels) every future not yet finished, and the outputs
/// of those that had finished.
pub async fn gather<I>(futures: I) -> Vec<<I::Item as Future>::Output>
where
    I: IntoIterator,
    I::Item: Future,
{
    let futures = futures.into_iter();
    let mut outputs = Vec::with_capacity(futures.size_hint().0);
    let finished: Result<(), Infallible> = drive(futures, |index, output| {
        place(&mut outputs, index, output);
        Ok(())
    })
    .await;
    match finished {
        Ok(()) => {}
        Err(never) => match never {},
    }
    // Every index was filled once: `drive` ends only when all futures have finished.
    outputs.into_iter().flatten().collect()
}

/// Runs every future concurrently and returns their values in input order, or the first
/// error, like Python's `asyncio.gather(*aws)` (`return_exceptions=False`).
///
/// On the first error the futures still running are dropped, which cancels them: unlike
/// asyncio's gather, whose other tasks run on after the exception, futures polled in place
/// cannot outlive the call. For work that must go on, spawn it ([`gather_tasks`], a
/// [`TaskGroup`](crate::TaskGroup), [`shield`](crate::shield)). Nothing is spawned here;
/// see [`gather`].
///
/// ```
/// use braid_async::try_gather;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ok = try_gather(["1", "2"].map(|s| async move { s.parse::<u8>() })).await;
/// assert_eq!(ok, Ok(vec![1, 2]));
/// let failed = try_gather(["1", "x"].map(|s| async move { s.parse::<u8>() })).await;
/// assert!(failed.is_err());
/// # }
/// ```
///
/// # Errors
/// The first error a future returns, in the order they finish.
///
/// # Cancel safety
/// Cancelling it drops every future not yet finished, as [`gather`].
pub async fn try_gather<I, T, E>(futures: I) -> Result<Vec<T>, E>
where
    I: IntoIterator,
    I::Item: Future<Output = Result<T, E>>,
{
    let futures = futures.into_iter();
    let mut values = Vec::with_capacity(futures.size_hint().0);
    drive(futures, |index, output| {
        place(&mut values, index, output?);
        Ok(())
    })
    .await?;
    Ok(values.into_iter().flatten().collect())
}

/// Spawns every future as a tokio task, then returns all their outputs in input order,
/// like Python's `asyncio.gather` of coroutines (which wraps each in a Task).
///
/// The tasks run concurrently, and in parallel on a multi-thread runtime; a task that
/// panics or is cancelled gives [`Error::Panicked`] or [`Error::Cancelled`] in its place,
/// and the others are not affected. Spawning costs a few hundred nanoseconds a task more
/// than [`gather`], which polls the futures in place.
///
/// ```
/// use braid_async::gather_tasks;
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() {
/// let sums = gather_tasks((0..4u64).map(|k| async move { (k * 1000..(k + 1) * 1000).sum::<u64>() })).await;
/// let total: u64 = sums.into_iter().map(Result::unwrap).sum();
/// assert_eq!(total, (0..4000).sum::<u64>());
/// # }
/// ```
///
/// # Panics
/// When polled outside a tokio runtime (tokio cannot spawn there).
///
/// # Cancel safety
/// Cancelling the gather aborts the tasks not yet finished, as cancelling asyncio's
/// gather cancels its children.
pub async fn gather_tasks<I, T>(futures: I) -> Vec<Result<T, Error>>
where
    I: IntoIterator,
    I::Item: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut tasks = AbortOnDrop(futures.into_iter().map(tokio::spawn).collect());
    let mut outputs = Vec::with_capacity(tasks.0.len());
    for task in &mut tasks.0 {
        outputs.push(task.await.map_err(Error::from_join));
    }
    // All finished: dropping the handles now only detaches them.
    tasks.0.clear();
    outputs
}

/// Puts `value` at `index`, growing the slots as needed.
fn place<T>(slots: &mut Vec<Option<T>>, index: usize, value: T) {
    if slots.len() <= index {
        slots.resize_with(index + 1, || None);
    }
    slots[index] = Some(value);
}

/// A pending future with its index in the input.
struct Indexed<F> {
    index: usize,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Indexed<F> {
    type Output = (usize, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let index = self.index;
        self.future.as_mut().poll(cx).map(|output| (index, output))
    }
}

/// Polls every future until all have finished, handing each output to `sink` with the
/// future's index; stops early when `sink` returns an error.
///
/// Each future is polled once, with the caller's waker, as it is taken from the
/// iterator: a future that finishes then (the common case for short work) costs one
/// allocation and no bookkeeping. Only the futures still pending after that first poll
/// go into a `FuturesUnordered`, which gives each its own waker, so that later wake-ups
/// poll only the futures that were woken.
async fn drive<F, B>(
    futures: impl Iterator<Item = F>,
    mut sink: impl FnMut(usize, F::Output) -> Result<(), B>,
) -> Result<(), B>
where
    F: Future,
{
    let mut fresh = Some(futures.enumerate());
    let mut pending: FuturesUnordered<Indexed<F>> = FuturesUnordered::new();
    std::future::poll_fn(move |cx| {
        if let Some(fresh) = fresh.take() {
            for (index, future) in fresh {
                let mut future = Box::pin(future);
                match future.as_mut().poll(cx) {
                    Poll::Ready(output) => {
                        if let Err(stop) = sink(index, output) {
                            return Poll::Ready(Err(stop));
                        }
                    }
                    Poll::Pending => pending.push(Indexed { index, future }),
                }
            }
        }
        loop {
            match pending.poll_next_unpin(cx) {
                Poll::Ready(Some((index, output))) => {
                    if let Err(stop) = sink(index, output) {
                        return Poll::Ready(Err(stop));
                    }
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await
}

/// Aborts the tasks it holds when dropped.
struct AbortOnDrop<T>(Vec<tokio::task::JoinHandle<T>>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
