//! What the master does before forking: directories, daemon, user, limits,
//! and Salt's log level names.

use std::ffi::CString;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use log::{warn, LevelFilter};
use nix::unistd::{Gid, Uid, User};

use brine_config::MasterConfig;

/// Salt's level names to the `log` crate's filters.
pub fn level_filter(level: &str) -> LevelFilter {
    match level.trim().to_ascii_lowercase().as_str() {
        "all" | "garbage" | "trace" => LevelFilter::Trace,
        "debug" => LevelFilter::Debug,
        "profile" | "info" => LevelFilter::Info,
        "warning" | "warn" => LevelFilter::Warn,
        "error" | "critical" => LevelFilter::Error,
        "quiet" => LevelFilter::Off,
        _ => LevelFilter::Warn,
    }
}

/// The directories the master needs, as Salt's `verify_env` creates them.
pub fn master_dirs(cfg: &MasterConfig) -> Vec<PathBuf> {
    let mut dirs = vec![cfg.pki_dir.clone()];
    for sub in [
        "minions",
        "minions_pre",
        "minions_rejected",
        "minions_denied",
        "minions_autosign",
    ] {
        dirs.push(cfg.pki_dir.join(sub));
    }
    dirs.push(cfg.cachedir.clone());
    dirs.push(cfg.cachedir.join("jobs"));
    dirs.push(cfg.sock_dir.clone());
    // Where `_syndic_return` registers each syndic (`<syndic_dir>/<id>`).
    // Salt derives it from cachedir (`cachedir/syndics`) whatever the
    // config says, and so does brine-config.
    if let Some(dir) = cfg.get_str("syndic_dir") {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(dir) = log_file_path(cfg).as_deref().and_then(Path::parent) {
        dirs.push(dir.to_path_buf());
    }
    dirs
}

/// `log_file` as a path, or None for a syslog URL.
pub fn log_file_path(cfg: &MasterConfig) -> Option<PathBuf> {
    let f = cfg.log_file.trim();
    if f.is_empty() || f.contains("://") {
        return None;
    }
    Some(PathBuf::from(f))
}

/// Create missing directories (0700) and the pki dir's subdirectories.
pub fn prepare_dirs(cfg: &MasterConfig) -> Result<()> {
    for d in master_dirs(cfg) {
        if !d.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .with_context(|| format!("cannot create directory {}", d.display()))?;
        }
    }
    // The pki dir holds private keys: never group/world accessible.
    let meta = std::fs::metadata(&cfg.pki_dir)?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(&cfg.pki_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict permissions of {}", cfg.pki_dir.display()))?;
    }
    Ok(())
}

/// Become `user` (Salt's `user` option / `-u`): nothing when we already are;
/// as root, hand the master's dirs, the pidfile and the log file to the
/// user and drop privileges; as anyone else, refuse as Salt does.
pub fn switch_user(cfg: &MasterConfig) -> Result<()> {
    let name = cfg.user.trim();
    if name.is_empty() {
        return Ok(());
    }
    let user = User::from_name(name)
        .with_context(|| format!("cannot look up user {name:?}"))?
        .ok_or_else(|| anyhow::anyhow!("User not found: {name:?}"))?;
    let me = Uid::effective();
    if me == user.uid {
        return Ok(());
    }
    if !me.is_root() {
        let current = User::from_uid(me)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| me.to_string());
        bail!("salt-master is configured to run as user {name:?} but is running as {current:?} and cannot switch (set `user: {current}` or start it as root)");
    }
    let mut paths = master_dirs(cfg);
    paths.push(cfg.pidfile.clone());
    paths.extend(log_file_path(cfg));
    for p in paths.iter().filter(|p| p.exists()) {
        nix::unistd::chown(p.as_path(), Some(user.uid), Some(user.gid))
            .with_context(|| format!("cannot chown {} to {name}", p.display()))?;
    }
    chown_tree(&cfg.pki_dir, user.uid, user.gid)?;
    let cname = CString::new(name)?;
    nix::unistd::initgroups(&cname, user.gid).context("initgroups")?;
    nix::unistd::setgid(user.gid).context("setgid")?;
    nix::unistd::setuid(user.uid).context("setuid")?;
    Ok(())
}

fn chown_tree(dir: &Path, uid: Uid, gid: Gid) -> Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        nix::unistd::chown(&p, Some(uid), Some(gid)).with_context(|| format!("cannot chown {}", p.display()))?;
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            chown_tree(&p, uid, gid)?;
        }
    }
    Ok(())
}

/// Raise the soft RLIMIT_NOFILE to `max_open_files` (capped by the hard limit).
pub fn raise_nofile(max_open_files: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let want = max_open_files.min(hard);
    if want > soft {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, want, hard) {
            warn!("cannot raise the open files limit to {want}: {e}");
        }
    }
    if max_open_files > hard {
        log::info!("max_open_files is {max_open_files} but the hard limit is {hard}; using {want}");
    }
}

/// Detach from the terminal (double fork, setsid, stdio to /dev/null).
/// Only the grandchild returns.
pub fn daemonize() -> Result<()> {
    use nix::unistd::{fork, setsid, ForkResult};
    // SAFETY: single-threaded; the parents exit at once.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => unsafe { libc::_exit(0) },
        ForkResult::Child => {}
    }
    setsid()?;
    // SAFETY: as above.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => unsafe { libc::_exit(0) },
        ForkResult::Child => {}
    }
    std::env::set_current_dir("/")?;
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    use std::os::fd::AsRawFd;
    for fd in 0..=2 {
        nix::unistd::dup2(null.as_raw_fd(), fd)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_env_dirs_include_syndic_dir() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().display();
        let conf = root.path().join("conf");
        std::fs::create_dir_all(&conf).unwrap();
        // A syndic_dir of one's own is not honoured, by Salt either.
        std::fs::write(
            conf.join("master"),
            format!("root_dir: {r}\npki_dir: {r}/pki\ncachedir: {r}/cache\nsyndic_dir: {r}/elsewhere\nlog_file: {r}/log/master\n"),
        )
        .unwrap();
        let cfg = MasterConfig::load(&conf).unwrap();
        let syndics = root.path().join("cache/syndics");
        assert_eq!(cfg.get_str("syndic_dir").map(PathBuf::from), Some(syndics.clone()));
        prepare_dirs(&cfg).unwrap();
        let meta = std::fs::metadata(&syndics).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        assert!(!root.path().join("elsewhere").exists());
        for d in ["pki/minions_pre", "cache/jobs", "log"] {
            assert!(root.path().join(d).is_dir(), "{d}");
        }
    }
}
