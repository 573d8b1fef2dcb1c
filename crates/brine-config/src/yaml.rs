//! YAML as Salt reads it: PyYAML's SafeLoader (YAML 1.1 scalar resolution)
//! with Salt's `SaltYamlSafeLoader` changes (salt/utils/yamlloader.py):
//!
//! * plain `yes/no/on/off/true/false` (the PyYAML spellings) are booleans;
//!   `~`, `null`, empty are null;
//! * integers: decimal, `0x` hex, `0b` binary, `1_000`, sexagesimal `1:30`;
//!   a leading-zero integer such as `0755` has its zeros stripped and is read
//!   as **decimal** 755 (Salt does this on purpose so file modes survive);
//!   a negative one (`-0755`) stays octal as in PyYAML;
//! * floats need a dot (`1.5`, `1.0e+3`), plus `.inf`/`.nan` (kept as the
//!   strings `.inf`/`.nan`: JSON values cannot hold them);
//! * timestamps stay strings; quoted scalars are always strings;
//! * duplicate keys in one mapping are an error ("found conflicting ID");
//! * anchors, aliases and `<<` merge keys work; non-string keys become
//!   strings the way Python prints them (`True`, `None`, `4505`).
//!
//! Only a single document is accepted, as `yaml.load` does.

use std::path::Path;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::ConfigError;

struct Collector {
    events: Vec<(Event, Marker)>,
}

impl MarkedEventReceiver for Collector {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.events.push((ev, mark));
    }
}

fn err(path: &Path, mark: &Marker, msg: impl Into<String>) -> ConfigError {
    ConfigError::Yaml {
        path: path.to_owned(),
        line: mark.line(),
        col: mark.col() + 1,
        msg: msg.into(),
    }
}

/// Parse `text` (the contents of `path`, used in errors).
pub fn parse_yaml(text: &str, path: &Path) -> Result<Value, ConfigError> {
    let mut c = Collector { events: Vec::new() };
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut c, true).map_err(|e| err(path, e.marker(), e.info()))?;
    let mut b = Builder {
        events: c.events,
        pos: 0,
        anchors: Default::default(),
        path,
    };
    b.document()
}

struct Builder<'a> {
    events: Vec<(Event, Marker)>,
    pos: usize,
    anchors: std::collections::HashMap<usize, Value>,
    path: &'a Path,
}

impl Builder<'_> {
    fn next(&mut self) -> Option<(Event, Marker)> {
        let e = self.events.get(self.pos).cloned();
        self.pos += 1;
        e
    }

    fn document(&mut self) -> Result<Value, ConfigError> {
        let mut docs = 0;
        let mut out = Value::Null;
        while let Some((ev, mark)) = self.next() {
            match ev {
                Event::DocumentStart => {
                    docs += 1;
                    if docs > 1 {
                        return Err(err(
                            self.path,
                            &mark,
                            "expected a single document in the stream, but found another document",
                        ));
                    }
                    out = match self.next() {
                        Some((Event::DocumentEnd, _)) => Value::Null,
                        Some((ev, mark)) => self.node(ev, mark)?,
                        None => Value::Null,
                    };
                }
                Event::StreamEnd => break,
                _ => {}
            }
        }
        Ok(out)
    }

    fn node(&mut self, ev: Event, mark: Marker) -> Result<Value, ConfigError> {
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                let v = resolve(&text, style, tag.as_deref());
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                Ok(v)
            }
            Event::Alias(id) => self
                .anchors
                .get(&id)
                .cloned()
                .ok_or_else(|| err(self.path, &mark, "found undefined alias")),
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    match self.next() {
                        Some((Event::SequenceEnd, _)) => break,
                        Some((ev, m)) => items.push(self.node(ev, m)?),
                        None => return Err(err(self.path, &mark, "unterminated sequence")),
                    }
                }
                let v = Value::Array(items);
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                Ok(v)
            }
            Event::MappingStart(anchor, _) => {
                let mut map = Map::new();
                let mut merged = Map::new();
                loop {
                    let (kev, kmark) = match self.next() {
                        Some((Event::MappingEnd, _)) => break,
                        Some(x) => x,
                        None => return Err(err(self.path, &mark, "unterminated mapping")),
                    };
                    let is_merge = matches!(&kev, Event::Scalar(t, TScalarStyle::Plain, _, None) if t == "<<");
                    let key = self.node(kev, kmark)?;
                    let (vev, vmark) = self
                        .next()
                        .ok_or_else(|| err(self.path, &mark, "mapping key without value"))?;
                    let value = self.node(vev, vmark)?;
                    if is_merge {
                        let sources = match value {
                            Value::Object(m) => vec![m],
                            Value::Array(items) => items
                                .into_iter()
                                .map(|i| match i {
                                    Value::Object(m) => Ok(m),
                                    _ => Err(err(self.path, &vmark, "expected a mapping for merging")),
                                })
                                .collect::<Result<_, _>>()?,
                            _ => {
                                return Err(err(
                                    self.path,
                                    &vmark,
                                    "expected a mapping or list of mappings for merging",
                                ))
                            }
                        };
                        // Earlier sources win over later ones; explicit keys win over all.
                        for src in sources {
                            for (k, v) in src {
                                merged.entry(k).or_insert(v);
                            }
                        }
                        continue;
                    }
                    let key = key_string(&key)
                        .ok_or_else(|| err(self.path, &kmark, "found unacceptable key (a mapping or sequence)"))?;
                    if map.contains_key(&key) {
                        return Err(err(self.path, &kmark, format!("found conflicting ID '{key}'")));
                    }
                    map.insert(key, value);
                }
                for (k, v) in merged {
                    map.entry(k).or_insert(v);
                }
                let v = Value::Object(map);
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                Ok(v)
            }
            other => Err(err(self.path, &mark, format!("unexpected YAML event {other:?}"))),
        }
    }
}

