//! [`TaskGroup`]: structured concurrency like Python's `asyncio.TaskGroup`.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use braid_core::BoxFuture;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::Error;

pin_project_lite::pin_project! {
    /// A task of the group: runs the future, catching a panic, and reports how it ended.
    /// The future is declared first so that it is dropped first: when the task is
    /// aborted, the report of its end comes after everything the future held is gone.
    struct Tracked<F, T, E> {
        #[pin]
        future: F,
        report: Option<Report<T, E>>,
    }
}

impl<F, T, E> Future for Tracked<F, T, E>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let future = this.future;
        let outcome = match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(value))) => Outcome::Value(value),
            Ok(Poll::Ready(Err(error))) => Outcome::Error(error),
            Err(payload) => Outcome::Panic(braid_core::panic_message(&*payload)),
        };
        if let Some(report) = this.report.take() {
            report.send(outcome);
        }
        Poll::Ready(())
    }
}

/// How a task of the group ended.
enum Outcome<T, E> {
    Value(T),
    Error(E),
    Panic(String),
    /// Dropped before it finished: aborted by the group, or by its runtime shutting down.
    Dropped,
}

/// What the tasks, the spawners and the joining task share, under one lock.
struct Board<T, E> {
    /// Tasks that ended and are not yet seen by `join`, with their indices.
    finished: Vec<(usize, Outcome<T, E>)>,
    /// Tasks spawned through a [`TaskSpawner`], for `join` to start.
    queued: Vec<(usize, BoxFuture<Result<T, E>>)>,
    /// Set when the group has finished or is cancelling: spawns are refused from then on.
    closed: bool,
    /// The task awaiting [`TaskGroup::join`], to wake when there is news.
    joiner: Option<Waker>,
}

struct Shared<T, E> {
    next_index: AtomicUsize,
    board: Mutex<Board<T, E>>,
}

impl<T, E> Shared<T, E> {
    fn report(&self, index: usize, outcome: Outcome<T, E>) {
        let joiner = {
            let mut board = self.board.lock();
            board.finished.push((index, outcome));
            board.joiner.take()
        };
        if let Some(joiner) = joiner {
            joiner.wake();
        }
    }
}

/// Reports a task's end exactly once: its outcome, or [`Outcome::Dropped`] when the task
/// is dropped before it finishes (so `join` never waits for a task that is gone).
struct Report<T, E> {
    shared: Arc<Shared<T, E>>,
    index: usize,
    sent: bool,
}

impl<T, E> Report<T, E> {
    fn send(mut self, outcome: Outcome<T, E>) {
        self.sent = true;
        self.shared.report(self.index, outcome);
    }
}

impl<T, E> Drop for Report<T, E> {
    fn drop(&mut self) {
        if !self.sent {
            self.shared.report(self.index, Outcome::Dropped);
        }
    }
}

/// Structured concurrency like Python's `asyncio.TaskGroup`: tasks spawned into the group
/// run concurrently (in parallel on a multi-thread runtime), [`join`](TaskGroup::join)
/// waits for them all, the first failure cancels the rest, and every failure comes back
/// together in one [`TaskGroupError`].
///
/// Each task returns `Result<T, E>`; a task fails when it returns `Err` or panics. On the
/// first failure the group aborts the other tasks (each stops at its next `.await`), waits
/// until they are gone, and returns every failure that happened, in the order they
/// happened. When all succeed, `join` returns their values in spawn order.
///
/// No task outlives its group: dropping the group, or the `join` future, aborts the tasks
/// still running. Tasks can spawn more tasks into the group while it runs through a
/// [`TaskSpawner`] (asyncio's `tg.create_task` from inside a task).
///
/// ```
/// use braid_async::{TaskFailure, TaskGroup};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut group = TaskGroup::new();
/// for x in 1..=3u64 {
///     group.spawn(async move { Ok::<_, String>(x * 10) });
/// }
/// assert_eq!(group.join().await.unwrap(), [10, 20, 30]);
///
/// let mut group = TaskGroup::new();
/// group.spawn(async { Err::<u64, _>("bad input".to_string()) });
/// group.spawn(std::future::pending()); // cancelled by the failure
/// let error = group.join().await.unwrap_err();
/// assert_eq!(error.cancelled(), 1);
/// assert!(matches!(&error.failures()[0], TaskFailure::Failed { index: 0, error } if error == "bad input"));
/// # }
/// ```
pub struct TaskGroup<T, E> {
    /// The tasks started, in spawn order of starting; for aborting them.
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared<T, E>>,
}

