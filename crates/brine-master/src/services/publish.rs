//! `publish` (clear, from local CLIs; Salt's `ClearFuncs.publish`): authenticate the
//! user key, expand the target against accepted keys, assign a jid, store
//! the job (when the job cache can be written), fire its events and hand
//! the publication to ZeroMQPubServerChannel over `publish_pull.ipc`.

use brine_keys::{KeyState, KeyStore};
use brine_proto::Value;
use log::{info, warn};

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
    let key = load
        .remove("key")
        .and_then(|k| k.as_str().map(String::from))
        .unwrap_or_default();
    let user = load.get("user").and_then(Value::as_str).unwrap_or("root").to_string();
    // Salt's publish takes the auth info from the `kwargs` ("extra").
    let extra = load.get("kwargs").unwrap_or(&Value::Nil);
    if extra.get("eauth").is_some() || extra.get("token").is_some() {
        // Salt authenticates these by eauth/token (not the key) and
        // applies the publisher ACL, which Brine does not implement: the
        // answer is Salt's authentication failure, word for word, and the
        // reason goes to the log.
        let who = extra.get("username").and_then(Value::as_str).unwrap_or("UNKNOWN");
        warn!(
            "publish by eauth/token user {who:?} refused: Brine publishes only for the master's user key (eauth/token publishing is not implemented)"
        );
        let (name, message) = if extra.get("token").is_some() {
            (
                "TokenAuthenticationError",
                "Authentication failure of type \"token\" occurred.".to_string(),
            )
        } else {
            (
                "EauthAuthenticationError",
                format!("Authentication failure of type \"eauth\" occurred for user {who}."),
            )
        };
        return Ok(brine_client::low::error(name, &message).to_network());
    }
    if !user_key_ok(ctx, &user, &key) {
        warn!("publish from user {user:?} refused: bad or missing key");
        return Ok(brine_client::low::error("AuthenticationError", "Authentication error occurred.").to_network());
    }
    let answer = publish_job(ctx, push, load, &user)?;
    Ok(Value::map([("enc", Value::from("clear")), ("load", answer)]).to_network())
}

/// Publish an authorised job for `user`: expected minions, jid, job
/// cache, events, the publication to the publisher. The answer's
/// `load`: `{jid, minions, missing}`, or `{jid: None, minions: [],
/// error}` when no minion matched.
pub(super) fn publish_job(ctx: &mut Ctx, push: &zmq::Socket, mut load: Value, user: &str) -> Result<Value, String> {
    let tgt = load.get("tgt").cloned().unwrap_or(Value::Nil);
    let tgt_type = load
        .get("tgt_type")
        .and_then(Value::as_str)
        .unwrap_or("glob")
        .to_string();
    let delimiter = load
        .get("kwargs")
        .and_then(|k| k.get("delimiter"))
        .and_then(Value::as_str)
        .unwrap_or(":")
        .to_string();
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

/// The key must match the key file of root or the master's user (Salt's
/// `authenticate_key` for those users; `sudo_*` map to the master user).
pub(super) fn user_key_ok(ctx: &Ctx, user: &str, key: &str) -> bool {
    if key.is_empty() {
        return false;
    }
    let master_user = ctx.cfg.user.as_str();
    if !(user == "root" || user == master_user || user.starts_with("sudo_")) {
        return false;
    }
    ["root", master_user].iter().any(|u| {
        std::fs::read_to_string(ctx.cfg.cachedir.join(format!(".{u}_key")))
            .is_ok_and(|k| brine_proto::crypto::secret_eq(k.trim().as_bytes(), key.trim().as_bytes()))
    })
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
