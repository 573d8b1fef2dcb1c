//! Salt's `salt.template.compile_template` for pillar files: the render
//! pipe from a `#!` shebang or the `renderer` option, then each renderer.
//!
//! Renderers: `jinja`, `yaml`, `json`, and `gpg` for data without PGP
//! blocks (passed through). Salt's other renderers (`py`, `mako`,
//! `yamlex`, `pydsl`, …) are render errors naming the renderer; a name
//! Salt does not know renders to `{}` as in Salt.

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

/// `check_render_pipe_str`: the renderers of a pipe, `None` when one is
/// unknown (Salt renders nothing then).
fn render_pipe(pipe: &str, opts: &Json) -> Option<Vec<(String, String)>> {
    let list = |k: &str| -> Vec<String> {
        match opts.get(k) {
            Some(Json::Array(a)) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
            _ => Vec::new(),
        }
    };
    let (white, black) = (list("renderer_whitelist"), list("renderer_blacklist"));
    let pipe = old_style(pipe).unwrap_or(pipe);
    let mut out = Vec::new();
    for part in pipe.split('|').map(str::trim) {
        let (name, argline) = part.split_once(' ').unwrap_or((part, ""));
        if (!white.is_empty() && !white.iter().any(|w| w == name)) || black.iter().any(|b| b == name) {
            warn!("The renderer \"{name}\" is disallowed by configuration and will be skipped.");
            continue;
        }
        if !SUPPORTED.contains(&name) && !UNSUPPORTED.contains(&name) {
            error!("The renderer \"{pipe}\" is not available");
            return None;
        }
        out.push((name.to_string(), argline.trim().to_string()));
    }
    Some(out)
}

/// What a renderer hands the next one.
enum Data {
    Text(String),
    Value(Value),
}

/// Render the file `path` (SLS `sls` of `saltenv`; `""` for a top file)
/// to data: `{}` for an empty or blank file or an unknown renderer, as
/// Salt. `Err` is the render error text.
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
    if bytes.is_empty() {
        debug!("Template is an empty file: {}", path.display());
        return Ok(Value::Map(Vec::new()));
    }
    let text = String::from_utf8(bytes).map_err(|e| format!("'utf-8' codec can't decode {}: {e}", path.display()))?;
    if text.trim().is_empty() {
        error!("Template is nothing but whitespace: {}", path.display());
        return Ok(Value::Map(Vec::new()));
    }
    let first = text.lines().next().unwrap_or("");
    let default = shared
        .opts
        .get("renderer")
        .and_then(Json::as_str)
        .unwrap_or("jinja|yaml");
    let pipe = if first.starts_with("#!") && !first.starts_with("#!/") {
        first.trim()[2..].to_string()
    } else {
        default.to_string()
    };
    let Some(pipe) = render_pipe(&pipe, &shared.opts) else {
        return Ok(Value::Map(Vec::new()));
    };
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
            ("gpg", data) => {
                let has_pgp = match &data {
                    Data::Text(t) => t.contains("-----BEGIN PGP MESSAGE-----"),
                    Data::Value(v) => to_json(v).to_string().contains("-----BEGIN PGP MESSAGE-----"),
                };
                if has_pgp {
                    return Err("the gpg renderer is not supported by Brine: cannot decrypt PGP messages".into());
                }
                data
            }
            ("yaml" | "json", Data::Value(v)) => Data::Value(v),
            (other, _) => return Err(format!("the {other} renderer is not supported by Brine")),
        };
    }
    Ok(match data {
        Data::Value(v) => v,
        // A pipe ending in text (e.g. `#!jinja`): not data.
        Data::Text(t) => Value::Str(t),
    })
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
