//! The job cache behind a narrow interface that reads and writes.
//! [`LocalCache`] is Salt's `local_cache` layout, which Python's `salt` and
//! `salt-run jobs.*` read directly: `cachedir/jobs/<h[:2]>/<h[2:]>/` with
//! `jid`, `.load.p`, `.minions.p` and `<minion>/return.p` (file-dialect
//! msgpack), `h` = `hash_type`(jid). A shared-database backend for several
//! masters implements [`JobCache`] too, and callers do not change.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use brine_proto::Value;
use brine_py::text;

use crate::fs::{read_p, write_atomic, write_new, write_p};
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

/// Salt's `jid_to_time`: `2015, Mar 04 15:39:32.066574`.
pub fn jid_to_time(jid: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d = &jid[..20.min(jid.len())];
    if d.len() < 20 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return String::new();
    }
    let month = d[4..6].parse::<usize>().unwrap_or(0);
    let Some(name) = month.checked_sub(1).and_then(|m| MONTHS.get(m)) else {
        return String::new();
    };
    format!(
        "{}, {name} {} {}:{}:{}.{}",
        &d[..4],
        &d[6..8],
        &d[8..10],
        &d[10..12],
        &d[12..14],
        &d[14..20]
    )
}

/// The return load a returner's job cache stores (Salt's `store_job`):
/// the function (and user) taken from a return that carries them inside
/// when the load has no `fun`.
pub fn return_load(ret: &Value) -> Value {
    let (mut load, value) = return_load_parts(ret);
    if let Some(v) = value {
        load.set("return", v.clone());
    }
    load
}

/// [`return_load`] in two parts, its return value borrowed rather than
/// copied: the load's other keys, and the value.
pub fn return_load_parts(ret: &Value) -> (Value, Option<&Value>) {
    let value = ret.get("return");
    let mut load = Value::Map(match ret {
        Value::Map(pairs) => pairs
            .iter()
            .filter(|(k, _)| k.as_str() != Some("return"))
            .cloned()
            .collect(),
        _ => Vec::new(),
    });
    if load.get("fun").is_none() {
        for k in ["fun", "user"] {
            if let Some(v) = value.and_then(|r| r.get(k)).cloned() {
                load.set(k, v);
            }
        }
    }
    (load, value)
}

/// What the master keeps of its jobs (Salt's returner interface for
/// `master_job_cache`: `save_load`, `returner`, `get_load`, `get_jid`,
/// `get_jids`, `clean_old_jobs`).
///
/// A write that fails (the store is full or read-only) returns the error,
/// which says where and why, and leaves nothing half-written: the job or
/// the return is simply not cached. Readers take what is there (a job
/// without its load, a minion without its return) as missing, not as an
/// error.
pub trait JobCache: Send + Sync {
    /// Store the publication's clear load (with `jid`, without `key`) and
    /// the expected minions; creates the job.
    fn save_load(&self, jid: &Jid, load: &Value, minions: &[String]) -> Result<(), CacheError>;
    /// [`JobCache::save_load`] for a job the cache does not have yet (a
    /// syndic's job); a job it has keeps its load.
    fn save_load_if_missing(&self, jid: &Jid, load: &Value, minions: &[String]) -> Result<(), CacheError> {
        match self.load(jid) {
            Some(_) => Ok(()),
            None => self.save_load(jid, load, minions),
        }
    }
    /// Store one minion's return; `Ok(false)` if it was already stored.
    fn store_return(&self, jid: &Jid, id: &str, ret: &Value) -> Result<bool, CacheError>;
    /// The job's load as saved, if the job exists.
    fn load(&self, jid: &Jid) -> Option<Value>;
    /// Salt's `get_load`: the load with the expected minions under
    /// `Minions` (sorted), or an empty dict.
    fn get_load(&self, jid: &Jid) -> Value;
    /// Salt's `get_jid`: `{minion: {return, retcode?, success?, out?}}`.
    fn get_jid(&self, jid: &Jid) -> Value;
    /// Salt's `get_jids`: every job's load, with its jid.
    fn get_jids(&self) -> Vec<(Jid, Value)>;
    /// Salt's `clean_old_jobs`, which the master's Maintenance process
    /// calls every `loop_interval`: forget the jobs older than `keep`
    /// (the caller turns `keep_jobs_seconds`, or the older `keep_jobs`
    /// hours, into `keep`; Salt's 0, keep forever, is not a call).
    fn clean_old_jobs(&self, keep: Duration) -> Cleaned;
    /// For a cache that writes later (from a thread of its own): a wait
    /// for every write made so far, for the caller to run off its request
    /// loop before it answers a publication (Python's `salt` reads the
    /// job's load as soon as the publication is answered). `None` when a
    /// write is done when it returns.
    fn barrier(&self) -> Option<Box<dyn FnOnce() + Send>> {
        None
    }
    /// Work a backend does now and then, which Maintenance asks for every
    /// `loop_interval` when it has no jobs to clean (a database backend
    /// writes what processes that are gone had to leave on local disk).
    fn tend(&self) {}
}

