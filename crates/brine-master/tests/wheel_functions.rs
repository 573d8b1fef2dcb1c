//! The wheel functions beyond `key.*` (`config.*`, `file_roots.*`,
//! `pillar_roots.*`) and the `match.compound_matches` runner, compared
//! with Python's salt-master 3007.17 on the same configuration: the
//! `wheel` clear command with the master's user key (what WheelClient
//! sends), traversal attempts included, and a real minion's
//! `publish.runner`.

mod common;

use std::os::unix::fs::symlink;
use std::process::Command;
use std::time::Duration;

use brine_proto::Value;
use common::aes::{ask_within, clear};
use common::minion::venv;
use common::pysalt::{PyMaster, Side};
use common::requests::{canon, env_with_roots, s};
use common::*;

const VERSION: &str = "3007.17";

/// What is written beside the roots, which no wheel call may read.
const SECRET: &str = "not for the wheel";

/// Whether Brine answers a case as Salt 3007 does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Same,
    /// Brine finds nothing (`[]`) where Salt's `pillar_roots.find`/`read`
    /// join the path unchecked and read the file outside.
    BrineRefuses,
}

/// The pillar tree under `<root>/pillar` (a second root `<root>/pillar2`),
/// links out and in, and the secret beside it.
fn pillar_tree(root: &std::path::Path) -> String {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("pillar/top.sls", b"base:\n  '*':\n    - common\n");
    w("pillar/common.sls", b"name: common\n");
    w("pillar/deep/er/x.sls", "x: é\n".as_bytes());
    w("pillar/bin.dat", b"\x00\x01\x02");
    w("pillar2/only2.sls", b"only: 2\n");
    w("pillar-secret.txt", format!("{SECRET}\n").as_bytes());
    symlink(root.join("pillar-secret.txt"), root.join("pillar/leak")).unwrap();
    symlink("common.sls", root.join("pillar/alias.sls")).unwrap();
    symlink(root, root.join("pillar/up")).unwrap();
    format!(
        "pillar_roots:\n  base:\n    - {r}/pillar\n    - {r}/pillar2\n  dev:\n    - {r}/nonexistent\n",
        r = root.display()
    )
}

