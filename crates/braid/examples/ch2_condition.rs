//! Book recipe (ch. 2): "Thread synchronization with a condition": a producer fills a
//! bounded buffer and a consumer empties it, each waiting on the condition when it must.
//!
//! Python:
//! ```python
//! condition = threading.Condition()
//! with condition:
//!     while len(items) >= CAPACITY: condition.wait()
//!     items.append(item); condition.notify()
//! ```
//!
//! braid's `Condition<T>` owns the data its lock guards, so the buffer lives inside it.
//!
//! Run: `cargo run --example ch2_condition`

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use braid::sync::{self, Condition};

const CAPACITY: usize = 3;
const ITEMS: u32 = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    let buffer = Arc::new(Condition::new(VecDeque::with_capacity(CAPACITY)));

    let producer = {
        let buffer = buffer.clone();
        sync::spawn("producer", move || {
            let mut fullest = 0;
            for item in 0..ITEMS {
                let mut items = buffer.lock();
                // Python's `while not predicate: condition.wait()`, in one call.
                items.wait_for(|items| items.len() < CAPACITY);
                items.push_back(item);
                fullest = fullest.max(items.len());
                // One producer and one consumer: whoever waits is the other one.
                buffer.notify_one();
            }
            fullest
        })?
    };
    let consumer = {
        let buffer = buffer.clone();
        sync::spawn("consumer", move || {
            let mut consumed = Vec::new();
            while consumed.len() < ITEMS as usize {
                let mut items = buffer.lock();
                items.wait_for(|items| !items.is_empty());
                let item = items.pop_front().expect("waited until not empty");
                if item % 5 == 0 {
                    println!("consumed item {item}, {} left in the buffer", items.len());
                }
                consumed.push(item);
                buffer.notify_one();
            }
            consumed
        })?
    };

    let fullest = producer.join()?;
    let consumed = consumer.join()?;
    println!("buffer of {CAPACITY}: fullest it got was {fullest}");
    let expected: Vec<u32> = (0..ITEMS).collect();
    if consumed != expected || fullest > CAPACITY {
        return Err(format!("consumed {consumed:?} with the buffer at {fullest}").into());
    }

    // wait_for with a timeout returns the predicate's last value: false when nobody made it
    // true in time (Python's wait_for(predicate, timeout)).
    let mut items = buffer.lock();
    let became_true = items.wait_for_timeout(|items| !items.is_empty(), Duration::from_millis(10));
    println!("waiting 10 ms for an item nobody produces: predicate = {became_true}");
    if became_true {
        return Err("an empty buffer cannot become non-empty with nobody producing".into());
    }

    println!("ok: {ITEMS} items passed in order through a buffer that never overflowed");
    Ok(())
}
