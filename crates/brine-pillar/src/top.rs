//! The top file: Salt's `Pillar.get_tops`, `merge_tops`, `get_top` and
//! `top_matches` (which SLS each pillar environment gives this minion).

use super::*;

impl<'a> Pillar<'a> {
    /// `get_tops`: each environment's rendered top file, and its includes.
    fn get_tops(&self) -> (Vec<(String, Vec<Value>)>, Vec<String>) {
        let mut tops: Vec<(String, Vec<Value>)> = Vec::new();
        let mut errors = Vec::new();
        let push =
            |tops: &mut Vec<(String, Vec<Value>)>, env: &str, v: Value| match tops.iter_mut().find(|(e, _)| e == env) {
                Some((_, l)) => l.push(v),
                None => tops.push((env.to_string(), vec![v])),
            };
        let saltenvs: Vec<String> = match self.pillarenv() {
            Some(p) => {
                if self.roots.iter().any(|(k, _)| k == p) {
                    vec![p.to_string()]
                } else {
                    let names: Vec<&str> = self.roots.iter().map(|(k, _)| k.as_str()).collect();
                    debug!(
                        "pillarenv '{p}' not found in the configured pillar environments ({})",
                        names.join(", ")
                    );
                    Vec::new()
                }
            }
            None => {
                let mut all = envs(&self.roots);
                if opt_str(&self.opts, "pillar_source_merging_strategy") == Some("none") {
                    let only = self.req.saltenv.filter(|s| !s.is_empty()).unwrap_or("base");
                    all.retain(|e| e == only);
                }
                all
            }
        };
        let state_top = opt_str(&self.opts, "state_top").unwrap_or("salt://top.sls");
        let rel = state_top.strip_prefix("salt://").unwrap_or(state_top).to_string();
        for env in &saltenvs {
            let Some(path) = self.find_file(env, &rel) else {
                continue;
            };
            match render::compile_template(&self.shared, &path, env, "", &Vec::new()) {
                Ok(v) => push(&mut tops, env, v),
                Err(e) => {
                    errors.push(format!("Rendering Primary Top file failed, render error:\n{e}"));
                    error!("Pillar rendering failed for minion {}", self.req.id);
                    // Salt's try covers the whole loop.
                    break;
                }
            }
        }
        // One level of top-file includes.
        let mut include: Vec<(String, Vec<String>)> = Vec::new();
        for (env, ctops) in tops.iter_mut() {
            for ctop in ctops.iter_mut() {
                let Value::Map(m) = ctop else { continue };
                let Some(inc) = dict::remove(m, &Value::from("include")) else {
                    continue;
                };
                let names: Vec<String> = match inc {
                    Value::Array(a) => a.iter().map(py_text).collect(),
                    Value::Str(s) => s.chars().map(String::from).collect(),
                    Value::Map(o) => o.iter().map(|(k, _)| py_text(k)).collect(),
                    _ => Vec::new(),
                };
                match include.iter_mut().find(|(e, _)| e == env) {
                    Some((_, l)) => l.extend(names),
                    None => include.push((env.clone(), names)),
                }
            }
        }
        for (env, states) in include {
            let mut done: Vec<String> = Vec::new();
            for sls in states {
                if done.contains(&sls) {
                    continue;
                }
                match self.get_state(&sls, &env) {
                    Some((path, _)) => match render::compile_template(&self.shared, &path, &env, "", &Vec::new()) {
                        Ok(v) => push(&mut tops, &env, v),
                        Err(e) => errors.push(format!("Rendering Top file {sls} failed, render error:\n{e}")),
                    },
                    None => {
                        error!("Template was specified incorrectly: False");
                        push(&mut tops, &env, Value::Map(Vec::new()));
                    }
                }
                done.push(sls);
            }
        }
        (tops, errors)
    }

