//! YAML as Salt writes it: `salt.utils.yaml.safe_dump` (PyYAML's
//! `SafeDumper` with `allow_unicode=True`, keys sorted), its scalars, and
//! the block layout of `default_flow_style=False`.
//!
//! Scalars are chosen conservatively: a string PyYAML might quote is
//! quoted (it reads back as the same value). String values are folded at
//! 80 columns and multi-line ones single-quoted as PyYAML's emitter writes
//! them; mapping keys and the `yaml_*` helpers stay on one line.
//! Mapping keys longer than PyYAML's 128-character simple-key limit are
//! still written as simple keys (PyYAML switches to `? key`).

use crate::repr::float_repr;
use crate::value::{Key, PyValue, View};
use crate::{repr, Error};

/// PyYAML's `write_double_quoted` (no line folding): `"…"` with YAML
/// escapes; non-ASCII kept only with `allow_unicode`.
pub fn yaml_dquote(s: &str, allow_unicode: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        let esc = match c {
            '\0' => Some('0'),
            '\x07' => Some('a'),
            '\x08' => Some('b'),
            '\t' => Some('t'),
            '\n' => Some('n'),
            '\x0b' => Some('v'),
            '\x0c' => Some('f'),
            '\r' => Some('r'),
            '\x1b' => Some('e'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            '\u{85}' => Some('N'),
            '\u{a0}' => Some('_'),
            '\u{2028}' => Some('L'),
            '\u{2029}' => Some('P'),
            _ => None,
        };
        if let Some(e) = esc {
            out.push('\\');
            out.push(e);
            continue;
        }
        let n = c as u32;
        let plain = (0x20..=0x7e).contains(&n)
            || (allow_unicode
                && ((0xa0..=0xd7ff).contains(&n) || ((0xe000..=0xfffd).contains(&n) && n != 0xfeff) || n >= 0x10000));
        if plain {
            out.push(c);
        } else if n <= 0xff {
            out.push_str(&format!("\\x{n:02X}"));
        } else if n <= 0xffff {
            out.push_str(&format!("\\u{n:04X}"));
        } else {
            out.push_str(&format!("\\U{n:08X}"));
        }
    }
    out.push('"');
    out
}

/// PyYAML's `write_single_quoted` for text without line breaks (with
/// them, the double-quoted form, which reads back the same).
pub fn yaml_squote(s: &str) -> String {
    if s.chars()
        .any(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
    {
        return yaml_dquote(s, true);
    }
    format!("'{}'", s.replace('\'', "''"))
}

/// Does PyYAML emit `s` as a plain scalar? A conservative take on its
/// `analyze_scalar`: anything it might quote is quoted, which reads back
/// the same.
fn yaml_plain_ok(s: &str) -> bool {
    if s.is_empty() || s.trim() != s {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.chars().any(|c| ",[]{}".contains(c)) {
        return false;
    }
    if s.chars()
        .any(|c| (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)))
    {
        return false;
    }
    // It must read back as this very string (not a bool, number, null…).
    matches!(
        crate::parse_yaml(s, std::path::Path::new("<scalar>")),
        Ok(serde_json::Value::String(ref t)) if t == s
    )
}

/// A YAML scalar for a string, as PyYAML's safe_dump would choose it.
pub fn yaml_str(s: &str) -> String {
    if yaml_plain_ok(s) {
        s.to_string()
    } else if s
        .chars()
        .all(|c| !(c as u32 <= 0x1f || c == '\u{7f}' || c == '\u{85}' || c == '\u{2028}' || c == '\u{2029}'))
    {
        yaml_squote(s)
    } else {
        yaml_dquote(s, true)
    }
}

/// PyYAML's `represent_float`.
pub fn yaml_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf".into() } else { "-.inf".into() };
    }
    let r = float_repr(f).to_lowercase();
    if !r.contains('.') && r.contains('e') {
        // PyYAML writes `1.0e+20` where repr gives `1e+20`.
        r.replacen('e', ".0e", 1)
    } else {
        r
    }
}

/// `salt.utils.yaml.safe_dump(v, default_flow_style=False)`: the document,
/// ending in a newline. Bytes become `!!binary`; what PyYAML's
/// `SafeRepresenter` cannot represent (msgpack ext types) is an error.
pub fn safe_dump<V: PyValue>(v: &V) -> Result<String, Error> {
    safe_dump_indent(v, 2)
}

