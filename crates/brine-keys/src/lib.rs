//! Minion keys, stored the way Salt stores them, behind [`KeyStore`], and
//! the key operations of `salt-key` and the wheel (`Keys`, Salt's
//! `salt.key.Key`).
//!
//! The master, `salt-key` and (later) a shared-database store for several
//! masters all go through this trait; [`FsKeyStore`] is Salt's own layout,
//! `pki_dir/{minions,minions_pre,minions_rejected,minions_denied}/<id>`,
//! each file holding the minion's public key as the minion sent it. It keeps
//! no cache: every call reads the directories, so changes made by Python's
//! `salt-key` are seen at once.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

mod manage;

pub use manage::{globs, Detail, Keys, Listing, Match, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyState {
    Accepted,
    Pending,
    Rejected,
    Denied,
}

impl KeyState {
    pub const ALL: [KeyState; 4] = [
        KeyState::Accepted,
        KeyState::Pending,
        KeyState::Rejected,
        KeyState::Denied,
    ];

    /// Salt's directory name under `pki_dir`.
    pub fn dir(self) -> &'static str {
        match self {
            KeyState::Accepted => "minions",
            KeyState::Pending => "minions_pre",
            KeyState::Rejected => "minions_rejected",
            KeyState::Denied => "minions_denied",
        }
    }

    /// The state whose directory is `dir`.
    pub fn from_dir(dir: &str) -> Option<KeyState> {
        KeyState::ALL.into_iter().find(|s| s.dir() == dir)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid minion id {0:?}")]
    InvalidId(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("minion data cache: {0}")]
    Cache(#[from] brine_cache::CacheError),
}

/// What a key is now, cheaply: equal stamps mean the key did not change
/// in between (for a file: its device, inode, modification and change
/// times, so a key replaced, rewritten or moved back gets another stamp).
/// A caller that checks a key on every request (the MWorker's `tok`) keeps
/// what it verified with the stamp and reads the key again only when the
/// stamp moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyStamp([u64; 4]);

impl KeyStamp {
    /// The stamp as four words (to store it where a type cannot go, as
    /// in memory shared between processes).
    pub fn words(&self) -> [u64; 4] {
        self.0
    }

    /// The stamp of a key's content (the trait's default, for stores
    /// that have nothing cheaper than reading the key).
    pub fn of_content(pem: &str) -> KeyStamp {
        let d = openssl::sha::sha256(pem.as_bytes());
        let w = |i: usize| u64::from_be_bytes(d[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        KeyStamp([w(0), w(1), w(2), w(3)])
    }
}

/// What the master and the CLIs need from a key store.
pub trait KeyStore {
    /// The key of `id` in `state`, if present.
    fn get(&self, state: KeyState, id: &str) -> Result<Option<String>, KeyError>;
    /// The [`KeyStamp`] of the key of `id` in `state`, if present.
    fn stamp(&self, state: KeyState, id: &str) -> Result<Option<KeyStamp>, KeyError> {
        Ok(self.get(state, id)?.map(|pem| KeyStamp::of_content(&pem)))
    }
    /// Store `pem` for `id` in `state` (replacing it).
    fn put(&self, state: KeyState, id: &str, pem: &str) -> Result<(), KeyError>;
    /// Remove `id` from `state`; whether it was there.
    fn remove(&self, state: KeyState, id: &str) -> Result<bool, KeyError>;
    /// Ids in `state`, sorted.
    fn list(&self, state: KeyState) -> Result<Vec<String>, KeyError>;

    /// Move `id` from `from` to `to`; whether it was in `from`.
    fn transfer(&self, from: KeyState, to: KeyState, id: &str) -> Result<bool, KeyError> {
        match self.get(from, id)? {
            Some(pem) => {
                self.put(to, id, &pem)?;
                self.remove(from, id)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Salt's pki_dir layout on the local filesystem.
#[derive(Debug, Clone)]
pub struct FsKeyStore {
    pki_dir: PathBuf,
}

impl FsKeyStore {
    pub fn new(pki_dir: impl Into<PathBuf>) -> FsKeyStore {
        FsKeyStore {
            pki_dir: pki_dir.into(),
        }
    }

    pub fn pki_dir(&self) -> &Path {
        &self.pki_dir
    }

    fn path(&self, state: KeyState, id: &str) -> Result<PathBuf, KeyError> {
        if !valid_id(&self.pki_dir, id) {
            return Err(KeyError::InvalidId(id.to_string()));
        }
        Ok(self.pki_dir.join(state.dir()).join(id))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

impl KeyStore for FsKeyStore {
    fn get(&self, state: KeyState, id: &str) -> Result<Option<String>, KeyError> {
        let p = self.path(state, id)?;
        match std::fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// One stat(2) instead of open, read and close.
    fn stamp(&self, state: KeyState, id: &str) -> Result<Option<KeyStamp>, KeyError> {
        use std::os::unix::fs::MetadataExt;
        let p = self.path(state, id)?;
        match std::fs::metadata(&p) {
            Ok(m) => {
                let ns = |s: i64, n: i64| (s as u64).wrapping_mul(1_000_000_000).wrapping_add(n as u64);
                Ok(Some(KeyStamp([
                    m.dev(),
                    m.ino(),
                    ns(m.mtime(), m.mtime_nsec()),
                    ns(m.ctime(), m.ctime_nsec()),
                ])))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    fn put(&self, state: KeyState, id: &str, pem: &str) -> Result<(), KeyError> {
        let p = self.path(state, id)?;
        let dir = p.parent().unwrap();
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // Write a temp file beside it and rename: readers never see half a key.
        let tmp = dir.join(format!(".{id}.{}.tmp", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(pem.as_bytes()).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        // root writing into a master's pki dir (salt-key as root for a
        // master with `user: salt`): the key belongs to the dir's owner, as
        // Salt's salt-key leaves it (it moves the file the master wrote).
        {
            use std::os::unix::fs::MetadataExt;
            let owner = std::fs::metadata(dir).map_err(io(dir))?;
            let written_by_root = f.metadata().map_err(io(&tmp))?.uid() == 0;
            if written_by_root && owner.uid() != 0 {
                std::os::unix::fs::chown(&tmp, Some(owner.uid()), Some(owner.gid())).map_err(io(&tmp))?;
            }
        }
        std::fs::rename(&tmp, &p).map_err(io(&p))
    }

    fn remove(&self, state: KeyState, id: &str) -> Result<bool, KeyError> {
        let p = self.path(state, id)?;
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&p)(e)),
        }
    }

    fn list(&self, state: KeyState) -> Result<Vec<String>, KeyError> {
        let dir = self.pki_dir.join(state.dir());
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// Salt's `crypt.dropfile`: ask the running master to rotate its AES key
/// by leaving `cachedir/.dfn` (mode 0400, content = the master id, as
/// 3007 writes it), through a temp file and a rename.
pub fn drop_rotation_file(cachedir: &Path, master_id: &str) -> std::io::Result<()> {
    let dfn = cachedir.join(".dfn");
    let next = cachedir.join(format!(".dfn-{}", std::process::id()));
    let _ = std::fs::remove_file(&next);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&next)?;
    f.write_all(master_id.as_bytes())?;
    drop(f);
    std::fs::rename(&next, &dfn)
}

/// Salt's `valid_id`: no `/`, `\` or NUL, and `pki_dir/<id>` must be a
/// direct child of `pki_dir` (so not empty, `.` or `..`). Stricter than
/// Salt: no control characters either, so an id can neither forge a line
/// in the master's log nor one in `salt-key -L` (`x\nminion1` would list
/// a fake `minion1`).
pub fn valid_id(pki_dir: &Path, id: &str) -> bool {
    if id.is_empty() || id.contains(['/', '\\', '\0']) || id == "." || id == ".." || id.chars().any(char::is_control) {
        return false;
    }
    pki_dir.join(id).parent() == Some(pki_dir)
}

/// A minion id the master has checked with [`valid_id`]: what the request
/// channel hands the master's functions for an authenticated minion, safe
/// to use as one path component under `pki_dir` and `cachedir`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MinionId(String);

impl MinionId {
    /// `id` if [`valid_id`] accepts it.
    pub fn new(pki_dir: &Path, id: &str) -> Option<MinionId> {
        valid_id(pki_dir, id).then(|| MinionId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for MinionId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MinionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for MinionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&MinionId> for brine_proto::Value {
    fn from(id: &MinionId) -> Self {
        brine_proto::Value::from(id.as_str())
    }
}

impl AsRef<Path> for MinionId {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

/// Salt's `pem_finger`: the hash (`finger_hash_type`, default sha256) of
/// the PEM body lines (armor stripped, each line with its newline), as
/// colon-separated hex pairs.
pub fn fingerprint(pem: &str, hash_type: &str) -> Option<String> {
    let normalized = pem.replace("\r\n", "\n");
    let lines: Vec<&str> = normalized.split('\n').filter(|l| !l.trim().is_empty()).collect();
    let body: Vec<u8> = if lines.len() >= 2
        && lines[0].trim().starts_with("-----BEGIN")
        && lines[lines.len() - 1].trim().starts_with("-----END")
    {
        lines[1..lines.len() - 1]
            .iter()
            .flat_map(|l| l.bytes().chain(std::iter::once(b'\n')))
            .collect()
    } else {
        pem.as_bytes().to_vec()
    };
    let md = openssl::hash::MessageDigest::from_name(hash_type)?;
    let digest = openssl::hash::hash(md, &body).ok()?;
    let hexed = hex::encode(digest);
    let pairs: Vec<&str> = (0..hexed.len()).step_by(2).map(|i| &hexed[i..i + 2]).collect();
    Some(pairs.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_escape_the_pki_dir_are_invalid() {
        let pki = Path::new("/etc/salt/pki/master");
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "a\0b",
            "/abs",
            "x\nminion1",
            "a\rb",
            "a\u{1b}[31m",
            "a\u{85}b",
        ] {
            assert!(!valid_id(pki, bad), "{bad:?}");
            assert!(MinionId::new(pki, bad).is_none(), "{bad:?}");
        }
        for good in ["m1", "web-01.example.com", "..hidden", "a b"] {
            assert!(valid_id(pki, good), "{good:?}");
            let id = MinionId::new(pki, good).unwrap();
            assert_eq!((id.as_str(), id.to_string()), (good, good.to_string()));
            assert_eq!(pki.join(&id).parent(), Some(pki));
        }
    }

    #[test]
    fn store_round_trip_and_transfer() {
        let d = tempfile::tempdir().unwrap();
        let s = FsKeyStore::new(d.path());
        assert_eq!(s.list(KeyState::Pending).unwrap(), Vec::<String>::new());
        s.put(KeyState::Pending, "m2", "KEY2").unwrap();
        s.put(KeyState::Pending, "m1", "KEY1").unwrap();
        assert_eq!(s.list(KeyState::Pending).unwrap(), vec!["m1", "m2"]);
        assert!(s.transfer(KeyState::Pending, KeyState::Accepted, "m1").unwrap());
        assert_eq!(s.get(KeyState::Accepted, "m1").unwrap().as_deref(), Some("KEY1"));
        assert_eq!(s.get(KeyState::Pending, "m1").unwrap(), None);
        assert!(!s.transfer(KeyState::Pending, KeyState::Accepted, "nope").unwrap());
        assert!(s.remove(KeyState::Pending, "m2").unwrap());
        assert!(!s.remove(KeyState::Pending, "m2").unwrap());
        assert!(matches!(
            s.put(KeyState::Accepted, "../evil", "x"),
            Err(KeyError::InvalidId(_))
        ));
        assert!(!d.path().join("evil").exists());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(d.path().join("minions/m1")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644);
        // Temp files never show up as ids.
        std::fs::write(d.path().join("minions/.m9.1.tmp"), "x").unwrap();
        assert_eq!(s.list(KeyState::Accepted).unwrap(), vec!["m1"]);
    }

    #[test]
    fn fingerprint_of_the_body_lines() {
        let pem = "-----BEGIN PUBLIC KEY-----\r\nAAAA\r\nBBBB\r\n-----END PUBLIC KEY-----\r\n\r\n";
        // sha256(b"AAAA\nBBBB\n"), as Salt's pem_finger hashes the body lines.
        let want = hex::encode(openssl::sha::sha256(b"AAAA\nBBBB\n"));
        let f = fingerprint(pem, "sha256").unwrap();
        assert_eq!(f.replace(':', ""), want);
        assert_eq!(f.len(), 64 + 31);
        assert_eq!(fingerprint(pem, "md5").unwrap().len(), 32 + 15);
        assert!(fingerprint(pem, "nohash").is_none());
    }
}
