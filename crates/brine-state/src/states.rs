//! The state functions an orchestration runs on the master, as
//! `salt/states/saltmod.py` (`salt.state`, `salt.function`,
//! `salt.runner`, `salt.wheel`, `salt.wait_for_event`) and
//! `salt/states/test.py` return them; and `State.verify_data`'s checks
//! of a chunk before its function runs.

use std::time::{Duration, Instant};

use brine_client::Publish;
use brine_proto::Value;
use brine_py::{float_repr, fnmatch, repr, to_str, truthy};

use crate::compile::Chunk;
use crate::effects::Effects;

/// What a state function sees besides its arguments: `__opts__["test"]`
/// and `["failhard"]`, `__env__`, `__orchestration_jid__`, the results
/// so far (`__running__`, for `test.mod_watch`).
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub test: bool,
    pub failhard: bool,
    pub env: String,
    pub orchestration_jid: Option<String>,
    pub running: Vec<(String, Value)>,
}

/// Salt's `STATE_INTERNAL_KEYWORDS`, chunk keys never passed to a state
/// function's `**kwargs`: the requisite keywords
/// ([`crate::high::REQUISITE_KEYWORDS`]) and these.
const INTERNAL: &[&str] = &[
    "onchanges_in",
    "onfail_in",
    "prereq_in",
    "watch_in",
    "require_in",
    "listen_in",
    "fun",
    "state",
    "check_cmd",
    "cmd_opts_exclude",
    "failhard",
    "onlyif",
    "unless",
    "creates",
    "retry",
    "order",
    "parallel",
    "reload_modules",
    "reload_grains",
    "reload_pillar",
    "runas",
    "runas_password",
    "fire_event",
    "saltenv",
    "umask",
    "use",
    "use_in",
    "__env__",
    "__sls__",
    "__id__",
    "__sls_included_from__",
    "__orchestration_jid__",
    "__pub_user",
    "__pub_arg",
    "__pub_jid",
    "__pub_fun",
    "__pub_tgt",
    "__pub_ret",
    "__pub_pid",
    "__pub_tgt_type",
    "__prereq__",
    "__prerequired__",
    "__umask__",
];

/// The functions and their positional parameters without defaults
/// (`verify_data`'s "Missing parameter" check).
const FUNCTIONS: &[(&str, &[&str])] = &[
    ("salt.state", &["name", "tgt"]),
    ("salt.function", &["name", "tgt"]),
    ("salt.runner", &["name"]),
    ("salt.wheel", &["name"]),
    ("salt.wait_for_event", &["name", "id_list"]),
    ("test.nop", &["name"]),
    ("test.succeed_without_changes", &["name"]),
    ("test.succeed_with_changes", &["name"]),
    ("test.fail_without_changes", &["name"]),
    ("test.fail_with_changes", &["name"]),
    ("test.configurable_test_state", &["name"]),
    ("test.mod_watch", &["name"]),
];

/// The state modules Brine runs on the master.
const MODULES: &[&str] = &["salt", "test"];

/// Whether `state` has a `mod_watch` (else `watch` is `require`).
pub fn has_mod_watch(state: &str) -> bool {
    state == "test"
}

/// `State.verify_data`: what keeps a chunk from running.
pub fn verify_data(low: &Chunk) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(name) = low.get("name") {
        if truthy(name) && !matches!(name, Value::Str(_)) {
            let sls = low
                .get("__sls__")
                .map(|s| format!("in SLS '{}' ", to_str(s)))
                .unwrap_or_default();
            errors.push(format!(
                "ID '{}' {sls}is not formed as a string, but is a {}",
                to_str(name),
                brine_py::type_name(name)
            ));
            return errors;
        }
    }
    let full = format!("{}.{}", low.text("state"), low.text("fun"));
    match FUNCTIONS.iter().find(|(f, _)| *f == full) {
        None => match low.get("__sls__") {
            Some(sls) => {
                errors.push(format!("State '{full}' was not found in SLS '{}'", to_str(sls)));
                if MODULES.contains(&low.text("state").as_str()) {
                    errors.push(format!("Reason: '{full}' is not available."));
                }
            }
            None => errors.push(format!("Specified state '{full}' was not found")),
        },
        Some((_, required)) => {
            for p in *required {
                if low.get(p).is_none() {
                    errors.push(format!("Missing parameter {p} for state {full}"));
                }
            }
        }
    }
    errors
}

