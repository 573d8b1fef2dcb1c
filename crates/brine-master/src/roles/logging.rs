//! MultiprocessingLoggingQueue: the one process that writes `log_file`
//! (and, in the foreground, the console). Every process sends records over
//! the datagram channel the ProcessManager created before forking.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;

use brine_config::MasterConfig;
use brine_log::{Format, LogFile, Record};
use brine_proc::supervisor::{poll_fds, ChildSpec};
use log::{info, LevelFilter};
use nix::sys::signal::Signal;

use super::{role, RoleError};
use crate::names;
use crate::setup::{level_filter, log_file_path};

#[derive(Clone)]
pub struct Settings {
    pub file: Option<PathBuf>,
    /// `file`, opened by the ProcessManager before it drops privileges (as
    /// Salt opens its log file as root): the logging process writes this
    /// handle, so a log directory only root may enter (Salt makes
    /// `/var/log/salt` 0750) still works for `user: salt`.
    pub opened: Option<Rc<LogFile>>,
    pub file_level: LevelFilter,
    pub file_fmt: Format,
    pub console: bool,
    pub console_level: LevelFilter,
    pub console_fmt: Format,
}

impl Settings {
    pub fn from_config(cfg: &MasterConfig, console: bool) -> Settings {
        let s = |k: &str, d: &str| cfg.get(k).and_then(|v| v.as_str()).unwrap_or(d).to_string();
        Settings {
            file: log_file_path(cfg),
            opened: None,
            file_level: level_filter(&cfg.log_level_logfile),
            file_fmt: Format::new(&cfg.log_fmt_logfile, &cfg.log_datefmt_logfile),
            console,
            console_level: level_filter(&cfg.log_level),
            console_fmt: Format::new(
                &s("log_fmt_console", "[%(levelname)-8s] %(message)s"),
                &s("log_datefmt", "%H:%M:%S"),
            ),
        }
    }
}

impl Settings {
    /// Open the log file now (before the privilege drop).
    pub fn open_file(&mut self) -> std::io::Result<()> {
        if let Some(p) = &self.file {
            self.opened = Some(Rc::new(LogFile::open(p)?));
        }
        Ok(())
    }
}

pub fn spec(settings: Settings, rx: Rc<OwnedFd>) -> ChildSpec {
    role(names::LOGGING, move |ctx| {
        let sig = brine_proc::signals::SignalPipe::install(&[Signal::SIGTERM, Signal::SIGHUP])?;
        let cannot = |p: &std::path::Path, e| RoleError::Fatal(format!("cannot open log file {}: {e}", p.display()));
        let mut file = match (&settings.opened, &settings.file) {
            (Some(f), _) => Some(f.try_clone().map_err(|e| cannot(f.path(), e))?),
            (None, Some(p)) => Some(LogFile::open(p).map_err(|e| cannot(p, e))?),
            (None, None) => None,
        };
        ctx.ready();
        let mut buf = vec![0u8; 70 * 1024];
        loop {
            poll_fds(&[sig.fd(), rx.as_raw_fd()], None)?;
            sig.drain();
            let stop = brine_proc::signals::take(Signal::SIGTERM);
            if brine_proc::signals::take(Signal::SIGHUP) {
                if let Some(f) = file.as_mut() {
                    match f.reopen() {
                        Ok(()) => info!("reopened log file {}", f.path().display()),
                        Err(e) => eprintln!("cannot reopen log file {}: {e}", f.path().display()),
                    }
                }
            }
            drain(rx.as_raw_fd(), &mut buf, &settings, file.as_mut());
            if stop {
                // Whatever was queued before SIGTERM has been written.
                return Ok(());
            }
        }
    })
    .stop_last()
}

/// Write every queued record, then return.
fn drain(fd: i32, buf: &mut [u8], s: &Settings, mut file: Option<&mut LogFile>) {
    let mut console = std::io::stderr().lock();
    loop {
        // SAFETY: receiving into our own buffer.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), libc::MSG_DONTWAIT) };
        if n <= 0 {
            return;
        }
        let Some(rec) = Record::decode(&buf[..n as usize]) else {
            continue;
        };
        if let Some(f) = file.as_deref_mut() {
            if rec.level <= s.file_level {
                if let Err(e) = f.write_line(&s.file_fmt.render(&rec)) {
                    let _ = writeln!(console, "cannot write log file {}: {e}", f.path().display());
                }
            }
        }
        if s.console && rec.level <= s.console_level {
            let _ = writeln!(console, "{}", s.console_fmt.render(&rec));
        }
    }
}
