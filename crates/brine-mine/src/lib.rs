//! The Salt mine on the master (Salt's `RemoteFuncs._mine*`, reached
//! through `AESFuncs`): minions store function results with `_mine`
//! (`mine.update`, `mine.send`), read each other's with `_mine_get`
//! (`mine.get`), and drop theirs with `_mine_delete` / `_mine_flush`.
//! Data lives in the minion data cache, `cachedir/minions/<id>/mine.p`,
//! stored only with `minion_data_cache` (default) or `enforce_mine_cache`.
//!
//! Replies are Salt's, quirks included: a load without its keys is `{}`;
//! where Salt's function raises, the minion gets `""` (AESFuncs'
//! `run_func`) — notably `_mine` with a true `clear`, which Salt 3006 and
//! 3007 answer with an `UnboundLocalError` and store nothing.

use brine_config::MasterConfig;
use brine_proto::Value;
use brine_py::truthy;
use log::{debug, error};

use brine_cache::MinionCache;
use brine_targeting::{CkMinions, PyRegex};

/// A mine entry that carries a minion-side ACL (`mine.send … allow_tgt=`):
/// `{"__data__": result, "__saltmine_acl__": 1, "allow_tgt": …,
/// "allow_tgt_type": …}`.
pub const ACL_ID: &str = "__saltmine_acl__";
pub const ACL_DATA: &str = "__data__";

/// What Salt's `run_func` answers when the function raised.
fn raised(what: &str) -> Value {
    error!("Error in mine function: {what}");
    Value::from("")
}

fn has(load: &Value, key: &str) -> bool {
    load.get(key).is_some()
}

/// Whether the master keeps mine data at all.
fn stores(cfg: &MasterConfig) -> bool {
    cfg.get_bool("minion_data_cache").unwrap_or(true) || cfg.get_bool("enforce_mine_cache").unwrap_or(false)
}

/// `dict.update(new)` in place: existing keys keep their place.
fn update(map: &mut Vec<(Value, Value)>, new: Vec<(Value, Value)>) {
    for (k, v) in new {
        match map.iter_mut().find(|(old, _)| *old == k) {
            Some(slot) => slot.1 = v,
            None => map.push((k, v)),
        }
    }
}

/// `_mine`: merge the minion's new data into its mine (what is stored is
/// not a dict: kept as it is).
pub fn store(cfg: &MasterConfig, id: &str, load: &Value) -> Value {
    if !has(load, "id") || !has(load, "data") {
        return Value::Map(Vec::new());
    }
    if !stores(cfg) {
        return Value::Bool(true);
    }
    if load.get("clear").is_some_and(truthy) {
        return raised("_mine with clear=True: local variable 'data' referenced before assignment");
    }
    let mut data = match MinionCache::new(&cfg.cachedir).fetch(id, "mine") {
        Ok(d) => d,
        Err(e) => return raised(&e.to_string()),
    };
    if let Value::Map(current) = &mut data {
        let new = match load.get("data") {
            Some(Value::Map(new)) => new.clone(),
            // `dict.update` takes an iterable of pairs too.
            Some(Value::Array(items)) => {
                let mut pairs = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::Array(kv) if kv.len() == 2 => pairs.push((kv[0].clone(), kv[1].clone())),
                        other => return raised(&format!("cannot update the mine with {other:?}")),
                    }
                }
                pairs
            }
            other => return raised(&format!("cannot update the mine with {other:?}")),
        };
        update(current, new);
    }
    match MinionCache::new(&cfg.cachedir).store(id, "mine", &data) {
        Ok(()) => Value::Bool(true),
        Err(e) => raised(&format!("cannot write the mine: {e}")),
    }
}

/// `_mine_delete`: drop one function from the minion's mine.
pub fn delete(cfg: &MasterConfig, id: &str, load: &Value) -> Value {
    if !has(load, "id") || !has(load, "fun") {
        return Value::Map(Vec::new());
    }
    if !stores(cfg) {
        return Value::Bool(true);
    }
    let fun = load.get("fun").cloned().unwrap_or(Value::Nil);
    if matches!(fun, Value::Array(_) | Value::Map(_)) {
        return raised("unhashable mine function name");
    }
    let mut data = match MinionCache::new(&cfg.cachedir).fetch(id, "mine") {
        Ok(d) => d,
        Err(e) => return raised(&e.to_string()),
    };
    let Value::Map(current) = &mut data else {
        return Value::Bool(false);
    };
    if let Some(at) = current.iter().position(|(k, _)| *k == fun) {
        current.remove(at);
        if let Err(e) = MinionCache::new(&cfg.cachedir).store(id, "mine", &data) {
            return raised(&format!("cannot write the mine: {e}"));
        }
    }
    Value::Bool(true)
}

/// `_mine_flush`: remove the minion's whole mine; false when it had none.
pub fn flush(cfg: &MasterConfig, id: &str, load: &Value) -> Value {
    if !has(load, "id") {
        return Value::Map(Vec::new());
    }
    if !stores(cfg) {
        return Value::Bool(true);
    }
    let cache = MinionCache::new(&cfg.cachedir);
    if !cache.contains(id, "mine") {
        return Value::Bool(false);
    }
    match cache.flush_key(id, "mine") {
        Ok(()) => Value::Bool(true),
        Err(e) => raised(&format!("cannot remove the mine: {e}")),
    }
}

