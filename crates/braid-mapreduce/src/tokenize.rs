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

impl<'a> PythonSplit<'a> {
    /// The length in bytes of the whitespace character at `i` (a char boundary), or 0 when
    /// the character there is not whitespace.
    #[inline]
    fn space_len(bytes: &[u8], text: &str, i: usize) -> usize {
        let b = bytes[i];
        if b < 0x80 {
            usize::from(ASCII_SPACE[b as usize])
        } else if b == 0xc2 || b == 0xe1 || b == 0xe2 || b == 0xe3 {
            // Every non-ASCII Python space starts with one of these lead bytes.
            match text[i..].chars().next() {
                Some(c) if is_python_whitespace(c) => c.len_utf8(),
                _ => 0,
            }
        } else {
            0
        }
    }

    /// The length of the (non-space) character at `i`.
    #[inline]
    fn char_len(b: u8) -> usize {
        match b {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        }
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
            let n = Self::space_len(bytes, text, i);
            if n == 0 {
                break;
            }
            i += n;
        }
        let start = i;
        // Take the word.
        while i < len {
            let b = bytes[i];
            if b < 0x80 {
                if ASCII_SPACE[b as usize] {
                    break;
                }
                i += 1;
            } else {
                if Self::space_len(bytes, text, i) != 0 {
                    break;
                }
                i += Self::char_len(b);
            }
        }
        self.pos = i;
        Some(&text[start..i])
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
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn matches_the_reference(text in texty()) {
            prop_assert_eq!(python_split(&text).collect::<Vec<_>>(), reference(&text));
        }
    }
}
