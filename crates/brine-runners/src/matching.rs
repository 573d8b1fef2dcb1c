//! `match.*`: Salt's `match` runner.

use brine_config::MasterConfig;
use brine_keys::{FsKeyStore, KeyState, KeyStore};
use brine_proto::Value;
use log::warn;

use brine_client::low::CallArgs;

pub(crate) fn call(cfg: &MasterConfig, name: &str, args: &CallArgs) -> Result<Value, String> {
    match name {
        "compound_matches" => {
            let expr = args.get(0, "expr").ok_or("missing argument: expr")?;
            let minion_id = args.get(1, "minion_id").ok_or("missing argument: minion_id")?;
            Ok(compound_matches(cfg, expr, minion_id))
        }
        other => Err(crate::not_available(&format!("match.{other}"))),
    }
}

/// Salt's `match.compound_matches` runner: `{"res": minion_id}` when the
/// compound expression matches that minion by the minion data cache,
/// else `{"res": False}`. Unlike a publication's targeting it is not
/// greedy (a minion without cached data matches no grain or pillar
/// expression) and pillar expressions match exactly (`I@name:ali*` is
/// no glob), so a minion asking through `publish.runner` cannot
/// enumerate others' pillar. Without `minion_data_cache`, or for an
/// invalid id, the answer is False.
pub(crate) fn compound_matches(cfg: &MasterConfig, expr: &Value, minion_id: &Value) -> Value {
    let no = || Value::map([("res", Value::Bool(false))]);
    if !cfg.get_bool("minion_data_cache").unwrap_or(true) {
        warn!("Minion data cache is disabled. Cannot evaluate compound matcher expression.");
        return no();
    }
    let Some(id) = minion_id.as_str().filter(|id| brine_keys::valid_id(&cfg.pki_dir, id)) else {
        warn!(
            "match.compound_matches: invalid minion id {}",
            brine_py::repr(minion_id)
        );
        return no();
    };
    if expr.as_str().is_none() && !matches!(expr, Value::Array(_)) {
        warn!(
            "match.compound_matches: the expression {} is not text",
            brine_py::repr(expr)
        );
        return no();
    }
    let accepted = FsKeyStore::new(&cfg.pki_dir)
        .list(KeyState::Accepted)
        .unwrap_or_default();
    let ck = brine_targeting::CkMinions::from_config(cfg, accepted);
    if ck
        .check_minions(expr, "compound_pillar_exact", ":", false)
        .minions
        .iter()
        .any(|m| m == id)
    {
        Value::map([("res", Value::from(id))])
    } else {
        no()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_matches_is_exact_and_not_greedy() {
        let t = tempfile::tempdir().unwrap();
        let cfg = |cache: bool| {
            let o = serde_json::json!({
                "pki_dir": t.path().join("pki").display().to_string(),
                "cachedir": t.path().join("cache").display().to_string(),
                "minion_data_cache": cache,
                "nodegroups": {"webs": "G@role:web", "alis": "I@name:ali*"},
            });
            let serde_json::Value::Object(o) = o else {
                unreachable!()
            };
            MasterConfig::from_overrides(std::path::Path::new("/etc/salt"), o).unwrap()
        };
        let on = cfg(true);
        std::fs::create_dir_all(on.pki_dir.join("minions")).unwrap();
        for id in ["alice", "bob", "carol"] {
            std::fs::write(on.pki_dir.join("minions").join(id), "key").unwrap();
        }
        let cache = brine_cache::MinionCache::new(&on.cachedir);
        for (id, role, name) in [("alice", "web", "alice"), ("bob", "db", "bob")] {
            let data = Value::map([
                ("grains", Value::map([("role", Value::from(role))])),
                ("pillar", Value::map([("name", Value::from(name))])),
            ]);
            cache.store(id, "data", &data).unwrap();
        }
        let ask = |cfg: &MasterConfig, expr: Value, id: &str| {
            compound_matches(cfg, &expr, &Value::from(id))
                .get("res")
                .cloned()
                .unwrap()
        };
        let yes = |id: &str| Value::from(id);
        let no = Value::Bool(false);
        for (expr, id, want) in [
            ("G@role:web", "alice", yes("alice")),
            ("G@role:w*", "alice", yes("alice")),
            ("G@role:web", "bob", no.clone()),
            ("I@name:alice", "alice", yes("alice")),
            ("I@name:ali*", "alice", no.clone()),
            ("N@webs", "alice", yes("alice")),
            ("N@alis", "alice", no.clone()),
            // carol has no cached data: only id matchers name her.
            ("L@alice,carol", "carol", yes("carol")),
            ("G@role:*", "carol", no.clone()),
            // `not` starts from every accepted minion, as in Salt.
            ("not G@role:db", "carol", yes("carol")),
            ("not G@role:db", "bob", no.clone()),
            ("*", "../carol", no.clone()),
            ("*", "a/b", no.clone()),
            ("*", "nobody", no.clone()),
        ] {
            assert_eq!(ask(&on, Value::from(expr), id), want, "{expr} {id}");
        }
        assert_eq!(ask(&on, Value::Int(1), "alice"), no);
        assert_eq!(
            ask(&on, Value::Array(vec![Value::from("G@role:web")]), "alice"),
            yes("alice")
        );
        assert_eq!(ask(&cfg(false), Value::from("L@alice"), "alice"), no);
    }
}
