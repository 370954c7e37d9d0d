//! Book recipe (ch. 4, asyncio tasks): errors in tasks: a task's exception comes back when
//! it is awaited; `gather` can return errors in place or stop at the first; a `TaskGroup`
//! collects every failure into one error, like Python's `ExceptionGroup`.
//!
//! Python:
//! ```python
//! task = asyncio.create_task(parse("x"))
//! try: await task
//! except ValueError as e: ...
//! results = await asyncio.gather(*aws, return_exceptions=True)
//! try:
//!     async with asyncio.TaskGroup() as tg: ...
//! except* ValueError as group: ...
//! ```
//!
//! A task's error is its `Result`'s `Err`; a panic is caught at the task's boundary and
//! comes back as a value too (tokio's `JoinError`, braid's `TaskFailure::Panicked`), so
//! nothing takes the program down and nothing is lost.
//!
//! Run: `cargo run --example ch4_task_errors`

use braid::asyncio::{TaskFailure, TaskGroup, gather, try_gather};

async fn parse(text: &'static str) -> Result<i64, std::num::ParseIntError> {
    tokio::task::yield_now().await;
    text.parse()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    // Keeps the report of the deliberate panic below to one line.
    std::panic::set_hook(Box::new(|info| eprintln!("expected: {info}")));
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async {
        // The error of a task comes back when it is awaited.
        let task = tokio::spawn(parse("x"));
        let outcome = task.await?;
        println!("await task: {outcome:?}");

        // A panic in a task is the task's outcome, not the program's end.
        let panicked = tokio::spawn(async { panic!("a bug in a task") }).await;
        let message = match panicked {
            Err(e) if e.is_panic() => braid::panic_message(&*e.into_panic()),
            other => return Err(format!("expected a panic, got {other:?}").into()),
        };
        println!("a panicking task: {message}");

        // gather(..., return_exceptions=True) and gather(...)
        let each = gather(["1", "two", "3"].map(parse)).await;
        println!("gather(return_exceptions=True): {each:?}");
        let first = try_gather(["1", "two", "3"].map(parse)).await;
        println!("gather(): {first:?}");

        // TaskGroup: every failure, together.
        let mut group = TaskGroup::new();
        for text in ["10", "eleven", "twelve", "13"] {
            group.spawn(parse(text));
        }
        let failures = group.join().await.err().ok_or("the group should fail")?;
        println!("TaskGroup: {failures}");
        let failed_indices: Vec<usize> = failures
            .failures()
            .iter()
            .filter_map(TaskFailure::index)
            .collect();

        let ok = outcome.is_err()
            && message == "a bug in a task"
            && each[0] == Ok(1)
            && each[1].is_err()
            && each[2] == Ok(3)
            && first.is_err()
            && !failed_indices.is_empty()
            && failed_indices.iter().all(|i| [1, 2].contains(i));
        if !ok {
            return Err("an error was not reported where it should be".into());
        }
        println!("ok: every error came back to the code awaiting it");
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
