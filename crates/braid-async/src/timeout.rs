//! [`timeout`] and [`timeout_at`]: give up on a future after a while, like Python's
//! `asyncio.wait_for` and `asyncio.timeout`.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::Error;

/// Runs `future` for at most `duration`; on time-out it is dropped (cancelled) and the
/// result is [`Error::Timeout`], like Python's `asyncio.wait_for(aw, timeout)`.
///
/// To give up waiting without cancelling the work, time out a reference to it
/// (`timeout(d, &mut handle)` on an `Unpin` future such as a [`Shielded`](crate::Shielded)
/// or a tokio `JoinHandle`) and await it again later.
///
/// ```
/// use std::time::Duration;
/// use braid_async::{Error, timeout};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let slow = tokio::time::sleep(Duration::from_secs(60));
/// assert_eq!(timeout(Duration::from_secs(1), slow).await, Err(Error::Timeout(Duration::from_secs(1))));
/// assert_eq!(timeout(Duration::from_secs(1), async { 7 }).await, Ok(7));
/// # }
/// ```
///
/// # Errors
/// [`Error::Timeout`] with `duration`.
///
/// # Cancel safety
/// As cancel safe as `future` itself: cancelling the timeout cancels `future`.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Error> {
    tokio::time::timeout(duration, future)
        .await
        .map_err(|_elapsed| Error::Timeout(duration))
}

/// Runs `future` until `deadline` at the latest, like Python's `asyncio.timeout_at`; see
/// [`timeout`].
///
/// # Errors
/// [`Error::Timeout`] with the time from the call to the deadline.
///
/// # Cancel safety
/// As cancel safe as `future` itself.
pub async fn timeout_at<F: Future>(deadline: Instant, future: F) -> Result<F::Output, Error> {
    let allowed = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout_at(deadline, future)
        .await
        .map_err(|_elapsed| Error::Timeout(allowed))
}
