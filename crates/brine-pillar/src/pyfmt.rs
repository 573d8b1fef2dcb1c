//! How Python (and PyYAML, and Salt's Jinja finalizer) turn values into
//! text, for what a pillar template prints: `str()`/`repr()`, Salt's
//! `PrintableDict`, YAML scalars and flow collections, JSON.

use minijinja::value::{Value as Mj, ValueKind};

use brine_py::{bytes_repr, float_repr, str_repr};
use brine_py::{yaml_dquote, yaml_float, yaml_str};

/// Salt's `_yaml_safe_repr`: strings with a newline, CR or tab become a
/// YAML double-quoted scalar, others their Python `repr`.
fn yaml_safe_repr(s: &str) -> String {
    if s.contains(['\n', '\r', '\t']) {
        yaml_dquote(s, true)
    } else {
        str_repr(s)
    }
}

fn is_tuple(v: &Mj) -> bool {
    v.is_tuple()
}

fn items(v: &Mj) -> Vec<Mj> {
    v.try_iter().map(|it| it.collect()).unwrap_or_default()
}

fn pairs(v: &Mj) -> Vec<(Mj, Mj)> {
    items(v)
        .into_iter()
        .map(|k| {
            let val = v.get_item(&k).unwrap_or(Mj::UNDEFINED);
            (k, val)
        })
        .collect()
}

fn number_str(v: &Mj) -> String {
    if v.is_integer() {
        v.to_string()
    } else {
        f64::try_from(v.clone())
            .map(float_repr)
            .unwrap_or_else(|_| v.to_string())
    }
}

fn seq_text(v: &Mj) -> String {
    let parts: Vec<String> = items(v).iter().map(py_repr).collect();
    if is_tuple(v) {
        if parts.len() == 1 {
            format!("({},)", parts[0])
        } else {
            format!("({})", parts.join(", "))
        }
    } else {
        format!("[{}]", parts.join(", "))
    }
}

/// What `{{ value }}` prints in Salt's Jinja: Python's `str()`, with maps
/// (at any depth) as Salt's `PrintableDict`.
pub fn py_str(v: &Mj) -> String {
    match v.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::None => "None".into(),
        ValueKind::Bool => if v.is_true() { "True" } else { "False" }.into(),
        ValueKind::Number => number_str(v),
        ValueKind::String => v.as_str().unwrap_or_default().to_string(),
        ValueKind::Bytes => bytes_repr(v.as_bytes().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => seq_text(v),
        ValueKind::Map => printable_dict(v, py_str),
        _ => v.to_string(),
    }
}

/// Python's `repr()` (maps as `PrintableDict.__repr__`).
pub fn py_repr(v: &Mj) -> String {
    match v.kind() {
        ValueKind::String => str_repr(v.as_str().unwrap_or_default()),
        ValueKind::Undefined => "Undefined".into(),
        ValueKind::Map => printable_dict(v, py_repr),
        _ => py_str(v),
    }
}

