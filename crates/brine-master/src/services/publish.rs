//! `publish` (clear, from local CLIs and salt-api; Salt's
//! `ClearFuncs.publish`): refuse blacklisted users and functions
//! (`publisher_acl_blacklist`), authenticate (a token, eauth credentials
//! or a local user's key, brine-auth), authorize token, eauth and
//! `publisher_acl` users by their ACL (`auth_check`), expand the target against accepted keys, assign a jid, store
//! the job (when the job cache can be written), fire its events and hand
//! the publication to ZeroMQPubServerChannel over `publish_pull.ipc`.

use brine_auth::acl::{auth_check, PublisherAcl, Target};
use brine_auth::AuthType;
use brine_keys::{KeyState, KeyStore};
use brine_proto::Value;
use log::{error, info, warn};

use super::Ctx;
use crate::alarm::{self, Store};
use brine_cache::Jid;

/// Optional publication fields, in Salt's order, taken from `kwargs`.
const OPTIONAL: [&str; 6] = [
    "to",
    "ret_config",
    "metadata",
    "module_executors",
    "executor_opts",
    "ret_kwargs",
];

pub(super) fn publish(ctx: &mut Ctx, push: &zmq::Socket, load: &Value) -> Result<Vec<u8>, String> {
    let mut load = load.clone();
    let user = load.get("user").map(brine_py::to_str).unwrap_or_else(|| "root".into());
    let fun = load.get("fun").cloned().unwrap_or(Value::Nil);
    let blacklist = PublisherAcl::new(ctx.cfg.get("publisher_acl_blacklist"));
    if blacklist.user_is_blacklisted(&user) || blacklist.cmd_is_blacklisted(&fun) {
        log::error!(
            "{} does not have permissions to run {}. Please contact your local administrator if you believe this is in error.",
            user.escape_debug(),
            brine_py::to_str(&fun).escape_debug()
        );
        return Ok(refusal(
            ctx,
            &load,
            "AuthorizationError",
            "Authorization error occurred.",
            false,
        ));
    }
    // Salt's publish takes the auth info from the `kwargs` ("extra"),
    // except a user's key, which is in the load itself.
    let mut extra = load.remove("kwargs").unwrap_or(Value::Map(vec![]));
    if !extra.is_map() {
        extra = Value::Map(vec![]);
    }
    // An ACL a syndic passes down is not taken from the request.
    extra.remove("auth_list");
    let kind = AuthType::of(&extra);
    let checked = match kind {
        AuthType::User => ctx.auth.check_authentication(&ctx.cfg, &load, kind, false),
        _ => ctx.auth.check_authentication(&ctx.cfg, &extra, kind, false),
    };
    load.set("kwargs", extra);
    // The credentials go no further: not into the job cache, the events
    // or the publication.
    strip_credentials(&mut load);
    let authed = match checked {
        Ok(a) => a,
        Err(f) => {
            warn!(
                "publish of {} refused: Authentication failure of type \"{}\" occurred ({})",
                brine_py::to_str(&fun).escape_debug(),
                kind.as_str(),
                f.message
            );
            // Salt fires `salt/job/<jid>/error` here too; Brine puts
            // nothing an unauthenticated peer sent on the event bus.
            return Ok(refusal(
                ctx,
                &load,
                "AuthenticationError",
                "Authentication error occurred.",
                false,
            ));
        }
    };
    let (tgt, tgt_type) = target_of(&load);
    // Every token and eauth user, and every local user other than root
    // and the master's, passes the ACL.
    if kind != AuthType::User || !authed.auth_list.is_empty() {
        let delimiter = delimiter_of(&load);
        let (minions, _) = expected_minions(ctx, &tgt, &tgt_type, &delimiter);
        let target = Target {
            tgt: &tgt,
            tgt_type: &tgt_type,
            minions: Some(&minions),
        };
        let arg = load.get("arg").cloned().unwrap_or(Value::Nil);
        let ck = ckminions(ctx);
        if !auth_check(
            &ck,
            &authed.auth_list,
            &fun,
            &arg,
            &target,
            false,
            &["saltutil.find_job"],
        ) {
            warn!(
                "publish of {} to {} refused: {} user {} is not allowed by the ACL",
                brine_py::to_str(&fun).escape_debug(),
                brine_py::to_str(&tgt).escape_debug(),
                kind.as_str(),
                authed.username.escape_debug()
            );
            return Ok(refusal(
                ctx,
                &load,
                "AuthorizationError",
                "Authorization error occurred.",
                true,
            ));
        }
        match kind {
            AuthType::Token | AuthType::Eauth => load.set("user", Value::from(authed.username.as_str())),
            AuthType::User => {}
        }
    }
    let user = load.get("user").map(brine_py::to_str).unwrap_or_else(|| "root".into());
    let answer = publish_job(ctx, push, load, &user)?;
    Ok(Value::map([("enc", Value::from("clear")), ("load", answer)]).to_network())
}

