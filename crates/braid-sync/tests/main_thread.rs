//! Runs on the process's main thread (no libtest harness): `current()` names it
//! `MainThread`, and no other test's threads move `active_count()`.

use braid_sync::{Event, ThreadPool, active_count, current, spawn};
use std::sync::Arc;

fn main() {
    assert_eq!(current().name, "MainThread");
    assert_eq!(current().id, std::thread::current().id());
    assert_eq!(active_count(), 1);

    let release = Arc::new(Event::new());
    let started = Arc::new(Event::new());
    let (r, s) = (release.clone(), started.clone());
    let worker = spawn("held", move || {
        s.set();
        r.wait();
        active_count()
    })
    .unwrap();
    started.wait();
    assert_eq!(active_count(), 2, "the main thread and `held`");
    release.set();
    assert_eq!(worker.join().unwrap(), 2, "counted from inside too");
    assert_eq!(active_count(), 1, "a joined thread no longer counts");

    let pool = ThreadPool::new(3).unwrap();
    assert_eq!(active_count(), 4, "pool workers count as braid threads");
    drop(pool);
    assert_eq!(active_count(), 1);

    // A thread started elsewhere without a name gets a stable `Thread-N` name.
    let names = std::thread::spawn(|| (current().name, current().name))
        .join()
        .unwrap();
    assert!(names.0.starts_with("Thread-"), "{}", names.0);
    assert_eq!(names.0, names.1);
    println!("main_thread: ok");
}
