//! What ZeroMQ does not say: MWorkerQueue's ROUTER on ret_port drops a
//! connection that sends a frame over `ZMQ_MAXMSGSIZE` (or that does not
//! speak ZMTP) without a word. A socket monitor tells the queue when a
//! connection is accepted (with its fd) and when it is gone; this module
//! keeps a duplicate of each accepted fd, so that at the disconnect it can
//! still ask the kernel about the connection: one ZeroMQ closed while the
//! peer had not (still ESTABLISHED, usually with unread bytes) was dropped
//! by ZeroMQ, and is logged with the peer's address, rate-limited.
//!
//! The duplicate costs one fd per connection in MWorkerQueue, and is closed
//! as soon as the disconnect is seen; past a quarter of the fd limit new
//! connections are not tracked, so that the duplicates can never starve
//! ZeroMQ of fds.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use log::warn;

use crate::loglimit::LogLimiter;

/// The inproc endpoint of the ROUTER's monitor.
const ENDPOINT: &str = "inproc://ret-port-monitor";

pub struct RetMonitor {
    sock: zmq::Socket,
    /// libzmq's fd → our duplicate of it and the peer's address.
    conns: HashMap<RawFd, (TcpStream, String)>,
    max_tracked: usize,
    limit: u64,
    log: LogLimiter,
}

impl RetMonitor {
    /// Monitor `router` (before it binds); `limit` is its ZMQ_MAXMSGSIZE.
    pub fn new(ctx: &zmq::Context, router: &zmq::Socket, limit: u64) -> zmq::Result<RetMonitor> {
        router.monitor(
            ENDPOINT,
            (zmq::SocketEvent::ACCEPTED as i32) | (zmq::SocketEvent::DISCONNECTED as i32),
        )?;
        let sock = ctx.socket(zmq::PAIR)?;
        // No high-water mark: a lost DISCONNECTED would leave a duplicate
        // holding the connection open.
        sock.set_rcvhwm(0)?;
        sock.set_linger(0)?;
        sock.connect(ENDPOINT)?;
        let nofile =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
        Ok(RetMonitor {
            sock,
            conns: HashMap::new(),
            max_tracked: (nofile / 4) as usize,
            limit,
            log: LogLimiter::new(10, Duration::from_secs(60)),
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
            // Frame 1: event (u16) and value (u32, here the fd), native
            // endian; frame 2: the endpoint.
            let Some(head) = frames.first().filter(|f| f.len() >= 6) else {
                continue;
            };
            let event = u16::from_ne_bytes([head[0], head[1]]);
            let fd = u32::from_ne_bytes([head[2], head[3], head[4], head[5]]) as RawFd;
            match zmq::SocketEvent::from_raw(event) {
                zmq::SocketEvent::ACCEPTED => self.accepted(fd),
                zmq::SocketEvent::DISCONNECTED => self.disconnected(fd),
                _ => {}
            }
        }
    }

    fn accepted(&mut self, fd: RawFd) {
        // A stale entry under a reused fd number (its disconnect was never
        // seen) is closed here.
        self.conns.remove(&fd);
        if self.conns.len() >= self.max_tracked {
            return;
        }
        // SAFETY: F_DUPFD_CLOEXEC on an fd number only makes a new fd; if
        // the connection is already gone (and the number free, or reused),
        // it fails or duplicates whatever has the number now.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return;
        }
        // SAFETY: `dup` is a fresh fd this process owns.
        let dup = TcpStream::from(unsafe { OwnedFd::from_raw_fd(dup) });
        let addr = peer_address(&dup).unwrap_or_else(|| "an unknown address".into());
        self.conns.insert(fd, (dup, addr));
    }

    fn disconnected(&mut self, fd: RawFd) {
        let Some((dup, addr)) = self.conns.remove(&fd) else {
            return;
        };
        if tcp_state(dup.as_raw_fd()) != Some(TCP_ESTABLISHED) {
            // The peer closed (or reset) the connection itself.
            return;
        }
        let unread = unread_bytes(dup.as_raw_fd());
        if let Some(more) = self.log.allow() {
            if more > 0 {
                warn!("{more} more connections to ret_port were dropped since the last such line (not logged)");
            }
            warn!(
                "Dropped the connection from {addr} to ret_port: a frame over request_max_size ({} bytes), \
                 or not ZeroMQ ({unread} bytes unread)",
                self.limit
            );
        }
        // Dropping `dup` closes the connection for good (a reset, if bytes
        // were left unread).
    }
}

/// `ip:port` of the peer of a TCP socket (an IPv4-mapped address as IPv4).
fn peer_address(conn: &TcpStream) -> Option<String> {
    let addr = conn.peer_addr().ok()?;
    Some(match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => format!("{v4}:{}", v6.port()),
            None => v6.to_string(),
        },
        v4 => v4.to_string(),
    })
}

/// `TCP_ESTABLISHED` of the kernel's `enum tcp_state`.
const TCP_ESTABLISHED: u8 = 1;

/// The kernel's TCP state of a socket (`TCP_ESTABLISHED`, …).
fn tcp_state(fd: RawFd) -> Option<u8> {
    // SAFETY: getsockopt writes at most `len` bytes into `info`.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        (rc == 0).then_some(info.tcpi_state)
    }
}

/// Bytes received on a socket and not read.
fn unread_bytes(fd: RawFd) -> i64 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if rc == 0 {
        i64::from(n)
    } else {
        -1
    }
}
