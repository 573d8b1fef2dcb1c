//! Salt's CLI argument helpers (`salt.utils.args`) that need YAML:
//! `yamlify_arg` and `parse_kwarg`, used by the `salt` CLI and by the
//! master's peer publishing (`parse_input`).

use std::path::Path;

use crate::Value;

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
    let load = |s: &str| crate::parse_yaml(s, Path::new("<argument>")).ok();
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
}
