//! Logging for a tree of processes, the way Salt does it: every process
//! sends its records to one writer (MultiprocessingLoggingQueue), which alone
//! writes `log_file` and the console.
//!
//! * [`init`] installs the process-global [`log`] logger. Until
//!   [`forward_to`] is called it writes to stderr (start-up errors); after,
//!   it sends each record as one datagram over a socketpair created before
//!   the first fork ([`channel`]), without ever blocking: when the writer is
//!   behind, records are dropped and counted, and the count is logged later.
//! * [`Record`] is the datagram format; [`Format`] renders Salt's
//!   `%(asctime)s,%(msecs)03d [%(name)-17s:%(lineno)-4d][%(levelname)-8s]`
//!   format strings; [`LogFile`] appends to a file and reopens it (SIGHUP,
//!   logrotate).

mod format;

pub use format::{strftime, Format, Record};

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use log::{LevelFilter, Log, Metadata};

/// The key-value that marks an ERROR record as Python's CRITICAL (set by
/// [`critical!`]).
pub const CRITICAL: &str = "critical";

/// Log at Python's CRITICAL level (50): `brine_log::critical!("...", ...)`,
/// `format!` arguments. Filtered as ERROR (the `log` crate's highest
/// level) and written as `CRITICAL`.
#[macro_export]
macro_rules! critical {
    ($($arg:tt)+) => {
        $crate::__log::error!(critical = true; $($arg)+)
    };
}

#[doc(hidden)]
pub use log as __log;

/// Largest message sent in one datagram; longer ones are cut.
pub const MAX_MESSAGE: usize = 60 * 1024;

enum Sink {
    Stderr(Format),
    Forward(OwnedFd),
}

struct Logger {
    sink: Mutex<Sink>,
    process_name: Mutex<String>,
    dropped: AtomicU64,
}

static LOGGER: Logger = Logger {
    sink: Mutex::new(Sink::Stderr(Format::CONSOLE_DEFAULT)),
    process_name: Mutex::new(String::new()),
    dropped: AtomicU64::new(0),
};

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let mut msg = r.args().to_string();
        if msg.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg.truncate(cut);
            msg.push_str(" [truncated]");
        }
        let rec = Record {
            level: r.level(),
            critical: r.level() == log::Level::Error && r.key_values().get(log::kv::Key::from_str(CRITICAL)).is_some(),
            time: Record::now(),
            pid: std::process::id(),
            process_name: process_name(),
            name: r.target().replace("::", "."),
            line: r.line().unwrap_or(0),
            message: msg,
        };
        let Ok(sink) = self.sink.lock() else { return };
        match &*sink {
            Sink::Stderr(fmt) => {
                let _ = writeln!(io::stderr(), "{}", fmt.render(&rec));
            }
            Sink::Forward(fd) => {
                if send(fd, &rec.encode()) {
                    // Say so once the writer keeps up again.
                    let lost = self.dropped.swap(0, Ordering::Relaxed);
                    if lost > 0 {
                        let note = Record {
                            level: log::Level::Warn,
                            critical: false,
                            message: format!("{lost} log records were dropped: the log writer was not keeping up"),
                            ..rec
                        };
                        if !send(fd, &note.encode()) {
                            self.dropped.fetch_add(lost, Ordering::Relaxed);
                        }
                    }
                } else {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn flush(&self) {}
}

/// One non-blocking datagram; false when it could not be queued.
fn send(fd: &OwnedFd, bytes: &[u8]) -> bool {
    // SAFETY: sending a buffer on a datagram socket fd we own.
    let rc = unsafe {
        libc::send(
            fd.as_raw_fd(),
            bytes.as_ptr() as *const libc::c_void,
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    rc >= 0
}

/// Install the global logger (stderr, `level`). Safe to call more than once.
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Change the most verbose level this process emits.
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

/// Write to stderr with `fmt` (console format) until [`forward_to`].
pub fn to_stderr(fmt: Format) {
    if let Ok(mut s) = LOGGER.sink.lock() {
        *s = Sink::Stderr(fmt);
    }
}

/// Send every record to the writer process over `sender` (from [`channel`]).
pub fn forward_to(sender: OwnedFd) {
    if let Ok(mut s) = LOGGER.sink.lock() {
        *s = Sink::Forward(sender);
    }
}

/// The channel records are forwarded on, if they are: a process this one
/// executes (a runner job) may inherit it.
pub fn forward_fd() -> Option<std::os::fd::RawFd> {
    use std::os::fd::AsRawFd;
    match &*LOGGER.sink.lock().ok()? {
        Sink::Forward(fd) => Some(fd.as_raw_fd()),
        Sink::Stderr(_) => None,
    }
}

/// The process name put in records (`%(processName)s`), e.g. `MWorker-0`.
pub fn set_process_name(name: &str) {
    if let Ok(mut n) = LOGGER.process_name.lock() {
        *n = name.to_string();
    }
}

/// The process name set by [`set_process_name`].
pub fn process_name() -> String {
    LOGGER.process_name.lock().map(|n| n.clone()).unwrap_or_default()
}

/// A connected datagram pair: (sender for every process, receiver for the writer).
pub fn channel() -> io::Result<(UnixDatagram, UnixDatagram)> {
    let (tx, rx) = UnixDatagram::pair()?;
    // Room for bursts while the writer is (re)starting.
    let size: libc::c_int = 4 * 1024 * 1024;
    for s in [&tx, &rx] {
        let opt = if std::ptr::eq(s, &tx) {
            libc::SO_SNDBUF
        } else {
            libc::SO_RCVBUF
        };
        // SAFETY: setsockopt with a c_int value.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    Ok((tx, rx))
}

/// Install a panic hook that logs panics (with location) before the default hook runs.
pub fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::error!("panic: {info}");
        default(info);
    }));
}

/// An append-only log file that can be reopened after rotation.
pub struct LogFile {
    path: PathBuf,
    file: File,
}

impl LogFile {
    /// Open (creating it 0640, as Salt's logging does under umask 027, and
    /// its directory) for appending.
    pub fn open(path: &Path) -> io::Result<LogFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).mode(0o640).open(path)?;
        Ok(LogFile {
            path: path.to_owned(),
            file,
        })
    }

    /// Another handle on the same open file (for a process forked to
    /// write it, when the file was opened before the privilege drop).
    pub fn try_clone(&self) -> io::Result<LogFile> {
        Ok(LogFile {
            path: self.path.clone(),
            file: self.file.try_clone()?,
        })
    }

    /// Reopen the same path (after logrotate moved the file away).
    pub fn reopen(&mut self) -> io::Result<()> {
        *self = LogFile::open(&self.path)?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one line (`line` without its newline) in one write.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.file.write_all(&buf)
    }
}
