//! [`Job`]: the driver that runs a program's map and reduce tasks on an executor,
//! retries what fails, and commits the output only when every partition is done.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use braid_core::{ExecutorExt, Handle};
use serde::{Deserialize, Serialize};

use crate::input::{self, InputFormat, Split};
use crate::program::{MapReduce, lookup_program};
use crate::task::{self, MapOutput, MapTask, Outcome, ReduceOutput, ReduceTask, TaskSpec};
use crate::{Error, Result};

/// The two phases of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Reading the inputs, mapping, combining, spilling sorted runs.
    Map,
    /// Merging each partition's runs and reducing them into the output files.
    Reduce,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Map => "map",
            Phase::Reduce => "reduce",
        })
    }
}

/// How the reducers write the partition files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OutputFormat {
    /// `key<TAB>value` lines, each side written with `Display`.
    #[default]
    Text,
    /// braid's record files: the postcard encoding of each `(key, value)`, read back
    /// with [`read_binary`](crate::read_binary).
    Binary,
}

/// What happened, for progress displays; given to [`Job::run_with`]'s observer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A phase starts with this many tasks.
    PhaseStarted {
        /// The phase.
        phase: Phase,
        /// Its tasks.
        tasks: usize,
    },
    /// A task finished.
    TaskDone {
        /// The phase.
        phase: Phase,
        /// The task's number (the partition, in the reduce phase).
        task: usize,
        /// Records it read.
        records_in: u64,
        /// Records it wrote.
        records_out: u64,
    },
    /// A task failed and runs again.
    TaskRetried {
        /// The phase.
        phase: Phase,
        /// The task's number.
        task: usize,
        /// The number of the attempt now starting (2 for the first retry).
        attempt: u32,
        /// Why the last attempt failed.
        error: String,
    },
    /// A phase finished.
    PhaseDone {
        /// The phase.
        phase: Phase,
        /// How long it took.
        elapsed: Duration,
    },
}

/// The counters of the map phase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapCounters {
    /// Map tasks (input splits).
    pub tasks: u64,
    /// Attempts run, retries included.
    pub attempts: u64,
    /// Input records read.
    pub records_in: u64,
    /// Input bytes read.
    pub bytes_in: u64,
    /// Pairs the map function emitted.
    pub emitted: u64,
    /// Pairs written to sorted runs, after the combiner.
    pub records_out: u64,
    /// Sorted runs spilled (one per task when everything fits in memory).
    pub spills: u64,
    /// How long the phase took.
    pub elapsed: Duration,
}

/// The counters of the reduce phase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReduceCounters {
    /// Reduce tasks (partitions).
    pub tasks: u64,
    /// Attempts run, retries included.
    pub attempts: u64,
    /// Intermediate pairs read.
    pub records_in: u64,
    /// Output records (one per key).
    pub records_out: u64,
    /// Output bytes written.
    pub bytes_out: u64,
    /// How long the phase took.
    pub elapsed: Duration,
}

/// What a finished job reports; also written, as JSON, into the `_SUCCESS` marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    /// The job's id (its scratch directory's name).
    pub job_id: String,
    /// The program's name.
    pub program: String,
    /// The output directory.
    pub output_dir: PathBuf,
    /// The partition files, in partition order.
    pub files: Vec<PathBuf>,
    /// Map-phase counters.
    pub map: MapCounters,
    /// Reduce-phase counters.
    pub reduce: ReduceCounters,
    /// How long the whole job took.
    pub elapsed: Duration,
}

/// The name of the marker written last into a finished output directory.
pub const SUCCESS_MARKER: &str = "_SUCCESS";
/// The scratch folder inside the output directory.
const TEMPORARY: &str = "_temporary";

