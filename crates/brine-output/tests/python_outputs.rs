//! Every case of scripts/gen-output-fixtures.py against what Python Salt
//! 3007.17's outputters printed for it (tests/fixtures/outputs.json),
//! byte for byte.

use brine_output::{printout, Indent, Opts};
use brine_proto::Value;
use serde_json::Value as Json;

/// The fixture's data as msgpack values (`__bytes__` and `__map__` tags
/// for what JSON cannot hold).
fn value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (_, Some(u)) => Value::UInt(u),
            _ => Value::F64(n.as_f64().unwrap()),
        },
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(value).collect()),
        Json::Object(m) => {
            if m.len() == 1 {
                if let Some(Json::String(h)) = m.get("__bytes__") {
                    let bytes = (0..h.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap());
                    return Value::Bytes(bytes.collect());
                }
                if let Some(Json::Array(pairs)) = m.get("__map__") {
                    return Value::Map(pairs.iter().map(|p| (value(&p[0]), value(&p[1]))).collect());
                }
            }
            Value::Map(m.iter().map(|(k, v)| (Value::from(k.as_str()), value(v))).collect())
        }
    }
}

fn opts(j: &Json) -> Opts {
    let mut o = Opts::default();
    let Json::Object(m) = j else { panic!("opts") };
    for (k, v) in m {
        let b = || v.as_bool().unwrap();
        let strs = |v: &Json| match v {
            Json::String(s) => s.split(',').map(str::to_string).collect(),
            Json::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
            _ => panic!(),
        };
        match k.as_str() {
            "color" => o.color = b(),
            "strip_colors" => o.strip_colors = b(),
            "state_output" => o.state_output = v.as_str().unwrap().into(),
            "state_verbose" => o.state_verbose = b(),
            "state_output_diff" => o.state_output_diff = b(),
            "state_output_profile" => o.state_output_profile = b(),
            "state_output_pct" => o.state_output_pct = b(),
            "state_tabular" => o.state_tabular = b(),
            "state_compress_ids" => o.state_compress_ids = b(),
            "state_output_exclude" => o.state_output_exclude = strs(v),
            "state_output_terse" => o.state_output_terse = strs(v),
            "nested_indent" => o.nested_indent = v.as_u64().unwrap() as usize,
            "output" => o.output = Some(v.as_str().unwrap().into()),
            "static" => o.static_ = b(),
            "fun" => o.fun = v.as_str().unwrap().into(),
            "arg" => {
                let Value::Array(a) = value(v) else { panic!("arg") };
                o.arg = a
            }
            "output_indent" => {
                o.output_indent = match v {
                    Json::Null => Indent::Null,
                    Json::String(s) if s == "pretty" => Indent::Pretty,
                    Json::String(s) => Indent::Text(s.clone()),
                    n => Indent::Int(n.as_i64().unwrap()),
                }
            }
            other => panic!("fixture option {other} not mapped"),
        }
    }
    o
}

#[test]
fn outputs_are_salts() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/outputs.json")).unwrap();
    let cases: Vec<Json> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() > 50);
    let mut failed = Vec::new();
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let want = c["expected"].as_str().map(str::to_string);
        let got = printout(
            c["out"].as_str().unwrap(),
            &value(&c["data"]),
            &opts(&c["opts"]),
            c["retcode"].as_i64().unwrap(),
        );
        if got != want {
            eprintln!(
                "=== {name}: differs\n--- Salt:\n{}\n--- Brine:\n{}\n",
                want.as_deref().unwrap_or("<None>"),
                got.as_deref().unwrap_or("<None>")
            );
            failed.push(name);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases differ: {failed:?}",
        failed.len(),
        cases.len()
    );
}
