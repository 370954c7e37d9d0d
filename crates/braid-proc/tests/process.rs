//! Processes and pipes across real processes: this binary re-executes itself as the
//! children, so it owns `main` and calls `braid_core::init()` first.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use braid_core::{TaskErrorKind, TaskRef};
use braid_proc::{
    Connection, Error, JoinableQueue, Process, Queue, Run, SimpleQueue, current_process,
    one_way_pipe, pipe,
};
use serde::{Deserialize, Serialize};

#[braid_core::task(name = "t.report_name")]
fn report_name(conn: Connection<(String, bool, Option<u32>)>) {
    let me = current_process();
    conn.send(&(me.name, me.daemon, me.parent_pid)).unwrap();
}

#[braid_core::task(name = "t.exit_with")]
fn exit_with(code: i32) {
    std::process::exit(code)
}

#[braid_core::task(name = "t.panic_with")]
fn panic_with(message: String) {
    panic!("{message}")
}

#[braid_core::task(name = "t.wait_forever")]
fn wait_forever(ready: Connection<u32>) {
    ready.send(&std::process::id()).unwrap();
    loop {
        std::thread::park();
    }
}

#[braid_core::task(name = "t.echo")]
fn echo(conn: Connection<u64>) {
    while let Ok(v) = conn.recv() {
        conn.send(&(v + 1)).unwrap();
    }
}

#[braid_core::task(name = "t.daemon_parent")]
fn daemon_parent(up: Connection<u32>) {
    let (r, w) = pipe::<u32>().unwrap();
    let mut grandchild = Process::new(wait_forever::task(), (w,)).daemon(true);
    grandchild.start().unwrap();
    up.send(&r.recv().unwrap()).unwrap();
    loop {
        std::thread::park();
    }
}

#[braid_core::task(name = "t.produce")]
fn produce(q: Queue<u64>, from: u64, n: u64) {
    for i in from..from + n {
        q.put(&i).unwrap();
    }
}

#[braid_core::task(name = "t.consume")]
fn consume(q: Queue<u64>, n: u64, out: SimpleQueue<u64>) {
    let sum: u64 = (0..n).map(|_| q.get().unwrap()).sum();
    out.put(&sum).unwrap();
}

#[braid_core::task(name = "t.square_worker")]
fn square_worker(q: JoinableQueue<u64>, results: SimpleQueue<u64>) {
    loop {
        let v = q.get().unwrap();
        if v != u64::MAX {
            results.put(&(v * v)).unwrap();
        }
        q.task_done().unwrap();
        if v == u64::MAX {
            break;
        }
    }
}

fn double_it((x, out): (u64, Connection<u64>)) {
    out.send(&(x * 2)).unwrap();
}

#[derive(Serialize, Deserialize)]
struct Tripler {
    x: u64,
    out: Connection<u64>,
}

impl Run for Tripler {
    fn run(self) {
        self.out.send(&(self.x * 3)).unwrap();
    }
}

type Check = Result<(), String>;

fn name_pid_and_exit_code() -> Check {
    let (r, w) = pipe().map_err(|e| e.to_string())?;
    let mut p = Process::new(report_name::task(), (w,)).named("worker-7");
    ensure!(p.pid().is_none(), "a pid before start");
    p.start().map_err(|e| e.to_string())?;
    ensure!(p.pid().is_some(), "no pid after start");
    let (name, daemon, parent) = r.recv().map_err(|e| e.to_string())?;
    ensure!(name == "worker-7", "the child is named {name}");
    ensure!(!daemon, "not a daemon");
    ensure!(parent == Some(std::process::id()), "parent {parent:?}");
    p.join().map_err(|e| e.to_string())?;
    ensure!(p.exitcode() == Some(0), "exit code {:?}", p.exitcode());
    ensure!(!p.is_alive(), "alive after join");
    let q = Process::new(exit_with::task(), (0,));
    ensure!(
        q.name().starts_with("Process-"),
        "default name {}",
        q.name()
    );
    Ok(())
}

