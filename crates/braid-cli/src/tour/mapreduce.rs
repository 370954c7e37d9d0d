//! The MapReduce recipe: Disco's word count over a few files on a thread pool, with a
//! memory budget small enough that the map side spills sorted runs and the reducers
//! merge them.

use std::collections::BTreeMap;

use braid::mapreduce::{Job, WordCount};
use braid::sync::ThreadPool;

/// Three short documents; `\u{a0}`, `\u{3000}` and `\u{1f}` are whitespace to Python's
/// `str.split()`, so they separate words here too.
const DOCS: [&str; 3] = [
    "the quick brown fox\njumps over the lazy dog\n",
    "The dog\u{a0}sleeps;\u{3000}the fox runs\n",
    "fox\u{1f}fox fox",
];

pub(super) fn run() -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!(
        "braid-tour-mapreduce-{}-{:x}",
        std::process::id(),
        fastrand_suffix()
    ));
    let outcome = run_in(&dir);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "tour: cannot remove its scratch folder");
    }
    outcome
}

fn fastrand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn run_in(dir: &std::path::Path) -> Result<String, String> {
    let input = dir.join("input");
    std::fs::create_dir_all(&input).map_err(|e| e.to_string())?;
    // Many copies, so that the 64 KiB budget forces spills.
    for (i, doc) in DOCS.iter().enumerate() {
        let text: String = (0..1500).map(|n| format!("{doc} w{n}\n")).collect();
        std::fs::write(input.join(format!("doc{i}.txt")), text).map_err(|e| e.to_string())?;
    }
    let pool = ThreadPool::new(2).map_err(|e| e.to_string())?;
    let report = Job::new(WordCount)
        .input(input.join("*.txt"))
        .partitions(3)
        .memory_budget(64 << 10)
        .output_dir(dir.join("counts"))
        .run(&pool)
        .map_err(|e| e.to_string())?;
    let mut counts = BTreeMap::new();
    for file in &report.files {
        let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
        for line in text.lines() {
            let (word, n) = line.split_once('\t').ok_or("a line without a tab")?;
            counts.insert(
                word.to_string(),
                n.parse::<u64>().map_err(|e| e.to_string())?,
            );
        }
    }
    let expected = [
        ("fox", 7500),
        ("the", 4500),
        ("The", 1500),
        ("dog", 3000),
        ("w1499", 3),
    ];
    for (word, n) in expected {
        if counts.get(word) != Some(&n) {
            return Err(format!(
                "`{word}` counted {:?} times, expected {n}",
                counts.get(word)
            ));
        }
    }
    if counts.len() != 1511 {
        return Err(format!("{} distinct words, expected 1511", counts.len()));
    }
    if report.map.spills <= report.map.tasks {
        return Err(format!(
            "{} sorted runs from {} map tasks: nothing spilled under a 64 KiB budget",
            report.map.spills, report.map.tasks
        ));
    }
    Ok(format!(
        "{} words, {} distinct, in {} partitions; {} sorted runs spilled under a 64 KiB budget",
        report.map.emitted,
        counts.len(),
        report.files.len(),
        report.map.spills
    ))
}
