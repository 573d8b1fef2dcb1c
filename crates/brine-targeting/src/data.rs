//! Salt's `salt.utils.data.subdict_match` and `traverse_dict_and_list`,
//! the matching of grain and pillar expressions (`os:Debian`,
//! `roles:web*`, `ip_interfaces:eth0:10.*`).

use std::cell::RefCell;
use std::collections::HashMap;

use brine_proto::Value;
use brine_py::{fnmatch, int_str, to_str, yamlify_arg};
use log::warn;

use super::pyre::PyRegex;
use super::TargetError;

/// A number as Python compares it (`True == 1 == 1.0`).
fn py_num(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Int(i) => Some(*i as f64),
        Value::UInt(u) => Some(*u as f64),
        Value::F32(f) => Some(f64::from(*f)),
        Value::F64(f) => Some(*f),
        _ => None,
    }
}

/// `d[key]` for a text key.
fn get_str<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    match map {
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// `d[n]` for an integer key (an int, float or bool key equal to it).
fn get_num(map: &Value, n: f64) -> Option<&Value> {
    match map {
        Value::Map(pairs) => pairs.iter().find(|(k, _)| py_num(k) == Some(n)).map(|(_, v)| v),
        _ => None,
    }
}

/// `d[yamlify_arg(key)]`, tried when `d[key]` fails: Salt reads the path
/// component as YAML so `2`, `1.5`, `true` or `null` find non-text keys.
fn get_yaml<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    use serde_json::Value as J;
    let Value::Map(pairs) = map else { return None };
    match &yamlify_arg(key)? {
        J::String(s) if s != key => get_str(map, s),
        J::Null => pairs.iter().find(|(k, _)| k.is_nil()).map(|(_, v)| v),
        J::Bool(b) => get_num(map, f64::from(u8::from(*b))),
        J::Number(n) => get_num(map, n.as_f64()?),
        _ => None,
    }
}

/// Salt's `traverse_dict_and_list`: `None` where Salt returns the default.
pub fn traverse<'a>(data: &'a Value, key: &str, delimiter: &str) -> Option<&'a Value> {
    let mut ptr = data;
    for each in key.split(delimiter) {
        ptr = match ptr {
            Value::Array(items) => {
                let embedded = || items.iter().filter(|x| x.is_map());
                match int_str(each) {
                    None => embedded().find_map(|m| get_str(m, each))?,
                    Some(idx) => match embedded().find_map(|m| get_num(m, idx as f64)) {
                        Some(v) => v,
                        None => {
                            let len = items.len() as i128;
                            let at = if idx < 0 { idx + len } else { idx };
                            if at < 0 || at >= len {
                                return None;
                            }
                            &items[at as usize]
                        }
                    },
                }
            }
            Value::Map(_) => match get_str(ptr, each) {
                Some(v) => v,
                None => get_yaml(ptr, each)?,
            },
            _ => return None,
        };
    }
    Some(ptr)
}

thread_local! {
    /// Compiled patterns, as Python's `re` keeps its own.
    static REGEXES: RefCell<HashMap<String, Option<PyRegex>>> = RefCell::new(HashMap::new());
}

fn cached_regex_match(pattern: &str, target: &str) -> Option<bool> {
    REGEXES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() > 512 {
            cache.clear();
        }
        let re = cache
            .entry(pattern.to_string())
            .or_insert_with(|| PyRegex::new(pattern).ok());
        re.as_ref().map(|re| re.matches(target))
    })
}

/// `subdict_match`'s `_match`: both sides lower-cased, then a regex match
/// at the start, an equality, or an fnmatch. A bad regex is no match.
fn match_one(target: &Value, pattern: &str, regex_match: bool, exact: bool) -> bool {
    let target = to_str(target).to_lowercase();
    let pattern = pattern.to_lowercase();
    if regex_match {
        cached_regex_match(&pattern, &target).unwrap_or_else(|| {
            warn!("Invalid regex '{pattern}' in match");
            false
        })
    } else if exact {
        target == pattern
    } else {
        fnmatch(&target, &pattern)
    }
}

fn dict_match(target: &Value, pattern: &str, regex_match: bool, exact: bool) -> bool {
    let Value::Map(pairs) = target else { return false };
    let (wildcard, pattern) = match pattern.strip_prefix("*:") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    if pattern == "*" || get_str(target, pattern).is_some() {
        return true;
    }
    if pairs.iter().any(|(k, _)| match_one(k, pattern, regex_match, exact)) {
        return true;
    }
    // Nested dicts are matched with Salt's default delimiter.
    if subdict_match(target, pattern, ":", regex_match, exact) {
        return true;
    }
    if wildcard {
        for (_, v) in pairs {
            let hit = match v {
                Value::Map(_) => dict_match(v, pattern, regex_match, exact),
                Value::Array(items) => items.iter().any(|i| match_one(i, pattern, regex_match, exact)),
                other => match_one(other, pattern, regex_match, exact),
            };
            if hit {
                return true;
            }
        }
    }
    false
}

