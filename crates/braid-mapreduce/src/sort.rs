//! The external sort: a map-side buffer that spills sorted runs to disk when it
//! outgrows its memory budget, and the k-way merge that reads them back in key order.

use std::borrow::Borrow;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use hashbrown::HashTable;
use std::hash::{BuildHasher, Hash};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde::{Deserialize as De, Serialize as Ser};

use crate::Result;
use crate::program::Combiner;
use crate::records::{RawReader, RecordWriter};
use crate::strtable::{Found, MAX_KEY, Packed, StrTable};

/// Write buffer of a run file.
const WRITE_BUFFER: usize = 256 * 1024;

/// One sorted run of one partition, written by a map task.
#[derive(Debug, Clone, PartialEq, Eq, Ser, De)]
pub(crate) struct RunFile {
    pub partition: u32,
    pub path: PathBuf,
    pub records: u64,
}

/// The map side's buffer of emitted pairs, with an estimate of the memory it holds.
///
/// With a combiner, the combined entries sit in `entries` in the order their keys
/// first came, and a hash table of their indices finds them. The table's slots are 4
/// bytes, not a whole `(K, V)`, so it stays small enough for the caches, and the keys
/// met most often (which come first) are packed together at the front of `entries`:
/// a lookup of a frequent key touches little memory. A key borrowed as `&str` is copied
/// only on its first insert.
///
/// String keys emitted as `&str` ([`push_str`](MapBuffer::push_str)) are combined in
/// their own table, [`StrTable`], which holds short keys inline and makes them `K`s only
/// when it spills; it comes out already sorted.
pub(crate) struct MapBuffer<K, V> {
    combiner: Option<Combiner<K, V>>,
    hasher: hashbrown::DefaultHashBuilder,
    /// Indices into `entries`.
    table: HashTable<u32>,
    entries: Vec<(K, V)>,
    /// Keys pushed as `&str`, combined.
    strings: StrTable<V>,
    /// `&str` keys of up to 16 bytes pushed, not combined yet.
    pending: VecDeque<PendingStr<K, V>>,
    /// `K`s of combined pending keys, for reuse by the next ones.
    spare_keys: Vec<K>,
    /// How `&str` keys become `K`s (set by the first `push_str`).
    str_keys: Option<StrKeys<K>>,
    /// The key handed to the combiner for a `&str` key (its allocation reused).
    str_key: Option<K>,
    /// Uncombined pairs: every pair without a combiner; with one, only the pairs that
    /// came after `entries` reached [`MAX_ENTRIES`].
    pairs: Vec<(K, V)>,
    bytes: usize,
    scratch: Vec<u8>,
    emitted: u64,
}

/// How `&str` keys become `K`s, for a buffer whose `K` is `String`.
struct StrKeys<K> {
    to_key: fn(&str) -> K,
    /// Overwrites a `K` with a key, reusing its allocation.
    refill: fn(&str, &mut K),
}

impl<K> Clone for StrKeys<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for StrKeys<K> {}

/// A `&str` key pushed, waiting for its table memory.
struct PendingStr<K, V> {
    packed: Packed,
    hash: u64,
    /// The key as a `K`, for the combiner.
    key: K,
    value: V,
}

impl<K> StrKeys<K> {
    /// `key` as a `K` in `scratch`, for the combiner.
    #[inline]
    fn scratch<'a>(&self, scratch: &'a mut Option<K>, key: &str) -> &'a K {
        match scratch {
            Some(k) => {
                (self.refill)(key, k);
                k
            }
            None => scratch.insert((self.to_key)(key)),
        }
    }
}

/// `&str` keys whose lookups are in flight: each key's slot is prefetched when it is
/// pushed, and it is combined `IN_FLIGHT` pushes later, by when the slot has usually
/// arrived from memory.
const IN_FLIGHT: usize = 10;

