//! Book recipe (ch. 3): "How to run a process in the background": a daemon process runs
//! alongside the program and dies with it; a normal one is waited for.
//!
//! Python:
//! ```python
//! background_process = multiprocessing.Process(name='background_process', target=foo)
//! background_process.daemon = True
//! NO_background_process = multiprocessing.Process(name='NO_background_process', target=foo)
//! NO_background_process.daemon = False
//! background_process.start(); NO_background_process.start()
//! ```
//!
//! braid uses Linux's parent-death signal: a daemon is killed by the system as soon as
//! its parent ends, however it ends (even `kill -9`), so it never lingers.
//!
//! Run: `cargo run --example ch3_background_process`

use std::time::Duration;

use braid::proc::{Event, Process, current_process};

#[braid::task]
fn foo(started: Event, steps: u32) {
    let me = current_process();
    println!("Starting {} (daemon: {})", me.name, me.daemon);
    started.set();
    for i in 0..steps {
        println!("---> {i}");
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("Exiting {}", me.name);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let daemon_started = Event::new()?;
    // The daemon would take a very long time; it is killed when this program ends.
    let mut background = Process::new(foo::task(), (daemon_started.clone(), u32::MAX))
        .named("background_process")
        .daemon(true);
    let mut foreground =
        Process::new(foo::task(), (Event::new()?, 5)).named("NO_background_process");
    background.start()?;
    foreground.start()?;
    foreground.join()?;
    if !daemon_started.wait_timeout(Duration::from_secs(20)) {
        return Err("the background process never started".into());
    }
    println!(
        "NO_background_process is done; background_process is still running: {}",
        background.is_alive()
    );
    if !background.is_alive() || !background.is_daemon() {
        return Err("the daemon should still be running".into());
    }
    println!("main ends here: the system kills the daemon with it");
    Ok(())
}
