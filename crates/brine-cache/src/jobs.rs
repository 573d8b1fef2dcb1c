//! The job cache behind a narrow interface that reads and writes.
//! [`LocalCache`] is Salt's `local_cache` layout, which Python's `salt` and
//! `salt-run jobs.*` read directly: `cachedir/jobs/<h[:2]>/<h[2:]>/` with
//! `jid`, `.load.p`, `.minions.p` and `<minion>/return.p` (file-dialect
//! msgpack), `h` = `hash_type`(jid). A shared-database backend for several
//! masters implements [`JobCache`] too, and callers do not change.

use std::path::{Path, PathBuf};

use brine_proto::Value;
use brine_py::text;

use crate::fs::{read_p, write_new, write_p};
use crate::CacheError;

/// A job id as Salt makes them (`gen_jid`: UTC `%Y%m%d%H%M%S%f`, 20
/// digits) or accepts them (`is_jid`: 20 digits, optionally `_suffix`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid(String);

impl Jid {
    /// Salt's `gen_jid`: UTC now.
    pub fn generate() -> Jid {
        // YYYY-MM-DDTHH:MM:SS.ffffff
        let stamp = brine_proto::event::utc_stamp(std::time::SystemTime::now());
        Jid(stamp.chars().filter(|c| c.is_ascii_digit()).collect())
    }

