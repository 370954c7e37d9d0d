//! Reads the argument text of a task event back into JSON values, so a task can be sent
//! again. Celery's events carry `args` and `kwargs` as `argsrepr`/`kwargsrepr`: a Python
//! client puts the Python `repr()` there (`(2, 3)`, `{'y': 2}`), braid's clients put JSON.
//!
//! [`parse`] accepts JSON as it is and otherwise the Python literals that
//! `ast.literal_eval` accepts for plain data: `int`, `float` (`inf` and `nan` are read but
//! refused, JSON has no such numbers), `str` with either quote and Python's escapes,
//! `None`/`True`/`False`, tuples (also `(1,)`), lists and dicts (keys that are numbers,
//! `True`/`False` or `None` become strings, as `json.dumps` does). Bytes, sets, complex
//! numbers and anything else are refused with the reason.
//!
//! No crate on crates.io reads Python literals into `serde_json::Value` (the ones that
//! parse Python source build a full syntax tree and still leave the evaluation of literals
//! to the caller), hence this small hand-written parser.

use serde_json::{Map, Number, Value};

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 128;

/// Why a text is neither JSON nor a Python literal this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {text:?} as JSON or as a Python literal: {reason} (at byte {at})")]
pub struct ReprError {
    text: String,
    reason: String,
    at: usize,
}

