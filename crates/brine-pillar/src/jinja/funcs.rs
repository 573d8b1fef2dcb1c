//! `salt[...]` in pillar templates: the execution-module functions Brine
//! offers on the master (`grains.*`, `pillar.*`, `config.*`, `match.*`),
//! and, when the Python loader pool runs, any other one through Salt's
//! own execution modules (`cp.get_file_str`, `http.query`, …), loaded as
//! Salt's Pillar loads them for the minion.

use std::sync::Arc;

use brine_proto::Value as Msg;
use brine_py::dict::Pairs;
use brine_targeting::traverse;
use minijinja::value::{Kwargs, Object, Value as Mj};
use minijinja::{Error, ErrorKind, State};
use serde_json::Value as Json;

use super::*;

#[derive(Debug, Clone)]
pub(super) struct FuncData {
    pub(super) opts: Arc<Json>,
    /// The options as `config.get` reads them.
    pub(super) opts_v: Msg,
    pub(super) grains: Arc<Msg>,
    pub(super) pillar: Arc<Msg>,
    /// What `match.pillar`/`match.pillar_pcre` match.
    pub(super) match_pillar: Arc<Msg>,
    /// For `match.*`: the minion's id.
    pub(super) id: String,
    pub(super) nodegroups: Msg,
    /// The Python loader pool, for the functions Brine does not have.
    pub(super) python: Option<brine_loader::Client>,
}

impl FuncData {
    /// Whether `salt[name]` can be called: Brine's own, or any through
    /// Python.
    fn has(&self, name: &str) -> bool {
        FUNCS.contains(&name) || self.python.is_some()
    }
}

/// The `salt` variable: `salt['mod.fun'](…)` and `salt.mod.fun(…)`.
#[derive(Debug)]
pub(super) struct SaltFuncs {
    pub(super) data: Arc<FuncData>,
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
    "match.data",
    "match.filter_by",
    "match.search_by",
    "match.ifelse",
];

