//! Book recipe (ch. 3): "How to synchronize processes": two processes wait at a
//! `Barrier` and go on together, two others do not; a `Lock` keeps their lines whole.
//! Then an `Event`, a `Semaphore` and a `Condition` across processes.
//!
//! Python:
//! ```python
//! def test_with_barrier(synchronizer, serializer):
//!     name = multiprocessing.current_process().name
//!     synchronizer.wait()
//!     now = time()
//!     with serializer:
//!         print("process %s ----> %s" % (name, datetime.fromtimestamp(now)))
//! synchronizer = Barrier(2); serializer = Lock()
//! Process(name='p1 - test_with_barrier', target=test_with_barrier, args=(synchronizer, serializer)).start()
//! ```
//!
//! Run: `cargo run --example ch3_synchronise`

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use braid::proc::{
    Barrier, Condition, Event, Lock, Process, Queue, Semaphore, Value, current_process,
};

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[braid::task]
fn test_with_barrier(synchronizer: Barrier, serializer: Lock, passed: Queue<usize>) {
    let name = current_process().name;
    let index = synchronizer.wait().expect("the barrier holds");
    let _line = serializer.acquire();
    println!(
        "process {name} ----> passed the barrier at {} ms (arrival {index})",
        now_ms()
    );
    passed.put(&index).expect("the queue takes it");
}

#[braid::task]
fn test_without_barrier(serializer: Lock) {
    let name = current_process().name;
    let _line = serializer.acquire();
    println!("process {name} ----> {} ms", now_ms());
}

#[braid::task]
fn worker(
    go: Event,
    slots: Semaphore,
    inside: Value<u32>,
    most: Value<u32>,
    done: Condition,
    finished: Value<u32>,
) {
    go.wait();
    {
        let _slot = slots.acquire();
        let n = inside.update(|n| n + 1);
        most.update(|m| m.max(n));
        std::thread::sleep(Duration::from_millis(2));
        inside.update(|n| n - 1);
    }
    let _guard = done.lock();
    finished.update(|n| n + 1);
    done.notify_all();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let synchronizer = Barrier::new(2)?;
    let serializer = Lock::new()?;
    let passed = Queue::new()?;
    let mut children = vec![
        Process::new(
            test_with_barrier::task(),
            (synchronizer.clone(), serializer.clone(), passed.clone()),
        )
        .named("p1 - test_with_barrier"),
        Process::new(
            test_with_barrier::task(),
            (synchronizer.clone(), serializer.clone(), passed.clone()),
        )
        .named("p2 - test_with_barrier"),
        Process::new(test_without_barrier::task(), (serializer.clone(),))
            .named("p3 - test_without_barrier"),
        Process::new(test_without_barrier::task(), (serializer.clone(),))
            .named("p4 - test_without_barrier"),
    ];
    for child in &mut children {
        child.start()?;
    }
    for child in &children {
        child.join()?;
    }
    let mut arrivals = vec![passed.get()?, passed.get()?];
    arrivals.sort_unstable();
    if arrivals != [0, 1] {
        return Err(format!("barrier arrival indices {arrivals:?}").into());
    }

    // An event starts four workers at once; a semaphore lets two in at a time; a
    // condition tells the main process when all are through.
    let go = Event::new()?;
    let slots = Semaphore::new(2)?;
    let (inside, most, finished) = (Value::new(0u32)?, Value::new(0u32)?, Value::new(0u32)?);
    let done = Condition::new()?;
    let mut workers: Vec<Process> = (0..4)
        .map(|_| {
            Process::new(
                worker::task(),
                (
                    go.clone(),
                    slots.clone(),
                    inside.clone(),
                    most.clone(),
                    done.clone(),
                    finished.clone(),
                ),
            )
        })
        .collect();
    for w in &mut workers {
        w.start()?;
    }
    go.set();
    {
        let mut guard = done.lock();
        if !guard.wait_for_timeout(|| finished.get() == 4, Duration::from_secs(30)) {
            return Err("the workers did not all finish".into());
        }
    }
    for w in &workers {
        w.join()?;
    }
    println!(
        "4 workers through a semaphore of 2: at most {} inside at once",
        most.get()
    );
    if most.get() > 2 {
        return Err(format!("{} workers were inside at once", most.get()).into());
    }
    Ok(())
}