fn exit_codes_and_panics_reach_the_parent() -> Check {
    let mut p = Process::new(exit_with::task(), (3,));
    p.start().map_err(|e| e.to_string())?;
    match p.join() {
        Err(Error::Exited { code: 3, .. }) => {}
        other => return Err(format!("expected exit code 3, got {other:?}")),
    }
    ensure!(p.exitcode() == Some(3), "exitcode {:?}", p.exitcode());

    let mut p = Process::new(panic_with::task(), ("deliberate boom".to_string(),));
    p.start().map_err(|e| e.to_string())?;
    match p.join() {
        Err(Error::Core(braid_core::Error::Task(e)))
            if e.kind == TaskErrorKind::Panic && e.message == "deliberate boom" =>
        {
            ensure!(e.task == "t.panic_with", "task name {}", e.task);
        }
        other => return Err(format!("expected the panic message, got {other:?}")),
    }
    ensure!(p.exitcode() == Some(1), "exitcode {:?}", p.exitcode());
    Ok(())
}

fn terminate_and_kill_give_negative_signals() -> Check {
    for (signal, code) in [("terminate", -15), ("kill", -9)] {
        let (r, w) = pipe().map_err(|e| e.to_string())?;
        let mut p = Process::new(wait_forever::task(), (w,));
        p.start().map_err(|e| e.to_string())?;
        let pid = r.recv().map_err(|e| e.to_string())?;
        ensure!(Some(pid) == p.pid(), "pid {pid} vs {:?}", p.pid());
        ensure!(p.is_alive(), "not alive while waiting");
        ensure!(p.exitcode().is_none(), "an exit code while running");
        match p.join_timeout(Duration::from_millis(20)) {
            Err(Error::Timeout(_)) => {}
            other => return Err(format!("join_timeout on a running child gave {other:?}")),
        }
        if signal == "terminate" {
            p.terminate().map_err(|e| e.to_string())?;
        } else {
            p.kill().map_err(|e| e.to_string())?;
        }
        match p.join() {
            Err(Error::Killed { signal, .. }) if signal == -code => {}
            other => return Err(format!("{signal}: join gave {other:?}")),
        }
        ensure!(
            p.exitcode() == Some(code),
            "{signal}: exitcode {:?}",
            p.exitcode()
        );
        // The parent's end of the pipe sees the end, not a hang.
        ensure!(
            r.recv() == Err(Error::Closed),
            "the dead child's pipe is not closed"
        );
    }
    Ok(())
}

fn misuse_is_an_error() -> Check {
    let p = Process::new(exit_with::task(), (0,));
    ensure!(p.join() == Err(Error::NotStarted), "join before start");
    ensure!(p.kill() == Err(Error::NotStarted), "kill before start");
    let mut p = Process::new(exit_with::task(), (0,));
    p.start().map_err(|e| e.to_string())?;
    ensure!(p.start() == Err(Error::AlreadyStarted), "started twice");
    p.join().map_err(|e| e.to_string())?;

    let wrong: TaskRef<(String,), ()> = TaskRef::new("t.exit_with");
    let mut p = Process::new(wrong, ("not a number".to_string(),));
    p.start().map_err(|e| e.to_string())?;
    match p.join() {
        Err(Error::Core(braid_core::Error::DecodeArgs { task, .. })) if task == "t.exit_with" => {}
        other => return Err(format!("undecodable arguments gave {other:?}")),
    }
    let missing: TaskRef<(), ()> = TaskRef::new("t.no_such_task");
    let mut p = Process::new(missing, ());
    p.start().map_err(|e| e.to_string())?;
    match p.join() {
        Err(Error::Core(braid_core::Error::UnknownTask(name))) if name == "t.no_such_task" => {}
        other => return Err(format!("an unknown task gave {other:?}")),
    }
    Ok(())
}

fn pipes_cross_processes_and_end_cleanly() -> Check {
    let (ours, theirs) = pipe::<u64>().map_err(|e| e.to_string())?;
    let mut p = Process::new(echo::task(), (theirs,));
    p.start().map_err(|e| e.to_string())?;
    let mut v = 0;
    for _ in 0..1000 {
        ours.send(&v).map_err(|e| e.to_string())?;
        v = ours.recv().map_err(|e| e.to_string())? + 1;
    }
    ensure!(v == 2000, "ping-pong ended at {v}");
    drop(ours); // the child's recv sees the end and returns
    p.join_timeout(Duration::from_secs(20))
        .map_err(|e| e.to_string())?;

    let (reader, writer) = one_way_pipe::<u64>().map_err(|e| e.to_string())?;
    let mut p = Process::from_fn(double_it, (21, writer));
    p.start().map_err(|e| e.to_string())?;
    ensure!(reader.recv() == Ok(42), "from_fn");
    ensure!(
        reader.recv() == Err(Error::Closed),
        "the writer's only holder exited"
    );
    p.join().map_err(|e| e.to_string())?;

    let (reader, writer) = one_way_pipe::<u64>().map_err(|e| e.to_string())?;
    let mut p = Process::from_run(Tripler { x: 14, out: writer });
    p.start().map_err(|e| e.to_string())?;
    ensure!(reader.recv() == Ok(42), "from_run");
    p.join().map_err(|e| e.to_string())?;
    Ok(())
}