/// What one [`JobCache::clean_old_jobs`] pass did.
#[derive(Debug, Default)]
pub struct Cleaned {
    /// Jobs removed.
    pub removed: usize,
    /// Jobs (or directories) that were due but could not be removed; the
    /// pass went on with the others, as Salt's does.
    pub failed: Vec<CacheError>,
}

/// Salt's default `master_job_cache`, the one Brine keeps.
pub const LOCAL_CACHE: &str = "local_cache";

/// The job cache a `master_job_cache` name selects, or
/// [`CacheError::Unsupported`] for a backend Brine does not have.
pub fn open(backend: &str, cfg: &brine_config::MasterConfig) -> Result<Box<dyn JobCache>, CacheError> {
    match backend {
        LOCAL_CACHE => Ok(Box::new(LocalCache::new(&cfg.cachedir, cfg.hash_type()))),
        crate::PGJSONB => Ok(Box::new(crate::PgJsonb::open(cfg)?)),
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

impl LocalCache {
    /// [`JobCache::clean_old_jobs`] as of `now`, as Salt's local_cache
    /// does it: under `jobs/<h[:2]>/`, a job directory whose `jid` file
    /// was modified more than `keep` ago goes (mtime, which a `chown -R`
    /// of the cache does not reset); one without a `jid` file is a corrupt
    /// entry and goes too (Salt removes it at once; here only once it is
    /// a minute old, since `save_load` and `store_return` create the
    /// directory before they write `jid`); a hash-prefix directory that is
    /// empty when the pass reaches it goes once its own mtime is older
    /// than `keep` (a fresh one may be about to receive a job).
    pub fn clean_old_jobs_at(&self, keep: Duration, now: SystemTime) -> Cleaned {
        const UNFINISHED: Duration = Duration::from_secs(60);
        let older = |path: &Path, than: Duration| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > than))
        };
        let mut done = Cleaned::default();
        let Ok(tops) = std::fs::read_dir(&self.jobs) else {
            return done;
        };
        for top in tops.flatten() {
            let top = top.path();
            if !top.is_dir() {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&top) else {
                continue;
            };
            let mut empty = true;
            for e in entries.flatten() {
                empty = false;
                let dir = e.path();
                if !dir.is_dir() {
                    continue;
                }
                let jid = dir.join("jid");
                let expired = if jid.is_file() {
                    older(&jid, keep)
                } else {
                    older(&dir, UNFINISHED)
                };
                if expired {
                    match std::fs::remove_dir_all(&dir) {
                        Ok(()) => done.removed += 1,
                        Err(e) => done.failed.push(CacheError::write(&dir)(e)),
                    }
                }
            }
            if empty && older(&top, keep) {
                if let Err(e) = std::fs::remove_dir(&top) {
                    done.failed.push(CacheError::write(&top)(e));
                }
            }
        }
        done
    }
}

