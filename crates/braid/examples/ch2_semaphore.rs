//! Book recipe (ch. 2): "Thread synchronization with semaphores": a consumer waits on a
//! semaphore that the producer releases once per item.
//!
//! Python:
//! ```python
//! semaphore = threading.Semaphore(0)
//! def consumer(): semaphore.acquire(); print("consumed", item)
//! def producer(): global item; item = random.randint(0, 1000); semaphore.release()
//! ```
//!
//! Run: `cargo run --example ch2_semaphore`

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use braid::sync::{self, BoundedSemaphore, Error, Lock, Semaphore};

const ITEMS: u64 = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    // A semaphore starting at 0 counts items ready; the items themselves sit in a locked
    // deque (the book uses a global variable).
    let ready = Arc::new(Semaphore::new(0));
    let items = Arc::new(Lock::new(VecDeque::new()));
    let consumer = {
        let (ready, items) = (ready.clone(), items.clone());
        sync::spawn("consumer", move || {
            let mut consumed = Vec::new();
            for _ in 0..ITEMS {
                // A Permit gives itself back on drop; this one stands for an item that is
                // used up, so it is forgotten, as Python's acquire() keeps it.
                ready.acquire().forget();
                let item = items.acquire().pop_front().expect("a permit means an item");
                println!("consumer notify: consumed item number {item}");
                consumed.push(item);
            }
            consumed
        })?
    };
    let producer = {
        let (ready, items) = (ready.clone(), items.clone());
        sync::spawn("producer", move || {
            for n in 0..ITEMS {
                let item = n * 100 + 7;
                items.acquire().push_back(item);
                println!("producer notify: produced item number {item}");
                ready.release(1);
            }
        })?
    };
    producer.join()?;
    let consumed = consumer.join()?;
    let expected: Vec<u64> = (0..ITEMS).map(|n| n * 100 + 7).collect();
    if consumed != expected || ready.available() != 0 {
        return Err(format!("consumed {consumed:?}, expected {expected:?}").into());
    }

    // A semaphore with 2 permits lets at most 2 of 6 threads in at once.
    let slots = Arc::new(Semaphore::new(2));
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let handles = (0..6)
        .map(|i| {
            let (slots, inside, most) = (slots.clone(), inside.clone(), most.clone());
            sync::spawn(format!("guest-{i}"), move || {
                let _permit = slots.acquire();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::yield_now();
                inside.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for handle in handles {
        handle.join()?;
    }
    let most = most.load(Ordering::SeqCst);
    println!("6 threads through a Semaphore(2): at most {most} inside at once");
    if most > 2 || slots.available() != 2 {
        return Err(format!("{most} threads were inside a 2-permit semaphore").into());
    }

    // BoundedSemaphore refuses a release past its initial value, as Python raises ValueError.
    let bounded = BoundedSemaphore::new(2);
    let permit = bounded.acquire();
    let second = bounded.try_acquire();
    let third = bounded.try_acquire();
    println!(
        "BoundedSemaphore(2): two acquired, a third try_acquire is {}",
        if third.is_some() {
            "granted"
        } else {
            "refused"
        }
    );
    if second.is_none() || third.is_some() {
        return Err("a BoundedSemaphore(2) must grant exactly two permits".into());
    }
    drop((permit, second));
    let overflow = bounded.release();
    println!("both permits back; one more release() = {overflow:?}");
    if overflow != Err(Error::Overflow { bound: 2 }) || bounded.available() != 2 {
        return Err("releasing past the bound must fail with Overflow".into());
    }

    println!("ok: items signalled in order, concurrency bounded, Overflow reported");
    Ok(())
}