/// The chunk's arguments for `**kwargs` (everything but Salt's internal
/// keywords and the named parameters `named`).
fn kwargs(low: &Chunk, named: &[&str]) -> Vec<(String, Value)> {
    low.0
        .iter()
        .filter(|(k, _)| {
            !INTERNAL.contains(&k.as_str())
                && !crate::high::REQUISITE_KEYWORDS.contains(&k.as_str())
                && !named.contains(&k.as_str())
        })
        .cloned()
        .collect()
}

fn ret(name: &Value, result: Value, comment: impl Into<Value>) -> Value {
    Value::map([
        ("name", name.clone()),
        ("changes", Value::Map(Vec::new())),
        ("result", result),
        ("comment", comment.into()),
    ])
}

fn pretend_changes() -> Value {
    Value::map([(
        "testing",
        Value::map([
            ("old", Value::from("Unchanged")),
            ("new", Value::from("Something pretended to change")),
        ]),
    )])
}

/// An exception a state function raised, as `State.call` reports it.
fn exception(name: &Value, kind: &str, msg: &str) -> Value {
    ret(
        name,
        Value::Bool(false),
        format!("An exception occurred in this state: {kind}: {msg}\n"),
    )
}

/// Run the chunk's state function.
pub fn run(low: &Chunk, ctx: &Call, effects: &mut dyn Effects) -> Value {
    let name = low.get("name").cloned().unwrap_or(Value::Nil);
    let comment_or = |d: &str| low.get("comment").cloned().unwrap_or_else(|| Value::from(d));
    match (low.text("state").as_str(), low.text("fun").as_str()) {
        ("test", "nop") | ("test", "succeed_without_changes") => ret(&name, Value::Bool(true), comment_or("Success!")),
        ("test", "fail_without_changes") => {
            if ctx.test {
                ret(
                    &name,
                    Value::Bool(false),
                    "If we weren't testing, this would be a failure!",
                )
            } else {
                ret(&name, Value::Bool(false), comment_or("Failure!"))
            }
        }
        ("test", "succeed_with_changes") | ("test", "fail_with_changes") => {
            let ok = low.text("fun") == "succeed_with_changes";
            let mut r = if ctx.test {
                let what = if ok { "successful" } else { "failed" };
                ret(
                    &name,
                    Value::Nil,
                    format!("If we weren't testing, this would be {what} with changes"),
                )
            } else {
                ret(
                    &name,
                    Value::Bool(ok),
                    comment_or(if ok { "Success!" } else { "Failure!" }),
                )
            };
            r.set("changes", pretend_changes());
            r
        }
        ("test", "configurable_test_state") => configurable_test_state(low, ctx, &name),
        ("test", "mod_watch") => {
            let mut changed = Vec::new();
            if let Some(Value::Array(watch)) = low.get("__reqs__").and_then(|r| r.get("watch")) {
                for req in watch {
                    let tag = format!(
                        "{}_|-{}_|-{}_|-{}",
                        req.get("state").map(to_str).unwrap_or_default(),
                        req.get("__id__").map(to_str).unwrap_or_default(),
                        req.get("name").map(to_str).unwrap_or_default(),
                        req.get("fun").map(to_str).unwrap_or_default()
                    );
                    let has = ctx
                        .running
                        .iter()
                        .find(|(t, _)| *t == tag)
                        .is_some_and(|(_, r)| r.get("changes").is_some_and(truthy));
                    if has {
                        changed.push(Value::from(format!(
                            "{}: {}",
                            req.get("state").map(to_str).unwrap_or_default(),
                            req.get("__id__").map(to_str).unwrap_or_default()
                        )));
                    }
                }
            }
            let kw = kwargs(low, &["name", "sfun"]);
            let get = |k: &str| kw.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            Value::map([
                ("name", name.clone()),
                ("result", get("result").unwrap_or(Value::Bool(true))),
                (
                    "comment",
                    get("comment").unwrap_or_else(|| Value::from("Watch statement fired.")),
                ),
                (
                    "changes",
                    get("changes").unwrap_or_else(|| Value::map([("Requisites with changes", Value::Array(changed))])),
                ),
            ])
        }
        ("salt", "function") => salt_function(low, ctx, &name, effects),
        ("salt", "state") => salt_state(low, ctx, &name, effects),
        ("salt", "runner") => {
            if ctx.test {
                return ret(
                    &name,
                    Value::Nil,
                    format!("Runner function '{}' would be executed.", to_str(&name)),
                );
            }
            // `saltutil.runner`: `arg` and `kwarg`, the other keyword
            // arguments (not `__*`) merged into `kwarg`.
            let mut kw = kwargs(low, &["name"]);
            let take = |kw: &mut Vec<(String, Value)>, k: &str| {
                kw.iter().position(|(key, _)| key == k).map(|i| kw.remove(i).1)
            };
            let args = match take(&mut kw, "arg") {
                Some(Value::Array(a)) => a,
                Some(Value::Nil) | None => Vec::new(),
                Some(other) => vec![other],
            };
            let mut kwarg = match take(&mut kw, "kwarg") {
                Some(Value::Map(m)) => m,
                _ => Vec::new(),
            };
            for (k, v) in kw {
                if !k.starts_with("__") {
                    kwarg.retain(|(key, _)| key.as_str() != Some(&k));
                    kwarg.push((Value::from(k), v));
                }
            }
            let out = effects.runner(&to_str(&name), args, Value::Map(kwarg));
            client_result(&name, "Runner", out)
        }
        ("salt", "wheel") => {
            if ctx.test {
                return ret(
                    &name,
                    Value::Nil,
                    format!("Wheel function '{}' would be executed.", to_str(&name)),
                );
            }
            let kw: Vec<(Value, Value)> = kwargs(low, &["name"])
                .into_iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| (Value::from(k), v))
                .collect();
            let out = effects.wheel(&to_str(&name), Value::Map(kw));
            client_result(&name, "Wheel", out)
        }
        ("salt", "wait_for_event") => wait_for_event(low, ctx, &name, effects),
        _ => ret(
            &name,
            Value::Bool(false),
            format!("State '{}.{}' was not found", low.text("state"), low.text("fun")),
        ),
    }
}

