//! The map-side combine table for text keys emitted with
//! [`Emitter::emit_str`](crate::Emitter::emit_str), as word count emits them: a key of
//! up to 16 bytes sits inline in its slot, beside its value, so a lookup touches one
//! cache line (rarely two) and never follows a pointer to a heap string.

use std::hash::BuildHasher;
use std::num::NonZeroU64;

/// Keys of up to this many bytes are held inline.
const INLINE: usize = 16;

/// A key as the table compares it: up to 16 bytes zero-padded into two words with the
/// length; a longer key keeps its first 8 bytes in `lo` and its offset in the arena in
/// `hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Packed {
    lo: u64,
    hi: u64,
    len: u32,
}

impl Packed {
    /// The key's length in bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the whole key is in `lo` and `hi`.
    #[inline]
    pub(crate) fn is_inline(&self) -> bool {
        self.len as usize <= INLINE
    }
}

/// Asks the CPU to bring the cache line at `p` in, without waiting for it: a table
/// lookup started a few keys ahead then finds its memory in cache.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults, whatever the address, and SSE
    // (which has the instruction) is part of every x86-64 CPU.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Reads up to 16 bytes, zero-padded, as two little-endian words, with overlapping
/// loads instead of a byte loop.
#[inline]
fn load16(b: &[u8]) -> (u64, u64) {
    let n = b.len();
    debug_assert!(n <= INLINE);
    let word = |s: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[..8]);
        u64::from_le_bytes(w)
    };
    let half = |s: &[u8]| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&s[..4]);
        u64::from(u32::from_le_bytes(w))
    };
    if n >= 8 {
        let lo = word(b);
        let hi = if n == 8 {
            0
        } else {
            word(&b[n - 8..]) >> (8 * (16 - n))
        };
        (lo, hi)
    } else if n >= 4 {
        // The two halves overlap on equal bytes, so OR puts each byte in its place.
        (half(b) | (half(&b[n - 4..]) << (8 * (n - 4))), 0)
    } else {
        let mut lo = 0u64;
        for (i, &x) in b.iter().enumerate() {
            lo |= u64::from(x) << (8 * i);
        }
        (lo, 0)
    }
}

#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// Below this many bytes a buffer is not worth huge pages.
const HUGE_MIN: usize = 4 << 20;
const HUGE_PAGE: usize = 2 << 20;

/// Asks Linux to back the (untouched) buffer of `v` with 2 MiB pages where it covers
/// whole ones: the table is read at random, and with 4 KiB pages nearly every lookup
/// of a rare key would miss the TLB as well as the cache.
#[allow(unsafe_code)]
fn advise_huge_pages<T>(v: &mut Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < HUGE_MIN {
        return;
    }
    let start = v.as_mut_ptr().cast::<u8>();
    let addr = start as usize;
    let offset = addr.next_multiple_of(HUGE_PAGE) - addr;
    let len = (bytes.saturating_sub(offset) / HUGE_PAGE) * HUGE_PAGE;
    if len == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the range lies inside `v`'s allocation, and MADV_HUGEPAGE changes
        // only how the kernel backs it, never its contents or its validity.
        let advised = unsafe {
            rustix::mm::madvise(
                start.wrapping_add(offset).cast(),
                len,
                rustix::mm::Advice::LinuxHugepage,
            )
        };
        if let Err(e) = advised {
            tracing::debug!(error = %e, "no huge pages for a combine table");
        }
    }
}

/// Keys at least this long go uncombined (their length does not fit in [`Entry::meta`]).
pub(crate) const MAX_KEY: usize = 1 << 31;

/// One combined key and its value, in its slot.
struct Entry<V> {
    lo: u64,
    hi: u64,
    /// The hash's top 32 bits, then bit 31 set (so that it is never zero, and an empty
    /// slot, `None`, takes no more room) and the key's length.
    meta: NonZeroU64,
    value: V,
}

