//! The `jinja` renderer as Salt runs it for pillar (`salt.utils.templates.
//! render_jinja_tmpl`), on minijinja: Salt's context (`salt`, `grains`,
//! `opts`, `pillar`, `saltenv`, `sls`, `tpldir`…), its extensions (`do`,
//! loop controls), `StrictUndefined` unless `allow_undefined`, values
//! printed as Python prints them, Salt's filters and tests, and templates
//! imported from the environment's `pillar_roots`.
//!
//! `salt[...]` offers `grains.get/item/items/filter_by`, `pillar.get/item/
//! items/raw/filter_by`, `config.get/option` and `match.glob/pcre/list/
//! grain/grain_pcre/pillar/pillar_pcre/compound/ipcidr`; any other function
//! is a render error (Salt would run the module on the master).
//! `salt['pillar.items']()` returns the template's `pillar` (`{}`), where
//! Salt recompiles the pillar (and recurses without end).
//!
//! Filters: Jinja2's (minijinja's and minijinja-contrib's, with `int`,
//! `float`, `string`, `join`, `wordcount`, `center` redone with Python
//! semantics; no `xmlattr`, `urlize`, `wordwrap`, `random`,
//! `forceescape`) and Salt's `yaml`, `json`, `tojson`, `python`,
//! `yaml_encode`, `yaml_dquote`, `yaml_squote`, `load_yaml`, `load_json`,
//! `load_text`, `regex_search`/`match`/`replace`/`escape` (Rust regex
//! syntax: no look-around or back-references), `unique`, `to_bool`,
//! `quote`, `sequence`, `skip`, `is_list`, `is_iter`, `union`, `intersect`,
//! `difference`, `symmetric_difference`, `min`, `max`, `avg`,
//! `base64_encode`/`decode`, `md5`, `sha1`, `sha256`, `sha512`, `traverse`,
//! `path_join`, `flatten`, `to_num`, `str_to_num`, `contains_whitespace`,
//! `is_hex`, `substring_in_list`, `sorted_ignorecase`, `is_ip`, `is_ipv4`,
//! `is_ipv6`, `to_snake_case`, `to_camelcase`, `exactly_one_true`,
//! `exactly_n_true`, `dict_to_sls_yaml_params`, `to_entries`,
//! `from_entries`, `set/append/extend/update_dict_key_value`. Not there:
//! `ipaddr`/`ipv4`/`ipv6`/`network_*`, `strftime`/`date_format`, `uuid`,
//! `random_*`, `hmac`, `http_query`, `json_query`, `dns_check`, `gen_mac`,
//! `file_hashsum`, `list_files`, `which`, `combinations`/`product`/`zip`…
//! Tests: Jinja2's plus `match`, `equalto`, `list`. Globals: `raise`,
//! `odict`, `range`, `dict`, `namespace`, `cycler`, `joiner`; no `ifelse`,
//! `show_full_context`. `yaml` writes flow style always (PyYAML's
//! `yaml(False)` block style reads back the same).
//!
//! minijinja values are immutable; the lists and dicts a template keeps in
//! `set` variables are made mutable (see [`super::mutable`]), so
//! `{% do x.append(…) %}` / `x.update(…)` work as in Salt. Mutating a value
//! that never went through `set` (a grain, a literal in a loop) is a render
//! error, and so is Python's `%` string formatting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use log::debug;
use minijinja::value::{from_args, Kwargs, Object, Value as Mj, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};
use serde_json::{Map, Value as Json};

use super::pyfmt;

/// What every template of one minion's compilation shares.
pub struct JinjaShared {
    pub opts: Arc<Json>,
    pub grains: Arc<Json>,
    pub pillar: Arc<Json>,
    /// `pillar_roots` (after `__env__` handling), env → directories.
    pub roots: Arc<Vec<(String, Vec<PathBuf>)>>,
    pub opts_mj: Mj,
    pub grains_mj: Mj,
    pub pillar_mj: Mj,
    pub salt_mj: Mj,
}

impl JinjaShared {
    pub fn new(opts: Json, grains: Json, pillar: Json, roots: Vec<(String, Vec<PathBuf>)>) -> JinjaShared {
        let opts = Arc::new(opts);
        let grains = Arc::new(grains);
        let pillar = Arc::new(pillar);
        let salt_mj = Mj::from_object(SaltFuncs {
            data: Arc::new(FuncData {
                id: opts.get("id").and_then(Json::as_str).unwrap_or_default().to_string(),
                grains_v: brine_proto::json::from_json(&grains),
                pillar_v: brine_proto::json::from_json(&pillar),
                nodegroups: opts
                    .get("nodegroups")
                    .map(brine_proto::json::from_json)
                    .unwrap_or(brine_proto::Value::Nil),
                opts: opts.clone(),
                grains: grains.clone(),
                pillar: pillar.clone(),
            }),
        });
        JinjaShared {
            opts_mj: to_mj(&opts),
            grains_mj: to_mj(&grains),
            pillar_mj: to_mj(&pillar),
            salt_mj,
            opts,
            grains,
            pillar,
            roots: Arc::new(roots),
        }
    }

    fn opt_bool(&self, key: &str) -> bool {
        self.opts.get(key).is_some_and(brine_py::truthy)
    }
}

pub fn to_mj(v: &Json) -> Mj {
    Mj::from(minijinja::value::Serde(v))
}

pub fn from_mj(v: &Mj) -> Result<Json, Error> {
    serde_json::to_value(v).map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))
}

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// Salt's `generate_sls_context`: the template-path variables.
pub fn sls_context(tmplpath: &Path, sls: &str) -> Vec<(&'static str, String)> {
    let mut slspath = sls.replace('.', "/");
    let mut out = Vec::new();
    let path = tmplpath.to_string_lossy().to_string();
    let template = if sls.is_empty() {
        path.rsplit('/').next().unwrap_or("").to_string()
    } else if path.ends_with(&format!("{slspath}.sls")) {
        path[path.len() - (slspath.len() + 4)..].to_string()
    } else if path.ends_with(&format!("{slspath}/init.sls")) {
        path[path.len() - (slspath.len() + 9)..].to_string()
    } else {
        log::warn!("Failed to determine proper template path");
        path.clone()
    };
    slspath = template
        .rsplit_once('/')
        .map(|(d, _)| d.to_string())
        .unwrap_or_default();
    out.push(("tplpath", path));
    out.push(("tplfile", template));
    out.push((
        "tpldir",
        if slspath.is_empty() {
            ".".into()
        } else {
            slspath.clone()
        },
    ));
    out.push(("tpldot", slspath.replace('/', ".")));
    out.push(("slspath", slspath.clone()));
    out.push(("slsdotpath", slspath.replace('/', ".")));
    out.push(("slscolonpath", slspath.replace('/', ":")));
    out.push(("sls_path", slspath.replace('/', "_")));
    out
}

