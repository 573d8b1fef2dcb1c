//! The master's processes. Each module exposes `spec(...)`, the
//! [`ChildSpec`] the ProcessManager (or ReqServer_ProcessManager) forks.

pub mod eventreturn;
pub mod events;
pub mod logging;
pub mod maintenance;
pub mod portmonitor;
pub mod publisher;
pub mod pyloader;
pub mod reactor;
pub mod reqserver;

use brine_proc::supervisor::{ChildContext, ChildSpec};
use brine_proc::EXIT_FATAL;
use log::error;
use nix::sys::signal::Signal;

/// How a role ends.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// Cannot boot, and a respawn would not help (port in use, bad path).
    #[error("{0}")]
    Fatal(String),
    /// Failed at run time; the supervisor respawns it.
    #[error("{0}")]
    Failed(String),
}

impl From<zmq::Error> for RoleError {
    fn from(e: zmq::Error) -> Self {
        RoleError::Failed(format!("zmq: {e}"))
    }
}

impl From<std::io::Error> for RoleError {
    fn from(e: std::io::Error) -> Self {
        RoleError::Failed(e.to_string())
    }
}

/// A child spec whose body returns `Result`: `Ok` exits 0, `Fatal` reports
/// to the supervisor and exits [`EXIT_FATAL`], `Failed` exits 1.
pub fn role(name: impl Into<String>, body: impl Fn(&ChildContext) -> Result<(), RoleError> + 'static) -> ChildSpec {
    ChildSpec::new(name, move |ctx: &ChildContext| {
        brine_log::set_process_name(&ctx.name);
        match body(ctx) {
            Ok(()) => 0,
            Err(RoleError::Fatal(msg)) => {
                error!("{}: {msg}", ctx.name);
                ctx.fatal(&msg);
                EXIT_FATAL
            }
            Err(RoleError::Failed(msg)) => {
                error!("{}: {msg}", ctx.name);
                1
            }
        }
    })
}

/// The signals a role's loop handles: SIGTERM stops it.
pub fn stop_signals() -> std::io::Result<brine_proc::signals::SignalPipe> {
    brine_proc::signals::SignalPipe::install(&[Signal::SIGTERM])
}

/// Block until one of `socks` is readable or a signal arrives. `None` means
/// SIGTERM arrived and the role should return; otherwise which sockets are
/// readable.
pub fn wait_readable(
    socks: &[&zmq::Socket],
    sig: &brine_proc::signals::SignalPipe,
) -> Result<Option<Vec<bool>>, RoleError> {
    wait_readable_with(socks, &[], sig, None)
}

/// [`wait_readable`], also woken when one of `fds` is readable (not
/// reported: the caller looks at them all).
pub fn wait_readable_with(
    socks: &[&zmq::Socket],
    fds: &[std::os::fd::RawFd],
    sig: &brine_proc::signals::SignalPipe,
    timeout: Option<std::time::Duration>,
) -> Result<Option<Vec<bool>>, RoleError> {
    let mut items: Vec<zmq::PollItem> = socks.iter().map(|s| s.as_poll_item(zmq::POLLIN)).collect();
    items.push(zmq::PollItem::from_fd(sig.fd(), zmq::POLLIN));
    items.extend(fds.iter().map(|fd| zmq::PollItem::from_fd(*fd, zmq::POLLIN)));
    let ms = timeout.map_or(-1, |t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1));
    match zmq::poll(&mut items, ms) {
        Ok(_) | Err(zmq::Error::EINTR) => {}
        Err(e) => return Err(e.into()),
    }
    sig.drain();
    if stopping() {
        return Ok(None);
    }
    Ok(Some(items[..socks.len()].iter().map(|i| i.is_readable()).collect()))
}

/// Whether SIGTERM has arrived.
pub fn stopping() -> bool {
    brine_proc::signals::take(Signal::SIGTERM)
}

/// How long a role that follows the event bus waits for it at start.
const BUS_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Subscribe to the master event bus, trying again every 20 ms while the
/// EventPublisher (re)starts. Before the role was ever `ready`, giving up
/// after 10 s fails the role (the ProcessManager respawns it); after, it
/// tries until it gets there. `None`: SIGTERM came meanwhile.
pub fn subscribe_bus(
    addr: &brine_client::BusAddr,
    sig: &brine_proc::signals::SignalPipe,
    started: std::time::Instant,
    ready: bool,
) -> Result<Option<brine_client::EventBus>, RoleError> {
    loop {
        match brine_client::EventBus::subscribe(addr) {
            Ok(bus) => return Ok(Some(bus)),
            Err(e) => {
                if !ready && started.elapsed() > BUS_CONNECT_TIMEOUT {
                    return Err(RoleError::Failed(format!("cannot subscribe to the event bus: {e}")));
                }
                brine_proc::supervisor::poll_fds(&[sig.fd()], Some(std::time::Duration::from_millis(20)))?;
                sig.drain();
                if stopping() {
                    return Ok(None);
                }
            }
        }
    }
}