/// Salt's answer to a refused publish (`{error: {name, message}}`), and
/// (`event`: an authenticated caller the ACL refused) its
/// `salt/job/<jid>/error` event when the caller chose the jid. The load
/// in the event carries no credentials (Salt's carries them).
fn refusal(ctx: &mut Ctx, load: &Value, name: &str, message: &str, event: bool) -> Vec<u8> {
    let err = brine_client::low::error(name, message);
    let jid = load.get("jid").and_then(Value::as_str).and_then(Jid::parse);
    if let (Some(jid), true) = (jid, event) {
        let mut event = load.clone();
        strip_credentials(&mut event);
        if let Some(e) = err.get("error") {
            event.set("error", e.clone());
        }
        let _ = ctx.events.fire(&format!("salt/job/{jid}/error"), &event);
    }
    err.to_network()
}

/// A publish load without its user key and the eauth credentials or
/// token in its kwargs.
fn strip_credentials(load: &mut Value) {
    load.remove("key");
    if let Some(kw) = load.get("kwargs").filter(|k| k.is_map()).cloned() {
        let mut kw = kw;
        for k in ["token", "password", "username", "eauth"] {
            kw.remove(k);
        }
        load.set("kwargs", kw);
    }
}

/// The load's target and target type (`glob` when missing).
fn target_of(load: &Value) -> (Value, String) {
    let tgt = load.get("tgt").cloned().unwrap_or(Value::Nil);
    let tgt_type = load.get("tgt_type").and_then(Value::as_str).unwrap_or("glob");
    (tgt, tgt_type.to_string())
}

fn delimiter_of(load: &Value) -> String {
    load.get("kwargs")
        .and_then(|k| k.get("delimiter"))
        .and_then(Value::as_str)
        .unwrap_or(":")
        .to_string()
}

