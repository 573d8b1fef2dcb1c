//! Salt's access lists, matched as Salt matches them: who may run which
//! function on which minions with which arguments.
//!
//! * [`auth_check`] (`CkMinions.auth_check`): a publish by an eauth or
//!   token user, a `publisher_acl` user, or a peer (`peer:`), against a
//!   list of function regexes and `{target: [functions]}` entries.
//! * [`spec_check`] (`CkMinions.spec_check`): a runner or wheel call
//!   against `@runner`, `@wheel`, `@<module>` and `{'@runner':
//!   [regexes]}` entries.
//! * [`fill_auth_list`]: the entries of `external_auth:<backend>` that
//!   apply to a user (by name pattern, `group%` membership, `*`).
//! * [`matching_values`], [`PublisherAcl`]: `publisher_acl` and
//!   `publisher_acl_blacklist`.
//!
//! ACLs come from the master config (JSON values); function names and
//! arguments from the request (msgpack values). Function and argument
//! patterns are Python regexes used as `re.match` uses them (anchored at
//! the start only); user and target patterns are globs or anchored
//! regexes (`expr_match`).

use brine_proto::Value;
use brine_targeting::{CkMinions, PyRegex};
use serde_json::{Map, Value as Json};

/// Salt's `stringutils.expr_match`: a glob (which also matches the exact
/// text), else a regex anchored at both ends.
pub fn expr_match(line: &str, expr: &str) -> bool {
    brine_py::fnmatch(line, expr) || PyRegex::new(&format!(r"\A(?:{expr})\Z")).is_ok_and(|r| r.matches(line))
}

