//! `braid run -n N PROGRAM`: exit statuses, failure handling and the grace period.

mod common;

use std::process::Output;

fn braid_run(args: &[&str]) -> Output {
    let mut command = common::command(&["run"]);
    command.args(args);
    common::output(command, common::WAIT).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_rank_gets_its_rank_and_the_job_succeeds() {
    let out = braid_run(&[
        "-n",
        "3",
        "sh",
        "-c",
        "echo rank=$BRAID_MPI_RANK size=$BRAID_MPI_SIZE",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, ["rank=0 size=3", "rank=1 size=3", "rank=2 size=3"]);
}

#[test]
fn a_failed_rank_fails_the_job_and_outliving_ranks_are_killed() {
    let out = braid_run(&[
        "-n",
        "3",
        "--grace",
        "0.2",
        "sh",
        "-c",
        "if [ $BRAID_MPI_RANK = 1 ]; then exit 7; fi; exec sleep 600",
    ]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rank 1 of 3 failed"), "{stderr}");
    assert!(stderr.contains("killed ranks [0, 2]"), "{stderr}");
}

#[test]
fn a_missing_program_is_a_clear_error() {
    let out = braid_run(&["-n", "2", "/nonexistent/program"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("starting rank 0"));
}