fn queues_connect_many_producers_and_consumers() -> Check {
    let q = Queue::<u64>::bounded(16).map_err(|e| e.to_string())?;
    let sums = SimpleQueue::<u64>::new().map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    for p in 0..2u64 {
        children.push(Process::new(produce::task(), (q.clone(), p * 10_000, 2000)));
    }
    for _ in 0..2 {
        children.push(Process::new(
            consume::task(),
            (q.clone(), 2000, sums.clone()),
        ));
    }
    for child in &mut children {
        child.start().map_err(|e| e.to_string())?;
    }
    for child in &children {
        child.join().map_err(|e| e.to_string())?;
    }
    let total = sums.get().map_err(|e| e.to_string())? + sums.get().map_err(|e| e.to_string())?;
    let expected: u64 = (0..2000).sum::<u64>() + (10_000..12_000).sum::<u64>();
    ensure!(
        total == expected,
        "consumers summed {total}, expected {expected}"
    );
    ensure!(q.is_empty() && sums.is_empty(), "items left over");

    // task_done / join across processes.
    let jobs = JoinableQueue::<u64>::new().map_err(|e| e.to_string())?;
    let results = SimpleQueue::<u64>::new().map_err(|e| e.to_string())?;
    for v in 1..=100 {
        jobs.put(&v).map_err(|e| e.to_string())?;
    }
    jobs.put(&u64::MAX).map_err(|e| e.to_string())?;
    let mut worker = Process::new(square_worker::task(), (jobs.clone(), results.clone()));
    worker.start().map_err(|e| e.to_string())?;
    jobs.join();
    let squares: u64 = (0..100).map(|_| results.get().unwrap_or(0)).sum();
    ensure!(
        squares == (1..=100u64).map(|v| v * v).sum::<u64>(),
        "squares summed {squares}"
    );
    worker.join().map_err(|e| e.to_string())?;

    // Shared objects travel only as start arguments, with a clear error otherwise.
    let nested = Queue::<Queue<u64>>::new().map_err(|e| e.to_string())?;
    match nested.put(&q) {
        Err(Error::Core(braid_core::Error::Encode(why))) if why.contains("start arguments") => {
            Ok(())
        }
        other => Err(format!("sending a queue through a queue gave {other:?}")),
    }
}

/// Waits for an unrelated process to end, through a pidfd.
fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
        return true;
    };
    let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
        return true; // already gone
    };
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let spec = rustix::event::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut fds, Some(&spec)), Ok(n) if n > 0)
}

fn a_daemon_dies_with_its_parent() -> Check {
    let (r, w) = pipe().map_err(|e| e.to_string())?;
    let mut middle = Process::new(daemon_parent::task(), (w,));
    middle.start().map_err(|e| e.to_string())?;
    let grandchild = r.recv().map_err(|e| e.to_string())?;
    ensure!(
        !wait_gone(grandchild, Duration::ZERO),
        "the daemon is not running"
    );
    middle.kill().map_err(|e| e.to_string())?;
    ensure!(
        wait_gone(grandchild, Duration::from_secs(10)),
        "the daemon {grandchild} outlived its parent"
    );
    match middle.join() {
        Err(Error::Killed { signal: 9, .. }) => Ok(()),
        other => Err(format!("the killed parent joined as {other:?}")),
    }
}

fn main() -> ExitCode {
    braid_core::init();
    common::run(&[
        ("name_pid_and_exit_code", name_pid_and_exit_code),
        (
            "exit_codes_and_panics_reach_the_parent",
            exit_codes_and_panics_reach_the_parent,
        ),
        (
            "terminate_and_kill_give_negative_signals",
            terminate_and_kill_give_negative_signals,
        ),
        ("misuse_is_an_error", misuse_is_an_error),
        (
            "pipes_cross_processes_and_end_cleanly",
            pipes_cross_processes_and_end_cleanly,
        ),
        (
            "a_daemon_dies_with_its_parent",
            a_daemon_dies_with_its_parent,
        ),
        (
            "queues_connect_many_producers_and_consumers",
            queues_connect_many_producers_and_consumers,
        ),
    ])
}