/// How many levels of maps and lists `v` has (a scalar: 0), counted
/// without recursion.
fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut todo = vec![(v, 0usize)];
    while let Some((v, d)) = todo.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Map(pairs) => todo.extend(pairs.iter().map(|(_, x)| (x, d + 1))),
            Value::Array(items) => todo.extend(items.iter().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    deepest
}

/// Salt's `subdict_match`: `expr` is `key[:subkey…]:pattern`; the deepest
/// key that exists is tried first. An empty delimiter (a `ValueError` in
/// Salt) matches nothing.
pub fn subdict_match(data: &Value, expr: &str, delimiter: &str, regex_match: bool, exact: bool) -> bool {
    try_subdict_match(data, expr, delimiter, regex_match, exact).unwrap_or_else(|e| {
        warn!("{e}");
        false
    })
}

/// `subdict_match`, with Salt's exception (an empty delimiter) as an error.
pub(crate) fn try_subdict_match(
    data: &Value,
    expr: &str,
    delimiter: &str,
    regex_match: bool,
    exact: bool,
) -> Result<bool, TargetError> {
    if delimiter.is_empty() {
        return Err(TargetError::Invalid(format!("empty delimiter matching {expr:?}")));
    }
    let splits: Vec<&str> = expr.split(delimiter).collect();
    if splits.len() == 1 {
        return Ok(false);
    }
    // Each key component descends at least one level into `data`, so a key
    // of more components than `data` is deep finds nothing: those splits
    // are skipped (Salt tries them all, which makes a target of many parts
    // quadratic), and the rest of the expression is joined only for a key
    // that exists.
    let mut longest = splits.len() - 1;
    if longest > 16 {
        // Only a long expression is worth a walk over the data.
        longest = longest.min(depth(data).max(1));
    }
    for idx in (1..=longest).rev() {
        let key = splits[..idx].join(delimiter);
        let (found, matchstr) = if key == "*" {
            (Some(data), None)
        } else {
            (traverse(data, &key, delimiter), Some(idx))
        };
        let Some(found) = found else { continue };
        let matchstr = match matchstr {
            Some(idx) => splits[idx..].join(delimiter),
            None => expr.to_string(),
        };
        match found {
            Value::Map(pairs) if pairs.is_empty() => continue,
            Value::Map(_) => {
                if dict_match(found, &matchstr, regex_match, exact) {
                    return Ok(true);
                }
            }
            Value::Array(items) => {
                for member in items {
                    if member.is_map() && dict_match(member, &matchstr, regex_match, exact) {
                        return Ok(true);
                    }
                    if match_one(member, &matchstr, regex_match, exact) {
                        return Ok(true);
                    }
                }
            }
            other => {
                if match_one(other, &matchstr, regex_match, exact) {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grains() -> Value {
        Value::map([
            ("os", Value::from("Debian")),
            ("num_cpus", Value::Int(2)),
            ("virtual", Value::Bool(true)),
            ("roles", Value::Array(vec![Value::from("web"), Value::from("db")])),
            (
                "ip_interfaces",
                Value::map([("eth0", Value::Array(vec![Value::from("10.0.0.5")]))]),
            ),
            ("role", Value::from("web:front")),
            (
                "nums",
                Value::Map(vec![
                    (Value::Int(2), Value::from("two")),
                    (Value::Bool(true), Value::from("yes")),
                ]),
            ),
        ])
    }

    #[test]
    fn grain_expressions_match_as_salt_does() {
        let g = grains();
        for (expr, want) in [
            ("os:Debian", true),
            ("os:debian", true), // both sides lower-cased
            ("os:Deb*", true),
            ("os:RedHat", false),
            ("num_cpus:2", true),
            ("virtual:true", true),
            ("roles:db", true),
            ("roles:mail", false),
            ("roles:0:web", true),
            ("roles:-1:db", true),
            ("ip_interfaces:eth0:10.0.0.*", true),
            ("ip_interfaces:eth0", true), // key exists
            ("role:web:front", true),     // the delimiter inside a value
            ("os", false),                // no delimiter
            ("missing:x", false),
            ("*:Debian", true),
            ("nums:2:two", true), // YAML-read path component finds the int key
            ("nums:true:yes", true),
        ] {
            assert_eq!(subdict_match(&g, expr, ":", false, false), want, "{expr}");
        }
        assert!(subdict_match(&g, "os:^deb", ":", true, false));
        assert!(!subdict_match(&g, "os:^red", ":", true, false));
        assert!(subdict_match(&g, "roles:^w.b$", ":", true, false));
        assert!(!subdict_match(&g, "os:(", ":", true, false), "a bad regex is no match");
        assert!(subdict_match(&g, "os:debian", ":", false, true));
        assert!(!subdict_match(&g, "os:deb*", ":", false, true));
        assert!(!subdict_match(&g, "os:Debian", "", false, false));
        // A target of many parts, as a hostile peer may send: only keys as
        // deep as the data are tried (Salt's loop over every split is
        // quadratic in the number of parts).
        let long = format!("ip_interfaces:eth0:{}", vec!["x"; 100_000].join(":"));
        assert!(!subdict_match(&g, &long, ":", false, false));
        let long = format!("{}:Debian", vec!["os"; 100_000].join(":"));
        assert!(!subdict_match(&g, &long, ":", false, false));
    }
}
