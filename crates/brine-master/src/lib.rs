//! Brine's `salt-master`: the ProcessManager and the roles it forks.
//!
//! See `docs/ARCHITECTURE.md` for the process tree, and which process owns
//! which socket and file.

pub mod alarm;
pub mod channel;
pub mod cli;
pub mod loglimit;
pub mod manager;
pub mod metrics;
pub mod offload;
pub mod pki;
pub mod roles;
pub mod runjobs;
pub mod services;
pub mod setup;
pub mod status;
pub mod zmqutil;

/// Names of the processes, as `ps` shows them after the command line.
pub mod names {
    pub const PROCESS_MANAGER: &str = "ProcessManager";
    pub const LOGGING: &str = "MultiprocessingLoggingQueue";
    pub const PUBLISHER: &str = "ZeroMQPubServerChannel";
    pub const EVENT_PUBLISHER: &str = "EventPublisher";
    pub const MAINTENANCE: &str = "Maintenance";
    pub const REACTOR: &str = "Reactor";
    pub const EVENT_RETURN: &str = "EventReturn";
    pub const REQ_SERVER: &str = "ReqServer_ProcessManager";
    pub const WORKER_QUEUE: &str = "MWorkerQueue";
    pub const WORKER_PREFIX: &str = "MWorker-";
    /// The longest name, for sizing the title area.
    pub const LONGEST: usize = LOGGING.len();
}
