//! `braid run -n N PROGRAM [ARGS...]`: starts N ranks of an MPI program on the
//! shared-memory backend (mpi4py's `mpiexec -n N python prog.py`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use braid::mpi::{Launch, launch};

/// `braid run -n N [--grace SECS] PROGRAM [ARGS...]`
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every rank runs PROGRAM with the job's shared memory and its rank in the \
environment; the program joins with braid::mpi::init() (or braid::mpi::run). The command \
exits 0 when every rank did; when a rank fails, the others' MPI calls fail at once with an \
`aborted` error, ranks still running after --grace are killed, and the command exits with \
the failed rank's status. The shared memory is an anonymous memfd: nothing is left behind."
)]
pub struct RunArgs {
    /// How many ranks to start.
    #[arg(short = 'n', long = "np", default_value_t = 1)]
    ranks: usize,
    /// Seconds the other ranks may keep running after one failed, before they are killed.
    #[arg(long, default_value_t = 5.0)]
    grace: f64,
    /// The program every rank runs, and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    program: Vec<OsString>,
}

/// Runs the job and turns its outcome into the command's exit status.
pub fn run(args: RunArgs) -> ExitCode {
    let Some((program, rest)) = args.program.split_first() else {
        eprintln!("braid run: no program given");
        return ExitCode::FAILURE;
    };
    let grace = match Duration::try_from_secs_f64(args.grace) {
        Ok(grace) => grace,
        Err(e) => {
            eprintln!("braid run: --grace {}: {e}", args.grace);
            return ExitCode::FAILURE;
        }
    };
    let spec = Launch {
        grace,
        ..Launch::new(args.ranks, resolve(program)).args(rest.iter().cloned())
    };
    match launch(&spec) {
        Ok(outcome) => {
            if let Some(rank) = outcome.first_failure {
                eprintln!(
                    "braid run: rank {rank} of {} failed ({}); the job was aborted",
                    args.ranks, outcome.statuses[rank]
                );
                if !outcome.killed.is_empty() {
                    eprintln!(
                        "braid run: killed ranks {:?}, still running {grace:?} after the failure",
                        outcome.killed
                    );
                }
            }
            ExitCode::from(outcome.exit_code())
        }
        Err(e) => {
            eprintln!("braid run: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `PROGRAM` as given when it names a file or has a slash; otherwise looked up on `PATH`
/// (like a shell), so that `braid run -n 2 python3 x.py` works.
fn resolve(program: &OsString) -> PathBuf {
    let path = PathBuf::from(program);
    if path.components().count() > 1 || path.is_file() {
        return path;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(&path))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or(path)
}
