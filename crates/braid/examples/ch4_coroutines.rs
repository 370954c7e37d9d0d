//! Book recipe (ch. 4): "Handling coroutines with Asyncio": a finite-state machine whose
//! states are coroutines; each picks the next state and awaits it.
//!
//! Python:
//! ```python
//! @asyncio.coroutine
//! def start_state():
//!     input_value = randint(0, 1)
//!     if input_value == 0: result = yield from state2(input_value)
//!     else:                result = yield from state1(input_value)
//!     print("Resume of the Transition:\nStart State calling " + result)
//! ```
//!
//! A coroutine is an `async fn`; `yield from other()` is `other().await`. A coroutine that
//! can call itself through others needs its future boxed (`Box::pin`), because its size
//! must be known. The book draws the transitions with `randint`; a seeded generator makes
//! the run repeatable here.
//!
//! Run: `cargo run --example ch4_coroutines`

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A small repeatable random source (xorshift), in place of Python's `randint(0, 1)`.
struct Coin(u64);

impl Coin {
    fn flip(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 & 1) as u8
    }
}

type State<'a> = Pin<Box<dyn Future<Output = String> + 'a>>;

async fn pause() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

fn state1(coin: &mut Coin, input: u8) -> State<'_> {
    Box::pin(async move {
        println!("...Evaluating...State 1 with input {input}");
        pause().await;
        let next = if coin.flip() == 0 {
            state3(coin, 0).await
        } else {
            state2(coin, 1).await
        };
        format!("State 1 calling {next}")
    })
}

fn state2(coin: &mut Coin, input: u8) -> State<'_> {
    Box::pin(async move {
        println!("...Evaluating...State 2 with input {input}");
        pause().await;
        let next = if coin.flip() == 0 {
            state1(coin, 0).await
        } else {
            state3(coin, 1).await
        };
        format!("State 2 calling {next}")
    })
}

fn state3(coin: &mut Coin, input: u8) -> State<'_> {
    Box::pin(async move {
        println!("...Evaluating...State 3 with input {input}");
        pause().await;
        let next = if coin.flip() == 0 {
            state1(coin, 0).await
        } else {
            end_state(1).await
        };
        format!("State 3 calling {next}")
    })
}

async fn end_state(input: u8) -> String {
    println!("...Evaluating...End State with input {input}");
    pause().await;
    "End State".to_string()
}

async fn start_state(coin: &mut Coin) -> String {
    println!("Start State called");
    let input = coin.flip();
    pause().await;
    let next = if input == 0 {
        state2(coin, input).await
    } else {
        state1(coin, input).await
    };
    format!("Start State calling {next}")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    println!("Finite State Machine simulation with Asyncio Coroutine");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let mut coin = Coin(0x9E37_79B9_7F4A_7C15);
    // loop.run_until_complete(start_state())
    let path = runtime.block_on(start_state(&mut coin));
    println!("Resume of the Transition:\n{path}");
    if !path.starts_with("Start State calling") || !path.ends_with("End State") {
        return Err(format!("the machine did not run from start to end: {path}").into());
    }
    println!("ok: the machine went from the start state to the end state");
    Ok(())
}
