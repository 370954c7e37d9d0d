//! [`Channel`], its [`Reader`] and [`Writer`] ends, and their operations.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use crate::core::{Actor, After, Core, Key, ReadNow, Side, Terminate, WriteNow};
use crate::net::remote::Remote;
use crate::party::Decision;
use crate::{Error, WriteError, block, coop, process};

/// A CSP channel: any number of readers and writers, unbuffered (a write waits for a
/// reader: a rendezvous) unless made with [`Channel::buffered`].
///
/// Like PyCSP's `Channel`, the channel itself is not read or written: ask it for ends
/// with [`reader`](Channel::reader) and [`writer`](Channel::writer), and give each
/// process the ends it uses. Cloning an end adds a reader or writer, so one type covers
/// one-to-one, any-to-one, one-to-any and any-to-any channels.
///
/// An end retires when it is dropped or [`retire`](Reader::retire)d; when every reader,
/// or every writer, has retired, the channel is retired and every operation on it fails
/// with [`Error::Retired`]. When the last `Channel` handle is dropped while a side has no
/// end, the channel retires too, since that side can never get one: nothing waits for
/// ever on a channel that nobody can use.
///
/// ```
/// use braid_csp::{Channel, Parallel, process};
///
/// let ch = Channel::new();
/// let out = ch.writer();
/// let input = ch.reader();
/// let results = Parallel::new([
///     process(async move {
///         for i in 1..=3u64 {
///             out.write(i).await?;
///         }
///         Ok(0) // `out` retires here: the reader's next read fails with Retired
///     }),
///     process(async move {
///         let mut sum = 0;
///         loop {
///             match input.read().await {
///                 Ok(v) => sum += v,
///                 Err(e) if e.is_retired() => return Ok(sum),
///                 Err(e) => return Err(e),
///             }
///         }
///     }),
/// ])
/// .run()
/// .unwrap();
/// assert_eq!(results, [Some(0), Some(6)]);
/// ```
pub struct Channel<T> {
    core: Arc<Core<T>>,
}

impl<T: Send + 'static> Channel<T> {
    /// An unbuffered channel: every write waits until a reader takes the value.
    pub fn new() -> Self {
        Self::buffered(0)
    }

    /// A channel that holds up to `capacity` written values before writers wait
    /// (PyCSP's `Channel(buffer=N)`). Poison or retirement from the writers' side lets
    /// readers take what is buffered first; from the readers' side it drops it.
    pub fn buffered(capacity: usize) -> Self {
        Channel {
            core: Core::new(capacity),
        }
    }

    /// A new reading end.
    pub fn reader(&self) -> Reader<T> {
        Reader::local(Arc::clone(&self.core))
    }

    /// A new writing end.
    pub fn writer(&self) -> Writer<T> {
        Writer::local(Arc::clone(&self.core))
    }
}

impl<T: Send + 'static> Default for Channel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        self.core.lock().add_handle();
        Channel {
            core: Arc::clone(&self.core),
        }
    }
}

impl<T> Drop for Channel<T> {
    fn drop(&mut self) {
        self.core.with(|state, after| state.drop_handle(after));
    }
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel").finish_non_exhaustive()
    }
}

/// Where an end's operations go: a channel in this program, or one hosted by another
/// program over the network.
pub(crate) enum Link<T> {
    Local(Arc<Core<T>>),
    Remote(Remote<T>),
}

/// The reading end of a [`Channel`] (PyCSP's `ChannelEndRead`, `cin()`).
///
/// Clone it to add a reader. Dropping it retires it.
pub struct Reader<T> {
    pub(crate) link: Link<T>,
    term: Arc<dyn Terminate>,
    retired: AtomicBool,
}

/// The writing end of a [`Channel`] (PyCSP's `ChannelEndWrite`, `cout(value)`).
///
/// Clone it to add a writer. Dropping it retires it.
pub struct Writer<T> {
    pub(crate) link: Link<T>,
    term: Arc<dyn Terminate>,
    retired: AtomicBool,
}

