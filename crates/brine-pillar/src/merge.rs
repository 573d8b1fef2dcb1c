//! Salt's `salt.utils.dictupdate.merge`: how pillar SLS data, includes and
//! `pillar_override` are combined (`pillar_source_merging_strategy`,
//! `pillar_merge_lists`).

use brine_proto::Value;
use brine_py::dict::{self, Index, Pairs};
use log::warn;

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
pub fn merge(a: Pairs, b: Pairs, strategy: Strategy, merge_lists: bool) -> Pairs {
    match strategy {
        Strategy::Recurse => update(a, b, merge_lists),
        Strategy::None => update(a, b, false),
        Strategy::Aggregate | Strategy::Overwrite => {
            let mut out = a;
            let mut ix = Index::new(&out);
            for (k, v) in b {
                match ix.find(&out, &k) {
                    Some(i) => out[i].1 = v,
                    None => {
                        ix.add(&k, out.len());
                        out.push((k, v));
                    }
                }
            }
            out
        }
        Strategy::List => {
            let mut b = b;
            a.into_iter()
                .map(|(k, v)| match dict::remove(&mut b, &k) {
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
/// keys go last, existing keys keep their place (and their own type:
/// `{1: a}` updated with `{True: b}` keeps the key `1`, as a dict does).
pub fn update(mut dest: Pairs, upd: Pairs, merge_lists: bool) -> Pairs {
    let mut ix = Index::new(&dest);
    for (key, val) in upd {
        let Some(i) = ix.find(&dest, &key) else {
            ix.add(&key, dest.len());
            dest.push((key, val));
            continue;
        };
        let slot = &mut dest[i].1;
        *slot = match (std::mem::replace(slot, Value::Nil), val) {
            (Value::Map(d), Value::Map(u)) => Value::Map(update(d, u, merge_lists)),
            (Value::Array(mut d), Value::Array(u)) if merge_lists => {
                let fresh: Vec<Value> = u.into_iter().filter(|x| !d.iter().any(|m| py_eq(m, x))).collect();
                d.extend(fresh);
                Value::Array(d)
            }
            (_, val) => val,
        };
    }
    dest
}

/// Python's `==` between two values (`1 == 1.0 == True`).
pub fn py_eq(a: &Value, b: &Value) -> bool {
    brine_py::eq(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_proto::json::{from_json, to_json};
    use serde_json::{json, Value as Json};

    fn m(v: Json) -> Pairs {
        match from_json(&v) {
            Value::Map(m) => m,
            _ => panic!("not a map"),
        }
    }

    fn run(a: Json, b: Json, s: Strategy, lists: bool) -> Json {
        to_json(&Value::Map(merge(m(a), m(b), s, lists)))
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
    fn keys_keep_their_type() {
        let a = vec![(Value::Int(12345), Value::map([("x", Value::Int(1))]))];
        let b = vec![
            (Value::Int(12345), Value::map([("y", Value::Int(2))])),
            (Value::from("12345"), Value::Int(3)),
            (Value::Bool(true), Value::Int(4)),
        ];
        let out = merge(a, b, Strategy::Recurse, false);
        assert_eq!(
            out,
            vec![
                (
                    Value::Int(12345),
                    Value::map([("x", Value::Int(1)), ("y", Value::Int(2))])
                ),
                (Value::from("12345"), Value::Int(3)),
                (Value::Bool(true), Value::Int(4)),
            ]
        );
        // `1` and `True` are one key: the first one's type stays.
        let out = merge(
            vec![(Value::Int(1), Value::from("a"))],
            vec![(Value::Bool(true), Value::from("b"))],
            Strategy::Overwrite,
            false,
        );
        assert_eq!(out, vec![(Value::Int(1), Value::from("b"))]);
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