/// The cases: a wheel function, its arguments (top-level keys, as
/// WheelClient sends them) and what to expect.
fn cases(root: &str) -> Vec<(String, Value, Expect)> {
    let mut out = Vec::new();
    let mut add = |fun: &str, pairs: &[(&str, Value)], expect: Expect| {
        let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        let mut l = Value::map([("fun", s(fun))]);
        for (k, v) in pairs {
            l.set(k, v.clone());
        }
        out.push((format!("{fun} {}", shown.join(" ")), l, expect));
    };
    let secret = format!("{root}/secret.txt");
    let psecret = format!("{root}/pillar-secret.txt");
    for tree in ["file_roots", "pillar_roots"] {
        // Salt's pillar_roots.find/read do not check the path.
        let escape = if tree == "pillar_roots" {
            Expect::BrineRefuses
        } else {
            Expect::Same
        };
        let f = |name: &str| format!("{tree}.{name}");
        for fun in ["find", "read"] {
            for path in [
                "top.sls",
                "web/init.sls",
                "web/files/big.bin",
                "common.sls",
                "bin.dat",
                "deep/er/x.sls",
            ] {
                add(&f(fun), &[("path", s(path))], Expect::Same);
            }
            for path in ["alias.sls", "only_b.txt", "only2.sls", "missing.sls", ""] {
                add(&f(fun), &[("path", s(path)), ("saltenv", s("base"))], Expect::Same);
            }
            add(&f(fun), &[("path", s("dev.sls")), ("saltenv", s("dev"))], Expect::Same);
            add(&f(fun), &[("path", s("top.sls")), ("saltenv", s("nope"))], Expect::Same);
            // Out of the root: up, absolute, through links. Salt's
            // pillar_roots reads the ones that name a file.
            for path in [
                "../secret.txt",
                "../../secret.txt",
                "../pillar-secret.txt",
                "../../pillar-secret.txt",
                &secret,
                &psecret,
                "sub/../../secret.txt",
                "leak",
                "up/pillar-secret.txt",
                "up/secret.txt",
                "web/leak2",
            ] {
                let salt_reads = [
                    "../secret.txt",
                    "../pillar-secret.txt",
                    &secret,
                    &psecret,
                    "leak",
                    "up/pillar-secret.txt",
                    "up/secret.txt",
                ];
                let e = if salt_reads.contains(&path) {
                    escape
                } else {
                    Expect::Same
                };
                add(&f(fun), &[("path", s(path))], e);
            }
        }
        add(&f("list_env"), &[], Expect::Same);
        add(&f("list_env"), &[("saltenv", s("dev"))], Expect::Same);
        add(&f("list_env"), &[("saltenv", s("nope"))], Expect::Same);
        add(&f("list_roots"), &[], Expect::Same);
        let w = |path: &str| vec![("data", s("written: true\n")), ("path", s(path))];
        add(&f("write"), &w(&format!("new/{tree}.sls")), Expect::Same);
        add(&f("write"), &w("top.sls"), Expect::Same);
        let mut second = w(&format!("second-{tree}.sls"));
        second.push(("index", Value::Int(1)));
        add(&f("write"), &second, Expect::Same);
        let mut last = w(&format!("last-{tree}.sls"));
        last.push(("index", Value::Int(-1)));
        add(&f("write"), &last, Expect::Same);
        let mut no_index = w("x.sls");
        no_index.push(("index", Value::Int(2)));
        add(&f("write"), &no_index, Expect::Same);
        let mut no_env = w("x.sls");
        no_env.push(("saltenv", s("nope")));
        add(&f("write"), &no_env, Expect::Same);
        for path in [
            "../pwn-1.sls".to_string(),
            "../../pwn-2.sls".into(),
            "sub/../../pwn-3.sls".into(),
            format!("{root}/pwn-4.sls"),
            "leak".into(),
            "up/pwn-5.sls".into(),
        ] {
            add(&f("write"), &w(&path), Expect::Same);
        }
    }
    let yaml = Value::map([
        ("good_option", Value::Int(1)),
        ("a_list", Value::Array(vec![s("x"), Value::Bool(true), Value::Nil])),
        ("nested", Value::map([("k", s("v: w")), ("e", Value::Map(vec![]))])),
    ]);
    // `linked` is a link in master.d to a file beside it.
    for name in ["good", "../evil", "sub/deeper", "/tmp/brine-wheel-abs", "linked"] {
        add(
            "config.update_config",
            &[("file_name", s(name)), ("yaml_contents", yaml.clone())],
            Expect::Same,
        );
    }
    add("config.values", &[], Expect::Same);
    add(
        "config.update_config",
        &[("file_name", s("text")), ("yaml_contents", s("win: true"))],
        Expect::Same,
    );
    out
}

/// `(return, success)` of a wheel answer.
fn outcome(label: &str, reply: &Value) -> (Value, Value) {
    let data = reply
        .get("data")
        .unwrap_or_else(|| panic!("{label}: no data in {reply:?}"));
    (
        canon(data.get("return").cloned().unwrap_or(Value::Nil)),
        data.get("success").cloned().unwrap_or(Value::Nil),
    )
}

/// Every regular file under the env's root but the masters' own
/// directories and logs, with its content: what the wheel wrote.
fn written(env: &Env) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut todo = vec![env.root()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(env.root()).unwrap().display().to_string();
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() && !["pki", "cache", "sock", "log", "run", "var"].contains(&rel.as_str()) {
                todo.push(p);
            } else if t.is_file() && !rel.contains("stderr") {
                out.push((rel, std::fs::read_to_string(&p).unwrap_or_else(|_| "<binary>".into())));
            }
        }
    }
    out.sort();
    out
}

