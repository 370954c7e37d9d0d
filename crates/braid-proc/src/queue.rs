//! [`Queue`], [`JoinableQueue`] and [`SimpleQueue`]: first-in first-out queues between
//! processes, like Python's `multiprocessing.Queue` family, on a ring buffer in shared
//! memory.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use braid_core::Codec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::mutex::RawMutex;
use crate::region::Region;
use crate::sys::{self, Signal};
use crate::{Error, Result, share};

// The header's layout: each field at a fixed offset.
const LOCK: usize = 0;
const NOT_EMPTY: usize = 4;
const NOT_EMPTY_SLEEPERS: usize = 8;
const NOT_FULL: usize = 12;
const NOT_FULL_SLEEPERS: usize = 16;
const ALL_DONE: usize = 20;
const ALL_DONE_SLEEPERS: usize = 24;
const HEAD: usize = 32;
const TAIL: usize = 40;
const COUNT: usize = 48;
const UNFINISHED: usize = 56;
const MAXSIZE: usize = 64;
const CAPACITY: usize = 72;
const MAGIC: usize = 80;
const DATA: usize = 128;

const MAGIC_VALUE: u64 = 0x6272_6169_6471_7565; // "braidque"

/// The default size of a queue's buffer of encoded items: 4 MiB of shared memory
/// (the system only backs the pages the queue has used).
pub const DEFAULT_BUFFER: usize = 4 << 20;

/// The shared ring all three queues are made of.
#[derive(Clone)]
struct Ring {
    region: Arc<Region>,
}

impl Ring {
    fn new(maxsize: usize, buffer: usize) -> Result<Ring> {
        let buffer = buffer.max(64);
        let region = Region::anonymous("queue", DATA + buffer)?;
        region.u64(MAXSIZE).store(maxsize as u64, Ordering::Relaxed);
        region.u64(CAPACITY).store(buffer as u64, Ordering::Relaxed);
        region.u64(MAGIC).store(MAGIC_VALUE, Ordering::Release);
        Ok(Ring {
            region: Arc::new(region),
        })
    }

    fn open(fd: std::os::fd::OwnedFd) -> Result<Ring> {
        let region = Region::from_fd(fd)?;
        if region.len() <= DATA || region.u64(MAGIC).load(Ordering::Acquire) != MAGIC_VALUE {
            return Err(Error::os(
                "opening a queue",
                "the shared memory is not a queue",
            ));
        }
        Ok(Ring {
            region: Arc::new(region),
        })
    }

