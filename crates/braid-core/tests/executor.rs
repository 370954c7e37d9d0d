//! The Executor contract with a minimal executor that runs each job on its own thread.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use braid_core::{Error, Executor, ExecutorExt, Job, task};

#[task(name = "exec.square")]
fn square(x: u64) -> u64 {
    x * x
}

#[task(name = "exec.fail_on_three")]
fn fail_on_three(x: u64) -> Result<u64, String> {
    if x == 3 { Err("three".into()) } else { Ok(x) }
}

#[derive(Default)]
struct ThreadPerJob {
    closed: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Executor for ThreadPerJob {
    fn execute(&self, job: Job) -> Result<(), Error> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Shutdown);
        }
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::spawn(move || job.run_here()));
        Ok(())
    }

    fn shutdown(&self, wait: bool, _cancel_pending: bool) {
        self.closed.store(true, Ordering::SeqCst);
        if wait {
            for t in self.threads.lock().unwrap().drain(..) {
                t.join().unwrap();
            }
        }
    }

    fn parallelism(&self) -> usize {
        2
    }
}

#[test]
fn submit_and_result() {
    let ex = ThreadPerJob::default();
    let h = ex.submit(square::task(), (12,)).unwrap();
    assert_eq!(h.result(), Ok(144));
}

#[test]
fn map_keeps_order_with_and_without_chunks() {
    let ex = ThreadPerJob::default();
    for chunksize in [1, 3, 100] {
        let out: Vec<u64> = ex
            .map(square::task(), (0..50u64).map(|x| (x,)), chunksize)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(out, (0..50u64).map(|x| x * x).collect::<Vec<_>>());
    }
}

#[test]
fn map_gives_each_item_its_own_outcome() {
    let ex = ThreadPerJob::default();
    for chunksize in [1, 2] {
        let out: Vec<_> = ex
            .map(fail_on_three::task(), (1..=5u64).map(|x| (x,)), chunksize)
            .collect();
        assert_eq!(out.len(), 5);
        assert!(matches!(out[2], Err(Error::Task(_))));
        assert_eq!(out[4], Ok(5));
    }
}

#[test]
fn map_is_lazy_on_endless_input() {
    let ex = ThreadPerJob::default();
    let first: Vec<u64> = ex
        .map(square::task(), (0u64..).map(|x| (x,)), 4)
        .take(10)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first[9], 81);
}

#[test]
fn submit_after_shutdown_is_an_error() {
    let ex = ThreadPerJob::default();
    ex.shutdown(true, false);
    assert_eq!(
        ex.submit(square::task(), (1,)).unwrap_err(),
        Error::Shutdown
    );
    let out: Vec<_> = ex.map(square::task(), [(1,), (2,)], 1).collect();
    assert_eq!(out, vec![Err(Error::Shutdown), Err(Error::Shutdown)]);
}

#[test]
fn an_unknown_task_fails_its_handle_not_the_executor() {
    let ex = ThreadPerJob::default();
    let call = braid_core::TaskCall::new("exec.missing", braid_core::Codec::Json, &(1,)).unwrap();
    let h = ex.submit_call::<u64>(call).unwrap();
    assert_eq!(h.result(), Err(Error::UnknownTask("exec.missing".into())));
}
