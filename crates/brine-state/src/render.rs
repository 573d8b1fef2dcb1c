//! Salt's `HighState` rendering (`BaseHighState.render_highstate` and
//! `render_state`): each SLS of `mods` found in the master's `file_roots`
//! (`name.sls`, then `name/init.sls`), rendered with the master's renderer
//! pipe (brine-pillar's `compile_template`) and `pillar`, `grains`,
//! `opts`, `saltenv`, `sls` in the template context; `include:` (other
//! saltenvs, relative `.name`, globs), `extend:`, `exclude:`, the short
//! `id: state.fun` form, `__sls__`/`__env__` on every body, and the
//! `state_auto_order` numbering.

use std::path::PathBuf;

use brine_config::{MasterConfig, Value as Json};
use brine_fileserver::{Fileserver, Form};
use brine_log::critical;
use brine_pillar::jinja::JinjaShared;
use brine_pillar::render::compile_template;
use brine_proto::Value;
use brine_py::{fnmatch, to_str};
use log::error;

/// Includes nest at most this deep (each `env:sls` renders once anyway;
/// this bounds the recursion on what the files say).
const MAX_INCLUDE_DEPTH: usize = 64;

/// The rendering side of a state run.
pub struct HighState {
    shared: JinjaShared,
    files: Fileserver,
    /// Salt's `avail`: each saltenv with the SLS names it serves.
    avail: Vec<(String, Vec<String>)>,
    /// `state_auto_order`: states without `order` are numbered in the
    /// order they are rendered, from 10000 on (so a small explicit
    /// `order` runs first).
    auto_order: bool,
    iorder: i64,
}

/// The `matches` of a render: saltenv → the mods asked for.
type Matches = [(String, Vec<String>)];

fn get<'a>(m: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    m.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

fn get_mut<'a>(m: &'a mut [(Value, Value)], key: &str) -> Option<&'a mut Value> {
    m.iter_mut().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

fn pop(m: &mut Vec<(Value, Value)>, key: &str) -> Option<Value> {
    let i = m.iter().position(|(k, _)| k.as_str() == Some(key))?;
    Some(m.remove(i).1)
}

/// `dict.update`: replace a key's value in place, or add it at the end.
fn update(m: &mut Vec<(Value, Value)>, key: Value, v: Value) {
    match m.iter_mut().find(|(k, _)| *k == key) {
        Some((_, old)) => *old = v,
        None => m.push((key, v)),
    }
}

impl HighState {
    /// A renderer for `cfg` with the templates' `pillar`.
    pub fn new(cfg: &MasterConfig, pillar: Value) -> HighState {
        let roots = brine_fileserver::file_root_paths(cfg);
        let shared = JinjaShared::new(
            Json::Object(cfg.raw.clone()),
            Value::Map(Vec::new()),
            pillar.clone(),
            pillar,
            roots,
        );
        let mut files = Fileserver::new(cfg);
        let mut envs = files.envs();
        if !envs.iter().any(|e| e == "base") {
            envs.insert(0, "base".into());
        }
        let avail = envs
            .into_iter()
            .map(|env| {
                let states = list_states(&mut files, &env);
                (env, states)
            })
            .collect();
        HighState {
            shared,
            files,
            avail,
            auto_order: cfg.get_bool("state_auto_order").unwrap_or(true),
            iorder: 10000,
        }
    }

    fn avail(&self, env: &str) -> Option<&[String]> {
        self.avail.iter().find(|(e, _)| e == env).map(|(_, s)| s.as_slice())
    }

