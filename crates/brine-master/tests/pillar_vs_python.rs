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
use brine_master::targeting::{minion_matches, MinionData};
use brine_proto::json::{from_json, to_json};
use brine_proto::Value;
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

fn brine(tree: &Tree, c: &Case) -> Json {
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
    to_json(&brine_master::pillar::compile(&cfg, c.id, &grains, &load))
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
            if std::env::var_os("PILLAR_DUMP").is_some() {
                eprintln!("{} {version}: {}", c.id, serde_json::to_string_pretty(&want).unwrap());
            }
            let (g, w) = (
                serde_json::to_string_pretty(&got).unwrap(),
                serde_json::to_string_pretty(&want).unwrap(),
            );
            if g != w {
                let diff: Vec<String> = g
                    .lines()
                    .zip(w.lines())
                    .enumerate()
                    .filter(|(_, (a, b))| a != b)
                    .take(8)
                    .map(|(i, (a, b))| format!("line {i}:\n  brine:  {a}\n  python: {b}"))
                    .collect();
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
