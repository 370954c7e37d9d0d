//! The progress engine of one rank: writes what it sends into its rings, reads what
//! arrives into per-source queues, matches receives and requests, and waits (spinning
//! briefly, then sleeping on its doorbell) while watching for dead peers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::segment::{RankState, Segment, process_alive};
use crate::{Error, Result};

/// Bytes of the header in front of every message in a ring.
pub(crate) const HDR: usize = 24;
/// A large message is published in steps of this many bytes so that the receiver copies
/// out while the sender still copies in.
const CHUNK: usize = 64 << 10;
/// How long a waiter spins (yielding) before it sleeps, unless `BRAID_MPI_SPIN_US` says
/// otherwise: a futex sleep and wake-up costs about 20 µs each way on small virtual
/// machines, so a reply that comes within the budget is caught without one.
const SPIN_BUDGET: Duration = Duration::from_micros(200);

/// The environment variable that sets the spin budget in microseconds (like Open MPI's
/// `mpi_yield_when_idle`, a knob for oversubscribed machines: 0 sleeps at once).
pub const SPIN_ENV: &str = "BRAID_MPI_SPIN_US";

fn spin_budget() -> Duration {
    std::env::var(SPIN_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(SPIN_BUDGET, Duration::from_micros)
}
/// How long a sleeping waiter sleeps at most before it checks for dead peers again.
const SLEEP_SLICE: Duration = Duration::from_millis(20);
/// How often a waiter checks that the launcher process still runs.
const LAUNCHER_CHECK: Duration = Duration::from_millis(200);

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A serde value encoded with postcard.
    Object = 1,
    /// A typed buffer of plain numbers.
    Buffer = 2,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Object => "object",
            Kind::Buffer => "buffer",
        }
    }
}

/// The header of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: Kind,
    /// The element kind's code for buffers, 0 for objects.
    pub elem: u8,
    /// The communicator context.
    pub ctx: u32,
    pub tag: i32,
    /// Payload bytes.
    pub len: u64,
}

impl Header {
    fn encode(&self) -> [u8; HDR] {
        let mut out = [0u8; HDR];
        out[0] = self.kind as u8;
        out[1] = self.elem;
        out[4..8].copy_from_slice(&self.ctx.to_le_bytes());
        out[8..12].copy_from_slice(&self.tag.to_le_bytes());
        out[16..24].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8; HDR]) -> Option<Header> {
        let kind = match bytes[0] {
            1 => Kind::Object,
            2 => Kind::Buffer,
            _ => return None,
        };
        let word = |r: std::ops::Range<usize>| -> [u8; 4] { bytes[r].try_into().unwrap_or([0; 4]) };
        Some(Header {
            kind,
            elem: bytes[1],
            ctx: u32::from_le_bytes(word(4..8)),
            tag: i32::from_le_bytes(word(8..12)),
            len: u64::from_le_bytes(bytes[16..24].try_into().unwrap_or([0; 8])),
        })
    }
}

/// A message that has fully arrived.
#[derive(Debug)]
pub(crate) struct Message {
    /// The sender's world rank.
    pub src: usize,
    pub hdr: Header,
    pub data: Vec<u8>,
}

/// What a receive matches: a context, a source (world rank) or any, a tag or any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pattern {
    pub ctx: u32,
    pub src: Option<usize>,
    pub tag: Option<i32>,
}

impl Pattern {
    fn matches(&self, src: usize, hdr: &Header) -> bool {
        hdr.ctx == self.ctx
            && self.src.is_none_or(|s| s == src)
            && self.tag.is_none_or(|t| t == hdr.tag)
    }
}

/// What a blocked call waits on, to know when waiting is hopeless.
#[derive(Debug, Clone)]
pub(crate) enum Wait {
    /// A message from this world rank, or from any.
    Recv(Option<usize>),
    /// Room in the ring to this world rank.
    Send(usize),
    /// Every one of these.
    All(Vec<Wait>),
    /// Any one of these.
    Any(Vec<Wait>),
}

struct Outgoing {
    hdr: [u8; HDR],
    data: Vec<u8>,
    /// Header and payload bytes already in the ring.
    written: usize,
    req: Option<u64>,
}

enum Sink {
    Owned(Vec<u8>),
    Direct,
}

struct Partial {
    hdr: Header,
    sink: Sink,
    filled: usize,
}

