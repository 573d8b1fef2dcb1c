//! Master event bus encoding (Salt's `salt.utils.event`): an event is
//! `tag ‖ "\n\n" ‖ file-msgpack(data)`, carried in a frame
//! `file-msgpack({"head": {}, "body": bin(event)})`.

use crate::value::{DecodeError, Dialect, Value};

/// `tag\n\n` + data, with `_stamp` added when absent (UTC, Salt's
/// `datetime.utcnow().isoformat()` form).
pub fn pack_event(tag: &str, data: &Value) -> Vec<u8> {
    pack_event_with(tag, data, None)
}

/// A way to shrink an event's data to a byte limit in place (Salt's
/// `trim_dict`, which lives with the other Python semantics).
pub type Trim = fn(&mut Value, usize) -> bool;

/// [`pack_event`], the data (with its `_stamp`) trimmed by `trim` first.
pub fn pack_event_with(tag: &str, data: &Value, trim: Option<(usize, Trim)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(tag.len() + 256);
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b"\n\n");
    let head = out.len();
    let stamp = || Value::Str(utc_stamp(std::time::SystemTime::now()));
    // The data is written as it is with the stamp appended (where
    // `Value::set` would put it), without copying the data first.
    match data {
        Value::Map(pairs) if data.get("_stamp").is_none() => {
            Value::write_map_header(&mut out, pairs.len() + 1);
            for (k, v) in pairs {
                k.write_to(&mut out, Dialect::File);
                v.write_to(&mut out, Dialect::File);
            }
            Value::from("_stamp").write_to(&mut out, Dialect::File);
            stamp().write_to(&mut out, Dialect::File);
        }
        _ => data.write_to(&mut out, Dialect::File),
    }
    // Only an event over the limit (Python's getsizeof of the bytes: 33 +
    // their length) is trimmed and encoded again.
    if let Some((max, trim)) = trim {
        if out.len() - head + 33 > max {
            let mut data = data.clone();
            if data.is_map() && data.get("_stamp").is_none() {
                data.set("_stamp", stamp());
            }
            if trim(&mut data, max) {
                out.truncate(head);
                data.write_to(&mut out, Dialect::File);
            }
        }
    }
    out
}

/// Stamp `data` (a map) with the time now, as Python's `fire_event` does
/// to the dict it is given (over any stamp it had): a caller that keeps
/// the dict (a runner's or wheel call's job data) keeps the stamp.
pub fn stamp(data: &mut Value) {
    if data.is_map() {
        data.set("_stamp", Value::Str(utc_stamp(std::time::SystemTime::now())));
    }
}

/// The frame pushed to `master_event_pull.ipc` / sent to subscribers.
pub fn frame(event: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.len() + 17);
    write_frame(&mut out, event);
    out
}

/// A frame with the u32 big-endian length prefix of 3006.26+/3007.17 writers.
pub fn prefixed_frame(event: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.len() + 21);
    out.extend_from_slice(&[0; 4]);
    write_frame(&mut out, event);
    let n = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&n.to_be_bytes());
    out
}

/// `{"head": {}, "body": bin(event)}` in file msgpack, appended to `out`.
fn write_frame(out: &mut Vec<u8>, event: &[u8]) {
    Value::write_map_header(out, 2);
    Value::from("head").write_to(out, Dialect::File);
    Value::write_map_header(out, 0);
    Value::from("body").write_to(out, Dialect::File);
    Value::write_bin_header(out, event.len());
    out.extend_from_slice(event);
}

/// Pushes events to `sock_dir/master_event_pull.ipc`, length-prefixed as
/// 3006.26+/3007.17 writers do, reconnecting once if the EventPublisher
/// restarted. A write that cannot finish within 500 ms fails rather than
/// stalling the caller.
pub struct EventSender {
    path: std::path::PathBuf,
    stream: Option<std::os::unix::net::UnixStream>,
    trim: Option<(usize, Trim)>,
}

impl EventSender {
    pub fn new(sock_dir: &std::path::Path) -> EventSender {
        EventSender {
            path: sock_dir.join("master_event_pull.ipc"),
            stream: None,
            trim: None,
        }
    }

    /// Trim every event's data to `max` bytes with `trim` before it goes
    /// out (Salt's `max_event_size`; 0 leaves events whole).
    pub fn trimmed(mut self, max: usize, trim: Trim) -> EventSender {
        self.trim = (max > 0).then_some((max, trim));
        self
    }

    /// Fire `data` under `tag` (a `_stamp` is added).
    pub fn fire(&mut self, tag: &str, data: &Value) -> std::io::Result<()> {
        use std::io::Write;
        let frame = prefixed_frame(&pack_event_with(tag, data, self.trim));
        let mut last = None;
        for _ in 0..2 {
            if self.stream.is_none() {
                let s = std::os::unix::net::UnixStream::connect(&self.path)?;
                s.set_write_timeout(Some(std::time::Duration::from_millis(500)))?;
                self.stream = Some(s);
            }
            match self.stream.as_mut().unwrap().write_all(&frame) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.stream = None;
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap())
    }
}

/// Take the next whole frame off a subscriber's read buffer: bare
/// (one msgpack value) or, with `prefixed`, after its u32 big-endian length
/// (`event_publisher_length_prefix`). `None` until a whole frame is there.
pub fn take_frame(buf: &mut Vec<u8>, prefixed: bool) -> Option<Vec<u8>> {
    let (frame, used) = frame_at(buf, prefixed)?;
    let frame = buf[frame].to_vec();
    buf.drain(..used);
    Some(frame)
}

