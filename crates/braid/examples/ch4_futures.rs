//! Book recipe (ch. 4): "Dealing with Asyncio and Futures": two coroutines each complete a
//! future with `set_result`; a done-callback prints each result.
//!
//! Python:
//! ```python
//! @asyncio.coroutine
//! def first_coroutine(future, N):
//!     count = 0
//!     for i in range(1, N + 1): count = count + 1
//!     yield from asyncio.sleep(4)
//!     future.set_result("first coroutine (sum of N integers) result = " + str(count))
//! def got_result(future): print(future.result())
//! future1 = asyncio.Future()
//! tasks = [first_coroutine(future1, N1), second_coroutine(future2, N2)]
//! future1.add_done_callback(got_result)
//! loop.run_until_complete(asyncio.wait(tasks))
//! ```
//!
//! A Rust future is a computation, not a slot that someone else fills; the slot is a
//! channel. Two braid answers: a tokio `oneshot` (its sender's `send` is `set_result`, its
//! receiver is awaited), and braid's own [`braid::promise`], whose `Handle` has
//! `add_done_callback` as `concurrent.futures.Future` does, and which
//! `braid::asyncio::wrap_future` makes awaitable (Python's `asyncio.wrap_future`).
//!
//! Run: `cargo run --example ch4_futures`

use std::sync::Arc;
use std::time::Duration;

use braid::asyncio::wrap_future;
use braid::sync::Lock;
use braid::{Handle, Promise};
use tokio::sync::oneshot;

/// Sums 1..=n, waits a moment, and sets the future's result.
async fn first_coroutine(future: oneshot::Sender<String>, n: u64) {
    let count: u64 = (1..=n).sum();
    tokio::time::sleep(Duration::from_millis(4)).await;
    let message = format!("first coroutine (sum of N integers) result = {count}");
    if future.send(message).is_err() {
        println!("nobody waits for the first result any more");
    }
}

/// Computes n!, waits a moment, and completes the promise.
async fn second_coroutine(future: Promise<String>, n: u64) {
    let count: u64 = (1..=n).product();
    tokio::time::sleep(Duration::from_millis(4)).await;
    future.complete(Ok(format!("second coroutine (factorial) result = {count}")));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let (n1, n2) = (1000, 10);
    let event_loop = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;

    let (set_first, future1) = oneshot::channel::<String>();
    let (set_second, future2): (Promise<String>, Handle<String>) = braid::promise();

    // add_done_callback(got_result): runs on the thread that completes the future.
    let printed = Arc::new(Lock::new(Vec::new()));
    future2.add_done_callback({
        let printed = printed.clone();
        move |result| {
            if let Ok(text) = result {
                println!("{text}");
                printed.acquire().push(text.clone());
            }
        }
    });

    let (first, second) = event_loop.block_on(async {
        tokio::spawn(first_coroutine(set_first, n1));
        tokio::spawn(second_coroutine(set_second, n2));
        // asyncio.wait(tasks): both futures resolve.
        tokio::join!(future1, wrap_future(future2))
    });
    let first = first?;
    let second = second?;
    println!("{first}");

    let expected_first = format!("first coroutine (sum of N integers) result = {}", 500_500);
    let expected_second = format!("second coroutine (factorial) result = {}", 3_628_800);
    if first != expected_first || second != expected_second {
        return Err(format!("wrong results: {first:?}, {second:?}").into());
    }
    if printed.acquire().as_slice() != [expected_second] {
        return Err("the done-callback did not run once with the result".into());
    }
    println!("ok: both futures got their results, and the done-callback ran");
    Ok(())
}
