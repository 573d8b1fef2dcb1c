//! EventPublisher: the master event bus. Owns two unix stream sockets in
//! `sock_dir`: `master_event_pull.ipc` (mode 0600), where any process
//! pushes events, and `master_event_pub.ipc` (mode 0660), where CLIs, the
//! Reactor and salt-api subscribe; every subscriber gets every event.
//!
//! Framing (Salt's `salt.utils.event`): each event is a msgpack map `{"head", "body"}`.
//! Writers send it bare (Salt ≤ 3006.25, early 3007) or after a big-endian
//! u32 length (3006.26+, 3007.17): detected per connection from the first
//! byte (0x82 = a bare map of two). Subscribers cannot be asked, so the pub
//! side is bare unless `event_publisher_length_prefix: True` (for Python
//! 3006.26+ readers).

use brine_metrics::Counter;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::rc::Rc;

use brine_config::MasterConfig;
use brine_proc::supervisor::ChildSpec;
use log::{debug, warn};

use super::{role, stop_signals, stopping, RoleError};
use crate::names;

/// Largest event frame accepted from a writer.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
/// A subscriber this far behind is disconnected.
pub const MAX_BACKLOG: usize = 256 * 1024 * 1024;

struct Writer {
    stream: UnixStream,
    buf: Vec<u8>,
    prefixed: Option<bool>,
}

struct Subscriber {
    stream: UnixStream,
    out: Vec<u8>,
    sent: usize,
}

