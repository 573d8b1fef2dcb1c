//! The wheel functions Brine serves, run in the MWorker: a call answers
//! `{tag, data}` at once (`data` = `{fun, jid, tag, user, return,
//! success, _stamp}`, which Salt's WheelClient reads), with
//! `salt/wheel/<jid>/new` and `…/ret` fired around it; the function runs
//! as Salt's `WheelClient.low` runs it, a job of its own (another jid,
//! its events, stored in the job cache unless `wheel_returns: False`). A function Brine does not implement is
//! refused up front with a `SaltMasterError` naming it, so the Python
//! client prints it and exits rather than waiting for a return that never
//! comes.
//!
//! * [`key`]: Salt's `wheel.key` (the key operations of `salt-key`).
//! * [`config`]: `config.values`, `config.update_config`.
//! * [`roots`]: `file_roots.*` and `pillar_roots.*` (find, list_env,
//!   list_roots, read, write), never outside a root.
//!
//! A function's answer for bad input is Salt's where Salt answers (the
//! "Invalid path" texts are data, with `success: True`); where Salt's
//! function raises, the return is `Exception occurred in wheel <fun>: …`
//! with `success: False`.

mod config;
mod key;
mod roots;

use std::sync::Arc;

use brine_cache::Jid;
use brine_config::MasterConfig;
use brine_loader::resolve::{use_python, ModuleType};
use brine_proto::event::{stamp, EventSender};
use brine_proto::Value;
use log::{info, warn};

use super::Ctx;
use brine_client::low::{error, CallArgs};

pub(super) use key::key_ops;

/// The wheel functions served.
pub const WHEEL_FUNCS: [&str; 28] = [
    "key.list",
    "key.list_all",
    "key.name_match",
    "key.accept",
    "key.accept_dict",
    "key.reject",
    "key.reject_dict",
    "key.delete",
    "key.delete_dict",
    "key.print",
    "key.key_str",
    "key.finger",
    "key.finger_master",
    "key.master_key_str",
    "key.list_status",
    "key.all_keys",
    "config.values",
    "config.update_config",
    "file_roots.find",
    "file_roots.list_env",
    "file_roots.list_roots",
    "file_roots.read",
    "file_roots.write",
    "pillar_roots.find",
    "pillar_roots.list_env",
    "pillar_roots.list_roots",
    "pillar_roots.read",
    "pillar_roots.write",
];

/// A wheel call (Salt's `ClearFuncs.wheel`): `{tag, data}` with the
/// return, events around it. Salt's master runs the function itself
/// through `WheelClient.low`, a job of its own ([`low`]: another jid, its
/// own new/ret events, user `UNKNOWN`).
pub(crate) fn wheel(ctx: &mut Ctx, fun: &str, load: &Value, username: &str) -> Value {
    let fun = canonical(fun);
    if let Err(refused) = check(fun) {
        return refused;
    }
    let (tag, data) = outer_begin(fun, username);
    let _ = ctx.events.fire(&format!("{tag}/new"), &data);
    let (ret, success) = low(ctx, fun, load, "UNKNOWN");
    info!("wheel {fun} by {}: success={success}", username.escape_debug());
    outer_end(&mut ctx.events, &tag, data, ret, success)
}

/// The outer job of a wheel call (`ClearFuncs.wheel`): its tag and data.
fn outer_begin(fun: &str, username: &str) -> (String, Value) {
    let jid = Jid::generate();
    let tag = format!("salt/wheel/{jid}");
    let mut data = Value::map([
        ("fun", Value::from(format!("wheel.{fun}"))),
        ("jid", Value::from(jid.as_str())),
        ("tag", Value::from(tag.as_str())),
        ("user", Value::from(username)),
    ]);
    stamp(&mut data);
    (tag, data)
}

/// The outer job's end: its `…/ret` event, and the answer.
fn outer_end(events: &mut EventSender, tag: &str, mut data: Value, ret: Value, success: bool) -> Value {
    data.set("return", ret);
    data.set("success", Value::Bool(success));
    stamp(&mut data);
    let _ = events.fire(&format!("{tag}/ret"), &data);
    Value::map([("tag", Value::from(tag)), ("data", data)])
}