/// `safe_dump(v, default_flow_style=False, indent=indent)`: PyYAML
/// indents mappings by `indent` when it is 2..9 (else 2); a sequence's
/// items start with `-` padded to that width, and a sequence under a
/// mapping key stays at the key's column.
pub fn safe_dump_indent<V: PyValue>(v: &V, indent: usize) -> Result<String, Error> {
    let step = if (2..10).contains(&indent) { indent } else { 2 };
    let mut lines = Vec::new();
    block(v, 0, step, &mut lines)?;
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

/// PyYAML's `best_width`: where its writers fold long scalars.
const BEST_WIDTH: usize = 80;

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Printable for PyYAML's emitter with `allow_unicode` (`analyze_scalar`).
fn printable(c: char) -> bool {
    let n = c as u32;
    (0x20..=0x7e).contains(&n)
        || n == 0x85
        || ((0xa0..=0xd7ff).contains(&n) || (0xe000..=0xfffd).contains(&n) || (0x10000..0x10ffff).contains(&n))
            && n != 0xfeff
}

/// `analyze_scalar(s).allow_single_quoted`: no special characters, no
/// space next to a line break.
fn single_quoted_ok(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    chars.iter().all(|c| *c == '\n' || printable(*c))
        && !chars
            .windows(2)
            .any(|w| (w[0] == ' ' && is_break(w[1])) || (is_break(w[0]) && w[1] == ' '))
}

/// A string in block context as PyYAML's emitter writes it: plain,
/// single-quoted (line breaks written as blank lines) or double-quoted,
/// its first character at `column`, folded at spaces past 80 columns onto
/// lines indented by `indent`.
fn block_str(s: &str, column: usize, indent: usize) -> String {
    let plain_single_line = !s.chars().any(is_break);
    if plain_single_line && yaml_plain_ok(s) {
        return write_plain(s, column, indent);
    }
    if single_quoted_ok(s) {
        write_single_quoted(s, column, indent)
    } else {
        write_double_quoted(s, column, indent)
    }
}

/// `write_indent` after text: a line break and the indent.
fn newline_indent(out: &mut String, col: &mut usize, indent: usize) {
    out.push('\n');
    out.push_str(&" ".repeat(indent));
    *col = indent;
}

fn write_plain(s: &str, column: usize, indent: usize) -> String {
    let text: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut col = column;
    let (mut start, mut spaces) = (0, false);
    for end in 0..=text.len() {
        let ch = text.get(end).copied();
        if spaces {
            if ch != Some(' ') {
                if start + 1 == end && col > BEST_WIDTH {
                    newline_indent(&mut out, &mut col, indent);
                } else {
                    out.extend(&text[start..end]);
                    col += end - start;
                }
                start = end;
            }
        } else if ch.is_none() || ch == Some(' ') {
            out.extend(&text[start..end]);
            col += end - start;
            start = end;
        }
        spaces = ch == Some(' ');
    }
    out
}

fn write_single_quoted(s: &str, column: usize, indent: usize) -> String {
    let text: Vec<char> = s.chars().collect();
    let mut out = String::from("'");
    let mut col = column + 1;
    let (mut start, mut spaces, mut breaks) = (0, false, false);
    for end in 0..=text.len() {
        let ch = text.get(end).copied();
        if spaces {
            if ch != Some(' ') {
                if start + 1 == end && col > BEST_WIDTH && start != 0 && end != text.len() {
                    newline_indent(&mut out, &mut col, indent);
                } else {
                    out.extend(&text[start..end]);
                    col += end - start;
                }
                start = end;
            }
        } else if breaks {
            if !ch.is_some_and(is_break) {
                if text[start] == '\n' {
                    out.push('\n');
                }
                for br in &text[start..end] {
                    out.push(*br);
                }
                out.push_str(&" ".repeat(indent));
                col = indent;
                start = end;
            }
        } else if ch.is_none() || ch.is_some_and(|c| c == ' ' || is_break(c) || c == '\'') {
            out.extend(&text[start..end]);
            col += end - start;
            start = end;
        }
        if ch == Some('\'') {
            out.push_str("''");
            col += 2;
            start = end + 1;
        }
        if let Some(c) = ch {
            spaces = c == ' ';
            breaks = is_break(c);
        }
    }
    out.push('\'');
    out
}

/// libyaml's `yaml_emitter_write_double_quoted` (Salt dumps through the
/// C emitter): escapes, and a fold at a lone space past 80 columns.
fn write_double_quoted(s: &str, column: usize, indent: usize) -> String {
    let text: Vec<char> = s.chars().collect();
    let mut out = String::from("\"");
    let mut col = column + 1;
    let mut spaces = false;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        let n = c as u32;
        if !printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
            let data = match c {
                '\0' => "\\0".to_string(),
                '\x07' => "\\a".into(),
                '\x08' => "\\b".into(),
                '\t' => "\\t".into(),
                '\n' => "\\n".into(),
                '\x0b' => "\\v".into(),
                '\x0c' => "\\f".into(),
                '\r' => "\\r".into(),
                '\x1b' => "\\e".into(),
                '"' => "\\\"".into(),
                '\\' => "\\\\".into(),
                '\u{85}' => "\\N".into(),
                '\u{a0}' => "\\_".into(),
                '\u{2028}' => "\\L".into(),
                '\u{2029}' => "\\P".into(),
                _ if n <= 0xff => format!("\\x{n:02X}"),
                _ if n <= 0xffff => format!("\\u{n:04X}"),
                _ => format!("\\U{n:08X}"),
            };
            col += data.len();
            out.push_str(&data);
            spaces = false;
        } else if c == ' ' {
            if !spaces && col > BEST_WIDTH && i != 0 && i + 1 != text.len() {
                newline_indent(&mut out, &mut col, indent);
                if text.get(i + 1) == Some(&' ') {
                    out.push('\\');
                    col += 1;
                }
            } else {
                out.push(' ');
                col += 1;
            }
            spaces = true;
        } else {
            out.push(c);
            col += 1;
            spaces = false;
        }
        i += 1;
    }
    out.push('"');
    out
}

