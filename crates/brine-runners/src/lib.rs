//! Salt's runner functions, run by the master: for `salt-run` and
//! salt-api (the `runner` clear command, Salt's `ClearFuncs.runner`),
//! for minions (`publish.runner`, allowed by `peer_run`), for the
//! reactor and for orchestrations. Each call is a job as Salt's
//! `RunnerClient.low` makes it: a jid, `salt/run/<jid>/new` and
//! `salt/run/<jid>/ret` on the event bus, and the job in the job cache
//! under the master's id. The master runs each job in a process of its
//! own, never in an MWorker (brine-master's `runjobs`).
//!
//! Outputs are what Python's runners give against the same job cache,
//! minion data cache and minions. `manage.*` publish `test.ping` through
//! the master's own request port, with the master user's key, as Salt's
//! runner LocalClient does.

use std::time::Duration;

use brine_client::{LocalClient, Publish};
use brine_config::MasterConfig;
use brine_proto::Value;
use brine_py::{fnmatch, text};
use log::{info, warn};

use brine_cache::{Jid, JobCache};
use brine_keys::{FsKeyStore, KeyState, KeyStore};

use brine_cache::backends::job_cache;
use brine_client::low::CallArgs;

/// The runner functions the master has, each with its documentation
/// (`salt-run --doc`, `doc.runner`).
pub const FUNCTIONS: &[(&str, &str)] = &[
    (
        "event.send",
        "Fire an event on the master event bus: event.send <tag> [data={...}].\nThe data must be a dict; the tag is used as given.",
    ),
    (
        "jobs.list_job",
        "The load and the returns of one job from the job cache: jobs.list_job <jid>",
    ),
    (
        "jobs.list_jobs",
        "The jobs in the job cache: jobs.list_jobs [search_function=glob,...] [search_target=glob,...]",
    ),
    (
        "jobs.lookup_jid",
        "The returns of a job from the job cache: jobs.lookup_jid <jid> [missing=True] [returned=False]",
    ),
    (
        "jobs.print_job",
        "The job's load and returns, keyed by jid: jobs.print_job <jid>",
    ),
    (
        "manage.down",
        "The minions that do not answer a test.ping: manage.down [tgt] [tgt_type] [timeout]",
    ),
    (
        "manage.status",
        "The minions that answer a test.ping and those that do not: manage.status [tgt] [tgt_type] [timeout]",
    ),
    (
        "manage.up",
        "The minions that answer a test.ping: manage.up [tgt] [tgt_type] [timeout]",
    ),
    (
        "match.compound_matches",
        "Whether a minion matches a compound expression by the minion data cache:\nmatch.compound_matches <expr> <minion_id> -> {res: minion_id | False}",
    ),
];

/// Whether the master has the runner function `fun`.
pub fn available(fun: &str) -> bool {
    FUNCTIONS.iter().any(|(f, _)| *f == fun)
}

/// The functions `arg` names and their documentation, as Salt's
/// `get_docs`: every function for an empty `arg`, those matching a glob
/// with `*`, else the function `arg` and those of the module `arg`.
pub fn docs(arg: &str) -> Vec<(&'static str, &'static str)> {
    let prefix = if arg.ends_with('.') {
        arg.to_string()
    } else {
        format!("{arg}.")
    };
    let mut out: Vec<(&str, &str)> = FUNCTIONS
        .iter()
        .filter(|(f, _)| {
            arg.is_empty() || if arg.contains('*') { fnmatch(f, arg) } else { *f == arg || f.starts_with(&prefix) }
        })
        .copied()
        .collect();
    out.sort();
    out
}

/// Salt's text for a runner function it lacks (`verify_fun`).
pub fn not_available(fun: &str) -> String {
    format!("'{fun}' is not available.")
}

/// Run a runner function under a new jid (a reaction's, a minion's
/// `publish.runner`): its return.
pub fn run_now(cfg: &MasterConfig, fun: &str, low: &Value, user: &str) -> Value {
    let jid = Jid::generate().to_string();
    run(cfg, fun, low, user, &jid)
}

