//! The suite with ranks as processes started by the launcher (what `braid run -n N`
//! does), on 2, 3 and 4 ranks, and what happens when a rank panics, is killed, or exits
//! early. This binary is both the launcher and, re-executed, every rank.

mod common;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use braid_mpi::{Error, JobOutcome, Launch, Op, launch};

/// The exit code of a rank that saw the error it expected.
const SAW_ERROR: i32 = 3;

fn rank_main(args: &[String]) -> ExitCode {
    let comm = match braid_mpi::init() {
        Ok(comm) => comm,
        Err(e) => {
            eprintln!("init failed: {e}");
            return ExitCode::from(2);
        }
    };
    let r = comm.rank();
    match args.first().map(String::as_str) {
        Some("--case") => {
            let name = args.get(1).map(String::as_str).unwrap_or("");
            let Some(f) = common::case(name) else {
                eprintln!("no case {name}");
                return ExitCode::from(2);
            };
            match f(&comm) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("case {name}, rank {r}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(mode @ ("--panic" | "--kill" | "--kill-in-bcast" | "--kill-in-reduce")) => {
            if r == 1 {
                if mode != "--panic" {
                    let me = rustix::process::getpid();
                    if let Err(e) = rustix::process::kill_process(me, rustix::process::Signal::KILL)
                    {
                        eprintln!("could not kill myself: {e}");
                    }
                }
                panic!("rank 1 gives up");
            }
            let error = if mode == "--kill-in-bcast" {
                // Large enough for a single-copy hand-off: rank 1's parent waits for an
                // answer that never comes.
                let mut buf = vec![r as f64; 1 << 20];
                comm.bcast_buf(&mut buf, 0)
                    .and_then(|()| comm.barrier())
                    .unwrap_err()
            } else if mode == "--kill-in-reduce" {
                // The root waits for rank 1's value, the others for the root's answer.
                let buf = vec![r as f64; 1 << 20];
                let mut sum = vec![0.0; 1 << 20];
                comm.reduce_buf(&buf, (r == 0).then_some(&mut sum[..]), Op::sum(), 0)
                    .and_then(|()| comm.barrier())
                    .unwrap_err()
            } else if r == 0 {
                comm.recv::<u64>(1, 0).unwrap_err()
            } else {
                comm.barrier().unwrap_err()
            };
            if matches!(error, Error::Aborted { rank: 1 }) {
                ExitCode::from(SAW_ERROR as u8)
            } else {
                eprintln!("rank {r}: unexpected {error:?}");
                ExitCode::FAILURE
            }
        }
        Some("--early") => {
            if r == 1 {
                // Leaves without finalising: the launcher sees it exit.
                std::process::exit(0);
            }
            match comm.recv::<u64>(1, 0) {
                Err(Error::PeerGone { rank: 1 }) => ExitCode::SUCCESS,
                other => {
                    eprintln!("rank {r}: expected PeerGone, got {other:?}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("unknown mode {args:?}");
            ExitCode::from(2)
        }
    }
}

fn job(n: usize, args: &[&str]) -> JobOutcome {
    let exe = std::env::current_exe().expect("the test binary's path");
    let spec = Launch {
        grace: Duration::from_secs(30),
        ..Launch::new(n, exe).args(args.iter().copied())
    };
    launch(&spec).unwrap_or_else(|e| panic!("launching {args:?} on {n} ranks: {e}"))
}

/// The memfd segments this process still holds open.
fn open_segments() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("braid-mpi"))
        .count()
}

fn check(name: &str, ok: bool, failures: &mut Vec<String>, detail: impl FnOnce() -> String) {
    if ok {
        println!("ok   {name}");
    } else {
        let detail = detail();
        println!("FAIL {name}: {detail}");
        failures.push(format!("{name}: {detail}"));
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if braid_mpi::launched() {
        return rank_main(&args);
    }
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let mut failures = Vec::new();
    let started = Instant::now();

    for (name, _) in common::cases() {
        for n in 2..=4 {
            let label = format!("{name} on {n} ranks");
            if !wanted(&label) {
                continue;
            }
            let outcome = job(n, &["--case", name]);
            check(&label, outcome.success(), &mut failures, || {
                format!("{:?}", outcome.statuses)
            });
        }
    }

    for mode in ["--panic", "--kill", "--kill-in-bcast", "--kill-in-reduce"] {
        for n in 2..=4 {
            let label = format!("a rank that fails ({mode}) aborts the others on {n} ranks");
            if !wanted(&label) {
                continue;
            }
            let outcome = job(n, &[mode]);
            let others_saw_it = outcome
                .statuses
                .iter()
                .enumerate()
                .filter(|(rank, _)| *rank != 1)
                .all(|(_, status)| status.code() == Some(SAW_ERROR));
            let ok = outcome.first_failure == Some(1)
                && !outcome.success()
                && outcome.exit_code() != 0
                && others_saw_it
                && outcome.killed.is_empty();
            check(&label, ok, &mut failures, || format!("{outcome:?}"));
        }
    }

    let label = "a rank that exits early is reported to the rank waiting on it";
    if wanted(label) {
        let outcome = job(2, &["--early"]);
        check(label, outcome.success(), &mut failures, || {
            format!("{outcome:?}")
        });
    }

    let label = "no segment is left behind";
    if wanted(label) {
        let open = open_segments();
        let in_dev_shm = std::fs::read_dir("/dev/shm")
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().contains("braid-mpi"))
                    .count()
            })
            .unwrap_or(0);
        check(label, open == 0 && in_dev_shm == 0, &mut failures, || {
            format!("{open} segments still open, {in_dev_shm} in /dev/shm")
        });
    }

    let label = "a program that is not there is a clear error";
    if wanted(label) {
        let result = launch(&Launch::new(2, "/nonexistent/braid-mpi-program"));
        check(
            label,
            matches!(result, Err(Error::Os { .. })),
            &mut failures,
            || format!("{result:?}"),
        );
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
