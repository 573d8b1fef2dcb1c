//! Per-minion session keys (v3 request protocol): `cachedir/sessions/<id>`
//! holds the key string, written atomically with mode 0600 and reused while
//! younger than `publish_session`, as Salt does — so a restart or another
//! worker sees the same key.
//!
//! When that file cannot be written (the disk is full or read-only), the
//! minion is given a key every MWorker can compute without storage: an
//! HMAC of the minion id and the current `publish_session` period under a
//! secret derived from the master's private key (which every MWorker
//! loads, and which stays the same across restarts). A request is opened
//! with the file's key when there is a fresh one and, failing that, with
//! the derived key, so a minion keeps working whichever it was given;
//! when the period ends the derived key stops being accepted and the
//! minion re-authenticates, as it does when a session file expires.
//! Salt's master has no such fallback: its `_auth` fails.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brine_proto::crypto::{Crypticle, PrivateKey};

use crate::alarm::{self, Store};

pub struct SessionKeys {
    dir: PathBuf,
    max_age: Duration,
    cache: HashMap<String, (SystemTime, Crypticle)>,
    /// The secret derived keys are made under (see the module doc).
    secret: [u8; 32],
    /// id → (period, derived key).
    derived: HashMap<String, (u64, Crypticle)>,
}

impl SessionKeys {
    pub fn new(dir: PathBuf, publish_session_secs: u64, master_key: &PrivateKey) -> SessionKeys {
        let pem = master_key.to_pem_pkcs1().expect("the loaded master key serialises");
        let mut h = openssl::sha::Sha256::new();
        h.update(b"brine session keys\0");
        h.update(&pem);
        SessionKeys {
            dir,
            max_age: Duration::from_secs(publish_session_secs),
            cache: HashMap::new(),
            secret: h.finish(),
            derived: HashMap::new(),
        }
    }

    /// The current session key of `id` from its file, if one exists and is
    /// fresh; never creates one (requests from unknown ids must not write
    /// files).
    pub fn existing(&mut self, id: &str) -> Option<Crypticle> {
        let path = self.dir.join(id);
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        if SystemTime::now().duration_since(mtime).unwrap_or_default() >= self.max_age {
            return None;
        }
        if let Some((m, c)) = self.cache.get(id) {
            if *m == mtime {
                return Some(c.clone());
            }
        }
        let c = Crypticle::from_key_string(&std::fs::read_to_string(&path).ok()?).ok()?;
        self.cache.insert(id.to_string(), (mtime, c.clone()));
        Some(c)
    }

    /// The session key of `id`, creating or renewing its file when missing
    /// or stale; the derived key when the file cannot be written (logged
    /// CRITICAL once a minute).
    pub fn get(&mut self, id: &str) -> Crypticle {
        let path = self.dir.join(id);
        let now = SystemTime::now();
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let fresh = mtime.is_some_and(|t| now.duration_since(t).unwrap_or_default() < self.max_age);
        if let (Some((cached_mtime, c)), Some(m)) = (self.cache.get(id), mtime) {
            if fresh && *cached_mtime == m {
                return c.clone();
            }
        }
        if fresh {
            if let Ok(s) = std::fs::read_to_string(&path) {
                if let Ok(c) = Crypticle::from_key_string(&s) {
                    self.cache.insert(id.to_string(), (mtime.unwrap(), c.clone()));
                    return c;
                }
            }
        }
        let c = Crypticle::generate();
        if let Err(e) = brine_cache::fs::write_atomic(&path, c.key_string().as_bytes(), 0o600) {
            alarm::failed(
                Store::SessionKey,
                Some(e.kind()),
                &format!("cannot write {}: {e}", path.display()),
            );
            return self.derived(id);
        }
        alarm::ok(Store::SessionKey);
        if let Ok(m) = std::fs::metadata(&path).and_then(|m| m.modified()) {
            self.cache.insert(id.to_string(), (m, c.clone()));
        }
        c
    }

    /// The key derived for `id` in the current `publish_session` period.
    pub fn derived(&mut self, id: &str) -> Crypticle {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let period = secs / self.max_age.as_secs().max(1);
        if let Some((p, c)) = self.derived.get(id) {
            if *p == period {
                return c.clone();
            }
        }
        let c = derive(&self.secret, id, period);
        self.derived.insert(id.to_string(), (period, c.clone()));
        c
    }
}

/// HMAC-SHA512(secret, period ‖ id), its first 56 bytes as a key.
fn derive(secret: &[u8; 32], id: &str, period: u64) -> Crypticle {
    let mac = (|| {
        let key = openssl::pkey::PKey::hmac(secret)?;
        let mut s = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha512(), &key)?;
        s.update(&period.to_be_bytes())?;
        s.update(id.as_bytes())?;
        s.sign_to_vec()
    })()
    .expect("HMAC-SHA512 is available");
    let mut raw = [0u8; 56];
    raw.copy_from_slice(&mac[..56]);
    Crypticle::from_raw(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> PrivateKey {
        PrivateKey::generate(2048).unwrap()
    }

    /// Two MWorkers of one master, with a sessions dir nobody can write
    /// (a path under a regular file: even root gets ENOTDIR): the key one
    /// hands out at `_auth` opens requests in the other.
    #[test]
    fn workers_agree_on_the_derived_key_when_the_file_cannot_be_written() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("file"), b"").unwrap();
        let dir = d.path().join("file/sessions");
        let key = master();
        let mut a = SessionKeys::new(dir.clone(), 86_400, &key);
        let mut b = SessionKeys::new(dir.clone(), 86_400, &key);
        // The derived key changes at each period's end (midnight UTC here):
        // start again if one ended between the two workers' calls.
        let day = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400;
        let mut given;
        loop {
            let before = day();
            given = a.get("m1");
            let other = b.derived("m1");
            if day() == before {
                assert_eq!(other.key_string(), given.key_string());
                break;
            }
        }
        assert!(a.existing("m1").is_none() && b.existing("m1").is_none());
        let sealed = given.seal(b"{}", None).unwrap();
        assert_eq!(
            b.derived("m1").open(&sealed, None).unwrap(),
            Some(b"{}".to_vec()),
            "another worker opens it"
        );
        assert_eq!(a.get("m1").key_string(), given.key_string(), "stable");
        assert_ne!(b.derived("m2").key_string(), given.key_string(), "per minion");
        // Another master key, another period: other keys.
        let mut other = SessionKeys::new(dir, 86_400, &master());
        assert_ne!(other.derived("m1").key_string(), given.key_string());
        let s = SessionKeys::new(d.path().into(), 86_400, &key);
        assert_ne!(
            derive(&s.secret, "m1", 1).key_string(),
            derive(&s.secret, "m1", 2).key_string()
        );
    }

    #[test]
    fn a_writable_dir_keeps_the_random_file_key() {
        let d = tempfile::tempdir().unwrap();
        let key = master();
        let mut a = SessionKeys::new(d.path().join("sessions"), 86_400, &key);
        let mut b = SessionKeys::new(d.path().join("sessions"), 86_400, &key);
        let given = a.get("m1");
        assert_eq!(
            std::fs::read_to_string(d.path().join("sessions/m1")).unwrap(),
            given.key_string()
        );
        assert_eq!(b.existing("m1").unwrap().key_string(), given.key_string());
        assert_ne!(b.derived("m1").key_string(), given.key_string());
        assert_eq!(a.get("m1").key_string(), given.key_string());
    }
}
