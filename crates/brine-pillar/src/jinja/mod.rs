//! The `jinja` renderer as Salt runs it for pillar (`salt.utils.templates.
//! render_jinja_tmpl`), on minijinja: Salt's context (`salt`, `grains`,
//! `opts`, `pillar`, `saltenv`, `sls`, `tpldir`…), its extensions (`do`,
//! loop controls), `StrictUndefined` unless `allow_undefined`, values
//! printed as Python prints them, Salt's filters and tests, and templates
//! imported from the environment's `pillar_roots`.
//!
//! `salt[...]` offers `grains.get/item/items/filter_by`, `pillar.get/item/
//! items/raw/filter_by`, `config.get/option` and `match.glob/pcre/list/
//! grain/grain_pcre/pillar/pillar_pcre/compound/ipcidr/data/filter_by/
//! search_by/ifelse`, for the minion being compiled (its id, grains; the
//! pillar matchers see the options' `pillar` as Salt's loaded modules do);
//! any other function is a render error (Salt would run the module on the
//! master).
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
//! `set` variables are made mutable (see [`crate::mutable`]), so
//! `{% do x.append(…) %}` / `x.update(…)` work as in Salt. Mutating a value
//! that never went through `set` (a grain, a literal in a loop) is a render
//! error, and so is Python's `%` string formatting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use brine_proto::Value as Msg;
use brine_py::dict::Pairs;
use indexmap::IndexMap;
use log::debug;
use minijinja::value::{Value as Mj, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::Value as Json;

use super::pyfmt;

mod filters;
mod funcs;

use filters::{add_filters, add_globals, add_tests, py_methods};
pub use funcs::python_functions;
use funcs::{split_args, FuncData, SaltFuncs};

/// What every template of one minion's compilation shares.
pub struct JinjaShared {
    pub opts: Arc<Json>,
    pub grains: Arc<Msg>,
    pub pillar: Arc<Msg>,
    /// `pillar_roots` (after `__env__` handling), env → directories.
    pub roots: Arc<Vec<(String, Vec<PathBuf>)>>,
    pub opts_mj: Mj,
    pub grains_mj: Mj,
    pub pillar_mj: Mj,
    pub salt_mj: Mj,
    /// More variables every template sees, made once (the reactor's
    /// `__opts__`), before the per-render ones.
    pub globals: Vec<(String, Mj)>,
    salt_data: Arc<FuncData>,
}

impl JinjaShared {
    /// `pillar` is the templates' `pillar` (and `salt['pillar.*']`'s);
    /// `match_pillar` what `salt['match.pillar']` and friends match, the
    /// `__opts__["pillar"]` Salt's execution modules were loaded with.
    pub fn new(
        opts: Json,
        grains: Msg,
        pillar: Msg,
        match_pillar: Msg,
        roots: Vec<(String, Vec<PathBuf>)>,
    ) -> JinjaShared {
        let opts = Arc::new(opts);
        let grains = Arc::new(grains);
        let pillar = Arc::new(pillar);
        let salt_data = Arc::new(FuncData {
            // The minion's: Pillar's options have it as `minion_id` (and as
            // `id`, but for the ext_pillar modules' options).
            id: opts
                .get("minion_id")
                .or_else(|| opts.get("id"))
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string(),
            nodegroups: opts
                .get("nodegroups")
                .map(brine_proto::json::from_json)
                .unwrap_or(Msg::Nil),
            opts_v: brine_proto::json::from_json(&opts),
            opts: opts.clone(),
            grains: grains.clone(),
            pillar: pillar.clone(),
            match_pillar: Arc::new(match_pillar),
            python: None,
        });
        let salt_mj = Mj::from_object(SaltFuncs {
            data: salt_data.clone(),
        });
        JinjaShared {
            salt_data,
            opts_mj: to_mj(&opts),
            grains_mj: from_msg(&grains),
            pillar_mj: from_msg(&pillar),
            salt_mj,
            globals: Vec::new(),
            opts,
            grains,
            pillar,
            roots: Arc::new(roots),
        }
    }

    /// Renderers and `salt[...]` functions Brine does not have, through
    /// Salt's own in the Python loader pool (a pillar's renderers).
    pub fn with_python(mut self, client: Option<brine_loader::Client>) -> JinjaShared {
        let mut data = (*self.salt_data).clone();
        data.python = client;
        self.salt_data = Arc::new(data);
        self.salt_mj = Mj::from_object(SaltFuncs {
            data: self.salt_data.clone(),
        });
        self
    }

    /// The Python loader pool, when these templates may call it.
    pub fn python(&self) -> Option<&brine_loader::Client> {
        self.salt_data.python.as_ref()
    }

    /// What the `match.*` functions match as the pillar.
    pub fn match_pillar(&self) -> &Msg {
        &self.salt_data.match_pillar
    }

    fn opt_bool(&self, key: &str) -> bool {
        self.opts.get(key).is_some_and(brine_py::truthy)
    }
}

/// A JSON value (the master's options) as a template sees it.
pub fn to_mj(v: &Json) -> Mj {
    Mj::from(minijinja::value::Serde(v))
}

/// A template's value as JSON, as Python's `json.dumps` writes it (map
/// keys as text).
pub fn from_mj(v: &Mj) -> Result<Json, Error> {
    serde_json::to_value(v).map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))
}

