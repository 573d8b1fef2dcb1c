//! The top file: Salt's `Pillar.get_tops`, `merge_tops`, `get_top` and
//! `top_matches` (which SLS each pillar environment gives this minion).

use super::*;

impl<'a> Pillar<'a> {
    /// `get_tops`: each environment's rendered top file, and its includes.
    fn get_tops(&self) -> (Vec<(String, Vec<Json>)>, Vec<String>) {
        let mut tops: Vec<(String, Vec<Json>)> = Vec::new();
        let mut errors = Vec::new();
        let push =
            |tops: &mut Vec<(String, Vec<Json>)>, env: &str, v: Json| match tops.iter_mut().find(|(e, _)| e == env) {
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
            match render::compile_template(&self.shared, &path, env, "", &Map::new()) {
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
                let Json::Object(m) = ctop else { continue };
                let Some(inc) = m.shift_remove("include") else { continue };
                let names: Vec<String> = match inc {
                    Json::Array(a) => a.iter().map(py_text).collect(),
                    Json::String(s) => s.chars().map(String::from).collect(),
                    Json::Object(o) => o.keys().cloned().collect(),
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
                    Some((path, _)) => match render::compile_template(&self.shared, &path, &env, "", &Map::new()) {
                        Ok(v) => push(&mut tops, &env, v),
                        Err(e) => errors.push(format!("Rendering Top file {sls} failed, render error:\n{e}")),
                    },
                    None => {
                        error!("Template was specified incorrectly: False");
                        push(&mut tops, &env, Json::Object(Map::new()));
                    }
                }
                done.push(sls);
            }
        }
        (tops, errors)
    }

    /// `merge_tops` + `sort_top_targets`; `Err` where Salt's would raise
    /// (a malformed top file).
    fn merge_tops(&mut self, tops: &[(String, Vec<Json>)]) -> Result<Top, ()> {
        let mut top: Top = Vec::new();
        let mut orders: HashMap<(String, String), i64> = HashMap::new();
        for (_, ctops) in tops {
            for ctop in ctops {
                let Json::Object(ctop) = ctop else { return Err(()) };
                for (saltenv, targets) in ctop {
                    if saltenv == "include" {
                        continue;
                    }
                    let Json::Object(targets) = targets else { return Err(()) };
                    for (tgt, comps) in targets {
                        let comps: Vec<Json> = match comps {
                            Json::Array(a) => a.clone(),
                            Json::String(s) => s.chars().map(|c| Json::String(c.to_string())).collect(),
                            Json::Object(o) => o.keys().map(|k| Json::String(k.clone())).collect(),
                            _ => return Err(()),
                        };
                        let mut matches = Vec::new();
                        let mut states: Vec<String> = Vec::new();
                        let mut order = 0;
                        let mut ignore_missing = false;
                        for comp in comps {
                            match comp {
                                Json::Object(d) => {
                                    if d.contains_key("order") {
                                        order = order_of(&d["order"]);
                                    }
                                    if d.get("ignore_missing").is_some_and(brine_py::truthy) {
                                        ignore_missing = true;
                                    }
                                    if d.contains_key("match") {
                                        matches.push(TopItem::Dict(d));
                                    }
                                }
                                Json::String(s) if !states.contains(&s) => states.push(s),
                                _ => {}
                            }
                        }
                        orders.insert((saltenv.clone(), tgt.clone()), order);
                        if ignore_missing {
                            self.ignored
                                .entry(saltenv.clone())
                                .or_default()
                                .extend(states.iter().cloned());
                        }
                        let mut items = matches;
                        items.extend(states.into_iter().map(TopItem::Sls));
                        let env_body = match top.iter_mut().position(|(e, _)| e == saltenv) {
                            Some(i) => &mut top[i].1,
                            None => {
                                top.push((saltenv.clone(), Vec::new()));
                                &mut top.last_mut().expect("pushed").1
                            }
                        };
                        match env_body.iter_mut().find(|(t, _)| t == tgt) {
                            Some(slot) => slot.1 = items,
                            None => env_body.push((tgt.clone(), items)),
                        }
                    }
                }
            }
        }
        for (env, body) in top.iter_mut() {
            body.sort_by_key(|(tgt, _)| orders.get(&(env.clone(), tgt.clone())).copied().unwrap_or(0));
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
    fn confirm_top(&self, tgt: &str, data: &[TopItem]) -> bool {
        let mut matcher = Json::from("compound");
        for item in data {
            if let TopItem::Dict(d) = item {
                if let Some(m) = d.get("match") {
                    matcher = m.clone();
                }
            }
        }
        let Some(matcher) = matcher.as_str() else {
            error!("Attempting to match with unknown matcher: {matcher}");
            return false;
        };
        let nodegroups = self.opts.get("nodegroups").map(from_json).unwrap_or(Value::Nil);
        let m = MinionData {
            id: self.req.id,
            grains: self.req.grains,
            pillar: &self.match_pillar,
        };
        minion_matches(&m, &Value::from(tgt), matcher, ":", &nodegroups)
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
