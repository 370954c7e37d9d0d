//! The threads recipe: producers and consumers over a queue, a barrier, a pool map.

use std::sync::Arc;

use braid::ExecutorExt;
use braid::sync::{Barrier, Queue, ThreadPool, spawn};

#[braid::task(name = "tour.threads.square")]
fn square(x: u64) -> u64 {
    x * x
}

pub(super) fn run() -> Result<String, String> {
    const PRODUCERS: u64 = 4;
    const ITEMS: u64 = 10_000;

    // Producers wait at a barrier so that they all start together, then fill one queue;
    // the consumer sums what arrives and marks each item done.
    let queue = Arc::new(Queue::<u64>::bounded(64));
    let barrier = Arc::new(Barrier::new(PRODUCERS as usize));
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let (queue, barrier) = (queue.clone(), barrier.clone());
        let producer = spawn(format!("producer-{p}"), move || {
            barrier.wait().map_err(|e| e.to_string())?;
            for i in 0..ITEMS {
                queue
                    .put(p * ITEMS + i)
                    .map_err(|_| "the queue refused an item".to_string())?;
            }
            Ok::<(), String>(())
        })
        .map_err(|e| e.to_string())?;
        producers.push(producer);
    }
    let consumer_queue = queue.clone();
    let consumer = spawn("consumer", move || {
        let mut sum = 0u64;
        for _ in 0..PRODUCERS * ITEMS {
            sum += consumer_queue.get().map_err(|e| e.to_string())?;
            consumer_queue.task_done().map_err(|e| e.to_string())?;
        }
        Ok::<u64, String>(sum)
    })
    .map_err(|e| e.to_string())?;
    for producer in producers {
        producer.join().map_err(|e| e.to_string())??;
    }
    queue.join();
    let sum = consumer.join().map_err(|e| e.to_string())??;
    let n = PRODUCERS * ITEMS;
    let expected = n * (n - 1) / 2;
    if sum != expected {
        return Err(format!("queue sum {sum}, expected {expected}"));
    }

    // A registered task mapped over a thread pool, in order.
    let pool = ThreadPool::new(2).map_err(|e| e.to_string())?;
    let squares: Vec<u64> = pool
        .map(square::task(), (0..1000u64).map(|x| (x,)), 50)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let total: u64 = squares.iter().sum();
    let expected_total: u64 = (0..1000u64).map(|x| x * x).sum();
    if total != expected_total || squares[999] != 999 * 999 {
        return Err(format!("sum of squares {total}, expected {expected_total}"));
    }
    Ok(format!(
        "{n} items through one queue summed to {sum}; pool map of 1000 squares summed to {total}"
    ))
}
