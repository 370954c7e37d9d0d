//! `braid bench`: braid against the Python original, measured side by side in one run.
//!
//! A suite is a file in this folder that defines a [`Suite`] (its cases and the Python
//! script that mirrors them) plus one line in [`SUITE_TABLE`] and one in [`SUITES`]. For
//! every case the framework measures braid (repeated, median), then runs the Python
//! script for the same case with the same amount of work (the script repeats and reports
//! its median), so the two numbers come from the same machine in the same minute. The
//! script protocol is described in `bench/python/README.md`.

mod r#async;
mod csp;
mod dmap;
mod gpu;
mod mapreduce;
mod mpi;
mod plot;
mod proc;
mod python;
mod report;
mod rpc;
mod stats;
mod taskq;
mod threads;

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

pub use report::{CaseResult, Scaling, Series};

/// The suites `braid bench` knows; `all` runs every one of the others.
pub const SUITES: &[&str] = &[
    "threads",
    "proc",
    "async",
    "gpu",
    "taskq",
    "csp",
    "dmap",
    "mapreduce",
    "rpc",
    "mpi",
    "all",
];

/// Every suite present, in the order `all` runs them. Keep in step with [`SUITES`].
const SUITE_TABLE: &[&Suite] = &[
    &threads::SUITE,
    &proc::SUITE,
    &r#async::SUITE,
    &gpu::SUITE,
    &taskq::SUITE,
    &csp::SUITE,
    &dmap::SUITE,
    &mapreduce::SUITE,
    &rpc::SUITE,
    &mpi::SUITE,
];

/// What `braid bench` was asked to do.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct BenchOptions {
    /// The suite to run: threads, or all.
    pub suite: String,
    /// Fewer repeats and less work per case: a rough answer in a fraction of the time.
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as a JSON list of cases to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw speedup against workers for the scaling cases as an SVG to FILE.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// The Python interpreter to compare with (default: $BRAID_PYTHON, else the
    /// workspace's target/venv/bin/python, else python3 on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Run only the cases named (repeat the flag or separate names with commas).
    #[arg(long = "case", value_name = "NAME", value_delimiter = ',')]
    pub cases: Vec<String>,
    /// Multiplies the work of every case (tests use 0.01 to run in moments).
    #[arg(long, hide = true, default_value_t = 1.0)]
    pub iterations_scale: f64,
}

impl Default for BenchOptions {
    /// A full run of every suite that prints the table and writes nothing.
    fn default() -> Self {
        BenchOptions {
            suite: "all".into(),
            quick: false,
            json: None,
            plot: None,
            python: None,
            cases: Vec::new(),
            iterations_scale: 1.0,
        }
    }
}

/// Why a benchmark run failed. A missing Python is not a failure: its numbers are null.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// No suite of that name.
    #[error("unknown suite `{suite}`; valid suites: {}", valid.join(", "))]
    UnknownSuite {
        /// The name given.
        suite: String,
        /// The names accepted.
        valid: Vec<String>,
    },
    /// `--case` named a case the selected suites do not have.
    #[error("unknown case `{case}`; cases of the selected suites: {}", valid.join(", "))]
    UnknownCase {
        /// The name given.
        case: String,
        /// The names accepted.
        valid: Vec<String>,
    },
    /// An option's value cannot be used.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The braid side of a case failed or computed a wrong answer.
    #[error("{suite}/{case}: {source}")]
    Case {
        /// The suite.
        suite: &'static str,
        /// The case.
        case: &'static str,
        /// What went wrong.
        #[source]
        source: Box<CaseError>,
    },
    /// The JSON or SVG file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The results could not be encoded as JSON.
    #[error("cannot write JSON to {}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// The plot could not be drawn.
    #[error("cannot draw {}: {message}", path.display())]
    Plot {
        /// The file.
        path: PathBuf,
        /// The drawing library's error.
        message: String,
    },
    /// The progress bar's template is malformed.
    #[error("progress bar: {0}")]
    Progress(#[from] indicatif::style::TemplateError),
}