/// Spawns tasks into a running [`TaskGroup`] from anywhere, e.g. from inside its tasks;
/// made by [`TaskGroup::spawner`]. Cheap to clone.
pub struct TaskSpawner<T, E> {
    shared: Arc<Shared<T, E>>,
}

/// How one task of a [`TaskGroup`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskFailure<E> {
    /// The task returned `Err`.
    #[error("task {index} failed: {error}")]
    Failed {
        /// The task's spawn index.
        index: usize,
        /// Its error.
        error: E,
    },
    /// The task panicked.
    #[error("task {index} panicked: {message}")]
    Panicked {
        /// The task's spawn index.
        index: usize,
        /// The panic message.
        message: String,
    },
    /// The task was cancelled from outside the group (its runtime shut down).
    #[error("a task was cancelled from outside its group")]
    Cancelled,
}

impl<E> TaskFailure<E> {
    /// The failed task's spawn index (`None` for a task cancelled from outside).
    pub fn index(&self) -> Option<usize> {
        match self {
            TaskFailure::Failed { index, .. } | TaskFailure::Panicked { index, .. } => Some(*index),
            TaskFailure::Cancelled => None,
        }
    }

    /// The error the task returned, if it returned one.
    pub fn error(&self) -> Option<&E> {
        match self {
            TaskFailure::Failed { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Every failure of a [`TaskGroup`], like Python's `ExceptionGroup`: never empty, in the
/// order the failures happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskGroupError<E> {
    failures: Vec<TaskFailure<E>>,
    cancelled: usize,
}

impl<E> TaskGroupError<E> {
    /// Every failure, in the order they happened (at least one).
    pub fn failures(&self) -> &[TaskFailure<E>] {
        &self.failures
    }

    /// Every failure, owned.
    pub fn into_failures(self) -> Vec<TaskFailure<E>> {
        self.failures
    }

    /// The errors the failed tasks returned (panics left out).
    pub fn errors(&self) -> impl Iterator<Item = &E> {
        self.failures.iter().filter_map(TaskFailure::error)
    }

    /// How many tasks the group cancelled because of the failures (tasks spawned and
    /// not finished when the first failure came).
    pub fn cancelled(&self) -> usize {
        self.cancelled
    }
}

impl<E: std::fmt::Display> std::fmt::Display for TaskGroupError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.failures.len();
        write!(
            f,
            "{n} task{} of the group failed ({} cancelled)",
            if n == 1 { "" } else { "s" },
            self.cancelled
        )?;
        for failure in &self.failures {
            write!(f, "; {failure}")?;
        }
        Ok(())
    }
}

impl<E> std::error::Error for TaskGroupError<E>
where
    E: std::error::Error + 'static,
{
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failures
            .first()
            .map(|failure| failure as &(dyn std::error::Error + 'static))
    }
}

impl<T, E> TaskGroup<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    /// An empty group.
    pub fn new() -> Self {
        TaskGroup {
            tasks: Vec::new(),
            shared: Arc::new(Shared {
                next_index: AtomicUsize::new(0),
                board: Mutex::new(Board {
                    finished: Vec::new(),
                    queued: Vec::new(),
                    closed: false,
                    joiner: None,
                }),
            }),
        }
    }

    /// Spawns `task` into the group now (Python's `tg.create_task`); returns its index,
    /// which is its place in the values [`join`](TaskGroup::join) returns.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn spawn<F>(&mut self, task: F) -> usize
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let index = self.shared.next_index.fetch_add(1, Ordering::Relaxed);
        self.start(index, task);
        index
    }

