//! brine-swarm: many simulated salt-minions in one process (or a few, when
//! one process's file-descriptor limit cannot hold them all), speaking the
//! real protocol through `brine-proto` over a small tokio ZMTP client.
//! Works against Brine and against Python's salt-master alike.

pub mod funcs;
pub mod keys;
pub mod minion;
pub mod stats;
pub mod zmtp;
