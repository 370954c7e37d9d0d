//! What the `braid` binary's integration tests share: running `braid` with a watchdog,
//! `braid` processes in the background, unique broker URLs.

// Each test binary compiles its own copy and uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long anything awaited here may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// `LABEL-PID-NANOS`: a name no other test run uses.
pub fn unique(label: &str) -> String {
    format!(
        "{label}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The Redis at 127.0.0.1:6379, database `db`, under a key prefix of its own.
pub fn broker(db: u8, label: &str) -> String {
    format!(
        "redis://127.0.0.1:6379/{db}?global_keyprefix={}-",
        unique(label)
    )
}

/// `braid ARGS`, its stdin closed.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_braid"));
    command.args(args).stdin(Stdio::null());
    command
}

/// Runs `command` to its end, reading stdout and stderr at once so neither pipe fills;
/// kills it and fails after `limit`.
pub fn output(mut command: Command, limit: Duration) -> Result<Output, String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let out = std::io::read_to_string(stdout).unwrap_or_default();
        let err = err.join().unwrap_or_default();
        let output = child.wait().map(|status| Output {
            status,
            stdout: out.into_bytes(),
            stderr: err.into_bytes(),
        });
        if tx.send(output).is_err() {
            eprintln!("the test stopped waiting for braid");
        }
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.map_err(|e| format!("cannot wait for {command:?}: {e}")),
        Err(_) => {
            if let Err(e) = Command::new("kill").args(["-9", &pid.to_string()]).status() {
                eprintln!("could not kill braid: {e}");
            }
            Err(format!("{command:?} did not finish within {limit:?}"))
        }
    }
}

/// Runs `braid ARGS` to its end (killed after a minute) and returns what it did.
pub fn braid(args: &[&str]) -> Output {
    output(command(args), WAIT).unwrap_or_else(|e| panic!("{e}"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `braid` process running in the background, its stdout lines on a channel; killed
/// when dropped.
pub struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl Background {
    /// `braid ARGS`, its stderr the test's.
    pub fn start(args: &[&str]) -> Background {
        let mut command = command(args);
        command.stderr(Stdio::inherit());
        Background::spawn(command, args.first().copied().unwrap_or("braid"))
    }

    /// Starts `command` (its stdout piped here) and reads its stdout from then on, so it
    /// never blocks on a full pipe; `name` says which process in failures.
    pub fn spawn(mut command: Command, name: &str) -> Background {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let out = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Background {
            child,
            lines,
            name: name.to_string(),
        }
    }

    /// The next stdout line; fails the test after a minute or at the end of the output.
    pub fn line(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("braid {} printed nothing more: {e}", self.name))
    }

    /// Reads lines until one satisfies `wanted`; returns it.
    pub fn line_where(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!("braid {} never printed {what}: {e}", self.name),
            }
        }
    }

    /// Sends SIGTERM and returns the exit status and the rest of the output; fails the
    /// test (and kills the process) when it has not stopped within a minute.
    pub fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed: {status}");
        let mut rest = Vec::new();
        // The output ends when the process does.
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => rest.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("braid {} did not stop after SIGTERM", self.name)
                }
            }
        }
        let exit = self.child.wait().unwrap();
        (exit, rest)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Err(e) = self.child.kill() {
                eprintln!("could not kill braid {}: {e}", self.name);
            }
            if let Err(e) = self.child.wait() {
                eprintln!("could not reap braid {}: {e}", self.name);
            }
        }
    }
}
