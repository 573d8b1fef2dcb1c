//! ZeroMQ helpers shared by the roles.

use std::time::{Duration, Instant};

use brine_config::MasterConfig;

/// The listen queue of 4505 and 4506: `zmq_backlog` (Salt's default is
/// 1000), but no less than the kernel's limit (`net.core.somaxconn`, 4096
/// on current kernels), which caps it anyway. When thousands of minions
/// connect at once (a master restart), connections past a full queue are
/// dropped by the kernel and each minion waits a second or more to try
/// again, which costs it its sign-in's `auth_timeout`; a longer queue
/// costs nothing while it is empty.
pub fn listen_backlog(cfg: &MasterConfig) -> i32 {
    let configured = cfg.get_i64("zmq_backlog").unwrap_or(1000);
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    i32::try_from(configured.max(somaxconn)).unwrap_or(i32::MAX)
}

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
    /// 4505 and 4506 alike. ReqServer's ROUTER has one request in flight
    /// per minion (a sign-in of about 700 bytes, returns of a few hundred,
    /// read past the batch straight into their messages) and one reply
    /// back; minions send the publisher only subscriptions, and one write
    /// holds a small publication whole.
    pub const MINIONS: Self = Self {
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

    fn backlog_with(overrides: serde_json::Value) -> i32 {
        let serde_json::Value::Object(o) = overrides else {
            unreachable!()
        };
        listen_backlog(&MasterConfig::from_overrides(std::path::Path::new("/etc/salt"), o).unwrap())
    }

    #[test]
    fn the_listen_queue_is_at_least_the_kernels() {
        let somaxconn: i32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Salt's default (1000) is raised to the kernel's limit.
        assert_eq!(backlog_with(serde_json::json!({})), somaxconn.max(1000));
        assert_eq!(backlog_with(serde_json::json!({"zmq_backlog": 10})), somaxconn.max(10));
        // More than the kernel's is passed on (the kernel caps it).
        assert_eq!(backlog_with(serde_json::json!({"zmq_backlog": 100_000})), 100_000);
    }

    /// The sizes reach libzmq, which needs its draft API built in
    /// (vendor/zeromq-src); an upstream build refuses both options.
    #[test]
    fn connection_buffers_are_set() {
        let ctx = zmq::Context::new();
        let mut sock = ctx.socket(zmq::ROUTER).unwrap();
        assert_eq!(get_int(&mut sock, ZMQ_IN_BATCH_SIZE), 8192);
        size_connection_buffers(&mut sock, ConnectionBuffers::MINIONS).unwrap();
        assert_eq!(
            get_int(&mut sock, ZMQ_IN_BATCH_SIZE),
            ConnectionBuffers::MINIONS.read_batch
        );
        assert_eq!(
            get_int(&mut sock, ZMQ_OUT_BATCH_SIZE),
            ConnectionBuffers::MINIONS.write_batch
        );
    }
}
