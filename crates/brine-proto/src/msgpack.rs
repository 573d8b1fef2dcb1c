//! msgpack structure scanning: where does the value at the start of a
//! buffer end? Used to split unprefixed msgpack streams (the event bus of
//! Salt 3006.0–3006.25 and 3007.x writers) without decoding them.

/// A buffer that does not start with a valid msgpack value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScanError {
    #[error("invalid msgpack marker 0xc1 at offset {0}")]
    BadMarker(usize),
    #[error("msgpack nesting deeper than {0}")]
    TooDeep(usize),
    #[error("decoding would take more than {budget} bytes of memory ({input} input bytes)")]
    OverBudget { budget: u64, input: usize },
}

/// Deepest nesting accepted (Salt's own payloads are a few levels deep).
pub const MAX_DEPTH: usize = 512;

/// Memory a decode may take per input byte, beyond [`DECODE_ALLOWANCE`].
/// Salt's payloads (maps of short strings, state and job returns) take
/// 1–5 bytes of `Value` per byte of msgpack; one-byte values (small
/// ints, nil, empty strings and containers) take 32, which is what a
/// hostile request is made of.
pub const DECODE_BYTES_PER_BYTE: u64 = 4;

/// Memory any decode may take whatever its input: small requests, dense
/// in small values, always decode.
pub const DECODE_ALLOWANCE: u64 = 64 << 20;

/// The memory budget of decoding `input` bytes.
pub fn decode_budget(input: usize) -> u64 {
    (input as u64)
        .saturating_mul(DECODE_BYTES_PER_BYTE)
        .saturating_add(DECODE_ALLOWANCE)
}

/// What a decoded value costs in memory, as `Value::decode` allocates it:
/// a slot per array element, two per map pair (plus the key index of maps
/// over 16 pairs), and the bytes of every string, bin and ext.
pub(crate) const SLOT: u64 = 32;
const INDEX_ENTRY: u64 = 32;

/// Length in bytes of the first complete msgpack value in `buf`:
/// `Ok(Some(n))` when it is complete, `Ok(None)` when more bytes are needed.
pub fn value_len(buf: &[u8]) -> Result<Option<usize>, ScanError> {
    scan(buf, u64::MAX)
}

