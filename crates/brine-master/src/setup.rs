//! What the master does before forking: directories, daemon, user, limits,
//! and Salt's log level names.

use std::ffi::CString;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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

/// The directories the master needs, as Salt's `verify_env` creates them
/// for a master (`salt.cli.daemons.Master.verify_environment`): the pki
/// dir and its key dirs, cachedir with `jobs` and `proc`, sock_dir,
/// `token_dir`, `syndic_dir` and `sqlite_queue_dir`. Each is owned by the
/// master's user once it is set up.
pub fn master_dirs(cfg: &MasterConfig) -> Vec<PathBuf> {
    let mut dirs = vec![cfg.pki_dir.clone()];
    for sub in [
        "minions",
        "minions_pre",
        "minions_denied",
        "minions_autosign",
        "minions_rejected",
    ] {
        dirs.push(cfg.pki_dir.join(sub));
    }
    dirs.push(cfg.cachedir.clone());
    dirs.push(cfg.cachedir.join("jobs"));
    dirs.push(cfg.cachedir.join("proc"));
    dirs.push(cfg.sock_dir.clone());
    // Where `_syndic_return` registers each syndic (`<syndic_dir>/<id>`).
    // Salt derives it from cachedir (`cachedir/syndics`) whatever the
    // config says, and so does brine-config.
    for opt in ["token_dir", "syndic_dir", "sqlite_queue_dir"] {
        if let Some(dir) = cfg.get_str(opt).filter(|d| !d.is_empty()) {
            dirs.push(PathBuf::from(dir));
        }
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

/// Create each missing directory and its missing parents as Salt's
/// `verify_env` does (`os.makedirs` under umask 022: 0755, so that the
/// master's user can still reach its directories after the privilege
/// drop); the log file's directories and the log file itself as Salt's
/// logging set-up does (under umask 027: 0750 and 0640; the user could not
/// create the file in a directory root owns); and keep the pki dir 0700 or
/// 0750, making it 0700 otherwise.
pub fn prepare_dirs(cfg: &MasterConfig) -> Result<()> {
    if let Some(log) = log_file_path(cfg) {
        if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
            make_dirs(dir, 0o750)?;
        }
        if !log.exists() {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .open(&log)
                .with_context(|| format!("cannot create the log file {}", log.display()))?;
        }
    }
    for d in master_dirs(cfg) {
        make_dirs(&d, 0o755)?;
    }
    // The pki dir holds private keys: 0700, or 0750 for software that
    // integrates by reading it (what Salt allows), nothing else.
    let mode = std::fs::metadata(&cfg.pki_dir)?.permissions().mode() & 0o7777;
    if mode != 0o700 && mode != 0o750 {
        std::fs::set_permissions(&cfg.pki_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict permissions of {}", cfg.pki_dir.display()))?;
    }
    Ok(())
}

/// `mkdir -p` giving `mode` to every directory it creates, whatever the
/// process umask (Salt sets its umask around these).
fn make_dirs(dir: &Path, mode: u32) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        make_dirs(parent, mode)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create directory {}", dir.display())),
    }
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
    // As Salt's verify_env: each of the master's directories and what is
    // in it (but job cache entries, which can be millions) go to the user;
    // the parents stay as they are. Then the pidfile and the log file.
    for dir in master_dirs(cfg).iter().filter(|p| p.exists()) {
        nix::unistd::chown(dir.as_path(), Some(user.uid), Some(user.gid))
            .with_context(|| format!("cannot chown {} to {name}", dir.display()))?;
        if !dir.ends_with("jobs") {
            chown_tree(dir, user.uid, user.gid)?;
        }
    }
    let mut files = vec![cfg.pidfile.clone()];
    files.extend(log_file_path(cfg));
    for f in files.iter().filter(|p| p.exists()) {
        nix::unistd::chown(f.as_path(), Some(user.uid), Some(user.gid))
            .with_context(|| format!("cannot chown {} to {name}", f.display()))?;
    }
    let cname = CString::new(name)?;
    nix::unistd::initgroups(&cname, user.gid).context("initgroups")?;
    nix::unistd::setgid(user.gid).context("setgid")?;
    nix::unistd::setuid(user.uid).context("setuid")?;
    Ok(())
}

/// Everything under `dir` to `uid:gid`, but entries named `jobs` (the job
/// cache) and, as Salt's walk, names starting with a dot. Symlinks are
/// not followed (lchown on the link itself). Iterative: no recursion depth
/// to exhaust on a deep tree.
fn chown_tree(dir: &Path, uid: Uid, gid: Gid) -> Result<()> {
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "jobs" {
                continue;
            }
            let p = e.path();
            nix::unistd::fchownat(None, &p, Some(uid), Some(gid), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                .with_context(|| format!("cannot chown {}", p.display()))?;
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                todo.push(p);
            }
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
        // Salt's modes: created under umask 022, the pki dir made 0700.
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        assert!(!root.path().join("elsewhere").exists());
        for d in [
            "pki/minions_pre",
            "cache/jobs",
            "cache/proc",
            "cache/tokens",
            "var/cache/salt/master/queues",
            "log",
        ] {
            assert!(root.path().join(d).is_dir(), "{d}");
        }
        let mode = |p: &str| std::fs::metadata(root.path().join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("pki"), 0o700);
        assert!(root.path().join("log/master").is_file());
        // 0750 is left alone (Salt allows it), anything else becomes 0700.
        std::fs::set_permissions(root.path().join("pki"), std::fs::Permissions::from_mode(0o750)).unwrap();
        prepare_dirs(&cfg).unwrap();
        assert_eq!(mode("pki"), 0o750);
        std::fs::set_permissions(root.path().join("pki"), std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_dirs(&cfg).unwrap();
        assert_eq!(mode("pki"), 0o700);
    }
}
