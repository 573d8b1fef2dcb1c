//! Salt's argument helpers (`salt.utils.args`): `yamlify_arg`,
//! `parse_kwarg` and `parse_input`, how the `salt` CLI and the master's
//! peer publishing turn texts into a job's arguments.

use std::path::Path;

use brine_proto::json::from_json;
use brine_proto::Value as Msg;
use serde_json::Value;

/// Salt's `yamlify_arg`: the YAML value of a CLI argument, or `None` where
/// Salt keeps the argument as the text it was (blank, document markers,
/// `1_000`, control whitespace, comments that would eat content, maps and
/// lists not written in braces/brackets, YAML errors, types Salt does not
/// take such as timestamps).
pub fn yamlify_arg(arg: &str) -> Option<Value> {
    let stripped = arg.trim();
    if matches!(stripped, "" | "---" | "...") {
        return None;
    }
    if arg.contains('_') && stripped.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return None;
    }
    if arg.contains(['\t', '\r', '\n']) {
        return None;
    }
    let load = |s: &str| crate::yaml::parse_yaml(s, Path::new("<argument>")).ok();
    if arg.contains('#') {
        return match load(arg)? {
            Value::String(_) | Value::Null => None,
            v => Some(v),
        };
    }
    if arg == "None" {
        return Some(Value::Null);
    }
    match load(arg)? {
        Value::Object(_) if !arg.starts_with('{') => None,
        Value::Array(_) if !arg.starts_with('[') => None,
        Value::String(s) if s.is_empty() && matches!(arg, "|" | "!") => None,
        Value::Null if arg.trim().starts_with('#') || arg == "!" => None,
        v => Some(v),
    }
}

/// Salt's `parse_kwarg`: `name=value` (a name as Python's `[^\d\W][\w.-]*`,
/// not `==`), or `None`.
pub fn parse_kwarg(arg: &str) -> Option<(&str, &str)> {
    let (name, value) = arg.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    let word = |c: char| c.is_alphanumeric() || c == '_';
    if !word(first) || first.is_numeric() || !chars.all(|c| word(c) || c == '.' || c == '-') {
        return None;
    }
    if value.starts_with('=') {
        return None;
    }
    Some((name, value))
}

/// `yamlify_arg` as a job argument: the YAML value, or the text itself;
/// a `!!binary` text (PyYAML's tag, base64) is bytes.
pub fn yamlify(arg: &str) -> Msg {
    if let Some(b64) = arg.strip_prefix("!!binary ") {
        use base64::Engine;
        if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            return Msg::Bytes(b);
        }
    }
    match yamlify_arg(arg) {
        Some(v) => from_json(&v),
        None => Msg::from(arg),
    }
}

/// Salt's `parse_input` (with `condition_input`): `k=v` texts become a
/// trailing `{"__kwarg__": True, ...}` map (a later `k` replaces an
/// earlier one in place, as in a dict), as do the pairs of a map that
/// carries `__kwarg__: True`; everything else is positional. Texts are
/// yamlified unless their keyword is in `no_parse`.
pub fn parse_input(args: &[Msg], no_parse: &[String]) -> Vec<Msg> {
    let mut out = Vec::new();
    let mut kwargs: Vec<(Msg, Msg)> = Vec::new();
    for a in args {
        match a {
            Msg::Str(s) => match parse_kwarg(s) {
                Some((k, v)) => {
                    let v = if no_parse.iter().any(|n| n == k) {
                        Msg::from(v)
                    } else {
                        yamlify(v)
                    };
                    set_pair(&mut kwargs, Msg::from(k), v);
                }
                None => out.push(yamlify(s)),
            },
            Msg::Map(pairs) if a.get("__kwarg__") == Some(&Msg::Bool(true)) => {
                for (k, v) in pairs {
                    if k.as_str() != Some("__kwarg__") {
                        set_pair(&mut kwargs, k.clone(), v.clone());
                    }
                }
            }
            // (condition_input turns ints that are jids into text; a
            // 20-digit jid does not fit a msgpack int, so none arrives.)
            other => out.push(other.clone()),
        }
    }
    if !kwargs.is_empty() {
        let mut kw = vec![(Msg::from("__kwarg__"), Msg::Bool(true))];
        kw.extend(kwargs);
        out.push(Msg::Map(kw));
    }
    out
}

fn set_pair(pairs: &mut Vec<(Msg, Msg)>, k: Msg, v: Msg) {
    match pairs.iter_mut().find(|(key, _)| *key == k) {
        Some(slot) => slot.1 = v,
        None => pairs.push((k, v)),
    }
}

