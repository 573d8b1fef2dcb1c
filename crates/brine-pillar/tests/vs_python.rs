//! Pillar compilation against the oracle: the same `pillar_roots` trees,
//! config and minions compiled by Brine's `pillar::compile` and by Python
//! Salt's own `salt.pillar.Pillar(...).compile_pillar()` (3007.17 and
//! 3006.30, run by the venv's python on the same master config), compared
//! as JSON, key order and `_errors` included.
//!
//! Top-file targets use explicit `match:` types that
//! `targeting::minion_matches` has today; the scenario using the default
//! matcher (`compound`) runs only once `minion_matches` knows compound
//! targets (it says so and returns early before).

use std::path::PathBuf;
use std::process::Command;

use brine_config::MasterConfig;
use brine_proto::json::{from_json, to_json};
use brine_proto::Value;
use brine_targeting::{minion_matches, MinionData};
use serde_json::{json, Value as Json};

const ORACLE: &str = r#"
import json, sys, logging
if "PILLAR_LOG" not in __import__("os").environ: logging.disable(logging.CRITICAL)
import salt.config, salt.pillar
args = json.load(open(sys.argv[1]))
opts = salt.config.master_config(args["conf"])
out = []
for c in args["cases"]:
    grains = dict(c["grains"])
    grains["id"] = c["id"]
    p = salt.pillar.Pillar(dict(opts), grains, c["id"], c.get("saltenv"),
                           pillar_override=c.get("pillar_override"),
                           pillarenv=c.get("pillarenv"))
    try:
        out.append(p.compile_pillar())
    except Exception as exc:
        out.append({"__exception__": type(exc).__name__})
print(json.dumps(out))
"#;

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// A master config dir with `conf` (YAML, `{root}` replaced by the
    /// tree's root) and `files` (path under the root → contents).
    fn new(conf: &str, files: &[(&str, &str)]) -> Tree {
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

    fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("conf")
    }
}

/// One `_pillar` request: id, grains and the load's extra keys.
#[derive(Clone)]
struct Case {
    id: &'static str,
    grains: Json,
    saltenv: Option<&'static str>,
    pillarenv: Option<&'static str>,
    pillar_override: Option<Json>,
}

fn case(id: &'static str, grains: Json) -> Case {
    Case {
        id,
        grains,
        saltenv: None,
        pillarenv: None,
        pillar_override: None,
    }
}

