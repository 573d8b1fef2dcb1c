//! Matching the master does to compute a job's expected minions (Salt's
//! `CkMinions`): Python's `fnmatch` for globs, `subdict_match` for grain
//! and pillar expressions over the minion data cache
//! (`cachedir/minions/<id>/data.p`, written by `_pillar`).
//!
//! Only what the master needs; each minion still matches the publication
//! itself. Compound targets and nodegroups are issue 7.

use std::path::Path;

use brine_proto::Value;
use log::warn;

/// Python's `fnmatch.fnmatch` on POSIX (case-sensitive): `*`, `?`,
/// `[seq]`, `[!seq]`; an unclosed `[` is a literal.
pub fn fnmatch(name: &str, pat: &str) -> bool {
    Glob::new(pat).matches(name)
}

/// A compiled `fnmatch` pattern, for matching many names (one regex
/// compile per pattern, not per name).
pub struct Glob(Option<regex::Regex>);

impl Glob {
    pub fn new(pat: &str) -> Glob {
        Glob(regex::Regex::new(&fnmatch_regex(pat)).ok())
    }

    pub fn matches(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|re| re.is_match(name))
    }
}

/// `fnmatch.translate`, anchored at both ends.
fn fnmatch_regex(pat: &str) -> String {
    let chars: Vec<char> = pat.chars().collect();
    let mut out = String::from("(?s)^");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                // Consecutive stars are one.
                while i < chars.len() && chars[i] == '*' {
                    i += 1;
                }
                out.push_str(".*");
            }
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str("\\[");
                    continue;
                }
                let mut set: Vec<char> = chars[i..j].to_vec();
                i = j + 1;
                let negate = set.first() == Some(&'!');
                if negate {
                    set.remove(0);
                }
                if set.is_empty() {
                    // `[]` / `[!]`: Python matches nothing / any character.
                    out.push_str(if negate { "." } else { "(?!)" });
                    continue;
                }
                out.push('[');
                if negate {
                    out.push('^');
                }
                for ch in set {
                    // Ranges keep their '-'; everything else literal.
                    if ch == '-' {
                        out.push('-');
                    } else {
                        out.push_str(&regex::escape(&ch.to_string()));
                    }
                }
                out.push(']');
            }
            other => out.push_str(&regex::escape(&other.to_string())),
        }
    }
    out.push('$');
    out
}

/// Python's `str(value)` for the scalars grains hold.
fn py_str(v: &Value) -> String {
    match v {
        Value::Nil => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::F32(f) => py_float(f64::from(*f)),
        Value::F64(f) => py_float(*f),
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => format!("b'{}'", String::from_utf8_lossy(b)),
        Value::Array(items) => format!("[{}]", items.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Map(pairs) => format!(
            "{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| format!("{}: {}", py_repr(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Ext(..) => String::new(),
    }
}

fn py_repr(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("'{s}'"),
        other => py_str(other),
    }
}

fn py_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// `subdict_match`'s `_match`: both sides lower-cased, then a regex match
/// at the start, an equality, or an fnmatch.
fn match_one(target: &Value, pattern: &str, regex_match: bool, exact: bool) -> bool {
    let target = py_str(target).to_lowercase();
    let pattern = pattern.to_lowercase();
    if regex_match {
        match regex::Regex::new(&format!("^(?:{pattern})")) {
            Ok(re) => re.is_match(&target),
            Err(_) => {
                warn!("invalid regex {pattern:?} in match");
                false
            }
        }
    } else if exact {
        target == pattern
    } else {
        fnmatch(&target, &pattern)
    }
}

/// Salt's `traverse_dict_and_list`: `None` where Salt returns the default.
fn traverse<'a>(data: &'a Value, key: &str, delimiter: &str) -> Option<&'a Value> {
    let mut ptr = data;
    for each in key.split(delimiter) {
        ptr = match ptr {
            Value::Array(items) => {
                let embedded = items.iter().filter(|x| x.is_map()).find_map(|m| lookup(m, each));
                match (embedded, each.parse::<usize>()) {
                    (Some(v), _) => v,
                    (None, Ok(idx)) => items.get(idx)?,
                    (None, Err(_)) => return None,
                }
            }
            Value::Map(_) => lookup(ptr, each)?,
            _ => return None,
        };
    }
    Some(ptr)
}

/// A map key as Salt finds it: the string, or its YAML reading (an int).
fn lookup<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    let Value::Map(pairs) = map else { return None };
    pairs
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .or_else(|| {
            let n: i64 = key.parse().ok()?;
            pairs.iter().find(|(k, _)| k.as_i64() == Some(n))
        })
        .map(|(_, v)| v)
}

fn map_keys(map: &Value) -> impl Iterator<Item = &Value> {
    match map {
        Value::Map(pairs) => pairs.iter().map(|(k, _)| k).collect::<Vec<_>>().into_iter(),
        _ => Vec::new().into_iter(),
    }
}