/// Run the job `jid`: `fun` with its low data (`{arg, kwarg}`, or the
/// arguments by name), for `user`. Fires `salt/run/<jid>/new` and `/ret`,
/// stores the job in the job cache under the master's id, as Salt's
/// `RunnerClient.low` does, and returns the function's return.
pub fn run(cfg: &MasterConfig, fun: &str, load: &Value, user: &str, jid: &str) -> Value {
    let tag = format!("salt/run/{jid}");
    let mut events = brine_client::event_sender(cfg);
    let args = CallArgs::from_load(load);
    let mut data = Value::map([
        ("fun", Value::from(format!("runner.{fun}"))),
        ("jid", Value::from(jid)),
        ("user", Value::from(user)),
        ("fun_args", args.fun_args(load)),
    ]);
    let _ = events.fire(&format!("{tag}/new"), &data);
    info!("runner {fun} ({jid}) for {user}");
    if !available(fun) {
        // Salt's `Runner.run` when `verify_fun` refuses the name.
        warn!("runner {fun} ({jid}) for {user}: not available in Brine");
        data.set("success", Value::Bool(false));
        data.set("return", Value::from(not_available(fun)));
        data.set("retcode", Value::Int(254));
        let _ = events.fire(&format!("{tag}/ret"), &data);
        return data.remove("return").unwrap_or(Value::Nil);
    }
    let (ret, success) = match call(cfg, fun, &args) {
        Ok(v) => (v, true),
        Err(e) => {
            warn!("runner {fun} ({jid}): {e}");
            (Value::from(format!("Exception occurred in runner {fun}: {e}")), false)
        }
    };
    data.set("return", ret);
    data.set("success", Value::Bool(success));
    if !success {
        data.set("retcode", Value::Int(1));
    }
    store_job(cfg, jid, &data);
    let _ = events.fire(&format!("{tag}/ret"), &data);
    data.remove("return").unwrap_or(Value::Nil)
}

/// Salt's `store_job` for a runner job: the load (`id` and `tgt` the
/// master's id, the job's data as `return`) and the return under the
/// master's id, so `jobs.lookup_jid` finds runner jobs too.
fn store_job(cfg: &MasterConfig, jid: &str, data: &Value) {
    let Some(jid) = Jid::parse(jid) else { return };
    if !cfg.get_bool("job_cache").unwrap_or(true) {
        return;
    }
    let id = cfg.master_id();
    let mut load = Value::map([
        ("id", Value::from(id.as_str())),
        ("tgt", Value::from(id.as_str())),
        ("jid", Value::from(jid.as_str())),
        ("return", data.clone()),
    ]);
    for k in ["fun", "user"] {
        if let Some(v) = data.get(k) {
            load.set(k, v.clone());
        }
    }
    let cache = job_cache(cfg);
    if cache.load(&jid).is_none() {
        if let Err(e) = cache.save_load(&jid, &load, &[]) {
            warn!("runner job {jid}: cannot store its load: {e}");
        }
    }
    if let Err(e) = cache.store_return(&jid, &id, &Value::map([("return", data.clone())])) {
        warn!("runner job {jid}: cannot store its return: {e}");
    }
}

