//! eauth backends: who a user is (Salt's `salt/auth/<backend>.py`
//! modules: `auth(username, password)` and, where the backend has
//! them, `groups(username)`).
//!
//! A backend answers only "are these credentials good" and "which
//! groups is this user in"; what the user may then do is the ACL's
//! (`external_auth:<backend>`, [`crate::acl::fill_auth_list`]).

use brine_config::MasterConfig;

mod file;
mod pam;
pub mod python;

/// One eauth backend.
pub trait Backend: Sync {
    /// Salt's `<backend>.auth(username, password)`: whether the
    /// credentials are good. Slow backends (PAM) may take a while; a
    /// backend never logs the password.
    fn auth(&self, cfg: &MasterConfig, username: &str, password: &str) -> bool;

    /// Salt's `<backend>.groups(username)`: the groups the user is in,
    /// for `group%` entries; `None` for a backend without groups.
    fn groups(&self, _cfg: &MasterConfig, _username: &str, _password: &str) -> Option<Vec<String>> {
        None
    }
}

/// Salt's `auto`: "always approved", for tests; what the user may do is
/// entirely the ACL's.
pub struct Auto;

impl Backend for Auto {
    fn auth(&self, _cfg: &MasterConfig, _username: &str, _password: &str) -> bool {
        true
    }
}

/// The backend an `eauth` name selects, if Brine has it.
pub fn backend(name: &str) -> Option<&'static dyn Backend> {
    match name {
        "auto" => Some(&Auto),
        "file" => Some(&file::File),
        "pam" => Some(&pam::Pam),
        _ => None,
    }
}

/// The backends Brine has (the list the loader's resolution reads, so
/// that the others go to Salt's Python).
pub const NAMES: &[&str] = brine_loader::resolve::NATIVE_EAUTH;