fn dict_match(target: &Value, pattern: &str, regex_match: bool, exact: bool) -> bool {
    let (wildcard, pattern) = match pattern.strip_prefix("*:") {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    if pattern == "*" || lookup(target, pattern).is_some() {
        return true;
    }
    if map_keys(target).any(|k| match_one(k, pattern, regex_match, exact)) {
        return true;
    }
    if subdict_match(target, pattern, ":", regex_match, exact) {
        return true;
    }
    if wildcard {
        if let Value::Map(pairs) = target {
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
    }
    false
}

/// Salt's `subdict_match`: `expr` is `key[:subkey…]:pattern`; the deepest
/// key that exists is tried first.
pub fn subdict_match(data: &Value, expr: &str, delimiter: &str, regex_match: bool, exact: bool) -> bool {
    let splits: Vec<&str> = expr.split(delimiter).collect();
    if splits.len() == 1 {
        return false;
    }
    for idx in (1..splits.len()).rev() {
        let key = splits[..idx].join(delimiter);
        let (matchstr, found) = if key == "*" {
            (expr.to_string(), Some(data))
        } else {
            (splits[idx..].join(delimiter), traverse(data, &key, delimiter))
        };
        let Some(found) = found else { continue };
        match found {
            Value::Map(pairs) if pairs.is_empty() => continue,
            Value::Map(_) => {
                if dict_match(found, &matchstr, regex_match, exact) {
                    return true;
                }
            }
            Value::Array(items) => {
                for member in items {
                    if member.is_map() && dict_match(member, &matchstr, regex_match, exact) {
                        return true;
                    }
                    if match_one(member, &matchstr, regex_match, exact) {
                        return true;
                    }
                }
            }
            other => {
                if match_one(other, &matchstr, regex_match, exact) {
                    return true;
                }
            }
        }
    }
    false
}

/// Salt's `_check_cache_minions` with `greedy=True` (what `publish` uses):
/// of the accepted minions, those whose cached `search_type` data
/// (`grains` or `pillar`) matches; a minion without cache data is left
/// out. With `minion_data_cache: False` every accepted minion is expected.
pub fn cache_minions(
    cachedir: &Path,
    accepted: &[String],
    cache_enabled: bool,
    search_type: &str,
    expr: &str,
    delimiter: &str,
    regex_match: bool,
) -> Vec<String> {
    if !cache_enabled {
        return accepted.to_vec();
    }
    accepted
        .iter()
        .filter(|id| {
            let path = cachedir.join("minions").join(id.as_str()).join("data.p");
            let Some(data) = std::fs::read(&path).ok().and_then(|b| Value::decode(&b).ok()) else {
                return false;
            };
            let found = data.get(search_type).unwrap_or(&Value::Nil);
            subdict_match(found, expr, delimiter, regex_match, false)
        })
        .cloned()
        .collect()
}

/// What one minion is matched on (Salt's minion-side matchers, which the
/// master also runs for pillar top files).
pub struct MinionData<'a> {
    pub id: &'a str,
    pub grains: &'a Value,
    pub pillar: &'a Value,
}

/// Does this minion match `tgt` of `tgt_type` (Salt's `salt/matchers/*`)?
/// `nodegroups` is the master's `nodegroups` option (a map, or Nil).
/// Glob, pcre, list, grain, grain_pcre, pillar and pillar_pcre so far.
pub fn minion_matches(m: &MinionData, tgt: &Value, tgt_type: &str, delimiter: &str, _nodegroups: &Value) -> bool {
    let expr = tgt.as_str().unwrap_or("");
    match tgt_type {
        "glob" => fnmatch(m.id, expr),
        "pcre" => regex::Regex::new(&format!("^(?:{expr})")).is_ok_and(|re| re.is_match(m.id)),
        "list" => match tgt {
            Value::Array(a) => a.iter().any(|x| x.as_str() == Some(m.id)),
            _ => expr.split(',').any(|x| x.trim() == m.id),
        },
        "grain" | "grain_pcre" => subdict_match(m.grains, expr, delimiter, tgt_type.ends_with("_pcre"), false),
        "pillar" | "pillar_pcre" => subdict_match(m.pillar, expr, delimiter, tgt_type.ends_with("_pcre"), false),
        _ => false,
    }
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
        ])
    }

    #[test]
    fn fnmatch_is_pythons() {
        assert!(fnmatch("web1", "web*"));
        assert!(fnmatch("a/b", "a*"));
        assert!(fnmatch("web1", "web?"));
        assert!(!fnmatch("web10", "web?"));
        assert!(fnmatch("web1", "web[0-9]"));
        assert!(!fnmatch("weba", "web[!a-z]"));
        assert!(fnmatch("web[", "web["));
        assert!(fnmatch("a.b", "a.b"));
        assert!(!fnmatch("axb", "a.b"));
        assert!(fnmatch("]", "[]]"));
        assert!(!fnmatch("Web1", "web*"));
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
            ("ip_interfaces:eth0:10.0.0.*", true),
            ("ip_interfaces:eth0", true), // key exists
            ("role:web:front", true),     // the delimiter inside a value
            ("os", false),                // no delimiter
            ("missing:x", false),
            ("*:Debian", true),
        ] {
            assert_eq!(subdict_match(&g, expr, ":", false, false), want, "{expr}");
        }
        assert!(subdict_match(&g, "os:^deb", ":", true, false));
        assert!(!subdict_match(&g, "os:^red", ":", true, false));
        assert!(subdict_match(&g, "roles:^w.b$", ":", true, false));
    }

    #[test]
    fn cache_minions_reads_data_p_and_skips_minions_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let write = |id: &str, os: &str| {
            let p = dir.path().join("minions").join(id);
            std::fs::create_dir_all(&p).unwrap();
            let data = Value::map([
                ("grains", Value::map([("os", Value::from(os))])),
                ("pillar", Value::Map(vec![])),
            ]);
            std::fs::write(p.join("data.p"), data.to_file()).unwrap();
        };
        write("a", "Debian");
        write("b", "RedHat");
        let accepted: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let got = cache_minions(dir.path(), &accepted, true, "grains", "os:Debian", ":", false);
        assert_eq!(got, ["a"]);
        let got = cache_minions(dir.path(), &accepted, true, "grains", "os:*", ":", false);
        assert_eq!(got, ["a", "b"]);
        let got = cache_minions(dir.path(), &accepted, false, "grains", "os:Debian", ":", false);
        assert_eq!(got, ["a", "b", "c"]);
    }
}
