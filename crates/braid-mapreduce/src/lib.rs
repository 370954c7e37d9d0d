//! MapReduce jobs like Disco's, on any braid executor: map, partition, combine and
//! reduce over files, from one core to a cluster.
//!
//! | Disco | braid-mapreduce |
//! |---|---|
//! | `Job().run(input=[...], map=fun_map, reduce=fun_reduce)` | [`Job::new`]`(program).input(..).output_dir(..).run(&executor)` |
//! | `map(line, params)`, `reduce(iter, params)`, `combiner`, `partition` | a [`MapReduce`] program: [`map`](MapReduce::map), [`reduce`](MapReduce::reduce), [`combiner`](MapReduce::combiner), [`partition`](MapReduce::partition) (a stable hash by default) |
//! | `params` | the program value's own fields |
//! | `partitions=N` | [`Job::partitions`] |
//! | `result_iterator(job.wait())` | partition files `part-NNNNN` (`key<TAB>value` text, or [`OutputFormat::Binary`] read with [`read_binary`]) and a `_SUCCESS` marker with the counters |
//! | DDFS, the Disco master | a directory the workers share; the executor (threads, processes, or task-queue workers on Redis) |
//!
//! A program is found by name on the worker that runs it: its type implements
//! [`MapReduce`] and is registered with [`register!`]. A job travels as the arguments
//! of two registered braid tasks, `braid.mapreduce.map` and `braid.mapreduce.reduce`,
//! so the same job runs on a [`ThreadPool`], a [`ProcessPool`] or a task-queue
//! [`App`] whose workers run the same binary (or `braid worker`).
//!
//! Intermediate data stays within a memory budget: map tasks spill sorted runs to
//! disk and reducers merge them (an external sort). Output is deterministic: keys are
//! sorted within each partition and values reach the reducer in a fixed order. Failed
//! tasks run again; a job that fails commits nothing.
//!
//! ```no_run
//! use braid_mapreduce::{Job, WordCount};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     braid_core::init();
//!     let pool = braid_sync::ThreadPool::new(4)?;
//!     let report = Job::new(WordCount)
//!         .input("books/*.txt")
//!         .output_dir("counts")
//!         .run(&pool)?;
//!     println!("{} distinct words in {:?}", report.reduce.records_out, report.files);
//!     Ok(())
//! }
//! ```
//!
//! [`ThreadPool`]: https://docs.rs/braid-sync
//! [`ProcessPool`]: https://docs.rs/braid-proc
//! [`App`]: https://docs.rs/braid-taskq
// Only two hints in `strtable` (a cache prefetch and madvise for huge pages) get past this
// lint, each with its SAFETY comment; nothing else may.
#![deny(unsafe_code)]

mod error;
mod input;
mod job;
mod program;
mod records;
mod sort;
mod strtable;
mod task;
mod tokenize;
mod wordcount;

pub use error::{BoxError, Error, Result};
pub use input::{InputFormat, Record};
pub use job::{
    Event, Job, JobReport, MapCounters, OutputFormat, Phase, ReduceCounters, SUCCESS_MARKER,
    read_report,
};
pub use program::{
    Combiner, Emitter, MapReduce, ProgramEntry, Values, hash_partition, lookup_program,
    programs_registered,
};
pub use records::{BinaryRecords, read_binary};
pub use tokenize::{PythonSplit, is_python_whitespace, python_split};
pub use wordcount::WordCount;

/// Support for [`register!`]; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
