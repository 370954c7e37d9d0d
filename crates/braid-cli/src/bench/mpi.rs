//! The `mpi` suite: braid-mpi's shared-memory backend against mpi4py on Open MPI, two
//! ranks as processes on both sides (`bench/python/mpi.py` mirrors every case, with numpy
//! buffers as the headline and pickled objects in the note).
//!
//! Each measurement starts a job of two ranks of this very binary (the way `braid run -n
//! 2` does); a start-up hook turns them into ranks that run the case and hand rank 0's
//! timing back through a file. Starting the job is not timed.

use std::hint::black_box;
use std::time::Instant;

use braid::mpi::{self, Comm, Launch, Op};
use serde::{Deserialize, Serialize};

use super::{Case, CaseError, Measure, Size, Suite};

/// Set in the ranks' environment: `<case>:<size>:<file for rank 0's result>`.
const ENV: &str = "BRAID_BENCH_MPI";

/// The suite's cases.
pub(crate) const SUITE: Suite = Suite {
    name: "mpi",
    script: "mpi.py",
    cases: CASES,
};

/// A case of one measurement, repeated by the framework.
macro_rules! case {
    ($name:expr, $unit:literal, $full:expr, $quick:expr, $measure:expr) => {
        Case {
            name: $name,
            unit: $unit,
            size: Size {
                full: $full,
                quick: $quick,
            },
            check: None,
            measure: Measure::Once($measure),
        }
    };
}

/// Every case on braid-mpi's shared-memory backend (and, built with the feature `openmpi`,
/// again with braid's ranks on Open MPI under `mpirun`, like mpi4py's: the `_openmpi`
/// rows).
macro_rules! cases {
    ($($suffix:literal => $job:ident),*) => {
        &[$(
            case!(concat!("latency_8b", $suffix), "us", 200_000, 20_000, |n| Ok($job("latency_8b", n)? * 1e6)),
            case!(concat!("latency_1mib", $suffix), "us", 2_000, 200, |n| Ok($job("latency_1mib", n)? * 1e6)),
            case!(concat!("object_send", $suffix), "us", 100_000, 10_000, |n| Ok($job("object_send", n)? * 1e6)),
            case!(concat!("bcast_1m_doubles", $suffix), "ms", 200, 20, |n| Ok($job("bcast_1m_doubles", n)? * 1e3)),
            case!(concat!("reduce_1m_doubles", $suffix), "ms", 200, 20, |n| Ok($job("reduce_1m_doubles", n)? * 1e3)),
            case!(concat!("allreduce_1m_doubles", $suffix), "ms", 200, 20, |n| Ok($job("allreduce_1m_doubles", n)? * 1e3)),
        )*]
    };
}

#[cfg(not(feature = "openmpi"))]
const CASES: &[Case] = cases!("" => job);
#[cfg(feature = "openmpi")]
const CASES: &[Case] = cases!("" => job, "_openmpi" => mpirun_job);

inventory::submit! {
    braid::StartupHook::new("braid bench mpi rank", rank_hook)
}

/// In a rank started by [`job`] (or by `mpirun`): runs the case, writes rank 0's time, and
/// exits.
fn rank_hook() {
    let Ok(spec) = std::env::var(ENV) else {
        return;
    };
    if !mpi::launched() {
        return;
    }
    let code = match run_rank(&spec) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("braid bench mpi rank: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn run_rank(spec: &str) -> Result<(), String> {
    let mut parts = spec.splitn(3, ':');
    let (Some(case), Some(size), Some(out)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("malformed {ENV}={spec}"));
    };
    let size: u64 = size.parse().map_err(|e| format!("{ENV} size: {e}"))?;
    let comm = mpi::init().map_err(|e| e.to_string())?;
    let seconds = rank_case(&comm, case, size).map_err(|e| e.to_string())?;
    if comm.rank() == 0 {
        std::fs::write(out, seconds.to_string()).map_err(|e| format!("writing {out}: {e}"))?;
    }
    Ok(())
}

/// A small dict-like record, as mpi4py's `{"name": ..., "id": ..., "values": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    name: String,
    id: u64,
    score: f64,
    values: Vec<i32>,
}

/// One collective call on a send and a receive buffer.
type CollectiveOp<'a> = dyn Fn(&mut Vec<f64>, &mut Vec<f64>) -> Result<(), mpi::Error> + 'a;