/// Jinja environment options from `jinja_sls_env` (an SLS) or
/// `jinja_env` (a top file), `jinja_trim_blocks`/`jinja_lstrip_blocks`.
fn syntax(shared: &JinjaShared, is_sls: bool) -> minijinja::syntax::SyntaxConfig {
    let mut b = minijinja::syntax::SyntaxConfig::builder();
    let key = if is_sls { "jinja_sls_env" } else { "jinja_env" };
    if let Some(Json::Object(m)) = shared.opts.get(key) {
        for (k, v) in m {
            let on = brine_py::truthy(v);
            match k.to_lowercase().as_str() {
                "trim_blocks" => {
                    b.trim_blocks(on);
                }
                "lstrip_blocks" => {
                    b.lstrip_blocks(on);
                }
                "keep_trailing_newline" => {
                    b.keep_trailing_newline(on);
                }
                other => log::warn!("Jinja2 environment {other} is not supported by Brine (ignored)"),
            }
        }
    }
    if shared.opt_bool("jinja_trim_blocks") {
        b.trim_blocks(true);
    }
    if shared.opt_bool("jinja_lstrip_blocks") {
        b.lstrip_blocks(true);
    }
    b.build().unwrap_or_default()
}

/// `os.path.normpath` of a relative `/`-path; `None` if it climbs out.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// Render `src` (the file `tmplpath`, SLS `sls` of `saltenv`) with
/// `extra` variables (an include's `defaults`). The error text is Salt's
/// `SaltRenderError` wording, as far as minijinja's errors allow.
pub fn render(
    shared: &JinjaShared,
    src: &str,
    tmplpath: &Path,
    saltenv: &str,
    sls: &str,
    extra: &Map<String, Json>,
) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_syntax(syntax(shared, !sls.is_empty()));
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(if shared.opt_bool("allow_undefined") {
        UndefinedBehavior::Lenient
    } else {
        UndefinedBehavior::Strict
    });
    env.set_recursion_limit(500);
    env.set_formatter(|out, state, value| {
        if value.is_undefined() {
            if state.undefined_behavior() == UndefinedBehavior::Strict {
                return Err(Error::from(ErrorKind::UndefinedError));
            }
            return Ok(());
        }
        if value.is_safe() || value.kind() == ValueKind::String {
            return out.write_str(value.as_str().unwrap_or_default()).map_err(Error::from);
        }
        out.write_str(&pyfmt::py_str(value)).map_err(Error::from)
    });
    // Imports: the environment's pillar_roots, first directory that has it.
    let dirs: Vec<PathBuf> = shared
        .roots
        .iter()
        .find(|(e, _)| e == saltenv)
        .map(|(_, d)| d.clone())
        .unwrap_or_default();
    // Salt's SaltCacheLoader resolves `./x` and `../x` against the
    // environment's `tpldir` global, which every template it loads by a
    // plain name resets to that template's directory.
    let tpldir = sls_context(tmplpath, sls)
        .into_iter()
        .find(|(k, _)| *k == "tpldir")
        .map(|(_, v)| v)
        .unwrap_or_else(|| ".".into());
    let base = Arc::new(std::sync::Mutex::new(ImportBase {
        dir: tpldir,
        relative: std::collections::HashSet::new(),
    }));
    let loader_base = base.clone();
    env.set_loader(move |name| {
        {
            let mut b = loader_base.lock().unwrap_or_else(|p| p.into_inner());
            if !b.relative.contains(name) {
                let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                b.dir = if dir.is_empty() { ".".into() } else { dir.to_string() };
            }
        }
        let Some(rel) = normalize(name) else {
            debug!("Discarded template path \"{name}\": attempts to ascend outside of salt://");
            return Ok(None);
        };
        for d in &dirs {
            let p = d.join(&rel);
            if p.is_file() {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| Error::new(ErrorKind::TemplateNotFound, format!("{}: {e}", p.display())))?;
                return salt_tags(&text)
                    .map(Some)
                    .map_err(|e| Error::new(ErrorKind::SyntaxError, e));
            }
        }
        Ok(None)
    });
    env.set_path_join_callback(move |name, _parent| {
        let first = name.split('/').next().unwrap_or("");
        if first != "." && first != ".." {
            return name.into();
        }
        let mut b = base.lock().unwrap_or_else(|p| p.into_inner());
        match normalize(&format!("{}/{name}", b.dir)) {
            Some(joined) => {
                b.relative.insert(joined.clone());
                joined.into()
            }
            None => {
                debug!("Discarded template path \"{name}\": attempts to ascend outside of salt://");
                name.into()
            }
        }
    });
    env.set_unknown_method_callback(py_methods);
    minijinja_contrib::add_to_environment(&mut env);
    add_filters(&mut env);
    add_tests(&mut env);
    add_globals(&mut env);

    // The context: Salt's render kwargs, then the include's defaults,
    // then (setdefault) the template-path variables.
    let mut ctx: Vec<(String, Mj)> = vec![
        ("salt".into(), shared.salt_mj.clone()),
        ("grains".into(), shared.grains_mj.clone()),
        ("opts".into(), shared.opts_mj.clone()),
        ("pillar".into(), shared.pillar_mj.clone()),
        ("saltenv".into(), Mj::from(saltenv)),
        ("sls".into(), Mj::from(sls)),
        ("proxy".into(), to_mj(&serde_json::json!({}))),
        ("_pillar_rend".into(), Mj::from(true)),
    ];
    for (k, v) in extra {
        set(&mut ctx, k, to_mj(v));
    }
    for (k, v) in sls_context(tmplpath, sls) {
        if !ctx.iter().any(|(n, _)| n == k) {
            ctx.push((k.to_string(), Mj::from(v)));
        }
    }
    for (k, v) in &ctx {
        env.add_global(k.clone(), v.clone());
    }
    let name = sls_context(tmplpath, sls)
        .into_iter()
        .find(|(k, _)| *k == "tplfile")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let src_text = salt_tags(src).map_err(|e| format!("Jinja syntax error: {e}"))?;
    let tmpl = env
        .template_from_named_str(&name, &src_text)
        .map_err(|e| describe(&e))?;
    let ctx_value = Mj::from_iter(ctx);
    let mut out = tmpl.render(ctx_value).map_err(|e| describe(&e))?;
    // Jinja drops the final newline; Salt puts it back.
    if src.ends_with('\n') && !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Salt's `SerializerExtension` tags, rewritten into plain Jinja that
/// minijinja runs (whitespace control kept):
/// `{% load_yaml as x %}…{% endload %}` (and `load_json`/`load_text`) is a
/// `set` block passed through the filter; `{% import_yaml 'f' as x %}`
/// (and `import_json`/`import_text`) a call of `__salt_import`;
/// `{% profile as 'label' %}…{% endprofile %}` is an always-true `if`.
fn salt_tags(src: &str) -> Result<String, String> {
    use std::sync::OnceLock;
    static TAG: OnceLock<regex::Regex> = OnceLock::new();
    let tag = TAG.get_or_init(|| {
        regex::Regex::new(
            r"(?s)\{%(-|\+)?\s*(load_yaml|load_json|load_text|endload|import_yaml|import_json|import_text|profile|endprofile)\b(.*?)(-|\+)?%\}",
        )
        .expect("valid regex")
    });
    if !tag.is_match(src) {
        return Ok(mutable_sets(src));
    }
    static LOAD: OnceLock<regex::Regex> = OnceLock::new();
    let load =
        LOAD.get_or_init(|| regex::Regex::new(r"(?s)^\s*as\s+([A-Za-z_][A-Za-z0-9_]*)\s*$").expect("valid regex"));
    static IMPORT: OnceLock<regex::Regex> = OnceLock::new();
    let import = IMPORT.get_or_init(|| {
        regex::Regex::new(r"(?s)^\s*(.+?)\s+as\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s+with(?:out)?\s+context)?\s*$")
            .expect("valid regex")
    });
    let mut out = String::with_capacity(src.len());
    let mut stack: Vec<(String, String)> = Vec::new();
    let mut last = 0;
    for caps in tag.captures_iter(src) {
        let whole = caps.get(0).expect("match");
        out.push_str(&src[last..whole.start()]);
        last = whole.end();
        let open = caps.get(1).map_or("", |m| m.as_str());
        let close = caps.get(4).map_or("", |m| m.as_str());
        let kind = &caps[2];
        let rest = caps.get(3).map_or("", |m| m.as_str());
        match kind {
            "load_yaml" | "load_json" | "load_text" => {
                let name = load
                    .captures(rest)
                    .map(|c| c[1].to_string())
                    .ok_or_else(|| format!("Unable to parse {kind}"))?;
                out.push_str(&format!("{{%{open} set {name} {close}%}}"));
                stack.push((name, kind.to_string()));
            }
            "endload" => {
                let (name, filter) = stack.pop().ok_or("endload without load_*")?;
                out.push_str(&format!(
                    "{{%{open} endset %}}{{% set {name} = {name}|{filter} {close}%}}"
                ));
            }
            "import_yaml" | "import_json" | "import_text" => {
                let c = import.captures(rest).ok_or_else(|| format!("Unable to parse {kind}"))?;
                let fmt = &kind[7..];
                out.push_str(&format!(
                    "{{%{open} set {} = __salt_import({}, '{fmt}') {close}%}}",
                    &c[2], &c[1]
                ));
            }
            "profile" => out.push_str(&format!("{{%{open} if true {close}%}}")),
            _ => out.push_str(&format!("{{%{open} endif {close}%}}")),
        }
    }
    out.push_str(&src[last..]);
    Ok(mutable_sets(&out))
}

