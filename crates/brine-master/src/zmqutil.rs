//! ZeroMQ helpers shared by the roles.

use std::time::{Duration, Instant};

use brine_config::MasterConfig;

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