macro_rules! end_common {
    ($end:ident, $side:expr) => {
        impl<T: Send + 'static> $end<T> {
            pub(crate) fn local(core: Arc<Core<T>>) -> Self {
                core.lock().join($side);
                $end {
                    term: Arc::clone(&core) as Arc<dyn Terminate>,
                    link: Link::Local(core),
                    retired: AtomicBool::new(false),
                }
            }

            pub(crate) fn remote(remote: Remote<T>) -> Self {
                $end {
                    term: remote.terminator(),
                    link: Link::Remote(remote),
                    retired: AtomicBool::new(false),
                }
            }

            /// Poisons the channel: every operation on it, by any process, now fails with
            /// [`Error::Poisoned`], and blocked ones wake with it (PyCSP's `poison`).
            /// Poisoning twice is harmless. For a network end the poison is sent to the
            /// channel's host, ahead of any later operation of this end.
            pub fn poison(&self) {
                self.term.poison($side);
            }

            /// Retires this end: its own operations now fail with [`Error::Retired`], and
            /// when every end of its side has retired, the channel retires (PyCSP's
            /// `retire`). Retiring twice is harmless; dropping an end retires it.
            pub fn retire(&self) {
                if !self.retired.swap(true, Ordering::AcqRel) {
                    self.term.leave($side);
                }
            }

            /// True once this end has been retired.
            pub fn is_retired(&self) -> bool {
                self.retired.load(Ordering::Acquire)
            }

            fn check_retired(&self) -> Result<(), Error> {
                if self.retired.load(Ordering::Acquire) {
                    Err(Error::Retired)
                } else {
                    Ok(())
                }
            }
        }

        impl<T> Drop for $end<T> {
            fn drop(&mut self) {
                if !*self.retired.get_mut() {
                    process::release(Arc::clone(&self.term), $side);
                }
            }
        }

        impl<T: Send + 'static> Clone for $end<T> {
            /// A new end on the same channel: one more reader or writer. A clone of a
            /// retired end is retired.
            fn clone(&self) -> Self {
                let clone = match &self.link {
                    Link::Local(core) => $end::local(Arc::clone(core)),
                    Link::Remote(remote) => $end::remote(remote.clone_end()),
                };
                if self.is_retired() {
                    clone.retire();
                }
                clone
            }
        }

        impl<T> fmt::Debug for $end<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($end))
                    .field("remote", &matches!(self.link, Link::Remote(_)))
                    .field("retired", &self.retired.load(Ordering::Relaxed))
                    .finish()
            }
        }
    };
}

end_common!(Reader, Side::Reader);
end_common!(Writer, Side::Writer);