/// `{% set name = expr %}` becomes `{% set name = __mut(expr) %}`, so the
/// lists and dicts a template keeps in variables can change in place
/// (see [`super::mutable`]).
fn mutable_sets(src: &str) -> String {
    use std::sync::OnceLock;
    static SET: OnceLock<regex::Regex> = OnceLock::new();
    let set = SET.get_or_init(|| {
        regex::Regex::new(r"(?s)\{%([-+]?)(\s*)set\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*([-+]?)%\}")
            .expect("valid regex")
    });
    set.replace_all(src, "{%${1}${2}set ${3} = __mut(${4}) ${5}%}")
        .into_owned()
}

/// Where relative imports are resolved (see `render`).
struct ImportBase {
    dir: String,
    /// Names produced by resolving a relative import.
    relative: std::collections::HashSet<String>,
}

fn set(ctx: &mut Vec<(String, Mj)>, k: &str, v: Mj) {
    match ctx.iter_mut().find(|(n, _)| n == k) {
        Some(slot) => slot.1 = v,
        None => ctx.push((k.to_string(), v)),
    }
}

/// `SaltRenderError`'s text for a minijinja error.
fn describe(e: &Error) -> String {
    let what = match e.kind() {
        ErrorKind::UndefinedError => "Jinja variable",
        ErrorKind::SyntaxError | ErrorKind::UnknownFilter | ErrorKind::UnknownTest | ErrorKind::UnknownBlock => {
            "Jinja syntax error:"
        }
        _ => "Jinja error:",
    };
    let mut msg = format!("{what} {}", e.detail().unwrap_or(&e.kind().to_string()));
    if let Some(line) = e.line() {
        msg.push_str(&format!("; line {line}"));
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

// ------------------------------------------------------------ salt[...]

#[derive(Debug)]
struct FuncData {
    opts: Arc<Json>,
    grains: Arc<Json>,
    pillar: Arc<Json>,
    /// For `match.*`: the minion as the matchers see it.
    id: String,
    grains_v: brine_proto::Value,
    pillar_v: brine_proto::Value,
    nodegroups: brine_proto::Value,
}

/// The `salt` variable: `salt['mod.fun'](…)` and `salt.mod.fun(…)`.
#[derive(Debug)]
struct SaltFuncs {
    data: Arc<FuncData>,
}

/// The execution-module functions a pillar template can call on Brine.
const FUNCS: &[&str] = &[
    "grains.get",
    "grains.item",
    "grains.items",
    "pillar.get",
    "pillar.item",
    "pillar.items",
    "pillar.raw",
    "config.get",
    "config.option",
    "grains.filter_by",
    "pillar.filter_by",
    "match.glob",
    "match.pcre",
    "match.list",
    "match.grain",
    "match.grain_pcre",
    "match.pillar",
    "match.pillar_pcre",
    "match.compound",
    "match.ipcidr",
];

impl Object for SaltFuncs {
    fn get_value(self: &Arc<Self>, key: &Mj) -> Option<Mj> {
        let name = key.as_str()?;
        if name.contains('.') {
            if !FUNCS.contains(&name) {
                return None;
            }
            Some(Mj::from_object(SaltFunc {
                data: self.data.clone(),
                name: name.to_string(),
            }))
        } else {
            Some(Mj::from_object(SaltModule {
                data: self.data.clone(),
                module: name.to_string(),
            }))
        }
    }
}

/// One `salt['mod.fun']`: called with Python-style arguments.
#[derive(Debug)]
struct SaltFunc {
    data: Arc<FuncData>,
    name: String,
}

impl Object for SaltFunc {
    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, args: &[Mj]) -> Result<Mj, Error> {
        call(&self.data, &self.name, args)
    }
}

#[derive(Debug)]
struct SaltModule {
    data: Arc<FuncData>,
    module: String,
}

impl Object for SaltModule {
    fn get_value(self: &Arc<Self>, key: &Mj) -> Option<Mj> {
        let name = format!("{}.{}", self.module, key.as_str()?);
        if !FUNCS.contains(&name.as_str()) {
            return None;
        }
        Some(Mj::from_object(SaltFunc {
            data: self.data.clone(),
            name,
        }))
    }

    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Mj]) -> Result<Mj, Error> {
        let name = format!("{}.{method}", self.module);
        if !FUNCS.contains(&name.as_str()) {
            return Err(unavailable(&name));
        }
        call(&self.data, &name, args)
    }
}

fn unavailable(name: &str) -> Error {
    err(format!(
        "'{name}' is not available: Brine's pillar renderer runs no execution modules but {}",
        FUNCS.join(", ")
    ))
}

/// Positional arguments and keyword arguments of a call.
fn split_args(args: &[Mj]) -> Result<(Vec<Mj>, Option<Kwargs>), Error> {
    match args.split_last() {
        Some((last, rest)) if last.is_kwargs() => Ok((rest.to_vec(), Some(Kwargs::try_from(last.clone())?))),
        _ => Ok((args.to_vec(), None)),
    }
}

/// Python-style parameter binding: `names[i]` positional or by keyword.
fn bind(name: &str, names: &[&str], args: &[Mj]) -> Result<Vec<Option<Mj>>, Error> {
    let (pos, kw) = split_args(args)?;
    if pos.len() > names.len() {
        return Err(Error::new(
            ErrorKind::TooManyArguments,
            format!("{name}() takes at most {} arguments", names.len()),
        ));
    }
    let mut out: Vec<Option<Mj>> = names.iter().map(|_| None).collect();
    for (i, v) in pos.into_iter().enumerate() {
        out[i] = Some(v);
    }
    if let Some(kw) = kw {
        for (i, n) in names.iter().enumerate() {
            if kw.has(n) {
                if out[i].is_some() {
                    return Err(err(format!("{name}() got multiple values for argument '{n}'")));
                }
                out[i] = Some(kw.get::<Mj>(n)?);
            }
        }
        for k in kw.args() {
            if !names.contains(&k) {
                return Err(err(format!("{name}() got an unexpected keyword argument '{k}'")));
            }
        }
    }
    Ok(out)
}