fn listen(path: &Path, mode: u32) -> Result<UnixListener, RoleError> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(RoleError::Fatal(format!("cannot remove stale {}: {e}", path.display()))),
    }
    let l = UnixListener::bind(path).map_err(|e| RoleError::Fatal(format!("cannot bind {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Split complete frames off the front of `w.buf`. `Err` = drop the writer.
fn frames(w: &mut Writer) -> Result<Vec<Vec<u8>>, String> {
    split_frames(&mut w.buf, &mut w.prefixed)
}

/// Split the complete event frames a writer sent off the front of `buf`
/// (the rest waits for more bytes). The first byte a writer sends decides
/// its framing for good (`prefixed`): a 4-byte big-endian length before
/// each msgpack map, or bare msgpack maps back to back. `Err` names why the
/// writer must be dropped: a frame over [`MAX_FRAME`], a length prefix
/// that does not hold exactly one msgpack value, malformed msgpack, or a
/// frame that is not a map.
pub fn split_frames(buf: &mut Vec<u8>, prefixed: &mut Option<bool>) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        if rest.is_empty() {
            break;
        }
        let prefixed = *prefixed.get_or_insert(rest[0] != 0x82);
        let (start, len) = if prefixed {
            if rest.len() < 4 {
                break;
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len > MAX_FRAME {
                return Err(format!("event frame of {len} bytes is over the {MAX_FRAME} byte limit"));
            }
            if rest.len() < 4 + len {
                break;
            }
            if brine_proto::msgpack::value_len(&rest[4..4 + len]) != Ok(Some(len)) {
                return Err("length-prefixed event frame is not one msgpack value".into());
            }
            (4, len)
        } else {
            match brine_proto::msgpack::value_len(rest) {
                Ok(Some(n)) => (0, n),
                Ok(None) if rest.len() > MAX_FRAME => {
                    return Err(format!("unterminated event frame over {MAX_FRAME} bytes"))
                }
                Ok(None) => break,
                Err(e) => return Err(format!("malformed event frame: {e}")),
            }
        };
        let frame = &rest[start..start + len];
        if !matches!(frame.first(), Some(0x80..=0x8f | 0xde | 0xdf)) {
            return Err("event frame is not a msgpack map".into());
        }
        out.push(frame.to_vec());
        pos += start + len;
    }
    buf.drain(..pos);
    Ok(out)
}

/// The bus: listening sockets, connected writers and subscribers.
struct Bus {
    pull: UnixListener,
    publ: UnixListener,
    writers: Vec<Writer>,
    subs: Vec<Subscriber>,
    /// `event_publisher_length_prefix`: frame events for subscribers.
    prefix_pub: bool,
    chunk: Vec<u8>,
}

fn pollfd(fd: i32, events: i16) -> libc::pollfd {
    libc::pollfd { fd, events, revents: 0 }
}

impl Writer {
    /// Read what the writer sent and split off its complete frames.
    /// `Err` = drop the writer (hang-up, read error, malformed frame).
    fn read(&mut self, chunk: &mut [u8]) -> Result<Vec<Vec<u8>>, Option<String>> {
        let mut eof = false;
        loop {
            match self.stream.read(chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        // Frames complete before a hang-up are still delivered.
        let events = frames(self).map_err(Some)?;
        if eof && events.is_empty() {
            return Err(None);
        }
        Ok(events)
    }
}

impl Subscriber {
    /// Whether the subscriber hung up (subscribers never send: readable
    /// means EOF or junk).
    fn hung_up(&mut self, revents: i16, chunk: &mut [u8]) -> bool {
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
            return false;
        }
        match self.stream.read(chunk) {
            Ok(0) => true,
            Err(e) => e.kind() != ErrorKind::WouldBlock,
            _ => false,
        }
    }

    /// Queue `events` and write what the socket takes. `false` = drop the
    /// subscriber (too far behind, or a write error).
    fn send(&mut self, events: &[Vec<u8>], prefix: bool) -> bool {
        if self.sent > 0 && self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
        for ev in events {
            if prefix {
                self.out.extend_from_slice(&(ev.len() as u32).to_be_bytes());
            }
            self.out.extend_from_slice(ev);
        }
        if self.out.len() - self.sent > MAX_BACKLOG {
            warn!(
                "event bus: subscriber is {} bytes behind; disconnecting it",
                self.out.len() - self.sent
            );
            brine_metrics::count(Counter::EventSubscribersDropped, 1);
            return false;
        }
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        true
    }
}

impl Bus {
    /// The poll set: `extra` first, then the two listeners, the writers and
    /// the subscribers (POLLOUT for those with queued bytes).
    fn pollfds(&self, extra: i32) -> Vec<libc::pollfd> {
        let mut fds = vec![
            pollfd(extra, libc::POLLIN),
            pollfd(self.pull.as_raw_fd(), libc::POLLIN),
            pollfd(self.publ.as_raw_fd(), libc::POLLIN),
        ];
        fds.extend(self.writers.iter().map(|w| pollfd(w.stream.as_raw_fd(), libc::POLLIN)));
        fds.extend(self.subs.iter().map(|s| {
            let ev = if s.sent < s.out.len() {
                libc::POLLIN | libc::POLLOUT
            } else {
                libc::POLLIN
            };
            pollfd(s.stream.as_raw_fd(), ev)
        }));
        fds
    }

    /// One round after `poll`: read the writers, fan their events out to
    /// every subscriber, then accept new connections (a subscriber sees the
    /// events pushed after it connected).
    fn turn(&mut self, fds: &[libc::pollfd]) -> std::io::Result<()> {
        let nw = self.writers.len();
        let wrev: Vec<i16> = fds[3..3 + nw].iter().map(|p| p.revents).collect();
        let srev: Vec<i16> = fds[3 + nw..].iter().map(|p| p.revents).collect();

        let mut events: Vec<Vec<u8>> = Vec::new();
        let chunk = &mut self.chunk;
        let mut i = 0;
        self.writers.retain_mut(|w| {
            i += 1;
            if wrev[i - 1] == 0 {
                return true;
            }
            match w.read(chunk) {
                Ok(f) => {
                    events.extend(f);
                    true
                }
                Err(why) => {
                    if let Some(why) = why {
                        warn!("event bus: dropping writer connection: {why}");
                        brine_metrics::count(Counter::EventWritersDropped, 1);
                    }
                    false
                }
            }
        });

        let prefix = self.prefix_pub;
        let mut i = 0;
        self.subs.retain_mut(|s| {
            i += 1;
            !s.hung_up(srev.get(i - 1).copied().unwrap_or(0), chunk) && s.send(&events, prefix)
        });
        if !events.is_empty() {
            brine_metrics::count(Counter::Events, events.len() as u64);
        }

        while let Ok((stream, _)) = self.pull.accept() {
            stream.set_nonblocking(true)?;
            self.writers.push(Writer {
                stream,
                buf: Vec::new(),
                prefixed: None,
            });
        }
        while let Ok((stream, _)) = self.publ.accept() {
            stream.set_nonblocking(true)?;
            debug!("event bus: new subscriber");
            self.subs.push(Subscriber {
                stream,
                out: Vec::new(),
                sent: 0,
            });
        }
        brine_metrics::gauge(Counter::EventSubscribers, self.subs.len() as u64);
        Ok(())
    }
}

pub fn spec(cfg: Rc<MasterConfig>) -> ChildSpec {
    role(names::EVENT_PUBLISHER, move |ctx| {
        let sig = stop_signals()?;
        let mut bus = Bus {
            pull: listen(&cfg.sock_dir.join("master_event_pull.ipc"), 0o600)?,
            publ: listen(&cfg.sock_dir.join("master_event_pub.ipc"), 0o660)?,
            writers: Vec::new(),
            subs: Vec::new(),
            prefix_pub: cfg.get_bool("event_publisher_length_prefix").unwrap_or(false),
            chunk: vec![0u8; 256 * 1024],
        };
        ctx.ready();
        loop {
            let mut fds = bus.pollfds(sig.fd());
            // SAFETY: fds is a valid pollfd array for the call.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if rc < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
                return Err(std::io::Error::last_os_error().into());
            }
            sig.drain();
            if stopping() {
                return Ok(());
            }
            bus.turn(&fds)?;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(bytes: &[u8]) -> Writer {
        let (a, _b) = UnixStream::pair().unwrap();
        Writer {
            stream: a,
            buf: bytes.to_vec(),
            prefixed: None,
        }
    }

    const FRAME: [u8; 16] = [
        0x82, 0xa4, b'h', b'e', b'a', b'd', 0x80, 0xa4, b'b', b'o', b'd', b'y', 0xc4, 2, 9, 9,
    ];

    #[test]
    fn bare_frames_split_and_keep_partial_tail() {
        let mut bytes = FRAME.to_vec();
        bytes.extend_from_slice(&FRAME);
        bytes.extend_from_slice(&FRAME[..5]);
        let mut w = writer(&bytes);
        let f = frames(&mut w).unwrap();
        assert_eq!(f, vec![FRAME.to_vec(), FRAME.to_vec()]);
        assert_eq!(w.buf, FRAME[..5].to_vec());
        assert_eq!(w.prefixed, Some(false));
    }

    #[test]
    fn prefixed_frames() {
        let mut bytes = (FRAME.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&FRAME);
        bytes.extend_from_slice(&[0, 0]);
        let mut w = writer(&bytes);
        assert_eq!(frames(&mut w).unwrap(), vec![FRAME.to_vec()]);
        assert_eq!(w.buf, vec![0, 0]);
        assert_eq!(w.prefixed, Some(true));
    }

    #[test]
    fn bad_writers_are_refused() {
        // oversized prefix
        assert!(frames(&mut writer(&[0xff, 0xff, 0xff, 0xff])).is_err());
        // prefix whose payload is not one msgpack value
        assert!(frames(&mut writer(&[0, 0, 0, 2, 0x01, 0x02])).is_err());
        // a valid msgpack value that is not a map
        assert!(frames(&mut writer(&[0, 0, 0, 1, 0x01])).is_err());
        // bare stream with an invalid marker after a good frame
        let mut bytes = FRAME.to_vec();
        bytes.push(0xc1);
        assert!(frames(&mut writer(&bytes)).is_err());
    }
}
