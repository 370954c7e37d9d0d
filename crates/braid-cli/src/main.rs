//! The `braid` command.
#![forbid(unsafe_code)]

mod bench;
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
