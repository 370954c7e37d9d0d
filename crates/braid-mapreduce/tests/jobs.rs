//! MapReduce jobs end to end, on threads, worker processes and task-queue workers:
//! word count against Python's `collections.Counter`, the spill path, a killed worker,
//! a failing reducer, bad input. This binary re-executes itself as the pool's workers,
//! so it owns `main`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use braid_mapreduce::{
    BoxError, Emitter, Error, Job, MapReduce, OutputFormat, Record, Values, WordCount,
    hash_partition, python_split, read_binary,
};
use braid_proc::ProcessPool;
use braid_sync::ThreadPool;
use serde::{Deserialize, Serialize};

type Check = Result<(), String>;
/// A named check.
type NamedCheck = (&'static str, fn() -> Check);
type Counts = BTreeMap<String, u64>;

/// Redis database of these tests (keys also get a random prefix).
const REDIS_DB: u32 = 6;

/// Word count whose map kills its own worker process the first time it reads the file
/// named `victim` (a marker file in `marker_dir` records that it happened).
#[derive(Serialize, Deserialize)]
struct DyingWordCount {
    victim: String,
    marker_dir: PathBuf,
}

impl MapReduce for DyingWordCount {
    const NAME: &'static str = "test.dying_wordcount";
    type Key = String;
    type Value = u64;
    type Output = u64;

    fn map(&self, record: Record<'_>, emit: &mut Emitter<'_, String, u64>) -> Result<(), BoxError> {
        let name = record.path().file_name().and_then(|n| n.to_str());
        if name == Some(self.victim.as_str()) && record.offset() > 0 {
            let marker = self.marker_dir.join("killed");
            if std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
                .is_ok()
            {
                let me = rustix::process::getpid();
                rustix::process::kill_process(me, rustix::process::Signal::KILL)?;
            }
        }
        WordCount.map(record, emit)
    }

    fn combiner(&self) -> Option<braid_mapreduce::Combiner<String, u64>> {
        Some(|_, acc, n| *acc += n)
    }

    fn reduce(&self, _: &String, counts: Values<'_, u64>) -> Result<u64, BoxError> {
        Ok(counts.sum())
    }
}
braid_mapreduce::register!(DyingWordCount);

/// Word count whose first map attempt on the file named `victim` hangs for a while.
#[derive(Serialize, Deserialize)]
struct StuckWordCount {
    victim: String,
    marker_dir: PathBuf,
}

impl MapReduce for StuckWordCount {
    const NAME: &'static str = "test.stuck_wordcount";
    type Key = String;
    type Value = u64;
    type Output = u64;

    fn map(&self, record: Record<'_>, emit: &mut Emitter<'_, String, u64>) -> Result<(), BoxError> {
        let name = record.path().file_name().and_then(|n| n.to_str());
        if name == Some(self.victim.as_str())
            && std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(self.marker_dir.join("stuck"))
                .is_ok()
        {
            std::thread::sleep(Duration::from_secs(6));
        }
        WordCount.map(record, emit)
    }

    fn combiner(&self) -> Option<braid_mapreduce::Combiner<String, u64>> {
        Some(|_, acc, n| *acc += n)
    }

    fn reduce(&self, _: &String, counts: Values<'_, u64>) -> Result<u64, BoxError> {
        Ok(counts.sum())
    }
}
braid_mapreduce::register!(StuckWordCount);

/// Word count whose reducer fails on one word, every time.
#[derive(Serialize, Deserialize)]
struct PoisonedReduce {
    poison: String,
}

impl MapReduce for PoisonedReduce {
    const NAME: &'static str = "test.poisoned_reduce";
    type Key = String;
    type Value = u64;
    type Output = u64;

    fn map(&self, record: Record<'_>, emit: &mut Emitter<'_, String, u64>) -> Result<(), BoxError> {
        WordCount.map(record, emit)
    }

    fn reduce(&self, word: &String, counts: Values<'_, u64>) -> Result<u64, BoxError> {
        if *word == self.poison {
            return Err(format!("cannot count `{word}`: the disk is full").into());
        }
        Ok(counts.sum())
    }
}
braid_mapreduce::register!(PoisonedReduce);

/// Every value of a key in the order the reducer sees it, to check determinism.
#[derive(Serialize, Deserialize)]
struct Positions;

impl MapReduce for Positions {
    const NAME: &'static str = "test.positions";
    type Key = String;
    type Value = String;
    type Output = String;

    fn map(
        &self,
        record: Record<'_>,
        emit: &mut Emitter<'_, String, String>,
    ) -> Result<(), BoxError> {
        let file = record
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?");
        for (i, word) in python_split(record.text()).enumerate() {
            emit.emit(word.to_string(), format!("{file}:{}:{i}", record.offset()));
        }
        Ok(())
    }

    fn reduce(&self, _: &String, values: Values<'_, String>) -> Result<String, BoxError> {
        Ok(values.collect::<Vec<_>>().join(" "))
    }
}
braid_mapreduce::register!(Positions);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> Result<PathBuf, String> {
    let path = std::env::var_os("BRAID_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/venv/bin/python"));
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "these tests need Python: {} is missing (scripts/test makes the venv, or set BRAID_PYTHON)",
            path.display()
        ))
    }
}

