//! Salt's command-line tools, for Brine: `salt`, `salt-run`, and
//! `salt-key`, which works on the same `pki_dir` as Python's (same config,
//! same layout, same output), so keys managed by either are seen by both
//! and by the running master. What they print goes through
//! `brine_output`, Salt's outputters.

pub mod eauth;
pub mod key;
pub mod manual;
pub mod optparse;
pub mod run;
pub mod salt;
