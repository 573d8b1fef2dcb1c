//! File writes for cache data: whole files appear atomically (a temp file
//! and a rename) or are created once, and readers never see half a file.
//! A write that fails (no space, no inodes, a read-only file system)
//! leaves nothing behind: its temp file or its half-written file is
//! removed before the error is returned.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use brine_proto::Value;

/// Write `bytes` to `path` through a temp file and a rename (readers never
/// see half a file), creating the directory; the file gets `mode`. No
/// fsync, as Salt's own cache writes: a return is cache data the minion
/// cannot resend anyway, and an fsync per return capped the return path at
/// ~3,000/s on the benchmark machine's disk (see docs/benchmarks.md).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    // Unique per process and call: threads of one process (an MWorker's
    // runner thread) may write the same file at once.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = create_and_write(&tmp, bytes, mode).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Write `value` as file-dialect msgpack (Salt's `*.p`), atomically, mode 0600.
pub fn write_p(path: &Path, value: &Value) -> std::io::Result<()> {
    write_atomic(path, &value.to_file(), 0o600)
}

/// Read a `*.p` file; `None` when it is missing or not msgpack.
pub fn read_p(path: &Path) -> Option<Value> {
    std::fs::read(path).ok().and_then(|b| Value::decode(&b).ok())
}

/// Create `path` (mode 0600) and write `bytes`: open, write, close. For a
/// file nobody reads yet (in a directory this call's caller just made);
/// on failure the file is removed.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let written = create_and_write(path, bytes, 0o600);
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

fn create_and_write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_testutil::Tmpfs;

    /// Everything in `dir` but the tmpfs fillers.
    pub(crate) fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(".filler-"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_atomic_write_leaves_no_temp_file_and_the_old_file_whole() {
        let d = tempfile::tempdir().unwrap();
        let Some(mut fs) = Tmpfs::mount(&d.path().join("c"), "256k", 64) else {
            return;
        };
        let path = fs.path().join("data.p");
        write_atomic(&path, b"old", 0o600).unwrap();
        // More than the tmpfs holds: the temp file is written in part,
        // then ENOSPC.
        let e = write_atomic(&path, &vec![7u8; 1024 * 1024], 0o600).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(28), "ENOSPC: {e}");
        assert_eq!(listing(fs.path()), ["data.p"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        // No inodes left: the temp file cannot even be created.
        fs.fill();
        assert!(write_atomic(&fs.path().join("new.p"), b"x", 0o600).is_err());
        assert!(write_atomic(&path, b"newer", 0o600).is_err());
        assert_eq!(listing(fs.path()), ["data.p"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        // Space is back: writes work again.
        fs.free();
        write_atomic(&path, b"newer", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"newer");
        // Read-only: nothing is created.
        fs.read_only(true);
        let e = write_atomic(&fs.path().join("ro.p"), b"x", 0o600).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(30), "EROFS: {e}");
        assert_eq!(listing(fs.path()), ["data.p"]);
    }

    #[test]
    fn a_failed_new_file_is_removed() {
        let d = tempfile::tempdir().unwrap();
        let Some(fs) = Tmpfs::mount(&d.path().join("c"), "128k", 64) else {
            return;
        };
        let path = fs.path().join("return.p");
        assert!(write_new(&path, &vec![1u8; 512 * 1024]).is_err());
        assert!(!path.exists(), "half a file left behind");
        write_new(&path, b"small").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"small");
    }
}
