//! The `runner` and `wheel` clear commands (Salt's `ClearFuncs.runner` /
//! `ClearFuncs.wheel`): what Python's `salt-run --eauth …`, `salt-key
//! --eauth …`, `RunnerClient.cmd_sync` / `WheelClient.cmd_sync` and
//! salt-api send to the master instead of running locally.
//!
//! Authentication as Salt's `_prep_auth_info` + `check_authentication`
//! (brine-auth): a token, eauth credentials, or a local user's key. An
//! eauth or token caller is then authorized by `spec_check` against its
//! ACL (`@runner`, `@wheel`, `@<module>`, function regexes with argument
//! conditions). Root and the master's user (by key) are not checked, as
//! in Salt; other local users with a key are checked against their
//! `publisher_acl` entries, where Salt lets them run any runner or wheel
//! function once they have any publisher ACL.
//!
//! Wheel functions ([`super::wheel`]) run in the MWorker and answer at
//! once; runner functions answer `{tag, jid}` at once and run as jobs in
//! processes of their own ([`crate::runjobs`], brine-runners), firing
//! `salt/run/<jid>/new` and `…/ret` as Salt's runner processes do.

use brine_auth::acl::{spec_check, Spec};
use brine_auth::{AuthType, Failure};
use brine_proto::Value;
use log::warn;

use super::Ctx;
use brine_client::low::error;

use crate::runjobs::{JobSpec, RunnerJobs};

/// What a `runner` / `wheel` call comes to.
pub(super) enum Control {
    /// The answer.
    Now(Vec<u8>),
    /// A wheel function Salt's Python runs, authorized: the caller runs
    /// [`super::wheel::python_task`] off its request loop.
    PythonWheel { fun: String, load: Value, username: String },
}

/// `runner` / `wheel`: authenticate, authorize, run.
pub(super) fn control(ctx: &mut Ctx, jobs: &mut RunnerJobs, load: &Value, form: &str) -> Control {
    let mut load = load.clone();
    let fun = load.get("fun").map(brine_py::to_str).unwrap_or_default();
    let username = match authorize(ctx, &load, form, &fun) {
        Ok(u) => u,
        Err(e) => return Control::Now(Value::map([("error", e)]).to_network()),
    };
    for k in ["username", "password", "token", "key", "eauth"] {
        load.remove(k);
    }
    if form == "wheel" && super::wheel::in_python(&ctx.cfg, &fun) {
        return Control::PythonWheel { fun, load, username };
    }
    let reply = if form == "wheel" {
        super::wheel::wheel(ctx, &fun, &load, &username)
    } else {
        start_runner(ctx, jobs, &fun, &load, &username)
    };
    Control::Now(reply.to_network())
}

/// Who may run `fun`: the user the job runs as, or Salt's error dict.
fn authorize(ctx: &Ctx, load: &Value, form: &str, fun: &str) -> Result<String, Value> {
    let kind = AuthType::of(load);
    let authed = ctx
        .auth
        .check_authentication(&ctx.cfg, load, kind, false)
        .map_err(|f| {
            warn!("{form} {}: {}", fun.escape_debug(), f.message);
            f.to_value()
        })?;
    if kind == AuthType::User && authed.acl_user.is_none() {
        // Root, the master's user, or sudo without sudo_acl: the user
        // named in the load (`sudo_*` runs as the master's user).
        return Ok(match load.get("user").and_then(Value::as_str) {
            Some(u) if u.starts_with("sudo_") => ctx.cfg.user.clone(),
            Some(u) => u.to_string(),
            None => brine_auth::running_user().unwrap_or_else(|| ctx.cfg.user.clone()),
        });
    }
    let username = authed.acl_user.clone().unwrap_or(authed.username.clone());
    let args = load.get("kwarg").cloned().unwrap_or(Value::Map(vec![]));
    match spec_check(&authed.auth_list, fun, &args, form) {
        Spec::Allowed => Ok(username),
        Spec::Syntax => Err(Failure::new(
            "SaltInvocationError",
            "A command invocation error occurred: Check syntax.",
        )
        .to_value()),
        Spec::Denied => {
            warn!(
                "{form} {}: {} user {} is not allowed by the ACL",
                fun.escape_debug(),
                kind.as_str(),
                username.escape_debug()
            );
            Err(Failure::new(
                kind.err_name(),
                format!(
                    "Authentication failure of type \"{}\" occurred for user {}.",
                    kind.as_str(),
                    authed.username
                ),
            )
            .to_value())
        }
    }
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
