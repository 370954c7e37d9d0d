//! [`Event`]: a flag tasks wait on, like Python's `asyncio.Event`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::Error;

/// A flag that tasks wait on until another task sets it, like Python's `asyncio.Event`.
///
/// [`set`](Event::set) wakes every task waiting then; later waits return at once until
/// [`clear`](Event::clear). A task waiting when `set` is called is woken even if the flag
/// is cleared again before it runs, as in Python.
///
/// ```
/// use std::sync::Arc;
/// use braid_async::Event;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ready = Arc::new(Event::new());
/// let waiter = tokio::spawn({
///     let ready = ready.clone();
///     async move {
///         ready.wait().await;
///         "released"
///     }
/// });
/// ready.set();
/// assert_eq!(waiter.await.unwrap(), "released");
/// assert!(ready.is_set());
/// # }
/// ```
pub struct Event {
    flag: AtomicBool,
    changed: Notify,
}

impl Event {
    /// An event that is not set.
    pub fn new() -> Self {
        Event {
            flag: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    /// Sets the flag and wakes every task waiting.
    pub fn set(&self) {
        if !self.flag.swap(true, Ordering::SeqCst) {
            self.changed.notify_waiters();
        }
    }

    /// Clears the flag; later waits block until the next [`set`](Event::set).
    pub fn clear(&self) {
        self.flag.store(false, Ordering::SeqCst);
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Waits until the flag is set; returns at once if it is.
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled wait has no effect on the event or on other waiters.
    pub async fn wait(&self) {
        if self.is_set() {
            return;
        }
        let notified = self.changed.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the check, so a `set` between the two is not missed.
        notified.as_mut().enable();
        if self.is_set() {
            return;
        }
        // Only `set` notifies: being woken means the flag was set while we waited.
        notified.await;
    }

    /// Waits at most `timeout` for the flag.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the flag was not set in time.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`wait`](Event::wait).
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<(), Error> {
        crate::timeout(timeout, self.wait()).await
    }
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("is_set", &self.is_set())
            .finish()
    }
}
