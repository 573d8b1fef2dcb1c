//! Which modules run through Python, and whether the pool is needed.
//!
//! For each module the configuration names, Brine uses its native
//! implementation where it has one, else Salt's Python module. A custom
//! module of the same name in the directories Salt's loader searches
//! first (`extension_modules/<type>/`, `<tag>_dirs`, `module_dirs`)
//! overrides a native one, as it overrides Salt's built-in one.
//! `loader_source: {<type>: native|python|auto}` forces either per module
//! type (`native` never asks Python, `python` always does).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use brine_cache::{LOCALFS, LOCAL_CACHE, PGJSONB};
use serde_json::{Map, Value as Json};

/// The master's options (`MasterConfig::raw`).
pub type Opts = Map<String, Json>;

fn str_list(opts: &Opts, key: &str) -> Vec<String> {
    match opts.get(key) {
        Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).map(String::from).collect(),
        Some(Json::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The loader types Brine can send to Python, by Salt's directory names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModuleType {
    /// `ext_pillar` modules (`salt.loader.pillars`).
    Pillar,
    /// `master_tops` modules (`salt.loader.tops`).
    Tops,
    /// Runner modules (`salt.loader.runner`).
    Runners,
    /// Returners (`salt.loader.returners`): `master_job_cache`,
    /// `ext_job_cache`, `event_return`.
    Returners,
    /// The minion data cache's driver (`salt.loader.cache`): `cache`.
    Cache,
    /// Wheel modules (`salt.loader.wheels`).
    Wheel,
    /// eauth backends (`salt.loader.auth`): `external_auth`'s keys.
    Auth,
}

impl ModuleType {
    /// The directory under `extension_modules` (Salt's `ext_type`).
    pub fn dir(self) -> &'static str {
        match self {
            ModuleType::Pillar => "pillar",
            ModuleType::Tops => "tops",
            ModuleType::Runners => "runners",
            ModuleType::Returners => "returners",
            ModuleType::Cache => "cache",
            ModuleType::Wheel => "wheel",
            ModuleType::Auth => "auth",
        }
    }

    /// The option naming more directories (Salt's `<tag>_dirs`).
    fn dirs_option(self) -> &'static str {
        match self {
            ModuleType::Pillar => "pillar_dirs",
            ModuleType::Tops => "top_dirs",
            ModuleType::Runners => "runner_dirs",
            ModuleType::Returners => "returner_dirs",
            ModuleType::Cache => "cache_dirs",
            ModuleType::Wheel => "wheel_dirs",
            ModuleType::Auth => "auth_dirs",
        }
    }

    /// Its key in `loader_source`.
    pub fn key(self) -> &'static str {
        match self {
            ModuleType::Pillar => "pillar",
            ModuleType::Tops => "tops",
            ModuleType::Runners => "runners",
            ModuleType::Returners => "returners",
            ModuleType::Cache => "cache",
            ModuleType::Wheel => "wheel",
            ModuleType::Auth => "auth",
        }
    }

    pub const ALL: [ModuleType; 7] = [
        ModuleType::Pillar,
        ModuleType::Tops,
        ModuleType::Runners,
        ModuleType::Returners,
        ModuleType::Cache,
        ModuleType::Wheel,
        ModuleType::Auth,
    ];
}

/// `loader_source` for one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Auto,
    Native,
    Python,
}

/// The configured source for `ty` (`auto` when unset or not understood).
pub fn source(opts: &Opts, ty: ModuleType) -> Source {
    let v = opts
        .get("loader_source")
        .and_then(|m| m.get(ty.key()))
        .and_then(Json::as_str);
    match v.map(str::to_ascii_lowercase).as_deref() {
        Some("native") => Source::Native,
        Some("python") => Source::Python,
        _ => Source::Auto,
    }
}

/// The directories Salt's loader searches for custom modules of `ty`
/// before its own: `module_dirs`' `<type>`/`_<type>` subdirectories, the
/// `<tag>_dirs` option, then `extension_modules/<type>`.
pub fn custom_dirs(opts: &Opts, ty: ModuleType) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in str_list(opts, "module_dirs") {
        for sub in [ty.dir().to_string(), format!("_{}", ty.dir())] {
            let p = Path::new(&d).join(sub);
            if p.is_dir() {
                out.push(p);
                break;
            }
        }
    }
    for d in str_list(opts, ty.dirs_option()) {
        out.push(PathBuf::from(d));
    }
    if let Some(ext) = opts
        .get("extension_modules")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
    {
        out.push(Path::new(ext).join(ty.dir()));
    }
    out
}

