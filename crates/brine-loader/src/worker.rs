//! Executing a Python loader worker in a process the ProcessManager
//! forked.
//!
//! The worker's code (`python/brine_loader_worker.py`) is built into the
//! binary and handed to Python in the environment, so a master upgrade
//! replaces both at once and nothing is written to disk. The worker
//! inherits three descriptors: the pool's listening socket, the
//! supervisor's status channel (it reports `READY <pid>` once Salt is
//! imported) and the log writer's channel (its records join the master's
//! log, named by its title). It retitles itself
//! `<master command line> PythonLoader-N`, sets its `comm` to
//! `salt-master`, and dies with the ProcessManager.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// The worker's Python code.
pub const CODE: &str = include_str!("../python/brine_loader_worker.py");

/// What a worker is started with.
pub struct WorkerExec<'a> {
    pub python: &'a Path,
    pub conf_file: &'a Path,
    /// `PythonLoader-N`.
    pub title: &'a str,
    /// What `ps` shows before the title (the master's command line).
    pub title_base: &'a str,
    pub listen_fd: RawFd,
    pub status_fd: RawFd,
    pub log_fd: Option<RawFd>,
}

/// The environment variable through which the ProcessManager tells its
/// descendants (runner job processes, the Reactor) which Python it found;
/// unset when there is none.
pub const PYTHON_ENV: &str = "BRINE_PYTHON_LOADER";

/// Replace this process with the worker. Returns only on failure.
pub fn exec(w: &WorkerExec) -> io::Error {
    match prepare(w) {
        Ok(mut cmd) => cmd.exec(),
        Err(e) => e,
    }
}

/// Replace this process with an engine: `spec` is `{name, opts}` (JSON),
/// the entry of `engines:`. Returns only on failure.
pub fn exec_engine(w: &WorkerExec, spec: &str) -> io::Error {
    match prepare(w) {
        Ok(mut cmd) => cmd.env("BRINE_LOADER_ENGINE", spec).exec(),
        Err(e) => e,
    }
}

fn prepare(w: &WorkerExec) -> io::Result<Command> {
    let mut fds = vec![w.status_fd];
    fds.extend(Some(w.listen_fd).filter(|fd| *fd >= 0));
    fds.extend(w.log_fd);
    for fd in fds {
        inherit(fd)?;
    }
    let mut cmd = command(w.python, w.conf_file, w.title, w.title_base);
    // argv[0] stays the interpreter's path: Python finds its prefix (a
    // virtualenv's site-packages) from it. The worker retitles itself.
    cmd.env("BRINE_LOADER_LISTEN_FD", w.listen_fd.to_string())
        .env("BRINE_STATUS_FD", w.status_fd.to_string());
    if let Some(fd) = w.log_fd {
        cmd.env("BRINE_LOG_FD", fd.to_string());
    }
    Ok(cmd)
}

/// Python with the worker's code and the environment every worker gets.
pub(crate) fn command(python: &Path, conf_file: &Path, title: &str, title_base: &str) -> Command {
    let mut cmd = Command::new(python);
    cmd.args([
        "-c",
        "import os; exec(compile(os.environ.pop('BRINE_LOADER_CODE'), 'brine_loader_worker.py', 'exec'))",
    ])
    .env("BRINE_LOADER_CODE", CODE)
    .env("BRINE_CONF_FILE", conf_file)
    .env("BRINE_TITLE", title)
    .env("BRINE_TITLE_BASE", title_base)
    .env("BRINE_LOG_LEVEL", python_level(log::max_level()))
    // Salt's deprecation noise stays out of the master's console.
    .env("PYTHONWARNINGS", "ignore")
    .env_remove(PYTHON_ENV);
    cmd
}

/// Clear `FD_CLOEXEC` so that `fd` survives the exec.
pub(crate) fn inherit(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Python's logging level for this process's own filter (the more
/// verbose of `log_level` and `log_level_logfile`, set at start), so the
/// worker sends no record the log writer would drop.
fn python_level(filter: log::LevelFilter) -> &'static str {
    match filter {
        log::LevelFilter::Off => "quiet",
        log::LevelFilter::Error => "error",
        log::LevelFilter::Warn => "warning",
        log::LevelFilter::Info => "info",
        log::LevelFilter::Debug => "debug",
        log::LevelFilter::Trace => "trace",
    }
}