/// `salt.runner`/`salt.wheel`'s result from the full return.
fn client_result(name: &Value, what: &str, mut out: Value) -> Value {
    let ret_v = out.get("return").cloned().unwrap_or(Value::Nil);
    if ret_v.is_map() && ret_v.get("Error").is_some() {
        out.set("success", Value::Bool(false));
    }
    let success = out.get("success").cloned().unwrap_or(Value::Bool(true));
    let mut r = Value::map([
        ("name", name.clone()),
        ("changes", Value::map([("return", ret_v)])),
        ("result", success.clone()),
        (
            "comment",
            Value::from(format!(
                "{what} function '{}' {}.",
                to_str(name),
                if truthy(&success) { "executed" } else { "failed" }
            )),
        ),
    ]);
    if let Some(jid) = out.get("jid") {
        r.set("__jid__", jid.clone());
    }
    r
}

fn configurable_test_state(low: &Chunk, ctx: &Call, name: &Value) -> Value {
    const ARGS: &[&str] = &[
        "name",
        "changes",
        "result",
        "comment",
        "warnings",
        "allow_test_mode_failure",
    ];
    // Not a `**kwargs` function: other arguments are Salt's
    // SaltInvocationError from `format_call`.
    let extra: Vec<String> = kwargs(low, ARGS).into_iter().map(|(k, _)| k).collect();
    if !extra.is_empty() {
        let full = "test.configurable_test_state";
        let msg = if extra.len() == 1 {
            format!("'{}' is an invalid keyword argument for '{full}'", extra[0])
        } else {
            format!(
                "{} and '{}' are invalid keyword arguments for '{full}'",
                extra[..extra.len() - 1]
                    .iter()
                    .map(|e| format!("'{e}'"))
                    .collect::<Vec<_>>()
                    .join(", "),
                extra[extra.len() - 1]
            )
        };
        return exception(name, "SaltInvocationError", &msg);
    }
    let changes = low.get("changes").cloned().unwrap_or(Value::Bool(true));
    let result = low.get("result").cloned().unwrap_or(Value::Bool(true));
    let comment = low.get("comment").cloned().unwrap_or_else(|| Value::from(""));
    let mut r = ret(name, Value::Bool(false), comment.clone());
    let coin = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() & 1 == 1)
            .unwrap_or(false)
    };
    match &changes {
        Value::Bool(true) => r.set("changes", pretend_changes()),
        Value::Bool(false) => {}
        other if to_str(other).to_lowercase() == "random" => {
            if coin() {
                r.set("changes", pretend_changes());
            }
        }
        _ => {
            return exception(
                name,
                "SaltInvocationError",
                "You have specified the state option 'changes' with invalid arguments. It must be either True, False, or 'Random'",
            )
        }
    }
    match &result {
        Value::Bool(b) => r.set("result", Value::Bool(*b)),
        other if to_str(other).to_lowercase() == "random" => r.set("result", Value::Bool(coin())),
        _ => {
            return exception(
                name,
                "SaltInvocationError",
                "You have specified the state option 'result' with invalid arguments. It must be either True, False, or 'Random'",
            )
        }
    }
    match low.get("warnings") {
        None | Some(Value::Nil) => {}
        Some(Value::Str(s)) => r.set("warnings", Value::Array(vec![Value::from(s.as_str())])),
        Some(Value::Array(a)) => r.set("warnings", Value::Array(a.clone())),
        Some(_) => {
            return exception(
                name,
                "SaltInvocationError",
                "You have specified the state option 'warnings' with invalid arguments. It must be a string or a list of strings",
            )
        }
    }
    if ctx.test {
        let allow = low.get("allow_test_mode_failure").is_some_and(truthy);
        let test_result = if allow && result == Value::Bool(false) {
            result.clone()
        } else if changes == Value::Bool(false) {
            Value::Bool(true)
        } else {
            Value::Nil
        };
        r.set("result", test_result);
        r.set(
            "comment",
            if truthy(&comment) {
                comment
            } else {
                Value::from("This is a test")
            },
        );
    }
    r
}

