//! Book recipe (ch. 5): Disco's second classic job, an inverted index: for every word,
//! the documents it appears in.
//!
//! Python (Disco):
//! ```python
//! def map(line, params):
//!     doc, text = line.split("\t", 1)
//!     for word in set(text.lower().split()):
//!         yield word, doc
//!
//! def reduce(iter, params):
//!     from disco.util import kvgroup
//!     for word, docs in kvgroup(sorted(iter)):
//!         yield word, sorted(set(docs))
//! ```
//!
//! braid: a `MapReduce` program of our own, registered by name so the worker processes
//! find it. Here each input file is a document, and the map function reads the file
//! name from the record; the reducer's output is written as `word<TAB>doc, doc`.
//!
//! Run: `cargo run --example ch5_disco_inverted_index`

use std::collections::BTreeSet;
use std::fmt;

use braid::mapreduce::{BoxError, Emitter, Job, MapReduce, Record, Values, python_split};
use braid::proc::ProcessPool;
use serde::{Deserialize, Serialize};

/// The documents a word appears in, sorted.
#[derive(Debug, Serialize, Deserialize)]
struct Postings(Vec<String>);

impl fmt::Display for Postings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

/// Words (lower-cased, stripped of punctuation) to the documents holding them.
#[derive(Serialize, Deserialize)]
struct InvertedIndex {
    /// Words shorter than this are left out (Disco's `params`).
    min_len: usize,
}

impl MapReduce for InvertedIndex {
    const NAME: &'static str = "ch5.inverted_index";
    type Key = String;
    type Value = String;
    type Output = Postings;

    fn map(
        &self,
        record: Record<'_>,
        emit: &mut Emitter<'_, String, String>,
    ) -> Result<(), BoxError> {
        let doc = record
            .path()
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or("a document without a name")?;
        let words: BTreeSet<String> = python_split(record.text())
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| w.chars().count() >= self.min_len)
            .collect();
        for word in words {
            emit.emit(word, doc.to_string());
        }
        Ok(())
    }

    fn reduce(&self, _word: &String, docs: Values<'_, String>) -> Result<Postings, BoxError> {
        let docs: BTreeSet<String> = docs.collect();
        Ok(Postings(docs.into_iter().collect()))
    }
}

braid::mapreduce::register!(InvertedIndex);

const DOCS: [(&str, &str); 3] = [
    (
        "hamlet",
        "To be, or not to be: that is the question.\nThe rest is silence.",
    ),
    (
        "macbeth",
        "Tomorrow, and tomorrow, and tomorrow.\nOut, out, brief candle!",
    ),
    (
        "tempest",
        "We are such stuff as dreams are made on.\nThe rest is ours.",
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    braid::init();
    let dir = std::env::temp_dir().join(format!("braid-ch5-disco-index-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("docs"))?;
    for (name, text) in DOCS {
        std::fs::write(dir.join("docs").join(format!("{name}.txt")), text)?;
    }

    let pool = ProcessPool::new(2)?;
    let report = Job::new(InvertedIndex { min_len: 3 })
        .input(dir.join("docs"))
        .partitions(3)
        .output_dir(dir.join("index"))
        .run(&pool)?;

    let mut index = Vec::new();
    for file in &report.files {
        for line in std::fs::read_to_string(file)?.lines() {
            let (word, docs) = line.split_once('\t').ok_or("a line without a tab")?;
            index.push((word.to_string(), docs.to_string()));
        }
    }
    index.sort();
    for (word, docs) in &index {
        println!("{word:>10}  {docs}");
    }
    println!(
        "{} words indexed from {} documents",
        index.len(),
        DOCS.len()
    );
    std::fs::remove_dir_all(&dir)?;
    let find = |w: &str| {
        index
            .iter()
            .find(|(word, _)| word == w)
            .map(|(_, d)| d.as_str())
    };
    if find("rest") != Some("hamlet, tempest")
        || find("tomorrow") != Some("macbeth")
        || find("to").is_some()
    {
        return Err("wrong postings".into());
    }
    Ok(())
}
