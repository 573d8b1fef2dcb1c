//! Salt's state `Compiler`, shared by the reactor and the state run:
//! rendered high data (`{id: {state: [fun, {arg: val}, …]}}`, or
//! `{id: {"state.fun": […]}}`) checked (`verify_high`) and turned into
//! ordered low chunks (`compile_high_data` + `order_chunks`).

use brine_proto::Value;
use brine_py::{repr, to_str, type_name};

/// A low chunk: `state`, `name`, `__sls__`, `__id__`, the arguments,
/// `fun`, `order`, in Salt's insertion order.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk(pub Vec<(String, Value)>);

impl Chunk {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn set(&mut self, key: &str, v: Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = v,
            None => self.0.push((key.to_string(), v)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    /// A text field (`state`, `fun`, `__id__`), empty when absent.
    pub fn text(&self, key: &str) -> String {
        self.get(key).map(to_str).unwrap_or_default()
    }

    pub fn to_value(&self) -> Value {
        Value::Map(
            self.0
                .iter()
                .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
                .collect(),
        )
    }
}

fn key_text(k: &Value) -> String {
    to_str(k)
}

fn sls_of(body: &Value) -> String {
    body.get("__sls__").map(to_str).unwrap_or_default()
}

/// `pad_funcs`: `id: state.fun` strings and `state.fun:` keys become
/// `{state: [..., fun]}`; applied to each rendered file.
pub fn pad_funcs(high: &mut Value) {
    let Value::Map(ids) = high else { return };
    for (_, body) in ids.iter_mut() {
        if let Value::Str(s) = body {
            if let Some((state, fun)) = s.split_once('.') {
                *body = Value::Map(vec![(Value::from(state), Value::Array(vec![Value::from(fun)]))]);
            }
            continue;
        }
        let Value::Map(states) = body else { continue };
        let mut keys: Vec<String> = states
            .iter()
            .filter_map(|(k, _)| k.as_str().map(String::from))
            .collect();
        keys.sort();
        let mut seen: Vec<String> = Vec::new();
        for key in keys {
            if key.starts_with('_') {
                continue;
            }
            let Some(i) = states.iter().position(|(k, _)| k.as_str() == Some(&key)) else {
                continue;
            };
            if !matches!(states[i].1, Value::Array(_)) {
                continue;
            }
            if let Some((state, fun)) = key.split_once('.') {
                // Salt keeps only the first `state.fun` of a state.
                if seen.iter().any(|s| s == state) {
                    continue;
                }
                let (_, mut args) = states.remove(i);
                if let Value::Array(a) = &mut args {
                    a.push(Value::from(fun));
                }
                match states.iter_mut().find(|(k, _)| k.as_str() == Some(state)) {
                    Some((_, v)) => *v = args,
                    None => states.push((Value::from(state), args)),
                }
                seen.push(state.to_string());
                continue;
            }
            seen.push(key);
        }
    }
}

const REQUISITES: [&str; 4] = ["require", "watch", "prereq", "onchanges"];

/// Which of Salt's two `verify_high`s: the reactor's `Compiler` or the
/// state run's `State` (a trailing period on the quoting hint, the short
/// declaration and `names` checks, another "Illegal requisite" text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Compiler,
    State,
}

/// `Compiler.verify_high`: the errors that make Salt refuse the whole
/// reaction.
pub fn verify_high(high: &Value) -> Vec<String> {
    verify_high_as(high, Flavor::Compiler)
}

/// Salt's `verify_high` of `flavor`.
pub fn verify_high_as(high: &Value, flavor: Flavor) -> Vec<String> {
    let mut errors = Vec::new();
    let Value::Map(ids) = high else {
        return vec!["High data is not a dictionary and is invalid".into()];
    };
    // id -> (its state, [(required id, requisite key)]): Salt's `reqs`,
    // to find two states requiring each other.
    let mut reqs: Vec<ReqsOf> = Vec::new();
    for (name, body) in ids {
        if name.as_str().is_some_and(|n| n.starts_with("__")) {
            continue;
        }
        let sls = sls_of(body);
        let name_s = key_text(name);
        if name.as_str().is_none() {
            errors.push(format!(
                "ID '{name_s}' in SLS '{sls}' is not formed as a string, but is a {}. It may need to be quoted{}",
                type_name(name),
                if flavor == Flavor::State { "." } else { "" }
            ));
        }
        let Value::Map(states) = body else {
            errors.push(format!(
                "The type {} in {} is not formatted as a dictionary",
                key_text(name),
                repr(body)
            ));
            continue;
        };
        for (state, run) in states {
            let state_s = key_text(state);
            if state_s.starts_with("__") {
                continue;
            }
            if flavor == Flavor::State && run.is_nil() {
                errors.push(format!(
                    "ID '{name_s}' in SLS '{sls}' contains a short declaration ({state_s}) with a trailing colon. When not passing any arguments to a state, the colon must be omitted."
                ));
                continue;
            }
            let Value::Array(run) = run else {
                errors.push(format!("State '{name_s}' in SLS '{sls}' is not formed as a list"));
                continue;
            };
            let mut funs: Vec<String> = Vec::new();
            if let Some((_, f)) = state_s.split_once('.') {
                funs.push(f.to_string());
            }
            for arg in run {
                match arg {
                    Value::Str(f) => {
                        if f.trim().contains(' ') {
                            errors.push(format!(
                                "The function \"{f}\" in state \"{name_s}\" in SLS \"{sls}\" has whitespace, a function with whitespace is not supported, perhaps this is an argument that is missing a \":\""
                            ));
                        }
                        funs.push(f.clone());
                    }
                    Value::Map(kv) => {
                        let Some((first, val)) = kv.first() else { continue };
                        let first = key_text(first);
                        if flavor == Flavor::State && first == "names" && !matches!(val, Value::Array(_)) {
                            errors.push(format!(
                                "The 'names' argument in state '{name_s}' in SLS '{sls}' needs to be formed as a list"
                            ));
                        }
                        if !REQUISITES.contains(&first.as_str()) {
                            continue;
                        }
                        match val {
                            Value::Array(list) => {
                                check_requisites(&mut errors, &mut reqs, flavor, (&name_s, &state_s, &sls), list);
                            }
                            _ => errors.push(format!(
                                "The {first} statement in state '{name_s}' in SLS '{sls}' needs to be formed as a list"
                            )),
                        }
                        // Salt checks the one-key form of requisites only.
                        if kv.len() != 1 {
                            errors.push(format!(
                                "Multiple dictionaries defined in argument of state '{name_s}' in SLS '{sls}'"
                            ));
                        }
                    }
                    _ => {}
                }
            }
            if funs.is_empty() {
                if state_s == "require" || state_s == "watch" {
                    continue;
                }
                errors.push(format!("No function declared in state '{name_s}' in SLS '{sls}'"));
            } else if funs.len() > 1 {
                errors.push(format!(
                    "Too many functions declared in state '{name_s}' in SLS '{sls}'. Please choose one of the following: {}",
                    funs.join(", ")
                ));
            }
        }
    }
    errors
}

/// An id, its state, and the (target, requisite kind) pairs it requires.
type ReqsOf = (String, String, Vec<(String, String)>);

/// One requisite list of `verify_high`: each entry a one-key map (a bare
/// string is an `id`), no dotted requisite type, a hashable target, and
/// no two states requiring each other.
fn check_requisites(
    errors: &mut Vec<String>,
    reqs: &mut Vec<ReqsOf>,
    flavor: Flavor,
    (name, state, sls): (&str, &str, &str),
    list: &[Value],
) {
    // Salt replaces the id's entry for each requisite statement.
    match reqs.iter_mut().find(|(id, _, _)| id == name) {
        Some(entry) => *entry = (name.to_string(), state.to_string(), Vec::new()),
        None => reqs.push((name.to_string(), state.to_string(), Vec::new())),
    }
    for req in list {
        let (req_key, req_val) = match req {
            Value::Str(s) => ("id".to_string(), Value::from(s.as_str())),
            Value::Map(kv) if !kv.is_empty() => (key_text(&kv[0].0), kv[0].1.clone()),
            other => {
                errors.push(format!(
                    "Requisite declaration {} in SLS {sls} is not formed as a single key dictionary",
                    repr(other)
                ));
                continue;
            }
        };
        if let Some(i) = req_key.find('.') {
            errors.push(format!(
                "Invalid requisite type '{req_key}' in state '{name}', in SLS '{sls}'. Requisite types must not contain dots, did you mean '{}'?",
                &req_key[..i]
            ));
        }
        if matches!(req_val, Value::Array(_) | Value::Map(_)) {
            errors.push(match flavor {
                Flavor::State => format!(
                    "Illegal requisite \"{}\", please check your syntax.\n",
                    to_str(&req_val)
                ),
                Flavor::Compiler => format!("Illegal requisite \"{}\", is SLS {sls}\n", to_str(&req_val)),
            });
            continue;
        }
        let target = key_text(&req_val);
        if let Some((_, _, mine)) = reqs.iter_mut().find(|(id, _, _)| id == name) {
            match mine.iter_mut().find(|(t, _)| *t == target) {
                Some(e) => e.1 = req_key.clone(),
                None => mine.push((target.clone(), req_key.clone())),
            }
        }
        let theirs = reqs.iter().find(|(id, _, _)| *id == target);
        if let Some((_, their_state, their_reqs)) = theirs {
            let back = their_reqs.iter().find(|(t, _)| t == name).map(|(_, k)| k.as_str());
            if back == Some(state) && *their_state == req_key {
                errors.push(format!(
                    "A recursive requisite was found, SLS \"{sls}\" ID \"{name}\" ID \"{target}\""
                ));
            }
        }
    }
}

/// `compile_high_data` then `order_chunks`: one chunk per (id, state,
/// name), sorted by `order` and then by state, name and function.
/// Call [`verify_high`] first: a state without exactly one function
/// gives no chunk here.
pub fn compile_high_data(high: &Value) -> Vec<Chunk> {
    compile_high_data_with(high, None)
}

/// [`compile_high_data`] for a state run: each chunk carries the
/// `__orchestration_jid__` of an orchestration.
pub fn compile_high_data_with(high: &Value, orchestration_jid: Option<&str>) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let Value::Map(ids) = high else { return chunks };
    for (name, body) in ids {
        let name_s = key_text(name);
        if name_s.starts_with("__") {
            continue;
        }
        let Value::Map(states) = body else { continue };
        for (state, run) in states {
            let state_s = key_text(state);
            if state_s.starts_with("__") {
                continue;
            }
            let Value::Array(run) = run else { continue };
            let mut chunk = Chunk(vec![
                ("state".into(), Value::from(state_s.as_str())),
                ("name".into(), name.clone()),
            ]);
            if let Some(jid) = orchestration_jid {
                chunk.set("__orchestration_jid__", Value::from(jid));
            }
            for meta in ["__sls__", "__env__", "__sls_included_from__"] {
                if let Some(v) = body.get(meta) {
                    chunk.set(meta, v.clone());
                }
            }
            chunk.set("__id__", name.clone());
            let mut funs: Vec<&str> = Vec::new();
            let mut names: Vec<Value> = Vec::new();
            for arg in run {
                match arg {
                    Value::Str(f) if !funs.contains(&f.as_str()) => funs.push(f),
                    Value::Map(kv) => {
                        for (k, v) in kv {
                            match k.as_str() {
                                Some("names") => {
                                    if let Value::Array(listed) = v {
                                        for n in listed {
                                            if !names.contains(n) {
                                                names.push(n.clone());
                                            }
                                        }
                                    }
                                }
                                // A state override is not passed down.
                                Some("state") => {}
                                // A name that is not a string falls back to the id.
                                Some("name") if !matches!(v, Value::Str(_)) => chunk.set("name", name.clone()),
                                _ => chunk.set(&key_text(k), v.clone()),
                            }
                        }
                    }
                    _ => {}
                }
            }
            let Some(fun) = funs.first().filter(|_| funs.len() == 1) else {
                continue;
            };
            if names.is_empty() {
                let mut live = chunk.clone();
                live.set("fun", Value::from(*fun));
                chunks.push(live);
            } else {
                for (i, entry) in names.iter().enumerate() {
                    let mut live = chunk.clone();
                    match entry {
                        Value::Map(kv) if !kv.is_empty() => {
                            live.set("name", kv[0].0.clone());
                            if let Value::Array(extra) = &kv[0].1 {
                                for e in extra {
                                    if let Value::Map(pairs) = e {
                                        for (k, v) in pairs {
                                            live.set(&key_text(k), v.clone());
                                        }
                                    }
                                }
                            }
                        }
                        other => live.set("name", other.clone()),
                    }
                    live.set("name_order", Value::Int(i as i64 + 1));
                    live.set("fun", Value::from(*fun));
                    chunks.push(live);
                }
            }
        }
    }
    order_chunks(chunks)
}

