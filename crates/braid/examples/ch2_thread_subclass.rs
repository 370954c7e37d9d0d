//! Book recipe (ch. 2): "Defining a thread subclass": a class with a `run` method, started
//! as a thread.
//!
//! Python:
//! ```python
//! class MyThreadClass(Thread):
//!     def run(self): print("---> " + self.name + " running, belonging to process ID", os.getpid())
//! t = MyThreadClass("Thread#1", 100_000); t.start(); t.join()
//! ```
//!
//! Rust has no inheritance: the "subclass" is a struct implementing a small trait, and
//! `start` hands it to a braid-sync thread named after it.
//!
//! Run: `cargo run --example ch2_thread_subclass`

use braid::sync::{Builder, Error, JoinHandle};

/// What a thread "subclass" provides: a name and a `run` method.
trait Runnable: Send + 'static {
    type Output: Send + 'static;
    fn name(&self) -> String;
    fn run(self) -> Self::Output;
}

/// Python's `Thread.start()`: runs `job.run()` on a new thread named after the job.
fn start<R: Runnable>(job: R) -> Result<JoinHandle<R::Output>, Error> {
    Builder::new().name(job.name()).spawn(move || job.run())
}

/// The book's `MyThreadClass`; instead of sleeping it does some work: counting primes.
struct MyThreadClass {
    name: String,
    limit: u64,
}

impl Runnable for MyThreadClass {
    type Output = u64;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn run(self) -> u64 {
        println!(
            "---> {} running, belonging to process ID {}",
            self.name,
            std::process::id()
        );
        let primes = (2..self.limit)
            .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
            .count() as u64;
        println!(
            "---> {} over: {primes} primes below {}",
            self.name, self.limit
        );
        primes
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();

    // pi(x): the number of primes below x.
    let cases = [(1_000, 168), (10_000, 1_229), (20_000, 2_262)];
    let handles = cases
        .iter()
        .enumerate()
        .map(|(i, &(limit, _))| {
            start(MyThreadClass {
                name: format!("Thread#{}", i + 1),
                limit,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    for (handle, (limit, expected)) in handles.into_iter().zip(cases) {
        let name = handle.name().to_string();
        let primes = handle.join()?;
        if primes != expected {
            return Err(
                format!("{name}: {primes} primes below {limit}, expected {expected}").into(),
            );
        }
    }
    println!("ok: three Runnable structs ran on their own named threads; counts checked");
    Ok(())
}
