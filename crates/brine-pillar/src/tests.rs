//! What the Python comparison (tests/pillar_vs_python.rs) cannot show:
//! Brine's own limits and choices, and inputs Salt would crash on.

use super::*;
use serde_json::json;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        Fixture { dir }
    }

    fn opts(&self, extra: Json) -> Map<String, Json> {
        let mut o = json!({"pillar_roots": {"base": [self.dir.path().join("pillar")]}});
        if let (Json::Object(o), Json::Object(e)) = (&mut o, extra) {
            o.extend(e);
        }
        match o {
            Json::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn compile(&self, extra: Json) -> Json {
        self.compile_for("m1", extra)
    }

    fn compile_for(&self, id: &str, extra: Json) -> Json {
        let grains = Value::map([
            ("os", Value::from("Debian")),
            ("id", Value::from(id)),
            ("roles", Value::Array(vec![Value::from("web")])),
        ]);
        let req = Request {
            id,
            grains: &grains,
            saltenv: None,
            pillarenv: None,
            pillar_override: None,
            extra_minion_data: None,
            accepted: None,
            loader: None,
        };
        to_json(&Value::Map(compile_pillar(&self.opts(extra), &req)))
    }
}

const TOP: &str = "base:\n  '*':\n    - match: glob\n    - s\n";

fn one(sls: &str) -> Fixture {
    Fixture::new(&[("pillar/top.sls", TOP), ("pillar/s.sls", sls)])
}

fn errors(p: &Json) -> Vec<String> {
    p.get("_errors")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(|e| e.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

const FAILED: &str = "Rendering SLS 's' failed. Please see master log for details.";

#[test]
fn renderers_brine_does_not_run_are_errors_unknown_ones_empty() {
    for sls in [
        "#!py\ndef run():\n    return {}\n",
        "#!mako|yaml\na: 1\n",
        "#!jinja|yamlex\na: 1\n",
    ] {
        let p = one(sls).compile(json!({}));
        assert_eq!(errors(&p), [FAILED], "{sls}");
    }
    // A renderer Salt does not know either: nothing, no error (Salt logs).
    let p = one("#!nosuchrenderer\na: 1\n").compile(json!({}));
    assert_eq!(p, json!({}));
    // `renderer_blacklist` skips a renderer: the jinja text goes to yaml.
    let p = one("a: '{{ 1 }}'\n").compile(json!({"renderer_blacklist": ["jinja"]}));
    assert_eq!(p, json!({"a": "{{ 1 }}"}));
}

#[test]
fn gpg_passes_clear_data_and_refuses_pgp_blocks() {
    let p = one("#!yaml|gpg\na: 1\n").compile(json!({}));
    assert_eq!(p, json!({"a": 1}));
    let p =
        one("#!yaml|gpg\na: |\n  -----BEGIN PGP MESSAGE-----\n  xx\n  -----END PGP MESSAGE-----\n").compile(json!({}));
    assert_eq!(errors(&p), [FAILED]);
}

#[test]
fn json_and_old_style_pipes() {
    assert_eq!(one("#!json\n{\"a\": [1]}\n").compile(json!({})), json!({"a": [1]}));
    assert_eq!(
        one("#!json_jinja\n{\"a\": {{ [1, 2]|tojson }}}\n").compile(json!({})),
        json!({"a": [1, 2]})
    );
    assert_eq!(
        one("#!yaml_jinja\na: {{ 2 * 2 }}\n").compile(json!({})),
        json!({"a": 4})
    );
    // The default pipe follows the `renderer` option.
    let f = Fixture::new(&[
        ("pillar/top.sls", "{\"base\": {\"*\": [{\"match\": \"glob\"}, \"s\"]}}"),
        ("pillar/s.sls", "{\"a\": 1}"),
    ]);
    assert_eq!(f.compile(json!({"renderer": "json"})), json!({"a": 1}));
}

#[test]
fn broken_files_are_errors_not_failures() {
    let f = Fixture::new(&[("pillar/top.sls", TOP)]);
    std::fs::write(f.dir.path().join("pillar/s.sls"), b"a: \xff\xfe\n").unwrap();
    assert_eq!(errors(&f.compile(json!({}))), [FAILED]);
    for sls in [
        "{% for %}",
        "{{ 1/0 }}",
        "a: {{ range(10000000000)|list }}",
        "{{ x.y.z }}",
        "a: [1\n",
    ] {
        assert_eq!(errors(&one(sls).compile(json!({}))), [FAILED], "{sls}");
    }
    // With pillar_safe_render_error off the renderer's text is shown.
    let p = one("{{ nope }}").compile(json!({"pillar_safe_render_error": false}));
    let e = errors(&p);
    assert!(
        e[0].starts_with("Rendering SLS 's' failed, render error:\nJinja variable"),
        "{e:?}"
    );
}

#[test]
fn includes_resolve_like_salt() {
    let f = Fixture::new(&[
        (
            "pillar/top.sls",
            "base:\n  '*':\n    - match: glob\n    - app\n    - loop\n",
        ),
        // Relative to the package (init.sls) and a glob.
        ("pillar/app/init.sls", "include:\n  - .conf\n  - app.parts.*\napp: 1\n"),
        ("pillar/app/conf.sls", "conf: {{ sls }}\n"),
        ("pillar/app/parts/a.sls", "parts: {a: 1}\n"),
        ("pillar/app/parts/b.sls", "parts: {b: 1}\n"),
        // Including itself is served from the rendered-files cache.
        (
            "pillar/loop.sls",
            "include:\n  - loop\n  - {sub.x: {key: 'k1:k2', defaults: {v: 7}}}\nloop: 1\n",
        ),
        ("pillar/sub/x.sls", "x: {{ v }}\n"),
    ]);
    let p = f.compile(json!({}));
    assert_eq!(
        p,
        json!({"conf": "app.conf", "parts": {"a": 1, "b": 1}, "app": 1, "loop": 1, "k1": {"k2": {"x": 7}}})
    );
}

#[test]
fn top_file_order_and_ignore_missing() {
    let f = Fixture::new(&[
        (
            "pillar/top.sls",
            "base:\n  '*':\n    - match: glob\n    - a\n  'm*':\n    - match: glob\n    - order: 1\n    - b\n  'm1':\n    - match: glob\n    - order: '-1'\n    - c\n    - gone\n    - ignore_missing: True\n",
        ),
        ("pillar/a.sls", "v: a\n"),
        ("pillar/b.sls", "v: b\n"),
        ("pillar/c.sls", "v: c\nc: 1\n"),
    ]);
    // c (order -1) first, then a (0), then b (1): b wins; `gone` ignored.
    assert_eq!(f.compile(json!({})), json!({"v": "b", "c": 1}));
}

#[test]
fn unavailable_ext_pillar_modules_contribute_nothing() {
    let f = one("a: 1\n");
    assert_eq!(f.compile(json!({"ext_pillar": [{"git": "x"}]})), json!({"a": 1}));
    let p = f.compile(json!({"ext_pillar": "cmd_yaml"}));
    assert_eq!(errors(&p), ["The \"ext_pillar\" option is malformed"]);
    let p = f.compile(json!({"ext_pillar": ["cmd_yaml"]}));
    assert_eq!(p, json!({"_errors": ["The \"ext_pillar\" option is malformed"]}));
}

#[test]
fn decrypt_pillar_keys_present_are_errors() {
    let f = one("secret: x\nplain: y\n");
    let p = f.compile(json!({"decrypt_pillar": [{"secret": "gpg"}, {"absent": "gpg"}]}));
    assert_eq!(
        errors(&p),
        ["Failed to decrypt pillar key 'secret': decryption is not supported by Brine"]
    );
    assert_eq!(p["secret"], "x");
}

#[test]
fn pillar_opts_adds_the_master_options() {
    let p = one("a: 1\n").compile(json!({"pillar_opts": true, "renderer": "jinja|yaml"}));
    let master = &p["master"];
    assert_eq!(master["saltversion"], SALT_VERSION);
    assert_eq!(master["id"], "m1");
    assert!(master.get("grains").is_none());
}

#[test]
fn env_placeholder_roots() {
    let f = Fixture::new(&[
        ("dev/top.sls", "dev:\n  '*':\n    - match: glob\n    - s\n"),
        ("dev/s.sls", "env: {{ saltenv }}\n"),
    ]);
    let roots = json!({"pillar_roots": {"__env__": [f.dir.path().join("__env__")]}});
    let grains = Value::map([("id", Value::from("m1"))]);
    let req = Request {
        id: "m1",
        grains: &grains,
        saltenv: None,
        pillarenv: Some("dev"),
        pillar_override: None,
        extra_minion_data: None,
        accepted: None,
        loader: None,
    };
    let p = compile_pillar(&f.opts(roots), &req);
    assert_eq!(to_json(&Value::Map(p)), json!({"env": "dev"}));
}

/// Brine's Jinja limits (documented in `jinja`): Salt renders these.
#[test]
fn known_jinja_differences_fail_clearly() {
    for sls in [
        // Values that never went through `set` stay immutable.
        "{% do grains.roles.append(1) %}\n",
        "{% for d in [{}] %}{% do d.update({'a': 1}) %}{% endfor %}\n",
        "a: {{ '%s-%s' % ('x', 'y') }}\n",
        "{% do 1 %}\n",
    ] {
        assert_eq!(errors(&one(sls).compile(json!({}))), [FAILED], "{sls}");
    }
    // What goes through `set` changes in place, as in Python.
    assert_eq!(
        one("{% set l = [] %}{% do l.append(1) %}{% set d = {} %}{% do d.update(a=l) %}d: {{ d }}\n")
            .compile(json!({})),
        json!({"d": {"a": [1]}})
    );
    // `~` gives Python's text of the values, as Jinja2.
    assert_eq!(
        one("a: '{{ \"x\" ~ True ~ None ~ 1.5 }}'\n").compile(json!({})),
        json!({"a": "xTrueNone1.5"})
    );
}

#[test]
fn unsupported_salt_functions_are_render_errors() {
    for sls in ["a: {{ salt['cmd.run']('id') }}\n", "a: {{ salt.cmd.run('id') }}\n"] {
        assert_eq!(errors(&one(sls).compile(json!({}))), [FAILED], "{sls}");
    }
}

#[test]
fn compile_reads_the_request() {
    let f = Fixture::new(&[
        ("pillar/top.sls", TOP),
        ("pillar/s.sls", "env: {{ saltenv }}\nid: {{ grains.id }}\n"),
    ]);
    let conf = f.dir.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("master"),
        format!(
            "root_dir: {root}\npillar_roots:\n  base: [{root}/pillar]\n",
            root = f.dir.path().display()
        ),
    )
    .unwrap();
    let cfg = MasterConfig::load(&conf).unwrap();
    let grains = Value::map([("id", Value::from("m9"))]);
    let load = Value::map([
        ("env", Value::from("ignored-when-saltenv-is-there")),
        ("saltenv", Value::Nil),
        ("pillar_override", Value::map([("extra", Value::Int(1))])),
    ]);
    let p = compile(&cfg, "m9", &grains, &load, &Vec::new);
    assert_eq!(to_json(&p), json!({"extra": 1, "env": "base", "id": "m9"}));
}

/// An `ext_pillar` list for `Fixture::compile` options.
fn ext(entries: Json) -> Json {
    json!({ "ext_pillar": entries })
}

#[test]
fn ext_pillar_commands_are_bounded() {
    let f = one("a: 1\n");
    // A command past its deadline is killed, with what it started.
    let marker = f.dir.path().join("late");
    let cmd = format!("sleep 1 && touch {} & sleep 30", marker.display());
    let mut opts = ext(json!([{"cmd_yaml": cmd}]));
    opts["ext_pillar_cmd_timeout"] = json!(0.3);
    let t = std::time::Instant::now();
    let p = f.compile(opts);
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
    let e = errors(&p);
    assert_eq!(e.len(), 1, "{p}");
    assert!(
        e[0].starts_with("Failed to load ext_pillar cmd_yaml: ") && e[0].contains("did not finish within"),
        "{e:?}"
    );
    assert_eq!(p["a"], 1, "the rest of the pillar is there: {p}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!marker.exists(), "the background job was killed too");
    // Output past 16 MiB.
    let p = f.compile(ext(json!([{"cmd_json": "yes"}])));
    let e = errors(&p);
    assert!(e.len() == 1 && e[0].contains("wrote more than 16777216 bytes"), "{e:?}");
}

#[test]
fn ext_pillar_commands_never_take_a_hostile_id() {
    let f = Fixture::new(&[
        ("pillar/top.sls", TOP),
        ("pillar/s.sls", "a: 1\n"),
        ("ext_web-1.example.com.yaml", "mine: yes\n"),
    ]);
    let cmd = format!("cat {}/ext_%s.yaml", f.dir.path().display());
    let p = f.compile_for("web-1.example.com", ext(json!([{"cmd_yaml": cmd}])));
    assert_eq!(p["mine"], true, "{p}");
    let marker = f.dir.path().join("pwned");
    let hostile = format!("x;touch {}", marker.display());
    let p = f.compile_for(&hostile, ext(json!([{"cmd_yaml": cmd}, {"cmd_json": cmd}])));
    assert!(!marker.exists());
    let e = errors(&p);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e.iter().all(|x| x.contains("is not safe in a command line")), "{e:?}");
    // Without `%s` the command does not involve the id: it runs.
    let cmd = format!("cat {}/ext_web-1.example.com.yaml", f.dir.path().display());
    let p = f.compile_for(&hostile, ext(json!([{"cmd_yaml": cmd}])));
    assert_eq!(p["mine"], true, "{p}");
}

#[test]
fn file_tree_stays_in_its_root() {
    let f = Fixture::new(&[
        ("pillar/top.sls", TOP),
        ("pillar/s.sls", "a: 1\n"),
        ("tree/hosts/m1/file", "f\n"),
        ("tree/hosts/secret", "not a host\n"),
        ("tree/outside", "outside\n"),
    ]);
    let root = f.dir.path().join("tree");
    std::fs::create_dir_all(root.join("shared")).unwrap();
    std::fs::write(root.join("shared/x"), "x").unwrap();
    std::os::unix::fs::symlink(root.join("shared"), root.join("hosts/m1/linked")).unwrap();
    // A link back to a directory being walked is not walked again.
    std::os::unix::fs::symlink(root.join("hosts/m1"), root.join("hosts/m1/again")).unwrap();
    let conf = |follow: bool| ext(json!([{"file_tree": {"root_dir": root, "follow_dir_links": follow}}]));
    let p = f.compile_for("m1", conf(true));
    assert_eq!(p["file"], json!("f"), "{p}");
    assert_eq!(p["linked"], json!({"x": "x"}), "{p}");
    assert_eq!(p["again"], json!({}), "{p}");
    let p = f.compile_for("m1", conf(false));
    assert_eq!(
        p["linked"],
        json!({}),
        "a link not followed is an empty dict, as os.walk lists it: {p}"
    );
    // Ids that would leave hosts/.
    for id in ["..", "."] {
        let p = f.compile_for(id, conf(false));
        assert!(p.get("outside").is_none() && p.get("secret").is_none(), "{id}: {p}");
        assert_eq!(p["a"], 1, "{p}");
    }
}

#[test]
fn what_in_the_pillar_tree_needs_salts_python_loader() {
    let f = Fixture::new(&[
        ("pillar/top.sls", TOP),
        (
            "pillar/plain.sls",
            "{{ salt['grains.get']('os') }}: {{ salt.pillar.get('x') }}\n",
        ),
        ("pillar/clear.sls", "#!yaml|gpg\na: 1\n"),
        (
            "pillar/secret.sls",
            "#!yaml|gpg\na: |\n  -----BEGIN PGP MESSAGE-----\n  x\n",
        ),
        ("pillar/deep/py.sls", "#!py\ndef run():\n    return {}\n"),
        (
            "pillar/cp.sls",
            "{% set t = salt['cp.get_file_str']('/x') %}{{ salt.http.query('u') }}\n",
        ),
        ("pillar/notes.txt", "#!mako\n"),
    ]);
    // Links that loop are walked once.
    let pillar = f.dir.path().join("pillar");
    std::os::unix::fs::symlink(&pillar, pillar.join("deep/loop")).unwrap();
    std::os::unix::fs::symlink(f.dir.path(), pillar.join("up")).unwrap();
    assert_eq!(
        python_needs(&f.opts(json!({}))),
        [
            "execution:cp.get_file_str",
            "execution:http.query",
            "renderer:gpg",
            "renderer:py"
        ]
    );
    assert_eq!(
        python_needs(&f.opts(json!({"renderer": "jinja|yamlex"})))
            .last()
            .map(String::as_str),
        Some("renderer:yamlex")
    );
    let none = Fixture::new(&[("pillar/top.sls", TOP), ("pillar/s.sls", "a: 1\n")]);
    assert!(python_needs(&none.opts(json!({}))).is_empty());
}
