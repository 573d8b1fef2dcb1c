//! What a swarm minion can run, and the minion-side target match.

use brine_proto::Value;

pub struct FuncResult {
    pub ret: Value,
    pub retcode: i64,
    pub success: bool,
    pub out: Option<&'static str>,
}

fn ok(ret: Value) -> FuncResult {
    FuncResult {
        ret,
        retcode: 0,
        success: true,
        out: None,
    }
}

/// Positional args and the `__kwarg__` map(s), as `salt.utils.args.parse_input` leaves them.
fn split_args(args: &Value) -> (Vec<Value>, Vec<(Value, Value)>) {
    let mut pos = Vec::new();
    let mut kw = Vec::new();
    if let Value::Array(items) = args {
        for a in items {
            if let Value::Map(pairs) = a {
                if a.get("__kwarg__").and_then(Value::as_bool) == Some(true) {
                    for (k, v) in pairs {
                        let name = match k {
                            Value::Str(s) => s.as_str(),
                            _ => "",
                        };
                        if name != "__kwarg__" && !name.starts_with("__") {
                            kw.push((k.clone(), v.clone()));
                        }
                    }
                    continue;
                }
            }
            pos.push(a.clone());
        }
    }
    (pos, kw)
}

/// Run `fun`. Supported: `test.ping`, `test.echo`, `test.arg`,
/// `swarm.payload <bytes>` (a string of that size: the configurable-size
/// return), `saltutil.find_job` (the job is never running: `{}`).
/// Anything else answers as a minion without the function does.
pub fn run(fun: &str, args: &Value) -> FuncResult {
    let (pos, kw) = split_args(args);
    match fun {
        "test.ping" => ok(Value::Bool(true)),
        "test.echo" => ok(pos.into_iter().next().unwrap_or(Value::from(""))),
        "test.arg" => ok(Value::map([("args", Value::Array(pos)), ("kwargs", Value::Map(kw))])),
        "swarm.payload" => {
            let size = pos
                .first()
                .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
                .or_else(|| {
                    kw.iter()
                        .find(|(k, _)| k.as_str() == Some("size"))
                        .and_then(|(_, v)| v.as_i64())
                })
                .unwrap_or(1024)
                .clamp(0, 64 << 20) as usize;
            let pattern = b"0123456789abcdefghijklmnopqrstuvwxyz";
            let s: String = (0..size).map(|i| pattern[i % pattern.len()] as char).collect();
            ok(Value::Str(s))
        }
        "saltutil.find_job" => ok(Value::Map(Vec::new())),
        _ => FuncResult {
            ret: Value::Str(format!("'{fun}' is not available.")),
            retcode: 254,
            success: false,
            out: Some("nested"),
        },
    }
}

/// The minion-side match (`salt/minion.py Matcher`) for the target types a
/// swarm minion can decide from its id alone: glob, pcre and list. A
/// minion that cannot match a target type ignores the job.
pub fn target_matches(load: &Value, id: &str) -> bool {
    let tgt_type = load.get("tgt_type").and_then(Value::as_str).unwrap_or("glob");
    let Some(tgt) = load.get("tgt") else {
        return false;
    };
    match tgt_type {
        "glob" => match tgt.as_str() {
            Some(t) => brine_py::fnmatch(id, t),
            None => false,
        },
        "pcre" => match tgt.as_str() {
            Some(t) => regex::Regex::new(&format!("^(?:{t})"))
                .map(|r| r.is_match(id))
                .unwrap_or(false),
            None => false,
        },
        "list" => match tgt {
            Value::Array(items) => items.iter().any(|v| v.as_str() == Some(id)),
            Value::Str(s) => s.split(',').any(|p| p.trim() == id),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(tgt: Value, tt: &str) -> Value {
        Value::map([("tgt", tgt), ("tgt_type", Value::from(tt))])
    }

    #[test]
    fn targets() {
        assert!(target_matches(&load("swarm-*".into(), "glob"), "swarm-00001"));
        assert!(!target_matches(&load("web*".into(), "glob"), "swarm-00001"));
        assert!(target_matches(&load("swarm-0000[12]".into(), "pcre"), "swarm-00001"));
        assert!(!target_matches(&load("0000".into(), "pcre"), "swarm-00001"));
        assert!(target_matches(&load("a,swarm-1".into(), "list"), "swarm-1"));
        assert!(target_matches(
            &load(Value::Array(vec!["swarm-1".into()]), "list"),
            "swarm-1"
        ));
        assert!(!target_matches(&load("G@os:Debian".into(), "compound"), "swarm-1"));
    }

    #[test]
    fn functions() {
        let kw = Value::map([
            ("__kwarg__", Value::Bool(true)),
            ("x", Value::Int(1)),
            ("__pub_jid", Value::from("j")),
        ]);
        let r = run("test.arg", &Value::Array(vec![Value::Int(5), kw]));
        assert_eq!(r.ret.get("args"), Some(&Value::Array(vec![Value::Int(5)])));
        assert_eq!(r.ret.get("kwargs"), Some(&Value::map([("x", Value::Int(1))])));
        let r = run("swarm.payload", &Value::Array(vec![Value::Int(10_000)]));
        assert_eq!(r.ret.as_str().map(str::len), Some(10_000));
        let r = run("no.such", &Value::Array(vec![]));
        assert_eq!((r.retcode, r.success), (254, false));
        assert_eq!(run("test.ping", &Value::Nil).ret, Value::Bool(true));
    }
}
