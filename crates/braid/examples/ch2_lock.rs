//! Book recipe (ch. 2): "Thread synchronization with a lock": many threads update one shared
//! counter, each update under the lock.
//!
//! Python:
//! ```python
//! lock = threading.Lock()
//! def increment_with_lock():
//!     global shared_resource_with_lock
//!     for i in range(COUNT):
//!         lock.acquire(); shared_resource_with_lock += 1; lock.release()
//! ```
//!
//! The book also runs the same loop *without* the lock and shows a wrong total. That half
//! cannot be written in safe Rust: a `static mut` counter needs `unsafe`, a plain `&mut u64`
//! cannot be given to two threads, and `Arc<u64>` is read-only, so the data race is a
//! compile error instead of a wrong answer. braid's `Lock<T>` owns the data it guards, so
//! the only way to reach the counter is through `acquire()`.
//!
//! Run: `cargo run --example ch2_lock`

use std::sync::Arc;
use std::time::Duration;

use braid::sync::{self, Lock};

const COUNT: u64 = 10_000;
const THREADS: u64 = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    // Increments and decrements racing on one counter: with the lock they cancel exactly.
    let shared = Arc::new(Lock::new(0_i64));
    let mut handles = Vec::new();
    for i in 0..THREADS {
        let shared = shared.clone();
        let step = if i % 2 == 0 { 1 } else { -1 };
        handles.push(sync::spawn(format!("worker-{i}"), move || {
            for _ in 0..COUNT {
                // The guard is Python's acquire(); it releases when the statement ends.
                *shared.acquire() += step;
            }
        })?);
    }
    for handle in handles {
        handle.join()?;
    }
    let balance = *shared.acquire();
    println!("{THREADS} threads, {COUNT} increments or decrements each: value = {balance}");
    if balance != 0 {
        return Err(format!("increments and decrements left {balance}, expected 0").into());
    }

    // Increments only: the total is exact, every time.
    let total = Arc::new(Lock::new(0_u64));
    let handles = (0..THREADS)
        .map(|i| {
            let total = total.clone();
            sync::spawn(format!("adder-{i}"), move || {
                for _ in 0..COUNT {
                    *total.acquire() += 1;
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for handle in handles {
        handle.join()?;
    }
    let total = Arc::into_inner(total)
        .ok_or("counter still shared")?
        .into_inner();
    println!("{THREADS} threads x {COUNT} increments under the lock = {total}");
    if total != THREADS * COUNT {
        return Err(format!("total {total}, expected {}", THREADS * COUNT).into());
    }

    // Non-blocking and timed acquires, like acquire(blocking=False) and acquire(timeout=...).
    let lock = Lock::new(());
    let held = lock.acquire();
    let busy = lock.try_acquire().is_none() && lock.is_locked();
    let timed_out = lock.acquire_timeout(Duration::from_millis(5)).is_none();
    drop(held);
    let free = lock.try_acquire().is_some();
    println!(
        "while held: try_acquire fails = {busy}, acquire_timeout gives up = {timed_out}; after release: {free}"
    );
    if !(busy && timed_out && free) {
        return Err("try_acquire / acquire_timeout disagree with the lock's state".into());
    }

    println!("ok: every update went through the lock; totals exact");
    Ok(())
}
