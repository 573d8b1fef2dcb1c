//! The job cache behind a narrow interface. [`LocalCache`] is Salt's
//! `local_cache` layout (spec §7), which Python's `salt` and `salt-run
//! jobs.*` read directly: `cachedir/jobs/<h[:2]>/<h[2:]>/` with `jid`,
//! `.load.p`, `.minions.p` and `<minion>/return.p` (file-dialect msgpack),
//! `h` = `hash_type`(jid). A shared-database cache for several masters can
//! implement [`JobCache`] later.

use std::path::{Path, PathBuf};

use brine_proto::Value;

use crate::req::minion::write_p;

pub trait JobCache {
    /// Store the publication's clear load (with `jid`, without `key`) and
    /// the expected minions; creates the job.
    fn save_load(&self, jid: &str, load: &Value, minions: &[String]) -> std::io::Result<()>;
    /// Store one minion's return; `Ok(false)` if it was already stored.
    fn store_return(&self, jid: &str, id: &str, ret: &Value) -> std::io::Result<bool>;
    fn load(&self, jid: &str) -> Option<Value>;
}

pub struct LocalCache {
    jobs: PathBuf,
    hash_type: String,
}

impl LocalCache {
    pub fn new(cachedir: &Path, hash_type: &str) -> LocalCache {
        LocalCache {
            jobs: cachedir.join("jobs"),
            hash_type: hash_type.to_string(),
        }
    }

    /// `jobs/h[:2]/h[2:]` for `jid`.
    pub fn jid_dir(&self, jid: &str) -> PathBuf {
        let md =
            openssl::hash::MessageDigest::from_name(&self.hash_type).unwrap_or(openssl::hash::MessageDigest::sha256());
        let h = hex::encode(openssl::hash::hash(md, jid.as_bytes()).expect("hash"));
        self.jobs.join(&h[..2]).join(&h[2..])
    }
}

impl JobCache for LocalCache {
    fn save_load(&self, jid: &str, load: &Value, minions: &[String]) -> std::io::Result<()> {
        let dir = self.jid_dir(jid);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("jid"), jid)?;
        // .load.p first: the CLI gives up on a job whose load is missing.
        write_p(&dir.join(".load.p"), load)?;
        write_p(
            &dir.join(".minions.p"),
            &Value::Array(minions.iter().map(|m| Value::from(m.as_str())).collect()),
        )
    }

    fn store_return(&self, jid: &str, id: &str, ret: &Value) -> std::io::Result<bool> {
        // Few syscalls on the hot path: mkdir of the minion's dir decides
        // "first return" (EEXIST: a duplicate, not re-cached), the jid dir
        // is made only when missing, and return.p is written in place as
        // Salt's local_cache does (the minion dir is new, nobody reads it yet).
        let dir = self.jid_dir(jid);
        let mdir = dir.join(id);
        match std::fs::create_dir(&mdir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join("jid"), jid)?;
                match std::fs::create_dir(&mdir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        let mut stored = Value::Map(Vec::new());
        for k in ["return", "retcode", "success"] {
            if let Some(v) = ret.get(k) {
                stored.set(k, v.clone());
            }
        }
        write_new(&mdir.join("return.p"), &stored.to_file())?;
        if let Some(out) = ret.get("out") {
            write_new(&mdir.join("out.p"), &out.to_file())?;
        }
        Ok(true)
    }

    fn load(&self, jid: &str) -> Option<Value> {
        let b = std::fs::read(self.jid_dir(jid).join(".load.p")).ok()?;
        Value::decode(&b).ok()
    }
}

/// Salt's `gen_jid`: UTC now as `%Y%m%d%H%M%S%f`.
pub fn gen_jid() -> String {
    let now = std::time::SystemTime::now();
    let stamp = brine_proto::event::utc_stamp(now); // YYYY-MM-DDTHH:MM:SS.ffffff
    stamp.chars().filter(|c| c.is_ascii_digit()).collect()
}

/// Salt's `is_jid`.
pub fn is_jid(jid: &str) -> bool {
    let b = jid.as_bytes();
    (b.len() == 20 || (b.len() > 21 && b[20] == b'_')) && b[..20.min(b.len())].iter().all(u8::is_ascii_digit)
}

/// Create `path` (mode 0600) and write `bytes`: open, write, close.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jids_and_layout_match_salt() {
        let j = gen_jid();
        assert_eq!(j.len(), 20);
        assert!(is_jid(&j) && is_jid("20240101120000123456_77"));
        assert!(!is_jid("2024") && !is_jid("req") && !is_jid("2024010112000012345x"));
        // shared vector: sha256 jid dir
        let c = LocalCache::new(Path::new("/c"), "sha256");
        let h = hex::encode(openssl::sha::sha256(b"20240101120000123456"));
        assert_eq!(
            c.jid_dir("20240101120000123456"),
            Path::new("/c/jobs").join(&h[..2]).join(&h[2..])
        );
    }

    #[test]
    fn save_and_return_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let c = LocalCache::new(d.path(), "sha256");
        let load = Value::map([
            ("fun", Value::from("test.ping")),
            ("jid", Value::from("20240101120000123456")),
        ]);
        c.save_load("20240101120000123456", &load, &["m1".into()]).unwrap();
        assert_eq!(c.load("20240101120000123456"), Some(load));
        let ret = Value::map([
            ("return", Value::Bool(true)),
            ("retcode", Value::Int(0)),
            ("success", Value::Bool(true)),
            ("tok", Value::from("x")),
        ]);
        assert!(c.store_return("20240101120000123456", "m1", &ret).unwrap());
        assert!(
            !c.store_return("20240101120000123456", "m1", &ret).unwrap(),
            "duplicates not re-cached"
        );
        let stored =
            Value::decode(&std::fs::read(c.jid_dir("20240101120000123456").join("m1/return.p")).unwrap()).unwrap();
        assert_eq!(stored.get("tok"), None);
        assert_eq!(stored.get("return"), Some(&Value::Bool(true)));
    }
}