fn call(cfg: &MasterConfig, fun: &str, args: &CallArgs) -> Result<Value, String> {
    let cache = job_cache(cfg);
    let jid_arg = || {
        args.get(0, "jid")
            .and_then(text)
            .ok_or_else(|| "missing argument: jid".to_string())
    };
    let bool_arg = |i: usize, name: &str, default: bool| args.get(i, name).and_then(Value::as_bool).unwrap_or(default);
    match fun {
        "jobs.list_jobs" => {
            let split = |v: &Value| -> Vec<String> {
                match v {
                    Value::Array(a) => a.iter().filter_map(text).collect(),
                    other => text(other)
                        .unwrap_or_default()
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .collect(),
                }
            };
            let targets = args.get(4, "search_target").map(split);
            let funcs = args.get(3, "search_function").map(split);
            for unsupported in ["search_metadata", "start_time", "end_time"] {
                if args.get(usize::MAX, unsupported).is_some() {
                    return Err(format!(
                        "{unsupported} is not implemented by Brine's master-side jobs.list_jobs"
                    ));
                }
            }
            let mut out = Vec::new();
            for (jid, job) in cache.get_jids() {
                let jid = jid.to_string();
                let inst = format_jid_instance(&jid, &job, false);
                if let Some(t) = &targets {
                    let tv: Vec<String> = match inst.get("Target") {
                        Some(Value::Array(a)) => a.iter().filter_map(text).collect(),
                        Some(v) => text(v).into_iter().collect(),
                        None => vec![],
                    };
                    if !tv.iter().any(|x| t.iter().any(|p| fnmatch(x, p))) {
                        continue;
                    }
                }
                if let Some(f) = &funcs {
                    let fv = inst.get("Function").and_then(Value::as_str).unwrap_or("");
                    if !f.iter().any(|p| fnmatch(fv, p)) {
                        continue;
                    }
                }
                out.push((Value::from(jid), inst));
            }
            Ok(with_outputter(args.get(1, "outputter"), Value::Map(out)))
        }
        "jobs.list_job" => Ok(list_job(cache.as_ref(), &jid_arg()?)),
        "jobs.print_job" => {
            let jid = jid_arg()?;
            let mut job = list_job(cache.as_ref(), &jid);
            job.remove("jid");
            Ok(Value::Map(vec![(Value::from(jid), job)]))
        }
        "jobs.lookup_jid" => {
            let jid = jid_arg()?;
            let returned = bool_arg(2, "returned", true);
            let missing = bool_arg(3, "missing", false);
            let data = list_job(cache.as_ref(), &jid);
            let mut ret = Vec::new();
            let mut outputter = None;
            if let Some(Value::Map(results)) = data.get("Result") {
                for (minion, r) in results {
                    if outputter.is_none() {
                        outputter = Some(r.get("out").cloned());
                    }
                    if returned {
                        ret.push((minion.clone(), r.get("return").cloned().unwrap_or(Value::Nil)));
                    }
                }
                if missing {
                    if let Some(Value::Array(targeted)) = data.get("Minions") {
                        for m in targeted {
                            if !results.iter().any(|(k, _)| k == m) {
                                ret.push((m.clone(), Value::from("Minion did not return")));
                            }
                        }
                    }
                }
            }
            Ok(with_outputter(outputter.flatten().as_ref(), Value::Map(ret)))
        }
        "manage.status" | "manage.up" | "manage.down" => {
            let (tgt_i, type_i, timeout_i, gather_i) = match fun {
                "manage.status" => (1, 2, 3, 4),
                "manage.up" => (0, 1, 2, 3),
                _ => (1, 2, 3, 4),
            };
            let tgt = args.get(tgt_i, "tgt").and_then(text).unwrap_or_else(|| "*".into());
            let tgt_type = args
                .get(type_i, "tgt_type")
                .and_then(text)
                .unwrap_or_else(|| "glob".into());
            let timeout = args
                .get(timeout_i, "timeout")
                .and_then(Value::as_i64)
                .filter(|t| *t > 0)
                .unwrap_or_else(|| cfg.get_i64("timeout").unwrap_or(5));
            let gather = args
                .get(gather_i, "gather_job_timeout")
                .and_then(Value::as_i64)
                .filter(|t| *t > 0)
                .unwrap_or_else(|| cfg.get_i64("gather_job_timeout").unwrap_or(10));
            if fun == "manage.down" && bool_arg(0, "removekeys", false) {
                return Err("removekeys is not implemented by Brine's master-side manage.down".into());
            }
            let (up, down) = ping(cfg, &tgt, &tgt_type, timeout, gather)?;
            let list = |v: &[String]| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
            Ok(match fun {
                "manage.up" => list(&up),
                "manage.down" => list(&down),
                _ => Value::map([("up", list(&up)), ("down", list(&down))]),
            })
        }
        "event.send" => {
            // Salt's event.send: `data` (a dict, default {}) fired under
            // `tag` as is, with no runner namespace on the tag.
            let tag = args.get(0, "tag").and_then(text).ok_or("missing argument: tag")?;
            let data = match args.get(1, "data") {
                None => Value::Map(Vec::new()),
                Some(d @ Value::Map(_)) => d.clone(),
                Some(other) => return Err(format!("event data must be a dict, not {}", brine_py::type_name(other))),
            };
            brine_client::event_sender(cfg)
                .fire(&tag, &data)
                .map_err(|e| format!("cannot fire {}: {e}", tag.escape_debug()))?;
            Ok(Value::Bool(true))
        }
        "match.compound_matches" => {
            let expr = args.get(0, "expr").ok_or("missing argument: expr")?;
            let minion_id = args.get(1, "minion_id").ok_or("missing argument: minion_id")?;
            Ok(compound_matches(cfg, expr, minion_id))
        }
        other => Err(format!("{other} is not implemented")),
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
fn compound_matches(cfg: &MasterConfig, expr: &Value, minion_id: &Value) -> Value {
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

fn with_outputter(outputter: Option<&Value>, data: Value) -> Value {
    match outputter.and_then(Value::as_str) {
        Some(o) if !o.is_empty() => Value::map([("outputter", Value::from(o)), ("data", data)]),
        _ => data,
    }
}

/// Salt's `jobs._format_jid_instance` (`with_minions`) /
/// `utils.jid.format_jid_instance`.
fn format_jid_instance(jid: &str, job: &Value, with_minions: bool) -> Value {
    if !job.is_map() || matches!(job, Value::Map(p) if p.is_empty()) {
        return Value::map([
            ("Error", Value::from("Cannot contact returner or no job with this jid")),
            ("StartTime", Value::from(jid_to_time(jid))),
        ]);
    }
    let mut ret = Value::map([
        (
            "Function",
            job.get("fun").cloned().unwrap_or(Value::from("unknown-function")),
        ),
        ("Arguments", job.get("arg").cloned().unwrap_or(Value::Array(vec![]))),
        (
            "Target",
            job.get("tgt").cloned().unwrap_or(Value::from("unknown-target")),
        ),
        (
            "Target-type",
            job.get("tgt_type").cloned().unwrap_or(Value::from("list")),
        ),
        ("User", job.get("user").cloned().unwrap_or(Value::from("root"))),
    ]);
    if let Some(m) = job.get("metadata") {
        ret.set("Metadata", m.clone());
    } else if let Some(m) = job.get("kwargs").and_then(|k| k.get("metadata")) {
        ret.set("Metadata", m.clone());
    } else if let Some(Value::Array(a)) = job.get("arg") {
        if let Some(m) = a
            .iter()
            .find(|x| x.get("__kwarg__").and_then(Value::as_bool) == Some(true) && x.get("metadata").is_some())
        {
            ret.set("Metadata", m.get("metadata").cloned().unwrap_or(Value::Nil));
        }
    }
    if with_minions {
        if let Some(m) = job.get("Minions") {
            ret.set("Minions", m.clone());
        }
    }
    ret.set("StartTime", Value::from(jid_to_time(jid)));
    ret
}

/// `2026, Nov 25 10:00:00.123456` from a jid.
fn jid_to_time(jid: &str) -> String {
    const MONTHS: [&str; 13] = [
        "", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    if jid.len() < 20 || !jid[..20].bytes().all(|b| b.is_ascii_digit()) {
        return String::new();
    }
    let month: usize = jid[4..6].parse().unwrap_or(0);
    format!(
        "{}, {} {} {}:{}:{}.{}",
        &jid[..4],
        MONTHS.get(month).unwrap_or(&""),
        &jid[6..8],
        &jid[8..10],
        &jid[10..12],
        &jid[12..14],
        &jid[14..20]
    )
}

/// `jobs.list_job`: the job's description and its returns.
fn list_job(cache: &dyn JobCache, jid: &str) -> Value {
    let jid_ok = Jid::parse(jid);
    let load = jid_ok.as_ref().map_or(Value::Map(Vec::new()), |j| cache.get_load(j));
    let mut ret = Value::map([("jid", Value::from(jid))]);
    if let Value::Map(pairs) = format_jid_instance(jid, &load, true) {
        for (k, v) in pairs {
            if let Some(k) = k.as_str() {
                ret.set(k, v);
            }
        }
    }
    ret.set("Result", jid_ok.map_or(Value::Map(Vec::new()), |j| cache.get_jid(&j)));
    ret
}

/// Salt's `manage._ping`: publish `test.ping` to the target through the
/// master's own request port, as the master's user, and sort the expected
/// minions into those that answered within `timeout` and those that did
/// not.
fn ping(
    cfg: &MasterConfig,
    tgt: &str,
    tgt_type: &str,
    timeout: i64,
    _gather_job_timeout: i64,
) -> Result<(Vec<String>, Vec<String>), String> {
    let mut client = LocalClient::of_master(cfg).map_err(|e| e.to_string())?;
    let job = Publish::new(tgt, "test.ping")
        .tgt_type(tgt_type)
        .kwarg("delimiter", ":");
    let wait = Duration::from_secs(timeout.max(1) as u64);
    let mut returns = match client.run(&job, wait) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok((vec![], vec![])),
        Err(e) => return Err(e.to_string()),
    };
    while returns.next_return().map_err(|e| e.to_string())?.is_some() {}
    let mut up = returns.returned().to_vec();
    let mut down = returns.missing();
    up.sort();
    down.sort();
    Ok((up, down))
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

    #[test]
    fn jid_to_time_is_salts() {
        assert_eq!(jid_to_time("20261125103000123456"), "2026, Nov 25 10:30:00.123456");
        assert_eq!(jid_to_time("bad"), "");
    }
}
