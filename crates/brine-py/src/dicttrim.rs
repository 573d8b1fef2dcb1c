//! `salt.utils.dicttrim.trim_dict` and the `sys.getsizeof` it measures
//! with (CPython 3.11, 64-bit), as `SaltEvent.pack` applies it to every
//! event the master fires once `max_event_size` is set.
//!
//! The trimming is shallow, as Salt's: the event's top-level values, and
//! the values of maps inside maps, are replaced by `"VALUE_TRIMMED"` when
//! `sys.getsizeof` of the value exceeds 50%, then 40%, … 10% of the limit,
//! until the encoded event is under the limit. A list counts only its
//! pointers (a list holding one huge string is not trimmed, in Salt too);
//! then the event goes out as large as it is.

use brine_proto::Value;

/// What Salt puts in place of a value it trims.
pub const TRIMMED: &str = "VALUE_TRIMMED";

/// `sys.getsizeof(v)` for the object `salt.payload.loads` makes of `v`.
pub fn getsizeof(v: &Value) -> usize {
    match v {
        Value::Nil => 16,
        Value::Bool(true) => 28,
        Value::Bool(false) => 24,
        Value::Int(n) => int_size(n.unsigned_abs()),
        Value::UInt(n) => int_size(*n),
        Value::F32(_) | Value::F64(_) => 24,
        Value::Str(s) => str_size(s),
        Value::Bytes(b) | Value::Ext(_, b) => 33 + b.len(),
        Value::Array(a) => 56 + 8 * a.len(),
        // A dict: 64 bytes empty, then the size of its hash table; trimming
        // never measures a dict (it descends into it instead).
        Value::Map(m) => 64 + 8 * m.len().next_power_of_two().max(8) * 3,
    }
}

/// An `int`: 24 bytes and 4 per 30-bit digit (0 has one digit in 3.11).
fn int_size(magnitude: u64) -> usize {
    let bits = 64 - magnitude.leading_zeros() as usize;
    24 + 4 * bits.div_ceil(30).max(1)
}

/// A `str` in CPython's compact representation: 1, 2 or 4 bytes per
/// character by its widest one, plus the header.
fn str_size(s: &str) -> usize {
    let (n, widest) = s.chars().fold((0, 0u32), |(n, w), c| (n + 1, w.max(c as u32)));
    match widest {
        0..=0x7f => 49 + n,
        0x80..=0xff => 73 + n,
        0x100..=0xffff => 74 + 2 * n,
        _ => 76 + 4 * n,
    }
}

/// `sys.getsizeof` of the encoded event (a `bytes`).
fn packed_size(v: &Value) -> usize {
    33 + v.to_file().len()
}

/// Trim `data` in place as `trim_dict(packed, max_bytes, is_msgpacked=True,
/// use_bin_type=True)` does; true when something was replaced.
pub fn trim_dict(data: &mut Value, max_bytes: usize) -> bool {
    if packed_size(data) <= max_bytes || !data.is_map() {
        return false;
    }
    let mut trimmed = false;
    let mut percent = 50u32;
    loop {
        let max_val = max_bytes as f64 * f64::from(percent) / 100.0;
        trimmed |= trim_values(data, max_val);
        percent -= 10;
        if packed_size(data) < max_bytes || percent == 0 {
            return trimmed;
        }
    }
}

/// One pass: values larger than `max_val` become [`TRIMMED`]; maps are
/// descended into (without a recursion: the nesting comes from the peer).
fn trim_values(data: &mut Value, max_val: f64) -> bool {
    let mut trimmed = false;
    let mut todo = vec![data];
    while let Some(v) = todo.pop() {
        let Value::Map(pairs) = v else { continue };
        for (_, value) in pairs.iter_mut() {
            if value.is_map() {
                todo.push(value);
            } else if getsizeof(value) as f64 > max_val {
                *value = Value::from(TRIMMED);
                trimmed = true;
            }
        }
    }
    trimmed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_cpython_311s() {
        // python3.11 -c 'import sys; print(sys.getsizeof(...))'
        assert_eq!(getsizeof(&Value::from("")), 49);
        assert_eq!(getsizeof(&Value::from("abc")), 52);
        assert_eq!(getsizeof(&Value::from("é")), 74);
        assert_eq!(getsizeof(&Value::from("☃")), 76);
        assert_eq!(getsizeof(&Value::from("😀")), 80);
        assert_eq!(getsizeof(&Value::Int(0)), 28);
        assert_eq!(getsizeof(&Value::Int(1)), 28);
        assert_eq!(getsizeof(&Value::Int(-(1 << 30))), 32);
        assert_eq!(getsizeof(&Value::Int(1 << 60)), 36);
        assert_eq!(getsizeof(&Value::Bytes(vec![0; 10])), 43);
        assert_eq!(getsizeof(&Value::Array(vec![Value::Nil; 3])), 80);
        assert_eq!(getsizeof(&Value::Nil), 16);
        assert_eq!(getsizeof(&Value::Bool(true)), 28);
        assert_eq!(getsizeof(&Value::F64(1.5)), 24);
    }

    #[test]
    fn trims_like_salt() {
        // salt.utils.dicttrim.trim_dict({'a': 'b', 'c': 'x' * 10000}, 100)
        // == {'a': 'b', 'c': 'VALUE_TRIMMED'}
        let mut d = Value::map([("a", Value::from("b")), ("c", Value::from("x".repeat(10_000).as_str()))]);
        assert!(trim_dict(&mut d, 100));
        assert_eq!(d, Value::map([("a", Value::from("b")), ("c", Value::from(TRIMMED))]));
        // Nested maps are descended into; lists are measured shallowly.
        let big = Value::from("y".repeat(5000).as_str());
        let mut d = Value::map([
            ("inner", Value::map([("k", big.clone()), ("small", Value::Int(1))])),
            ("list", Value::Array(vec![big.clone()])),
        ]);
        assert!(trim_dict(&mut d, 1000));
        assert_eq!(
            d,
            Value::map([
                (
                    "inner",
                    Value::map([("k", Value::from(TRIMMED)), ("small", Value::Int(1))])
                ),
                ("list", Value::Array(vec![big])),
            ])
        );
        // Under the limit: untouched.
        let mut small = Value::map([("a", Value::Int(1))]);
        assert!(!trim_dict(&mut small, 1000));
        // Maps as deep as the decoder allows are descended into.
        let mut deep = Value::map([("leaf", Value::from("z".repeat(4000).as_str()))]);
        for _ in 0..500 {
            deep = Value::map([("d", deep)]);
        }
        assert!(trim_dict(&mut deep, 2000));
        assert!(deep.to_file().len() < 2000);
    }
}