impl LocalCache {
    fn save_load_now(&self, jid: &Jid, load: &Value, minions: &[String]) -> Result<(), CacheError> {
        let dir = self.jid_dir(jid);
        let new = !dir.exists();
        let saved = (|| {
            std::fs::create_dir_all(&dir).map_err(CacheError::write(&dir))?;
            let jid_file = dir.join("jid");
            write_atomic(&jid_file, jid.as_str().as_bytes(), 0o644).map_err(CacheError::write(&jid_file))?;
            // .load.p first: the CLI gives up on a job whose load is missing.
            let load_p = dir.join(".load.p");
            write_p(&load_p, load).map_err(CacheError::write(&load_p))?;
            let minions_p = dir.join(".minions.p");
            let minions = Value::Array(minions.iter().map(|m| Value::from(m.as_str())).collect());
            write_p(&minions_p, &minions).map_err(CacheError::write(&minions_p))
        })();
        if saved.is_err() && new {
            // A job this call began is not left half-saved (a load
            // without its minions): the whole directory goes, and its
            // hash-prefix parent if that is empty now. Nothing has been
            // published under this jid yet.
            let _ = std::fs::remove_dir_all(&dir);
            if let Some(top) = dir.parent() {
                let _ = std::fs::remove_dir(top);
            }
        }
        saved
    }

    fn store_return_now(&self, jid: &Jid, id: &str, ret: &Value) -> Result<bool, CacheError> {
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
                std::fs::create_dir_all(&dir).map_err(CacheError::write(&dir))?;
                let jid_file = dir.join("jid");
                write_atomic(&jid_file, jid.as_str().as_bytes(), 0o644).map_err(CacheError::write(&jid_file))?;
                match std::fs::create_dir(&mdir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                    Err(e) => return Err(CacheError::write(&mdir)(e)),
                }
            }
            Err(e) => return Err(CacheError::write(&mdir)(e)),
        }
        let mut stored = Value::Map(Vec::new());
        for k in ["return", "retcode", "success"] {
            if let Some(v) = ret.get(k) {
                stored.set(k, v.clone());
            }
        }
        let return_p = mdir.join("return.p");
        let mut written = write_new(&return_p, &stored.to_file()).map_err(CacheError::write(&return_p));
        if written.is_ok() {
            if let Some(out) = ret.get("out") {
                let out_p = mdir.join("out.p");
                written = write_new(&out_p, &out.to_file()).map_err(CacheError::write(&out_p));
            }
        }
        if let Err(e) = written {
            // All or nothing: readers list a minion only with its
            // return.p, and a retry of the same return may store it.
            let _ = std::fs::remove_file(&return_p);
            let _ = std::fs::remove_dir(&mdir);
            return Err(e);
        }
        Ok(true)
    }
}

/// Who is told of each write a job cache makes to its store.
static WRITE_OBSERVER: std::sync::OnceLock<fn(bool, Duration)> = std::sync::OnceLock::new();

/// Have `f` called after every write to the store (a job's load or a
/// return on local disk; a batch of them in the database for pgjsonb),
/// with whether it worked and how long it took: the master's metrics.
/// Set once per process tree, before the job caches are opened.
pub fn observe_writes(f: fn(bool, Duration)) {
    let _ = WRITE_OBSERVER.set(f);
}

/// Tell the observer of a write that was not made (the store is away).
pub(crate) fn unwritten() {
    if let Some(observer) = WRITE_OBSERVER.get() {
        observer(false, Duration::ZERO);
    }
}

/// Run the write `f`, telling the observer how it went.
pub(crate) fn observed<T, E>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let Some(observer) = WRITE_OBSERVER.get() else {
        return f();
    };
    let start = std::time::Instant::now();
    let out = f();
    observer(out.is_ok(), start.elapsed());
    out
}

impl JobCache for LocalCache {
    fn save_load(&self, jid: &Jid, load: &Value, minions: &[String]) -> Result<(), CacheError> {
        observed(|| self.save_load_now(jid, load, minions))
    }

