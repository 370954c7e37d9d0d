//! `braid dmap`: runs a program whose `Dmap::from_env()` work goes to N local worker
//! processes, or to task-queue workers on a broker (SCOOP's `python -m scoop -n N`).

use std::ffi::OsString;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use braid::dmap::{
    BROKER_ENV, CONCURRENCY_ENV, DEFAULT_QUEUE, PARALLELISM_ENV, PROCESSES_ENV, QUEUE_ENV,
    WORKER_ENV,
};

/// How often the command looks at its workers while the program runs.
const WATCH: Duration = Duration::from_millis(200);

/// `braid dmap [-n N] [--broker URL [--queue Q] [--workers-only]] PROGRAM [ARGS...]`
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Without --broker, PROGRAM's Dmap::from_env() is a pool of N worker \
processes (re-executions of PROGRAM). With --broker, N worker processes of PROGRAM are \
started here on that broker's queue and PROGRAM's Dmap::from_env() sends its work there; \
on other machines, `braid dmap -n N --broker URL --workers-only PROGRAM` adds workers to \
the same cluster."
)]
pub struct DmapArgs {
    /// Worker processes to start (0: one per CPU).
    #[arg(short = 'n', long = "workers", default_value_t = 0)]
    workers: usize,
    /// A task-queue broker (e.g. redis://host:6379/0): the workers consume a queue there.
    #[arg(long)]
    broker: Option<String>,
    /// The queue on the broker.
    #[arg(long, default_value = DEFAULT_QUEUE)]
    queue: String,
    /// Tasks each worker process runs at once (with --broker).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// How many tasks the whole cluster runs at once, for the program's chunking
    /// (with --broker; default: the workers started here times --concurrency).
    #[arg(long)]
    parallelism: Option<usize>,
    /// Start only the workers, for another machine's program (with --broker); they
    /// serve until interrupted.
    #[arg(long)]
    workers_only: bool,
    /// The program to run, and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    program: Vec<OsString>,
}

fn fail(message: String) -> ExitCode {
    eprintln!("braid dmap: {message}");
    ExitCode::FAILURE
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => {
            eprintln!("braid dmap: the program was killed ({status})");
            ExitCode::FAILURE
        }
    }
}

fn command(program: &[OsString]) -> Command {
    let mut cmd = Command::new(&program[0]);
    cmd.args(&program[1..])
        .env_remove(WORKER_ENV)
        .env_remove(BROKER_ENV)
        .env_remove(PROCESSES_ENV);
    cmd
}

/// Runs `braid dmap`; the exit status is the program's.
pub fn run(args: DmapArgs) -> ExitCode {
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.workers
    };
    let name = args.program[0].to_string_lossy().into_owned();
    let Some(broker) = args.broker.clone() else {
        if args.workers_only {
            return fail(
                "--workers-only needs --broker: local workers belong to the program".into(),
            );
        }
        let mut cmd = command(&args.program);
        cmd.env(PROCESSES_ENV, workers.to_string());
        return match cmd.status() {
            Ok(status) => exit_code(status),
            Err(e) => fail(format!("cannot run {name}: {e}")),
        };
    };
    let mut pool = Vec::with_capacity(workers);
    for _ in 0..workers {
        let mut cmd = command(&args.program);
        cmd.env(WORKER_ENV, std::process::id().to_string())
            .env(BROKER_ENV, &broker)
            .env(QUEUE_ENV, &args.queue)
            .env(CONCURRENCY_ENV, args.concurrency.max(1).to_string())
            .stdin(Stdio::piped());
        match cmd.spawn() {
            Ok(child) => pool.push(child),
            Err(e) => {
                stop(&mut pool);
                return fail(format!("cannot start a worker ({name}): {e}"));
            }
        }
    }
    eprintln!(
        "braid dmap: {workers} worker(s) of {name} on queue `{}` at {broker}",
        args.queue
    );
    if args.workers_only {
        let mut failed = false;
        for child in &mut pool {
            match child.wait() {
                Ok(status) if status.success() => {}
                Ok(status) => {
                    eprintln!("braid dmap: a worker exited with {status}");
                    failed = true;
                }
                Err(e) => {
                    eprintln!("braid dmap: waiting for a worker: {e}");
                    failed = true;
                }
            }
        }
        return if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    let parallelism = args
        .parallelism
        .unwrap_or(workers * args.concurrency.max(1));
    let mut cmd = command(&args.program);
    cmd.env(BROKER_ENV, &broker)
        .env(QUEUE_ENV, &args.queue)
        .env(PARALLELISM_ENV, parallelism.to_string());
    let mut program = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            stop(&mut pool);
            return fail(format!("cannot run {name}: {e}"));
        }
    };
    let outcome = watch(&mut program, &mut pool);
    stop(&mut pool);
    match outcome {
        Ok(status) => exit_code(status),
        Err(message) => fail(message),
    }
}

/// Waits for the program; if every worker dies first, stops it rather than let it wait
/// forever for work nobody will do.
fn watch(program: &mut Child, pool: &mut [Child]) -> Result<std::process::ExitStatus, String> {
    loop {
        match program.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for the program: {e}")),
        }
        let mut alive = 0;
        for worker in pool.iter_mut() {
            if matches!(worker.try_wait(), Ok(None)) {
                alive += 1;
            }
        }
        if alive == 0 {
            if let Err(e) = program.kill() {
                eprintln!("braid dmap: stopping the program: {e}");
            }
            if let Err(e) = program.wait() {
                eprintln!("braid dmap: reaping the program: {e}");
            }
            return Err(
                "every worker exited while the program ran (is the broker reachable?)".into(),
            );
        }
        std::thread::sleep(WATCH);
    }
}

/// Closes each worker's standard input (it finishes what it holds and exits) and waits.
fn stop(pool: &mut Vec<Child>) {
    for child in pool.iter_mut() {
        drop(child.stdin.take());
    }
    for mut child in pool.drain(..) {
        match child.wait() {
            Ok(status) if status.success() => {}
            Ok(status) => eprintln!("braid dmap: a worker exited with {status}"),
            Err(e) => eprintln!("braid dmap: waiting for a worker: {e}"),
        }
    }
}
