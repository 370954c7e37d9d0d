//! Book recipe (ch. 2): "Thread synchronization with RLock": a re-entrant lock that the
//! thread holding it may take again, as methods that lock call other methods that lock.
//!
//! Python:
//! ```python
//! class Box:
//!     def __init__(self): self.lock = threading.RLock(); self.total_items = 0
//!     def execute(self, value):
//!         with self.lock: self.total_items += value
//!     def add(self):
//!         with self.lock: self.execute(1)
//! ```
//!
//! Run: `cargo run --example ch2_rlock`

use std::cell::Cell;
use std::sync::Arc;

use braid::sync::{self, Error, RLock};

/// The book's `Box`. An `RLock` guard gives shared access only (the same thread may hold
/// two guards at once), so the data inside uses a `Cell` for mutation.
struct ItemBox {
    total_items: RLock<Cell<i64>>,
}

impl ItemBox {
    fn execute(&self, value: i64) {
        let total = self.total_items.acquire();
        // Called from add/remove, so this thread now holds the lock twice.
        assert_eq!(self.total_items.recursion_depth(), 2);
        total.set(total.get() + value);
    }

    fn add(&self) {
        let _with = self.total_items.acquire();
        self.execute(1);
    }

    fn remove(&self) {
        let _with = self.total_items.acquire();
        self.execute(-1);
    }
}

const ADDS: usize = 1_000;
const REMOVES: usize = 700;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    let items = Arc::new(ItemBox {
        total_items: RLock::new(Cell::new(0)),
    });
    let adder = {
        let items = items.clone();
        sync::spawn("adder", move || (0..ADDS).for_each(|_| items.add()))?
    };
    let remover = {
        let items = items.clone();
        sync::spawn("remover", move || (0..REMOVES).for_each(|_| items.remove()))?
    };
    adder.join()?;
    remover.join()?;
    let total = items.total_items.acquire().get();
    println!("added {ADDS}, removed {REMOVES} through nested acquires: total_items = {total}");
    if total != (ADDS - REMOVES) as i64 {
        return Err(format!("total_items {total}, expected {}", ADDS - REMOVES).into());
    }

    // Python's bare acquire()/release() pairs: hold() twice needs release() twice.
    let lock = Arc::new(RLock::new(()));
    lock.hold();
    lock.hold();
    println!("held twice: recursion_depth = {}", lock.recursion_depth());
    if !lock.is_owned() || lock.recursion_depth() != 2 {
        return Err("hold() twice should leave the lock owned at depth 2".into());
    }

    // Another thread neither owns it nor may release it.
    let other = {
        let lock = lock.clone();
        sync::spawn("intruder", move || (lock.is_owned(), lock.release()))?
    };
    let (owned_there, released_there) = other.join()?;
    println!("from another thread: is_owned = {owned_there}, release() = {released_there:?}");
    if owned_there || released_there != Err(Error::NotOwner) {
        return Err("a thread that does not hold the RLock must get NotOwner".into());
    }

    lock.release()?;
    lock.release()?;
    let extra = lock.release();
    println!("released twice; a third release() = {extra:?}");
    if extra != Err(Error::NotOwner) || lock.recursion_depth() != 0 {
        return Err("releasing an RLock that is not held must fail with NotOwner".into());
    }

    println!("ok: nested acquires, hold/release pairs and NotOwner all as Python's RLock");
    Ok(())
}