/// `fail_minions`: a comma list or a list; anything else is ignored with
/// a warning.
fn fail_minions(low: &Chunk, r: &mut Value) -> Vec<String> {
    match low.get("fail_minions") {
        None | Some(Value::Nil) => Vec::new(),
        Some(Value::Str(s)) => s.split(',').map(|m| m.trim().to_string()).collect(),
        Some(Value::Array(a)) => a.iter().map(to_str).collect(),
        Some(_) => {
            add_warning(
                r,
                "'fail_minions' needs to be a list or a comma separated string. Ignored.",
            );
            Vec::new()
        }
    }
}

fn add_warning(r: &mut Value, w: &str) {
    match r.get("warnings").cloned() {
        Some(Value::Array(mut a)) => {
            a.push(Value::from(w));
            r.set("warnings", Value::Array(a));
        }
        _ => r.set("warnings", Value::Array(vec![Value::from(w)])),
    }
}

/// The job for `saltutil.cmd`: `kwarg` packed into the arguments as
/// `LocalClient` does (`{..., "__kwarg__": True}`).
fn publish(low: &Chunk, fun: &str, mut arg: Vec<Value>, kwarg: Vec<(Value, Value)>) -> Publish {
    if !kwarg.is_empty() {
        let mut kw = kwarg;
        kw.push((Value::from("__kwarg__"), Value::Bool(true)));
        arg.push(Value::Map(kw));
    }
    let mut job = Publish::new(low.get("tgt").cloned().unwrap_or(Value::Nil), fun).args(arg);
    if let Some(t) = low.get("tgt_type").filter(|v| !v.is_nil()) {
        job.tgt_type = to_str(t);
    }
    if let Some(r) = low.get("ret").filter(|v| !v.is_nil()) {
        job.ret = to_str(r);
    }
    job
}

