//! The fileserver commands of the request channel (Salt's `AESFuncs`
//! file functions and `_master_opts`/`_master_tops`), served by
//! [`brine_fileserver::Fileserver`].
//!
//! As in `AESFuncs.run_func`, a function that raises is answered with `""`
//! (and logged); every other answer is the function's return value.

use std::sync::Arc;

use brine_config::MasterConfig;
use brine_keys::MinionId;
use brine_proto::commands::AesCmd;
use brine_proto::json::from_json;
use brine_proto::Value;
use brine_py::truthy;
use log::warn;

use super::Ctx;
use brine_fileserver::{Fileserver, Form, FsError};

/// The options `_master_opts` sends (besides `file_roots`), in Salt's
/// order; the first three are all an `env_only` request gets.
const ENV_OPTS: [&str; 3] = ["top_file_merging_strategy", "env_order", "default_top"];
const STATE_OPTS: [&str; 12] = [
    "renderer",
    "failhard",
    "state_top",
    "state_top_saltenv",
    "nodegroups",
    "state_auto_order",
    "state_events",
    "state_aggregate",
    "jinja_env",
    "jinja_sls_env",
    "jinja_lstrip_blocks",
    "jinja_trim_blocks",
];

/// One fileserver command from minion `id`.
pub(super) fn file_cmd(ctx: &Ctx, files: &mut Fileserver, cmd: AesCmd, id: &MinionId, load: &Value) -> Value {
    if cmd == AesCmd::MasterOpts {
        return master_opts(ctx, files, load);
    }
    let fs = files;
    let ret: Result<Value, FsError> = match cmd {
        AesCmd::FileEnvs => Ok(fs.file_envs(load)),
        AesCmd::FileList => fs.file_list(id, load, Form::Files),
        AesCmd::FileListEmptydirs => fs.file_list(id, load, Form::EmptyDirs),
        AesCmd::DirList => fs.file_list(id, load, Form::Dirs),
        AesCmd::SymlinkList => fs.symlink_list(id, load),
        AesCmd::FileFind => fs.file_find(id, load),
        AesCmd::FileHash => fs.file_hash(id, load),
        AesCmd::FileHashAndStat => fs.file_hash_and_stat(id, load),
        AesCmd::ServeFile => fs.serve_file(id, load),
        other => {
            warn!("{id}: {} is not a fileserver command", other.as_str());
            Ok(Value::Map(Vec::new()))
        }
    };
    ret.unwrap_or_else(|e| {
        warn!("{id}: {} failed (answered \"\" as Salt does): {e}", cmd.as_str());
        Value::from("")
    })
}

/// `_master_opts`: what a minion's `state.apply` needs from the
/// master's options; `file_roots` has each saltenv with no paths.
fn master_opts(ctx: &Ctx, files: &Fileserver, load: &Value) -> Value {
    let opt = |k: &str| ctx.cfg.get(k).map_or(Value::Nil, from_json);
    let roots = files
        .envs()
        .into_iter()
        .map(|e| (Value::from(e), Value::Array(Vec::new())));
    let mut m = vec![(Value::from("file_roots"), Value::Map(roots.collect()))];
    m.extend(ENV_OPTS.iter().map(|k| (Value::from(*k), opt(k))));
    if load.get("env_only").is_some_and(truthy) {
        return Value::Map(m);
    }
    m.extend(STATE_OPTS.iter().map(|k| (Value::from(*k), opt(k))));
    Value::Map(m)
}

/// `_master_tops` (Salt's `RemoteFuncs._master_tops`): every configured
/// `master_tops` module, run by Salt's loader in the Python pool with the
/// minion's options and grains from the request, their tops merged. The
/// task for an offload thread, or `None` when no module is configured
/// (the answer is then `{}`).
pub(super) fn master_tops_task(
    cfg: &Arc<MasterConfig>,
    id: &MinionId,
    load: &Value,
) -> Option<Box<dyn FnOnce() -> Value + Send>> {
    if brine_loader::resolve::master_tops_names(&cfg.raw).is_empty() {
        return None;
    }
    let client = brine_loader::Client::of(cfg);
    let req = Value::map([
        ("kind", Value::from("master_tops")),
        ("minion_id", Value::from(id)),
        ("opts", load.get("opts").cloned().unwrap_or(Value::Map(Vec::new()))),
    ]);
    let id = id.clone();
    Some(Box::new(move || match client.call(&req) {
        Ok(tops) if tops.is_map() => tops,
        Ok(other) => {
            warn!(
                "master_tops for {id}: the modules answered a {}, not a dict",
                brine_py::type_name(&other)
            );
            Value::Map(Vec::new())
        }
        Err(e @ brine_loader::LoaderError::Unavailable(_)) => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| warn!("master_tops is configured but {e}: minions get no tops from it"));
            Value::Map(Vec::new())
        }
        Err(e) => {
            log::error!("master_tops for minion {id}: {e}");
            Value::Map(Vec::new())
        }
    }))
}