/// A MapReduce job, like a Disco `Job`: a program, its inputs and where the output goes.
///
/// ```no_run
/// use braid_mapreduce::{Job, WordCount};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     braid_core::init();
///     let pool = braid_proc::ProcessPool::new(4)?; // or a ThreadPool, or a taskq App
///     let report = Job::new(WordCount)
///         .input("corpus/*.txt")
///         .partitions(8)
///         .memory_budget(256 << 20)
///         .output_dir("counts")
///         .run(&pool)?;
///     println!("{} words in, {} distinct out", report.map.emitted, report.reduce.records_out);
///     Ok(())
/// }
/// ```
///
/// Running: the inputs (files, directories, glob patterns) are cut into map tasks of
/// about two per worker, each at most [`split_size`](Job::split_size) bytes (large
/// files are cut at record boundaries, small files grouped). Each map task keeps
/// its pairs in memory up to its share of the [`memory_budget`](Job::memory_budget)
/// (the budget divided by the executor's parallelism) and spills sorted runs to the
/// scratch folder `OUTPUT/_temporary/JOB` when it has more; one reduce task per
/// partition merges that partition's runs (an external sort) and writes the partition
/// file. A task that fails (an error, a panic, a lost worker, a
/// [`task_timeout`](Job::task_timeout)) runs again, up to
/// [`max_attempts`](Job::max_attempts); every attempt writes its own files, so a late
/// or duplicate attempt never mixes into another's.
///
/// The output appears only when every reducer succeeded: the partition files
/// `part-00000`, ... are moved into the output directory and `_SUCCESS` is written
/// last. A failed job leaves no new files there.
///
/// On several machines the executor is a task-queue app ([`braid_taskq::App`] on
/// Redis) whose workers run the same binary (or `braid worker`), and the inputs and the
/// output directory are on a file system they all share.
///
/// [`braid_taskq::App`]: https://docs.rs/braid-taskq
#[derive(Debug, Clone)]
pub struct Job<P> {
    program: P,
    inputs: Vec<String>,
    input_format: InputFormat,
    partitions: Option<u32>,
    output_dir: Option<PathBuf>,
    output_format: OutputFormat,
    memory_budget: u64,
    split_size: u64,
    max_attempts: u32,
    overwrite: bool,
    task_timeout: Option<Duration>,
}

impl<P: MapReduce> Job<P> {
    /// A job running `program` (its value carries the program's parameters).
    pub fn new(program: P) -> Self {
        Job {
            program,
            inputs: Vec::new(),
            input_format: InputFormat::Lines,
            partitions: None,
            output_dir: None,
            output_format: OutputFormat::Text,
            memory_budget: 256 << 20,
            split_size: 64 << 20,
            max_attempts: 4,
            overwrite: false,
            task_timeout: None,
        }
    }

    /// Adds an input: a file, a directory (its files, not recursively, except names
    /// starting with `.` or `_`), or a glob pattern (`corpus/**/*.txt`).
    pub fn input(mut self, input: impl AsRef<Path>) -> Self {
        self.inputs
            .push(input.as_ref().to_string_lossy().into_owned());
        self
    }

    /// Adds several inputs; see [`input`](Job::input).
    pub fn inputs<I: IntoIterator<Item = S>, S: AsRef<Path>>(mut self, inputs: I) -> Self {
        for input in inputs {
            self = self.input(input);
        }
        self
    }

    /// How input files are cut into records (default: lines).
    pub fn input_format(mut self, format: InputFormat) -> Self {
        self.input_format = format;
        self
    }

    /// The number of partitions: reduce tasks and output files (default: the
    /// executor's parallelism).
    pub fn partitions(mut self, n: u32) -> Self {
        self.partitions = Some(n);
        self
    }

