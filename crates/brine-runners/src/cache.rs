//! `cache.*`: Salt's `cache` runner over the minion data cache
//! (`cachedir/minions/<id>/data.p` with grains and pillar, `mine.p`), for
//! the minions a target names (Salt's `MasterPillarUtil`).

use brine_cache::MinionCache;
use brine_client::low::CallArgs;
use brine_config::MasterConfig;
use brine_keys::{FsKeyStore, KeyState, KeyStore};
use brine_proto::Value;
use brine_py::text;

pub(crate) fn call(cfg: &MasterConfig, name: &str, args: &CallArgs) -> Result<Value, String> {
    let tgt = args.get(0, "tgt").cloned();
    let tgt_type = args.get(1, "tgt_type").and_then(text).unwrap_or_else(|| "glob".into());
    let cache = MinionCache::new(&cfg.cachedir);
    match name {
        "grains" | "pillar" | "mine" => {
            // Salt's MasterPillarUtil: every targeted minion, {} unless
            // its cache has (non-empty) data; with no target, the cached
            // minions that have some (the mine: every cached minion).
            let cached = cache.list().unwrap_or_default();
            let ids = match &tgt {
                Some(t) => targeted(cfg, t, &tgt_type),
                None => cached.clone(),
            };
            let mut out = Vec::new();
            for id in ids {
                let got = if !cached.contains(&id) {
                    None
                } else if name == "mine" {
                    cache.fetch(&id, "mine").ok()
                } else {
                    cache.fetch(&id, "data").ok().and_then(|d| d.get(name).cloned())
                };
                match got.filter(brine_py::truthy) {
                    Some(v) => out.push((Value::from(id), v)),
                    None if tgt.is_some() || name == "mine" => out.push((Value::from(id), Value::Map(Vec::new()))),
                    None => {}
                }
            }
            Ok(Value::Map(out))
        }
        "clear_pillar" | "clear_grains" | "clear_mine" | "clear_mine_func" | "clear_all" => {
            let Some(tgt) = tgt else {
                return Ok(Value::Bool(false));
            };
            let pillar = matches!(name, "clear_pillar" | "clear_all");
            let grains = matches!(name, "clear_grains" | "clear_all");
            let mine = matches!(name, "clear_mine" | "clear_all");
            let mine_func = if name == "clear_mine_func" {
                match args.get(2, "clear_mine_func_flag").and_then(text) {
                    Some(f) => Some(f),
                    None => return Ok(Value::Bool(false)),
                }
            } else {
                None
            };
            let cached = cache.list().unwrap_or_default();
            for id in targeted(cfg, &tgt, &tgt_type) {
                if !cached.contains(&id) {
                    continue;
                }
                clear(&cache, &id, pillar, grains, mine, mine_func.as_deref());
            }
            Ok(Value::Bool(true))
        }
        other => Err(crate::not_available(&format!("cache.{other}"))),
    }
}

/// Salt's `clear_cached_minion_data` for one minion: grains and pillar
/// share `data.p`, so clearing one keeps the other.
fn clear(cache: &MinionCache, id: &str, pillar: bool, grains: bool, mine: bool, mine_func: Option<&str>) {
    if pillar || grains {
        let data = cache.fetch(id, "data").unwrap_or(Value::Nil);
        let keep = if pillar && grains {
            None
        } else {
            let other = if pillar { "grains" } else { "pillar" };
            data.get(other)
                .filter(|v| brine_py::truthy(*v))
                .map(|v| (other, v.clone()))
        };
        let done = match keep {
            None => cache.flush_key(id, "data"),
            Some((k, v)) => cache.store(id, "data", &Value::map([(k, v)])),
        };
        if let Err(e) = done {
            log::warn!("cache.clear: {id}: {e}");
        }
    }
    if mine {
        if let Err(e) = cache.flush_key(id, "mine") {
            log::warn!("cache.clear_mine: {id}: {e}");
        }
    } else if let Some(f) = mine_func {
        if let Ok(mut data) = cache.fetch(id, "mine") {
            if data.remove(f).is_some() {
                if let Err(e) = cache.store(id, "mine", &data) {
                    log::warn!("cache.clear_mine_func: {id}: {e}");
                }
            }
        }
    }
}

/// The accepted minions `tgt` names, as the master targets a job
/// (`CkMinions.check_minions`, greedy).
pub(crate) fn targeted(cfg: &MasterConfig, tgt: &Value, tgt_type: &str) -> Vec<String> {
    let accepted = FsKeyStore::new(&cfg.pki_dir)
        .list(KeyState::Accepted)
        .unwrap_or_default();
    let ck = brine_targeting::CkMinions::from_config(cfg, accepted);
    ck.check_minions(tgt, tgt_type, ":", true).minions
}
