//! Pillar compilation on the master (Salt's `salt.pillar.Pillar`, local
//! file client, as `AESFuncs._pillar` runs it), checked against Python
//! Salt 3007.17 and 3006.30 (`tests/pillar_vs_python.rs`).
//!
//! * environments: `pillar_roots` (with `__env__`), `pillarenv` /
//!   `saltenv` from the request or the config, `pillarenv_from_saltenv`;
//! * top files (`state_top` in each environment, or only `pillarenv`'s;
//!   only the request's `saltenv` under `pillar_source_merging_strategy:
//!   none`), their `include`, `match`/`order`/`ignore_missing`, matched
//!   with [`brine_targeting::minion_matches`] (`compound` by default, as
//!   Salt's `confirm_top`);
//! * SLS files rendered through [`render`] (`jinja|yaml` by default),
//!   `include` in its three forms (relative `.sls`, globs, `defaults` and
//!   `key`), merged by [`merge`] (`pillar_source_merging_strategy`,
//!   `pillar_merge_lists`, `pillar_includes_override_sls`), `env_order`;
//! * errors in `_errors`, worded as Salt words them; a broken file is an
//!   error entry, never a failed request;
//! * `pillar_override` merged last, `pillar_opts`, `decrypt_pillar`
//!   (reported as an error: Brine decrypts nothing).
//!
//! * `ext_pillar` with the modules that need no Python (`cmd_yaml`,
//!   `cmd_json`, `file_tree`, `extra_minion_data_in_pillar`, see [`ext`]),
//!   `ext_pillar_first`, `exclude_ext_pillar`, the request's
//!   `extra_minion_data`.
//!
//! Differences, on purpose or by necessity:
//! * Other `ext_pillar` modules are logged as unavailable (as Salt logs a
//!   missing module) and contribute nothing; `on_demand_ext_pillar`
//!   (`pillar.ext`) is not run. Commands have a deadline and an output
//!   bound (see [`ext`]).
//! * Environments are processed in `_get_envs` order (base, then
//!   `pillar_roots` order) as 3006.30 does; 3007.17 iterates a Python set
//!   (order depends on the hash seed).
//! * The text of Jinja/YAML errors is minijinja's/Brine's, not Python's
//!   (only visible with `pillar_safe_render_error: False` and in top-file
//!   errors). Jinja limits (no `%` formatting, mutation only of values kept
//!   in `set` variables, a few execution-module functions) are listed in
//!   [`jinja`].
//! * A top file or include that would make Salt raise a Python exception
//!   (and fail the whole `_pillar` request, e.g. an included SLS that
//!   renders to a list) is an `_errors` entry or a logged skip instead.
//! * Under `overwrite`, Salt's merge also changes the cached copy of an
//!   included SLS in place; Brine's merges never do.
//! * Renderers: `jinja`, `yaml`, `json`, and `gpg` only for data without
//!   PGP blocks (see [`render`]).
//! * `pillar_cache` is not implemented (every request compiles).

pub mod cache;
mod ext;
pub use ext::is_native as ext_pillar_is_native;
pub mod jinja;
pub mod merge;
pub mod mutable;
pub mod pyfmt;
pub mod render;
mod top;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Once;

use brine_config::MasterConfig;
use brine_proto::json::{from_json, to_json};
use brine_proto::Value;
use brine_py::dict::{self, Pairs};
use brine_py::fnmatch;
use log::{debug, error, warn};
use serde_json::{Map, Value as Json};

use brine_targeting::{minion_matches, MinionData};
use jinja::JinjaShared;
use merge::Strategy;

