//! Salt's state engine on the master (`salt/state.py`), for the
//! `state.orchestrate` runner.
//!
//! * [`compile`]: the `Compiler` (`pad_funcs`, `verify_high`,
//!   `compile_high_data`, `order_chunks`), shared with the reactor.
//! * [`render`]: `HighState`: SLS files from `file_roots` rendered with
//!   the master's renderers, `include`, `extend`, `exclude`, auto order.
//! * [`high`]: `reconcile_extend`, `requisite_in`, `apply_exclude`.
//! * [`engine`]: `call_chunks`: requisites, `failhard`, `parallel`,
//!   `test`, and the results Salt keys `{state}_|-{id}_|-{name}_|-{fun}`.
//! * [`states`]: `salt.*` (saltmod) and `test.*` state functions.
//! * [`effects`]: what those states do outside the engine ([`Effects`]),
//!   and the master's implementation over brine-client ([`ClientEffects`]).
//!
//! [`orchestrate`] is the runner: what `salt-run state.orchestrate`
//! returns.

pub mod compile;
pub mod effects;
pub mod engine;
pub mod high;
pub mod render;
pub mod states;

use brine_config::MasterConfig;
use brine_proto::Value;
use brine_py::to_str;

pub use compile::{compile_high_data, verify_high, Chunk};
pub use effects::{ClientEffects, CmdReturns, Effects, EventSource, MasterCall};

/// Why `state.orchestrate` refused to run (Salt raises these as
/// `SaltInvocationError`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OrchestrateError {
    #[error("Pillar data must be formatted as a dictionary")]
    PillarNotDict,
}

/// The runner's keyword arguments.
#[derive(Debug, Clone, Default)]
pub struct OrchestrateOpts {
    /// `saltenv` (default `base`).
    pub saltenv: Option<String>,
    /// `pillarenv` (default the master's `pillarenv` option).
    pub pillarenv: Option<String>,
    /// `pillar=`: merged over the master minion's compiled pillar.
    pub pillar: Option<Value>,
    /// `test=`: `None` takes the master's `test` option.
    pub test: Option<bool>,
    /// `exclude=`: SLS globs or `{sls: …}`/`{id: …}` maps.
    pub exclude: Vec<Value>,
    /// The jid of the orchestration (one is made when `None`).
    pub orchestration_jid: Option<String>,
}

/// The SLS names: each item split on commas (`split_input`), empty ones
/// dropped.
fn split_input(mods: &[String]) -> Vec<String> {
    mods.iter()
        .flat_map(|m| brine_py::split_input(&Value::from(m.as_str())))
        .filter(|m| !m.is_empty())
        .collect()
}

/// The master minion's pillar: `pillar_roots` compiled for the master's
/// id, the `pillar=` override merged last.
fn master_pillar(cfg: &MasterConfig, id: &str, saltenv: &str, pillarenv: Option<&str>, over: Option<&Value>) -> Value {
    let grains = Value::Map(Vec::new());
    let loader = brine_loader::pool(cfg);
    let req = brine_pillar::Request {
        id,
        grains: &grains,
        saltenv: Some(saltenv),
        pillarenv,
        pillar_override: over,
        extra_minion_data: None,
        accepted: None,
        loader: loader.as_ref(),
    };
    Value::Map(brine_pillar::compile_pillar(&cfg.raw, &req))
}

/// Salt's `state.sls` on the master minion: the results (a map), or the
/// errors (a list) that stopped the run before any state ran.
pub fn state_sls(cfg: &MasterConfig, mods: &[String], opts: &OrchestrateOpts, effects: &mut dyn Effects) -> Value {
    let id = cfg.master_id();
    let saltenv = opts.saltenv.clone().unwrap_or_else(|| "base".into());
    let pillarenv = opts
        .pillarenv
        .clone()
        .or_else(|| cfg.get_str("pillarenv").map(String::from));
    let test = match opts.test {
        Some(t) => t,
        None => cfg.get_bool("test").unwrap_or(false),
    };
    let jid = opts
        .orchestration_jid
        .clone()
        .unwrap_or_else(|| brine_cache::Jid::generate().to_string());

    let pillar = master_pillar(cfg, &id, &saltenv, pillarenv.as_deref(), opts.pillar.as_ref());
    if let Some(Value::Array(errs)) = pillar.get("_errors") {
        let mut out = vec![Value::from("Pillar failed to render with the following messages:")];
        out.extend(errs.iter().cloned());
        return Value::Array(out);
    }

    let mut hs = render::HighState::new(cfg, pillar);
    let (high, errors) = hs.render_highstate(&saltenv, &split_input(mods));
    if !errors.is_empty() {
        return Value::Array(errors.into_iter().map(Value::from).collect());
    }
    let Value::Map(mut high) = high else {
        return Value::Array(vec![Value::from("High data is not a dictionary and is invalid")]);
    };
    if !opts.exclude.is_empty() {
        match high.iter_mut().find(|(k, _)| k.as_str() == Some("__exclude__")) {
            Some((_, Value::Array(have))) => have.extend(opts.exclude.iter().cloned()),
            _ => high.push((Value::from("__exclude__"), Value::Array(opts.exclude.clone()))),
        }
    }

    // `State.call_high`.
    let mut errors = high::reconcile_extend(&mut high, false);
    let high_v = Value::Map(high);
    errors.extend(compile::verify_high_as(&high_v, compile::Flavor::State));
    if !errors.is_empty() {
        return Value::Array(errors.into_iter().map(Value::from).collect());
    }
    let Value::Map(mut high) = high_v else {
        unreachable!("built as a map")
    };
    let errors = high::requisite_in(&mut high);
    high::apply_exclude(&mut high);
    if !errors.is_empty() {
        return Value::Array(errors.into_iter().map(Value::from).collect());
    }
    let chunks = compile::compile_high_data_with(&Value::Map(high), Some(&jid));
    let ctx = states::Call {
        test,
        failhard: cfg.get_bool("failhard").unwrap_or(false),
        env: saltenv,
        orchestration_jid: Some(jid),
        running: Vec::new(),
    };
    let run = engine::StateRun::new(chunks, ctx, effects);
    let running = run.call_chunks();
    Value::Map(running.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
}

/// Salt's `state.orchestrate` runner: `{"data": {"<master id>": results
/// or errors}, "outputter": "highstate", "retcode": 0|1}`, retcode 1 when
/// a state failed, nothing ran, or the run stopped on errors.
pub fn orchestrate(
    cfg: &MasterConfig,
    mods: &[String],
    opts: OrchestrateOpts,
    effects: &mut dyn Effects,
) -> Result<Value, OrchestrateError> {
    if opts.pillar.as_ref().is_some_and(|p| !p.is_map()) {
        return Err(OrchestrateError::PillarNotDict);
    }
    let id = cfg.master_id();
    let running = state_sls(cfg, mods, &opts, effects);
    let data = Value::map([(id.as_str(), running)]);
    let ok = states::check_result(&data, false);
    Ok(Value::map([
        ("data", data),
        ("outputter", Value::from("highstate")),
        ("retcode", Value::Int(if ok { 0 } else { 1 })),
    ]))
}

/// The SLS names given as one comma list or several (for callers that
/// hold the runner's raw `mods` argument).
pub fn mods_of(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(to_str).collect(),
        other => vec![to_str(other)],
    }
}
