//! braid-dmap's contracts on real executors: threads, worker processes (this binary,
//! re-executed) and task-queue workers on Redis (database 5). The binary owns `main`.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use braid_core::TaskRef;
use braid_dmap::{
    BROKER_ENV, CONCURRENCY_ENV, Dmap, Error, QUEUE_ENV, WORKER_ENV, as_completed, get_const,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

type Check = Result<(), String>;

const REDIS: &str = "redis://127.0.0.1:6379/5";

#[braid_core::task(name = "t.square")]
fn square(x: u64) -> u64 {
    x * x
}

#[braid_core::task(name = "t.add")]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[braid_core::task(name = "t.text")]
fn text(x: u64) -> String {
    format!("<{x}>")
}

#[braid_core::task(name = "t.concat")]
fn concat(a: String, b: String) -> String {
    a + &b
}

#[braid_core::task(name = "t.fail_on")]
fn fail_on(x: u64, bad: u64) -> Result<u64, String> {
    if x == bad {
        Err(format!("item {x} is bad"))
    } else {
        Ok(x)
    }
}

#[braid_core::task(name = "t.scaled")]
fn scaled(x: u64) -> Result<u64, Error> {
    Ok(x * *get_const::<u64>("factor")?)
}

/// Reads the constant, then says which process this is and how often it has fetched
/// constants.
#[braid_core::task(name = "t.fetches")]
fn fetches(_x: u64) -> Result<(u32, u64), Error> {
    let table = get_const::<Vec<u64>>("table")?;
    assert_eq!(table.len(), 1000);
    Ok((std::process::id(), braid_dmap::constant_fetches()))
}

/// Fibonacci by nested submissions: every call waits on two calls it submitted.
#[braid_core::task(name = "t.fib")]
fn fib(n: u64) -> Result<u64, Error> {
    if n < 2 {
        return Ok(n);
    }
    let dmap = Dmap::current()?;
    let a = dmap.submit(fib::task(), (n - 1,))?;
    let b = dmap.submit(fib::task(), (n - 2,))?;
    Ok(a.result()? + b.result()?)
}

/// A nested map and map_reduce from inside a task.
#[braid_core::task(name = "t.nested_sum")]
fn nested_sum(n: u64) -> Result<u64, Error> {
    let dmap = Dmap::current()?;
    let mapped: u64 = dmap
        .map(square::task(), 0..n)
        .collect::<Result<Vec<u64>, _>>()?
        .into_iter()
        .sum();
    let reduced = dmap.map_reduce(square::task(), add::task(), 0..n)?;
    assert_eq!(mapped, reduced);
    Ok(reduced)
}

/// Kills its own process the first time it sees item 37 (a marker directory remembers).
#[braid_core::task(name = "t.die_once")]
fn die_once(item: (u64, PathBuf)) -> u64 {
    let (x, marker) = item;
    if x == 37 && std::fs::create_dir(&marker).is_ok() {
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL)
            .unwrap();
    }
    x * 2
}

/// Starts a process pool of its own inside whatever worker runs it.
#[braid_core::task(name = "t.own_pool")]
fn own_pool(n: u64) -> Result<u64, Error> {
    Dmap::processes(1)?.map_reduce(square::task(), add::task(), 0..n)
}

#[braid_core::task(name = "t.slow")]
fn slow(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    x + 1
}

fn seq_squares(xs: &[u64]) -> Vec<u64> {
    xs.iter().map(|x| x * x).collect()
}

/// Runs `f` on a thread and fails if it has not returned in `limit` (a hang guard).
fn guarded<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if tx.send(f()).is_err() {
            eprintln!("the hang guard gave up before the result came");
        }
    });
    rx.recv_timeout(limit)
        .map_err(|_| format!("no answer within {limit:?}: hung"))
}

