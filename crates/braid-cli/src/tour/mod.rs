//! `braid tour`: one short recipe from every family, each checked against its known answer.

use std::time::{Duration, Instant};

mod r#async;
mod csp;
mod dmap;
mod gpu;
mod mapreduce;
mod mpi;
mod proc;
mod rpc;
mod taskq;
mod threads;

/// One recipe of the tour: a family, what it shows, and a run that returns a summary of what
/// it computed, or why its answer was wrong.
struct Recipe {
    family: &'static str,
    shows: &'static str,
    run: fn() -> Result<String, String>,
}

/// The outcome of one recipe.
pub struct Outcome {
    /// The family the recipe belongs to.
    pub family: &'static str,
    /// What the recipe shows.
    pub shows: &'static str,
    /// What it computed, or why it failed.
    pub result: Result<String, String>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Every recipe, one per family; a family adds its module above and one entry here.
fn recipes() -> Vec<Recipe> {
    vec![
        Recipe {
            family: "threads",
            shows: "producers and consumers over a Queue, a Barrier, and a ThreadPool map",
            run: threads::run,
        },
        Recipe {
            family: "proc",
            shows: "a ProcessPool map, a Pipe ping-pong with a child process, a shared Value",
            run: proc::run,
        },
        Recipe {
            family: "mpi",
            shows: "mpi4py-style ranks on shared memory: a ring token, scatter + allreduce, a cartesian grid",
            run: mpi::run,
        },
        Recipe {
            family: "csp",
            shows: "a PyCSP-style network: fan-out, fair alternation, one poison shuts it down",
            run: csp::run,
        },
        Recipe {
            family: "async",
            shows: "a TaskGroup of producers feeding an async Queue, consumers gathered, pool work awaited",
            run: r#async::run,
        },
        Recipe {
            family: "gpu",
            shows: "a SAXPY ElementwiseKernel and a dot-product ReductionKernel on CUDA, else OpenCL",
            run: gpu::run,
        },
        Recipe {
            family: "taskq",
            shows: "a Celery-style worker on the in-memory broker: 1000 calls, a failure, a retry, a chord",
            run: taskq::run,
        },
        Recipe {
            family: "dmap",
            shows: "SCOOP-style map with a shared constant, a tree map_reduce, map_scan, nested submits",
            run: dmap::run,
        },
        Recipe {
            family: "mapreduce",
            shows: "Disco's word count on a thread pool, spilling sorted runs under a 64 KiB budget",
            run: mapreduce::run,
        },
        Recipe {
            family: "rpc",
            shows: "Pyro-style remote objects: a session object found by name, a batch, a callback",
            run: rpc::run,
        },
    ]
}

/// Runs every recipe, printing a line per recipe as it finishes; returns every outcome.
pub fn run() -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for recipe in recipes() {
        let started = Instant::now();
        let result = std::panic::catch_unwind(recipe.run).unwrap_or_else(|payload| {
            Err(format!("panicked: {}", braid::panic_message(&*payload)))
        });
        let outcome = Outcome {
            family: recipe.family,
            shows: recipe.shows,
            result,
            elapsed: started.elapsed(),
        };
        print_outcome(&outcome);
        outcomes.push(outcome);
    }
    outcomes
}

fn print_outcome(outcome: &Outcome) {
    let (mark, text) = match &outcome.result {
        Ok(summary) => ("ok  ", summary.as_str()),
        Err(why) => ("FAIL", why.as_str()),
    };
    println!(
        "{mark} {:<10} {:>9.2} ms  {} — {}",
        outcome.family,
        outcome.elapsed.as_secs_f64() * 1e3,
        outcome.shows,
        text
    );
}
