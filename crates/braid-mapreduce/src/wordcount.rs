//! The built-in word count, the contract `braid mapreduce wordcount` keeps.

use serde::{Deserialize, Serialize};

use crate::{BoxError, Combiner, Emitter, MapReduce, Record, Values, python_split};

/// Word count as Python users write it: each line split exactly as Python's
/// `str.split()` splits it (Unicode whitespace as Python defines it, see
/// [`is_python_whitespace`](crate::is_python_whitespace)), words counted as they are
/// (no case folding), output `word<TAB>count`. The same counts as
/// `collections.Counter(w for line in f for w in line.split())`.
///
/// Registered as `braid.mapreduce.wordcount`, so `braid worker` processes can run it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordCount;

impl MapReduce for WordCount {
    const NAME: &'static str = "braid.mapreduce.wordcount";
    type Key = String;
    type Value = u64;
    type Output = u64;

    fn map(&self, record: Record<'_>, emit: &mut Emitter<'_, String, u64>) -> Result<(), BoxError> {
        for word in python_split(record.text()) {
            emit.emit_str(word, 1);
        }
        Ok(())
    }

    fn combiner(&self) -> Option<Combiner<String, u64>> {
        Some(|_, acc, n| *acc += n)
    }

    fn reduce(&self, _word: &String, counts: Values<'_, u64>) -> Result<u64, BoxError> {
        Ok(counts.sum())
    }
}

crate::register!(WordCount);
