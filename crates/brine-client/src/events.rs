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

/// A connected subscriber. It sees the events published after it
/// connected: subscribe before sending a request whose events matter.
pub struct EventBus {
    sock: UnixStream,
    prefixed: bool,
    buf: Vec<u8>,
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
            chunk: vec![0u8; 1 << 16],
        })
    }

    /// The next event already received or readable now, without waiting:
    /// for a caller that polls [`AsRawFd::as_raw_fd`] with other
    /// descriptors.
    pub fn next_now(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            if let Some(ev) = self.take_buffered()? {
                return Ok(Some(ev));
            }
            self.sock.set_nonblocking(true).map_err(ClientError::BusRead)?;
            let read = self.sock.read(&mut self.chunk);
            self.sock.set_nonblocking(false).map_err(ClientError::BusRead)?;
            match read {
                Ok(0) => return Err(ClientError::BusClosed),
                Ok(n) => self.buf.extend_from_slice(&self.chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(ClientError::BusRead(e)),
            }
        }
    }

    /// An event from the frames received so far; an error when what was
    /// received cannot be events.
    fn take_buffered(&mut self) -> Result<Option<Event>, ClientError> {
        while let Some(frame) = brine_proto::event::take_frame(&mut self.buf, self.prefixed) {
            if let Ok((tag, data)) = brine_proto::event::unpack_frame(&frame) {
                return Ok(Some(Event { tag, data }));
            }
        }
        if !self.prefixed {
            if let Err(e) = brine_proto::msgpack::value_len(&self.buf) {
                return Err(ClientError::BusGarbage(format!("a frame that is not msgpack ({e})")));
            }
        }
        if self.buf.len() > MAX_PENDING {
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
                Ok(n) => self.buf.extend_from_slice(&self.chunk[..n]),
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