/// The cases' answers from the master running on `env` (user key read
/// from `cache/.root_key` once it is there).
fn answers(env: &Env, cases: &[(String, Value, Expect)]) -> Vec<(Value, Value)> {
    let key_file = env.root().join(format!("cache/.{}_key", current_user()));
    assert!(
        wait_until(Duration::from_secs(60), || !read(&key_file).trim().is_empty()),
        "no user key"
    );
    let key = read(&key_file).trim().to_string();
    cases
        .iter()
        .map(|(label, l, _)| {
            let mut l = l.clone();
            l.set("cmd", s("wheel"));
            // The key alone, as Salt's test_clear_funcs sends it (Salt
            // passes a `user` on to the function, which refuses it).
            l.set("key", s(&key));
            let reply = ask_within(env.ret_port, &[clear(l)], 60_000).unwrap_or_else(|| panic!("{label}: no answer"));
            let reply = Value::decode(&reply).unwrap();
            outcome(label, &reply)
        })
        .collect()
}

/// Put the trees back as [`env_with_roots`] and [`pillar_tree`] made
/// them, minus what a run wrote.
fn reset(env: &Env, pristine: &[(String, String)]) {
    for (rel, _) in written(env) {
        if !pristine.iter().any(|(r, _)| *r == rel) {
            std::fs::remove_file(env.root().join(&rel)).unwrap();
        }
    }
    for (rel, content) in pristine {
        if content != "<binary>" {
            std::fs::write(env.root().join(rel), content).unwrap();
        }
    }
    for d in ["srv/a/new", "pillar/new", "conf/master.d"] {
        let _ = std::fs::remove_dir_all(env.root().join(d));
    }
    let _ = std::fs::remove_file("/tmp/brine-wheel-abs.conf");
}

#[test]
fn wheel_functions_answer_as_python() {
    let env = env_with_roots(2, "", "");
    let root = env.root();
    std::fs::write(root.join("secret.txt"), format!("{SECRET}\n")).unwrap();
    let mut conf = read(&env.conf_dir.join("master"));
    conf.push_str(&pillar_tree(&root));
    std::fs::write(env.conf_dir.join("master"), conf).unwrap();
    std::fs::write(root.join("outside.conf"), "outside_option: 1\n").unwrap();
    // A link out of the file root too (the pillar root has its own).
    symlink(&root, root.join("srv/a/up")).unwrap();
    let cases = cases(&root.display().to_string());
    let pristine = written(&env);
    let prepare = |env: &Env| {
        std::fs::create_dir_all(env.conf_dir.join("master.d")).unwrap();
        symlink(
            env.root().join("outside.conf"),
            env.conf_dir.join("master.d/linked.conf"),
        )
        .unwrap();
    };

    prepare(&env);
    let brine = {
        let mut master = env.start();
        master.wait_ready();
        let a = answers(&env, &cases);
        master.remember_tree();
        (a, written(&env))
    };
    reset(&env, &pristine);
    let _ = std::fs::remove_file(root.join(format!("cache/.{}_key", current_user())));
    prepare(&env);
    let python = {
        let _py = PyMaster::start(&env, VERSION);
        let a = answers(&env, &cases);
        (a, written(&env))
    };
    let _ = std::fs::remove_file("/tmp/brine-wheel-abs.conf");

    let mut diffs = Vec::new();
    for (((label, _, expect), b), p) in cases.iter().zip(&brine.0).zip(&python.0) {
        let text = |v: &(Value, Value)| String::from_utf8_lossy(&v.0.to_network()).into_owned();
        assert!(!text(b).contains(SECRET), "{label}: Brine read the secret: {b:?}");
        if label.starts_with("config.values") {
            continue;
        }
        match expect {
            Expect::Same if b != p => diffs.push(format!("{label}:\n  brine  {b:?}\n  python {p:?}")),
            Expect::BrineRefuses if b.0 != Value::Array(vec![]) || p.0 == Value::Array(vec![]) => diffs.push(format!(
                "{label} (Brine should refuse, Salt reads):\n  brine  {b:?}\n  python {p:?}"
            )),
            _ => {}
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} answers differ from Python's:\n{}",
        diffs.len(),
        cases.len(),
        diffs.join("\n")
    );
    // What each master wrote: the same files with the same content, and
    // nothing outside the roots and master.d.
    assert_eq!(brine.1, python.1, "the files written differ");
    for (rel, _) in &brine.1 {
        assert!(!rel.contains("pwn") && !rel.contains("evil"), "written outside: {rel}");
    }
    assert_eq!(read(&root.join("secret.txt")), format!("{SECRET}\n"));
    assert_eq!(read(&root.join("outside.conf")), "outside_option: 1\n");
    assert!(!std::path::Path::new("/tmp/brine-wheel-abs.conf").exists());
    assert!(
        brine
            .1
            .iter()
            .any(|(rel, c)| rel == "conf/master.d/good.conf" && c.contains("good_option: 1")),
        "{:?}",
        brine.1
    );
    // config.values: both masters read the same files again (and
    // master.d's new good.conf).
    let values = |side: &[(Value, Value)]| {
        let i = cases
            .iter()
            .position(|(l, _, _)| l.starts_with("config.values"))
            .unwrap();
        side[i].clone()
    };
    let (bv, pv) = (values(&brine.0), values(&python.0));
    assert_eq!(bv.1, Value::Bool(true), "{bv:?}");
    // The same options with the same values (canon sorts the keys; the
    // generated `id` and the paths come from the same host and files).
    assert_eq!(bv.0, pv.0, "config.values");
    assert_eq!(
        bv.0.get("good_option"),
        Some(&Value::Int(1)),
        "master.d/good.conf is read"
    );
    assert_eq!(
        bv.0.get("outside_option"),
        Some(&Value::Int(1)),
        "master.d/linked.conf is read"
    );
}

