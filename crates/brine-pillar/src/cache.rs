//! Salt's pillar cache (`pillar_cache: True`, `salt.pillar.PillarCache`):
//! a minion's compiled pillar, per `pillarenv`, served again without
//! compiling it (nor calling its `ext_pillar` modules) until
//! `pillar_cache_ttl` seconds (default 3600) after it was stored.
//!
//! * `pillar_cache_backend: disk` (the default): Salt's `CacheDisk` file
//!   `cachedir/pillar_cache/<minion id>`, msgpack `{"CacheDisk_data":
//!   {id: {pillarenv: pillar}}, "CacheDisk_cachetime": {id: time}}`, so
//!   that Python's master and tools read what Brine wrote and back.
//! * `memory`: in the compiling process only, as Salt's (each MWorker
//!   has its own).
//!
//! As in Salt: the entry's age is the minion's (a new pillarenv does not
//! renew the others), `clean_cache` in the request (`saltutil.
//! refresh_pillar clean_cache=True`, the default) empties it first, and a
//! cached pillar is compiled without the request's `pillar_override`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use brine_config::MasterConfig;
use brine_proto::Value;
use log::{debug, warn};

/// `pillar_cache_ttl` when not set.
const DEFAULT_TTL: f64 = 3600.0;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One minion's cache: Salt's `CacheDisk` (or `CacheDict`) contents.
#[derive(Default, Clone)]
struct Entry {
    /// id → {pillarenv: pillar}
    data: Vec<(Value, Value)>,
    /// id → time stored
    times: Vec<(Value, Value)>,
}

static MEMORY: Mutex<Option<HashMap<String, Entry>>> = Mutex::new(None);

enum Backend {
    Disk(PathBuf),
    Memory,
}

/// A minion's pillar through the cache, when `pillar_cache` is on:
/// `compile` is called on a miss.
pub fn cached(
    cfg: &MasterConfig,
    id: &str,
    pillarenv: Option<&str>,
    clean: bool,
    compile: impl FnOnce() -> Value,
) -> Value {
    // The id names a file: never one with a separator, or `.`/`..`.
    if id.is_empty() || id.contains('/') || id == "." || id == ".." || id.contains('\0') {
        warn!("pillar cache: minion id {id:?} cannot name a cache file; not cached");
        return compile();
    }
    let backend = match cfg.get_str("pillar_cache_backend").unwrap_or("disk") {
        "memory" => Backend::Memory,
        _ => Backend::Disk(cfg.cachedir.join("pillar_cache").join(id)),
    };
    let ttl = cfg
        .get("pillar_cache_ttl")
        .and_then(|v| v.as_f64())
        .unwrap_or(DEFAULT_TTL);
    let mut entry = if clean { Entry::default() } else { read(&backend, id) };
    let key = Value::from(id);
    let env = pillarenv.map_or(Value::Nil, Value::from);
    // CacheDisk._enforce_ttl_key: an entry past its time is dropped.
    let fresh = lookup(&entry.times, &key)
        .and_then(|t| match t {
            Value::F64(f) => Some(*f),
            Value::F32(f) => Some(f64::from(*f)),
            other => other.as_i64().map(|i| i as f64),
        })
        .is_some_and(|t| now() - t <= ttl);
    if !fresh {
        entry.data.retain(|(k, _)| *k != key);
        entry.times.retain(|(k, _)| *k != key);
    }
    if let Some(Value::Map(envs)) = lookup(&entry.data, &key) {
        if let Some(pillar) = lookup(envs, &env) {
            debug!("Pillar cache hit for minion {id} and pillarenv {env:?}");
            return pillar.clone();
        }
        debug!("Pillar cache miss for pillarenv {env:?} for minion {id}");
        let pillar = compile();
        let mut envs = envs.clone();
        envs.push((env, pillar.clone()));
        set(&mut entry.data, key.clone(), Value::Map(envs));
        set(&mut entry.times, key, Value::F64(now()));
        write(&backend, id, &entry);
        return pillar;
    }
    debug!("Pillar cache miss for minion {id}");
    let pillar = compile();
    set(&mut entry.data, key.clone(), Value::Map(vec![(env, pillar.clone())]));
    set(&mut entry.times, key, Value::F64(now()));
    write(&backend, id, &entry);
    pillar
}

