//! Book recipe (ch. 5): "Designing workflows": Celery's canvas (chain, group, chord,
//! map, starmap, chunks) on RabbitMQ, with results in PostgreSQL (Celery's
//! `db+postgresql://` backend), which counts the chord's header so its body runs once.
//!
//! Python:
//! ```python
//! app = Celery("tasks", broker="amqp://guest@localhost//",
//!              backend="db+postgresql://braid:braid@localhost/braid_test")
//! chain(add.s(1, 2), add.s(3), mul.s(10))().get()            # 60
//! group(add.s(i, i) for i in range(10))().get()              # [0, 2, ..., 18]
//! chord((add.s(i, i) for i in range(10)), xsum.s())().get()  # 90
//! xsum.map([[1, 2], [3, 4]])().get()                         # [3, 7]
//! add.starmap([(1, 1), (2, 2)])().get()                      # [2, 4]
//! add.chunks([(i, i) for i in range(6)], 2)().get()          # [[0, 2], [4, 6], [8, 10]]
//! ```
//!
//! Uses RabbitMQ on 127.0.0.1:5672 and PostgreSQL on 127.0.0.1:5432 (role and database
//! of scripts/test), or the in-memory broker and backend when either is not there.
//!
//! Run: `cargo run --example ch5_celery_canvas`

use std::time::Duration;

use braid::taskq::{App, CallOptions, Error, Signature, Worker, chain, chord, group};
use serde_json::{Value, json};

#[braid::task(name = "canvas.add")]
fn add(x: i64, y: i64) -> i64 {
    x + y
}

#[braid::task(name = "canvas.mul")]
fn mul(x: i64, y: i64) -> i64 {
    x * y
}

#[braid::task(name = "canvas.xsum")]
fn xsum(numbers: Vec<i64>) -> i64 {
    numbers.iter().sum()
}

const WAIT: Duration = Duration::from_secs(20);

fn connect() -> Result<(App, String), Error> {
    let queue = format!("ch5-canvas-{}", std::process::id());
    let app = App::builder(
        "amqp://guest:guest@127.0.0.1:5672//?queue_expires=60",
        Some("db+postgresql://braid:braid@127.0.0.1:5432/braid_test"),
    )
    .default_queue(&queue)
    .result_expires(Duration::from_secs(300))
    .build()?;
    let reachable = app
        .queue_len(&queue)
        .and_then(|_| app.result("ch5-canvas-probe").state());
    match reachable {
        Ok(_) => {
            println!("broker: RabbitMQ at 127.0.0.1:5672; results: PostgreSQL at 127.0.0.1:5432");
            Ok((app, queue))
        }
        Err(e) => {
            println!("broker and results: in memory (RabbitMQ or PostgreSQL missing: {e})");
            let app = App::builder("memory://ch5-canvas", Some("memory://ch5-canvas"))
                .default_queue(&queue)
                .build()?;
            Ok((app, queue))
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let (app, queue) = connect()?;
    let worker = Worker::builder(&app).concurrency(4).start()?;
    let on = || CallOptions::new().queue(&queue);
    let sig = |task: &str, args: Vec<Value>| Signature::new(task, args).set(on());
    let mut wrong = Vec::new();
    let mut check = |what: &'static str, got: Value, want: Value| {
        println!("{what:<8} {got}");
        if got != want {
            wrong.push(what);
        }
    };

    let c = chain([
        sig("canvas.add", vec![json!(1), json!(2)]),
        sig("canvas.add", vec![json!(3)]),
        sig("canvas.mul", vec![json!(10)]),
    ]);
    check("chain", app.apply(&c)?.get(WAIT)?, json!(60));

    let g = group((0..10).map(|i| sig("canvas.add", vec![json!(i), json!(i)])));
    let doubled: Vec<i64> = app.apply_group(&g)?.get(WAIT)?;
    check(
        "group",
        json!(doubled),
        json!((0..10).map(|i| 2 * i).collect::<Vec<_>>()),
    );

    let ch = chord(
        (0..10).map(|i| sig("canvas.add", vec![json!(i), json!(i)])),
        sig("canvas.xsum", vec![]),
    );
    check("chord", app.apply(&ch)?.get(WAIT)?, json!(90));

    let xsum_sig = sig("canvas.xsum", vec![]);
    let m = xsum_sig.map(vec![json!([1, 2]), json!([3, 4])]).set(on());
    check("map", app.apply(&m)?.get(WAIT)?, json!([3, 7]));

    let add_sig = sig("canvas.add", vec![]);
    let s = add_sig
        .starmap(vec![vec![json!(1), json!(1)], vec![json!(2), json!(2)]])
        .set(on());
    check("starmap", app.apply(&s)?.get(WAIT)?, json!([2, 4]));

    let pairs = (0..6).map(|i| vec![json!(i), json!(i)]).collect();
    let chunks = add_sig.chunks(pairs, 2);
    let chunked: Vec<Value> = app.apply_group(&chunks)?.get(WAIT)?;
    check("chunks", json!(chunked), json!([[0, 2], [4, 6], [8, 10]]));

    worker.shutdown();
    if !wrong.is_empty() {
        return Err(format!("wrong: {wrong:?}").into());
    }
    Ok(())
}