/// Salt's `traverse_dict_and_list`.
pub fn traverse<'a>(data: &'a Json, key: &str, delimiter: &str) -> Option<&'a Json> {
    let mut ptr = data;
    for each in key.split(delimiter) {
        ptr = match ptr {
            Json::Array(items) => {
                let embedded = items.iter().filter_map(|x| x.as_object()).find_map(|m| m.get(each));
                match (embedded, each.parse::<i64>()) {
                    (Some(v), _) => v,
                    (None, Ok(i)) => {
                        let idx = if i < 0 { items.len() as i64 + i } else { i };
                        items.get(usize::try_from(idx).ok()?)?
                    }
                    (None, Err(_)) => return None,
                }
            }
            Json::Object(m) => m.get(each)?,
            _ => return None,
        };
    }
    Some(ptr)
}

fn call(data: &FuncData, name: &str, args: &[Mj]) -> Result<Mj, Error> {
    let text = |v: &Option<Mj>, default: &str| -> String {
        v.as_ref()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| default.to_string())
    };
    match name {
        "grains.get" | "pillar.get" | "config.get" | "config.option" => {
            let names: &[&str] = match name {
                "grains.get" => &["key", "default", "delimiter", "ordered"],
                "pillar.get" => &[
                    "key",
                    "default",
                    "merge",
                    "merge_nested_lists",
                    "delimiter",
                    "pillarenv",
                    "saltenv",
                ],
                "config.option" => &[
                    "value",
                    "default",
                    "omit_opts",
                    "omit_master",
                    "omit_pillar",
                    "omit_grains",
                ],
                _ => &[
                    "key",
                    "default",
                    "delimiter",
                    "merge",
                    "omit_opts",
                    "omit_pillar",
                    "omit_master",
                    "omit_grains",
                ],
            };
            let a = bind(name, names, args)?;
            let key = a[0].as_ref().map(pyfmt::py_str).ok_or_else(|| {
                Error::new(
                    ErrorKind::MissingArgument,
                    format!("{name}() missing 1 required positional argument: 'key'"),
                )
            })?;
            let default = a[1].clone().unwrap_or_else(|| Mj::from(""));
            let delim_idx = names.iter().position(|n| *n == "delimiter");
            let delimiter = delim_idx.map(|i| text(&a[i], ":")).unwrap_or_else(|| ":".into());
            let sources: Vec<&Json> = match name {
                "grains.get" => vec![&data.grains],
                "pillar.get" => vec![&data.pillar],
                "config.option" => vec![&data.opts, &data.grains, &data.pillar],
                _ => vec![&data.opts, &data.grains, &data.pillar],
            };
            if name == "pillar.get" && a[2].as_ref().is_some_and(|m| m.is_true()) {
                return pillar_get_merge(&data.pillar, &key, &default, &delimiter, &data.opts);
            }
            for src in sources {
                let found = if name == "config.option" {
                    src.get(&key)
                } else {
                    traverse(src, &key, &delimiter)
                };
                if let Some(v) = found {
                    return Ok(to_mj(v));
                }
            }
            Ok(default)
        }
        "grains.item" | "pillar.item" => {
            let (pos, kw) = split_args(args)?;
            let src = if name == "grains.item" {
                &data.grains
            } else {
                &data.pillar
            };
            let delimiter = kw
                .as_ref()
                .and_then(|k| k.get::<Option<String>>("delimiter").ok().flatten())
                .unwrap_or_else(|| ":".into());
            let mut out = Map::new();
            for k in pos {
                let k = pyfmt::py_str(&k);
                let v = traverse(src, &k, &delimiter).cloned();
                match v {
                    Some(v) => {
                        out.insert(k, v);
                    }
                    None if name == "grains.item" => {
                        out.insert(k, Json::String(String::new()));
                    }
                    None => {}
                }
            }
            Ok(to_mj(&Json::Object(out)))
        }
        "grains.filter_by" | "pillar.filter_by" => {
            let names: &[&str] = if name == "grains.filter_by" {
                &["lookup_dict", "grain", "merge", "default", "base"]
            } else {
                &["lookup_dict", "pillar", "merge", "default", "base"]
            };
            let a = bind(name, names, args)?;
            let lookup = a[0].as_ref().map(from_mj).transpose()?.unwrap_or(Json::Null);
            let Json::Object(lookup) = lookup else {
                return Err(err(format!("{name}: lookup_dict must be a dictionary")));
            };
            let key = text(&a[1], if name == "grains.filter_by" { "os_family" } else { "" });
            let src = if name == "grains.filter_by" {
                &data.grains
            } else {
                &data.pillar
            };
            let merge = a[2].as_ref().filter(|m| !m.is_none()).map(from_mj).transpose()?;
            let default = text(&a[3], "default");
            let base = a[4].as_ref().and_then(|b| b.as_str().map(String::from));
            filter_by(&lookup, &key, src, merge, &default, base.as_deref()).map(|v| to_mj(&v))
        }
        m if m.starts_with("match.") => {
            let kind = &m[6..];
            let names: &[&str] = match kind {
                "grain" | "grain_pcre" | "pillar" | "pillar_pcre" => &["tgt", "delimiter"],
                "ipcidr" => &["tgt"],
                _ => &["tgt", "minion_id"],
            };
            let a = bind(name, names, args)?;
            let tgt = a[0].clone().unwrap_or(Mj::from(""));
            let tgt = brine_proto::json::from_json(&from_mj(&tgt)?);
            let delimiter = if names.contains(&"delimiter") {
                text(&a[1], ":")
            } else {
                ":".to_string()
            };
            let id = match names.get(1) {
                Some(&"minion_id") => a[1].as_ref().and_then(|v| v.as_str().map(String::from)),
                _ => None,
            }
            .unwrap_or_else(|| data.id.clone());
            let m = crate::targeting::MinionData {
                id: &id,
                grains: &data.grains_v,
                pillar: &data.pillar_v,
            };
            Ok(Mj::from(crate::targeting::minion_matches(
                &m,
                &tgt,
                kind,
                &delimiter,
                &data.nodegroups,
            )))
        }
        "grains.items" => Ok(to_mj(&data.grains)),
        "pillar.items" | "pillar.raw" => Ok(to_mj(&data.pillar)),
        other => Err(unavailable(other)),
    }
}