fn lookup<'a>(pairs: &'a [(Value, Value)], key: &Value) -> Option<&'a Value> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn set(pairs: &mut Vec<(Value, Value)>, key: Value, value: Value) {
    match pairs.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => pairs.push((key, value)),
    }
}

fn read(backend: &Backend, id: &str) -> Entry {
    match backend {
        Backend::Memory => MEMORY
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashMap::new)
            .get(id)
            .cloned()
            .unwrap_or_default(),
        Backend::Disk(path) => {
            let Some(Value::Map(top)) = brine_cache::fs::read_p(path) else {
                return Entry::default();
            };
            let field = |k: &str| match lookup(&top, &Value::from(k)) {
                Some(Value::Map(m)) => Some(m.clone()),
                _ => None,
            };
            match (field("CacheDisk_data"), field("CacheDisk_cachetime")) {
                (Some(data), Some(times)) => Entry { data, times },
                // Salt's old format: the data alone, timed by the file.
                _ => {
                    let mtime = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0.0, |d| d.as_secs_f64());
                    let times = top.iter().map(|(k, _)| (k.clone(), Value::F64(mtime))).collect();
                    Entry { data: top, times }
                }
            }
        }
    }
}

fn write(backend: &Backend, id: &str, entry: &Entry) {
    match backend {
        Backend::Memory => {
            MEMORY
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(HashMap::new)
                .insert(id.to_string(), entry.clone());
        }
        Backend::Disk(path) => {
            let doc = Value::map([
                ("CacheDisk_data", Value::Map(entry.data.clone())),
                ("CacheDisk_cachetime", Value::Map(entry.times.clone())),
            ]);
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            if let Err(e) = brine_cache::fs::write_p(path, &doc) {
                warn!("pillar cache: cannot write {}: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn cfg(dir: &std::path::Path, extra: &str) -> MasterConfig {
        let conf = dir.join("master");
        std::fs::write(
            &conf,
            format!(
                "root_dir: {}\ncachedir: {}/cache\n{extra}",
                dir.display(),
                dir.display()
            ),
        )
        .unwrap();
        MasterConfig::load(dir).unwrap()
    }

    #[test]
    fn entries_are_served_until_their_time_and_cleaned_on_request() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(d.path(), "pillar_cache_ttl: 60\n");
        let calls = Cell::new(0);
        let compile = |v: i64| {
            calls.set(calls.get() + 1);
            Value::map([("v", Value::Int(v))])
        };
        assert_eq!(cached(&c, "m1", None, false, || compile(1)), compile_free(1));
        assert_eq!(cached(&c, "m1", None, false, || compile(2)), compile_free(1), "a hit");
        assert_eq!(calls.get(), 1);
        // Another pillarenv is a miss; the first stays.
        assert_eq!(cached(&c, "m1", Some("dev"), false, || compile(3)), compile_free(3));
        assert_eq!(cached(&c, "m1", None, false, || compile(4)), compile_free(1));
        // clean_cache empties the minion's entry first.
        assert_eq!(cached(&c, "m1", None, true, || compile(5)), compile_free(5));
        assert_eq!(calls.get(), 3);
        // Salt's CacheDisk file.
        let file = brine_cache::fs::read_p(&d.path().join("cache/pillar_cache/m1")).unwrap();
        assert!(file.get("CacheDisk_data").and_then(|m| m.get("m1")).is_some());
        assert!(file.get("CacheDisk_cachetime").and_then(|m| m.get("m1")).is_some());
        // Past its time, compiled again.
        let stale = cfg(d.path(), "pillar_cache_ttl: -1\n");
        assert_eq!(cached(&stale, "m1", None, false, || compile(6)), compile_free(6));
        // Ids that cannot name a file are compiled, not cached.
        assert_eq!(cached(&c, "../x", None, false, || compile(7)), compile_free(7));
        assert!(!d.path().join("cache/x").exists());
    }

    fn compile_free(v: i64) -> Value {
        Value::map([("v", Value::Int(v))])
    }
}
