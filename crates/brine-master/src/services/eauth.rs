//! The `runner` and `wheel` clear commands (Salt's `ClearFuncs.runner` /
//! `ClearFuncs.wheel`): what Python's `salt-run --eauth …`, `salt-key
//! --eauth …`, `RunnerClient.cmd_sync` / `WheelClient.cmd_sync` and
//! salt-api send to the master instead of running locally.
//!
//! Authentication as Salt's `_prep_auth_info` + `check_authentication`:
//! a user key (`key` + `user`, no ACL), or `eauth` against
//! `external_auth` with its ACL (`@runner`, `@wheel`, `@<module>`, and
//! function regexes). Of the eauth backends only `auto` exists here; any
//! other, and `token`, are refused with a message saying so.
//!
//! Wheel functions ([`super::wheel`]) run in the MWorker and answer at
//! once; runner functions answer `{tag, jid}` at once and run as jobs in
//! processes of their own ([`crate::runjobs`], brine-runners), firing
//! `salt/run/<jid>/new` and `…/ret` as Salt's runner processes do.

use brine_config::Value as Json;
use brine_proto::Value;
use brine_py::fnmatch;
use log::warn;

use super::Ctx;
use brine_client::low::error;

use crate::runjobs::{JobSpec, RunnerJobs};

/// Who is calling (already authorized for the function).
struct Caller {
    username: String,
}