    /// `render_highstate({saltenv: mods})`: the merged high data and the
    /// errors.
    pub fn render_highstate(&mut self, saltenv: &str, mods: &[String]) -> (Value, Vec<String>) {
        let matches = vec![(saltenv.to_string(), mods.to_vec())];
        let mut high: Vec<(Value, Value)> = Vec::new();
        let mut all_errors = Vec::new();
        let mut done: Vec<String> = Vec::new();
        for sls_match in mods {
            let mut statefiles: Vec<String> = match self.avail(saltenv).or_else(|| self.avail("__env__")) {
                Some(avail) => avail.iter().filter(|s| fnmatch(s, sls_match)).cloned().collect(),
                None => {
                    all_errors.push(format!(
                        "No matching salt environment for environment '{saltenv}' found"
                    ));
                    Vec::new()
                }
            };
            if statefiles.is_empty() {
                statefiles.push(sls_match.clone());
            }
            for sls in statefiles {
                if done.contains(&format!("{saltenv}:{sls}")) {
                    continue;
                }
                let (state, mut errors) = self.render_state(&sls, saltenv, &mut done, &matches, 0);
                if let Value::Map(state) = state {
                    if !state.is_empty() {
                        merge_included_states(&mut high, state, &mut errors);
                    }
                }
                let this_sls = format!("SLS {sls_match} in saltenv");
                for e in errors.iter_mut() {
                    if e.contains("is not available") && e.contains(&this_sls) {
                        *e = format!("No matching sls found for '{sls_match}' in env '{saltenv}'");
                    }
                }
                all_errors.extend(errors);
            }
        }
        clean_duplicate_extends(&mut high);
        (Value::Map(high), all_errors)
    }

    /// Salt's `fileclient.get_state`: `sls/name.sls`, then `sls/name/init.sls`.
    fn get_state(&mut self, sls: &str, saltenv: &str) -> Option<(String, PathBuf)> {
        let base = sls.replace('.', "/");
        for rel in [format!("{base}.sls"), format!("{base}/init.sls")] {
            let load = Value::map([("path", Value::from(rel.as_str())), ("saltenv", Value::from(saltenv))]);
            let found = self.files.file_find("state", &load).ok()?;
            if let Some(p) = found.get("path").and_then(Value::as_str).filter(|p| !p.is_empty()) {
                return Some((rel, PathBuf::from(p)));
            }
        }
        None
    }

    /// `render_state`: one SLS and what it includes.
    fn render_state(
        &mut self,
        sls: &str,
        saltenv: &str,
        mods: &mut Vec<String>,
        matches: &Matches,
        depth: usize,
    ) -> (Value, Vec<String>) {
        let mut errors = Vec::new();
        let Some((source, path)) = self.get_state(sls, saltenv) else {
            errors.push(format!(
                "Specified SLS {sls} in saltenv {saltenv} is not available on the salt master or through a configured fileserver"
            ));
            return (Value::Map(Vec::new()), errors);
        };
        let rendered = compile_template(&self.shared, &path, saltenv, sls, &Vec::new());
        mods.push(format!("{saltenv}:{sls}"));
        let state = match rendered {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("Rendering SLS '{saltenv}:{sls}' failed: {e}");
                critical!("{msg}");
                errors.push(msg);
                return (Value::Map(Vec::new()), errors);
            }
        };
        if !brine_py::truthy(&state) {
            return (Value::Map(Vec::new()), errors);
        }
        let Value::Map(mut state) = state else {
            errors.push(format!("SLS {sls} does not render to a dictionary"));
            return (Value::Map(Vec::new()), errors);
        };
        let mut include = Vec::new();
        if let Some(inc) = get(&state, "include") {
            match inc {
                Value::Array(_) => {
                    if let Some(Value::Array(inc)) = pop(&mut state, "include") {
                        include = inc;
                    }
                }
                _ => errors.push(format!("Include Declaration in SLS {sls} is not formed as a list")),
            }
        }
        handle_extend(&mut state, sls, saltenv, &mut errors);
        handle_exclude(&mut state, sls, &mut errors);
        handle_state_decls(&mut state, sls, saltenv, &mut errors);

