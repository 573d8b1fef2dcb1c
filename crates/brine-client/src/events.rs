//! A subscriber on the master event bus (`sock_dir/master_event_pub.ipc`),
//! reading events framed as `brine_proto::event` writes them.

use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use brine_config::MasterConfig;
use brine_proto::Value;

use crate::ClientError;

/// Bytes of one unfinished frame the subscriber holds before it gives up
/// on the stream: above the largest frame the master's EventPublisher
/// forwards (64 MiB).
const MAX_PENDING: usize = 80 * 1024 * 1024;

/// Where the master publishes its events, and how they are framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusAddr {
    pub path: PathBuf,
    /// `event_publisher_length_prefix`: frames carry a 4-byte length.
    pub length_prefixed: bool,
}

impl BusAddr {
    pub fn from_config(cfg: &MasterConfig) -> BusAddr {
        BusAddr {
            path: cfg.sock_dir.join("master_event_pub.ipc"),
            length_prefixed: cfg.get_bool("event_publisher_length_prefix").unwrap_or(false),
        }
    }
}

/// One event: its tag and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub tag: String,
    pub data: Value,
}

/// An event whose data is still encoded: a reader that wants few of the
/// events it sees decodes only those.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub tag: String,
    data: Vec<u8>,
}

impl RawEvent {
    /// The event, its data decoded; `None` when the data is not msgpack.
    pub fn decode(self) -> Option<Event> {
        let data = Value::decode(&self.data).ok()?;
        Some(Event { tag: self.tag, data })
    }
}

/// A connected subscriber. It sees the events published after it
/// connected: subscribe before sending a request whose events matter.
pub struct EventBus {
    sock: UnixStream,
    prefixed: bool,
    /// Bytes received; those before `pos` were taken as frames already.
    buf: Vec<u8>,
    pos: usize,
    chunk: Vec<u8>,
}

impl EventBus {
    pub fn subscribe(addr: &BusAddr) -> Result<EventBus, ClientError> {
        let sock = UnixStream::connect(&addr.path).map_err(|source| ClientError::BusConnect {
            path: addr.path.clone(),
            source,
        })?;
        Ok(EventBus {
            sock,
            prefixed: addr.length_prefixed,
            buf: Vec::new(),
            pos: 0,
            chunk: vec![0u8; 1 << 16],
        })
    }

    /// The next event already received or readable now, without waiting:
    /// for a caller that polls [`AsRawFd::as_raw_fd`] with other
    /// descriptors.
    pub fn next_now(&mut self) -> Result<Option<Event>, ClientError> {
        self.take_now(Self::take_buffered)
    }

    /// [`EventBus::next_now`], the data left encoded.
    pub fn next_raw_now(&mut self) -> Result<Option<RawEvent>, ClientError> {
        self.take_now(Self::take_raw)
    }

    /// What `take` finds in the frames received so far or readable now.
    fn take_now<T>(&mut self, take: fn(&mut Self) -> Result<Option<T>, ClientError>) -> Result<Option<T>, ClientError> {
        loop {
            if let Some(ev) = take(self)? {
                return Ok(Some(ev));
            }
            if !self.read_now()? {
                return Ok(None);
            }
        }
    }

    /// Read what the socket has now; whether there was anything.
    fn read_now(&mut self) -> Result<bool, ClientError> {
        loop {
            self.sock.set_nonblocking(true).map_err(ClientError::BusRead)?;
            let read = self.sock.read(&mut self.chunk);
            self.sock.set_nonblocking(false).map_err(ClientError::BusRead)?;
            match read {
                Ok(0) => return Err(ClientError::BusClosed),
                Ok(n) => {
                    self.append(n);
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(ClientError::BusRead(e)),
            }
        }
    }

    /// Keep the first `n` bytes of the read chunk, dropping the frames
    /// taken so far first (once, not per frame).
    fn append(&mut self, n: usize) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(&self.chunk[..n]);
    }

    /// An event from the frames received so far; an error when what was
    /// received cannot be events.
    fn take_buffered(&mut self) -> Result<Option<Event>, ClientError> {
        while let Some(raw) = self.take_raw()? {
            if let Some(ev) = raw.decode() {
                return Ok(Some(ev));
            }
        }
        Ok(None)
    }

