//! Book recipe (ch. 4, asyncio tasks): cancelling tasks: `task.cancel()`, a `TaskGroup`
//! that cancels the siblings of a failed task, and `shield` for work that must not be
//! cancelled.
//!
//! Python:
//! ```python
//! task = asyncio.create_task(worker())
//! task.cancel()
//! try: await task
//! except asyncio.CancelledError: print("cancelled")
//! async with asyncio.TaskGroup() as tg: ...   # one failure cancels the others
//! await asyncio.wait_for(asyncio.shield(save()), 1)  # the save goes on after the timeout
//! ```
//!
//! In Rust a future is cancelled by dropping it; a spawned task by `JoinHandle::abort`.
//! Code after the last `.await` the task reached never runs, and its values are dropped,
//! so a guard's `Drop` is the place for clean-up (Python's `except CancelledError:` /
//! `finally:`). Runs on tokio's paused clock, so the output is the same on every run.
//!
//! Run: `cargo run --example ch4_cancellation`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use braid::asyncio::{Error, TaskGroup, shield, timeout};

/// Counts the clean-ups: dropped when a task is cancelled (or ends).
struct CleanUp(&'static str, Arc<AtomicUsize>);

impl Drop for CleanUp {
    fn drop(&mut self) {
        println!("  clean-up of {}", self.0);
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    runtime.block_on(async {
        let cleanups = Arc::new(AtomicUsize::new(0));

        // task.cancel()
        let task = tokio::spawn({
            let cleanups = cleanups.clone();
            async move {
                let _guard = CleanUp("the worker", cleanups);
                tokio::time::sleep(Duration::from_secs(3600)).await;
                println!("never printed: the task was cancelled while it slept");
            }
        });
        tokio::task::yield_now().await; // let it start
        task.abort();
        match task.await {
            Err(e) if e.is_cancelled() => println!("task.cancel(): the task was cancelled"),
            other => return Err(format!("expected a cancellation, got {other:?}").into()),
        }

        // A TaskGroup: one failure cancels the siblings.
        let mut group = TaskGroup::new();
        for name in ["download a", "download b"] {
            let cleanups = cleanups.clone();
            group.spawn(async move {
                let _guard = CleanUp(name, cleanups);
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(name)
            });
        }
        group.spawn(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err("the disk is full")
        });
        let failed = group.join().await.err().ok_or("the group should fail")?;
        println!(
            "TaskGroup: {failed}; {} sibling tasks cancelled",
            failed.cancelled()
        );

        // shield: the caller stops waiting, the work goes on.
        let saves = Arc::new(AtomicUsize::new(0));
        let mut saving = shield({
            let saves = saves.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                saves.fetch_add(1, Ordering::SeqCst);
                "saved"
            }
        });
        let waited = timeout(Duration::from_secs(1), &mut saving).await;
        println!("wait_for(shield(save()), 1) = {waited:?}; the save goes on");
        let saved = saving.await?;
        println!("later, the shielded work finished: {saved}");

        if cleanups.load(Ordering::SeqCst) != 3
            || failed.cancelled() != 2
            || !matches!(waited, Err(Error::Timeout(_)))
            || saves.load(Ordering::SeqCst) != 1
        {
            return Err("a cancellation did not go as expected".into());
        }
        println!("ok: cancelled tasks cleaned up, the shielded work completed");
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
