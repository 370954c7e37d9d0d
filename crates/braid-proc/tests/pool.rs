//! The process pool's contracts, faults included, with real worker processes: this
//! binary re-executes itself as the workers, so it owns `main`.

mod common;

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use braid_core::{Codec, ExecutorExt, TaskCall, TaskErrorKind, TaskRef};
use braid_proc::{Error, ProcessPool, Queue};

type Check = Result<(), String>;

#[braid_core::task(name = "p.square")]
fn square(x: u64) -> u64 {
    x * x
}

#[braid_core::task(name = "p.add")]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[braid_core::task(name = "p.pid")]
fn pid(_x: u64) -> u32 {
    std::process::id()
}

#[braid_core::task(name = "p.fail_on")]
fn fail_on(x: u64, bad: u64) -> Result<u64, String> {
    if x == bad {
        Err(format!("item {x} is bad"))
    } else {
        Ok(x)
    }
}

#[braid_core::task(name = "p.die_on")]
fn die_on(x: u64, victim: u64) -> u64 {
    if x == victim {
        kill_self();
    }
    x
}

#[braid_core::task(name = "p.abort")]
fn abort_now() -> u64 {
    std::process::abort()
}

fn kill_self() -> ! {
    let me = rustix::process::getpid();
    rustix::process::kill_process(me, rustix::process::Signal::KILL).unwrap();
    unreachable!("SIGKILL does not return")
}

/// What the initializer leaves in each worker.
static STARTED: OnceLock<Queue<u32>> = OnceLock::new();

#[braid_core::task(name = "p.init")]
fn init(started: Queue<u32>) {
    started.put(&std::process::id()).unwrap();
    assert!(
        STARTED.set(started).is_ok(),
        "the initializer ran twice in one worker"
    );
}

#[braid_core::task(name = "p.init_fails")]
fn init_fails() -> Result<(), String> {
    Err("no database here".to_string())
}

/// Reports that it started (through the queue the initializer left), then hangs.
#[braid_core::task(name = "p.announce_and_hang")]
fn announce_and_hang() -> u64 {
    STARTED
        .get()
        .expect("the initializer ran")
        .put(&std::process::id())
        .unwrap();
    loop {
        std::thread::park();
    }
}

/// Whether this worker's initializer ran.
#[braid_core::task(name = "p.initialized")]
fn initialized(_x: u64) -> bool {
    STARTED.get().is_some()
}