/// `_mine_get`: the requested functions' data from the targeted minions'
/// mines. `accepted`: the accepted minion ids.
///
/// * `fun` is a comma-separated string (one distinct name: `{minion:
///   data}`, several: `{fun: {minion: data}}`) or a list (always the
///   latter).
/// * The master's `mine_get` ACL (`{minion regex: [function regex…]}`),
///   when set, limits the functions.
/// * The target (`tgt_type`, or `expr_form` from old minions; `pillar`
///   and `compound` are read as `pillar_exact` and
///   `compound_pillar_exact`) is resolved non-greedily: from the minions
///   that have cache entries.
/// * An entry stored with `allow_tgt` is returned only to the minions
///   that target names (greedy, `allow_tgt_type`, default glob); one whose
///   target names nobody is returned to nobody.
pub fn get(cfg: &MasterConfig, accepted: Vec<String>, id: &str, load: &Value) -> Value {
    let empty = || Value::Map(Vec::new());
    if ["id", "tgt", "fun"].iter().any(|k| !has(load, k)) {
        return empty();
    }
    let (functions, ret_dict): (Vec<Value>, bool) = match load.get("fun") {
        Some(Value::Str(s)) => {
            let mut funs: Vec<Value> = Vec::new();
            for f in s.split(',') {
                let f = Value::from(f);
                if !funs.contains(&f) {
                    funs.push(f);
                }
            }
            let many = funs.len() > 1;
            (funs, many)
        }
        Some(Value::Array(items)) => (items.clone(), true),
        _ => return empty(),
    };
    let allowed: Vec<Value> = match cfg.get("mine_get") {
        None => functions,
        Some(brine_config::Value::Object(acl)) => {
            let mut perms: Vec<PyRegex> = Vec::new();
            for (minion_re, funs) in acl {
                let re = match PyRegex::new(minion_re) {
                    Ok(re) => re,
                    Err(e) => return raised(&e.to_string()),
                };
                if !re.matches(id) {
                    continue;
                }
                if let brine_config::Value::Array(funs) = funs {
                    for f in funs {
                        let Some(f) = f.as_str() else {
                            return raised(&format!("mine_get permission {f} is not a regex"));
                        };
                        match PyRegex::new(f) {
                            Ok(re) => perms.push(re),
                            Err(e) => return raised(&e.to_string()),
                        }
                    }
                }
            }
            let mut allowed = Vec::new();
            for f in functions {
                if perms.is_empty() {
                    break;
                }
                let Some(name) = f.as_str() else {
                    return raised(&format!("mine function {f:?} is not text"));
                };
                if perms.iter().any(|p| p.matches(name)) {
                    allowed.push(f);
                }
            }
            if allowed.is_empty() {
                return empty();
            }
            allowed
        }
        Some(_) => return empty(),
    };
    if !brine_keys::valid_id(&cfg.pki_dir, id) {
        return empty();
    }
    let match_type = match (load.get("expr_form"), load.get("tgt_type")) {
        (Some(form), None) if !form.is_nil() => form.clone(),
        (_, Some(t)) => t.clone(),
        (_, None) => Value::from("glob"),
    };
    let Some(match_type) = match_type.as_str() else {
        return raised(&format!("target type {match_type:?} is not text"));
    };
    let match_type = match match_type.to_lowercase().as_str() {
        "pillar" => "pillar_exact",
        "compound" => "compound_pillar_exact",
        _ => match_type,
    };
    let ck = CkMinions::from_config(cfg, accepted);
    let tgt = load.get("tgt").cloned().unwrap_or(Value::Nil);
    let minions = ck.check_minions(&tgt, match_type, ":", false).minions;
    let mut ret: Vec<(Value, Value)> = Vec::new();
    for minion in minions {
        let mine = match MinionCache::new(&cfg.cachedir).fetch(&minion, "mine") {
            Ok(m) => m,
            Err(e) => return raised(&e.to_string()),
        };
        let Value::Map(entries) = &mine else { continue };
        for function in &allowed {
            let Some((_, entry)) = entries.iter().find(|(k, _)| k == function) else {
                continue;
            };
            let mut result = entry;
            if entry.is_map() && entry.get(ACL_ID).is_some() {
                let Some(data) = entry.get(ACL_DATA) else {
                    return raised(&format!("mine entry {function:?} of {minion} has no {ACL_DATA}"));
                };
                result = data;
                if let Some(allow_tgt) = entry.get("allow_tgt") {
                    let allow_type = match entry.get("allow_tgt_type") {
                        None => "glob".to_string(),
                        Some(Value::Str(s)) => s.clone(),
                        Some(Value::Nil) => "None".to_string(),
                        Some(other) => brine_py::to_str(other),
                    };
                    let permitted = ck.check_minions(allow_tgt, &allow_type, ":", true).minions;
                    if permitted.is_empty() {
                        continue;
                    }
                    // Salt files the list under `{minion}:{function}` split
                    // on ':', and looks it up unsplit: with a ':' in either
                    // name the ACL is never found.
                    let enforced = !minion.contains(':') && !function.as_str().is_some_and(|f| f.contains(':'));
                    if enforced && !permitted.iter().any(|p| p == id) {
                        debug!("Salt mine request from {id} for function {function:?} on minion {minion} denied.");
                        continue;
                    }
                }
            }
            let key = Value::from(minion.as_str());
            if ret_dict {
                match ret.iter_mut().find(|(k, _)| k == function) {
                    Some((_, Value::Map(per))) => per.push((key, result.clone())),
                    _ => ret.push((function.clone(), Value::Map(vec![(key, result.clone())]))),
                }
            } else {
                ret.push((key, result.clone()));
            }
        }
    }
    Value::Map(ret)
}