#[derive(Default)]
struct Incoming {
    queue: VecDeque<Message>,
    partial: Option<Partial>,
}

enum ReqState {
    Send {
        done: bool,
    },
    Recv {
        pattern: Pattern,
        msg: Option<Message>,
    },
}

/// Where a direct receive puts its bytes.
pub(crate) enum DirectSink<'a> {
    /// Straight into the caller's buffer (any message that fits).
    Buf(&'a mut [u8]),
    /// Through a small staging buffer into `fold(byte_offset, bytes)`, for a message of
    /// exactly `len` bytes: a reduction combines what arrives without a full-size copy.
    /// Chunks hold whole elements of up to 16 bytes.
    Fold {
        len: usize,
        fold: &'a mut dyn FnMut(usize, &[u8]) -> Result<()>,
    },
}

impl DirectSink<'_> {
    fn accepts(&self, len: usize) -> bool {
        match self {
            DirectSink::Buf(buf) => len <= buf.len(),
            DirectSink::Fold { len: want, .. } => len == *want,
        }
    }
}

/// Bytes of the staging buffer of a folding receive (fits in L2 with the ring chunk).
const STAGING: usize = 64 << 10;

/// A blocking receive that streams its message straight into the caller's buffer.
pub(crate) struct Direct<'a> {
    pub pattern: Pattern,
    pub elem: u8,
    pub sink: DirectSink<'a>,
    /// Set once a message went to `buf`: its sender and header.
    pub got: Option<(usize, Header)>,
    pub done: bool,
}

/// What the spin-then-sleep of a waiter has done so far.
#[derive(Default)]
struct Idle {
    started: Option<Instant>,
    spins: u32,
}

/// One rank's engine.
pub(crate) struct Engine {
    seg: Arc<Segment>,
    rank: usize,
    size: usize,
    cap: u64,
    tails: Vec<u64>,
    heads: Vec<u64>,
    out: Vec<VecDeque<Outgoing>>,
    out_pending: usize,
    inc: Vec<Incoming>,
    posted: Vec<(u64, Pattern)>,
    reqs: HashMap<u64, ReqState>,
    next_req: u64,
    /// The next communicator context this rank has not used (see `Comm::dup`).
    pub next_ctx: u32,
    launcher: Option<u32>,
    launcher_checked: Instant,
    spin: Duration,
    /// A buffer the collectives borrow for what they receive before combining it, kept
    /// between calls so that large reductions do not fault in fresh pages every time.
    pub scratch: Vec<u64>,
    staging: Vec<u64>,
}

impl Engine {
    pub(crate) fn new(seg: Arc<Segment>, rank: usize) -> Engine {
        let size = seg.size();
        let cap = seg.capacity() as u64;
        let launcher = match seg.launcher_pid().load(Ordering::Acquire) {
            0 => None,
            pid => Some(pid),
        };
        let tails = (0..size)
            .map(|dst| seg.tail(rank, dst).load(Ordering::Acquire))
            .collect();
        let heads = (0..size)
            .map(|src| seg.head(src, rank).load(Ordering::Acquire))
            .collect();
        seg.set_state(rank, RankState::Running);
        Engine {
            seg,
            rank,
            size,
            cap,
            tails,
            heads,
            out: (0..size).map(|_| VecDeque::new()).collect(),
            out_pending: 0,
            inc: (0..size).map(|_| Incoming::default()).collect(),
            posted: Vec::new(),
            reqs: HashMap::new(),
            next_req: 1,
            next_ctx: 1,
            launcher,
            launcher_checked: Instant::now(),
            spin: spin_budget(),
            scratch: Vec::new(),
            staging: Vec::new(),
        }
    }

