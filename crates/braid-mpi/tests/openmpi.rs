//! The suite on the Open MPI backend (feature `mpi`). Run without arguments, this binary
//! starts itself under `mpirun`: every case of `tests/common` on 2, 3 and 4 ranks, a job
//! with a rank that panics (mpirun must end it with a failure, not hang), and an MPMD job
//! of this program and an mpi4py script (`tests/mpi4py_peer.py`) exchanging typed buffers
//! and taking part in the same collectives.
//!
//! Needs `mpirun` on the PATH and, for the interop job, a Python with mpi4py: the one in
//! `$BRAID_PYTHON`, else `target/venv/bin/python`.

mod common;

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use braid_mpi::{ANY_SOURCE, ANY_TAG, BackendKind, Comm, Error, Op};

/// How long one mpirun job may take before the driver kills it and reports a hang.
const JOB_LIMIT: Duration = Duration::from_secs(240);

fn run_cases(comm: &Comm, filter: Option<&str>) -> ExitCode {
    let (r, n) = (comm.rank(), comm.size());
    if comm.backend() != BackendKind::OpenMpi {
        eprintln!("rank {r}: not on the Open MPI backend");
        return ExitCode::FAILURE;
    }
    for (name, case) in common::cases() {
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let started = Instant::now();
        if let Err(e) = case(comm) {
            eprintln!("FAIL {name} on {n} ranks: rank {r}: {e}");
            comm.abort();
        }
        if r == 0 {
            println!("ok   {name} on {n} ranks ({:.1?})", started.elapsed());
        }
    }
    ExitCode::SUCCESS
}

/// The braid side of the MPMD job with `tests/mpi4py_peer.py` (world rank 1).
fn interop(comm: &Comm) -> Result<(), Error> {
    assert_eq!((comm.rank(), comm.size()), (0, 2), "braid is rank 0 of 2");
    let peer = 1;
    // Typed buffers both ways, with tags.
    comm.send_buf(&[1.5f64, 2.5, 3.5], peer, 7)?;
    let mut ints = [0i32; 8];
    let status = comm.recv_buf(&mut ints, peer, 8)?;
    assert_eq!((status.source(), status.tag(), status.count()), (1, 8, 4));
    assert_eq!(&ints[..4], &[10, 20, 30, 40]);
    let mut echo = [0f64; 3];
    let status = comm.recv_buf(&mut echo, ANY_SOURCE, ANY_TAG)?;
    assert_eq!(status.tag(), 9);
    assert_eq!(echo, [3.0, 5.0, 7.0], "python doubles what it got");
    // A probe sees a Python message's size; its element type is not known.
    let status = comm.probe(peer, 10)?;
    assert_eq!((status.bytes(), status.count_of::<u16>()), (6, Some(3)));
    assert!(!status.is_object());
    let mut shorts = vec![0u16; 3];
    comm.recv_buf(&mut shorts, peer, 10)?;
    assert_eq!(shorts, [7, 8, 9]);
    // Collectives with Python taking part.
    let mut data = [0.25f64, 0.5, 0.75, 1.0, 1.25];
    comm.bcast_buf(&mut data, 0)?;
    let mut from_python = [0i64; 4];
    comm.bcast_buf(&mut from_python, 1)?;
    assert_eq!(from_python, [-1, 2, -3, 4]);
    let mine: Vec<f64> = (0..6).map(|i| i as f64).collect();
    let mut sum = vec![0f64; 6];
    comm.allreduce_buf(&mine, &mut sum, Op::sum())?;
    assert_eq!(
        sum,
        (0..6)
            .map(|i| i as f64 + 100.0 * i as f64)
            .collect::<Vec<_>>()
    );
    let mut max = [0i32; 2];
    comm.allreduce_buf(&[5, -5], &mut max, Op::max())?;
    assert_eq!(max, [5, 6]);
    let mut gathered = [0i32; 4];
    comm.allgather_buf(&[1, 2], &mut gathered)?;
    assert_eq!(gathered, [1, 2, 3, 4]);
    comm.barrier()?;
    println!("ok   braid and mpi4py exchanged buffers and ran collectives together");
    Ok(())
}

fn rank_main(args: &[String]) -> ExitCode {
    let comm = match braid_mpi::init() {
        Ok(comm) => comm,
        Err(e) => {
            eprintln!("init failed: {e}");
            return ExitCode::from(2);
        }
    };
    match args.first().map(String::as_str) {
        Some("--cases") => run_cases(&comm, args.get(1).map(String::as_str)),
        Some("--panic") => {
            if comm.rank() == 1 {
                panic!("rank 1 gives up");
            }
            // The others wait for a message that never comes: only the abort ends them.
            let never = comm.recv::<u64>(1, 0);
            eprintln!(
                "rank {}: a receive from a dead rank returned {never:?}",
                comm.rank()
            );
            ExitCode::FAILURE
        }
        Some("--interop") => match interop(&comm) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("interop: {e}");
                comm.abort();
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("unknown mode {args:?}");
            ExitCode::from(2)
        }
    }
}

