//! The master's pidfile, locked for as long as the master runs.
//!
//! Salt writes the pidfile without locking and a second master deletes it;
//! we take an exclusive `flock` first, so a second master on the same config
//! refuses to start and leaves the running one's pidfile alone.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PidfileError {
    #[error("another salt-master is running (pid {pid}): {path} is locked")]
    Locked { path: PathBuf, pid: String },
    #[error("{path} names pid {pid}, a running salt-master that is not Brine (stop it first)")]
    Foreign { path: PathBuf, pid: i32 },
    #[error("cannot open pidfile {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

pub struct Pidfile {
    path: PathBuf,
    file: File,
}

impl Pidfile {
    /// Open (creating parent dirs) and lock `path` without changing its contents.
    pub fn acquire(path: &Path) -> Result<Pidfile, PidfileError> {
        let io_err = |source| PidfileError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(io_err)?;
        let mut content = String::new();
        let _ = file.read_to_string(&mut content);
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(PidfileError::Locked {
                path: path.to_owned(),
                pid: content.trim().to_string(),
            });
        }
        // Unlocked but naming a live salt-master: a Python master (which
        // does not lock) may be running on the same config.
        if let Ok(pid) = content.trim().parse::<i32>() {
            if pid > 0 && pid != std::process::id() as i32 {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline);
                if comm.trim() == "salt-master" || cmdline.contains("salt-master") {
                    return Err(PidfileError::Foreign {
                        path: path.to_owned(),
                        pid,
                    });
                }
            }
        }
        Ok(Pidfile {
            path: path.to_owned(),
            file,
        })
    }

    /// Replace the contents with `pid` (Salt writes the bare number).
    pub fn write_pid(&mut self, pid: u32) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(pid.to_string().as_bytes())?;
        self.file.flush()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Remove the file, then release the lock.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_file_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/salt-master.pid");
        let mut first = Pidfile::acquire(&path).unwrap();
        first.write_pid(4242).unwrap();
        match Pidfile::acquire(&path) {
            Err(PidfileError::Locked { pid, .. }) => assert_eq!(pid, "4242"),
            other => panic!("expected Locked, got {:?}", other.map(|_| ())),
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "4242");
        first.write_pid(7).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "7");
        first.remove();
        assert!(!path.exists());
        // Free again once released.
        let again = Pidfile::acquire(&path).unwrap();
        drop(again);
    }

    #[test]
    fn stale_pidfile_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.pid");
        // A pid that cannot be a live salt-master (pid_max is far below).
        std::fs::write(&path, "999999999").unwrap();
        let mut p = Pidfile::acquire(&path).unwrap();
        p.write_pid(std::process::id()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), std::process::id().to_string());
    }
}