/// Reads `text` as JSON, or else as a Python literal (see the module's documentation).
///
/// # Errors
/// [`ReprError`] saying what could not be read and where; a text that Celery cut short
/// (it ends in `...`) is one of those.
pub fn parse(text: &str) -> Result<Value, ReprError> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let read = p.value(0).and_then(|value| {
        p.skip_space();
        if p.at == p.bytes.len() {
            Ok(value)
        } else {
            Err(p.error("unexpected text after the value"))
        }
    });
    read.map_err(|mut e| {
        if text.ends_with("...") {
            e.reason
                .push_str("; the text looks cut short (Celery shortens long arguments)");
        }
        e
    })
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, reason: impl Into<String>) -> ReprError {
        let mut text = self.text.to_string();
        if text.len() > 200 {
            let mut end = 200;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("...");
        }
        ReprError {
            text,
            reason: reason.into(),
            at: self.at,
        }
    }

    fn skip_space(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.bytes.get(self.at).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Value, ReprError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        match self.peek() {
            None => Err(self.error("the text ends where a value should be")),
            Some(b'(') => self.sequence(b')', depth, true),
            Some(b'[') => self.sequence(b']', depth, false),
            Some(b'{') => self.dict(depth),
            Some(q @ (b'\'' | b'"')) => self.string(q).map(Value::String),
            Some(b'b' | b'B') if matches!(self.bytes.get(self.at + 1), Some(b'\'' | b'"')) => {
                Err(self.error("bytes have no JSON form"))
            }
            Some(c) if c == b'-' || c == b'+' || c == b'.' || c.is_ascii_digit() => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => self.name(),
            Some(_) => Err(self.error("not a Python literal")),
        }
    }

    /// A tuple `(...)` or a list `[...]`; `(x)` without a comma is `x` in parentheses.
    fn sequence(&mut self, close: u8, depth: usize, tuple: bool) -> Result<Value, ReprError> {
        self.at += 1;
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            if self.peek() == Some(close) {
                self.at += 1;
                break;
            }
            items.push(self.value(depth + 1)?);
            match self.peek() {
                Some(b',') => {
                    self.at += 1;
                    comma = true;
                }
                Some(c) if c == close => {
                    self.at += 1;
                    break;
                }
                _ => return Err(self.error(format!("expected ',' or '{}'", close as char))),
            }
        }
        if tuple && !comma && items.len() == 1 {
            return Ok(items.pop().unwrap_or(Value::Null));
        }
        Ok(Value::Array(items))
    }

    fn dict(&mut self, depth: usize) -> Result<Value, ReprError> {
        self.at += 1;
        let mut map = Map::new();
        loop {
            if self.peek() == Some(b'}') {
                self.at += 1;
                return Ok(Value::Object(map));
            }
            let key_at = self.at;
            let key = match self.value(depth + 1)? {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => "null".into(),
                Value::Array(_) | Value::Object(_) => {
                    self.at = key_at;
                    return Err(self.error("a dict key that JSON cannot hold"));
                }
            };
            match self.peek() {
                Some(b':') => self.at += 1,
                Some(b',' | b'}') if map.is_empty() => {
                    return Err(self.error("sets have no JSON form"));
                }
                _ => return Err(self.error("expected ':' after a dict key")),
            }
            let value = self.value(depth + 1)?;
            map.insert(key, value);
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn name(&mut self) -> Result<Value, ReprError> {
        let start = self.at;
        while self
            .bytes
            .get(self.at)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            self.at += 1;
        }
        match &self.text[start..self.at] {
            "None" => Ok(Value::Null),
            "True" => Ok(Value::Bool(true)),
            "False" => Ok(Value::Bool(false)),
            "inf" | "nan" => {
                self.at = start;
                Err(self.error("infinity and NaN have no JSON form"))
            }
            other => {
                self.at = start;
                Err(self.error(format!("{other:?} is not a Python literal")))
            }
        }
    }

    fn number(&mut self) -> Result<Value, ReprError> {
        let start = self.at;
        let negative = match self.bytes[self.at] {
            b'-' => {
                self.at += 1;
                true
            }
            b'+' => {
                self.at += 1;
                false
            }
            _ => false,
        };
        self.skip_space();
        if self.bytes.get(self.at).is_some_and(u8::is_ascii_alphabetic) {
            let name_at = self.at;
            while self
                .bytes
                .get(self.at)
                .is_some_and(u8::is_ascii_alphanumeric)
            {
                self.at += 1;
            }
            let name = &self.text[name_at..self.at];
            self.at = start;
            return Err(self.error(if name == "inf" || name == "nan" {
                "infinity and NaN have no JSON form".to_string()
            } else {
                format!("{name:?} is not a number")
            }));
        }
        let digits_at = self.at;
        let mut float = false;
        while let Some(&c) = self.bytes.get(self.at) {
            match c {
                b'0'..=b'9' | b'_' => {}
                b'.' => float = true,
                b'e' | b'E' => {
                    float = true;
                    if matches!(self.bytes.get(self.at + 1), Some(b'+' | b'-')) {
                        self.at += 1;
                    }
                }
                b'j' | b'J' => return Err(self.error("complex numbers have no JSON form")),
                b'x' | b'X' | b'o' | b'O' | b'b' | b'B' => {
                    return self.radix_int(digits_at, negative);
                }
                _ => break,
            }
            self.at += 1;
        }
        let digits: String = self.text[digits_at..self.at]
            .chars()
            .filter(|c| *c != '_')
            .collect();
        if digits.is_empty() || digits == "." {
            self.at = start;
            return Err(self.error("not a number"));
        }
        let sign = if negative { "-" } else { "" };
        if !float {
            if let Ok(n) = format!("{sign}{digits}").parse::<i64>() {
                return Ok(Value::from(n));
            }
            if let (false, Ok(n)) = (negative, digits.parse::<u64>()) {
                return Ok(Value::from(n));
            }
            self.at = start;
            return Err(self.error("an integer too large for JSON's 64-bit numbers"));
        }
        let parsed: Option<f64> = format!("{sign}{digits}").parse().ok();
        match parsed.and_then(Number::from_f64) {
            Some(n) => Ok(Value::Number(n)),
            None => {
                self.at = start;
                Err(self.error("not a finite number"))
            }
        }
    }

    /// `0x1f`, `0o17`, `0b101`: `ast.literal_eval` reads them, so this does too.
    fn radix_int(&mut self, digits_at: usize, negative: bool) -> Result<Value, ReprError> {
        if self.text[digits_at..self.at] != *"0" {
            return Err(self.error("not a number"));
        }
        let radix = match self.bytes[self.at].to_ascii_lowercase() {
            b'x' => 16,
            b'o' => 8,
            _ => 2,
        };
        self.at += 1;
        let from = self.at;
        while self
            .bytes
            .get(self.at)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            self.at += 1;
        }
        let digits: String = self.text[from..self.at]
            .chars()
            .filter(|c| *c != '_')
            .collect();
        let n = i64::from_str_radix(&digits, radix)
            .map_err(|e| self.error(format!("bad integer: {e}")))?;
        Ok(Value::from(if negative { -n } else { n }))
    }

    /// A quoted string with Python's escapes; the opening quote is at `self.at`.
    fn string(&mut self, quote: u8) -> Result<String, ReprError> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.at..];
            let Some(c) = rest.chars().next() else {
                return Err(self.error("a string without its closing quote"));
            };
            self.at += c.len_utf8();
            match c {
                c if c as u32 == u32::from(quote) => return Ok(out),
                '\n' => return Err(self.error("a line break inside a string")),
                '\\' => self.escape(&mut out)?,
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), ReprError> {
        let Some(&c) = self.bytes.get(self.at) else {
            return Err(self.error("a string without its closing quote"));
        };
        self.at += 1;
        match c {
            b'\n' => {}
            b'\\' => out.push('\\'),
            b'\'' => out.push('\''),
            b'"' => out.push('"'),
            b'a' => out.push('\u{7}'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'v' => out.push('\u{b}'),
            b'x' => out.push(self.code_point(2)?),
            b'u' => out.push(self.code_point(4)?),
            b'U' => out.push(self.code_point(8)?),
            b'0'..=b'7' => {
                let mut n = u32::from(c - b'0');
                for _ in 0..2 {
                    match self.bytes.get(self.at) {
                        Some(d @ b'0'..=b'7') => {
                            n = n * 8 + u32::from(d - b'0');
                            self.at += 1;
                        }
                        _ => break,
                    }
                }
                out.push(char::from_u32(n).ok_or_else(|| self.error("a bad octal escape"))?);
            }
            b'N' => return Err(self.error("named escapes (\\N{...}) are not read")),
            _ => {
                // Python keeps an unknown escape as it is.
                self.at -= 1;
                out.push('\\');
            }
        }
        Ok(())
    }

    fn code_point(&mut self, len: usize) -> Result<char, ReprError> {
        let hex = self
            .text
            .get(self.at..self.at + len)
            .ok_or_else(|| self.error("a short escape"))?;
        let n = u32::from_str_radix(hex, 16).map_err(|_| self.error("a bad hex escape"))?;
        self.at += len;
        // A lone surrogate (Python allows it) has no UTF-8 form.
        char::from_u32(n).ok_or_else(|| self.error("an escape that is no Unicode character"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn reads_python_reprs() {
        assert_eq!(parse("(2, 3)").unwrap(), json!([2, 3]));
        assert_eq!(parse("(1,)").unwrap(), json!([1]));
        assert_eq!(parse("()").unwrap(), json!([]));
        assert_eq!(parse("(1)").unwrap(), json!(1));
        assert_eq!(parse("{'y': 2}").unwrap(), json!({"y": 2}));
        assert_eq!(parse("{}").unwrap(), json!({}));
        assert_eq!(
            parse("('a', \"it's\", None, True, False, -1.5, 1e-05, [1, (2,)])").unwrap(),
            json!(["a", "it's", null, true, false, -1.5, 1e-05, [1, [2]]])
        );
        assert_eq!(
            parse(r"('\n\t\\\'\x41\u00e9\U0001f600\0', '\d')").unwrap(),
            json!(["\n\t\\'Aé😀\0", "\\d"])
        );
        assert_eq!(
            parse("{1: 'a', None: 2, True: 3}").unwrap(),
            json!({"1": "a", "null": 2, "true": 3})
        );
        assert_eq!(
            parse("(0x1f, 1_000, -2, +3)").unwrap(),
            json!([31, 1000, -2, 3])
        );
        assert_eq!(parse("18446744073709551615").unwrap(), json!(u64::MAX));
    }

    /// Printed by CPython 3 for the same arguments: `repr(args)` and `json.dumps(args)`.
    #[test]
    fn agrees_with_cpython() {
        let repr = r#"(1.5e-07, 1e+16, -0.0, 'it\'s "q"', 'tab\there\x00\x7f\u2028é😀', [None, True], {'k': (1,)}, 9223372036854775808, -9223372036854775808)"#;
        let dumped = r#"[1.5e-07, 1e+16, -0.0, "it's \"q\"", "tab\there\u0000\u007f\u2028\u00e9\ud83d\ude00", [null, true], {"k": [1]}, 9223372036854775808, -9223372036854775808]"#;
        let expected: Value = serde_json::from_str(dumped).unwrap();
        assert_eq!(parse(repr).unwrap(), expected);
    }

    #[test]
    fn reads_json_as_json() {
        assert_eq!(parse("[2, 3]").unwrap(), json!([2, 3]));
        assert_eq!(
            parse(r#"{"a": [true, null, "\/"]}"#).unwrap(),
            json!({"a": [true, null, "/"]})
        );
    }

    #[test]
    fn refuses_what_json_cannot_hold_with_a_reason() {
        for (text, reason) in [
            ("(inf,)", "infinity"),
            ("(-inf,)", "infinity"),
            ("(nan,)", "NaN"),
            ("(b'x',)", "bytes"),
            ("({1, 2},)", "sets"),
            ("(1j,)", "complex"),
            ("(<object at 0x7f>,)", "not a Python literal"),
            ("(Foo(),)", "\"Foo\""),
            ("('abc...", "cut short"),
            ("(1, 2, 3...", "cut short"),
            ("(1, 2) x", "after the value"),
            ("", "ends where a value"),
            ("{(1, 2): 3}", "dict key"),
            ("(99999999999999999999999,)", "too large"),
            ("('\\N{DASH}',)", "named escapes"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(reason), "{text}: {e}");
        }
        let deep = "[".repeat(1000);
        assert!(parse(&deep).unwrap_err().to_string().contains("deeply"));
    }

    /// Python's `repr()` of a JSON value: what a Python client puts into `argsrepr`.
    fn python_repr(v: &Value, tuple: bool, out: &mut String) {
        match v {
            Value::Null => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() => {
                    // Python writes floats that are whole numbers with a ".0".
                    let s = format!("{f:?}");
                    out.push_str(&s);
                }
                _ => out.push_str(&n.to_string()),
            },
            Value::String(s) => {
                let quote = if s.contains('\'') && !s.contains('"') {
                    '"'
                } else {
                    '\''
                };
                out.push(quote);
                for c in s.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        c if c == quote => {
                            out.push('\\');
                            out.push(c);
                        }
                        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                            out.push_str(&format!("\\x{:02x}", c as u32));
                        }
                        c => out.push(c),
                    }
                }
                out.push(quote);
            }
            Value::Array(items) => {
                out.push(if tuple { '(' } else { '[' });
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    python_repr(item, i % 2 == 1, out);
                }
                if tuple && items.len() == 1 {
                    out.push(',');
                }
                out.push(if tuple { ')' } else { ']' });
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (k, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    python_repr(&Value::String(k.clone()), false, out);
                    out.push_str(": ");
                    python_repr(item, true, out);
                }
                out.push('}');
            }
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[a-z'\"\\\\ ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn python_reprs_read_back(args in prop::collection::vec(json_value(), 0..5)) {
            let value = Value::Array(args);
            let mut text = String::new();
            python_repr(&value, true, &mut text);
            prop_assert_eq!(parse(&text).unwrap(), value, "{}", text);
        }

        #[test]
        fn json_reads_back(value in json_value()) {
            prop_assert_eq!(parse(&value.to_string()).unwrap(), value);
        }
    }
}