fn check_maps(dmap: &Dmap) -> Check {
    let xs: Vec<u64> = (0..500).collect();
    let got: Vec<u64> = dmap
        .map(square::task(), xs.clone())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if got != seq_squares(&xs) {
        return Err("map is not the sequential answer in order".into());
    }
    let got: Vec<u64> = dmap
        .map_chunked(square::task(), xs.iter().copied(), 7)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if got != seq_squares(&xs) {
        return Err("map_chunked is not the sequential answer".into());
    }
    // An input of unknown length goes one by one, still in order.
    let odd: Vec<u64> = xs.iter().copied().filter(|x| x % 2 == 1).collect();
    let got: Vec<u64> = dmap
        .map(square::task(), xs.iter().copied().filter(|x| x % 2 == 1))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if got != seq_squares(&odd) {
        return Err("map of an unsized input is wrong".into());
    }
    // Lazy: an endless input, taking only the first few.
    let first: Vec<u64> = dmap
        .map_chunked(square::task(), 0.., 4)
        .take(10)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if first != seq_squares(&(0..10).collect::<Vec<_>>()) {
        return Err("map of an endless input is wrong".into());
    }
    let mut got: Vec<u64> = dmap
        .map_as_completed(square::task(), xs.clone())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    got.sort_unstable();
    if got != seq_squares(&xs) {
        return Err("map_as_completed does not give every result once".into());
    }
    let futures: Vec<_> = (0..20u64)
        .map(|x| dmap.submit(add::task(), (x, 1)).unwrap())
        .collect();
    let mut sum = 0;
    for f in as_completed(futures) {
        if !f.done() {
            return Err("as_completed yielded an unfinished future".into());
        }
        sum += f.result().map_err(|e| e.to_string())?;
    }
    if sum != (1..=20).sum::<u64>() {
        return Err(format!("as_completed summed to {sum}"));
    }
    Ok(())
}

fn check_one_failure_is_its_own(dmap: &Dmap) -> Check {
    let futures: Vec<_> = (0..10u64)
        .map(|x| dmap.submit(fail_on::task(), (x, 4)).unwrap())
        .collect();
    for (x, f) in futures.into_iter().enumerate() {
        match (x, f.result()) {
            (4, Err(Error::Core(braid_core::Error::Task(e))))
                if e.message.contains("item 4 is bad") => {}
            (4, other) => {
                return Err(format!(
                    "item 4 should fail with its message, got {other:?}"
                ));
            }
            (x, Ok(v)) if v == x as u64 => {}
            (x, other) => return Err(format!("item {x}: {other:?}")),
        }
    }
    Ok(())
}

