//! `braid mapreduce`: built-in MapReduce jobs (Disco's word count), locally on threads
//! or on task-queue workers (`braid worker`) that share the input and output folders.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use braid::Executor;
use braid::mapreduce::{Event, Job, JobReport, OutputFormat, Phase, WordCount};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// `braid mapreduce`.
#[derive(Debug, Clone, clap::Args)]
pub struct MapreduceArgs {
    #[command(subcommand)]
    job: MapreduceJob,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum MapreduceJob {
    /// Count words as Python's `Counter(w for line in f for w in line.split())` does:
    /// UTF-8 text, Python's whitespace, no case folding; writes `word<TAB>count` lines.
    Wordcount(WordcountArgs),
}

/// `braid mapreduce wordcount`.
#[derive(Debug, Clone, clap::Args)]
pub struct WordcountArgs {
    /// Input files, directories or glob patterns (quote patterns for the shell).
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<String>,
    /// The output directory: part-00000, ... and _SUCCESS when done.
    #[arg(long, short = 'o', value_name = "DIR")]
    out: PathBuf,
    /// Partitions: reduce tasks and output files (default: the number of workers).
    #[arg(long, short = 'p')]
    partitions: Option<u32>,
    /// Memory for intermediate data, all tasks together (e.g. 512M, 2G); beyond it,
    /// sorted runs spill to disk.
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    memory_budget: u64,
    /// The largest input split one map task reads (e.g. 64M).
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    split_size: u64,
    /// Local worker threads (default: the number of CPUs); with --broker, the workers'
    /// total concurrency.
    #[arg(long, short = 'w')]
    workers: Option<usize>,
    /// Run on task-queue workers (`braid worker`) through this broker, e.g.
    /// redis://host:6379/0; inputs and output must be on a file system they share.
    #[arg(long, short = 'b', value_name = "URL")]
    broker: Option<String>,
    /// The result backend with --broker (default: the broker's URL).
    #[arg(long, value_name = "URL")]
    result_backend: Option<String>,
    /// Write braid's binary record files instead of text.
    #[arg(long)]
    binary: bool,
    /// Replace an earlier output in the output directory.
    #[arg(long)]
    overwrite: bool,
    /// How many times a task may run before the job fails.
    #[arg(long, default_value_t = 4)]
    max_attempts: u32,
    /// Run a task again when an attempt takes longer than this many seconds (useful on
    /// a cluster, where a lost worker's message may wait for the broker's visibility
    /// timeout).
    #[arg(long, value_name = "SECONDS")]
    task_timeout: Option<f64>,
    /// No progress bars.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Parses a size such as `512`, `64K`, `256M`, `2G`, `1.5GiB` (binary units).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 512M, 2G)"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{text}` (K, M, G, T)"
            ));
        }
    };
    let bytes = number * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(bytes as u64)
}

/// Runs `braid mapreduce ...`.
pub fn run(args: MapreduceArgs) -> ExitCode {
    match args.job {
        MapreduceJob::Wordcount(args) => wordcount(args),
    }
}

