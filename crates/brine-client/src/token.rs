//! The CLI's saved eauth token (`salt -T`, `salt-run -T`): Salt's
//! `token_file`, the raw token in a file only its user can read, used
//! while it is younger than `token_expire` by a caller who cannot read
//! the master's key for their user.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use brine_config::MasterConfig;

/// Where the token is kept: the `token_file` option, else `salt_token` in
/// the user's XDG config dir for Salt (`$XDG_CONFIG_HOME/salt` or
/// `~/.config/salt`) when that exists, else in the home directory, as
/// Salt's `client_config` chooses.
pub fn path(cfg: &MasterConfig) -> PathBuf {
    if let Some(p) = cfg.get_str("token_file") {
        return PathBuf::from(brine_py::expanduser(p));
    }
    let home = brine_py::expanduser("~");
    let xdg = std::env::var("XDG_CONFIG_HOME")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| format!("{home}/.config"));
    let xdg = PathBuf::from(xdg).join("salt");
    if xdg.is_dir() {
        xdg.join("salt_token")
    } else {
        PathBuf::from(home).join("salt_token")
    }
}

/// The saved token, if there is one younger than `token_expire`.
pub fn saved(cfg: &MasterConfig) -> Option<String> {
    let p = path(cfg);
    let age = std::fs::metadata(&p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())?;
    let expire = cfg.get("token_expire").and_then(|v| v.as_f64()).unwrap_or(43200.0);
    if age >= Duration::from_secs_f64(expire.max(0.0)) {
        return None;
    }
    let tok = std::fs::read_to_string(&p).ok()?.trim().to_string();
    (!tok.is_empty()).then_some(tok)
}

/// Save `tok` (mode 0600 from the start, as Salt's umask 0177). A file
/// that cannot be written is skipped, as Salt skips it.
pub fn save(cfg: &MasterConfig, tok: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let p = path(cfg);
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&p)
        .and_then(|mut f| f.write_all(tok.as_bytes()));
}
