//! What ZeroMQ does not say about the minions' ports.
//!
//! ZeroMQ drops a connection that sends a frame over `ZMQ_MAXMSGSIZE`, or
//! bytes that are not ZMTP framing, without a word, and a listener that
//! cannot accept (out of file descriptors) retries silently. A socket
//! monitor (version 2, which carries the peer's address with each event)
//! hears of both: Brine's libzmq reports an undecodable peer as a protocol
//! failure (`vendor/zeromq-src/README.brine.md`), and the listener reports
//! a failed accept with its errno. Each is logged with the port and the
//! peer, rate-limited. No per-connection state is kept: the monitor only
//! hears of failures, so it costs nothing per connected minion.

use std::time::Duration;

use log::{error, warn};

use crate::loglimit::{held_note, LogLimiter};

/// libzmq's monitor events (zmq.h).
const EVENT_ACCEPT_FAILED: u64 = 0x0040;
const EVENT_HANDSHAKE_FAILED_PROTOCOL: u64 = 0x2000;
const EVENT_HANDSHAKE_FAILED_AUTH: u64 = 0x4000;
/// Brine's libzmq: a frame over ZMQ_MAXMSGSIZE, or bytes not ZMTP.
const PROTOCOL_ERROR_BRINE_MSGSIZE: u64 = 0x1B00_0001;
const PROTOCOL_ERROR_BRINE_UNDECODABLE: u64 = 0x1B00_0002;

extern "C" {
    // Draft API, built into Brine's libzmq; not in zmq-sys's bindings.
    fn zmq_socket_monitor_versioned(
        s: *mut std::ffi::c_void,
        addr: *const std::ffi::c_char,
        events: u64,
        event_version: std::ffi::c_int,
        type_: std::ffi::c_int,
    ) -> std::ffi::c_int;
}

pub struct PortMonitor {
    sock: zmq::Socket,
    /// The port's config name, for the log: `ret_port`, `publish_port`.
    port: &'static str,
    /// What ZMQ_MAXMSGSIZE is called for this port, and its value.
    limit: Option<(&'static str, u64)>,
    dropped: LogLimiter,
    refused: LogLimiter,
}

impl PortMonitor {
    /// Monitor `socket` (before it binds). `limit`: the name and value of
    /// its ZMQ_MAXMSGSIZE, if it has one.
    pub fn new(
        ctx: &zmq::Context,
        socket: &mut zmq::Socket,
        port: &'static str,
        limit: Option<(&'static str, u64)>,
    ) -> zmq::Result<PortMonitor> {
        let endpoint = format!("inproc://{port}-monitor");
        let c_endpoint = std::ffi::CString::new(endpoint.clone()).expect("no NUL in the endpoint");
        let events = EVENT_ACCEPT_FAILED | EVENT_HANDSHAKE_FAILED_PROTOCOL | EVENT_HANDSHAKE_FAILED_AUTH;
        // SAFETY: the socket pointer is live for the call; the endpoint is
        // a NUL-terminated string.
        let rc = unsafe {
            zmq_socket_monitor_versioned(socket.as_mut_ptr(), c_endpoint.as_ptr(), events, 2, zmq::PAIR as i32)
        };
        if rc != 0 {
            // SAFETY: reads the calling thread's libzmq errno.
            return Err(zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() }));
        }
        let sock = ctx.socket(zmq::PAIR)?;
        // No high-water mark: libzmq's I/O thread sends the events without
        // DONTWAIT, and would block on a full pipe.
        sock.set_rcvhwm(0)?;
        sock.set_linger(0)?;
        sock.connect(&endpoint)?;
        Ok(PortMonitor {
            sock,
            port,
            limit,
            dropped: LogLimiter::new(10, Duration::from_secs(60)),
            refused: LogLimiter::new(3, Duration::from_secs(60)),
        })
    }

    pub fn socket(&self) -> &zmq::Socket {
        &self.sock
    }

    /// Handle every event waiting on the monitor socket.
    pub fn turn(&mut self) -> zmq::Result<()> {
        loop {
            let frames = match self.sock.recv_multipart(zmq::DONTWAIT) {
                Ok(f) => f,
                Err(zmq::Error::EAGAIN) => return Ok(()),
                Err(zmq::Error::EINTR) => continue,
                Err(e) => return Err(e),
            };
            if let Some(event) = Event::parse(&frames) {
                self.log(&event);
            }
        }
    }

    fn log(&mut self, event: &Event) {
        match event.kind {
            EVENT_ACCEPT_FAILED => {
                // A peer that gave up before its accept is routine; running
                // out of descriptors or memory is what an operator must see.
                let errno = event.value as i32;
                if !matches!(errno, libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) {
                    return;
                }
                if let Some(more) = self.refused.allow() {
                    let (open, limit) = descriptors();
                    error!(
                        "{} cannot accept connections: {} ({open} descriptors open, limit {limit}); \
                         minions cannot connect until some close. Raise max_open_files and the \
                         service's LimitNOFILE{}",
                        self.port,
                        std::io::Error::from_raw_os_error(errno),
                        held_note(more),
                    );
                }
            }
            _ => {
                let why = match (event.kind, event.value) {
                    (EVENT_HANDSHAKE_FAILED_AUTH, _) => "its ZeroMQ handshake was refused".to_string(),
                    (_, PROTOCOL_ERROR_BRINE_MSGSIZE) => match self.limit {
                        Some((name, value)) => format!("a frame over {name} ({value} bytes)"),
                        None => "a frame over the size limit".to_string(),
                    },
                    (_, PROTOCOL_ERROR_BRINE_UNDECODABLE) => "not ZeroMQ (its bytes are not ZMTP frames)".to_string(),
                    (_, code) => format!("a ZeroMQ handshake error ({})", protocol_error_name(code)),
                };
                if let Some(more) = self.dropped.allow() {
                    warn!(
                        "Dropped the connection from {} to {}: {why}{}",
                        event.peer,
                        self.port,
                        held_note(more)
                    );
                }
            }
        }
    }
}