    fn mutex(&self) -> RawMutex<'_> {
        RawMutex::new(self.region.u32(LOCK))
    }

    fn not_empty(&self) -> Signal<'_> {
        Signal {
            seq: self.region.u32(NOT_EMPTY),
            sleepers: self.region.u32(NOT_EMPTY_SLEEPERS),
        }
    }

    fn not_full(&self) -> Signal<'_> {
        Signal {
            seq: self.region.u32(NOT_FULL),
            sleepers: self.region.u32(NOT_FULL_SLEEPERS),
        }
    }

    fn all_done(&self) -> Signal<'_> {
        Signal {
            seq: self.region.u32(ALL_DONE),
            sleepers: self.region.u32(ALL_DONE_SLEEPERS),
        }
    }

    fn field(&self, offset: usize) -> &AtomicU64 {
        self.region.u64(offset)
    }

    fn capacity(&self) -> u64 {
        self.field(CAPACITY).load(Ordering::Relaxed)
    }

    fn maxsize(&self) -> u64 {
        self.field(MAXSIZE).load(Ordering::Relaxed)
    }

    fn copy_in(&self, pos: u64, data: &[u8]) {
        let cap = self.capacity();
        let at = (pos % cap) as usize;
        let first = data.len().min(cap as usize - at);
        self.region.write(DATA + at, &data[..first]);
        if first < data.len() {
            self.region.write(DATA, &data[first..]);
        }
    }

    fn copy_out(&self, pos: u64, out: &mut [u8]) {
        let cap = self.capacity();
        let at = (pos % cap) as usize;
        let first = out.len().min(cap as usize - at);
        self.region.read(DATA + at, &mut out[..first]);
        if first < out.len() {
            self.region.read(DATA, &mut out[first..]);
        }
    }

    /// Puts one encoded item, waiting for room until `deadline`; `Ok(false)` on timeout.
    fn put(&self, item: &[u8], deadline: Option<Instant>, wait: bool) -> Result<bool> {
        let need = 4 + item.len() as u64;
        if need > self.capacity() {
            return Err(Error::TooLarge {
                size: item.len(),
                capacity: self.capacity() as usize,
            });
        }
        loop {
            let seen = self.not_full().current();
            {
                let Some(guard) = self.mutex().lock_until(deadline) else {
                    return Ok(false);
                };
                let head = self.field(HEAD).load(Ordering::Relaxed);
                let tail = self.field(TAIL).load(Ordering::Relaxed);
                let count = self.field(COUNT).load(Ordering::Relaxed);
                let maxsize = self.maxsize();
                let room = self.capacity() - (tail - head) >= need;
                if room && (maxsize == 0 || count < maxsize) {
                    self.copy_in(tail, &(item.len() as u32).to_le_bytes());
                    self.copy_in(tail + 4, item);
                    self.field(UNFINISHED).fetch_add(1, Ordering::Relaxed);
                    self.field(COUNT).store(count + 1, Ordering::Relaxed);
                    // The publishing store: a reader sees the item whole or not at all.
                    self.field(TAIL).store(tail + need, Ordering::Release);
                    drop(guard);
                    self.not_empty().notify(1);
                    return Ok(true);
                }
            }
            if !wait || sys::expired(deadline) {
                return Ok(false);
            }
            self.not_full().wait(seen, deadline, None);
        }
    }

    /// Takes the oldest encoded item, waiting until `deadline`; `Ok(None)` on timeout.
    fn get(&self, deadline: Option<Instant>, wait: bool) -> Result<Option<Vec<u8>>> {
        loop {
            let seen = self.not_empty().current();
            {
                let Some(guard) = self.mutex().lock_until(deadline) else {
                    return Ok(None);
                };
                let head = self.field(HEAD).load(Ordering::Relaxed);
                let tail = self.field(TAIL).load(Ordering::Acquire);
                if tail != head {
                    let mut len = [0u8; 4];
                    self.copy_out(head, &mut len);
                    let len = u32::from_le_bytes(len) as u64;
                    if 4 + len > tail - head {
                        return Err(Error::os("reading a queue", "corrupt item length"));
                    }
                    let mut item = vec![0u8; len as usize];
                    self.copy_out(head + 4, &mut item);
                    let count = self.field(COUNT).load(Ordering::Relaxed);
                    self.field(COUNT)
                        .store(count.saturating_sub(1), Ordering::Relaxed);
                    self.field(HEAD).store(head + 4 + len, Ordering::Release);
                    drop(guard);
                    self.not_full().notify(1);
                    return Ok(Some(item));
                }
            }
            if !wait || sys::expired(deadline) {
                return Ok(None);
            }
            self.not_empty().wait(seen, deadline, None);
        }
    }

    fn len(&self) -> usize {
        self.field(COUNT).load(Ordering::Relaxed) as usize
    }

    fn task_done(&self) -> Result<()> {
        let guard = self.mutex().lock();
        let unfinished = self.field(UNFINISHED).load(Ordering::Relaxed);
        if unfinished == 0 {
            return Err(Error::TooManyTaskDone);
        }
        self.field(UNFINISHED)
            .store(unfinished - 1, Ordering::Relaxed);
        drop(guard);
        if unfinished == 1 {
            self.all_done().notify(u32::MAX);
        }
        Ok(())
    }

    fn join(&self, deadline: Option<Instant>) -> bool {
        loop {
            let seen = self.all_done().current();
            if self.field(UNFINISHED).load(Ordering::Acquire) == 0 {
                return true;
            }
            if sys::expired(deadline) {
                return false;
            }
            self.all_done().wait(seen, deadline, None);
        }
    }
}