fn python(version: &str, tree: &Tree, cases: &[Case]) -> Vec<Json> {
    let venv = brine_testutil::salt_venv(version);
    let args = json!({
        "conf": tree.conf_dir().join("master"),
        "cases": cases.iter().map(|c| json!({
            "id": c.id, "grains": c.grains, "saltenv": c.saltenv, "pillarenv": c.pillarenv,
            "pillar_override": c.pillar_override,
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
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("oracle output: {e}: {}", String::from_utf8_lossy(&out.stdout)))
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

fn brine(tree: &Tree, c: &Case) -> Json {
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
    to_json(&brine_pillar::compile(&cfg, c.id, &grains, &load))
}

/// `_errors` entries are compared whole, except render errors that carry
/// the renderer's own exception text (Python's vs minijinja's): those are
/// compared up to the text.
fn normalize(mut v: Json) -> Json {
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

fn compare(tree: &Tree, cases: &[Case]) {
    compare_with(tree, cases, &["3007.17", "3006.30"]);
}

fn compare_with(tree: &Tree, cases: &[Case], versions: &[&str]) {
    for &version in versions {
        let want = python(version, tree, cases);
        for (c, want) in cases.iter().zip(want) {
            let got = normalize(brine(tree, c));
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
fn json_diff(path: &str, a: &Json, b: &Json, out: &mut Vec<String>) {
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

fn web_grains() -> Json {
    json!({
        "os": "Debian", "os_family": "Debian", "osrelease": "12", "num_cpus": 2,
        "roles": ["web", "db"], "virtual": "kvm", "ipv4": ["127.0.0.1", "10.0.0.5"],
        "nested": {"a": {"b": [1, 2]}}, "fqdn": "web1.example.com",
    })
}

fn db_grains() -> Json {
    json!({"os": "RedHat", "os_family": "RedHat", "num_cpus": 8, "roles": ["db"], "virtual": "physical"})
}

const BASIC_TOP: &str = r#"
base:
  '*':
    - match: glob
    - common
    - missing.sls.name
  'web*':
    - match: glob
    - web
    - syntax_error
    - yaml_error
  'os:Debian':
    - match: grain
    - debian
  '^db\d+$':
    - match: pcre
    - db
  'web1,db1':
    - match: list
    - listed
    - notadict
    - badinclude
  'roles:d*':
    - match: grain
    - order: -1
    - first
  'num_cpus:8':
    - match: grain
    - optional.missing
    - ignore_missing: True
"#;

const COMMON: &str = r#"
{#- values printed the way Python prints them #}
os: {{ grains['os'] }}
osfam: {{ grains.os_family }}
cpus: {{ grains.num_cpus }}
cpus_plus: {{ grains.num_cpus + 1 }}
half: {{ grains.num_cpus / 4 }}
printed_none: {{ None }}
printed_bool: {{ True }}
printed_list: {{ grains['roles'] }}
printed_dict: {{ {'k': 'v', 'n': None, 'l': [1, 'two', False], 'x': 1.5} }}
printed_nested: {{ grains.nested }}
tab_value: {{ {'t': 'a\tb'} }}
id_from_opts: {{ opts['id'] }}
opts_pillarenv: {{ opts['pillarenv'] }}
saltenv: {{ saltenv }}
sls: {{ sls }}|{{ slspath }}|{{ tpldir }}|{{ tplfile }}|{{ sls_path }}|{{ slsdotpath }}
pillar_in_template: {{ pillar }}
grains_get: {{ salt['grains.get']('nested:a:b:1') }}
grains_get_default: {{ salt['grains.get']('nope', 'dflt') }}
grains_get_attr: {{ salt.grains.get('os') }}
pillar_get: {{ salt['pillar.get']('anything', 'fallback') }}
pillar_get_empty: '{{ salt['pillar.get']('anything') }}'
config_get: {{ salt['config.get']('renderer') }}
config_get_grain: {{ salt['config.get']('os_family') }}
filters:
  yaml: {{ grains.nested|yaml }}
  json: {{ {'b': 1, 'a': [True, None]}|json }}
  tojson: {{ ['x', 1]|tojson }}
  unique: {{ [3, 1, 3, 2, 1]|unique }}
  to_bool: [{{ 'yes'|to_bool }}, {{ 0|to_bool }}, {{ 'off'|to_bool }}]
  quote: {{ 'a b'|quote|yaml_encode }}
  sequence: {{ 'one'|sequence }}
  regex_replace: {{ 'web1.example.com'|regex_replace('\\.example\\.com$', '') }}
  regex_match: {{ 'web-12'|regex_match('web-(\\d+)') }}
  regex_search: {{ 'id=42;'|regex_search('=(\\d+)(;)') }}
  yaml_encode: {{ 'it''s: here'|yaml_encode }}
  yaml_dquote: {{ 'a "q"'|yaml_dquote }}
  load_yaml: {{ ('{a: [1, 2]}'|load_yaml).a }}
  union: {{ [1, 2]|union([2, 3]) }}
  difference: {{ [1, 2, 3]|difference([2]) }}
  is_list: {{ grains.roles is list }}
  match_test: {{ grains.fqdn is match('web\\d') }}
  default: {{ grains.nope|default('d') }}
  join: {{ grains.roles|join(',') }}
  upper: {{ grains.os|upper }}
  map: {{ grains.roles|map('upper')|list }}
  sha256: {{ 'abc'|sha256 }}
  base64: {{ 'abc'|base64_encode }}
methods:
  split: {{ 'a,b,c'.split(',') }}
  startswith: {{ grains.os.startswith('Deb') }}
  dict_get: {{ grains.get('os') }}
  dict_get_default: {{ grains.get('missing', 'dd') }}
  keys: {{ grains.nested.keys()|list }}
  items: {{ grains.nested.items()|list|length }}
  format: {{ '{}-{}'.format(grains.os, grains.num_cpus) }}
{% set total = namespace(n=0) %}
{%- for r in grains.roles %}{% set total.n = total.n + 1 %}{% endfor %}
roles_count: {{ total.n }}
{% if grains.os == 'Debian' %}
debian_only: true
{% else %}
debian_only: false
{% endif %}
loop:
{%- for r in grains.roles %}
  - {{ loop.index }}-{{ r }}
{%- endfor %}
{% from 'macros/lib.jinja' import greet with context %}
macro: {{ greet('you') }}
shared:
  from: common
  list: [1, 2]
  deep:
    a: 1
"#;

const WEB: &str = r#"#!jinja|yaml
include:
  - .webextra
  - web.sub
  - nested: {key: 'under:here', defaults: {colour: blue}}
  - inc_after_defaults
shared:
  from: web
  list: [3]
  deep:
    b: 2
web_saltenv: {{ saltenv }}
"#;

const FILES: &[(&str, &str)] = &[
    ("srv/pillar/common.sls", COMMON),
    ("srv/pillar/web/init.sls", WEB),
    (
        "srv/pillar/web/webextra.sls",
        "webextra: {{ sls }} {{ tpldir }}\nshared: {deep: {c: 3}}\n",
    ),
    ("srv/pillar/webextra.sls", "top_level_webextra: {{ slspath }}\n"),
    ("srv/pillar/web/sub.sls", "#!yaml\nsub: {{ not rendered }}\n"),
    (
        "srv/pillar/nested.sls",
        "colour: {{ colour }}\nsls_in_nested: {{ sls }}\n",
    ),
    (
        "srv/pillar/inc_after_defaults.sls",
        "still: {{ colour|default('no colour') }}\n",
    ),
    ("srv/pillar/syntax_error.sls", "a: {{ grains.os }\n"),
    ("srv/pillar/yaml_error.sls", "a: [1\nb: 2\n"),
    (
        "srv/pillar/debian.sls",
        "debian: {{ grains.osrelease }}\nshared: {list: [9], from: debian}\n",
    ),
    ("srv/pillar/db.sls", "db: true\n"),
    ("srv/pillar/listed.sls", "#!json\n{\"listed\": [1, {\"x\": null}]}\n"),
    ("srv/pillar/notadict.sls", "- a\n- b\n"),
    ("srv/pillar/badinclude.sls", "include: nope\nbadinclude: 1\n"),
    ("srv/pillar/first.sls", "shared: {from: first}\nfirst: 1\n"),
    (
        "srv/pillar/macros/lib.jinja",
        "{% macro greet(who) %}hi {{ who }} from {{ grains.os }}{% endmacro %}\n",
    ),
    ("srv/pillar/empty.sls", ""),
    ("srv/pillar/top.sls", BASIC_TOP),
];

fn basic_cases() -> Vec<Case> {
    vec![
        case("web1", web_grains()),
        case("db1", db_grains()),
        case("other", json!({"os": "Arch", "num_cpus": 1})),
    ]
}

#[test]
fn basic_top_matching_rendering_includes_and_errors() {
    let tree = Tree::new("", FILES);
    compare(&tree, &basic_cases());
}

#[test]
fn merge_strategies_and_options() {
    for conf in [
        "pillar_merge_lists: True\n",
        "pillar_source_merging_strategy: overwrite\n",
        "pillar_source_merging_strategy: recurse\npillar_includes_override_sls: True\n",
        "pillar_source_merging_strategy: none\n",
        "pillar_source_merging_strategy: list\n",
        "pillar_safe_render_error: False\n",
        "jinja_sls_env: {trim_blocks: True, lstrip_blocks: True}\n",
    ] {
        let tree = Tree::new(conf, FILES);
        eprintln!("config: {conf}");
        compare(&tree, &basic_cases()[..2]);
    }
}

#[test]
fn pillar_override_and_env_selection() {
    let files: &[(&str, &str)] = &[
        (
            "base/top.sls",
            "base:\n  '*':\n    - match: glob\n    - common\ndev:\n  'web*':\n    - match: glob\n    - devstuff\n    - common\n",
        ),
        ("base/common.sls", "where: base\nenv: {{ saltenv }}\nlist: [1]\n"),
        ("dev/top.sls", "dev:\n  '*':\n    - match: glob\n    - onlydev\n"),
        ("dev/devstuff.sls", "devstuff: {{ saltenv }}\nwhere: dev\n"),
        ("dev/common.sls", "where: dev-common\n"),
        ("dev/onlydev.sls", "onlydev: {{ opts['pillarenv'] }}\n"),
        ("feature-x/top.sls", "feature-x:\n  '*':\n    - match: glob\n    - feat\n"),
        ("feature-x/feat.sls", "feat: {{ saltenv }}\n"),
    ];
    let conf = "pillar_roots:\n  base: ['{root}/base']\n  dev: ['{root}/dev']\n  __env__: ['{root}/__env__']\n";
    // Top files in several environments: 3007.17 reads them in Python set
    // order (hash-seed dependent), 3006.30 and Brine in `_get_envs` order.
    let tree = Tree::new(conf, files);
    let web = |saltenv, pillarenv, over: Option<Json>| Case {
        saltenv,
        pillarenv,
        pillar_override: over,
        ..case("web1", web_grains())
    };
    compare_with(
        &tree,
        &[
            web(None, None, None),
            web(Some("dev"), None, None),
            web(
                None,
                None,
                Some(json!({"where": "override", "list": [2], "new": {"a": 1}})),
            ),
            web(None, None, Some(json!(["not", "a", "dict"]))),
        ],
        &["3006.30"],
    );
    // One top file read: the same in both versions.
    compare(
        &tree,
        &[
            web(None, Some("dev"), None),
            web(None, Some("base"), None),
            web(None, Some("nowhere"), None),
            web(Some("base"), Some("feature-x"), None),
            web(None, Some("feature-x"), Some(json!({"feat": {"x": 1}, "more": 1}))),
        ],
    );
    let tree = Tree::new(&format!("{conf}pillarenv_from_saltenv: True\n"), files);
    compare(
        &tree,
        &[web(Some("dev"), None, None), web(Some("feature-x"), None, None)],
    );
    compare_with(&tree, &[web(None, None, None)], &["3006.30"]);
    // Only the base top file, naming two environments.
    let single: Vec<(&str, &str)> = files
        .iter()
        .filter(|(p, _)| !p.ends_with("/top.sls") || p.starts_with("base/"))
        .copied()
        .collect();
    let tree = Tree::new(conf, &single);
    compare(
        &tree,
        &[
            web(None, None, None),
            web(Some("dev"), None, None),
            web(
                None,
                None,
                Some(json!({"where": "override", "list": [2], "new": {"a": 1}})),
            ),
            web(None, None, Some(json!(["not", "a", "dict"]))),
        ],
    );
    let tree = Tree::new(&format!("{conf}env_order: [dev, base]\n"), &single);
    compare(&tree, &[web(None, None, None)]);
    let tree = Tree::new(&format!("{conf}pillar_source_merging_strategy: none\n"), &single);
    compare(&tree, &[web(None, None, None), web(Some("dev"), None, None)]);
}

#[test]
fn broken_top_files() {
    let base = |top: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![
            ("srv/pillar/top.sls", top),
            ("srv/pillar/a.sls", "a: 1\n"),
            ("srv/pillar/b.sls", "b: 2\n"),
        ]
    };
    for top in [
        "base:\n  '*':\n    - match: glob\n    - a\n  {{ grains.nope }}\n",
        "base:\n  '*':\n",
        "base: [a, b]\n",
        "- a\n",
        "include:\n  - extra\nbase:\n  '*':\n    - match: glob\n    - a\n",
    ] {
        let mut files = base(top);
        files.push(("srv/pillar/extra.sls", "base:\n  'web*':\n    - match: glob\n    - b\n"));
        let tree = Tree::new("", &files);
        eprintln!("top: {top}");
        compare(&tree, &[case("web1", web_grains())]);
    }
}

/// The default matcher is `compound`: every plain top file relies on it.
#[test]
fn default_compound_matcher() {
    let probe = MinionData {
        id: "web1",
        grains: &Value::Map(Vec::new()),
        pillar: &Value::Map(Vec::new()),
    };
    if !minion_matches(&probe, &Value::from("web*"), "compound", ":", &Value::Nil) {
        eprintln!("skipped: targeting::minion_matches does not know compound targets yet");
        return;
    }
    let files: &[(&str, &str)] = &[
        (
            "srv/pillar/top.sls",
            "base:\n  '*':\n    - a\n  'G@os:Debian and web*':\n    - b\n  'L@db1,web1 or E@^x':\n    - c\n  'not web*':\n    - d\n",
        ),
        ("srv/pillar/a.sls", "a: 1\n"),
        ("srv/pillar/b.sls", "b: 1\n"),
        ("srv/pillar/c.sls", "c: 1\n"),
        ("srv/pillar/d.sls", "d: 1\n"),
    ];
    let tree = Tree::new("", files);
    compare(&tree, &[case("web1", web_grains()), case("db1", db_grains())]);
    // Nodegroups, the other target types, and the pillar the matchers see
    // (empty, or the override with ext_pillar_first).
    let files: &[(&str, &str)] = &[
        (
            "srv/pillar/top.sls",
            "base:\n  webs:\n    - match: nodegroup\n    - ng\n  'N@dbs or S@10.0.0.0/8':\n    - ngc\n  \
             'I@role:x':\n    - pil\n  'J@os:^Deb':\n    - pcre_grain\n  'P@os:Red.*':\n    - pcre_grain2\n  \
             'web1,db2':\n    - match: compound\n    - notlisted\n  '10.0.0.0/24':\n    - match: ipcidr\n    - cidr\n  \
             '*':\n    - funcs\n",
        ),
        ("srv/pillar/ng.sls", "ng: 1\n"),
        ("srv/pillar/ngc.sls", "ngc: 1\n"),
        ("srv/pillar/pil.sls", "pil: 1\n"),
        ("srv/pillar/pcre_grain.sls", "pcre_grain: 1\n"),
        ("srv/pillar/pcre_grain2.sls", "pcre_grain2: 1\n"),
        ("srv/pillar/notlisted.sls", "notlisted: 1\n"),
        ("srv/pillar/cidr.sls", "cidr: 1\n"),
        (
            "srv/pillar/funcs.sls",
            "funcs:\n  compound: {{ salt['match.compound']('G@os:Debian and web*') }}\n  \
             ipcidr: {{ salt['match.ipcidr']('10.0.0.0/8') }}\n  \
             compound_other: {{ salt['match.compound']('N@dbs', minion_id='db2') }}\n",
        ),
    ];
    let conf = "nodegroups:\n  webs: 'web*'\n  dbs: ['db1', 'db2']\n";
    let with_role = |id: &'static str, g: Json| Case {
        pillar_override: Some(json!({"role": "x"})),
        ..case(id, g)
    };
    let cases = [
        case("web1", web_grains()),
        case("db1", db_grains()),
        with_role("web1", web_grains()),
    ];
    compare(&Tree::new(conf, files), &cases);
    compare(&Tree::new(&format!("{conf}ext_pillar_first: True\n"), files), &cases);
    // A target's SLS list given as a string: Salt iterates its characters.
    let tree = Tree::new(
        "",
        &[
            ("srv/pillar/top.sls", "base:\n  '*': ab\n"),
            ("srv/pillar/a.sls", "a: 1\n"),
        ],
    );
    compare(&tree, &[case("web1", web_grains())]);
}

/// Jinja as Salt runs it, one feature group per SLS (a difference shows
/// as that SLS's render error or value).
const JINJA_FILES: &[(&str, &str)] = &[
    (
        "srv/pillar/top.sls",
        "base:\n  '*':\n    - match: glob\n    - j.*\n",
    ),
    (
        "srv/pillar/j/printing.sls",
        r#"printing:
  float: {{ 1.0 }}
  div: {{ 7 / 2 }}
  floordiv: {{ 7 // 2 }}
  pow: {{ 2 ** 10 }}
  big: '{{ 1e20 }}'
  small: '{{ 0.00001 }}'
  neg: {{ -3 }}
  str_mul: {{ '-' * 3 }}
  list_add: {{ [1, 2] + [3] }}
  slice: {{ 'abcdef'[1:3] }}
  none_lower: {{ none }}
  true_lower: {{ true }}
  quote_in_dict: {{ {'q': "it's", 'u': 'é'} }}
  nested_list: {{ [[1, 'a'], {'k': None}] }}
  unicode: {{ 'héllo' }}
  range: {{ range(3)|list }}
  dict_fn: {{ dict(a=1, b='x') }}
  tuple: "{{ (1, 'a') }}"
  empty: '{{ '' }}'
  bool_cmp: {{ 1 == 1.0 }}
  in_list: {{ 'web' in grains.roles }}
  not_in: {{ 'x' not in grains.roles }}
  ternary: {{ 'yes' if grains.num_cpus > 1 else 'no' }}
"#,
    ),
    (
        "srv/pillar/j/tests.sls",
        r#"tests:
  number: {{ grains.num_cpus is number }}
  string: {{ grains.os is string }}
  mapping: {{ grains.nested is mapping }}
  iterable: {{ grains.roles is iterable }}
  sequence: {{ grains.roles is sequence }}
  none: {{ grains.get('nope') is none }}
  defined: {{ grains.nope is defined }}
  undefined: {{ grains.nope is undefined }}
  odd: {{ 3 is odd }}
  even: {{ 3 is even }}
  divisibleby: {{ 9 is divisibleby 3 }}
  sameas: {{ none is sameas none }}
  equalto: {{ 2 is equalto 2 }}
  lower: {{ 'abc' is lower }}
  in: {{ 'a' is in ['a'] }}
"#,
    ),
    (
        "srv/pillar/j/filters.sls",
        r#"filters:
  dictsort_len: {{ {'b': 1, 'a': 2}|dictsort|length }}
  dictsort_first: {{ ({'b': 1, 'a': 2}|dictsort|first)[0] }}
  sort: {{ [3, 1, 2]|sort }}
  sort_rev: {{ [3, 1, 2]|sort(reverse=True) }}
  first: {{ grains.roles|first }}
  last: {{ grains.roles|last }}
  length: {{ grains.roles|length }}
  sum: {{ [1, 2, 3]|sum }}
  int: {{ '42'|int }}
  int_bad: {{ 'x'|int }}
  int_float: {{ '3.7'|int }}
  float: {{ '2.5'|float }}
  round: {{ 2.567|round(1) }}
  round0: {{ 2.5|round }}
  abs: {{ -3|abs }}
  replace: {{ 'a-b-c'|replace('-', '+') }}
  trim: '{{ '  x  '|trim }}'
  title: {{ 'hello world'|title }}
  capitalize: {{ 'hello World'|capitalize }}
  lower: {{ 'ABC'|lower }}
  reverse: {{ [1, 2, 3]|reverse|list }}
  string: '{{ True|string }}'
  string_list: "{{ [1, None]|string }}"
  join_none: '{{ [1, None, True]|join(",") }}'
  join_attr: '{{ [{'n': 'a'}, {'n': 'b'}]|join(",", attribute="n") }}'
  list: {{ 'abc'|list }}
  map_attr: {{ [{'n': 1}, {'n': 2}]|map(attribute='n')|list }}
  selectattr: {{ [{'n': 1, 'on': True}, {'n': 2, 'on': False}]|selectattr('on')|map(attribute='n')|list }}
  select: {{ [1, 2, 3, 4]|select('odd')|list }}
  reject: {{ [1, 2, 3, 4]|reject('odd')|list }}
  batch: {{ [1, 2, 3]|batch(2)|list }}
  min: {{ [3, 1, 2]|min }}
  max: {{ [3, 1, 2]|max }}
  default_none: {{ None|default('d') }}
  default_bool: {{ ''|default('d', true) }}
  d: {{ grains.nope|d('short') }}
  tojson_dict: {{ {'b': 1, 'a': 'é'}|tojson }}
  json_dict: {{ {'b': 1, 'a': 'é'}|json }}
  yaml_str: {{ 'on'|yaml }}
  yaml_list: {{ ['a', 'yes', 1.5, None]|yaml }}
  yaml_dquote_u: {{ 'é\n'|yaml_dquote }}
  indent: |
    {{ 'a\nb\nc'|indent(4) }}
  wordcount: {{ 'a b c'|wordcount }}
  unique_str_len: {{ 'aab'|unique|list|length }}
  sequence_dict: {{ {'a': 1}|sequence }}
  traverse: {{ grains.nested|traverse('a:b:0') }}
  regex_escape: '{{ 'a.b'|regex_escape }}'
  regex_search_none: '{{ 'abc'|regex_search('x') }}'
  to_bool_list: {{ []|to_bool }}
  flatten: {{ [1, [2, [3]]]|flatten }}
  difference: {{ [1, 2, 3]|difference([2, 4]) }}
  intersect: {{ [1, 2, 3]|intersect([2, 3, 4]) }}
  symmetric_difference: {{ [1, 2]|symmetric_difference([2, 3]) }}
  avg: {{ [1, 2, 3, 4]|avg }}
  md5: {{ 'abc'|md5 }}
  base64_decode: {{ 'YWJj'|base64_decode }}
  is_ip: {{ '10.0.0.1'|is_ip }}
  is_ipv6: {{ '::1'|is_ipv6 }}
  path_join: {{ '/srv'|path_join('pillar', 'x.sls') }}
  to_num: {{ '1.5'|to_num }}
  str_to_num: {{ '12'|str_to_num }}
  is_hex: {{ '0x1f'|is_hex }}
  contains_whitespace: {{ 'a b'|contains_whitespace }}
  set_dict: {{ {'a': {}}|set_dict_key_value('a:b', 1) }}
  append_dict: {{ {}|append_dict_key_value('x:y', 1) }}
  to_snake: {{ 'someName'|to_snake_case }}
  to_camel: {{ 'some_name'|to_camelcase }}
"#,
    ),
    (
        "srv/pillar/j/control.sls",
        r#"{%- set ns = namespace(total=0) %}
{%- for i in range(10) %}
  {%- if i == 2 %}{% continue %}{% endif %}
  {%- if i > 4 %}{% break %}{% endif %}
  {%- set ns.total = ns.total + i %}
{%- endfor %}
control:
  total: {{ ns.total }}
  loop:
{%- for r in grains.roles %}
    - {{ loop.index0 }} {{ loop.first }} {{ loop.last }} {{ loop.length }} {{ loop.revindex }} {{ r }}
{%- endfor %}
  items:
{%- for k, v in grains.nested.items() %}
    {{ k }}: {{ v }}
{%- endfor %}
{% macro row(name, value='dflt') -%}
{{ name }}={{ value }}
{%- endmacro %}
  macro: {{ row('a') }} {{ row('b', 2) }}
{% set block %}
text {{ grains.os }}
{% endset %}
  set_block: {{ block|trim }}
{% filter upper %}
  filtered: yes
{% endfilter %}
  raw: '{% raw %}{{ not rendered }}{% endraw %}'
{# a comment #}
  with: {% with x = 3 %}{{ x }}{% endwith %}
  call: {% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inner{% endcall %}
{% do range(1) %}
  do: done
"#,
    ),
    (
        "srv/pillar/j/salt_funcs.sls",
        r#"salt_funcs:
  pillar_get_dict: {{ salt['pillar.get']('x', {}) }}
  pillar_get_list: {{ salt['pillar.get']('x', []) }}
  pillar_get_kw: {{ salt['pillar.get']('x', default='kw') }}
  pillar_get_merge: {{ salt['pillar.get']('x', {'a': 1}, merge=True) }}
  grains_get_list_idx: {{ salt['grains.get']('roles:1') }}
  grains_get_delim: {{ salt['grains.get']('nested,a,b', delimiter=',') }}
  grains_item: {{ salt['grains.item']('os', 'nope') }}
  config_get_opt: {{ salt['config.get']('pillar_source_merging_strategy') }}
  config_get_default: {{ salt['config.get']('nope:nope', 'cd') }}
  config_get_nested_opt: {{ salt['config.get']('pillar_roots:base')|length }}
  attr_style: {{ salt.pillar.get('x', 'attr') }}
  opts_get: {{ opts.get('renderer') }}
  opts_file_client: {{ opts['file_client'] }}
  opts_minion_id: {{ opts['minion_id'] }}
  grains_id: {{ grains['id'] }}
  filter_by: {{ salt['grains.filter_by']({'Debian': {'pkg': 'apache2'}, 'RedHat': {'pkg': 'httpd'}}) }}
  filter_by_grain: {{ salt['grains.filter_by']({'De*': 'glob', 'default': 'd'}, grain='os') }}
  filter_by_list: {{ salt['grains.filter_by']({'db': 'from-list'}, grain='roles') }}
  filter_by_default: {{ salt['grains.filter_by']({'default': {'a': 1}, 'x': {}}, grain='nope') }}
  filter_by_base: {{ salt['grains.filter_by']({'base': {'a': 1, 'b': 1}, 'Debian': {'b': 2}}, base='base', merge={'c': 3}) }}
  filter_by_none: {{ salt['grains.filter_by']({'x': 1}, grain='nope') }}
  pillar_filter_by: {{ salt['pillar.filter_by']({'default': 'pd'}, pillar='role') }}
  match_glob: {{ salt['match.glob']('web*') }}
  match_glob_other: {{ salt['match.glob']('web*', minion_id='db1') }}
  match_pcre: {{ salt['match.pcre']('w.b\\d') }}
  match_list: {{ salt['match.list']('a,web1') }}
  match_grain: {{ salt['match.grain']('os:Deb*') }}
  match_grain_pcre: {{ salt['match.grain_pcre']('os:D.b') }}
  match_pillar: {{ salt['match.pillar']('role:x') }}
"#,
    ),
    (
        "srv/pillar/j/serializers.sls",
        r#"{%- load_yaml as loaded %}
a: 1
b: [x, {{ grains.os }}]
{%- endload %}
{%- load_json as js %}{"k": [1, 2]}{% endload %}
{%- import_yaml 'data/defaults.yaml' as defaults %}
{%- import_json 'data/more.json' as more %}
{%- import_text 'data/note.txt' as note %}
serializers:
  loaded: {{ loaded }}
  js: {{ js.k }}
  defaults: {{ defaults }}
  more: {{ more }}
  note: {{ note|trim }}
{%- from 'data/map.jinja' import settings with context %}
  map: {{ settings }}
{%- import 'data/map.jinja' as m %}
  imported: {{ m.settings.port }}
{% include 'data/snippet.jinja' %}
{%- from './helpers.jinja' import helper %}
  relative_after_absolute: {{ helper() }}
"#,
    ),
    // Salt resolves `./` against the directory of the template it loaded
    // last by a plain name (here data/), not the importing file's.
    ("srv/pillar/data/helpers.jinja", "{% macro helper() %}data helper{% endmacro %}\n"),
    (
        "srv/pillar/j/relative.sls",
        "{%- from './helpers.jinja' import helper %}\n{%- import_yaml './local.yaml' as local %}\nrelative:\n  \
         helper: {{ helper() }}\n  yaml: {{ local }}\n  up: {% include '../data/word.txt' %}\n",
    ),
    ("srv/pillar/data/word.txt", "{{ 'wo' ~ 'rd' }}"),
    ("srv/pillar/j/helpers.jinja", "{% macro helper() %}j helper{% endmacro %}\n"),
    ("srv/pillar/j/local.yaml", "local: {{ sls }}\n"),
    ("srv/pillar/data/defaults.yaml", "port: 80\nos: {{ grains.os }}\n"),
    ("srv/pillar/data/more.json", "{\"n\": [1, {\"x\": null}]}\n"),
    ("srv/pillar/data/note.txt", "some text\n"),
    (
        "srv/pillar/data/map.jinja",
        "{% set settings = {'port': 8080, 'os': grains.os, 'dir': tpldir} %}\n",
    ),
    ("srv/pillar/data/snippet.jinja", "  included: {{ grains.os_family }}\n"),
    (
        "srv/pillar/j/whitespace.sls",
        "whitespace:\n  {%- if True %}\n  a: 1\n  {%- endif %}\n  {% if True -%}\n  b: 2\n  {%- endif %}\n  c: |\n    line1\n    {{ 'line2' }}\n\n",
    ),
    (
        "srv/pillar/j/mutation.sls",
        r#"{% set l = [] %}
{%- for r in grains.roles %}{% do l.append(r|upper) %}{% endfor %}
{%- set d = {'a': {'x': 1}} %}
{%- do d.update({'b': 2}) %}
{%- do d['a'].update({'y': 2}, z=3) %}
{%- do d.setdefault('c', []).append(3) %}
{%- set alias = d %}
{%- do alias.update({'via_alias': True}) %}
{%- set p = salt['pillar.get']('nope', {}) %}
{%- do p.update({'k': 'v'}) %}
{%- set popped = d.pop('b') %}
{%- set ext = [1] %}{% do ext.extend([2, 3]) %}{% do ext.insert(0, 0) %}
{%- do ext.remove(2) %}
{%- set last = ext.pop() %}
{%- set cp = d.copy() %}{% do cp.update({'only_copy': 1}) %}
{%- import_yaml 'data/defaults.yaml' as defaults %}
{%- do defaults.update({'port': 81}) %}
{%- set users = {} %}
{%- for name in ['a', 'b'] %}{% do users.update({name: {'home': '/home/' ~ name}}) %}{% endfor %}
mutation:
  l: {{ l }}
  d: {{ d }}
  cp: {{ cp }}
  p: {{ p }}
  popped: {{ popped }}
  ext: {{ ext }}
  last: {{ last }}
  len: {{ l|length }}
  joined: {{ l|join('+') }}
  json: {{ d|json }}
  yaml: {{ d|yaml }}
  keys: {{ d.keys()|list }}
  items_len: {{ d.items()|list|length }}
  get: {{ d.get('a') }}
  in: {{ 'a' in d }}
  first: {{ l|first }}
  index: {{ l[0] }} {{ l[-1] }}
  loop: '{% for k, v in d.items() %}{{ k }}={{ v|string|length }};{% endfor %}'
  defaults: {{ defaults }}
  truthy: {{ 'yes' if l else 'no' }}
  sorted: {{ l|sort }}
  is_mapping: {{ d is mapping }}
  is_list: {{ l is list }}
  eq: {{ ext == [0, 1] }}
  dictsort: {{ d|dictsort|length }}
  tojson: {{ l|tojson }}
  users: {{ users }}
  selectattr: {{ users.values()|map(attribute='home')|list }}
"#,
    ),
    ("srv/pillar/j/undefined.sls", "undef: {{ grains.nope.deeper }}\n"),
    ("srv/pillar/j/raise.sls", "{{ raise('custom failure') }}\n"),
];

#[test]
fn jinja_semantics() {
    let tree = Tree::new("", JINJA_FILES);
    compare(&tree, &[case("web1", web_grains())]);
    let tree = Tree::new("allow_undefined: True\n", JINJA_FILES);
    compare(&tree, &[case("web1", web_grains())]);
}

#[test]
fn top_file_features_and_include_edges() {
    let files: &[(&str, &str)] = &[
        (
            "srv/pillar/top.sls",
            "include:\n  - moretop\nbase:\n  '*':\n    - match: glob\n    - a\n  'web*':\n    - match: glob\n    - order: 2\n    - b\n    - gone\n    - ignore_missing: True\n  'os:Debian':\n    - match: grain\n    - order: -5\n    - c\n    - inc\n",
        ),
        // An included top file: a target seen again replaces the first.
        ("srv/pillar/moretop.sls", "base:\n  '*':\n    - match: glob\n    - a2\n"),
        ("srv/pillar/a.sls", "v: a\n"),
        ("srv/pillar/a2.sls", "v: a2\n"),
        ("srv/pillar/b.sls", "v: b\nb: 1\n"),
        ("srv/pillar/c.sls", "v: c\nc: 1\n"),
        (
            "srv/pillar/inc.sls",
            "include:\n  - missing_inc\n  - bad_inc\n  - b\n  - {c: {key: deep}}\n  - 'glo*'\ninc: 1\n",
        ),
        ("srv/pillar/bad_inc.sls", "{{ nope }}\n"),
        ("srv/pillar/list_inc.sls", "- x\n"),
        ("srv/pillar/glob1.sls", "glob1: 1\n"),
        ("srv/pillar/glob2.sls", "glob2: {{ sls }}\n"),
    ];
    let tree = Tree::new("", files);
    compare(&tree, &[case("web1", web_grains()), case("db1", db_grains())]);
    // An include rendering to a list: Salt's merge raises (no pillar at
    // all); Brine logs it and leaves it out.
    let mut with_list: Vec<(&str, &str)> = files.to_vec();
    with_list.push(("srv/pillar/inc.sls", "include:\n  - list_inc\ninc: 1\n"));
    with_list.retain(|(p, t)| !(p.ends_with("/inc.sls") && t.contains("missing_inc")));
    compare(&Tree::new("", &with_list), &[case("web1", web_grains())]);
}
