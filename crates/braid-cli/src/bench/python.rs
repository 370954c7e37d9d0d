//! Running the Python side of a case: finding the interpreter and the scripts, calling a
//! script and reading its one-line JSON answer (the protocol of `bench/python/README.md`).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The interpreter the run uses, or why there is none.
#[derive(Debug, Clone)]
pub(crate) enum Interpreter {
    /// It started and told its version.
    Found {
        /// What was run.
        program: PathBuf,
        /// `sys.version`'s first word, e.g. `3.11.7`.
        version: String,
    },
    /// It could not be run; the text says why ("python: not found (/x/python)").
    Missing(String),
}

impl Interpreter {
    /// Finds the interpreter: `explicit` (`--python`), else `$BRAID_PYTHON`, else the
    /// workspace's `target/venv/bin/python` if it exists, else `python3` on `PATH`; then
    /// asks it for its version.
    pub(crate) fn locate(explicit: Option<&Path>) -> Interpreter {
        let program = match explicit {
            Some(path) => path.to_path_buf(),
            None => match std::env::var_os("BRAID_PYTHON") {
                Some(path) if !path.is_empty() => PathBuf::from(path),
                _ => {
                    let venv = workspace_dir().join("target/venv/bin/python");
                    if venv.exists() {
                        venv
                    } else {
                        PathBuf::from("python3")
                    }
                }
            },
        };
        let probe = Command::new(&program)
            .args(["-c", "import sys; print(sys.version.split()[0])"])
            .output();
        match probe {
            Ok(out) if out.status.success() => Interpreter::Found {
                version: String::from_utf8_lossy(&out.stdout).trim().to_string(),
                program,
            },
            Ok(out) => Interpreter::Missing(format!(
                "python: {} failed ({}): {}",
                program.display(),
                out.status,
                last_line(&out.stderr)
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Interpreter::Missing(format!("python: not found ({})", program.display()))
            }
            Err(e) => {
                Interpreter::Missing(format!("python: cannot start {}: {e}", program.display()))
            }
        }
    }

    /// One line for the table's header.
    pub(crate) fn describe(&self) -> String {
        match self {
            Interpreter::Found { program, version } => {
                format!("python {version} ({})", program.display())
            }
            Interpreter::Missing(why) => why.clone(),
        }
    }
}

/// The workspace root, known at build time.
fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The folder of the Python scripts: `$BRAID_BENCH_DIR`, else the workspace's
/// `bench/python` if it exists, else `bench/python` under the current directory.
pub(crate) fn scripts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BRAID_BENCH_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let built = workspace_dir().join("bench/python");
    if built.is_dir() {
        built
    } else {
        PathBuf::from("bench/python")
    }
}

/// What one script call asks for.
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    /// The script's file name under the scripts folder (`threads.py`).
    pub script: &'a str,
    /// The case to run.
    pub case: &'a str,
    /// How many measurements to take (the script reports their median).
    pub repeats: usize,
    /// The size of the work, identical to braid's.
    pub iterations: u64,
    /// `--quick` was given.
    pub quick: bool,
    /// For scaling cases: measure p = 1..=workers.
    pub workers: Option<usize>,
}

/// A script's answer, as printed on the last line of its stdout.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Answer {
    /// The unit of `value` / `variants`.
    #[serde(default)]
    pub unit: Option<String>,
    /// The median measurement of a plain case.
    #[serde(default)]
    pub value: Option<f64>,
    /// For scaling cases: variant name (`threads`, `processes`) → p (as a string) → median
    /// time.
    #[serde(default)]
    pub variants: Option<BTreeMap<String, BTreeMap<String, f64>>>,
    /// A number the work computed (e.g. a prime count), compared with the right answer.
    #[serde(default)]
    pub check: Option<u64>,
    /// The Python package the case needs and that is not installed.
    #[serde(default)]
    pub missing: Option<String>,
    /// Anything the reader should know (a variant that could not run, ...).
    #[serde(default)]
    pub note: Option<String>,
}

/// Why a script gave no answer; the text goes into the case's note.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NoAnswer(pub String);

