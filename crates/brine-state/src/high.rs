//! Salt's `State` passes over the merged high data before compiling it:
//! `reconcile_extend` (the `extend:` declarations and the requisites the
//! `*_in` forms add), `requisite_in`, `apply_exclude`.

use brine_proto::Value;
use brine_py::{fnmatch, to_str};

/// `STATE_REQUISITE_KEYWORDS`: an extend merges these lists instead of
/// replacing them.
pub(crate) const REQUISITE_KEYWORDS: &[&str] = &[
    "onchanges",
    "onchanges_any",
    "onfail",
    "onfail_any",
    "onfail_all",
    "onfail_stop",
    "prereq",
    "prerequired",
    "watch",
    "watch_any",
    "require",
    "require_any",
    "listen",
];

type Pairs = Vec<(Value, Value)>;

fn first_key(v: &Value) -> Option<String> {
    match v {
        Value::Map(kv) => kv.first().map(|(k, _)| to_str(k)),
        _ => None,
    }
}

fn body_mut<'a>(high: &'a mut Pairs, id: &str) -> Option<&'a mut Pairs> {
    high.iter_mut()
        .find(|(k, _)| k.as_str() == Some(id))
        .and_then(|(_, v)| match v {
            Value::Map(m) => Some(m),
            _ => None,
        })
}

fn body<'a>(high: &'a Pairs, id: &str) -> Option<&'a Pairs> {
    high.iter()
        .find(|(k, _)| k.as_str() == Some(id))
        .and_then(|(_, v)| match v {
            Value::Map(m) => Some(m),
            _ => None,
        })
}

fn has_state(high: &Pairs, id: &str, state: &str) -> bool {
    body(high, id).is_some_and(|b| b.iter().any(|(k, _)| k.as_str() == Some(state)))
}

/// `find_name`: the (id, state) pairs a requisite target names: the id
/// itself, every id of an SLS, or the ids whose one-key argument equals
/// it (`name: x`).
pub fn find_name(name: &str, state: &str, high: &Pairs, strict: bool) -> Vec<(String, String)> {
    let check2 = !strict || has_state(high, name, state);
    if body(high, name).is_some() && check2 {
        return vec![(name.to_string(), state.to_string())];
    }
    let mut out = Vec::new();
    if state == "sls" {
        for (nid, item) in high {
            if item.get("__sls__").map(to_str).as_deref() == Some(name) {
                if let Value::Map(kv) = item {
                    if let Some((k, _)) = kv.first() {
                        out.push((to_str(nid), to_str(k)));
                    }
                }
            }
        }
        return out;
    }
    for (nid, item) in high {
        let Value::Map(kv) = item else { continue };
        let Some((_, Value::Array(args))) = kv.iter().find(|(k, _)| k.as_str() == Some(state)) else {
            continue;
        };
        for arg in args {
            if let Value::Map(a) = arg {
                if a.len() == 1 && to_str(&a[0].1) == name && matches!(a[0].1, Value::Str(_)) {
                    out.push((to_str(nid), state.to_string()));
                }
            }
        }
    }
    out
}

/// `find_sls_ids`: every (id, state) of an SLS.
fn find_sls_ids(sls: &str, high: &Pairs) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (nid, item) in high {
        let Value::Map(kv) = item else { continue };
        if item.get("__sls__").map(to_str).as_deref() == Some(sls) {
            for (k, _) in kv {
                let k = to_str(k);
                if !k.starts_with("__") {
                    out.push((to_str(nid), k));
                }
            }
        }
    }
    out
}