fn wordcount(args: WordcountArgs) -> ExitCode {
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
        .max(1);
    let executor: Box<dyn Executor> = match &args.broker {
        Some(broker) => {
            let backend = args.result_backend.as_deref().unwrap_or(broker);
            match braid::taskq::App::builder(broker, Some(backend))
                .parallelism(workers)
                .build()
            {
                Ok(app) => Box::new(app),
                Err(e) => {
                    eprintln!("status: failed: broker {broker}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => match braid::sync::ThreadPool::new(workers) {
            Ok(pool) => Box::new(pool),
            Err(e) => {
                eprintln!("status: failed: cannot start {workers} threads: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut job = Job::new(WordCount)
        .inputs(&args.inputs)
        .output_dir(&args.out)
        .memory_budget(args.memory_budget)
        .split_size(args.split_size)
        .max_attempts(args.max_attempts)
        .overwrite(args.overwrite)
        .output_format(if args.binary {
            OutputFormat::Binary
        } else {
            OutputFormat::Text
        });
    if let Some(p) = args.partitions {
        job = job.partitions(p);
    }
    if let Some(seconds) = args.task_timeout {
        match Duration::try_from_secs_f64(seconds) {
            Ok(timeout) if !timeout.is_zero() => job = job.task_timeout(timeout),
            _ => {
                eprintln!("status: failed: --task-timeout must be a positive number of seconds");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut progress = Progress::new(args.quiet);
    let outcome = job.run_with(&*executor, |event| progress.on(event));
    progress.clear();
    executor.shutdown(true, false);
    match outcome {
        Ok(report) => {
            print_report(&report, workers, args.broker.as_deref());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("status: failed: {e}");
            eprintln!("  no output was committed to {}", args.out.display());
            ExitCode::FAILURE
        }
    }
}

/// A progress bar per phase.
struct Progress {
    multi: Option<MultiProgress>,
    bars: Vec<(Phase, ProgressBar, u64, u64)>,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        Progress {
            multi: (!quiet).then(MultiProgress::new),
            bars: Vec::new(),
        }
    }

    fn on(&mut self, event: &Event) {
        let Some(multi) = &self.multi else { return };
        match event {
            Event::PhaseStarted { phase, tasks } => {
                let bar = multi.add(ProgressBar::new(*tasks as u64));
                let style = ProgressStyle::with_template(
                    "{prefix:>7} [{bar:30}] {pos}/{len} tasks {elapsed:>4} {wide_msg}",
                )
                .map(|s| s.progress_chars("=> "));
                match style {
                    Ok(style) => bar.set_style(style),
                    Err(e) => tracing::warn!(error = %e, "progress bar template"),
                }
                bar.set_prefix(phase.to_string());
                bar.enable_steady_tick(Duration::from_millis(200));
                self.bars.push((*phase, bar, 0, 0));
            }
            Event::TaskDone {
                phase,
                records_in,
                records_out,
                ..
            } => {
                if let Some((_, bar, r_in, r_out)) = self.bars.iter_mut().find(|(p, ..)| p == phase)
                {
                    *r_in += records_in;
                    *r_out += records_out;
                    bar.set_message(format!(
                        "records in {} out {}",
                        thousands(*r_in),
                        thousands(*r_out)
                    ));
                    bar.inc(1);
                }
            }
            Event::TaskRetried {
                phase,
                task,
                attempt,
                error,
            } => {
                if let Err(e) = multi.println(format!(
                    "{phase} task {task}: attempt {attempt} after: {error}"
                )) {
                    tracing::warn!(error = %e, "progress output");
                }
            }
            Event::PhaseDone { phase, .. } => {
                if let Some((_, bar, ..)) = self.bars.iter().find(|(p, ..)| p == phase) {
                    bar.finish();
                }
            }
            _ => {}
        }
    }

    fn clear(&mut self) {
        for (_, bar, ..) in &self.bars {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// The peak resident memory of this process (VmHWM), if the system reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn print_report(report: &JobReport, workers: usize, broker: Option<&str>) {
    let m = &report.map;
    let r = &report.reduce;
    let place = match broker {
        Some(b) => format!("task-queue workers via {b}"),
        None => format!("{workers} local threads"),
    };
    println!(
        "status: done in {:.2?} on {place}: {} partition files and {} in {}",
        report.elapsed,
        report.files.len(),
        braid::mapreduce::SUCCESS_MARKER,
        report.output_dir.display()
    );
    println!(
        "map:    {} tasks ({} attempts), {} records in ({}), {} emitted, {} out after combining, {} sorted runs, {:.2?}",
        m.tasks,
        m.attempts,
        thousands(m.records_in),
        mib(m.bytes_in),
        thousands(m.emitted),
        thousands(m.records_out),
        m.spills,
        m.elapsed
    );
    println!(
        "reduce: {} tasks ({} attempts), {} records in, {} records out ({}), {:.2?}",
        r.tasks,
        r.attempts,
        thousands(r.records_in),
        thousands(r.records_out),
        mib(r.bytes_out),
        r.elapsed
    );
    if broker.is_none()
        && let Some(rss) = peak_rss_bytes()
    {
        println!("peak RSS: {}", mib(rss));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("2gib"), Ok(2 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