        for inc in include {
            let (env_key, inc_sls) = match inc {
                Value::Map(mut kv) if !kv.is_empty() => {
                    // `dict.popitem()`: the last pair.
                    let (k, v) = kv.pop().unwrap_or((Value::Nil, Value::Nil));
                    (to_str(&k), to_str(&v))
                }
                other => (saltenv.to_string(), to_str(&other)),
            };
            if self.avail(&env_key).is_none() && self.avail("__env__").is_none() {
                let msg = format!(
                    "Nonexistent saltenv '{env_key}' found in include of '{inc_sls}' within SLS '{saltenv}:{sls}'"
                );
                error!("{msg}");
                errors.push(msg);
                continue;
            }
            let mut inc_sls = inc_sls;
            if inc_sls.starts_with('.') {
                let levels = inc_sls.len() - inc_sls.trim_start_matches('.').len();
                let rest = inc_sls[levels..].to_string();
                let mut comps: Vec<String> = sls.split('.').map(String::from).collect();
                if source.ends_with("/init.sls") {
                    comps.push("init".into());
                }
                if levels > comps.len() {
                    let msg = format!(
                        "Attempted relative include of '{inc_sls}' within SLS '{saltenv}:{sls}' goes beyond top level package "
                    );
                    error!("{msg}");
                    errors.push(msg);
                    continue;
                }
                comps.truncate(comps.len() - levels);
                comps.push(rest);
                inc_sls = comps.join(".");
            }
            let resolved = if env_key != "_xenv" {
                let listed = self
                    .avail(&env_key)
                    .is_some_and(|a| a.iter().any(|s| fnmatch(s, &inc_sls)));
                if matches.iter().any(|(e, _)| *e == env_key) || listed {
                    vec![env_key.clone()]
                } else {
                    Vec::new()
                }
            } else {
                matches
                    .iter()
                    .filter(|(e, _)| self.avail(e).is_some_and(|a| a.iter().any(|s| fnmatch(s, &inc_sls))))
                    .map(|(e, _)| e.clone())
                    .collect()
            };
            if resolved.len() == 1 || resolved.iter().any(|e| e == saltenv) {
                let mut targets: Vec<String> = self
                    .avail(saltenv)
                    .map(|a| a.iter().filter(|s| fnmatch(s, &inc_sls)).cloned().collect())
                    .unwrap_or_default();
                if targets.is_empty() {
                    targets.push(inc_sls.clone());
                }
                for target in targets {
                    let r_env = if resolved.len() == 1 {
                        resolved[0].clone()
                    } else {
                        saltenv.to_string()
                    };
                    if mods.contains(&format!("{r_env}:{target}")) {
                        continue;
                    }
                    if depth >= MAX_INCLUDE_DEPTH {
                        errors.push(format!(
                            "Include of '{target}' within SLS '{saltenv}:{sls}' nests more than {MAX_INCLUDE_DEPTH} SLS deep"
                        ));
                        continue;
                    }
                    let (nstate, err) = self.render_state(&target, &r_env, mods, matches, depth + 1);
                    if let Value::Map(mut nstate) = nstate {
                        if !nstate.is_empty() {
                            for (id, body) in nstate.iter_mut() {
                                if to_str(id).starts_with("__") {
                                    continue;
                                }
                                if let Value::Map(b) = body {
                                    match get_mut(b, "__sls_included_from__") {
                                        Some(Value::Array(from)) => from.push(Value::from(sls)),
                                        _ => b.push((
                                            Value::from("__sls_included_from__"),
                                            Value::Array(vec![Value::from(sls)]),
                                        )),
                                    }
                                }
                            }
                            merge_included_states(&mut state, nstate, &mut errors);
                        }
                    }
                    errors.extend(err);
                }
            } else {
                let msg = if resolved.is_empty() {
                    let envs = if env_key == "_xenv" {
                        matches.iter().map(|(e, _)| e.as_str()).collect::<Vec<_>>().join(", ")
                    } else {
                        env_key.clone()
                    };
                    format!(
                        "Unknown include: Specified SLS {env_key}: {inc_sls} is not available on the salt master in saltenv(s): {envs} "
                    )
                } else {
                    format!(
                        "Ambiguous include: Specified SLS {env_key}: {inc_sls} is available on the salt master in multiple available saltenvs: {}",
                        resolved.join(", ")
                    )
                };
                critical!("{msg}");
                errors.push(msg);
            }
        }
        self.handle_iorder(&mut state);
        (Value::Map(state), errors)
    }

    /// `_handle_iorder`: with `state_auto_order`, each state declaration
    /// without an `order` argument gets the next number.
    fn handle_iorder(&mut self, state: &mut [(Value, Value)]) {
        if !self.auto_order {
            return;
        }
        for (_, body) in state.iter_mut() {
            let Value::Map(decls) = body else { continue };
            for (s_dec, args) in decls.iter_mut() {
                let Some(s_dec) = s_dec.as_str() else { continue };
                if s_dec.starts_with('_') {
                    continue;
                }
                let Value::Array(args) = args else { continue };
                let has_order = args.iter().any(|a| match a {
                    Value::Map(kv) => kv.first().is_some_and(|(k, _)| k.as_str() == Some("order")),
                    _ => false,
                });
                if !has_order {
                    args.push(Value::map([("order", Value::Int(self.iorder))]));
                    self.iorder += 1;
                }
            }
        }
    }
}

