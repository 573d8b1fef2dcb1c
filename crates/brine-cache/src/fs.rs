//! File writes for cache data: whole files appear atomically (a temp file
//! and a rename) or are created once, and readers never see half a file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use brine_proto::Value;

/// Write `bytes` to `path` through a temp file and a rename (readers never
/// see half a file), creating the directory; the file gets `mode`. No
/// fsync, as Salt's own cache writes: a return is cache data the minion
/// cannot resend anyway, and an fsync per return capped the return path at
/// ~3,000/s on the benchmark machine's disk (see docs/benchmarks.md).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Write `value` as file-dialect msgpack (Salt's `*.p`), atomically, mode 0600.
pub fn write_p(path: &Path, value: &Value) -> std::io::Result<()> {
    write_atomic(path, &value.to_file(), 0o600)
}

/// Read a `*.p` file; `None` when it is missing or not msgpack.
pub fn read_p(path: &Path) -> Option<Value> {
    std::fs::read(path).ok().and_then(|b| Value::decode(&b).ok())
}

/// Create `path` (mode 0600) and write `bytes`: open, write, close.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}
