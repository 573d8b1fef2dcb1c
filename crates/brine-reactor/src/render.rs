//! Rendering reaction files (`Reactor.render_reaction`): each path the
//! map selected, a `salt://` URL looked up in `file_roots` or a
//! filesystem glob, rendered with the master's renderer pipe (`renderer`,
//! default `jinja|yaml`; a `#!` first line picks another) and `tag`,
//! `data`, `opts`/`__opts__` in the template context. The rendered maps
//! are merged in order (a later file's id replaces an earlier one's),
//! each body marked with its file as `__sls__`.

use std::path::PathBuf;

use brine_config::{MasterConfig, Value as Json};
use brine_fileserver::Fileserver;
use brine_pillar::jinja::JinjaShared;
use brine_pillar::render::compile_template;
use brine_proto::Value;
use log::{debug, error};

use brine_state::compile::pad_funcs;

/// What every rendering shares: the master's options and renderers, and
/// the `roots` fileserver for `salt://` paths (`file_roots` also serve
/// the templates' Jinja imports).
pub struct Renderer {
    shared: JinjaShared,
    files: Fileserver,
}

impl Renderer {
    pub fn new(cfg: &MasterConfig) -> Renderer {
        let roots = brine_fileserver::file_root_paths(cfg);
        let mut shared = JinjaShared::new(
            Json::Object(cfg.raw.clone()),
            Value::Map(Vec::new()),
            Value::Map(Vec::new()),
            Value::Nil,
            roots,
        );
        // Salt's reactor templates see the options as `opts` and `__opts__`.
        shared.globals.push(("__opts__".into(), shared.opts_mj.clone()));
        Renderer {
            shared,
            files: Fileserver::new(cfg),
        }
    }

