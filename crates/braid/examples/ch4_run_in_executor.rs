//! Book recipe (ch. 4, "Using the concurrent.futures Python modules" with asyncio): run
//! blocking or CPU-heavy work on an executor from async code, and await any executor's
//! futures.
//!
//! Python:
//! ```python
//! loop = asyncio.get_running_loop()
//! with concurrent.futures.ThreadPoolExecutor() as pool:
//!     result = await loop.run_in_executor(pool, cpu_bound, 10)
//! future = pool.submit(cpu_bound, 10)
//! result = await asyncio.wrap_future(future)
//! ```
//!
//! `run_in_executor(&executor, task, args)` works with every braid executor (threads,
//! processes, a cluster) through a registered task; `run_fn_in_executor(&pool, closure)`
//! takes any closure on a thread pool. Either way the work runs on the executor's
//! workers, never on the runtime's threads, so other tasks keep running meanwhile.
//!
//! Run: `cargo run --example ch4_run_in_executor`

use std::sync::Arc;
use std::time::Duration;

use braid::asyncio::{HandleExt, run_fn_in_executor, run_in_executor, try_gather, wrap_future};
use braid::sync::ThreadPool;

/// CPU-bound work, registered so that any executor can run it by name.
#[braid::task]
fn sum_of_squares(n: u64) -> u64 {
    (0..n).map(|x| x * x).sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let pool = ThreadPool::builder()
        .max_workers(2)
        .thread_name_prefix("cpu")
        .build()?;
    // One thread for all the async code: blocking it would stop everything.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        // run_in_executor with a registered task, several at once.
        let sums = try_gather(
            (1..=4).map(|k| run_in_executor(&pool, sum_of_squares::task(), (k * 1000,))),
        )
        .await?;
        println!("run_in_executor(pool, sum_of_squares, n) for n = 1000..4000: {sums:?}");

        // A closure that blocks its thread; meanwhile a timer task on the runtime ticks.
        let gate = Arc::new(braid::sync::Event::new());
        let blocking = {
            let gate = gate.clone();
            run_fn_in_executor(&pool, move || {
                gate.wait(); // blocks a pool thread, not the runtime
                braid::sync::current().name
            })
        };
        let ticker = tokio::spawn(async move {
            let mut ticks = 0;
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                ticks += 1;
            }
            gate.set();
            ticks
        });
        let worker = blocking.await?;
        let ticks = ticker.await?;
        println!("the blocking closure ran on {worker} while the runtime ticked {ticks} times");

        // wrap_future: a handle from a plain submit, awaited.
        let handle = pool.submit_fn(|| 6 * 7)?;
        let answer = wrap_future(handle).await?;
        let again = pool
            .submit_fn(|| "awaited with into_async")?
            .into_async()
            .await?;
        println!("wrap_future(pool.submit(...)) = {answer}; {again}");

        let expected: Vec<u64> = (1..=4).map(|k| sum_of_squares(k * 1000)).collect();
        if sums != expected || !worker.starts_with("cpu") || ticks != 3 || answer != 42 {
            return Err("the bridge gave a wrong value".into());
        }
        println!("ok: executor work awaited without blocking the event loop");
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
