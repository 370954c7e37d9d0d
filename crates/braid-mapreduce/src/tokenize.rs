//! Splitting text on whitespace exactly as Python's `str.split()` does.

/// Whether Python's `str.split()` (and `str.isspace()`) treats `c` as whitespace.
///
/// Python's set is the characters of bidirectional class WS, B or S, or of category Zs:
/// 29 code points. It differs from [`char::is_whitespace`], which leaves out the
/// information separators U+001C..U+001F that Python splits on.
///
/// ```
/// use braid_mapreduce::is_python_whitespace;
///
/// assert!(is_python_whitespace('\u{1f}'));
/// assert!(!'\u{1f}'.is_whitespace());
/// assert!(is_python_whitespace('\u{3000}'));
/// assert!(!is_python_whitespace('\u{200b}')); // zero-width space is not whitespace
/// ```
pub const fn is_python_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{0b}'
            | '\u{0c}'
            | '\r'
            | '\u{1c}'..='\u{1f}'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// ASCII bytes that are Python whitespace; bytes from 0x80 up start (or continue) a
/// multi-byte character and are looked at as characters.
const ASCII_SPACE: [bool; 128] = {
    let mut table = [false; 128];
    let mut b = 0;
    while b < 128 {
        table[b] = is_python_whitespace(b as u8 as char);
        b += 1;
    }
    table
};

/// Splits `text` into the words Python's `text.split()` gives, in order, borrowing them.
///
/// ```
/// use braid_mapreduce::python_split;
///
/// let words: Vec<&str> = python_split(" a\u{1c}b\u{a0}c  Déjà\tvu\n").collect();
/// assert_eq!(words, ["a", "b", "c", "Déjà", "vu"]);
/// ```
pub fn python_split(text: &str) -> PythonSplit<'_> {
    PythonSplit { text, pos: 0 }
}

/// The iterator returned by [`python_split`].
#[derive(Debug, Clone)]
pub struct PythonSplit<'a> {
    text: &'a str,
    pos: usize,
}

/// Bytes that may start whitespace or are ASCII controls: every byte up to `0x20`, and
/// the lead bytes `0xc2` and `0xe0..=0xe3` (every non-ASCII Python space starts with
/// `0xc2`, `0xe1`, `0xe2` or `0xe3`). A word's other bytes are never whitespace.
#[inline]
fn special_mask(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Each term flags its lowest matching byte exactly (higher ones may be false
    // alarms, which the precise check then clears), so the lowest flag of the union
    // is the first special byte.
    let below_21 = w.wrapping_sub(ONES * 0x21) & !w & HIGH;
    let e = w ^ (ONES * 0xe0);
    let e0_to_e3 = e.wrapping_sub(ONES * 4) & !e & HIGH;
    let c = w ^ (ONES * 0xc2);
    let c2 = c.wrapping_sub(ONES) & !c & HIGH;
    below_21 | e0_to_e3 | c2
}

/// Whether `b` is one of the bytes [`special_mask`] flags.
#[inline]
fn is_special(b: u8) -> bool {
    b <= 0x20 || b == 0xc2 || (0xe0..=0xe3).contains(&b)
}

/// The length in bytes of the Python whitespace character at `i` (a char boundary),
/// or 0 when the character there is not whitespace.
#[inline]
fn space_len(bytes: &[u8], i: usize) -> usize {
    let b = bytes[i];
    if b < 0x80 {
        return usize::from(ASCII_SPACE[b as usize]);
    }
    let next = |k: usize| bytes.get(i + k).copied().unwrap_or(0);
    match b {
        // U+0085, U+00A0
        0xc2 if matches!(next(1), 0x85 | 0xa0) => 2,
        // U+1680
        0xe1 if next(1) == 0x9a && next(2) == 0x80 => 3,
        0xe2 => match (next(1), next(2)) {
            // U+2000..=U+200A, U+2028, U+2029, U+202F
            (0x80, 0x80..=0x8a | 0xa8 | 0xa9 | 0xaf) => 3,
            // U+205F
            (0x81, 0x9f) => 3,
            _ => 0,
        },
        // U+3000
        0xe3 if next(1) == 0x80 && next(2) == 0x80 => 3,
        _ => 0,
    }
}

/// The end of the word that starts at `i` (not whitespace): the index of the next
/// whitespace character, or the text's length. Looks at 8 bytes at a time.
#[inline]
fn word_end(bytes: &[u8], mut i: usize) -> usize {
    let len = bytes.len();
    loop {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let m = special_mask(u64::from_le_bytes(w));
            if m == 0 {
                i += 8;
                continue;
            }
            i += (m.trailing_zeros() / 8) as usize;
        } else {
            while i < len && !is_special(bytes[i]) {
                i += 1;
            }
            if i == len {
                return len;
            }
        }
        if space_len(bytes, i) != 0 {
            return i;
        }
        // A control character or a non-space character with a flagged lead byte; its
        // continuation bytes are never flagged.
        i += 1;
    }
}