fn timeout(low: &Chunk, effects: &dyn Effects) -> Duration {
    match low.get("timeout").and_then(brine_py::int) {
        Some(t) if t > 0 => Duration::from_secs(t as u64),
        _ => effects.default_timeout(),
    }
}

/// Salt's `saltutil.cmd` through [`Effects::cmd`]: each minion's full
/// return, then `{"failed": True}` for the minions that did not return
/// when `expect_minions`, and for the targeted minions without a key.
fn cmd(
    effects: &mut dyn Effects,
    job: &Publish,
    timeout: Duration,
    expect_minions: bool,
) -> Result<Vec<(String, Value)>, String> {
    let got = effects.cmd(job, timeout)?;
    let mut out = got.returns;
    let silent = if expect_minions { got.missing } else { Vec::new() };
    for m in silent.into_iter().chain(got.unknown) {
        if !out.iter().any(|(id, _)| *id == m) {
            out.push((m, Value::map([("failed", Value::Bool(true))])));
        }
    }
    Ok(out)
}

/// Each minion's full return, in arrival order.
type MinionReturns = Vec<(String, Value)>;

/// Publish a step's job and wait for its returns (`cmd_iter`): the
/// returns and the step's `fail_minions`, with `__jid__` set on `r`; or
/// `None` when the publish failed, `r` then saying why.
fn run_job(
    low: &Chunk,
    fun: &str,
    arg: Vec<Value>,
    kwarg: Vec<(Value, Value)>,
    expect: bool,
    effects: &mut dyn Effects,
    r: &mut Value,
) -> Option<(MinionReturns, Vec<String>)> {
    let job = publish(low, fun, arg, kwarg);
    let wait = timeout(low, effects);
    let cmd_ret = match cmd(effects, &job, wait, expect) {
        Ok(c) => c,
        Err(e) => {
            r.set("result", Value::Bool(false));
            r.set("comment", Value::from(e));
            return None;
        }
    };
    if let Some(jid) = cmd_ret.first().and_then(|(_, d)| d.get("jid")) {
        r.set("__jid__", jid.clone());
    }
    let fail_minions = fail_minions(low, r);
    Some((cmd_ret, fail_minions))
}

