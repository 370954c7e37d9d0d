//! Book recipe (ch. 2): "Defining a thread": start threads that take arguments, then join them.
//!
//! Python:
//! ```python
//! t = threading.Thread(target=my_func, args=(i,)); t.start(); t.join()
//! ```
//!
//! Run: `cargo run --example ch2_define_thread`

use braid::sync::{self, Builder};

/// The thread's target: it takes its argument by value and gives a result back through
/// `join`, which Python's `Thread` cannot do without a shared variable.
fn my_func(thread_number: u64) -> u64 {
    println!("my_func called by thread N°{thread_number}");
    thread_number * thread_number
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    // Start all ten first, then join: they run at the same time (no GIL), so the lines
    // above come out in whatever order the threads get there.
    let mut handles = Vec::new();
    for i in 0..10 {
        handles.push(sync::spawn(format!("Thread-{i}"), move || my_func(i))?);
    }
    let mut squares = Vec::new();
    for handle in handles {
        let name = handle.name().to_string();
        let square = handle.join()?;
        println!("joined {name}: returned {square}");
        squares.push(square);
    }
    let expected: Vec<u64> = (0..10).map(|i| i * i).collect();
    if squares != expected {
        return Err(format!("joined results {squares:?}, expected {expected:?}").into());
    }

    // Builder is the long form, with the options Python's Thread(...) takes as keywords.
    let handle = Builder::new()
        .name("big-stack")
        .stack_size(4 * 1024 * 1024)
        .spawn(|| my_func(42))?;
    let answer = handle.join()?;
    if answer != 42 * 42 {
        return Err(format!("big-stack returned {answer}, expected {}", 42 * 42).into());
    }

    // A panic in a thread comes back from join as a typed error, not as a lost thread.
    // (The hook keeps the expected panic's report to one line.)
    std::panic::set_hook(Box::new(|info| eprintln!("expected: {info}")));
    let failing = sync::spawn("failing", || -> u64 { panic!("deliberate failure") })?;
    let joined = failing.join();
    drop(std::panic::take_hook());
    match joined {
        Err(sync::Error::Panicked { thread, message }) => {
            println!("join reported: thread `{thread}` panicked: {message}");
        }
        other => return Err(format!("expected a Panicked error, got {other:?}").into()),
    }

    println!("ok: 11 threads started with arguments and joined; results checked");
    Ok(())
}