    /// The directory the partition files and `_SUCCESS` go to (required).
    pub fn output_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.output_dir = Some(dir.into());
        self
    }

    /// How the partition files are written (default: `key<TAB>value` text).
    pub fn output_format(mut self, format: OutputFormat) -> Self {
        self.output_format = format;
        self
    }

    /// The memory, in bytes, the job's tasks may hold at once for intermediate data
    /// (default 256 MiB); each running task gets an equal share, and spills to disk
    /// beyond it. Read and write buffers (about 2 MiB per task) come on top.
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// The most input one map task reads (default 64 MiB); tasks are smaller when
    /// that gives each worker about two.
    pub fn split_size(mut self, bytes: u64) -> Self {
        self.split_size = bytes;
        self
    }

    /// How many times a task may run before the job fails (default 4).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Whether an output directory holding an earlier output may be overwritten
    /// (default: no, that is an error).
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// An attempt still unfinished after this long counts as failed and runs again
    /// (default: no limit; the executor reports lost workers).
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = Some(timeout);
        self
    }

    /// Runs the job on `executor` and waits for it.
    ///
    /// # Errors
    /// A bad setting or input, an input file that is not UTF-8 ([`Error::NotUtf8`]),
    /// a task that kept failing ([`Error::MapFailed`], [`Error::ReduceFailed`]), an
    /// executor that refuses work, or an I/O error on the output directory.
    pub fn run<E: braid_core::Executor + ?Sized>(&self, executor: &E) -> Result<JobReport> {
        self.run_with(executor, |_| {})
    }

    /// Runs the job, telling `observer` about each phase and task as it goes (for
    /// progress bars).
    ///
    /// # Errors
    /// As for [`run`](Job::run).
    pub fn run_with<E: braid_core::Executor + ?Sized>(
        &self,
        executor: &E,
        mut observer: impl FnMut(&Event),
    ) -> Result<JobReport> {
        let started = Instant::now();
        let output_dir = self.output_dir.clone().ok_or(Error::NoOutputDir)?;
        let parallelism = executor.parallelism().max(1);
        let partitions = self.partitions.unwrap_or(parallelism as u32);
        self.check(partitions)?;
        lookup_program(P::NAME)?;
        let params = postcard::to_allocvec(&self.program).map_err(|e| Error::Params {
            program: P::NAME.to_string(),
            message: e.to_string(),
        })?;
        let files = input::expand(&self.inputs)?;
        let total: u64 = files
            .iter()
            .map(|f| {
                std::fs::metadata(f)
                    .map(|m| m.len())
                    .map_err(|e| Error::io(f, e))
            })
            .sum::<Result<u64>>()?;
        // About two tasks per worker (slack for uneven tasks), none above split_size.
        let task_size = total
            .div_ceil(2 * parallelism as u64)
            .max(64 << 10)
            .min(self.split_size);
        let splits = input::splits(&files, task_size)?;
        let tasks = input::group(splits, total.div_ceil(task_size) as usize);

        prepare_output(&output_dir, self.overwrite)?;
        let job_id = new_job_id();
        let work_dir = output_dir.join(TEMPORARY).join(&job_id);
        std::fs::create_dir_all(&work_dir).map_err(|e| Error::io(&work_dir, e))?;
        let spec = TaskSpec {
            job_id: job_id.clone(),
            program: P::NAME.to_string(),
            params,
            partitions,
            input_format: self.input_format,
            output_format: self.output_format,
            work_dir: work_dir.clone(),
            task_memory: (self.memory_budget / parallelism as u64).max(1),
        };
        tracing::info!(
            job = %job_id,
            program = P::NAME,
            map_tasks = tasks.len(),
            partitions,
            "MapReduce job starting"
        );
        let outcome = self.run_phases(executor, &spec, &tasks, &mut observer);
        let report = outcome.and_then(|(map, reduce, outputs)| {
            commit(&output_dir, &outputs).map(|files| JobReport {
                job_id: job_id.clone(),
                program: P::NAME.to_string(),
                output_dir: output_dir.clone(),
                files,
                map,
                reduce,
                elapsed: started.elapsed(),
            })
        });
        let report = match report {
            Ok(report) => write_success(&output_dir, &report).map(|()| report),
            Err(e) => Err(e),
        };
        remove_scratch(&output_dir, &work_dir);
        report
    }

    fn check(&self, partitions: u32) -> Result<()> {
        if partitions == 0 {
            return Err(Error::InvalidSetting(
                "partitions must be at least 1".into(),
            ));
        }
        if self.memory_budget < 64 * 1024 {
            return Err(Error::InvalidSetting(format!(
                "a memory budget of {} bytes is too small (at least 64 KiB)",
                self.memory_budget
            )));
        }
        if let InputFormat::Records(d) = self.input_format
            && !d.is_ascii()
        {
            return Err(Error::InvalidSetting(format!(
                "the record delimiter {d:#04x} is not an ASCII byte: it would cut UTF-8 characters"
            )));
        }
        if self.split_size == 0 {
            return Err(Error::InvalidSetting(
                "split size must be at least 1".into(),
            ));
        }
        if self.max_attempts == 0 {
            return Err(Error::InvalidSetting(
                "max_attempts must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn run_phases<E: braid_core::Executor + ?Sized>(
        &self,
        executor: &E,
        spec: &TaskSpec,
        tasks: &[Vec<Split>],
        observer: &mut dyn FnMut(&Event),
    ) -> Result<(MapCounters, ReduceCounters, Vec<ReduceOutput>)> {
        // Map.
        let map_started = Instant::now();
        let scheduler = Scheduler {
            max_attempts: self.max_attempts,
            task_timeout: self.task_timeout,
        };
        let (maps, map_attempts) = scheduler.run(
            Phase::Map,
            tasks.len(),
            |i, attempt| {
                executor.submit(
                    task::map_ref(),
                    (MapTask {
                        spec: spec.clone(),
                        task: i as u32,
                        attempt,
                        splits: tasks[i].clone(),
                    },),
                )
            },
            |o: &MapOutput| (o.records_in, o.records_out),
            |i, attempts, cause| Error::MapFailed {
                task: i,
                input: describe(&tasks[i]),
                attempts,
                cause,
            },
            observer,
        )?;
        let mut map = MapCounters {
            tasks: tasks.len() as u64,
            attempts: map_attempts,
            ..MapCounters::default()
        };
        let mut inputs: Vec<Vec<PathBuf>> = vec![Vec::new(); spec.partitions as usize];
        for output in &maps {
            map.records_in += output.records_in;
            map.bytes_in += output.bytes_in;
            map.emitted += output.emitted;
            map.records_out += output.records_out;
            map.spills += u64::from(output.spills);
            for run in &output.runs {
                inputs[run.partition as usize].push(run.path.clone());
            }
        }
        map.elapsed = map_started.elapsed();
        observer(&Event::PhaseDone {
            phase: Phase::Map,
            elapsed: map.elapsed,
        });

        // Reduce.
        let reduce_started = Instant::now();
        let (outputs, reduce_attempts) = scheduler.run(
            Phase::Reduce,
            spec.partitions as usize,
            |p, attempt| {
                executor.submit(
                    task::reduce_ref(),
                    (ReduceTask {
                        spec: spec.clone(),
                        partition: p as u32,
                        attempt,
                        inputs: inputs[p].clone(),
                    },),
                )
            },
            |o: &ReduceOutput| (o.records_in, o.records_out),
            |p, attempts, cause| Error::ReduceFailed {
                partition: p as u32,
                attempts,
                cause,
            },
            observer,
        )?;
        let mut reduce = ReduceCounters {
            tasks: u64::from(spec.partitions),
            attempts: reduce_attempts,
            ..ReduceCounters::default()
        };
        for output in &outputs {
            reduce.records_in += output.records_in;
            reduce.records_out += output.records_out;
            reduce.bytes_out += output.bytes_out;
        }
        reduce.elapsed = reduce_started.elapsed();
        observer(&Event::PhaseDone {
            phase: Phase::Reduce,
            elapsed: reduce.elapsed,
        });
        Ok((map, reduce, outputs))
    }
}

/// Runs the tasks of one phase to completion, retrying failed attempts.
struct Scheduler {
    max_attempts: u32,
    task_timeout: Option<Duration>,
}

type Done<O> = (
    usize,
    u32,
    std::result::Result<Outcome<O>, braid_core::Error>,
);

impl Scheduler {
    /// Runs tasks `0..count`; returns their outputs in task order and the attempts run.
    fn run<O: Clone + Send + 'static>(
        &self,
        phase: Phase,
        count: usize,
        submit: impl Fn(usize, u32) -> std::result::Result<Handle<Outcome<O>>, braid_core::Error>,
        records: impl Fn(&O) -> (u64, u64),
        gave_up: impl Fn(usize, u32, String) -> Error,
        observer: &mut dyn FnMut(&Event),
    ) -> Result<(Vec<O>, u64)> {
        observer(&Event::PhaseStarted {
            phase,
            tasks: count,
        });
        let (tx, rx) = crossbeam_channel::unbounded::<Done<O>>();
        let mut handles: Vec<Option<Handle<Outcome<O>>>> = (0..count).map(|_| None).collect();
        // Every task starts with its first attempt.
        let mut attempts = vec![1u32; count];
        let mut started = vec![Instant::now(); count];
        let mut results: Vec<Option<O>> = (0..count).map(|_| None).collect();
        let mut attempts_run = 0u64;
        let launch =
            |i: usize, attempt: u32, handles: &mut Vec<Option<Handle<Outcome<O>>>>| -> Result<()> {
                let handle =
                    submit(i, attempt).map_err(|source| Error::Executor { phase, source })?;
                let tx = tx.clone();
                handle.add_done_callback(move |result| {
                    if tx.send((i, attempt, result.clone())).is_err() {
                        tracing::debug!(task = i, attempt, "a task finished after its job ended");
                    }
                });
                handles[i] = Some(handle);
                Ok(())
            };
        let cancel_all = |handles: &mut Vec<Option<Handle<Outcome<O>>>>| {
            for handle in handles.iter_mut().filter_map(Option::take) {
                handle.cancel();
            }
        };
        for i in 0..count {
            attempts_run += 1;
            if let Err(e) = launch(i, 1, &mut handles) {
                cancel_all(&mut handles);
                return Err(e);
            }
        }
        let mut remaining = count;
        let tick = Duration::from_millis(250);
        while remaining > 0 {
            let (i, attempt, result) = match rx.recv_timeout(tick) {
                Ok(done) => done,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    let Some(limit) = self.task_timeout else {
                        continue;
                    };
                    let late =
                        (0..count).find(|&i| results[i].is_none() && started[i].elapsed() > limit);
                    match late {
                        Some(i) => (
                            i,
                            attempts[i],
                            Err(braid_core::Error::Timeout(started[i].elapsed())),
                        ),
                        None => continue,
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    unreachable!("the scheduler holds a sender")
                }
            };
            if results[i].is_some() {
                continue; // a duplicate or late attempt of a finished task
            }
            match result {
                Ok(Outcome::Done(output)) => {
                    let (records_in, records_out) = records(&output);
                    results[i] = Some(output);
                    handles[i] = None;
                    remaining -= 1;
                    observer(&Event::TaskDone {
                        phase,
                        task: i,
                        records_in,
                        records_out,
                    });
                }
                Ok(Outcome::Failed(permanent)) => {
                    cancel_all(&mut handles);
                    return Err(permanent.into());
                }
                Err(_) if attempt != attempts[i] => {
                    // An older attempt failing after a newer one started.
                }
                Err(error) => {
                    let cause = error.to_string();
                    if attempts[i] >= self.max_attempts {
                        cancel_all(&mut handles);
                        return Err(gave_up(i, attempts[i], cause));
                    }
                    attempts[i] += 1;
                    attempts_run += 1;
                    tracing::warn!(%phase, task = i, attempt = attempts[i], error = %cause, "task failed; running it again");
                    observer(&Event::TaskRetried {
                        phase,
                        task: i,
                        attempt: attempts[i],
                        error: cause,
                    });
                    if let Some(old) = handles[i].take() {
                        old.cancel();
                    }
                    started[i] = Instant::now();
                    if let Err(e) = launch(i, attempts[i], &mut handles) {
                        cancel_all(&mut handles);
                        return Err(e);
                    }
                }
            }
        }
        Ok((results.into_iter().flatten().collect(), attempts_run))
    }
}

/// `file [a..b)`, and how many more splits a task reads.
fn describe(splits: &[Split]) -> String {
    match splits {
        [] => "no input".into(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} and {} more splits", rest.len()),
    }
}

fn new_job_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "job-{}-{:x}-{:08x}",
        std::process::id(),
        nanos,
        fastrand::u32(..)
    )
}

