//! Per-minion session keys (v3 request protocol): `cachedir/sessions/<id>`
//! holds the key string, written atomically with mode 0600 and reused while
//! younger than `publish_session`, as Salt does — so a restart or another
//! worker sees the same key.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use brine_proto::crypto::Crypticle;

pub struct SessionKeys {
    dir: PathBuf,
    max_age: Duration,
    cache: HashMap<String, (SystemTime, Crypticle)>,
}

impl SessionKeys {
    pub fn new(dir: PathBuf, publish_session_secs: u64) -> SessionKeys {
        SessionKeys {
            dir,
            max_age: Duration::from_secs(publish_session_secs),
            cache: HashMap::new(),
        }
    }

    /// The current session key of `id` if one exists and is fresh; never
    /// creates one (requests from unknown ids must not write files).
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

    /// The session key of `id`, creating or renewing it when missing or stale.
    pub fn get(&mut self, id: &str) -> std::io::Result<Crypticle> {
        let path = self.dir.join(id);
        let now = SystemTime::now();
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let fresh = mtime.is_some_and(|t| now.duration_since(t).unwrap_or_default() < self.max_age);
        if let (Some((cached_mtime, c)), Some(m)) = (self.cache.get(id), mtime) {
            if fresh && *cached_mtime == m {
                return Ok(c.clone());
            }
        }
        if fresh {
            if let Ok(s) = std::fs::read_to_string(&path) {
                if let Ok(c) = Crypticle::from_key_string(&s) {
                    self.cache.insert(id.to_string(), (mtime.unwrap(), c.clone()));
                    return Ok(c);
                }
            }
        }
        let key = Crypticle::generate_key_string();
        brine_cache::fs::write_atomic(&path, key.as_bytes(), 0o600)?;
        let c = Crypticle::from_key_string(&key).map_err(std::io::Error::other)?;
        let m = std::fs::metadata(&path)?.modified()?;
        self.cache.insert(id.to_string(), (m, c.clone()));
        Ok(c)
    }
}
