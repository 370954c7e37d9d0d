//! Book recipe (ch. 2): "Determining the current thread": name threads and ask each which
//! thread it is running on.
//!
//! Python:
//! ```python
//! def function_A(): print(threading.current_thread().name + ' --> starting')
//! t1 = threading.Thread(name='function_A', target=function_A)
//! ```
//!
//! Run: `cargo run --example ch2_current_thread`

use std::sync::Arc;

use braid::sync::{self, Barrier, Builder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    let main_name = sync::current().name;
    println!("{main_name} --> running main");
    if main_name != "MainThread" {
        return Err(format!("main thread is called {main_name:?}, expected MainThread").into());
    }

    // The workers and main meet at a barrier twice: after the first meeting all three are
    // alive, and none can finish before main has counted and comes to the second.
    let gate = Arc::new(Barrier::new(4));
    let mut handles = Vec::new();
    for name in ["function_A", "function_B", "function_C"] {
        let gate = gate.clone();
        handles.push(sync::spawn(name, move || {
            let me = sync::current();
            println!("{} --> starting", me.name);
            gate.wait()?;
            gate.wait()?;
            println!("{} --> exiting", me.name);
            Ok::<_, sync::Error>(me)
        })?);
    }
    gate.wait()?;
    let live = sync::active_count();
    println!("active_count() with three workers running: {live}");
    if live != 4 {
        return Err(format!("active_count() = {live}, expected 1 + 3").into());
    }
    gate.wait()?;

    for (handle, expected) in handles
        .into_iter()
        .zip(["function_A", "function_B", "function_C"])
    {
        let id = handle.id();
        let me = handle.join()??;
        if me.name != expected || me.id != id {
            return Err(format!("thread {expected} saw itself as {:?}", me.name).into());
        }
    }

    // A thread started without a name gets one in Python's style.
    let unnamed = Builder::new().spawn(|| sync::current().name)?.join()?;
    println!("an unnamed thread is called {unnamed}");
    if !unnamed.starts_with("Thread-") {
        return Err(format!("unnamed thread is called {unnamed:?}, expected Thread-N").into());
    }

    let after = sync::active_count();
    if after != 1 {
        return Err(format!("active_count() after the joins = {after}, expected 1").into());
    }
    println!("ok: every thread knew its own name; active_count() back to {after}");
    Ok(())
}