/// Publish an authorised job for `user`: expected minions, jid, job
/// cache, events, the publication to the publisher. The answer's
/// `load`: `{jid, minions, missing}`, or `{jid: None, minions: [],
/// error}` when no minion matched.
pub(super) fn publish_job(ctx: &mut Ctx, push: &zmq::Socket, mut load: Value, user: &str) -> Result<Value, String> {
    let (tgt, tgt_type) = target_of(&load);
    let delimiter = delimiter_of(&load);
    let (minions, missing) = expected_minions(ctx, &tgt, &tgt_type, &delimiter);
    // As Salt: no matched minion is an error (missing ones alone do not
    // make a job), unless masters are ordered under a syndic.
    if minions.is_empty() && !ctx.cfg.get_bool("order_masters").unwrap_or(false) {
        let shown = brine_py::to_str(&tgt);
        return Ok(Value::map([
            ("jid", Value::Nil),
            ("minions", Value::Array(vec![])),
            (
                "error",
                Value::from(format!("Master could not resolve minions for target {shown}")),
            ),
        ]));
    }
    let jid = load
        .get("jid")
        .and_then(Value::as_str)
        .and_then(Jid::parse)
        .unwrap_or_else(Jid::generate);
    load.set("jid", Value::from(jid.as_str()));
    let strs = |v: &[String]| Value::Array(v.iter().map(|m| Value::from(m.as_str())).collect());
    let fun = load.get("fun").cloned().unwrap_or(Value::Nil);
    let arg = load.get("arg").cloned().unwrap_or(Value::Array(vec![]));
    let _ = ctx
        .events
        .fire(jid.as_str(), &Value::map([("minions", strs(&minions))]));
    let new = Value::map([
        ("jid", Value::from(jid.as_str())),
        ("tgt_type", Value::from(tgt_type.as_str())),
        ("tgt", tgt.clone()),
        ("user", Value::from(user)),
        ("fun", fun.clone()),
        ("arg", arg.clone()),
        ("minions", strs(&minions)),
        ("missing", strs(&missing)),
    ]);
    let _ = ctx.events.fire(&format!("salt/job/{jid}/new"), &new);
    let mut saved = load.clone();
    saved.remove("cmd");
    // A job cache that cannot be written (full, read-only) does not stop
    // the job (Salt's master refuses it): it is published uncached and
    // the failure is logged (CRITICAL, once a minute).
    if let Some(ext) = &ctx.ext_jobs {
        if let Err(e) = ext.save_load(&jid, &saved, &minions) {
            error!("ext_job_cache: the load of {jid} was not saved: {e}");
        }
    }
    match ctx.jobs.save_load(&jid, &saved, &minions) {
        Ok(()) => alarm::ok(Store::JobLoad),
        Err(e) => alarm::failed(Store::JobLoad, e.io_kind(), &e),
    }

    // The publication, in Salt's field order.
    let kwargs = load.get("kwargs").cloned().unwrap_or(Value::Map(vec![]));
    let mut publ = Value::map([
        ("fun", fun),
        ("arg", arg),
        ("tgt", tgt),
        ("jid", Value::from(jid.as_str())),
        ("ret", load.get("ret").cloned().unwrap_or(Value::from(""))),
    ]);
    if let Some(d) = kwargs.get("delimiter").and_then(Value::as_str).filter(|d| *d != ":") {
        publ.set("delimiter", Value::from(d));
    }
    // A peer publish names the publishing minion (Salt: `extra["id"]`).
    if let Some(id) = kwargs.get("id") {
        publ.set("id", id.clone());
    }
    publ.set("tgt_type", Value::from(tgt_type.as_str()));
    for k in OPTIONAL {
        if let Some(v) = load.get(k).or_else(|| kwargs.get(k)) {
            publ.set(k, v.clone());
        }
    }
    publ.set("user", Value::from(user));
    let _ = ctx.events.fire(&format!("salt/job/{jid}/publish"), &publ);
    // Topics for zmq_filtering: the matched minions (glob/pcre/list).
    let envelope = Value::map([
        ("load", publ),
        ("minions", strs(&minions)),
        ("tgt_type", Value::from(tgt_type.as_str())),
    ]);
    // Never wait on the publisher: with it gone or its queue full (the
    // high-water mark), the job fails now instead of holding the worker.
    push.send(envelope.to_network(), zmq::DONTWAIT)
        .map_err(|e| format!("cannot hand job {jid} to the publisher: {e}"))?;
    info!(
        "job {jid}: {} for {} minions",
        new.get("fun").and_then(Value::as_str).unwrap_or("?"),
        minions.len()
    );
    Ok(Value::map([
        ("jid", Value::from(jid.as_str())),
        ("minions", strs(&minions)),
        ("missing", strs(&missing)),
    ]))
}

/// Salt's `CkMinions.check_minions` with `greedy=True`, over the
/// accepted keys and the minion data cache: `(minions, missing)`.
fn expected_minions(ctx: &Ctx, tgt: &Value, tgt_type: &str, delimiter: &str) -> (Vec<String>, Vec<String>) {
    let m = ckminions(ctx).check_minions(tgt, tgt_type, delimiter, true);
    (m.minions, m.missing)
}

/// Salt's `CkMinions` over the accepted keys and the minion data cache
/// (read as needed, once per instance).
pub(super) fn ckminions(ctx: &Ctx) -> brine_targeting::CkMinions {
    let accepted = ctx.keys.list(KeyState::Accepted).unwrap_or_default();
    brine_targeting::CkMinions::from_config(&ctx.cfg, accepted)
}