/// A first-in first-out queue of `T` shared by any number of producer and consumer
/// processes (and threads), like Python's `multiprocessing.Queue`.
///
/// Items are encoded with serde into a ring buffer in shared memory guarded by a lock on
/// that memory; the caller keeps the value it puts. A waiting `get` or `put` spins for
/// a few microseconds before it sleeps, so a hand-off between running processes costs
/// about a microsecond. A process killed while it held the queue's lock does not block
/// the others: they take the lock over after a short wait, and an item it was half-way
/// through writing is never seen.
///
/// `maxsize` bounds the number of items (0: no bound); independently, the encoded items
/// must fit in the queue's buffer ([`DEFAULT_BUFFER`], or the size given to
/// [`with_buffer`](Queue::with_buffer)): a `put` that finds the buffer full waits, like a
/// put on a full bounded queue, and an item larger than the whole buffer is refused
/// with [`Error::TooLarge`].
///
/// Pass a queue to a child in its start arguments (a [`Process`](crate::Process)'s or a
/// pool initializer's); the child gets a handle on the same queue.
///
/// ```
/// use braid_proc::Queue;
///
/// let q = Queue::<String>::bounded(2).unwrap();
/// q.put(&"a".to_string()).unwrap();
/// q.put(&"b".to_string()).unwrap();
/// assert!(q.try_put(&"c".to_string()).is_err()); // full
/// assert_eq!(q.get().unwrap(), "a");
/// assert_eq!(q.qsize(), 1);
/// ```
pub struct Queue<T> {
    ring: Ring,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Queue<T> {
    /// An unbounded queue (bounded only by its buffer, [`DEFAULT_BUFFER`]).
    ///
    /// # Errors
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn new() -> Result<Self> {
        Self::with_buffer(0, DEFAULT_BUFFER)
    }

    /// A queue of at most `maxsize` items (0: unbounded).
    ///
    /// # Errors
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn bounded(maxsize: usize) -> Result<Self> {
        Self::with_buffer(maxsize, DEFAULT_BUFFER)
    }

    /// A queue of at most `maxsize` items (0: unbounded) whose encoded items share a
    /// buffer of `buffer` bytes.
    ///
    /// # Errors
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn with_buffer(maxsize: usize, buffer: usize) -> Result<Self> {
        Ok(Queue {
            ring: Ring::new(maxsize, buffer)?,
            _items: PhantomData,
        })
    }

    /// The number of items in the queue now (others may change it at once).
    pub fn qsize(&self) -> usize {
        self.ring.len()
    }

    /// Whether the queue is empty now.
    pub fn is_empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether the queue holds `maxsize` items now (never for an unbounded queue).
    pub fn is_full(&self) -> bool {
        let max = self.ring.maxsize() as usize;
        max > 0 && self.qsize() >= max
    }

    /// The bound on items; 0 for none.
    pub fn maxsize(&self) -> usize {
        self.ring.maxsize() as usize
    }

    fn put_bytes(&self, item: &[u8], deadline: Option<Instant>, wait: bool) -> Result<bool> {
        self.ring.put(item, deadline, wait)
    }
}

impl<T: Serialize> Queue<T> {
    /// Puts an item, waiting for room as long as it takes.
    ///
    /// # Errors
    /// An encoding error; [`Error::TooLarge`].
    pub fn put(&self, item: &T) -> Result<()> {
        let bytes = share::encode(item)?;
        self.put_bytes(&bytes, None, true).map(drop)
    }

    /// Puts an item, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the queue stayed full; as [`put`](Queue::put).
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<()> {
        let bytes = share::encode(item)?;
        if self.put_bytes(&bytes, sys::deadline(timeout), true)? {
            Ok(())
        } else {
            Err(Error::Timeout(timeout))
        }
    }

