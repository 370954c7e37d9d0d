//! Book recipe (ch. 3): "How to kill a process": `terminate()` a running process and read
//! its exit code, minus the signal number as Python reports it.
//!
//! Python:
//! ```python
//! p = multiprocessing.Process(target=foo)
//! p.start(); print('Process running:', p, p.is_alive())
//! p.terminate(); p.join(); print('Process joined:', p, p.is_alive())
//! print('Process exit code:', p.exitcode)   # -15
//! ```
//!
//! Run: `cargo run --example ch3_kill_process`

use braid::proc::{Error, Event, Process};

#[braid::task]
fn foo(started: Event) {
    println!("Starting function");
    started.set();
    loop {
        std::thread::park(); // works forever, until stopped from outside
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    for (how, expected) in [("terminate", -15), ("kill", -9)] {
        let started = Event::new()?;
        let mut p = Process::new(foo::task(), (started.clone(),));
        println!("Process before execution: alive = {}", p.is_alive());
        p.start()?;
        started.wait();
        println!(
            "Process running: pid {:?}, alive = {}",
            p.pid(),
            p.is_alive()
        );
        if how == "terminate" {
            p.terminate()?;
        } else {
            p.kill()?;
        }
        let joined = p.join();
        println!(
            "Process {how}d and joined: alive = {}, join said: {joined:?}",
            p.is_alive()
        );
        println!("Process exit code: {:?}", p.exitcode());
        if p.exitcode() != Some(expected) || !matches!(joined, Err(Error::Killed { .. })) {
            return Err(format!("{how}: exit code {:?}", p.exitcode()).into());
        }
    }
    Ok(())
}