/// The most combined entries a buffer indexes (the table's indices are `u32`); tiny in
/// unit tests, to exercise what comes after.
const MAX_ENTRIES: usize = if cfg!(test) { 5 } else { u32::MAX as usize };

impl<K: Serialize + Ord + Hash, V: Serialize> MapBuffer<K, V> {
    pub(crate) fn new(combiner: Option<Combiner<K, V>>) -> Self {
        MapBuffer {
            combiner,
            hasher: hashbrown::DefaultHashBuilder::default(),
            table: HashTable::new(),
            entries: Vec::new(),
            strings: StrTable::new(),
            pending: VecDeque::with_capacity(IN_FLIGHT + 1),
            spare_keys: Vec::with_capacity(IN_FLIGHT + 1),
            str_keys: None,
            str_key: None,
            pairs: Vec::new(),
            bytes: 0,
            scratch: Vec::new(),
            emitted: 0,
        }
    }

    /// What one new entry costs: its serialised size (a stand-in for the heap memory
    /// its key and value hold) plus the slot it takes, counted twice for the spare
    /// room a growing table or vector keeps.
    fn cost(&mut self, key: &K, value: &V) -> usize {
        self.scratch.clear();
        let scratch = std::mem::take(&mut self.scratch);
        // A pair serde cannot encode costs its slot only; writing the run reports it.
        let encoded = postcard::to_extend(&(key, value), scratch).unwrap_or_default();
        let heap = encoded.len();
        self.scratch = encoded;
        let slot = std::mem::size_of::<(K, V)>();
        heap + 2 * slot + if self.combiner.is_some() { 8 } else { 0 }
    }

    pub(crate) fn push(&mut self, key: K, value: V) {
        match self.combiner {
            Some(combine) => {
                let hash = self.hasher.hash_one(&key);
                let entries = &mut self.entries;
                if let Some(&i) = self.table.find(hash, |&i| entries[i as usize].0 == key) {
                    let (k, acc) = &mut entries[i as usize];
                    self.emitted += 1;
                    combine(k, acc, value);
                } else {
                    self.insert(hash, key, value);
                }
            }
            None => self.push_pair(key, value),
        }
    }

