//! The `mapreduce` suite: braid-mapreduce's word count against Python's
//! `multiprocessing.Pool(2)` + `collections.Counter` on the same generated corpus
//! (`bench/python/mapreduce.py` mirrors every case).
//!
//! The corpus (200 MB, or 50 MB with `--quick`; log-uniform word frequencies, some
//! capitalised, some non-ASCII, a few of Python's rarer whitespace characters) is
//! generated once under the workspace's `target/bench-data/` and reused. Both sides
//! use two workers, count every word, and write `word<TAB>count` lines; the
//! total word count is checked against the generator's. braid's peak RSS (VmHWM,
//! reset before each run) is reported beside its memory budget.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use braid::mapreduce::{Job, WordCount};
use braid::sync::ThreadPool;

use super::{Case, CaseError, Detailed, Measure, Size, Suite};

/// Worker threads, as Python's two worker processes.
const WORKERS: usize = 2;
/// Files the corpus is cut into.
const FILES: u64 = 32;

/// The suite's cases.
pub(crate) const SUITE: Suite = Suite {
    name: "mapreduce",
    script: "mapreduce.py",
    cases: &[
        Case {
            name: "wordcount",
            unit: "s",
            size: Size {
                full: 200,
                quick: 50,
            },
            check: Some(corpus_words),
            measure: Measure::Detailed(wordcount_roomy),
        },
        Case {
            name: "wordcount_spill",
            unit: "s",
            size: Size {
                full: 200,
                quick: 50,
            },
            check: Some(corpus_words),
            measure: Measure::Detailed(wordcount_spill),
        },
    ],
};

/// The generated corpora live here: the workspace's `target/bench-data`, found from
/// the scripts folder as the Python side finds it.
fn data_dir() -> PathBuf {
    super::python::scripts_dir().join("../../target/bench-data")
}

fn corpus_dir(mb: u64) -> PathBuf {
    data_dir().join(format!("mapreduce-corpus-{mb}mb"))
}

/// The number of words in the corpus of `mb` megabytes (from its manifest; 0 when it
/// has not been generated, which no count matches).
fn corpus_words(mb: u64) -> u64 {
    std::fs::read_to_string(corpus_dir(mb).join("MANIFEST"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// splitmix64: a small deterministic generator, so the corpus is the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const SYLLABLES: [&str; 24] = [
    "ka", "to", "ri", "ne", "su", "ma", "lo", "pi", "de", "ga", "zu", "fe", "bo", "chi", "ré", "ß",
    "ü", "日", "本", "ва", "no", "th", "qu", "x",
];
const VOCABULARY: usize = 200_000;

fn vocabulary() -> Vec<String> {
    (0..VOCABULARY)
        .map(|mut r| {
            let mut word = String::new();
            r += 1;
            while r > 0 {
                word.push_str(SYLLABLES[r % SYLLABLES.len()]);
                r /= SYLLABLES.len();
            }
            word
        })
        .collect()
}

/// Generates the corpus of `mb` megabytes unless it is there already.
fn ensure_corpus(mb: u64) -> Result<PathBuf, CaseError> {
    let dir = corpus_dir(mb);
    if corpus_words(mb) > 0 {
        return Ok(dir);
    }
    let io = |e: std::io::Error| CaseError::Runtime(e);
    std::fs::create_dir_all(&dir).map_err(io)?;
    let words = vocabulary();
    let ln_v = (VOCABULARY as f64).ln();
    let mut rng = Rng(0x5eed_0000 + mb);
    let per_file = mb * 1_000_000 / FILES;
    let mut total = 0u64;
    for f in 0..FILES {
        let path = dir.join(format!("part{f:03}.txt"));
        let mut out =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).map_err(io)?);
        let mut written = 0u64;
        let mut line = 0;
        while written < per_file {
            let rank = ((rng.unit() * ln_v).exp() as usize)
                .saturating_sub(1)
                .min(VOCABULARY - 1);
            let word = &words[rank];
            let roll = rng.next() % 1000;
            let mut w = String::with_capacity(word.len() + 1);
            if roll < 50 {
                let mut chars = word.chars();
                if let Some(c) = chars.next() {
                    w.extend(c.to_uppercase());
                    w.push_str(chars.as_str());
                }
            } else {
                w.push_str(word);
            }
            if roll.is_multiple_of(97) {
                w.push(',');
            }
            line += 1;
            let sep = if line >= 12 {
                line = 0;
                "\n"
            } else {
                match roll {
                    0..=1 => "\t",
                    2 => "\u{a0}",
                    3 => "\u{3000}",
                    4 => "\u{1c}",
                    _ => " ",
                }
            };
            out.write_all(w.as_bytes()).map_err(io)?;
            out.write_all(sep.as_bytes()).map_err(io)?;
            written += (w.len() + sep.len()) as u64;
            total += 1;
        }
        out.write_all(b"\n").map_err(io)?;
        out.flush().map_err(io)?;
    }
    std::fs::write(dir.join("MANIFEST"), format!("{total}\n")).map_err(io)?;
    Ok(dir)
}

