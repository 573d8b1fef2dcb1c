//! Salt's `salt.utils.dictupdate.merge`: how pillar SLS data, includes and
//! `pillar_override` are combined (`pillar_source_merging_strategy`,
//! `pillar_merge_lists`).

use log::warn;
use serde_json::{Map, Value};

/// The strategies of `dictupdate.merge`. `smart` is resolved by
/// [`Strategy::resolve`] against the `renderer` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Deep merge: maps merged key by key, anything else replaced (lists
    /// deduplicated-appended when `pillar_merge_lists`).
    Recurse,
    /// yamlex's aggregation at level 1. Brine has no yamlex renderer, so no
    /// value is ever marked `!aggregate`: this is a top-level update.
    Aggregate,
    /// Top-level keys of the second map replace the first's.
    Overwrite,
    /// `{key: [a[key], b[key]]}` for the keys of `a`; keys only in `b`
    /// are dropped (as Salt's `merge_list` does).
    List,
    /// Only one source is read (see `get_tops`); merges are plain
    /// recursive ones without list merging.
    None,
}

impl Strategy {
    /// `pillar_source_merging_strategy` as `merge()` reads it: `smart`
    /// means `aggregate` for a yamlex renderer and `recurse` otherwise; an
    /// unknown name is `recurse` with a warning.
    pub fn resolve(name: &str, renderer: &str) -> Strategy {
        match name {
            "smart" => {
                let last = renderer.rsplit('|').next().unwrap_or("");
                if last == "yamlex" || renderer.starts_with("yamlex_") {
                    Strategy::Aggregate
                } else {
                    Strategy::Recurse
                }
            }
            "recurse" => Strategy::Recurse,
            "aggregate" => Strategy::Aggregate,
            "overwrite" => Strategy::Overwrite,
            "list" => Strategy::List,
            "none" => Strategy::None,
            other => {
                warn!("Unknown merging strategy '{other}', fallback to recurse");
                Strategy::Recurse
            }
        }
    }
}

/// `merge(a, b, strategy, renderer, merge_lists)` for two maps.
pub fn merge(
    a: Map<String, Value>,
    b: Map<String, Value>,
    strategy: Strategy,
    merge_lists: bool,
) -> Map<String, Value> {
    match strategy {
        Strategy::Recurse => update(a, b, merge_lists),
        Strategy::None => update(a, b, false),
        Strategy::Aggregate | Strategy::Overwrite => {
            let mut out = a;
            for (k, v) in b {
                out.insert(k, v);
            }
            out
        }
        Strategy::List => {
            let mut b = b;
            a.into_iter()
                .map(|(k, v)| match b.remove(&k) {
                    Some(w) => (k, Value::Array(vec![v, w])),
                    None => (k, v),
                })
                .collect()
        }
    }
}

/// `dictupdate.update(dest, upd, merge_lists)`: nested maps merged, lists
/// of both sides appended without the second's members already in the
/// first (Python `==`) when `merge_lists`, everything else replaced. New
/// keys go last, existing keys keep their place.
pub fn update(mut dest: Map<String, Value>, upd: Map<String, Value>, merge_lists: bool) -> Map<String, Value> {
    for (key, val) in upd {
        let merged = match (dest.get_mut(&key), val) {
            (Some(Value::Object(d)), Value::Object(u)) => Value::Object(update(std::mem::take(d), u, merge_lists)),
            (Some(Value::Array(d)), Value::Array(u)) if merge_lists => {
                let mut merged = std::mem::take(d);
                let fresh: Vec<Value> = u.into_iter().filter(|x| !merged.iter().any(|m| py_eq(m, x))).collect();
                merged.extend(fresh);
                Value::Array(merged)
            }
            (_, val) => val,
        };
        dest.insert(key, merged);
    }
    dest
}

/// Python's `==` between two plain values (`1 == 1.0 == True`).
pub fn py_eq(a: &Value, b: &Value) -> bool {
    fn num(v: &Value) -> Option<f64> {
        match v {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if !(x.is_f64() || y.is_f64()) => x == y,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not a map"),
        }
    }

    fn run(a: Value, b: Value, s: Strategy, lists: bool) -> Value {
        Value::Object(merge(m(a), m(b), s, lists))
    }

    #[test]
    fn smart_is_recurse_unless_yamlex() {
        assert_eq!(Strategy::resolve("smart", "jinja|yaml"), Strategy::Recurse);
        assert_eq!(Strategy::resolve("smart", "jinja|yamlex"), Strategy::Aggregate);
        assert_eq!(Strategy::resolve("smart", "yamlex_jinja"), Strategy::Aggregate);
        assert_eq!(Strategy::resolve("bogus", "yaml"), Strategy::Recurse);
        assert_eq!(Strategy::resolve("none", "yaml"), Strategy::None);
    }

    #[test]
    fn recurse_merges_maps_and_replaces_the_rest() {
        let a = json!({"x": {"a": 1, "l": [1, 2]}, "s": "a", "k": 0});
        let b = json!({"x": {"b": 2, "l": [2, 3, 3]}, "s": {"now": "map"}, "n": 1});
        assert_eq!(
            run(a.clone(), b.clone(), Strategy::Recurse, false),
            json!({"x": {"a": 1, "l": [2, 3, 3], "b": 2}, "s": {"now": "map"}, "k": 0, "n": 1})
        );
        // pillar_merge_lists: the second list's new members appended (its
        // own duplicates kept, as Salt's comprehension does).
        assert_eq!(
            run(a.clone(), b.clone(), Strategy::Recurse, true),
            json!({"x": {"a": 1, "l": [1, 2, 3, 3], "b": 2}, "s": {"now": "map"}, "k": 0, "n": 1})
        );
        // `none` never merges lists.
        assert_eq!(run(a, b, Strategy::None, true)["x"]["l"], json!([2, 3, 3]));
        // Python equality: 1.0 and True are already there.
        assert_eq!(
            run(json!({"l": [1]}), json!({"l": [1.0, true, 2]}), Strategy::Recurse, true),
            json!({"l": [1, 2]})
        );
    }

    #[test]
    fn key_order_is_pythons() {
        let out = run(
            json!({"b": 1, "a": {"y": 1}}),
            json!({"c": 1, "a": {"x": 1}, "b": 2}),
            Strategy::Recurse,
            false,
        );
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"b":2,"a":{"y":1,"x":1},"c":1}"#
        );
    }

    #[test]
    fn overwrite_aggregate_and_list() {
        let a = json!({"x": {"a": 1}, "y": 1});
        let b = json!({"x": {"b": 2}, "z": 3});
        let shallow = json!({"x": {"b": 2}, "y": 1, "z": 3});
        assert_eq!(run(a.clone(), b.clone(), Strategy::Overwrite, false), shallow);
        assert_eq!(run(a.clone(), b.clone(), Strategy::Aggregate, false), shallow);
        assert_eq!(
            run(a, b, Strategy::List, false),
            json!({"x": [{"a": 1}, {"b": 2}], "y": 1})
        );
    }
}
