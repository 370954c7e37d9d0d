//! Book recipe (ch. 5): "Disco: a MapReduce word count". The book's job counts the
//! words of a text with a map function that splits lines and a reduce function that
//! sums the counts per word.
//!
//! Python (Disco):
//! ```python
//! from disco.core import Job, result_iterator
//!
//! def map(line, params):
//!     for word in line.split():
//!         yield word, 1
//!
//! def reduce(iter, params):
//!     from disco.util import kvgroup
//!     for word, counts in kvgroup(sorted(iter)):
//!         yield word, sum(counts)
//!
//! job = Job().run(input=["chekhov.txt"], map=map, reduce=reduce)
//! for word, count in result_iterator(job.wait(show=True)):
//!     print(word, count)
//! ```
//!
//! braid: a `MapReduce` program (here the built-in `WordCount`, which splits exactly as
//! Python's `str.split()`), run on worker processes. The inputs and the output folder
//! are files; on a cluster they sit on a shared file system and the executor is a
//! task-queue app on Redis instead of the process pool.
//!
//! Run: `cargo run --example ch5_disco_wordcount`

use std::collections::BTreeMap;

use braid::mapreduce::{Job, WordCount};
use braid::proc::ProcessPool;

const TEXT: [&str; 3] = [
    "The cat sat on the mat.\nThe dog sat on the log.\n",
    "A cat and a dog\u{a0}met on the mat\u{3000}and sat down.\n",
    "the END\n",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let dir = std::env::temp_dir().join(format!("braid-ch5-disco-wc-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("input"))?;
    for (i, text) in TEXT.iter().enumerate() {
        std::fs::write(dir.join("input").join(format!("chapter{i}.txt")), text)?;
    }

    let pool = ProcessPool::new(2)?;
    let report = Job::new(WordCount)
        .input(dir.join("input/*.txt"))
        .partitions(2)
        .output_dir(dir.join("counts"))
        .run(&pool)?;

    let mut counts = BTreeMap::new();
    for file in &report.files {
        for line in std::fs::read_to_string(file)?.lines() {
            let (word, count) = line.split_once('\t').ok_or("a line without a tab")?;
            counts.insert(word.to_string(), count.parse::<u64>()?);
        }
    }
    for (word, count) in &counts {
        println!("{word}\t{count}");
    }
    println!(
        "map: {} lines in, {} words emitted; reduce: {} distinct words in {} files",
        report.map.records_in,
        report.map.emitted,
        report.reduce.records_out,
        report.files.len()
    );
    std::fs::remove_dir_all(&dir)?;
    // Python's Counter gives the same: case kept, U+00A0 and U+3000 split words.
    if counts.get("the") != Some(&4) || counts.get("The") != Some(&2) || counts["sat"] != 3 {
        return Err(format!("wrong counts: {counts:?}").into());
    }
    Ok(())
}
