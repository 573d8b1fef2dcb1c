//! One low chunk as the call Salt's `ReactWrap.run` makes for it.
//!
//! * `local.<fun>` (and its alias `cmd.<fun>`): a publish, as
//!   `LocalClient.cmd_async(tgt, fun, arg, tgt_type, ret, jid, kwarg,
//!   **rest)`: the keyword arguments go at the end of `arg` as a map
//!   marked `__kwarg__: True`, and every other key of the chunk travels in
//!   the publish load's `kwargs`.
//! * `runner.<fun>`, `wheel.<fun>`: run on the master with low data
//!   `{arg, kwarg, __user__: "Reactor", __state__, …}` (or, in the legacy
//!   form, the chunk's own keys matched to the function's parameters).
//! * `caller.<fun>` is refused: it runs `salt-call --local` style on a
//!   masterless minion, never on a master.
//!
//! Arguments: `args:` (a list of one-key maps, or a map) are keyword
//! arguments and win over `arg:`/`kwarg:` (which are then ignored with a
//! warning); without `args:`, `arg:` is positional and `kwarg:` by name.

use brine_proto::Value;
use log::{error, warn};

use brine_state::compile::Chunk;

/// The user runner and wheel reactions run as; events whose data says
/// `user: Reactor` start no reaction, so reactions cannot loop.
pub const EVENT_USER: &str = "Reactor";

/// What a chunk asks the master to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Reaction {
    Local {
        id: String,
        fun: String,
        tgt: Value,
        tgt_type: String,
        arg: Vec<Value>,
        ret: String,
        jid: String,
        /// The rest of the chunk: the publish load's `kwargs`.
        kwargs: Vec<(String, Value)>,
    },
    Runner {
        id: String,
        fun: String,
        /// The runner's low data (`arg`/`kwarg` or named keys).
        low: Value,
    },
    Wheel {
        id: String,
        fun: String,
        low: Value,
    },
}

impl Reaction {
    pub fn id(&self) -> &str {
        match self {
            Reaction::Local { id, .. } | Reaction::Runner { id, .. } | Reaction::Wheel { id, .. } => id,
        }
    }

    /// `local`, `runner` or `wheel`.
    pub fn kind(&self) -> &'static str {
        match self {
            Reaction::Local { .. } => "local",
            Reaction::Runner { .. } => "runner",
            Reaction::Wheel { .. } => "wheel",
        }
    }

    pub fn fun(&self) -> &str {
        match self {
            Reaction::Local { fun, .. } | Reaction::Runner { fun, .. } | Reaction::Wheel { fun, .. } => fun,
        }
    }
}

/// `salt.utils.data.repack_dictlist`: a list of one-key maps (bare
/// strings and numbers are keys with value None) as one map; `None` for
/// anything else (logged as Salt logs it).
pub fn repack_dictlist(v: &Value) -> Option<Vec<(Value, Value)>> {
    let parsed;
    let v = match v {
        Value::Str(s) => {
            parsed = brine_py::parse_yaml_value(s, std::path::Path::new("<args>")).ok()?;
            &parsed
        }
        other => other,
    };
    let Value::Array(items) = v else {
        error!(
            "Invalid input for repack_dictlist, data passed is not a list ({})",
            brine_py::repr(v)
        );
        return None;
    };
    let mut out: Vec<(Value, Value)> = Vec::new();
    let mut put = |k: Value, val: Value| match out.iter_mut().find(|(x, _)| *x == k) {
        Some((_, old)) => *old = val,
        None => out.push((k, val)),
    };
    for item in items {
        match item {
            Value::Str(_) | Value::Int(_) | Value::UInt(_) | Value::F64(_) | Value::F32(_) => {
                put(item.clone(), Value::Nil)
            }
            Value::Map(kv) if kv.len() == 1 => put(kv[0].0.clone(), kv[0].1.clone()),
            Value::Map(_) => {
                error!(
                    "Invalid input for repack_dictlist: key/value pairs must contain only one element (data passed: {}).",
                    brine_py::repr(item)
                );
                return None;
            }
            other => {
                error!(
                    "Invalid input for repack_dictlist: element {} is not a string/dict/numeric value",
                    brine_py::repr(other)
                );
                return None;
            }
        }
    }
    Some(out)
}

/// `condition_input`: jids given as numbers become text, and the keyword
/// arguments are appended as one map with `__kwarg__: True`.
fn condition_input(arg: Vec<Value>, kwarg: Vec<(Value, Value)>) -> Vec<Value> {
    let mut out: Vec<Value> = arg
        .into_iter()
        .map(|a| match a {
            Value::UInt(n) if n.to_string().len() == 20 => Value::from(n.to_string()),
            other => other,
        })
        .collect();
    if !kwarg.is_empty() {
        let mut kw = vec![(Value::from("__kwarg__"), Value::Bool(true))];
        kw.extend(kwarg);
        out.push(Value::Map(kw));
    }
    out
}