    fn start<F>(&mut self, index: usize, task: F)
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let report = Report {
            shared: self.shared.clone(),
            index,
            sent: false,
        };
        self.tasks.push(tokio::spawn(Tracked {
            future: task,
            report: Some(report),
        }));
    }

    /// A [`TaskSpawner`] that spawns into this group, also while it is joined. Its tasks
    /// are started by [`join`](TaskGroup::join) (at once, when the group is being joined).
    pub fn spawner(&self) -> TaskSpawner<T, E> {
        TaskSpawner {
            shared: self.shared.clone(),
        }
    }

    /// How many tasks were spawned into the group.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task was spawned into the group.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits for every task (and every task spawned meanwhile through a [`TaskSpawner`]);
    /// returns their values in spawn order.
    ///
    /// # Errors
    /// A [`TaskGroupError`] with every failure when a task failed or panicked; the other
    /// tasks were cancelled, and had all stopped when it returns.
    ///
    /// # Cancel safety
    /// Cancelling the join aborts every task of the group still running (structured
    /// concurrency: the tasks cannot outlive the group), and later spawns are refused.
    pub async fn join(mut self) -> Result<Vec<T>, TaskGroupError<E>> {
        let mut values: Vec<Option<T>> = Vec::with_capacity(self.tasks.len());
        let mut failures = Vec::new();
        let mut cancelled = 0;
        let mut reported = 0;
        let mut aborting = false;
        // Room for every report up front: the tasks push without reallocating.
        self.shared.board.lock().finished.reserve(self.tasks.len());
        let mut finished = Vec::with_capacity(self.tasks.len());
        let mut queued = Vec::new();
        std::future::poll_fn(|cx| {
            loop {
                {
                    let mut board = self.shared.board.lock();
                    if board.finished.is_empty() && board.queued.is_empty() {
                        if reported == self.tasks.len() {
                            board.closed = true;
                            board.joiner = None;
                            return Poll::Ready(());
                        }
                        if !board
                            .joiner
                            .as_ref()
                            .is_some_and(|w| w.will_wake(cx.waker()))
                        {
                            board.joiner = Some(cx.waker().clone());
                        }
                        return Poll::Pending;
                    }
                    // Swapped, not taken: the buffers keep their capacity.
                    std::mem::swap(&mut board.finished, &mut finished);
                    std::mem::swap(&mut board.queued, &mut queued);
                }
                for (index, task) in queued.drain(..) {
                    if aborting {
                        cancelled += 1; // never started
                    } else {
                        self.start(index, task);
                    }
                }
                for (index, outcome) in finished.drain(..) {
                    reported += 1;
                    let failure = match outcome {
                        Outcome::Value(value) => {
                            if values.len() <= index {
                                values.resize_with(index + 1, || None);
                            }
                            values[index] = Some(value);
                            continue;
                        }
                        Outcome::Error(error) => TaskFailure::Failed { index, error },
                        Outcome::Panic(message) => TaskFailure::Panicked { index, message },
                        Outcome::Dropped if aborting => {
                            cancelled += 1;
                            continue;
                        }
                        // Not aborted by the group: its runtime is shutting down.
                        Outcome::Dropped => TaskFailure::Cancelled,
                    };
                    failures.push(failure);
                    if !aborting {
                        aborting = true;
                        self.shared.board.lock().closed = true;
                        for task in &self.tasks {
                            task.abort();
                        }
                    }
                }
            }
        })
        .await;
        // Every task has ended: the handles only detach now.
        self.tasks.clear();
        if failures.is_empty() {
            // Every task reported a value: nothing is missing here.
            Ok(values.into_iter().flatten().collect())
        } else {
            Err(TaskGroupError {
                failures,
                cancelled,
            })
        }
    }
}

impl<T, E> TaskSpawner<T, E> {
    /// Spawns `task` into the group; returns its index.
    ///
    /// # Errors
    /// [`Error::GroupClosed`] when the group has finished, or is cancelling its tasks
    /// after a failure (the task is dropped unstarted).
    pub fn spawn<F>(&self, task: F) -> Result<usize, Error>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let joiner = {
            let mut board = self.shared.board.lock();
            if board.closed {
                return Err(Error::GroupClosed);
            }
            let index = self.shared.next_index.fetch_add(1, Ordering::Relaxed);
            board.queued.push((index, Box::pin(task)));
            (index, board.joiner.take())
        };
        let (index, waker) = joiner;
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(index)
    }
}

impl<T, E> Clone for TaskSpawner<T, E> {
    fn clone(&self) -> Self {
        TaskSpawner {
            shared: self.shared.clone(),
        }
    }
}

impl<T: Send + 'static, E: Send + 'static> Default for TaskGroup<T, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, E> Drop for TaskGroup<T, E> {
    /// Refuses later spawns and aborts the tasks still running (after a `join` that
    /// finished, none is).
    fn drop(&mut self) {
        self.shared.board.lock().closed = true;
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl<T, E> std::fmt::Debug for TaskGroup<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskGroup")
            .field("spawned", &self.tasks.len())
            .finish()
    }
}

impl<T, E> std::fmt::Debug for TaskSpawner<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSpawner").finish_non_exhaustive()
    }
}
