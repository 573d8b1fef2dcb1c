//! Salt's `salt.template.compile_template` for pillar files: the render
//! pipe from a `#!` shebang or the `renderer` option, then each renderer.
//!
//! Renderers: `jinja`, `yaml`, `json`, and `gpg` for data without PGP
//! blocks (passed through). The others (`gpg` with PGP messages, `py`,
//! `mako`, `yamlex`, custom ones in `extension_modules/renderers`, …) are
//! Salt's own, run by the Python loader pool when it runs, one stage of
//! the pipe at a time; without it they are render errors naming the
//! renderer. A name nobody knows renders to `{}` as in Salt.

use std::path::Path;

use brine_proto::json::{from_json, to_json};
use brine_proto::Value;
use brine_py::dict::Pairs;
use log::{debug, error, warn};
use serde_json::Value as Json;

use super::jinja::{self, JinjaShared};

/// Renderers Salt ships that Brine does not run.
const UNSUPPORTED: &[&str] = &[
    "aws_kms",
    "cheetah",
    "dson",
    "genshi",
    "hjson",
    "json5",
    "mako",
    "msgpack",
    "nacl",
    "pass",
    "py",
    "pydsl",
    "pyobjects",
    "stateconf",
    "toml",
    "wempy",
    "yamlex",
];
const SUPPORTED: &[&str] = &["jinja", "yaml", "json", "gpg"];

/// Salt's `OLD_STYLE_RENDERERS`: `yaml_jinja` is `jinja|yaml`, …
fn old_style(pipe: &str) -> Option<&'static str> {
    Some(match pipe {
        "yaml_jinja" => "jinja|yaml",
        "yaml_mako" => "mako|yaml",
        "yaml_wempy" => "wempy|yaml",
        "json_jinja" => "jinja|json",
        "json_mako" => "mako|json",
        "json_wempy" => "wempy|json",
        "yamlex_jinja" => "jinja|yamlex",
        "yamlexyamlex_mako" => "mako|yamlexyamlex",
        "yamlexyamlex_wempy" => "wempy|yamlexyamlex",
        _ => return None,
    })
}

/// The renderers of `pipe` that only Salt's Python loader has, for a
/// template whose text is `text`: those Brine lacks, and `gpg` when the
/// text holds a PGP message.
pub fn python_renderers(pipe: &str, text: &str) -> Vec<String> {
    let pipe = old_style(pipe).unwrap_or(pipe);
    pipe.split('|')
        .map(|p| p.trim().split(' ').next().unwrap_or(""))
        .filter(|name| {
            !name.is_empty()
                && (!SUPPORTED.contains(name) || (*name == "gpg" && text.contains("-----BEGIN PGP MESSAGE-----")))
        })
        .map(String::from)
        .collect()
}

/// Which renderers run a template: the pipe used without a `#!` line, and
/// `renderer_whitelist` / `renderer_blacklist`.
pub struct Renderers {
    /// `None`: no renderer (Salt's `check_render_pipe_str(None)`).
    pub default: Option<String>,
    pub whitelist: Vec<String>,
    pub blacklist: Vec<String>,
}

impl Renderers {
    /// The master's `renderer` (default `jinja|yaml`) and lists.
    pub fn from_opts(opts: &Json) -> Renderers {
        let list = |k: &str| -> Vec<String> {
            match opts.get(k) {
                Some(Json::Array(a)) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
                _ => Vec::new(),
            }
        };
        Renderers {
            default: Some(
                opts.get("renderer")
                    .and_then(Json::as_str)
                    .unwrap_or("jinja|yaml")
                    .to_string(),
            ),
            whitelist: list("renderer_whitelist"),
            blacklist: list("renderer_blacklist"),
        }
    }