/// The reaction for `chunk`, or the error to log (the chunk is skipped).
pub fn reaction(chunk: &Chunk) -> Result<Reaction, String> {
    let id = chunk.text("__id__");
    let fun = chunk.text("fun");
    let state = match chunk.text("state").as_str() {
        "cmd" => "local".to_string(),
        s => s.to_string(),
    };
    if state == "caller" {
        return Err(format!(
            "Reactor '{id}': caller.{fun} runs functions on a masterless minion (salt-call --local); a master cannot run it. Use local.{fun} with a target."
        ));
    }
    if !matches!(state.as_str(), "local" | "runner" | "wheel") {
        return Err(format!("ReactWrap is missing a wrapper function for '{state}'"));
    }
    let has_args = chunk.get("args").is_some();
    let (arg, kwarg): (Vec<Value>, Option<Vec<(Value, Value)>>) = if let Some(args) = chunk.get("args") {
        for item in ["arg", "kwarg"] {
            if let Some(v) = chunk.get(item) {
                warn!(
                    "Reactor '{id}' is ignoring '{item}' param {} due to presence of 'args' param. Check the Reactor System documentation for the correct argument format.",
                    brine_py::repr(v)
                );
            }
        }
        let kwarg = match args {
            Value::Map(m) => m.clone(),
            other => repack_dictlist(other).unwrap_or_default(),
        };
        if kwarg.is_empty() {
            return Err(format!(
                "Reactor '{id}' failed to execute {state} '{fun}': Incorrect argument format, check the Reactor System documentation for the correct format."
            ));
        }
        (Vec::new(), Some(kwarg))
    } else {
        let arg = match chunk.get("arg") {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::Nil) | None => Vec::new(),
            Some(other) => vec![other.clone()],
        };
        let kwarg = match chunk.get("kwarg") {
            Some(Value::Map(m)) => Some(m.clone()),
            _ => None,
        };
        (arg, kwarg)
    };
    if state == "local" {
        let Some(tgt) = chunk.get("tgt").cloned() else {
            return Err(format!(
                "Reactor '{id}' failed to execute local '{fun}': missing the target (tgt)"
            ));
        };
        let text = |k: &str, default: &str| {
            chunk
                .get(k)
                .map(brine_py::to_str)
                .unwrap_or_else(|| default.to_string())
        };
        const OWN: [&str; 9] = [
            "fun", "tgt", "arg", "kwarg", "args", "tgt_type", "ret", "jid", "timeout",
        ];
        let kwargs = chunk
            .0
            .iter()
            .filter(|(k, _)| !OWN.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        return Ok(Reaction::Local {
            tgt_type: text("tgt_type", "glob"),
            ret: text("ret", ""),
            jid: text("jid", ""),
            arg: condition_input(arg, kwarg.unwrap_or_default()),
            tgt,
            kwargs,
            id,
            fun,
        });
    }
    // runner / wheel: Salt's low data for RunnerClient.low / Wheel.low.
    let mut low = Chunk(
        chunk
            .0
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "fun" | "state" | "args" | "arg" | "kwarg"))
            .cloned()
            .collect(),
    );
    if has_args || chunk.get("arg").is_some() || chunk.get("kwarg").is_some() {
        low.set("arg", Value::Array(arg));
        low.set("kwarg", Value::Map(kwarg.unwrap_or_default()));
    }
    low.set("__user__", Value::from(EVENT_USER));
    low.set("__state__", Value::from(state.as_str()));
    let low = low.to_value();
    Ok(if state == "runner" {
        Reaction::Runner { id, fun, low }
    } else {
        Reaction::Wheel { id, fun, low }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use brine_state::compile::{compile_high_data, pad_funcs, verify_high};

    fn reactions(sls: &str) -> Vec<Result<Reaction, String>> {
        let mut high = brine_py::parse_yaml_value(sls, std::path::Path::new("t.sls")).unwrap();
        pad_funcs(&mut high);
        assert_eq!(verify_high(&high), Vec::<String>::new());
        compile_high_data(&high).iter().map(reaction).collect()
    }

    fn one(sls: &str) -> Reaction {
        reactions(sls).pop().unwrap().unwrap()
    }

    #[test]
    fn local_with_args_publishes_keyword_arguments() {
        let r = one("run:\n  local.cmd.run:\n    - tgt: web1\n    - tgt_type: list\n    - ret: syslog\n    - args:\n      - cmd: uptime\n      - cwd: /tmp\n");
        let Reaction::Local {
            fun,
            tgt,
            tgt_type,
            arg,
            ret,
            kwargs,
            ..
        } = r
        else {
            panic!()
        };
        assert_eq!(
            (fun.as_str(), tgt, tgt_type.as_str(), ret.as_str()),
            ("cmd.run", Value::from("web1"), "list", "syslog")
        );
        assert_eq!(
            arg,
            vec![Value::map([
                ("__kwarg__", Value::Bool(true)),
                ("cmd", Value::from("uptime")),
                ("cwd", Value::from("/tmp")),
            ])]
        );
        let keys: Vec<&str> = kwargs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["state", "name", "__id__", "order"]);
    }

    #[test]
    fn legacy_arg_is_positional_and_cmd_is_local() {
        let r = one("old:\n  cmd.cmd.run:\n    - tgt: '*'\n    - arg:\n      - uptime\n    - kwarg:\n        cwd: /\n");
        let Reaction::Local { arg, tgt_type, .. } = r else {
            panic!("{r:?}")
        };
        assert_eq!(tgt_type, "glob");
        assert_eq!(
            arg,
            vec![
                Value::from("uptime"),
                Value::map([("__kwarg__", Value::Bool(true)), ("cwd", Value::from("/"))])
            ]
        );
    }

    #[test]
    fn args_win_over_arg_and_kwarg() {
        let r = one("x:\n  local.test.echo:\n    - tgt: a\n    - arg: [ignored]\n    - args:\n      - text: hi\n");
        let Reaction::Local { arg, .. } = r else { panic!() };
        assert_eq!(
            arg,
            vec![Value::map([
                ("__kwarg__", Value::Bool(true)),
                ("text", Value::from("hi"))
            ])]
        );
    }

    #[test]
    fn runner_and_wheel_run_as_reactor() {
        let r = one("send:\n  runner.event.send:\n    - args:\n      - tag: my/tag\n      - data:\n          a: 1\n");
        let Reaction::Runner { fun, low, .. } = r else { panic!() };
        assert_eq!(fun, "event.send");
        assert_eq!(low.get("arg"), Some(&Value::Array(vec![])));
        assert_eq!(
            low.get("kwarg"),
            Some(&Value::map([
                ("tag", Value::from("my/tag")),
                ("data", Value::map([("a", Value::Int(1))]))
            ]))
        );
        assert_eq!(low.get("__user__"), Some(&Value::from("Reactor")));
        assert_eq!(low.get("__state__"), Some(&Value::from("runner")));

        // Legacy wheel: the parameters by name.
        let r = one("accept:\n  wheel.key.accept:\n    - match: web1\n");
        let Reaction::Wheel { fun, low, .. } = r else { panic!() };
        assert_eq!(fun, "key.accept");
        assert_eq!(low.get("match"), Some(&Value::from("web1")));
        assert!(low.get("arg").is_none() && low.get("kwarg").is_none());
    }

    #[test]
    fn refused_forms() {
        let errs: Vec<String> = reactions(
            "a:\n  caller.file.touch:\n    - args:\n      - name: /tmp/x\nb:\n  local.test.ping:\n    - args: notalist\nc:\n  local.test.ping:\n    - arg: [1]\nd:\n  bogus.thing:\n    - tgt: x\ne:\n  local.test.ping:\n    - tgt: x\n    - args:\n      - {a: 1, b: 2}\n",
        )
        .into_iter()
        .filter_map(Result::err)
        .collect();
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert!(errs
            .iter()
            .any(|e| e.contains("caller.file.touch runs functions on a masterless minion")));
        assert!(errs
            .iter()
            .any(|e| e.contains("Reactor 'b' failed to execute local 'test.ping': Incorrect argument format")));
        assert!(errs.iter().any(|e| e.contains("missing the target")));
        assert!(errs
            .iter()
            .any(|e| e == "ReactWrap is missing a wrapper function for 'bogus'"));
        assert!(errs.iter().any(|e| e.contains("Reactor 'e' failed to execute local")));
    }

    #[test]
    fn repack_like_salt() {
        let v = brine_py::parse_yaml_value("[a, {b: 1}, 3]", std::path::Path::new("t")).unwrap();
        assert_eq!(
            repack_dictlist(&v),
            Some(vec![
                (Value::from("a"), Value::Nil),
                (Value::from("b"), Value::Int(1)),
                (Value::Int(3), Value::Nil)
            ])
        );
        assert_eq!(
            repack_dictlist(&Value::from("[{x: y}]")),
            Some(vec![(Value::from("x"), Value::from("y"))])
        );
        assert_eq!(repack_dictlist(&Value::Int(1)), None);
    }
}