fn is_part_file(name: &str) -> bool {
    name.starts_with("part-")
}

/// Creates the output directory, refusing (or clearing, with `overwrite`) an earlier
/// output in it. `_SUCCESS` goes first, so a half-cleared directory never looks done.
fn prepare_output(dir: &Path, overwrite: bool) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let success = dir.join(SUCCESS_MARKER);
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if let Some(name) = entry.file_name().to_str()
            && is_part_file(name)
        {
            parts.push(entry.path());
        }
    }
    parts.sort();
    if !overwrite {
        if success.exists() {
            return Err(Error::OutputExists {
                path: dir.to_path_buf(),
                what: SUCCESS_MARKER.into(),
            });
        }
        if let Some(first) = parts.first() {
            return Err(Error::OutputExists {
                path: dir.to_path_buf(),
                what: format!("{}", first.display()),
            });
        }
        return Ok(());
    }
    match std::fs::remove_file(&success) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&success, e)),
    }
    for part in parts {
        std::fs::remove_file(&part).map_err(|e| Error::io(&part, e))?;
    }
    Ok(())
}

/// Moves every partition file into the output directory.
fn commit(dir: &Path, outputs: &[ReduceOutput]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::with_capacity(outputs.len());
    for (p, output) in outputs.iter().enumerate() {
        let target = dir.join(task::part_name(p as u32));
        std::fs::rename(&output.path, &target).map_err(|e| Error::io(&output.path, e))?;
        files.push(target);
    }
    sync_dir(dir)?;
    Ok(files)
}