/// Where the next whole frame at the start of `buf` is (without its
/// length prefix), and how many bytes it takes with it; `None` until a
/// whole frame is there or when the bytes are not msgpack.
pub fn frame_at(buf: &[u8], prefixed: bool) -> Option<(std::ops::Range<usize>, usize)> {
    if prefixed {
        let n = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
        (buf.len() >= 4 + n).then_some((4..4 + n, 4 + n))
    } else {
        match crate::msgpack::value_len(buf) {
            Ok(Some(len)) => Some((0..len, len)),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event frame: {0}")]
    Decode(#[from] DecodeError),
    #[error("event frame has no bin body")]
    NoBody,
    #[error("event has no tag separator")]
    NoTag,
}

/// Split a frame into its tag and data.
pub fn unpack_frame(frame: &[u8]) -> Result<(String, Value), EventError> {
    let (tag, data) = split_frame(frame)?;
    Ok((tag, Value::decode(&data)?))
}

/// Split a frame into its tag and its data still encoded, for a reader
/// that decodes the data only of the events it wants.
pub fn split_frame(frame: &[u8]) -> Result<(String, Vec<u8>), EventError> {
    let v = Value::decode(frame)?;
    let body = v.get("body").and_then(Value::as_bytes).ok_or(EventError::NoBody)?;
    let (tag, data) = split_event(body)?;
    Ok((tag, data.to_vec()))
}

/// Split `tag\n\n` + data.
pub fn unpack_event(event: &[u8]) -> Result<(String, Value), EventError> {
    let (tag, data) = split_event(event)?;
    Ok((tag, Value::decode(data)?))
}

/// `tag\n\n` + data: the tag, and the data still encoded.
fn split_event(event: &[u8]) -> Result<(String, &[u8]), EventError> {
    let sep = event.windows(2).position(|w| w == b"\n\n").ok_or(EventError::NoTag)?;
    Ok((String::from_utf8_lossy(&event[..sep]).into_owned(), &event[sep + 2..]))
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC.
pub fn utc_stamp(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, m, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testvec::{hex, vector};

    #[test]
    fn take_frame_reads_bare_and_prefixed_streams() {
        let ev = pack_event("t", &Value::map([("a", Value::Int(1))]));
        for prefixed in [false, true] {
            let one = if prefixed { prefixed_frame(&ev) } else { frame(&ev) };
            let mut buf = [one.clone(), one.clone()].concat();
            buf.pop(); // the second frame is incomplete
            assert_eq!(take_frame(&mut buf, prefixed), Some(frame(&ev)));
            assert_eq!(take_frame(&mut buf, prefixed), None);
            buf.push(*one.last().unwrap());
            assert_eq!(take_frame(&mut buf, prefixed), Some(frame(&ev)));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn salt_event_vector_both_ways() {
        let data = Value::map([
            ("jid", Value::from("20240101120000123456")),
            ("minions", Value::Array(vec![Value::from("minion1")])),
            ("_stamp", Value::from("2024-01-01T12:00:00.123456")),
        ]);
        let ev = pack_event("salt/job/20240101120000123456/new", &data);
        assert_eq!(ev, hex(&vector("event_bytes")));
        assert_eq!(frame(&ev), hex(&vector("pub_side_frame_no_length_prefix")));
        assert_eq!(
            prefixed_frame(&ev),
            hex(&vector("pull_side_frame_with_be32_length_prefix"))
        );
        let (tag, back) = unpack_frame(&frame(&ev)).unwrap();
        assert_eq!(tag, "salt/job/20240101120000123456/new");
        assert_eq!(back, data);
    }

    /// The stamp is appended as `Value::set` would, also where it moves
    /// the map's header from fixmap to map16, and a non-map is packed as
    /// it is.
    #[test]
    fn stamp_is_appended_to_the_data() {
        for n in [0, 1, 15, 16] {
            let data = Value::Map((0..n).map(|i| (Value::from(format!("k{i}")), Value::Int(i))).collect());
            let (_, got) = unpack_event(&pack_event("t", &data)).unwrap();
            let mut want = data.clone();
            want.set("_stamp", got.get("_stamp").unwrap().clone());
            assert_eq!(got, want);
            assert_eq!(pack_event("t", &want), [b"t\n\n".as_slice(), &want.to_file()].concat());
        }
        let (_, got) = unpack_event(&pack_event("t", &Value::Int(3))).unwrap();
        assert_eq!(got, Value::Int(3));
        // Over the limit: the trimmed data, stamp included.
        fn cut(v: &mut Value, _: usize) -> bool {
            v.set("big", Value::from("cut"));
            true
        }
        let data = Value::map([("big", Value::from("x".repeat(500)))]);
        let (_, got) = unpack_event(&pack_event_with("t", &data, Some((100, cut)))).unwrap();
        assert_eq!(got.get("big"), Some(&Value::from("cut")));
        assert!(got.get("_stamp").is_some());
    }

    #[test]
    fn stamps_and_bad_frames() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_704_110_400_123_456);
        assert_eq!(utc_stamp(t), "2024-01-01T12:00:00.123456");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        let ev = pack_event("salt/auth", &Value::map([("id", Value::from("m1"))]));
        let (_, d) = unpack_event(&ev).unwrap();
        assert!(d.get("_stamp").and_then(Value::as_str).is_some_and(|s| s.len() == 26));
        assert_eq!(unpack_event(b"no separator"), Err(EventError::NoTag));
        assert!(unpack_frame(&[0x80]).is_err());
    }
}