/// `reconcile_extend`: apply `__extend__` to the high data.
pub fn reconcile_extend(high: &mut Pairs, strict: bool) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(i) = high.iter().position(|(k, _)| k.as_str() == Some("__extend__")) else {
        return errors;
    };
    let (_, ext) = high.remove(i);
    let Value::Array(ext) = ext else { return errors };
    let sls_excludes: Vec<String> = match high.iter().find(|(k, _)| k.as_str() == Some("__exclude__")) {
        Some((_, Value::Array(ex))) => ex
            .iter()
            .filter_map(|e| match e {
                Value::Str(s) => Some(s.clone()),
                Value::Map(_) => e.get("sls").map(to_str),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    for chunk in ext {
        let Value::Map(chunk) = chunk else { continue };
        for (name, body_v) in chunk {
            let mut name = to_str(&name);
            let Value::Map(ebody) = &body_v else { continue };
            let Some(state_type) = ebody.iter().map(|(k, _)| to_str(k)).find(|k| !k.starts_with("__")) else {
                continue;
            };
            if !has_state(high, &name, &state_type) {
                let ids = find_name(&name, &state_type, high, strict);
                if ids.len() != 1 {
                    let meta = |k: &str| body_v.get(k).map(to_str).unwrap_or_else(|| "base".into());
                    errors.push(format!(
                        "Cannot extend ID '{name}' in '{}:{}'. It is not part of the high state.\nThis is likely due to a missing include statement or an incorrectly typed ID.\nEnsure that a state with an ID of '{name}' is available\nin environment '{}' and to SLS '{}'",
                        meta("__env__"),
                        meta("__sls__"),
                        meta("__env__"),
                        meta("__sls__"),
                    ));
                    continue;
                }
                name = ids[0].0.clone();
            }
            if body_v.get("__sls__").is_some_and(|s| sls_excludes.contains(&to_str(s))) {
                continue;
            }
            let Some(target) = body_mut(high, &name) else { continue };
            for (state, run) in ebody {
                let state_s = to_str(state);
                if state_s.starts_with("__") {
                    continue;
                }
                let Some((_, have)) = target.iter_mut().find(|(k, _)| *k == *state) else {
                    target.push((state.clone(), run.clone()));
                    continue;
                };
                let (Value::Array(have), Value::Array(run)) = (have, run) else {
                    continue;
                };
                for arg in run {
                    let mut updated = false;
                    for slot in have.iter_mut() {
                        match (arg, &*slot) {
                            (Value::Str(_), Value::Str(_)) => {
                                // Replacing the function.
                                *slot = arg.clone();
                                updated = true;
                            }
                            (Value::Map(_), Value::Map(_)) => {
                                let argfirst = first_key(arg).unwrap_or_default();
                                let hfirst = first_key(slot).unwrap_or_default();
                                if argfirst == hfirst {
                                    if REQUISITE_KEYWORDS.contains(&argfirst.as_str()) {
                                        if let (Value::Map(h), Some(Value::Array(add))) =
                                            (&mut *slot, arg.get(&argfirst))
                                        {
                                            if let Some((_, Value::Array(list))) = h.first_mut() {
                                                list.extend(add.iter().cloned());
                                            }
                                        }
                                    } else {
                                        *slot = arg.clone();
                                    }
                                    updated = true;
                                }
                                if argfirst == "name" && hfirst == "names" {
                                    *slot = arg.clone();
                                }
                            }
                            _ => {}
                        }
                    }
                    if !updated {
                        have.push(arg.clone());
                    }
                }
            }
        }
    }
    errors
}

/// `apply_exclude`: drop the ids of excluded SLS (globs) and ids.
pub fn apply_exclude(high: &mut Pairs) {
    let Some(i) = high.iter().position(|(k, _)| k.as_str() == Some("__exclude__")) else {
        return;
    };
    let (_, exclude) = high.remove(i);
    let Value::Array(exclude) = exclude else { return };
    let mut ex_sls = Vec::new();
    let mut ex_id = Vec::new();
    for exc in exclude {
        match &exc {
            Value::Str(s) => ex_sls.push(s.clone()),
            Value::Map(kv) if kv.len() == 1 => match kv[0].0.as_str() {
                Some("sls") => ex_sls.push(to_str(&kv[0].1)),
                Some("id") => ex_id.push(to_str(&kv[0].1)),
                _ => {}
            },
            _ => {}
        }
    }
    for (name, body) in high.iter() {
        let name = to_str(name);
        if name.starts_with("__") {
            continue;
        }
        let sls = body.get("__sls__").map(to_str).unwrap_or_default();
        if !sls.is_empty() && ex_sls.iter().any(|p| fnmatch(&sls, p)) {
            ex_id.push(name);
        }
    }
    high.retain(|(k, _)| !ex_id.contains(&to_str(k)));
}

/// One `extend` entry being built by `requisite_in`: id → [(state, args)]
/// plus its `__env__`/`__sls__`.
#[derive(Default)]
struct Extend(Vec<(String, Pairs)>);

impl Extend {
    fn entry(&mut self, id: &str) -> &mut Pairs {
        if let Some(i) = self.0.iter().position(|(k, _)| k == id) {
            return &mut self.0[i].1;
        }
        self.0.push((id.to_string(), Vec::new()));
        &mut self.0.last_mut().expect("just pushed").1
    }

    fn list<'a>(entry: &'a mut Pairs, state: &str) -> &'a mut Vec<Value> {
        let i = match entry.iter().position(|(k, _)| k.as_str() == Some(state)) {
            Some(i) => i,
            None => {
                entry.push((Value::from(state), Value::Array(Vec::new())));
                entry.len() - 1
            }
        };
        match &mut entry[i].1 {
            Value::Array(a) => a,
            other => {
                *other = Value::Array(Vec::new());
                let Value::Array(a) = other else { unreachable!() };
                a
            }
        }
    }

    /// `{rkey: [{state: id}]}` added to `name`'s `_state`, or appended to
    /// the list already there.
    fn add_req(&mut self, name: &str, req_state: &str, rkey: &str, state: &str, id: &str, body: &Value) {
        let entry = self.entry(name);
        Extend::list(entry, req_state);
        for meta in ["__env__", "__sls__"] {
            let v = body.get(meta).cloned().unwrap_or(Value::Nil);
            match entry.iter_mut().find(|(k, _)| k.as_str() == Some(meta)) {
                Some((_, old)) => *old = v,
                None => entry.push((Value::from(meta), v)),
            }
        }
        let list = Extend::list(entry, req_state);
        let item = Value::map([(state, Value::from(id))]);
        let mut found = false;
        for e in list.iter_mut() {
            if first_key(e).as_deref() == Some(rkey) {
                if let Value::Map(kv) = e {
                    if let Some((_, Value::Array(l))) = kv.first_mut() {
                        l.push(item.clone());
                    }
                }
                found = true;
            }
        }
        if !found {
            list.push(Value::map([(rkey, Value::Array(vec![item]))]));
        }
    }
}

