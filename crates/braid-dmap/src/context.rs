//! What a task knows about the Dmap that sent it: which one, from which process, and
//! where its shared constants are.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::dmap::Inner;
use crate::store::Locator;

/// Travels with every task a Dmap sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ctx {
    /// The sending Dmap's id, unique in its process.
    pub dmap: u64,
    /// The sending process.
    pub pid: u32,
    /// Where the shared constants are.
    pub store: Locator,
}

thread_local! {
    static STACK: RefCell<Vec<Arc<Ctx>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` as the body of a task sent with `ctx`.
pub(crate) fn enter<T>(ctx: Ctx, f: impl FnOnce() -> T) -> T {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            STACK.with(|s| s.borrow_mut().pop());
        }
    }
    STACK.with(|s| s.borrow_mut().push(Arc::new(ctx)));
    let _leave = Leave;
    f()
}

/// The context of the task running on this thread, if any.
pub(crate) fn current() -> Option<Arc<Ctx>> {
    STACK.with(|s| s.borrow().last().cloned())
}

/// Whether this thread is running a task sent by a Dmap.
pub(crate) fn in_task() -> bool {
    STACK.with(|s| !s.borrow().is_empty())
}

fn registry() -> &'static Mutex<HashMap<u64, Weak<Inner>>> {
    static DMAPS: OnceLock<Mutex<HashMap<u64, Weak<Inner>>>> = OnceLock::new();
    DMAPS.get_or_init(Mutex::default)
}

pub(crate) fn register(id: u64, inner: &Arc<Inner>) {
    registry().lock().insert(id, Arc::downgrade(inner));
}

pub(crate) fn unregister(id: u64) {
    registry().lock().remove(&id);
}

/// The live Dmap of this process with this id.
pub(crate) fn lookup(id: u64) -> Option<Arc<Inner>> {
    registry().lock().get(&id).and_then(Weak::upgrade)
}