/// `order_chunks`: `order` numbers (`first`, `last`, negatives from the
/// end), then the text `state + name + fun`.
fn order_chunks(mut chunks: Vec<Chunk>) -> Vec<Chunk> {
    let mut cap: i64 = 1;
    for c in &chunks {
        if let Some(Value::Int(o)) = c.get("order") {
            if *o > cap - 1 && *o > 0 {
                cap = o + 100;
            }
        }
    }
    let mut keyed: Vec<(f64, String, Chunk)> = chunks
        .drain(..)
        .map(|mut c| {
            let mut order = match c.get("order") {
                None => cap as f64,
                Some(Value::Int(o)) => *o as f64,
                Some(Value::F64(o)) => *o,
                Some(Value::F32(o)) => f64::from(*o),
                Some(Value::Str(s)) if s == "last" => (cap + 1_000_000) as f64,
                Some(Value::Str(s)) if s == "first" => 0.0,
                Some(_) => cap as f64,
            };
            if let Some(n) = c.remove("name_order").and_then(|v| v.as_i64()) {
                order += n as f64 / 10000.0;
            }
            if order < 0.0 {
                order += (cap + 1_000_000) as f64;
            }
            c.set(
                "order",
                if order.fract() == 0.0 {
                    Value::Int(order as i64)
                } else {
                    Value::F64(order)
                },
            );
            let text = format!("{}{}{}", c.text("state"), c.text("name"), c.text("fun"));
            (order, text, c)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        brine_py::parse_yaml_value(s, std::path::Path::new("t.sls")).unwrap()
    }

    fn compiled(s: &str) -> Vec<Chunk> {
        let mut high = yaml(s);
        pad_funcs(&mut high);
        if let Value::Map(ids) = &mut high {
            for (_, body) in ids.iter_mut() {
                body.set("__sls__", Value::from("/srv/reactor/t.sls"));
            }
        }
        assert_eq!(verify_high(&high), Vec::<String>::new());
        compile_high_data(&high)
    }

    #[test]
    fn current_and_legacy_forms_compile_to_one_chunk_each() {
        let chunks = compiled(
            "accept:\n  wheel.key.accept:\n    - args:\n      - match: web1\nping:\n  local.test.ping:\n    - tgt: web1\nold:\n  cmd.cmd.run:\n    - tgt: '*'\n    - arg:\n      - uptime\n",
        );
        let rows: Vec<(String, String, String)> = chunks
            .iter()
            .map(|c| (c.text("state"), c.text("fun"), c.text("__id__")))
            .collect();
        // Sorted by state + name + fun, as Salt.
        assert_eq!(
            rows,
            vec![
                ("cmd".into(), "cmd.run".into(), "old".into()),
                ("local".into(), "test.ping".into(), "ping".into()),
                ("wheel".into(), "key.accept".into(), "accept".into()),
            ]
        );
        let accept = &chunks[2];
        assert_eq!(
            accept.0.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            vec!["state", "name", "__sls__", "__id__", "args", "fun", "order"]
        );
        assert_eq!(accept.get("order"), Some(&Value::Int(1)));
    }

    #[test]
    fn order_first_last_and_numbers() {
        let chunks = compiled(
            "z:\n  local.test.ping:\n    - tgt: a\n    - order: first\nm:\n  local.test.ping:\n    - tgt: a\n    - order: 5\na:\n  local.test.ping:\n    - tgt: a\n    - order: last\nb:\n  local.test.ping:\n    - tgt: a\n",
        );
        let ids: Vec<String> = chunks.iter().map(|c| c.text("__id__")).collect();
        assert_eq!(ids, vec!["z", "m", "b", "a"]);
        assert_eq!(
            chunks[2].get("order"),
            Some(&Value::Int(105)),
            "unordered chunks go to cap"
        );
    }

    #[test]
    fn names_expand_and_name_overrides() {
        let chunks = compiled("x:\n  local.test.echo:\n    - tgt: a\n    - names:\n      - one\n      - two\ny:\n  local.test.ping:\n    - name: other\n    - tgt: a\n");
        let names: Vec<String> = chunks.iter().map(|c| c.text("name")).collect();
        // `names` entries sort after a plain chunk of the same order.
        assert_eq!(names, vec!["other", "one", "two"]);
        assert_eq!(chunks[1].get("order"), Some(&Value::F64(1.0001)));
    }

    #[test]
    fn verify_high_reports_salt_errors() {
        let mut high = yaml("a:\n  local:\n    - tgt: x\nb:\n  local:\n    - test.ping\n    - cmd.run\nc: justtext\nd:\n  local.test.ping:\n    tgt: x\ne:\n  local.test.ping:\n    - tgt: x\n      arg: [1]\n");
        pad_funcs(&mut high);
        let errs = verify_high(&high);
        assert!(
            errs.iter().any(|e| e == "No function declared in state 'a' in SLS ''"),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("Too many functions declared in state 'b'")),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| e.starts_with("The type c in")), "{errs:?}");
        assert!(
            errs.iter().any(|e| e == "State 'd' in SLS '' is not formed as a list"),
            "{errs:?}"
        );
        // Salt checks the one-key form of requisite arguments only.
        assert!(
            !errs
                .iter()
                .any(|e| e.starts_with("Multiple dictionaries defined in argument of state 'e'")),
            "{errs:?}"
        );
        let mut high = yaml("f:\n  test.nop:\n    - require:\n      - test: g\n      x: 1\ng:\n  test.nop:\n    - require:\n      - test: f\n");
        pad_funcs(&mut high);
        let errs = verify_high_as(&high, Flavor::State);
        assert!(
            errs.iter()
                .any(|e| e == "Multiple dictionaries defined in argument of state 'f' in SLS ''"),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e == "A recursive requisite was found, SLS \"\" ID \"g\" ID \"f\""),
            "{errs:?}"
        );
    }

    #[test]
    fn pad_funcs_keeps_the_first_dotted_key_of_a_state() {
        let mut high =
            yaml("x:\n  local.test.ping:\n    - tgt: a\n  local.cmd.run:\n    - tgt: b\ny: runner.jobs.list_jobs\n");
        pad_funcs(&mut high);
        let x = high.get("x").unwrap();
        // Sorted keys: local.cmd.run is padded, local.test.ping skipped.
        assert_eq!(
            x.get("local"),
            Some(&Value::Array(vec![
                Value::map([("tgt", Value::from("b"))]),
                Value::from("cmd.run")
            ]))
        );
        assert!(x.get("local.test.ping").is_some());
        assert_eq!(
            high.get("y"),
            Some(&Value::map([(
                "runner",
                Value::Array(vec![Value::from("jobs.list_jobs")])
            )]))
        );
    }
}
