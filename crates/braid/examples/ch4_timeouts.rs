//! Book recipe (ch. 4, asyncio): time-outs: `wait_for`, `wait(timeout=)`,
//! `as_completed(timeout=)`, and waiting on a queue or an event with a time limit.
//!
//! Python:
//! ```python
//! try: await asyncio.wait_for(slow(), timeout=1.0)
//! except asyncio.TimeoutError: ...
//! done, pending = await asyncio.wait(tasks, timeout=2.0)
//! async with asyncio.timeout(2): ...
//! ```
//!
//! Every time-out here fails with `Error::Timeout(duration)`. `timeout` cancels the
//! future it wraps, as `wait_for` does; `wait` cancels nothing and returns what is still
//! pending. Runs on tokio's paused clock: the times are exact and the example takes no
//! real time.
//!
//! Run: `cargo run --example ch4_timeouts`

use std::time::Duration;

use braid::asyncio::{Error, Event, Queue, ReturnWhen, as_completed, timeout, wait};
use tokio::time::Instant;

async fn nap(s: u64) -> Result<u64, Error> {
    tokio::time::sleep(Duration::from_secs(s)).await;
    Ok(s)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    runtime.block_on(async {
        let start = Instant::now();

        // wait_for(slow(), timeout=1)
        let slow = timeout(Duration::from_secs(1), nap(10)).await;
        println!("wait_for(nap(10), 1) = {slow:?}");
        let fast = timeout(Duration::from_secs(1), nap(0)).await;
        println!("wait_for(nap(0), 1) = {fast:?}");

        // wait(tasks, timeout=3): nothing is cancelled.
        let waited = wait(
            [1, 2, 5].map(|s| Box::pin(nap(s))),
            ReturnWhen::AllCompleted,
            Some(Duration::from_secs(3)),
        )
        .await;
        println!(
            "wait(timeout=3): {} done, {} pending",
            waited.done.len(),
            waited.pending.len()
        );

        // as_completed with a time limit for each result.
        let mut stream = as_completed([1, 20].map(|s| Box::pin(nap(s))));
        let first = timeout(Duration::from_secs(2), stream.next()).await;
        let second = timeout(Duration::from_secs(2), stream.next()).await;
        println!("as_completed, 2 s per result: {first:?}, then {second:?}");

        // A queue get and an event wait with time limits.
        let queue = Queue::<u8>::new();
        let got = queue.get_timeout(Duration::from_millis(500)).await;
        let event = Event::new();
        let set = event.wait_timeout(Duration::from_millis(500)).await;
        println!("queue.get(timeout=0.5) = {got:?}; event.wait(timeout=0.5) = {set:?}");

        let elapsed = start.elapsed();
        println!("time on the paused clock: {elapsed:?}");
        let ok = slow == Err(Error::Timeout(Duration::from_secs(1)))
            && fast == Ok(Ok(0))
            && (waited.done.len(), waited.pending.len()) == (2, 1)
            && matches!(first, Ok(Some(Ok(1))))
            && matches!(second, Err(Error::Timeout(_)))
            && got == Err(Error::Timeout(Duration::from_millis(500)))
            && set.is_err()
            && elapsed == Duration::from_secs(1 + 3 + 1 + 2 + 1);
        if !ok {
            return Err("a time-out did not behave as expected".into());
        }
        println!("ok: every time-out fired at its time and nothing else was lost");
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