fn check_properties(dmap: &Dmap) -> Check {
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let d = dmap.clone();
    runner
        .run(&proptest::collection::vec(0u64..1000, 1..300), move |xs| {
            let want: u64 = xs.iter().map(|x| x * x).sum();
            prop_assert_eq!(
                d.map_reduce(square::task(), add::task(), xs.clone())
                    .unwrap(),
                want
            );
            let want_text: String = xs.iter().map(|x| format!("<{x}>")).collect();
            prop_assert_eq!(
                d.map_reduce(text::task(), concat::task(), xs.clone())
                    .unwrap(),
                want_text
            );
            let mut acc = 0;
            let sums: Vec<u64> = xs
                .iter()
                .map(|x| {
                    acc += x * x;
                    acc
                })
                .collect();
            prop_assert_eq!(
                d.map_scan(square::task(), add::task(), xs.clone()).unwrap(),
                sums
            );
            let mut acc = String::new();
            let texts: Vec<String> = xs
                .iter()
                .map(|x| {
                    acc.push_str(&format!("<{x}>"));
                    acc.clone()
                })
                .collect();
            prop_assert_eq!(
                d.map_scan(text::task(), concat::task(), xs.clone())
                    .unwrap(),
                texts
            );
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    match dmap.map_reduce(square::task(), add::task(), Vec::<u64>::new()) {
        Err(Error::Empty) => {}
        other => return Err(format!("map_reduce of nothing: {other:?}")),
    }
    if !dmap
        .map_scan(square::task(), add::task(), Vec::<u64>::new())
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        return Err("map_scan of nothing is not empty".into());
    }
    // SCOOP's mapScan goes wrong from the third item; ours gives the running sums.
    let sums = dmap
        .map_scan(square::task(), add::task(), [1u64, 2, 3, 4])
        .map_err(|e| e.to_string())?;
    if sums != [1, 5, 14, 30] {
        return Err(format!("map_scan of 1..4 squared: {sums:?}"));
    }
    Ok(())
}

fn check_constants(dmap: &Dmap) -> Check {
    dmap.set_const("factor", &3u64).map_err(|e| e.to_string())?;
    match dmap.set_const("factor", &4u64) {
        Err(Error::ConstantExists(name)) if name == "factor" => {}
        other => return Err(format!("setting a constant twice: {other:?}")),
    }
    let got: Vec<u64> = dmap
        .map(scaled::task(), 0..100u64)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if got != (0..100).map(|x| x * 3).collect::<Vec<_>>() {
        return Err("tasks did not see the constant".into());
    }
    if *dmap.get_const::<u64>("factor").map_err(|e| e.to_string())? != 3 {
        return Err("the program does not see its constant".into());
    }
    match get_const::<u64>("factor") {
        Err(Error::NotInTask(_)) => {}
        other => return Err(format!("get_const outside a task: {other:?}")),
    }
    // A constant nobody set: the task fails and says which.
    match dmap.submit(fetches::task(), (1,)).and_then(|f| f.result()) {
        Err(Error::Core(braid_core::Error::Task(e))) if e.message.contains("table") => {}
        other => return Err(format!("a missing constant: {other:?}")),
    }
    Ok(())
}

/// In worker processes, each process fetches a constant once however many tasks read it.
fn check_constants_fetched_once(dmap: &Dmap) -> Check {
    dmap.set_const("table", &(0..1000u64).collect::<Vec<_>>())
        .map_err(|e| e.to_string())?;
    let counts: Vec<(u32, u64)> = dmap
        .map_chunked(fetches::task(), 0..400u64, 3)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    // Every task of one process saw the same count: only its first read fetched.
    let mut per_process = std::collections::HashMap::new();
    for (pid, count) in counts {
        if *per_process.entry(pid).or_insert(count) != count {
            return Err(format!("worker {pid} fetched the constant again"));
        }
    }
    if per_process.len() != 2 {
        return Err(format!(
            "{} worker processes ran the tasks, expected 2",
            per_process.len()
        ));
    }
    Ok(())
}

fn check_nested(dmap: &Dmap) -> Check {
    let d = dmap.clone();
    let fib20 = guarded(Duration::from_secs(300), move || {
        d.submit(fib::task(), (15,)).and_then(|f| f.result())
    })?
    .map_err(|e| e.to_string())?;
    if fib20 != 610 {
        return Err(format!("fib(15) by nested submits gave {fib20}"));
    }
    let d = dmap.clone();
    // More waiting parents than workers: each one maps and reduces inside.
    let sums = guarded(Duration::from_secs(300), move || {
        d.map_chunked(nested_sum::task(), 1..=8u64, 1)
            .collect::<Result<Vec<u64>, _>>()
    })?
    .map_err(|e| e.to_string())?;
    let want: Vec<u64> = (1..=8u64).map(|n| (0..n).map(|x| x * x).sum()).collect();
    if sums != want {
        return Err(format!("nested maps gave {sums:?}"));
    }
    Ok(())
}

fn check_bad_input(dmap: &Dmap) -> Check {
    let unknown: TaskRef<(u64,), u64> = TaskRef::new("t.no_such_task");
    match dmap.submit(unknown, (1,)) {
        Err(Error::Core(braid_core::Error::UnknownTask(name))) if name == "t.no_such_task" => {}
        other => return Err(format!("submit of an unknown task: {other:?}")),
    }
    let outcomes: Vec<_> = dmap.map(unknown, 0..3u64).collect();
    if outcomes.len() != 3
        || !outcomes
            .iter()
            .all(|o| matches!(o, Err(Error::Core(braid_core::Error::UnknownTask(_)))))
    {
        return Err(format!("map of an unknown task: {outcomes:?}"));
    }
    if !matches!(
        dmap.map_reduce(unknown, add::task(), [1u64]),
        Err(Error::Core(braid_core::Error::UnknownTask(_)))
    ) {
        return Err("map_reduce of an unknown task is not UnknownTask".into());
    }
    // A task given arguments of the wrong type: a decode error naming it, for each item.
    let mistyped: TaskRef<(String,), u64> = TaskRef::new("t.square");
    match dmap
        .submit(mistyped, ("seven".to_string(),))
        .and_then(|f| f.result())
    {
        Err(Error::Core(braid_core::Error::DecodeArgs { task, .. })) if task == "t.square" => {}
        other => return Err(format!("submit with undecodable arguments: {other:?}")),
    }
    let outcomes: Vec<_> = dmap
        .map(mistyped, ["a".to_string(), "b".to_string()])
        .collect();
    if !outcomes
        .iter()
        .all(|o| matches!(o, Err(Error::Core(braid_core::Error::DecodeArgs { .. }))))
    {
        return Err(format!("map with undecodable arguments: {outcomes:?}"));
    }
    // A result that does not decode as the caller's type.
    let wrong_result: TaskRef<(u64,), String> = TaskRef::new("t.square");
    match dmap.submit(wrong_result, (300,)).and_then(|f| f.result()) {
        Err(Error::Core(braid_core::Error::Decode { .. })) => {}
        other => return Err(format!("a result of the wrong type: {other:?}")),
    }
    // The Dmap still works afterwards: nothing was lost.
    let got = dmap
        .submit(square::task(), (9,))
        .and_then(|f| f.result())
        .map_err(|e| e.to_string())?;
    if got != 81 {
        return Err("the Dmap broke after bad input".into());
    }
    Ok(())
}

fn marker() -> PathBuf {
    std::env::temp_dir().join(format!(
        "braid-dmap-test-{}-{:x}",
        std::process::id(),
        fastrand_u64()
    ))
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

fn check_killed_worker(dmap: &Dmap) -> Check {
    let m = marker();
    let got: Vec<u64> = dmap
        .map_chunked(die_once::task(), (0..60u64).map(|x| (x, m.clone())), 5)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    std::fs::remove_dir(&m).map_err(|e| format!("no worker died ({e}): nothing was tested"))?;
    if got != (0..60).map(|x| x * 2).collect::<Vec<_>>() {
        return Err(format!("after a worker died the map gave {got:?}"));
    }
    let m = marker();
    let v = dmap
        .submit(die_once::task(), ((37, m.clone()),))
        .and_then(|f| f.result())
        .map_err(|e| e.to_string())?;
    std::fs::remove_dir(&m).map_err(|e| format!("the submitted task's worker did not die: {e}"))?;
    if v != 74 {
        return Err(format!("the task run again gave {v}"));
    }
    Ok(())
}

struct Workers(Vec<Child>);

impl Workers {
    fn start(n: usize, broker: &str, queue: &str) -> Result<Workers, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut children = Vec::new();
        for _ in 0..n {
            children.push(
                Command::new(&exe)
                    .env(WORKER_ENV, std::process::id().to_string())
                    .env(BROKER_ENV, broker)
                    .env(QUEUE_ENV, queue)
                    .env(CONCURRENCY_ENV, "1")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("starting a cluster worker: {e}"))?,
            );
        }
        Ok(Workers(children))
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            drop(child.stdin.take());
        }
        for child in &mut self.0 {
            match child.wait() {
                Ok(status) if status.success() || status.code().is_none() => {}
                Ok(status) => eprintln!("a cluster worker exited with {status}"),
                Err(e) => eprintln!("waiting for a cluster worker: {e}"),
            }
        }
    }
}