/// Runs one script call and parses its answer. `Err` explains in one line why there is
/// no Python number (the interpreter or the script is missing, the script failed, its
/// output is not the protocol's JSON, or the package it needs is missing).
pub(crate) fn run(
    interpreter: &Interpreter,
    dir: &Path,
    request: &Request<'_>,
) -> Result<Answer, NoAnswer> {
    let program = match interpreter {
        Interpreter::Found { program, .. } => program,
        Interpreter::Missing(why) => return Err(NoAnswer(why.clone())),
    };
    let script = dir.join(request.script);
    if !script.is_file() {
        return Err(NoAnswer(format!(
            "python: script {} not found (set BRAID_BENCH_DIR)",
            script.display()
        )));
    }
    let mut command = Command::new(program);
    command
        .arg(&script)
        .arg(request.case)
        .arg("--repeats")
        .arg(request.repeats.to_string())
        .arg("--iterations")
        .arg(request.iterations.to_string());
    if request.quick {
        command.arg("--quick");
    }
    if let Some(workers) = request.workers {
        command.arg("--workers").arg(workers.to_string());
    }
    let output = output_within(&mut command, SCRIPT_TIMEOUT)
        .map_err(|e| NoAnswer(format!("python: cannot run {}: {e}", program.display())))?
        .ok_or_else(|| {
            NoAnswer(format!(
                "python: {} {} gave no answer within {:?} and was killed",
                request.script, request.case, SCRIPT_TIMEOUT
            ))
        })?;
    if !output.status.success() {
        return Err(NoAnswer(format!(
            "python: {} {} failed ({}): {}",
            request.script,
            request.case,
            output.status,
            last_line(&output.stderr)
        )));
    }
    parse(&String::from_utf8_lossy(&output.stdout)).map_err(|e| NoAnswer(e.to_string()))
}

/// How long one script call may take before it is killed, so a hung script cannot hang
/// the bench.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `command` to completion and collects its output, or kills it after `timeout`
/// (`Ok(None)`).
fn output_within(command: &mut Command, timeout: Duration) -> io::Result<Option<Output>> {
    fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            // A read error ends the capture; what was read so far is kept.
            if let Err(e) = pipe.read_to_end(&mut bytes) {
                tracing::warn!(error = %e, "reading a bench script's output failed");
            }
            bytes
        })
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        // A bench script runs for seconds; checking every 10 ms costs nothing measurable.
        std::thread::sleep(Duration::from_millis(10));
    };
    let collect = |reader: Option<std::thread::JoinHandle<Vec<u8>>>| {
        reader
            .map(|r| r.join().unwrap_or_default())
            .unwrap_or_default()
    };
    Ok(Some(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    }))
}

/// The error of a script output that does not follow the protocol.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtocolError {
    /// Nothing was printed.
    #[error("python: the script printed nothing")]
    Empty,
    /// The last line is not the expected JSON object.
    #[error("python: cannot read the script's answer `{line}`: {source}")]
    Json {
        /// The line read.
        line: String,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// The package the case needs is not installed.
    #[error("python: package {0} missing")]
    Missing(String),
}

/// Parses a script's stdout: its last non-empty line is the answer.
pub(crate) fn parse(stdout: &str) -> Result<Answer, ProtocolError> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or(ProtocolError::Empty)?;
    let answer: Answer = serde_json::from_str(line).map_err(|source| ProtocolError::Json {
        line: line.to_string(),
        source,
    })?;
    match answer.missing {
        Some(package) => Err(ProtocolError::Missing(package)),
        None => Ok(answer),
    }
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(no output)")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_value() {
        let a = parse("warming up\n{\"unit\": \"us\", \"value\": 54.1}\n\n").unwrap();
        assert_eq!(a.unit.as_deref(), Some("us"));
        assert_eq!(a.value, Some(54.1));
        assert_eq!(a.variants, None);
    }

    #[test]
    fn parses_scaling_variants_and_check() {
        let a = parse(
            r#"{"unit": "s", "variants": {"threads": {"1": 0.5, "2": 0.51}}, "check": 9592}"#,
        )
        .unwrap();
        let threads = &a.variants.unwrap()["threads"];
        assert_eq!(threads["1"], 0.5);
        assert_eq!(threads["2"], 0.51);
        assert_eq!(a.check, Some(9592));
    }

    #[test]
    fn a_missing_package_is_named() {
        let e = parse(r#"{"missing": "numpy"}"#).unwrap_err();
        assert_eq!(e.to_string(), "python: package numpy missing");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(parse(""), Err(ProtocolError::Empty)));
        assert!(matches!(
            parse("Traceback (most recent call last):"),
            Err(ProtocolError::Json { .. })
        ));
        assert!(matches!(
            parse(r#"{"valeu": 1}"#),
            Err(ProtocolError::Json { .. })
        ));
    }

    #[test]
    fn a_missing_interpreter_says_not_found() {
        let python = Interpreter::locate(Some(Path::new("/nonexistent/python")));
        assert_eq!(python.describe(), "python: not found (/nonexistent/python)");
        let request = Request {
            script: "threads.py",
            case: "lock_uncontended",
            repeats: 1,
            iterations: 1,
            quick: true,
            workers: None,
        };
        let e = run(&python, Path::new("."), &request).unwrap_err();
        assert_eq!(e.0, "python: not found (/nonexistent/python)");
    }
}