/// Resets this process's peak RSS (VmHWM), so the next reading covers only what follows.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn rss(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn wordcount_roomy(mb: u64, repeats: usize) -> Result<Detailed, CaseError> {
    wordcount(mb, repeats, 256 << 20)
}

fn wordcount_spill(mb: u64, repeats: usize) -> Result<Detailed, CaseError> {
    wordcount(mb, repeats, 8 << 20)
}

/// Seconds to count the words of the corpus with a job on two threads under `budget`
/// bytes; the note gives the peak RSS.
fn wordcount(mb: u64, repeats: usize, budget: u64) -> Result<Detailed, CaseError> {
    let corpus = ensure_corpus(mb)?;
    let expected = corpus_words(mb);
    let out = data_dir().join(format!("mapreduce-out-{}", std::process::id()));
    let pool = ThreadPool::new(WORKERS)?;
    let mut times = Vec::with_capacity(repeats);
    let mut peak = 0u64;
    let mut spills = 0;
    let mut tasks = 0;
    let baseline = rss("VmRSS:").unwrap_or(0);
    let resettable = reset_peak_rss();
    for _ in 0..repeats {
        reset_peak_rss();
        let start = Instant::now();
        let report = Job::new(WordCount)
            .input(corpus.join("*.txt"))
            .partitions(WORKERS as u32)
            .memory_budget(budget)
            .output_dir(&out)
            .overwrite(true)
            .run(&pool)?;
        times.push(start.elapsed().as_secs_f64());
        peak = peak.max(rss("VmHWM:").unwrap_or(0));
        spills = report.map.spills;
        tasks = report.map.tasks;
        if report.map.emitted != expected {
            return Err(CaseError::Wrong(format!(
                "counted {} words, the corpus has {expected}",
                report.map.emitted
            )));
        }
        let total: u64 = count_output(&report.files)?;
        if total != expected {
            return Err(CaseError::Wrong(format!(
                "the output's counts sum to {total}, the corpus has {expected}"
            )));
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&out) {
        tracing::warn!(dir = %out.display(), error = %e, "bench: cannot remove the output");
    }
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let note = format!(
        "braid peak RSS {:.0} MiB{} with a {:.0} MiB budget (process before the job: {:.0} MiB); {tasks} map tasks, {spills} sorted runs",
        mib(peak),
        if resettable {
            ""
        } else {
            " (whole process: VmHWM not resettable)"
        },
        mib(budget),
        mib(baseline),
    );
    Ok(Detailed {
        value: super::stats::median(&times).unwrap_or(f64::NAN),
        note: Some(note),
    })
}

fn count_output(files: &[PathBuf]) -> Result<u64, CaseError> {
    let mut total = 0u64;
    for file in files {
        total += sum_counts(file)?;
    }
    Ok(total)
}

fn sum_counts(file: &Path) -> Result<u64, CaseError> {
    let text = std::fs::read_to_string(file).map_err(CaseError::Runtime)?;
    let mut total = 0u64;
    for line in text.lines() {
        let n = line
            .rsplit_once('\t')
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .ok_or_else(|| CaseError::Wrong(format!("a bad output line: {line:?}")))?;
        total += n;
    }
    Ok(total)
}