/// Python's `str()` of a hashable YAML key.
fn key_string(v: &Value) -> Option<String> {
    Some(match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    })
}

/// Resolve one scalar as Salt's loader does.
pub fn resolve(text: &str, style: TScalarStyle, tag: Option<&str>) -> Value {
    let tag = tag.map(|t| t.trim_start_matches("tag:yaml.org,2002:").trim_start_matches("!!"));
    match tag {
        Some("str") => return Value::String(text.to_string()),
        Some("int") => return int(text).unwrap_or_else(|| Value::String(text.to_string())),
        Some("float") => {
            return float(text)
                .or_else(|| int(text))
                .unwrap_or_else(|| Value::String(text.to_string()))
        }
        Some("bool") => {
            return boolean(text)
                .map(Value::Bool)
                .unwrap_or_else(|| Value::String(text.to_string()))
        }
        Some("null") => return Value::Null,
        _ => {}
    }
    if style != TScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Value::Null;
    }
    if let Some(b) = boolean(text) {
        return Value::Bool(b);
    }
    if let Some(i) = int(text) {
        return i;
    }
    if let Some(f) = float(text) {
        return f;
    }
    Value::String(text.to_string())
}

fn boolean(t: &str) -> Option<bool> {
    match t {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn all(s: &str, f: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(f)
}

/// PyYAML's YAML 1.1 int resolver + constructor, with Salt's leading-zero rule.
fn int(t: &str) -> Option<Value> {
    let (neg, body) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let is_int = if let Some(b) = body.strip_prefix("0b") {
        all(b, |c| c == '0' || c == '1' || c == '_')
    } else if let Some(h) = body.strip_prefix("0x") {
        all(h, |c| c.is_ascii_hexdigit() || c == '_')
    } else if body == "0" {
        true
    } else if let Some(o) = body.strip_prefix('0') {
        all(o, |c| ('0'..='7').contains(&c) || c == '_')
    } else if body.contains(':') {
        let mut parts = body.split(':');
        let first = parts.next()?;
        first.starts_with(|c: char| ('1'..='9').contains(&c))
            && all(first, |c| c.is_ascii_digit() || c == '_')
            && parts
                .all(|p| (1..=2).contains(&p.len()) && all(p, |c| c.is_ascii_digit()) && p.parse::<u32>().unwrap() < 60)
    } else {
        body.starts_with(|c: char| ('1'..='9').contains(&c)) && all(body, |c| c.is_ascii_digit() || c == '_')
    };
    if !is_int {
        return None;
    }
    // Salt: a plain int written with leading zeros (and no sign) is decimal.
    let salt_decimal = !t.starts_with(['-', '+'])
        && body.len() > 1
        && body.starts_with('0')
        && !body.starts_with("0b")
        && !body.starts_with("0x");
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let magnitude: i128 = if salt_decimal {
        let d = clean.trim_start_matches('0');
        if d.is_empty() {
            0
        } else {
            d.parse().ok()?
        }
    } else if clean == "0" {
        0
    } else if let Some(b) = clean.strip_prefix("0b") {
        i128::from_str_radix(b, 2).ok()?
    } else if let Some(h) = clean.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()?
    } else if let Some(o) = clean.strip_prefix('0') {
        i128::from_str_radix(o, 8).ok()?
    } else if clean.contains(':') {
        clean
            .split(':')
            .try_fold(0i128, |acc, p| Some(acc * 60 + p.parse::<i128>().ok()?))?
    } else {
        clean.parse().ok()?
    };
    let v = if neg { -magnitude } else { magnitude };
    if let Ok(i) = i64::try_from(v) {
        Some(Value::Number(i.into()))
    } else if let Ok(u) = u64::try_from(v) {
        Some(Value::Number(u.into()))
    } else {
        Some(Value::String(t.to_string()))
    }
}

/// PyYAML's YAML 1.1 float resolver (a dot is required; exponent needs a sign).
fn float(t: &str) -> Option<Value> {
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    if matches!(body, ".inf" | ".Inf" | ".INF") || matches!(t, ".nan" | ".NaN" | ".NAN") {
        return Some(Value::String(t.to_string()));
    }
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if let Some(e) = exp {
        let digits = e.strip_prefix(['-', '+'])?;
        if digits.len() == e.len() || !all(digits, |c| c.is_ascii_digit()) {
            return None;
        }
    }
    let ok = if let Some(rest) = mantissa.strip_prefix('.') {
        all(rest, |c| c.is_ascii_digit() || c == '_')
    } else if mantissa.contains(':') {
        // sexagesimal float: 190:20:30.15
        let (head, frac) = mantissa.split_once('.')?;
        exp.is_none()
            && int(head).is_some()
            && head.contains(':')
            && frac.chars().all(|c| c.is_ascii_digit() || c == '_')
    } else {
        let (int_part, frac) = mantissa.split_once('.')?;
        int_part.starts_with(|c: char| c.is_ascii_digit())
            && all(int_part, |c| c.is_ascii_digit() || c == '_')
            && frac.chars().all(|c| c.is_ascii_digit() || c == '_')
    };
    if !ok {
        return None;
    }
    let clean: String = t.chars().filter(|&c| c != '_').collect();
    let f: f64 = if clean.contains(':') {
        let neg = clean.starts_with('-');
        let c = clean.trim_start_matches(['-', '+']);
        let mut acc = 0.0;
        for p in c.split(':') {
            acc = acc * 60.0 + p.parse::<f64>().ok()?;
        }
        if neg {
            -acc
        } else {
            acc
        }
    } else {
        clean.parse().ok()?
    };
    Number::from_f64(f).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Value {
        parse_yaml(s, Path::new("/t/master")).unwrap()
    }

    fn one(s: &str) -> Value {
        p(&format!("k: {s}\n"))["k"].clone()
    }

    #[test]
    fn booleans_as_pyyaml() {
        for t in ["yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"] {
            assert_eq!(one(t), Value::Bool(true), "{t}");
        }
        for f in ["no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"] {
            assert_eq!(one(f), Value::Bool(false), "{f}");
        }
        for s in ["y", "n", "yES", "'yes'", "\"on\""] {
            assert!(one(s).is_string(), "{s} stays a string");
        }
    }

    #[test]
    fn nulls() {
        for n in ["~", "null", "Null", "NULL", ""] {
            assert_eq!(one(n), Value::Null, "{n:?}");
        }
        assert_eq!(one("'null'"), Value::String("null".into()));
    }

    #[test]
    fn integers_as_salt_reads_them() {
        assert_eq!(one("4505"), Value::from(4505));
        assert_eq!(one("-12"), Value::from(-12));
        assert_eq!(one("+7"), Value::from(7));
        assert_eq!(one("1_000"), Value::from(1000));
        assert_eq!(one("0x1F"), Value::from(31));
        assert_eq!(one("0b101"), Value::from(5));
        assert_eq!(one("0"), Value::from(0));
        // Salt strips leading zeros: 0755 is 755, not 493.
        assert_eq!(one("0755"), Value::from(755));
        assert_eq!(one("00"), Value::from(0));
        assert_eq!(one("-0755"), Value::from(-493));
        assert_eq!(one("1:30"), Value::from(90));
        assert!(one("0789").is_string(), "not an int in YAML 1.1");
        assert!(one("'4505'").is_string());
        assert!(one("12abc").is_string());
    }

    #[test]
    fn floats_and_timestamps() {
        assert_eq!(one("1.5"), Value::from(1.5));
        assert_eq!(one("-0.25"), Value::from(-0.25));
        assert_eq!(one("1.0e+3"), Value::from(1000.0));
        assert_eq!(one(".5"), Value::from(0.5));
        assert!(one("1e3").is_string(), "PyYAML needs a dot and a signed exponent");
        assert_eq!(one(".inf"), Value::String(".inf".into()));
        assert_eq!(one("2024-01-01"), Value::String("2024-01-01".into()));
        assert_eq!(one("1.2.3"), Value::String("1.2.3".into()));
    }

    #[test]
    fn structures_anchors_and_merge_keys() {
        let v = p("base: &b {a: 1, b: 2}\nother:\n  <<: *b\n  b: 3\nlist: [x, *b]\n4505: port\nyes: t\n");
        assert_eq!(v["other"]["a"], Value::from(1));
        assert_eq!(v["other"]["b"], Value::from(3), "explicit key wins over merged");
        assert_eq!(v["list"][1]["b"], Value::from(2));
        assert_eq!(v["4505"], Value::from("port"));
        assert_eq!(v["True"], Value::from("t"));
        let m = p("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc:\n  <<: [*a, *b]\n");
        assert_eq!(m["c"]["x"], Value::from(1), "first merge source wins");
        assert_eq!(m["c"]["y"], Value::from(2));
    }

    #[test]
    fn errors_carry_file_and_line() {
        let e = parse_yaml("a: 1\nb: 2\n  c: [3\n", Path::new("/etc/salt/master")).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("/etc/salt/master: line 3"), "{s}");
        let e = parse_yaml("a: 1\nb: 2\na: 3\n", Path::new("/x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("conflicting ID 'a'"), "{e}");
        let e = parse_yaml("a: 1\n---\nb: 2\n", Path::new("/x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("single document"), "{e}");
        assert_eq!(parse_yaml("", Path::new("/x")).unwrap(), Value::Null);
        assert_eq!(parse_yaml("# only a comment\n", Path::new("/x")).unwrap(), Value::Null);
    }
}