/// A value's text where it starts at `column` with continuation lines at
/// `indent` (strings folded as PyYAML folds them); `None` as [`scalar`].
fn value_text<V: PyValue>(v: &V, column: usize, indent: usize) -> Result<Option<String>, Error> {
    match v.py() {
        View::Str(s) => Ok(Some(block_str(s, column, indent))),
        _ => scalar(v),
    }
}

/// A scalar on one line; `None` for a non-empty collection or bytes.
fn scalar<V: PyValue>(v: &V) -> Result<Option<String>, Error> {
    Ok(Some(match v.py() {
        View::None => "null".into(),
        View::Bool(b) => if b { "true" } else { "false" }.into(),
        View::Int(i) => i.to_string(),
        View::Float(f) => yaml_float(f),
        View::Str(s) => yaml_str(s),
        View::List([]) => "[]".into(),
        View::Dict(pairs) if pairs.len() == 0 => "{}".into(),
        View::List(_) | View::Dict(_) | View::Bytes(_) => return Ok(None),
        View::Ext(..) => return Err(Error::Represent(format!("('cannot represent an object', {})", repr(v)))),
    }))
}

/// The text of a mapping key.
fn key_text<V: PyValue>(k: &Key<'_, V>) -> Result<String, Error> {
    match k {
        Key::Str(s) => Ok(yaml_str(s)),
        Key::Value(v) => match scalar(*v)? {
            Some(t) => Ok(t),
            None => Err(Error::Represent(format!(
                "('cannot represent an object', {})",
                repr(*v)
            ))),
        },
    }
}

/// How Python's `sorted()` orders two keys, if it can (PyYAML keeps the
/// insertion order when it cannot: mixed types, `None`).
enum SortKey {
    Str(String),
    Num(f64),
}

fn sort_key<V: PyValue>(k: &Key<'_, V>) -> Option<SortKey> {
    match k {
        Key::Str(s) => Some(SortKey::Str(s.to_string())),
        Key::Value(v) => match v.py() {
            View::Str(s) => Some(SortKey::Str(s.to_string())),
            View::Bool(b) => Some(SortKey::Num(f64::from(u8::from(b)))),
            View::Int(i) => Some(SortKey::Num(i as f64)),
            View::Float(f) if !f.is_nan() => Some(SortKey::Num(f)),
            _ => None,
        },
    }
}

