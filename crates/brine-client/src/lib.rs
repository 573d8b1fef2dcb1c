//! The client side of a Salt master, as Salt's `LocalClient`,
//! `RunnerClient` and `WheelClient` speak it: clear requests on the request
//! port (`interface:ret_port`, 4506) authenticated by the local user's key,
//! and the master event bus (`sock_dir/master_event_pub.ipc`) where job
//! returns come back.
//!
//! - [`addr`]: where a client connects (Salt's `client_config`: the bind-all
//!   `interface` mapped to loopback, IPv6 literals in brackets).
//! - [`UserKey`]: the key the master writes for local users in
//!   `cachedir/.<user>_key`.
//! - [`ReqChannel`]: one clear request, one reply, with a timeout.
//! - [`EventBus`]: a subscriber on the master event bus.
//! - [`LocalClient`]: publish a job, and wait for its returns
//!   ([`JobReturns`]), or only take its jid (`--async`); runner and wheel
//!   calls.
//!
//! Nothing here creates a ZeroMQ context before the first request, so a
//! client may be built in a process that forks afterwards.

pub mod addr;
mod events;
mod key;
mod local;
pub mod low;
mod req;
pub mod token;

use std::path::PathBuf;
use std::time::Duration;

use brine_proto::Value;

pub use addr::MasterAddr;
pub use events::{event_sender, BusAddr, Event, EventBus, RawEvent};
pub use key::UserKey;
pub use local::{Job, JobReturns, LocalClient, Publish, Return, Started};
pub use req::ReqChannel;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the user key {} ({source}): is the master running, and are you root or {master_user}?", path.display())]
    UserKey {
        path: PathBuf,
        master_user: String,
        source: std::io::Error,
    },
    #[error("ZeroMQ error talking to {url}: {source}")]
    Zmq { url: String, source: zmq::Error },
    #[error("the master at {url} did not answer within {} s", timeout.as_secs_f64())]
    Timeout { url: String, timeout: Duration },
    #[error("malformed reply from the master: {0}")]
    Malformed(String),
    /// The master answered with Salt's `{"error": {"name", "message"}}`.
    #[error("{name}: {message}")]
    Refused { name: String, message: String },
    /// A reply of a shape the call does not expect.
    #[error("unexpected reply from the master: {}", brine_py::to_str(.0))]
    Unexpected(Value),
    #[error("cannot connect to the master event bus {}: {source}", path.display())]
    BusConnect { path: PathBuf, source: std::io::Error },
    #[error("reading the master event bus: {0}")]
    BusRead(std::io::Error),
    #[error("the master closed the event bus")]
    BusClosed,
    #[error("the master event bus sent {0}")]
    BusGarbage(String),
    #[error("this client has no event bus to wait for returns on")]
    NoEventBus,
}

/// Salt's `salt.utils.error.raise_error` input: a reply's
/// `{"error": {"name", "message"}}` as [`ClientError::Refused`].
pub(crate) fn refused(reply: &Value) -> Option<ClientError> {
    let err = reply.get("error")?;
    let text = |k: &str| err.get(k).and_then(Value::as_str).map(String::from);
    Some(ClientError::Refused {
        name: text("name").unwrap_or_else(|| "SaltMasterError".into()),
        message: text("message").unwrap_or_else(|| brine_py::to_str(err)),
    })
}
