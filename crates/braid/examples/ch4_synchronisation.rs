//! Book recipe (ch. 4, asyncio; the async twins of ch. 2's synchronisation recipes):
//! `asyncio.Event`, `Condition`, `Semaphore`/`BoundedSemaphore` and `Barrier` between
//! tasks on one event loop.
//!
//! Python:
//! ```python
//! event = asyncio.Event();  await event.wait();  event.set()
//! async with cond: await cond.wait_for(lambda: items);  cond.notify()
//! async with sem: ...
//! await barrier.wait()
//! ```
//!
//! Each wait is a future that yields the thread to other tasks instead of blocking it.
//!
//! Run: `cargo run --example ch4_synchronisation`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use braid::asyncio::{Barrier, BoundedSemaphore, Condition, Error, Event, gather};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async {
        // Event: a start gate for three tasks.
        let go = Arc::new(Event::new());
        let waiters: Vec<_> = (0..3)
            .map(|i| {
                let go = go.clone();
                tokio::spawn(async move {
                    go.wait().await;
                    i
                })
            })
            .collect();
        go.set();
        let mut released = 0;
        for waiter in waiters {
            waiter.await?;
            released += 1;
        }
        println!("Event: {released} waiters released by one set()");

        // Condition: a consumer waits for items a producer adds.
        let shelf = Arc::new(Condition::new(Vec::<u32>::new()));
        let consumer = tokio::spawn({
            let shelf = shelf.clone();
            async move {
                let mut got = Vec::new();
                while got.len() < 5 {
                    let mut items = shelf.lock().await.wait_for(|s| !s.is_empty()).await;
                    got.append(&mut items);
                }
                got
            }
        });
        for item in 0..5 {
            shelf.lock().await.push(item);
            println!("Condition: producer added item {item} and notified");
            shelf.notify_one();
            tokio::task::yield_now().await;
        }
        let got = consumer.await?;
        println!("Condition: consumer got {got:?}");

        // BoundedSemaphore: at most two tasks inside at once.
        let slots = BoundedSemaphore::new(2);
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        gather((0..6).map(|_| async {
            let _permit = slots.acquire().await;
            most.fetch_max(inside.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            inside.fetch_sub(1, Ordering::SeqCst);
        }))
        .await;
        let extra = slots.release();
        println!(
            "BoundedSemaphore: at most {} inside; an extra release gives {extra:?}",
            most.load(Ordering::SeqCst)
        );

        // Barrier: three tasks meet, twice.
        let barrier = Barrier::new(3);
        let mut rounds = Vec::new();
        for _ in 0..2 {
            let mut indices = gather((0..3).map(|_| barrier.wait()))
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?;
            indices.sort_unstable();
            rounds.push(indices);
        }
        println!("Barrier: arrival indices of two rounds {rounds:?}");

        if got != [0, 1, 2, 3, 4]
            || most.load(Ordering::SeqCst) != 2
            || extra != Err(Error::Overflow { bound: 2 })
            || rounds != [[0, 1, 2], [0, 1, 2]]
        {
            return Err("a primitive broke its contract".into());
        }
        println!("ok: every primitive kept its contract");
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
