//! systemd's `sd_notify` protocol: datagrams to `$NOTIFY_SOCKET`.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
    /// Removes the variable so that children do not inherit it.
    pub fn from_env() -> io::Result<Option<Notifier>> {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        std::env::remove_var("NOTIFY_SOCKET");
        let path = path.to_string_lossy().into_owned();
        let addr = if let Some(name) = path.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes())?
        } else {
            SocketAddr::from_pathname(&path)?
        };
        let sock = UnixDatagram::unbound()?;
        Ok(Some(Notifier { sock, addr }))
    }

    /// Send one state string, e.g. `READY=1\nSTATUS=serving`.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        self.sock.send_to_addr(state.as_bytes(), &self.addr)?;
        Ok(())
    }
}

/// Half of `$WATCHDOG_USEC` when the watchdog is enabled for this process
/// (`$WATCHDOG_PID` absent or ours). Removes the variables.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    let pid_ok = match std::env::var("WATCHDOG_PID") {
        Ok(p) => p.trim() == std::process::id().to_string(),
        Err(_) => true,
    };
    std::env::remove_var("WATCHDOG_USEC");
    std::env::remove_var("WATCHDOG_PID");
    let usec: u64 = usec.trim().parse().ok()?;
    if !pid_ok || usec == 0 {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test owns the environment variables (tests run in threads).
    #[test]
    fn notify_and_watchdog_from_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        let n = Notifier::from_env().unwrap().expect("notifier");
        assert!(std::env::var_os("NOTIFY_SOCKET").is_none(), "not inherited by children");
        n.notify("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");

        std::env::set_var("WATCHDOG_USEC", "3000000");
        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
        assert_eq!(watchdog_interval(), Some(Duration::from_millis(1500)));
        std::env::set_var("WATCHDOG_USEC", "3000000");
        std::env::set_var("WATCHDOG_PID", "1");
        assert_eq!(watchdog_interval(), None, "watchdog meant for another pid");
        assert_eq!(watchdog_interval(), None, "variables consumed");
    }
}