/// The pillar of minion `id` with `grains`, for the `_pillar` request
/// `load` (saltenv, pillarenv, pillar_override, extra_minion_data).
/// `accepted` lists the accepted minions, for the node groups of
/// `file_tree` (called only then).
pub fn compile(
    cfg: &MasterConfig,
    id: &str,
    grains: &Value,
    load: &Value,
    accepted: &dyn Fn() -> Vec<String>,
) -> Value {
    let text = |k: &str| load.get(k).and_then(Value::as_str).map(String::from);
    let saltenv = text("saltenv").or_else(|| {
        if load.get("saltenv").is_none() {
            text("env")
        } else {
            None
        }
    });
    let pillarenv = text("pillarenv");
    if load.get("ext").is_some_and(|e| !e.is_nil()) {
        static EXT: Once = Once::new();
        EXT.call_once(|| warn!("on-demand ext_pillar (pillar.ext) is not implemented by Brine: ignored"));
    }
    let loader = brine_loader::pool(cfg);
    let req = Request {
        id,
        grains,
        saltenv: saltenv.as_deref(),
        pillarenv: pillarenv.as_deref(),
        pillar_override: load.get("pillar_override"),
        extra_minion_data: load.get("extra_minion_data"),
        accepted: Some(accepted),
        loader: loader.as_ref(),
    };
    if cfg.get_bool("pillar_cache") == Some(true) {
        let clean = load.get("clean_cache").is_some_and(brine_py::truthy);
        // Salt's PillarCache compiles a missing entry without the
        // request's pillar_override.
        let uncached = Request {
            pillar_override: None,
            ..req
        };
        return cache::cached(cfg, id, pillarenv.as_deref(), clean, || guarded(cfg, &uncached));
    }
    guarded(cfg, &req)
}

/// The compilation, a panic in it answered as an error pillar.
fn guarded(cfg: &MasterConfig, req: &Request) -> Value {
    // A bug must not take the MWorker down with it.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compile_pillar(&cfg.raw, req))) {
        Ok(p) => Value::Map(p),
        Err(_) => {
            error!("pillar compilation for {} panicked", req.id);
            Value::map([(
                "_errors",
                Value::Array(vec![Value::from("Pillar compilation failed on the master")]),
            )])
        }
    }
}

/// One `_pillar` request, as `salt.pillar.Pillar` takes it.
pub struct Request<'a> {
    pub id: &'a str,
    pub grains: &'a Value,
    pub saltenv: Option<&'a str>,
    pub pillarenv: Option<&'a str>,
    pub pillar_override: Option<&'a Value>,
    /// What the minion sent for the ext_pillar modules that take it.
    pub extra_minion_data: Option<&'a Value>,
    /// The accepted minions (file_tree's node groups); none when `None`.
    pub accepted: Option<&'a dyn Fn() -> Vec<String>>,
    /// The Python loader pool, for the `ext_pillar` modules Brine does
    /// not run natively; without it they are unavailable.
    pub loader: Option<&'a brine_loader::Client>,
}

/// A top file's entry for one target: `match`/`order` dicts and SLS names.
#[derive(Debug, Clone)]
enum TopItem {
    Dict(Pairs),
    Sls(String),
}

/// Environments, each with its targets (as the top file wrote them: a
/// YAML key may be a number) and what they list.
type Top = Vec<(String, Vec<(Value, Vec<TopItem>)>)>;

/// A rendered SLS as Salt keeps it in `mods` (`None` when it failed).
type Mods = HashMap<String, Option<Value>>;

struct Pillar<'a> {
    opts: Map<String, Json>,
    req: &'a Request<'a>,
    /// `pillar_roots` after `__env__`, in config order.
    roots: Vec<(String, Vec<PathBuf>)>,
    /// `__gather_avail`: the SLS names of each environment of `_get_envs`.
    avail: HashMap<String, Vec<String>>,
    strategy: Strategy,
    merge_lists: bool,
    ignored: HashMap<String, Vec<String>>,
    shared: JinjaShared,
    /// What the master's matchers see as the minion's pillar.
    match_pillar: Value,
    pillar_override: Pairs,
    /// The master's own `id` (what ext_pillar modules see as `id`).
    master_id: Option<String>,
}

fn opt_str<'o>(opts: &'o Map<String, Json>, key: &str) -> Option<&'o str> {
    opts.get(key).and_then(Json::as_str)
}

fn opt_true(opts: &Map<String, Json>, key: &str) -> bool {
    opts.get(key).is_some_and(brine_py::truthy)
}

/// The text of a Python value as `str()` gives it (for names in top
/// files and includes that YAML read as numbers).
fn py_text<V: brine_py::PyValue>(v: &V) -> String {
    brine_py::to_str(v)
}

/// Python's `int()` of a top file's `order`, 0 when it fails.
fn order_of(v: &Value) -> i64 {
    brine_py::int(v).and_then(|i| i64::try_from(i).ok()).unwrap_or(0)
}