impl Object for SaltFuncs {
    fn get_value(self: &Arc<Self>, key: &Mj) -> Option<Mj> {
        let name = key.as_str()?;
        if name.contains('.') {
            if !self.data.has(name) {
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
        if !self.data.has(&name) {
            return None;
        }
        Some(Mj::from_object(SaltFunc {
            data: self.data.clone(),
            name,
        }))
    }

    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Mj]) -> Result<Mj, Error> {
        let name = format!("{}.{method}", self.module);
        if !self.data.has(&name) {
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
pub(super) fn split_args(args: &[Mj]) -> Result<(Vec<Mj>, Option<Kwargs>), Error> {
    match args.split_last() {
        Some((last, rest)) if last.is_kwargs() => Ok((rest.to_vec(), Some(Kwargs::try_from(last.clone())?))),
        _ => Ok((args.to_vec(), None)),
    }
}

/// Python-style parameter binding: `names[i]` positional or by keyword.
pub(super) fn bind(name: &str, names: &[&str], args: &[Mj]) -> Result<Vec<Option<Mj>>, Error> {
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

/// The `salt['mod.fun']` and `salt.mod.fun(` calls in a template's text
/// that Brine does not have.
pub fn python_functions(text: &str) -> Vec<String> {
    static CALLS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = CALLS.get_or_init(|| {
        regex::Regex::new(
            r#"\bsalt(?:\[\s*['"]([A-Za-z_][\w]*\.[A-Za-z_]\w*)['"]\s*\]|\.([A-Za-z_]\w*\.[A-Za-z_]\w*)\s*\()"#,
        )
        .expect("a valid regex")
    });
    let mut out: Vec<String> = re
        .captures_iter(text)
        .filter_map(|c| c.get(1).or_else(|| c.get(2)).map(|m| m.as_str().to_string()))
        .filter(|name| !FUNCS.contains(&name.as_str()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `salt[name](args)` through Salt's execution modules in the pool.
fn call_python(data: &FuncData, client: &brine_loader::Client, name: &str, args: &[Mj]) -> Result<Mj, Error> {
    let (pos, kw) = split_args(args)?;
    let args = pos.iter().map(to_msg).collect::<Result<Vec<_>, _>>()?;
    let mut kwargs = Vec::new();
    if let Some(kw) = kw {
        for k in kw.args() {
            kwargs.push((Msg::from(k), to_msg(&kw.get::<Mj>(k)?)?));
        }
    }
    let opt = |k: &str| data.opts.get(k).and_then(Json::as_str).map_or(Msg::Nil, Msg::from);
    let req = Msg::map([
        ("kind", Msg::from("execution")),
        ("fun", Msg::from(name)),
        ("args", Msg::Array(args)),
        ("kwargs", Msg::Map(kwargs)),
        ("minion_id", Msg::from(data.id.as_str())),
        ("grains", data.grains.as_ref().clone()),
        ("pillar", data.pillar.as_ref().clone()),
        ("saltenv", opt("saltenv")),
        ("pillarenv", opt("pillarenv")),
    ]);
    match client.call(&req) {
        Ok(v) => Ok(from_msg(&v)),
        Err(brine_loader::LoaderError::Missing(_)) => Err(unavailable(name)),
        Err(e) => Err(err(format!("{name}: {e}"))),
    }
}

fn call(data: &FuncData, name: &str, args: &[Mj]) -> Result<Mj, Error> {
    if !FUNCS.contains(&name) {
        return match &data.python {
            Some(client) => call_python(data, client, name, args),
            None => Err(unavailable(name)),
        };
    }
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
            let sources: Vec<&Msg> = match name {
                "grains.get" => vec![&data.grains],
                "pillar.get" => vec![&data.pillar],
                _ => vec![&data.opts_v, &data.grains, &data.pillar],
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
                    return Ok(from_msg(v));
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
            let mut out: Pairs = Vec::new();
            for k in pos {
                let key = to_msg(&k)?;
                let k = pyfmt::py_str(&k);
                match traverse(src, &k, &delimiter) {
                    Some(v) => brine_py::dict::insert(&mut out, key, v.clone()),
                    None if name == "grains.item" => brine_py::dict::insert(&mut out, key, Msg::from("")),
                    None => {}
                }
            }
            Ok(from_msg(&Msg::Map(out)))
        }
        "grains.filter_by" | "pillar.filter_by" => {
            let names: &[&str] = if name == "grains.filter_by" {
                &["lookup_dict", "grain", "merge", "default", "base"]
            } else {
                &["lookup_dict", "pillar", "merge", "default", "base"]
            };
            let a = bind(name, names, args)?;
            let lookup = a[0].as_ref().map(to_msg).transpose()?.unwrap_or(Msg::Nil);
            let Msg::Map(lookup) = lookup else {
                return Err(err(format!("{name}: lookup_dict must be a dictionary")));
            };
            let key = text(&a[1], if name == "grains.filter_by" { "os_family" } else { "" });
            let src = if name == "grains.filter_by" {
                &data.grains
            } else {
                &data.pillar
            };
            let merge = a[2].as_ref().map(to_msg).transpose()?.unwrap_or(Msg::Nil);
            let default = a[3].as_ref().map(to_msg).transpose()?.unwrap_or(Msg::from("default"));
            let base = a[4].as_ref().map(to_msg).transpose()?.unwrap_or(Msg::Nil);
            filter_by(&lookup, &key, src, &merge, &default, &base).map(|v| from_msg(&v))
        }
        "match.filter_by" => {
            let a = bind(
                name,
                &["lookup", "tgt_type", "minion_id", "merge", "merge_lists", "default"],
                args,
            )?;
            let lookup = a[0].as_ref().map(to_msg).transpose()?.unwrap_or(Msg::Nil);
            let default = a[5].as_ref().map(to_msg).transpose()?.unwrap_or(Msg::from("default"));
            match_filter_by(data, lookup, &a[1], &a[2], &a[3], &a[4], &default).map(|v| from_msg(&v))
        }
        "match.search_by" => {
            let a = bind(name, &["lookup", "tgt_type", "minion_id"], args)?;
            let Some(Msg::Map(lookup)) = a[0].as_ref().map(to_msg).transpose()? else {
                return Err(err("search_by: lookup must be a dictionary"));
            };
            let mut matches = Vec::new();
            for (key, targets) in &lookup {
                let targets: Vec<Msg> = match targets {
                    Msg::Array(t) => t.clone(),
                    Msg::Str(t) => t.chars().map(|c| Msg::from(c.to_string())).collect(),
                    Msg::Map(t) => t.iter().map(|(k, _)| k.clone()).collect(),
                    other => return Err(err(format!("'{}' object is not iterable", brine_py::type_name(other)))),
                };
                for target in targets {
                    if match_by(data, &a[1], &target, &a[2])? {
                        matches.push(key.clone());
                    }
                }
            }
            Ok(if matches.is_empty() {
                Mj::from(())
            } else {
                from_msg(&Msg::Array(matches))
            })
        }
        "match.ifelse" => {
            let (pos, kw) = split_args(args)?;
            let kw_get = |k: &str| -> Result<Option<Mj>, Error> {
                match &kw {
                    Some(kw) if kw.has(k) => kw.get::<Mj>(k).map(Some),
                    _ => Ok(None),
                }
            };
            if let Some(kw) = &kw {
                for k in kw.args() {
                    if !["tgt_type", "minion_id", "merge", "merge_lists"].contains(&k) {
                        return Err(err(format!("ifelse() got an unexpected keyword argument '{k}'")));
                    }
                }
            }
            if pos.len() % 2 == 0 {
                return Err(err("The ifelse function must have an odd number of arguments!"));
            }
            if pos.len() == 1 {
                return Ok(pos[0].clone());
            }
            let default_key = Msg::from("SALT_IFELSE_FUNCTION_DEFAULT");
            let mut lookup: Pairs = Vec::new();
            for pair in pos[..pos.len() - 1].chunks(2) {
                let key = match to_msg(&pair[0])? {
                    Msg::Bool(true) => Msg::from("*"),
                    Msg::Bool(false) => Msg::from("SALT_IFELSE_MATCH_NOTHING"),
                    k => k,
                };
                brine_py::dict::insert(&mut lookup, key, to_msg(&pair[1])?);
            }
            brine_py::dict::insert(&mut lookup, default_key.clone(), to_msg(&pos[pos.len() - 1])?);
            match_filter_by(
                data,
                Msg::Map(lookup),
                &kw_get("tgt_type")?,
                &kw_get("minion_id")?,
                &kw_get("merge")?,
                &kw_get("merge_lists")?,
                &default_key,
            )
            .map(|v| from_msg(&v))
        }
        "match.data" => {
            // Salt's data matcher calls `data.getval`, which its `data`
            // module no longer has (3006, 3007): the KeyError is caught and
            // the answer is False, whatever the store holds.
            let a = bind(name, &["tgt"], args)?;
            log::error!(
                "match.data({}): 'data.getval' is not available",
                a[0].as_ref().map(pyfmt::py_repr).unwrap_or_default()
            );
            Ok(Mj::from(false))
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
            let tgt = to_msg(&tgt)?;
            if kind == "ipcidr" && tgt.as_str().and_then(brine_targeting::IpTarget::parse).is_none() {
                // Salt's ipcidr matcher answers `[]` for a target that is
                // neither an address nor a network.
                log::error!("Invalid IP/CIDR target: {}", brine_py::to_str(&tgt));
                return Ok(Mj::from(Vec::<Mj>::new()));
            }
            let delimiter = if names.contains(&"delimiter") {
                a[1].as_ref().map(pyfmt::py_str).unwrap_or_else(|| ":".into())
            } else {
                ":".to_string()
            };
            // `str()` of a given id; an empty one is the minion's own.
            let id = match names.get(1) {
                Some(&"minion_id") => a[1]
                    .as_ref()
                    .filter(|v| !v.is_none() && !v.is_undefined())
                    .map(pyfmt::py_str),
                _ => None,
            }
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| data.id.clone());
            let m = brine_targeting::MinionData {
                id: &id,
                grains: &data.grains,
                pillar: &data.match_pillar,
            };
            Ok(Mj::from(brine_targeting::minion_matches(
                &m,
                &tgt,
                kind,
                &delimiter,
                &data.nodegroups,
            )))
        }
        "grains.items" => Ok(from_msg(&data.grains)),
        "pillar.items" | "pillar.raw" => Ok(from_msg(&data.pillar)),
        other => Err(unavailable(other)),
    }
}

/// Does `target` match with the `match` module's function named
/// `tgt_type` (`compound` by default), called as `match.filter_by` calls
/// it: `(target, minion_id)` when a minion id is given, else `(target,)`.
fn match_by(data: &FuncData, tgt_type: &Option<Mj>, target: &Msg, minion_id: &Option<Mj>) -> Result<bool, Error> {
    let tgt_type = tgt_type
        .as_ref()
        .filter(|t| !t.is_none())
        .map(pyfmt::py_str)
        .unwrap_or_else(|| "compound".into());
    // The module's functions by their Python names (`list_` is `list`).
    let func = match tgt_type.as_str() {
        "compound" | "ipcidr" | "pillar_pcre" | "pillar" | "data" | "grain_pcre" | "grain" | "pcre" | "glob" => {
            format!("match.{tgt_type}")
        }
        "list_" => "match.list".into(),
        other => return Err(err(format!("KeyError: '{other}'"))),
    };
    let mut args = vec![from_msg(target)];
    if let Some(id) = minion_id.as_ref().filter(|m| m.is_true()) {
        args.push(id.clone());
    }
    Ok(call(data, &func, &args)?.is_true())
}

/// Salt's `match.filter_by`: the value of the first key of `lookup` that
/// matches this minion (see [`match_by`]), `merge` merged into it; else
/// `lookup[default]`.
fn match_filter_by(
    data: &FuncData,
    lookup: Msg,
    tgt_type: &Option<Mj>,
    minion_id: &Option<Mj>,
    merge: &Option<Mj>,
    merge_lists: &Option<Mj>,
    default: &Msg,
) -> Result<Msg, Error> {
    let Msg::Map(lookup) = lookup else {
        return Err(err("filter_by: lookup must be a dictionary"));
    };
    let merge = merge.as_ref().map(to_msg).transpose()?.unwrap_or(Msg::Nil);
    let merge_lists = merge_lists.as_ref().is_some_and(|m| m.is_true());
    for (key, value) in &lookup {
        if !match_by(data, tgt_type, key, minion_id)? {
            continue;
        }
        if !brine_py::truthy(&merge) {
            return Ok(value.clone());
        }
        let Msg::Map(m) = &merge else {
            return Err(err("filter_by merge argument must be a dictionary."));
        };
        return match value {
            Msg::Nil => Ok(merge.clone()),
            Msg::Map(v) => Ok(Msg::Map(crate::merge::update(v.clone(), m.clone(), merge_lists))),
            _ => Err(err("Cannot update using non-dict types in dictupdate.update()")),
        };
    }
    Ok(brine_py::dict::get(&lookup, default).cloned().unwrap_or(Msg::Nil))
}

/// Salt's `salt.utils.data.filter_by`: the first entry of `lookup` whose
/// key (as text) is the value at `key` in `src`, or matches it as a
/// case-sensitive glob, for each member of a list value in turn; else
/// `lookup[default]`. `base`'s entry goes under it, `merge` over it.
fn filter_by(lookup: &Pairs, key: &str, src: &Msg, merge: &Msg, default: &Msg, base: &Msg) -> Result<Msg, Error> {
    use brine_py::dict;
    let val = traverse(src, key, ":").cloned().unwrap_or(Msg::Array(Vec::new()));
    let candidates: Vec<Msg> = match val {
        Msg::Array(a) => a,
        other => vec![other],
    };
    let mut ret: Option<Msg> = None;
    for each in &candidates {
        let each = brine_py::to_str(each);
        for (k, v) in lookup {
            let k = brine_py::to_str(k);
            if each == k || brine_py::fnmatch(&each, &k) {
                ret = Some(v.clone());
                break;
            }
        }
        // A match whose value is None goes on to the next member.
        if ret.as_ref().is_some_and(|r| !r.is_nil()) {
            break;
        }
    }
    let mut ret = ret
        .filter(|r| !r.is_nil())
        .or_else(|| dict::get(lookup, default).cloned());
    if brine_py::truthy(base) {
        if let Some(b) = dict::get(lookup, base) {
            ret = match (ret, b) {
                (None | Some(Msg::Nil), b) => Some(b.clone()),
                (Some(Msg::Map(r)), Msg::Map(bm)) => Some(Msg::Map(crate::merge::update(bm.clone(), r, false))),
                (Some(_), Msg::Map(_)) => {
                    return Err(err("filter_by default and look-up values must both be dictionaries."))
                }
                (r, _) => r,
            };
        }
    }
    if brine_py::truthy(merge) {
        let Msg::Map(mm) = merge else {
            return Err(err("filter_by merge argument must be a dictionary."));
        };
        ret = match ret {
            None | Some(Msg::Nil) => Some(merge.clone()),
            Some(Msg::Map(r)) => Some(Msg::Map(crate::merge::update(r, mm.clone(), false))),
            Some(_) => return Err(err("filter_by: the looked-up value is not a dictionary to merge into")),
        };
    }
    Ok(ret.unwrap_or(Msg::Nil))
}

/// `pillar.get(key, default, merge=True)`.
fn pillar_get_merge(pillar: &Msg, key: &str, default: &Mj, delimiter: &str, opts: &Json) -> Result<Mj, Error> {
    let merge_lists = opts.get("pillar_merge_lists").is_some_and(brine_py::truthy);
    let found = traverse(pillar, key, delimiter);
    match (to_msg(default)?, found) {
        (Msg::Map(d), Some(Msg::Map(f))) => Ok(from_msg(&Msg::Map(crate::merge::update(d, f.clone(), merge_lists)))),
        (Msg::Map(_), None) | (Msg::Array(_), None) => Ok(default.clone()),
        (Msg::Array(mut d), Some(Msg::Array(f))) => {
            let fresh: Vec<Msg> = f
                .iter()
                .filter(|x| !d.iter().any(|m| crate::merge::py_eq(m, x)))
                .cloned()
                .collect();
            d.extend(fresh);
            Ok(from_msg(&Msg::Array(d)))
        }
        (_, found) => {
            log::error!("pillar.get: Default is not a dict or list matching the pillar value; merge skipped");
            Ok(found.map(from_msg).unwrap_or_else(|| default.clone()))
        }
    }
}