    /// The file a `salt://path[?saltenv=env]` URL names, as the master's
    /// fileserver finds it for a minion (environment `base` unless the URL
    /// says otherwise; paths out of the roots are refused and logged).
    pub fn find_salt_url(&mut self, url: &str) -> Option<PathBuf> {
        let rest = url.strip_prefix("salt://")?;
        let load = Value::map([("path", Value::from(rest)), ("saltenv", Value::from("base"))]);
        let found = self.files.file_find("Reactor", &load).ok()?;
        found
            .get("path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    }

    /// The files a map path stands for, in name order.
    fn files(&mut self, glob_ref: &str) -> Vec<PathBuf> {
        if glob_ref.starts_with("salt://") {
            return self.find_salt_url(glob_ref).into_iter().collect();
        }
        let mut found = brine_py::glob(glob_ref);
        found.sort();
        found.into_iter().map(PathBuf::from).collect()
    }

    /// Render the reaction files of `glob_ref` for the event (`tag`,
    /// `data`) and merge them into `high` (ids and bodies). Errors are
    /// logged with the tag and the file; a file that fails adds nothing.
    pub fn render_reaction(&mut self, glob_ref: &str, tag: &str, data: &Value, high: &mut Vec<(Value, Value)>) {
        let files = self.files(glob_ref);
        if files.is_empty() {
            error!(
                "Can not render SLS {} for tag {}. File missing or not found.",
                glob_ref.escape_debug(),
                tag.escape_debug()
            );
        }
        let extra = vec![
            (Value::from("tag"), Value::from(tag)),
            (Value::from("data"), data.clone()),
        ];
        for file in files {
            let rendered = compile_template(&self.shared, &file, "base", "", &extra);
            let mut res = match rendered {
                Ok(v) => v,
                Err(e) => {
                    error!(
                        "Failed to render \"{}\" for tag {}: {}",
                        file.display(),
                        tag.escape_debug(),
                        e.escape_debug()
                    );
                    continue;
                }
            };
            if !brine_py::truthy(&res) {
                debug!(
                    "reaction {} for tag {} rendered to nothing",
                    file.display(),
                    tag.escape_debug()
                );
                continue;
            }
            pad_funcs(&mut res);
            let Value::Map(ids) = &mut res else {
                error!(
                    "Failed to render \"{}\" for tag {}: it rendered to {}, not a map of reactions",
                    file.display(),
                    tag.escape_debug(),
                    brine_py::type_name(&res)
                );
                continue;
            };
            if let Some((id, _)) = ids.iter().find(|(_, body)| !body.is_map()) {
                error!(
                    "Failed to render \"{}\" for tag {}: reaction {} is not a map",
                    file.display(),
                    tag.escape_debug(),
                    brine_py::repr(id)
                );
                continue;
            }
            let sls = Value::from(file.to_string_lossy().as_ref());
            for (id, mut body) in ids.drain(..) {
                body.set("__sls__", sls.clone());
                match high.iter_mut().find(|(k, _)| *k == id) {
                    Some((_, old)) => *old = body,
                    None => high.push((id, body)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    /// `render_reaction` into a high-data map.
    fn render_into(r: &mut Renderer, glob_ref: &str, tag: &str, data: &Value, high: &mut Value) {
        let Value::Map(pairs) = high else { panic!("{high:?}") };
        r.render_reaction(glob_ref, tag, data, pairs);
    }

    fn renderer(root: &Path, extra: Json) -> Renderer {
        let mut o = json!({
            "root_dir": root.to_str().unwrap(),
            "file_roots": {"base": [root.join("srv").to_str().unwrap()]},
            "id": "m1_master",
        });
        o.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let cfg = MasterConfig::from_overrides(root, serde_json::from_value(o).unwrap()).unwrap();
        Renderer::new(&cfg)
    }

    fn write(p: &Path, s: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }

    #[test]
    fn tag_data_and_opts_reach_the_template() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("r/auth.sls");
        write(
            &f,
            "{% if data['act'] == 'pend' and data['id'].startswith('web') %}\naccept_{{ data['id'] }}:\n  wheel.key.accept:\n    - args:\n      - match: {{ data['id'] }}\n    - tag: {{ tag }}\n    - master: {{ opts['id'] }} {{ __opts__['id'] }}\n{% endif %}\n",
        );
        let mut r = renderer(d.path(), json!({}));
        let mut high = Value::Map(vec![]);
        let data = Value::map([("act", Value::from("pend")), ("id", Value::from("web1"))]);
        render_into(&mut r, f.to_str().unwrap(), "salt/auth", &data, &mut high);
        let body = high.get("accept_web1").expect("rendered");
        assert_eq!(body.get("__sls__").and_then(Value::as_str), f.to_str());
        let args = body.get("wheel").unwrap();
        let Value::Array(a) = args else { panic!() };
        assert_eq!(a.last(), Some(&Value::from("key.accept")));
        assert!(a.contains(&Value::map([("tag", Value::from("salt/auth"))])));
        assert!(a.contains(&Value::map([("master", Value::from("m1_master m1_master"))])));

        // Not pending: renders to nothing.
        let mut high = Value::Map(vec![]);
        let data = Value::map([("act", Value::from("accept")), ("id", Value::from("web1"))]);
        render_into(&mut r, f.to_str().unwrap(), "salt/auth", &data, &mut high);
        assert_eq!(high, Value::Map(vec![]));
    }

    #[test]
    fn salt_urls_globs_and_merging() {
        let d = tempfile::tempdir().unwrap();
        write(
            &d.path().join("srv/reactor/a.sls"),
            "one:\n  local.test.ping:\n    - tgt: a\n",
        );
        write(
            &d.path().join("g/1.sls"),
            "one:\n  local.test.ping:\n    - tgt: replaced\n",
        );
        write(&d.path().join("g/2.sls"), "#!yaml\ntwo:\n  runner.jobs.list_jobs: []\n");
        let mut r = renderer(d.path(), json!({}));
        assert!(r.find_salt_url("salt://reactor/a.sls").is_some());
        assert!(r.find_salt_url("salt://reactor/a.sls?saltenv=prod").is_none());
        assert!(r.find_salt_url("salt://../srv/reactor/a.sls").is_none());
        let mut high = Value::Map(vec![]);
        render_into(&mut r, "salt://reactor/a.sls", "t", &Value::Nil, &mut high);
        let g = format!("{}/g/*.sls", d.path().display());
        render_into(&mut r, &g, "t", &Value::Nil, &mut high);
        let Value::Map(ids) = &high else { panic!() };
        assert_eq!(ids.len(), 2);
        assert_eq!(
            high.get("one").unwrap().get("local").unwrap(),
            &Value::Array(vec![
                Value::map([("tgt", Value::from("replaced"))]),
                Value::from("test.ping")
            ])
        );
    }

    #[test]
    fn a_broken_file_adds_nothing_and_the_next_one_renders() {
        let d = tempfile::tempdir().unwrap();
        write(
            &d.path().join("r/bad.sls"),
            "x:\n  local.test.ping:\n    - tgt: {{ data['missing']['deeper'] }}\n",
        );
        write(&d.path().join("r/text.sls"), "just: text\n");
        write(&d.path().join("r/good.sls"), "y:\n  local.test.ping:\n    - tgt: b\n");
        let mut r = renderer(d.path(), json!({}));
        let mut high = Value::Map(vec![]);
        for f in ["bad", "text", "good", "absent"] {
            render_into(
                &mut r,
                &format!("{}/r/{f}.sls", d.path().display()),
                "t",
                &Value::map([("a", Value::Int(1))]),
                &mut high,
            );
        }
        let Value::Map(ids) = &high else { panic!() };
        assert_eq!(
            ids.iter().map(|(k, _)| brine_py::to_str(k)).collect::<Vec<_>>(),
            vec!["y"]
        );
    }
}
