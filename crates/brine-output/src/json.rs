//! Python's `json.dumps(data, default=repr, ensure_ascii=False, indent=…,
//! sort_keys=…)` over msgpack values, as Salt's json outputter calls it.

use brine_proto::Value;

/// What `json.dumps` raises: a key that is not str/int/float/bool/None,
/// or keys `sort_keys` cannot order.
#[derive(Debug)]
pub struct TypeError;

/// `json.dumps(v, default=repr, ensure_ascii=False, indent, sort_keys)`;
/// `indent` is the text of one level (`indent=4` is four spaces).
pub fn dumps(v: &Value, indent: Option<&str>, sort_keys: bool) -> Result<String, TypeError> {
    let mut out = String::new();
    write(v, indent, sort_keys, 0, &mut out)?;
    Ok(out)
}

/// `json.encoder.py_encode_basestring`: quotes, backslashes and control
/// characters escaped, everything else (non-ASCII too) as is.
pub fn string(s: &str, out: &mut String) {
    brine_py::json_str(out, s, false);
}

/// `float.__repr__` with JSON's spellings of the non-finite values.
fn float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        brine_py::float_repr(f)
    }
}

/// A dict key as the encoder writes it.
fn key(k: &Value) -> Result<String, TypeError> {
    Ok(match k {
        Value::Str(s) => s.clone(),
        Value::F64(f) => float(*f),
        Value::F32(f) => float(f64::from(*f)),
        Value::Bool(true) => "true".into(),
        Value::Bool(false) => "false".into(),
        Value::Nil => "null".into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        _ => return Err(TypeError),
    })
}

fn newline(indent: Option<&str>, level: usize, out: &mut String) {
    if let Some(unit) = indent {
        out.push('\n');
        out.push_str(&unit.repeat(level));
    }
}

fn write(v: &Value, indent: Option<&str>, sort_keys: bool, level: usize, out: &mut String) -> Result<(), TypeError> {
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::UInt(u) => out.push_str(&u.to_string()),
        Value::F64(f) => out.push_str(&float(*f)),
        Value::F32(f) => out.push_str(&float(f64::from(*f))),
        Value::Str(s) => string(s, out),
        // Not JSON types: `default=repr` makes them text.
        Value::Bytes(_) | Value::Ext(..) => string(&brine_py::repr(v), out),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(indent, level + 1, out);
                write(item, indent, sort_keys, level + 1, out)?;
            }
            newline(indent, level, out);
            out.push(']');
        }
        Value::Map(pairs) => {
            if pairs.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            let order: Vec<usize> = if sort_keys {
                crate::py::sorted_keys(pairs).ok_or(TypeError)?
            } else {
                (0..pairs.len()).collect()
            };
            out.push('{');
            for (n, i) in order.into_iter().enumerate() {
                let (k, val) = &pairs[i];
                if n > 0 {
                    out.push_str(item_sep);
                }
                newline(indent, level + 1, out);
                string(&key(k)?, out);
                out.push_str(": ");
                write(val, indent, sort_keys, level + 1, out)?;
            }
            newline(indent, level, out);
            out.push('}');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_as_python() {
        let v = Value::Map(vec![
            (Value::Int(1), Value::Array(vec![Value::F64(1.0), Value::Nil])),
            (Value::from("é\"\u{1}"), Value::Bytes(b"x".to_vec())),
        ]);
        assert_eq!(
            dumps(&v, None, false).unwrap(),
            r#"{"1": [1.0, null], "é\"\u0001": "b'x'"}"#
        );
        assert_eq!(
            dumps(&v, Some("  "), false).unwrap(),
            "{\n  \"1\": [\n    1.0,\n    null\n  ],\n  \"é\\\"\\u0001\": \"b'x'\"\n}"
        );
        assert!(dumps(&v, Some("    "), true).is_err());
        assert!(dumps(&Value::Map(vec![(Value::Bytes(vec![]), Value::Nil)]), None, false).is_err());
        assert_eq!(dumps(&Value::F64(f64::NAN), Some(""), false).unwrap(), "NaN");
    }
}
