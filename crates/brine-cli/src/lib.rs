//! Salt's command-line tools, for Brine. `salt-key` works on the same
//! `pki_dir` as Python's (same config, same layout, same output), so keys
//! managed by either are seen by both and by the running master.

pub mod key;
pub mod salt;
