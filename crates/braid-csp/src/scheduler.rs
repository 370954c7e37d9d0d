//! [`Scheduler`]: which threads run the processes of a network, and how a process is
//! started on them.

use std::future::Future;
use std::sync::Arc;

use crate::Error;
use crate::block;
use crate::executor::{self, Executor};
use crate::process::{
    Body, CompleteOnDrop, Completion, Outcome, Process, ProcessContext, Running, run_blocking,
};

/// Which threads run the async processes of a [`Parallel`](crate::Parallel) or
/// [`Sequence`](crate::Sequence); the same processes run unchanged on each.
///
/// Blocking processes ([`blocking_process`](crate::blocking_process)) always get an OS
/// thread of their own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheduler {
    /// Every process on the calling thread, switching at channel operations, like
    /// `pycsp.greenlets`: the fastest for fine-grained networks, with no parallelism. A
    /// process whose operations keep completing at once yields every 128 of them, so
    /// that none is starved.
    #[default]
    Cooperative,
    /// One OS thread per process, like `pycsp.parallel`'s processes: for processes that
    /// compute for long between channel operations, or that block.
    Threads,
    /// A pool of `workers` threads (0: one per core) that share the processes (tokio's
    /// multi-thread runtime): parallelism without a thread per process.
    MultiThread {
        /// How many worker threads; 0 for one per core.
        workers: usize,
    },
}

/// Where a running process starts the processes it spawns.
#[derive(Clone)]
pub(crate) enum Spawner {
    /// As tasks of a cooperative executor.
    Local(Arc<executor::Shared>),
    /// As tasks of a tokio runtime (the cooperative and multi-thread schedulers).
    Tokio(tokio::runtime::Handle),
    /// Each on an OS thread of its own.
    Threads,
}

impl std::fmt::Debug for Spawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Spawner::Local(_) => "Spawner::Local",
            Spawner::Tokio(_) => "Spawner::Tokio",
            Spawner::Threads => "Spawner::Threads",
        })
    }
}

impl Spawner {
    /// The spawner of the process being polled, else of the tokio runtime this thread is
    /// in, else OS threads.
    pub(crate) fn current() -> Spawner {
        if let Some(context) = crate::process::current() {
            return context.spawner.clone();
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => Spawner::Tokio(handle),
            Err(_) => Spawner::Threads,
        }
    }

    /// Starts `process`; its outcome arrives in the completion.
    pub(crate) fn start<T: Send + 'static>(&self, process: Process<T>) -> Arc<Completion<T>> {
        let completion = Completion::new();
        let guard = CompleteOnDrop {
            completion: Arc::clone(&completion),
            name: process.name.clone(),
        };
        let name = process.name.clone();
        let context = ProcessContext::new(name.clone(), self.clone());
        match (process.body, self) {
            (Body::Async(body), Spawner::Local(executor)) => {
                let running = Running::new(body, context);
                // A stopped executor drops the task, and the guard reports it.
                executor.spawn(async move {
                    let outcome = running.await;
                    guard.completion.complete(outcome);
                });
            }
            (Body::Async(body), Spawner::Tokio(handle)) => {
                let running = Running::new(body, context);
                // The task's JoinHandle is not needed: the outcome goes to the completion,
                // and the guard completes it if the runtime drops the task.
                drop(handle.spawn(async move {
                    let outcome = running.await;
                    guard.completion.complete(outcome);
                }));
            }
            (Body::Async(body), Spawner::Threads) => {
                let running = Running::new(body, context);
                on_thread(&name, &completion, move || {
                    guard.completion.complete(block::block_on(running));
                });
            }
            (Body::Blocking(body), _) => {
                on_thread(&name, &completion, move || {
                    guard.completion.complete(run_blocking(body, context));
                });
            }
        }
        completion
    }
}

/// Runs `f` on a new OS thread named after the process; if the thread cannot start, the
/// completion gets the error.
fn on_thread<T>(name: &str, completion: &Arc<Completion<T>>, f: impl FnOnce() + Send + 'static) {
    let thread_name: String = name
        .rsplit("::")
        .next()
        .unwrap_or(name)
        .chars()
        .take(15)
        .collect();
    if let Err(error) = std::thread::Builder::new().name(thread_name).spawn(f) {
        completion.complete(Outcome::Failed(Error::other(error)));
    }
}

/// Marks the calling thread as a scheduler's while alive.
struct SchedulerThread;

impl SchedulerThread {
    fn enter() -> Self {
        block::set_scheduler_thread(true);
        SchedulerThread
    }
}

impl Drop for SchedulerThread {
    fn drop(&mut self) {
        block::set_scheduler_thread(false);
    }
}

/// Runs `work` (given the spawner for its processes) to completion under `scheduler`,
/// blocking the calling thread.
pub(crate) fn run_blocking_on<R, F>(
    scheduler: Scheduler,
    work: impl FnOnce(Spawner) -> F,
) -> Result<R, Error>
where
    F: Future<Output = R>,
{
    block::check()?;
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::BlockingInScheduler);
    }
    match scheduler {
        Scheduler::Cooperative => {
            let mut executor = Executor::new();
            let spawner = Spawner::Local(executor.shared());
            let _flag = SchedulerThread::enter();
            Ok(executor.block_on(work(spawner)))
        }
        Scheduler::MultiThread { workers } => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if workers > 0 {
                builder.worker_threads(workers);
            }
            let runtime = builder
                .thread_name("braid-csp")
                .on_thread_start(|| block::set_scheduler_thread(true))
                .build()
                .map_err(Error::other)?;
            let spawner = Spawner::Tokio(runtime.handle().clone());
            let _flag = SchedulerThread::enter();
            Ok(runtime.block_on(work(spawner)))
        }
        Scheduler::Threads => Ok(block::block_on(work(Spawner::Threads))),
    }
}

/// Starts `process` on a thread of its own that runs a cooperative scheduler for it and
/// the processes it spawns (a `spawn` from outside every process and runtime).
pub(crate) fn start_detached<T: Send + 'static>(process: Process<T>) -> Arc<Completion<T>> {
    if let Body::Blocking(_) = process.body {
        return Spawner::Threads.start(process);
    }
    let completion = Completion::new();
    let guard = CompleteOnDrop {
        completion: Arc::clone(&completion),
        name: process.name.clone(),
    };
    let name = process.name.clone();
    on_thread(&name, &completion, move || {
        let outcome = run_blocking_on(Scheduler::Cooperative, |spawner| {
            let completion = spawner.start(process);
            std::future::poll_fn(move |cx| completion.poll_outcome(cx))
        });
        guard
            .completion
            .complete(outcome.unwrap_or_else(Outcome::Failed));
    });
    completion
}
