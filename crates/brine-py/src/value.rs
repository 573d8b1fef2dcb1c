//! Values as Salt's Python code sees them: truthiness, `==`, `str()`,
//! `repr()`, `type(v).__name__` and `int()`, written once over
//! [`PyValue`], which both the wire's msgpack values (`bytes` are `bytes`,
//! unknown ext types msgpack-python's `ExtType`) and the configuration's
//! JSON values implement.

use brine_proto::Value as Msg;
use serde_json::Value as Json;

use crate::repr::{bytes_repr, float_repr, str_repr};

/// A dict key: the text of a JSON object's key, or a msgpack map's key
/// value.
pub enum Key<'a, V> {
    Str(&'a str),
    Value(&'a V),
}

/// The Python object a value stands for.
pub enum View<'a, V: PyValue + 'a> {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    List(&'a [V]),
    Dict(V::Pairs<'a>),
    /// msgpack-python's `ExtType(code, data)`.
    Ext(i8, &'a [u8]),
}

/// A value type Python semantics apply to.
pub trait PyValue: Sized {
    /// A dict's items, in order.
    type Pairs<'a>: ExactSizeIterator<Item = (Key<'a, Self>, &'a Self)>
    where
        Self: 'a;

    fn py(&self) -> View<'_, Self>;
}

type MsgPair<'a> = fn(&'a (Msg, Msg)) -> (Key<'a, Msg>, &'a Msg);

impl PyValue for Msg {
    type Pairs<'a> = std::iter::Map<std::slice::Iter<'a, (Msg, Msg)>, MsgPair<'a>>;

    fn py(&self) -> View<'_, Msg> {
        match self {
            Msg::Nil => View::None,
            Msg::Bool(b) => View::Bool(*b),
            Msg::Int(i) => View::Int(i128::from(*i)),
            Msg::UInt(u) => View::Int(i128::from(*u)),
            Msg::F32(f) => View::Float(f64::from(*f)),
            Msg::F64(f) => View::Float(*f),
            Msg::Str(s) => View::Str(s),
            Msg::Bytes(b) => View::Bytes(b),
            Msg::Array(a) => View::List(a),
            Msg::Map(m) => View::Dict(m.iter().map((|(k, v)| (Key::Value(k), v)) as MsgPair<'_>)),
            Msg::Ext(t, d) => View::Ext(*t, d),
        }
    }
}

type JsonPair<'a> = fn((&'a String, &'a Json)) -> (Key<'a, Json>, &'a Json);

impl PyValue for Json {
    type Pairs<'a> = std::iter::Map<serde_json::map::Iter<'a>, JsonPair<'a>>;

    fn py(&self) -> View<'_, Json> {
        match self {
            Json::Null => View::None,
            Json::Bool(b) => View::Bool(*b),
            Json::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => View::Int(i128::from(i)),
                (_, Some(u)) => View::Int(i128::from(u)),
                _ => View::Float(n.as_f64().unwrap_or(0.0)),
            },
            Json::String(s) => View::Str(s),
            Json::Array(a) => View::List(a),
            Json::Object(m) => View::Dict(m.iter().map((|(k, v)| (Key::Str(k.as_str()), v)) as JsonPair<'_>)),
        }
    }
}

/// `bool(v)`.
pub fn truthy<V: PyValue>(v: &V) -> bool {
    match v.py() {
        View::None => false,
        View::Bool(b) => b,
        View::Int(i) => i != 0,
        View::Float(f) => f != 0.0,
        View::Str(s) => !s.is_empty(),
        View::Bytes(b) => !b.is_empty(),
        View::List(a) => !a.is_empty(),
        View::Dict(pairs) => pairs.len() != 0,
        View::Ext(..) => true,
    }
}

/// `type(v).__name__`.
pub fn type_name<V: PyValue>(v: &V) -> &'static str {
    match v.py() {
        View::None => "NoneType",
        View::Bool(_) => "bool",
        View::Int(_) => "int",
        View::Float(_) => "float",
        View::Str(_) => "str",
        View::Bytes(_) => "bytes",
        View::List(_) => "list",
        View::Dict(_) => "dict",
        View::Ext(..) => "ExtType",
    }
}

/// `str(v)`.
pub fn to_str<V: PyValue>(v: &V) -> String {
    match v.py() {
        View::Str(s) => s.to_string(),
        _ => repr(v),
    }
}

/// `str(v)` of a value that should be text (an id, a jid, a glob): text,
/// or an integer that YAML made of it on a command line; `None` for
/// anything else.
pub fn text<V: PyValue>(v: &V) -> Option<String> {
    match v.py() {
        View::Str(s) => Some(s.to_string()),
        View::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// `repr(v)`.
pub fn repr<V: PyValue>(v: &V) -> String {
    match v.py() {
        View::None => "None".into(),
        View::Bool(true) => "True".into(),
        View::Bool(false) => "False".into(),
        View::Int(i) => i.to_string(),
        View::Float(f) => float_repr(f),
        View::Str(s) => str_repr(s),
        View::Bytes(b) => bytes_repr(b),
        View::List(a) => format!("[{}]", a.iter().map(repr).collect::<Vec<_>>().join(", ")),
        View::Dict(pairs) => format!(
            "{{{}}}",
            pairs
                .map(|(k, v)| format!("{}: {}", key_repr(&k), repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        View::Ext(t, d) => format!("ExtType(code={t}, data={})", bytes_repr(d)),
    }
}

fn key_repr<V: PyValue>(k: &Key<'_, V>) -> String {
    match k {
        Key::Str(s) => str_repr(s),
        Key::Value(v) => repr(*v),
    }
}

/// `int(s)` of a text (a query string, a path segment, an option):
/// digits with single underscores between them, an optional sign,
/// surrounding whitespace; `None` where Python raises.
pub fn int_str(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let n: i128 = digits.replace('_', "").parse().ok()?;
    Some(if neg { -n } else { n })
}

/// `int(v)`: bools, ints, floats (truncated) and texts; `None` where
/// Python raises.
pub fn int<V: PyValue>(v: &V) -> Option<i128> {
    match v.py() {
        View::Bool(b) => Some(i128::from(b)),
        View::Int(i) => Some(i),
        View::Float(f) => f.is_finite().then(|| f.trunc() as i128),
        View::Str(s) => int_str(s),
        View::Bytes(b) => std::str::from_utf8(b).ok().and_then(int_str),
        _ => None,
    }
}

/// A number as Python compares it (`True == 1 == 1.0`).
enum Num {
    Int(i128),
    Float(f64),
}

fn num<V: PyValue>(v: &V) -> Option<Num> {
    match v.py() {
        View::Bool(b) => Some(Num::Int(i128::from(b))),
        View::Int(i) => Some(Num::Int(i)),
        View::Float(f) => Some(Num::Float(f)),
        _ => None,
    }
}

fn key_eq<V: PyValue>(a: &Key<'_, V>, b: &Key<'_, V>) -> bool {
    match (a, b) {
        (Key::Str(x), Key::Str(y)) => x == y,
        (Key::Str(s), Key::Value(v)) | (Key::Value(v), Key::Str(s)) => matches!(v.py(), View::Str(t) if t == *s),
        (Key::Value(x), Key::Value(y)) => eq(*x, *y),
    }
}

/// `a == b`.
pub fn eq<V: PyValue>(a: &V, b: &V) -> bool {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return match (x, y) {
            (Num::Int(x), Num::Int(y)) => x == y,
            (Num::Int(i), Num::Float(f)) | (Num::Float(f), Num::Int(i)) => i as f64 == f,
            (Num::Float(x), Num::Float(y)) => x == y,
        };
    }
    match (a.py(), b.py()) {
        (View::None, View::None) => true,
        (View::Str(x), View::Str(y)) => x == y,
        (View::Bytes(x), View::Bytes(y)) => x == y,
        (View::List(x), View::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| eq(p, q)),
        (View::Dict(x), View::Dict(y)) => {
            let y: Vec<_> = y.collect();
            x.len() == y.len()
                && x.into_iter()
                    .all(|(k, v)| y.iter().any(|(l, w)| key_eq(&k, l) && eq(v, *w)))
        }
        (View::Ext(t, d), View::Ext(u, e)) => t == u && d == e,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn msgpack_values_as_python_sees_them() {
        let v = Msg::map([
            ("k", Msg::Array(vec![Msg::Nil, Msg::Bool(true), Msg::Int(-2)])),
            ("b", Msg::Bytes(b"x".to_vec())),
        ]);
        assert_eq!(to_str(&v), "{'k': [None, True, -2], 'b': b'x'}");
        assert_eq!(to_str(&Msg::from("plain")), "plain");
        assert_eq!(text(&Msg::from("a*")).as_deref(), Some("a*"));
        assert_eq!(text(&Msg::Int(20240101)).as_deref(), Some("20240101"));
        assert_eq!(text(&Msg::Bool(true)), None);
        assert_eq!(text(&json!(7)).as_deref(), Some("7"));
        assert!(!truthy(&Msg::Map(vec![])) && truthy(&Msg::from("x")));
        assert!(truthy(&Msg::Ext(1, vec![])) && !truthy(&Msg::F32(0.0)));
        assert_eq!(type_name(&Msg::F64(1.0)), "float");
        assert_eq!(type_name(&Msg::UInt(u64::MAX)), "int");
        assert_eq!(repr(&Msg::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(repr(&Msg::Ext(5, b"a".to_vec())), "ExtType(code=5, data=b'a')");
        assert_eq!(
            repr(&Msg::Map(vec![
                (Msg::Int(1), Msg::from("a")),
                (Msg::Nil, Msg::F64(0.5))
            ])),
            "{1: 'a', None: 0.5}"
        );
    }

    #[test]
    fn str_is_pythons() {
        assert_eq!(to_str(&Msg::F64(1e16)), "1e+16");
        assert_eq!(to_str(&Msg::F64(1.5e-5)), "1.5e-05");
        assert_eq!(to_str(&Msg::F64(2.0)), "2.0");
        assert_eq!(to_str(&Msg::F64(0.1)), "0.1");
        assert_eq!(to_str(&Msg::F32(0.1)), "0.10000000149011612");
        assert_eq!(to_str(&Msg::Nil), "None");
        assert_eq!(to_str(&Msg::Int(5)), "5");
        assert_eq!(
            to_str(&Msg::Array(vec![Msg::from("a'b"), Msg::Int(1), Msg::Bool(false)])),
            "[\"a'b\", 1, False]"
        );
        assert_eq!(to_str(&Msg::map([("k", Msg::from("v"))])), "{'k': 'v'}");
        assert_eq!(to_str(&Msg::Bytes(b"a\x00".to_vec())), "b'a\\x00'");
    }

    #[test]
    fn json_values_as_python_sees_them() {
        assert_eq!(
            to_str(&json!({"a": [1, "x'", null, true, 2.5]})),
            r#"{'a': [1, "x'", None, True, 2.5]}"#
        );
        assert_eq!(repr(&json!("s")), "'s'");
        assert_eq!(to_str(&json!(1.0)), "1.0");
        assert_eq!(type_name(&json!(1.0)), "float");
        assert_eq!(type_name(&json!(u64::MAX)), "int");
        assert!(!truthy(&json!({})) && !truthy(&json!(0.0)) && truthy(&json!([0])));
    }

    #[test]
    fn python_equality_and_int() {
        assert!(eq(&json!(1), &json!(true)));
        assert!(eq(&json!(1), &json!(1.0)));
        assert!(!eq(&json!("1"), &json!(1)));
        assert!(eq(&json!({"a": [1, null]}), &json!({"a": [1.0, null]})));
        assert!(!eq(&json!({"a": 1}), &json!({"b": 1})));
        assert!(eq(
            &Msg::Map(vec![(Msg::Int(1), Msg::Nil)]),
            &Msg::Map(vec![(Msg::Bool(true), Msg::Nil)])
        ));
        assert!(!eq(&Msg::from("a"), &Msg::Bytes(b"a".to_vec())));
        assert_eq!(int(&json!("1_000")), Some(1000));
        assert_eq!(int(&json!(" 12 ")), Some(12));
        assert_eq!(int(&json!("1.5")), None);
        assert_eq!(int(&json!(2.9)), Some(2));
        assert_eq!(int(&json!([1])), None);
        assert_eq!(int(&Msg::Bytes(b" 7".to_vec())), Some(7));
        assert_eq!(int_str(" 1_0 "), Some(10));
        assert_eq!(int_str("-2"), Some(-2));
        assert_eq!(int_str("1__0"), None);
        assert_eq!(int_str("x"), None);
        assert_eq!(int_str(""), None);
    }
}
