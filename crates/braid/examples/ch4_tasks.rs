//! Book recipe (ch. 4): "Manipulating a task with Asyncio": three computations
//! (factorial, Fibonacci, binomial coefficient) run as concurrent tasks on one event loop,
//! each yielding to the others at every step.
//!
//! Python:
//! ```python
//! @asyncio.coroutine
//! def factorial(number):
//!     f = 1
//!     for i in range(2, number + 1):
//!         print("Asyncio.Task: Compute factorial(%s)" % (i))
//!         yield from asyncio.sleep(1)
//!         f *= i
//!     print("Asyncio.Task - factorial(%s) = %s" % (number, f))
//! tasks = [asyncio.Task(factorial(10)), asyncio.Task(fibonacci(10)),
//!          asyncio.Task(binomialCoeff(20, 10))]
//! loop.run_until_complete(asyncio.wait(tasks))
//! ```
//!
//! `asyncio.Task(coro)` / `create_task` is `tokio::spawn(future)`: the task starts running
//! concurrently at once and its `JoinHandle` is awaited for the value. The steps of the
//! three tasks interleave, as in the book's output.
//!
//! Run: `cargo run --example ch4_tasks`

use std::time::Duration;

use braid::sync::Lock;
use std::sync::Arc;

/// The book's one-second sleep between steps, shortened.
const STEP: Duration = Duration::from_millis(2);

type Log = Arc<Lock<Vec<&'static str>>>;

async fn factorial(number: u64, log: Log) -> u64 {
    let mut f = 1;
    for i in 2..=number {
        println!("Asyncio.Task: Compute factorial({i})");
        log.acquire().push("factorial");
        tokio::time::sleep(STEP).await;
        f *= i;
    }
    println!("Asyncio.Task - factorial({number}) = {f}");
    f
}

async fn fibonacci(number: u64, log: Log) -> u64 {
    let (mut a, mut b) = (0, 1);
    for _ in 0..number {
        println!("Asyncio.Task: Compute fibonacci ({b})");
        log.acquire().push("fibonacci");
        tokio::time::sleep(STEP).await;
        (a, b) = (b, a + b);
    }
    println!("Asyncio.Task - fibonacci({number}) = {a}");
    a
}

async fn binomial_coeff(n: u64, k: u64, log: Log) -> u64 {
    let mut result = 1;
    for i in 1..=k {
        result = result * (n - i + 1) / i;
        println!("Asyncio.Task: Compute binomialCoeff ({i})");
        log.acquire().push("binomial");
        tokio::time::sleep(STEP).await;
    }
    println!("Asyncio.Task - binomialCoeff({n} , {k}) = {result}");
    result
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let event_loop = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let log: Log = Arc::new(Lock::new(Vec::new()));
    let (fact, fib, binom) = event_loop.block_on(async {
        let tasks = (
            tokio::spawn(factorial(10, log.clone())),
            tokio::spawn(fibonacci(10, log.clone())),
            tokio::spawn(binomial_coeff(20, 10, log.clone())),
        );
        Ok::<_, tokio::task::JoinError>((tasks.0.await?, tasks.1.await?, tasks.2.await?))
    })?;
    println!("factorial(10) = {fact}, fibonacci(10) = {fib}, binomialCoeff(20, 10) = {binom}");
    if (fact, fib, binom) != (3_628_800, 55, 184_756) {
        return Err("a task computed a wrong value".into());
    }
    // The tasks ran concurrently: their steps interleave instead of running one block each.
    let log = log.acquire();
    let switches = log.windows(2).filter(|w| w[0] != w[1]).count();
    println!(
        "the three tasks took turns {switches} times over {} steps",
        log.len()
    );
    if switches < 10 {
        return Err("the tasks did not interleave".into());
    }
    println!("ok: three tasks ran concurrently on one thread and gave the right values");
    Ok(())
}
