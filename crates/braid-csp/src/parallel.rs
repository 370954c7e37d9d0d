//! [`Parallel`], [`Sequence`], [`spawn`] and [`shutdown`]: running processes, like
//! PyCSP's functions of the same names.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use crate::Error;
use crate::block;
use crate::process::{Child, Completion, Outcome, Process};
use crate::scheduler::{Scheduler, Spawner, run_blocking_on, start_detached};

type Results<T> = Result<Vec<Option<T>>, Error>;

/// The values of processes that all finished: `Some` for one that returned, `None` for
/// one that stopped on poison or retirement (PyCSP's `None` return values); otherwise
/// the first failure, in the processes' order.
fn collect<T>(outcomes: Vec<Outcome<T>>) -> Results<T> {
    outcomes.into_iter().map(Outcome::into_result).collect()
}

async fn parallel_on<T: Send + 'static>(
    spawner: Spawner,
    processes: Vec<Process<T>>,
) -> Results<T> {
    let completions: Vec<Arc<Completion<T>>> =
        processes.into_iter().map(|p| spawner.start(p)).collect();
    let mut outcomes = Vec::with_capacity(completions.len());
    for completion in completions {
        outcomes.push(std::future::poll_fn(|cx| completion.poll_outcome(cx)).await);
    }
    collect(outcomes)
}

async fn sequence_on<T: Send + 'static>(
    spawner: Spawner,
    processes: Vec<Process<T>>,
) -> Results<T> {
    let mut values = Vec::with_capacity(processes.len());
    for process in processes {
        let completion = spawner.start(process);
        let outcome = std::future::poll_fn(|cx| completion.poll_outcome(cx)).await;
        values.push(outcome.into_result()?);
    }
    Ok(values)
}

/// Runs processes at the same time and waits for all of them (PyCSP's `Parallel`).
///
/// [`run`](Parallel::run) blocks the calling thread on the chosen [`Scheduler`]
/// (cooperative by default); inside a process, `.await` it instead: it then runs its
/// processes on the scheduler of the process that awaits it.
///
/// The result holds each process's value in order, `None` for a process that stopped on
/// poison or retirement; if one failed (a panic, an error of its own), its ends were
/// poisoned so that the others stop too, and the result is its error, once every
/// process has ended.
///
/// ```
/// use braid_csp::{Channel, Parallel, Scheduler, process};
///
/// let ch = Channel::new();
/// let (out, input) = (ch.writer(), ch.reader());
/// let results = Parallel::new([
///     process(async move {
///         out.write(21u32).await?;
///         Ok(0)
///     }),
///     process(async move { Ok(input.read().await? * 2) }),
/// ])
/// .scheduler(Scheduler::Threads)
/// .run()
/// .unwrap();
/// assert_eq!(results, [Some(0), Some(42)]);
/// ```
#[must_use = "a Parallel does nothing until it is run or awaited"]
pub struct Parallel<T = ()> {
    processes: Vec<Process<T>>,
    scheduler: Scheduler,
}

/// Runs processes one after another, each once the previous one has ended (PyCSP's
/// `Sequence`); a process that fails stops the sequence. Used like [`Parallel`].
#[must_use = "a Sequence does nothing until it is run or awaited"]
pub struct Sequence<T = ()> {
    processes: Vec<Process<T>>,
    scheduler: Scheduler,
}

macro_rules! composition {
    ($name:ident, $on:ident) => {
        impl<T: Send + 'static> $name<T> {
            /// The processes to run, in order.
            pub fn new(processes: impl IntoIterator<Item = Process<T>>) -> Self {
                $name {
                    processes: processes.into_iter().collect(),
                    scheduler: Scheduler::default(),
                }
            }

            /// Adds a process.
            pub fn and(mut self, process: Process<T>) -> Self {
                self.processes.push(process);
                self
            }

            /// The scheduler [`run`](Self::run) uses (cooperative by default).
            pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
                self.scheduler = scheduler;
                self
            }

            /// Runs the processes on the chosen scheduler, blocking the calling thread
            /// until every one has ended.
            ///
            /// # Errors
            /// The first failure of a process; [`Error::BlockingInScheduler`] when called
            /// on a thread of an async scheduler or runtime (`.await` it there).
            pub fn run(self) -> Result<Vec<Option<T>>, Error> {
                let processes = self.processes;
                run_blocking_on(self.scheduler, move |spawner| $on(spawner, processes))?
            }
        }

        impl<T: Send + 'static> IntoFuture for $name<T> {
            type Output = Result<Vec<Option<T>>, Error>;
            type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

            /// Runs the processes on the scheduler of the process (or tokio runtime)
            /// that awaits; elsewhere, each on an OS thread.
            fn into_future(self) -> Self::IntoFuture {
                Box::pin($on(Spawner::current(), self.processes))
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("processes", &self.processes)
                    .field("scheduler", &self.scheduler)
                    .finish()
            }
        }
    };
}

