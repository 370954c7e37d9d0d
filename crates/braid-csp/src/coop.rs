//! A yield budget for processes: on the cooperative scheduler a process whose channel
//! operations keep completing at once (a select with a skip guard in a loop, a full
//! buffer being drained) would never give the other processes a turn. After this many
//! operations in one poll, the next one yields first, as tokio's budget does.

use std::cell::Cell;
use std::task::Context;

/// Operations a process may complete in one poll before it yields.
const BUDGET: u32 = 128;

thread_local! {
    /// The budget of the process being polled; `None` outside processes (a thread that
    /// blocks on its own starves no one).
    static LEFT: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Gives the process about to be polled a fresh budget; returns the previous one, to
/// restore with [`restore`].
pub(crate) fn start() -> Option<u32> {
    LEFT.with(|left| left.replace(Some(BUDGET)))
}

/// Lifts the budget while the thread blocks in place (a blocking call inside a process
/// on its own thread): returns the previous one, to restore with [`restore`].
pub(crate) fn lift() -> Option<u32> {
    LEFT.with(|left| left.replace(None))
}

/// Restores the budget [`start`] or [`lift`] replaced.
pub(crate) fn restore(previous: Option<u32>) {
    LEFT.with(|left| left.set(previous));
}

/// Spends one operation of the budget; when it is spent, wakes the task and answers
/// false: the operation must return `Pending` without starting, so that others run.
pub(crate) fn proceed(cx: &mut Context<'_>) -> bool {
    let spent = LEFT.with(|left| match left.get() {
        None => false,
        Some(0) => true,
        Some(n) => {
            left.set(Some(n - 1));
            false
        }
    });
    if spent {
        cx.waker().wake_by_ref();
    }
    !spent
}