fn check_cluster() -> Check {
    let tag = format!("{:x}", fastrand_u64());
    let broker = format!("{REDIS}?global_keyprefix=dmaptest-{tag}:&visibility_timeout=2");
    let queue = format!("dmaptest-{tag}");
    let mut workers = Workers::start(2, &broker, &queue)?;
    let dmap = Dmap::cluster(&broker, &queue, 2).map_err(|e| e.to_string())?;
    dmap.set_const("factor", &5u64).map_err(|e| e.to_string())?;
    let d = dmap.clone();
    guarded(Duration::from_secs(120), move || -> Check {
        let got: Vec<u64> = d
            .map(scaled::task(), 0..50u64)
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        if got != (0..50).map(|x| x * 5).collect::<Vec<_>>() {
            return Err(format!("cluster map with a constant: {got:?}"));
        }
        let xs: Vec<u64> = (0..100).collect();
        if d.map_reduce(square::task(), add::task(), xs.clone())
            .map_err(|e| e.to_string())?
            != xs.iter().map(|x| x * x).sum::<u64>()
        {
            return Err("cluster map_reduce is wrong".into());
        }
        // A cluster worker's own process pool: its children inherit the worker's
        // environment and must still become pool workers.
        let own = d
            .submit(own_pool::task(), (10,))
            .and_then(|f| f.result())
            .map_err(|e| e.to_string())?;
        if own != 285 {
            return Err(format!("a pool inside a cluster worker gave {own}"));
        }
        if d.submit(fib::task(), (10,))
            .and_then(|f| f.result())
            .map_err(|e| e.to_string())?
            != 55
        {
            return Err("nested submits on the cluster are wrong".into());
        }
        Ok(())
    })??;
    // Kill a worker while it holds tasks: the broker gives them to the other one.
    let futures: Vec<_> = (0..12u64)
        .map(|x| dmap.submit(slow::task(), (x,)).unwrap())
        .collect();
    let victim = workers.0[0].id();
    if !futures[0].wait_timeout(Duration::from_secs(60)) {
        return Err("the cluster ran nothing within a minute".into());
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(victim as i32).ok_or("a worker pid")?,
        rustix::process::Signal::KILL,
    )
    .map_err(|e| e.to_string())?;
    let mut killed = workers.0.remove(0);
    if let Err(e) = killed.wait() {
        return Err(format!("reaping the killed worker: {e}"));
    }
    let got = guarded(Duration::from_secs(120), move || {
        futures
            .into_iter()
            .map(|f| f.result())
            .collect::<Result<Vec<u64>, _>>()
    })?
    .map_err(|e| e.to_string())?;
    if got != (1..=12).collect::<Vec<_>>() {
        return Err(format!("after a cluster worker was killed: {got:?}"));
    }
    drop(dmap);
    drop(workers);
    Ok(())
}