/// A combine table of string keys: open addressing with linear probing, each slot
/// holding a whole entry, so that finding a key of up to 16 bytes touches one cache
/// line (rarely two).
pub(crate) struct StrTable<V> {
    /// A power of two long (or empty), at most 3/4 full.
    slots: Vec<Option<Entry<V>>>,
    /// `32 - log2(slots.len())`: the top bits of a hash's top half pick its first slot.
    shift: u32,
    len: usize,
    /// The bytes of keys longer than [`INLINE`].
    arena: Vec<u8>,
    seeds: [u64; 3],
    long_hasher: hashbrown::DefaultHashBuilder,
}

/// Where a key is, or where it would go: a slot.
pub(crate) enum Found {
    /// The entry in this slot holds the key.
    At(usize),
    /// The key is absent; it would take this slot.
    Vacant(usize),
}

#[inline]
fn meta(hash: u64, len: u32) -> NonZeroU64 {
    // Bit 31 is set: never zero.
    NonZeroU64::new((hash >> 32) << 32 | 1 << 31 | u64::from(len)).unwrap_or(NonZeroU64::MAX)
}

impl<V> StrTable<V> {
    pub(crate) fn new() -> Self {
        let mut rng = fastrand::Rng::new();
        StrTable {
            slots: Vec::new(),
            shift: 32,
            len: 0,
            arena: Vec::new(),
            // Random per table: crafted input cannot make keys collide.
            seeds: [rng.u64(..) | 1, rng.u64(..), rng.u64(..) | 1],
            long_hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Memory one entry takes: its slot, with the spare room a growing table keeps
    /// (from 3/8 to 3/4 full).
    pub(crate) const fn entry_cost() -> usize {
        std::mem::size_of::<Option<Entry<V>>>() * 8 / 3 + 1
    }

    /// The key as the table holds it (its length below [`MAX_KEY`]), and its hash.
    #[inline]
    pub(crate) fn pack(&self, key: &[u8]) -> (Packed, u64) {
        debug_assert!(key.len() < MAX_KEY);
        if key.len() <= INLINE {
            let (lo, hi) = load16(key);
            let [s0, s1, s2] = self.seeds;
            let h = folded_multiply(lo ^ s0, hi ^ s1 ^ key.len() as u64);
            let hash = folded_multiply(h, s2);
            let packed = Packed {
                lo,
                hi,
                len: key.len() as u32,
            };
            (packed, hash)
        } else {
            let (lo, _) = load16(&key[..8]);
            let packed = Packed {
                lo,
                hi: u64::MAX,
                len: key.len() as u32,
            };
            (packed, self.long_hasher.hash_one(key))
        }
    }

    /// Looks `key` (shorter than [`MAX_KEY`]) up; returns where it is or would go, and
    /// its hash.
    #[inline]
    pub(crate) fn find(&self, key: &[u8]) -> (Found, u64) {
        let (p, hash) = self.pack(key);
        let m = meta(hash, p.len);
        let arena = &self.arena;
        let found = if p.is_inline() {
            self.find_with(hash, |e| e.meta == m && e.lo == p.lo && e.hi == p.hi)
        } else {
            self.find_with(hash, |e| {
                let start = e.hi as usize;
                e.meta == m && e.lo == p.lo && arena.get(start..start + key.len()) == Some(key)
            })
        };
        (found, hash)
    }

    /// Looks up an inline key packed by [`pack`](Self::pack) with `hash`.
    #[inline]
    pub(crate) fn find_inline(&self, p: &Packed, hash: u64) -> Found {
        debug_assert!(p.is_inline());
        let m = meta(hash, p.len);
        self.find_with(hash, |e| e.meta == m && e.lo == p.lo && e.hi == p.hi)
    }

    #[inline]
    fn find_with(&self, hash: u64, matches: impl Fn(&Entry<V>) -> bool) -> Found {
        if self.slots.is_empty() {
            return Found::Vacant(usize::MAX);
        }
        let mask = self.slots.len() - 1;
        let mut pos = ((hash >> 32) as usize) >> self.shift;
        loop {
            match &self.slots[pos] {
                None => return Found::Vacant(pos),
                Some(e) if matches(e) => return Found::At(pos),
                Some(_) => pos = (pos + 1) & mask,
            }
        }
    }

    /// Starts loading the slot a key of `hash` is looked up at first.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        if !self.slots.is_empty() {
            let pos = ((hash >> 32) as usize) >> self.shift;
            prefetch(self.slots.as_ptr().wrapping_add(pos));
        }
    }

