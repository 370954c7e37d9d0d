//! The async recipe: a TaskGroup of producers feeding a bounded Queue, consumers gathered,
//! and a registered task run on a thread pool from async code.

use std::sync::Arc;

use braid::asyncio::{PutError, Queue, TaskGroup, gather, run_in_executor};
use braid::sync::ThreadPool;

#[braid::task(name = "tour.async.cube")]
fn cube(x: u64) -> u64 {
    x * x * x
}

pub(super) fn run() -> Result<String, String> {
    const PRODUCERS: u64 = 4;
    const ITEMS: u64 = 5_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    let pool = ThreadPool::new(2).map_err(|e| e.to_string())?;
    runtime.block_on(async {
        // Producers in a task group fill one bounded queue; two consumers sum what
        // arrives and mark each item done.
        let queue = Arc::new(Queue::<u64>::bounded(64));
        let shared = queue.clone();
        let consumers = tokio::spawn(gather((0..2).map(move |_| {
            let queue = shared.clone();
            async move {
                let mut sum = 0u64;
                while let Ok(item) = queue.get().await {
                    sum += item;
                    queue.task_done().map_err(|e| e.to_string())?;
                }
                Ok::<u64, String>(sum)
            }
        })));
        let produced = {
            let mut group: TaskGroup<u64, PutError<u64>> = TaskGroup::new();
            for p in 0..PRODUCERS {
                let queue = queue.clone();
                group.spawn(async move {
                    for i in 0..ITEMS {
                        queue.put(p * ITEMS + i).await?;
                    }
                    Ok(ITEMS)
                });
            }
            let produced = group.join().await.map_err(|e| e.to_string())?;
            queue.join().await;
            queue.shutdown(false); // the consumers' gets now fail: they return
            produced.iter().sum::<u64>()
        };
        let sums = consumers.await.map_err(|e| e.to_string())?;
        let sum: u64 = sums.into_iter().sum::<Result<u64, String>>()?;
        let n = PRODUCERS * ITEMS;
        let expected = n * (n - 1) / 2;
        if produced != n || sum != expected {
            return Err(format!(
                "{produced} items produced summed to {sum}, expected {n} summing to {expected}"
            ));
        }

        // A registered task on a thread pool, awaited without blocking the runtime.
        let cubes = braid::asyncio::try_gather(
            (1..=10).map(|x| run_in_executor(&pool, cube::task(), (x,))),
        )
        .await
        .map_err(|e| e.to_string())?;
        let total: u64 = cubes.iter().sum();
        if total != 3025 {
            return Err(format!("sum of cubes {total}, expected 3025"));
        }
        Ok(format!(
            "{n} items from a TaskGroup through one queue summed to {sum}; \
             10 cubes run on a pool from async code summed to {total}"
        ))
    })
}