fn main() -> ExitCode {
    braid_core::init();
    let mut failures = 0;
    let mut run = |name: &str, check: &dyn Fn() -> Check| match check() {
        Ok(()) => println!("ok   {name}"),
        Err(why) => {
            failures += 1;
            println!("FAIL {name}: {why}");
        }
    };
    let threads = Dmap::threads(2).expect("a thread pool");
    let procs = Dmap::processes(2).expect("a process pool");
    for (kind, dmap) in [("threads", &threads), ("processes", &procs)] {
        run(
            &format!("{kind}: map, map_chunked, map_as_completed, submit, as_completed"),
            &|| check_maps(dmap),
        );
        run(&format!("{kind}: one failure is its own"), &|| {
            check_one_failure_is_its_own(dmap)
        });
        run(
            &format!("{kind}: map_reduce and map_scan equal sequential (property)"),
            &|| check_properties(dmap),
        );
        run(&format!("{kind}: shared constants"), &|| {
            check_constants(dmap)
        });
        run(&format!("{kind}: nested submits do not deadlock"), &|| {
            check_nested(dmap)
        });
        run(&format!("{kind}: bad input"), &|| check_bad_input(dmap));
    }
    let single = Dmap::threads(1).expect("a thread pool");
    run("one thread: nested submits do not deadlock", &|| {
        check_nested(&single)
    });
    drop(single);
    run("processes: constants fetched once per worker", &|| {
        check_constants_fetched_once(&procs)
    });
    run("processes: a killed worker's tasks run again", &|| {
        check_killed_worker(&procs)
    });
    run(
        "cluster (Redis db 5): map, map_reduce, constants, nested, killed worker",
        &check_cluster,
    );
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