fn salt_function(low: &Chunk, ctx: &Call, name: &Value, effects: &mut dyn Effects) -> Value {
    let mut r = ret(name, Value::Bool(true), "");
    let fun = to_str(name);
    let tgt = low.get("tgt").map(to_str).unwrap_or_default();
    if low.get("ssh").is_some_and(truthy) {
        r.set("result", Value::Bool(false));
        r.set("comment", Value::from("salt-ssh is not supported by Brine"));
        return r;
    }
    let arg = match low.get("arg") {
        None | Some(Value::Nil) => Vec::new(),
        Some(Value::Str(s)) => {
            r.set(
                "warnings",
                Value::Array(vec![Value::from("Please specify 'arg' as a list of arguments.")]),
            );
            s.split_whitespace().map(Value::from).collect()
        }
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    };
    let kwarg = match low.get("kwarg") {
        Some(Value::Map(m)) => m.clone(),
        _ => Vec::new(),
    };
    if ctx.test {
        r.set(
            "comment",
            Value::from(format!("Function {fun} would be executed on target {tgt}")),
        );
        r.set("result", Value::Nil);
        return r;
    }
    let expect = low.get("expect_minions").is_some_and(truthy);
    let Some((cmd_ret, fail_minions)) = run_job(low, &fun, arg, kwarg, expect, effects, &mut r) else {
        return r;
    };
    let mut changes: Vec<(Value, Value)> = Vec::new();
    let mut fail: Vec<String> = Vec::new();
    let add_fail = |fail: &mut Vec<String>, m: &str| {
        if !fail.iter().any(|f| f == m) {
            fail.push(m.to_string());
        }
    };
    for (minion, mdata) in &cmd_ret {
        let mut m_ret = Value::Bool(false);
        if mdata.get("retcode").is_some_and(truthy) {
            r.set("result", Value::Bool(false));
            add_fail(&mut fail, minion);
        }
        let m_func = if mdata.get("failed").is_some_and(truthy) {
            false
        } else {
            m_ret = mdata
                .get("ret")
                .or_else(|| mdata.get("return"))
                .cloned()
                .unwrap_or(Value::Nil);
            m_ret != Value::Bool(false)
        };
        if !m_func && !fail_minions.contains(minion) {
            add_fail(&mut fail, minion);
        }
        changes.push((Value::from(minion.as_str()), m_ret));
    }
    if cmd_ret.is_empty() {
        r.set("result", Value::Bool(false));
        r.set("comment", Value::from("No minions responded"));
        return r;
    }
    let ran_on: Vec<String> = changes.iter().map(|(k, _)| to_str(k)).collect();
    r.set("changes", Value::map([("ret", Value::Map(changes))]));
    let mut comment = if fail.is_empty() {
        "Function ran successfully.".to_string()
    } else {
        r.set("result", Value::Bool(false));
        format!("Running function {fun} failed on minions: {}", fail.join(", "))
    };
    comment.push_str(&format!(" Function {fun} ran on {}.", ran_on.join(", ")));
    r.set("comment", Value::from(comment));
    r
}

/// `salt.utils.state.check_result` without a highstate: every state
/// result a dict and none `False`.
pub fn check_result(running: &Value, recurse: bool) -> bool {
    let Value::Map(items) = running else { return false };
    if items.is_empty() {
        return false;
    }
    for (id, r) in items {
        let expect_list = to_str(id) == "__extend__";
        let ok_type = if expect_list {
            matches!(r, Value::Array(_))
        } else {
            r.is_map()
        };
        if !recurse && !ok_type {
            return false;
        }
        if let Value::Map(_) = r {
            match r.get("result") {
                Some(Value::Bool(false)) => return false,
                None if !check_result(r, true) => return false,
                _ => {}
            }
        }
    }
    true
}

/// `_format_failure_detail`.
fn failure_detail(minion: &str, m_ret: &Value, no_return: bool) -> String {
    if no_return {
        return format!("Minion {minion} did not return a state result.");
    }
    match m_ret {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter(|i| truthy(*i)).map(to_str).collect();
            if parts.is_empty() {
                format!("Minion {minion} returned an empty error list.")
            } else {
                format!("Minion {minion} returned errors: {}", parts.join("; "))
            }
        }
        Value::Map(_) => String::new(),
        other => format!("Minion {minion} returned {} instead of a state result.", repr(other)),
    }
}