/// `pillar_roots` as the config has it, `__env__` resolved for `env`
/// (Salt's `__gen_opts`).
fn pillar_roots(opts: &Map<String, Json>, env: &str) -> Vec<(String, Vec<PathBuf>)> {
    let mut roots: Vec<(String, Vec<String>)> = match opts.get("pillar_roots") {
        Some(Json::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                let dirs = match v {
                    Json::Array(a) => a.iter().map(py_text).collect(),
                    Json::String(s) => vec![s.clone()],
                    _ => Vec::new(),
                };
                (k.clone(), dirs)
            })
            .collect(),
        _ => Vec::new(),
    };
    if let Some(pos) = roots.iter().position(|(k, _)| k == "__env__") {
        let (_, dirs) = roots.remove(pos);
        if roots.iter().any(|(k, _)| k == env) {
            debug!("pillar_roots __env__ ignored (environment '{env}' found in pillar_roots)");
        } else {
            debug!("pillar environment '{env}' maps to __env__ pillar_roots directory");
            roots.push((
                env.to_string(),
                dirs.into_iter().map(|d| d.replace("__env__", env)).collect(),
            ));
        }
    }
    roots
        .into_iter()
        .map(|(k, d)| (k, d.into_iter().map(PathBuf::from).collect()))
        .collect()
}

/// `file_ignore_regex` / `file_ignore_glob` for a directory name.
fn ignored_dir(opts: &Map<String, Json>, name: &str) -> bool {
    let list = |k: &str| -> Vec<String> {
        match opts.get(k) {
            Some(Json::Array(a)) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
            Some(Json::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    list("file_ignore_regex")
        .iter()
        .any(|r| regex::Regex::new(r).is_ok_and(|re| re.is_match(name)))
        || list("file_ignore_glob").iter().any(|g| fnmatch(name, g))
}

/// `PillarClient.file_list` + `list_states`: every `.sls` under the
/// environment's roots (symlinks followed) as a sorted set of SLS names.
/// The files under a pillar root, relative to it, sorted as `os.walk`
/// (following symlinks, `file_ignore_*` directories left out).
fn root_files(opts: &Map<String, Json>, root: &Path) -> Vec<String> {
    fn walk(opts: &Map<String, Json>, root: &Path, dir: &Path, depth: usize, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            // `is_dir` follows symlinks, as os.walk(followlinks=True).
            if p.is_dir() {
                if depth < 64 && !ignored_dir(opts, &name) {
                    walk(opts, root, &p, depth + 1, out);
                }
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().to_string());
            }
        }
    }
    let mut files = Vec::new();
    walk(opts, root, root, 0, &mut files);
    files
}

/// What in the pillar tree needs Salt's Python loader: renderers Brine
/// does not have (a `#!` line, the `renderer` option, PGP messages for
/// `gpg`) and `salt[...]` functions outside Brine's own, as
/// `renderer:<name>` / `execution:<name>`, sorted. Read once at start, so
/// that the pool runs for a pillar that needs it; each file's first
/// 256 KiB, at most 20,000 files.
pub fn python_needs(opts: &Map<String, Json>) -> Vec<String> {
    const MAX_FILES: usize = 20_000;
    const MAX_READ: u64 = 256 << 10;
    let mut out = Vec::new();
    let default = opt_str(opts, "renderer").unwrap_or("jinja|yaml");
    out.extend(
        render::python_renderers(default, "")
            .into_iter()
            .map(|r| format!("renderer:{r}")),
    );
    if opts.get("decrypt_pillar").is_some_and(brine_py::truthy) {
        out.push("decrypt_pillar".into());
    }
    // Each directory once (by device and inode: links may loop), and
    // at most MAX_FILES files in all.
    fn sls_files(dir: &Path, visited: &mut HashSet<(u64, u64)>, budget: &mut usize, out: &mut Vec<PathBuf>) {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(dir) else { return };
        if !visited.insert((meta.dev(), meta.ino())) {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            let p = e.path();
            if p.is_dir() {
                sls_files(&p, visited, budget, out);
            } else if p.extension().is_some_and(|x| x == "sls") {
                out.push(p);
            }
        }
    }
    let mut visited = HashSet::new();
    let mut budget = MAX_FILES;
    let mut files = Vec::new();
    for (_, dirs) in pillar_roots(opts, "base") {
        for dir in dirs {
            sls_files(&dir, &mut visited, &mut budget, &mut files);
        }
    }
    for path in files {
        let mut text = String::new();
        let read = std::fs::File::open(&path)
            .and_then(|f| std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_READ), &mut text));
        if read.is_err() {
            continue;
        }
        let first = text.lines().next().unwrap_or("");
        let pipe = first
            .strip_prefix("#!")
            .filter(|_| !first.starts_with("#!/"))
            .unwrap_or(default);
        out.extend(
            render::python_renderers(pipe, &text)
                .into_iter()
                .map(|r| format!("renderer:{r}")),
        );
        out.extend(
            jinja::python_functions(&text)
                .into_iter()
                .map(|f| format!("execution:{f}")),
        );
    }
    out.sort();
    out.dedup();
    out
}

