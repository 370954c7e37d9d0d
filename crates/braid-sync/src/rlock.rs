//! [`RLock`]: a re-entrant lock, like Python's `threading.RLock`.

use std::thread::ThreadId;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, ReentrantMutex, ReentrantMutexGuard};

use crate::Error;

/// A lock that the thread holding it may take again, like Python's `threading.RLock`.
///
/// Each [`acquire`](RLock::acquire) (or [`hold`](RLock::hold)) by the owner adds one level;
/// the lock is free for other threads once every level was released. Guards give shared
/// access (`&T`), since the owner may hold several at once: put a `Cell` or `RefCell`
/// inside for data to change. [`hold`](RLock::hold) and [`release`](RLock::release) are
/// Python's unpaired `acquire()` / `release()`, for code that takes and releases the lock
/// in different places; releasing a lock the caller does not hold is
/// [`Error::NotOwner`].
///
/// ```
/// use std::cell::RefCell;
/// use braid_sync::RLock;
///
/// let log = RLock::new(RefCell::new(Vec::new()));
/// fn record(log: &RLock<RefCell<Vec<&'static str>>>, line: &'static str) {
///     log.acquire().borrow_mut().push(line);
/// }
/// let outer = log.acquire();
/// record(&log, "taken again by the same thread");
/// assert_eq!(log.recursion_depth(), 1);
/// drop(outer);
/// assert_eq!(log.acquire().borrow().len(), 1);
///
/// log.hold();
/// assert!(log.is_owned());
/// log.release().unwrap();
/// assert!(log.release().is_err(), "not held any more");
/// ```
pub struct RLock<T = ()> {
    state: Mutex<Owner>,
    freed: Condvar,
    /// Only the owner touches it; the re-entrant mutex makes `RLock<RefCell<_>>` shareable.
    data: ReentrantMutex<T>,
}

#[derive(Default)]
struct Owner {
    thread: Option<ThreadId>,
    depth: usize,
}

/// One level of an [`RLock`] held by this thread: shared access to the value; releases the
/// level on drop.
#[must_use = "the level is released as soon as the guard is dropped"]
pub struct RLockGuard<'a, T> {
    data: Option<ReentrantMutexGuard<'a, T>>,
    lock: &'a RLock<T>,
}

impl<T> RLock<T> {
    /// A re-entrant lock around `value`, not held.
    pub fn new(value: T) -> Self {
        RLock {
            state: Mutex::new(Owner::default()),
            freed: Condvar::new(),
            data: ReentrantMutex::new(value),
        }
    }

    /// Takes one level of the lock, blocking while another thread holds it.
    pub fn acquire(&self) -> RLockGuard<'_, T> {
        self.hold();
        self.guard()
    }

    /// Takes one level, giving up after `timeout` (`None`).
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<RLockGuard<'_, T>> {
        self.hold_timeout(timeout).then(|| self.guard())
    }

    /// Takes one level if no other thread holds the lock now.
    pub fn try_acquire(&self) -> Option<RLockGuard<'_, T>> {
        self.take(Some(Duration::ZERO)).then(|| self.guard())
    }

    /// Takes one level without a guard (Python's `acquire()`); pair it with
    /// [`release`](RLock::release).
    pub fn hold(&self) {
        self.take(None);
    }

    /// Like [`hold`](RLock::hold), giving up after `timeout`; true when taken.
    pub fn hold_timeout(&self, timeout: Duration) -> bool {
        self.take(Some(timeout))
    }

    /// Releases one level taken by [`hold`](RLock::hold) (Python's `release()`).
    ///
    /// # Errors
    /// [`Error::NotOwner`] when the calling thread does not hold the lock.
    pub fn release(&self) -> Result<(), Error> {
        let me = std::thread::current().id();
        let mut owner = self.state.lock();
        if owner.thread != Some(me) {
            return Err(Error::NotOwner);
        }
        owner.depth -= 1;
        if owner.depth == 0 {
            owner.thread = None;
            drop(owner);
            self.freed.notify_one();
        }
        Ok(())
    }

    /// Whether the calling thread holds the lock.
    pub fn is_owned(&self) -> bool {
        self.state.lock().thread == Some(std::thread::current().id())
    }

    /// How many levels the calling thread holds (0 when it does not hold the lock).
    pub fn recursion_depth(&self) -> usize {
        let owner = self.state.lock();
        if owner.thread == Some(std::thread::current().id()) {
            owner.depth
        } else {
            0
        }
    }

    /// The value, consuming the lock.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    /// The value, through a unique borrow (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Takes a level, waiting at most `timeout` (`None`: for ever); true when taken.
    fn take(&self, timeout: Option<Duration>) -> bool {
        let me = std::thread::current().id();
        let deadline = timeout.and_then(crate::shim::deadline);
        let mut owner = self.state.lock();
        loop {
            match owner.thread {
                None => {
                    owner.thread = Some(me);
                    owner.depth = 1;
                    return true;
                }
                Some(thread) if thread == me => {
                    owner.depth += 1;
                    return true;
                }
                Some(_) => {}
            }
            match deadline {
                None => self.freed.wait(&mut owner),
                Some(deadline) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    // Timed out or not, the loop re-checks the owner first.
                    self.freed.wait_until(&mut owner, deadline);
                }
            }
        }
    }

    /// A guard for a level this thread has just taken.
    fn guard(&self) -> RLockGuard<'_, T> {
        RLockGuard {
            // Never blocks: only the owner locks `data`, and this thread is the owner.
            data: Some(self.data.lock()),
            lock: self,
        }
    }
}

impl<T> std::ops::Deref for RLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.data {
            Some(data) => data,
            None => unreachable!("the data guard lives until drop"),
        }
    }
}

impl<T> Drop for RLockGuard<'_, T> {
    fn drop(&mut self) {
        // Give up the data before the level, so the next owner never waits on it.
        self.data = None;
        if let Err(error) = self.lock.release() {
            tracing::error!(%error, "an RLock guard outlived its level: release() was called too often");
        }
    }
}

impl<T: Default> Default for RLock<T> {
    fn default() -> Self {
        RLock::new(T::default())
    }
}

impl<T> std::fmt::Debug for RLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let owner = self.state.lock();
        f.debug_struct("RLock")
            .field("owner", &owner.thread)
            .field("depth", &owner.depth)
            .finish_non_exhaustive()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for RLockGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RLockGuard").field(&**self).finish()
    }
}
