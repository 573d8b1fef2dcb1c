//! `pillar.*`: Salt's `pillar` runner, compiling on the master with the
//! grains in the minion data cache.

use brine_cache::MinionCache;
use brine_client::low::CallArgs;
use brine_config::MasterConfig;
use brine_proto::Value;
use brine_py::text;

pub(crate) fn call(cfg: &MasterConfig, name: &str, args: &CallArgs) -> Result<Value, String> {
    match name {
        "show_pillar" => {
            let minion = args.get(0, "minion").and_then(text).unwrap_or_else(|| "*".into());
            // Salt's get_minion_data: the cached grains, or {fqdn: minion}.
            let mut grains =
                cached_grains(cfg, &minion).unwrap_or_else(|| Value::map([("fqdn", Value::from(minion.as_str()))]));
            let mut load = Value::Map(Vec::new());
            for (k, v) in args.named() {
                match k.as_str() {
                    "saltenv" | "pillarenv" => load.set(k, v.clone()),
                    "minion" => {}
                    k if k.starts_with("__") => {}
                    k => grains.set(k, v.clone()),
                }
            }
            if load.get("saltenv").is_none() {
                load.set("saltenv", Value::from("base"));
            }
            let accepted = || Vec::new();
            Ok(brine_pillar::compile(cfg, &minion, &grains, &load, &accepted))
        }
        "show_top" => {
            let minion = args.get(0, "minion").and_then(text);
            let saltenv = args.get(1, "saltenv").and_then(text).unwrap_or_else(|| "base".into());
            let id = minion.clone().unwrap_or_else(|| cfg.master_id());
            let grains = minion
                .as_deref()
                .and_then(|m| cached_grains(cfg, m))
                .unwrap_or(Value::Map(Vec::new()));
            let req = brine_pillar::Request {
                id: &id,
                grains: &grains,
                saltenv: Some(&saltenv),
                pillarenv: None,
                pillar_override: None,
                extra_minion_data: None,
                accepted: None,
                loader: None,
            };
            let (top, errors) = brine_pillar::show_top(&cfg.raw, &req);
            if errors.is_empty() {
                Ok(top)
            } else {
                Ok(Value::Array(errors.into_iter().map(Value::from).collect()))
            }
        }
        other => Err(crate::not_available(&format!("pillar.{other}"))),
    }
}

fn cached_grains(cfg: &MasterConfig, id: &str) -> Option<Value> {
    if !brine_keys::valid_id(&cfg.pki_dir, id) {
        return None;
    }
    MinionCache::new(&cfg.cachedir)
        .fetch(id, "data")
        .ok()?
        .get("grains")
        .cloned()
        .filter(Value::is_map)
}
