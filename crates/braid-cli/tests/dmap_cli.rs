//! `braid dmap`, through the built binary: the program is this test binary, started
//! again with `DMAP_CLI_PROGRAM` set, so it owns `main`. The cluster case uses the Redis
//! at 127.0.0.1:6379 (database 5, a key prefix and queue of its own).

mod common;

use std::collections::HashSet;
use std::process::{ExitCode, Output};
use std::time::Duration;

use braid::dmap::Dmap;

type Check = Result<(), String>;
type CheckFn = fn() -> Check;

#[braid::task(name = "dmap_cli.square")]
fn square(x: u64) -> u64 {
    x * x
}

#[braid::task(name = "dmap_cli.add")]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[braid::task(name = "dmap_cli.pid")]
fn pid(_x: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(2));
    std::process::id()
}

/// The program `braid dmap` runs: prints what its Dmap did, exits with DMAP_CLI_EXIT.
fn program() -> ExitCode {
    let dmap = match Dmap::from_env() {
        Ok(dmap) => dmap,
        Err(e) => {
            eprintln!("no dmap: {e}");
            return ExitCode::from(3);
        }
    };
    let sum = dmap.map_reduce(square::task(), add::task(), 0..100u64);
    let pids: Result<HashSet<u32>, _> = dmap.map_chunked(pid::task(), 0..200u64, 1).collect();
    match (sum, pids) {
        (Ok(sum), Ok(pids)) => {
            let others = pids.iter().filter(|&&p| p != std::process::id()).count();
            println!("parallelism {}", dmap.parallelism());
            println!("sum {sum}");
            println!("worker processes {others} of {}", pids.len());
        }
        (sum, pids) => {
            eprintln!("the work failed: {sum:?} {pids:?}");
            return ExitCode::from(4);
        }
    }
    let code = std::env::var("DMAP_CLI_EXIT").map_or(0, |c| c.parse().unwrap_or(1));
    ExitCode::from(code)
}

fn braid(args: &[&str], env: &[(&str, &str)]) -> Result<Output, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = common::command(&["dmap"]);
    command
        .args(args)
        .arg(&me)
        .env("DMAP_CLI_PROGRAM", "1")
        .envs(env.iter().copied());
    common::output(command, Duration::from_secs(120))
}

fn expect_run(output: &Output, parallelism: usize, workers: usize) -> Check {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let want_sum = format!("sum {}", (0..100u64).map(|x| x * x).sum::<u64>());
    if !stdout.contains(&format!("parallelism {parallelism}\n")) || !stdout.contains(&want_sum) {
        return Err(format!(
            "unexpected output:\n{stdout}\n--- stderr ---\n{stderr}"
        ));
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("worker processes"))
        .ok_or("no worker line")?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (others, all) = (fields[2], fields[4]);
    if others != all || all.parse::<usize>().map_err(|e| e.to_string())? > workers {
        return Err(format!(
            "the work did not run on at most {workers} worker processes: {line}"
        ));
    }
    Ok(())
}

fn local_workers() -> Check {
    let out = braid(&["-n", "3"], &[])?;
    if !out.status.success() {
        return Err(format!(
            "exit {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    expect_run(&out, 3, 3)
}

fn exit_status_is_the_programs() -> Check {
    let out = braid(&["-n", "1"], &[("DMAP_CLI_EXIT", "7")])?;
    match out.status.code() {
        Some(7) => Ok(()),
        other => Err(format!("expected exit 7, got {other:?}")),
    }
}

fn workers_only_needs_a_broker() -> Check {
    let out = braid(&["--workers-only"], &[])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains("--broker") {
        return Err(format!(
            "expected a clear refusal, got {}: {stderr}",
            out.status
        ));
    }
    Ok(())
}

fn cluster_workers() -> Check {
    let tag = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_nanos()
    );
    let broker = format!("redis://127.0.0.1:6379/5?global_keyprefix=dmapcli-{tag}:");
    let queue = format!("dmapcli-{tag}");
    let out = braid(&["-n", "2", "--broker", &broker, "--queue", &queue], &[])?;
    if !out.status.success() {
        return Err(format!(
            "exit {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    expect_run(&out, 2, 2)
}

fn main() -> ExitCode {
    braid::init();
    if std::env::var_os("DMAP_CLI_PROGRAM").is_some() {
        return program();
    }
    let checks: [(&str, CheckFn); 4] = [
        (
            "braid dmap -n 3 runs the program on 3 local worker processes",
            local_workers,
        ),
        (
            "braid dmap exits with the program's status",
            exit_status_is_the_programs,
        ),
        (
            "braid dmap --workers-only without --broker is refused",
            workers_only_needs_a_broker,
        ),
        (
            "braid dmap --broker runs the work on cluster workers (Redis db 5)",
            cluster_workers,
        ),
    ];
    let mut failed = 0;
    for (name, check) in checks {
        match check() {
            Ok(()) => println!("ok   {name}"),
            Err(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