#[braid_core::task(name = "p.die_first_time")]
fn die_first_time(marker: String) -> u64 {
    if std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .is_ok()
    {
        kill_self();
    }
    42
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn every_kind_of_map_gives_the_right_answers() -> Check {
    let pool = ProcessPool::new(2).map_err(err)?;
    ensure!(
        pool.processes() == 2 && pool.pids().len() == 2,
        "pids {:?}",
        pool.pids()
    );
    let expected: Vec<u64> = (0..1000).map(|x| x * x).collect();
    ensure!(
        pool.map(square::task(), 0..1000u64).map_err(err)? == expected,
        "map"
    );
    ensure!(
        pool.map_chunked(square::task(), 0..1000u64, 1)
            .map_err(err)?
            == expected,
        "map chunksize 1"
    );
    ensure!(
        pool.map(square::task(), Vec::<u64>::new())
            .map_err(err)?
            .is_empty(),
        "empty map"
    );
    // Big chunks both ways: requests and results larger than the socket buffers.
    let big = pool.map(square::task(), 0..300_000u64).map_err(err)?;
    ensure!(
        big.len() == 300_000 && big[299_999] == 299_999 * 299_999,
        "a big map"
    );
    let sums = pool
        .starmap(add::task(), (0..100u64).map(|i| (i, 1000)))
        .map_err(err)?;
    ensure!(sums == (1000..1100).collect::<Vec<u64>>(), "starmap");
    let imap: Vec<u64> = pool
        .imap(square::task(), 0..300u64, 7)
        .collect::<Result<_, _>>()
        .map_err(err)?;
    ensure!(imap == expected[..300], "imap");
    let mut unordered: Vec<u64> = pool
        .imap_unordered(square::task(), 0..300u64, 5)
        .collect::<Result<_, _>>()
        .map_err(err)?;
    unordered.sort_unstable();
    ensure!(unordered == expected[..300], "imap_unordered");
    ensure!(pool.apply(add::task(), (2, 3)).map_err(err)? == 5, "apply");

    // apply_async with callbacks; the Executor interface.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (ok, bad) = (seen.clone(), seen.clone());
    let h = pool
        .apply_async_with(
            square::task(),
            (9,),
            move |v| ok.lock().unwrap().push(format!("value {v}")),
            move |e| bad.lock().unwrap().push(format!("error {e}")),
        )
        .map_err(err)?;
    ensure!(h.result() == Ok(81), "apply_async_with result");
    let (ok, bad) = (seen.clone(), seen.clone());
    let h = pool
        .apply_async_with(
            fail_on::task(),
            (3, 3),
            move |v| ok.lock().unwrap().push(format!("value {v}")),
            move |e| bad.lock().unwrap().push(format!("error {e}")),
        )
        .map_err(err)?;
    ensure!(h.result().is_err(), "the failing task succeeded");
    let seen = seen.lock().unwrap().clone();
    ensure!(
        seen.len() == 2 && seen[0] == "value 81" && seen[1].contains("item 3 is bad"),
        "callbacks saw {seen:?}"
    );
    let through_trait: Vec<u64> =
        ExecutorExt::map(&pool, square::task(), (0..50u64).map(|x| (x,)), 4)
            .collect::<Result<_, _>>()
            .map_err(err)?;
    ensure!(through_trait == expected[..50], "ExecutorExt::map");
    ensure!(
        pool.submit(add::task(), (40, 2)).map_err(err)?.result() == Ok(42),
        "submit"
    );
    Ok(())
}

fn task_errors_name_the_task_and_bad_input_loses_nothing() -> Check {
    let pool = ProcessPool::new(2).map_err(err)?;
    let pids_before: HashSet<u32> = pool.pids().into_iter().collect();
    match pool.starmap(fail_on::task(), (0..10u64).map(|x| (x, 6))) {
        Err(braid_core::Error::Task(e)) => {
            ensure!(
                e.task == "p.fail_on" && e.message == "item 6 is bad",
                "task error {e:?}"
            );
            ensure!(e.kind == TaskErrorKind::Error, "kind {:?}", e.kind);
        }
        other => return Err(format!("starmap with a failing item gave {other:?}")),
    }
    let each: Vec<Result<u64, braid_core::Error>> = pool.imap(square::task(), 0..4u64, 1).collect();
    ensure!(each.iter().all(Result::is_ok), "{each:?}");

    // Arguments that do not decode: a typed error for that call, the worker lives on.
    let garbage = TaskCall::from_parts(
        "p.square",
        Codec::Binary,
        vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
    );
    match pool.submit_call::<u64>(garbage).map_err(err)?.result() {
        Err(braid_core::Error::DecodeArgs { task, .. }) if task == "p.square" => {}
        other => return Err(format!("undecodable arguments gave {other:?}")),
    }
    let json = TaskCall::new("p.square", Codec::Json, &(12u64,)).map_err(err)?;
    ensure!(
        pool.submit_call::<u64>(json).map_err(err)?.result() == Ok(144),
        "a JSON call"
    );
    let unknown: TaskRef<(u64,), u64> = TaskRef::new("p.nope");
    match pool.apply(unknown, (1,)) {
        Err(braid_core::Error::UnknownTask(name)) if name == "p.nope" => {}
        other => return Err(format!("an unknown task gave {other:?}")),
    }
    match pool.map(unknown, 0..3u64) {
        Err(braid_core::Error::UnknownTask(_)) => {}
        other => return Err(format!("map of an unknown task gave {other:?}")),
    }
    let pids_after: HashSet<u32> = pool.pids().into_iter().collect();
    ensure!(
        pids_before == pids_after,
        "a worker was replaced: {pids_before:?} -> {pids_after:?}"
    );
    Ok(())
}

fn a_worker_killed_during_map_fails_only_its_tasks() -> Check {
    let pool = ProcessPool::new(2).map_err(err)?;
    let first = pool.pids();
    // Item 25 kills the worker running it; chunksize 1 makes each item its own task.
    match pool.starmap_chunked(die_on::task(), (0..60u64).map(|x| (x, 25)), 1) {
        Err(braid_core::Error::WorkerLost(why)) => {
            ensure!(why.contains("signal 9"), "the loss does not say how: {why}");
        }
        other => return Err(format!("map with a killed worker gave {other:?}")),
    }
    // Each item's own outcome: the victim is lost, every other item is right or lost
    // with it (it was queued on the same worker).
    let each: Vec<Result<u64, braid_core::Error>> = (0..60u64)
        .map(|x| pool.apply_async(die_on::task(), (x, 25)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?
        .into_iter()
        .map(|h| h.result())
        .collect();
    ensure!(
        matches!(each[25], Err(braid_core::Error::WorkerLost(_))),
        "the victim gave {:?}",
        each[25]
    );
    let lost = each.iter().filter(|o| o.is_err()).count();
    ensure!(lost <= 2 * 64, "{lost} items lost");
    for (x, outcome) in each.iter().enumerate() {
        match outcome {
            Ok(v) => ensure!(*v == x as u64, "item {x} gave {v}"),
            Err(braid_core::Error::WorkerLost(_)) => {}
            Err(e) => return Err(format!("item {x} failed with {e}")),
        }
    }
    // Replacements took the dead workers' places, and the pool still works.
    ensure!(
        pool.apply(square::task(), (7,)) == Ok(49),
        "the pool after the kills"
    );
    ensure!(
        pool.pids().len() == 2,
        "pids after the kills: {:?}",
        pool.pids()
    );
    ensure!(
        pool.pids() != first,
        "no worker was replaced: {:?}",
        pool.pids()
    );
    Ok(())
}

fn a_worker_killed_from_outside_or_aborting_is_reported() -> Check {
    let started = Queue::<u32>::new().map_err(err)?;
    let pool = ProcessPool::builder()
        .processes(2)
        .initializer(init::task(), (started.clone(),))
        .build()
        .map_err(err)?;
    for _ in 0..2 {
        started.get_timeout(Duration::from_secs(20)).map_err(err)?;
    }
    let hung = pool
        .apply_async(announce_and_hang::task(), braid_core::NoArgs)
        .map_err(err)?;
    let victim = started.get_timeout(Duration::from_secs(20)).map_err(err)?;
    let pid = rustix::process::Pid::from_raw(victim as i32).ok_or("pid 0")?;
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).map_err(err)?;
    match hung.result_timeout(Duration::from_secs(20)) {
        Err(Err(braid_core::Error::WorkerLost(why))) => {
            ensure!(
                why.contains(&victim.to_string()) && why.contains("SIGKILL"),
                "{why}"
            );
        }
        Err(Ok(_)) => return Err("the lost task was not reported within 20 s".into()),
        other => return Err(format!("a killed worker's task gave {other:?}")),
    }
    match pool.apply(abort_now::task(), braid_core::NoArgs) {
        Err(braid_core::Error::WorkerLost(why)) if why.contains("SIGABRT") => {}
        other => return Err(format!("an aborting task gave {other:?}")),
    }
    ensure!(
        pool.apply(square::task(), (3,)) == Ok(9),
        "the pool after the kill"
    );
    ensure!(
        !pool.pids().contains(&victim),
        "the killed worker is still listed"
    );
    Ok(())
}

fn lost_tasks_retry_once_when_asked() -> Check {
    let marker = std::env::temp_dir().join(format!("braid-proc-retry-{}", std::process::id()));
    let marker_text = marker.to_string_lossy().into_owned();
    let pool = ProcessPool::builder()
        .processes(1)
        .retry_lost_tasks(true)
        .build()
        .map_err(err)?;
    let got = pool.apply(die_first_time::task(), (marker_text.clone(),));
    std::fs::remove_file(&marker).map_err(err)?;
    ensure!(got == Ok(42), "with a retry, the task gave {got:?}");
    let pool = ProcessPool::new(1).map_err(err)?;
    let got = pool.apply(die_first_time::task(), (marker_text,));
    std::fs::remove_file(&marker).map_err(err)?;
    ensure!(
        matches!(got, Err(braid_core::Error::WorkerLost(_))),
        "without a retry: {got:?}"
    );
    Ok(())
}

fn maxtasksperchild_replaces_workers() -> Check {
    let pool = ProcessPool::builder()
        .processes(2)
        .maxtasksperchild(2)
        .build()
        .map_err(err)?;
    let pids = pool.map_chunked(pid::task(), 0..12u64, 1).map_err(err)?;
    let distinct: HashSet<u32> = pids.iter().copied().collect();
    ensure!(
        distinct.len() >= 6,
        "12 tasks at 2 per worker ran in {} processes: {pids:?}",
        distinct.len()
    );
    let mut per_pid = std::collections::HashMap::new();
    for p in &pids {
        *per_pid.entry(p).or_insert(0) += 1;
    }
    ensure!(
        per_pid.values().all(|&n| n <= 2),
        "a worker ran more than 2 tasks: {per_pid:?}"
    );
    Ok(())
}

fn the_initializer_runs_once_per_worker() -> Check {
    let started = Queue::<u32>::new().map_err(err)?;
    let pool = ProcessPool::builder()
        .processes(3)
        .initializer(init::task(), (started.clone(),))
        .build()
        .map_err(err)?;
    let all = pool
        .map_chunked(initialized::task(), 0..60u64, 1)
        .map_err(err)?;
    ensure!(
        all.iter().all(|&b| b),
        "a task ran in a worker without its initializer"
    );
    let pids: HashSet<u32> = pool.pids().into_iter().collect();
    drop(pool);
    let mut inits = Vec::new();
    while let Ok(pid) = started.try_get() {
        inits.push(pid);
    }
    let distinct: HashSet<u32> = inits.iter().copied().collect();
    ensure!(
        inits.len() == 3 && distinct == pids,
        "initializer ran in {inits:?}; workers {pids:?}"
    );

    let broken = ProcessPool::builder()
        .processes(2)
        .initializer(init_fails::task(), braid_core::NoArgs)
        .build()
        .map_err(err)?;
    match broken.apply(square::task(), (2,)) {
        Err(braid_core::Error::WorkerLost(why)) if why.contains("no database here") => Ok(()),
        other => Err(format!("a pool whose initializer fails gave {other:?}")),
    }
}

fn close_terminate_join_and_drop_leave_nothing() -> Check {
    let pool = ProcessPool::new(2).map_err(err)?;
    ensure!(pool.join() == Err(Error::PoolRunning), "join before close");
    pool.close();
    ensure!(
        pool.apply(square::task(), (2,)) == Err(braid_core::Error::Shutdown),
        "apply after close"
    );
    pool.join().map_err(err)?;

    let started = Queue::<u32>::new().map_err(err)?;
    let pool = ProcessPool::builder()
        .processes(1)
        .initializer(init::task(), (started.clone(),))
        .build()
        .map_err(err)?;
    started.get_timeout(Duration::from_secs(20)).map_err(err)?;
    let hung = pool
        .apply_async(announce_and_hang::task(), braid_core::NoArgs)
        .map_err(err)?;
    started.get_timeout(Duration::from_secs(20)).map_err(err)?;
    let queued = pool.apply_async(square::task(), (5,)).map_err(err)?;
    pool.terminate();
    ensure!(
        matches!(hung.result(), Err(braid_core::Error::WorkerLost(_))),
        "a running task at terminate"
    );
    ensure!(
        queued.result() == Err(braid_core::Error::Cancelled),
        "a queued task at terminate"
    );
    pool.join().map_err(err)?;

    // Dropped without close: the queued work finishes, every worker is reaped.
    let pool = ProcessPool::new(2).map_err(err)?;
    let pending: Vec<_> = (0..20u64)
        .map(|x| pool.apply_async(square::task(), (x,)))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let pids = pool.pids();
    drop(pool);
    for (x, h) in pending.into_iter().enumerate() {
        ensure!(
            h.result() == Ok((x * x) as u64),
            "work queued before the drop was lost"
        );
    }
    for pid in pids {
        ensure!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} is left behind (a zombie or alive)"
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    braid_core::init();
    common::run(&[
        (
            "every_kind_of_map_gives_the_right_answers",
            every_kind_of_map_gives_the_right_answers,
        ),
        (
            "task_errors_name_the_task_and_bad_input_loses_nothing",
            task_errors_name_the_task_and_bad_input_loses_nothing,
        ),
        (
            "a_worker_killed_during_map_fails_only_its_tasks",
            a_worker_killed_during_map_fails_only_its_tasks,
        ),
        (
            "a_worker_killed_from_outside_or_aborting_is_reported",
            a_worker_killed_from_outside_or_aborting_is_reported,
        ),
        (
            "lost_tasks_retry_once_when_asked",
            lost_tasks_retry_once_when_asked,
        ),
        (
            "maxtasksperchild_replaces_workers",
            maxtasksperchild_replaces_workers,
        ),
        (
            "the_initializer_runs_once_per_worker",
            the_initializer_runs_once_per_worker,
        ),
        (
            "close_terminate_join_and_drop_leave_nothing",
            close_terminate_join_and_drop_leave_nothing,
        ),
    ])
}
