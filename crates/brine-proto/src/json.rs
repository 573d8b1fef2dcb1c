//! Conversions between [`Value`] and `serde_json::Value` (YAML/JSON text as
//! Salt reads it, on one side; msgpack on the other).

use crate::Value;

/// A JSON value as msgpack: integers stay integers (`UInt` above
/// `i64::MAX`), every other number is a float.
pub fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .or_else(|| n.as_u64().map(Value::UInt))
            .unwrap_or_else(|| Value::F64(n.as_f64().unwrap_or(0.0))),
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(from_json).collect()),
        serde_json::Value::Object(m) => {
            Value::Map(m.iter().map(|(k, v)| (Value::from(k.as_str()), from_json(v))).collect())
        }
    }
}

/// A msgpack value as JSON. JSON is narrower: bytes become text (invalid
/// UTF-8 replaced), a non-text map key becomes Python's `str()` of it,
/// a non-finite float and an ext value become `null`.
pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil | Value::Ext(..) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::UInt(u) => serde_json::Value::from(*u),
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::Str(s) => serde_json::Value::String(s.clone()),
        Value::Bytes(b) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Map(pairs) => serde_json::Value::Object(pairs.iter().map(|(k, v)| (key_text(k), to_json(v))).collect()),
    }
}

/// [`to_json`] as text, written straight from the value (no JSON tree
/// in between): what a database column of JSON is given.
pub fn to_json_text(v: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    write_json(&mut out, v);
    // Only JSON text and serde_json's escaped strings were written.
    String::from_utf8(out).unwrap_or_default()
}

fn write_json(out: &mut Vec<u8>, v: &Value) {
    // Writing to a Vec cannot fail.
    let text = |out: &mut Vec<u8>, s: &str| {
        let _ = serde_json::to_writer(&mut *out, s);
    };
    match v {
        Value::Nil | Value::Ext(..) => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::UInt(u) => out.extend_from_slice(u.to_string().as_bytes()),
        Value::F32(f) => {
            let _ = serde_json::to_writer(&mut *out, &float(f64::from(*f)));
        }
        Value::F64(f) => {
            let _ = serde_json::to_writer(&mut *out, &float(*f));
        }
        Value::Str(s) => text(out, s),
        Value::Bytes(b) => text(out, &String::from_utf8_lossy(b)),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, x);
            }
            out.push(b']');
        }
        Value::Map(pairs) => {
            out.push(b'{');
            for (i, (k, x)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match k {
                    Value::Str(s) => text(out, s),
                    other => text(out, &key_text(other)),
                }
                out.push(b':');
                write_json(out, x);
            }
            out.push(b'}');
        }
    }
}

fn float(f: f64) -> serde_json::Value {
    serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Python's `str()` of a map key.
fn key_text(k: &Value) -> String {
    match k {
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Nil => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        other => to_json(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_narrowing() {
        let j = serde_json::json!({"a": [1, -2, 18446744073709551615u64, 1.5, null, true, "x"], "b": {}});
        assert_eq!(to_json(&from_json(&j)), j);
        let m = Value::Map(vec![
            (Value::Int(4505), Value::Bytes(b"raw".to_vec())),
            (Value::Bool(true), Value::F64(f64::NAN)),
        ]);
        assert_eq!(to_json(&m), serde_json::json!({"4505": "raw", "True": null}));
    }

    #[test]
    fn text_is_the_same_json() {
        let v = Value::Map(vec![
            (Value::from("s"), Value::from("quote \" back \\ nl \n nul \0 é")),
            (
                Value::Int(1),
                Value::Array(vec![Value::Int(-3), Value::UInt(u64::MAX), Value::F64(2.5)]),
            ),
            (Value::Nil, Value::Bytes(vec![0xff, b'a'])),
            (Value::from("f"), Value::F32(f32::INFINITY)),
            (Value::from("m"), Value::Map(vec![])),
        ]);
        let parsed: serde_json::Value = serde_json::from_str(&to_json_text(&v)).unwrap();
        assert_eq!(parsed, to_json(&v));
    }
}