/// Every character Python's `str.split()` splits on, and some it does not.
const SPACES: [&str; 30] = [
    " ", "\t", "\n", "\u{0b}", "\u{0c}", "\r", "\u{1c}", "\u{1d}", "\u{1e}", "\u{1f}", "\u{85}",
    "\u{a0}", "\u{1680}", "\u{2000}", "\u{2001}", "\u{2002}", "\u{2003}", "\u{2004}", "\u{2005}",
    "\u{2006}", "\u{2007}", "\u{2008}", "\u{2009}", "\u{200a}", "\u{2028}", "\u{2029}", "\u{202f}",
    "\u{205f}", "\u{3000}", "\r\n",
];
const NOT_SPACES: [&str; 6] = [
    "\u{200b}", "\u{feff}", "\u{180e}", "\u{2060}", "\u{0}", "\u{7f}",
];
const STEMS: [&str; 16] = [
    "the",
    "The",
    "THE",
    "cat",
    "naïve",
    "café",
    "Straße",
    "日本語",
    "слово",
    "🦀",
    "x",
    "don't",
    "e\u{301}",
    "ǅ",
    "a.b",
    "42",
];

/// Writes a corpus of `files` files with every kind of whitespace; returns the paths.
fn make_corpus(dir: &Path, files: usize, words_per_file: usize, seed: u64) -> Vec<PathBuf> {
    make_corpus_with(dir, files, words_per_file, seed, 10)
}