    /// A jid that passes Salt's `is_jid`.
    pub fn parse(s: &str) -> Option<Jid> {
        is_jid(s).then(|| Jid(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Jid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Jid> for Value {
    fn from(j: Jid) -> Value {
        Value::Str(j.0)
    }
}

impl From<&Jid> for Value {
    fn from(j: &Jid) -> Value {
        Value::Str(j.0.clone())
    }
}

/// Salt's `is_jid`.
pub fn is_jid(jid: &str) -> bool {
    let b = jid.as_bytes();
    (b.len() == 20 || (b.len() > 21 && b[20] == b'_')) && b[..20.min(b.len())].iter().all(u8::is_ascii_digit)
}

/// What the master keeps of its jobs (Salt's returner interface for
/// `master_job_cache`: `save_load`, `returner`, `get_load`, `get_jid`,
/// `get_jids`).
pub trait JobCache {
    /// Store the publication's clear load (with `jid`, without `key`) and
    /// the expected minions; creates the job.
    fn save_load(&self, jid: &Jid, load: &Value, minions: &[String]) -> std::io::Result<()>;
    /// Store one minion's return; `Ok(false)` if it was already stored.
    fn store_return(&self, jid: &Jid, id: &str, ret: &Value) -> std::io::Result<bool>;
    /// The job's load as saved, if the job exists.
    fn load(&self, jid: &Jid) -> Option<Value>;
    /// Salt's `get_load`: the load with the expected minions under
    /// `Minions` (sorted), or an empty dict.
    fn get_load(&self, jid: &Jid) -> Value;
    /// Salt's `get_jid`: `{minion: {return, retcode?, success?, out?}}`.
    fn get_jid(&self, jid: &Jid) -> Value;
    /// Salt's `get_jids`: every job's load, with its jid.
    fn get_jids(&self) -> Vec<(Jid, Value)>;
}

/// Salt's default `master_job_cache`, the one Brine keeps.
pub const LOCAL_CACHE: &str = "local_cache";

/// The job cache a `master_job_cache` name selects, or
/// [`CacheError::Unsupported`] for a backend Brine does not have.
pub fn open(backend: &str, cachedir: &Path, hash_type: &str) -> Result<Box<dyn JobCache + Send>, CacheError> {
    match backend {
        LOCAL_CACHE => Ok(Box::new(LocalCache::new(cachedir, hash_type))),
        other => Err(CacheError::Unsupported(other.to_string())),
    }
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
    pub fn jid_dir(&self, jid: &Jid) -> PathBuf {
        let md =
            openssl::hash::MessageDigest::from_name(&self.hash_type).unwrap_or(openssl::hash::MessageDigest::sha256());
        let h = hex::encode(openssl::hash::hash(md, jid.as_str().as_bytes()).expect("hash"));
        self.jobs.join(&h[..2]).join(&h[2..])
    }
}

impl JobCache for LocalCache {
    fn save_load(&self, jid: &Jid, load: &Value, minions: &[String]) -> std::io::Result<()> {
        let dir = self.jid_dir(jid);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("jid"), jid.as_str())?;
        // .load.p first: the CLI gives up on a job whose load is missing.
        write_p(&dir.join(".load.p"), load)?;
        write_p(
            &dir.join(".minions.p"),
            &Value::Array(minions.iter().map(|m| Value::from(m.as_str())).collect()),
        )
    }

    fn store_return(&self, jid: &Jid, id: &str, ret: &Value) -> std::io::Result<bool> {
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
                std::fs::write(dir.join("jid"), jid.as_str())?;
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

    fn load(&self, jid: &Jid) -> Option<Value> {
        read_p(&self.jid_dir(jid).join(".load.p"))
    }

    fn get_load(&self, jid: &Jid) -> Value {
        let dir = self.jid_dir(jid);
        let Some(mut load) = read_p(&dir.join(".load.p")).filter(Value::is_map) else {
            return Value::Map(Vec::new());
        };
        // `.minions.p`, and the `.minions.<syndic>.p` files syndics add.
        let mut minions: Vec<String> = Vec::new();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == ".minions.p" || (name.starts_with(".minions.") && name.ends_with(".p")) {
                if let Some(Value::Array(a)) = read_p(&e.path()) {
                    minions.extend(a.iter().filter_map(text));
                }
            }
        }
        minions.sort();
        minions.dedup();
        if !minions.is_empty() {
            load.set("Minions", Value::Array(minions.into_iter().map(Value::from).collect()));
        }
        load
    }

    fn get_jid(&self, jid: &Jid) -> Value {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.jid_dir(jid)).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let Some(data) = read_p(&e.path().join("return.p")) else {
                continue;
            };
            let mut data = if data.is_map() && data.get("return").is_some() {
                data
            } else {
                Value::map([("return", data)])
            };
            if let Some(out) = read_p(&e.path().join("out.p")) {
                data.set("out", out);
            }
            out.push((Value::from(name), data));
        }
        Value::Map(out)
    }

    fn get_jids(&self) -> Vec<(Jid, Value)> {
        let mut out = Vec::new();
        for top in std::fs::read_dir(&self.jobs).into_iter().flatten().flatten() {
            for fin in std::fs::read_dir(top.path()).into_iter().flatten().flatten() {
                let Some(job) = read_p(&fin.path().join(".load.p")).filter(Value::is_map) else {
                    continue;
                };
                // A jid saved as text, or as an int by a CLI that YAML-typed it.
                if let Some(jid) = job.get("jid").and_then(text).and_then(|j| Jid::parse(&j)) {
                    out.push((jid, job));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jids_and_layout_match_salt() {
        let j = Jid::generate();
        assert_eq!(j.as_str().len(), 20);
        assert!(is_jid(j.as_str()) && is_jid("20240101120000123456_77"));
        assert!(!is_jid("2024") && !is_jid("req") && !is_jid("2024010112000012345x"));
        // shared vector: sha256 jid dir
        let c = LocalCache::new(Path::new("/c"), "sha256");
        let jid = Jid::parse("20240101120000123456").unwrap();
        let h = hex::encode(openssl::sha::sha256(b"20240101120000123456"));
        assert_eq!(c.jid_dir(&jid), Path::new("/c/jobs").join(&h[..2]).join(&h[2..]));
    }

    #[test]
    fn save_and_return_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let c = LocalCache::new(d.path(), "sha256");
        let jid = Jid::parse("20240101120000123456").unwrap();
        let load = Value::map([
            ("fun", Value::from("test.ping")),
            ("jid", Value::from("20240101120000123456")),
        ]);
        c.save_load(&jid, &load, &["m1".into()]).unwrap();
        assert_eq!(c.load(&jid), Some(load));
        let ret = Value::map([
            ("return", Value::Bool(true)),
            ("retcode", Value::Int(0)),
            ("success", Value::Bool(true)),
            ("tok", Value::from("x")),
        ]);
        assert!(c.store_return(&jid, "m1", &ret).unwrap());
        assert!(!c.store_return(&jid, "m1", &ret).unwrap(), "duplicates not re-cached");
        let stored = Value::decode(&std::fs::read(c.jid_dir(&jid).join("m1/return.p")).unwrap()).unwrap();
        assert_eq!(stored.get("tok"), None);
        assert_eq!(stored.get("return"), Some(&Value::Bool(true)));
    }
}
