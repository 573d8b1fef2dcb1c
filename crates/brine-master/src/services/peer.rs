//! Peer publishing: minions running `publish.publish`, `publish.full_data`
//! and `publish.runner` (Salt's `AESFuncs.minion_pub`, `pub_ret`,
//! `minion_runner`), allowed by the master's `peer:` and `peer_run:`
//! options.
//!
//! `minion_pub` checks the minion's rights (Salt's `CkMinions.auth_check`
//! with `publish_validate`, brine-auth), publishes the job the way a `LocalClient` in
//! the master would (the master's user, the minion's id in the
//! publication) but through this MWorker's own publish path, records the
//! publisher in `cachedir/publish_auth/<jid>` and answers `{jid,
//! minions}`; the minion then polls `pub_ret`, which gives the job cache's
//! returns to that minion only. `minion_runner` runs one of the runner
//! functions Brine serves, synchronously, as Salt does.
//!
//! Answers are Salt's: `{}` for a refusal, `""` where Salt's function
//! raises (as `AESFuncs.run_func` answers an exception).

use brine_keys::MinionId;
use brine_proto::json::from_json;
use brine_proto::Value;
use brine_py::parse_input;
use log::{info, warn};
use serde_json::Value as Json;

use super::{Ctx, Reply};
use crate::alarm::{self, Store};
use crate::runjobs::{JobSpec, RunnerJobs};
use brine_auth::acl::{auth_check, Target};
use brine_targeting::{CkMinions, PyRegex};

/// Salt's `CkMinions.check_minions` (greedy).
fn matched(ck: &CkMinions, tgt: &Value, tgt_type: &str) -> Vec<String> {
    ck.check_minions(tgt, tgt_type, ":", true).minions
}

/// Salt's `__verify_minion_publish`; `Err` where Salt's raises.
fn verify_minion_publish(ctx: &Ctx, ck: &CkMinions, id: &MinionId, load: &Value) -> Result<bool, String> {
    let Some(Json::Object(peer)) = ctx.cfg.get("peer") else {
        return Ok(false);
    };
    if ["fun", "arg", "tgt", "ret", "id"].iter().any(|k| load.get(k).is_none()) {
        return Ok(false);
    }
    let fun = match load.get("fun") {
        Some(Value::Str(f)) => f.clone(),
        other => return Err(format!("fun {other:?} is not text")),
    };
    if fun.starts_with("publish.") {
        return Ok(false);
    }
    let mut perms: Vec<Json> = Vec::new();
    for (pattern, funcs) in peer {
        let hit = PyRegex::new(pattern).map_err(|e| e.to_string())?.matches(id);
        if let (true, Json::Array(list)) = (hit, funcs) {
            perms.extend(list.iter().cloned());
        }
    }
    // The comma form: several functions, each argument split on
    // whitespace.
    let split: (Value, Value);
    let (funs, args) = if fun.contains(',') {
        let Some(Value::Array(args)) = load.get("arg") else {
            return Err("arg is not a list".into());
        };
        let mut split_args = Vec::new();
        for a in args {
            let Some(s) = a.as_str() else {
                return Err(format!("argument {a:?} has no split()"));
            };
            split_args.push(Value::Array(s.split_whitespace().map(Value::from).collect()));
        }
        split = (
            Value::Array(fun.split(',').map(Value::from).collect()),
            Value::Array(split_args),
        );
        (&split.0, &split.1)
    } else {
        (
            load.get("fun").unwrap_or(&Value::Nil),
            load.get("arg").unwrap_or(&Value::Nil),
        )
    };
    let tgt_type = load.get("tgt_type").and_then(Value::as_str).unwrap_or("glob");
    let tgt = load.get("tgt").unwrap_or(&Value::Nil);
    let target = Target {
        tgt,
        tgt_type,
        minions: None,
    };
    let allowed = auth_check(ck, &perms, funs, args, &target, true, &[]);
    if allowed && fun.contains(',') {
        // Salt's masterapi.minion_pub verifies the load again, now with
        // `fun` a list, and raises on `re.match`: the comma form never
        // publishes (3006 and 3007).
        return Err(
            "the comma form of fun (a list after the split) is refused as Salt's masterapi raises on it".into(),
        );
    }
    Ok(allowed)
}