/// Whether a custom module named `name` exists for `ty`: a file
/// `<name>.py` (or `.pyc`, `.so`), a package `<name>/`, or a module whose
/// `__virtualname__` is `name`.
pub fn has_custom(opts: &Opts, ty: ModuleType, name: &str) -> bool {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return false;
    }
    custom_dirs(opts, ty).iter().any(|d| dir_has_module(d, name))
}

fn dir_has_module(dir: &Path, name: &str) -> bool {
    dir_modules(dir).contains(name)
}

/// The module names `dir` offers: its `<name>.py`/`.pyc`/`.so` files, its
/// packages, and the `__virtualname__` of each `.py`. `use_python` runs
/// for every `ext_pillar` entry of every pillar compilation, so the names
/// are read again only when the directory's mtime changes (a module added,
/// removed or renamed, as `saltutil.sync_*` does); none when it is missing.
fn dir_modules(dir: &Path) -> Arc<HashSet<String>> {
    type Cache = HashMap<PathBuf, (SystemTime, Arc<HashSet<String>>)>;
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let Ok(mtime) = fs::metadata(dir).and_then(|m| m.modified()) else {
        return Arc::default();
    };
    let cache = CACHE.get_or_init(Default::default);
    if let Some((seen, names)) = cache.lock().ok().and_then(|c| c.get(dir).cloned()) {
        if seen == mtime {
            return names;
        }
    }
    let mut names = HashSet::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let ext = p.extension().and_then(|x| x.to_str());
        if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
            if matches!(ext, Some("py" | "pyc" | "so")) {
                names.insert(stem.to_string());
            }
        }
        if p.join("__init__.py").is_file() {
            names.extend(p.file_name().and_then(|n| n.to_str()).map(String::from));
        }
        if ext == Some("py") {
            names.extend(fs::read_to_string(&p).ok().and_then(|text| virtualname(&text)));
        }
    }
    let names = Arc::new(names);
    if let Ok(mut c) = cache.lock() {
        c.insert(dir.to_path_buf(), (mtime, names.clone()));
    }
    names
}

/// A module's `__virtualname__ = "..."`, as written at the start of a line.
fn virtualname(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let rest = l
            .strip_prefix("__virtualname__")?
            .trim_start()
            .strip_prefix('=')?
            .trim();
        let q = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let inner = &rest[1..];
        Some(inner[..inner.find(q)?].to_string())
    })
}

/// Whether module `name` of type `ty` runs through Python, given whether
/// Brine has it natively.
pub fn use_python(opts: &Opts, ty: ModuleType, name: &str, native: bool) -> bool {
    match source(opts, ty) {
        Source::Native => false,
        Source::Python => true,
        Source::Auto => !native || has_custom(opts, ty, name),
    }
}

/// `python_loader`: `auto` (start the pool when a module needs it),
/// `always`, `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Always,
    Never,
}

pub fn mode(opts: &Opts) -> Mode {
    match opts.get("python_loader") {
        Some(Json::Bool(false)) => Mode::Never,
        Some(Json::Bool(true)) => Mode::Always,
        Some(Json::String(s)) => match s.to_ascii_lowercase().as_str() {
            "always" | "true" | "yes" => Mode::Always,
            "never" | "false" | "no" | "off" => Mode::Never,
            _ => Mode::Auto,
        },
        _ => Mode::Auto,
    }
}

/// What the configuration asks of Python.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The configured modules that need Python, as `type:name`.
    pub modules: Vec<String>,
    /// Whether the pool should run.
    pub pool: bool,
    /// The engines Python runs, each a process of its own: the name in
    /// `engines:` and its options.
    pub engines: Vec<(String, Json)>,
}

/// The plan for `cfg`. `native_pillar` tells which `ext_pillar` modules
/// Brine has natively.
pub fn plan(opts: &Opts, native_pillar: &dyn Fn(&str) -> bool) -> Plan {
    plan_with(opts, native_pillar, Vec::new())
}

/// The eauth backends Brine has natively (brine-auth's `eauth::backend`
/// serves these names).
pub const NATIVE_EAUTH: &[&str] = &["auto", "file", "pam"];

/// The eauth backends `external_auth` enables that run through Python.
pub fn python_eauth(opts: &Opts) -> Vec<String> {
    match opts.get("external_auth") {
        Some(Json::Object(m)) => m
            .keys()
            .filter(|name| use_python(opts, ModuleType::Auth, name, NATIVE_EAUTH.contains(&name.as_str())))
            .cloned()
            .collect(),
        _ => Vec::new(),
    }
}

