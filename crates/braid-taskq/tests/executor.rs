//! The app as a braid executor: `submit` and `map` run registered tasks on workers.

use braid_core::{Executor, ExecutorExt};
use braid_taskq::{App, Worker};

#[braid_core::task(name = "exec.square")]
fn square(x: u64) -> u64 {
    x * x
}

#[braid_core::task(name = "exec.checked")]
fn checked(x: u32) -> Result<u32, String> {
    if x == 7 { Err("seven".into()) } else { Ok(x) }
}

#[test]
fn submit_and_map_run_on_workers() {
    let app = App::builder("memory://executor", Some("memory://executor"))
        .parallelism(2)
        .build()
        .unwrap();
    let worker = Worker::builder(&app).concurrency(2).start().unwrap();
    let handle = app.submit(square::task(), (12,)).unwrap();
    assert_eq!(handle.result().unwrap(), 144);
    let squares: Vec<u64> = app
        .map(square::task(), (0..100u64).map(|x| (x,)), 10)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        squares.iter().sum::<u64>(),
        (0..100u64).map(|x| x * x).sum::<u64>()
    );
    let outcomes: Vec<_> = app
        .map(checked::task(), (5..9u32).map(|x| (x,)), 1)
        .collect();
    assert!(outcomes[2].is_err() && outcomes[3] == Ok(8));
    let err = app
        .submit(checked::task(), (7,))
        .unwrap()
        .result()
        .unwrap_err();
    assert!(
        matches!(err, braid_core::Error::Task(ref t) if t.message == "seven"),
        "{err:?}"
    );
    app.shutdown(true, false);
    assert!(matches!(
        app.submit(square::task(), (1,)),
        Err(braid_core::Error::Shutdown)
    ));
    assert_eq!(app.parallelism(), 2);
    worker.shutdown();
}
