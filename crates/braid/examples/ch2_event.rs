//! Book recipe (ch. 2): "Thread synchronization with an event": the producer sets an event
//! when an item is ready and the consumer waits for it.
//!
//! Python:
//! ```python
//! event = threading.Event()
//! # producer: items.append(item); event.set()
//! # consumer: event.wait(); item = items.pop(); event.clear()
//! ```
//!
//! The book's version can lose an item when the producer sets the event twice before the
//! consumer clears it; here a second event ("taken") closes that hole.
//!
//! Run: `cargo run --example ch2_event`

use std::sync::Arc;
use std::time::Duration;

use braid::sync::{self, Event, Lock};

const ITEMS: u32 = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    // A start gate: three workers wait until main sets one event.
    let go = Arc::new(Event::new());
    let waiters = (0..3)
        .map(|i| {
            let go = go.clone();
            sync::spawn(format!("waiter-{i}"), move || {
                go.wait();
                go.is_set()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    go.set();
    for waiter in waiters {
        if !waiter.join()? {
            return Err("a waiter woke up with the event not set".into());
        }
    }
    println!("start gate: 3 waiters released by one set()");

    // Producer and consumer hand items over one slot.
    let slot = Arc::new(Lock::new(None));
    let ready = Arc::new(Event::new());
    let taken = Arc::new(Event::new());
    let consumer = {
        let (slot, ready, taken) = (slot.clone(), ready.clone(), taken.clone());
        sync::spawn("consumer", move || {
            let mut got = Vec::new();
            for _ in 0..ITEMS {
                ready.wait();
                ready.clear();
                let item = slot.acquire().take().expect("ready means an item is there");
                println!("consumer: popped item {item}");
                got.push(item);
                taken.set();
            }
            got
        })?
    };
    for item in 0..ITEMS {
        *slot.acquire() = Some(item * 11);
        println!("producer: item {} ready, event set", item * 11);
        ready.set();
        taken.wait();
        taken.clear();
    }
    let got = consumer.join()?;
    let expected: Vec<u32> = (0..ITEMS).map(|i| i * 11).collect();
    if got != expected {
        return Err(format!("consumer got {got:?}, expected {expected:?}").into());
    }

    // wait with a timeout says whether the event was set.
    let never = Event::new();
    let was_set = never.wait_timeout(Duration::from_millis(5));
    println!("waiting 5 ms on an event nobody sets returns {was_set}");
    if was_set {
        return Err("wait_timeout on an unset event must return false".into());
    }

    println!("ok: every item handed over once and in order");
    Ok(())
}
