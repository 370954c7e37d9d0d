//! What a job runs: a [`MapReduce`] program, registered by name so that any worker
//! (a thread, a process, a task-queue worker on another machine) can find it.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{BoxError, TaskFailure};
use crate::input::Record;
use crate::task::{MapOutput, MapTask, ReduceOutput, ReduceTask};
use crate::{Error, Result};

/// A combiner: folds `value` into `acc`, the value already held for `key` on the map
/// side. It must give the same final answer whichever values it sees together
/// (associative and commutative), because spills decide which values meet.
pub type Combiner<K, V> = fn(key: &K, acc: &mut V, value: V);

/// A MapReduce program, like a Disco job's `map`, `partition`, `combiner` and `reduce`
/// functions; the value itself holds the program's parameters (Disco's `params`).
///
/// Workers find a program by its [`NAME`](MapReduce::NAME), so it must be registered
/// with [`register!`](crate::register) in the binary that runs the workers (the same
/// binary, for threads and processes). The value is serialised into every task, so
/// keep it small.
///
/// Keys are sorted with `Ord` inside each partition, and values reach the reducer in
/// a fixed order, so a job's output is the same on every run. The text output format
/// writes `key<TAB>output` with `Display`.
///
/// ```
/// use braid_mapreduce::{BoxError, Emitter, MapReduce, Record, Values};
/// use serde::{Deserialize, Serialize};
///
/// /// The longest line of each file.
/// #[derive(Serialize, Deserialize)]
/// struct LongestLine;
///
/// impl MapReduce for LongestLine {
///     const NAME: &'static str = "doc.longest_line";
///     type Key = String;
///     type Value = u64;
///     type Output = u64;
///
///     fn map(&self, record: Record<'_>, emit: &mut Emitter<'_, String, u64>) -> Result<(), BoxError> {
///         emit.emit(record.path().display().to_string(), record.text().chars().count() as u64);
///         Ok(())
///     }
///
///     fn combiner(&self) -> Option<braid_mapreduce::Combiner<String, u64>> {
///         Some(|_, acc, v| *acc = (*acc).max(v))
///     }
///
///     fn reduce(&self, _file: &String, values: Values<'_, u64>) -> Result<u64, BoxError> {
///         Ok(values.max().unwrap_or(0))
///     }
/// }
///
/// braid_mapreduce::register!(LongestLine);
/// ```
pub trait MapReduce: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The name workers find the program by; unique in the binary.
    const NAME: &'static str;
    /// The intermediate key.
    type Key: Serialize + DeserializeOwned + Ord + Hash + Display + Send;
    /// The intermediate value.
    type Value: Serialize + DeserializeOwned + Send;
    /// What the reducer makes of a key's values.
    type Output: Serialize + DeserializeOwned + Display + Send;

    /// Turns one input record into `(key, value)` pairs. An error fails the map task,
    /// which is then run again.
    ///
    /// # Errors
    /// Whatever the program decides; the job retries the task, then fails.
    fn map(
        &self,
        record: Record<'_>,
        emit: &mut Emitter<'_, Self::Key, Self::Value>,
    ) -> Result<(), BoxError>;

    /// The partition (in `0..partitions`) a key goes to; by default a hash of the key
    /// that is the same on every machine ([`hash_partition`]).
    fn partition(&self, key: &Self::Key, partitions: u32) -> u32 {
        hash_partition(key, partitions)
    }

    /// The map-side combiner, if any (default: none).
    fn combiner(&self) -> Option<Combiner<Self::Key, Self::Value>> {
        None
    }

    /// Reduces every value of one key. An error fails the reduce task, which is then run
    /// again; when it keeps failing the job fails and commits no output.
    ///
    /// # Errors
    /// Whatever the program decides.
    fn reduce(
        &self,
        key: &Self::Key,
        values: Values<'_, Self::Value>,
    ) -> Result<Self::Output, BoxError>;
}

/// The default partition function: a hash of the key's serialised form (FNV-1a), so
/// that every machine and every run sends a key to the same partition.
pub fn hash_partition<K: Serialize + ?Sized>(key: &K, partitions: u32) -> u32 {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let partitions = partitions.max(1);
    SCRATCH.with(|scratch| {
        let mut buf = std::mem::take(&mut *scratch.borrow_mut());
        buf.clear();
        // Encoding into a Vec fails only for types serde cannot encode at all.
        let hash = match postcard::to_extend(key, buf) {
            Ok(bytes) => {
                let h = fnv1a(&bytes);
                *scratch.borrow_mut() = bytes;
                h
            }
            Err(_) => 0,
        };
        (hash % u64::from(partitions)) as u32
    })
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Mix the high bits down: the modulo only sees the low ones.
    h ^= h >> 32;
    h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16
}