/// Salt's `spec_check` for the runner and wheel forms.
fn spec_check(auth_list: &[Json], fun: &str, form: &str) -> bool {
    let Some((module, fun_name)) = fun.split_once('.') else {
        return false;
    };
    let plural = format!("@{form}s");
    let fun_ok = |spec: &Json, name: &str| -> bool {
        let items: Vec<&Json> = match spec {
            Json::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        items.iter().any(|c| {
            c.as_str()
                .is_some_and(|re| regex::Regex::new(&format!("^(?:{re})$")).is_ok_and(|r| r.is_match(name)))
        })
    };
    for ind in auth_list {
        match ind {
            Json::String(s) if s.starts_with('@') && (s[1..] == *module || s[1..] == *form || *s == plural) => {
                return true;
            }
            Json::Object(o) if o.len() == 1 => {
                let (valid, spec) = o.iter().next().unwrap();
                if let Some(v) = valid.strip_prefix('@') {
                    if v == module && fun_ok(spec, fun_name) {
                        return true;
                    }
                    if (v == form || *valid == plural) && fun_ok(spec, fun) {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// Python's `expr_match`: glob, then an anchored regex.
fn expr_match(line: &str, expr: &str) -> bool {
    fnmatch(line, expr) || regex::Regex::new(&format!(r"\A(?:{expr})\z")).is_ok_and(|r| r.is_match(line))
}

/// `runner` / `wheel`: authenticate, authorize, run.
pub(super) fn control(ctx: &mut Ctx, jobs: &mut RunnerJobs, load: &Value, form: &str) -> Vec<u8> {
    let mut load = load.clone();
    let fun = load.get("fun").and_then(Value::as_str).unwrap_or("").to_string();
    let caller = match control_auth(ctx, &mut load, form, &fun) {
        Ok(c) => c,
        Err(e) => return e.to_network(),
    };
    for k in ["username", "password", "token", "key"] {
        load.remove(k);
    }
    let reply = if form == "wheel" {
        super::wheel::wheel(ctx, &fun, &load, &caller.username)
    } else {
        start_runner(ctx, jobs, &fun, &load, &caller.username)
    };
    reply.to_network()
}

/// Salt's `ClearFuncs.runner`: the job starts in a process of its own and
/// the caller gets `{tag, jid}` at once; the return comes as
/// `salt/run/<jid>/ret` on the event bus (`RunnerClient.cmd_sync` waits
/// for it). The low data is the load's `kwarg`, which `_reformat_low`
/// makes `{arg: [...], kwarg: {...}}`.
fn start_runner(ctx: &Ctx, jobs: &mut RunnerJobs, fun: &str, load: &Value, user: &str) -> Value {
    // A jid the caller chose (`salt-run --jid`), if it is one.
    let jid = load
        .get("jid")
        .and_then(Value::as_str)
        .and_then(brine_cache::Jid::parse)
        .unwrap_or_else(brine_cache::Jid::generate)
        .to_string();
    let low = load
        .get("kwarg")
        .filter(|k| k.is_map())
        .cloned()
        .unwrap_or(Value::Map(vec![]));
    let job = JobSpec {
        fun: fun.to_string(),
        low,
        user: user.to_string(),
        jid: jid.clone(),
    };
    match jobs.start(&ctx.cfg, job, false) {
        Ok(_) => Value::map([
            ("tag", Value::from(format!("salt/run/{jid}"))),
            ("jid", Value::from(jid)),
        ]),
        Err(e) => {
            warn!("runner {fun} for {user}: {e}");
            error("SaltMasterError", &e)
        }
    }
}

fn control_auth(ctx: &mut Ctx, load: &mut Value, form: &str, fun: &str) -> Result<Caller, Value> {
    if load.get("token").is_some() {
        // Salt's words, exactly; the reason goes to the log.
        warn!("{form} {fun}: refused: Brine does not issue or accept eauth tokens (use --eauth with credentials or the master's user key)");
        return Err(error(
            "TokenAuthenticationError",
            "Authentication failure of type \"token\" occurred.",
        ));
    }
    if let Some(eauth) = load.get("eauth").and_then(Value::as_str).map(String::from) {
        let username = load
            .get("username")
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN")
            .to_string();
        let fail = |why: &str| {
            warn!("{form} {fun}: eauth {eauth:?} for {username:?} refused: {why}");
            error(
                "EauthAuthenticationError",
                &format!("Authentication failure of type \"eauth\" occurred for user {username}."),
            )
        };
        let Some(Json::Object(backend)) = ctx.cfg.get("external_auth").and_then(|e| e.get(&eauth)).cloned() else {
            return Err(fail("not in external_auth"));
        };
        if eauth != "auto" {
            return Err(fail("Brine implements only the \"auto\" eauth backend"));
        }
        if !(backend.contains_key(&username) || backend.contains_key("*")) {
            return Err(fail("user not in the eauth ACL"));
        }
        // fill_auth_list (no groups: the auto backend has none).
        let permissive = ctx.cfg.get_bool("permissive_acl").unwrap_or(false);
        let mut auth_list = Vec::new();
        let mut name_matched = false;
        for (m, entries) in &backend {
            if m == "*" && !permissive || m.ends_with('%') {
                continue;
            }
            if expr_match(&username, m) {
                name_matched = true;
                if let Json::Array(a) = entries {
                    auth_list.extend(a.iter().cloned());
                }
            }
        }
        if !permissive && !name_matched {
            if let Some(Json::Array(a)) = backend.get("*") {
                auth_list.extend(a.iter().cloned());
            }
        }
        if !spec_check(&auth_list, fun, form) {
            warn!("{form} {fun}: {username:?} is not allowed by the eauth ACL");
            return Err(error(
                "EauthAuthenticationError",
                &format!("Authentication failure of type \"eauth\" occurred for user {username}."),
            ));
        }
        return Ok(Caller { username });
    }
    // A user key, as `publish` checks it.
    let key = load.get("key").and_then(Value::as_str).unwrap_or("").to_string();
    let user = load.get("user").and_then(Value::as_str).unwrap_or("root").to_string();
    if !super::publish::user_key_ok(ctx, &user, &key) {
        warn!("{form} {fun} from user {user:?} refused: bad or missing key");
        return Err(error(
            "UserAuthenticationError",
            "Authentication failure of type \"user\" occurred",
        ));
    }
    let username = if user.starts_with("sudo_") {
        ctx.cfg.user.clone()
    } else {
        user
    };
    Ok(Caller { username })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_check_reads_salt_acls() {
        let acl: Vec<serde_json::Value> =
            serde_json::from_str(r#"["@wheel", {"@runner": ["jobs\\..*"]}, "@manage"]"#).unwrap();
        assert!(spec_check(&acl, "key.list_all", "wheel"));
        assert!(spec_check(&acl, "jobs.list_jobs", "runner"));
        assert!(spec_check(&acl, "manage.up", "runner"));
        assert!(!spec_check(&acl, "state.orchestrate", "runner"));
        assert!(!spec_check(&acl, "nodot", "runner"));
        let only_jobs: Vec<serde_json::Value> = serde_json::from_str(r#"[{"@jobs": ["list_.*"]}]"#).unwrap();
        assert!(spec_check(&only_jobs, "jobs.list_jobs", "runner"));
        assert!(!spec_check(&only_jobs, "jobs.lookup_jid", "runner"));
        assert!(spec_check(
            &serde_json::from_str::<Vec<_>>(r#"["@runners"]"#).unwrap(),
            "a.b",
            "runner"
        ));
    }
}
