//! What minions send besides files and the mine (Salt's `AESFuncs`):
//! `_pillar` (compiled by [`brine_pillar`]), `_minion_event`, `_return`,
//! `_syndic_return`, `revoke_auth`.

use brine_cache::fs::write_atomic;
use brine_cache::{Jid, MinionCache};
use brine_config::MasterConfig;
use brine_keys::{KeyState, KeyStore, Match, MinionId};
use brine_proto::Value;
use log::{debug, error, info, warn};

use super::Ctx;
use crate::alarm::{self, Store};

/// Tags only the master itself fires (fnmatch): keys, auth, a job's
/// publication and its returns (a return comes through `_return`, which
/// records it under the sender's own id), runner, wheel, cloud, cluster.
const RESERVED_TAGS: [&str; 12] = [
    "salt/auth*",
    "salt/key*",
    "salt/job/*/new",
    "salt/job/*/publish",
    "salt/job/*/return*",
    "salt/job/*/ret/*",
    "salt/run/*",
    "salt/wheel/*",
    "salt/cloud/*",
    "salt/cluster/*",
    "salt/master/*",
    "minion/refresh/*",
];

/// The most events one `_minion_event` request may carry (a beacon run
/// sends a handful).
const MAX_EVENTS: usize = 1000;

/// Why the minion `id` may not put `tag` on the master's bus, if it may
/// not. What real minions fire passes: `minion_start`,
/// `salt/minion/<own id>/start`, `salt/beacon/<own id>/…`,
/// `salt/job/<jid>/prog/<own id>/…` and custom tags from `event.send`.
fn refused_tag(id: &str, tag: &str) -> Option<String> {
    if tag.is_empty() {
        return Some("an empty tag".into());
    }
    if let Some(p) = RESERVED_TAGS.iter().find(|p| brine_py::fnmatch(tag, p)) {
        return Some(format!("a tag only the master fires ({p})"));
    }
    // Tags that name a minion must name the sender.
    let parts: Vec<&str> = tag.split('/').collect();
    let named = match parts.as_slice() {
        ["salt", "minion" | "beacon", who, ..] => Some(*who),
        ["salt", "job", _, "prog", who, ..] => Some(*who),
        _ => None,
    };
    match named {
        Some(who) if who != id => Some(format!("a tag naming another minion ({who:?})")),
        _ => None,
    }
}

/// Fire `tag` for the minion `id` unless it is refused (logged, escaped).
fn fire_for(ctx: &mut Ctx, id: &MinionId, tag: &str, data: &Value) {
    match refused_tag(id, tag) {
        // Salt's words for a refused tag ("Filtering blacklisted event
        // tag"), which operators grep for, then Brine's reason.
        Some(why) => warn!("minion {id:?}: Filtering blacklisted event tag {tag:?}: refused: {why}"),
        None => {
            let _ = ctx.events.fire(tag, data);
        }
    }
}

/// `_pillar`: the minion's compiled pillar; stores grains and
/// pillar in the minion data cache when `minion_data_cache` (default on).
pub(super) fn pillar(ctx: &mut Ctx, id: &MinionId, load: &mut Value) -> Value {
    let Some(grains) = pillar_grains(id, load) else {
        return Value::Map(Vec::new());
    };
    let keys = &ctx.keys;
    let accepted = || keys.list(KeyState::Accepted).unwrap_or_default();
    let pillar = brine_pillar::compile(&ctx.cfg, id, &grains, load, &accepted);
    store_pillar(ctx, id, grains, &pillar);
    pillar
}

/// The grains a `_pillar` request compiles with (its `grains`, `id` set
/// to the minion's), `None` when it has none.
pub(super) fn pillar_grains(id: &MinionId, load: &Value) -> Option<Value> {
    let mut grains = load.get("grains").cloned().filter(Value::is_map)?;
    grains.set("id", Value::from(id));
    Some(grains)
}

/// The minion data cache's entry for a compiled pillar.
/// A `cache` driver that runs through Python (brine-loader's
/// datacache): the minion's grains and pillar stored through it too, off
/// the request loop; a driver that raises makes the answer Salt's error
/// text, as Salt's master answers when `cache.store` raises in `_pillar`.
pub(super) fn store_pillar_through_driver(cfg: &MasterConfig, id: &str, grains: &Value, pillar: Value) -> Value {
    if !cfg.get_bool("minion_data_cache").unwrap_or(true) {
        return pillar;
    }
    let Some((driver, client)) = brine_loader::datacache::python_driver(cfg) else {
        return pillar;
    };
    let data = Value::map([("grains", grains.clone()), ("pillar", pillar.clone())]);
    match brine_loader::datacache::store(&client, &format!("minions/{id}"), "data", &data) {
        Ok(()) => pillar,
        Err(e) => {
            error!(
                "Some exception handling a payload from minion {id:?}: the {driver} cache driver's store raised: {e}"
            );
            Value::from(brine_loader::datacache::SALT_HANDLER_ERROR)
        }
    }
}

