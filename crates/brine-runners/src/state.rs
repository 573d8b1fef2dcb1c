//! `state.orchestrate` (and its aliases `state.orch`, `state.sls`):
//! brine-state's engine with the master's effects. Steps publish through
//! the master's request port as the master user; `salt.runner` steps run
//! in this job's process as jobs of their own (their own jid and events,
//! as Salt's `saltutil.runner`), `salt.wheel` steps go to the master as
//! the master user's wheel calls.

use std::sync::Arc;

use brine_client::low::CallArgs;
use brine_client::LocalClient;
use brine_config::MasterConfig;
use brine_proto::Value;
use brine_py::text;
use brine_state::{ClientEffects, MasterCall, OrchestrateOpts};

pub(crate) fn call(cfg: &MasterConfig, name: &str, args: &CallArgs, user: &str, jid: &str) -> Result<Value, String> {
    match name {
        "orchestrate" | "orch" | "sls" => {
            // orchestrate(mods, saltenv, test, exclude, pillar, pillarenv,
            // pillar_enc, orchestration_jid)
            let mods = args.get(0, "mods").ok_or("missing argument: mods")?;
            let exclude = match args.get(3, "exclude") {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::Str(s)) => s.split(',').map(|x| Value::from(x.trim())).collect(),
                Some(other) => vec![other.clone()],
                None => Vec::new(),
            };
            if args.get(6, "pillar_enc").is_some() {
                return Err("pillar_enc is not available in Brine (encrypted pillar needs the gpg renderer)".into());
            }
            let opts = OrchestrateOpts {
                saltenv: args.get(1, "saltenv").and_then(text),
                test: args.get(2, "test").map(brine_py::truthy),
                exclude,
                pillar: args.get(4, "pillar").cloned(),
                pillarenv: args.get(5, "pillarenv").and_then(text),
                orchestration_jid: args
                    .get(7, "orchestration_jid")
                    .and_then(text)
                    .or_else(|| Some(jid.to_string())),
            };
            let mut effects = effects(cfg, user);
            brine_state::orchestrate(cfg, &brine_state::mods_of(mods), opts, &mut effects).map_err(|e| e.to_string())
        }
        other => Err(crate::not_available(&format!("state.{other}"))),
    }
}

/// The master's effects for an orchestration run by `user`.
fn effects(cfg: &MasterConfig, user: &str) -> ClientEffects {
    let shared = Arc::new(cfg.clone());
    let (rcfg, wcfg, user) = (shared.clone(), shared.clone(), user.to_string());
    let runner: MasterCall = Arc::new(move |fun: &str, arg: Vec<Value>, kwarg: Value| {
        let low = Value::map([("arg", Value::Array(arg)), ("kwarg", kwarg)]);
        let jid = brine_cache::Jid::generate().to_string();
        crate::run_full(&rcfg, fun, &low, &user, &jid)
    });
    let wheel: MasterCall = Arc::new(move |fun: &str, _arg: Vec<Value>, kwarg: Value| {
        let pairs = match kwarg {
            Value::Map(p) => p
                .into_iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v)))
                .collect(),
            _ => Vec::new(),
        };
        let called = LocalClient::of_master(&wcfg).and_then(|mut c| c.wheel(fun, pairs));
        called.unwrap_or_else(|e| {
            Value::map([
                ("return", Value::from(format!("Exception occurred in wheel {fun}: {e}"))),
                ("success", Value::Bool(false)),
            ])
        })
    });
    ClientEffects::new(shared, runner, wheel)
}
