//! Book recipe (ch. 4, "Manipulating a task" and the asyncio API it uses): run many
//! coroutines at once and collect them with `gather`, `wait` and `as_completed`.
//!
//! Python:
//! ```python
//! results = await asyncio.gather(*(fetch(i) for i in range(5)))
//! results = await asyncio.gather(*aws, return_exceptions=True)
//! done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
//! for next_done in asyncio.as_completed(aws): print(await next_done)
//! ```
//!
//! `gather` here polls the futures in place (no task is spawned: cheap, and the futures
//! may borrow); `gather_tasks` spawns each as a tokio task, as asyncio's gather does with
//! coroutines. `wait` hands back the pending futures untouched, like asyncio's sets.
//!
//! The runtime runs on tokio's paused clock (`start_paused`): sleeps take no real time and
//! the timers fire in exact order, so the output is the same on every run.
//!
//! Run: `cargo run --example ch4_gather_wait`

use std::time::Duration;

use braid::asyncio::{ReturnWhen, as_completed, gather, gather_tasks, try_gather, wait};

/// Waits `ms` milliseconds, then returns `ms`, or fails for 13.
async fn fetch(ms: u64) -> Result<u64, String> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    if ms == 13 {
        Err(format!("fetch({ms}) failed"))
    } else {
        Ok(ms)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    runtime.block_on(async {
        // gather: concurrent, results in the order of the inputs.
        let ordered = try_gather([30, 10, 20].map(fetch)).await?;
        println!("gather(fetch(30), fetch(10), fetch(20)) = {ordered:?}");
        if ordered != [30, 10, 20] {
            return Err("gather lost the input order".into());
        }

        // return_exceptions=True: each error stays in its place.
        let mixed = gather([5, 13, 7].map(fetch)).await;
        println!("gather(..., return_exceptions=True) = {mixed:?}");
        if !(mixed[0].is_ok() && mixed[1].is_err() && mixed[2].is_ok()) {
            return Err("the error is not in its place".into());
        }
        // Without it, the first error is the result.
        let first_error = try_gather([5, 13, 7].map(fetch)).await;
        println!("gather(...) = {first_error:?}");
        if first_error != Err("fetch(13) failed".into()) {
            return Err("try_gather should fail with fetch(13)'s error".into());
        }

        // Spawned: each future runs as a task of its own.
        let spawned = gather_tasks((1..=3).map(|i| fetch(i * 2))).await;
        println!("gather_tasks(...) = {spawned:?}");

        // wait(FIRST_COMPLETED): the pending tasks come back untouched.
        let tasks = [40, 5, 25].map(|ms| tokio::spawn(fetch(ms)));
        let first = wait(tasks, ReturnWhen::FirstCompleted, None).await;
        println!(
            "wait(FIRST_COMPLETED): done {:?}, {} pending",
            first.done.iter().map(|(i, _)| i).collect::<Vec<_>>(),
            first.pending.len()
        );
        let rest = wait(
            first.pending.into_iter().map(|(_, task)| task),
            ReturnWhen::AllCompleted,
            None,
        )
        .await;
        println!("wait(ALL_COMPLETED) on the rest: {} done", rest.done.len());
        if first.done.len() != 1 || first.done[0].0 != 1 || rest.done.len() != 2 {
            return Err("wait split the tasks wrongly".into());
        }

        // as_completed: in finishing order.
        let mut finished = as_completed([30, 10, 20].map(fetch));
        let mut order = Vec::new();
        while let Some(result) = finished.next().await {
            order.push(result?);
        }
        println!("as_completed order: {order:?}");
        if order != [10, 20, 30] {
            return Err("as_completed is not in finishing order".into());
        }
        println!("ok: gather, wait and as_completed gave the right values");
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
