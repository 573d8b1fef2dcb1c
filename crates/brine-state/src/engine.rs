//! Salt's `State.call_chunks`: the ordered low chunks run one by one,
//! each after its requisites (`require`, `watch`, `prereq`, `onfail`,
//! `onchanges` and their `_any` forms; the `_in` forms were turned into
//! these by `requisite_in`), with `failhard`, `parallel` and `test`, into
//! the `running` dict of results keyed `{state}_|-{id}_|-{name}_|-{fun}`.

use std::collections::HashSet;
use std::thread::JoinHandle;
use std::time::Instant;

use brine_proto::Value;
use brine_py::{fnmatch, to_str, truthy};
use log::{error, info};

use crate::compile::Chunk;
use crate::effects::Effects;
use crate::states::{self, Call};

/// Results in run order, as Salt's `running` dict.
pub type Running = Vec<(String, Value)>;

/// The requisite kinds `check_requisite` looks at, in Salt's order.
const REQ_KINDS: &[&str] = &[
    "require",
    "require_any",
    "watch",
    "watch_any",
    "prereq",
    "onfail",
    "onfail_any",
    "onfail_all",
    "onchanges",
    "onchanges_any",
];

/// `_gen_tag`.
pub fn gen_tag(low: &Chunk) -> String {
    format!(
        "{}_|-{}_|-{}_|-{}",
        low.text("state"),
        low.text("__id__"),
        low.text("name"),
        low.text("fun")
    )
}

/// The local time of day as Python's `datetime.time.isoformat()`
/// (`HH:MM:SS.ffffff`, no fraction on a whole second).
pub fn time_of_day() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let hms = brine_log::strftime("%H:%M:%S", now.as_secs() as i64);
    match now.subsec_micros() {
        0 => hms,
        us => format!("{hms}.{us:06}"),
    }
}

/// Milliseconds with microseconds, as Salt's `duration`.
fn duration_ms(start: Instant) -> f64 {
    let us = start.elapsed().as_micros() as f64;
    us / 1000.0
}

/// A requisite check's outcome (`check_requisite`'s status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Met,
    Unmet,
    Fail,
    Pre,
    Onfail,
    Onchanges,
    Change,
}

/// One run of a list of chunks.
pub struct StateRun<'a> {
    pub chunks: Vec<Chunk>,
    pub running: Running,
    pre: Running,
    active: HashSet<String>,
    run_num: i64,
    /// The global `test` and `failhard` options.
    test: bool,
    failhard: bool,
    ctx: Call,
    effects: &'a mut dyn Effects,
    /// Parallel chunks still running: tag → thread.
    procs: Vec<(String, JoinHandle<Value>)>,
    failhard_hit: bool,
}

fn find<'a>(r: &'a Running, tag: &str) -> Option<&'a Value> {
    r.iter().find(|(t, _)| t == tag).map(|(_, v)| v)
}

fn set(r: &mut Running, tag: &str, v: Value) {
    match r.iter_mut().find(|(t, _)| t == tag) {
        Some((_, old)) => *old = v,
        None => r.push((tag.to_string(), v)),
    }
}

/// A requisite entry as `(kind, target)`: a bare string is an `id`, a
/// dotted kind loses its function (`trim_req`).
fn req_entry(req: &Value) -> Option<(String, Value)> {
    match req {
        Value::Str(s) => Some(("id".into(), Value::from(s.as_str()))),
        Value::Map(kv) if !kv.is_empty() => {
            let key = to_str(&kv[0].0);
            let key = key.split('.').next().unwrap_or_default().to_string();
            Some((key, kv[0].1.clone()))
        }
        _ => None,
    }
}

fn list_of(low: &Chunk, kind: &str) -> Vec<Value> {
    match low.get(kind) {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    }
}

fn flag(low: &Chunk, key: &str) -> bool {
    low.get(key).is_some_and(truthy)
}

fn result_of(v: &Value) -> Option<bool> {
    match v.get("result") {
        Some(Value::Bool(b)) => Some(*b),
        _ => None,
    }
}