/// Salt's `stringutils.check_whitelist_blacklist` (a string is a list of
/// one; an empty or missing list is no list).
pub fn check_whitelist_blacklist(value: &str, whitelist: Option<&Json>, blacklist: Option<&Json>) -> bool {
    fn items(list: Option<&Json>) -> Vec<&str> {
        match list {
            Some(Json::String(s)) if !s.is_empty() => vec![s.as_str()],
            Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).collect(),
            Some(Json::Object(o)) => o.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
    let (white, black) = (items(whitelist), items(blacklist));
    let black_hit = black.iter().any(|e| expr_match(value, e));
    let white_hit = white.iter().any(|e| expr_match(value, e));
    match (white.is_empty(), black.is_empty()) {
        (true, false) => !black_hit,
        (false, true) => white_hit,
        (false, false) => !black_hit && white_hit,
        (true, true) => true,
    }
}

/// Salt's `match_check`: every function (a name or a list of names)
/// matches the regex at its start; an invalid regex matches nothing.
pub fn match_check(regex: &str, fun: &Value) -> bool {
    let funs: Vec<&Value> = match fun {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let Ok(re) = PyRegex::new(regex) else {
        log::error!("Invalid regular expression: {}", brine_py::str_repr(regex));
        return false;
    };
    !funs.is_empty() && funs.iter().all(|f| f.as_str().is_some_and(|f| re.matches(f)))
}

/// Salt's `__args_check`: `{args: [...], kwargs: {...}}` conditions (or a
/// list of them); a `null` condition allows any value. Each argument is
/// matched as Python's `str()` of it.
fn args_check(valid: &Json, args: Option<&[Value]>, kwargs: Option<&Value>) -> bool {
    let conds: Vec<&Json> = match valid {
        Json::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let str_match = |re: &Json, v: &Value| match re {
        Json::Null => true,
        Json::String(re) => match_check(re, &Value::from(brine_py::to_str(v))),
        _ => false,
    };
    conds.into_iter().any(|cond| {
        let Json::Object(cond) = cond else { return false };
        if let Some(cond_args) = cond.get("args") {
            // Python enumerates whatever it is: a list's items, a dict's
            // keys, a string's characters.
            let cond_args: Vec<Json> = match cond_args {
                Json::Array(a) => a.clone(),
                Json::Object(o) => o.keys().map(|k| Json::String(k.clone())).collect(),
                Json::String(s) => s.chars().map(|c| Json::String(c.to_string())).collect(),
                _ => Vec::new(),
            };
            for (i, c) in cond_args.iter().enumerate() {
                let Some(arg) = args.and_then(|a| a.get(i)) else {
                    return false;
                };
                if !str_match(c, arg) {
                    return false;
                }
            }
        }
        if let Some(Json::Object(ck)) = cond.get("kwargs") {
            for (k, c) in ck {
                let Some(v) = kwargs.and_then(|kw| kw.get(k)) else {
                    return false;
                };
                if !str_match(c, v) {
                    return false;
                }
            }
        }
        true
    })
}

/// Salt's `__fun_check`: function regexes, or `{regex: args conditions}`.
fn fun_check(valid: &Json, fun: &Value, args: Option<&[Value]>, kwargs: Option<&Value>) -> bool {
    let conds: Vec<&Json> = match valid {
        Json::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    conds.into_iter().any(|cond| match cond {
        Json::String(re) => match_check(re, fun),
        Json::Object(o) if o.len() == 1 => {
            let (re, spec) = o.iter().next().expect("one entry");
            match_check(re, fun) && args_check(spec, args, kwargs)
        }
        _ => false,
    })
}

/// What a publish targets, for [`auth_check`].
pub struct Target<'a> {
    pub tgt: &'a Value,
    pub tgt_type: &'a str,
    /// The minions the publish matched, when the caller has them (the
    /// master's `publish`); else they are matched here (a peer publish).
    pub minions: Option<&'a [String]>,
}

/// Salt's `CkMinions.auth_check`: may `funs` (one function, or a list
/// for a compound job, with `args` the list of their argument lists) run
/// on the target? `publish_validate` (peer publishing) first refuses
/// pillar globs and regexes that reach more minions than the exact
/// match; `whitelist` names functions always allowed
/// (`saltutil.find_job`).
pub fn auth_check(
    ck: &CkMinions,
    auth_list: &[Json],
    funs: &Value,
    args: &Value,
    target: &Target,
    publish_validate: bool,
    whitelist: &[&str],
) -> bool {
    let matched = |tgt: &Value, tgt_type: &str| ck.check_minions(tgt, tgt_type, ":", true).minions;
    let mut minions = target.minions.map(<[String]>::to_vec);
    if publish_validate {
        let v_type = match target.tgt_type.to_lowercase().as_str() {
            "pillar" | "pillar_pcre" => "pillar_exact".to_string(),
            "compound" => "compound_pillar_exact".to_string(),
            _ => target.tgt_type.to_string(),
        };
        let exact = matched(target.tgt, &v_type);
        let reached = matched(target.tgt, target.tgt_type);
        if reached.iter().any(|m| !exact.contains(m)) {
            return false;
        }
        minions = Some(reached);
    }
    // A compound job comes as lists; anything else is a list of one.
    let one_fun = [funs];
    let one_args = [args];
    let (funs, args): (Vec<&Value>, Vec<&Value>) = match funs {
        Value::Array(f) => match args {
            Value::Array(a) => (f.iter().collect(), a.iter().collect()),
            _ => return false,
        },
        _ => (one_fun.to_vec(), one_args.to_vec()),
    };
    for (num, fun) in funs.iter().enumerate() {
        if fun.as_str().is_some_and(|f| whitelist.contains(&f)) {
            return true;
        }
        for ind in auth_list {
            match ind {
                Json::String(re) if match_check(re, fun) => return true,
                Json::Object(o) if o.len() == 1 => {
                    let (valid, spec) = o.iter().next().expect("one entry");
                    let allowed = matched(&Value::from(valid.as_str()), "compound");
                    let wanted = match &minions {
                        Some(m) => m.clone(),
                        None => matched(target.tgt, target.tgt_type),
                    };
                    if !wanted.iter().all(|m| allowed.contains(m)) {
                        continue;
                    }
                    // Salt indexes the argument lists as it goes: a
                    // missing one is its TypeError/IndexError, a refusal.
                    let Some(fun_args) = args.get(num) else {
                        return false;
                    };
                    let (fun_args, kwargs): (Option<&[Value]>, Option<&Value>) = match fun_args {
                        Value::Array(a) => match a.split_last() {
                            Some((kw, rest)) if kw.is_map() && kw.get("__kwarg__").is_some() => (Some(rest), Some(kw)),
                            _ => (Some(&a[..]), None),
                        },
                        Value::Nil => (None, None),
                        _ => return false,
                    };
                    if fun_check(spec, fun, fun_args, kwargs) {
                        return true;
                    }
                }
                _ => {}
            }
        }
    }
    false
}

/// What [`spec_check`] decides.
#[derive(Debug, PartialEq, Eq)]
pub enum Spec {
    Allowed,
    Denied,
    /// The function is not `module.function`: Salt answers
    /// `SaltInvocationError` "A command invocation error occurred: Check
    /// syntax." instead of an authentication failure.
    Syntax,
}

/// Salt's `CkMinions.spec_check` for `form` `runner` or `wheel`: `args`
/// is the request's `kwarg` (`{arg: [...], kwarg: {...}}`, which the
/// argument conditions read).
pub fn spec_check(auth_list: &[Json], fun: &str, args: &Value, form: &str) -> Spec {
    if auth_list.is_empty() {
        return Spec::Denied;
    }
    let comps: Vec<&str> = fun.split('.').collect();
    let [module, fun_name] = comps[..] else {
        return Spec::Syntax;
    };
    let plural = format!("@{form}s");
    let arg = match args.get("arg") {
        Some(Value::Array(a)) => Some(&a[..]),
        _ => None,
    };
    let kwarg = args.get("kwarg").filter(|k| k.is_map());
    for ind in auth_list {
        match ind {
            Json::String(s) if s.starts_with('@') && (s[1..] == *module || s[1..] == *form || *s == plural) => {
                return Spec::Allowed;
            }
            Json::Object(o) if o.len() == 1 => {
                let (valid, spec) = o.iter().next().expect("one entry");
                if let Some(v) = valid.strip_prefix('@') {
                    if v == module && fun_check(spec, &Value::from(fun_name), arg, kwarg) {
                        return Spec::Allowed;
                    }
                    if (v == form || *valid == plural) && fun_check(spec, &Value::from(fun), arg, kwarg) {
                        return Spec::Allowed;
                    }
                }
            }
            _ => {}
        }
    }
    Spec::Denied
}

/// Salt's `CkMinions.fill_auth_list`: the entries of one
/// `external_auth:<backend>` section that apply to `name` (a user
/// pattern that matches it, a `group%` it belongs to), and the `*` entry
/// when no user pattern matched (or always, with `permissive_acl`, where
/// `*` is an ordinary pattern).
pub fn fill_auth_list(provider: &Map<String, Json>, name: &str, groups: &[String], permissive: bool) -> Vec<Json> {
    let mut auth_list = Vec::new();
    let mut name_matched = false;
    let mut extend = |v: &Json| match v {
        Json::Array(a) => auth_list.extend(a.iter().cloned()),
        Json::Object(o) => auth_list.extend(o.keys().map(|k| Json::String(k.clone()))),
        Json::String(s) => auth_list.extend(s.chars().map(|c| Json::String(c.to_string()))),
        _ => {}
    };
    for (pattern, entries) in provider {
        if pattern == "*" && !permissive {
            continue;
        }
        if let Some(group) = pattern.strip_suffix('%') {
            if groups.iter().any(|g| g == group) {
                extend(entries);
            }
        } else if expr_match(pattern, name) {
            // Salt passes the entry as the text and the user's name as the
            // pattern (`expr_match(match, name)`, 3006 and 3007): an entry
            // is a user's name, and `dev.*` matches only a user named
            // `dev.*`, whatever the documentation says.
            name_matched = true;
            extend(entries);
        }
    }
    if !permissive && !name_matched {
        if let Some(all) = provider.get("*") {
            extend(all);
        }
    }
    auth_list
}

/// Salt's `get_values_of_matching_keys`: the entries of every pattern in
/// `patterns` (`publisher_acl`) that `user` matches.
pub fn matching_values(patterns: &Map<String, Json>, user: &str) -> Vec<Json> {
    let mut out = Vec::new();
    for (pattern, values) in patterns {
        if expr_match(user, pattern) {
            match values {
                Json::Array(a) => out.extend(a.iter().cloned()),
                Json::Object(o) => out.extend(o.keys().map(|k| Json::String(k.clone()))),
                _ => {}
            }
        }
    }
    out
}

/// Salt's `PublisherACL`: `publisher_acl_blacklist` (`users:` and
/// `modules:` pattern lists).
pub struct PublisherAcl<'a> {
    blacklist: Option<&'a Json>,
}

impl<'a> PublisherAcl<'a> {
    pub fn new(blacklist: Option<&'a Json>) -> PublisherAcl<'a> {
        PublisherAcl { blacklist }
    }

    fn list(&self, key: &str) -> Option<&'a Json> {
        self.blacklist.and_then(|b| b.get(key))
    }

    pub fn user_is_blacklisted(&self, user: &str) -> bool {
        !check_whitelist_blacklist(user, None, self.list("users"))
    }

    /// A function, or every function of a compound job.
    pub fn cmd_is_blacklisted(&self, fun: &Value) -> bool {
        let funs: Vec<&Value> = match fun {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        funs.iter()
            .any(|f| !check_whitelist_blacklist(&brine_py::to_str(*f), None, self.list("modules")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p_of(v: &Json) -> &Map<String, Json> {
        v.as_object().unwrap()
    }

    fn acl(v: Json) -> Vec<Json> {
        v.as_array().unwrap().clone()
    }

    #[test]
    fn fun_and_args_checks_as_salts() {
        assert!(match_check("test\\..*", &Value::from("test.ping")));
        assert!(
            match_check("test", &Value::from("test.ping")),
            "re.match is anchored at the start only"
        );
        assert!(!match_check("cmd\\..*", &Value::from("test.ping")));
        assert!(!match_check("(", &Value::from("test.ping")));
        assert!(match_check(
            "test\\..*",
            &Value::Array(vec![Value::from("test.ping"), Value::from("test.echo")])
        ));
        assert!(!match_check(
            "test\\..*",
            &Value::Array(vec![Value::from("test.ping"), Value::from("cmd.run")])
        ));
        let spec = json!(["test.ping", {"cmd.run": {"args": ["ls.*", null], "kwargs": {"cwd": "/tmp"}}}]);
        assert!(fun_check(&spec, &Value::from("test.ping"), Some(&[]), None));
        let kw = Value::map([("__kwarg__", Value::Bool(true)), ("cwd", Value::from("/tmp"))]);
        let args = [Value::from("ls -l"), Value::Int(5)];
        assert!(fun_check(&spec, &Value::from("cmd.run"), Some(&args), Some(&kw)));
        assert!(!fun_check(&spec, &Value::from("cmd.run"), Some(&args), None));
        assert!(!fun_check(&spec, &Value::from("cmd.run"), Some(&args[..1]), Some(&kw)));
        assert!(!fun_check(
            &spec,
            &Value::from("cmd.run"),
            Some(&[Value::from("rm"), Value::Int(5)]),
            Some(&kw)
        ));
    }

    #[test]
    fn spec_check_reads_salt_acls() {
        let low = Value::Map(vec![]);
        let a = acl(json!(["@wheel", {"@runner": ["jobs\\..*"]}, "@manage"]));
        assert_eq!(spec_check(&a, "key.list_all", &low, "wheel"), Spec::Allowed);
        assert_eq!(spec_check(&a, "jobs.list_jobs", &low, "runner"), Spec::Allowed);
        assert_eq!(spec_check(&a, "manage.up", &low, "runner"), Spec::Allowed);
        assert_eq!(spec_check(&a, "state.orchestrate", &low, "runner"), Spec::Denied);
        assert_eq!(spec_check(&a, "nodot", &low, "runner"), Spec::Syntax);
        assert_eq!(spec_check(&[], "nodot", &low, "runner"), Spec::Denied);
        let only_jobs = acl(json!([{"@jobs": ["list_.*"]}]));
        assert_eq!(spec_check(&only_jobs, "jobs.list_jobs", &low, "runner"), Spec::Allowed);
        assert_eq!(spec_check(&only_jobs, "jobs.lookup_jid", &low, "runner"), Spec::Denied);
        assert_eq!(
            spec_check(&acl(json!(["@runners"])), "a.b", &low, "runner"),
            Spec::Allowed
        );
        let with_args = acl(json!([{"@runner": [{"jobs.lookup_jid": {"args": ["2024.*"]}}]}]));
        let low = Value::map([("arg", Value::Array(vec![Value::from("20240101")]))]);
        assert_eq!(spec_check(&with_args, "jobs.lookup_jid", &low, "runner"), Spec::Allowed);
        let low = Value::map([("arg", Value::Array(vec![Value::from("1999")]))]);
        assert_eq!(spec_check(&with_args, "jobs.lookup_jid", &low, "runner"), Spec::Denied);
    }

    #[test]
    fn auth_lists_by_name_group_and_star() {
        let provider = json!({"fred": ["test.*"], "adm%": ["@wheel"], "*": ["grains.items"], "dev.*": ["@runner"]});
        // Salt matches the entry against the name as a pattern.
        assert_eq!(
            fill_auth_list(p_of(&provider), "dev1", &[], false),
            acl(json!(["grains.items"]))
        );
        let p = provider.as_object().unwrap();
        assert_eq!(fill_auth_list(p, "fred", &[], false), acl(json!(["test.*"])));
        assert_eq!(
            fill_auth_list(p, "fred", &["adm".into()], false),
            acl(json!(["test.*", "@wheel"]))
        );
        assert_eq!(fill_auth_list(p, "bob", &[], false), acl(json!(["grains.items"])));
        assert_eq!(fill_auth_list(p, "dev.*", &[], false), acl(json!(["@runner"])));
        // permissive_acl makes `*` an entry like the others (matched as
        // text against the name).
        assert_eq!(fill_auth_list(p, "fred", &[], true), acl(json!(["test.*"])));
        assert_eq!(fill_auth_list(p, "eve", &[], true), acl(json!([])));
    }

    #[test]
    fn publisher_acl_patterns_and_blacklist() {
        let acl_cfg = json!({"dev.*": ["test.*"], "ops": ["cmd.*", "state.*"]});
        let p = acl_cfg.as_object().unwrap();
        assert_eq!(matching_values(p, "devon"), acl(json!(["test.*"])));
        assert_eq!(matching_values(p, "ops"), acl(json!(["cmd.*", "state.*"])));
        assert!(matching_values(p, "eve").is_empty());
        let bl = json!({"users": ["root", "^sudo_.*"], "modules": ["cmd.*"]});
        let pa = PublisherAcl::new(Some(&bl));
        assert!(pa.user_is_blacklisted("root"));
        assert!(pa.user_is_blacklisted("sudo_fred"));
        assert!(!pa.user_is_blacklisted("fred"));
        assert!(pa.cmd_is_blacklisted(&Value::from("cmd.run")));
        assert!(!pa.cmd_is_blacklisted(&Value::from("test.ping")));
        assert!(!PublisherAcl::new(None).user_is_blacklisted("root"));
    }
}
