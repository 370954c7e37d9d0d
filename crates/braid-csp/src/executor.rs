//! The cooperative scheduler: a single-thread executor in the spirit of PyCSP's greenlet
//! scheduler. Every process of a network is a task on the calling thread; a task that
//! waits on a channel yields, and the peer that completes the operation puts it back in
//! the run queue.
//!
//! It is made for fine-grained networks: a wake-up from the executor's own thread is a
//! flag and a push onto a thread-local queue, with no lock and no reference counting.
//! Wake-ups and spawns from other threads (a blocking process, the timer, the network
//! thread) go through a locked queue and unpark the thread.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use parking_lot::Mutex;

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The id of the future `block_on` runs, which is not in the task table.
const MAIN: usize = usize::MAX;

/// How many tasks run between two looks at the queue of other threads' wake-ups.
const FAIRNESS: u32 = 64;

thread_local! {
    /// The executor running on this thread (its address) and its local run queue.
    static LOCAL: RefCell<Option<(usize, Rc)>> = const { RefCell::new(None) };
}

type Rc = std::rc::Rc<RefCell<VecDeque<usize>>>;

/// What other threads reach: wake-ups and new tasks, and the thread to unpark.
pub(crate) struct Shared {
    thread: Thread,
    remote: Mutex<Remote>,
    /// Set when `remote` holds something, so the executor checks it cheaply.
    pending: AtomicBool,
    /// Set by wakes; cleared before the executor sleeps.
    notified: AtomicBool,
}

#[derive(Default)]
struct Remote {
    woken: Vec<usize>,
    spawned: Vec<Task>,
    /// The executor has stopped: spawns are refused.
    closed: bool,
}

impl Shared {
    fn address(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// Adds a task; false (and the task is dropped) when the executor has stopped.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> bool {
        let task: Task = Box::pin(task);
        {
            let mut remote = self.remote.lock();
            if remote.closed {
                drop(remote);
                drop(task);
                return false;
            }
            remote.spawned.push(task);
        }
        self.pending.store(true, Ordering::Release);
        self.unpark();
        true
    }

    fn unpark(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.thread.unpark();
        }
    }
}

/// A task's waker.
struct TaskWaker {
    id: usize,
    /// In a run queue (or finished: then it stays set and wakes are ignored).
    queued: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let address = self.shared.address();
        let local = LOCAL
            .try_with(|local| match &*local.borrow() {
                Some((running, queue)) if *running == address => {
                    queue.borrow_mut().push_back(self.id);
                    true
                }
                _ => false,
            })
            .unwrap_or(false);
        if !local {
            self.shared.remote.lock().woken.push(self.id);
            self.shared.pending.store(true, Ordering::Release);
            self.shared.unpark();
        }
    }
}

struct Slot {
    task: Task,
    waker: Waker,
    handle: Arc<TaskWaker>,
}

/// A single-thread executor; see the module's documentation.
pub(crate) struct Executor {
    shared: Arc<Shared>,
    tasks: Vec<Option<Slot>>,
    free: Vec<usize>,
    queue: Rc,
}

impl Executor {
    pub(crate) fn new() -> Self {
        Executor {
            shared: Arc::new(Shared {
                thread: thread::current(),
                remote: Mutex::new(Remote::default()),
                pending: AtomicBool::new(false),
                notified: AtomicBool::new(false),
            }),
            tasks: Vec::new(),
            free: Vec::new(),
            queue: Rc::default(),
        }
    }

