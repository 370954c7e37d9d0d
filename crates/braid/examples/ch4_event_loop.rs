//! Book recipe (ch. 4): "Event loop management with Asyncio": callbacks scheduled with
//! `call_soon` and `call_later` hand control to each other until an end time, and the loop
//! runs until the work is complete.
//!
//! Python:
//! ```python
//! def function_1(end_time, loop):
//!     print("function_1 called")
//!     if (loop.time() + 1.0) < end_time:
//!         loop.call_later(1, function_2, end_time, loop)
//!     else:
//!         loop.stop()
//! loop = asyncio.get_event_loop()
//! end_loop = loop.time() + 9.0
//! loop.call_soon(function_1, end_loop, loop)
//! loop.run_forever()
//! loop.close()
//! ```
//!
//! tokio's equivalents:
//! - the event loop is a tokio `Runtime`; a current-thread runtime is asyncio's one-thread
//!   loop (`Builder::new_current_thread()`), a multi-thread one spreads tasks over cores;
//! - `loop.run_until_complete(coro)` is `runtime.block_on(future)`; `asyncio.run` is the
//!   same, or `#[tokio::main]`;
//! - `loop.call_soon(f)` is `tokio::spawn(async { f() })`: it runs when the loop next
//!   gets control (at the current task's next `.await`);
//! - `loop.call_later(delay, f)` is a spawned task that sleeps first
//!   (`tokio::time::sleep(delay).await; f()`); its `JoinHandle::abort` is
//!   `TimerHandle.cancel()`; `loop.call_at(when, f)` uses `sleep_until`;
//! - `loop.time()` is `tokio::time::Instant::now()`; `loop.stop()` is returning from the
//!   future given to `block_on` (here: when the last callback signals it).
//!
//! Run: `cargo run --example ch4_event_loop`

use std::sync::Arc;
use std::time::Duration;

use braid::asyncio::Event;
use braid::sync::Lock;
use tokio::time::Instant;

/// One "second" of the book, shortened so that the example runs in a moment.
const TICK: Duration = Duration::from_millis(10);

/// What the callbacks share: the end time, the record of calls, and the stop signal.
struct Loop {
    end: Instant,
    calls: Lock<Vec<&'static str>>,
    stopped: Event,
}

/// A callback: records its call, then schedules `next` one tick later if there is time,
/// else stops the loop (as the book's `function_1`, `function_2`, `function_3`).
fn callback(state: Arc<Loop>, name: &'static str, next: fn(Arc<Loop>)) {
    println!("{name} called");
    state.calls.acquire().push(name);
    if Instant::now() + TICK < state.end {
        // call_later(1, next, ...)
        tokio::spawn(async move {
            tokio::time::sleep(TICK).await;
            next(state);
        });
    } else {
        state.stopped.set(); // loop.stop()
    }
}

fn function_1(state: Arc<Loop>) {
    callback(state, "function_1", function_2);
}
fn function_2(state: Arc<Loop>) {
    callback(state, "function_2", function_3);
}
fn function_3(state: Arc<Loop>) {
    callback(state, "function_3", function_1);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    // asyncio.get_event_loop(): one thread, with timers.
    let event_loop = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;

    let calls = event_loop.block_on(async {
        let state = Arc::new(Loop {
            end: Instant::now() + TICK * 9,
            calls: Lock::new(Vec::new()),
            stopped: Event::new(),
        });
        // call_soon(function_1, ...): runs once this task yields to the loop.
        tokio::spawn({
            let state = state.clone();
            async move { function_1(state) }
        });
        // run until the callbacks stop the loop.
        state.stopped.wait().await;
        state.calls.acquire().clone()
    });

    // call_later returns a handle that can be cancelled before it fires.
    let cancelled = event_loop.block_on(async {
        let fired = Arc::new(Event::new());
        let timer = tokio::spawn({
            let fired = fired.clone();
            async move {
                tokio::time::sleep(TICK).await;
                fired.set();
            }
        });
        timer.abort(); // TimerHandle.cancel()
        let outcome = timer.await;
        tokio::time::sleep(TICK * 2).await;
        outcome.is_err_and(|e| e.is_cancelled()) && !fired.is_set()
    });
    println!("a call_later cancelled before its time never runs: {cancelled}");

    println!("calls in order: {calls:?}");
    let cycle = ["function_1", "function_2", "function_3"];
    let in_cycle = calls.iter().zip(cycle.iter().cycle()).all(|(a, b)| a == b);
    if calls.len() < 3 || !in_cycle || !cancelled {
        return Err(format!("the callbacks ran out of turn: {calls:?}").into());
    }
    println!(
        "ok: {} callbacks ran in turn until the end time",
        calls.len()
    );
    Ok(())
}