/// Salt's `split_input`: a list's items as text, or a text split on
/// commas with each piece stripped.
pub fn split_input(v: &Msg) -> Vec<String> {
    match v {
        Msg::Array(a) => a.iter().map(crate::to_str).collect(),
        other => crate::to_str(other).split(',').map(|s| s.trim().to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yamlify_keeps_what_salt_keeps() {
        assert_eq!(yamlify_arg("1"), Some(json!(1)));
        assert_eq!(yamlify_arg("1.5"), Some(json!(1.5)));
        assert_eq!(yamlify_arg("true"), Some(json!(true)));
        assert_eq!(yamlify_arg("None"), Some(Value::Null));
        assert_eq!(yamlify_arg("[1, a]"), Some(json!([1, "a"])));
        assert_eq!(yamlify_arg("{a: 1}"), Some(json!({"a": 1})));
        assert_eq!(yamlify_arg("a: 1"), None);
        assert_eq!(yamlify_arg("- a"), None);
        assert_eq!(yamlify_arg("1_000"), None);
        assert_eq!(yamlify_arg(" "), None);
        assert_eq!(yamlify_arg("---"), None);
        assert_eq!(yamlify_arg("a\tb"), None);
        assert_eq!(yamlify_arg("a # b"), None);
        assert_eq!(yamlify_arg("[1] # b"), Some(json!([1])));
        assert_eq!(yamlify_arg("#"), None);
        assert_eq!(yamlify_arg("|"), None);
        assert_eq!(yamlify_arg("!"), None);
        assert_eq!(yamlify_arg("hello"), Some(json!("hello")));
        assert_eq!(yamlify_arg("[unclosed"), None);
        // Salt's YAML loader (YAML 1.1 words, hex) and what it keeps as text.
        assert_eq!(yamlify_arg("~"), Some(Value::Null));
        assert_eq!(yamlify_arg("null"), Some(Value::Null));
        assert_eq!(yamlify_arg("yes"), Some(json!(true)));
        assert_eq!(yamlify_arg("0x10"), Some(json!(16)));
        assert_eq!(yamlify_arg("1e3"), Some(json!("1e3")));
        assert_eq!(yamlify_arg("2024-01-01"), Some(json!("2024-01-01")));
    }

    #[test]
    fn kwargs_as_salts_regex() {
        assert_eq!(parse_kwarg("a=1"), Some(("a", "1")));
        assert_eq!(parse_kwarg("a.b-c=x=y"), Some(("a.b-c", "x=y")));
        assert_eq!(parse_kwarg("_x="), Some(("_x", "")));
        assert_eq!(parse_kwarg("1a=1"), None);
        assert_eq!(parse_kwarg("a==1"), None);
        assert_eq!(parse_kwarg("=1"), None);
        assert_eq!(parse_kwarg("a b=1"), None);
        assert_eq!(parse_kwarg("plain"), None);
    }

    #[test]
    fn parse_input_as_salts() {
        let args = [
            Msg::from("1"),
            Msg::from("a=[1, 2]"),
            Msg::from("b=x"),
            Msg::from("raw=1"),
            Msg::map([("__kwarg__", Msg::Bool(true)), ("c", Msg::Int(3))]),
            Msg::Array(vec![Msg::from("x")]),
        ];
        let got = parse_input(&args, &["raw".to_string()]);
        assert_eq!(
            got,
            vec![
                Msg::Int(1),
                Msg::Array(vec![Msg::from("x")]),
                Msg::map([
                    ("__kwarg__", Msg::Bool(true)),
                    ("a", Msg::Array(vec![Msg::Int(1), Msg::Int(2)])),
                    ("b", Msg::from("x")),
                    ("raw", Msg::from("1")),
                    ("c", Msg::Int(3)),
                ]),
            ]
        );
        assert_eq!(parse_input(&[Msg::from("plain")], &[]), vec![Msg::from("plain")]);
        // A repeated keyword keeps its first place and its last value.
        assert_eq!(
            parse_input(&[Msg::from("a=1"), Msg::from("b=2"), Msg::from("a=3")], &[]),
            vec![Msg::map([
                ("__kwarg__", Msg::Bool(true)),
                ("a", Msg::Int(3)),
                ("b", Msg::Int(2)),
            ])]
        );
        assert_eq!(
            parse_input(&[Msg::from("!!binary aGk=")], &[]),
            vec![Msg::Bytes(b"hi".to_vec())]
        );
        assert_eq!(
            parse_input(&[Msg::from("k=!!binary aGk=")], &[])[0].get("k"),
            Some(&Msg::Bytes(b"hi".to_vec()))
        );
    }
}