    /// Where other code spawns tasks onto this executor.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    fn insert(&mut self, task: Task) {
        let id = self.free.pop().unwrap_or(self.tasks.len());
        let handle = Arc::new(TaskWaker {
            id,
            queued: AtomicBool::new(true),
            shared: Arc::clone(&self.shared),
        });
        let slot = Slot {
            task,
            waker: Waker::from(Arc::clone(&handle)),
            handle,
        };
        if id == self.tasks.len() {
            self.tasks.push(Some(slot));
        } else {
            self.tasks[id] = Some(slot);
        }
        self.queue.borrow_mut().push_back(id);
    }

    /// Moves other threads' wake-ups and spawns into the local queue.
    fn take_remote(&mut self, main_woken: &Cell<bool>) {
        if !self.shared.pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let remote = std::mem::take(&mut *self.shared.remote.lock());
        let mut queue = self.queue.borrow_mut();
        for id in remote.woken {
            if id == MAIN {
                main_woken.set(true);
            } else {
                queue.push_back(id);
            }
        }
        drop(queue);
        for task in remote.spawned {
            self.insert(task);
        }
    }

    /// Runs `future` and every task spawned onto this executor until `future` is done.
    pub(crate) fn block_on<F: Future>(&mut self, future: F) -> F::Output {
        let _local = LocalGuard::enter(self.shared.address(), Rc::clone(&self.queue));
        let main = Arc::new(TaskWaker {
            id: MAIN,
            queued: AtomicBool::new(false),
            shared: Arc::clone(&self.shared),
        });
        let main_waker = Waker::from(Arc::clone(&main));
        let mut future = pin!(future);
        let main_woken = Cell::new(true);
        loop {
            if (main_woken.replace(false) || main.queued.swap(false, Ordering::AcqRel))
                && let Poll::Ready(value) =
                    future.as_mut().poll(&mut Context::from_waker(&main_waker))
            {
                return value;
            }
            let mut ran = 0;
            loop {
                if ran % FAIRNESS == FAIRNESS - 1 {
                    self.take_remote(&main_woken);
                }
                let next = self.queue.borrow_mut().pop_front();
                let Some(id) = next else { break };
                ran += 1;
                if id == MAIN {
                    main_woken.set(true);
                    continue;
                }
                let Some(slot) = self.tasks.get_mut(id).and_then(Option::as_mut) else {
                    continue;
                };
                slot.handle.queued.store(false, Ordering::Release);
                let poll = slot
                    .task
                    .as_mut()
                    .poll(&mut Context::from_waker(&slot.waker));
                if poll.is_ready() {
                    // Stays "queued" for good, so that late wakes are ignored.
                    slot.handle.queued.store(true, Ordering::Release);
                    self.tasks[id] = None;
                    self.free.push(id);
                }
                if main.queued.load(Ordering::Acquire) {
                    break;
                }
            }
            if main.queued.load(Ordering::Acquire) || main_woken.get() {
                continue;
            }
            self.take_remote(&main_woken);
            if !self.queue.borrow().is_empty() || main_woken.get() {
                continue;
            }
            // Nothing to run: sleep until another thread wakes a task or spawns one.
            while !self.shared.notified.swap(false, Ordering::AcqRel) {
                thread::park();
            }
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        let spawned = {
            let mut remote = self.shared.remote.lock();
            remote.closed = true;
            std::mem::take(&mut remote.spawned)
        };
        drop(spawned);
    }
}

/// Registers the executor as this thread's while it runs.
struct LocalGuard(Option<(usize, Rc)>);

impl LocalGuard {
    fn enter(address: usize, queue: Rc) -> Self {
        LocalGuard(LOCAL.with(|local| local.borrow_mut().replace((address, queue))))
    }
}

impl Drop for LocalGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        LOCAL.with(|local| *local.borrow_mut() = previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_spawned_from_anywhere_run_and_wake_each_other() {
        let mut executor = Executor::new();
        let shared = executor.shared();
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<u32>();
        assert!(shared.spawn(async move {
            let v = rx.await.unwrap();
            done_tx.send(v + 1).unwrap();
        }));
        let remote = Arc::clone(&shared);
        let sender = thread::spawn(move || {
            assert!(remote.spawn(async move { tx.send(41).unwrap() }));
        });
        assert_eq!(executor.block_on(done_rx), Ok(42));
        sender.join().unwrap();
        drop(executor);
        assert!(!shared.spawn(async {}), "a stopped executor refuses tasks");
    }
}
