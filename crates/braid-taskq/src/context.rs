//! What a running task can know about its own call (Celery's `self.request`), and how it
//! asks to be retried or learns that its soft time limit has passed.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Map, Value};

/// The call a task is running for: its id, retries, workflow ids and headers.
///
/// Inside a task run by a [`Worker`](crate::Worker), [`current`] returns it.
#[derive(Debug)]
pub struct TaskContext {
    pub(crate) message: Arc<crate::TaskMessage>,
    pub(crate) hostname: Arc<str>,
    pub(crate) queue: String,
    pub(crate) soft_deadline: Option<Instant>,
    pub(crate) retry_request: Mutex<Option<Option<Duration>>>,
}

impl TaskContext {
    /// The task id.
    pub fn id(&self) -> &str {
        self.message.id()
    }

    /// The task's registered name.
    pub fn name(&self) -> &str {
        self.message.task()
    }

    /// How many times this call has been retried so far.
    pub fn retries(&self) -> u32 {
        self.message.headers.retries
    }

    /// The id of the first task of the workflow.
    pub fn root_id(&self) -> Option<&str> {
        self.message.headers.root_id.as_deref()
    }

    /// The id of the task that sent this one.
    pub fn parent_id(&self) -> Option<&str> {
        self.message.headers.parent_id.as_deref()
    }

    /// The group this task belongs to.
    pub fn group(&self) -> Option<&str> {
        self.message.headers.group.as_deref()
    }

    /// The worker's node name.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The queue the message came from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The message's extra headers.
    pub fn headers(&self) -> &Map<String, Value> {
        &self.message.headers.extra
    }

    /// Whether the soft time limit has passed.
    pub fn soft_time_limit_exceeded(&self) -> bool {
        self.soft_deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// `Err(SoftTimeLimitExceeded)` once the soft time limit has passed: call it in long
    /// loops and return the error (with `?`) to stop cleanly; the task then fails with
    /// Celery's `SoftTimeLimitExceeded`, unless it handles the error itself.
    ///
    /// # Errors
    /// [`SoftTimeLimitExceeded`] after the soft limit.
    pub fn check_soft_time_limit(&self) -> Result<(), SoftTimeLimitExceeded> {
        if self.soft_time_limit_exceeded() {
            Err(SoftTimeLimitExceeded)
        } else {
            Ok(())
        }
    }

    pub(crate) fn take_retry_request(&self) -> Option<Option<Duration>> {
        self.retry_request.lock().take()
    }
}

/// The soft time limit of a task has passed (Celery's `SoftTimeLimitExceeded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("soft time limit exceeded")]
pub struct SoftTimeLimitExceeded;

/// A task asked to run again later (Celery's `Retry`); see [`retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("retry requested{}", .countdown.map(|c| format!(" in {c:?}")).unwrap_or_default())]
pub struct Retry {
    /// The wait before the next run; `None` uses the task's retry delay.
    pub countdown: Option<Duration>,
}

/// Asks for the running task to be retried (Celery's `raise self.retry(countdown=...)`):
/// return the error this gives (`return Err(retry(...).into())`). The worker sends the
/// call again with one more retry after `countdown` (or the task's retry delay), unless
/// `max_retries` is reached, when the task fails with `MaxRetriesExceededError`.
///
/// Outside a task run by a worker, it only returns the error.
pub fn retry(countdown: Option<Duration>) -> Retry {
    if let Some(context) = current() {
        *context.retry_request.lock() = Some(countdown);
    }
    Retry { countdown }
}

thread_local! {
    static SYNC_CONTEXT: RefCell<Option<Arc<TaskContext>>> = const { RefCell::new(None) };
}

tokio::task_local! {
    static ASYNC_CONTEXT: Arc<TaskContext>;
}

/// The context of the task running on this thread (or in this async task), if any.
pub fn current() -> Option<Arc<TaskContext>> {
    ASYNC_CONTEXT
        .try_with(Arc::clone)
        .ok()
        .or_else(|| SYNC_CONTEXT.with(|c| c.borrow().clone()))
}

/// Runs `f` with `context` as the current one on this thread.
pub(crate) fn with_sync<R>(context: Arc<TaskContext>, f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            SYNC_CONTEXT.with(|c| c.borrow_mut().take());
        }
    }
    SYNC_CONTEXT.with(|c| *c.borrow_mut() = Some(context));
    let _reset = Reset;
    f()
}

/// Runs a future with `context` as the current one.
pub(crate) async fn with_async<F: std::future::Future>(
    context: Arc<TaskContext>,
    future: F,
) -> F::Output {
    ASYNC_CONTEXT.scope(context, future).await
}