/// A msgpack value (grains, pillar data) as a template sees it: maps keep
/// the type of their keys (`pillar[12345]`), bytes stay bytes.
pub fn from_msg(v: &Msg) -> Mj {
    match v {
        Msg::Nil | Msg::Ext(..) => Mj::from(()),
        Msg::Bool(b) => Mj::from(*b),
        Msg::Int(i) => Mj::from(*i),
        Msg::UInt(u) => Mj::from(*u),
        Msg::F32(f) => Mj::from(f64::from(*f)),
        Msg::F64(f) => Mj::from(*f),
        Msg::Str(s) => Mj::from(s.as_str()),
        Msg::Bytes(b) => Mj::from_bytes(b.clone()),
        Msg::Array(a) => Mj::from(a.iter().map(from_msg).collect::<Vec<Mj>>()),
        Msg::Map(pairs) => Mj::from_object(
            pairs
                .iter()
                .map(|(k, v)| (from_msg(k), from_msg(v)))
                .collect::<IndexMap<Mj, Mj>>(),
        ),
    }
}

/// A template's value as msgpack: the Python object Salt would keep
/// (map keys keep their type; undefined is None).
pub fn to_msg(v: &Mj) -> Result<Msg, Error> {
    Ok(match v.kind() {
        ValueKind::Undefined | ValueKind::None => Msg::Nil,
        ValueKind::Bool => Msg::Bool(v.is_true()),
        ValueKind::Number if v.is_integer() => {
            if let Ok(i) = i64::try_from(v.clone()) {
                Msg::Int(i)
            } else if let Ok(u) = u64::try_from(v.clone()) {
                Msg::UInt(u)
            } else {
                Msg::Str(v.to_string())
            }
        }
        ValueKind::Number => Msg::F64(f64::try_from(v.clone())?),
        ValueKind::String => Msg::Str(v.as_str().unwrap_or_default().to_string()),
        ValueKind::Bytes => Msg::Bytes(v.as_bytes().unwrap_or_default().to_vec()),
        ValueKind::Map => {
            let mut out = Vec::new();
            for k in v.try_iter()? {
                let item = v.get_item(&k)?;
                out.push((to_msg(&k)?, to_msg(&item)?));
            }
            Msg::Map(out)
        }
        ValueKind::Seq | ValueKind::Iterable => {
            Msg::Array(v.try_iter()?.map(|x| to_msg(&x)).collect::<Result<_, _>>()?)
        }
        _ => {
            return Err(Error::new(
                ErrorKind::BadSerialization,
                format!("cannot keep a {} as data", v.kind()),
            ))
        }
    })
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
    extra: &Pairs,
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
    for (k, v) in &shared.globals {
        set(&mut ctx, k, v.clone());
    }
    for (k, v) in extra {
        set(&mut ctx, &brine_py::to_str(k), from_msg(v));
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
/// (see [`crate::mutable`]).
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
