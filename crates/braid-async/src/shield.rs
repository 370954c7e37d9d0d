//! [`shield`]: keep work going when the task waiting for it is cancelled, like Python's
//! `asyncio.shield`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

use crate::Error;

/// Work started by [`shield`]: a future of its result that can be dropped, timed out or
/// awaited again without stopping the work.
#[must_use = "dropping a Shielded does not stop the work, but its result is then lost"]
pub struct Shielded<T> {
    task: JoinHandle<T>,
}

/// Starts `future` as a tokio task at once and returns a [`Shielded`] to await its result,
/// like Python's `asyncio.shield(aw)`: cancelling the task that awaits the result (a
/// time-out, a `select!`, dropping it) does not cancel the work.
///
/// ```
/// use std::time::Duration;
/// use braid_async::{Error, shield, timeout};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut saving = shield(async {
///     tokio::time::sleep(Duration::from_secs(5)).await;
///     "saved"
/// });
/// // The caller gives up waiting after one second; the work goes on.
/// assert!(matches!(timeout(Duration::from_secs(1), &mut saving).await, Err(Error::Timeout(_))));
/// assert_eq!(saving.await, Ok("saved"));
/// # }
/// ```
///
/// # Panics
/// When called outside a tokio runtime.
pub fn shield<F>(future: F) -> Shielded<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Shielded {
        task: tokio::spawn(future),
    }
}

impl<T> Shielded<T> {
    /// Whether the work has finished.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Cancels the work after all, at its next await point.
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl<T> Future for Shielded<T> {
    type Output = Result<T, Error>;

    /// The work's value, or [`Error::Panicked`] / [`Error::Cancelled`].
    ///
    /// # Cancel safety
    /// Cancel safe: cancelling the await leaves the work running; await the `Shielded`
    /// again (through `&mut`) to get the result.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task)
            .poll(cx)
            .map(|outcome| outcome.map_err(Error::from_join))
    }
}

impl<T> std::fmt::Debug for Shielded<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shielded")
            .field("is_finished", &self.is_finished())
            .finish()
    }
}
