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
pub(crate) const HDR: usize = 32;
/// A message of at most this many bytes with its header is written in one copy.
const SMALL: usize = 256;
/// Every message starts at a stream position that is a multiple of this, so that its
/// payload lies in the ring aligned for any element type and a reduction can combine
/// elements where they lie (see [`Segment::ring_view`]).
const ALIGN: u64 = 16;
/// A large message is published in steps of this many bytes so that the receiver copies
/// out while the sender still copies in.
const CHUNK: usize = 64 << 10;
/// How long a waiter spins before it sleeps, unless `BRAID_MPI_SPIN_US` says otherwise: a
/// futex sleep and wake-up costs about 20 µs each way on small virtual machines, so a
/// reply that comes within the budget is caught without one. The first few microseconds
/// poll without a system call (a reply from a rank on another core comes within a
/// fraction of one); the rest yield the core between looks, so that a machine with more
/// ranks than cores runs the rank being waited for.
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
    /// A step of a single-copy hand-off (`handoff.rs`), postcard-encoded.
    Handoff = 3,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Object => "object",
            Kind::Buffer => "buffer",
            Kind::Handoff => "single-copy hand-off",
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
            3 => Kind::Handoff,
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
    /// Into `fold(byte_offset, bytes)` straight from shared memory, for a message of
    /// exactly `len` bytes: a reduction combines what arrives where it lies, with no
    /// copy. Chunks hold whole elements of up to 16 bytes and are aligned for them.
    Fold {
        len: usize,
        fold: &'a mut dyn FnMut(usize, &[u8]) -> Result<()>,
    },
    /// An object, decoded by `decode(source, header, bytes)` where it lies in shared
    /// memory when it has wholly arrived in one piece; otherwise (or when `decode` fails)
    /// the message is queued and the receive returns it as it is.
    Object(&'a mut ObjectDecoder<'a>),
}

/// Decodes an object where it lies: `decode(source world rank, header, bytes)`.
pub(crate) type ObjectDecoder<'a> = dyn FnMut(usize, &Header, &[u8]) -> Result<()> + 'a;

impl DirectSink<'_> {
    fn accepts(&self, hdr: &Header, elem: u8) -> bool {
        let len = hdr.len;
        match self {
            DirectSink::Buf(buf) => {
                hdr.kind == Kind::Buffer && hdr.elem == elem && len <= buf.len() as u64
            }
            DirectSink::Fold { len: want, .. } => {
                hdr.kind == Kind::Buffer && hdr.elem == elem && len == *want as u64
            }
            DirectSink::Object(_) => hdr.kind == Kind::Object,
        }
    }
}

/// A folding receive combines at most this many bytes before it hands the room back to
/// the sender.
const FOLD_STEP: usize = 64 << 10;

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
    /// When the busy poll ended and the yielding phase began.
    started: Option<Instant>,
    /// Idle calls since the wait began (faults are checked on some of them).
    calls: u32,
}

/// Polls of the shared words in the first phase of a wait, at most (a few microseconds
/// on one core): a reply that comes that fast is caught without a system call. A rank
/// halves its polls after each wait they did not end and wins them back as they do, so
/// that on a machine with more busy threads than cores it yields almost at once.
const BUSY_POLLS: u32 = 128;
/// One wait in this many polls the full [`BUSY_POLLS`] whatever the recent waits did; if
/// that catches the reply, polling goes back to full. Without it a rank whose polls were
/// cut short (a few slow replies) stays short: its short polls end before a reply can
/// come, so they never win their length back, and every wait pays a yield (measured:
/// 8-byte one-way latency stuck at ~0.42 µs instead of ~0.21 µs on a 2-vCPU machine).
const PROBE_EVERY: u32 = 64;
/// A waiter checks for faults (an aborted job, a dead peer) once every this many idle
/// calls while it polls, and on every call once it yields or sleeps.
const FAULT_CHECK_CALLS: u32 = 64;