    /// Puts an item if there is room now.
    ///
    /// # Errors
    /// [`Error::Full`]; as [`put`](Queue::put).
    pub fn try_put(&self, item: &T) -> Result<()> {
        let bytes = share::encode(item)?;
        if self.put_bytes(&bytes, None, false)? {
            Ok(())
        } else {
            Err(Error::Full)
        }
    }
}

impl<T: DeserializeOwned> Queue<T> {
    fn decode(bytes: &[u8]) -> Result<T> {
        Codec::Binary.decode(bytes).map_err(Error::from)
    }

    /// Takes the oldest item, waiting as long as it takes.
    ///
    /// # Errors
    /// A decoding error (the item was not a `T`).
    pub fn get(&self) -> Result<T> {
        match self.ring.get(None, true)? {
            Some(bytes) => Self::decode(&bytes),
            None => Err(Error::Empty),
        }
    }

    /// Takes the oldest item, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when nothing came; a decoding error.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        match self.ring.get(sys::deadline(timeout), true)? {
            Some(bytes) => Self::decode(&bytes),
            None => Err(Error::Timeout(timeout)),
        }
    }

    /// Takes the oldest item if there is one now.
    ///
    /// # Errors
    /// [`Error::Empty`]; a decoding error.
    pub fn try_get(&self) -> Result<T> {
        match self.ring.get(None, false)? {
            Some(bytes) => Self::decode(&bytes),
            None => Err(Error::Empty),
        }
    }
}

fn serialize_ring<S: Serializer>(
    ring: &Ring,
    what: &'static str,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    share::serialize_fd(ring.region.fd(), what, s)
}

fn deserialize_ring<'de, D: Deserializer<'de>>(
    d: D,
    what: &'static str,
) -> std::result::Result<Ring, D::Error> {
    let fd = share::deserialize_fd(d, what)?;
    Ring::open(fd).map_err(serde::de::Error::custom)
}

impl<T> Clone for Queue<T> {
    /// Another handle on the same queue (as passing it to a process gives one).
    fn clone(&self) -> Self {
        Queue {
            ring: self.ring.clone(),
            _items: PhantomData,
        }
    }
}

impl<T> Serialize for Queue<T> {
    /// A queue serialises only into a process's start arguments.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serialize_ring(&self.ring, "Queue", s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Queue {
            ring: deserialize_ring(d, "Queue")?,
            _items: PhantomData,
        })
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.qsize())
            .field("maxsize", &self.maxsize())
            .field("buffer", &self.ring.capacity())
            .finish()
    }
}

/// A [`Queue`] that also counts unfinished items, like Python's
/// `multiprocessing.JoinableQueue`: each `put` adds one, each
/// [`task_done`](JoinableQueue::task_done) takes one away, and
/// [`join`](JoinableQueue::join) waits until none is left. It derefs to [`Queue`] for
/// `put`, `get` and the rest.
///
/// ```
/// use braid_proc::JoinableQueue;
///
/// let q = JoinableQueue::<u32>::new().unwrap();
/// q.put(&1).unwrap();
/// assert!(!q.join_timeout(std::time::Duration::from_millis(1)));
/// q.get().unwrap();
/// q.task_done().unwrap();
/// q.join();
/// assert!(q.task_done().is_err()); // one too many
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> JoinableQueue<T> {
    /// An unbounded joinable queue.
    ///
    /// # Errors
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn new() -> Result<Self> {
        Ok(JoinableQueue {
            queue: Queue::new()?,
        })
    }

    /// A joinable queue of at most `maxsize` items (0: unbounded).
    ///
    /// # Errors
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn bounded(maxsize: usize) -> Result<Self> {
        Ok(JoinableQueue {
            queue: Queue::bounded(maxsize)?,
        })
    }

    /// Marks one item taken from the queue as processed.
    ///
    /// # Errors
    /// [`Error::TooManyTaskDone`] when more calls than items put were made.
    pub fn task_done(&self) -> Result<()> {
        self.queue.ring.task_done()
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) {
        self.queue.ring.join(None);
    }

    /// Like [`join`](JoinableQueue::join), giving up after `timeout`; true when all was
    /// done.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.queue.ring.join(sys::deadline(timeout))
    }
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> Clone for JoinableQueue<T> {
    /// Another handle on the same queue (as passing it to a process gives one).
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> Serialize for JoinableQueue<T> {
    /// Serialises only into a process's start arguments.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serialize_ring(&self.queue.ring, "JoinableQueue", s)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(JoinableQueue {
            queue: Queue {
                ring: deserialize_ring(d, "JoinableQueue")?,
                _items: PhantomData,
            },
        })
    }
}