pub(super) fn store_pillar(ctx: &mut Ctx, id: &MinionId, grains: Value, pillar: &Value) {
    if ctx.cfg.get_bool("minion_data_cache").unwrap_or(true) {
        let data = Value::map([("grains", grains), ("pillar", pillar.clone())]);
        match MinionCache::new(&ctx.cfg.cachedir).store(id, "data", &data) {
            Ok(()) => alarm::ok(Store::MinionData),
            Err(e) => alarm::failed(Store::MinionData, e.io_kind(), &e),
        }
        if ctx.cfg.get_bool("minion_data_cache_events").unwrap_or(false) {
            let ev = Value::map([("Minion data cache refresh", Value::from(id))]);
            let _ = ctx.events.fire(&format!("minion/refresh/{id}"), &ev);
        }
    }
}

/// `revoke_auth` (`saltutil.revoke_auth`): the minion's own key is
/// deleted as `salt-key -d` would (a `salt/key` event, its data cache
/// dropped, the AES key rotated when `rotate_aes_key`), if
/// `allow_minion_key_revoke` (default on); otherwise the load comes
/// back, as Salt answers.
pub(super) fn revoke_auth(ctx: &mut Ctx, id: &MinionId, load: &Value) -> Value {
    if !ctx.cfg.get_bool("allow_minion_key_revoke").unwrap_or(true) {
        warn!("Minion {id} requested key revoke, but allow_minion_key_revoke is set to False");
        return load.clone();
    }
    // Its own key in whatever status it has, by name (not as a glob: an
    // id with `*` in it must not take other minions' keys along).
    let held: Vec<KeyState> = KeyState::ALL
        .into_iter()
        .filter(|s| matches!(ctx.keys.get(*s, id), Ok(Some(_))))
        .collect();
    let own = held
        .iter()
        .map(|s| (s.dir().to_string(), vec![id.to_string()]))
        .collect();
    let out = super::wheel::key_ops(ctx).delete_key(&mut ctx.events, &Match::Dict(own));
    if !out.changed.is_empty() {
        info!(
            "{id} revoked its own key ({})",
            held.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
        );
    }
    for e in &out.errors {
        warn!("{id}: revoke_auth: {e}");
    }
    Value::Bool(true)
}

/// `_minion_event`: re-fire a minion's events on the master bus.
pub(super) fn minion_event(ctx: &mut Ctx, id: &MinionId, load: &Value) -> Value {
    if let Some(Value::Array(events)) = load.get("events") {
        let pretag = load.get("pretag").and_then(Value::as_str).map(String::from);
        if events.len() > MAX_EVENTS {
            warn!(
                "minion {id:?}: _minion_event with {} events (at most {MAX_EVENTS}): the rest dropped",
                events.len()
            );
        }
        for ev in events.iter().take(MAX_EVENTS) {
            let Some(tag) = ev.get("tag").and_then(Value::as_str) else {
                continue;
            };
            if tag.is_empty() {
                warn!("minion {id:?}: event with an empty tag refused");
                continue;
            }
            let data = ev.get("data").cloned().unwrap_or_else(|| ev.clone());
            // Salt fires the tag, and again under the pretag: each is
            // checked as it would appear on the bus.
            fire_for(ctx, id, tag, &data);
            if let Some(pre) = &pretag {
                fire_for(ctx, id, &format!("{pre}/{tag}"), &data);
            }
        }
    } else if let (Some(tag), Some(_)) = (load.get("tag").and_then(Value::as_str), load.get("data")) {
        debug!("{id}: event {tag:?}");
        fire_for(ctx, id, tag, load);
    }
    Value::Nil
}

/// `_return` (Salt's `store_job`): fire `salt/job/<jid>/ret/<id>` and
/// store the return in the job cache (once per minion).
pub(super) fn job_return(ctx: &mut Ctx, id: &MinionId, load: &mut Value) -> Value {
    let Some(jid) = load.get("jid").and_then(Value::as_str).map(String::from) else {
        warn!("{id}: return without a jid");
        return Value::Nil;
    };
    if load.get("return").is_none() {
        warn!("{id}: return for {jid} without a return value");
        return Value::Nil;
    }
    let jid = if jid == "req" {
        // A job the minion ran on its own (`salt-call --return`, a
        // returner set on `event.send`): as Salt's store_job, it gets a
        // new jid, a glob target naming the minion, and the return load
        // saved as the job's load.
        let jid = Jid::generate();
        let arg = load
            .get("arg")
            .or_else(|| load.get("fun_args"))
            .cloned()
            .unwrap_or(Value::Array(vec![]));
        load.set("arg", arg);
        load.set("tgt_type", Value::from("glob"));
        load.set("tgt", Value::from(id));
        load.set("jid", Value::from(&jid));
        load.set("id", Value::from(id));
        match ctx.jobs.save_load(&jid, load, &[id.to_string()]) {
            Ok(()) => alarm::ok(Store::JobLoad),
            Err(e) => alarm::failed(Store::JobLoad, e.io_kind(), &e),
        }
        jid
    } else if let Some(jid) = Jid::parse(&jid) {
        jid
    } else {
        warn!("{id}: return with an invalid jid {jid:?}");
        return Value::Nil;
    };
    // As Salt's store_job: a valid jid the cache does not know yet is
    // created (prep_jid with the passed jid), not dropped; store_return
    // makes the directory when missing.
    load.set("id", Value::from(id));
    // Fired first: a waiting CLI gets the return even when the job cache
    // cannot be written (full, read-only; logged CRITICAL once a minute).
    let _ = ctx.events.fire(&format!("salt/job/{jid}/ret/{id}"), load);
    brine_metrics::count(brine_metrics::Counter::Returns, 1);
    if ctx.cfg.get_bool("job_cache").unwrap_or(true) && ctx.ext_jobs.is_none() {
        match ctx.jobs.store_return(&jid, id, load) {
            Ok(_) => alarm::ok(Store::JobReturn),
            Err(e) => alarm::failed(Store::JobReturn, e.io_kind(), &e),
        }
    }
    Value::Nil
}

