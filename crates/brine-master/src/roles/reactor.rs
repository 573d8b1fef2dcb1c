//! Reactor: subscribes to the master event bus (`master_event_pub.ipc`) and
//! follows every event, reconnecting when the EventPublisher restarts.
//! Matching events against the `reactor:` configuration and running the
//! reaction SLS comes with a later issue.

use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use brine_config::MasterConfig;
use brine_proc::supervisor::{poll_fds, ChildSpec};
use log::{debug, info};

use super::{role, stop_signals, stopping, RoleError};
use crate::names;

/// How long the Reactor waits for the event bus at start before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub fn spec(cfg: Rc<MasterConfig>) -> ChildSpec {
    role(names::REACTOR, move |ctx| {
        let sig = stop_signals()?;
        let path = cfg.sock_dir.join("master_event_pub.ipc");
        let mut ready = false;
        let mut received: u64 = 0;
        let mut buf = vec![0u8; 256 * 1024];
        let started = Instant::now();
        loop {
            let mut stream = match UnixStream::connect(&path) {
                Ok(s) => s,
                Err(e) => {
                    if !ready && started.elapsed() > CONNECT_TIMEOUT {
                        return Err(RoleError::Failed(format!(
                            "cannot subscribe to the event bus at {}: {e}",
                            path.display()
                        )));
                    }
                    poll_fds(&[sig.fd()], Some(Duration::from_millis(20)))?;
                    sig.drain();
                    if stopping() {
                        return Ok(());
                    }
                    continue;
                }
            };
            if !ready {
                ctx.ready();
                ready = true;
            } else {
                info!("re-subscribed to the event bus");
            }
            stream.set_nonblocking(true)?;
            'conn: loop {
                poll_fds(&[sig.fd(), stream.as_raw_fd()], None)?;
                sig.drain();
                if stopping() {
                    return Ok(());
                }
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) => break 'conn,
                        Ok(n) => {
                            received += n as u64;
                            debug!("event bus: {n} bytes ({received} in all)");
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => break 'conn,
                    }
                }
            }
        }
    })
}