impl<'a> Iterator for PythonSplit<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let text = self.text;
        let bytes = text.as_bytes();
        let len = bytes.len();
        let mut i = self.pos;
        // Skip whitespace.
        loop {
            if i >= len {
                self.pos = len;
                return None;
            }
            let n = space_len(bytes, i);
            if n == 0 {
                break;
            }
            i += n;
        }
        let start = i;
        let end = word_end(bytes, i);
        self.pos = end;
        // Both ends are character boundaries (a whitespace character's start, or the
        // end), so this never fails.
        text.get(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: split on `is_python_whitespace` characters, dropping empties.
    fn reference(text: &str) -> Vec<&str> {
        text.split(is_python_whitespace)
            .filter(|w| !w.is_empty())
            .collect()
    }

    #[test]
    fn python_whitespace_is_29_code_points() {
        let all: Vec<u32> = (0..=0x10ffffu32)
            .filter_map(char::from_u32)
            .filter(|c| is_python_whitespace(*c))
            .map(u32::from)
            .collect();
        assert_eq!(all.len(), 29);
        // The ones Rust's White_Space leaves out.
        let extra: Vec<u32> = all
            .iter()
            .copied()
            .filter(|c| !char::from_u32(*c).unwrap().is_whitespace())
            .collect();
        assert_eq!(extra, [0x1c, 0x1d, 0x1e, 0x1f]);
    }

    #[test]
    fn edge_cases() {
        assert_eq!(python_split("").count(), 0);
        assert_eq!(python_split(" \t\u{3000} ").count(), 0);
        assert_eq!(python_split("x").collect::<Vec<_>>(), ["x"]);
        assert_eq!(
            python_split("\u{200b}a\u{feff}").collect::<Vec<_>>(),
            ["\u{200b}a\u{feff}"]
        );
        assert_eq!(
            python_split("a\u{85}b\u{2028}c\u{205f}d").collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
    }

    fn texty() -> impl Strategy<Value = String> {
        let pieces = prop_oneof![
            Just(" ".to_string()),
            Just("\t".to_string()),
            Just("\u{1c}".to_string()),
            Just("\u{1f}".to_string()),
            Just("\u{85}".to_string()),
            Just("\u{a0}".to_string()),
            Just("\u{2009}".to_string()),
            Just("\u{3000}".to_string()),
            Just("\u{200b}".to_string()),
            Just("é".to_string()),
            Just("日本".to_string()),
            "[a-z]{1,5}",
            "[a-zé日\u{1f}\u{85}\u{e00}]{6,24}",
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
    }

    #[test]
    fn every_whitespace_character_is_recognised_in_place() {
        for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            let expected = if is_python_whitespace(c) {
                vec!["a", "b"]
            } else {
                vec![text.as_str()]
            };
            assert_eq!(python_split(&text).collect::<Vec<_>>(), expected, "{c:?}");
            // Long words take the 8-byte path.
            let text = format!("abcdefghij{c}klmnopqrstu");
            let n = python_split(&text).count();
            assert_eq!(n, if is_python_whitespace(c) { 2 } else { 1 }, "{c:?}");
        }
    }

    proptest! {
        #[test]
        fn matches_the_reference(text in texty()) {
            prop_assert_eq!(python_split(&text).collect::<Vec<_>>(), reference(&text));
        }
    }
}