/// Salt's `list_states`: the SLS names of a saltenv's files.
fn list_states(files: &mut Fileserver, env: &str) -> Vec<String> {
    let load = Value::map([("saltenv", Value::from(env))]);
    let Ok(Value::Array(list)) = files.file_list("state", &load, Form::Files) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for f in list.iter().filter_map(Value::as_str) {
        let dotted = f.replace('/', ".");
        let name = if f.ends_with("/init.sls") {
            dotted[..dotted.len() - 9].to_string()
        } else if let Some(s) = dotted.strip_suffix(".sls") {
            s.to_string()
        } else {
            continue;
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// `merge_included_states`: `__extend__` and `__exclude__` accumulate;
/// an id defined differently twice is an error; then `dict.update`.
fn merge_included_states(high: &mut Vec<(Value, Value)>, mut state: Vec<(Value, Value)>, errors: &mut Vec<String>) {
    for key in ["__extend__", "__exclude__"] {
        if let Some(Value::Array(items)) = pop(&mut state, key) {
            match get_mut(high, key) {
                Some(Value::Array(have)) => have.extend(items),
                _ => high.push((Value::from(key), Value::Array(items))),
            }
        }
    }
    for (id, body) in &state {
        if let Some((_, have)) = high.iter().find(|(k, _)| k == id) {
            if have != body {
                let meta = |b: &Value, k: &str| b.get(k).map(to_str).unwrap_or_else(|| "None".into());
                errors.push(format!(
                    "Detected conflicting IDs, SLS IDs need to be globally unique.\n    The conflicting ID is '{}' and is found in SLS '{}:{}' and SLS '{}:{}'",
                    to_str(id),
                    meta(have, "__env__"),
                    meta(have, "__sls__"),
                    meta(body, "__env__"),
                    meta(body, "__sls__"),
                ));
            }
        }
    }
    for (id, body) in state {
        update(high, id, body);
    }
}

/// `clean_duplicate_extends`: each (id, body) of `__extend__` once.
fn clean_duplicate_extends(high: &mut [(Value, Value)]) {
    let Some(Value::Array(ext)) = get_mut(high, "__extend__") else {
        return;
    };
    let mut seen: Vec<(Value, Value)> = Vec::new();
    for item in ext.iter() {
        if let Value::Map(kv) = item {
            for pair in kv {
                if !seen.contains(pair) {
                    seen.push(pair.clone());
                }
            }
        }
    }
    *ext = seen.into_iter().map(|(k, v)| Value::Map(vec![(k, v)])).collect();
}

/// `_handle_extend`: the `extend:` map, its bodies marked with the SLS
/// and their `state.fun` keys split, goes to `__extend__`.
fn handle_extend(state: &mut Vec<(Value, Value)>, sls: &str, saltenv: &str, errors: &mut Vec<String>) {
    let Some(ext) = pop(state, "extend") else { return };
    let Value::Map(mut ext) = ext else {
        errors.push(format!("Extension value in SLS '{sls}' is not a dictionary"));
        return;
    };
    for (name, body) in ext.iter_mut() {
        let Value::Map(b) = body else {
            errors.push(format!(
                "Extension name '{}' in SLS '{sls}' is not a dictionary",
                to_str(name)
            ));
            continue;
        };
        if get(b, "__sls__").is_none() {
            b.push((Value::from("__sls__"), Value::from(sls)));
        }
        if get(b, "__env__").is_none() {
            b.push((Value::from("__env__"), Value::from(saltenv)));
        }
        split_dotted_keys(b, None);
    }
    match get_mut(state, "__extend__") {
        Some(Value::Array(have)) => have.push(Value::Map(ext)),
        _ => state.push((Value::from("__extend__"), Value::Array(vec![Value::Map(ext)]))),
    }
}

/// `state.fun: [args]` → `state: [args…, fun]` (Salt takes the text
/// between the first and second dot as the function). With `dupes`, a
/// second declaration of the same state is an error naming the id.
fn split_dotted_keys(b: &mut Vec<(Value, Value)>, mut dupes: Option<(&str, &str, &mut Vec<String>)>) {
    let keys: Vec<String> = b.iter().filter_map(|(k, _)| k.as_str().map(String::from)).collect();
    let mut skeys: Vec<String> = Vec::new();
    for key in keys {
        if key.starts_with('_') {
            continue;
        }
        if !matches!(get(b, &key), Some(Value::Array(_))) {
            continue;
        }
        if key.contains('.') {
            let mut comps = key.split('.');
            let state = comps.next().unwrap_or_default().to_string();
            let fun = comps.next().unwrap_or_default().to_string();
            if let Some((name, sls, errors)) = dupes.as_mut() {
                if skeys.contains(&state) {
                    errors.push(format!(
                        "ID '{name}' in SLS '{sls}' contains multiple state declarations of the same type"
                    ));
                    continue;
                }
            }
            if let Some(Value::Array(mut args)) = pop(b, &key) {
                args.push(Value::from(fun));
                update(b, Value::from(state.as_str()), Value::Array(args));
            }
            skeys.push(state);
            continue;
        }
        skeys.push(key);
    }
}

/// `_handle_exclude`: the `exclude:` list goes to `__exclude__`.
fn handle_exclude(state: &mut Vec<(Value, Value)>, sls: &str, errors: &mut Vec<String>) {
    let Some(exc) = pop(state, "exclude") else { return };
    let items = match exc {
        Value::Array(a) => a,
        other => {
            errors.push(format!("Exclude Declaration in SLS {sls} is not formed as a list"));
            match other {
                Value::Map(kv) => kv.into_iter().map(|(k, _)| k).collect(),
                Value::Str(s) => s.chars().map(|c| Value::from(c.to_string())).collect(),
                _ => Vec::new(),
            }
        }
    };
    match get_mut(state, "__exclude__") {
        Some(Value::Array(have)) => have.extend(items),
        _ => state.push((Value::from("__exclude__"), Value::Array(items))),
    }
}

/// `_handle_state_decls`: the short `id: state.fun` form padded, dotted
/// keys split, `__sls__` and `__env__` on every body.
fn handle_state_decls(state: &mut [(Value, Value)], sls: &str, saltenv: &str, errors: &mut Vec<String>) {
    for (name, body) in state.iter_mut() {
        let name_s = to_str(name);
        if !body.is_map() {
            if name_s == "__extend__" || name_s == "__exclude__" {
                continue;
            }
            if let Value::Str(s) = body {
                if s.contains('.') {
                    let mut comps = s.split('.');
                    let st = comps.next().unwrap_or_default().to_string();
                    let fun = comps.next().unwrap_or_default().to_string();
                    *body = Value::map([
                        ("__sls__", Value::from(sls)),
                        ("__env__", Value::from(saltenv)),
                        (st.as_str(), Value::Array(vec![Value::from(fun)])),
                    ]);
                    continue;
                }
            }
            errors.push(format!("ID {name_s} in SLS {sls} is not a dictionary"));
            continue;
        }
        let Value::Map(b) = body else { continue };
        split_dotted_keys(b, Some((&name_s, sls, errors)));
        if get(b, "__sls__").is_none() {
            b.push((Value::from("__sls__"), Value::from(sls)));
        }
        if get(b, "__env__").is_none() {
            b.push((Value::from("__env__"), Value::from(saltenv)));
        }
    }
}