/// Salt's `salt.utils.data.filter_by`: the entry of `lookup` whose key
/// matches (exactly or as a glob) the value at `key` in `src` (each member
/// of a list value in turn), else `lookup[default]`; `base` merged under
/// it, `merge` over it.
fn filter_by(
    lookup: &Map<String, Json>,
    key: &str,
    src: &Json,
    merge: Option<Json>,
    default: &str,
    base: Option<&str>,
) -> Result<Json, Error> {
    let val = traverse(src, key, ":").cloned().unwrap_or(Json::Array(Vec::new()));
    let candidates: Vec<Json> = match val {
        Json::Array(a) => a,
        other => vec![other],
    };
    let mut ret: Option<Json> = None;
    'outer: for each in &candidates {
        let each = match each {
            Json::String(s) => s.clone(),
            other => pyfmt::py_str(&to_mj(other)),
        };
        for (k, v) in lookup {
            if each == *k || brine_py::fnmatch(&each, k) {
                ret = Some(v.clone());
                break 'outer;
            }
        }
    }
    if ret.is_none() {
        ret = lookup.get(default).cloned();
    }
    if let Some(b) = base.and_then(|b| lookup.get(b)) {
        ret = match (ret, b) {
            (None, b) => Some(b.clone()),
            (Some(Json::Object(r)), Json::Object(bm)) => Some(Json::Object(super::merge::update(bm.clone(), r, false))),
            (Some(_), Json::Object(_)) => {
                return Err(err("filter_by default and look-up values must both be dictionaries."))
            }
            (r, _) => r,
        };
    }
    if let Some(m) = merge {
        let Json::Object(mm) = m else {
            return Err(err("filter_by merge argument must be a dictionary."));
        };
        ret = match ret {
            None => Some(Json::Object(mm)),
            Some(Json::Object(r)) => Some(Json::Object(super::merge::update(r, mm, false))),
            Some(_) => return Err(err("filter_by: the looked-up value is not a dictionary to merge into")),
        };
    }
    Ok(ret.unwrap_or(Json::Null))
}

/// `pillar.get(key, default, merge=True)`.
fn pillar_get_merge(pillar: &Json, key: &str, default: &Mj, delimiter: &str, opts: &Json) -> Result<Mj, Error> {
    let merge_lists = opts.get("pillar_merge_lists").is_some_and(brine_py::truthy);
    let found = traverse(pillar, key, delimiter);
    match (from_mj(default)?, found) {
        (Json::Object(d), Some(Json::Object(f))) => {
            Ok(to_mj(&Json::Object(super::merge::update(d, f.clone(), merge_lists))))
        }
        (Json::Object(_), None) | (Json::Array(_), None) => Ok(default.clone()),
        (Json::Array(mut d), Some(Json::Array(f))) => {
            let fresh: Vec<Json> = f
                .iter()
                .filter(|x| !d.iter().any(|m| super::merge::py_eq(m, x)))
                .cloned()
                .collect();
            d.extend(fresh);
            Ok(to_mj(&Json::Array(d)))
        }
        (_, found) => {
            log::error!("pillar.get: Default is not a dict or list matching the pillar value; merge skipped");
            Ok(found.map(to_mj).unwrap_or_else(|| default.clone()))
        }
    }
}

// ------------------------------------------------------------ Python methods

/// Python methods minijinja lacks: the read-only ones pycompat provides,
/// plus a few; mutating ones fail clearly.
fn py_methods(state: &mut State, value: &Mj, method: &str, args: &[Mj]) -> Result<Mj, Error> {
    match (value.kind(), method) {
        (ValueKind::Map, "copy") | (ValueKind::Seq, "copy") => {
            let _: () = from_args(args)?;
            Ok(value.clone())
        }
        (ValueKind::Map, "has_key") => {
            let (k,): (Mj,) = from_args(args)?;
            Ok(Mj::from(value.get_item(&k).is_ok_and(|v| !v.is_undefined())))
        }
        (ValueKind::Seq, "index") => {
            let (x,): (Mj,) = from_args(args)?;
            value
                .try_iter()?
                .position(|v| v == x)
                .map(Mj::from)
                .ok_or_else(|| err(format!("{} is not in list", pyfmt::py_repr(&x))))
        }
        (ValueKind::String, "rsplit") => {
            let (sep, max): (Option<String>, Option<i64>) = from_args(args)?;
            let s = value.as_str().unwrap_or_default();
            let max = max.filter(|m| *m >= 0).map(|m| m as usize);
            let parts: Vec<Mj> = match sep {
                Some(sep) => match max {
                    Some(m) => {
                        let mut v: Vec<&str> = s.rsplitn(m + 1, sep.as_str()).collect();
                        v.reverse();
                        v.into_iter().map(Mj::from).collect()
                    }
                    None => s.split(sep.as_str()).map(Mj::from).collect(),
                },
                None => s.split_whitespace().map(Mj::from).collect(),
            };
            Ok(Mj::from(parts))
        }
        (ValueKind::String, "zfill") => {
            let (w,): (usize,) = from_args(args)?;
            let s = value.as_str().unwrap_or_default();
            let n = s.chars().count();
            if n >= w {
                return Ok(value.clone());
            }
            let (sign, rest) = match s.chars().next() {
                Some(c @ ('+' | '-')) => (c.to_string(), &s[1..]),
                _ => (String::new(), s),
            };
            Ok(Mj::from(format!("{sign}{}{rest}", "0".repeat(w - n))))
        }
        (
            ValueKind::Map | ValueKind::Seq,
            "append" | "extend" | "update" | "setdefault" | "pop" | "popitem" | "insert" | "remove" | "clear" | "sort"
            | "reverse",
        ) => Err(err(format!(
            "{method}(): Brine's Jinja (minijinja) cannot change a {} in place; build a new value instead",
            value.kind()
        ))),
        _ => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
    }
}

// ------------------------------------------------------------ filters

fn regex_for(rgx: &str, ignorecase: bool, multiline: bool) -> Result<regex::Regex, Error> {
    regex::RegexBuilder::new(rgx)
        .case_insensitive(ignorecase)
        .multi_line(multiline)
        .build()
        .map_err(|e| err(format!("invalid regular expression {rgx:?}: {e}")))
}

/// The groups of a match, as `re.Match.groups()` (3007: the whole match
/// when the pattern has no group).
fn groups(caps: regex::Captures) -> Mj {
    let items: Vec<Mj> = if caps.len() == 1 {
        vec![Mj::from(caps.get(0).map_or("", |m| m.as_str()))]
    } else {
        (1..caps.len())
            .map(|i| caps.get(i).map_or(Mj::from(()), |m| Mj::from(m.as_str())))
            .collect()
    };
    Mj::from(minijinja::value::Tuple::from(items))
}

/// Python's `re.sub` replacement syntax (`\1`, `\g<name>`) in Rust's.
fn py_replacement(val: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = val.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' {
            out.push_str("$$");
        } else if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            if n.is_ascii_digit() {
                let mut j = i + 1;
                let mut num = String::new();
                while j < chars.len() && chars[j].is_ascii_digit() && num.len() < 2 {
                    num.push(chars[j]);
                    j += 1;
                }
                out.push_str(&format!("${{{num}}}"));
                i = j;
                continue;
            }
            if n == 'g' && chars.get(i + 2) == Some(&'<') {
                if let Some(end) = chars[i + 3..].iter().position(|c| *c == '>') {
                    let name: String = chars[i + 3..i + 3 + end].iter().collect();
                    out.push_str(&format!("${{{name}}}"));
                    i += 4 + end;
                    continue;
                }
            }
            let lit = match n {
                'n' => Some('\n'),
                't' => Some('\t'),
                'r' => Some('\r'),
                '\\' => Some('\\'),
                _ => None,
            };
            match lit {
                Some(l) => out.push(l),
                None => {
                    out.push('\\');
                    out.push(n);
                }
            }
            i += 2;
            continue;
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

fn as_list(v: &Mj) -> Result<Vec<Mj>, Error> {
    Ok(v.try_iter()?.collect())
}

