//! ZeroMQ helpers shared by the roles.

use std::time::{Duration, Instant};

use brine_config::MasterConfig;

/// Sizes of the buffers libzmq gives each connection of a socket that
/// minions connect to (4505, 4506). libzmq's defaults (8 KiB batches for
/// reading and for writing) suit a few busy peers; a master has thousands
/// of mostly idle ones, and these buffers were most of its memory.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionBuffers {
    /// `ZMQ_IN_BATCH_SIZE`: the most one read takes from a connection into
    /// its buffer. A message larger than this is read straight into its own
    /// allocation, so it costs no extra copy.
    pub read_batch: i32,
    /// `ZMQ_OUT_BATCH_SIZE`: how much of several messages one write gathers.
    pub write_batch: i32,
}

impl ConnectionBuffers {
    /// ReqServer's ROUTER: one request in flight per minion (a sign-in of
    /// about 700 bytes, returns of a few hundred, read past the batch
    /// straight into their messages), one reply back.
    pub const REQUESTS: Self = Self {
        read_batch: 256,
        write_batch: 512,
    };
    /// The publisher: minions send only subscriptions; a publication goes
    /// out to every connection, and one write holds a small one whole.
    pub const PUBLISH: Self = Self {
        read_batch: 256,
        write_batch: 512,
    };
}

// libzmq's draft socket options (zmq_draft.h), built in by
// vendor/zeromq-src; the zmq crate has no setters for them.
const ZMQ_IN_BATCH_SIZE: i32 = 101;
const ZMQ_OUT_BATCH_SIZE: i32 = 102;

/// Applies `bufs` to a socket before it binds (libzmq copies a socket's
/// options into each connection as it is made).
pub fn size_connection_buffers(sock: &mut zmq::Socket, bufs: ConnectionBuffers) -> Result<(), String> {
    for (name, opt, value) in [
        ("ZMQ_IN_BATCH_SIZE", ZMQ_IN_BATCH_SIZE, bufs.read_batch),
        ("ZMQ_OUT_BATCH_SIZE", ZMQ_OUT_BATCH_SIZE, bufs.write_batch),
    ] {
        // SAFETY: the socket pointer is valid for the life of `sock`, and
        // the value is an int, as libzmq reads both options.
        let rc = unsafe {
            zmq_sys::zmq_setsockopt(
                sock.as_mut_ptr(),
                opt,
                (&value as *const i32).cast(),
                std::mem::size_of::<i32>(),
            )
        };
        if rc != 0 {
            // SAFETY: reads the calling thread's errno.
            let err = zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() });
            return Err(format!("cannot set {name} to {value}: {err}"));
        }
    }
    Ok(())
}

/// `interface:port` as the master binds it: `tcp://` with an IPv6 literal
/// in brackets, on an IPv6 socket when the `ipv6` option or the address
/// asks for one (an IPv4-only socket cannot bind `::1`).
pub fn bind_tcp(sock: &zmq::Socket, cfg: &MasterConfig, port: u16, retry_for: Duration) -> Result<(), String> {
    if brine_client::addr::wants_ipv6(&cfg.interface, cfg.ipv6) {
        sock.set_ipv6(true)
            .map_err(|e| format!("cannot make an IPv6 socket: {e}"))?;
    }
    bind(sock, &brine_client::addr::tcp_url(&cfg.interface, port), retry_for)
}

/// Bind, retrying `EADDRINUSE` for up to `retry_for` (a replacement process
/// may start while its dying predecessor still holds the port).
pub fn bind(sock: &zmq::Socket, endpoint: &str, retry_for: Duration) -> Result<(), String> {
    let deadline = Instant::now() + retry_for;
    loop {
        match sock.bind(endpoint) {
            Ok(()) => return Ok(()),
            Err(zmq::Error::EADDRINUSE) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot bind {endpoint}: {e}")),
        }
    }
}

/// How long a role retries a busy port: not at all on first start (a port
/// held by another program is a fatal configuration error), 3 s on respawn.
pub fn bind_retry(incarnation: u32) -> Duration {
    if incarnation == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get_int(sock: &mut zmq::Socket, opt: i32) -> i32 {
        let mut value: i32 = -1;
        let mut len = std::mem::size_of::<i32>();
        // SAFETY: value and len are valid for writes of an int, as libzmq
        // reports both options.
        let rc = unsafe { zmq_sys::zmq_getsockopt(sock.as_mut_ptr(), opt, (&mut value as *mut i32).cast(), &mut len) };
        assert_eq!(rc, 0, "getsockopt {opt}");
        value
    }

    /// The sizes reach libzmq, which needs its draft API built in
    /// (vendor/zeromq-src); an upstream build refuses both options.
    #[test]
    fn connection_buffers_are_set() {
        let ctx = zmq::Context::new();
        let mut sock = ctx.socket(zmq::ROUTER).unwrap();
        assert_eq!(get_int(&mut sock, ZMQ_IN_BATCH_SIZE), 8192);
        size_connection_buffers(&mut sock, ConnectionBuffers::REQUESTS).unwrap();
        assert_eq!(
            get_int(&mut sock, ZMQ_IN_BATCH_SIZE),
            ConnectionBuffers::REQUESTS.read_batch
        );
        assert_eq!(
            get_int(&mut sock, ZMQ_OUT_BATCH_SIZE),
            ConnectionBuffers::REQUESTS.write_batch
        );
    }
}
