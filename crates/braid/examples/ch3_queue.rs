//! Book recipe (ch. 3): "How to exchange objects between processes: using a queue": a
//! producer process puts items, a consumer process takes them.
//!
//! Python:
//! ```python
//! class producer(multiprocessing.Process):
//!     def run(self):
//!         for i in range(10):
//!             item = random.randint(0, 256); self.queue.put(item)
//! class consumer(multiprocessing.Process):
//!     def run(self):
//!         while True:
//!             if self.queue.empty(): break
//!             item = self.queue.get()
//! queue = multiprocessing.Queue()
//! ```
//!
//! The queue is a ring buffer in shared memory: a hand-off between two running
//! processes takes about a microsecond. A sentinel (`None`) ends the consumer instead of
//! Python's racy `empty()` check.
//!
//! Run: `cargo run --example ch3_queue`

use braid::proc::{JoinableQueue, Process, Queue};

#[braid::task]
fn producer(queue: Queue<Option<u64>>, count: u64) {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..count {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let item = seed % 257;
        queue.put(&Some(item)).expect("the queue takes it");
        println!("Process Producer : item {item} appended to queue");
    }
    queue.put(&None).expect("the queue takes it");
}

#[braid::task]
fn consumer(queue: Queue<Option<u64>>, totals: JoinableQueue<(u64, u64)>) {
    let (mut count, mut sum) = (0, 0);
    while let Some(item) = queue.get().expect("a well-formed item") {
        println!("Process Consumer : item {item} popped from queue");
        count += 1;
        sum += item;
    }
    totals.put(&(count, sum)).expect("the queue takes it");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let queue = Queue::bounded(4)?; // the producer waits when the consumer lags
    let totals = JoinableQueue::new()?;
    let mut producer = Process::new(producer::task(), (queue.clone(), 10)).named("Producer");
    let mut consumer =
        Process::new(consumer::task(), (queue.clone(), totals.clone())).named("Consumer");
    producer.start()?;
    consumer.start()?;
    producer.join()?;
    consumer.join()?;
    let (count, sum) = totals.get()?;
    totals.task_done()?;
    totals.join(); // every item put has been marked done
    println!("the consumer took {count} items summing to {sum}");
    if count != 10 || !queue.is_empty() {
        return Err(format!("the consumer took {count} items").into());
    }
    Ok(())
}