/// As [`make_corpus`]; one word in `rare` gets a numeric suffix (more distinct words).
fn make_corpus_with(
    dir: &Path,
    files: usize,
    words_per_file: usize,
    seed: u64,
    rare: u8,
) -> Vec<PathBuf> {
    let mut rng = fastrand::Rng::with_seed(seed);
    std::fs::create_dir_all(dir).unwrap();
    let mut paths = Vec::new();
    for f in 0..files {
        let mut text = String::new();
        let n = if f == 3 {
            0
        } else {
            rng.usize(1..=words_per_file)
        };
        for _ in 0..n {
            let stem = STEMS[rng.usize(..STEMS.len())];
            text.push_str(stem);
            if rng.u8(..rare) == 0 {
                text.push_str(NOT_SPACES[rng.usize(..NOT_SPACES.len())]);
                text.push_str(&rng.u32(..100_000).to_string());
            }
            let sep = match rng.u8(..10) {
                0..=5 => " ",
                6 => "\n",
                _ => SPACES[rng.usize(..SPACES.len())],
            };
            text.push_str(sep);
        }
        if f % 2 == 0 {
            text.push_str("last-word-without-newline");
        }
        let path = dir.join(format!("doc{f:03}.txt"));
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    paths
}

/// Python's answer: `Counter(w for line in open(f, encoding="utf-8") for w in line.split())`.
fn python_counts(files: &[PathBuf]) -> Result<Counts, String> {
    let script = r#"
import collections, json, sys
c = collections.Counter()
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            c.update(line.split())
print(json.dumps(c))
"#;
    let out = Command::new(python()?)
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .map_err(|e| format!("cannot run python: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("python's JSON: {e}"))
}

fn read_counts(files: &[PathBuf]) -> Result<Counts, String> {
    let mut counts = Counts::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
        let mut last: Option<String> = None;
        for line in text.split_terminator('\n') {
            let (word, n) = line
                .rsplit_once('\t')
                .ok_or_else(|| format!("no tab in {line:?}"))?;
            if let Some(l) = &last
                && l.as_str() >= word
            {
                return Err(format!(
                    "keys out of order in {}: {l:?} then {word:?}",
                    file.display()
                ));
            }
            last = Some(word.to_string());
            let n: u64 = n.parse().map_err(|e| format!("{line:?}: {e}"))?;
            if counts.insert(word.to_string(), n).is_some() {
                return Err(format!("{word:?} is in two partitions"));
            }
        }
    }
    Ok(counts)
}

fn same_counts(got: &Counts, expected: &Counts) -> Check {
    if got == expected {
        return Ok(());
    }
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .take(5)
        .collect();
    let wrong: Vec<_> = got
        .iter()
        .filter(|(k, v)| expected.get(*k).is_some_and(|e| e != *v))
        .take(5)
        .collect();
    Err(format!(
        "counts differ from Python's: {} vs {} words; missing {missing:?}, extra {extra:?}, wrong {wrong:?}",
        got.len(),
        expected.len()
    ))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Check {
    if cond { Ok(()) } else { Err(what()) }
}

fn wordcount_equals_python_counter() -> Check {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let files = make_corpus(&dir.path().join("in"), 40, 3000, 1);
    let expected = python_counts(&files)?;
    let pool = ProcessPool::new(2).map_err(|e| e.to_string())?;
    let report = Job::new(WordCount)
        .input(dir.path().join("in/*.txt"))
        .partitions(5)
        .split_size(7000) // several splits per file: records cut at split edges
        .output_dir(dir.path().join("out"))
        .run(&pool)
        .map_err(|e| e.to_string())?;
    same_counts(&read_counts(&report.files)?, &expected)?;
    check(report.map.emitted == expected.values().sum::<u64>(), || {
        format!("emitted {} words", report.map.emitted)
    })?;
    check(report.reduce.records_out == expected.len() as u64, || {
        "records out".into()
    })?;
    let names = files_in(&dir.path().join("out"));
    check(
        names
            == [
                "_SUCCESS",
                "part-00000",
                "part-00001",
                "part-00002",
                "part-00003",
                "part-00004",
            ],
        || format!("output folder holds {names:?}"),
    )?;
    let marker =
        braid_mapreduce::read_report(&dir.path().join("out")).map_err(|e| e.to_string())?;
    check(
        marker.reduce.records_out == report.reduce.records_out,
        || "the _SUCCESS report".into(),
    )
}

fn spill_path_gives_the_same_bytes() -> Check {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    make_corpus_with(&dir.path().join("in"), 12, 4000, 2, 2);
    let pool = ThreadPool::new(2).map_err(|e| e.to_string())?;
    let run = |out: &str, budget: u64| {
        Job::new(WordCount)
            .input(dir.path().join("in"))
            .partitions(3)
            .memory_budget(budget)
            .output_dir(dir.path().join(out))
            .run(&pool)
            .map_err(|e| e.to_string())
    };
    let roomy = run("roomy", 256 << 20)?;
    let tiny = run("tiny", 64 << 10)?;
    check(roomy.map.spills == roomy.map.tasks, || {
        format!(
            "{} spills with room to spare ({} tasks)",
            roomy.map.spills, roomy.map.tasks
        )
    })?;
    check(tiny.map.spills > 2 * tiny.map.tasks, || {
        format!("only {} spills under a 64 KiB budget", tiny.map.spills)
    })?;
    for (a, b) in roomy.files.iter().zip(&tiny.files) {
        let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        check(a == b, || {
            "spilled output differs from in-memory output".into()
        })?;
    }
    // Values reach the reducer in the same order, spilled or not, pool or threads.
    let positions = |out: &str, budget: u64, pool: &dyn braid_core::Executor| {
        Job::new(Positions)
            .input(dir.path().join("in"))
            .partitions(2)
            .memory_budget(budget)
            .output_dir(dir.path().join(out))
            .run(pool)
            .map_err(|e| e.to_string())
    };
    let procs = ProcessPool::new(2).map_err(|e| e.to_string())?;
    let a = positions("pos-roomy", 256 << 20, &pool)?;
    let b = positions("pos-tiny", 64 << 10, &procs)?;
    check(b.map.spills > b.map.tasks, || {
        "no spills in the positions job".into()
    })?;
    for (x, y) in a.files.iter().zip(&b.files) {
        check(
            std::fs::read(x).unwrap() == std::fs::read(y).unwrap(),
            || "the reducer saw values in a different order".into(),
        )?;
    }
    Ok(())
}

fn killed_worker_gives_the_exact_answer() -> Check {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let files = make_corpus(&dir.path().join("in"), 10, 3000, 3);
    let expected = python_counts(&files)?;
    let marker_dir = dir.path().join("markers");
    std::fs::create_dir_all(&marker_dir).unwrap();
    let pool = ProcessPool::new(2).map_err(|e| e.to_string())?;
    let pids_before = pool.pids();
    let report = Job::new(DyingWordCount {
        victim: "doc005.txt".into(),
        marker_dir: marker_dir.clone(),
    })
    .input(dir.path().join("in"))
    .partitions(4)
    .output_dir(dir.path().join("out"))
    .run(&pool)
    .map_err(|e| e.to_string())?;
    check(marker_dir.join("killed").exists(), || {
        "no worker was killed".into()
    })?;
    check(report.map.attempts > report.map.tasks, || {
        format!(
            "{} attempts for {} tasks: nothing was retried",
            report.map.attempts, report.map.tasks
        )
    })?;
    check(pool.pids() != pids_before, || {
        "the pool did not replace the killed worker".into()
    })?;
    same_counts(&read_counts(&report.files)?, &expected)
}

fn stuck_task_runs_again_after_the_task_timeout() -> Check {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let files = make_corpus(&dir.path().join("in"), 6, 2000, 9);
    let expected = python_counts(&files)?;
    let marker_dir = dir.path().join("markers");
    std::fs::create_dir_all(&marker_dir).unwrap();
    let pool = ThreadPool::new(3).map_err(|e| e.to_string())?;
    let report = Job::new(StuckWordCount {
        victim: "doc002.txt".into(),
        marker_dir,
    })
    .input(dir.path().join("in"))
    .partitions(2)
    .task_timeout(Duration::from_secs(2))
    .output_dir(dir.path().join("out"))
    .run(&pool)
    .map_err(|e| e.to_string())?;
    check(report.map.attempts > report.map.tasks, || {
        "the stuck task was not run again".into()
    })?;
    same_counts(&read_counts(&report.files)?, &expected)
}

fn failing_reducer_names_the_partition_and_commits_nothing() -> Check {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    make_corpus(&dir.path().join("in"), 6, 2000, 4);
    let pool = ThreadPool::new(2).map_err(|e| e.to_string())?;
    let out = dir.path().join("out");
    let mut retries = 0;
    let result = Job::new(PoisonedReduce {
        poison: "café".into(),
    })
    .input(dir.path().join("in"))
    .partitions(4)
    .max_attempts(3)
    .output_dir(&out)
    .run_with(&pool, |event| {
        if matches!(event, braid_mapreduce::Event::TaskRetried { .. }) {
            retries += 1;
        }
    });
    let expected_partition = hash_partition("café", 4);
    match result {
        Err(Error::ReduceFailed {
            partition,
            attempts,
            cause,
        }) => {
            check(partition == expected_partition, || {
                format!("partition {partition}, expected {expected_partition}")
            })?;
            check(attempts == 3, || format!("{attempts} attempts"))?;
            check(
                cause.contains("disk is full") && cause.contains("café"),
                || format!("cause: {cause}"),
            )?;
            let message = Error::ReduceFailed {
                partition,
                attempts,
                cause,
            }
            .to_string();
            check(
                message.contains(&format!("partition {expected_partition}")),
                || message.clone(),
            )?;
        }
        other => return Err(format!("expected ReduceFailed, got {other:?}")),
    }
    check(retries == 2, || format!("{retries} retries"))?;
    let names = files_in(&out);
    check(names.is_empty(), || format!("a failed job left {names:?}"))?;
    Ok(())
}

fn non_utf8_input_is_named() -> Check {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    make_corpus(&dir.path().join("in"), 4, 500, 5);
    let bad = dir.path().join("in/latin1.txt");
    std::fs::write(&bad, b"caf\xe9 au lait\n").unwrap();
    let pool = ThreadPool::new(2).map_err(|e| e.to_string())?;
    let out = dir.path().join("out");
    match Job::new(WordCount)
        .input(dir.path().join("in"))
        .output_dir(&out)
        .run(&pool)
    {
        Err(e @ Error::NotUtf8 { .. }) => {
            let text = e.to_string();
            check(
                text.contains("latin1.txt") && text.contains("offset 3"),
                || text.clone(),
            )?;
        }
        other => return Err(format!("expected NotUtf8, got {other:?}")),
    }
    check(files_in(&out).is_empty(), || "output left behind".into())
}

fn binary_output_and_overwrite() -> Check {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let files = make_corpus(&dir.path().join("in"), 5, 1000, 6);
    let expected = python_counts(&files)?;
    let pool = ThreadPool::new(2).map_err(|e| e.to_string())?;
    let out = dir.path().join("out");
    let job = Job::new(WordCount)
        .input(dir.path().join("in/*.txt"))
        .partitions(2)
        .output_format(OutputFormat::Binary)
        .output_dir(&out);
    let report = job.run(&pool).map_err(|e| e.to_string())?;
    let mut got = Counts::new();
    for file in &report.files {
        for record in read_binary::<String, u64>(file).map_err(|e| e.to_string())? {
            let (w, n) = record.map_err(|e| e.to_string())?;
            got.insert(w, n);
        }
    }
    same_counts(&got, &expected)?;
    match job.run(&pool) {
        Err(Error::OutputExists { .. }) => {}
        other => return Err(format!("a second run into a finished folder: {other:?}")),
    }
    job.clone()
        .overwrite(true)
        .run(&pool)
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn taskq_workers_on_the_memory_broker() -> Check {
    use braid_taskq::{App, Worker};
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let files = make_corpus(&dir.path().join("in"), 8, 2000, 7);
    let expected = python_counts(&files)?;
    let url = format!("memory://mapreduce-{}", fastrand::u64(..));
    let app = App::builder(&url, Some(&url))
        .parallelism(2)
        .build()
        .map_err(|e| e.to_string())?;
    let worker = Worker::builder(&app)
        .concurrency(2)
        .start()
        .map_err(|e| e.to_string())?;
    let report = Job::new(WordCount)
        .input(dir.path().join("in"))
        .partitions(3)
        .output_dir(dir.path().join("out"))
        .run(&app)
        .map_err(|e| e.to_string());
    worker.shutdown();
    same_counts(&read_counts(&report?.files)?, &expected)
}

fn taskq_workers_on_redis() -> Check {
    use braid_taskq::{App, Worker};
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let files = make_corpus(&dir.path().join("in"), 8, 2000, 8);
    let expected = python_counts(&files)?;
    let prefix = format!("braid-mr-test-{:016x}-", fastrand::u64(..));
    let url = format!("redis://127.0.0.1:6379/{REDIS_DB}?global_keyprefix={prefix}");
    let app = App::builder(&url, Some(&url))
        .parallelism(4)
        .result_expires(Duration::from_secs(300))
        .build()
        .map_err(|e| e.to_string())?;
    app.queue_len("celery").map_err(|e| {
        format!("this test needs Redis on 127.0.0.1:6379 (scripts/test starts it): {e}")
    })?;
    // Two workers, as on two machines sharing the directory.
    let a = Worker::builder(&app)
        .concurrency(2)
        .hostname("mr-a")
        .start()
        .map_err(|e| e.to_string())?;
    let b = Worker::builder(&app)
        .concurrency(2)
        .hostname("mr-b")
        .start()
        .map_err(|e| e.to_string())?;
    let report = Job::new(WordCount)
        .input(dir.path().join("in"))
        .partitions(3)
        .output_dir(dir.path().join("out"))
        .run(&app)
        .map_err(|e| e.to_string());
    a.shutdown();
    b.shutdown();
    // Remove this run's keys.
    let client = redis::Client::open(format!("redis://127.0.0.1:6379/{REDIS_DB}"))
        .map_err(|e| e.to_string())?;
    let mut conn = client.get_connection().map_err(|e| e.to_string())?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .map_err(|e| e.to_string())?;
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(&keys)
            .exec(&mut conn)
            .map_err(|e| e.to_string())?;
    }
    same_counts(&read_counts(&report?.files)?, &expected)
}

fn main() -> ExitCode {
    braid_core::init();
    let checks: &[NamedCheck] = &[
        (
            "wordcount_equals_python_counter",
            wordcount_equals_python_counter,
        ),
        (
            "spill_path_gives_the_same_bytes",
            spill_path_gives_the_same_bytes,
        ),
        (
            "killed_worker_gives_the_exact_answer",
            killed_worker_gives_the_exact_answer,
        ),
        (
            "stuck_task_runs_again_after_the_task_timeout",
            stuck_task_runs_again_after_the_task_timeout,
        ),
        (
            "failing_reducer_names_the_partition_and_commits_nothing",
            failing_reducer_names_the_partition_and_commits_nothing,
        ),
        ("non_utf8_input_is_named", non_utf8_input_is_named),
        ("binary_output_and_overwrite", binary_output_and_overwrite),
        (
            "taskq_workers_on_the_memory_broker",
            taskq_workers_on_the_memory_broker,
        ),
        ("taskq_workers_on_redis", taskq_workers_on_redis),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = 0;
    let mut ran = 0;
    for (name, run) in checks {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        let started = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(run)
            .unwrap_or_else(|p| Err(format!("panicked: {}", braid_core::panic_message(&*p))));
        match outcome {
            Ok(()) => println!("test {name} ... ok ({:.1?})", started.elapsed()),
            Err(why) => {
                failed += 1;
                println!("test {name} ... FAILED\n    {why}");
            }
        }
    }
    println!("\ntest result: {} passed; {failed} failed", ran - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