/// One event of a version-2 monitor: event, value count, values (each a
/// native-endian u64 frame), local endpoint, remote endpoint.
#[derive(Debug, PartialEq)]
struct Event {
    kind: u64,
    value: u64,
    /// `ip:port` of the peer, or "an unknown address".
    peer: String,
}

impl Event {
    fn parse(frames: &[Vec<u8>]) -> Option<Event> {
        let u64_of = |f: &Vec<u8>| Some(u64::from_ne_bytes(f.get(..8)?.try_into().ok()?));
        let kind = u64_of(frames.first()?)?;
        let count = usize::try_from(u64_of(frames.get(1)?)?).ok()?;
        let value = if count > 0 { u64_of(frames.get(2)?)? } else { 0 };
        let remote = frames.get(2usize.checked_add(count)?.checked_add(1)?);
        let peer = remote
            .and_then(|r| peer_address(&String::from_utf8_lossy(r)))
            .unwrap_or_else(|| "an unknown address".to_string());
        Some(Event { kind, value, peer })
    }
}

/// `ip:port` from libzmq's `tcp://ip:port` or `tcp://[ipv6]:port`, an
/// IPv4-mapped IPv6 address written as IPv4; None for anything else.
fn peer_address(endpoint: &str) -> Option<String> {
    let addr: std::net::SocketAddr = endpoint.strip_prefix("tcp://")?.parse().ok()?;
    Some(match addr {
        std::net::SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => format!("{v4}:{}", v6.port()),
            None => v6.to_string(),
        },
        v4 => v4.to_string(),
    })
}

/// The names zmq.h gives the protocol errors a handshake can fail with.
fn protocol_error_name(code: u64) -> String {
    let name = match code {
        0x1000_0000 => "ZMTP unspecified",
        0x1000_0001 => "unexpected command",
        0x1000_0002 => "invalid sequence",
        0x1000_0003 => "key exchange",
        0x1000_0011..=0x1000_0018 => "malformed command",
        0x1000_0019 => "invalid metadata",
        0x1100_0001 => "cryptographic",
        0x1100_0002 => "mechanism mismatch",
        0x2000_0000..=0x2000_0004 => "ZAP",
        _ => return format!("{code:#x}"),
    };
    format!("{name}, {code:#x}")
}

/// Open descriptors of this process and its soft limit.
fn descriptors() -> (String, String) {
    let open = std::fs::read_dir("/proc/self/fd").map_or("?".to_string(), |d| d.count().to_string());
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or("?".to_string(), |(soft, _)| soft.to_string());
    (open, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(kind: u64, values: &[u64], remote: &str) -> Vec<Vec<u8>> {
        let mut f = vec![
            kind.to_ne_bytes().to_vec(),
            (values.len() as u64).to_ne_bytes().to_vec(),
        ];
        f.extend(values.iter().map(|v| v.to_ne_bytes().to_vec()));
        f.push(b"tcp://0.0.0.0:4506".to_vec());
        f.push(remote.as_bytes().to_vec());
        f
    }

    #[test]
    fn a_version_2_event_names_the_peer() {
        let e = Event::parse(&frames(
            0x2000,
            &[PROTOCOL_ERROR_BRINE_MSGSIZE],
            "tcp://[::ffff:10.1.2.3]:5123",
        ))
        .unwrap();
        assert_eq!(e.kind, 0x2000);
        assert_eq!(e.value, PROTOCOL_ERROR_BRINE_MSGSIZE);
        assert_eq!(e.peer, "10.1.2.3:5123");
        let e = Event::parse(&frames(0x0040, &[24], "")).unwrap();
        assert_eq!((e.value, e.peer.as_str()), (24, "an unknown address"));
        let e = Event::parse(&frames(0x2000, &[1], "tcp://[2001:db8::1]:99")).unwrap();
        assert_eq!(e.peer, "[2001:db8::1]:99");
    }

    #[test]
    fn a_short_or_odd_event_is_skipped_or_unnamed() {
        assert_eq!(Event::parse(&[]), None);
        assert_eq!(Event::parse(&[vec![1, 2]]), None);
        let huge = vec![0x2000u64.to_ne_bytes().to_vec(), u64::MAX.to_ne_bytes().to_vec()];
        assert_eq!(Event::parse(&huge), None);
        let no_remote = vec![0x2000u64.to_ne_bytes().to_vec(), 0u64.to_ne_bytes().to_vec()];
        assert_eq!(Event::parse(&no_remote).unwrap().peer, "an unknown address");
        let garbage = frames(0x2000, &[1], "tcp://not an address\n");
        assert_eq!(Event::parse(&garbage).unwrap().peer, "an unknown address");
    }
}
