//! [`as_completed`]: the outputs of many futures in the order they finish, like Python's
//! `asyncio.as_completed`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

/// A stream of the outputs of many futures in the order they finish; made by
/// [`as_completed`].
///
/// Read it with [`next`](AsCompleted::next) (or as a `futures` `Stream`). For Python's
/// `as_completed(aws, timeout=...)`, put a [`timeout`](crate::timeout) around the loop or
/// around each `next`: `next` is cancel safe, so the futures not yet finished stay in the
/// stream, and [`into_pending`](AsCompleted::into_pending) hands them back.
#[must_use = "a stream does nothing unless polled"]
pub struct AsCompleted<F> {
    running: FuturesUnordered<F>,
}

/// Yields the output of each future as it finishes, like Python's `asyncio.as_completed`.
///
/// The futures are polled in place, inside the stream (nothing is spawned); wrap a future
/// with its index (`async move { (i, f.await) }`) to know which one finished.
///
/// ```
/// use std::time::Duration;
/// use braid_async::as_completed;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let naps = [3u64, 1, 2].map(|s| async move {
///     tokio::time::sleep(Duration::from_secs(s)).await;
///     s
/// });
/// let mut finished = as_completed(naps);
/// let mut order = Vec::new();
/// while let Some(s) = finished.next().await {
///     order.push(s);
/// }
/// assert_eq!(order, [1, 2, 3]);
/// # }
/// ```
pub fn as_completed<I>(futures: I) -> AsCompleted<I::Item>
where
    I: IntoIterator,
    I::Item: Future,
{
    AsCompleted {
        running: futures.into_iter().collect(),
    }
}

impl<F: Future> AsCompleted<F> {
    /// The output of the next future to finish; `None` once all have.
    ///
    /// # Cancel safety
    /// Cancel safe: an output is taken from the stream only when it is returned, and the
    /// futures not finished stay in the stream.
    pub async fn next(&mut self) -> Option<F::Output> {
        StreamExt::next(&mut self.running).await
    }

    /// How many futures have not finished (or not been yielded).
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Whether every future has been yielded.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

impl<F: Future + Unpin> AsCompleted<F> {
    /// The futures not yet yielded, in no particular order; nothing is lost after a
    /// time-out.
    pub fn into_pending(self) -> Vec<F> {
        self.running.into_iter().collect()
    }
}

impl<F: Future> Stream for AsCompleted<F> {
    type Item = F::Output;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        self.running.poll_next_unpin(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.running.len(), Some(self.running.len()))
    }
}

impl<F> std::fmt::Debug for AsCompleted<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompleted")
            .field("pending", &self.running.len())
            .finish()
    }
}
