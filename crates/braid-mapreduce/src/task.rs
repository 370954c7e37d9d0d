//! The two tasks every worker runs, `braid.mapreduce.map` and `braid.mapreduce.reduce`:
//! registered braid tasks whose arguments describe the job, so a thread, a process or a
//! task-queue worker on another machine runs them alike.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Permanent, TaskFailure};
use crate::input::{InputFormat, Split, read_split};
use crate::program::{Emitter, MapReduce, Values, lookup_program};
use crate::records::RecordWriter;
use crate::sort::{FAN_IN, MapBuffer, Merge, RunFile, reduce_fan_in};
use crate::{Error, OutputFormat};

/// What every task of a job shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskSpec {
    pub job_id: String,
    pub program: String,
    pub params: Vec<u8>,
    pub partitions: u32,
    pub input_format: InputFormat,
    pub output_format: OutputFormat,
    /// The job's scratch directory, on the file system every worker shares.
    pub work_dir: PathBuf,
    /// The memory one task may hold, in bytes.
    pub task_memory: u64,
}

/// One attempt of one map task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MapTask {
    pub spec: TaskSpec,
    pub task: u32,
    pub attempt: u32,
    /// The input splits it reads, in order.
    pub splits: Vec<Split>,
}

/// One attempt of one reduce task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReduceTask {
    pub spec: TaskSpec,
    pub partition: u32,
    pub attempt: u32,
    /// The sorted runs of this partition, in map-task order.
    pub inputs: Vec<PathBuf>,
}

/// What a map attempt produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MapOutput {
    pub runs: Vec<RunFile>,
    pub records_in: u64,
    pub bytes_in: u64,
    pub emitted: u64,
    pub records_out: u64,
    pub spills: u32,
}

/// What a reduce attempt produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReduceOutput {
    pub path: PathBuf,
    pub records_in: u64,
    pub records_out: u64,
    pub bytes_out: u64,
}

/// A task's answer: done, or failed in a way another attempt cannot fix. A failure
/// worth retrying is the task's error instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Outcome<T> {
    Done(T),
    Failed(Permanent),
}

fn outcome<T>(result: Result<T, TaskFailure>) -> Result<Outcome<T>, String> {
    match result {
        Ok(v) => Ok(Outcome::Done(v)),
        Err(TaskFailure::Permanent(p)) => Ok(Outcome::Failed(p)),
        Err(TaskFailure::Retry(message)) => Err(message),
    }
}

#[braid_core::task(name = "braid.mapreduce.map")]
fn map_task(task: MapTask) -> Result<Outcome<MapOutput>, String> {
    outcome(
        lookup_program(&task.spec.program)
            .map_err(TaskFailure::from)
            .and_then(|entry| (entry.run_map)(&task.spec.params, &task)),
    )
}

#[braid_core::task(name = "braid.mapreduce.reduce")]
fn reduce_task(task: ReduceTask) -> Result<Outcome<ReduceOutput>, String> {
    outcome(
        lookup_program(&task.spec.program)
            .map_err(TaskFailure::from)
            .and_then(|entry| (entry.run_reduce)(&task.spec.params, &task)),
    )
}

pub(crate) fn map_ref() -> braid_core::TaskRef<(MapTask,), Outcome<MapOutput>> {
    map_task::task()
}

pub(crate) fn reduce_ref() -> braid_core::TaskRef<(ReduceTask,), Outcome<ReduceOutput>> {
    reduce_task::task()
}

fn decode_program<P: MapReduce>(params: &[u8]) -> Result<P, TaskFailure> {
    postcard::from_bytes(params).map_err(|e| {
        TaskFailure::Permanent(Permanent::Params {
            program: P::NAME.to_string(),
            message: e.to_string(),
        })
    })
}