fn sorted_pairs<'a, V: PyValue>(pairs: V::Pairs<'a>) -> Vec<(Key<'a, V>, &'a V)> {
    let mut items: Vec<(Key<'a, V>, &'a V)> = pairs.collect();
    let keys: Option<Vec<SortKey>> = items.iter().map(|(k, _)| sort_key(k)).collect();
    let Some(keys) = keys else { return items };
    let all_str = keys.iter().all(|k| matches!(k, SortKey::Str(_)));
    let all_num = keys.iter().all(|k| matches!(k, SortKey::Num(_)));
    if !(all_str || all_num) {
        return items;
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| match (&keys[a], &keys[b]) {
        (SortKey::Str(x), SortKey::Str(y)) => x.cmp(y),
        (SortKey::Num(x), SortKey::Num(y)) => x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal),
        _ => std::cmp::Ordering::Equal,
    });
    let mut slots: Vec<Option<(Key<'a, V>, &'a V)>> = items.drain(..).map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// `!!binary |` and the base64 lines (76 characters, as
/// `base64.encodebytes`), indented by `indent`.
fn binary(b: &[u8], indent: usize) -> Vec<String> {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(b);
    let pad = " ".repeat(indent);
    let mut out = vec!["!!binary |".to_string()];
    let chars: Vec<char> = text.chars().collect();
    for chunk in chars.chunks(76) {
        out.push(format!("{pad}{}", chunk.iter().collect::<String>()));
    }
    out
}