    pub(crate) fn rank(&self) -> usize {
        self.rank
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    fn free(&self, dst: usize) -> usize {
        let head = self.seg.head(self.rank, dst).load(Ordering::SeqCst);
        (self.cap - (self.tails[dst] - head)) as usize
    }

    /// Writes as much of `hdr` + `data` (of which `written` bytes are already in the ring)
    /// as fits into the ring to `dst`; returns the new `written`.
    fn write_some(
        &mut self,
        dst: usize,
        hdr: &[u8; HDR],
        data: &[u8],
        mut written: usize,
    ) -> usize {
        let total = HDR + data.len();
        let mut free = self.free(dst);
        let start = written;
        loop {
            if written < HDR {
                if free < HDR {
                    break;
                }
                self.seg.ring_write(self.rank, dst, self.tails[dst], hdr);
                self.tails[dst] += HDR as u64;
                free -= HDR;
                written = HDR;
            }
            let from = written - HDR;
            // Small messages go in with their header in one publication; large ones in
            // chunks so that the receiver starts copying out early.
            let n = (data.len() - from).min(free).min(CHUNK);
            if n > 0 {
                self.seg
                    .ring_write(self.rank, dst, self.tails[dst], &data[from..from + n]);
                self.tails[dst] += n as u64;
                free -= n;
                written += n;
            }
            if written > start {
                self.seg
                    .tail(self.rank, dst)
                    .store(self.tails[dst], Ordering::SeqCst);
                self.seg.ring_doorbell(dst);
            }
            if written == total || n == 0 {
                break;
            }
            if free == 0 {
                free = self.free(dst);
                if free == 0 {
                    break;
                }
            }
        }
        if written < total {
            self.seg
                .want_space(self.rank, dst)
                .store(1, Ordering::SeqCst);
        }
        written
    }

    /// Pushes queued sends; returns whether any byte moved.
    fn push(&mut self) -> bool {
        if self.out_pending == 0 {
            return false;
        }
        let mut moved = false;
        for dst in 0..self.size {
            while let Some(mut item) = self.out[dst].pop_front() {
                let before = item.written;
                item.written = self.write_some(dst, &item.hdr, &item.data, item.written);
                moved |= item.written > before;
                if item.written == HDR + item.data.len() {
                    self.out_pending -= 1;
                    if let Some(id) = item.req {
                        self.reqs.insert(id, ReqState::Send { done: true });
                    }
                } else {
                    self.out[dst].push_front(item);
                    break;
                }
            }
        }
        moved
    }

    /// Reads what has arrived from `src`; returns whether any byte moved.
    fn pull(&mut self, src: usize, direct: &mut Option<Direct<'_>>) -> Result<bool> {
        let seg = Arc::clone(&self.seg);
        let ring_tail = seg.tail(src, self.rank);
        let mut moved = false;
        loop {
            let tail = ring_tail.load(Ordering::Acquire);
            let mut avail = (tail - self.heads[src]) as usize;
            if avail == 0 {
                break;
            }
            if self.inc[src].partial.is_none() {
                if avail < HDR {
                    break;
                }
                let mut raw = [0u8; HDR];
                self.seg
                    .ring_read(src, self.rank, self.heads[src], &mut raw);
                self.heads[src] += HDR as u64;
                avail -= HDR;
                let hdr = Header::decode(&raw).ok_or_else(|| {
                    Error::os(
                        format!("reading the ring from rank {src}"),
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "corrupt header"),
                    )
                })?;
                let len =
                    usize::try_from(hdr.len).map_err(|_| Error::invalid("message too long"))?;
                let to_direct = direct.as_ref().is_some_and(|d| {
                    d.got.is_none()
                        && d.pattern.matches(src, &hdr)
                        && hdr.kind == Kind::Buffer
                        && hdr.elem == d.elem
                        && d.sink.accepts(len)
                }) && !self.posted.iter().any(|(_, p)| p.matches(src, &hdr));
                let sink = if to_direct {
                    if let Some(d) = direct.as_mut() {
                        d.got = Some((src, hdr));
                    }
                    Sink::Direct
                } else {
                    Sink::Owned(vec![0u8; len])
                };
                self.inc[src].partial = Some(Partial {
                    hdr,
                    sink,
                    filled: 0,
                });
                moved = true;
            }
            let Some(mut partial) = self.inc[src].partial.take() else {
                break;
            };
            let len = partial.hdr.len as usize;
            let mut n = (len - partial.filled).min(avail);
            if n > 0 {
                let range = partial.filled..partial.filled + n;
                match &mut partial.sink {
                    Sink::Owned(data) => {
                        self.seg
                            .ring_read(src, self.rank, self.heads[src], &mut data[range])
                    }
                    Sink::Direct => match direct.as_mut().map(|d| &mut d.sink) {
                        Some(DirectSink::Buf(buf)) => {
                            self.seg
                                .ring_read(src, self.rank, self.heads[src], &mut buf[range]);
                        }
                        Some(DirectSink::Fold { fold, .. }) => {
                            n = n.min(STAGING);
                            if partial.filled + n < len {
                                n -= n % 16;
                            }
                            if n == 0 {
                                self.inc[src].partial = Some(partial);
                                break;
                            }
                            if self.staging.is_empty() {
                                self.staging = vec![0u64; STAGING / 8];
                            }
                            let staging =
                                &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.staging)[..n];
                            self.seg.ring_read(src, self.rank, self.heads[src], staging);
                            fold(partial.filled, staging)?;
                        }
                        None => {
                            // Only the receive that owns the buffer reads into it.
                            self.inc[src].partial = Some(partial);
                            break;
                        }
                    },
                }
                self.heads[src] += n as u64;
                partial.filled += n;
                moved = true;
            }
            self.seg
                .head(src, self.rank)
                .store(self.heads[src], Ordering::SeqCst);
            let space = self.seg.want_space(src, self.rank);
            if space.load(Ordering::SeqCst) != 0 {
                space.store(0, Ordering::SeqCst);
                self.seg.ring_doorbell(src);
            }
            if partial.filled < len {
                self.inc[src].partial = Some(partial);
                continue;
            }
            match partial.sink {
                Sink::Owned(data) => self.deliver(Message {
                    src,
                    hdr: partial.hdr,
                    data,
                }),
                Sink::Direct => {
                    if let Some(d) = direct.as_mut() {
                        d.done = true;
                    }
                    // The direct receive is complete: let it return before reading on.
                    break;
                }
            }
        }
        Ok(moved)
    }

    fn deliver(&mut self, msg: Message) {
        if let Some(i) = self
            .posted
            .iter()
            .position(|(_, p)| p.matches(msg.src, &msg.hdr))
        {
            let (id, pattern) = self.posted.remove(i);
            self.reqs.insert(
                id,
                ReqState::Recv {
                    pattern,
                    msg: Some(msg),
                },
            );
        } else {
            let src = msg.src;
            self.inc[src].queue.push_back(msg);
        }
    }

    /// Moves every byte it can in both directions; returns whether any moved.
    pub(crate) fn progress(&mut self, direct: &mut Option<Direct<'_>>) -> Result<bool> {
        let mut moved = self.push();
        for src in 0..self.size {
            if direct.as_ref().is_some_and(|d| d.done) {
                break;
            }
            moved |= self.pull(src, direct)?;
        }
        Ok(moved)
    }

    fn work_pending(&self, sending_to: Option<usize>) -> bool {
        (0..self.size)
            .any(|src| self.seg.tail(src, self.rank).load(Ordering::SeqCst) != self.heads[src])
            || (0..self.size).any(|dst| {
                (!self.out[dst].is_empty() || sending_to == Some(dst)) && self.free(dst) > 0
            })
    }

    fn gone(&self, rank: usize) -> bool {
        matches!(
            self.seg.state(rank),
            RankState::Finished | RankState::Failed
        )
    }

    /// The error that makes `wait` hopeless, if there is one now.
    fn hopeless(&self, wait: &Wait) -> Option<Error> {
        match wait {
            Wait::Recv(Some(src)) => {
                let drained = || {
                    self.seg.tail(*src, self.rank).load(Ordering::Acquire) == self.heads[*src]
                        && self.inc[*src].partial.is_none()
                };
                (*src != self.rank && self.gone(*src) && drained())
                    .then_some(Error::PeerGone { rank: *src })
            }
            Wait::Recv(None) => {
                let all_gone = (0..self.size).filter(|r| *r != self.rank).all(|r| {
                    self.gone(r)
                        && self.seg.tail(r, self.rank).load(Ordering::Acquire) == self.heads[r]
                        && self.inc[r].partial.is_none()
                });
                all_gone.then_some(Error::AllPeersGone)
            }
            Wait::Send(dst) => {
                (*dst != self.rank && self.gone(*dst)).then_some(Error::PeerGone { rank: *dst })
            }
            Wait::All(waits) => waits.iter().find_map(|w| self.hopeless(w)),
            Wait::Any(waits) => {
                let mut first = None;
                for w in waits {
                    match self.hopeless(w) {
                        Some(e) => {
                            first.get_or_insert(e);
                        }
                        None => return None,
                    }
                }
                first
            }
        }
    }

    fn check_faults(&mut self, wait: &Wait) -> Result<()> {
        if let Some(rank) = self.seg.aborted() {
            return Err(Error::Aborted { rank });
        }
        if let Some(error) = self.hopeless(wait) {
            return Err(error);
        }
        if let Some(pid) = self.launcher
            && self.launcher_checked.elapsed() >= LAUNCHER_CHECK
        {
            self.launcher_checked = Instant::now();
            if !process_alive(pid) {
                return Err(Error::LauncherGone { pid });
            }
        }
        Ok(())
    }

    /// Called when nothing moved: spins, yields, then sleeps on the doorbell.
    fn idle(&mut self, idle: &mut Idle, wait: &Wait, sending_to: Option<usize>) -> Result<()> {
        self.check_faults(wait)?;
        let started = *idle.started.get_or_insert_with(Instant::now);
        idle.spins += 1;
        if idle.spins < 16 {
            for _ in 0..(1u32 << idle.spins.min(5)) {
                std::hint::spin_loop();
            }
            return Ok(());
        }
        if started.elapsed() < self.spin {
            std::thread::yield_now();
            return Ok(());
        }
        let seen = self.seg.announce_sleep(self.rank);
        if self.work_pending(sending_to) || self.seg.aborted().is_some() {
            self.seg.cancel_sleep(self.rank);
            return Ok(());
        }
        self.seg.sleep(self.rank, seen, SLEEP_SLICE);
        *idle = Idle::default();
        Ok(())
    }

    /// Makes progress until `poll` returns a value; fails instead of waiting forever
    /// when `wait` becomes hopeless or the job aborts.
    pub(crate) fn block_until<R>(
        &mut self,
        wait: Wait,
        sending_to: Option<usize>,
        mut poll: impl FnMut(&mut Engine) -> Result<Option<R>>,
    ) -> Result<R> {
        if let Some(r) = poll(self)? {
            return Ok(r);
        }
        let mut idle = Idle::default();
        loop {
            let moved = self.progress(&mut None)?;
            if let Some(r) = poll(self)? {
                return Ok(r);
            }
            if moved {
                idle = Idle::default();
            } else {
                self.idle(&mut idle, &wait, sending_to)?;
            }
        }
    }

    /// Sends `data` to `dst`, returning once it is all in the ring (or queued behind
    /// earlier non-blocking sends and then written).
    pub(crate) fn send(&mut self, dst: usize, hdr: Header, data: &[u8]) -> Result<()> {
        if let Some(rank) = self.seg.aborted() {
            return Err(Error::Aborted { rank });
        }
        let raw = hdr.encode();
        if !self.out[dst].is_empty() {
            let id = self.enqueue(dst, raw, data.to_vec(), 0);
            return self.wait_send(id, dst);
        }
        let total = HDR + data.len();
        let mut written = self.write_some(dst, &raw, data, 0);
        if written == total {
            return Ok(());
        }
        self.block_until(Wait::Send(dst), Some(dst), |engine| {
            written = engine.write_some(dst, &raw, data, written);
            Ok((written == total).then_some(()))
        })
    }

    fn enqueue(&mut self, dst: usize, hdr: [u8; HDR], data: Vec<u8>, written: usize) -> u64 {
        let id = self.next_req;
        self.next_req += 1;
        self.reqs.insert(id, ReqState::Send { done: false });
        self.out[dst].push_back(Outgoing {
            hdr,
            data,
            written,
            req: Some(id),
        });
        self.out_pending += 1;
        id
    }

    fn wait_send(&mut self, id: u64, dst: usize) -> Result<()> {
        self.block_until(Wait::Send(dst), None, |engine| engine.test_send(id))
    }

    /// Starts a send that never blocks: what does not fit in the ring now is copied and
    /// written as the receiver makes room. Returns the request, or `None` when the whole
    /// message is already in the ring.
    pub(crate) fn isend(&mut self, dst: usize, hdr: Header, data: &[u8]) -> Result<Option<u64>> {
        if let Some(rank) = self.seg.aborted() {
            return Err(Error::Aborted { rank });
        }
        let raw = hdr.encode();
        let written = if self.out[dst].is_empty() {
            self.write_some(dst, &raw, data, 0)
        } else {
            0
        };
        if written == HDR + data.len() {
            return Ok(None);
        }
        Ok(Some(self.enqueue(dst, raw, data.to_vec(), written)))
    }

    /// Like [`Engine::isend`], taking an owned payload (no copy).
    pub(crate) fn isend_owned(
        &mut self,
        dst: usize,
        hdr: Header,
        data: Vec<u8>,
    ) -> Result<Option<u64>> {
        if let Some(rank) = self.seg.aborted() {
            return Err(Error::Aborted { rank });
        }
        let raw = hdr.encode();
        let written = if self.out[dst].is_empty() {
            self.write_some(dst, &raw, &data, 0)
        } else {
            0
        };
        if written == HDR + data.len() {
            return Ok(None);
        }
        Ok(Some(self.enqueue(dst, raw, data, written)))
    }

    /// Whether the send request `id` has finished.
    pub(crate) fn test_send(&mut self, id: u64) -> Result<Option<()>> {
        match self.reqs.get(&id) {
            Some(ReqState::Send { done: true }) => {
                self.reqs.remove(&id);
                Ok(Some(()))
            }
            Some(ReqState::Send { done: false }) => Ok(None),
            _ => Err(Error::RequestDone),
        }
    }

    fn take_queued(&mut self, pattern: &Pattern, peek: bool) -> Option<Result<Message, Header>> {
        let sources: Box<dyn Iterator<Item = usize>> = match pattern.src {
            Some(src) => Box::new(std::iter::once(src)),
            None => Box::new(0..self.size),
        };
        for src in sources {
            let queue = &mut self.inc[src].queue;
            if let Some(i) = queue.iter().position(|m| pattern.matches(m.src, &m.hdr)) {
                if peek {
                    return Some(Err(queue[i].hdr));
                }
                return queue.remove(i).map(Ok);
            }
        }
        None
    }

    /// The sender and header of the first queued message matching `pattern`.
    pub(crate) fn peek(&mut self, pattern: &Pattern) -> Option<(usize, Header)> {
        let sources: Vec<usize> = match pattern.src {
            Some(src) => vec![src],
            None => (0..self.size).collect(),
        };
        for src in sources {
            if let Some(m) = self.inc[src]
                .queue
                .iter()
                .find(|m| pattern.matches(m.src, &m.hdr))
            {
                return Some((m.src, m.hdr));
            }
        }
        None
    }

    /// Receives the next message matching `pattern`, waiting for it.
    pub(crate) fn recv(&mut self, pattern: Pattern) -> Result<Message> {
        self.block_until(Wait::Recv(pattern.src), None, |engine| {
            Ok(engine.take_queued(&pattern, false).and_then(Result::ok))
        })
    }

    /// Receives a typed buffer straight into `buf` when the next matching message is one
    /// that fits; otherwise returns the message as it arrived for the caller to check.
    pub(crate) fn recv_direct(
        &mut self,
        pattern: Pattern,
        elem: u8,
        sink: DirectSink<'_>,
    ) -> Result<Result<(usize, Header), Message>> {
        if let Some(Ok(msg)) = self.take_queued(&pattern, false) {
            return Ok(Err(msg));
        }
        let mut direct = Some(Direct {
            pattern,
            elem,
            sink,
            got: None,
            done: false,
        });
        let wait = Wait::Recv(pattern.src);
        let mut idle = Idle::default();
        loop {
            let moved = self.progress(&mut direct)?;
            if let Some(d) = direct.as_ref()
                && d.done
                && let Some(got) = d.got
            {
                return Ok(Ok(got));
            }
            if direct.as_ref().is_some_and(|d| d.got.is_none())
                && let Some(Ok(msg)) = self.take_queued(&pattern, false)
            {
                return Ok(Err(msg));
            }
            if moved {
                idle = Idle::default();
            } else {
                self.idle(&mut idle, &wait, None)?;
            }
        }
    }

    /// Waits until a message matching `pattern` has arrived; returns its sender and header.
    pub(crate) fn probe(&mut self, pattern: Pattern) -> Result<(usize, Header)> {
        self.block_until(Wait::Recv(pattern.src), None, |engine| {
            Ok(engine.peek(&pattern))
        })
    }

    /// Like [`Engine::probe`], without waiting.
    pub(crate) fn iprobe(&mut self, pattern: Pattern) -> Result<Option<(usize, Header)>> {
        if let Some(rank) = self.seg.aborted() {
            return Err(Error::Aborted { rank });
        }
        self.progress(&mut None)?;
        Ok(self.peek(&pattern))
    }

    /// Posts a receive; the message goes to the request when it arrives.
    pub(crate) fn irecv(&mut self, pattern: Pattern) -> Result<u64> {
        let id = self.next_req;
        self.next_req += 1;
        let msg = match self.take_queued(&pattern, false) {
            Some(Ok(msg)) => Some(msg),
            _ => None,
        };
        if msg.is_none() {
            self.posted.push((id, pattern));
        }
        self.reqs.insert(id, ReqState::Recv { pattern, msg });
        Ok(id)
    }

    /// The message of the receive request `id`, if it has arrived.
    pub(crate) fn test_recv(&mut self, id: u64) -> Result<Option<Message>> {
        match self.reqs.get_mut(&id) {
            Some(ReqState::Recv { msg, .. }) => match msg.take() {
                Some(m) => {
                    self.reqs.remove(&id);
                    Ok(Some(m))
                }
                None => Ok(None),
            },
            _ => Err(Error::RequestDone),
        }
    }

    /// Whether the request `id` has completed (or is unknown: already collected).
    pub(crate) fn is_done(&self, id: u64) -> bool {
        match self.reqs.get(&id) {
            Some(ReqState::Send { done }) => *done,
            Some(ReqState::Recv { msg, .. }) => msg.is_some(),
            None => true,
        }
    }

    /// Whether any of the requests `ids` has completed.
    pub(crate) fn any_done(&self, ids: &[u64]) -> bool {
        ids.iter().any(|id| self.is_done(*id))
    }

    /// What the request `id` waits on.
    pub(crate) fn wait_of(&self, id: u64) -> Wait {
        match self.reqs.get(&id) {
            Some(ReqState::Recv { pattern, .. }) => Wait::Recv(pattern.src),
            Some(ReqState::Send { .. }) => {
                let dst = (0..self.size)
                    .find(|dst| self.out[*dst].iter().any(|o| o.req == Some(id)))
                    .unwrap_or(self.rank);
                Wait::Send(dst)
            }
            None => Wait::All(Vec::new()),
        }
    }

    /// Forgets a request the caller no longer wants: a posted receive is cancelled (a
    /// message it already holds goes back to the front of its queue); a send still goes.
    pub(crate) fn forget(&mut self, id: u64) {
        self.posted.retain(|(posted, _)| *posted != id);
        match self.reqs.remove(&id) {
            Some(ReqState::Recv { msg: Some(msg), .. }) => {
                let src = msg.src;
                self.inc[src].queue.push_front(msg);
            }
            Some(ReqState::Send { done: false }) => {
                // Still queued: it will be written; keep no record.
                for queue in &mut self.out {
                    for item in queue.iter_mut() {
                        if item.req == Some(id) {
                            item.req = None;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Sends `data` to `dst` while receiving into `buf` (straight, when the matching
    /// message is a buffer of `elem` that fits): a deadlock-free exchange with no copy of
    /// either side. Returns like [`Engine::recv_direct`].
    pub(crate) fn exchange(
        &mut self,
        dst: usize,
        hdr: Header,
        data: &[u8],
        pattern: Pattern,
        elem: u8,
        sink: DirectSink<'_>,
    ) -> Result<Result<(usize, Header), Message>> {
        if let Some(rank) = self.seg.aborted() {
            return Err(Error::Aborted { rank });
        }
        let raw = hdr.encode();
        let total = HDR + data.len();
        let (mut queued, mut written) = if self.out[dst].is_empty() {
            (None, self.write_some(dst, &raw, data, 0))
        } else {
            (Some(self.enqueue(dst, raw, data.to_vec(), 0)), total)
        };
        let mut received: Option<Result<(usize, Header), Message>> =
            match self.take_queued(&pattern, false) {
                Some(Ok(msg)) => Some(Err(msg)),
                _ => None,
            };
        let mut direct = received.is_none().then_some(Direct {
            pattern,
            elem,
            sink,
            got: None,
            done: false,
        });
        let wait = Wait::All(vec![Wait::Send(dst), Wait::Recv(pattern.src)]);
        let mut idle = Idle::default();
        loop {
            let before = written;
            if written < total {
                written = self.write_some(dst, &raw, data, written);
            }
            let moved = self.progress(&mut direct)?;
            if received.is_none() {
                if let Some(d) = direct.as_ref()
                    && d.done
                    && let Some(got) = d.got
                {
                    received = Some(Ok(got));
                    direct = None;
                } else if direct.as_ref().is_some_and(|d| d.got.is_none())
                    && let Some(Ok(msg)) = self.take_queued(&pattern, false)
                {
                    received = Some(Err(msg));
                    direct = None;
                }
            }
            let sent = match queued {
                Some(id) => match self.reqs.get(&id) {
                    Some(ReqState::Send { done: true }) => {
                        self.reqs.remove(&id);
                        queued = None;
                        true
                    }
                    _ => false,
                },
                None => written == total,
            };
            if sent && let Some(r) = received.take() {
                return Ok(r);
            }
            if moved || written > before {
                idle = Idle::default();
            } else {
                let wait = match (sent, received.is_some()) {
                    (true, _) => Wait::Recv(pattern.src),
                    (false, true) => Wait::Send(dst),
                    (false, false) => wait.clone(),
                };
                self.idle(&mut idle, &wait, (written < total).then_some(dst))?;
            }
        }
    }

    /// Puts a message that a receive refused (wrong kind or type) back at the front of
    /// its queue, so that nothing is lost.
    pub(crate) fn requeue(&mut self, msg: Message) {
        let src = msg.src;
        self.inc[src].queue.push_front(msg);
    }

    /// Writes every queued send, waiting for the receivers to make room.
    pub(crate) fn flush(&mut self) -> Result<()> {
        let waits: Vec<Wait> = (0..self.size)
            .filter(|dst| !self.out[*dst].is_empty())
            .map(Wait::Send)
            .collect();
        if waits.is_empty() {
            return Ok(());
        }
        self.block_until(Wait::All(waits), None, |engine| {
            Ok((engine.out_pending == 0).then_some(()))
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.seg.abort(self.rank);
            return;
        }
        if let Err(e) = self.flush() {
            tracing::warn!(rank = self.rank, error = %e, "sends still queued when the rank finished were lost");
        }
        if self.seg.state(self.rank) == RankState::Running {
            self.seg.set_state(self.rank, RankState::Finished);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(src: Option<usize>, tag: Option<i32>) -> Pattern {
        Pattern { ctx: 0, src, tag }
    }

    fn obj(tag: i32, len: usize) -> Header {
        Header {
            kind: Kind::Object,
            elem: 0,
            ctx: 0,
            tag,
            len: len as u64,
        }
    }

    #[test]
    fn header_round_trips() {
        let h = Header {
            kind: Kind::Buffer,
            elem: 10,
            ctx: 77,
            tag: -5,
            len: 1 << 40,
        };
        assert_eq!(Header::decode(&h.encode()), Some(h));
        assert_eq!(Header::decode(&[0u8; HDR]), None);
    }

    #[test]
    fn messages_larger_than_the_ring_stream_between_threads() {
        let seg = Arc::new(Segment::create(2, false).unwrap());
        let big: Vec<u8> = (0..seg.capacity() * 3 + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        let expected = big.clone();
        std::thread::scope(|s| {
            let seg1 = Arc::clone(&seg);
            s.spawn(move || {
                let mut e = Engine::new(seg1, 1);
                let msg = e.recv(pattern(Some(0), Some(3))).unwrap();
                assert_eq!(msg.data, expected);
            });
            let mut e = Engine::new(Arc::clone(&seg), 0);
            e.send(1, obj(3, big.len()), &big).unwrap();
        });
    }

    #[test]
    fn tags_are_matched_out_of_order() {
        let seg = Arc::new(Segment::create(1, false).unwrap());
        let mut e = Engine::new(seg, 0);
        e.send(0, obj(1, 1), &[1]).unwrap();
        e.send(0, obj(2, 1), &[2]).unwrap();
        assert_eq!(e.recv(pattern(None, Some(2))).unwrap().data, vec![2]);
        assert_eq!(e.recv(pattern(Some(0), None)).unwrap().data, vec![1]);
    }

    #[test]
    fn waiting_on_a_finished_rank_is_an_error() {
        let seg = Arc::new(Segment::create(2, false).unwrap());
        drop(Engine::new(Arc::clone(&seg), 1));
        let mut e = Engine::new(seg, 0);
        assert!(matches!(
            e.recv(pattern(Some(1), None)),
            Err(Error::PeerGone { rank: 1 })
        ));
    }
}
