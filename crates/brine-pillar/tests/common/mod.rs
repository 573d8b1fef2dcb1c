//! The oracle for pillar compilation: the same `pillar_roots` trees, config
//! and minions compiled by Brine's `pillar::compile` and by Python Salt's own
//! `salt.pillar.Pillar(...).compile_pillar()` (run by the venv's python on
//! the same master config), compared as the msgpack Salt's master sends
//! (`salt.payload.dumps`: map keys keep their types, bytes are bytes), key
//! order and `_errors` included. `PILLAR_LOG` shows both sides' logs,
//! `PILLAR_DUMP` Salt's answers.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use brine_config::MasterConfig;
use brine_proto::json::{from_json, to_json};
use brine_proto::Value;
use serde_json::{json, Value as Json};

const ORACLE: &str = r#"
import json, sys, logging
if "PILLAR_LOG" not in __import__("os").environ: logging.disable(logging.CRITICAL)
import salt.config, salt.pillar, salt.payload
args = json.load(open(sys.argv[1]))
opts = salt.config.master_config(args["conf"])
out = []
for c in args["cases"]:
    grains = dict(c["grains"])
    grains["id"] = c["id"]
    p = salt.pillar.Pillar(dict(opts), grains, c["id"], c.get("saltenv"),
                           pillar_override=c.get("pillar_override"),
                           pillarenv=c.get("pillarenv"),
                           extra_minion_data=c.get("extra_minion_data"))
    try:
        out.append(p.compile_pillar())
    except Exception as exc:
        out.append({"__exception__": type(exc).__name__})
sys.stdout.buffer.write(salt.payload.dumps(out, use_bin_type=True))
"#;

pub struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// A master config dir with `conf` (YAML, `{root}` replaced by the
    /// tree's root) and `files` (path under the root → contents).
    pub fn new(conf: &str, files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for (rel, text) in files {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("conf")).unwrap();
        let mut conf = format!(
            "root_dir: {}\n{}",
            root.display(),
            conf.replace("{root}", &root.to_string_lossy())
        );
        if !conf.contains("pillar_roots:") {
            conf.push_str(&format!(
                "pillar_roots:\n  base:\n    - {}/srv/pillar\n",
                root.display()
            ));
        }
        std::fs::write(dir.path().join("conf/master"), conf).unwrap();
        Tree { dir }
    }

    /// Write `bytes` at `rel` under the tree's root.
    pub fn write_bytes(&self, rel: &str, bytes: &[u8]) {
        let p = self.dir.path().join("root").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    pub fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("conf")
    }
}

/// One `_pillar` request: id, grains and the load's extra keys.
#[derive(Clone)]
pub struct Case {
    pub id: &'static str,
    pub grains: Json,
    pub saltenv: Option<&'static str>,
    pub pillarenv: Option<&'static str>,
    pub pillar_override: Option<Json>,
    pub extra_minion_data: Option<Json>,
}

pub fn case(id: &'static str, grains: Json) -> Case {
    Case {
        id,
        grains,
        saltenv: None,
        pillarenv: None,
        pillar_override: None,
        extra_minion_data: None,
    }
}

pub fn python(version: &str, tree: &Tree, cases: &[Case]) -> Vec<Value> {
    let venv = brine_testutil::salt_venv(version);
    let args = json!({
        "conf": tree.conf_dir().join("master"),
        "cases": cases.iter().map(|c| json!({
            "id": c.id, "grains": c.grains, "saltenv": c.saltenv, "pillarenv": c.pillarenv,
            "pillar_override": c.pillar_override, "extra_minion_data": c.extra_minion_data,
        })).collect::<Vec<_>>(),
    });
    let argf = tree.dir.path().join("oracle.json");
    std::fs::write(&argf, args.to_string()).unwrap();
    let script = tree.dir.path().join("oracle.py");
    std::fs::write(&script, ORACLE).unwrap();
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(&argf)
        .env("PYTHONHASHSEED", "0")
        .output()
        .unwrap();
    if std::env::var_os("PILLAR_LOG").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match Value::decode(&out.stdout) {
        Ok(Value::Array(a)) => a,
        other => panic!("oracle output: {other:?}"),
    }
}

struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Error
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("[brine {}] {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

pub fn brine(tree: &Tree, c: &Case) -> Value {
    if std::env::var_os("PILLAR_LOG").is_some() {
        let _ = log::set_logger(&StderrLog);
        log::set_max_level(log::LevelFilter::Error);
    }
    let cfg = MasterConfig::load(&tree.conf_dir()).unwrap();
    let mut grains = from_json(&c.grains);
    grains.set("id", Value::from(c.id));
    let mut load = Value::map([("id", Value::from(c.id))]);
    if let Some(s) = c.saltenv {
        load.set("saltenv", Value::from(s));
    }
    if let Some(p) = c.pillarenv {
        load.set("pillarenv", Value::from(p));
    }
    if let Some(o) = &c.pillar_override {
        load.set("pillar_override", from_json(o));
    }
    if let Some(o) = &c.extra_minion_data {
        load.set("extra_minion_data", from_json(o));
    }
    let pki = cfg.get_str("pki_dir").unwrap_or_default().to_string();
    let accepted = move || accepted_ids(&pki);
    brine_pillar::compile(&cfg, c.id, &grains, &load, &accepted)
}

/// The names under `pki_dir/minions` (what Salt's CkMinions reads).
fn accepted_ids(pki_dir: &str) -> Vec<String> {
    std::fs::read_dir(std::path::Path::new(pki_dir).join("minions"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// A msgpack value as JSON for comparing and showing: a map key that is
/// not text is written `<type> repr` (`<int> 12345`), bytes `<bytes> repr`.
pub fn typed(v: &Value) -> Json {
    match v {
        Value::Bytes(_) => Json::from(format!("<bytes> {}", brine_py::repr(v))),
        Value::F64(f) if !f.is_finite() => Json::from(format!("<float> {}", brine_py::repr(v))),
        Value::Array(a) => Json::Array(a.iter().map(typed).collect()),
        Value::Map(pairs) => Json::Object(
            pairs
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::Str(s) => s.clone(),
                        other => format!("<{}> {}", brine_py::type_name(other), brine_py::repr(other)),
                    };
                    (key, typed(v))
                })
                .collect(),
        ),
        other => to_json(other),
    }
}

/// `_errors` entries are compared whole, except render errors that carry
/// the renderer's own exception text (Python's vs minijinja's): those are
/// compared up to the text.
pub fn normalize(mut v: Json) -> Json {
    if let Some(Json::Array(errs)) = v.get_mut("_errors") {
        for e in errs.iter_mut() {
            if let Some(s) = e.as_str() {
                if let Some((head, _)) = s.split_once("render error:\n") {
                    *e = Json::from(format!("{head}render error:\n…"));
                }
            }
        }
    }
    v
}

pub fn compare(tree: &Tree, cases: &[Case]) {
    compare_with(tree, cases, &["3007.17", "3006.30"]);
}

pub fn compare_with(tree: &Tree, cases: &[Case], versions: &[&str]) {
    for &version in versions {
        let want = python(version, tree, cases);
        for (c, want) in cases.iter().zip(want) {
            let got = normalize(typed(&brine(tree, c)));
            let want = typed(&want);
            if std::env::var_os("PILLAR_DUMP").is_some() {
                eprintln!("{} {version}: {}", c.id, serde_json::to_string_pretty(&want).unwrap());
            }
            if let Some(exc) = want.get("__exception__") {
                // Salt fails the whole request (the minion gets no pillar);
                // Brine answers with the error in `_errors`.
                assert!(
                    got.get("_errors")
                        .and_then(Json::as_array)
                        .is_some_and(|e| !e.is_empty()),
                    "minion {}: Salt {version} raised {exc}, Brine gave no error: {got}",
                    c.id
                );
                continue;
            }
            let want = normalize(want);
            let (g, w) = (
                serde_json::to_string_pretty(&got).unwrap(),
                serde_json::to_string_pretty(&want).unwrap(),
            );
            if g != w {
                let mut diff = Vec::new();
                json_diff("", &got, &want, &mut diff);
                panic!(
                    "minion {} (saltenv {:?}, pillarenv {:?}) against Salt {version}:\n{}\n--- brine:\n{g}\n--- python:\n{w}",
                    c.id,
                    c.saltenv,
                    c.pillarenv,
                    diff.join("\n")
                );
            }
        }
    }
}

/// Paths where two JSON values differ (values, or key order).
pub fn json_diff(path: &str, a: &Json, b: &Json, out: &mut Vec<String>) {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => json_diff(&format!("{path}/{k}"), v, w, out),
                    None => out.push(format!("{path}/{k}: only brine: {v}")),
                }
            }
            for (k, w) in y {
                if !x.contains_key(k) {
                    out.push(format!("{path}/{k}: only python: {w}"));
                }
            }
            let (kx, ky): (Vec<_>, Vec<_>) = (x.keys().collect(), y.keys().collect());
            if out.is_empty() && kx != ky {
                out.push(format!("{path}: key order brine {kx:?} python {ky:?}"));
            }
        }
        _ if a != b => out.push(format!("{path}: brine {a} python {b}")),
        _ => {}
    }
}

pub fn web_grains() -> Json {
    json!({
        "os": "Debian", "os_family": "Debian", "osrelease": "12", "num_cpus": 2,
        "roles": ["web", "db"], "virtual": "kvm", "ipv4": ["127.0.0.1", "10.0.0.5"],
        "nested": {"a": {"b": [1, 2]}}, "fqdn": "web1.example.com",
    })
}

pub fn db_grains() -> Json {
    json!({"os": "RedHat", "os_family": "RedHat", "num_cpus": 8, "roles": ["db"], "virtual": "physical"})
}