    /// `check_render_pipe_str`: the renderers of a pipe, `None` when one
    /// is unknown (Salt renders nothing then).
    fn pipe(&self, pipe: &str, python: bool) -> Option<Vec<(String, String)>> {
        let pipe = old_style(pipe).unwrap_or(pipe);
        let mut out = Vec::new();
        for part in pipe.split('|').map(str::trim) {
            let (name, argline) = part.split_once(' ').unwrap_or((part, ""));
            if (!self.whitelist.is_empty() && !self.whitelist.iter().any(|w| w == name))
                || self.blacklist.iter().any(|b| b == name)
            {
                warn!("The renderer \"{name}\" is disallowed by configuration and will be skipped.");
                continue;
            }
            if !SUPPORTED.contains(&name) && !UNSUPPORTED.contains(&name) && !python {
                error!("The renderer \"{pipe}\" is not available");
                return None;
            }
            out.push((name.to_string(), argline.trim().to_string()));
        }
        Some(out)
    }
}

/// What a renderer hands the next one.
enum Data {
    Text(String),
    Value(Value),
}

/// Render the file `path` (SLS `sls` of `saltenv`; `""` for a top file)
/// to data with the master's renderers: `{}` for an empty or blank file
/// or an unknown renderer, as Salt. `Err` is the render error text.
pub fn compile_template(
    shared: &JinjaShared,
    path: &Path,
    saltenv: &str,
    sls: &str,
    defaults: &Pairs,
) -> Result<Value, String> {
    debug!("compile template: {}", path.display());
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            error!("Template does not exist: {} ({e})", path.display());
            return Ok(Value::Map(Vec::new()));
        }
    };
    let renderers = Renderers::from_opts(&shared.opts);
    compile_bytes(shared, &bytes, path, saltenv, sls, defaults, &renderers)
}

/// Salt's `compile_template` of the contents `bytes` of `path` with
/// `renderers`: a text when the pipe ends in one (`#!jinja`), data
/// otherwise; `{}` for nothing to render.
pub fn compile_bytes(
    shared: &JinjaShared,
    bytes: &[u8],
    path: &Path,
    saltenv: &str,
    sls: &str,
    defaults: &Pairs,
    renderers: &Renderers,
) -> Result<Value, String> {
    if bytes.is_empty() {
        debug!("Template is an empty file: {}", path.display());
        return Ok(Value::Map(Vec::new()));
    }
    let text = String::from_utf8(bytes.to_vec()).map_err(|e| utf8_error(bytes, e.utf8_error()))?;
    if text.trim().is_empty() {
        error!("Template is nothing but whitespace: {}", path.display());
        return Ok(Value::Map(Vec::new()));
    }
    let first = text.lines().next().unwrap_or("");
    let python = shared.python().is_some();
    let pipe = if first.starts_with("#!") && !first.starts_with("#!/") {
        renderers.pipe(&first.trim()[2..], python)
    } else {
        match &renderers.default {
            Some(d) => renderers.pipe(d, python),
            None => Some(Vec::new()),
        }
    };
    let pipe = match pipe {
        Some(p) if !p.is_empty() => p,
        // No renderer to run: Salt's `compile_template` returns its `{}`.
        _ => return Ok(Value::Map(Vec::new())),
    };
    let windows_newline = text.contains("\r\n");
    let mut data = Data::Text(text);
    for (name, argline) in pipe {
        data = match (name.as_str(), data) {
            ("jinja", data) => {
                if !argline.is_empty() && argline != "-s" {
                    return Err(format!("Unknown renderer option: {argline}"));
                }
                let src = match data {
                    Data::Text(t) => t,
                    Data::Value(v) => v.as_str().map(String::from).unwrap_or_else(|| to_json(&v).to_string()),
                };
                Data::Text(jinja::render(shared, &src, path, saltenv, sls, defaults)?)
            }
            ("yaml", Data::Text(t)) => Data::Value(render_yaml(&t, path)?),
            ("json", Data::Text(t)) => Data::Value(render_json(&t)?),
            ("gpg", data) if !has_pgp(&data) => data,
            ("gpg", _) if shared.python().is_none() => {
                return Err("the gpg renderer is not supported by Brine: cannot decrypt PGP messages".into())
            }
            ("yaml" | "json", Data::Value(v)) => Data::Value(v),
            (other, data) => match shared.python() {
                Some(client) => {
                    match python_stage(shared, client, other, &argline, data, path, saltenv, sls, defaults)? {
                        Some(next) => next,
                        // Salt's check_render_pipe_str: the renderer is not
                        // there, nothing is rendered.
                        None => {
                            error!("The renderer \"{other}\" is not available");
                            return Ok(Value::Map(Vec::new()));
                        }
                    }
                }
                None => return Err(format!("the {other} renderer is not supported by Brine")),
            },
        };
    }
    Ok(match data {
        Data::Value(v) => v,
        // A pipe ending in text (e.g. `#!jinja`): not data; Salt puts back
        // Windows line ends the renderers dropped.
        Data::Text(t) if windows_newline && !t.contains("\r\n") => Value::Str(t.replace('\n', "\r\n")),
        Data::Text(t) => Value::Str(t),
    })
}