    pub(crate) fn push_ref<Q>(&mut self, key: &Q, value: V)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.combiner {
            Some(combine) => {
                // `Borrow` promises that `Q` hashes as `K` does.
                let hash = self.hasher.hash_one(key);
                let entries = &mut self.entries;
                if let Some(&i) = self.table.find(hash, |&i| {
                    Borrow::<Q>::borrow(&entries[i as usize].0) == key
                }) {
                    let (k, acc) = &mut entries[i as usize];
                    self.emitted += 1;
                    combine(k, acc, value);
                } else {
                    self.insert(hash, key.to_owned(), value);
                }
            }
            None => self.push_pair(key.to_owned(), value),
        }
    }

    /// Pushes a pair whose key is text: with a combiner, a key met before costs no
    /// allocation and, when up to 16 bytes long, no pointer chasing. Such keys are
    /// combined a few pushes later, once the table memory they need, prefetched now,
    /// has arrived.
    #[inline]
    pub(crate) fn push_str(&mut self, key: &str, value: V)
    where
        str: ToOwned<Owned = K>,
    {
        let Some(combine) = self.combiner.filter(|_| key.len() < MAX_KEY) else {
            self.push_pair(key.to_owned(), value);
            return;
        };
        let keys = StrKeys {
            to_key: |s: &str| s.to_owned(),
            refill: |s: &str, k: &mut K| s.clone_into(k),
        };
        self.str_keys = Some(keys);
        self.emitted += 1;
        let (packed, hash) = self.strings.pack(key.as_bytes());
        if !packed.is_inline() {
            match self.strings.find(key.as_bytes()) {
                (Found::At(i), _) => {
                    let k = keys.scratch(&mut self.str_key, key);
                    match self.strings.value_mut(i) {
                        Some(acc) => combine(k, acc, value),
                        None => self.push_uncombined(key.to_owned(), value),
                    }
                }
                (Found::Vacant(slot), hash) => {
                    if self.strings.len() >= MAX_ENTRIES {
                        self.push_uncombined(key.to_owned(), value);
                    } else {
                        self.bytes += self.str_cost(key.len(), &value);
                        self.strings.insert(slot, hash, key.as_bytes(), value);
                    }
                }
            }
            return;
        }
        self.strings.prefetch(hash);
        // Each pending key keeps a `K` copy for the combiner, made now that it is text.
        let k = match self.spare_keys.pop() {
            Some(mut k) => {
                (keys.refill)(key, &mut k);
                k
            }
            None => (keys.to_key)(key),
        };
        self.pending.push_back(PendingStr {
            packed,
            hash,
            key: k,
            value,
        });
        if self.pending.len() > IN_FLIGHT
            && let Some(p) = self.pending.pop_front()
        {
            self.combine_inline(combine, p);
        }
    }

    /// Combines every pending `&str` key.
    fn flush_pending(&mut self) {
        let Some(combine) = self.combiner else {
            return;
        };
        while let Some(p) = self.pending.pop_front() {
            self.combine_inline(combine, p);
        }
    }

    /// Combines one pushed `&str` key of up to 16 bytes.
    #[inline]
    fn combine_inline(&mut self, combine: Combiner<K, V>, p: PendingStr<K, V>) {
        match self.strings.find_inline(&p.packed, p.hash) {
            Found::At(i) => match self.strings.value_mut(i) {
                Some(acc) => {
                    combine(&p.key, acc, p.value);
                    self.spare_keys.push(p.key);
                }
                None => self.push_uncombined(p.key, p.value),
            },
            Found::Vacant(slot) => {
                if self.strings.len() >= MAX_ENTRIES {
                    self.push_uncombined(p.key, p.value);
                } else {
                    self.bytes += self.str_cost(p.packed.len(), &p.value);
                    self.strings.insert_inline(slot, p.hash, p.packed, p.value);
                    self.spare_keys.push(p.key);
                }
            }
        }
    }

    /// What a new entry of `strings` costs: its serialised size and its place in the
    /// table (with a long key's copy in the table's arena).
    fn str_cost(&mut self, key_len: usize, value: &V) -> usize {
        self.scratch.clear();
        let scratch = std::mem::take(&mut self.scratch);
        let encoded = postcard::to_extend(value, scratch).unwrap_or_default();
        let value_len = encoded.len();
        self.scratch = encoded;
        let arena = if key_len > 16 { 2 * key_len } else { 0 };
        key_len + 1 + value_len + arena + StrTable::<V>::entry_cost()
    }

    /// Adds a key the combined entries do not hold yet.
    fn insert(&mut self, hash: u64, key: K, value: V) {
        if self.entries.len() >= MAX_ENTRIES {
            // Beyond what the table indexes (a budget of hundreds of GiB): kept
            // uncombined, which the spill sorts after the combined entries.
            self.push_pair(key, value);
            return;
        }
        self.emitted += 1;
        self.bytes += self.cost(&key, &value);
        let index = self.entries.len() as u32;
        self.entries.push((key, value));
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.table
            .insert_unique(hash, index, |&i| hasher.hash_one(&entries[i as usize].0));
    }

    fn push_pair(&mut self, key: K, value: V) {
        self.emitted += 1;
        self.push_uncombined(key, value);
    }

    /// Keeps a pair, counted as emitted already, uncombined.
    fn push_uncombined(&mut self, key: K, value: V) {
        self.bytes += self.cost(&key, &value);
        self.pairs.push((key, value));
    }

    /// The estimated memory held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many pairs the map function emitted.
    pub(crate) fn emitted(&self) -> u64 {
        self.emitted
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
            && self.strings.is_empty()
            && self.pending.is_empty()
            && self.pairs.is_empty()
    }

    /// Takes the entries of `strings` out as `K`s, sorted (a `String`'s order is its
    /// bytes' order).
    fn drain_strings(&mut self) -> Result<Vec<(K, V)>> {
        self.flush_pending();
        let mut out = Vec::with_capacity(self.strings.len());
        let Some(StrKeys { to_key, .. }) = self.str_keys else {
            return Ok(out);
        };
        let mut bad = false;
        self.strings
            .drain_sorted(|bytes, v| match std::str::from_utf8(bytes) {
                Ok(s) => out.push((to_key(s), v)),
                Err(_) => bad = true,
            });
        if bad {
            // The table holds only what came in as `&str`.
            return Err(crate::Error::Program(
                "internal error: a combined string key is not UTF-8".into(),
            ));
        }
        Ok(out)
    }

    /// Every combined pair, one per key: `entries`, and the keys of `strings` (combined
    /// with an equal key of `entries`, if a program pushed a key both ways); and
    /// whether they are sorted already (when they all came from `strings`).
    fn drain_combined(&mut self) -> Result<(Vec<(K, V)>, bool)> {
        let strings = self.drain_strings()?;
        if self.entries.is_empty() {
            self.table.clear();
            return Ok((strings, true));
        }
        let mut combined = Vec::with_capacity(self.entries.len() + strings.len());
        let mut rest = Vec::new();
        match self.combiner {
            Some(combine) => {
                let (entries, hasher) = (&mut self.entries, &self.hasher);
                for (k, v) in strings {
                    let hash = hasher.hash_one(&k);
                    match self.table.find(hash, |&i| entries[i as usize].0 == k) {
                        Some(&i) => combine(&k, &mut entries[i as usize].1, v),
                        None => rest.push((k, v)),
                    }
                }
            }
            None => rest = strings,
        }
        self.table.clear();
        combined.append(&mut self.entries);
        combined.extend(rest);
        Ok((combined, false))
    }

    /// Writes everything buffered as one sorted run per partition (files
    /// `run-R-part-P` in `dir`) and empties the buffer.
    pub(crate) fn spill(
        &mut self,
        dir: &Path,
        run: u32,
        partitions: u32,
        partition_of: &dyn Fn(&K) -> Result<u32>,
    ) -> Result<Vec<RunFile>> {
        let mut parts: Vec<Vec<(K, V)>> = (0..partitions).map(|_| Vec::new()).collect();
        // Combined entries have one pair per key: an unstable sort gives one order.
        // Uncombined pairs keep the order they came in (after any combined entry).
        let (combined, presorted) = match self.drain_combined() {
            Ok(c) => c,
            Err(e) => {
                self.pairs.clear();
                self.bytes = 0;
                return Err(e);
            }
        };
        let sorted_unique = self.pairs.is_empty();
        let drained = combined.into_iter().chain(self.pairs.drain(..));
        let mut failure = None;
        for (k, v) in drained {
            match partition_of(&k) {
                Ok(p) => parts[p as usize].push((k, v)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        self.bytes = 0;
        if let Some(e) = failure {
            return Err(e);
        }
        let mut runs = Vec::new();
        for (p, mut pairs) in parts.into_iter().enumerate() {
            if pairs.is_empty() {
                continue;
            }
            if sorted_unique && presorted {
                // Partitioning kept the order.
                debug_assert!(pairs.is_sorted_by(|a, b| a.0 < b.0));
            } else if sorted_unique {
                pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            } else {
                // Stable: equal keys keep the order they were emitted in.
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
            }
            let path = dir.join(format!("run-{run:04}-part-{p:05}"));
            let mut writer = RecordWriter::create(&path, WRITE_BUFFER)?;
            for (k, v) in &pairs {
                writer.write(k, v)?;
            }
            let records = writer.records();
            writer.finish()?;
            runs.push(RunFile {
                partition: p as u32,
                path,
                records,
            });
        }
        Ok(runs)
    }
}

/// The head record of one source in the merge.
struct Head<K, V> {
    key: K,
    value: V,
    source: usize,
}

impl<K: Ord, V> PartialEq for Head<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<K: Ord, V> Eq for Head<K, V> {}
impl<K: Ord, V> PartialOrd for Head<K, V> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord, V> Ord for Head<K, V> {
    /// By key, then by source: equal keys come out in source order, so the merge is
    /// stable and the reducer sees values in the same order on every run.
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .cmp(&other.key)
            .then(self.source.cmp(&other.source))
    }
}

/// A k-way merge of sorted run files, in key order (stable across sources).
pub(crate) struct Merge<K, V> {
    sources: Vec<RawReader>,
    heap: BinaryHeap<Reverse<Head<K, V>>>,
    records: u64,
}

impl<K: DeserializeOwned + Ord, V: DeserializeOwned> Merge<K, V> {
    /// Opens every file (each sorted by key) with a read buffer of `buffer` bytes.
    pub(crate) fn open(paths: &[PathBuf], buffer: usize) -> Result<Self> {
        let mut merge = Merge {
            sources: Vec::with_capacity(paths.len()),
            heap: BinaryHeap::with_capacity(paths.len()),
            records: 0,
        };
        for path in paths {
            merge.sources.push(RawReader::open(path, buffer)?);
        }
        for source in 0..merge.sources.len() {
            merge.refill(source)?;
        }
        Ok(merge)
    }

    fn refill(&mut self, source: usize) -> Result<()> {
        let reader = &mut self.sources[source];
        if let Some(raw) = reader.next_raw()? {
            let (key, value) =
                postcard::from_bytes::<(K, V)>(raw).map_err(|e| crate::Error::Corrupt {
                    path: reader.path().to_path_buf(),
                    message: format!("a record does not decode: {e}"),
                })?;
            self.heap.push(Reverse(Head { key, value, source }));
        }
        Ok(())
    }

    /// The smallest remaining record.
    pub(crate) fn pop(&mut self) -> Result<Option<(K, V)>> {
        let Some(Reverse(head)) = self.heap.pop() else {
            return Ok(None);
        };
        self.records += 1;
        self.refill(head.source)?;
        Ok(Some((head.key, head.value)))
    }

    /// The key of the smallest remaining record.
    pub(crate) fn peek_key(&self) -> Option<&K> {
        self.heap.peek().map(|Reverse(h)| &h.key)
    }

    /// How many records were taken out.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }
}

/// The most files merged at once; more are merged in passes.
pub(crate) const FAN_IN: usize = 64;

/// Merges `paths` (sorted runs, in source order) in passes of at most [`FAN_IN`] files
/// until at most `FAN_IN` remain, writing the intermediate runs into `dir`. The order
/// of equal keys is kept, because each pass merges consecutive sources stably.
pub(crate) fn reduce_fan_in<K, V>(
    mut paths: Vec<PathBuf>,
    dir: &Path,
    buffer: usize,
) -> Result<Vec<PathBuf>>
where
    K: Serialize + DeserializeOwned + Ord,
    V: Serialize + DeserializeOwned,
{
    let mut pass = 0;
    while paths.len() > FAN_IN {
        let mut next = Vec::new();
        for (i, group) in paths.chunks(FAN_IN).enumerate() {
            if group.len() == 1 {
                next.push(group[0].clone());
                continue;
            }
            let out = dir.join(format!("merge-{pass:02}-{i:05}"));
            let mut merge = Merge::<K, V>::open(group, buffer)?;
            let mut writer = RecordWriter::create(&out, WRITE_BUFFER)?;
            while let Some((k, v)) = merge.pop()? {
                writer.write(&k, &v)?;
            }
            writer.finish()?;
            next.push(out);
        }
        paths = next;
        pass += 1;
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn partition(k: &String) -> Result<u32> {
        Ok(crate::hash_partition(k, 3))
    }

    /// Emits `pairs` through a buffer that spills every `spill_every` pairs, then merges
    /// each partition's runs: the result is the in-memory grouping of the same pairs.
    fn spill_and_merge(
        pairs: &[(String, u64)],
        spill_every: usize,
        combine: bool,
    ) -> BTreeMap<String, Vec<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let combiner: Option<Combiner<String, u64>> = if combine {
            Some(|_, acc, v| *acc += v)
        } else {
            None
        };
        let mut buffer = MapBuffer::new(combiner);
        let mut runs = Vec::new();
        let mut run = 0;
        for (i, (k, v)) in pairs.iter().enumerate() {
            match i % 3 {
                0 => buffer.push(k.clone(), *v),
                1 => buffer.push_ref(k.as_str(), *v),
                _ => buffer.push_str(k, *v),
            }
            if (i + 1) % spill_every == 0 {
                runs.extend(buffer.spill(dir.path(), run, 3, &partition).unwrap());
                run += 1;
            }
        }
        runs.extend(buffer.spill(dir.path(), run, 3, &partition).unwrap());
        assert_eq!(buffer.emitted(), pairs.len() as u64);
        let mut out = BTreeMap::new();
        for p in 0..3 {
            let paths: Vec<PathBuf> = runs
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| r.path.clone())
                .collect();
            let merged_dir = tempfile::tempdir().unwrap();
            // A tiny fan-in is exercised by the dedicated test below.
            let paths = reduce_fan_in::<String, u64>(paths, merged_dir.path(), 4096).unwrap();
            let mut merge = Merge::<String, u64>::open(&paths, 4096).unwrap();
            let mut last: Option<String> = None;
            while let Some((k, v)) = merge.pop().unwrap() {
                assert_eq!(partition(&k).unwrap(), p);
                if let Some(l) = &last {
                    assert!(l <= &k, "keys out of order: {l} then {k}");
                }
                last = Some(k.clone());
                out.entry(k).or_insert_with(Vec::new).push(v);
            }
        }
        out
    }

    proptest! {
        // Each case writes files: fewer cases keep the suite quick on a loaded machine.
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn spill_and_merge_equals_in_memory(
            pairs in proptest::collection::vec(("[a-d]{1,3}", 0u64..100), 0..300),
            spill_every in 1usize..50,
        ) {
            let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            for (k, v) in &pairs {
                expected.entry(k.clone()).or_default().push(*v);
            }
            // Without a combiner: every value, in emission order (the merge is stable).
            prop_assert_eq!(&spill_and_merge(&pairs, spill_every, false), &expected);
            // With one: the sums agree.
            let sums: BTreeMap<String, u64> = spill_and_merge(&pairs, spill_every, true)
                .into_iter().map(|(k, v)| (k, v.iter().sum())).collect();
            let expected_sums: BTreeMap<String, u64> = expected
                .into_iter().map(|(k, v)| (k, v.iter().sum())).collect();
            prop_assert_eq!(sums, expected_sums);
        }
    }

    #[test]
    fn many_runs_merge_in_passes_and_stay_stable() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for i in 0..(FAN_IN * 2 + 5) {
            let path = dir.path().join(format!("r{i}"));
            let mut w = RecordWriter::create(&path, 4096).unwrap();
            w.write("k", &(i as u64)).unwrap();
            w.write(&format!("z{i:04}"), &0u64).unwrap();
            w.finish().unwrap();
            paths.push(path);
        }
        let merged = reduce_fan_in::<String, u64>(paths, dir.path(), 4096).unwrap();
        assert!(merged.len() <= FAN_IN);
        let mut merge = Merge::<String, u64>::open(&merged, 4096).unwrap();
        let mut ks = Vec::new();
        while let Some((k, v)) = merge.pop().unwrap() {
            if k == "k" {
                ks.push(v);
            }
        }
        assert_eq!(ks, (0..(FAN_IN * 2 + 5) as u64).collect::<Vec<_>>());
        assert_eq!(merge.records(), 2 * (FAN_IN * 2 + 5) as u64);
    }
}