    /// The value of the entry in slot `slot` (`None` when the slot is empty).
    #[inline]
    pub(crate) fn value_mut(&mut self, slot: usize) -> Option<&mut V> {
        self.slots
            .get_mut(slot)
            .and_then(Option::as_mut)
            .map(|e| &mut e.value)
    }

    /// Adds `key` (shorter than [`MAX_KEY`]), absent: `vacant` is the slot a find
    /// gave, `hash` its hash.
    pub(crate) fn insert(&mut self, vacant: usize, hash: u64, key: &[u8], value: V) {
        let (mut p, _) = self.pack(key);
        if key.len() > INLINE {
            p.hi = self.arena.len() as u64;
            self.arena.extend_from_slice(key);
        }
        self.insert_packed(vacant, hash, p, value);
    }

    /// Adds an inline key packed by [`pack`](Self::pack), absent: `vacant` is the slot
    /// [`find_inline`](Self::find_inline) gave.
    #[inline]
    pub(crate) fn insert_inline(&mut self, vacant: usize, hash: u64, p: Packed, value: V) {
        debug_assert!(p.is_inline());
        self.insert_packed(vacant, hash, p, value);
    }

    /// Adds a key packed by [`pack`](Self::pack) (a long key's bytes already in the
    /// arena), absent: `vacant` is the slot a find gave.
    fn insert_packed(&mut self, vacant: usize, hash: u64, p: Packed, value: V) {
        let mut slot = vacant;
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
            slot = self.vacant_slot(hash >> 32);
        }
        self.slots[slot] = Some(Entry {
            lo: p.lo,
            hi: p.hi,
            meta: meta(hash, p.len),
            value,
        });
        self.len += 1;
    }

    fn vacant_slot(&self, tag: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut pos = (tag as usize) >> self.shift;
        while self.slots[pos].is_some() {
            pos = (pos + 1) & mask;
        }
        pos
    }

    /// Doubles the slots (16 at first), placing each entry again by its hash's top
    /// bits, kept in the entry.
    fn grow(&mut self) {
        let len = (self.slots.len() * 2).max(16);
        let mut slots = Vec::with_capacity(len);
        advise_huge_pages(&mut slots);
        slots.resize_with(len, || None);
        let old = std::mem::replace(&mut self.slots, slots);
        self.shift = 32 - len.trailing_zeros();
        for e in old.into_iter().flatten() {
            let pos = self.vacant_slot(e.meta.get() >> 32);
            self.slots[pos] = Some(e);
        }
    }

    /// Takes every entry out in the byte order of the keys (`str`'s order), as
    /// `(key bytes, value)`, keeping the table's memory for what comes next.
    pub(crate) fn drain_sorted(&mut self, mut each: impl FnMut(&[u8], V)) {
        let mut entries: Vec<Entry<V>> = self.slots.iter_mut().filter_map(Option::take).collect();
        self.len = 0;
        let arena = std::mem::take(&mut self.arena);
        let key_len = |e: &Entry<V>| (e.meta.get() & 0x7fff_ffff) as usize;
        let bytes = |e: &Entry<V>| -> ([u8; INLINE], usize, usize) {
            let len = key_len(e);
            if len <= INLINE {
                let mut b = [0u8; INLINE];
                b[..8].copy_from_slice(&e.lo.to_le_bytes());
                b[8..].copy_from_slice(&e.hi.to_le_bytes());
                (b, usize::MAX, len)
            } else {
                ([0; INLINE], e.hi as usize, len)
            }
        };
        let key = |b: &([u8; INLINE], usize, usize)| -> std::ops::Range<usize> {
            if b.1 == usize::MAX {
                0..b.2
            } else {
                b.1..b.1 + b.2
            }
        };
        entries.sort_unstable_by(|a, b| {
            let (al, bl) = (key_len(a), key_len(b));
            if al <= INLINE && bl <= INLINE {
                // Big-endian words compare as the bytes do; zero padding ties are
                // broken by length (a shorter key is a prefix of the longer).
                (a.lo.swap_bytes(), a.hi.swap_bytes(), al).cmp(&(
                    b.lo.swap_bytes(),
                    b.hi.swap_bytes(),
                    bl,
                ))
            } else {
                let (ab, bb) = (bytes(a), bytes(b));
                let ak = if ab.1 == usize::MAX {
                    &ab.0[key(&ab)]
                } else {
                    &arena[key(&ab)]
                };
                let bk = if bb.1 == usize::MAX {
                    &bb.0[key(&bb)]
                } else {
                    &arena[key(&bb)]
                };
                ak.cmp(bk)
            }
        });
        for e in entries {
            let b = bytes(&e);
            if b.1 == usize::MAX {
                each(&b.0[key(&b)], e.value);
            } else {
                each(&arena[key(&b)], e.value);
            }
        }
        self.arena = arena;
        self.arena.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn load16_pads_with_zeros() {
        for n in 0..=16 {
            let bytes: Vec<u8> = (1..=n as u8).collect();
            let mut padded = [0u8; 16];
            padded[..n].copy_from_slice(&bytes);
            let lo = u64::from_le_bytes(padded[..8].try_into().unwrap());
            let hi = u64::from_le_bytes(padded[8..].try_into().unwrap());
            assert_eq!(load16(&bytes), (lo, hi), "length {n}");
        }
    }

    proptest! {
        #[test]
        fn drains_in_str_order(words in proptest::collection::vec("[a\u{0}é]{0,20}", 0..200)) {
            let mut table = StrTable::<u64>::new();
            for w in &words {
                if let (Found::Vacant(slot), hash) = table.find(w.as_bytes()) {
                    table.insert(slot, hash, w.as_bytes(), 0);
                }
            }
            let mut got = Vec::new();
            table.drain_sorted(|k, _| got.push(String::from_utf8(k.to_vec()).unwrap()));
            let mut expected = words.clone();
            expected.sort();
            expected.dedup();
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn counts_like_a_map(words in proptest::collection::vec("[ab\u{0}é]{0,20}", 0..400)) {
            let mut table = StrTable::<u64>::new();
            let mut expected = std::collections::BTreeMap::new();
            for w in &words {
                match table.find(w.as_bytes()) {
                    (Found::At(i), _) => *table.value_mut(i).unwrap() += 1,
                    (Found::Vacant(slot), hash) => table.insert(slot, hash, w.as_bytes(), 1),
                }
                *expected.entry(w.clone()).or_insert(0) += 1;
            }
            prop_assert_eq!(table.len(), expected.len());
            let mut got = Vec::new();
            table.drain_sorted(|k, v| got.push((String::from_utf8(k.to_vec()).unwrap(), v)));
            let expected: Vec<(String, u64)> = expected.into_iter().collect();
            prop_assert_eq!(got, expected);
            prop_assert!(table.is_empty());
            // Reusable after draining.
            let (Found::Vacant(slot), hash) = table.find(b"again") else {
                panic!("found in an empty table");
            };
            table.insert(slot, hash, b"again", 7);
            prop_assert!(matches!(table.find(b"again").0, Found::At(_)));
        }
    }
}
