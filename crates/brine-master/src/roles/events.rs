//! EventPublisher: the master event bus. Owns two unix stream sockets in
//! `sock_dir`: `master_event_pull.ipc` (mode 0600), where any process
//! pushes events, and `master_event_pub.ipc` (mode 0660), where CLIs, the
//! Reactor and salt-api subscribe; every subscriber gets every event.
//!
//! Framing (spec §6.2): each event is a msgpack map `{"head", "body"}`.
//! Writers send it bare (Salt ≤ 3006.25, early 3007) or after a big-endian
//! u32 length (3006.26+, 3007.17): detected per connection from the first
//! byte (0x82 = a bare map of two). Subscribers cannot be asked, so the pub
//! side is bare unless `event_publisher_length_prefix: True` (for Python
//! 3006.26+ readers).

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
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &w.buf[pos..];
        if rest.is_empty() {
            break;
        }
        let prefixed = *w.prefixed.get_or_insert(rest[0] != 0x82);
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
    w.buf.drain(..pos);
    Ok(out)
}

pub fn spec(cfg: Rc<MasterConfig>) -> ChildSpec {
    role(names::EVENT_PUBLISHER, move |ctx| {
        let sig = stop_signals()?;
        let prefix_pub = cfg
            .get("event_publisher_length_prefix")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let pull = listen(&cfg.sock_dir.join("master_event_pull.ipc"), 0o600)?;
        let publ = listen(&cfg.sock_dir.join("master_event_pub.ipc"), 0o660)?;
        ctx.ready();
        let mut writers: Vec<Writer> = Vec::new();
        let mut subs: Vec<Subscriber> = Vec::new();
        let mut chunk = vec![0u8; 256 * 1024];
        loop {
            let mut fds = vec![
                libc::pollfd {
                    fd: sig.fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pull.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: publ.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            for w in &writers {
                fds.push(libc::pollfd {
                    fd: w.stream.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            for s in &subs {
                let ev = if s.sent < s.out.len() {
                    libc::POLLIN | libc::POLLOUT
                } else {
                    libc::POLLIN
                };
                fds.push(libc::pollfd {
                    fd: s.stream.as_raw_fd(),
                    events: ev,
                    revents: 0,
                });
            }
            // SAFETY: fds is a valid pollfd array for the call.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if rc < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
                return Err(std::io::Error::last_os_error().into());
            }
            sig.drain();
            if stopping() {
                return Ok(());
            }
            let nw = writers.len();
            let wrev: Vec<i16> = fds[3..3 + nw].iter().map(|p| p.revents).collect();
            let srev: Vec<i16> = fds[3 + nw..].iter().map(|p| p.revents).collect();

            // Read writers; collect complete frames.
            let mut events: Vec<Vec<u8>> = Vec::new();
            let mut dead_w = vec![false; nw];
            for (i, w) in writers.iter_mut().enumerate() {
                if wrev[i] == 0 {
                    continue;
                }
                loop {
                    match w.stream.read(&mut chunk) {
                        Ok(0) => {
                            dead_w[i] = true;
                            break;
                        }
                        Ok(n) => w.buf.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => {
                            dead_w[i] = true;
                            break;
                        }
                    }
                }
                match frames(w) {
                    Ok(f) => events.extend(f),
                    Err(e) => {
                        warn!("event bus: dropping writer connection: {e}");
                        dead_w[i] = true;
                    }
                }
            }
            let mut i = 0;
            writers.retain(|_| {
                i += 1;
                !dead_w[i - 1]
            });

            // Subscribers: detect hang-ups, queue events, flush.
            let mut dead_s = vec![false; subs.len()];
            for (i, s) in subs.iter_mut().enumerate() {
                if srev
                    .get(i)
                    .is_some_and(|r| r & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
                {
                    // Subscribers never send; readable means EOF or junk.
                    match s.stream.read(&mut chunk) {
                        Ok(0) => dead_s[i] = true,
                        Err(e) if e.kind() != ErrorKind::WouldBlock => dead_s[i] = true,
                        _ => {}
                    }
                }
                if dead_s[i] {
                    continue;
                }
                if s.sent > 0 && s.sent == s.out.len() {
                    s.out.clear();
                    s.sent = 0;
                }
                for ev in &events {
                    if prefix_pub {
                        s.out.extend_from_slice(&(ev.len() as u32).to_be_bytes());
                    }
                    s.out.extend_from_slice(ev);
                }
                if s.out.len() - s.sent > MAX_BACKLOG {
                    warn!(
                        "event bus: subscriber is {} bytes behind; disconnecting it",
                        s.out.len() - s.sent
                    );
                    dead_s[i] = true;
                    continue;
                }
                while s.sent < s.out.len() {
                    match s.stream.write(&s.out[s.sent..]) {
                        Ok(n) => s.sent += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => {
                            dead_s[i] = true;
                            break;
                        }
                    }
                }
            }
            let mut i = 0;
            subs.retain(|_| {
                i += 1;
                !dead_s[i - 1]
            });

            // New connections (after the fan-out: a subscriber sees events
            // pushed after it connected).
            while let Ok((stream, _)) = pull.accept() {
                stream.set_nonblocking(true)?;
                writers.push(Writer {
                    stream,
                    buf: Vec::new(),
                    prefixed: None,
                });
            }
            while let Ok((stream, _)) = publ.accept() {
                stream.set_nonblocking(true)?;
                debug!("event bus: new subscriber");
                subs.push(Subscriber {
                    stream,
                    out: Vec::new(),
                    sent: 0,
                });
            }
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
