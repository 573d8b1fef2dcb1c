//! Brine's `salt-master`: the ProcessManager and the roles it forks.
//!
//! See `docs/ARCHITECTURE.md` for the process tree, and which process owns
//! which socket and file.

pub mod alarm;
pub mod backends;
pub mod channel;
pub mod cli;
pub mod loglimit;
pub mod low;
pub mod manager;
pub mod pki;
pub mod roles;
pub mod runners;
pub mod services;
pub mod setup;
pub mod zmqutil;

/// The master's writer to its event bus: each event's data trimmed at
/// `max_event_size` (default 1 MiB; 0 for no limit) as Salt's `SaltEvent`
/// does for every event a master fires, minions' included.
pub fn event_sender(cfg: &brine_config::MasterConfig) -> brine_proto::event::EventSender {
    let max = cfg.get_u64("max_event_size").unwrap_or(1_048_576);
    brine_proto::event::EventSender::new(&cfg.sock_dir).trimmed(
        usize::try_from(max).unwrap_or(usize::MAX),
        brine_py::dicttrim::trim_dict,
    )
}

/// Names of the processes, as `ps` shows them after the command line.
pub mod names {
    pub const PROCESS_MANAGER: &str = "ProcessManager";
    pub const LOGGING: &str = "MultiprocessingLoggingQueue";
    pub const PUBLISHER: &str = "ZeroMQPubServerChannel";
    pub const EVENT_PUBLISHER: &str = "EventPublisher";
    pub const MAINTENANCE: &str = "Maintenance";
    pub const REACTOR: &str = "Reactor";
    pub const REQ_SERVER: &str = "ReqServer_ProcessManager";
    pub const WORKER_QUEUE: &str = "MWorkerQueue";
    pub const WORKER_PREFIX: &str = "MWorker-";
    /// The longest name, for sizing the title area.
    pub const LONGEST: usize = LOGGING.len();
}