/// Writes `_SUCCESS` (the report as JSON) through a temporary file and a rename, last.
fn write_success(dir: &Path, report: &JobReport) -> Result<()> {
    let tmp = dir.join(format!(".{SUCCESS_MARKER}.{}", report.job_id));
    let json = serde_json::to_vec_pretty(report).map_err(|e| Error::Io {
        path: tmp.clone(),
        source: std::io::Error::other(e),
    })?;
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
    }
    let target = dir.join(SUCCESS_MARKER);
    std::fs::rename(&tmp, &target).map_err(|e| Error::io(&tmp, e))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Removes the job's scratch folder (and `_temporary` when no other job uses it).
fn remove_scratch(output_dir: &Path, work_dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(work_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %work_dir.display(), error = %e, "cannot remove a job's scratch folder");
    }
    let temporary = output_dir.join(TEMPORARY);
    if let Err(e) = std::fs::remove_dir(&temporary) {
        tracing::debug!(dir = %temporary.display(), error = %e, "scratch root left in place");
    }
}

/// Reads the report a finished job left in `dir/_SUCCESS`.
///
/// # Errors
/// [`Error::Io`] when there is no marker (the job did not finish) or it cannot be read;
/// [`Error::Corrupt`] when it is not a report.
pub fn read_report(dir: &Path) -> Result<JobReport> {
    let path = dir.join(SUCCESS_MARKER);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path,
        message: e.to_string(),
    })
}
