//! Python's `dict` over msgpack map pairs (`brine_proto::Value::Map`):
//! keys are the same key when Python's `hash` and `==` say so (`1`,
//! `1.0` and `True` are one key; `"1"` and `1` are two), insertion order
//! is kept, and replacing a value keeps the key where it was.

use std::collections::HashMap;

use brine_proto::Value as Msg;

use crate::float_repr;
use crate::value::{eq, PyValue, View};

/// The pairs of a dict, in order.
pub type Pairs = Vec<(Msg, Msg)>;

/// What makes two values the same dict key, as text (equal texts, same
/// key); `None` for values that are never found by hash: unhashable ones
/// (lists, dicts, as msgpack may carry them as keys) and NaN.
pub fn key_id<V: PyValue>(v: &V) -> Option<String> {
    Some(match v.py() {
        View::None => "n".into(),
        View::Bool(b) => format!("i{}", u8::from(b)),
        View::Int(i) => format!("i{i}"),
        View::Float(f) if f.is_nan() => return None,
        View::Float(f) if f.fract() == 0.0 && f.abs() < 1e30 => format!("i{}", f as i128),
        View::Float(f) => format!("f{}", float_repr(f)),
        View::Str(s) => format!("s{s}"),
        View::Bytes(b) => format!("b{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        View::List(_) | View::Dict(_) | View::Ext(..) => return None,
    })
}

/// Are `a` and `b` the same dict key?
pub fn same_key(a: &Msg, b: &Msg) -> bool {
    match (key_id(a), key_id(b)) {
        (Some(x), Some(y)) => x == y,
        _ => eq(a, b),
    }
}

/// Where `key` is in `pairs`.
pub fn position(pairs: &[(Msg, Msg)], key: &Msg) -> Option<usize> {
    pairs.iter().position(|(k, _)| same_key(k, key))
}

/// `d.get(key)`.
pub fn get<'a>(pairs: &'a [(Msg, Msg)], key: &Msg) -> Option<&'a Msg> {
    position(pairs, key).map(|i| &pairs[i].1)
}

/// `d.get(key)` for a text key.
pub fn get_str<'a>(pairs: &'a [(Msg, Msg)], key: &str) -> Option<&'a Msg> {
    pairs.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

/// `d[key] = value`: in place when the key is there, last otherwise.
pub fn insert(pairs: &mut Pairs, key: Msg, value: Msg) {
    match position(pairs, &key) {
        Some(i) => pairs[i].1 = value,
        None => pairs.push((key, value)),
    }
}

/// `d.pop(key, None)`.
pub fn remove(pairs: &mut Pairs, key: &Msg) -> Option<Msg> {
    position(pairs, key).map(|i| pairs.remove(i).1)
}

/// Positions by key, for many look-ups in one large dict.
pub struct Index {
    by_id: HashMap<String, usize>,
    /// Keys found only by `==` (see [`key_id`]).
    others: Vec<usize>,
}

impl Index {
    pub fn new(pairs: &[(Msg, Msg)]) -> Index {
        let mut ix = Index {
            by_id: HashMap::with_capacity(pairs.len()),
            others: Vec::new(),
        };
        for (i, (k, _)) in pairs.iter().enumerate() {
            ix.add(k, i);
        }
        ix
    }

    /// Record that `key` is at `pos` (a key pushed last).
    pub fn add(&mut self, key: &Msg, pos: usize) {
        match key_id(key) {
            Some(id) => {
                self.by_id.entry(id).or_insert(pos);
            }
            None => self.others.push(pos),
        }
    }

    /// Where `key` is in the `pairs` this index was built over.
    pub fn find(&self, pairs: &[(Msg, Msg)], key: &Msg) -> Option<usize> {
        match key_id(key) {
            Some(id) => self.by_id.get(&id).copied(),
            None => self.others.iter().copied().find(|&i| eq(&pairs[i].0, key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_python_hashes_them() {
        let mut d: Pairs = vec![(Msg::Int(1), Msg::from("int")), (Msg::from("1"), Msg::from("str"))];
        assert_eq!(get(&d, &Msg::Bool(true)), Some(&Msg::from("int")));
        assert_eq!(get(&d, &Msg::F64(1.0)), Some(&Msg::from("int")));
        assert_eq!(get_str(&d, "1"), Some(&Msg::from("str")));
        insert(&mut d, Msg::F64(1.0), Msg::from("float"));
        assert_eq!(d[0], (Msg::Int(1), Msg::from("float")), "the first key stays");
        insert(&mut d, Msg::F64(f64::NAN), Msg::Nil);
        insert(&mut d, Msg::F64(f64::NAN), Msg::Nil);
        assert_eq!(d.len(), 4, "NaN is never the same key");
        let ix = Index::new(&d);
        assert_eq!(ix.find(&d, &Msg::UInt(1)), Some(0));
        assert_eq!(ix.find(&d, &Msg::from("1")), Some(1));
        assert_eq!(ix.find(&d, &Msg::from("2")), None);
        assert_eq!(remove(&mut d, &Msg::Int(1)), Some(Msg::from("float")));
        assert_eq!(d.len(), 3);
    }
}