/// Salt's `PrintableDict`: keys by `repr()`, string values as safe YAML
/// scalars, other values by `value` (`str()` or `repr()`).
fn printable_dict(v: &Mj, value: fn(&Mj) -> String) -> String {
    let parts: Vec<String> = pairs(v)
        .iter()
        .map(|(k, val)| {
            let shown = match val.as_str() {
                Some(s) if val.kind() == ValueKind::String => yaml_safe_repr(s),
                _ => value(val),
            };
            format!("{}: {shown}", py_repr(k))
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// `yaml.safe_dump(value, default_flow_style=True)` without the
/// trailing newline / document end: flow collections on one line
/// (PyYAML folds long ones at 80 columns, which reads back the same).
pub fn yaml_flow(v: &Mj) -> Result<String, String> {
    Ok(match v.kind() {
        ValueKind::Undefined | ValueKind::None => "null".into(),
        ValueKind::Bool => if v.is_true() { "true" } else { "false" }.into(),
        ValueKind::Number if v.is_integer() => v.to_string(),
        ValueKind::Number => yaml_float(f64::try_from(v.clone()).unwrap_or(0.0)),
        ValueKind::String => yaml_str(v.as_str().unwrap_or_default()),
        ValueKind::Bytes => return Err("cannot represent bytes as YAML".into()),
        ValueKind::Seq | ValueKind::Iterable => {
            let parts: Result<Vec<String>, String> = items(v).iter().map(yaml_flow).collect();
            format!("[{}]", parts?.join(", "))
        }
        ValueKind::Map => {
            let mut parts = Vec::new();
            for (k, val) in pairs(v) {
                parts.push(format!("{}: {}", yaml_flow(&k)?, yaml_flow(&val)?));
            }
            format!("{{{}}}", parts.join(", "))
        }
        _ => return Err(format!("cannot represent an object of type {} as YAML", v.kind())),
    })
}

/// Python's `json.dumps` spacing (`", "`, `": "`), optionally with
/// sorted keys, `ensure_ascii` escapes and an indent.
pub fn json_dumps(v: &serde_json::Value, sort_keys: bool, ensure_ascii: bool, indent: Option<usize>) -> String {
    let mut out = String::new();
    json_write(&mut out, v, sort_keys, ensure_ascii, indent, 0);
    out
}

fn json_write(out: &mut String, v: &serde_json::Value, sort: bool, ascii: bool, indent: Option<usize>, level: usize) {
    use serde_json::Value as J;
    let nl = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            out.push_str(&match float_repr(f).as_str() {
                "inf" => "Infinity".to_string(),
                "-inf" => "-Infinity".to_string(),
                "nan" => "NaN".to_string(),
                r => r.to_string(),
            });
        }
        J::Number(n) => out.push_str(&n.to_string()),
        J::String(s) => brine_py::json_str(out, s, ascii),
        J::Array(a) if a.is_empty() => out.push_str("[]"),
        J::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                nl(out, level + 1);
                json_write(out, item, sort, ascii, indent, level + 1);
            }
            nl(out, level);
            out.push(']');
        }
        J::Object(m) if m.is_empty() => out.push_str("{}"),
        J::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            if sort {
                keys.sort();
            }
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                nl(out, level + 1);
                brine_py::json_str(out, k, ascii);
                out.push_str(": ");
                json_write(out, &m[k], sort, ascii, indent, level + 1);
            }
            nl(out, level);
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_text_of_values() {
        assert_eq!(float_repr(1.5), "1.5");
        assert_eq!(float_repr(1.0), "1.0");
        assert_eq!(float_repr(1e16), "1e+16");
        assert_eq!(float_repr(1e-5), "1e-05");
        assert_eq!(float_repr(0.0001), "0.0001");
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("a\nb"), "'a\\nb'");
        let v = crate::jinja::to_mj(&serde_json::json!({"k": "v", "n": null, "l": [1, "x", true], "m": {"t": "a\tb"}}));
        assert_eq!(
            py_str(&v),
            "{'k': 'v', 'n': None, 'l': [1, 'x', True], 'm': {'t': \"a\\tb\"}}"
        );
        assert_eq!(py_str(&Mj::from(vec![Mj::from(1.5), Mj::from(())])), "[1.5, None]");
    }

    #[test]
    fn yaml_text() {
        let v = crate::jinja::to_mj(&serde_json::json!({"a": [1, "on", null], "b": 1.5}));
        assert_eq!(yaml_flow(&v).unwrap(), "{a: [1, 'on', null], b: 1.5}");
    }

    #[test]
    fn json_text() {
        let v = serde_json::json!({"b": [1, 2.5], "a": "é<"});
        assert_eq!(
            json_dumps(&v, true, true, None),
            "{\"a\": \"\\u00e9<\", \"b\": [1, 2.5]}"
        );
        assert_eq!(
            json_dumps(&v, false, false, Some(2)),
            "{\n  \"b\": [\n    1,\n    2.5\n  ],\n  \"a\": \"é<\"\n}"
        );
    }
}