/// One rank's engine.
pub(crate) struct Engine {
    seg: Arc<Segment>,
    rank: usize,
    size: usize,
    cap: u64,
    tails: Vec<u64>,
    /// The last value of each outgoing ring's `head` this rank read: the room it shows
    /// is a lower bound, so the shared word is read again only when it seems too small.
    seen_heads: Vec<u64>,
    heads: Vec<u64>,
    out: Vec<VecDeque<Outgoing>>,
    out_pending: usize,
    inc: Vec<Incoming>,
    /// Messages in all the `inc` queues together.
    queued: usize,
    posted: Vec<(u64, Pattern)>,
    reqs: HashMap<u64, ReqState>,
    next_req: u64,
    /// The next communicator context this rank has not used (see `Comm::dup`).
    pub next_ctx: u32,
    launcher: Option<u32>,
    launcher_checked: Instant,
    spin: Duration,
    /// Polls in the first phase of the next wait (see [`BUSY_POLLS`]).
    busy_polls: u32,
    /// Waits since one last polled the full [`BUSY_POLLS`] (see [`PROBE_EVERY`]).
    waits_since_probe: u32,
    /// A buffer the collectives borrow for what they receive before combining it, kept
    /// between calls so that large reductions do not fault in fresh pages every time.
    pub scratch: Vec<u64>,
    /// The buffer `send_encoded` encodes into, kept between calls.
    encoded: Vec<u8>,
    /// Whether this rank hands large broadcast and reduction buffers straight between
    /// processes (`handoff.rs`); off by [`crate::SINGLE_COPY_ENV`] or after the system
    /// refused.
    pub single_copy: bool,
}