fn salt_state(low: &Chunk, ctx: &Call, name: &Value, effects: &mut dyn Effects) -> Value {
    let mut r = ret(name, Value::Bool(true), "");
    let get = |k: &str| low.get(k).filter(|v| !v.is_nil());
    let allow_fail = match get("allow_fail") {
        None => 0,
        Some(v) => match brine_py::int(v) {
            Some(n) => n,
            None => {
                r.set("result", Value::Bool(false));
                r.set(
                    "comment",
                    Value::from("Passed invalid value for 'allow_fail', must be an int"),
                );
                return r;
            }
        },
    };
    if get("ssh").is_some_and(truthy) {
        r.set("result", Value::Bool(false));
        r.set("comment", Value::from("salt-ssh is not supported by Brine"));
        return r;
    }
    let mut arg = Vec::new();
    let fun = if get("highstate").is_some_and(truthy) {
        "state.highstate"
    } else if let Some(top) = get("top").filter(|t| truthy(*t)) {
        arg.push(top.clone());
        "state.top"
    } else if let Some(sls) = get("sls").filter(|s| truthy(*s)) {
        let sls = match sls {
            Value::Array(a) => Value::from(a.iter().map(to_str).collect::<Vec<_>>().join(",")),
            other => other.clone(),
        };
        arg.push(sls);
        "state.sls"
    } else {
        r.set(
            "comment",
            Value::from("No highstate or sls specified, no execution made"),
        );
        r.set("result", Value::Bool(false));
        return r;
    };
    let mut kwarg: Vec<(Value, Value)> = Vec::new();
    let test = get("test");
    if test.is_some() || ctx.test {
        kwarg.push((Value::from("test"), test.cloned().unwrap_or(Value::Bool(ctx.test))));
    }
    if let Some(p) = get("pillar").filter(|p| truthy(*p)) {
        kwarg.push((Value::from("pillar"), p.clone()));
    }
    for key in ["pillarenv", "saltenv", "exclude"] {
        if let Some(v) = get(key) {
            kwarg.push((Value::from(key), v.clone()));
        }
    }
    kwarg.push((
        Value::from("queue"),
        get("queue").cloned().unwrap_or(Value::Bool(false)),
    ));
    match low.get("concurrent") {
        None => kwarg.push((Value::from("concurrent"), Value::Bool(false))),
        Some(Value::Bool(b)) => kwarg.push((Value::from("concurrent"), Value::Bool(*b))),
        Some(_) => {
            r.set("comment", Value::from("Must pass in boolean for value of 'concurrent'"));
            r.set("result", Value::Bool(false));
            return r;
        }
    }
    let expect = get("expect_minions").map(truthy).unwrap_or(true);
    let Some((cmd_ret, fail_minions)) = run_job(low, fun, arg, kwarg, expect, effects, &mut r) else {
        return r;
    };
    if cmd_ret.is_empty() && expect {
        r.set("result", Value::Bool(false));
        r.set("comment", Value::from("No minions returned"));
        return r;
    }
    let mut changes: Vec<(Value, Value)> = Vec::new();
    let mut fail: Vec<String> = Vec::new();
    let mut fail_detail: Vec<(String, String)> = Vec::new();
    let mut no_change: Vec<String> = Vec::new();
    for (minion, mdata) in &cmd_ret {
        let mut m_ret = Value::Bool(false);
        let mut no_return = false;
        let raw = mdata.get("ret").or_else(|| mdata.get("return")).cloned();
        let m_state = if mdata.get("failed").is_some_and(truthy) {
            no_return = raw.is_none();
            false
        } else {
            match &raw {
                Some(v) => {
                    m_ret = v.clone();
                    check_result(&m_ret, true)
                }
                None => {
                    no_return = true;
                    false
                }
            }
        };
        if !m_state {
            if !fail_minions.contains(minion) {
                if !fail.contains(minion) {
                    fail.push(minion.clone());
                }
                let shown = raw.clone().filter(|v| !v.is_nil()).unwrap_or_else(|| m_ret.clone());
                fail_detail.push((minion.clone(), failure_detail(minion, &shown, no_return)));
            }
            changes.push((Value::from(minion.as_str()), m_ret));
            continue;
        }
        let changed = match &m_ret {
            Value::Map(items) => items
                .iter()
                .any(|(_, s)| s.is_map() && s.get("changes").is_some_and(truthy)),
            _ => false,
        };
        if changed {
            changes.push((Value::from(minion.as_str()), m_ret));
        } else {
            no_change.push(minion.clone());
        }
    }
    let updated: Vec<String> = changes.iter().map(|(k, _)| to_str(k)).collect();
    if !changes.is_empty() {
        r.set(
            "changes",
            Value::map([("out", Value::from("highstate")), ("ret", Value::Map(changes))]),
        );
    }
    if fail.len() as i128 > allow_fail {
        r.set("result", Value::Bool(false));
        let mut comment = format!("Run failed on minions: {}", fail.join(", "));
        let mut sorted = fail.clone();
        sorted.sort();
        let details: Vec<&str> = sorted
            .iter()
            .filter_map(|m| fail_detail.iter().find(|(id, _)| id == m).map(|(_, d)| d.as_str()))
            .filter(|d| !d.is_empty())
            .collect();
        if !details.is_empty() {
            comment.push('\n');
            comment.push_str(&details.join("\n"));
        }
        r.set("comment", Value::from(comment));
    } else {
        let mut comment = "States ran successfully.".to_string();
        if !updated.is_empty() {
            comment.push_str(&format!(" Updating {}.", updated.join(", ")));
        }
        if !no_change.is_empty() {
            comment.push_str(&format!(" No changes made to {}.", no_change.join(", ")));
        }
        r.set("comment", Value::from(comment));
    }
    let test_on = test.is_some_and(truthy) || ctx.test;
    if test_on && r.get("changes").is_some_and(truthy) && r.get("result") == Some(&Value::Bool(true)) {
        r.set("result", Value::Nil);
    }
    r
}