/// Creates the directory of one execution of an attempt. The name ends in a random
/// nonce: a task queue may deliver one message twice, and two executions of one attempt
/// must not write over each other's files. The job's scratch folder must exist: when
/// the job has ended (and removed it), a late execution fails here instead of leaving
/// files behind.
fn execution_dir(work_dir: &Path, name: &str) -> Result<PathBuf, Error> {
    let path = work_dir.join(format!("{name}-{:08x}", fastrand::u32(..)));
    std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// Runs one map attempt of program `P`.
pub(crate) fn run_map<P: MapReduce>(
    params: &[u8],
    task: &MapTask,
) -> Result<MapOutput, TaskFailure> {
    let program: P = decode_program(params)?;
    let spec = &task.spec;
    let dir = execution_dir(
        &spec.work_dir,
        &format!("map-{:06}-a{}", task.task, task.attempt),
    )?;
    let partitions = spec.partitions;
    let partition_of = |key: &P::Key| -> Result<u32, Error> {
        let p = program.partition(key, partitions);
        if p < partitions {
            Ok(p)
        } else {
            Err(Error::BadPartition {
                returned: p,
                partitions,
            })
        }
    };
    let budget = usize::try_from(spec.task_memory).unwrap_or(usize::MAX);
    let mut buffer = MapBuffer::<P::Key, P::Value>::new(program.combiner());
    let mut runs: Vec<RunFile> = Vec::new();
    let mut spills = 0u32;
    let (mut records_in, mut bytes_in) = (0, 0);
    for split in &task.splits {
        let (records, bytes) = read_split(split, spec.input_format, |record| {
            program
                .map(
                    record,
                    &mut Emitter {
                        buffer: &mut buffer,
                    },
                )
                .map_err(|e| {
                    Error::Program(format!(
                        "map of {} at byte {}: {e}",
                        record.path().display(),
                        record.offset()
                    ))
                })?;
            if buffer.bytes() > budget {
                runs.extend(buffer.spill(&dir, spills, partitions, &partition_of)?);
                spills += 1;
            }
            Ok(())
        })?;
        records_in += records;
        bytes_in += bytes;
    }
    if !buffer.is_empty() {
        runs.extend(buffer.spill(&dir, spills, partitions, &partition_of)?);
        spills += 1;
    }
    tracing::debug!(
        task = task.task,
        attempt = task.attempt,
        records_in,
        spills,
        "map task done"
    );
    Ok(MapOutput {
        records_out: runs.iter().map(|r| r.records).sum(),
        runs,
        records_in,
        bytes_in,
        emitted: buffer.emitted(),
        spills,
    })
}

/// The name of partition `p`'s output file.
pub(crate) fn part_name(partition: u32) -> String {
    format!("part-{partition:05}")
}

enum Sink {
    Text(BufWriter<File>, PathBuf, u64),
    Binary(RecordWriter),
}

impl Sink {
    fn create(path: &Path, format: OutputFormat) -> Result<Sink, Error> {
        Ok(match format {
            OutputFormat::Text => {
                let file = File::create(path).map_err(|e| Error::io(path, e))?;
                Sink::Text(
                    BufWriter::with_capacity(256 * 1024, file),
                    path.to_path_buf(),
                    0,
                )
            }
            OutputFormat::Binary => Sink::Binary(RecordWriter::create(path, 256 * 1024)?),
        })
    }

    fn write<K, V>(&mut self, key: &K, value: &V) -> Result<(), Error>
    where
        K: Serialize + std::fmt::Display,
        V: Serialize + std::fmt::Display,
    {
        match self {
            Sink::Text(out, path, lines) => {
                *lines += 1;
                writeln!(out, "{key}\t{value}").map_err(|e| Error::io(&*path, e))
            }
            Sink::Binary(w) => w.write(key, value),
        }
    }

    /// Flushes and syncs; returns the bytes written.
    fn finish(self) -> Result<u64, Error> {
        match self {
            Sink::Text(out, path, _) => {
                let file = out
                    .into_inner()
                    .map_err(|e| Error::io(&path, e.into_error()))?;
                file.sync_all().map_err(|e| Error::io(&path, e))?;
                let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
                Ok(len)
            }
            Sink::Binary(w) => w.finish(),
        }
    }
}

/// Runs one reduce attempt of program `P`: merges the partition's runs, reduces each
/// key's values and writes the partition file in the attempt's own directory (the
/// driver moves it into the output directory once every partition is done).
pub(crate) fn run_reduce<P: MapReduce>(
    params: &[u8],
    task: &ReduceTask,
) -> Result<ReduceOutput, TaskFailure> {
    let program: P = decode_program(params)?;
    let spec = &task.spec;
    let dir = execution_dir(
        &spec.work_dir,
        &format!("reduce-{:05}-a{}", task.partition, task.attempt),
    )?;
    let fan_in = task.inputs.len().clamp(1, FAN_IN) as u64;
    // Two read buffers' worth per open run, inside the task's memory share.
    let buffer = (spec.task_memory / (2 * fan_in)).clamp(4096, 1 << 20) as usize;
    let inputs = reduce_fan_in::<P::Key, P::Value>(task.inputs.clone(), &dir, buffer)?;
    let mut merge = Merge::<P::Key, P::Value>::open(&inputs, buffer)?;
    let path = dir.join(part_name(task.partition));
    let mut sink = Sink::create(&path, spec.output_format)?;
    let mut records_out = 0u64;
    while let Some((key, first)) = merge.pop()? {
        let mut first = Some(first);
        let mut read_error = None;
        let result = {
            let mut values = std::iter::from_fn(|| {
                if let Some(v) = first.take() {
                    return Some(v);
                }
                if merge.peek_key() != Some(&key) {
                    return None;
                }
                match merge.pop() {
                    Ok(Some((_, v))) => Some(v),
                    Ok(None) => None,
                    Err(e) => {
                        read_error = Some(e);
                        None
                    }
                }
            });
            let result = program.reduce(&key, Values { inner: &mut values });
            // Values the reducer left unread still belong to this key.
            values.by_ref().for_each(drop);
            result
        };
        if let Some(e) = read_error {
            return Err(e.into());
        }
        let output = result.map_err(|e| {
            TaskFailure::Retry(
                Error::Program(format!(
                    "reduce of partition {} at key `{key}`: {e}",
                    task.partition
                ))
                .to_string(),
            )
        })?;
        sink.write(&key, &output)?;
        records_out += 1;
    }
    let bytes_out = sink.finish()?;
    Ok(ReduceOutput {
        path,
        records_in: merge.records(),
        records_out,
        bytes_out,
    })
}
