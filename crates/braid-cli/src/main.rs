//! The `braid` command.
#![forbid(unsafe_code)]

mod bench;
mod dmap_cmd;
mod mapreduce_cmd;
mod nameserver_cmd;
mod run_cmd;
mod signals;
mod taskq_cmd;
mod tour;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// braid: Python's parallel and distributed stack, in Rust.
#[derive(Debug, Parser)]
#[command(name = "braid", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one short recipe from every family on the embedded defaults, checking each answer.
    Tour,
    /// Measure braid against the Python original, side by side in one run.
    Bench(bench::BenchOptions),
    /// Run a task-queue worker (Celery-compatible) for the tasks in this binary.
    Worker(taskq_cmd::WorkerArgs),
    /// Send a task to the task queue, by name, with JSON arguments.
    Submit(taskq_cmd::SubmitArgs),
    /// Read a task's state and result.
    Result(taskq_cmd::ResultArgs),
    /// Empty task queues.
    Purge(taskq_cmd::PurgeArgs),
    /// Ask the running task-queue workers (braid's and Celery's) what they are doing.
    Inspect(taskq_cmd::InspectArgs),
    /// Run a program whose Dmap work goes to N local worker processes, or to workers on a broker (SCOOP's `python -m scoop -n N`).
    Dmap(dmap_cmd::DmapArgs),
    /// Tell the running task-queue workers what to do (revoke, rate_limit, pool_grow, ...).
    Control(taskq_cmd::ControlArgs),
    /// Send periodic tasks from a schedule file (Celery beat).
    Beat(taskq_cmd::BeatArgs),
    /// Print the task-queue workers' monitoring events (braid's and Celery's).
    Events(taskq_cmd::EventsArgs),
    /// Serve a live web dashboard of the task queue (like Flower).
    Dashboard(taskq_cmd::DashboardArgs),
    /// Run a built-in MapReduce job (Disco's word count) on local threads or task-queue workers.
    Mapreduce(mapreduce_cmd::MapreduceArgs),
    /// Run a name server for remote objects (Pyro's `pyro5-ns`), or with a subcommand
    /// list, look up, register or remove its names (Pyro's `pyro5-nsc`).
    Nameserver(nameserver_cmd::NameserverArgs),
    /// Run N ranks of an MPI program on shared memory (mpi4py's `mpiexec -n N`).
    Run(run_cmd::RunArgs),
}

fn main() -> ExitCode {
    braid::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Tour => {
            let outcomes = tour::run();
            let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
            if failed == 0 {
                println!(
                    "tour: every recipe ({}) gave the right answer",
                    outcomes.len()
                );
                ExitCode::SUCCESS
            } else {
                eprintln!("tour: {failed} of {} recipes failed", outcomes.len());
                ExitCode::FAILURE
            }
        }
        Command::Worker(args) => taskq_cmd::worker(args),
        Command::Submit(args) => taskq_cmd::submit(args),
        Command::Result(args) => taskq_cmd::result(args),
        Command::Purge(args) => taskq_cmd::purge(args),
        Command::Inspect(args) => taskq_cmd::inspect(args),
        Command::Dmap(args) => dmap_cmd::run(args),
        Command::Control(args) => taskq_cmd::control(args),
        Command::Beat(args) => taskq_cmd::beat(args),
        Command::Events(args) => taskq_cmd::events(args),
        Command::Dashboard(args) => taskq_cmd::dashboard(args),
        Command::Mapreduce(args) => mapreduce_cmd::run(args),
        Command::Nameserver(args) => nameserver_cmd::nameserver(args),
        Command::Run(args) => run_cmd::run(args),
        Command::Bench(options) => match bench::run(&options) {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    eprintln!("  caused by: {cause}");
                    source = cause.source();
                }
                ExitCode::FAILURE
            }
        },
    }
}