fn has_changes(v: &Value) -> bool {
    v.get("changes").is_some_and(truthy)
}

impl<'a> StateRun<'a> {
    /// A run of `chunks` with the options and context of `ctx` (its
    /// `test` and `failhard` are the global options).
    pub fn new(chunks: Vec<Chunk>, ctx: Call, effects: &'a mut dyn Effects) -> StateRun<'a> {
        let mut chunks = chunks;
        // Without a `mod_watch` in the state module a `watch` is a
        // `require` (`check_requisite`, `verify_data`).
        for c in chunks.iter_mut() {
            if !states::has_mod_watch(&c.text("state")) {
                for (from, to) in [("watch", "require"), ("watch_any", "require_any")] {
                    if let Some(Value::Array(w)) = c.remove(from) {
                        match c.get(to).cloned() {
                            Some(Value::Array(mut r)) => {
                                r.extend(w);
                                c.set(to, Value::Array(r));
                            }
                            _ => c.set(to, Value::Array(w)),
                        }
                    }
                }
            }
        }
        StateRun {
            chunks,
            running: Vec::new(),
            pre: Vec::new(),
            active: HashSet::new(),
            run_num: 0,
            test: ctx.test,
            failhard: ctx.failhard,
            ctx,
            effects,
            procs: Vec::new(),
            failhard_hit: false,
        }
    }

    /// `call_chunks`.
    pub fn call_chunks(mut self) -> Running {
        for i in 0..self.chunks.len() {
            if self.failhard_hit {
                break;
            }
            let tag = gen_tag(&self.chunks[i]);
            if find(&self.running, &tag).is_none() {
                self.call_chunk(i, 0);
                if self.check_failhard(i) {
                    break;
                }
            }
            self.active.clear();
        }
        self.reconcile_all();
        self.running
    }

    /// `check_failhard`: the chunk failed (not `None`) with `failhard`
    /// on it or globally, outside test mode.
    fn check_failhard(&self, i: usize) -> bool {
        if self.test {
            return false;
        }
        let low = &self.chunks[i];
        let on = match low.get("failhard") {
            Some(v) => truthy(v),
            None => self.failhard,
        };
        if !on {
            return false;
        }
        match find(&self.running, &gen_tag(low)) {
            Some(r) => result_of(r) == Some(false),
            None => false,
        }
    }

    fn reconcile(&mut self, tags: &[String]) {
        let mut i = 0;
        while i < self.procs.len() {
            if tags.contains(&self.procs[i].0) {
                let (tag, h) = self.procs.remove(i);
                let ret = h.join().unwrap_or_else(|_| {
                    Value::map([
                        ("result", Value::Bool(false)),
                        ("comment", Value::from("Parallel process failed to return")),
                        ("changes", Value::Map(Vec::new())),
                    ])
                });
                if let Some((_, have)) = self.running.iter_mut().find(|(t, _)| *t == tag) {
                    if let Value::Map(kv) = ret {
                        for (k, v) in kv {
                            have.set(&to_str(&k), v);
                        }
                    }
                }
            } else {
                i += 1;
            }
        }
    }

    fn reconcile_all(&mut self) {
        let tags: Vec<String> = self.procs.iter().map(|(t, _)| t.clone()).collect();
        self.reconcile(&tags);
    }

    /// The chunks a requisite entry names.
    fn matching(&self, key: &str, val: &Value) -> Vec<usize> {
        let mut out = Vec::new();
        let Value::Str(val) = val else { return out };
        for (j, c) in self.chunks.iter().enumerate() {
            if key == "sls" {
                let included = matches!(c.get("__sls_included_from__"), Some(Value::Array(a)) if a.iter().any(|s| to_str(s) == *val));
                if fnmatch(&c.text("__sls__"), val) || included {
                    out.push(j);
                }
                continue;
            }
            if (fnmatch(&c.text("name"), val) || fnmatch(&c.text("__id__"), val))
                && (key == "id" || c.text("state") == key)
            {
                out.push(j);
            }
        }
        out
    }

    /// `check_requisite`.
    fn check_requisite(&mut self, i: usize, pre: bool) -> (Status, Vec<(String, Vec<usize>)>) {
        let low = self.chunks[i].clone();
        let mut kinds: Vec<&str> = REQ_KINDS.to_vec();
        if pre {
            kinds.push("prerequired");
        }
        if !kinds.iter().any(|k| low.get(k).is_some()) {
            return (Status::Met, Vec::new());
        }
        let mut reqs: Vec<(String, Vec<usize>)> = Vec::new();
        for kind in &kinds {
            let mut found_chunks = Vec::new();
            for req in list_of(&low, kind) {
                let Some((key, val)) = req_entry(&req) else { continue };
                if val.is_nil() {
                    continue;
                }
                let found = self.matching(&key, &val);
                if found.is_empty() {
                    return (Status::Unmet, Vec::new());
                }
                found_chunks.extend(found);
            }
            reqs.push((kind.to_string(), found_chunks));
        }
        let mut fun_stats: HashSet<&str> = HashSet::new();
        for (kind, idxs) in &reqs {
            let tags: Vec<String> = idxs.iter().map(|j| gen_tag(&self.chunks[*j])).collect();
            self.reconcile(&tags);
            let is_pre = kind.starts_with("prereq") && !kind.starts_with("prerequired");
            let run_dict = if is_pre { &self.pre } else { &self.running };
            let mut req_stats: HashSet<&str> = HashSet::new();
            for tag in &tags {
                let Some(r) = find(run_dict, tag) else {
                    req_stats.insert("unmet");
                    continue;
                };
                let result = r.get("result");
                if kind.starts_with("onfail") {
                    if result == Some(&Value::Bool(true)) {
                        req_stats.insert("onfail");
                        continue;
                    }
                } else if kind.starts_with("onchanges") {
                    if result == Some(&Value::Bool(false)) || !has_changes(r) {
                        req_stats.insert("onchanges");
                    } else {
                        req_stats.insert("onchangesmet");
                    }
                    continue;
                } else if result == Some(&Value::Bool(false)) {
                    req_stats.insert("fail");
                    continue;
                }
                if kind.starts_with("watch") && has_changes(r) {
                    req_stats.insert("change");
                    continue;
                }
                let none = matches!(result, None | Some(Value::Nil));
                if kind.starts_with("prereq") && none && !kind.starts_with("prerequired") {
                    req_stats.insert("premet");
                }
                if kind.starts_with("prereq") && !none {
                    if !kind.starts_with("prerequired") {
                        req_stats.insert("pre");
                    }
                } else if r.get("__state_ran__").map(truthy).unwrap_or(true) {
                    req_stats.insert("met");
                }
            }
            if kind.ends_with("_any") || kind == "onfail" {
                if req_stats.contains("met") || req_stats.contains("change") {
                    req_stats.remove("fail");
                }
                if req_stats.contains("onchangesmet") {
                    req_stats.remove("onchanges");
                    req_stats.remove("fail");
                }
                if req_stats.contains("onfail") && req_stats.contains("met") {
                    req_stats.remove("onfail");
                }
            }
            if kind.ends_with("_all") && req_stats.contains("onfail") {
                req_stats.remove("met");
            }
            fun_stats.extend(req_stats);
        }
        let status = if fun_stats.contains("unmet") {
            Status::Unmet
        } else if fun_stats.contains("fail") {
            Status::Fail
        } else if fun_stats.contains("pre") {
            if fun_stats.contains("premet") {
                Status::Met
            } else {
                Status::Pre
            }
        } else if fun_stats.contains("onfail") && !fun_stats.contains("onchangesmet") {
            Status::Onfail
        } else if fun_stats.contains("onchanges") && !fun_stats.contains("onchangesmet") {
            Status::Onchanges
        } else if fun_stats.contains("change") {
            Status::Change
        } else {
            Status::Met
        };
        (status, reqs)
    }

    /// A result for a state that did not run, numbered `__run_num__`
    /// (the caller counts it).
    fn not_run(&self, low: &Chunk, result: bool, comment: &str, ran: bool) -> Value {
        let mut r = Value::map([
            ("changes", Value::Map(Vec::new())),
            ("result", Value::Bool(result)),
            ("duration", Value::F64(0.0)),
            ("start_time", Value::from(time_of_day())),
            ("comment", Value::from(comment)),
        ]);
        if !ran {
            r.set("__state_ran__", Value::Bool(false));
        }
        r.set("__run_num__", Value::Int(self.run_num));
        for key in ["__sls__", "__id__", "name"] {
            r.set(key, low.get(key).cloned().unwrap_or(Value::Nil));
        }
        r
    }

    /// `call_chunk`.
    fn call_chunk(&mut self, i: usize, depth: usize) {
        let tag = gen_tag(&self.chunks[i]);
        if !flag(&self.chunks[i], "prerequired") {
            self.active.insert(tag.clone());
        }
        let mut requisites: Vec<&str> = vec![
            "require",
            "require_any",
            "watch",
            "watch_any",
            "prereq",
            "onfail",
            "onfail_any",
            "onchanges",
            "onchanges_any",
        ];
        let is_prereq = flag(&self.chunks[i], "__prereq__");
        let (status, reqs) = if !is_prereq {
            requisites.push("prerequired");
            self.check_requisite(i, true)
        } else {
            self.check_requisite(i, false)
        };
        match status {
            Status::Unmet => self.unmet(i, &tag, &requisites, depth),
            Status::Met => self.run_into(i, &tag),
            Status::Fail => {
                if let Some(mut prev) = find(&self.pre, &tag).cloned() {
                    // The run of the state with the prereq was a test run:
                    // its proposed changes go.
                    if has_changes(&prev) {
                        prev.set("changes", Value::Map(Vec::new()));
                    }
                    prev.set("__run_num__", Value::Int(self.run_num));
                    for key in ["__sls__", "__id__", "name"] {
                        prev.set(key, self.chunks[i].get(key).cloned().unwrap_or(Value::Nil));
                    }
                    set(&mut self.running, &tag, prev);
                } else {
                    let mut failed: Vec<String> = Vec::new();
                    for (_, idxs) in &reqs {
                        for j in idxs {
                            let rt = gen_tag(&self.chunks[*j]);
                            let r = find(&self.pre, &rt).or_else(|| find(&self.running, &rt));
                            if r.and_then(result_of) == Some(false) {
                                let key =
                                    format!("{}.{}", self.chunks[*j].text("__sls__"), self.chunks[*j].text("__id__"));
                                if !failed.contains(&key) {
                                    failed.push(key);
                                }
                            }
                        }
                    }
                    let low = self.chunks[i].clone();
                    let r = self.not_run(
                        &low,
                        false,
                        &format!("One or more requisite failed: {}", failed.join(", ")),
                        true,
                    );
                    set(&mut self.running, &tag, r.clone());
                    set(&mut self.pre, &tag, r);
                }
                self.run_num += 1;
            }
            Status::Change if !is_prereq => {
                let mut ret = self.call(i, None);
                if !has_changes(&ret) && !ret.get("skip_watch").is_some_and(truthy) {
                    let reqs_v = Value::Map(
                        reqs.iter()
                            .map(|(k, idxs)| {
                                (
                                    Value::from(k.as_str()),
                                    Value::Array(idxs.iter().map(|j| self.chunks[*j].to_value()).collect()),
                                )
                            })
                            .collect(),
                    );
                    ret = self.call(i, Some(reqs_v));
                }
                set(&mut self.running, &tag, ret);
            }
            Status::Pre => {
                let low = self.chunks[i].clone();
                let r = self.not_run(&low, true, "No changes detected", true);
                self.run_num += 1;
                set(&mut self.running, &tag, r.clone());
                set(&mut self.pre, &tag, r);
            }
            Status::Onfail => {
                let low = self.chunks[i].clone();
                let r = self.not_run(&low, true, "State was not run because onfail req did not change", false);
                self.run_num += 1;
                set(&mut self.running, &tag, r);
            }
            Status::Onchanges => {
                let low = self.chunks[i].clone();
                let r = self.not_run(
                    &low,
                    true,
                    "State was not run because none of the onchanges reqs changed",
                    false,
                );
                self.run_num += 1;
                set(&mut self.running, &tag, r);
            }
            Status::Change => self.run_into(i, &tag),
        }
    }

    /// Run the chunk into `pre` (a prereq's test run) or `running`.
    fn run_into(&mut self, i: usize, tag: &str) {
        if flag(&self.chunks[i], "__prereq__") {
            let r = self.call(i, None);
            set(&mut self.pre, tag, r);
        } else {
            let r = self.call(i, None);
            set(&mut self.running, tag, r);
        }
    }

    /// The `unmet` branch of `call_chunk`: report requisites that name no
    /// state, else run the ones not run yet and check again.
    fn unmet(&mut self, i: usize, tag: &str, requisites: &[&str], depth: usize) {
        let low = self.chunks[i].clone();
        let mut lost: Vec<(String, Vec<(String, Value)>)> = Vec::new();
        let mut reqs: Vec<usize> = Vec::new();
        for requisite in requisites {
            let mut l = Vec::new();
            for req in list_of(&low, requisite) {
                let Some((key, val)) = req_entry(&req) else { continue };
                if val.is_nil() {
                    continue;
                }
                let found = self.matching(&key, &val);
                for j in &found {
                    if *requisite == "prereq" {
                        self.chunks[*j].set("__prereq__", Value::Bool(true));
                    } else if *requisite == "prerequired" && key != "sls" {
                        self.chunks[*j].set("__prerequired__", Value::Bool(true));
                    }
                    reqs.push(*j);
                }
                if found.is_empty() {
                    l.push((key, val));
                }
            }
            lost.push((requisite.to_string(), l));
        }
        if lost.iter().any(|(_, l)| !l.is_empty()) {
            let mut comment = String::from("The following requisites were not found:\n");
            for (requisite, l) in &lost {
                if l.is_empty() {
                    continue;
                }
                comment.push_str(&format!("{}{requisite}:\n", " ".repeat(19)));
                for (k, v) in l {
                    comment.push_str(&format!("{}{k}: {}\n", " ".repeat(23), to_str(v)));
                }
            }
            let r = self.not_run(&low, false, &comment, true);
            self.run_num += 1;
            if flag(&low, "__prereq__") {
                set(&mut self.pre, tag, r);
            } else {
                set(&mut self.running, tag, r);
            }
            return;
        }
        let mut last = i;
        for j in reqs {
            last = j;
            let ctag = gen_tag(&self.chunks[j]);
            if find(&self.running, &ctag).is_some() {
                continue;
            }
            if self.active.contains(&ctag) {
                if flag(&self.chunks[j], "__prerequired__") {
                    // A prereq cycle: run this chunk as the prereq's test.
                    if find(&self.pre, tag).is_none() {
                        self.chunks[i].set("__prereq__", Value::Bool(true));
                        let r = self.call(i, None);
                        set(&mut self.pre, &ctag, r);
                    }
                    return;
                }
                let r = recursive(&low, self.run_num);
                set(&mut self.running, tag, r);
                self.run_num += 1;
                return;
            }
            self.call_chunk(j, 0);
            if self.check_failhard(j) {
                self.failhard_hit = true;
                return;
            }
        }
        if flag(&self.chunks[i], "__prereq__") {
            let (status, _) = self.check_requisite(i, false);
            let mut r = self.call(i, None);
            if !has_changes(&r) && status == Status::Change {
                r.set("changes", Value::map([("watch", Value::from("watch"))]));
                r.set("result", Value::Nil);
            }
            set(&mut self.pre, tag, r);
        } else if depth + 1 >= 20 {
            let r = recursive(&low, self.run_num);
            set(&mut self.running, tag, r);
        } else {
            self.call_chunk(i, depth + 1);
        }
        if self.check_failhard(last) {
            self.failhard_hit = true;
        }
    }

    /// `State.call`: check the chunk, run its state function (in a thread
    /// with `parallel`), and add `__sls__`, `__run_num__`, `start_time`,
    /// `duration`, `__id__`. `watch_reqs` makes it the `mod_watch` call.
    fn call(&mut self, i: usize, watch_reqs: Option<Value>) -> Value {
        let start = Instant::now();
        let start_time = time_of_day();
        let mut low = self.chunks[i].clone();
        if let Some(reqs) = watch_reqs {
            low.set("sfun", Value::from(low.text("fun")));
            low.set("fun", Value::from("mod_watch"));
            low.set("__reqs__", reqs);
        }
        let name = low.get("name").cloned().unwrap_or(Value::Nil);
        let errors = states::verify_data(&low);
        if !errors.is_empty() {
            let mut comment = String::new();
            for e in errors {
                comment.push_str(&e);
                comment.push('\n');
            }
            let r = Value::map([
                ("result", Value::Bool(false)),
                ("name", name),
                ("changes", Value::Map(Vec::new())),
                ("comment", Value::from(comment)),
                ("__run_num__", Value::Int(self.run_num)),
            ]);
            self.run_num += 1;
            return r;
        }
        let prereq = flag(&low, "__prereq__");
        if !prereq {
            info!(
                "Executing state {}.{} for [{}]",
                low.text("state"),
                low.text("fun"),
                low.text("name")
            );
        }
        let mut ctx = self.ctx.clone();
        ctx.test = self.test || prereq;
        if low.text("fun") == "mod_watch" {
            ctx.running = self.running.clone();
        }
        ctx.env = low
            .get("saltenv")
            .or_else(|| low.get("__env__"))
            .map(to_str)
            .unwrap_or_else(|| "base".into());
        let mut ret = if !prereq && flag(&low, "parallel") {
            match self.effects.fork() {
                Some(mut eff) => {
                    let low_c = low.clone();
                    let ctx_c = ctx.clone();
                    let h = std::thread::spawn(move || {
                        let start = Instant::now();
                        let start_time = time_of_day();
                        let mut r = states::run(&low_c, &ctx_c, eff.as_mut());
                        r.set("start_time", Value::from(start_time));
                        r.set("duration", Value::F64(duration_ms(start)));
                        r
                    });
                    self.procs.push((gen_tag(&low), h));
                    Value::map([
                        ("name", name.clone()),
                        ("result", Value::Nil),
                        ("changes", Value::Map(Vec::new())),
                    ])
                }
                None => states::run(&low, &ctx, self.effects),
            }
        } else {
            states::run(&low, &ctx, self.effects)
        };
        if prereq {
            // Salt clears the flag on the chunk once its test run is done.
            self.chunks[i].set("__prereq__", Value::Bool(false));
            return ret;
        }
        ret.set("__sls__", low.get("__sls__").cloned().unwrap_or(Value::Nil));
        ret.set("__run_num__", Value::Int(self.run_num));
        self.run_num += 1;
        ret.set("start_time", Value::from(start_time));
        ret.set("duration", Value::F64(duration_ms(start)));
        ret.set("__id__", low.get("__id__").cloned().unwrap_or(Value::Nil));
        ret
    }
}

/// The result of a state caught in a requisite cycle (logged as Salt
/// logs it).
fn recursive(low: &Chunk, run_num: i64) -> Value {
    error!("Recursive requisite found");
    let mut r = Value::map([
        ("changes", Value::Map(Vec::new())),
        ("result", Value::Bool(false)),
        ("comment", Value::from("Recursive requisite found")),
        ("__run_num__", Value::Int(run_num)),
    ]);
    for key in ["__sls__", "__id__", "name"] {
        r.set(key, low.get(key).cloned().unwrap_or(Value::Nil));
    }
    r
}