    /// [`EventBus::take_buffered`] without decoding the data. Frames that
    /// are not events are skipped.
    fn take_raw(&mut self) -> Result<Option<RawEvent>, ClientError> {
        while let Some((frame, used)) = brine_proto::event::frame_at(&self.buf[self.pos..], self.prefixed) {
            let frame = &self.buf[self.pos + frame.start..self.pos + frame.end];
            let split = brine_proto::event::split_frame(frame);
            self.pos += used;
            if self.pos == self.buf.len() {
                self.buf.clear();
                self.pos = 0;
            }
            if let Ok((tag, data)) = split {
                return Ok(Some(RawEvent { tag, data }));
            }
        }
        let rest = &self.buf[self.pos..];
        if !self.prefixed {
            if let Err(e) = brine_proto::msgpack::value_len(rest) {
                return Err(ClientError::BusGarbage(format!("a frame that is not msgpack ({e})")));
            }
        }
        if rest.len() > MAX_PENDING {
            return Err(ClientError::BusGarbage(format!("a frame over {MAX_PENDING} bytes")));
        }
        Ok(None)
    }

    /// The next event, or `None` once `deadline` has passed. Frames that
    /// are not events are skipped.
    pub fn next(&mut self, deadline: Instant) -> Result<Option<Event>, ClientError> {
        loop {
            if let Some(ev) = self.take_buffered()? {
                return Ok(Some(ev));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(ClientError::BusRead)?;
            match self.sock.read(&mut self.chunk) {
                Ok(0) => return Err(ClientError::BusClosed),
                Ok(n) => self.append(n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(ClientError::BusRead(e)),
            }
        }
    }
}

impl AsRawFd for EventBus {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// The master's sender of events on its own bus (`master_event_pull.ipc`),
/// trimming data over `max_event_size` as Salt does.
pub fn event_sender(cfg: &brine_config::MasterConfig) -> brine_proto::event::EventSender {
    let max = cfg.get_u64("max_event_size").unwrap_or(1_048_576);
    brine_proto::event::EventSender::new(&cfg.sock_dir).trimmed(
        usize::try_from(max).unwrap_or(usize::MAX),
        brine_py::dicttrim::trim_dict,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_proto::event::{frame, pack_event, prefixed_frame};
    use std::io::Write;

    fn bus(prefixed: bool) -> (EventBus, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let bus = EventBus {
            sock: ours,
            prefixed,
            buf: Vec::new(),
            pos: 0,
            chunk: vec![0u8; 1 << 16],
        };
        (bus, theirs)
    }

    /// Many frames in one read, a frame cut across reads and a frame that
    /// is not an event: every event comes out once, in order, decoded or
    /// raw.
    #[test]
    fn frames_in_bulk_and_across_reads() {
        for prefixed in [false, true] {
            let (mut bus, mut peer) = bus(prefixed);
            let wrap = |ev: &[u8]| if prefixed { prefixed_frame(ev) } else { frame(ev) };
            let mut bytes = Vec::new();
            for i in 0..2000 {
                bytes.extend(wrap(&pack_event(
                    &format!("t/{i}"),
                    &Value::map([("i", Value::Int(i))]),
                )));
                if i == 10 {
                    // A frame with no tag separator is skipped.
                    bytes.extend(wrap(b"no separator"));
                }
            }
            let (first, rest) = bytes.split_at(bytes.len() / 2 + 3);
            peer.write_all(first).unwrap();
            let mut seen = Vec::new();
            while let Some(ev) = bus.next_now().unwrap() {
                assert_eq!(ev.data.get("i"), Some(&Value::Int(seen.len() as i64)));
                seen.push(ev.tag);
            }
            assert!(seen.len() < 2000);
            peer.write_all(rest).unwrap();
            while let Some(raw) = bus.next_raw_now().unwrap() {
                assert_eq!(raw.tag, format!("t/{}", seen.len()));
                let ev = raw.decode().unwrap();
                assert_eq!(ev.data.get("i"), Some(&Value::Int(seen.len() as i64)));
                seen.push(ev.tag);
            }
            assert_eq!(seen.len(), 2000, "prefixed: {prefixed}");
            assert!(bus.buf.len() - bus.pos < 64, "what was taken is dropped");
        }
    }
}