/// A wheel function Salt's Python runs (one Brine lacks, or one of a
/// custom module in `extension_modules/wheel` or `wheel_dirs` that
/// overrides Brine's), as a task for a thread off the request loop: the
/// same jobs and events as Brine's own, the function through the Python
/// loader pool (or a Python process of its own when no pool runs), for a
/// function [`in_python`] says Python runs.
pub(crate) fn python_task(
    cfg: &Arc<MasterConfig>,
    fun: &str,
    load: &Value,
    username: &str,
) -> Box<dyn FnOnce() -> Value + Send> {
    let fun = canonical(fun).to_string();
    let (cfg, load, username) = (cfg.clone(), load.clone(), username.to_string());
    Box::new(move || {
        let mut events = brine_client::event_sender(&cfg);
        let (tag, data) = outer_begin(&fun, &username);
        let _ = events.fire(&format!("{tag}/new"), &data);
        let (ret, success) = python_low(&cfg, &mut events, &fun, &load, "UNKNOWN");
        info!("wheel {fun} (Python) by {}: success={success}", username.escape_debug());
        outer_end(&mut events, &tag, data, ret, success)
    })
}

/// `WheelClient.low` of a function Salt's Python runs: the low job and
/// its events as [`low`] makes them, the function through Salt's wheel
/// loader; its return and success.
fn python_low(cfg: &MasterConfig, events: &mut EventSender, fun: &str, load: &Value, user: &str) -> (Value, bool) {
    let args = CallArgs::from_load(load);
    let (low_jid, low_tag, low) = low_begin(fun, user, load, &args);
    let _ = events.fire(&format!("{low_tag}/new"), &low);
    let (ret, success) = python_call(cfg, fun, &args);
    low_end(cfg, events, &low_jid, &low_tag, low, ret.clone(), success);
    (ret, success)
}

/// The function through Salt's wheel loader: its return and success.
fn python_call(cfg: &MasterConfig, fun: &str, args: &CallArgs) -> (Value, bool) {
    let kwarg = args
        .named()
        .iter()
        .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
        .collect();
    let req = Value::map([
        ("kind", Value::from("wheel")),
        ("fun", Value::from(fun)),
        ("arg", Value::Array(args.positional().to_vec())),
        ("kwarg", Value::Map(kwarg)),
    ]);
    match brine_loader::call(cfg, &req, "WheelClient") {
        Ok(v) => (
            v.get("return").cloned().unwrap_or(Value::Nil),
            v.get("success").is_none_or(brine_py::truthy),
        ),
        Err(brine_loader::LoaderError::Missing(text)) => (Value::from(text), false),
        Err(e) => {
            warn!("wheel {fun}: {e}");
            (Value::from(format!("Exception occurred in wheel {fun}: {e}")), false)
        }
    }
}

/// A wheel reaction (Salt's `ReactWrap.wheel`, which calls
/// `WheelClient.low` with the reaction's user): one job, its events
/// carrying `user`, so the Reactor does not react to them. A function
/// Salt's Python runs is called from here (a Reactor worker thread,
/// which may wait).
pub(crate) fn reaction(ctx: &mut Ctx, fun: &str, load: &Value, user: &str) {
    let fun = canonical(fun);
    if in_python(&ctx.cfg, fun) {
        let (_, success) = python_low(&ctx.cfg, &mut ctx.events, fun, load, user);
        info!("wheel {fun} (Python) by {}: success={success}", user.escape_debug());
    } else if check(fun).is_ok() {
        let (_, success) = low(ctx, fun, load, user);
        info!("wheel {fun} by {}: success={success}", user.escape_debug());
    }
}

/// Whether Salt's Python runs the wheel function `fun` here (a custom
/// module, or a function Brine lacks, and Python with Salt to run it).
pub(crate) fn in_python(cfg: &MasterConfig, fun: &str) -> bool {
    let fun = canonical(fun);
    let module = fun.split('.').next().unwrap_or_default();
    use_python(&cfg.raw, ModuleType::Wheel, module, WHEEL_FUNCS.contains(&fun)) && brine_loader::available(cfg)
}

fn canonical(fun: &str) -> &str {
    match fun {
        "key.print" => "key.key_str",
        f => f,
    }
}