/// `send_encoded` keeps its buffer for the next call up to this capacity.
const KEPT_ENCODE_BUFFER: usize = 64 << 10;

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
        let seen_heads = (0..size)
            .map(|dst| seg.head(rank, dst).load(Ordering::Acquire))
            .collect();
        if let Some(pid) = launcher.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
            // Under Yama's ptrace_scope 1 a process may read or write only its descendants'
            // memory; the ranks are the launcher's children, so naming the launcher lets
            // them hand buffers to each other. Without Yama this fails, harmlessly.
            if let Err(e) = rustix::process::set_ptracer(rustix::process::PTracer::ProcessID(pid)) {
                tracing::debug!(error = %e, "set_ptracer for single-copy hand-offs");
            }
        }
        seg.set_state(rank, RankState::Running);
        Engine {
            seg,
            rank,
            size,
            cap,
            tails,
            seen_heads,
            heads,
            out: (0..size).map(|_| VecDeque::new()).collect(),
            out_pending: 0,
            inc: (0..size).map(|_| Incoming::default()).collect(),
            queued: 0,
            posted: Vec::new(),
            reqs: HashMap::new(),
            next_req: 1,
            next_ctx: 1,
            launcher,
            launcher_checked: Instant::now(),
            spin: spin_budget(),
            busy_polls: BUSY_POLLS,
            waits_since_probe: 0,
            scratch: Vec::new(),
            encoded: Vec::new(),
            single_copy: crate::handoff::enabled_by_env(),
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

    fn free(&mut self, dst: usize) -> usize {
        let head = self.seg.head(self.rank, dst).load(Ordering::SeqCst);
        self.seen_heads[dst] = head;
        (self.cap - (self.tails[dst] - head)) as usize
    }

    /// The room in the ring to `dst`, reading its `head` only when the room last seen
    /// is less than `want` bytes.
    fn free_for(&mut self, dst: usize, want: usize) -> usize {
        let seen = (self.cap - (self.tails[dst] - self.seen_heads[dst])) as usize;
        if seen >= want { seen } else { self.free(dst) }
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
        let pad = if written == 0 {
            (self.tails[dst].next_multiple_of(ALIGN) - self.tails[dst]) as usize
        } else {
            0
        };
        let mut free = self.free_for(dst, (pad + total - written).min(pad + HDR + CHUNK));
        if written == 0 && total <= SMALL && free >= pad + total {
            // One copy and one publication for a small message.
            let mut whole = [0u8; SMALL];
            whole[..HDR].copy_from_slice(hdr);
            whole[HDR..total].copy_from_slice(data);
            self.tails[dst] += pad as u64;
            self.seg
                .ring_write(self.rank, dst, self.tails[dst], &whole[..total]);
            self.tails[dst] += total as u64;
            self.seg
                .tail(self.rank, dst)
                .store(self.tails[dst], Ordering::SeqCst);
            self.seg.ring_doorbell(dst);
            return total;
        }
        let start = written;
        loop {
            if written < HDR {
                if free < pad + HDR {
                    break;
                }
                self.tails[dst] += pad as u64;
                self.seg.ring_write(self.rank, dst, self.tails[dst], hdr);
                self.tails[dst] += HDR as u64;
                free -= pad + HDR;
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
        let mut moved = false;
        loop {
            let tail = self.seg.tail(src, self.rank).load(Ordering::Acquire);
            let mut avail = (tail - self.heads[src]) as usize;
            if avail == 0 {
                break;
            }
            if self.inc[src].partial.is_none() {
                // Messages start aligned; the sender publishes the padding in front of
                // one together with its header.
                let pad = (self.heads[src].next_multiple_of(ALIGN) - self.heads[src]) as usize;
                if avail < pad + HDR {
                    break;
                }
                self.heads[src] += pad as u64;
                avail -= pad;
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
                // A message goes straight to the waiting receive only if no earlier one
                // from the same sender (queued, or claimed by a posted receive) matches
                // first: messages between two ranks are matched in order.
                let to_direct = direct.as_ref().is_some_and(|d| {
                    d.got.is_none()
                        && d.pattern.matches(src, &hdr)
                        && d.sink.accepts(&hdr, d.elem)
                        && !self.inc[src]
                            .queue
                            .iter()
                            .any(|m| d.pattern.matches(m.src, &m.hdr))
                }) && !self.posted.iter().any(|(_, p)| p.matches(src, &hdr));
                if to_direct
                    && let Some(d) = direct.as_mut()
                    && let DirectSink::Object(decode) = &mut d.sink
                {
                    // A failed decode is not lost: the message is queued below and the
                    // caller decodes it again from the queue, which reports the error
                    // and keeps the message.
                    let at = (self.heads[src] as usize) & (self.cap as usize - 1);
                    let decoded = avail >= len
                        && at + len <= self.cap as usize
                        && self
                            .seg
                            .ring_view(src, self.rank, self.heads[src], len, &mut |_, bytes| {
                                decode(src, &hdr, bytes)
                            })
                            .is_ok();
                    if decoded {
                        self.heads[src] += len as u64;
                        d.got = Some((src, hdr));
                        d.done = true;
                        self.release(src);
                        return Ok(true);
                    }
                }
                let sink = if to_direct
                    && !matches!(
                        direct,
                        Some(Direct {
                            sink: DirectSink::Object(_),
                            ..
                        })
                    ) {
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
                            n = n.min(FOLD_STEP);
                            if partial.filled + n < len {
                                n -= n % ALIGN as usize;
                            }
                            if n == 0 {
                                self.inc[src].partial = Some(partial);
                                break;
                            }
                            let filled = partial.filled;
                            self.seg.ring_view(
                                src,
                                self.rank,
                                self.heads[src],
                                n,
                                &mut |at, bytes| fold(filled + at, bytes),
                            )?;
                        }
                        Some(DirectSink::Object(_)) | None => {
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
            self.release(src);
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

    /// Hands the bytes read from `src` back to it, waking it if it waits for room.
    fn release(&self, src: usize) {
        self.seg
            .head(src, self.rank)
            .store(self.heads[src], Ordering::SeqCst);
        let space = self.seg.want_space(src, self.rank);
        if space.load(Ordering::SeqCst) != 0 {
            space.store(0, Ordering::SeqCst);
            self.seg.ring_doorbell(src);
        }
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
            self.queued += 1;
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

    /// Whether something changed that the last `progress` could not have seen: bytes
    /// arrived, or room appeared in a ring this rank waits to write into.
    fn work_pending(&self, sending_to: Option<usize>) -> bool {
        (0..self.size)
            .any(|src| self.seg.tail(src, self.rank).load(Ordering::SeqCst) != self.heads[src])
            || (0..self.size).any(|dst| {
                (!self.out[dst].is_empty() || sending_to == Some(dst))
                    && self.seg.head(self.rank, dst).load(Ordering::SeqCst) != self.seen_heads[dst]
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

    /// Fails when the job aborted or `wait` became hopeless; with `launcher`, also when
    /// the launcher died (that look costs a clock reading, and a file read now and then).
    fn check_faults(&mut self, wait: &Wait, launcher: bool) -> Result<()> {
        if let Some(rank) = self.seg.aborted() {
            return Err(Error::Aborted { rank });
        }
        if let Some(error) = self.hopeless(wait) {
            return Err(error);
        }
        if launcher
            && let Some(pid) = self.launcher
            && self.launcher_checked.elapsed() >= LAUNCHER_CHECK
        {
            self.launcher_checked = Instant::now();
            if !process_alive(pid) {
                return Err(Error::LauncherGone { pid });
            }
        }
        Ok(())
    }

    /// Called when nothing moved: polls the shared words for a few microseconds, then
    /// yields the processor between looks until the spin budget is spent, then sleeps on
    /// the doorbell. Returns when there may be something to do.
    fn idle(&mut self, idle: &mut Idle, wait: &Wait, sending_to: Option<usize>) -> Result<()> {
        idle.calls += 1;
        let Some(started) = idle.started else {
            if idle.calls % FAULT_CHECK_CALLS == 1 {
                self.check_faults(wait, false)?;
            }
            self.waits_since_probe += 1;
            let probe = self.waits_since_probe >= PROBE_EVERY;
            if probe {
                self.waits_since_probe = 0;
            }
            // At most a quarter of the budget (a poll takes about 50 ns).
            let polls = u32::try_from(self.spin.as_micros() * 5)
                .unwrap_or(u32::MAX)
                .min(if probe { BUSY_POLLS } else { self.busy_polls });
            for _ in 0..polls {
                for src in 0..self.size {
                    self.seg.prefetch(src, self.rank, self.heads[src]);
                }
                if self.work_pending(sending_to) {
                    self.busy_polls = if probe {
                        BUSY_POLLS
                    } else {
                        (self.busy_polls + BUSY_POLLS / 16).min(BUSY_POLLS)
                    };
                    return Ok(());
                }
                std::hint::spin_loop();
            }
            // Polling in vain: the peer is slow or has no core of its own (more ranks
            // than free cores); poll less next time, and yield from now on.
            self.busy_polls = (self.busy_polls / 2).max(BUSY_POLLS / 32);
            idle.started = Some(Instant::now());
            return Ok(());
        };
        self.check_faults(wait, true)?;
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

    /// Sends an object that `encode` appends to an empty buffer (one kept between calls,
    /// so that small objects cost no allocation); `hdr.len` is set from it.
    pub(crate) fn send_encoded(
        &mut self,
        dst: usize,
        mut hdr: Header,
        encode: impl FnOnce(Vec<u8>) -> Result<Vec<u8>>,
    ) -> Result<()> {
        let mut buf = std::mem::take(&mut self.encoded);
        buf.clear();
        let buf = encode(buf)?;
        hdr.len = buf.len() as u64;
        let sent = self.send(dst, hdr, &buf);
        if buf.capacity() <= KEPT_ENCODE_BUFFER {
            self.encoded = buf;
        }
        sent
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

    /// The sources a receive of `pattern` looks at.
    fn sources(&self, pattern: &Pattern) -> std::ops::Range<usize> {
        match pattern.src {
            Some(src) => src..src + 1,
            None => 0..self.size,
        }
    }

    fn take_queued(
        &mut self,
        pattern: &Pattern,
        peek: bool,
    ) -> Option<Result<Message, (usize, Header)>> {
        if self.queued == 0 {
            return None;
        }
        for src in self.sources(pattern) {
            let queue = &mut self.inc[src].queue;
            if let Some(i) = queue.iter().position(|m| pattern.matches(m.src, &m.hdr)) {
                if peek {
                    return Some(Err((src, queue[i].hdr)));
                }
                let msg = queue.remove(i)?;
                self.queued -= 1;
                return Some(Ok(msg));
            }
        }
        None
    }

    /// The sender and header of the first queued message matching `pattern`.
    pub(crate) fn peek(&mut self, pattern: &Pattern) -> Option<(usize, Header)> {
        match self.take_queued(pattern, true)? {
            Err(found) => Some(found),
            Ok(msg) => {
                let found = (msg.src, msg.hdr);
                self.requeue(msg);
                Some(found)
            }
        }
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
                self.queued += 1;
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
        self.queued += 1;
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

    fn coll(src: Option<usize>, tag: Option<i32>) -> Pattern {
        Pattern { ctx: 1, src, tag }
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
    fn objects_decode_in_place_unless_they_wrap_or_fail() {
        let seg = Arc::new(Segment::create(1, false).unwrap());
        let cap = seg.capacity();
        let mut e = Engine::new(seg, 0);
        let mut seen = Vec::new();
        let mut keep = |_: usize, _: &Header, bytes: &[u8]| -> Result<()> {
            seen.extend_from_slice(bytes);
            Ok(())
        };
        e.send(0, obj(1, 3), &[7, 8, 9]).unwrap();
        let got = e.recv_direct(pattern(Some(0), Some(1)), 0, DirectSink::Object(&mut keep));
        assert_eq!(got.unwrap().unwrap(), (0, obj(1, 3)));
        assert_eq!(seen, [7, 8, 9]);

        // A failed decode leaves the message, whole, to the caller.
        e.send(0, obj(2, 2), &[4, 5]).unwrap();
        let mut fail =
            |_: usize, _: &Header, _: &[u8]| -> Result<()> { Err(Error::invalid("not this")) };
        let got = e.recv_direct(pattern(Some(0), Some(2)), 0, DirectSink::Object(&mut fail));
        assert_eq!(got.unwrap().unwrap_err().data, vec![4, 5]);

        // One that wraps around the end of the ring is copied out, not decoded there.
        // The filler ends where the next header fills the last 48 bytes of the ring but
        // 16, so that the payload after it wraps.
        let payload_at = e.tails[0].next_multiple_of(ALIGN) as usize + HDR;
        let filler = vec![1u8; cap - 48 - payload_at];
        e.send(0, obj(3, filler.len()), &filler).unwrap();
        assert_eq!(e.recv(pattern(Some(0), Some(3))).unwrap().data, filler);
        let wrapping: Vec<u8> = (0..100).collect();
        e.send(0, obj(4, 100), &wrapping).unwrap();
        let mut never = |_: usize, _: &Header, _: &[u8]| -> Result<()> {
            panic!("decoded a message that wraps")
        };
        let got = e.recv_direct(pattern(Some(0), Some(4)), 0, DirectSink::Object(&mut never));
        assert_eq!(got.unwrap().unwrap_err().data, wrapping);
    }

    #[test]
    fn a_fold_sees_aligned_pieces_after_odd_messages() {
        let seg = Arc::new(Segment::create(1, false).unwrap());
        let mut e = Engine::new(seg, 0);
        e.send(0, obj(1, 3), &[1, 2, 3]).unwrap();
        let values: Vec<u64> = (0..20_000).collect();
        let bytes: &[u8] = bytemuck::cast_slice(&values);
        let hdr = Header {
            kind: Kind::Buffer,
            elem: 7,
            ctx: 0,
            tag: 2,
            len: bytes.len() as u64,
        };
        e.send(0, hdr, bytes).unwrap();
        let mut sum = 0u64;
        let mut fold = |_: usize, piece: &[u8]| -> Result<()> {
            sum += bytemuck::try_cast_slice::<u8, u64>(piece)
                .map_err(|e| Error::invalid(e.to_string()))?
                .iter()
                .sum::<u64>();
            Ok(())
        };
        let sink = DirectSink::Fold {
            len: bytes.len(),
            fold: &mut fold,
        };
        let got = e.recv_direct(pattern(Some(0), Some(2)), 7, sink).unwrap();
        assert!(got.is_ok());
        assert_eq!(sum, values.iter().sum::<u64>());
    }

    #[test]
    fn a_waiting_receive_takes_messages_in_the_order_they_were_sent() {
        let seg = Arc::new(Segment::create(2, false).unwrap());
        let cap = seg.capacity();
        let buffer = |tag: i32, len: usize| Header {
            kind: Kind::Buffer,
            elem: 1,
            ctx: 1,
            tag,
            len: len as u64,
        };
        let first: Vec<u8> = (0..2 * cap).map(|i| (i % 251) as u8).collect();
        let second = vec![7u8; 64];
        std::thread::scope(|s| {
            let seg1 = Arc::clone(&seg);
            let (first, second) = (&first, &second);
            s.spawn(move || {
                let mut e = Engine::new(seg1, 1);
                e.send(0, buffer(5, first.len()), first).unwrap();
                e.send(0, buffer(5, second.len()), second).unwrap();
            });
            let mut e = Engine::new(Arc::clone(&seg), 0);
            // The first message is half read, into a queued copy, before the receive.
            while e.inc[1].partial.is_none() {
                e.progress(&mut None).unwrap();
            }
            let mut buf = vec![0u8; first.len()];
            let got = e
                .recv_direct(coll(Some(1), Some(5)), 1, DirectSink::Buf(&mut buf))
                .unwrap();
            let data = match got {
                Ok((_, hdr)) => buf[..hdr.len as usize].to_vec(),
                Err(msg) => msg.data,
            };
            assert!(data == *first, "the second message overtook the first");
            let got = e
                .recv_direct(coll(Some(1), Some(5)), 1, DirectSink::Buf(&mut buf))
                .unwrap();
            let data = match got {
                Ok((_, hdr)) => buf[..hdr.len as usize].to_vec(),
                Err(msg) => msg.data,
            };
            assert_eq!(data, *second);
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
