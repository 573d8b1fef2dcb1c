//! ZeroMQ helpers shared by the roles.

use std::time::{Duration, Instant};

/// `tcp://host:port`, bracketing IPv6 literals.
pub fn tcp_endpoint(interface: &str, port: u16) -> String {
    if interface.contains(':') && !interface.starts_with('[') {
        format!("tcp://[{interface}]:{port}")
    } else {
        format!("tcp://{interface}:{port}")
    }
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