/// The lines of `v` written at `indent` (every line carries its indent).
fn block<V: PyValue>(v: &V, indent: usize, step: usize, out: &mut Vec<String>) -> Result<(), Error> {
    let pad = " ".repeat(indent);
    let dash = format!("-{}", " ".repeat(step - 1));
    // Only a document's root is written here as a scalar: its lines
    // continue at PyYAML's first indent.
    if let Some(s) = value_text(v, indent, indent + step)? {
        out.push(format!("{pad}{s}"));
        return Ok(());
    }
    match v.py() {
        View::Bytes(b) => {
            let mut lines = binary(b, indent + step);
            lines[0] = format!("{pad}{}", lines[0]);
            out.extend(lines);
        }
        View::Dict(pairs) => {
            for (k, val) in sorted_pairs::<V>(pairs) {
                let k = key_text(&k)?;
                let column = indent + k.chars().count() + 2;
                match (value_text(val, column, indent + step)?, val.py()) {
                    (Some(s), _) => out.push(format!("{pad}{k}: {s}")),
                    (None, View::Bytes(b)) => {
                        let mut lines = binary(b, indent + step);
                        lines[0] = format!("{pad}{k}: {}", lines[0]);
                        out.extend(lines);
                    }
                    // A sequence in a mapping is not indented (PyYAML's
                    // indentless sequences).
                    (None, View::List(_)) => {
                        out.push(format!("{pad}{k}:"));
                        block(val, indent, step, out)?;
                    }
                    (None, _) => {
                        out.push(format!("{pad}{k}:"));
                        block(val, indent + step, step, out)?;
                    }
                }
            }
        }
        View::List(items) => {
            for item in items {
                if let View::Bytes(b) = item.py() {
                    let mut lines = binary(b, indent + step);
                    lines[0] = format!("{pad}- {}", lines[0]);
                    out.extend(lines);
                    continue;
                }
                // A scalar follows the dash after one space whatever the
                // indent; a collection starts at the next indent.
                if let Some(s) = value_text(item, indent + 2, indent + step)? {
                    out.push(format!("{pad}- {s}"));
                    continue;
                }
                // The item as written two columns in, its first line
                // starting with the dash instead.
                let mut sub = Vec::new();
                block(item, indent + step, step, &mut sub)?;
                if let Some(first) = sub.first_mut() {
                    *first = format!("{pad}{dash}{}", &first[indent + step..]);
                }
                out.extend(sub);
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_proto::Value;
    use serde_json::json;

    /// Outputs of Salt 3007.17's `salt.utils.yaml.safe_dump(d,
    /// default_flow_style=False)`.
    #[test]
    fn block_documents_as_salts() {
        let cases = [
            (json!("win: true"), "'win: true'\n"),
            (json!("foo"), "foo\n"),
            (json!(""), "''\n"),
            (json!("yes"), "'yes'\n"),
            (json!("12"), "'12'\n"),
            (
                json!({"b": 1, "a": [1, 2, {"x": null}], "c": {}}),
                "a:\n- 1\n- 2\n- x: null\nb: 1\nc: {}\n",
            ),
            (json!([]), "[]\n"),
            (json!({}), "{}\n"),
            (json!(null), "null\n"),
            (json!(1.5), "1.5\n"),
            (json!(true), "true\n"),
            (json!([[1, 2], [3]]), "- - 1\n  - 2\n- - 3\n"),
            (json!({"x": [{"a": 1, "b": 2}]}), "x:\n- a: 1\n  b: 2\n"),
            (
                json!({"l": [[], {}, [{"q": [1]}]]}),
                "l:\n- []\n- {}\n- - q:\n    - 1\n",
            ),
            (
                json!([{"a": {"b": [1, {"c": 2}]}}]),
                "- a:\n    b:\n    - 1\n    - c: 2\n",
            ),
            (
                json!({"t": true, "n": null, "f": 1e20, "i": -5}),
                "f: 1.0e+20\ni: -5\nn: null\nt: true\n",
            ),
            (json!({"é": "ü"}), "é: ü\n"),
            (json!({"é": "a\tb"}), "é: \"a\\tb\"\n"),
            (json!({"key with spaces": "v"}), "key with spaces: v\n"),
        ];
        for (v, want) in cases {
            assert_eq!(safe_dump(&v).unwrap(), want, "{v}");
        }
    }

    #[test]
    fn wire_values_as_salts() {
        let m = |pairs: Vec<(Value, Value)>| Value::Map(pairs);
        let cases = [
            (
                m(vec![
                    (Value::Int(2), Value::Map(vec![])),
                    (Value::Int(1), Value::from("a")),
                ]),
                "1: a\n2: {}\n",
            ),
            // Keys Python cannot sort keep their order.
            (
                m(vec![
                    (Value::from("a"), Value::Int(1)),
                    (Value::Int(1), Value::from("b")),
                ]),
                "a: 1\n1: b\n",
            ),
            (m(vec![(Value::Nil, Value::Int(1))]), "null: 1\n"),
            (
                m(vec![(Value::Bool(true), Value::Int(1)), (Value::Int(2), Value::Int(3))]),
                "true: 1\n2: 3\n",
            ),
            (
                Value::Array(vec![Value::Bytes(b"ab".to_vec())]),
                "- !!binary |\n  YWI=\n",
            ),
            (
                m(vec![(
                    Value::from("x"),
                    m(vec![(Value::from("y"), Value::Bytes(b"z".to_vec()))]),
                )]),
                "x:\n  y: !!binary |\n    eg==\n",
            ),
            (
                m(vec![(Value::from("k"), Value::Bytes(b"\x00\x01".repeat(60)))]),
                "k: !!binary |\n  AAEAAQABAAEAAQABAAEAAQABAAEAAQABAAEAAQABAAEAAQABAAEAAQABAAEAAQABAAEAAQABAAEA\n  \
                 AQABAAEAAQABAAEAAQABAAEAAQABAAEAAQABAAEAAQABAAEAAQABAAEAAQABAAEAAQABAAEAAQAB\n  AAEAAQAB\n",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(safe_dump(&v).unwrap(), want, "{v:?}");
        }
        assert!(safe_dump(&Value::Ext(1, vec![1])).is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(yaml_dquote("é\n\"", false), "\"\\xE9\\n\\\"\"");
        assert_eq!(yaml_dquote("é", true), "\"é\"");
        assert_eq!(yaml_str("plain text"), "plain text");
        assert_eq!(yaml_str("yes"), "'yes'");
        assert_eq!(yaml_str("12"), "'12'");
        assert_eq!(yaml_str("a: b"), "'a: b'");
        assert_eq!(yaml_str("multi\nline"), "\"multi\\nline\"");
        assert_eq!(yaml_float(1e20), "1.0e+20");
        assert_eq!(yaml_float(f64::NEG_INFINITY), "-.inf");
    }
}