/// Runs `size` iterations of `case` on this rank; returns the seconds per operation
/// (one-way for the ping-pongs).
fn rank_case(comm: &Comm, case: &str, size: u64) -> Result<f64, mpi::Error> {
    let peer = 1 - comm.rank();
    let ping_pong = |len: usize| -> Result<f64, mpi::Error> {
        let mut buf = vec![comm.rank() as u8; len];
        for _ in 0..size.min(100) {
            pong(comm, &mut buf, peer)?;
        }
        comm.barrier()?;
        let start = Instant::now();
        for _ in 0..size {
            pong(comm, &mut buf, peer)?;
        }
        Ok(start.elapsed().as_secs_f64() / size as f64 / 2.0)
    };
    let collective = |op: &CollectiveOp| {
        // Huge-page backed, as numpy's arrays of this size are on the Python side.
        let mut a = mpi::buffer(1 << 20, comm.rank() as f64 + 1.0);
        let mut b = mpi::buffer(1 << 20, 0.0f64);
        op(&mut a, &mut b)?;
        comm.barrier()?;
        let start = Instant::now();
        for _ in 0..size {
            op(&mut a, &mut b)?;
        }
        let elapsed = start.elapsed().as_secs_f64() / size as f64;
        Ok::<_, mpi::Error>((elapsed, a, b))
    };
    match case {
        "latency_8b" => ping_pong(8),
        "latency_1mib" => ping_pong(1 << 20),
        "object_send" => {
            let record = Record {
                name: "braid".into(),
                id: 42,
                score: 0.5,
                values: vec![1, 2, 3],
            };
            let round = || -> Result<(), mpi::Error> {
                if comm.rank() == 0 {
                    comm.send(&record, peer, 0)?;
                    let back: Record = comm.recv(peer, 0)?;
                    black_box(back);
                } else {
                    let got: Record = comm.recv(peer, 0)?;
                    comm.send(&got, peer, 0)?;
                }
                Ok(())
            };
            for _ in 0..size.min(100) {
                round()?;
            }
            comm.barrier()?;
            let start = Instant::now();
            for _ in 0..size {
                round()?;
            }
            Ok(start.elapsed().as_secs_f64() / size as f64 / 2.0)
        }
        "bcast_1m_doubles" => {
            let (t, a, _) = collective(&|a, _| comm.bcast_buf(a, 0))?;
            check(a[12345] == 1.0, "bcast")?;
            Ok(t)
        }
        "reduce_1m_doubles" => {
            let root = comm.rank() == 0;
            let (t, _, b) =
                collective(&|a, b| comm.reduce_buf(a, root.then_some(&mut b[..]), Op::sum(), 0))?;
            check(!root || b[777] == 3.0, "reduce")?;
            Ok(t)
        }
        "allreduce_1m_doubles" => {
            let (t, _, b) = collective(&|a, b| comm.allreduce_buf(a, b, Op::sum()))?;
            check(b[777] == 3.0, "allreduce")?;
            Ok(t)
        }
        other => Err(mpi::Error::InvalidArgument(format!(
            "no mpi bench case {other}"
        ))),
    }
}

fn check(ok: bool, what: &str) -> Result<(), mpi::Error> {
    if ok {
        Ok(())
    } else {
        Err(mpi::Error::InvalidArgument(format!(
            "{what} computed a wrong sum"
        )))
    }
}

/// One round trip of `buf` between rank 0 and its peer.
fn pong(comm: &Comm, buf: &mut [u8], peer: usize) -> Result<(), mpi::Error> {
    if comm.rank() == 0 {
        comm.send_buf(buf, peer, 0)?;
        comm.recv_buf(buf, peer, 0)?;
    } else {
        comm.recv_buf(buf, peer, 0)?;
        comm.send_buf(buf, peer, 0)?;
    }
    Ok(())
}

/// Runs `case` on a fresh job of two rank processes; returns rank 0's seconds per op.
fn job(case: &str, size: u64) -> Result<f64, CaseError> {
    let exe = std::env::current_exe()
        .map_err(|e| CaseError::Unavailable(format!("cannot find this program: {e}")))?;
    let out = std::env::temp_dir().join(format!(
        "braid-bench-mpi-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    let spec = Launch::new(2, exe).env(ENV, format!("{case}:{size}:{}", out.display()));
    let outcome = mpi::launch(&spec)?;
    let read = std::fs::read_to_string(&out);
    if out.exists()
        && let Err(e) = std::fs::remove_file(&out)
    {
        eprintln!("cannot remove {}: {e}", out.display());
    }
    if !outcome.success() {
        return Err(CaseError::Wrong(format!(
            "the ranks failed: {:?}",
            outcome.statuses
        )));
    }
    let text = read.map_err(|e| CaseError::Wrong(format!("rank 0 wrote no result: {e}")))?;
    text.trim()
        .parse::<f64>()
        .map_err(|e| CaseError::Wrong(format!("rank 0 wrote {text:?}: {e}")))
}

fn fastrand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// Runs `case` on a job of two ranks of this binary started by `mpirun` (braid-mpi's Open
/// MPI backend); returns rank 0's seconds per op.
#[cfg(feature = "openmpi")]
fn mpirun_job(case: &str, size: u64) -> Result<f64, CaseError> {
    let exe = std::env::current_exe()
        .map_err(|e| CaseError::Unavailable(format!("cannot find this program: {e}")))?;
    let out = std::env::temp_dir().join(format!(
        "braid-bench-mpi-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    let status = std::process::Command::new("mpirun")
        .args(["-n", "2"])
        .arg(&exe)
        .env(ENV, format!("{case}:{size}:{}", out.display()))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| CaseError::Unavailable(format!("cannot start mpirun: {e}")))?;
    let read = std::fs::read_to_string(&out);
    if out.exists()
        && let Err(e) = std::fs::remove_file(&out)
    {
        eprintln!("cannot remove {}: {e}", out.display());
    }
    if !status.success() {
        return Err(CaseError::Wrong(format!("mpirun exited with {status}")));
    }
    let text = read.map_err(|e| CaseError::Wrong(format!("rank 0 wrote no result: {e}")))?;
    text.trim()
        .parse::<f64>()
        .map_err(|e| CaseError::Wrong(format!("rank 0 wrote {text:?}: {e}")))
}