/// Where the map function sends its `(key, value)` pairs.
///
/// Pairs are buffered in memory (combined, when the program has a combiner) and
/// spilled to sorted files on disk when the buffer outgrows the task's share of the
/// memory budget; emitting never blocks on I/O.
pub struct Emitter<'a, K, V> {
    pub(crate) buffer: &'a mut crate::sort::MapBuffer<K, V>,
}

impl<K, V> Emitter<'_, K, V>
where
    K: Serialize + Ord + Hash,
    V: Serialize,
{
    /// Emits one pair.
    pub fn emit(&mut self, key: K, value: V) {
        self.buffer.push(key, value);
    }

    /// Emits one pair with a borrowed key (a `&str` for a `String` key), which is
    /// copied only when the buffer does not hold that key yet: with a combiner, a
    /// repeated key costs no allocation.
    pub fn emit_ref<Q>(&mut self, key: &Q, value: V)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.buffer.push_ref(key, value);
    }

    /// Emits one pair with a text key (for a `String` key): the quickest way to emit
    /// words. With a combiner, a key met before costs no allocation, and a key of up
    /// to 16 bytes is found without following a pointer to it.
    pub fn emit_str(&mut self, key: &str, value: V)
    where
        str: ToOwned<Owned = K>,
    {
        self.buffer.push_str(key, value);
    }
}

impl<K, V> std::fmt::Debug for Emitter<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter").finish_non_exhaustive()
    }
}

/// The values of one key, as the reducer sees them: every value emitted for the key
/// (combined where the program has a combiner), in a fixed order.
pub struct Values<'a, V> {
    pub(crate) inner: &'a mut dyn Iterator<Item = V>,
}

impl<V> Iterator for Values<'_, V> {
    type Item = V;

    fn next(&mut self) -> Option<V> {
        self.inner.next()
    }
}

impl<V> std::fmt::Debug for Values<'_, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Values").finish_non_exhaustive()
    }
}

type MapRunner = fn(&[u8], &MapTask) -> std::result::Result<MapOutput, TaskFailure>;
type ReduceRunner = fn(&[u8], &ReduceTask) -> std::result::Result<ReduceOutput, TaskFailure>;

/// A registered program, as [`register!`](crate::register) records it.
pub struct ProgramEntry {
    name: &'static str,
    pub(crate) run_map: MapRunner,
    pub(crate) run_reduce: ReduceRunner,
}

inventory::collect!(ProgramEntry);

impl ProgramEntry {
    /// The entry of program `P`; used by [`register!`](crate::register).
    pub const fn of<P: MapReduce>() -> Self {
        ProgramEntry {
            name: P::NAME,
            run_map: crate::task::run_map::<P>,
            run_reduce: crate::task::run_reduce::<P>,
        }
    }

    /// The program's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl std::fmt::Debug for ProgramEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgramEntry")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Registers a [`MapReduce`] program so that workers can find it by name:
/// `braid_mapreduce::register!(MyProgram);` at module level (see [`MapReduce`]).
#[macro_export]
macro_rules! register {
    ($program:ty) => {
        $crate::__private::inventory::submit! {
            $crate::ProgramEntry::of::<$program>()
        }
    };
}

struct Programs {
    by_name: HashMap<&'static str, &'static ProgramEntry>,
    duplicates: Vec<&'static str>,
}

fn programs() -> &'static Programs {
    static PROGRAMS: OnceLock<Programs> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let mut by_name = HashMap::new();
        let mut duplicates = Vec::new();
        for entry in inventory::iter::<ProgramEntry> {
            if by_name.insert(entry.name, entry).is_some() {
                tracing::error!(program = entry.name, "MapReduce program registered twice");
                duplicates.push(entry.name);
            }
        }
        Programs {
            by_name,
            duplicates,
        }
    })
}

/// Finds the program registered under `name`.
///
/// # Errors
/// [`Error::UnknownProgram`], or [`Error::DuplicateProgram`] when two share the name.
pub fn lookup_program(name: &str) -> Result<&'static ProgramEntry> {
    let programs = programs();
    if programs.duplicates.contains(&name) {
        return Err(Error::DuplicateProgram(name.to_string()));
    }
    programs
        .by_name
        .get(name)
        .copied()
        .ok_or_else(|| Error::UnknownProgram(name.to_string()))
}

/// The names of every registered program, sorted.
pub fn programs_registered() -> Vec<&'static str> {
    let mut names: Vec<_> = programs().by_name.keys().copied().collect();
    names.sort_unstable();
    names
}