fn list_states(opts: &Map<String, Json>, dirs: &[PathBuf]) -> Vec<String> {
    let mut states: Vec<String> = Vec::new();
    for d in dirs {
        let files = root_files(opts, d);
        for f in files {
            if let Some(stem) = f.strip_suffix("/init.sls") {
                states.push(stem.replace('/', "."));
            } else if let Some(stem) = f.strip_suffix(".sls") {
                states.push(stem.replace('/', "."));
            }
        }
    }
    states.sort();
    states.dedup();
    states
}

impl<'a> Pillar<'a> {
    fn new(raw: &Map<String, Json>, req: &'a Request<'a>) -> Pillar<'a> {
        let mut opts = raw.clone();
        // Pillar.__init__ / __gen_opts.
        let mut pillarenv = req.pillarenv.map(String::from);
        if pillarenv.is_none() && opt_true(&opts, "pillarenv_from_saltenv") {
            opts.insert("pillarenv".into(), req.saltenv.map_or(Json::Null, Json::from));
        }
        opts.insert("file_client".into(), Json::from("local"));
        let grains = if brine_py::truthy(req.grains) {
            req.grains.clone()
        } else {
            Value::Map(Vec::new())
        };
        opts.insert("grains".into(), to_json(&grains));
        if let Some(s) = req.saltenv {
            opts.insert("saltenv".into(), Json::from(s));
        } else if !opts.contains_key("saltenv") {
            opts.insert("saltenv".into(), Json::Null);
        }
        match &pillarenv {
            Some(p) => {
                opts.insert("pillarenv".into(), Json::from(p.as_str()));
            }
            None => {
                if !opts.contains_key("pillarenv") {
                    opts.insert("pillarenv".into(), Json::Null);
                }
                pillarenv = opt_str(&opts, "pillarenv").map(String::from);
            }
        }
        let master_id = opt_str(&opts, "id").map(String::from);
        opts.insert("id".into(), Json::from(req.id));
        let top = opt_str(&opts, "state_top").unwrap_or("top.sls").to_string();
        let top = if top.starts_with("salt://") {
            top
        } else {
            format!("salt://{}", top.strip_prefix('/').unwrap_or(&top))
        };
        opts.insert("state_top".into(), Json::from(top));
        let env = pillarenv
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| opt_str(&opts, "saltenv").filter(|s| !s.is_empty()).map(String::from))
            .unwrap_or_else(|| "base".into());
        let roots = pillar_roots(&opts, &env);
        opts.insert(
            "pillar_roots".into(),
            Json::Object(
                roots
                    .iter()
                    .map(|(k, d)| {
                        (
                            k.clone(),
                            Json::Array(d.iter().map(|p| Json::from(p.to_string_lossy().to_string())).collect()),
                        )
                    })
                    .collect(),
            ),
        );
        opts.insert("minion_id".into(), Json::from(req.id));

        let mut avail = HashMap::new();
        for env in envs(&roots) {
            let dirs = roots
                .iter()
                .find(|(k, _)| *k == env)
                .map(|(_, d)| d.clone())
                .unwrap_or_default();
            avail.insert(env.clone(), list_states(&opts, &dirs));
        }
        let renderer = opt_str(&opts, "renderer").unwrap_or("jinja|yaml").to_string();
        let strategy = match opt_str(&opts, "pillar_source_merging_strategy").filter(|s| !s.is_empty()) {
            Some(s) => Strategy::resolve(s, &renderer),
            None => Strategy::resolve("smart", &renderer),
        };
        let merge_lists = opt_true(&opts, "pillar_merge_lists");
        if req
            .extra_minion_data
            .is_some_and(|e| !e.is_map() && brine_py::truthy(e))
        {
            error!("Extra minion data must be a dictionary");
        }
        let pillar_override = match req.pillar_override {
            None | Some(Value::Nil) => Vec::new(),
            Some(Value::Map(m)) => m.clone(),
            Some(other) if !brine_py::truthy(other) => Vec::new(),
            Some(_) => {
                error!("Pillar data must be a dictionary");
                Vec::new()
            }
        };
        // The renderers' `__pillar__`: the options' `pillar` (absent on a
        // master, so `{}`).
        let pillar = opts
            .get("pillar")
            .map(from_json)
            .unwrap_or_else(|| Value::Map(Vec::new()));
        // Salt's pillar matcher reads `opts["pillar"]`, else (logged) the
        // `ext_pillar` option itself; with neither it raises: no match.
        let match_pillar = opts
            .get("pillar")
            .or_else(|| opts.get("ext_pillar"))
            .map(from_json)
            .unwrap_or(Value::Nil);
        let shared = JinjaShared::new(
            Json::Object(opts.clone()),
            grains,
            pillar,
            match_pillar.clone(),
            roots.clone(),
        )
        .with_python(req.loader.cloned());
        Pillar {
            opts,
            req,
            roots,
            avail,
            strategy,
            merge_lists,
            ignored: HashMap::new(),
            shared,
            match_pillar,
            pillar_override,
            master_id,
        }
    }

    fn pillarenv(&self) -> Option<&str> {
        opt_str(&self.opts, "pillarenv").filter(|s| !s.is_empty())
    }

    fn env_dirs(&self, env: &str) -> &[PathBuf] {
        self.roots
            .iter()
            .find(|(k, _)| k == env)
            .map(|(_, d)| d.as_slice())
            .unwrap_or(&[])
    }

    /// `PillarClient._find_file`: the first root of `env` holding `rel`.
    fn find_file(&self, env: &str, rel: &str) -> Option<PathBuf> {
        self.env_dirs(env).iter().map(|d| d.join(rel)).find(|p| p.is_file())
    }

    /// `get_state`: `a.b` is `a/b.sls` or `a/b/init.sls`; the file and
    /// the `salt://` source it was found as.
    fn get_state(&self, sls: &str, env: &str) -> Option<(PathBuf, String)> {
        let base = sls.replace('.', "/");
        for rel in [format!("{base}.sls"), format!("{base}/init.sls")] {
            if let Some(p) = self.find_file(env, &rel) {
                return Some((p, format!("salt://{rel}")));
            }
        }
        None
    }

    fn merge(&self, a: Pairs, b: Pairs) -> Pairs {
        merge::merge(a, b, self.strategy, self.merge_lists)
    }

    // ------------------------------------------------------------ tops

    /// `render_pstate`: one SLS and its includes, merged (includes first,
    /// the including file last).
    fn render_pstate(
        &self,
        sls: &str,
        env: &str,
        mods: &mut Mods,
        defaults: &Pairs,
        depth: usize,
    ) -> (Option<Value>, Vec<String>) {
        let mut errors = Vec::new();
        let found = self.get_state(sls, env);
        let Some((path, source)) = found else {
            if self.ignored.get(env).is_some_and(|l| l.iter().any(|s| s == sls)) {
                debug!("Skipping ignored and missing SLS '{sls}' in environment '{env}'");
                return (None, errors);
            }
            if !self.env_dirs(env).is_empty() {
                let msg = format!("Specified SLS '{sls}' in environment '{env}' is not available on the salt master");
                error!("{msg}");
                errors.push(msg);
                // Salt goes on with no file: an empty state, remembered.
                mods.insert(sls.to_string(), Some(Value::Map(Vec::new())));
                return (Some(Value::Map(Vec::new())), errors);
            }
            debug!(
                "Specified SLS '{sls}' in environment '{env}' was not found. This could be because SLS '{sls}' is in an environment other than '{env}', but '{env}' is included in that environment's Pillar top file. It could also be due to environment '{env}' not being defined in 'pillar_roots'."
            );
            return (None, errors);
        };
        let state = match render::compile_template(&self.shared, &path, env, sls, defaults) {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = format!("Rendering SLS '{sls}' failed, render error:\n{e}");
                error!("{msg}");
                if self.opts.get("pillar_safe_render_error").is_none_or(brine_py::truthy) {
                    errors.push(format!(
                        "Rendering SLS '{sls}' failed. Please see master log for details."
                    ));
                } else {
                    errors.push(msg);
                }
                None
            }
        };
        let Some(state) = state else {
            mods.insert(sls.to_string(), None);
            return (None, errors);
        };
        if !brine_py::truthy(&state) {
            mods.insert(sls.to_string(), Some(state.clone()));
            return (Some(state), errors);
        }
        let Value::Map(mut state) = state else {
            let msg = format!("SLS '{sls}' does not render to a dictionary");
            error!("{msg}");
            errors.push(msg);
            mods.insert(sls.to_string(), Some(state.clone()));
            return (Some(state), errors);
        };
        let include = Value::from("include");
        let includes = match dict::get(&state, &include) {
            None => None,
            Some(Value::Array(_)) => match dict::remove(&mut state, &include) {
                Some(Value::Array(a)) => Some(a),
                _ => None,
            },
            Some(_) => {
                let msg = format!("Include Declaration in SLS '{sls}' is not formed as a list");
                error!("{msg}");
                errors.push(msg);
                None
            }
        };
        mods.insert(sls.to_string(), Some(Value::Map(state.clone())));
        let Some(includes) = includes else {
            return (Some(Value::Map(state)), errors);
        };
        if depth > 64 {
            errors.push(format!("Include depth exceeded in SLS '{sls}'"));
            return (Some(Value::Map(state)), errors);
        }
        let override_sls = opt_true(&self.opts, "pillar_includes_override_sls");
        let mut include_states: Vec<Pairs> = Vec::new();
        let mut defaults = defaults.clone();
        // Salt's `err` outlives each iteration: a cached include re-adds
        // the previous include's errors.
        let mut err: Vec<String> = Vec::new();
        for sub in includes {
            let (sub_sls, key) = match sub {
                Value::Map(m) => {
                    let Some((name, v)) = m.into_iter().next() else {
                        continue;
                    };
                    defaults = match v.get("defaults") {
                        Some(Value::Map(d)) => d.clone(),
                        _ => Vec::new(),
                    };
                    (py_text(&name), v.get("key").filter(|k| !k.is_nil()).map(py_text))
                }
                other => (py_text(&other), None),
            };
            let mut matched: Vec<String> = Vec::new();
            let mut sub_sls = sub_sls;
            match self.avail.get(env) {
                Some(avail) => {
                    let pat = sub_sls.trim_start_matches('.').replace('/', ".");
                    matched.extend(avail.iter().filter(|s| fnmatch(s, &pat)).cloned());
                    if let Some(rest) = sub_sls.strip_prefix('.') {
                        let mut parts: Vec<&str> = sls.split('.').collect();
                        if !source.ends_with("/init.sls") {
                            parts.pop();
                        }
                        let mut joined: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
                        joined.push(rest.to_string());
                        sub_sls = joined.join(".");
                    }
                    matched.extend(avail.iter().filter(|s| fnmatch(s, &sub_sls)).cloned());
                }
                None => {
                    errors.push(format!("No matching pillar environment for environment '{env}' found"));
                    matched = vec![sub_sls.clone()];
                }
            }
            if matched.is_empty() {
                matched.push(sub_sls.clone());
            }
            for m in matched {
                let nstate = if let Some(cached) = mods.get(&m) {
                    cached.clone()
                } else {
                    let (n, e) = self.render_pstate(&m, env, mods, &defaults, depth + 1);
                    err = e;
                    n
                };
                if let Some(mut n) = nstate.filter(brine_py::truthy) {
                    if let Some(key) = &key {
                        for frag in key.split(':').rev() {
                            n = Value::Map(vec![(Value::from(frag), n)]);
                        }
                    }
                    match n {
                        Value::Map(n) if override_sls => state = self.merge(state, n),
                        Value::Map(n) => include_states.push(n),
                        other => {
                            let msg = format!(
                                "SLS '{m}' included from '{sls}' is not a dictionary: {}",
                                brine_py::repr(&other)
                            );
                            error!("{msg}");
                        }
                    }
                }
                errors.extend(err.iter().cloned());
            }
        }
        if !override_sls {
            include_states.push(state);
            let mut it = include_states.into_iter();
            let mut merged = it.next().unwrap_or_default();
            for s in it {
                merged = self.merge(merged, s);
            }
            state = merged;
        }
        (Some(Value::Map(state)), errors)
    }

    /// `render_pillar`: every matched SLS, merged in order, on top of
    /// `base` (the `pillar_override` copy Salt starts from).
    fn render_pillar(&self, matches: &[(String, Vec<String>)], base: Pairs, errors: &mut Vec<String>) -> Pairs {
        let mut pillar = base;
        let env_order: Vec<String> = match self.opts.get("env_order") {
            Some(Json::Array(a)) => a.iter().map(py_text).collect(),
            _ => Vec::new(),
        };
        let mut ordered: Vec<&(String, Vec<String>)> = Vec::new();
        for e in &env_order {
            if let Some(m) = matches.iter().find(|(k, _)| k == e) {
                if !ordered.iter().any(|(k, _)| k == e) {
                    ordered.push(m);
                }
            }
        }
        for m in matches {
            if !ordered.iter().any(|(k, _)| *k == m.0) {
                ordered.push(m);
            }
        }
        for (env, pstates) in ordered {
            let mut files: Vec<String> = Vec::new();
            for pat in pstates {
                let mut matched: Vec<String> = Vec::new();
                match self.avail.get(env) {
                    Some(avail) => matched.extend(avail.iter().filter(|s| fnmatch(s, pat)).cloned()),
                    None => errors.push(format!("No matching pillar environment for environment '{env}' found")),
                }
                if matched.is_empty() {
                    files.push(pat.clone());
                } else {
                    files.extend(matched);
                }
            }
            let mut mods = Mods::new();
            for sls in files {
                let (pstate, err) = self.render_pstate(&sls, env, &mut mods, &Vec::new(), 0);
                errors.extend(err);
                match pstate {
                    Some(Value::Map(m)) => pillar = self.merge(pillar, m),
                    Some(_) => {
                        error!(
                            "The rendered pillar sls file, '{sls}' state did not return the expected data format. This is a sign of a malformed pillar sls file. Returned errors: {}",
                            errors.iter().map(|e| format!("'{e}'")).collect::<Vec<_>>().join(", ")
                        );
                    }
                    None => {}
                }
            }
        }
        pillar
    }

    /// `compile_pillar(ext=True)`.
    fn compile(&mut self) -> Pairs {
        let (top, top_errors) = self.get_top();
        let mut errors = Vec::new();
        let mut pillar = if opt_true(&self.opts, "ext_pillar_first") {
            let first = self.ext_pillar(self.pillar_override.clone(), &mut errors);
            // The renderers and matchers now see this as the pillar.
            let first_v = Value::Map(first.clone());
            self.opts.insert("pillar".into(), to_json(&first_v));
            // The execution modules keep the options they were loaded with;
            // the top file's matchers are loaded again.
            self.shared = JinjaShared::new(
                Json::Object(self.opts.clone()),
                self.shared.grains.as_ref().clone(),
                first_v.clone(),
                self.shared.match_pillar().clone(),
                self.roots.clone(),
            )
            .with_python(self.req.loader.cloned());
            self.match_pillar = first_v;
            let matches = self.top_matches(&top);
            let rendered = self.render_pillar(&matches, self.pillar_override.clone(), &mut errors);
            self.merge(first, rendered)
        } else {
            let matches = self.top_matches(&top);
            let p = self.render_pillar(&matches, self.pillar_override.clone(), &mut errors);
            self.ext_pillar(p, &mut errors)
        };
        errors.extend(top_errors);
        if opt_true(&self.opts, "pillar_opts") {
            let mut mopts = self.opts.clone();
            mopts.shift_remove("grains");
            mopts.insert("saltversion".into(), Json::from(SALT_VERSION));
            dict::insert(&mut pillar, Value::from("master"), from_json(&Json::Object(mopts)));
        }
        if opt_true(&self.opts, "ssh_merge_pillar") {
            if let Some(Json::Object(first)) = self.opts.get("pillar") {
                if let Value::Map(first) = from_json(&Json::Object(first.clone())) {
                    pillar = self.merge(first, pillar);
                }
            }
        }
        if !errors.is_empty() {
            for e in &errors {
                error!("Pillar render error: {e}");
            }
            dict::insert(
                &mut pillar,
                Value::from("_errors"),
                Value::Array(errors.into_iter().map(Value::from).collect()),
            );
        }
        if !self.pillar_override.is_empty() {
            pillar = self.merge(pillar, self.pillar_override.clone());
        }
        let decrypt = match self.req.loader {
            Some(client) if self.opts.get("decrypt_pillar").is_some_and(brine_py::truthy) => {
                self.decrypt_through_python(client, &mut pillar)
            }
            _ => self.decrypt_errors(&pillar),
        };
        if !decrypt.is_empty() {
            let key = Value::from("_errors");
            if dict::get(&pillar, &key).is_none() {
                pillar.push((key.clone(), Value::Array(Vec::new())));
            }
            let i = dict::position(&pillar, &key).expect("just added");
            if let Value::Array(a) = &mut pillar[i].1 {
                a.extend(decrypt.into_iter().map(Value::from));
            }
        }
        pillar
    }

    /// `decrypt_pillar` through Salt's own (`Pillar.decrypt_pillar`, its
    /// renderers in the Python loader pool): the pillar with the values
    /// decrypted, and the errors.
    fn decrypt_through_python(&self, client: &brine_loader::Client, pillar: &mut Pairs) -> Vec<String> {
        let opt = |k: &str| opt_str(&self.opts, k).map_or(Value::Nil, Value::from);
        let req = Value::map([
            ("kind", Value::from("decrypt_pillar")),
            ("pillar", Value::Map(pillar.clone())),
            ("minion_id", Value::from(self.req.id)),
            ("grains", self.req.grains.clone()),
            ("saltenv", opt("saltenv")),
            ("pillarenv", opt("pillarenv")),
        ]);
        match client.call(&req) {
            Ok(answer) => {
                if let Some(Value::Map(p)) = answer.get("pillar") {
                    *pillar = p.clone();
                }
                match answer.get("errors") {
                    Some(Value::Array(e)) => e.iter().map(brine_py::to_str).collect(),
                    _ => Vec::new(),
                }
            }
            Err(e) => vec![format!("Failed to decrypt pillar: {e}")],
        }
    }

    /// `decrypt_pillar` without Python: Brine has no decryption renderer,
    /// so each configured key present in the pillar is an error.
    fn decrypt_errors(&self, pillar: &Pairs) -> Vec<String> {
        let Some(conf) = self.opts.get("decrypt_pillar").filter(|v| brine_py::truthy(*v)) else {
            return Vec::new();
        };
        let keys: Vec<String> = match conf {
            Json::Object(m) => m.keys().cloned().collect(),
            Json::Array(a) => a
                .iter()
                .flat_map(|x| match x {
                    Json::Object(m) => m.keys().cloned().collect(),
                    Json::String(s) => vec![s.clone()],
                    _ => Vec::new(),
                })
                .collect(),
            _ => Vec::new(),
        };
        if keys.is_empty() {
            return vec!["decrypt_pillar config option is malformed".into()];
        }
        let delim = opt_str(&self.opts, "decrypt_pillar_delimiter").unwrap_or(":");
        let data = Value::Map(pillar.clone());
        keys.into_iter()
            .filter(|k| brine_targeting::traverse(&data, k, delim).is_some_and(|v| !v.is_nil()))
            .map(|k| format!("Failed to decrypt pillar key '{k}': decryption is not supported by Brine"))
            .collect()
    }
}