fn wait_for_event(low: &Chunk, ctx: &Call, name: &Value, effects: &mut dyn Effects) -> Value {
    let mut r = ret(name, Value::Bool(false), "");
    let tag_glob = to_str(name);
    if ctx.test {
        r.set(
            "comment",
            Value::from(format!("Orchestration would wait for event '{tag_glob}'")),
        );
        r.set("result", Value::Nil);
        return r;
    }
    let mut id_list: Vec<Value> = match low.get("id_list") {
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
        None => Vec::new(),
    };
    let event_id = low.get("event_id").map(to_str).unwrap_or_else(|| "id".into());
    let timeout = low
        .get("timeout")
        .and_then(|t| match t {
            Value::F64(f) => Some(*f),
            other => brine_py::int(other).map(|n| n as f64),
        })
        .unwrap_or(300.0);
    let mut events = match effects.subscribe() {
        Ok(e) => e,
        Err(e) => {
            r.set("comment", Value::from(e));
            return r;
        }
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(timeout.max(0.0));
    let mut seen: Vec<Value> = Vec::new();
    loop {
        let event = events.next(deadline);
        let timed_out = Instant::now() > deadline;
        let Some((tag, data)) = event else {
            if timed_out {
                r.set("comment", Value::from("Timeout value reached."));
                return r;
            }
            continue;
        };
        if fnmatch(&tag, &tag_glob) {
            let val = data
                .get(&event_id)
                .filter(|v| !v.is_nil())
                .or_else(|| data.get("data").and_then(|d| d.get(&event_id)))
                .filter(|v| !v.is_nil())
                .cloned();
            match val {
                Some(Value::Array(vals)) => {
                    let found: Vec<Value> = id_list.iter().filter(|id| vals.contains(id)).cloned().collect();
                    for f in found {
                        if let Some(i) = id_list.iter().position(|x| *x == f) {
                            id_list.remove(i);
                        }
                        seen.push(f);
                    }
                }
                Some(v) => {
                    if let Some(i) = id_list.iter().position(|x| *x == v) {
                        id_list.remove(i);
                        seen.push(v);
                    }
                }
                None => {}
            }
            if !seen.is_empty() {
                r.set("changes", Value::map([("minions_seen", Value::Array(seen.clone()))]));
            }
        }
        if id_list.is_empty() {
            r.set("result", Value::Bool(true));
            r.set(
                "comment",
                Value::from(format!(
                    "All events seen in {} seconds.",
                    float_repr(start.elapsed().as_secs_f64())
                )),
            );
            return r;
        }
        if timed_out {
            r.set("comment", Value::from("Timeout value reached."));
            return r;
        }
    }
}