/// `minion_pub`: publish for a peer; `{jid, minions}`.
pub(super) fn minion_pub(ctx: &mut Ctx, push: &zmq::Socket, id: &MinionId, load: &Value) -> Value {
    let ck = super::publish::ckminions(ctx);
    match verify_minion_publish(ctx, &ck, id, load) {
        Ok(true) => {}
        Ok(false) => {
            warn!(
                "{id}: peer publish of {} refused by the peer configuration",
                load.get("fun").map(brine_py::to_str).unwrap_or_default()
            );
            return Value::Map(vec![]);
        }
        Err(e) => {
            warn!("{id}: minion_pub failed (answered \"\" as Salt does): {e}");
            return Value::from("");
        }
    }
    let no_parse: Vec<String> = match load.get("no_parse") {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    };
    let args = match load.get("arg") {
        Some(Value::Array(a)) => parse_input(a, &no_parse),
        _ => Vec::new(),
    };
    let orig_tgt = load.get("tgt").cloned().unwrap_or(Value::Nil);
    let mut tgt = orig_tgt.clone();
    let mut tgt_type = load
        .get("tgt_type")
        .and_then(Value::as_str)
        .unwrap_or("glob")
        .to_string();
    if tgt_type.starts_with("node") {
        let group = tgt
            .as_str()
            .and_then(|t| ctx.cfg.get("nodegroups")?.get(t))
            .map(from_json);
        match group {
            Some(g) => {
                tgt = g;
                tgt_type = "compound".into();
            }
            None => return Value::Map(vec![]),
        }
    }
    // What LocalClient.cmd_async sends for AESFuncs.minion_pub.
    let job = Value::map([
        ("tgt", tgt),
        ("fun", load.get("fun").cloned().unwrap_or(Value::Nil)),
        ("arg", Value::Array(args)),
        ("tgt_type", Value::from(tgt_type.as_str())),
        ("ret", load.get("ret").cloned().unwrap_or(Value::from(""))),
        ("jid", Value::from("")),
        ("kwargs", Value::map([("id", Value::from(id))])),
        ("user", Value::from(ctx.cfg.user.as_str())),
    ]);
    let user = ctx.cfg.user.clone();
    let published = match super::publish::publish_job(ctx, push, job, &user) {
        Ok(p) => p,
        Err(e) => {
            warn!("{id}: peer publish failed: {e}");
            return Value::from("");
        }
    };
    if let Some(err) = published.get("error").and_then(Value::as_str) {
        // No minion the master knows matched: nothing was published (an
        // ACL limited to some minions passes on an empty list; the
        // minions would then match themselves).
        warn!(
            "{id}: peer publish of {} refused: {err}",
            load.get("fun").map(brine_py::to_str).unwrap_or_default()
        );
    }
    let jid = published
        .get("jid")
        .and_then(Value::as_str)
        .map_or(Value::Int(0), Value::from);
    let minions = matched(&ck, &orig_tgt, &tgt_type);
    // Who published the job, for pub_ret. The job is out already: a file
    // that cannot be written (full, read-only) is logged (CRITICAL, once a
    // minute) and the answer still names the job.
    let path = ctx.cfg.cachedir.join("publish_auth").join(brine_py::to_str(&jid));
    match brine_cache::fs::write_atomic(&path, id.as_bytes(), 0o644) {
        Ok(()) => alarm::ok(Store::PublishAuth),
        Err(e) => alarm::failed(
            Store::PublishAuth,
            Some(e.kind()),
            &format!("cannot write {}: {e}", path.display()),
        ),
    }
    info!("{id}: peer publish, job {}", brine_py::to_str(&jid));
    Value::map([
        ("jid", jid),
        ("minions", Value::Array(minions.into_iter().map(Value::from).collect())),
    ])
}

