//! msgpack values as Salt's two dialects encode and decode them.
//!
//! * **Network** (`salt.payload.dumps`, `use_bin_type=False`): text *and*
//!   bytes are written as the raw/str family, and — like msgpack-python
//!   without bin types — without the `str8` (0xd9) marker: 32..255-byte
//!   strings use `str16`.
//! * **File/event** (`use_bin_type=True`): text is `str` (with `str8`),
//!   bytes are `bin`.
//!
//! Decoding keeps the distinction Salt's decoders make: a str-family value
//! that is valid UTF-8 becomes [`Value::Str`], otherwise [`Value::Bytes`]
//! (ciphertexts, tokens and signatures travel as raw strings); `bin` is
//! always `Bytes`. Map keys may be any value. Integers, floats and ext types
//! are encoded in the smallest form msgpack-python uses, so encodings are
//! byte-identical to Salt's for the same data and key order.

use crate::msgpack::{decode_budget, scan, ScanError, MAX_DEPTH};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    /// Only for values above `i64::MAX`.
    UInt(u64),
    F32(f32),
    F64(f64),
    Str(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    /// Insertion-ordered, like a Python dict.
    Map(Vec<(Value, Value)>),
    Ext(i8, Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `salt.payload.dumps(x)`: every 4505/4506 body, Crypticle plaintexts.
    Network,
    /// `use_bin_type=True`: `*.p` cache files, event data, bus frames.
    File,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("truncated msgpack data")]
    Truncated,
    #[error("{0}")]
    Scan(#[from] ScanError),
    #[error("{0} bytes of trailing data after the msgpack value")]
    Trailing(usize),
}

impl Value {
    /// A map from `(key, value)` pairs with text keys, in order.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(pairs.into_iter().map(|(k, v)| (Value::Str(k.into()), v)).collect())
    }

    /// The value under a text key (a key sent as raw bytes matches too).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Insert or replace the value under a text key.
    pub fn set(&mut self, key: &str, value: Value) {
        if let Value::Map(pairs) = self {
            if let Some(slot) = pairs.iter_mut().find(|(k, _)| k.as_bytes() == Some(key.as_bytes())) {
                slot.1 = value;
            } else {
                pairs.push((Value::Str(key.to_string()), value));
            }
        }
    }

    /// Remove and return the value under a text key.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        if let Value::Map(pairs) = self {
            let i = pairs.iter().position(|(k, _)| k.as_bytes() == Some(key.as_bytes()))?;
            return Some(pairs.remove(i).1);
        }
        None
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Text or bytes, as bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s.as_bytes()),
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::UInt(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self, Value::Map(_))
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// Encode in `dialect`.
    pub fn encode(&self, dialect: Dialect) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.write(&mut out, dialect);
        out
    }

    /// `salt.payload.dumps(x)`.
    pub fn to_network(&self) -> Vec<u8> {
        self.encode(Dialect::Network)
    }

    /// `salt.payload.dumps(x, use_bin_type=True)`.
    pub fn to_file(&self) -> Vec<u8> {
        self.encode(Dialect::File)
    }

    /// Append the encoding in `d` to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>, d: Dialect) {
        self.write(out, d)
    }

    /// Append the header of a map of `n` pairs (its pairs follow, each
    /// key then value, written with [`Value::write_to`]).
    pub fn write_map_header(out: &mut Vec<u8>, n: usize) {
        write_len(out, n, 0x80, 0xde, 0xdf);
    }

    /// Append the header of `n` bytes of bin (file dialect); the bytes
    /// follow.
    pub fn write_bin_header(out: &mut Vec<u8>, n: usize) {
        if n < 256 {
            out.extend_from_slice(&[0xc4, n as u8]);
        } else if n < 65536 {
            out.push(0xc5);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            out.push(0xc6);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }

    fn write(&self, out: &mut Vec<u8>, d: Dialect) {
        match self {
            Value::Nil => out.push(0xc0),
            Value::Bool(false) => out.push(0xc2),
            Value::Bool(true) => out.push(0xc3),
            Value::Int(i) => write_int(out, *i),
            Value::UInt(u) => {
                if let Ok(i) = i64::try_from(*u) {
                    write_int(out, i)
                } else {
                    out.push(0xcf);
                    out.extend_from_slice(&u.to_be_bytes());
                }
            }
            Value::F32(f) => {
                out.push(0xca);
                out.extend_from_slice(&f.to_be_bytes());
            }
            Value::F64(f) => {
                out.push(0xcb);
                out.extend_from_slice(&f.to_be_bytes());
            }
            Value::Str(s) => write_str(out, s.as_bytes(), d == Dialect::File),
            Value::Bytes(b) => match d {
                Dialect::Network => write_str(out, b, false),
                Dialect::File => {
                    Value::write_bin_header(out, b.len());
                    out.extend_from_slice(b);
                }
            },
            Value::Array(items) => {
                write_len(out, items.len(), 0x90, 0xdc, 0xdd);
                for i in items {
                    i.write(out, d);
                }
            }
            Value::Map(pairs) => {
                write_len(out, pairs.len(), 0x80, 0xde, 0xdf);
                for (k, v) in pairs {
                    k.write(out, d);
                    v.write(out, d);
                }
            }
            Value::Ext(t, data) => {
                let n = data.len();
                match n {
                    1 => out.push(0xd4),
                    2 => out.push(0xd5),
                    4 => out.push(0xd6),
                    8 => out.push(0xd7),
                    16 => out.push(0xd8),
                    n if n < 256 => out.extend_from_slice(&[0xc7, n as u8]),
                    n if n < 65536 => {
                        out.push(0xc8);
                        out.extend_from_slice(&(n as u16).to_be_bytes());
                    }
                    n => {
                        out.push(0xc9);
                        out.extend_from_slice(&(n as u32).to_be_bytes());
                    }
                }
                out.push(*t as u8);
                out.extend_from_slice(data);
            }
        }
    }

    /// Decode exactly one value filling `buf`.
    pub fn decode(buf: &[u8]) -> Result<Value, DecodeError> {
        let (v, used) = Value::decode_prefix(buf)?;
        if used != buf.len() {
            return Err(DecodeError::Trailing(buf.len() - used));
        }
        Ok(v)
    }

    /// Decode the value at the start of `buf`; returns it and its length.
    ///
    /// The memory the value takes is bounded by
    /// [`decode_budget`](crate::msgpack::decode_budget)`(buf.len())`: a value
    /// that would take more is refused with [`ScanError::OverBudget`]
    /// before anything is allocated.
    pub fn decode_prefix(buf: &[u8]) -> Result<(Value, usize), DecodeError> {
        // Validate structure (sizes, depth, memory) first, so decoding can't
        // be driven into huge allocations by declared lengths or by many
        // small values.
        let len = scan(buf, decode_budget(buf.len()))?.ok_or(DecodeError::Truncated)?;
        let mut r = Reader {
            buf: &buf[..len],
            pos: 0,
        };
        let v = r.read(0)?;
        Ok((v, len))
    }
}

