//! The minion data cache: Salt's `localfs` cache bank `minions/<id>` under
//! `cachedir`, one msgpack file per key (`data.p` holds `{grains, pillar}`
//! from `_pillar`, `mine.p` the mine), read by targeting, the mine, and
//! Python's `salt-run cache.*`.

use std::path::{Path, PathBuf};

use brine_proto::Value;

use crate::fs::write_p;
use crate::CacheError;

/// Salt's default minion data cache driver (`cache`), the one
/// [`MinionCache`] is.
pub const LOCALFS: &str = "localfs";

/// The `minions` bank of the localfs cache under one `cachedir`.
#[derive(Debug, Clone)]
pub struct MinionCache {
    base: PathBuf,
}

impl MinionCache {
    pub fn new(cachedir: &Path) -> MinionCache {
        MinionCache {
            base: cachedir.join("minions"),
        }
    }

    /// `cachedir/minions/<id>`: the minion's bank (also where `cp.push`
    /// files land, under `files/`).
    pub fn dir(&self, id: &str) -> PathBuf {
        self.base.join(id)
    }

    /// Salt's `salt.cache.localfs.fetch("minions/<id>", key)`:
    /// `minions/<id>/<key>.p`, else the key inside `minions/<id>.p`, else
    /// an empty dict.
    pub fn fetch(&self, id: &str, key: &str) -> Result<Value, CacheError> {
        let read = |p: &Path| -> Result<Value, CacheError> {
            let bytes = std::fs::read(p).map_err(|e| CacheError::file(p, e))?;
            Value::decode(&bytes).map_err(|e| CacheError::file(p, e))
        };
        let file = self.dir(id).join(format!("{key}.p"));
        if file.is_file() {
            return read(&file);
        }
        let whole = self.base.join(format!("{id}.p"));
        if whole.is_file() {
            return read(&whole)?
                .get(key)
                .cloned()
                .ok_or_else(|| CacheError::file(&whole, format!("no key {key:?}")));
        }
        Ok(Value::Map(Vec::new()))
    }

    /// Salt's `localfs.contains` for one key: `minions/<id>/<key>.p` exists.
    pub fn contains(&self, id: &str, key: &str) -> bool {
        self.dir(id).join(format!("{key}.p")).is_file()
    }

    /// Salt's `localfs.store`: `minions/<id>/<key>.p`, atomically.
    pub fn store(&self, id: &str, key: &str, value: &Value) -> Result<(), CacheError> {
        let path = self.dir(id).join(format!("{key}.p"));
        write_p(&path, value).map_err(CacheError::write(&path))
    }

    /// Salt's `localfs.flush` of one key.
    pub fn flush_key(&self, id: &str, key: &str) -> Result<(), CacheError> {
        let path = self.dir(id).join(format!("{key}.p"));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CacheError::file(&path, e)),
            _ => Ok(()),
        }
    }

    /// Salt's `localfs.flush` of the whole bank (the minion's key was
    /// deleted).
    pub fn flush(&self, id: &str) -> Result<(), CacheError> {
        let dir = self.dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CacheError::file(&dir, e)),
            _ => Ok(()),
        }
    }

    /// `salt.cache.localfs.list_("minions")`: the entries of
    /// `cachedir/minions` (a name ending in `.p` loses its trailing `.` and
    /// `p` characters, as Salt's `rstrip` has it).
    pub fn list(&self) -> Result<Vec<String>, CacheError> {
        if !self.base.is_dir() {
            return Ok(Vec::new());
        }
        let entries = std::fs::read_dir(&self.base).map_err(|e| CacheError::file(&self.base, e))?;
        Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .map(|n| {
                if n.ends_with(".p") {
                    n.trim_end_matches(['.', 'p']).to_string()
                } else {
                    n
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_fetch_list_flush() {
        let d = tempfile::tempdir().unwrap();
        let c = MinionCache::new(d.path());
        assert_eq!(c.list().unwrap(), Vec::<String>::new());
        assert_eq!(c.fetch("m1", "mine").unwrap(), Value::Map(vec![]));
        let v = Value::map([("grains", Value::map([("os", Value::from("Debian"))]))]);
        c.store("m1", "data", &v).unwrap();
        assert_eq!(c.fetch("m1", "data").unwrap(), v);
        // The whole-bank form `minions/<id>.p` that older caches wrote.
        std::fs::write(
            d.path().join("minions/m2.p"),
            Value::map([("mine", Value::Int(1))]).to_file(),
        )
        .unwrap();
        assert_eq!(c.fetch("m2", "mine").unwrap(), Value::Int(1));
        assert!(c.fetch("m2", "data").is_err());
        let mut ids = c.list().unwrap();
        ids.sort();
        assert_eq!(ids, ["m1", "m2"]);
        assert!(c.contains("m1", "data") && !c.contains("m1", "mine"));
        c.flush_key("m1", "data").unwrap();
        assert!(!c.contains("m1", "data"));
        c.store("m1", "data", &v).unwrap();
        c.flush("m1").unwrap();
        c.flush("m1").unwrap();
        assert_eq!(c.fetch("m1", "data").unwrap(), Value::Map(vec![]));
    }

    #[test]
    fn list_strips_as_salt_does() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("minions/a")).unwrap();
        std::fs::write(dir.path().join("minions/shop.p"), b"").unwrap();
        let mut l = MinionCache::new(dir.path()).list().unwrap();
        l.sort();
        assert_eq!(l, ["a", "sho"]);
    }

    /// A full minion data cache keeps the last data.p whole and no temp
    /// file; the error names the file and the OS error.
    #[test]
    fn a_failed_store_keeps_the_old_data() {
        let d = tempfile::tempdir().unwrap();
        let Some(mut fs) = brine_testutil::Tmpfs::mount(&d.path().join("minions"), "128k", 64) else {
            return;
        };
        let c = MinionCache::new(d.path());
        let v = Value::map([("grains", Value::map([("os", Value::from("Debian"))]))]);
        c.store("m1", "data", &v).unwrap();
        let big = Value::map([("grains", Value::from("x".repeat(512 * 1024)))]);
        let e = c.store("m1", "data", &big).unwrap_err().to_string();
        assert!(e.contains("m1/data.p: No space left on device"), "{e}");
        assert_eq!(c.fetch("m1", "data").unwrap(), v);
        fs.fill();
        assert!(c.store("m2", "data", &v).is_err());
        let left: Vec<_> = std::fs::read_dir(fs.path().join("m1"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, ["data.p"]);
        fs.free();
        let newer = Value::map([("grains", Value::from("x".repeat(32 * 1024)))]);
        c.store("m1", "data", &newer).unwrap();
        assert_eq!(c.fetch("m1", "data").unwrap(), newer);
    }
}
