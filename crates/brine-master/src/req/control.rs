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
use brine_keys::{KeyState, KeyStore};
use brine_proto::Value;
use brine_py::{fnmatch, Glob};
use log::{info, warn};

use super::ReqHandler;
use crate::jobcache::gen_jid;

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
        other => {
            let s = arg_str(other).unwrap_or_default();
            if s.contains(',') {
                s.split(',').map(String::from).collect()
            } else {
                vec![s]
            }
        }
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
        let jid = gen_jid();
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

    /// `{status: [ids]}` for the managed keys, in Salt's order.
    fn list_keys(&self) -> Vec<(KeyState, Vec<String>)> {
        [
            KeyState::Accepted,
            KeyState::Pending,
            KeyState::Rejected,
            KeyState::Denied,
        ]
        .into_iter()
        .map(|s| {
            let mut ids = self.keys.list(s).unwrap_or_default();
            ids.sort_by_key(|i| i.to_lowercase());
            (s, ids)
        })
        .collect()
    }

    fn local_keys(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.cfg.pki_dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".pub") || n.ends_with(".pem"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|i| i.to_lowercase());
        v
    }

    /// Salt's `Key.name_match`: `(status dir, ids)`; `full` adds "local".
    fn name_match(&self, patterns: &[String], full: bool) -> Vec<(String, Vec<String>)> {
        let mut all: Vec<(String, Vec<String>)> = self
            .list_keys()
            .into_iter()
            .map(|(s, ids)| (s.dir().to_string(), ids))
            .collect();
        if full {
            all.push(("local".into(), self.local_keys()));
        }
        let globs: Vec<Glob> = patterns.iter().map(|p| Glob::new(p)).collect();
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (status, ids) in all {
            let hits: Vec<String> = ids
                .into_iter()
                .flat_map(|id| {
                    // One entry per matching pattern, as Salt's loop does.
                    globs
                        .iter()
                        .filter(|g| g.matches(&id))
                        .map(|_| id.clone())
                        .collect::<Vec<_>>()
                })
                .collect();
            if !hits.is_empty() {
                out.push((status, hits));
            }
        }
        out
    }

    /// Salt's `Key.dict_match`.
    fn dict_match(&self, wanted: &[(String, Vec<String>)]) -> Vec<(String, Vec<String>)> {
        let cur = self.list_keys();
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (_, keys) in wanted {
            let mut keys = keys.clone();
            keys.sort_by_key(|k| k.to_lowercase());
            for key in keys {
                for (s, ids) in &cur {
                    if ids.iter().any(|i| fnmatch(i, &key)) {
                        match out.iter_mut().find(|(d, _)| d == s.dir()) {
                            Some((_, v)) => v.push(key.clone()),
                            None => out.push((s.dir().to_string(), vec![key.clone()])),
                        }
                    }
                }
            }
        }
        out
    }

    fn wheel_key(&mut self, fun: &str, args: &CallArgs) -> Result<Value, String> {
        let listing = |l: Vec<(String, Vec<String>)>| {
            Value::Map(l.into_iter().map(|(s, ids)| (Value::from(s), strs(&ids))).collect())
        };
        let state_of = |dir: &str| {
            [
                KeyState::Accepted,
                KeyState::Pending,
                KeyState::Rejected,
                KeyState::Denied,
            ]
            .into_iter()
            .find(|s| s.dir() == dir)
        };
        let pattern = || args.get(0, "match").map(match_list).ok_or("missing argument: match");
        let dict_arg = |v: &Value| -> Vec<(String, Vec<String>)> {
            match v {
                Value::Map(pairs) => pairs
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), match_list(v))))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let flag = |i: usize, name: &str| args.get(i, name).and_then(Value::as_bool).unwrap_or(false);
        match fun {
            "key.list_all" | "key.all_keys" => {
                let mut l: Vec<(String, Vec<String>)> = self
                    .list_keys()
                    .into_iter()
                    .map(|(s, ids)| (s.dir().to_string(), ids))
                    .collect();
                l.push(("local".into(), self.local_keys()));
                Ok(listing(l))
            }
            "key.list" | "key.list_status" => {
                let m = args
                    .get(0, "match")
                    .and_then(arg_str)
                    .ok_or("missing argument: match")?;
                let pick = |s: KeyState| listing(vec![(s.dir().to_string(), self.keys.list(s).unwrap_or_default())]);
                Ok(if m.starts_with("acc") {
                    pick(KeyState::Accepted)
                } else if m.starts_with("pre") || m.starts_with("un") {
                    pick(KeyState::Pending)
                } else if m.starts_with("rej") {
                    pick(KeyState::Rejected)
                } else if m.starts_with("den") {
                    pick(KeyState::Denied)
                } else if m.starts_with("all") {
                    return self.wheel_key("key.list_all", args);
                } else {
                    Value::Map(Vec::new())
                })
            }
            "key.name_match" => Ok(listing(self.name_match(&pattern()?, false))),
            "key.accept" | "key.accept_dict" | "key.reject" | "key.reject_dict" | "key.delete" | "key.delete_dict" => {
                let by_dict = fun.ends_with("_dict");
                let (matches, pats) = if by_dict {
                    (args.get(0, "match").map(dict_arg).unwrap_or_default(), None)
                } else {
                    let p = pattern()?;
                    (self.name_match(&p, false), Some(p))
                };
                let verb = fun.trim_start_matches("key.").trim_end_matches("_dict");
                let mut from = vec![KeyState::Pending];
                match verb {
                    "accept" => {
                        if flag(1, "include_rejected") {
                            from.push(KeyState::Rejected);
                        }
                        if flag(2, "include_denied") {
                            from.push(KeyState::Denied);
                        }
                    }
                    "reject" => {
                        if flag(1, "include_accepted") {
                            from.push(KeyState::Accepted);
                        }
                        if flag(2, "include_denied") {
                            from.push(KeyState::Denied);
                        }
                    }
                    _ => from = vec![],
                }
                for (dir, ids) in &matches {
                    let Some(state) = state_of(dir) else { continue };
                    for id in ids {
                        let done = match verb {
                            "accept" if from.contains(&state) => self.keys.transfer(state, KeyState::Accepted, id),
                            "reject" if from.contains(&state) => self.keys.transfer(state, KeyState::Rejected, id),
                            "delete" => self.keys.remove(state, id),
                            _ => continue,
                        };
                        match done {
                            Ok(true) => {
                                self.key_event(verb, id);
                                info!("wheel key.{verb}: {id}");
                            }
                            Ok(false) => {}
                            Err(e) => warn!("wheel key.{verb} {id}: {e}"),
                        }
                    }
                }
                if verb != "accept" {
                    self.after_keys_removed();
                }
                Ok(listing(match pats {
                    Some(p) => self.name_match(&p, false),
                    None => self.dict_match(&matches),
                }))
            }
            "key.key_str" | "key.finger" => {
                let hash = args
                    .get(1, "hash_type")
                    .and_then(arg_str)
                    .unwrap_or_else(|| self.cfg.get_str("hash_type").unwrap_or("sha256").to_string());
                let finger = fun == "key.finger";
                let matches = self.name_match(&pattern()?, finger);
                let mut out = Vec::new();
                for (status, ids) in matches {
                    let mut items = Vec::new();
                    let mut ids = ids;
                    if !finger {
                        ids.sort_by_key(|i| i.to_lowercase());
                    }
                    for id in ids {
                        let path = if status == "local" {
                            self.cfg.pki_dir.join(&id)
                        } else {
                            self.cfg.pki_dir.join(&status).join(&id)
                        };
                        let pem = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                        let v = if finger {
                            brine_keys::fingerprint(&pem, &hash).unwrap_or_default()
                        } else {
                            pem
                        };
                        items.push((Value::from(id), Value::from(v)));
                    }
                    out.push((Value::from(status), Value::Map(items)));
                }
                Ok(Value::Map(out))
            }
            "key.finger_master" | "key.master_key_str" => {
                let path = self.cfg.pki_dir.join("master.pub");
                let pem = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let v = if fun == "key.finger_master" {
                    let hash = args
                        .get(0, "hash_type")
                        .and_then(arg_str)
                        .unwrap_or_else(|| self.cfg.get_str("hash_type").unwrap_or("sha256").to_string());
                    brine_keys::fingerprint(&pem, &hash).unwrap_or_default()
                } else {
                    pem
                };
                Ok(Value::map([("local", Value::map([("master.pub", Value::from(v))]))]))
            }
            other => Err(format!("{other} is not implemented")),
        }
    }

    /// The `salt/key` event of a key action (`accept`, `reject`, `delete`).
    pub(super) fn key_event(&mut self, act: &str, id: &str) {
        let ev = Value::map([
            ("result", Value::Bool(true)),
            ("act", Value::from(act)),
            ("id", Value::from(id)),
        ]);
        let _ = self.events.fire("salt/key", &ev);
    }

    /// What Salt's `Key.delete_key`/`reject` do after keys are gone: the
    /// data cache of minions without a key dropped, and an AES rotation
    /// asked for when `rotate_aes_key`.
    pub(super) fn after_keys_removed(&self) {
        self.check_minion_cache();
        if self.cfg.get_bool("rotate_aes_key").unwrap_or(true) {
            self.drop_dfn();
        }
    }

    /// Salt's `check_minion_cache`: drop the data cache of minions whose
    /// key is gone, unless `preserve_minion_cache`.
    fn check_minion_cache(&self) {
        if self.cfg.get_bool("preserve_minion_cache").unwrap_or(false) {
            return;
        }
        let dir = self.cfg.cachedir.join("minions");
        let known: Vec<String> = self.list_keys().into_iter().flat_map(|(_, ids)| ids).collect();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !known.contains(&name) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    /// Salt's `crypt.dropfile`: ask Maintenance to rotate the AES key.
    fn drop_dfn(&self) {
        if let Err(e) = brine_keys::drop_rotation_file(&self.cfg.cachedir, &self.cfg.master_id()) {
            warn!("cannot write {}: {e}", self.cfg.cachedir.join(".dfn").display());
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