fn write_int(out: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        let u = i as u64;
        if u < 128 {
            out.push(u as u8);
        } else if u < 256 {
            out.extend_from_slice(&[0xcc, u as u8]);
        } else if u < 65536 {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        } else if u < (1 << 32) {
            out.push(0xce);
            out.extend_from_slice(&(u as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    } else if i >= -32 {
        out.push(i as i8 as u8);
    } else if i >= -128 {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= -(1 << 31) {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

fn write_str(out: &mut Vec<u8>, b: &[u8], str8: bool) {
    let n = b.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if str8 && n < 256 {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n < 65536 {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

fn write_len(out: &mut Vec<u8>, n: usize, fix: u8, m16: u8, m32: u8) {
    if n < 16 {
        out.push(fix | n as u8);
    } else if n < 65536 {
        out.push(m16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self.take(n)?.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)))
    }

    fn text(&mut self, n: usize) -> Result<Value, DecodeError> {
        let b = self.take(n)?;
        Ok(match std::str::from_utf8(b) {
            Ok(s) => Value::Str(s.to_string()),
            Err(_) => Value::Bytes(b.to_vec()),
        })
    }

    fn read(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(ScanError::TooDeep(MAX_DEPTH).into());
        }
        let m = self.take(1)?[0];
        Ok(match m {
            0x00..=0x7f => Value::Int(i64::from(m)),
            0xe0..=0xff => Value::Int(i64::from(m as i8)),
            0x80..=0x8f => self.map(usize::from(m & 0x0f), depth)?,
            0x90..=0x9f => self.array(usize::from(m & 0x0f), depth)?,
            0xa0..=0xbf => self.text(usize::from(m & 0x1f))?,
            0xc0 => Value::Nil,
            0xc1 => return Err(ScanError::BadMarker(self.pos - 1).into()),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.uint(1 << (m - 0xc4))? as usize;
                Value::Bytes(self.take(n)?.to_vec())
            }
            0xc7..=0xc9 => {
                let n = self.uint(1 << (m - 0xc7))? as usize;
                let t = self.take(1)?[0] as i8;
                Value::Ext(t, self.take(n)?.to_vec())
            }
            0xca => Value::F32(f32::from_be_bytes(self.take(4)?.try_into().unwrap())),
            0xcb => Value::F64(f64::from_be_bytes(self.take(8)?.try_into().unwrap())),
            0xcc..=0xcf => {
                let u = self.uint(1 << (m - 0xcc))?;
                i64::try_from(u).map(Value::Int).unwrap_or(Value::UInt(u))
            }
            0xd0 => Value::Int(i64::from(self.take(1)?[0] as i8)),
            0xd1 => Value::Int(i64::from(i16::from_be_bytes(self.take(2)?.try_into().unwrap()))),
            0xd2 => Value::Int(i64::from(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))),
            0xd3 => Value::Int(i64::from_be_bytes(self.take(8)?.try_into().unwrap())),
            0xd4..=0xd8 => {
                let t = self.take(1)?[0] as i8;
                Value::Ext(t, self.take(1 << (m - 0xd4))?.to_vec())
            }
            0xd9..=0xdb => {
                let n = self.uint(1 << (m - 0xd9))? as usize;
                self.text(n)?
            }
            0xdc | 0xdd => {
                let n = self.uint(if m == 0xdc { 2 } else { 4 })? as usize;
                self.array(n, depth)?
            }
            0xde | 0xdf => {
                let n = self.uint(if m == 0xde { 2 } else { 4 })? as usize;
                self.map(n, depth)?
            }
        })
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        // value_len already bounded n by the buffer size.
        let mut items = Vec::with_capacity(n.min(self.buf.len()));
        for _ in 0..n {
            items.push(self.read(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        let mut pairs: Vec<(Value, Value)> = Vec::with_capacity(n.min(self.buf.len() / 2));
        // A key that comes again replaces the value in place, as filling a
        // Python dict does (first position, last value). Large maps index
        // their keys by hash (checked for equality on a hit), so a hostile
        // map of many keys stays linear.
        let mut index: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for _ in 0..n {
            let k = self.read(depth + 1)?;
            let v = self.read(depth + 1)?;
            let at = if n <= 16 {
                // Few keys (every request's envelope): a scan is cheapest.
                pairs.iter().position(|(old, _)| *old == k)
            } else {
                let h = key_hash(&k);
                match index.get(&h) {
                    Some(&at) if pairs[at].0 == k => Some(at),
                    // Unequal under the same hash: NaN (never equal to
                    // itself, so Python keeps each) or a true collision.
                    Some(_) => None,
                    None => {
                        index.insert(h, pairs.len());
                        None
                    }
                }
            };
            match at {
                Some(at) => pairs[at].1 = v,
                None => pairs.push((k, v)),
            }
        }
        Ok(Value::Map(pairs))
    }
}

/// A hash of a map key for duplicate detection (floats by their bits,
/// containers by their encoding).
fn key_hash(k: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match k {
        Value::Str(s) => (0u8, s.as_bytes()).hash(&mut h),
        Value::Bytes(b) => (1u8, b.as_slice()).hash(&mut h),
        Value::Int(i) => (2u8, i).hash(&mut h),
        Value::UInt(u) => (3u8, u).hash(&mut h),
        Value::Bool(b) => (4u8, b).hash(&mut h),
        Value::Nil => 5u8.hash(&mut h),
        Value::F32(f) => (6u8, f.to_bits()).hash(&mut h),
        Value::F64(f) => (7u8, f.to_bits()).hash(&mut h),
        other => (8u8, other.to_network()).hash(&mut h),
    }
    h.finish()
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_map_key_keeps_its_place_and_the_last_value() {
        // {"a": 1, "b": 2, "a": 3} as msgpack-python would pack three pairs.
        let bytes = [0x83, 0xa1, b'a', 0x01, 0xa1, b'b', 0x02, 0xa1, b'a', 0x03];
        let v = Value::decode(&bytes).unwrap();
        assert_eq!(
            v,
            Value::Map(vec![
                (Value::from("a"), Value::Int(3)),
                (Value::from("b"), Value::Int(2))
            ])
        );
        assert_eq!(v.get("a"), Some(&Value::Int(3)));
        // The same with more keys than the scan handles: hashed.
        let mut bytes = vec![0xde, 0x00, 40];
        for i in 0..40u8 {
            bytes.extend([0xa1, b'a' + (i % 20), i]);
        }
        let Value::Map(pairs) = Value::decode(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(pairs.len(), 20);
        assert_eq!(pairs[0], (Value::from("a"), Value::Int(20)));
        assert_eq!(pairs[19], (Value::from("t"), Value::Int(39)));
    }
    use crate::testvec::{hex, vector};

    #[test]
    fn ints_in_msgpack_pythons_forms() {
        for (i, h) in [
            (0i64, "00"),
            (127, "7f"),
            (128, "cc80"),
            (255, "ccff"),
            (256, "cd0100"),
            (65536, "ce00010000"),
            (1 << 32, "cf0000000100000000"),
            (-1, "ff"),
            (-32, "e0"),
            (-33, "d0df"),
            (-129, "d1ff7f"),
            (-32769, "d2ffff7fff"),
            (i64::MIN, "d38000000000000000"),
        ] {
            assert_eq!(Value::Int(i).to_network(), hex(h), "{i}");
            assert_eq!(Value::decode(&hex(h)).unwrap(), Value::Int(i));
        }
        assert_eq!(
            Value::decode(&hex("cfffffffffffffffff")).unwrap(),
            Value::UInt(u64::MAX)
        );
    }

    #[test]
    fn strings_and_bytes_per_dialect() {
        let s40 = "x".repeat(40);
        // Network: no str8, bytes as str.
        assert_eq!(Value::from(s40.as_str()).to_network()[..3], [0xda, 0, 40]);
        assert_eq!(Value::Bytes(vec![1, 2]).to_network(), vec![0xa2, 1, 2]);
        // File: str8 and bin.
        assert_eq!(Value::from(s40.as_str()).to_file()[..2], [0xd9, 40]);
        assert_eq!(Value::Bytes(vec![1, 2]).to_file(), vec![0xc4, 2, 1, 2]);
        // Decoding classifies by UTF-8 validity.
        assert_eq!(Value::decode(&[0xa2, b'h', b'i']).unwrap(), Value::from("hi"));
        assert_eq!(
            Value::decode(&[0xa2, 0xff, 0xfe]).unwrap(),
            Value::Bytes(vec![0xff, 0xfe])
        );
        assert_eq!(
            Value::decode(&[0xc4, 2, b'h', b'i']).unwrap(),
            Value::Bytes(b"hi".to_vec())
        );
    }

    #[test]
    fn maps_keep_order_and_round_trip() {
        let v = Value::map([
            ("enc", Value::from("aes")),
            ("load", Value::Bytes(vec![0xde, 0xad])),
            (
                "n",
                Value::Array(vec![
                    Value::Nil,
                    Value::Bool(true),
                    Value::F64(1.5),
                    Value::Ext(78, b"x".to_vec()),
                ]),
            ),
        ]);
        for d in [Dialect::Network, Dialect::File] {
            let enc = v.encode(d);
            let back = Value::decode(&enc).unwrap();
            assert_eq!(back.get("enc"), Some(&Value::from("aes")));
            assert_eq!(back.get("load").and_then(Value::as_bytes), Some(&[0xde, 0xad][..]));
            assert_eq!(back.encode(d), enc);
        }
        let mut m = v.clone();
        m.set("enc", Value::from("clear"));
        assert_eq!(m.get("enc").and_then(Value::as_str), Some("clear"));
        assert_eq!(
            m.remove("load").and_then(|b| b.as_bytes().map(<[u8]>::to_vec)),
            Some(vec![0xde, 0xad])
        );
        assert!(m.get("load").is_none());
    }

    #[test]
    fn hostile_input_is_an_error() {
        assert_eq!(Value::decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(
            Value::decode(&[0xdb, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::Truncated)
        );
        assert!(Value::decode(&[0x91, 0xc1]).is_err());
        assert_eq!(Value::decode(&[0x01, 0x02]), Err(DecodeError::Trailing(1)));
        assert!(Value::decode(&vec![0x91; 10_000]).is_err());
        let (v, n) = Value::decode_prefix(&[0x01, 0x02]).unwrap();
        assert_eq!((v, n), (Value::Int(1), 1));
    }

    #[test]
    fn a_value_slot_is_what_the_budget_counts() {
        assert_eq!(std::mem::size_of::<Value>() as u64, crate::msgpack::SLOT);
    }

    #[test]
    fn many_small_values_are_refused_past_the_memory_budget() {
        use crate::msgpack::{decode_budget, DECODE_ALLOWANCE};
        // 10 MB of empty arrays inside one array32: 32 bytes of Value per
        // input byte, 320 MB, against a budget of 4 x 10 MB + 64 MiB.
        let n = 10_000_000usize;
        let mut buf = vec![0xdd];
        buf.extend_from_slice(&(n as u32).to_be_bytes());
        buf.resize(5 + n, 0x90);
        match Value::decode(&buf) {
            Err(DecodeError::Scan(ScanError::OverBudget { budget, input })) => {
                assert_eq!((budget, input), (decode_budget(buf.len()), buf.len()));
            }
            other => panic!("not refused: {:?}", other.map(|_| ())),
        }
        // The same shape nested (arrays of arrays of nils) and as a map of
        // empty strings: refused too.
        let mut nested = vec![0xdd];
        nested.extend_from_slice(&(n as u32 / 16).to_be_bytes());
        for _ in 0..n / 16 {
            nested.push(0x9f);
            nested.extend([0xc0; 15]);
        }
        assert!(matches!(
            Value::decode(&nested),
            Err(DecodeError::Scan(ScanError::OverBudget { .. }))
        ));
        let pairs = n / 2;
        let mut map = vec![0xdf];
        map.extend_from_slice(&(pairs as u32).to_be_bytes());
        for i in 0..pairs {
            map.extend([0xa0 | (i % 2) as u8, 0xa0]);
            if i % 2 == 1 {
                map.push(b'x');
            }
        }
        assert!(matches!(
            Value::decode(&map),
            Err(DecodeError::Scan(ScanError::OverBudget { .. }))
        ));
        // Under the fixed allowance, dense small values decode.
        let small = (DECODE_ALLOWANCE / 64) as usize;
        let mut buf = vec![0xdd];
        buf.extend_from_slice(&(small as u32).to_be_bytes());
        buf.resize(5 + small, 0x90);
        assert!(Value::decode(&buf).is_ok());
    }

    #[test]
    fn salt_payloads_decode_within_the_budget() {
        // A state.apply return of 50,000 states (maps of short strings and
        // numbers under a large map), as a minion sends it.
        let state = |i: usize| {
            Value::map([
                ("name", Value::from(format!("/tmp/file{i}"))),
                ("changes", Value::Map(vec![])),
                ("result", Value::Bool(true)),
                (
                    "comment",
                    Value::from(format!("File /tmp/file{i} is in the correct state")),
                ),
                ("__sls__", Value::from("web")),
                ("__run_num__", Value::Int(i as i64)),
                ("start_time", Value::from("10:11:12.123456")),
                ("duration", Value::F64(1.234)),
                ("__id__", Value::from(format!("/tmp/file{i}"))),
            ])
        };
        let ret = Value::Map(
            (0..50_000)
                .map(|i| {
                    (
                        Value::from(format!("file_|-/tmp/file{i}_|-/tmp/file{i}_|-managed")),
                        state(i),
                    )
                })
                .collect(),
        );
        let load = Value::map([
            ("cmd", Value::from("_return")),
            ("id", Value::from("web1")),
            ("fun", Value::from("state.apply")),
            ("jid", Value::from("20250101000000000000")),
            ("return", ret),
            ("retcode", Value::Int(0)),
        ]);
        let enc = load.to_network();
        assert_eq!(Value::decode(&enc).as_ref(), Ok(&load));
        // Grains-like nesting: lists of short strings, maps in maps, deep
        // but under MAX_DEPTH.
        let mut deep = Value::from("leaf");
        for i in 0..400 {
            deep = Value::map([
                (format!("k{i}").as_str(), deep),
                ("ipv4", Value::Array(vec![Value::from("10.0.0.1"); 4])),
            ]);
        }
        let enc = deep.to_network();
        assert_eq!(Value::decode(&enc).as_ref(), Ok(&deep));
        // A large return of small integers (a few million) fits the allowance.
        let ints = Value::Array((0..1_500_000).map(|i| Value::Int(i % 100)).collect());
        assert!(Value::decode(&ints.to_network()).is_ok());
        // A big string (a cmd.run output): 1 byte of memory per byte.
        let text = Value::map([("return", Value::from("x".repeat(50 << 20)))]);
        assert!(Value::decode(&text.to_network()).is_ok());
    }

    #[test]
    fn shared_vectors_msgpack_ext_and_bytes() {
        for key in [
            "network_encoding",
            "file_encoding_use_bin_type",
            "bytes_value_network",
            "bytes_value_files_and_events",
        ] {
            let bytes = hex(&vector(key));
            let v = Value::decode(&bytes).unwrap_or_else(|e| panic!("{key}: {e}"));
            let dialect = if key.contains("network") {
                Dialect::Network
            } else {
                Dialect::File
            };
            assert_eq!(v.encode(dialect), bytes, "{key} re-encodes byte-identically");
        }
    }
}
