//! Small wrappers over the system: thread ids, liveness, futexes, and the one place that
//! decides how long a waiter spins before it sleeps.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;

/// How long a blocked waiter spins before it sleeps in the kernel.
///
/// A futex sleep and wake-up costs about 20 µs each way on small virtual machines, so a
/// hand-off between two running processes that arrives within this budget costs well
/// under a microsecond instead. Past the budget the waiter sleeps.
pub(crate) const SPIN_BUDGET: Duration = Duration::from_micros(50);

/// How long a blocked wait sleeps at most before it looks again at whether the process
/// it waits on is still alive.
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(50);

/// The instant `timeout` from now; `None` when that is too far to represent (forever).
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The calling thread's kernel id, unique on the machine while the thread lives.
pub(crate) fn gettid() -> u32 {
    rustix::thread::gettid()
        .as_raw_nonzero()
        .get()
        .unsigned_abs()
}

/// Whether the thread (or process) with kernel id `tid` still runs; a zombie counts as
/// gone.
pub(crate) fn thread_alive(tid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{tid}/stat")) {
        Ok(stat) => {
            // The state follows the command name, which is in parentheses and may itself
            // hold spaces or parentheses.
            let state = stat
                .rfind(')')
                .and_then(|end| stat[end + 1..].split_whitespace().next());
            !matches!(state, Some("Z" | "X" | "x"))
        }
        Err(_) => false,
    }
}

fn multi_core() -> bool {
    static MULTI: OnceLock<bool> = OnceLock::new();
    *MULTI.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// Spins for at most [`SPIN_BUDGET`] until `ready` holds; returns its last value. On a
/// single core spinning cannot help, so it checks once.
pub(crate) fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    if ready() {
        return true;
    }
    if !multi_core() {
        return false;
    }
    let start = Instant::now();
    let mut step = 0u32;
    loop {
        if step < 4 {
            // A pause costs ~100 cycles: these first looks take well under a microsecond.
            for _ in 0..1u32 << step {
                std::hint::spin_loop();
            }
        } else {
            // Then give the core away between looks: when the machine is busy, the
            // process we wait for may need it (measured: 5x faster hand-offs under load
            // than spinning on, and no slower on an idle machine).
            std::thread::yield_now();
        }
        step += 1;
        if ready() {
            return true;
        }
        if start.elapsed() >= SPIN_BUDGET {
            return false;
        }
    }
}

/// Sleeps while `word` holds `expected`, until woken, until `deadline`, or for at most
/// `slice`. Returns whatever the reason; callers re-check their condition.
pub(crate) fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    deadline: Option<Instant>,
    slice: Option<Duration>,
) {
    let mut timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    if let Some(slice) = slice {
        timeout = Some(timeout.map_or(slice, |t| t.min(slice)));
    }
    if timeout == Some(Duration::ZERO) {
        return;
    }
    let spec = timeout.map(|t| rustix::thread::futex::Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    // Shared (not PRIVATE): the word may live in memory mapped by several processes.
    // EAGAIN (the word changed), EINTR and ETIMEDOUT all mean "look again".
    if let Err(e) = futex::wait(word, futex::Flags::empty(), expected, spec.as_ref())
        && !matches!(
            e,
            rustix::io::Errno::AGAIN | rustix::io::Errno::INTR | rustix::io::Errno::TIMEDOUT
        )
    {
        tracing::warn!(error = %e, "futex wait failed");
    }
}

/// Wakes up to `n` sleepers on `word` (`u32::MAX`: all of them).
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    // The kernel reads the count as a signed int: past i32::MAX it would wake one.
    let n = n.min(i32::MAX as u32);
    if let Err(e) = futex::wake(word, futex::Flags::empty(), n) {
        tracing::warn!(error = %e, "futex wake failed");
    }
}

/// A sequence word that sleepers wait on for "something changed", with a count of
/// sleepers so that a wake-up with no one asleep costs no system call.
pub(crate) struct Signal<'a> {
    pub seq: &'a AtomicU32,
    pub sleepers: &'a AtomicU32,
}

impl Signal<'_> {
    /// The current sequence number; read it before checking the condition.
    pub(crate) fn current(&self) -> u32 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Marks a change and wakes up to `n` sleepers.
    pub(crate) fn notify(&self, n: u32) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            futex_wake(self.seq, n);
        }
    }

    /// Waits until the sequence moves past `seen` (spinning first), `deadline` passes, or
    /// `slice` elapses; returns whether it moved.
    pub(crate) fn wait(
        &self,
        seen: u32,
        deadline: Option<Instant>,
        slice: Option<Duration>,
    ) -> bool {
        if spin_until(|| self.seq.load(Ordering::Acquire) != seen) {
            return true;
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        futex_wait(self.seq, seen, deadline, slice);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        self.seq.load(Ordering::Acquire) != seen
    }
}

/// Whether `deadline` has passed.
pub(crate) fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// A random 64-bit number from the kernel.
pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    match rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()) {
        Ok(_) => u64::from_le_bytes(bytes),
        Err(e) => {
            // Not a secret (tokens that tell processes apart): time and pid do.
            tracing::debug!(error = %e, "getrandom failed; using the clock");
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            nanos ^ (u64::from(std::process::id()) << 32)
        }
    }
}