    /// `merge_tops` + `sort_top_targets`; `Err` where Salt's would raise
    /// (a malformed top file).
    fn merge_tops(&mut self, tops: &[(String, Vec<Value>)]) -> Result<Top, ()> {
        let mut top: Top = Vec::new();
        // Each target's `order`, by environment and position in `top`.
        let mut orders: HashMap<(String, usize), i64> = HashMap::new();
        for (_, ctops) in tops {
            for ctop in ctops {
                let Value::Map(ctop) = ctop else { return Err(()) };
                for (saltenv, targets) in ctop {
                    if saltenv.as_str() == Some("include") {
                        continue;
                    }
                    let saltenv = py_text(saltenv);
                    let Value::Map(targets) = targets else { return Err(()) };
                    for (tgt, comps) in targets {
                        let comps: Vec<Value> = match comps {
                            Value::Array(a) => a.clone(),
                            Value::Str(s) => s.chars().map(|c| Value::from(c.to_string())).collect(),
                            Value::Map(o) => o.iter().map(|(k, _)| k.clone()).collect(),
                            _ => return Err(()),
                        };
                        let mut matches = Vec::new();
                        let mut states: Vec<String> = Vec::new();
                        let mut order = 0;
                        let mut ignore_missing = false;
                        for comp in comps {
                            match comp {
                                Value::Map(d) => {
                                    if let Some(o) = dict::get_str(&d, "order") {
                                        order = order_of(o);
                                    }
                                    if dict::get_str(&d, "ignore_missing").is_some_and(brine_py::truthy) {
                                        ignore_missing = true;
                                    }
                                    if dict::get_str(&d, "match").is_some() {
                                        matches.push(TopItem::Dict(d));
                                    }
                                }
                                Value::Str(s) if !states.contains(&s) => states.push(s),
                                _ => {}
                            }
                        }
                        if ignore_missing {
                            self.ignored
                                .entry(saltenv.clone())
                                .or_default()
                                .extend(states.iter().cloned());
                        }
                        let mut items = matches;
                        items.extend(states.into_iter().map(TopItem::Sls));
                        let env_body = match top.iter_mut().position(|(e, _)| *e == saltenv) {
                            Some(i) => &mut top[i].1,
                            None => {
                                top.push((saltenv.clone(), Vec::new()));
                                &mut top.last_mut().expect("pushed").1
                            }
                        };
                        let at = match env_body.iter().position(|(t, _)| dict::same_key(t, tgt)) {
                            Some(i) => {
                                env_body[i].1 = items;
                                i
                            }
                            None => {
                                env_body.push((tgt.clone(), items));
                                env_body.len() - 1
                            }
                        };
                        orders.insert((saltenv.clone(), at), order);
                    }
                }
            }
        }
        for (env, body) in top.iter_mut() {
            let mut keyed: Vec<(i64, (Value, Vec<TopItem>))> = std::mem::take(body)
                .into_iter()
                .enumerate()
                .map(|(i, t)| (orders.get(&(env.clone(), i)).copied().unwrap_or(0), t))
                .collect();
            keyed.sort_by_key(|(o, _)| *o);
            *body = keyed.into_iter().map(|(_, t)| t).collect();
        }
        Ok(top)
    }

    /// `get_top`.
    pub(crate) fn get_top(&mut self) -> (Top, Vec<String>) {
        let (tops, mut errors) = self.get_tops();
        match self.merge_tops(&tops) {
            Ok(t) => (t, errors),
            Err(()) => {
                errors.push("Error encountered while rendering pillar top file.".into());
                (Vec::new(), errors)
            }
        }
    }

    /// `confirm_top`: the last `match:` names the matcher (`compound`
    /// when none does).
    fn confirm_top(&self, tgt: &Value, data: &[TopItem]) -> bool {
        let mut matcher = Value::from("compound");
        for item in data {
            if let TopItem::Dict(d) = item {
                if let Some(m) = dict::get_str(d, "match") {
                    matcher = m.clone();
                }
            }
        }
        let Some(matcher) = matcher.as_str() else {
            error!("Attempting to match with unknown matcher: {}", py_text(&matcher));
            return false;
        };
        let nodegroups = self.opts.get("nodegroups").map(from_json).unwrap_or(Value::Nil);
        let m = MinionData {
            id: self.req.id,
            grains: self.req.grains,
            pillar: &self.match_pillar,
        };
        minion_matches(&m, tgt, matcher, ":", &nodegroups)
    }

    /// `top_matches`: env → SLS names for this minion.
    pub(crate) fn top_matches(&self, top: &Top) -> Vec<(String, Vec<String>)> {
        let mut matches: Vec<(String, Vec<String>)> = Vec::new();
        for (env, body) in top {
            if let Some(p) = self.pillarenv() {
                if env != p {
                    continue;
                }
            }
            for (tgt, data) in body {
                if !self.confirm_top(tgt, data) {
                    continue;
                }
                let slot = match matches.iter().position(|(e, _)| e == env) {
                    Some(i) => &mut matches[i].1,
                    None => {
                        matches.push((env.clone(), Vec::new()));
                        &mut matches.last_mut().expect("pushed").1
                    }
                };
                for item in data {
                    if let TopItem::Sls(s) = item {
                        if !slot.contains(s) {
                            slot.push(s.clone());
                        }
                    }
                }
            }
        }
        matches
    }

    // ------------------------------------------------------------ SLS
}
