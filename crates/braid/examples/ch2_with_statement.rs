//! Book recipe (ch. 2): "Using the with statement": `with lock:` takes a lock and gives it
//! back when the block ends, however it ends.
//!
//! Python:
//! ```python
//! def threading_with(statement):
//!     with statement: logging.debug("%s acquired via with" % statement)
//! for statement in [Lock(), RLock(), Condition(), Semaphore(1)]: ...
//! ```
//!
//! In Rust the `with` block is a guard's scope: every braid-sync acquire returns a guard
//! that releases on drop, so an early `return`, a `?` or a panic releases it too.
//!
//! Run: `cargo run --example ch2_with_statement`

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use braid::sync::{self, Condition, JoinTimeout, Lock, RLock, Semaphore};

/// Parses the values under the lock; a bad one leaves early through `?`, and the guard
/// still releases the lock on the way out.
fn parse_all(lock: &Lock<Vec<&'static str>>) -> Result<Vec<u32>, std::num::ParseIntError> {
    let texts = lock.acquire();
    let mut values = Vec::new();
    for text in texts.iter() {
        values.push(text.parse()?);
    }
    Ok(values)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    // Lock: released at the end of the scope, after an early return, and after a panic.
    let lock = Lock::new(vec!["3", "5", "eight", "9"]);
    {
        let values = lock.acquire();
        println!(
            "Lock acquired via scope: {:?} (locked = {})",
            *values,
            lock.is_locked()
        );
    }
    let parsed = parse_all(&lock);
    println!(
        "`?` left early with the guard alive: {parsed:?}; locked = {}",
        lock.is_locked()
    );
    std::panic::set_hook(Box::new(|_| {}));
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let _values = lock.acquire();
        panic!("failure inside the with block");
    }));
    drop(std::panic::take_hook());
    println!(
        "panic while holding the Lock caught; locked = {}",
        lock.is_locked()
    );
    if lock.is_locked() || parsed.is_ok() || caught.is_ok() {
        return Err("the Lock guard did not release on scope end, return or panic".into());
    }

    // RLock: nested guards, each released at its own scope end.
    let rlock = RLock::new(());
    {
        let _outer = rlock.acquire();
        {
            let _inner = rlock.acquire();
            println!(
                "RLock acquired twice via scopes: depth {}",
                rlock.recursion_depth()
            );
        }
        println!("inner scope over: depth {}", rlock.recursion_depth());
    }
    if rlock.is_owned() || rlock.recursion_depth() != 0 {
        return Err("the RLock guards did not release".into());
    }

    // Semaphore: a permit is a guard too.
    let semaphore = Semaphore::new(1);
    {
        let _permit = semaphore.acquire();
        println!(
            "Semaphore permit taken via scope: available = {}",
            semaphore.available()
        );
    }
    println!("scope over: available = {}", semaphore.available());
    if semaphore.available() != 1 {
        return Err("the Semaphore permit did not come back".into());
    }

    // Condition: its guard is the lock; another thread can take it once the scope ends.
    let condition = Arc::new(Condition::new(0_u32));
    {
        let mut value = condition.lock();
        *value += 1;
        println!("Condition acquired via scope: value set to {}", *value);
    }
    let other = {
        let condition = condition.clone();
        sync::spawn("after-with", move || *condition.lock())?
    };
    match other.join_timeout(Duration::from_secs(10)) {
        Ok(1) => println!("another thread took the Condition's lock after the scope"),
        Ok(v) => return Err(format!("the other thread read {v}, expected 1").into()),
        Err(JoinTimeout::TimedOut(_)) => return Err("the Condition lock was never released".into()),
        Err(JoinTimeout::Failed(e)) => return Err(e.into()),
    }

    println!("ok: Lock, RLock, Semaphore and Condition all released at scope end");
    Ok(())
}
