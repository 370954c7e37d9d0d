//! Files of serialised records: the sorted runs between map and reduce, and the binary
//! output format. A file is a magic header, then records, each a LEB128 length and the
//! postcard encoding of a `(key, value)` pair.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// The first bytes of every record file.
pub(crate) const MAGIC: &[u8; 8] = b"BRMR\x01rec";

/// Writes records to a file.
pub(crate) struct RecordWriter {
    path: PathBuf,
    out: BufWriter<File>,
    scratch: Vec<u8>,
    records: u64,
    bytes: u64,
}

impl RecordWriter {
    /// Creates (truncates) `path` and writes the header.
    pub(crate) fn create(path: &Path, buffer: usize) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut out = BufWriter::with_capacity(buffer, file);
        out.write_all(MAGIC).map_err(|e| Error::io(path, e))?;
        Ok(RecordWriter {
            path: path.to_path_buf(),
            out,
            scratch: Vec::new(),
            records: 0,
            bytes: MAGIC.len() as u64,
        })
    }

    /// Appends one `(key, value)` record.
    pub(crate) fn write<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<()> {
        self.scratch.clear();
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch = postcard::to_extend(&(key, value), scratch).map_err(|e| Error::Corrupt {
            path: self.path.clone(),
            message: format!("a record does not encode: {e}"),
        })?;
        self.write_encoded(&scratch)?;
        self.scratch = scratch;
        Ok(())
    }

    /// Appends one record that is encoded already.
    pub(crate) fn write_encoded(&mut self, record: &[u8]) -> Result<()> {
        let mut len = [0u8; 10];
        let n = leb128(record.len() as u64, &mut len);
        self.out
            .write_all(&len[..n])
            .and_then(|()| self.out.write_all(record))
            .map_err(|e| Error::io(&self.path, e))?;
        self.records += 1;
        self.bytes += (n + record.len()) as u64;
        Ok(())
    }

    /// How many records were written.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Flushes and syncs the file to disk; returns the bytes written.
    pub(crate) fn finish(self) -> Result<u64> {
        let path = self.path;
        let file = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        Ok(self.bytes)
    }
}

fn leb128(mut v: u64, out: &mut [u8; 10]) -> usize {
    let mut n = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out[n] = byte;
            return n + 1;
        }
        out[n] = byte | 0x80;
        n += 1;
    }
}

/// Reads the raw records of a file in order.
pub(crate) struct RawReader {
    path: PathBuf,
    input: BufReader<File>,
    record: Vec<u8>,
}

impl RawReader {
    /// Opens `path` and checks the header.
    pub(crate) fn open(path: &Path, buffer: usize) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut input = BufReader::with_capacity(buffer, file);
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic).map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            message: format!("no header: {e}"),
        })?;
        if &magic != MAGIC {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                message: "not a braid record file (bad header)".into(),
            });
        }
        Ok(RawReader {
            path: path.to_path_buf(),
            input,
            record: Vec::new(),
        })
    }

    /// The next record's bytes, or `None` at the end of the file.
    pub(crate) fn next_raw(&mut self) -> Result<Option<&[u8]>> {
        let mut len: u64 = 0;
        let mut shift = 0;
        let mut first = true;
        loop {
            let mut byte = [0u8; 1];
            match self.input.read(&mut byte) {
                Ok(0) if first => return Ok(None),
                Ok(0) => return Err(self.corrupt("the file ends inside a record length")),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&self.path, e)),
            }
            first = false;
            if shift > 63 {
                return Err(self.corrupt("a record length is too long"));
            }
            len |= u64::from(byte[0] & 0x7f) << shift;
            shift += 7;
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let len = usize::try_from(len).map_err(|_| self.corrupt("a record is too large"))?;
        self.record.resize(len, 0);
        self.input.read_exact(&mut self.record).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.corrupt("the file ends inside a record")
            } else {
                Error::io(&self.path, e)
            }
        })?;
        Ok(Some(&self.record))
    }

    fn corrupt(&self, message: &str) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }

    /// The file read.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the `(key, value)` records of a file written in the binary output format
/// ([`OutputFormat::Binary`](crate::OutputFormat::Binary)), in order.
///
/// ```no_run
/// # fn main() -> Result<(), braid_mapreduce::Error> {
/// for record in braid_mapreduce::read_binary::<String, u64>("out/part-00000".as_ref())? {
///     let (word, count) = record?;
///     println!("{word}\t{count}");
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened; [`Error::Corrupt`] when it is not a
/// braid record file. Each item is an error when a record does not decode as `(K, V)`.
pub fn read_binary<K: DeserializeOwned, V: DeserializeOwned>(
    path: &Path,
) -> Result<BinaryRecords<K, V>> {
    Ok(BinaryRecords {
        reader: RawReader::open(path, 64 * 1024)?,
        done: false,
        _types: PhantomData,
    })
}

/// The iterator returned by [`read_binary`].
pub struct BinaryRecords<K, V> {
    reader: RawReader,
    done: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K: DeserializeOwned, V: DeserializeOwned> Iterator for BinaryRecords<K, V> {
    type Item = Result<(K, V)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let outcome = match self.reader.next_raw() {
            Ok(None) => {
                self.done = true;
                return None;
            }
            Ok(Some(raw)) => postcard::from_bytes::<(K, V)>(raw).map_err(|e| e.to_string()),
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        Some(outcome.map_err(|message| {
            self.done = true;
            Error::Corrupt {
                path: self.reader.path().to_path_buf(),
                message: format!(
                    "a record does not decode as ({}, {}): {message}",
                    std::any::type_name::<K>(),
                    std::any::type_name::<V>()
                ),
            }
        }))
    }
}

impl<K, V> std::fmt::Debug for BinaryRecords<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinaryRecords")
            .field("path", &self.reader.path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Each case writes files: fewer cases keep the suite quick on a loaded machine.
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn records_round_trip(records in proptest::collection::vec((".{0,20}", any::<u64>()), 0..200)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("r");
            let mut w = RecordWriter::create(&path, 4096).unwrap();
            for (k, v) in &records {
                w.write(k, v).unwrap();
            }
            prop_assert_eq!(w.records(), records.len() as u64);
            w.finish().unwrap();
            let back: Vec<(String, u64)> = read_binary(&path).unwrap().collect::<Result<_>>().unwrap();
            prop_assert_eq!(back, records);
        }
    }

    #[test]
    fn truncated_files_are_corrupt_not_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let mut w = RecordWriter::create(&path, 4096).unwrap();
        w.write("a long enough key", &7u64).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let mut it = read_binary::<String, u64>(&path).unwrap();
        assert!(matches!(it.next(), Some(Err(Error::Corrupt { .. }))));
        assert!(it.next().is_none());
        std::fs::write(&path, b"nonsense").unwrap();
        assert!(matches!(
            read_binary::<String, u64>(&path),
            Err(Error::Corrupt { .. })
        ));
    }
}