/// `salt-call publish.runner match.compound_matches '[expr, id]'` on the
/// minion `a1` of `side`: the runner's return, as JSON.
fn compound_matches(side: &Side, expr: &str, id: &str) -> serde_json::Value {
    let m = side.minions.iter().find(|m| m.id == "a1").unwrap();
    let arg = serde_json::json!([expr, id]).to_string();
    let out = Command::new(venv(side.version).join("bin/salt-call"))
        .arg("-c")
        .arg(&m.conf_dir)
        .args(["--out", "json", "publish.runner", "match.compound_matches", &arg])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{expr} {id}: {e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
    v["local"].clone()
}

/// `match.compound_matches` asked by a real minion through
/// `publish.runner` (`peer_run`), against Brine and Python's master, each
/// with minions `a1` (grain role: web, pillar name: alice) and `a2`
/// (role: db, name: bob).
#[test]
fn compound_matches_through_publish_runner_as_python() {
    let extra =
        "peer_run:\n  a1:\n    - match.compound_matches\nnodegroups:\n  webs: G@role:web\n  alis: I@name:ali*\n";
    let pillar = |env: &Env| {
        let p = env.root().join("pillar");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("top.sls"), "base:\n  a1:\n    - alice\n  a2:\n    - bob\n").unwrap();
        std::fs::write(p.join("alice.sls"), "name: alice\n").unwrap();
        std::fs::write(p.join("bob.sls"), "name: bob\n").unwrap();
        let conf = env.conf_dir.join("master");
        let text = format!(
            "{}auto_accept: True\npillar_roots:\n  base:\n    - {}\n",
            read(&conf),
            p.display()
        );
        std::fs::write(conf, text).unwrap();
    };
    let brine = Side::start(true, VERSION, extra, "", "", pillar);
    let python = Side::start(false, VERSION, extra, "", "", pillar);
    let a1 = serde_json::json!({"res": "a1"});
    let a2 = serde_json::json!({"res": "a2"});
    let no = serde_json::json!({"res": false});
    let cases = [
        ("G@role:web", "a1", &a1),
        ("G@role:we*", "a1", &a1),
        ("G@role:web", "a2", &no),
        ("I@name:alice", "a1", &a1),
        ("I@name:ali*", "a1", &no),
        ("N@webs", "a1", &a1),
        ("N@alis", "a1", &no),
        ("L@a1,a2 and not G@role:db", "a2", &no),
        ("E@a[12] and I@name:bob", "a2", &a2),
        ("*", "../../etc/shadow", &no),
        ("*", "nobody", &no),
    ];
    let mut diffs = Vec::new();
    for (expr, id, want) in cases {
        let b = compound_matches(&brine, expr, id);
        let p = compound_matches(&python, expr, id);
        if b != p || b != *want {
            diffs.push(format!("{expr} {id}: brine {b} python {p} (expected {want})"));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
