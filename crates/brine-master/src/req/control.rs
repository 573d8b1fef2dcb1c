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
//! Wheel functions run in the MWorker and answer at once; runner functions
//! answer `{tag, jid}` at once and run in a thread (`crate::runners`),
//! firing `salt/run/<jid>/new` and `…/ret` as Salt's runner processes do.
//! A function Brine does not implement is refused up front with a
//! `SaltMasterError` naming it, so the Python client prints it and exits
//! rather than waiting for a return that never comes.

use brine_config::Value as Json;
use brine_keys::{Detail, Keys, Listing, Match};
use brine_proto::Value;
use brine_py::fnmatch;
use log::{info, warn};

use super::ReqHandler;
use brine_cache::Jid;

/// `{"error": {"name", "message"}}`, which Salt's clients raise as the
/// named exception.
pub fn error(name: &str, message: &str) -> Value {
    Value::map([(
        "error",
        Value::map([("name", Value::from(name)), ("message", Value::from(message))]),
    )])
}

/// Who is calling (already authorized for the function).
struct Caller {
    username: String,
}

/// The wheel functions served (Salt's `wheel.key`).
pub const WHEEL_FUNCS: [&str; 16] = [
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
];

/// Arguments of a client call, resolved as Salt's `low()` does: `arg`
/// positionally and `kwarg` by name when both are present, otherwise the
/// load's own top-level keys by name (`format_call`).
pub struct CallArgs {
    positional: Vec<Value>,
    named: Vec<(String, Value)>,
}

impl CallArgs {
    pub fn from_load(load: &Value) -> CallArgs {
        let positional = match load.get("arg") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        let source = match load.get("kwarg") {
            Some(k @ Value::Map(_)) => k,
            _ => load,
        };
        let named = match source {
            Value::Map(pairs) => pairs
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                .collect(),
            _ => Vec::new(),
        };
        CallArgs { positional, named }
    }

    /// The `i`th parameter, called `name`.
    pub fn get(&self, i: usize, name: &str) -> Option<&Value> {
        self.positional
            .get(i)
            .or_else(|| self.named.iter().find(|(k, _)| k == name).map(|(_, v)| v))
            .filter(|v| !v.is_nil())
    }

    /// Salt's `fun_args`: positional args, then the kwargs dict if any.
    pub fn fun_args(&self, load: &Value) -> Value {
        let mut out = self.positional.clone();
        if let Some(k @ Value::Map(pairs)) = load.get("kwarg") {
            if !pairs.is_empty() {
                out.push(k.clone());
            }
        }
        Value::Array(out)
    }
}

fn strs<S: AsRef<str>>(v: &[S]) -> Value {
    Value::Array(v.iter().map(|s| Value::from(s.as_ref())).collect())
}

/// `str(x)` of an argument that should be a string (a jid may arrive as
/// an int after YAML parsing on the CLI).
pub fn arg_str(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        _ => None,
    }
}

/// A key-match argument: a glob, a comma-separated list, or a list.
fn match_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().filter_map(arg_str).collect(),
        other => brine_keys::globs(&arg_str(other).unwrap_or_default()),
    }
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

impl ReqHandler {
    /// `runner` / `wheel`: authenticate, authorize, run.
    pub(super) fn control(&mut self, load: &Value, form: &str) -> Vec<u8> {
        let mut load = load.clone();
        let fun = load.get("fun").and_then(Value::as_str).unwrap_or("").to_string();
        let caller = match self.control_auth(&mut load, form, &fun) {
            Ok(c) => c,
            Err(e) => return e.to_network(),
        };
        for k in ["username", "password", "token", "key"] {
            load.remove(k);
        }
        let reply = if form == "wheel" {
            self.wheel(&fun, &load, &caller.username)
        } else {
            crate::runners::start(&self.cfg, &fun, &load, &caller.username)
        };
        reply.to_network()
    }