/// `_syndic_return`: a syndic's aggregated returns, each re-dispatched
/// as the `_return` of the minion below it (Salt's `_syndic_return`).
/// Only a master of masters (`order_masters: True`) has syndics below it;
/// anywhere else this is a minion trying to record returns under other
/// minions' ids, refused (Salt accepts it).
pub(super) fn syndic_return(ctx: &mut Ctx, sender: &MinionId, load: &Value) -> Value {
    if !ctx.cfg.get_bool("order_masters").unwrap_or(false) {
        warn!(
            "minion {sender:?} sent _syndic_return, but this master has no syndics (order_masters is False): refused"
        );
        return Value::Bool(false);
    }
    let loads: Vec<Value> = match load.get("load") {
        Some(Value::Array(items)) => items.clone(),
        _ => vec![load.clone()],
    };
    for l in loads {
        let (Some(jid), Some(syndic), Some(Value::Map(returns))) = (
            l.get("jid").and_then(Value::as_str),
            l.get("id").and_then(Value::as_str),
            l.get("return"),
        ) else {
            continue;
        };
        let Some(jid) = Jid::parse(jid) else {
            continue;
        };
        if let Some(job) = l.get("load").filter(|j| j.is_map()) {
            match ctx.jobs.save_load_if_missing(&jid, job, &[]) {
                Ok(()) => alarm::ok(Store::JobLoad),
                Err(e) => alarm::failed(Store::JobLoad, e.io_kind(), &e),
            }
        }
        // The syndic's id is the sender's text: registered only as a file
        // directly in `syndics/` (Salt's clean_path check).
        let root = ctx.cfg.cachedir.join("syndics");
        if !brine_keys::valid_id(&root, syndic) {
            warn!(
                "syndic id {syndic:?} from minion {:?} is not valid: not registered",
                sender.as_str()
            );
        } else if !root.join(syndic).exists() {
            let _ = write_atomic(&root.join(syndic), b"", 0o644);
        }
        for (minion, item) in returns {
            let Some(minion) = minion
                .as_str()
                .and_then(|m| MinionId::new(&ctx.cfg.pki_dir, m))
                .filter(|_| item.is_map())
            else {
                warn!("syndic {syndic:?}: return for invalid id {minion:?} dropped");
                continue;
            };
            let mut ret = Value::map([("jid", Value::from(&jid)), ("id", Value::from(&minion))]);
            if let Value::Map(fields) = item {
                for (k, v) in fields {
                    if let Some(k) = k.as_str() {
                        ret.set(k, v.clone());
                    }
                }
            }
            for k in ["master_id", "fun", "fun_args", "out", "sig"] {
                if let Some(v) = l.get(k) {
                    ret.set(k, v.clone());
                }
            }
            job_return(ctx, &minion, &mut ret);
        }
    }
    Value::Nil
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minions_fire_their_own_tags_only() {
        for ok in [
            "minion_start",
            "salt/minion/m1/start",
            "salt/beacon/m1/inotify//etc/hosts",
            "salt/job/20250101000000000001/prog/m1/0",
            "myco/custom/thing",
            "salt/minion/m1/beacons/x",
        ] {
            assert_eq!(refused_tag("m1", ok), None, "{ok}");
        }
        for bad in [
            "",
            "salt/key",
            "salt/auth",
            "salt/job/20250101000000000001/new",
            "salt/job/20250101000000000001/publish",
            "salt/job/20250101000000000001/ret/m2",
            "salt/job/20250101000000000001/ret/m1",
            "salt/run/20250101000000000001/new",
            "salt/wheel/20250101000000000001/ret",
            "salt/minion/m2/start",
            "salt/beacon/m2/x",
            "salt/job/20250101000000000001/prog/m2/0",
            "minion/refresh/m2",
        ] {
            assert!(refused_tag("m1", bad).is_some(), "{bad:?}");
        }
    }
}
