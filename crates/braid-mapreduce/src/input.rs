//! Inputs: files and globs, cut into splits, read as UTF-8 records.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How an input file is cut into the records the map function sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum InputFormat {
    /// Lines: records end at `\n`, which is removed with a `\r` before it (Python's
    /// `for line in file` with the line ending stripped).
    #[default]
    Lines,
    /// Records that end at this ASCII byte, which is removed (for example `b'\0'`).
    Records(u8),
}

impl InputFormat {
    fn delimiter(self) -> u8 {
        match self {
            InputFormat::Lines => b'\n',
            InputFormat::Records(d) => d,
        }
    }
}

/// One record given to the map function: its text, the file it came from and where.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    text: &'a str,
    path: &'a Path,
    offset: u64,
}

impl<'a> Record<'a> {
    /// The record's text, without its delimiter.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The input file it was read from.
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// The byte offset in that file where the record starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// A byte range of one input file, read by one map task: the records that start in
/// `start..end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Split {
    pub path: PathBuf,
    pub start: u64,
    pub end: u64,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}..{})", self.path.display(), self.start, self.end)
    }
}

fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands files, directories (their files, not recursively) and glob patterns into a
/// sorted list of files without repeats.
pub(crate) fn expand(inputs: &[String]) -> Result<Vec<PathBuf>> {
    if inputs.is_empty() {
        return Err(Error::NoInput("the job names no input".into()));
    }
    let mut files = Vec::new();
    for input in inputs {
        if is_pattern(input) {
            let paths = glob::glob(input).map_err(|e| Error::BadPattern {
                pattern: input.clone(),
                message: e.to_string(),
            })?;
            let before = files.len();
            for entry in paths {
                let path = entry.map_err(|e| {
                    let path = e.path().to_path_buf();
                    Error::io(path, e.into())
                })?;
                if path.is_file() {
                    files.push(path);
                }
            }
            if files.len() == before {
                return Err(Error::NoInput(format!("`{input}` matches no file")));
            }
        } else {
            let path = PathBuf::from(input);
            let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
            if meta.is_dir() {
                let mut inside = Vec::new();
                for entry in std::fs::read_dir(&path).map_err(|e| Error::io(&path, e))? {
                    let entry = entry.map_err(|e| Error::io(&path, e))?;
                    let p = entry.path();
                    let hidden = p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(['.', '_']));
                    if !hidden && p.is_file() {
                        inside.push(p);
                    }
                }
                inside.sort();
                files.extend(inside);
            } else {
                files.push(path);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|p| seen.insert(p.clone()));
    Ok(files)
}

/// Cuts files into splits of at most `split_size` bytes (empty files give none).
pub(crate) fn splits(files: &[PathBuf], split_size: u64) -> Result<Vec<Split>> {
    let mut out = Vec::new();
    for path in files {
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        let mut start = 0;
        while start < len {
            let end = (start + split_size).min(len);
            out.push(Split {
                path: path.clone(),
                start,
                end,
            });
            start = end;
        }
    }
    Ok(out)
}

/// The bytes of a split.
impl Split {
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start
    }
}

/// Groups consecutive splits into `tasks` map tasks of about equal size (at least one
/// split each), so that many small files make a few large tasks: each task's combiner
/// then sees more of the data, and less goes through the sort.
pub(crate) fn group(splits: Vec<Split>, tasks: usize) -> Vec<Vec<Split>> {
    let total: u64 = splits.iter().map(Split::len).sum();
    let tasks = tasks.clamp(1, splits.len().max(1)) as u64;
    let mut groups: Vec<Vec<Split>> = Vec::new();
    let mut done = 0u64;
    let mut group = Vec::new();
    for split in splits {
        done += split.len();
        group.push(split);
        // Close the group once it reaches its share of the total.
        let boundary = total * (groups.len() as u64 + 1) / tasks;
        if done >= boundary {
            groups.push(std::mem::take(&mut group));
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

/// `bytes` as text, or the length of its valid UTF-8 prefix: checked with SIMD (several
/// times faster than `std::str::from_utf8` on large blocks), and again by the standard
/// library, for the position, only when it is not UTF-8.
fn utf8(bytes: &[u8]) -> std::result::Result<&str, usize> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(_) => match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text),
            Err(e) => Err(e.valid_up_to()),
        },
    }
}