fn unique_list(items: Vec<Mj>) -> Vec<Mj> {
    let mut out: Vec<Mj> = Vec::new();
    for v in items {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Salt's `to_bool`.
fn to_bool(v: &Mj) -> bool {
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => false,
        ValueKind::Bool => v.is_true(),
        ValueKind::String => matches!(
            v.as_str().unwrap_or_default().to_lowercase().as_str(),
            "yes" | "1" | "true"
        ),
        ValueKind::Number if v.is_integer() => v.as_i64().is_some_and(|n| n > 0),
        ValueKind::Seq | ValueKind::Map => v.len().is_some_and(|n| n > 0),
        _ => false,
    }
}

fn load_yaml_text(s: &str) -> Result<Mj, Error> {
    brine_py::parse_yaml(s, Path::new("<load_yaml>"))
        .map(|v| to_mj(&v))
        .map_err(|e| err(format!("Encountered error loading yaml: {e}")))
}

fn digest(kind: openssl::hash::MessageDigest, s: &str) -> Result<String, Error> {
    openssl::hash::hash(kind, s.as_bytes())
        .map(hex::encode)
        .map_err(|e| err(e.to_string()))
}

/// Jinja2's `int` filter: strings as `int()` then `int(float())`,
/// `default` (0) when that fails.
fn jinja_int(v: &Mj, default: i64, base: u32) -> Mj {
    match v.kind() {
        ValueKind::String => {
            let t = v.as_str().unwrap_or_default().trim().replace('_', "");
            let (neg, body) = match t.strip_prefix('-') {
                Some(b) => (true, b.to_string()),
                None => (false, t.strip_prefix('+').unwrap_or(&t).to_string()),
            };
            let digits = match base {
                16 => body
                    .strip_prefix("0x")
                    .or_else(|| body.strip_prefix("0X"))
                    .unwrap_or(&body)
                    .to_string(),
                8 => body
                    .strip_prefix("0o")
                    .or_else(|| body.strip_prefix("0O"))
                    .unwrap_or(&body)
                    .to_string(),
                2 => body
                    .strip_prefix("0b")
                    .or_else(|| body.strip_prefix("0B"))
                    .unwrap_or(&body)
                    .to_string(),
                _ => body,
            };
            if let Ok(n) = i64::from_str_radix(&digits, base) {
                return Mj::from(if neg { -n } else { n });
            }
            match t.parse::<f64>() {
                Ok(f) if f.is_finite() => Mj::from(f.trunc() as i64),
                _ => Mj::from(default),
            }
        }
        ValueKind::Bool => Mj::from(i64::from(v.is_true())),
        ValueKind::Number if v.is_integer() => v.clone(),
        ValueKind::Number => f64::try_from(v.clone())
            .ok()
            .filter(|f| f.is_finite())
            .map_or(Mj::from(default), |f| Mj::from(f.trunc() as i64)),
        _ => Mj::from(default),
    }
}

fn add_filters(env: &mut Environment) {
    env.add_filter("int", |v: Mj, default: Option<i64>, base: Option<u32>| {
        jinja_int(&v, default.unwrap_or(0), base.unwrap_or(10))
    });
    env.add_filter("float", |v: Mj, default: Option<f64>| -> Mj {
        let d = default.unwrap_or(0.0);
        match v.kind() {
            ValueKind::String => Mj::from(v.as_str().unwrap_or_default().trim().parse::<f64>().unwrap_or(d)),
            ValueKind::Bool => Mj::from(if v.is_true() { 1.0 } else { 0.0 }),
            ValueKind::Number => Mj::from(f64::try_from(v).unwrap_or(d)),
            _ => Mj::from(d),
        }
    });
    env.add_filter("wordcount", |s: String| {
        s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .count()
    });
    env.add_filter("center", |s: String, width: Option<usize>| {
        let width = width.unwrap_or(80);
        let n = s.chars().count();
        if n >= width {
            return s;
        }
        // Python's str.center: the extra space goes right unless the
        // total padding is odd and the width is odd.
        let pad = width - n;
        let left = pad / 2 + (pad & width & 1);
        format!("{}{s}{}", " ".repeat(left), " ".repeat(pad - left))
    });
    env.add_filter("string", |v: Mj| match v.kind() {
        ValueKind::String => v,
        _ => Mj::from(pyfmt::py_str(&v)),
    });
    env.add_filter(
        "join",
        |v: Mj, d: Option<String>, kwargs: Kwargs| -> Result<Mj, Error> {
            let attribute = kwargs.get::<Option<String>>("attribute")?;
            kwargs.assert_all_used()?;
            let sep = d.unwrap_or_default();
            let mut parts = Vec::new();
            for item in v.try_iter()? {
                let item = match &attribute {
                    Some(a) => a.split('.').try_fold(item, |x, seg| match seg.parse::<usize>() {
                        Ok(i) => x.get_item_by_index(i),
                        Err(_) => x.get_attr(seg),
                    })?,
                    None => item,
                };
                parts.push(pyfmt::py_str(&item));
            }
            Ok(Mj::from(parts.join(&sep)))
        },
    );
    env.add_filter("yaml", |v: Mj, flow_style: Option<bool>| -> Result<Mj, Error> {
        if flow_style == Some(false) {
            debug!("yaml(flow_style=False) is written in flow style by Brine");
        }
        Ok(Mj::from_safe_string(pyfmt::yaml_flow(&v).map_err(err)?))
    });
    env.add_filter("json", |v: Mj, kwargs: Kwargs| -> Result<Mj, Error> {
        let sort = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(true);
        let indent = kwargs.get::<Option<usize>>("indent")?;
        kwargs.assert_all_used()?;
        Ok(Mj::from_safe_string(pyfmt::json_dumps(
            &from_mj(&v)?,
            sort,
            false,
            indent,
        )))
    });
    env.add_filter(
        "tojson",
        |v: Mj, indent: Option<usize>, kwargs: Kwargs| -> Result<Mj, Error> {
            let ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(true);
            let sort = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
            let text = pyfmt::json_dumps(&from_mj(&v)?, sort, ascii, indent)
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026")
                .replace('\'', "\\u0027");
            Ok(Mj::from_safe_string(text))
        },
    );
    env.add_filter("python", |v: Mj| Mj::from_safe_string(pyfmt::py_repr(&v)));
    env.add_filter("yaml_encode", |v: Mj| -> Result<Mj, Error> {
        Ok(Mj::from(match v.kind() {
            ValueKind::String => pyfmt::yaml_dquote(v.as_str().unwrap_or_default(), false),
            ValueKind::None | ValueKind::Undefined => "null".into(),
            ValueKind::Bool | ValueKind::Number => pyfmt::yaml_flow(&v).map_err(err)?,
            _ => {
                return Err(err(format!(
                    "yaml_encode() only works with YAML scalar data; failed for {}",
                    v.kind()
                )))
            }
        }))
    });
    env.add_filter("yaml_dquote", |v: Mj| {
        Mj::from(pyfmt::yaml_dquote(&pyfmt::py_str(&v), false))
    });
    env.add_filter("yaml_squote", |v: Mj| Mj::from(pyfmt::yaml_squote(&pyfmt::py_str(&v))));
    env.add_filter("load_yaml", |v: Mj| load_yaml_text(&pyfmt::py_str(&v)));
    env.add_filter("load_json", |v: Mj| -> Result<Mj, Error> {
        let s = pyfmt::py_str(&v);
        serde_json::from_str::<Json>(&s)
            .map(|j| to_mj(&j))
            .map_err(|_| err(format!("Unable to load json from {s}")))
    });
    env.add_filter("load_text", |v: Mj| Mj::from(pyfmt::py_str(&v)));
    env.add_filter(
        "regex_search",
        |txt: String, rgx: String, ignorecase: Option<bool>, multiline: Option<bool>| -> Result<Mj, Error> {
            let re = regex_for(&rgx, ignorecase.unwrap_or(false), multiline.unwrap_or(false))?;
            Ok(re.captures(&txt).map_or(Mj::from(()), groups))
        },
    );
    env.add_filter(
        "regex_match",
        |txt: String, rgx: String, ignorecase: Option<bool>, multiline: Option<bool>| -> Result<Mj, Error> {
            let re = regex_for(&format!("^(?:{rgx})"), ignorecase.unwrap_or(false), false)?;
            let _ = multiline;
            Ok(re.captures(&txt).map_or(Mj::from(()), groups))
        },
    );
    env.add_filter(
        "regex_replace",
        |txt: String,
         rgx: String,
         val: String,
         ignorecase: Option<bool>,
         multiline: Option<bool>|
         -> Result<Mj, Error> {
            let re = regex_for(&rgx, ignorecase.unwrap_or(false), multiline.unwrap_or(false))?;
            Ok(Mj::from(
                re.replace_all(&txt, py_replacement(&val).as_str()).into_owned(),
            ))
        },
    );
    env.add_filter("regex_escape", |s: String| Mj::from(regex::escape(&s)));
    env.add_filter("unique", |v: Mj| -> Result<Mj, Error> {
        Ok(Mj::from(unique_list(as_list(&v)?)))
    });
    env.add_filter("to_bool", |v: Mj| to_bool(&v));
    env.add_filter("quote", |s: String| -> Mj {
        if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c)) {
            Mj::from(s)
        } else {
            Mj::from(format!("'{}'", s.replace('\'', "'\"'\"'")))
        }
    });
    env.add_filter("sequence", |v: Mj| match v.kind() {
        ValueKind::Seq | ValueKind::Map => v,
        _ => Mj::from(vec![v]),
    });
    env.add_filter("skip", |_v: Mj| Mj::from(""));
    env.add_filter("is_list", |v: Mj| v.kind() == ValueKind::Seq && !v.is_tuple());
    env.add_filter("is_iter", |v: Mj| {
        matches!(v.kind(), ValueKind::Seq | ValueKind::Map | ValueKind::Iterable)
    });
    env.add_filter("union", |a: Mj, b: Mj| -> Result<Mj, Error> {
        let mut all = as_list(&a)?;
        all.extend(as_list(&b)?);
        Ok(Mj::from(unique_list(all)))
    });
    env.add_filter("intersect", |a: Mj, b: Mj| -> Result<Mj, Error> {
        let b = as_list(&b)?;
        Ok(Mj::from(unique_list(
            as_list(&a)?.into_iter().filter(|x| b.contains(x)).collect(),
        )))
    });
    env.add_filter("difference", |a: Mj, b: Mj| -> Result<Mj, Error> {
        let b = as_list(&b)?;
        Ok(Mj::from(unique_list(
            as_list(&a)?.into_iter().filter(|x| !b.contains(x)).collect(),
        )))
    });
    env.add_filter("symmetric_difference", |a: Mj, b: Mj| -> Result<Mj, Error> {
        let (a, b) = (as_list(&a)?, as_list(&b)?);
        let mut out: Vec<Mj> = a.iter().filter(|x| !b.contains(x)).cloned().collect();
        out.extend(b.iter().filter(|x| !a.contains(x)).cloned());
        Ok(Mj::from(unique_list(out)))
    });
    env.add_filter("avg", |v: Mj| -> Result<Mj, Error> {
        let items = as_list(&v)?;
        if items.is_empty() {
            return Ok(Mj::from(0.0));
        }
        let sum: f64 = items.iter().filter_map(|x| f64::try_from(x.clone()).ok()).sum();
        Ok(Mj::from(sum / items.len() as f64))
    });
    env.add_filter("base64_encode", |s: String| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    });
    env.add_filter("base64_decode", |s: String| -> Result<Mj, Error> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(|e| err(e.to_string()))?;
        Ok(String::from_utf8(bytes).map_or_else(|e| Mj::from_bytes(e.into_bytes()), Mj::from))
    });
    env.add_filter("md5", |s: String| digest(openssl::hash::MessageDigest::md5(), &s));
    env.add_filter("sha1", |s: String| digest(openssl::hash::MessageDigest::sha1(), &s));
    env.add_filter("sha256", |s: String| digest(openssl::hash::MessageDigest::sha256(), &s));
    env.add_filter("sha512", |s: String| digest(openssl::hash::MessageDigest::sha512(), &s));
    env.add_filter(
        "traverse",
        |v: Mj, key: String, default: Option<Mj>, delimiter: Option<String>| -> Result<Mj, Error> {
            let data = from_mj(&v)?;
            Ok(traverse(&data, &key, delimiter.as_deref().unwrap_or(":"))
                .map(to_mj)
                .unwrap_or_else(|| default.unwrap_or(Mj::from(()))))
        },
    );
    env.add_filter("path_join", |parts: minijinja::value::Rest<String>| {
        let mut out = String::new();
        for p in parts.iter() {
            if p.starts_with('/') {
                out = p.clone();
            } else if out.is_empty() || out.ends_with('/') {
                out.push_str(p);
            } else {
                out.push('/');
                out.push_str(p);
            }
        }
        out
    });
    env.add_filter("flatten", |v: Mj, levels: Option<i64>| -> Result<Mj, Error> {
        fn flat(items: Vec<Mj>, levels: Option<i64>, out: &mut Vec<Mj>) -> Result<(), Error> {
            for x in items {
                if x.kind() == ValueKind::Seq && levels.is_none_or(|l| l > 0) {
                    flat(as_list(&x)?, levels.map(|l| l - 1), out)?;
                } else {
                    out.push(x);
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        flat(as_list(&v)?, levels, &mut out)?;
        Ok(Mj::from(out))
    });
    env.add_filter("min", |v: Mj| -> Result<Mj, Error> {
        Ok(as_list(&v)?
            .into_iter()
            .min_by(|a, b| a.cmp(b))
            .unwrap_or(Mj::UNDEFINED))
    });
    env.add_filter("max", |v: Mj| -> Result<Mj, Error> {
        Ok(as_list(&v)?
            .into_iter()
            .max_by(|a, b| a.cmp(b))
            .unwrap_or(Mj::UNDEFINED))
    });
    env.add_filter("to_num", |v: Mj| -> Mj {
        let s = pyfmt::py_str(&v);
        if let Ok(i) = s.trim().parse::<i64>() {
            return Mj::from(i);
        }
        s.trim().parse::<f64>().map(Mj::from).unwrap_or(v)
    });
    env.add_filter("str_to_num", |v: Mj| -> Mj {
        let s = pyfmt::py_str(&v);
        s.trim().parse::<i64>().map(Mj::from).unwrap_or(v)
    });
    env.add_filter("contains_whitespace", |s: String| s.chars().any(char::is_whitespace));
    env.add_filter("is_hex", |s: String| {
        let t = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(&s);
        !t.is_empty() && t.chars().all(|c| c.is_ascii_hexdigit())
    });
    env.add_filter("substring_in_list", |s: String, list: Mj| -> Result<bool, Error> {
        Ok(as_list(&list)?
            .iter()
            .any(|x| x.as_str().is_some_and(|x| x.contains(&s))))
    });
    env.add_filter("sorted_ignorecase", |v: Mj| -> Result<Mj, Error> {
        let mut items = as_list(&v)?;
        items.sort_by_key(|x| pyfmt::py_str(x).to_lowercase());
        Ok(Mj::from(items))
    });
    env.add_filter("is_ip", |s: String| s.parse::<std::net::IpAddr>().is_ok());
    env.add_filter("is_ipv4", |s: String| s.parse::<std::net::Ipv4Addr>().is_ok());
    env.add_filter("is_ipv6", |s: String| s.parse::<std::net::Ipv6Addr>().is_ok());
    env.add_filter("to_snake_case", |s: String| {
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        }
        out
    });
    env.add_filter("to_camelcase", |s: String, uppercamel: Option<bool>| {
        let mut out = String::new();
        for (i, part) in s.split('_').enumerate() {
            let mut cs = part.chars();
            match cs.next() {
                Some(c) if i > 0 || uppercamel.unwrap_or(false) => {
                    out.extend(c.to_uppercase());
                    out.push_str(cs.as_str());
                }
                Some(c) => {
                    out.push(c);
                    out.push_str(cs.as_str());
                }
                None => {}
            }
        }
        out
    });
    env.add_filter("exactly_one_true", |v: Mj| -> Result<bool, Error> {
        Ok(as_list(&v)?.iter().filter(|x| x.is_true()).count() == 1)
    });
    env.add_filter("exactly_n_true", |v: Mj, n: Option<usize>| -> Result<bool, Error> {
        Ok(as_list(&v)?.iter().filter(|x| x.is_true()).count() == n.unwrap_or(1))
    });
    env.add_filter("dict_to_sls_yaml_params", |v: Mj| -> Result<Mj, Error> {
        let mut lines = Vec::new();
        for k in as_list(&v)? {
            let val = v.get_item(&k)?;
            lines.push(format!(
                "- {}: {}",
                pyfmt::yaml_flow(&k).map_err(err)?,
                pyfmt::yaml_flow(&val).map_err(err)?
            ));
        }
        Ok(Mj::from_safe_string(lines.join("\n")))
    });
    env.add_filter("to_entries", |v: Mj| -> Result<Mj, Error> {
        let mut out = Vec::new();
        for k in as_list(&v)? {
            let val = v.get_item(&k)?;
            out.push(Mj::from_iter([("key".to_string(), k), ("value".to_string(), val)]));
        }
        Ok(Mj::from(out))
    });
    env.add_filter("from_entries", |v: Mj| -> Result<Mj, Error> {
        let mut out: Vec<(Mj, Mj)> = Vec::new();
        for e in as_list(&v)? {
            let k = ["key", "k", "name", "Name", "Key"]
                .iter()
                .find_map(|n| e.get_attr(n).ok().filter(|x| !x.is_undefined()));
            let val = ["value", "v", "Value"]
                .iter()
                .find_map(|n| e.get_attr(n).ok().filter(|x| !x.is_undefined()));
            out.push((k.unwrap_or(Mj::from(())), val.unwrap_or(Mj::from(()))));
        }
        Ok(Mj::from_iter(out))
    });
    for name in [
        "set_dict_key_value",
        "append_dict_key_value",
        "extend_dict_key_value",
        "update_dict_key_value",
    ] {
        env.add_filter(
            name,
            move |d: Mj, keys: String, value: Mj, delimiter: Option<String>| -> Result<Mj, Error> {
                let mut data = from_mj(&d)?;
                let value = from_mj(&value)?;
                let delim = delimiter.unwrap_or_else(|| ":".into());
                dict_key_op(name, &mut data, &keys, value, &delim).map_err(err)?;
                Ok(to_mj(&data))
            },
        );
    }
}

/// Salt's `set_dict_key_value` family, on a copy (minijinja values are
/// immutable: the filter's result is what changed).
fn dict_key_op(op: &str, data: &mut Json, keys: &str, value: Json, delim: &str) -> Result<(), String> {
    let parts: Vec<&str> = keys.split(delim).collect();
    let (last, path) = parts.split_last().ok_or("no key")?;
    let mut ptr = data;
    for p in path {
        let m = ptr.as_object_mut().ok_or("not a dict")?;
        if !m.get(*p).is_some_and(Json::is_object) {
            m.insert((*p).to_string(), Json::Object(Map::new()));
        }
        ptr = m.get_mut(*p).ok_or("missing")?;
    }
    let m = ptr.as_object_mut().ok_or("not a dict")?;
    match op {
        "set_dict_key_value" => {
            m.insert((*last).to_string(), value);
        }
        "update_dict_key_value" => {
            let slot = m.entry((*last).to_string()).or_insert(Json::Null);
            if slot.is_null() {
                *slot = Json::Object(Map::new());
            }
            let (Json::Object(t), Json::Object(v)) = (slot, value) else {
                return Err("The last key contains a non-dict, which cannot update.".into());
            };
            for (k, x) in v {
                t.insert(k, x);
            }
        }
        _ => {
            let slot = m.entry((*last).to_string()).or_insert(Json::Null);
            if slot.is_null() {
                *slot = Json::Array(Vec::new());
            }
            let Json::Array(t) = slot else {
                return Err("The last key contains a non-list, which cannot append.".into());
            };
            match (op, value) {
                ("extend_dict_key_value", Json::Array(v)) => t.extend(v),
                ("extend_dict_key_value", _) => return Err("Cannot extend a list with a non-list".into()),
                (_, v) => t.push(v),
            }
        }
    }
    Ok(())
}

fn add_tests(env: &mut Environment) {
    env.add_test(
        "match",
        |txt: String, rgx: String, ignorecase: Option<bool>, multiline: Option<bool>| -> Result<bool, Error> {
            let re = regex_for(
                &format!("^(?:{rgx})"),
                ignorecase.unwrap_or(false),
                multiline.unwrap_or(false),
            )?;
            Ok(re.is_match(&txt))
        },
    );
    env.add_test("equalto", |a: Mj, b: Mj| a == b);
    env.add_test("list", |v: Mj| v.kind() == ValueKind::Seq && !v.is_tuple());
}

fn add_globals(env: &mut Environment) {
    env.add_function("__mut", super::mutable::mutable);
    env.add_function(
        "__salt_import",
        |state: &State, name: String, fmt: String| -> Result<Mj, Error> {
            let text = state.get_template(&name)?.render(())?;
            match fmt.as_str() {
                "yaml" => load_yaml_text(&text),
                "json" => serde_json::from_str::<Json>(&text)
                    .map(|j| to_mj(&j))
                    .map_err(|_| err(format!("Unable to load json from {text}"))),
                _ => Ok(Mj::from(text)),
            }
        },
    );
    env.add_function("raise", |msg: Mj| -> Result<Mj, Error> {
        Err(err(pyfmt::py_str(&msg)))
    });
    env.add_function("odict", |args: &[Mj]| -> Result<Mj, Error> {
        let (pos, kw) = split_args(args)?;
        let mut out: Vec<(Mj, Mj)> = Vec::new();
        if let Some(first) = pos.first() {
            if first.kind() == ValueKind::Map {
                for k in as_list(first)? {
                    let v = first.get_item(&k)?;
                    out.push((k, v));
                }
            } else {
                for pair in as_list(first)? {
                    let items = as_list(&pair)?;
                    if let [k, v] = items.as_slice() {
                        out.push((k.clone(), v.clone()));
                    }
                }
            }
        }
        if let Some(kw) = kw {
            for k in kw.args() {
                out.push((Mj::from(k), kw.get::<Mj>(k)?));
            }
        }
        Ok(Mj::from_iter(out))
    });
}