/// How a job ended: its exit code (`None` when killed), its output, and how long it took.
struct Outcome {
    code: Option<i32>,
    output: String,
    elapsed: Duration,
    timed_out: bool,
}

/// Runs `mpirun ARGS`, killing it after [`JOB_LIMIT`].
fn mpirun(args: &[String]) -> Outcome {
    let mut command = Command::new("mpirun");
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if rustix::process::geteuid().is_root() {
        command
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    let started = Instant::now();
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("starting mpirun (is Open MPI installed?): {e}"));
    let pid = rustix::process::Pid::from_child(&child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let (result, timed_out) = match rx.recv_timeout(JOB_LIMIT) {
        Ok(result) => (result, false),
        Err(_) => {
            if let Err(e) = rustix::process::kill_process(pid, rustix::process::Signal::KILL) {
                eprintln!("could not kill mpirun: {e}");
            }
            (
                rx.recv()
                    .unwrap_or_else(|e| panic!("mpirun's waiter is gone: {e}")),
                true,
            )
        }
    };
    let output = result.unwrap_or_else(|e| panic!("waiting for mpirun: {e}"));
    Outcome {
        code: output.status.code(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        elapsed: started.elapsed(),
        timed_out,
    }
}

fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("BRAID_PYTHON") {
        return PathBuf::from(python);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv/bin/python")
}

fn check(name: &str, ok: bool, failures: &mut Vec<String>, detail: impl FnOnce() -> String) {
    if ok {
        println!("ok   {name}");
    } else {
        let detail = detail();
        println!("FAIL {name}: {detail}");
        failures.push(name.to_string());
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if braid_mpi::launched() {
        return rank_main(&args);
    }
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let exe = std::env::current_exe()
        .expect("the test binary's path")
        .to_string_lossy()
        .into_owned();
    let base = |n: usize| -> Vec<String> {
        vec![
            "--oversubscribe".into(),
            "--bind-to".into(),
            "none".into(),
            "-n".into(),
            n.to_string(),
        ]
    };
    let mut failures = Vec::new();
    let started = Instant::now();

    for n in 2..=4 {
        let label = format!("the common cases on {n} ranks");
        if !wanted(&label) && !common::cases().iter().any(|(c, _)| wanted(c)) {
            continue;
        }
        let mut job = base(n);
        job.extend([exe.clone(), "--cases".into()]);
        if let Some(f) = filter.as_deref().filter(|f| !label.contains(*f)) {
            job.push(f.to_string());
        }
        let outcome = mpirun(&job);
        print!("{}", outcome.output);
        check(&label, outcome.code == Some(0), &mut failures, || {
            format!(
                "mpirun exited with {:?} after {:.1?}{}",
                outcome.code,
                outcome.elapsed,
                if outcome.timed_out {
                    " (killed: it hung)"
                } else {
                    ""
                }
            )
        });
    }

    let label = "a rank that panics ends the job with a failure";
    if wanted(label) {
        let mut job = base(3);
        job.extend([exe.clone(), "--panic".into()]);
        let outcome = mpirun(&job);
        check(
            label,
            !outcome.timed_out && outcome.code.is_some_and(|c| c != 0),
            &mut failures,
            || {
                format!(
                    "mpirun exited with {:?} after {:.1?} (timed out: {})\n{}",
                    outcome.code, outcome.elapsed, outcome.timed_out, outcome.output
                )
            },
        );
    }

    let label = "mpi4py interoperates (MPMD job)";
    if wanted(label) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mpi4py_peer.py");
        let mut job = base(1);
        job.extend([
            exe.clone(),
            "--interop".into(),
            ":".into(),
            "-n".into(),
            "1".into(),
        ]);
        job.extend([
            python().to_string_lossy().into_owned(),
            script.to_string_lossy().into_owned(),
        ]);
        let outcome = mpirun(&job);
        print!("{}", outcome.output);
        check(label, outcome.code == Some(0), &mut failures, || {
            format!(
                "mpirun exited with {:?} after {:.1?}",
                outcome.code, outcome.elapsed
            )
        });
    }

    println!(
        "\n{} failed; finished in {:.1?}",
        failures.len(),
        started.elapsed()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
