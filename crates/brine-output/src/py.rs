//! The bits of Python the outputters lean on that brine-py does not have:
//! `str.splitlines`, `sorted()` of dict keys, `str.strip`, format widths.

use std::cmp::Ordering;

use brine_proto::Value;

/// Line boundaries of `str.splitlines`.
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// `s.splitlines(keepends)`: no trailing empty line, `\r\n` is one break.
pub fn splitlines(s: &str, keepends: bool) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if is_line_break(c) {
            let mut end = i + c.len_utf8();
            if c == '\r' {
                if let Some(&(j, '\n')) = it.peek() {
                    end = j + 1;
                    it.next();
                }
            }
            out.push(if keepends { &s[start..end] } else { &s[start..i] });
            start = end;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// `str.isspace()` of one character, as `str.strip()` and `\s` see it.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\x1c'..='\x1f')
}

/// `s.strip()`.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `len(s)`: code points.
pub fn len(s: &str) -> usize {
    s.chars().count()
}

/// `format(s, ">w")`.
pub fn rjust(s: &str, w: usize) -> String {
    format!("{}{s}", " ".repeat(w.saturating_sub(len(s))))
}

/// `format(s, "<w")`.
pub fn ljust(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(len(s))))
}

/// How `<` orders a key against keys of the same family.
enum SortKey<'a> {
    Num(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
}

fn sort_key(v: &Value) -> Option<SortKey<'_>> {
    Some(match v {
        Value::Bool(b) => SortKey::Num(f64::from(u8::from(*b))),
        Value::Int(i) => SortKey::Num(*i as f64),
        Value::UInt(u) => SortKey::Num(*u as f64),
        Value::F32(f) => SortKey::Num(f64::from(*f)),
        Value::F64(f) => SortKey::Num(*f),
        Value::Str(s) => SortKey::Str(s),
        Value::Bytes(b) => SortKey::Bytes(b),
        _ => return None,
    })
}

/// The order `sorted(d)` gives `d`'s keys, or `None` where Python raises
/// `TypeError` (keys of types that do not compare: text and numbers,
/// `None` among others).
pub fn sorted_keys(pairs: &[(Value, Value)]) -> Option<Vec<usize>> {
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    if pairs.len() < 2 {
        return Some(order);
    }
    let keys: Vec<SortKey> = pairs.iter().map(|(k, _)| sort_key(k)).collect::<Option<_>>()?;
    let same = keys.windows(2).all(|w| {
        matches!(
            (&w[0], &w[1]),
            (SortKey::Num(_), SortKey::Num(_))
                | (SortKey::Str(_), SortKey::Str(_))
                | (SortKey::Bytes(_), SortKey::Bytes(_))
        )
    });
    if !same {
        return None;
    }
    order.sort_by(|&a, &b| match (&keys[a], &keys[b]) {
        (SortKey::Num(x), SortKey::Num(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (SortKey::Str(x), SortKey::Str(y)) => x.cmp(y),
        (SortKey::Bytes(x), SortKey::Bytes(y)) => x.cmp(y),
        _ => Ordering::Equal,
    });
    Some(order)
}

/// pprint's `_safe_key` order: values of one family by `<`, otherwise by
/// the name of their type (CPython then falls back to `id()`, an address;
/// here the original order).
pub fn safe_sorted(pairs: &[(Value, Value)]) -> Vec<usize> {
    let type_rank = |v: &Value| -> String {
        match v {
            Value::Bool(_) | Value::Int(_) | Value::UInt(_) | Value::F32(_) | Value::F64(_) => "<class 'int'>".into(),
            other => format!("<class '{}'>", brine_py::type_name(other)),
        }
    };
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&pairs[a].0, &pairs[b].0);
        match (sort_key(x), sort_key(y)) {
            (Some(SortKey::Num(p)), Some(SortKey::Num(q))) => p.partial_cmp(&q).unwrap_or(Ordering::Equal),
            (Some(SortKey::Str(p)), Some(SortKey::Str(q))) => p.cmp(q),
            (Some(SortKey::Bytes(p)), Some(SortKey::Bytes(q))) => p.cmp(q),
            _ => type_rank(x).cmp(&type_rank(y)),
        }
    });
    order
}

/// A dict's keys as `str()`, the way Salt's nested outputter rebuilds a
/// dict whose keys do not sort (`{str(k): v for k, v in d.items()}`):
/// a later value replaces an earlier one under the same text, in place.
pub fn str_keyed(pairs: &[(Value, Value)]) -> Vec<(String, &Value)> {
    let mut out: Vec<(String, &Value)> = Vec::new();
    for (k, v) in pairs {
        let k = brine_py::to_str(k);
        match out.iter_mut().find(|(x, _)| *x == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitlines_is_pythons() {
        assert_eq!(splitlines("a\nb\r\nc\rd\n", false), ["a", "b", "c", "d"]);
        assert_eq!(splitlines("a\n\nb", false), ["a", "", "b"]);
        assert!(splitlines("", false).is_empty());
        assert_eq!(splitlines("a\nb", true), ["a\n", "b"]);
        assert_eq!(splitlines("x\u{2028}y", false), ["x", "y"]);
    }

    #[test]
    fn sorting_keys() {
        let m = |ks: Vec<Value>| ks.into_iter().map(|k| (k, Value::Nil)).collect::<Vec<_>>();
        assert_eq!(
            sorted_keys(&m(vec![Value::from("b"), Value::from("a")])),
            Some(vec![1, 0])
        );
        assert_eq!(sorted_keys(&m(vec![Value::Int(10), Value::F64(2.5)])), Some(vec![1, 0]));
        assert_eq!(sorted_keys(&m(vec![Value::Int(1), Value::from("a")])), None);
        assert_eq!(sorted_keys(&m(vec![Value::Nil])), Some(vec![0]));
        assert_eq!(sorted_keys(&m(vec![Value::Nil, Value::Nil])), None);
    }
}