/// Why the braid side of one case failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaseError {
    /// The work computed a wrong answer: the timing would be meaningless.
    #[error("wrong result: {0}")]
    Wrong(String),
    /// A braid-sync primitive failed.
    #[error(transparent)]
    Sync(#[from] braid::sync::Error),
    /// A task on a pool failed.
    #[error(transparent)]
    Task(#[from] braid::Error),
    /// A braid-gpu operation failed.
    #[error(transparent)]
    Gpu(#[from] braid::gpu::Error),
    /// The case cannot run on this machine (no GPU, say): it is left out of the results,
    /// the reason is printed under the table, and the run goes on.
    #[error("skipped: {0}")]
    Unavailable(String),
    /// A braid-async primitive failed.
    #[error(transparent)]
    Async(#[from] braid::asyncio::Error),
    /// A tokio runtime could not be started.
    #[error("cannot start a tokio runtime: {0}")]
    Runtime(std::io::Error),
    /// A braid-csp process, channel or alternation failed.
    #[error(transparent)]
    Csp(#[from] braid::csp::Error),
    /// A braid-proc process, pool, pipe, queue or manager failed.
    #[error(transparent)]
    Proc(#[from] braid::proc::Error),
    /// A braid-mpi job or call failed.
    #[error(transparent)]
    Mpi(#[from] braid::mpi::Error),
    /// A braid-mapreduce job failed.
    #[error(transparent)]
    MapReduce(#[from] braid::mapreduce::Error),
}

/// A family of cases and the Python script that mirrors them.
#[derive(Debug)]
pub(crate) struct Suite {
    /// The name on the command line.
    pub name: &'static str,
    /// The script under `bench/python/`.
    pub script: &'static str,
    /// The cases, in the order they run.
    pub cases: &'static [Case],
}

/// One comparison between braid and Python.
#[derive(Debug)]
pub(crate) struct Case {
    /// The name in the table and in `--case`.
    pub name: &'static str,
    /// The unit of the measurement (see [`stats::unit_kind`]).
    pub unit: &'static str,
    /// How much work one measurement does (iterations, a problem size), the same on both
    /// sides.
    pub size: Size,
    /// The right value of the number the work computes, from the size, when the Python
    /// script reports one (`check`) that must be verified.
    pub check: Option<fn(u64) -> u64>,
    /// How braid is measured.
    pub measure: Measure,
}

/// The work of a case for a full and a quick run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Size {
    /// A full run.
    pub full: u64,
    /// With `--quick`.
    pub quick: u64,
}

/// How the braid side of a case is measured. Each function verifies what it computed and
/// returns [`CaseError::Wrong`] rather than a fast wrong number.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Measure {
    /// One measurement of `size` work, in the case's unit; the framework repeats it.
    Once(fn(u64) -> Result<f64, CaseError>),
    /// One call measures `size` work `repeats` times itself, its setup (device buffers,
    /// compiled kernels) done once, and returns the median with a note: what it measured
    /// beside in the same run, such as a baseline and braid's ratio to it.
    Detailed(fn(u64, usize) -> Result<Detailed, CaseError>),
    /// The same job on p workers: `run(size, p, repeats)` gives `repeats` times (the
    /// setup, such as starting a pool of p threads, is not timed). The framework runs it
    /// for p = 1..=P; the case's headline numbers are those at P, and Python's is the
    /// script's variant named `headline`.
    Scaling {
        /// Times the job on p workers.
        run: fn(u64, usize, usize) -> Result<Vec<f64>, CaseError>,
        /// The Python variant whose time at P is the case's `python`.
        headline: &'static str,
    },
}

/// The result of a [`Measure::Detailed`] case.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Detailed {
    /// The median, in the case's unit.
    pub value: f64,
    /// What else the case measured, for the case's note.
    pub note: Option<String>,
}

/// What every case of a run shares.
struct Context {
    quick: bool,
    repeats: usize,
    scale: f64,
    max_workers: usize,
    interpreter: python::Interpreter,
    scripts: PathBuf,
}

impl Context {
    fn size(&self, size: Size) -> u64 {
        let base = if self.quick { size.quick } else { size.full };
        ((base as f64 * self.scale).round() as u64).max(1)
    }
}

/// Runs the suite (or `all`) the options name, prints the table to stdout, writes the
/// JSON and the SVG when asked, and returns the results.
///
/// # Errors
/// An unknown suite or case, an invalid option, a braid case that fails or computes a
/// wrong answer, or a file that cannot be written. A missing Python interpreter or
/// package is not an error: those cases have `python: null` and a note.
pub fn run(options: &BenchOptions) -> Result<Vec<CaseResult>, BenchError> {
    let selected = select(options)?;
    if !(options.iterations_scale.is_finite() && options.iterations_scale > 0.0) {
        return Err(BenchError::InvalidOption(format!(
            "--iterations-scale must be a positive number, not {}",
            options.iterations_scale
        )));
    }
    if options.plot.is_some()
        && !selected
            .iter()
            .any(|(_, case)| matches!(case.measure, Measure::Scaling { .. }))
    {
        return Err(BenchError::InvalidOption(
            "--plot needs a scaling case (e.g. threads/cpu_scaling) among the cases run".into(),
        ));
    }
    let context = Context {
        quick: options.quick,
        repeats: if options.quick { 3 } else { 5 },
        scale: options.iterations_scale,
        max_workers: std::thread::available_parallelism()
            .map_or(1, usize::from)
            .max(2),
        interpreter: python::Interpreter::locate(options.python.as_deref()),
        scripts: python::scripts_dir(),
    };

    let progress = ProgressBar::new(selected.len() as u64);
    progress.set_style(ProgressStyle::with_template(
        "{spinner} [{bar:30}] {pos}/{len} {wide_msg}",
    )?);
    let mut results = Vec::with_capacity(selected.len());
    let mut skipped = Vec::new();
    for (suite, case) in &selected {
        progress.set_message(format!("{}/{}", suite.name, case.name));
        let result = run_case(&context, suite, case);
        progress.inc(1);
        match result {
            Ok(result) => results.push(result),
            Err(BenchError::Case {
                suite,
                case,
                source,
            }) if matches!(*source, CaseError::Unavailable(_)) => {
                skipped.push(format!("{suite}/{case}: {source}"));
            }
            Err(e) => {
                progress.finish_and_clear();
                return Err(e);
            }
        }
    }
    progress.finish_and_clear();

    println!(
        "braid bench {}{}: median of {} repeats, P = {} workers, {}",
        options.suite,
        if options.quick { " --quick" } else { "" },
        context.repeats,
        context.max_workers,
        context.interpreter.describe()
    );
    println!();
    print!("{}", report::table(&results));
    for line in &skipped {
        println!("{line}");
    }

    if let Some(path) = &options.json {
        write_json(path, &results)?;
    }
    if let Some(path) = &options.plot {
        plot::draw(path, &results).map_err(|message| BenchError::Plot {
            path: path.clone(),
            message,
        })?;
    }
    Ok(results)
}

/// The suites and cases the options select, checked before anything runs.
fn select(options: &BenchOptions) -> Result<Vec<(&'static Suite, &'static Case)>, BenchError> {
    let suites: Vec<&'static Suite> = if options.suite == "all" {
        SUITE_TABLE.to_vec()
    } else {
        let suite = SUITE_TABLE
            .iter()
            .find(|s| s.name == options.suite)
            .ok_or_else(|| BenchError::UnknownSuite {
                suite: options.suite.clone(),
                valid: SUITES.iter().map(|s| s.to_string()).collect(),
            })?;
        vec![*suite]
    };
    let all: Vec<(&'static Suite, &'static Case)> = suites
        .iter()
        .flat_map(|suite| suite.cases.iter().map(move |case| (*suite, case)))
        .collect();
    let wanted: Vec<&str> = options
        .cases
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .collect();
    if wanted.is_empty() {
        return Ok(all);
    }
    for name in &wanted {
        if !all.iter().any(|(_, case)| case.name == *name) {
            return Err(BenchError::UnknownCase {
                case: name.to_string(),
                valid: all.iter().map(|(_, c)| c.name.to_string()).collect(),
            });
        }
    }
    Ok(all
        .into_iter()
        .filter(|(_, case)| wanted.contains(&case.name))
        .collect())
}

/// Measures braid, then Python, for one case.
fn run_case(
    context: &Context,
    suite: &'static Suite,
    case: &'static Case,
) -> Result<CaseResult, BenchError> {
    let fail = |source| BenchError::Case {
        suite: suite.name,
        case: case.name,
        source: Box::new(source),
    };
    let size = context.size(case.size);
    let mut request = python::Request {
        script: suite.script,
        case: case.name,
        repeats: context.repeats,
        iterations: size,
        quick: context.quick,
        workers: None,
    };
    let mut result = CaseResult {
        suite: suite.name.to_string(),
        name: case.name.to_string(),
        unit: case.unit.to_string(),
        braid: 0.0,
        python: None,
        ratio: None,
        note: None,
        scaling: None,
    };
    let mut notes = Vec::new();
    match case.measure {
        Measure::Once(measure) => {
            let values = (0..context.repeats)
                .map(|_| measure(size))
                .collect::<Result<Vec<f64>, CaseError>>()
                .map_err(fail)?;
            result.braid = stats::median(&values).unwrap_or(f64::NAN);
            match python::run(&context.interpreter, &context.scripts, &request) {
                Ok(answer) => {
                    if let Some(python) = python_value(case, size, &answer, &mut notes) {
                        result.python = Some(python);
                    }
                }
                Err(why) => notes.push(why.0),
            }
        }
        Measure::Detailed(measure) => {
            let detailed = measure(size, context.repeats).map_err(fail)?;
            result.braid = detailed.value;
            notes.extend(detailed.note);
            match python::run(&context.interpreter, &context.scripts, &request) {
                Ok(answer) => {
                    if let Some(python) = python_value(case, size, &answer, &mut notes) {
                        result.python = Some(python);
                    }
                }
                Err(why) => notes.push(why.0),
            }
        }
        Measure::Scaling { run, headline } => {
            let workers: Vec<usize> = (1..=context.max_workers).collect();
            let mut times = Vec::with_capacity(workers.len());
            for &p in &workers {
                let values = run(size, p, context.repeats).map_err(fail)?;
                times.push(stats::median(&values).unwrap_or(f64::NAN));
            }
            result.braid = times.last().copied().unwrap_or(f64::NAN);
            let mut series = vec![Series::from_times("braid", &workers, times)];
            request.workers = Some(context.max_workers);
            match python::run(&context.interpreter, &context.scripts, &request) {
                Ok(answer) => {
                    let variants = python_variants(case, size, &workers, &answer, &mut notes);
                    let at_max = |times: &[f64]| times.last().copied();
                    for (name, times) in &variants {
                        if name == headline {
                            result.python = at_max(times);
                        } else if let Some(t) = at_max(times) {
                            let ratio = stats::ratio(case.unit, result.braid, t)
                                .map_or_else(String::new, |r| {
                                    format!(", braid {}x better", report::number(r))
                                });
                            notes.push(format!(
                                "python {name} at p = {}: {} {}{ratio}",
                                context.max_workers,
                                report::number(t),
                                case.unit
                            ));
                        }
                    }
                    series.extend(variants.into_iter().map(|(name, times)| {
                        Series::from_times(&format!("python {name}"), &workers, times)
                    }));
                }
                Err(why) => notes.push(why.0),
            }
            result.scaling = Some(Scaling { workers, series });
        }
    }
    result.ratio = result
        .python
        .and_then(|python| stats::ratio(case.unit, result.braid, python));
    if !notes.is_empty() {
        result.note = Some(notes.join("; "));
    }
    Ok(result)
}

/// Checks an answer's `check` against the right value; false (with a note) when it is
/// wrong or missing.
fn python_checked(
    case: &Case,
    size: u64,
    answer: &python::Answer,
    notes: &mut Vec<String>,
) -> bool {
    let Some(expected) = case.check.map(|check| check(size)) else {
        return true;
    };
    match answer.check {
        Some(got) if got == expected => true,
        Some(got) => {
            notes.push(format!(
                "python computed {got}, the right answer is {expected}: its time is left out"
            ));
            false
        }
        None => {
            notes.push("python did not report the value it computed: its time is left out".into());
            false
        }
    }
}

/// Python's number for a plain case in the case's unit, or `None` with a note.
fn python_value(
    case: &Case,
    size: u64,
    answer: &python::Answer,
    notes: &mut Vec<String>,
) -> Option<f64> {
    if let Some(note) = &answer.note {
        notes.push(format!("python: {note}"));
    }
    if !python_checked(case, size, answer, notes) {
        return None;
    }
    let (Some(value), Some(unit)) = (answer.value, answer.unit.as_deref()) else {
        notes.push("python: the answer has no value and unit".into());
        return None;
    };
    let converted = stats::convert(value, unit, case.unit);
    if converted.is_none() {
        notes.push(format!(
            "python answered in {unit}, which does not convert to {}",
            case.unit
        ));
    }
    converted
}

/// Python's times on 1..=P workers for each variant of a scaling case, in the case's
/// unit, the headline variant first; variants with a gap or a foreign unit are left out
/// with a note.
fn python_variants(
    case: &Case,
    size: u64,
    workers: &[usize],
    answer: &python::Answer,
    notes: &mut Vec<String>,
) -> Vec<(String, Vec<f64>)> {
    if let Some(note) = &answer.note {
        notes.push(format!("python: {note}"));
    }
    if !python_checked(case, size, answer, notes) {
        return Vec::new();
    }
    let (Some(variants), Some(unit)) = (&answer.variants, answer.unit.as_deref()) else {
        notes.push("python: the answer has no variants and unit".into());
        return Vec::new();
    };
    let headline = match case.measure {
        Measure::Scaling { headline, .. } => headline,
        Measure::Once(_) | Measure::Detailed(_) => "",
    };
    let mut out = Vec::new();
    for (name, by_p) in variants {
        let times: Option<Vec<f64>> = workers
            .iter()
            .map(|p| {
                by_p.get(&p.to_string())
                    .and_then(|t| stats::convert(*t, unit, case.unit))
            })
            .collect();
        match times {
            Some(times) => out.push((name.clone(), times)),
            None => notes.push(format!(
                "python {name}: no time in {} for every p in 1..={}",
                case.unit,
                workers.len()
            )),
        }
    }
    out.sort_by_key(|(name, _)| name != headline);
    out
}

fn write_json(path: &PathBuf, results: &[CaseResult]) -> Result<(), BenchError> {
    let file = File::create(path).map_err(|source| BenchError::Write {
        path: path.clone(),
        source,
    })?;
    let mut writer = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut writer, results).map_err(|source| BenchError::Json {
        path: path.clone(),
        source,
    })?;
    std::io::Write::write_all(&mut writer, b"\n")
        .and_then(|()| std::io::Write::flush(&mut writer))
        .map_err(|source| BenchError::Write {
            path: path.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_and_table_agree() {
        let names: Vec<&str> = SUITE_TABLE.iter().map(|s| s.name).collect();
        let listed: Vec<&str> = SUITES.iter().copied().filter(|s| *s != "all").collect();
        assert_eq!(names, listed);
        assert_eq!(SUITES.last(), Some(&"all"));
        for suite in SUITE_TABLE {
            let mut cases: Vec<&str> = suite.cases.iter().map(|c| c.name).collect();
            cases.sort_unstable();
            cases.dedup();
            assert_eq!(
                cases.len(),
                suite.cases.len(),
                "duplicate case in {}",
                suite.name
            );
        }
    }

    fn opts(suite: &str) -> BenchOptions {
        BenchOptions {
            suite: suite.into(),
            ..BenchOptions::default()
        }
    }

    #[test]
    fn unknown_suite_lists_the_valid_ones() {
        let e = select(&opts("thread")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "unknown suite `thread`; valid suites: {}",
                SUITES.join(", ")
            )
        );
        assert!(e.to_string().contains("threads, "), "{e}");
    }

    #[test]
    fn cases_are_selected_by_name() {
        let mut options = opts("all");
        options.cases = vec!["lock_uncontended".into(), "event_wakeup".into()];
        let names: Vec<&str> = select(&options)
            .unwrap()
            .iter()
            .map(|(_, c)| c.name)
            .collect();
        assert_eq!(names, ["lock_uncontended", "event_wakeup"]);
        options.cases = vec!["nope".into()];
        let e = select(&options).unwrap_err().to_string();
        assert!(e.starts_with("unknown case `nope`"), "{e}");
        assert!(e.contains("queue_ping_pong"), "{e}");
    }

    #[test]
    fn plot_without_a_scaling_case_is_refused() {
        let mut options = opts("threads");
        options.cases = vec!["lock_uncontended".into()];
        options.plot = Some("x.svg".into());
        assert!(matches!(run(&options), Err(BenchError::InvalidOption(_))));
        let mut options = opts("threads");
        options.iterations_scale = 0.0;
        assert!(matches!(run(&options), Err(BenchError::InvalidOption(_))));
    }

    fn scaling_case() -> Case {
        fn never(_: u64, _: usize, _: usize) -> Result<Vec<f64>, CaseError> {
            Err(CaseError::Wrong("not run in this test".into()))
        }
        Case {
            name: "scaling",
            unit: "s",
            size: Size { full: 10, quick: 1 },
            check: Some(|n| n * 2),
            measure: Measure::Scaling {
                run: never,
                headline: "threads",
            },
        }
    }

    #[test]
    fn python_variants_put_the_headline_first_and_check_the_answer() {
        let case = scaling_case();
        let answer = python::parse(
            r#"{"unit": "ms", "check": 20, "variants": {"processes": {"1": 1000, "2": 500}, "threads": {"1": 1000, "2": 1000}, "broken": {"1": 1000}}}"#,
        )
        .unwrap();
        let mut notes = Vec::new();
        let variants = python_variants(&case, 10, &[1, 2], &answer, &mut notes);
        assert_eq!(
            variants,
            vec![
                ("threads".to_string(), vec![1.0, 1.0]),
                ("processes".to_string(), vec![1.0, 0.5]),
            ]
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("python broken"), "{notes:?}");

        let mut notes = Vec::new();
        assert!(python_variants(&case, 11, &[1, 2], &answer, &mut notes).is_empty());
        assert!(notes[0].contains("the right answer is 22"), "{notes:?}");
    }

    #[test]
    fn python_values_convert_to_the_case_unit() {
        let mut case = scaling_case();
        case.check = None;
        case.unit = "us";
        let mut notes = Vec::new();
        let answer = python::parse(r#"{"unit": "ns", "value": 54000}"#).unwrap();
        assert_eq!(python_value(&case, 1, &answer, &mut notes), Some(54.0));
        let answer = python::parse(r#"{"unit": "ops/s", "value": 54000}"#).unwrap();
        assert_eq!(python_value(&case, 1, &answer, &mut notes), None);
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn sizes_scale_and_never_reach_zero() {
        let context = Context {
            quick: true,
            repeats: 3,
            scale: 0.01,
            max_workers: 2,
            interpreter: python::Interpreter::Missing("none".into()),
            scripts: PathBuf::new(),
        };
        assert_eq!(
            context.size(Size {
                full: 1000,
                quick: 500
            }),
            5
        );
        assert_eq!(
            context.size(Size {
                full: 10,
                quick: 10
            }),
            1
        );
    }
}