composition!(Parallel, parallel_on);
composition!(Sequence, sequence_on);

/// Processes spawned from outside every process, for [`shutdown`].
static DETACHED: LazyLock<Mutex<Vec<Arc<dyn Child>>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// Starts a process in the background and returns at once (PyCSP's `Spawn`).
///
/// Inside a process it runs on that process's scheduler, and the spawning process ends
/// only after it. Elsewhere it runs on the current tokio runtime if there is one, else on
/// a thread of its own with a cooperative scheduler; [`shutdown`] waits for such
/// processes.
///
/// Its outcome comes from the handle; if the handle is dropped, a failure goes to the
/// spawning process (or to `shutdown`) instead, so it is never lost.
pub fn spawn<T: Send + 'static>(process: Process<T>) -> SpawnHandle<T> {
    let completion = match crate::process::current() {
        Some(context) => {
            let completion = context.spawner.start(process);
            context.adopt(Arc::clone(&completion) as Arc<dyn Child>);
            completion
        }
        None => {
            let completion = match tokio::runtime::Handle::try_current() {
                Ok(handle) => Spawner::Tokio(handle).start(process),
                Err(_) => start_detached(process),
            };
            let mut detached = DETACHED.lock();
            detached.retain(|child| !settled(&**child));
            detached.push(Arc::clone(&completion) as Arc<dyn Child>);
            completion
        }
    };
    SpawnHandle { completion }
}

/// A child that has finished with nothing to report.
fn settled(child: &dyn Child) -> bool {
    matches!(
        child.poll_finished(&mut Context::from_waker(Waker::noop())),
        Poll::Ready(None)
    )
}

/// Waits for every process [`spawn`]ed from outside a process to end, then for every
/// network end that was closed to have told its host (PyCSP's `shutdown`): call it at
/// the end of `main` in programs that spawn processes or use network channels.
///
/// # Errors
/// The first failure of one of those processes whose handle was dropped;
/// [`Error::Unsupported`] inside a process (a process waits for the processes it
/// spawned by itself); [`Error::BlockingInScheduler`] on a scheduler's thread.
pub fn shutdown() -> Result<(), Error> {
    if crate::process::current().is_some() {
        return Err(Error::Unsupported(
            "shutdown() inside a process: a process waits for what it spawned by itself",
        ));
    }
    block::check()?;
    let children = std::mem::take(&mut *DETACHED.lock());
    let mut failure = None;
    for child in children {
        let error = block::block_on(std::future::poll_fn(|cx| child.poll_finished(cx)));
        failure = failure.or(error);
    }
    crate::net::remote::flush_all();
    failure.map_or(Ok(()), Err)
}

/// The handle of a [`spawn`]ed process: await it, or [`join`](SpawnHandle::join) it
/// from blocking code, for its value (`None` if it stopped on poison or retirement).
///
/// Dropping the handle lets the process run on; its failure then goes to whoever
/// spawned it.
#[must_use = "dropping the handle detaches the process"]
pub struct SpawnHandle<T> {
    completion: Arc<Completion<T>>,
}

impl<T> SpawnHandle<T> {
    /// True once the process has ended.
    pub fn is_finished(&self) -> bool {
        self.completion.is_finished()
    }

    /// Waits for the process, blocking the calling thread.
    ///
    /// # Errors
    /// The process's failure; [`Error::BlockingInScheduler`] on a scheduler's thread.
    pub fn join(self) -> Result<Option<T>, Error> {
        block::check()?;
        block::block_on(self)
    }
}

impl<T> Future for SpawnHandle<T> {
    type Output = Result<Option<T>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.completion.poll_outcome(cx).map(Outcome::into_result)
    }
}

impl<T> Drop for SpawnHandle<T> {
    fn drop(&mut self) {
        self.completion.detach();
    }
}

impl<T> fmt::Debug for SpawnHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
