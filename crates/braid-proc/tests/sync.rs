//! Locks, semaphores, events, conditions, barriers and shared memory across real
//! processes: this binary re-executes itself as the children, so it owns `main`.

mod common;

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use braid_proc::{
    Array, Barrier, BoundedSemaphore, Condition, Event, Lock, Process, Queue, RLock, Semaphore,
    SharedMemory, Value,
};

type Check = Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Starts every process, then joins them all.
fn run_all(mut children: Vec<Process>) -> Check {
    for child in &mut children {
        child.start().map_err(err)?;
    }
    for child in &children {
        child.join_timeout(Duration::from_secs(30)).map_err(err)?;
    }
    Ok(())
}

#[braid_core::task(name = "s.add_under_lock")]
fn add_under_lock(lock: Lock, counter: Value<u64>, times: u64) {
    for _ in 0..times {
        let _held = lock.acquire();
        // A deliberately non-atomic read-modify-write: only the lock makes it right.
        let v = counter.get();
        counter.set(v + 1);
    }
}

#[braid_core::task(name = "s.release_for_parent")]
fn release_for_parent(lock: Lock) {
    lock.release().unwrap();
}

#[braid_core::task(name = "s.try_rlock")]
fn try_rlock(lock: RLock, out: Queue<bool>) {
    out.put(&lock.try_acquire().is_some()).unwrap();
    out.put(&lock.hold_timeout(Duration::from_secs(20)))
        .unwrap();
    lock.release().unwrap();
}

#[braid_core::task(name = "s.inside")]
fn inside(slots: Semaphore, now: Value<u32>, most: Value<u32>, rounds: u32) {
    for _ in 0..rounds {
        let _permit = slots.acquire();
        let n = now.update(|n| n + 1);
        most.update(|m| m.max(n));
        now.update(|n| n - 1);
    }
}

#[braid_core::task(name = "s.wait_event")]
fn wait_event(go: Event, done: Event) {
    assert!(go.wait_timeout(Duration::from_secs(20)), "go was never set");
    done.set();
}

#[braid_core::task(name = "s.wait_condition")]
fn wait_condition(cond: Condition, value: Value<u32>, out: Queue<u32>) {
    let mut guard = cond.lock();
    out.put(&0).unwrap(); // waiting now (the lock is released inside wait_for)
    let ok = guard.wait_for_timeout(|| value.get() >= 7, Duration::from_secs(20));
    out.put(&if ok { value.get() } else { 0 }).unwrap();
}

#[braid_core::task(name = "s.meet")]
fn meet(barrier: Barrier, out: Queue<usize>, rounds: usize) {
    for _ in 0..rounds {
        out.put(&barrier.wait().unwrap()).unwrap();
    }
}

#[braid_core::task(name = "s.fill")]
fn fill(values: Array<f64>, total: Value<f64>) {
    for i in 0..values.len() {
        values.set(i, i as f64 * 1.5).unwrap();
    }
    total.set(values.to_vec().iter().sum());
}

#[braid_core::task(name = "s.write_block")]
fn write_block(block: SharedMemory, text: String) {
    block.write(0, text.as_bytes()).unwrap();
}

fn locks_exclude_processes() -> Check {
    let lock = Lock::new().map_err(err)?;
    let counter = Value::new(0u64).map_err(err)?;
    let children = (0..3)
        .map(|_| {
            Process::new(
                add_under_lock::task(),
                (lock.clone(), counter.clone(), 2000),
            )
        })
        .collect();
    run_all(children)?;
    ensure!(counter.get() == 6000, "the counter is {}", counter.get());

    // Taken here, released there, like Python's Lock (not owned by anyone).
    lock.hold();
    run_all(vec![Process::new(
        release_for_parent::task(),
        (lock.clone(),),
    )])?;
    ensure!(!lock.is_locked(), "the child's release did not free it");

    let rlock = RLock::new().map_err(err)?;
    let out = Queue::new().map_err(err)?;
    let outer = rlock.acquire();
    let inner = rlock.acquire();
    let mut child = Process::new(try_rlock::task(), (rlock.clone(), out.clone()));
    child.start().map_err(err)?;
    ensure!(
        out.get_timeout(Duration::from_secs(20)) == Ok(false),
        "the child took a held RLock"
    );
    drop(inner);
    drop(outer);
    ensure!(
        out.get_timeout(Duration::from_secs(20)) == Ok(true),
        "the child never got the RLock"
    );
    child.join().map_err(err)?;
    Ok(())
}

fn semaphores_bound_concurrency() -> Check {
    let slots = Semaphore::new(2).map_err(err)?;
    let (now, most) = (
        Value::new(0u32).map_err(err)?,
        Value::new(0u32).map_err(err)?,
    );
    let children = (0..4)
        .map(|_| {
            Process::new(
                inside::task(),
                (slots.clone(), now.clone(), most.clone(), 300),
            )
        })
        .collect();
    run_all(children)?;
    ensure!(
        most.get() <= 2 && most.get() >= 1,
        "{} processes were inside at once",
        most.get()
    );
    ensure!(now.get() == 0 && slots.available() == 2, "permits leaked");
    let bounded = BoundedSemaphore::new(1).map_err(err)?;
    ensure!(
        bounded.release().is_err(),
        "a bounded semaphore went past its bound"
    );
    Ok(())
}