/// [`plan`], with more that needs Python (`renderer:gpg`,
/// `execution:cp.get_file_str`: what the pillar tree uses that Brine
/// does not have).
pub fn plan_with(opts: &Opts, native_pillar: &dyn Fn(&str) -> bool, more: Vec<String>) -> Plan {
    let mut modules = Vec::new();
    for name in ext_pillar_names(opts) {
        if use_python(opts, ModuleType::Pillar, &name, native_pillar(&name)) {
            modules.push(format!("pillar:{name}"));
        }
    }
    for name in master_tops_names(opts) {
        if use_python(opts, ModuleType::Tops, &name, false) {
            modules.push(format!("tops:{name}"));
        }
    }
    for name in returner_names(opts) {
        if use_python(opts, ModuleType::Returners, &name, native_returner(&name)) {
            modules.push(format!("returners:{name}"));
        }
    }
    modules.extend(python_eauth(opts).into_iter().map(|n| format!("auth:{n}")));
    let driver = cache_driver(opts);
    if use_python(opts, ModuleType::Cache, &driver, driver == LOCALFS) {
        modules.push(format!("cache:{driver}"));
    }
    for ty in [ModuleType::Runners, ModuleType::Wheel] {
        for dir in custom_dirs(opts, ty) {
            if has_python_files(&dir) {
                modules.push(format!("{}:{}", ty.key(), dir.display()));
            }
        }
    }
    modules.extend(more);
    modules.dedup();
    let pool = match mode(opts) {
        Mode::Never => false,
        Mode::Always => true,
        Mode::Auto => !modules.is_empty(),
    };
    let engines = if mode(opts) == Mode::Never {
        Vec::new()
    } else {
        engines(opts)
    };
    modules.extend(engines.iter().map(|(name, _)| format!("engines:{name}")));
    Plan { modules, pool, engines }
}

/// `engines:` as Salt's `start_engines` reads it (a list of names or
/// one-key maps of a name to its options, or one map), without the
/// `reactor` engine, which is Brine's Reactor process.
pub fn engines(opts: &Opts) -> Vec<(String, Json)> {
    let entries: Vec<(String, Json)> = match opts.get("engines") {
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Json::String(name) => Some((name.clone(), Json::Object(Map::new()))),
                Json::Object(m) => m.iter().next().map(|(k, v)| (k.clone(), v.clone())),
                _ => None,
            })
            .collect(),
        Some(Json::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    };
    entries.into_iter().filter(|(name, _)| name != "reactor").collect()
}

fn has_python_files(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let p = e.path();
            p.extension().is_some_and(|x| x == "py") || p.join("__init__.py").is_file()
        })
    })
}

/// The module names of the `ext_pillar` list (each entry a one-key map),
/// and of `on_demand_ext_pillar`.
pub fn ext_pillar_names(opts: &Opts) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(Json::Array(items)) = opts.get("ext_pillar") {
        for item in items {
            if let Json::Object(m) = item {
                out.extend(m.keys().cloned());
            }
        }
    }
    out
}

/// The minion data cache's driver (`cache`, default `localfs`).
pub fn cache_driver(opts: &Opts) -> String {
    match opts.get("cache") {
        Some(Json::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => LOCALFS.to_string(),
    }
}

/// The returners Brine has of its own: Salt's `local_cache`, and
/// `pgjsonb` (as job cache and event returner).
pub fn native_returner(name: &str) -> bool {
    name == LOCAL_CACHE || name == PGJSONB
}

/// The returners the master itself calls: `master_job_cache` (when set),
/// `ext_job_cache`, and each of `event_return` (a name, a comma-separated
/// list or a list), in that order, without repeats.
pub fn returner_names(opts: &Opts) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        let name = name.trim();
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    };
    for key in ["master_job_cache", "ext_job_cache"] {
        if let Some(Json::String(s)) = opts.get(key) {
            add(s);
        }
    }
    for name in event_returners(opts) {
        add(&name);
    }
    out
}