impl<T> std::fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .field(
                "unfinished",
                &self.queue.ring.field(UNFINISHED).load(Ordering::Relaxed),
            )
            .finish()
    }
}

/// The plain queue of Python's `multiprocessing.SimpleQueue`: unbounded, with `put`,
/// `get` and `is_empty` only.
///
/// ```
/// use braid_proc::SimpleQueue;
///
/// let q = SimpleQueue::new().unwrap();
/// q.put(&(1, "one".to_string())).unwrap();
/// assert_eq!(q.get().unwrap(), (1, "one".to_string()));
/// assert!(q.is_empty());
/// ```
pub struct SimpleQueue<T> {
    queue: Queue<T>,
}

impl<T> SimpleQueue<T> {
    /// A new, empty queue.
    ///
    /// # Errors
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn new() -> Result<Self> {
        Ok(SimpleQueue {
            queue: Queue::new()?,
        })
    }

    /// Whether the queue is empty now.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

impl<T: Serialize> SimpleQueue<T> {
    /// Puts an item.
    ///
    /// # Errors
    /// An encoding error; [`Error::TooLarge`].
    pub fn put(&self, item: &T) -> Result<()> {
        self.queue.put(item)
    }
}

impl<T: DeserializeOwned> SimpleQueue<T> {
    /// Takes the oldest item, waiting as long as it takes.
    ///
    /// # Errors
    /// A decoding error.
    pub fn get(&self) -> Result<T> {
        self.queue.get()
    }
}

impl<T> Clone for SimpleQueue<T> {
    /// Another handle on the same queue (as passing it to a process gives one).
    fn clone(&self) -> Self {
        SimpleQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> Serialize for SimpleQueue<T> {
    /// Serialises only into a process's start arguments.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serialize_ring(&self.queue.ring, "SimpleQueue", s)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(SimpleQueue {
            queue: Queue {
                ring: deserialize_ring(d, "SimpleQueue")?,
                _items: PhantomData,
            },
        })
    }
}

impl<T> std::fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("queue", &self.queue)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_wraps_around_the_buffer() {
        let q = Queue::<Vec<u8>>::with_buffer(0, 100).unwrap();
        for round in 0..50u8 {
            let item = vec![round; (round as usize % 7) * 5];
            q.put(&item).unwrap();
            q.put(&item).unwrap();
            assert_eq!(q.get().unwrap(), item);
            assert_eq!(q.get().unwrap(), item);
        }
        assert!(q.is_empty());
        assert!(matches!(q.put(&vec![0; 200]), Err(Error::TooLarge { .. })));
    }

    #[test]
    fn bounded_waits_and_times_out() {
        let q = Queue::<u32>::bounded(1).unwrap();
        q.put(&1).unwrap();
        assert!(q.is_full());
        assert_eq!(q.try_put(&2), Err(Error::Full));
        let t = Duration::from_millis(3);
        assert_eq!(q.put_timeout(&2, t), Err(Error::Timeout(t)));
        assert_eq!(q.get().unwrap(), 1);
        assert_eq!(q.try_get(), Err(Error::Empty));
        assert_eq!(q.get_timeout(t), Err(Error::Timeout(t)));
    }

    #[test]
    fn many_threads_lose_nothing() {
        let q = Arc::new(Queue::<u64>::bounded(8).unwrap());
        let producers: Vec<_> = (0..3u64)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        q.put(&(p * 1000 + i)).unwrap();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || (0..750).map(|_| q.get().unwrap()).sum::<u64>())
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let total: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        let expected: u64 = (0..3u64)
            .map(|p| (0..500).map(|i| p * 1000 + i).sum::<u64>())
            .sum();
        assert_eq!(total, expected);
    }
}
