//! A small tmpfs mounted on a directory, to make a cache full (no space,
//! no inodes) or read-only for real. Mounting needs root (CI runs as
//! root); [`Tmpfs::mount`] answers `None` otherwise and the test skips.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs on `path`, unmounted on drop.
pub struct Tmpfs {
    path: PathBuf,
    fillers: usize,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Tmpfs {
    /// Mount a tmpfs of `size` (`mount`'s syntax: `256k`, `1m`) with at
    /// most `inodes` inodes on `path` (created if missing), mode 0700.
    /// `None` when not root; panics when root and the mount fails.
    pub fn mount(path: &Path, size: &str, inodes: u64) -> Option<Tmpfs> {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        std::fs::create_dir_all(path).unwrap();
        let opts = format!("size={size},nr_inodes={inodes},mode=0700");
        let p = path.to_str().expect("a UTF-8 path");
        run(&["mount", "-t", "tmpfs", "-o", &opts, "tmpfs", p]).unwrap_or_else(|e| panic!("{e}"));
        Some(Tmpfs {
            path: path.to_path_buf(),
            fillers: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Use up every block, then every inode: filler files until ENOSPC.
    pub fn fill(&mut self) {
        let big = vec![0u8; 64 * 1024];
        loop {
            let p = self.path.join(format!(".filler-{}", self.fillers));
            let Ok(mut f) = std::fs::File::create(&p) else { break };
            self.fillers += 1;
            let mut full = false;
            for _ in 0..16 {
                if f.write_all(&big).is_err() {
                    full = true;
                    break;
                }
            }
            if full {
                // The last few bytes: smaller writes until nothing fits.
                while f.write_all(&big[..512]).is_ok() {}
                while f.write_all(&big[..1]).is_ok() {}
                break;
            }
        }
        // Then the inodes (empty files need none of the space).
        loop {
            let p = self.path.join(format!(".filler-{}", self.fillers));
            if std::fs::File::create(&p).is_err() {
                break;
            }
            self.fillers += 1;
        }
    }

    /// Remove the filler files: space and inodes are back.
    pub fn free(&mut self) {
        for i in 0..self.fillers {
            let _ = std::fs::remove_file(self.path.join(format!(".filler-{i}")));
        }
        self.fillers = 0;
    }

    /// `mount -o remount,ro` (or `rw`).
    pub fn read_only(&self, ro: bool) {
        let opts = if ro { "remount,ro" } else { "remount,rw" };
        run(&["mount", "-o", opts, self.path.to_str().unwrap()]).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let p = self.path.to_str().unwrap_or_default().to_string();
        if run(&["umount", &p]).is_err() {
            // Busy (a process still has a file open there): detach it.
            let _ = run(&["umount", "-l", &p]);
        }
    }
}
