//! Book recipe (ch. 4, asyncio; the async twin of ch. 2's queue recipe): producers and
//! consumers on one event loop, over a bounded `asyncio.Queue`, with `task_done`/`join`
//! and shutdown; and the LIFO and priority queues.
//!
//! Python:
//! ```python
//! queue = asyncio.Queue(maxsize=4)
//! async def producer(n):
//!     for i in range(10): await queue.put((n, i))
//! async def consumer():
//!     while True:
//!         item = await queue.get(); ...; queue.task_done()
//! await queue.join()
//! queue.shutdown()   # 3.13
//! ```
//!
//! A get cancelled by a time-out or `select!` never loses an item: the item leaves the
//! queue only when a get returns it.
//!
//! Run: `cargo run --example ch4_queue`

use std::sync::Arc;
use std::time::Duration;

use braid::asyncio::{Error, LifoQueue, PriorityQueue, PutError, Queue, TaskGroup, gather};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()?;
    runtime.block_on(async {
        let queue = Arc::new(Queue::<(u32, u32)>::bounded(4));

        let consumers: Vec<_> = (0..2)
            .map(|c| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    let mut sum = 0;
                    let mut taken = 0;
                    loop {
                        // A consumer that also wakes up every few milliseconds: the
                        // cancelled gets lose nothing.
                        let item = tokio::select! {
                            item = queue.get() => item,
                            () = tokio::time::sleep(Duration::from_millis(3)) => continue,
                        };
                        let Ok((p, i)) = item else { break };
                        sum += p * 100 + i;
                        taken += 1;
                        queue.task_done().map_err(|e| e.to_string())?;
                    }
                    println!("consumer {c}: took {taken} items");
                    Ok::<u32, String>(sum)
                })
            })
            .collect();

        let mut producers: TaskGroup<u32, PutError<(u32, u32)>> = TaskGroup::new();
        for p in 0..3 {
            let queue = queue.clone();
            producers.spawn(async move {
                for i in 0..10 {
                    queue.put((p, i)).await?;
                }
                Ok(p)
            });
        }
        producers.join().await?;
        queue.join().await; // every item taken and marked done
        println!("all 30 items produced, consumed and marked done");
        queue.shutdown(false); // the consumers' get now fails: they return

        let mut total = 0;
        for consumer in consumers {
            total += consumer.await??;
        }
        let expected: u32 = (0..3).flat_map(|p| (0..10).map(move |i| p * 100 + i)).sum();
        println!("sum of items: {total} (expected {expected})");
        if total != expected || queue.get().await != Err(Error::ShutDown) {
            return Err("items were lost or the queue did not shut down".into());
        }

        // LIFO and priority orders.
        let stack = LifoQueue::new();
        let jobs = PriorityQueue::new();
        for (priority, job) in [(3, "low"), (1, "urgent"), (2, "normal")] {
            stack.put(job).await?;
            jobs.put((priority, job)).await?;
        }
        let popped = gather((0..3).map(|_| stack.get())).await;
        let by_priority = gather((0..3).map(|_| jobs.get())).await;
        println!("LifoQueue order: {popped:?}");
        println!("PriorityQueue order: {by_priority:?}");
        if popped[0] != Ok("normal") || by_priority[0] != Ok((1, "urgent")) {
            return Err("wrong queue order".into());
        }
        println!("ok: nothing lost, every order right");
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
