//! [`wait`]: wait for some of many futures, like Python's `asyncio.wait`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

pub use braid_core::ReturnWhen;

/// What [`wait`] returns: the futures that finished, with their outputs, and those still
/// pending, each with its index in the input, in input order.
#[derive(Debug)]
pub struct Waited<F: Future> {
    /// The finished futures' outputs.
    pub done: Vec<(usize, F::Output)>,
    /// The futures not finished, untouched except for having been polled: await them
    /// again, wait on them again, or drop them to cancel them.
    pub pending: Vec<(usize, F)>,
}

/// A future with its index in the input.
struct Indexed<F> {
    index: usize,
    future: F,
}

impl<F: Future + Unpin> Future for Indexed<F> {
    type Output = (usize, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let index = self.index;
        Pin::new(&mut self.future)
            .poll(cx)
            .map(|output| (index, output))
    }
}

/// Waits until `when` holds for `futures`, or `timeout` passes, like Python's
/// `asyncio.wait(aws, timeout=..., return_when=...)`; returns the finished and the pending
/// futures.
///
/// [`ReturnWhen::FirstCompleted`] returns once any future finishes,
/// [`ReturnWhen::FirstException`] once any returns `Err` (or all finish), and
/// [`ReturnWhen::AllCompleted`] once all finish. With every mode `done` holds all the
/// futures found finished at that moment. On time-out nothing is cancelled: the unfinished
/// futures come back in `pending`, as in Python. The futures are polled in place (they
/// must be `Unpin` so they can be handed back: tokio `JoinHandle`s, braid
/// [`HandleFuture`](crate::HandleFuture)s, or `Box::pin`ned futures).
///
/// ```
/// use std::time::Duration;
/// use braid_async::{ReturnWhen, wait};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let tasks = [5u64, 1, 3].map(|s| {
///     tokio::spawn(async move {
///         tokio::time::sleep(Duration::from_secs(s)).await;
///         s
///     })
/// });
/// let first = wait(tasks, ReturnWhen::FirstCompleted, None).await;
/// assert_eq!(first.done.len(), 1);
/// assert_eq!(first.done[0].0, 1); // the one-second task, index 1
/// let rest = wait(first.pending.into_iter().map(|(_, t)| t), ReturnWhen::AllCompleted, Some(Duration::from_secs(3))).await;
/// assert_eq!((rest.done.len(), rest.pending.len()), (1, 1)); // 3 s done, 5 s still running
/// # }
/// ```
///
/// # Cancel safety
/// Cancelling the wait drops every future it was given.
pub async fn wait<I, F, T, E>(futures: I, when: ReturnWhen, timeout: Option<Duration>) -> Waited<F>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>> + Unpin,
{
    let mut running: FuturesUnordered<Indexed<F>> = futures
        .into_iter()
        .enumerate()
        .map(|(index, future)| Indexed { index, future })
        .collect();
    let mut done = Vec::new();
    let mut deadline = timeout.map(|t| Box::pin(tokio::time::sleep(t)));
    loop {
        let next = std::future::poll_fn(|cx| {
            if let Poll::Ready(finished) = running.poll_next_unpin(cx) {
                return Poll::Ready(Some(finished));
            }
            let timed_out = deadline
                .as_mut()
                .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
            if timed_out {
                Poll::Ready(None)
            } else {
                Poll::Pending
            }
        })
        .await;
        let Some(Some((index, output))) = next else {
            break; // timed out, or nothing left
        };
        let failed = output.is_err();
        done.push((index, output));
        let stop = match when {
            ReturnWhen::FirstCompleted => true,
            ReturnWhen::FirstException => failed,
            ReturnWhen::AllCompleted => false,
        };
        if stop {
            break;
        }
    }
    // Everything else that is finished already goes in `done` too, as in asyncio.
    let mut cx = Context::from_waker(Waker::noop());
    while let Poll::Ready(Some(finished)) = running.poll_next_unpin(&mut cx) {
        done.push(finished);
    }
    done.sort_unstable_by_key(|(index, _)| *index);
    let mut pending: Vec<(usize, F)> = running
        .into_iter()
        .map(|indexed| (indexed.index, indexed.future))
        .collect();
    pending.sort_unstable_by_key(|(index, _)| *index);
    Waited { done, pending }
}