/// [`value_len`] that also adds up what decoding the value would allocate
/// and refuses it (before anything is allocated) past `budget` bytes.
pub(crate) fn scan(buf: &[u8], budget: u64) -> Result<Option<usize>, ScanError> {
    // Iterative: `pending` counts the values still to read.
    let mut cost = 0u64;
    let mut pos = 0usize;
    let mut pending: usize = 1;
    let mut depth_stack: Vec<usize> = Vec::new();
    while pending > 0 {
        let Some(&m) = buf.get(pos) else {
            return Ok(None);
        };
        pending -= 1;
        let need = |n: usize| -> Option<u64> {
            let b = buf.get(pos + 1..pos + 1 + n)?;
            Some(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
        };
        // (header bytes, payload bytes, child values)
        let (hdr, payload, children): (usize, u64, u64) = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0, 0),
            0x80..=0x8f => (1, 0, u64::from(m & 0x0f) * 2),
            0x90..=0x9f => (1, 0, u64::from(m & 0x0f)),
            0xa0..=0xbf => (1, u64::from(m & 0x1f), 0),
            0xc1 => return Err(ScanError::BadMarker(pos)),
            0xc4 | 0xd9 => match need(1) {
                Some(n) => (2, n, 0),
                None => return Ok(None),
            },
            0xc5 | 0xda => match need(2) {
                Some(n) => (3, n, 0),
                None => return Ok(None),
            },
            0xc6 | 0xdb => match need(4) {
                Some(n) => (5, n, 0),
                None => return Ok(None),
            },
            0xc7 => match need(1) {
                Some(n) => (3, n, 0),
                None => return Ok(None),
            },
            0xc8 => match need(2) {
                Some(n) => (4, n, 0),
                None => return Ok(None),
            },
            0xc9 => match need(4) {
                Some(n) => (6, n, 0),
                None => return Ok(None),
            },
            0xca => (5, 0, 0),
            0xcb => (9, 0, 0),
            0xcc | 0xd0 => (2, 0, 0),
            0xcd | 0xd1 => (3, 0, 0),
            0xce | 0xd2 => (5, 0, 0),
            0xcf | 0xd3 => (9, 0, 0),
            0xd4 => (3, 0, 0),
            0xd5 => (4, 0, 0),
            0xd6 => (6, 0, 0),
            0xd7 => (10, 0, 0),
            0xd8 => (18, 0, 0),
            0xdc => match need(2) {
                Some(n) => (3, 0, n),
                None => return Ok(None),
            },
            0xdd => match need(4) {
                Some(n) => (5, 0, n),
                None => return Ok(None),
            },
            0xde => match need(2) {
                Some(n) => (3, 0, n * 2),
                None => return Ok(None),
            },
            0xdf => match need(4) {
                Some(n) => (5, 0, n * 2),
                None => return Ok(None),
            },
        };
        let Some(next) = (pos as u64)
            .checked_add(hdr as u64)
            .and_then(|p| p.checked_add(payload))
        else {
            return Ok(None);
        };
        if next > buf.len() as u64 {
            return Ok(None);
        }
        pos = next as usize;
        // A container's children cannot outnumber the bytes left; a huge
        // declared count is simply incomplete until that many bytes arrive.
        if children > (buf.len() - pos) as u64 {
            return Ok(None);
        }
        // What decoding allocates: string, bin and ext payloads once, a slot
        // per child of a container (a map's children are its keys and
        // values), and an index of the keys of a large map.
        cost += payload + children * SLOT;
        if children > 32 && matches!(m, 0x80..=0x8f | 0xde | 0xdf) {
            cost += children / 2 * INDEX_ENTRY;
        }
        if cost > budget {
            return Err(ScanError::OverBudget {
                budget,
                input: buf.len(),
            });
        }
        if children > 0 {
            depth_stack.push(pending);
            if depth_stack.len() > MAX_DEPTH {
                return Err(ScanError::TooDeep(MAX_DEPTH));
            }
            pending = children as usize;
        }
        while pending == 0 {
            match depth_stack.pop() {
                Some(p) => pending = p,
                None => break,
            }
        }
    }
    Ok(Some(pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_and_containers() {
        assert_eq!(value_len(&[0x01, 0xff]), Ok(Some(1)));
        assert_eq!(value_len(&[0xa3, b'a', b'b', b'c', 0]), Ok(Some(4)));
        assert_eq!(value_len(&[0xa3, b'a']), Ok(None));
        // {"head": {}, "body": bin8(2)}
        let frame = [
            0x82, 0xa4, b'h', b'e', b'a', b'd', 0x80, 0xa4, b'b', b'o', b'd', b'y', 0xc4, 2, 9, 9,
        ];
        assert_eq!(value_len(&frame), Ok(Some(frame.len())));
        for cut in 0..frame.len() {
            assert_eq!(value_len(&frame[..cut]), Ok(None), "cut at {cut}");
        }
        let mut two = frame.to_vec();
        two.extend_from_slice(&frame);
        assert_eq!(value_len(&two), Ok(Some(frame.len())));
        // nested arrays [[1],[2,[3]]]
        assert_eq!(value_len(&[0x92, 0x91, 1, 0x92, 2, 0x91, 3, 0xc0]), Ok(Some(7)));
        // float64, uint32, fixext, ext8
        assert_eq!(value_len(&[0xcb, 0, 0, 0, 0, 0, 0, 0, 0]), Ok(Some(9)));
        assert_eq!(value_len(&[0xce, 0, 0, 0, 1]), Ok(Some(5)));
        assert_eq!(value_len(&[0xd4, 1, 2]), Ok(Some(3)));
        assert_eq!(value_len(&[0xc7, 2, 5, 1, 2]), Ok(Some(5)));
        assert_eq!(value_len(&[0x90]), Ok(Some(1)));
        assert_eq!(value_len(&[0x91, 0x90]), Ok(Some(2)));
    }

    #[test]
    fn garbage_and_hostile_input() {
        assert_eq!(value_len(&[0xc1]), Err(ScanError::BadMarker(0)));
        assert_eq!(value_len(&[0x91, 0xc1]), Err(ScanError::BadMarker(1)));
        // array32 claiming 4 billion elements: incomplete, not a huge allocation
        assert_eq!(value_len(&[0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2]), Ok(None));
        // str32 claiming 4 GiB
        assert_eq!(value_len(&[0xdb, 0xff, 0xff, 0xff, 0xff]), Ok(None));
        let deep = vec![0x91u8; MAX_DEPTH + 10];
        assert_eq!(value_len(&deep), Err(ScanError::TooDeep(MAX_DEPTH)));
        assert_eq!(value_len(&[]), Ok(None));
    }
}
