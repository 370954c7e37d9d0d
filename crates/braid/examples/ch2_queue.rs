//! Book recipe (ch. 2): "Thread communication using a queue": producers put items, consumers
//! get them and call `task_done`, and `join` waits until every item was handled.
//!
//! Python:
//! ```python
//! queue = Queue(maxsize=4)
//! # producer: queue.put(item)         consumer: item = queue.get(); queue.task_done()
//! queue.join()
//! ```
//!
//! Run: `cargo run --example ch2_queue`

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

use braid::sync::{self, Error, LifoQueue, PriorityQueue, PutError, Queue};

const PER_PRODUCER: u64 = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    // Bounded: producers block while 4 items wait, so the consumers set the pace.
    let queue = Arc::new(Queue::bounded(4));
    let producers = (0..2_u64)
        .map(|p| {
            let queue = queue.clone();
            sync::spawn(format!("producer-{p}"), move || {
                for n in 0..PER_PRODUCER {
                    let item = p * 1_000 + n;
                    queue
                        .put(item)
                        .map_err(|e| format!("put {} failed", e.into_inner()))?;
                }
                println!("producer-{p}: put {PER_PRODUCER} items");
                Ok::<_, String>(())
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let consumers = (0..3)
        .map(|c| {
            let queue = queue.clone();
            sync::spawn(format!("consumer-{c}"), move || {
                let mut got = Vec::new();
                // get() answers ShutDown once the queue is shut down and drained.
                while let Ok(item) = queue.get() {
                    got.push(item);
                    queue.task_done()?;
                }
                println!("consumer-{c}: handled {} items", got.len());
                Ok::<_, Error>(got)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    for producer in producers {
        producer.join()??;
    }
    queue.join();
    println!("queue.join() returned: every item had its task_done()");
    queue.shutdown(false);
    let mut handled: Vec<u64> = Vec::new();
    for consumer in consumers {
        handled.extend(consumer.join()??);
    }
    handled.sort_unstable();
    let mut expected: Vec<u64> = (0..PER_PRODUCER)
        .chain(1_000..1_000 + PER_PRODUCER)
        .collect();
    expected.sort_unstable();
    if handled != expected {
        return Err(format!("handled {handled:?}, expected {expected:?}").into());
    }

    // The errors Python raises as exceptions come back as values; a refused put returns
    // the item.
    let small = Queue::bounded(1);
    small.put("first")?;
    let full = small.try_put("second");
    let refused = matches!(full, Err(PutError::Full("second")));
    small.try_get()?;
    let empty = small.try_get();
    let timeout = small.get_timeout(Duration::from_millis(5));
    small.task_done()?;
    let too_many = small.task_done();
    println!(
        "put_nowait on full: {full:?}; get_nowait on empty: {empty:?}; get(timeout): {timeout:?}; extra task_done: {too_many:?}"
    );
    if !refused
        || empty != Err(Error::Empty)
        || !matches!(timeout, Err(Error::Timeout(_)))
        || too_many != Err(Error::TooManyTaskDone)
    {
        return Err("the queue's errors are not the ones Python raises".into());
    }

    // LifoQueue: last in, first out.
    let lifo = LifoQueue::new();
    for n in 1..=3 {
        lifo.put(n)?;
    }
    let lifo_order: Vec<i32> = std::iter::from_fn(|| lifo.try_get().ok()).collect();
    println!("LifoQueue after putting 1, 2, 3: {lifo_order:?}");

    // PriorityQueue: smallest first (Python's (priority, data) tuples); Reverse flips it.
    let jobs = PriorityQueue::new();
    for job in [(3, "low"), (1, "urgent"), (2, "normal")] {
        jobs.put(job)?;
    }
    let job_order: Vec<&str> = std::iter::from_fn(|| jobs.try_get().ok())
        .map(|j| j.1)
        .collect();
    let largest = PriorityQueue::new();
    for n in [5, 9, 1] {
        largest.put(Reverse(n))?;
    }
    let largest_order: Vec<i32> = std::iter::from_fn(|| largest.try_get().ok())
        .map(|r| r.0)
        .collect();
    println!("PriorityQueue: {job_order:?}; with Reverse: {largest_order:?}");
    if lifo_order != [3, 2, 1]
        || job_order != ["urgent", "normal", "low"]
        || largest_order != [9, 5, 1]
    {
        return Err("LifoQueue or PriorityQueue gave the wrong order".into());
    }

    println!("ok: 20 items through a bounded queue with join(); LIFO and priority orders right");
    Ok(())
}