/// Size of the reads from an input file (tiny in unit tests, to exercise records that
/// straddle reads).
const BLOCK: usize = if cfg!(test) { 7 } else { 1 << 20 };

/// Calls `each` with every record that starts in the split, in order, and returns how
/// many records and bytes were read.
///
/// A record that starts in the split and runs past its end is read whole; the split
/// before it skipped it (Hadoop's rule), so every record is read exactly once.
pub(crate) fn read_split(
    split: &Split,
    format: InputFormat,
    mut each: impl FnMut(Record<'_>) -> Result<()>,
) -> Result<(u64, u64)> {
    let path = split.path.as_path();
    let delimiter = format.delimiter();
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    // `pos` is the file offset of buf[0].
    let mut pos = split.start.saturating_sub(1);
    file.seek(SeekFrom::Start(pos))
        .map_err(|e| Error::io(path, e))?;
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK);
    let mut eof = false;
    let mut records = 0u64;

    let fill = |file: &mut File, buf: &mut Vec<u8>, eof: &mut bool| -> Result<()> {
        let old = buf.len();
        let want = BLOCK.max(buf.capacity() - old);
        buf.resize(old + want, 0);
        let n = loop {
            match file.read(&mut buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(path, e)),
            }
        };
        buf.truncate(old + n);
        if n == 0 {
            *eof = true;
        }
        Ok(())
    };

    // `at`: index in buf where the next record starts.
    let mut at = 0usize;
    if split.start > 0 {
        // Skip the record that started before the split: up to the first delimiter at
        // or after start - 1.
        loop {
            if let Some(i) = memchr::memchr(delimiter, &buf[at..]) {
                at += i + 1;
                break;
            }
            at = buf.len();
            if eof {
                return Ok((0, 0));
            }
            buf.clear();
            pos += at as u64;
            at = 0;
            fill(&mut file, &mut buf, &mut eof)?;
        }
    }
    let not_utf8 = |offset: u64| Error::NotUtf8 {
        path: path.to_path_buf(),
        offset,
    };
    'blocks: loop {
        if pos + at as u64 >= split.end {
            break;
        }
        let Some(last) = memchr::memrchr(delimiter, &buf[at..]) else {
            if eof {
                // The last record, without a delimiter.
                if at < buf.len() {
                    let offset = pos + at as u64;
                    let mut body = &buf[at..];
                    if format == InputFormat::Lines && body.last() == Some(&b'\r') {
                        body = &body[..body.len() - 1];
                    }
                    let text = utf8(body).map_err(|valid| not_utf8(offset + valid as u64))?;
                    each(Record { text, path, offset })?;
                    records += 1;
                    at = buf.len();
                }
                break;
            }
            // Keep the partial record: move it to the front and read more.
            buf.drain(..at);
            pos += at as u64;
            at = 0;
            fill(&mut file, &mut buf, &mut eof)?;
            continue;
        };
        // Every complete record in the buffer, validated as UTF-8 at once.
        let region_offset = pos + at as u64;
        let region = &buf[at..at + last + 1];
        let text = utf8(region).map_err(|valid| not_utf8(region_offset + valid as u64))?;
        let bytes = text.as_bytes();
        let mut s = 0;
        while s < bytes.len() {
            let offset = region_offset + s as u64;
            if offset >= split.end {
                at += s;
                break 'blocks;
            }
            let e = memchr::memchr(delimiter, &bytes[s..]).map_or(bytes.len(), |i| s + i);
            let mut body_end = e;
            if format == InputFormat::Lines && body_end > s && bytes[body_end - 1] == b'\r' {
                body_end -= 1;
            }
            // The delimiter is ASCII, so these are character boundaries.
            let body = text.get(s..body_end).ok_or_else(|| not_utf8(offset))?;
            each(Record {
                text: body,
                path,
                offset,
            })?;
            records += 1;
            s = e + 1;
        }
        at += s;
    }
    let read = (pos + at as u64).saturating_sub(split.start);
    Ok((records, read))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_records(path: &Path, split_size: u64, format: InputFormat) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for split in splits(&[path.to_path_buf()], split_size).unwrap() {
            read_split(&split, format, |r| {
                out.push((r.offset(), r.text().to_string()));
                Ok(())
            })
            .unwrap();
        }
        out
    }

    proptest! {
        // Each case writes files: fewer cases keep the suite quick on a loaded machine.
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn splits_read_every_record_exactly_once(
            lines in proptest::collection::vec("[a-zé \r]{0,12}", 0..60),
            trailing in any::<bool>(),
            split_size in 1u64..80,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.txt");
            let mut text = lines.join("\n");
            if trailing && !text.is_empty() {
                text.push('\n');
            }
            std::fs::write(&path, &text).unwrap();
            let expected: Vec<String> = if text.is_empty() {
                Vec::new()
            } else {
                let body = text.strip_suffix('\n').unwrap_or(&text);
                body.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l).to_string()).collect()
            };
            let got: Vec<String> = all_records(&path, split_size, InputFormat::Lines)
                .into_iter().map(|(_, t)| t).collect();
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn groups_fill_up_to_the_target() {
        let split = |n: u64| Split {
            path: PathBuf::from("f"),
            start: 0,
            end: n,
        };
        let sizes = |groups: Vec<Vec<Split>>| -> Vec<Vec<u64>> {
            groups
                .iter()
                .map(|g| g.iter().map(Split::len).collect())
                .collect()
        };
        let groups = group(vec![split(3), split(3), split(5), split(1), split(9)], 3);
        assert_eq!(sizes(groups), vec![vec![3, 3, 5], vec![1, 9]]);
        let groups = group((0..32).map(|_| split(10)).collect(), 4);
        assert_eq!(groups.len(), 4);
        assert!(groups.iter().all(|g| g.len() == 8));
        assert_eq!(sizes(group(vec![split(100)], 4)), vec![vec![100]]);
        assert!(group(Vec::new(), 6).is_empty());
    }

    #[test]
    fn records_format_and_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "ab\0cd\r\0\0e").unwrap();
        let got = all_records(&path, 3, InputFormat::Records(0));
        assert_eq!(
            got,
            vec![
                (0, "ab".to_string()),
                (3, "cd\r".to_string()),
                (7, String::new()),
                (8, "e".to_string())
            ]
        );
    }

    #[test]
    fn invalid_utf8_names_the_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.txt");
        std::fs::write(&path, b"fine\ncaf\xe9\n").unwrap();
        let split = &splits(std::slice::from_ref(&path), 1 << 20).unwrap()[0];
        let err = read_split(split, InputFormat::Lines, |_| Ok(())).unwrap_err();
        match err {
            Error::NotUtf8 { path: p, offset } => {
                assert_eq!(p, path);
                assert_eq!(offset, 8);
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn expansion_of_globs_dirs_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.txt", "a.txt", "c.log", "_SUCCESS"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let d = dir.path().display();
        let got = expand(&[format!("{d}/*.txt"), format!("{d}/a.txt")]).unwrap();
        assert_eq!(
            got,
            vec![dir.path().join("a.txt"), dir.path().join("b.txt")]
        );
        let got = expand(&[d.to_string()]).unwrap();
        assert_eq!(got.len(), 3);
        assert!(matches!(
            expand(&[format!("{d}/*.csv")]),
            Err(Error::NoInput(_))
        ));
        assert!(matches!(
            expand(&[format!("{d}/missing.txt")]),
            Err(Error::Io { .. })
        ));
        assert!(matches!(expand(&[]), Err(Error::NoInput(_))));
    }
}
