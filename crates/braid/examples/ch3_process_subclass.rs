//! Book recipe (ch. 3): "How to use a process in a subclass": define the process's work
//! as a type with a `run` method (Python subclasses `Process` and overrides `run`).
//!
//! Python:
//! ```python
//! class MyProcess(multiprocessing.Process):
//!     def run(self):
//!         print('called run method in %s' % self.name)
//!
//! for i in range(10):
//!     process = MyProcess(); process.start(); process.join()
//! ```
//!
//! The value is encoded in the parent and decoded in the child, so it may carry data
//! and shared objects; no registration is needed (the same goes for a plain `fn`, with
//! `Process::from_fn`).
//!
//! Run: `cargo run --example ch3_process_subclass`

use braid::proc::{Process, Queue, Run, current_process};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct MyProcess {
    index: u32,
    results: Queue<(u32, String)>,
}

impl Run for MyProcess {
    fn run(self) {
        let name = current_process().name;
        println!("called run method in {name}");
        self.results
            .put(&(self.index * self.index, name))
            .expect("the queue takes it");
    }
}

/// A plain function: no registration either.
fn shout((text, results): (String, Queue<(u32, String)>)) {
    results
        .put(&(text.len() as u32, text.to_uppercase()))
        .expect("the queue takes it");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let results = Queue::new()?;
    for index in 0..10 {
        let mut p = Process::from_run(MyProcess {
            index,
            results: results.clone(),
        })
        .named(format!("MyProcess-{}", index + 1));
        p.start()?;
        p.join()?;
    }
    let mut p = Process::from_fn(shout, ("hello".to_string(), results.clone()));
    p.start()?;
    p.join()?;
    let mut squares = Vec::new();
    for _ in 0..10 {
        let (square, name) = results.get()?;
        squares.push(square);
        if !name.starts_with("MyProcess-") {
            return Err(format!("a child called itself {name}").into());
        }
    }
    let shouted = results.get()?;
    println!("squares from the children: {squares:?}; the function sent {shouted:?}");
    if squares != (0..10).map(|i| i * i).collect::<Vec<u32>>() || shouted != (5, "HELLO".into()) {
        return Err("wrong results".into());
    }
    Ok(())
}