/// `pub_ret`: the returns of a job this minion published. `Ok` is the
/// answer now (a refusal); `Err` the read of the job cache that makes the
/// answer, for the caller to run off its request loop.
pub(super) fn pub_ret(ctx: &Ctx, id: &MinionId, load: &Value) -> Result<Value, Box<dyn FnOnce() -> Value + Send>> {
    let (Some(jid), Some(_)) = (load.get("jid"), load.get("id")) else {
        return Ok(Value::Map(vec![]));
    };
    let jid = brine_py::to_str(jid);
    // Salt's clean_join: the file must sit directly in publish_auth.
    if jid.is_empty() || jid.contains('/') || jid == "." || jid == ".." || jid.contains('\0') {
        warn!("{id}: pub_ret for an invalid jid {jid:?} (answered \"\" as Salt does)");
        return Ok(Value::from(""));
    }
    let path = ctx.cfg.cachedir.join("publish_auth").join(&jid);
    match std::fs::read_to_string(&path) {
        Ok(owner) if owner == id.as_str() => {}
        Ok(_) => {
            warn!("{id}: pub_ret for job {jid}, which another minion published: refused");
            return Ok(Value::Map(vec![]));
        }
        Err(e) => {
            warn!("{id}: pub_ret for job {jid} (answered \"\" as Salt does): {e}");
            return Ok(Value::from(""));
        }
    }
    let Some(jid) = brine_cache::Jid::parse(&jid) else {
        return Ok(Value::Map(vec![]));
    };
    let jobs = std::sync::Arc::clone(&ctx.jobs);
    Err(Box::new(move || {
        let Value::Map(returns) = jobs.get_jid(&jid) else {
            return Value::Map(vec![]);
        };
        Value::Map(
            returns
                .into_iter()
                .map(|(minion, data)| {
                    let mut m = Value::map([("ret", data.get("return").cloned().unwrap_or(Value::Nil))]);
                    if let Some(out) = data.get("out") {
                        m.set("out", out.clone());
                    }
                    (minion, m)
                })
                .collect(),
        )
    }))
}

/// `minion_runner`: a runner function for a minion `peer_run` allows.
/// The job runs in a process of its own; its return is the reply.
pub(super) fn minion_runner(ctx: &Ctx, jobs: &mut RunnerJobs, id: &MinionId, load: &Value) -> Reply {
    let Some(Json::Object(peer_run)) = ctx.cfg.get("peer_run") else {
        return Reply::Send(Value::Map(vec![]));
    };
    if ["fun", "arg", "id"].iter().any(|k| load.get(k).is_none()) {
        return Reply::Send(Value::Map(vec![]));
    }
    let Some(fun) = load.get("fun").and_then(Value::as_str) else {
        warn!("{id}: minion_runner without a function name (answered \"\" as Salt does)");
        return Reply::Send(Value::from(""));
    };
    let mut good = false;
    for (pattern, funcs) in peer_run {
        let hit = PyRegex::new(pattern).is_ok_and(|re| re.matches(id));
        if let (true, Json::Array(list)) = (hit, funcs) {
            good |= list
                .iter()
                .filter_map(Json::as_str)
                .any(|p| PyRegex::new(p).is_ok_and(|re| re.matches(fun)));
        }
    }
    if !good {
        warn!("Minion id {id} is not who it says it is! (peer_run does not allow it {fun})");
        return Reply::Send(Value::Map(vec![]));
    }
    let no_parse: Vec<String> = match load.get("no_parse") {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    };
    let mut args = match load.get("arg") {
        Some(Value::Array(a)) => parse_input(a, &no_parse),
        _ => Vec::new(),
    };
    let kwarg = match args.last() {
        Some(kw) if kw.get("__kwarg__").is_some() => {
            let mut kw = args.pop().unwrap_or(Value::Nil);
            kw.remove("__kwarg__");
            kw
        }
        _ => Value::Map(vec![]),
    };
    // Salt runs a peer's runner with the master's options but the
    // minion's `id` (`RemoteFuncs.minion_runner`), which a Python runner
    // sees in `__opts__`.
    let low = Value::map([
        ("arg", Value::Array(args)),
        ("kwarg", kwarg),
        ("__opts__", Value::map([("id", Value::from(id.as_str()))])),
    ]);
    let job = JobSpec {
        fun: fun.to_string(),
        low,
        user: id.to_string(),
        jid: brine_cache::Jid::generate().to_string(),
    };
    match jobs.start(&ctx.cfg, job, true) {
        Ok(Some(token)) => Reply::Later(token),
        Ok(None) => Reply::Send(Value::Map(vec![])),
        Err(e) => {
            warn!("{id}: publish.runner {fun}: {e}");
            Reply::Send(Value::from(e))
        }
    }
}