fn has_pgp(data: &Data) -> bool {
    const PGP: &str = "-----BEGIN PGP MESSAGE-----";
    match data {
        Data::Text(t) => t.contains(PGP),
        Data::Value(v) => to_json(v).to_string().contains(PGP),
    }
}

/// One stage of the pipe through Salt's renderer `name` in the Python
/// loader pool, with the minion's grains and pillar; `None` when Salt has
/// no such renderer.
#[allow(clippy::too_many_arguments)]
fn python_stage(
    shared: &JinjaShared,
    client: &brine_loader::Client,
    name: &str,
    argline: &str,
    data: Data,
    path: &Path,
    saltenv: &str,
    sls: &str,
    defaults: &Pairs,
) -> Result<Option<Data>, String> {
    let opt = |k: &str| {
        shared
            .opts
            .get(k)
            .and_then(Json::as_str)
            .map_or(Value::Nil, Value::from)
    };
    let req = Value::map([
        ("kind", Value::from("render")),
        ("renderer", Value::from(name)),
        ("argline", Value::from(argline)),
        (
            "data",
            match data {
                Data::Text(t) => Value::Str(t),
                Data::Value(v) => v,
            },
        ),
        ("path", Value::from(path.to_string_lossy().as_ref())),
        ("saltenv", Value::from(saltenv)),
        ("sls", Value::from(sls)),
        ("context", Value::Map(defaults.clone())),
        ("pillar_render", Value::Bool(true)),
        ("minion_id", opt("minion_id")),
        ("pillarenv", opt("pillarenv")),
        ("grains", shared.grains.as_ref().clone()),
        ("pillar", shared.pillar.as_ref().clone()),
    ]);
    debug!("renderer {name} through Python for {}", path.display());
    match client.call(&req) {
        Ok(answer) => match (answer.get("text"), answer.get("data")) {
            (Some(Value::Str(t)), _) => Ok(Some(Data::Text(t.clone()))),
            (_, Some(v)) => Ok(Some(Data::Value(v.clone()))),
            _ => Err(format!("the {name} renderer answered neither text nor data")),
        },
        Err(brine_loader::LoaderError::Missing(_)) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Python's `UnicodeDecodeError` text for `bytes.decode()`.
fn utf8_error(bytes: &[u8], e: std::str::Utf8Error) -> String {
    let at = e.valid_up_to();
    let why = match (e.error_len(), bytes[at]) {
        (None, _) => "unexpected end of data",
        (Some(_), 0xc2..=0xf4) => "invalid continuation byte",
        _ => "invalid start byte",
    };
    format!(
        "'utf-8' codec can't decode byte 0x{:02x} in position {at}: {why}",
        bytes[at]
    )
}

/// Salt's yaml renderer: falsy documents are `{}`.
fn render_yaml(text: &str, path: &Path) -> Result<Value, String> {
    let v = brine_py::parse_yaml_value(text, path).map_err(|e| e.to_string())?;
    Ok(if brine_py::truthy(&v) {
        v
    } else {
        Value::Map(Vec::new())
    })
}

/// Salt's json renderer: a leading `#!` line dropped, blank is `{}`.
fn render_json(text: &str) -> Result<Value, String> {
    let body = if text.starts_with("#!") {
        text.split_once('\n').map_or("", |(_, rest)| rest)
    } else {
        text
    };
    if body.trim().is_empty() {
        return Ok(Value::Map(Vec::new()));
    }
    serde_json::from_str::<Json>(body)
        .map(|j| from_json(&j))
        .map_err(|e| e.to_string())
}
