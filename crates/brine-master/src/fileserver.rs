//! Salt's `roots` fileserver backend over `file_roots`.

use brine_config::MasterConfig;

/// The `roots` backend: file lists, hashes and chunks for each saltenv.
pub struct Fileserver {}

impl Fileserver {
    pub fn new(_cfg: &MasterConfig) -> Fileserver {
        Fileserver {}
    }
}