/// `requisite_in`: `require_in`, `watch_in`, `onfail_in`,
/// `onchanges_in`, `prereq_in` and `prereq` become requisites (or
/// `prerequired`) on the states they name, through `reconcile_extend`.
/// (`use`/`use_in` are not supported.)
pub fn requisite_in(high: &mut Pairs) -> Vec<String> {
    const REQ_IN: &[&str] = &[
        "require_in",
        "watch_in",
        "onfail_in",
        "onchanges_in",
        "prereq",
        "prereq_in",
    ];
    let mut errors = Vec::new();
    let mut extend = Extend::default();
    let snapshot = high.clone();
    for (id, body) in &snapshot {
        let id = to_str(id);
        let Value::Map(states) = body else { continue };
        for (state, run) in states {
            let state = to_str(state);
            if state.starts_with("__") {
                continue;
            }
            let Value::Array(run) = run else { continue };
            for arg in run {
                let Value::Map(kv) = arg else { continue };
                let Some((key, items)) = kv.first() else { continue };
                let key = to_str(key);
                if !REQ_IN.contains(&key.as_str()) {
                    continue;
                }
                let rkey = key.split('_').next().unwrap_or_default().to_string();
                let sls = body.get("__sls__").map(to_str).unwrap_or_default();
                let dots = |errors: &mut Vec<String>, st: &str, name: &str| {
                    if let Some(i) = st.find('.') {
                        errors.push(format!(
                            "Invalid requisite in {rkey}: {st} for {name}, in SLS '{sls}'. Requisites must not contain dots, did you mean '{}'?",
                            &st[..i]
                        ));
                    }
                };
                match items {
                    Value::Map(single) => {
                        for (st, name) in single {
                            let (st, name) = (to_str(st), to_str(name));
                            dots(&mut errors, &st, &name);
                            let st = st.split('.').next().unwrap_or_default().to_string();
                            extend.add_req(&name, &st, &rkey, &state, &id, body);
                        }
                    }
                    Value::Array(list) => {
                        let mut hinges: Vec<(String, String)> = Vec::new();
                        for ind in list {
                            let ind = match ind {
                                Value::Map(m) if !m.is_empty() => (to_str(&m[0].0), to_str(&m[0].1)),
                                Value::Map(_) => continue,
                                other => {
                                    // A bare id, or a `name:` of some state.
                                    let target = to_str(other);
                                    if let Some(b) = body_of(&snapshot, &target) {
                                        match b.iter().map(|(k, _)| to_str(k)).find(|k| !k.starts_with("__")) {
                                            Some(st) => (st, target),
                                            None => continue,
                                        }
                                    } else {
                                        match find_by_name(&snapshot, &target) {
                                            Some(found) => found,
                                            None => continue,
                                        }
                                    }
                                }
                            };
                            let (pstate, pname) = ind;
                            if pstate == "sls" {
                                hinges = find_sls_ids(&pname, &snapshot);
                            } else {
                                hinges.push((pname.clone(), pstate.clone()));
                            }
                            dots(&mut errors, &pstate, &pname);
                            for (name, req_state) in hinges.clone() {
                                if key == "prereq_in" {
                                    let entry = extend.entry(&id);
                                    Extend::list(entry, &state).push(Value::map([(
                                        "prerequired",
                                        Value::Array(vec![Value::map([(
                                            req_state.as_str(),
                                            Value::from(name.as_str()),
                                        )])]),
                                    )]));
                                }
                                if key == "prereq" {
                                    for (ext_id, ext_state) in find_name(&name, &req_state, &snapshot, true) {
                                        let entry = extend.entry(&ext_id);
                                        Extend::list(entry, &ext_state).push(Value::map([(
                                            "prerequired",
                                            Value::Array(vec![Value::map([(
                                                state.as_str(),
                                                Value::from(id.as_str()),
                                            )])]),
                                        )]));
                                    }
                                    continue;
                                }
                                extend.add_req(&name, &req_state, &rkey, &state, &id, body);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let ext: Vec<Value> = extend
        .0
        .into_iter()
        .map(|(k, v)| Value::Map(vec![(Value::from(k), Value::Map(v))]))
        .collect();
    high.push((Value::from("__extend__"), Value::Array(ext)));
    errors.extend(reconcile_extend(high, true));
    errors
}

fn body_of<'a>(high: &'a Pairs, id: &str) -> Option<&'a Pairs> {
    body(high, id)
}

/// The (state, id) of the state whose `name:` argument is `name`.
fn find_by_name(high: &Pairs, name: &str) -> Option<(String, String)> {
    let mut found = None;
    for (id, b) in high {
        let Value::Map(states) = b else { continue };
        for (st, args) in states {
            let st = to_str(st);
            if st.starts_with("__") {
                continue;
            }
            let Value::Array(args) = args else { continue };
            for a in args {
                if a.get("name").is_some_and(|n| to_str(n) == name) {
                    found = Some((st.clone(), to_str(id)));
                }
            }
        }
    }
    found
}
