//! [`launch`]: starts a job of rank processes (what `braid run -n N` does), watches them,
//! and aborts the job when one fails.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::segment::{RankState, Segment};
use crate::world::{ENV_FD, ENV_RANK, ENV_SIZE};
use crate::{Error, Result};

/// What to start: `size` copies of `program args...`, and how long ranks may keep
/// running once one has failed before they are killed.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The number of ranks.
    pub size: usize,
    /// The program every rank runs.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables for every rank.
    pub env: Vec<(OsString, OsString)>,
    /// After a rank fails, the others are told at once (their calls return
    /// [`Error::Aborted`]); any still running after this grace period are killed.
    pub grace: Duration,
}

impl Launch {
    /// `size` ranks of `program` with no arguments and a 5 s grace period.
    pub fn new(size: usize, program: impl Into<PathBuf>) -> Launch {
        Launch {
            size,
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            grace: Duration::from_secs(5),
        }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Launch {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// How each rank of a finished job ended.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    /// Every rank's exit status, in rank order.
    pub statuses: Vec<ExitStatus>,
    /// The first rank that failed, if one did.
    pub first_failure: Option<usize>,
    /// Ranks killed because they outlived the grace period after a failure.
    pub killed: Vec<usize>,
}

impl JobOutcome {
    /// Whether every rank exited with status 0.
    pub fn success(&self) -> bool {
        self.first_failure.is_none()
    }

    /// An exit code for the launcher: 0 on success, else the first failed rank's code
    /// (1 when it was killed by a signal).
    pub fn exit_code(&self) -> u8 {
        match self.first_failure {
            None => 0,
            Some(rank) => match self.statuses[rank].code() {
                Some(code) if code != 0 => u8::try_from(code & 0xff).unwrap_or(1).max(1),
                _ => 1,
            },
        }
    }
}

/// Starts the job described by `launch`, waits for every rank, and returns how each
/// ended. The ranks share an anonymous shared-memory segment (a memfd, inherited by the
/// ranks and never named in `/dev/shm`), so nothing is left behind however they end.
///
/// When a rank exits with a failure (or is killed), the job is aborted at once: the other
/// ranks' pending and later calls fail with [`Error::Aborted`]; ranks still running
/// after [`Launch::grace`] are killed.
///
/// # Errors
/// When the segment cannot be made or a rank cannot be started (the ranks already
/// started are killed and reaped first).
pub fn launch(launch: &Launch) -> Result<JobOutcome> {
    if launch.size == 0 {
        return Err(Error::invalid(
            "braid run needs at least one rank (-n 1 or more)",
        ));
    }
    let segment = Segment::create(launch.size, true)?;
    segment
        .launcher_pid()
        .store(std::process::id(), std::sync::atomic::Ordering::Release);
    let fd = segment.fd().as_raw_fd();
    let (events_tx, events) = mpsc::channel::<(usize, std::io::Result<ExitStatus>)>();
    let mut pidfds: Vec<Option<OwnedFd>> = Vec::with_capacity(launch.size);
    let mut waiters = Vec::with_capacity(launch.size);
    for rank in 0..launch.size {
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env(ENV_FD, fd.to_string())
            .env(ENV_RANK, rank.to_string())
            .env(ENV_SIZE, launch.size.to_string());
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                segment.abort(rank);
                kill_all(&pidfds);
                drop(events_tx);
                for waiter in waiters {
                    join(waiter);
                }
                return Err(Error::os(
                    format!("starting rank {rank}: {}", launch.program.display()),
                    e,
                ));
            }
        };
        segment
            .pid(rank)
            .store(child.id(), std::sync::atomic::Ordering::Release);
        let pidfd = rustix::process::Pid::from_raw(child.id() as i32).and_then(|pid| {
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
        });
        pidfds.push(pidfd);
        let tx = events_tx.clone();
        waiters.push(std::thread::spawn(move || {
            let status = child.wait();
            if let Err(e) = tx.send((rank, status)) {
                tracing::warn!(rank, error = %e, "the launcher stopped listening");
            }
        }));
    }
    drop(events_tx);

    let mut statuses: Vec<Option<ExitStatus>> = vec![None; launch.size];
    let mut first_failure = None;
    let mut kill_at: Option<Instant> = None;
    let mut killed = Vec::new();
    let mut wait_error = None;
    while statuses.iter().any(Option::is_none) {
        let event = match kill_at {
            Some(at) => match events.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(event) => Some(event),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match events.recv() {
                Ok(event) => Some(event),
                Err(_) => break,
            },
        };
        let Some((rank, status)) = event else {
            for (rank, status) in statuses.iter().enumerate() {
                if status.is_none() {
                    if let Some(pidfd) = &pidfds[rank]
                        && let Err(e) =
                            rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL)
                    {
                        tracing::warn!(rank, error = %e, "could not kill a rank");
                    }
                    killed.push(rank);
                }
            }
            kill_at = Some(Instant::now() + Duration::from_secs(3600));
            continue;
        };
        pidfds[rank] = None;
        match status {
            Ok(status) => {
                statuses[rank] = Some(status);
                if status.success() {
                    if segment.state(rank) != RankState::Failed {
                        segment.set_state(rank, RankState::Finished);
                    }
                } else {
                    tracing::debug!(rank, %status, "rank failed; aborting the job");
                    segment.abort(rank);
                    first_failure.get_or_insert(rank);
                    kill_at.get_or_insert(Instant::now() + launch.grace);
                }
            }
            Err(e) => {
                segment.abort(rank);
                wait_error.get_or_insert(Error::os(format!("waiting for rank {rank}"), e));
                statuses[rank] = Some(std::os::unix::process::ExitStatusExt::from_raw(1 << 8));
                first_failure.get_or_insert(rank);
                kill_at.get_or_insert(Instant::now() + launch.grace);
            }
        }
    }
    for waiter in waiters {
        join(waiter);
    }
    if let Some(error) = wait_error {
        return Err(error);
    }
    let statuses = statuses
        .into_iter()
        .map(|s| s.unwrap_or_else(|| std::os::unix::process::ExitStatusExt::from_raw(1 << 8)))
        .collect();
    // The rank that failed first by the segment's account (a rank that panicked marks it
    // before it exits); the others may have exited, with the error it caused, sooner.
    let first_failure = first_failure.map(|reaped| segment.aborted().unwrap_or(reaped));
    Ok(JobOutcome {
        statuses,
        first_failure,
        killed,
    })
}

fn kill_all(pidfds: &[Option<OwnedFd>]) {
    for pidfd in pidfds.iter().flatten() {
        if let Err(e) = rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL) {
            tracing::warn!(error = %e, "could not kill a rank");
        }
    }
}

fn join(waiter: std::thread::JoinHandle<()>) {
    if waiter.join().is_err() {
        tracing::warn!("a rank's waiting thread panicked");
    }
}
