//! Named threads with joins that report panics and can time out, like Python's
//! `threading.Thread`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::ThreadId;
use std::time::Duration;

use crate::{Error, Event};

/// Numbers unnamed threads `Thread-1`, `Thread-2`, ... as Python does.
static UNNAMED: AtomicUsize = AtomicUsize::new(1);
/// Threads started here and still running.
static LIVE: AtomicUsize = AtomicUsize::new(0);

fn next_unnamed() -> String {
    format!("Thread-{}", UNNAMED.fetch_add(1, Ordering::Relaxed))
}

/// Starts a thread with a name and optionally a stack size, like constructing and
/// starting Python's `threading.Thread`.
///
/// ```
/// use braid_sync::Builder;
///
/// let handle = Builder::new()
///     .name("crunch")
///     .stack_size(256 * 1024)
///     .spawn(|| braid_sync::current().name)
///     .unwrap();
/// assert_eq!(handle.name(), "crunch");
/// assert_eq!(handle.join().unwrap(), "crunch");
/// ```
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder for an unnamed thread (it will be called `Thread-N`) with the default
    /// stack size.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Names the thread; the name shows in [`current`], in panic messages and in
    /// debuggers.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the thread's stack size in bytes.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Starts the thread running `f`.
    ///
    /// # Errors
    /// [`Error::Spawn`] when the operating system refuses to start a thread, or the name
    /// contains a NUL byte.
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let name = self.name.unwrap_or_else(next_unnamed);
        if name.contains('\0') {
            return Err(Error::Spawn(format!(
                "thread name {name:?} contains a NUL byte"
            )));
        }
        let mut builder = std::thread::Builder::new().name(name.clone());
        if let Some(bytes) = self.stack_size {
            builder = builder.stack_size(bytes);
        }
        let finished = Arc::new(Event::new());
        let exit = Exit(finished.clone());
        LIVE.fetch_add(1, Ordering::SeqCst);
        let spawned = builder.spawn(move || {
            // Dropped when `f` returns or unwinds: the thread counts as finished then.
            let _exit = exit;
            f()
        });
        match spawned {
            Ok(inner) => Ok(JoinHandle {
                inner,
                name,
                finished,
            }),
            // The closure, and with it `exit`, was dropped: LIVE is back where it was.
            Err(error) => Err(Error::Spawn(error.to_string())),
        }
    }
}

/// Marks a thread finished when dropped, on return or unwind.
struct Exit(Arc<Event>);

impl Drop for Exit {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
        self.0.set();
    }
}

/// Starts a thread named `name` running `f`; shorthand for
/// `Builder::new().name(name).spawn(f)`.
///
/// ```
/// let handle = braid_sync::spawn("adder", || 2 + 2).unwrap();
/// assert_eq!(handle.join(), Ok(4));
/// ```
///
/// # Errors
/// [`Error::Spawn`] when the operating system refuses to start a thread.
pub fn spawn<F, T>(name: impl Into<String>, f: F) -> Result<JoinHandle<T>, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().name(name).spawn(f)
}

/// A running (or finished) thread started by braid-sync: join it for its result.
///
/// Dropping the handle detaches the thread, as [`detach`](JoinHandle::detach) does.
pub struct JoinHandle<T> {
    inner: std::thread::JoinHandle<T>,
    name: String,
    finished: Arc<Event>,
}

/// [`JoinHandle::join_timeout`] gave up: either the thread is still running (its handle
/// comes back, nothing is lost) or it panicked.
pub enum JoinTimeout<T> {
    /// Still running after the timeout; join again later.
    TimedOut(JoinHandle<T>),
    /// The thread finished by panicking ([`Error::Panicked`]).
    Failed(Error),
}

impl<T> JoinHandle<T> {
    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The thread's id.
    pub fn id(&self) -> ThreadId {
        self.inner.thread().id()
    }

    /// Whether the thread has finished (Python's `is_alive()` is the opposite).
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Waits for the thread to finish and returns what it returned.
    ///
    /// # Errors
    /// [`Error::Panicked`], with the thread's name and the panic message, when it
    /// panicked.
    pub fn join(self) -> Result<T, Error> {
        let name = self.name;
        self.inner.join().map_err(|payload| Error::Panicked {
            thread: name,
            message: braid_core::panic_message(&*payload),
        })
    }

    /// Waits at most `timeout` for the thread to finish.
    ///
    /// # Errors
    /// [`JoinTimeout::TimedOut`] with this handle when the thread is still running;
    /// [`JoinTimeout::Failed`] when it panicked.
    pub fn join_timeout(self, timeout: Duration) -> Result<T, JoinTimeout<T>> {
        if self.finished.wait_timeout(timeout) {
            // The thread is past its body; joining only waits for its last clean-up.
            self.join().map_err(JoinTimeout::Failed)
        } else {
            Err(JoinTimeout::TimedOut(self))
        }
    }

    /// Lets the thread run on without ever being joined (like a Python daemon thread:
    /// nothing waits for it, and the process may exit while it runs).
    pub fn detach(self) {
        drop(self.inner);
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("name", &self.name)
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> std::fmt::Debug for JoinTimeout<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinTimeout::TimedOut(handle) => f.debug_tuple("TimedOut").field(handle).finish(),
            JoinTimeout::Failed(error) => f.debug_tuple("Failed").field(error).finish(),
        }
    }
}

/// The name and id of a thread, as [`current`] reports them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThreadInfo {
    /// The thread's name.
    pub name: String,
    /// The thread's id.
    pub id: ThreadId,
}

/// The calling thread's name and id (Python's `threading.current_thread()`).
///
/// The main thread is called `MainThread`, as in Python; a thread without a name (started
/// by other code) gets a `Thread-N` name the first time it asks, which it keeps.
///
/// ```
/// // Doc tests run on their program's main thread.
/// assert_eq!(braid_sync::current().name, "MainThread");
/// ```
pub fn current() -> ThreadInfo {
    thread_local! {
        static FALLBACK_NAME: String = next_unnamed();
    }
    let thread = std::thread::current();
    let name = match thread.name() {
        Some("main") => "MainThread".to_string(),
        Some(name) => name.to_string(),
        None => FALLBACK_NAME.with(String::clone),
    };
    ThreadInfo {
        name,
        id: thread.id(),
    }
}

/// How many threads are alive: those started through braid-sync (including pool workers)
/// and still running, plus one for the main thread (Python's `threading.active_count()`).
pub fn active_count() -> usize {
    1 + LIVE.load(Ordering::SeqCst)
}