    fn control_auth(&mut self, load: &mut Value, form: &str, fun: &str) -> Result<Caller, Value> {
        if load.get("token").is_some() {
            warn!("{form} {fun}: token authentication is not implemented in Brine (no mk_token); refused");
            return Err(error(
                "TokenAuthenticationError",
                "Authentication failure of type \"token\" occurred. (Brine does not issue or accept eauth tokens; use --eauth with credentials or the master's user key.)",
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
            let Some(Json::Object(backend)) = self.cfg.get("external_auth").and_then(|e| e.get(&eauth)).cloned() else {
                return Err(fail("not in external_auth"));
            };
            if eauth != "auto" {
                warn!("{form} {fun}: eauth backend {eauth:?} is not available in Brine (only \"auto\")");
                return Err(error(
                    "EauthAuthenticationError",
                    &format!(
                        "Authentication failure of type \"eauth\" occurred for user {username}. (Brine does not implement the {eauth:?} eauth backend; only \"auto\".)"
                    ),
                ));
            }
            if !(backend.contains_key(&username) || backend.contains_key("*")) {
                return Err(fail("user not in the eauth ACL"));
            }
            // fill_auth_list (no groups: the auto backend has none).
            let permissive = self.cfg.get_bool("permissive_acl").unwrap_or(false);
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
        if !self.user_key_ok(&user, &key) {
            warn!("{form} {fun} from user {user:?} refused: bad or missing key");
            return Err(error(
                "UserAuthenticationError",
                "Authentication failure of type \"user\" occurred",
            ));
        }
        let username = if user.starts_with("sudo_") {
            self.cfg.user.clone()
        } else {
            user
        };
        Ok(Caller { username })
    }

    /// A wheel call: `{tag, data}` with the return, events around it.
    fn wheel(&mut self, fun: &str, load: &Value, username: &str) -> Value {
        let fun = match fun {
            "key.print" => "key.key_str",
            f => f,
        };
        if !WHEEL_FUNCS.contains(&fun) {
            warn!("wheel {fun}: not implemented in Brine; refused");
            return error(
                "SaltMasterError",
                &format!(
                    "Brine's master does not implement the wheel function '{fun}' (it serves {})",
                    WHEEL_FUNCS.join(", ")
                ),
            );
        }
        let jid = Jid::generate();
        let tag = format!("salt/wheel/{jid}");
        let mut data = Value::map([
            ("fun", Value::from(format!("wheel.{fun}"))),
            ("jid", Value::from(jid.as_str())),
            ("tag", Value::from(tag.as_str())),
            ("user", Value::from(username)),
        ]);
        let _ = self.events.fire(&format!("{tag}/new"), &data);
        let args = CallArgs::from_load(load);
        let (ret, success) = match self.wheel_key(fun, &args) {
            Ok(v) => (v, true),
            Err(e) => (Value::from(format!("Exception occurred in wheel {fun}: {e}")), false),
        };
        info!("wheel {fun} by {username}: success={success}");
        data.set("return", ret);
        data.set("success", Value::Bool(success));
        let _ = self.events.fire(&format!("{tag}/ret"), &data);
        Value::map([("tag", Value::from(tag.as_str())), ("data", data)])
    }

    /// Key management as Salt's `salt.key.Key`.
    pub(super) fn key_ops(&self) -> Keys {
        Keys::new(&self.cfg)
    }

    fn wheel_key(&mut self, fun: &str, args: &CallArgs) -> Result<Value, String> {
        let listing = |l: Listing| Value::Map(l.into_iter().map(|(s, ids)| (Value::from(s), strs(&ids))).collect());
        let detail = |d: Detail| {
            Value::Map(
                d.into_iter()
                    .map(|(s, items)| {
                        let items = items.into_iter().map(|(k, v)| (Value::from(k), Value::from(v)));
                        (Value::from(s), Value::Map(items.collect()))
                    })
                    .collect(),
            )
        };
        let keys = self.key_ops();
        let pattern = || args.get(0, "match").map(match_list).ok_or("missing argument: match");
        let dict_arg = |v: &Value| -> Listing {
            match v {
                Value::Map(pairs) => pairs
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), match_list(v))))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let flag = |i: usize, name: &str| args.get(i, name).and_then(Value::as_bool).unwrap_or(false);
        let hash_type = |i: usize| {
            args.get(i, "hash_type")
                .and_then(arg_str)
                .unwrap_or_else(|| self.cfg.hash_type().to_string())
        };
        let failed = |e: brine_keys::KeyError| e.to_string();
        match fun {
            "key.list_all" | "key.all_keys" => Ok(listing(keys.all_keys().map_err(failed)?)),
            "key.list" | "key.list_status" => {
                let m = args
                    .get(0, "match")
                    .and_then(arg_str)
                    .ok_or("missing argument: match")?;
                Ok(listing(keys.list_status(&m).map_err(failed)?))
            }
            "key.name_match" => Ok(listing(keys.name_match(&pattern()?, false).map_err(failed)?)),
            "key.accept" | "key.accept_dict" | "key.reject" | "key.reject_dict" | "key.delete" | "key.delete_dict" => {
                let m = if fun.ends_with("_dict") {
                    Match::Dict(args.get(0, "match").map(dict_arg).unwrap_or_default())
                } else {
                    Match::Globs(pattern()?)
                };
                let verb = fun.trim_start_matches("key.").trim_end_matches("_dict");
                let out = match verb {
                    "accept" => keys.accept(
                        &mut self.events,
                        &m,
                        flag(1, "include_rejected"),
                        flag(2, "include_denied"),
                    ),
                    "reject" => keys.reject(
                        &mut self.events,
                        &m,
                        flag(1, "include_accepted"),
                        flag(2, "include_denied"),
                    ),
                    _ => keys.delete_key(&mut self.events, &m),
                };
                for id in &out.changed {
                    info!("wheel key.{verb}: {id}");
                }
                for id in &out.invalid {
                    warn!("wheel key.{verb}: {id} is not a valid public key; not accepted");
                }
                for e in &out.errors {
                    warn!("wheel key.{verb}: {e}");
                }
                Ok(listing(out.keys))
            }
            "key.key_str" => Ok(detail(keys.key_str(&pattern()?).map_err(failed)?)),
            "key.finger" => Ok(detail(keys.finger(&pattern()?, &hash_type(1)).map_err(failed)?)),
            "key.finger_master" | "key.master_key_str" => {
                let path = self.cfg.pki_dir.join("master.pub");
                let pem = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let v = if fun == "key.finger_master" {
                    brine_keys::fingerprint(&pem, &hash_type(0)).unwrap_or_default()
                } else {
                    pem
                };
                Ok(Value::map([("local", Value::map([("master.pub", Value::from(v))]))]))
            }
            other => Err(format!("{other} is not implemented")),
        }
    }
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

    #[test]
    fn call_args_follow_salt_low() {
        let load = Value::map([
            ("fun", Value::from("key.finger")),
            ("arg", Value::Array(vec![Value::from("a*")])),
            ("kwarg", Value::map([("hash_type", Value::from("md5"))])),
        ]);
        let a = CallArgs::from_load(&load);
        assert_eq!(a.get(0, "match").and_then(Value::as_str), Some("a*"));
        assert_eq!(a.get(1, "hash_type").and_then(Value::as_str), Some("md5"));
        // salt-api style: everything at the top level.
        let load = Value::map([("fun", Value::from("key.finger")), ("match", Value::from("b*"))]);
        let a = CallArgs::from_load(&load);
        assert_eq!(a.get(0, "match").and_then(Value::as_str), Some("b*"));
        assert_eq!(match_list(&Value::from("a,b")), ["a", "b"]);
    }
}