/// The Salt version `pillar_opts` reports as `saltversion`.
use brine_config::SALT_VERSION;

/// `_get_envs`: base first, then the `pillar_roots` environments.
fn envs(roots: &[(String, Vec<PathBuf>)]) -> Vec<String> {
    let mut out = vec!["base".to_string()];
    for (k, _) in roots {
        if !out.contains(k) {
            out.push(k.clone());
        }
    }
    out
}

/// Compile a pillar from the master options `opts` (Salt's
/// `Pillar(opts, grains, id, saltenv, pillar_override=…, pillarenv=…)
/// .compile_pillar()`).
pub fn compile_pillar(opts: &Map<String, Json>, req: &Request) -> Pairs {
    let mut p = Pillar::new(opts, req);
    p.compile()
}

/// Salt's `Pillar.get_top` for the `pillar.show_top` runner: the merged
/// top data, `{saltenv: {target: [sls or {match: ...}, ...]}}`, and the
/// errors met reading the top files.
pub fn show_top(opts: &Map<String, Json>, req: &Request) -> (Value, Vec<String>) {
    let mut p = Pillar::new(opts, req);
    let (top, errors) = p.get_top();
    let envs = top
        .into_iter()
        .map(|(env, targets)| {
            let targets = targets
                .into_iter()
                .map(|(tgt, items)| {
                    let items = items
                        .into_iter()
                        .map(|i| match i {
                            TopItem::Dict(d) => Value::Map(d),
                            TopItem::Sls(s) => Value::from(s),
                        })
                        .collect();
                    (tgt, Value::Array(items))
                })
                .collect();
            (Value::from(env), Value::Map(targets))
        })
        .collect();
    (Value::Map(envs), errors)
}

#[cfg(test)]
mod tests;