impl<T: Send + 'static> Reader<T> {
    /// Reads a value, waiting for a writer (PyCSP's `cin()`).
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Retired`] once the channel (or this end) is; for a
    /// network end, [`Error::ConnectionLost`] or a decoding error.
    ///
    /// # Cancel safety
    /// Cancel safe: a value handed to a read that is then dropped goes back to the
    /// channel, ahead of every other, for the next reader. (For a network end, a value
    /// the host had already taken for a dropped read is lost.)
    pub fn read(&self) -> Read<'_, T> {
        Read {
            end: self,
            state: ReadState::Start,
        }
    }

    /// [`read`](Self::read), blocking the calling thread: for blocking processes and for
    /// code outside any process.
    ///
    /// # Errors
    /// Those of `read`, and [`Error::BlockingInScheduler`] on a thread of an async
    /// scheduler (use `read().await` there).
    pub fn blocking_read(&self) -> Result<T, Error> {
        block::blocking(self.read())?
    }
}

impl<T: Send + 'static> Writer<T> {
    /// Writes a value, waiting until a reader takes it (or, on a buffered channel, until
    /// there is room) (PyCSP's `cout(value)`).
    ///
    /// # Errors
    /// [`Error::Poisoned`] or [`Error::Retired`] (and, for a network end,
    /// [`Error::ConnectionLost`]), with the value that was not written.
    ///
    /// # Cancel safety
    /// If the future is dropped before it completes, the value was not written and is
    /// dropped with it. (For a network end, the host may have written it already.)
    pub fn write(&self, value: T) -> Write<'_, T> {
        Write {
            end: self,
            state: WriteState::Start(Some(value)),
        }
    }

    /// [`write`](Self::write), blocking the calling thread.
    ///
    /// # Errors
    /// Those of `write`, and [`Error::BlockingInScheduler`] on a thread of an async
    /// scheduler, each with the value.
    pub fn blocking_write(&self, value: T) -> Result<(), WriteError<T>> {
        if let Err(error) = block::check() {
            return Err(WriteError { error, value });
        }
        block::block_on(self.write(value))
    }
}

/// The channel behind a local end.
fn core_of<T>(link: &Link<T>) -> &Arc<Core<T>> {
    match link {
        Link::Local(core) => core,
        Link::Remote(_) => unreachable!("only a local end's operation blocks in its channel"),
    }
}

enum ReadState<T> {
    Start,
    Blocked(Key),
    Remote(Pin<Box<dyn Future<Output = Result<T, Error>> + Send>>),
    Done,
}

/// The future of [`Reader::read`].
#[must_use = "futures do nothing unless polled"]
pub struct Read<'a, T: Send + 'static> {
    end: &'a Reader<T>,
    state: ReadState<T>,
}

impl<T: Send + 'static> Future for Read<'_, T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            ReadState::Start => {
                if !coop::proceed(cx) {
                    return Poll::Pending;
                }
                this.end.check_retired()?;
                let core = match &this.end.link {
                    Link::Local(core) => core,
                    Link::Remote(remote) => {
                        let mut future = remote.read();
                        let poll = future.as_mut().poll(cx);
                        this.state = match poll {
                            Poll::Ready(_) => ReadState::Done,
                            Poll::Pending => ReadState::Remote(future),
                        };
                        return poll;
                    }
                };
                let mut after = After::new();
                let mut state = core.lock();
                let poll = match state.read_now(Actor::Plain, &mut after) {
                    ReadNow::Value(value) => Poll::Ready(Ok(value)),
                    ReadNow::Failed(error) => Poll::Ready(Err(error)),
                    ReadNow::Wait => {
                        this.state = ReadState::Blocked(state.block_read(cx.waker().clone()));
                        Poll::Pending
                    }
                    ReadNow::OwnTaken => unreachable!("a plain read is never decided by others"),
                };
                drop(state);
                after.finish();
                if poll.is_ready() {
                    this.state = ReadState::Done;
                }
                poll
            }
            ReadState::Blocked(key) => {
                match core_of(&this.end.link).lock().poll_single(*key, cx.waker()) {
                    None => Poll::Pending,
                    Some((decision, value)) => {
                        let result = match decision {
                            Decision::Fired(_) => {
                                Ok(value.expect("a fired read's slot holds the value"))
                            }
                            Decision::Failed(_, error) => Err(error),
                        };
                        this.state = ReadState::Done;
                        Poll::Ready(result)
                    }
                }
            }
            ReadState::Remote(future) => {
                let poll = future.as_mut().poll(cx);
                if poll.is_ready() {
                    this.state = ReadState::Done;
                }
                poll
            }
            ReadState::Done => panic!("`Read` polled after it completed"),
        }
    }
}

impl<T: Send + 'static> Drop for Read<'_, T> {
    fn drop(&mut self) {
        if let ReadState::Blocked(key) = self.state {
            core_of(&self.end.link).with(|state, after| {
                if let (Some(Decision::Fired(_)), Some(value)) = state.cancel_single(key, after) {
                    state.put_back(value, after);
                }
            });
        }
    }
}

enum WriteState<T> {
    Start(Option<T>),
    Blocked(Key),
    Remote(Pin<Box<dyn Future<Output = Result<(), WriteError<T>>> + Send>>),
    Done,
}

/// The future of [`Writer::write`].
#[must_use = "futures do nothing unless polled"]
pub struct Write<'a, T: Send + 'static> {
    end: &'a Writer<T>,
    state: WriteState<T>,
}

// The value is never pinned: it is moved out on the first poll.
impl<T: Send + 'static> Unpin for Write<'_, T> {}

impl<T: Send + 'static> Future for Write<'_, T> {
    type Output = Result<(), WriteError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            WriteState::Start(value) => {
                if !coop::proceed(cx) {
                    return Poll::Pending;
                }
                let value = value.take().expect("a write's value is taken once");
                if let Err(error) = this.end.check_retired() {
                    this.state = WriteState::Done;
                    return Poll::Ready(Err(WriteError { error, value }));
                }
                let core = match &this.end.link {
                    Link::Local(core) => core,
                    Link::Remote(remote) => {
                        let mut future = remote.write(value);
                        let poll = future.as_mut().poll(cx);
                        this.state = match poll {
                            Poll::Ready(_) => WriteState::Done,
                            Poll::Pending => WriteState::Remote(future),
                        };
                        return poll;
                    }
                };
                let mut after = After::new();
                let mut state = core.lock();
                let poll = match state.write_now(Actor::Plain, value, &mut after) {
                    WriteNow::Done => Poll::Ready(Ok(())),
                    WriteNow::Failed(error, value) => Poll::Ready(Err(WriteError { error, value })),
                    WriteNow::Wait(value) => {
                        this.state =
                            WriteState::Blocked(state.block_write(cx.waker().clone(), value));
                        Poll::Pending
                    }
                    WriteNow::OwnTaken(_) => {
                        unreachable!("a plain write is never decided by others")
                    }
                };
                drop(state);
                after.finish();
                if poll.is_ready() {
                    this.state = WriteState::Done;
                }
                poll
            }
            WriteState::Blocked(key) => {
                match core_of(&this.end.link).lock().poll_single(*key, cx.waker()) {
                    None => Poll::Pending,
                    Some((decision, value)) => {
                        let result = match decision {
                            Decision::Fired(_) => Ok(()),
                            Decision::Failed(_, error) => Err(WriteError {
                                error,
                                value: value.expect("a failed write's slot still holds its value"),
                            }),
                        };
                        this.state = WriteState::Done;
                        Poll::Ready(result)
                    }
                }
            }
            WriteState::Remote(future) => {
                let poll = future.as_mut().poll(cx);
                if poll.is_ready() {
                    this.state = WriteState::Done;
                }
                poll
            }
            WriteState::Done => panic!("`Write` polled after it completed"),
        }
    }
}

impl<T: Send + 'static> Drop for Write<'_, T> {
    fn drop(&mut self) {
        if let WriteState::Blocked(key) = self.state {
            let unsent =
                core_of(&self.end.link).with(|state, after| state.cancel_single(key, after).1);
            // A value that was not written is dropped outside the channel's lock.
            drop(unsent);
        }
    }
}