/// `event_return`: a returner name, a comma-separated list of them, or a
/// list (Salt's EventReturn accepts all three).
pub fn event_returners(opts: &Opts) -> Vec<String> {
    match opts.get("event_return") {
        Some(Json::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(Json::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// The modules `master_tops` enables (its keys).
pub fn master_tops_names(opts: &Opts) -> Vec<String> {
    match opts.get("master_tops") {
        Some(Json::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, extra: Json) -> Opts {
        let mut o = serde_json::Map::new();
        o.insert(
            "extension_modules".into(),
            Json::from(dir.join("ext").to_str().unwrap()),
        );
        if let Json::Object(m) = extra {
            o.extend(m);
        }
        o
    }

    #[test]
    fn virtualname_is_read_as_python_writes_it() {
        assert_eq!(
            virtualname("x = 1\n__virtualname__ = 'vault'\n").as_deref(),
            Some("vault")
        );
        assert_eq!(virtualname("__virtualname__=\"a b\"").as_deref(), Some("a b"));
        assert_eq!(virtualname("  __virtualname__ = 'indented'"), None);
        assert_eq!(virtualname("__virtualname__ = name"), None);
    }

    #[test]
    fn custom_modules_override_native_ones_and_loader_source_forces() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(
            d.path(),
            serde_json::json!({
                "ext_pillar": [{"cmd_yaml": "echo"}, {"mine": {"a": 1}}, {"file_tree": {}}],
                "master_tops": {"ext_nodes": "cobbler"},
            }),
        );
        let native = |n: &str| n == "cmd_yaml" || n == "file_tree";
        let ext = PathBuf::from(c["extension_modules"].as_str().unwrap());
        fs::create_dir_all(ext.join("pillar")).unwrap();
        fs::write(ext.join("pillar/renamed.py"), "__virtualname__ = 'file_tree'\n").unwrap();
        let p = plan(&c, &native);
        assert_eq!(p.modules, ["pillar:mine", "pillar:file_tree", "tops:ext_nodes"]);
        assert!(p.pool);

        let mut forced = cfg(
            d.path(),
            serde_json::json!({
                "ext_pillar": [{"cmd_yaml": "echo"}, {"mine": {}}],
                "loader_source": {"pillar": "native"},
            }),
        );
        assert_eq!(plan(&forced, &native), Plan::default());
        forced = cfg(
            d.path(),
            serde_json::json!({"ext_pillar": [{"cmd_yaml": "echo"}], "loader_source": {"pillar": "python"}}),
        );
        assert_eq!(plan(&forced, &native).modules, ["pillar:cmd_yaml"]);
    }

    #[test]
    fn the_pool_follows_python_loader() {
        let d = tempfile::tempdir().unwrap();
        let none = |_: &str| true;
        assert!(!plan(&cfg(d.path(), serde_json::json!({})), &none).pool);
        assert!(plan(&cfg(d.path(), serde_json::json!({"python_loader": "always"})), &none).pool);
        let never = cfg(
            d.path(),
            serde_json::json!({"python_loader": false, "master_tops": {"x": true}}),
        );
        let p = plan(&never, &none);
        assert_eq!((p.modules.len(), p.pool), (1, false));
        let e = plan(
            &cfg(
                d.path(),
                serde_json::json!({"engines": ["webhook", {"reactor": {}}, {"tick": {"interval": 1}}]}),
            ),
            &none,
        );
        assert_eq!(e.modules, ["engines:webhook", "engines:tick"]);
        assert_eq!(e.engines[1], ("tick".to_string(), serde_json::json!({"interval": 1})));
        assert!(!e.pool, "engines run in processes of their own, not in the pool");
        let ext = d.path().join("ext/runners");
        fs::create_dir_all(&ext).unwrap();
        fs::write(ext.join("custom.py"), "def hello():\n    return 1\n").unwrap();
        assert!(plan(&cfg(d.path(), serde_json::json!({})), &none).pool);
    }

    #[test]
    fn the_returners_the_master_calls() {
        let d = tempfile::tempdir().unwrap();
        let none = |_: &str| true;
        let c = cfg(
            d.path(),
            serde_json::json!({"master_job_cache": "redis", "ext_job_cache": "", "event_return": "redis, mysql"}),
        );
        assert_eq!(returner_names(&c), ["redis", "mysql"]);
        assert_eq!(plan(&c, &none).modules, ["returners:redis", "returners:mysql"]);
        let local = cfg(
            d.path(),
            serde_json::json!({"master_job_cache": "local_cache", "event_return": ["x"]}),
        );
        assert_eq!(plan(&local, &none).modules, ["returners:x"]);
        assert_eq!(event_returners(&local), ["x"]);
    }

    #[test]
    fn the_cache_driver_goes_to_python_when_brine_lacks_it_or_it_is_overridden() {
        let d = tempfile::tempdir().unwrap();
        let none = |_: &str| true;
        assert!(plan(&cfg(d.path(), serde_json::json!({})), &none).modules.is_empty());
        let redis = cfg(d.path(), serde_json::json!({"cache": "redis"}));
        assert_eq!(plan(&redis, &none).modules, ["cache:redis"]);
        let ext = d.path().join("ext/cache");
        fs::create_dir_all(&ext).unwrap();
        fs::write(ext.join("localfs.py"), "def store(bank, key, data):\n    pass\n").unwrap();
        assert_eq!(
            plan(&cfg(d.path(), serde_json::json!({})), &none).modules,
            ["cache:localfs"]
        );
    }
}