    fn store_return(&self, jid: &Jid, id: &str, ret: &Value) -> Result<bool, CacheError> {
        observed(|| self.store_return_now(jid, id, ret))
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

    fn clean_old_jobs(&self, keep: Duration) -> Cleaned {
        self.clean_old_jobs_at(keep, SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jid_to_time_is_salts() {
        assert_eq!(jid_to_time("20150304153932066574"), "2015, Mar 04 15:39:32.066574");
        assert_eq!(jid_to_time("2015030415393206657"), "");
        assert_eq!(jid_to_time("20151304153932066574"), "");
    }

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

    fn ret(v: Value) -> Value {
        Value::map([("return", v), ("retcode", Value::Int(0))])
    }

    /// A full store refuses the job and the return with the path and the
    /// OS error, leaves no half-saved job or return behind, and takes them
    /// again once space is back.
    #[test]
    fn writes_to_a_full_cache_fail_whole_and_resume() {
        let d = tempfile::tempdir().unwrap();
        let Some(mut fs) = brine_testutil::Tmpfs::mount(&d.path().join("jobs"), "256k", 200) else {
            return;
        };
        let c = LocalCache::new(d.path(), "sha256");
        let jid = Jid::parse("20240101120000123456").unwrap();
        let load = Value::map([("fun", Value::from("test.ping")), ("jid", Value::from(jid.as_str()))]);
        // The load fits, the list of minions does not: no job is left.
        let many: Vec<String> = (0..40_000).map(|i| format!("minion-{i:06}")).collect();
        let e = c.save_load(&jid, &load, &many).unwrap_err().to_string();
        assert!(e.contains(".minions.p: No space left on device"), "{e}");
        assert!(!c.jid_dir(&jid).exists(), "half-saved job left behind");
        assert!(c.get_jids().is_empty());
        c.save_load(&jid, &load, &["m1".into(), "m2".into()]).unwrap();
        // A return larger than the space left: neither return.p nor the
        // minion's directory stay, so readers do not list it.
        let e = c
            .store_return(&jid, "m1", &ret(Value::from("x".repeat(512 * 1024))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("m1/return.p: No space left on device"), "{e}");
        assert!(!c.jid_dir(&jid).join("m1").exists());
        // A return that fits with an `out` that does not: all or nothing.
        let mut r = ret(Value::Bool(true));
        r.set("out", Value::from("y".repeat(512 * 1024)));
        assert!(c.store_return(&jid, "m1", &r).is_err());
        assert!(!c.jid_dir(&jid).join("m1").exists());
        assert_eq!(c.get_jid(&jid), Value::Map(vec![]));
        // No inodes and no space at all.
        fs.fill();
        let other = Jid::parse("20240101120000123457").unwrap();
        assert!(c.save_load(&other, &load, &["m1".into()]).is_err());
        assert!(!c.jid_dir(&other).exists());
        let e = c
            .store_return(&jid, "m2", &ret(Value::Bool(true)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("No space left on device"), "{e}");
        assert!(c.store_return(&other, "m2", &ret(Value::Bool(true))).is_err());
        // The job saved before is still whole.
        assert_eq!(
            c.get_load(&jid).get("Minions"),
            Some(&Value::Array(vec!["m1".into(), "m2".into()]))
        );
        // Space is back: the same return is stored, readers see it.
        fs.free();
        assert!(c.store_return(&jid, "m1", &ret(Value::Bool(true))).unwrap());
        assert_eq!(
            c.get_jid(&jid).get("m1").and_then(|m| m.get("return")),
            Some(&Value::Bool(true))
        );
        // Read-only: refused, nothing created.
        fs.read_only(true);
        let e = c
            .store_return(&jid, "m2", &ret(Value::Bool(true)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Read-only file system"), "{e}");
        assert!(c.save_load(&other, &load, &[]).is_err());
        assert_eq!(c.get_jids().len(), 1);
        assert!(c.get_jid(&jid).get("m2").is_none());
    }

    #[test]
    fn clean_old_jobs_removes_expired_and_corrupt_jobs() {
        use std::fs::{create_dir_all, write, File};
        let t = tempfile::tempdir().unwrap();
        let c = LocalCache::new(t.path(), "sha256");
        let jobs = t.path().join("jobs");
        let old = jobs.join("ab/cdef");
        let new = jobs.join("ab/0123");
        let corrupt = jobs.join("cd/4567");
        let empty_old = jobs.join("ef");
        for d in [&old, &new, &corrupt, &empty_old] {
            create_dir_all(d).unwrap();
        }
        write(old.join("jid"), "20240101000000000000").unwrap();
        write(new.join("jid"), "20990101000000000000").unwrap();
        // The pass runs "two days from now": `new` was written then.
        let later = SystemTime::now() + Duration::from_secs(2 * 86_400);
        File::options()
            .write(true)
            .open(new.join("jid"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        let done = c.clean_old_jobs_at(Duration::from_secs(86_400), later);
        assert_eq!(done.removed, 2, "old and corrupt removed");
        assert!(done.failed.is_empty(), "{:?}", done.failed);
        assert!(!old.exists() && !corrupt.exists());
        assert!(new.exists(), "a job younger than keep stays");
        assert!(!empty_old.exists(), "an empty prefix dir older than keep goes");
        // `cd` was emptied by this pass: it goes at the next one.
        assert!(jobs.join("cd").exists());
        let done = c.clean_old_jobs_at(Duration::from_secs(86_400), later);
        assert_eq!(done.removed, 0);
        assert!(!jobs.join("cd").exists());

        // Just now: a job dir without its jid file yet, and an empty
        // prefix dir, are being written and stay.
        let fresh = jobs.join("01/2345");
        create_dir_all(&fresh).unwrap();
        create_dir_all(jobs.join("02")).unwrap();
        let done = c.clean_old_jobs(Duration::from_secs(86_400));
        assert_eq!(done.removed, 0);
        assert!(fresh.exists() && jobs.join("02").exists());
        // Through the trait, a job saved now is kept and expires later.
        let jid = Jid::parse("20240101120000123456").unwrap();
        c.save_load(&jid, &Value::map([("fun", Value::from("test.ping"))]), &[])
            .unwrap();
        let cache: &dyn JobCache = &c;
        assert_eq!(cache.clean_old_jobs(Duration::from_secs(3600)).removed, 0);
        assert!(c.load(&jid).is_some());
        assert_eq!(c.clean_old_jobs_at(Duration::from_secs(3600), later).removed, 2);
        assert!(c.load(&jid).is_none());
        // No jobs directory at all: nothing to do.
        let none = tempfile::tempdir().unwrap();
        assert_eq!(
            LocalCache::new(none.path(), "sha256")
                .clean_old_jobs(Duration::ZERO)
                .removed,
            0
        );
    }

    /// Readers take a job directory with files missing (a job saved in
    /// part by another tool, returns without a load, a temp file) as what
    /// it holds.
    #[test]
    fn readers_tolerate_a_job_dir_missing_files() {
        let d = tempfile::tempdir().unwrap();
        let c = LocalCache::new(d.path(), "sha256");
        let only_jid = Jid::parse("20240101120000000001").unwrap();
        std::fs::create_dir_all(c.jid_dir(&only_jid)).unwrap();
        std::fs::write(c.jid_dir(&only_jid).join("jid"), only_jid.as_str()).unwrap();
        assert_eq!(c.load(&only_jid), None);
        assert_eq!(c.get_load(&only_jid), Value::Map(vec![]));
        assert_eq!(c.get_jid(&only_jid), Value::Map(vec![]));
        // Returns stored without the job's load (its save failed).
        let no_load = Jid::parse("20240101120000000002").unwrap();
        assert!(c.store_return(&no_load, "m1", &ret(Value::Bool(true))).unwrap());
        assert_eq!(c.get_load(&no_load), Value::Map(vec![]));
        assert!(c.get_jid(&no_load).get("m1").is_some());
        // A load without `.minions.p`, a minion dir without `return.p`,
        // an empty `return.p`, and a temp file.
        let partial = Jid::parse("20240101120000000003").unwrap();
        let dir = c.jid_dir(&partial);
        std::fs::create_dir_all(dir.join("m2")).unwrap();
        std::fs::create_dir_all(dir.join("m3")).unwrap();
        std::fs::write(dir.join("m3/return.p"), b"").unwrap();
        std::fs::write(dir.join(".load.p.1.2.tmp"), b"\x81").unwrap();
        let load = Value::map([
            ("jid", Value::from(partial.as_str())),
            ("fun", Value::from("test.ping")),
        ]);
        std::fs::write(dir.join(".load.p"), load.to_file()).unwrap();
        assert_eq!(c.get_load(&partial), load);
        assert_eq!(c.get_jid(&partial), Value::Map(vec![]));
        let jids: Vec<Jid> = c.get_jids().into_iter().map(|(j, _)| j).collect();
        assert_eq!(jids, vec![partial]);
    }
}