fn events_and_conditions_wake_other_processes() -> Check {
    let (go, done) = (Event::new().map_err(err)?, Event::new().map_err(err)?);
    let mut children: Vec<Process> = (0..2)
        .map(|_| Process::new(wait_event::task(), (go.clone(), done.clone())))
        .collect();
    for child in &mut children {
        child.start().map_err(err)?;
    }
    ensure!(
        !done.wait_timeout(Duration::from_millis(20)),
        "done before go"
    );
    go.set();
    ensure!(
        done.wait_timeout(Duration::from_secs(20)),
        "the children never answered"
    );
    for child in &children {
        child.join().map_err(err)?;
    }

    let cond = Condition::new().map_err(err)?;
    let value = Value::new(0u32).map_err(err)?;
    let out = Queue::new().map_err(err)?;
    let mut child = Process::new(
        wait_condition::task(),
        (cond.clone(), value.clone(), out.clone()),
    );
    child.start().map_err(err)?;
    ensure!(
        out.get_timeout(Duration::from_secs(20)) == Ok(0),
        "the child did not start waiting"
    );
    for v in 1..=7 {
        let _guard = cond.lock();
        value.set(v);
        cond.notify_all();
    }
    ensure!(
        out.get_timeout(Duration::from_secs(20)) == Ok(7),
        "the waiter saw the wrong value"
    );
    child.join().map_err(err)?;
    Ok(())
}

fn barriers_gather_processes_round_after_round() -> Check {
    let barrier = Barrier::new(4).map_err(err)?;
    let out = Queue::new().map_err(err)?;
    let mut children: Vec<Process> = (0..3)
        .map(|_| Process::new(meet::task(), (barrier.clone(), out.clone(), 3)))
        .collect();
    for child in &mut children {
        child.start().map_err(err)?;
    }
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(barrier.wait_timeout(Duration::from_secs(20)).map_err(err)?);
    }
    for child in &children {
        child.join().map_err(err)?;
    }
    let mut indices: Vec<usize> = (0..9).map(|_| out.get().unwrap_or(99)).collect();
    indices.extend(mine);
    indices.sort_unstable();
    let expected: Vec<usize> = (0..4).flat_map(|i| [i; 3]).collect();
    ensure!(indices == expected, "arrival indices {indices:?}");
    Ok(())
}

fn shared_values_arrays_and_blocks() -> Check {
    let values = Array::filled(0.0f64, 8).map_err(err)?;
    let total = Value::new(0.0f64).map_err(err)?;
    run_all(vec![Process::new(
        fill::task(),
        (values.clone(), total.clone()),
    )])?;
    let expected: Vec<f64> = (0..8).map(|i| i as f64 * 1.5).collect();
    ensure!(
        values.to_vec() == expected,
        "the array is {:?}",
        values.to_vec()
    );
    ensure!(total.get() == 42.0, "the total is {}", total.get());

    let block = SharedMemory::create(32).map_err(err)?;
    let name = block.name().to_string();
    // By name, through the start arguments and through a queue alike.
    let attached = SharedMemory::open(&name).map_err(err)?;
    run_all(vec![Process::new(
        write_block::task(),
        (attached, "written by a child".to_string()),
    )])?;
    let mut text = vec![0u8; 18];
    block.read(0, &mut text).map_err(err)?;
    ensure!(
        text == b"written by a child",
        "the block holds {:?}",
        String::from_utf8_lossy(&text)
    );
    let q = Queue::<SharedMemory>::new().map_err(err)?;
    q.put(&block).map_err(err)?;
    let again = q.get().map_err(err)?;
    ensure!(
        !again.is_owner() && again.to_vec() == block.to_vec(),
        "the block through a queue"
    );
    drop(again);
    drop(block);
    ensure!(
        !std::path::Path::new("/dev/shm").join(&name).exists(),
        "/dev/shm/{name} is left behind"
    );
    Ok(())
}

fn nothing_is_left_in_dev_shm() -> Check {
    let before: HashSet<_> = std::fs::read_dir("/dev/shm")
        .map_err(err)?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    {
        let _q = Queue::<u8>::new().map_err(err)?;
        let _l = Lock::new().map_err(err)?;
        let _v = Value::new(1u8).map_err(err)?;
        let _m = SharedMemory::create(8).map_err(err)?;
    }
    let after: HashSet<_> = std::fs::read_dir("/dev/shm")
        .map_err(err)?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let new: Vec<_> = after.difference(&before).collect();
    ensure!(new.is_empty(), "left in /dev/shm: {new:?}");
    Ok(())
}

fn main() -> ExitCode {
    braid_core::init();
    common::run(&[
        ("locks_exclude_processes", locks_exclude_processes),
        ("semaphores_bound_concurrency", semaphores_bound_concurrency),
        (
            "events_and_conditions_wake_other_processes",
            events_and_conditions_wake_other_processes,
        ),
        (
            "barriers_gather_processes_round_after_round",
            barriers_gather_processes_round_after_round,
        ),
        (
            "shared_values_arrays_and_blocks",
            shared_values_arrays_and_blocks,
        ),
        ("nothing_is_left_in_dev_shm", nothing_is_left_in_dev_shm),
    ])
}