/// A function Brine serves, or Brine's refusal.
fn check(fun: &str) -> Result<(), Value> {
    if WHEEL_FUNCS.contains(&fun) {
        return Ok(());
    }
    warn!("wheel {}: not implemented in Brine; refused", fun.escape_debug());
    Err(error(
        "SaltMasterError",
        &format!(
            "Brine's master does not implement the wheel function '{fun}' (it serves {})",
            WHEEL_FUNCS.join(", ")
        ),
    ))
}

/// `WheelClient.low`: the function as a job of its own (new/ret events
/// under a new jid, `user` in their data, stored in the job cache under
/// the master's id when `wheel_returns`); its return and success.
fn low(ctx: &mut Ctx, fun: &str, load: &Value, user: &str) -> (Value, bool) {
    let args = CallArgs::from_load(load);
    let (low_jid, low_tag, low) = low_begin(fun, user, load, &args);
    let _ = ctx.events.fire(&format!("{low_tag}/new"), &low);
    let (ret, success) = match call(ctx, fun, &args) {
        Ok(v) => (v, true),
        Err(e) => {
            warn!("wheel {fun}: {}", e.escape_debug());
            (Value::from(format!("Exception occurred in wheel {fun}: {e}")), false)
        }
    };
    let cfg = ctx.cfg.clone();
    low_end(&cfg, &mut ctx.events, &low_jid, &low_tag, low, ret.clone(), success);
    (ret, success)
}

/// The low job's jid, tag and data.
fn low_begin(fun: &str, user: &str, load: &Value, args: &CallArgs) -> (Jid, String, Value) {
    let low_jid = Jid::generate();
    let low_tag = format!("salt/wheel/{low_jid}");
    let mut low = Value::map([
        ("fun", Value::from(format!("wheel.{fun}"))),
        ("jid", Value::from(low_jid.as_str())),
        ("user", Value::from(user)),
        ("fun_args", args.fun_args(load)),
    ]);
    stamp(&mut low);
    (low_jid, low_tag, low)
}

/// The low job's end: stored (`wheel_returns`), its `…/ret` event.
fn low_end(
    cfg: &MasterConfig,
    events: &mut EventSender,
    low_jid: &Jid,
    low_tag: &str,
    mut low: Value,
    ret: Value,
    success: bool,
) {
    low.set("return", ret);
    low.set("success", Value::Bool(success));
    if !success {
        low.set("retcode", Value::Int(1));
    }
    if cfg.get_bool("wheel_returns").unwrap_or(true) {
        brine_runners::store_job(cfg, low_jid.as_str(), &low);
    }
    stamp(&mut low);
    let _ = events.fire(&format!("{low_tag}/ret"), &low);
}

/// One of [`WHEEL_FUNCS`]: its return, or the text of what Salt's
/// function would raise.
fn call(ctx: &mut Ctx, fun: &str, args: &CallArgs) -> Result<Value, String> {
    match fun.split_once('.') {
        Some(("key", _)) => key::call(ctx, fun, args),
        Some(("config", f)) => config::call(ctx, f, args),
        Some(("file_roots", f)) => roots::call(ctx, roots::Tree::Files, f, args),
        Some(("pillar_roots", f)) => roots::call(ctx, roots::Tree::Pillar, f, args),
        _ => Err(format!("{fun} is not implemented")),
    }
}

/// A text argument (`str` in Salt's function), or what Python raises for
/// another type.
fn text_arg<'a>(args: &'a CallArgs, i: usize, name: &str) -> Result<&'a str, String> {
    match args.get(i, name) {
        Some(Value::Str(s)) => Ok(s),
        Some(other) => Err(format!(
            "TypeError: {name} must be str, not {}",
            brine_py::type_name(other)
        )),
        None => Err(format!("missing argument: {name}")),
    }
}

/// Write `data` to `path`, a path `clean_real` resolved (no symlink left
/// in it), with `O_NOFOLLOW`: a symlink put in its place since the check
/// fails the write instead of being followed.
fn write_checked(path: &str, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(data)
}

/// The working directory relative roots are taken against (Python's
/// `os.getcwd()` in `clean_path`).
fn cwd() -> String {
    std::env::current_dir()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/".into())
}
