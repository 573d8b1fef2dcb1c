//! The fileserver over the real request channel: an accepted minion sends
//! the AES file commands a `RemoteClient` sends during `state.apply`
//! (`_master_opts`, `_file_envs`, `_file_list`, `_file_hash`, `_file_find`,
//! `_serve_file` ...) to a running Brine, including traversal attempts and
//! malformed loads; and the same requests go to Python's salt-master on the
//! same configuration, whose answers must be equal.

mod common;

use std::io::Read;
use std::os::unix::fs::symlink;
use std::process::{Command, Stdio};

use brine_proto::Value;
use common::aes::{accepted_minion, AesMinion};
use common::minion::venv;
use common::requests::*;
use common::*;

/// Fetch `path` the way `RemoteClient.get_file` does: `loc` = bytes so
/// far, until an empty `data`.
fn fetch(m: &AesMinion, port: u16, path: &str, gzip: Option<i64>) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut chunks = 0;
    loop {
        let mut l = load(
            "_serve_file",
            &[
                ("path", s(path)),
                ("saltenv", s("base")),
                ("loc", Value::Int(out.len() as i64)),
            ],
        );
        if let Some(g) = gzip {
            l.set("gzip", Value::Int(g));
        }
        let r = m.call(port, &l);
        let data = r.get("data").and_then(Value::as_bytes).expect("data").to_vec();
        if data.is_empty() {
            assert_eq!(r.get("dest"), Some(&s(path)), "{r:?}");
            return (out, chunks);
        }
        chunks += 1;
        if let Some(level) = gzip {
            assert_eq!(r.get("gzip"), Some(&Value::Int(level)));
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&data[..]).read_to_end(&mut plain).unwrap();
            out.extend(plain);
        } else {
            out.extend(data);
        }
    }
}

fn list(m: &AesMinion, port: u16, saltenv: &str) -> Value {
    m.call(port, &load("_file_list", &[("saltenv", s(saltenv)), ("prefix", s(""))]))
}

#[test]
fn brine_serves_state_files_and_refuses_traversal() {
    let env = env_with_tree(2, "fileserver_followsymlinks: False\n");

    let mut master = env.start();
    master.wait_ready();
    let port = env.ret_port;
    let argv = format!("{BIN} -c {}", env.conf_dir.display());
    let rs = master.named_children(master.pid, &argv)["ReqServer_ProcessManager"];
    let workers = children_of(rs);
    let m = accepted_minion(&env, "fs1");

    // What state.apply asks first.
    let opts = m.call(port, &load("_master_opts", &[]));
    assert_eq!(
        opts.get("file_roots"),
        Some(&Value::map([
            ("base", Value::Array(vec![])),
            ("dev", Value::Array(vec![]))
        ]))
    );
    for key in [
        "top_file_merging_strategy",
        "env_order",
        "default_top",
        "renderer",
        "failhard",
        "state_top",
        "state_top_saltenv",
        "nodegroups",
        "state_auto_order",
        "state_events",
        "state_aggregate",
        "jinja_env",
        "jinja_sls_env",
        "jinja_lstrip_blocks",
        "jinja_trim_blocks",
    ] {
        assert!(opts.get(key).is_some(), "_master_opts lacks {key}: {opts:?}");
    }
    assert_eq!(opts.get("renderer"), Some(&s("jinja|yaml")));
    assert_eq!(opts.get("state_top"), Some(&s("top.sls")));
    let env_only = m.call(port, &load("_master_opts", &[("env_only", Value::Bool(true))]));
    assert!(matches!(&env_only, Value::Map(kv) if kv.len() == 4), "{env_only:?}");
    assert_eq!(
        m.call(port, &load("_master_tops", &[("opts", Value::Map(vec![]))])),
        Value::Map(vec![])
    );
    assert_eq!(m.call(port, &load("_file_envs", &[])), strs(&["base", "dev"]));

    // Lists.
    assert_eq!(
        list(&m, port, "base"),
        strs(&[
            "alias.sls",
            "leak",
            "only_b.txt",
            "top.sls",
            "web/files/big.bin",
            "web/files/nginx.conf",
            "web/init.sls",
            "web/leak2",
        ])
    );
    assert_eq!(list(&m, port, "dev"), strs(&["dev.sls"]));
    assert_eq!(list(&m, port, "nope"), strs(&[]));
    let dirs = m.call(
        port,
        &load("_dir_list", &[("saltenv", s("base")), ("prefix", s("web"))]),
    );
    assert_eq!(dirs, strs(&["web", "web/files"]));
    let empty = m.call(
        port,
        &load("_file_list_emptydirs", &[("saltenv", s("base")), ("prefix", s(""))]),
    );
    assert_eq!(empty, strs(&["empty"]));
    let links = m.call(
        port,
        &load("_symlink_list", &[("saltenv", s("base")), ("prefix", s(""))]),
    );
    assert_eq!(links.get("alias.sls"), Some(&s("web/init.sls")));

    // Hashes, find, chunks (4 of 64 KiB for 200,000 bytes), gzip.
    let h = m.call(
        port,
        &load(
            "_file_hash",
            &[("path", s("web/files/nginx.conf")), ("saltenv", s("base"))],
        ),
    );
    assert_eq!(
        h,
        Value::map([
            ("hash_type", s("sha256")),
            ("hsum", s(&sha256(b"worker_processes 1;\n")))
        ])
    );
    let f = m.call(
        port,
        &load("_file_find", &[("path", s("only_b.txt")), ("saltenv", s("base"))]),
    );
    assert_eq!(
        f.get("path"),
        Some(&s(&env.root().join("srv/b/only_b.txt").display().to_string()))
    );
    let (got, chunks) = fetch(&m, port, "web/files/big.bin", None);
    assert_eq!((got.len(), chunks), (200_000, 4));
    assert!(got == big(), "reassembled chunks equal the file");
    let (got, chunks) = fetch(&m, port, "web/files/big.bin", Some(6));
    assert_eq!(chunks, 4);
    assert!(got == big(), "gzip chunks decompress to the file");

    // Traversal attempts: Salt's answers for a missing file, one warning
    // each naming the minion and the path.
    let hostile = [
        "../secret.txt",
        "../../secret.txt",
        "web/../../../secret.txt",
        "..",
        "|../secret.txt",
        "salt://../secret.txt",
        "/etc/passwd",
        "leak",
        "web/leak2",
        "leak?index=0",
    ];
    for path in hostile {
        let l = |cmd: &str| {
            load(
                cmd,
                &[("path", s(path)), ("saltenv", s("base")), ("loc", Value::Int(0))],
            )
        };
        assert_eq!(m.call(port, &l("_serve_file")), no_chunk(), "{path}");
        assert_eq!(m.call(port, &l("_file_hash")), s(""), "{path}");
        assert_eq!(m.call(port, &l("_file_find")), missing_file(), "{path}");
    }
    let abs = env.root().join("secret.txt").display().to_string();
    let l = load(
        "_serve_file",
        &[("path", s(&abs)), ("saltenv", s("base")), ("loc", Value::Int(0))],
    );
    assert_eq!(m.call(port, &l), no_chunk());

    // Malformed loads: Salt's answers ("" where its function raises).
    let serve = |pairs: &[(&str, Value)]| m.call(port, &load("_serve_file", pairs));
    let at = |loc: Value| serve(&[("path", s("top.sls")), ("saltenv", s("base")), ("loc", loc)]);
    assert_eq!(at(Value::Int(-1)), s(""));
    assert_eq!(at(Value::Int(1 << 62)), s(""), "past the file system's limit (EINVAL)");
    assert_eq!(at(Value::UInt(u64::MAX)), s(""));
    assert_eq!(at(s("0")), s(""));
    assert_eq!(
        at(Value::Int(1 << 40)),
        Value::map([("data", s("")), ("dest", s("top.sls"))]),
        "past the end: an empty chunk"
    );
    assert_eq!(serve(&[("path", s("top.sls")), ("saltenv", s("base"))]), no_chunk());
    assert_eq!(
        serve(&[("path", Value::Int(3)), ("saltenv", s("base")), ("loc", Value::Int(0))]),
        s("")
    );
    assert_eq!(
        serve(&[("path", s("top.sls")), ("saltenv", s("qa")), ("loc", Value::Int(0))]),
        no_chunk()
    );
    assert_eq!(
        m.call(
            port,
            &load("_file_hash", &[("path", Value::Array(vec![])), ("saltenv", s("base"))])
        ),
        s("")
    );
    assert_eq!(
        m.call(
            port,
            &load("_file_list", &[("saltenv", s("base")), ("prefix", Value::Int(1))])
        ),
        s("")
    );
    assert_eq!(m.call(port, &load("_file_list", &[])), strs(&[]));

    // A new file shows at the next request, on every worker; so does a
    // removal.
    std::fs::write(env.root().join("srv/dev/new.sls"), b"new: {}\n").unwrap();
    for _ in 0..4 {
        assert_eq!(list(&m, port, "dev"), strs(&["dev.sls", "new.sls"]));
    }
    std::fs::remove_file(env.root().join("srv/dev/dev.sls")).unwrap();
    for _ in 0..4 {
        assert_eq!(list(&m, port, "dev"), strs(&["new.sls"]));
    }

    // The workers are the ones we started with, and still answer.
    assert_eq!(children_of(rs), workers, "no worker died");
    assert_eq!(m.call(port, &load("_file_envs", &[])), strs(&["base", "dev"]));
    let log = wait_log(&env, "web/leak2");
    let warned = |path: &str| {
        log.matches(&format!("refused salt://{path} (saltenv \"base\") asked by minion fs1"))
            .count()
    };
    for path in hostile {
        // serve, hash and find: three requests, three warnings.
        assert_eq!(warned(path), 3, "{path}\n{log}");
    }
    assert_eq!(warned(&abs), 1, "{log}");
    master.remember_tree();
}

/// The requests both masters answer: every file command, good and bad loads.
fn cases(follow: bool) -> Vec<(String, Value, Expect)> {
    let mut c: Vec<(String, Value, Expect)> = Vec::new();
    let mut add = |label: &str, cmd: &str, pairs: &[(&str, Value)]| {
        c.push((format!("{cmd} {label}"), load(cmd, pairs), Expect::Same));
    };
    let base = || ("saltenv", s("base"));
    add("", "_file_envs", &[]);
    add("sources", "_file_envs", &[("sources", Value::Bool(true))]);
    add("back roots", "_file_envs", &[("back", s("roots"))]);
    add("back -roots", "_file_envs", &[("back", s("gitfs"))]);
    add(
        "disabled",
        "_file_recv",
        &[
            ("path", strs(&["etc", "hosts"])),
            ("loc", Value::Int(0)),
            ("data", s("x")),
        ],
    );
    add("", "_master_opts", &[]);
    add("env_only", "_master_opts", &[("env_only", Value::Bool(true))]);
    add("", "_master_tops", &[("opts", Value::Map(vec![]))]);
    for cmd in ["_file_list", "_dir_list", "_file_list_emptydirs", "_symlink_list"] {
        add("base", cmd, &[base(), ("prefix", s(""))]);
        add("base /web/", cmd, &[base(), ("prefix", s("/web/"))]);
        add("base al", cmd, &[base(), ("prefix", s("al"))]);
        add("dev", cmd, &[("saltenv", s("dev"))]);
        add("unknown", cmd, &[("saltenv", s("qa"))]);
        add("int saltenv", cmd, &[("saltenv", Value::Int(5))]);
        add("no saltenv", cmd, &[]);
        add("int prefix", cmd, &[base(), ("prefix", Value::Int(1))]);
        add("fsbackend roots", cmd, &[base(), ("fsbackend", s("roots"))]);
        add("fsbackend gitfs", cmd, &[base(), ("fsbackend", s("gitfs"))]);
    }
    let paths = [
        "top.sls",
        "only_b.txt",
        "web/files/nginx.conf",
        "web/files/nginx.conf?index=1",
        "dev.sls?saltenv=dev",
        "|top.sls",
        "alias.sls",
        "nope.sls",
        "",
        "../secret.txt",
        "../../secret.txt",
        "web/../../../secret.txt",
        "..",
        "|../secret.txt",
        "salt://../secret.txt",
        "/etc/passwd",
        "leak",
        "web/leak2",
    ];
    for path in paths {
        for cmd in ["_file_find", "_file_hash", "_file_hash_and_stat", "_serve_file"] {
            add(path, cmd, &[("path", s(path)), base(), ("loc", Value::Int(0))]);
        }
    }
    for cmd in ["_file_find", "_file_hash", "_file_hash_and_stat", "_serve_file"] {
        add("no saltenv", cmd, &[("path", s("top.sls")), ("loc", Value::Int(0))]);
        add(
            "int path",
            cmd,
            &[("path", Value::Int(3)), base(), ("loc", Value::Int(0))],
        );
        add(
            "nil saltenv",
            cmd,
            &[("path", s("top.sls")), ("saltenv", Value::Nil), ("loc", Value::Int(0))],
        );
        add(
            "other saltenv",
            cmd,
            &[
                ("path", s("dev.sls?saltenv=dev")),
                ("saltenv", s("qa")),
                ("loc", Value::Int(0)),
            ],
        );
    }
    fn big(loc: Value, extra: &[(&'static str, Value)]) -> Vec<(&'static str, Value)> {
        let mut p = vec![("path", s("web/files/big.bin")), ("saltenv", s("base")), ("loc", loc)];
        p.extend(extra.iter().cloned());
        p
    }
    for loc in [
        0,
        CHUNK as i64,
        2 * CHUNK as i64,
        3 * CHUNK as i64,
        200_000,
        1 << 40,
        1 << 62,
        -1,
    ] {
        add(&format!("loc {loc}"), "_serve_file", &big(Value::Int(loc), &[]));
    }
    add("loc u64::MAX", "_serve_file", &big(Value::UInt(u64::MAX), &[]));
    add("loc '0'", "_serve_file", &big(s("0"), &[]));
    add("loc 1.5", "_serve_file", &big(Value::F64(1.5), &[]));
    add("loc True", "_serve_file", &big(Value::Bool(true), &[]));
    add("no loc", "_serve_file", &[("path", s("top.sls")), base()]);
    for gz in [
        Value::Int(9),
        Value::Int(1),
        Value::Int(5),
        Value::Bool(true),
        Value::Int(0),
        Value::Int(-1),
    ] {
        add(
            &format!("gzip {gz:?}"),
            "_serve_file",
            &big(Value::Int(CHUNK as i64), &[("gzip", gz.clone())]),
        );
    }
    add(
        "gzip 10",
        "_serve_file",
        &big(Value::Int(0), &[("gzip", Value::Int(10))]),
    );
    add("gzip '9'", "_serve_file", &big(Value::Int(0), &[("gzip", s("9"))]));
    add(
        "gzip at the end",
        "_serve_file",
        &big(Value::Int(200_000), &[("gzip", Value::Int(9))]),
    );
    // A symlink out of the root through ?index=: Salt skips its root check
    // there (and hashes what the link points to); Brine refuses.
    for cmd in ["_file_find", "_file_hash", "_file_hash_and_stat", "_serve_file"] {
        let expect = if follow { Expect::Same } else { Expect::BrineRefuses };
        let l = load(cmd, &[("path", s("leak?index=0")), base(), ("loc", Value::Int(0))]);
        c.push((format!("{cmd} leak?index=0"), l, expect));
    }
    c
}

fn compare(version: &str, extra: &str, follow: bool) {
    let env = env_with_tree(2, extra);
    compare_on(version, &env, cases(follow));
}

fn compare_on(version: &str, env: &Env, cases: Vec<(String, Value, Expect)>) {
    let ((brine, ()), (python, ())) = both_answers(version, env, &cases, |_| {}, |_| {});
    check_answers(version, &cases, brine, python);
}

#[test]
fn same_answers_as_python_salt_3007_without_following_symlinks() {
    compare("3007.17", "fileserver_followsymlinks: False\n", false);
}

#[test]
fn same_answers_as_python_salt_3006_with_default_options() {
    compare("3006.30", "", true);
}

/// Python's `salt-call` (a real minion's fileclient) against Brine:
/// `state.apply` renders `top.sls` and an sls, manages a file from
/// `salt://`, recurses a directory (lists, empty dirs, symlinks), and
/// `cp.get_file` fetches a multi-chunk file gzipped.
fn salt_call_state_apply(version: &str) {
    let env = Env::with_extra(2, "auto_accept: True\n");
    let root = env.root();
    let srv = root.join("states");
    let out = root.join("out");
    let w = |rel: &str, data: &[u8]| {
        let p = srv.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("top.sls", b"base:\n  '*':\n    - e2e\n");
    w(
        "e2e/init.sls",
        format!(
            "{out}/managed.conf:\n  file.managed:\n    - source: salt://e2e/files/app.conf\n    - template: jinja\n    - makedirs: True\n\
             {out}/tree:\n  file.recurse:\n    - source: salt://e2e/tree\n    - include_empty: True\n    - keep_symlinks: True\n",
            out = out.display()
        )
        .as_bytes(),
    );
    w("e2e/files/app.conf", b"answer = {{ 6 * 7 }}\n");
    w("e2e/tree/a.txt", b"a\n");
    w("e2e/tree/sub/b.txt", b"b\n");
    std::fs::create_dir_all(srv.join("e2e/tree/emptydir")).unwrap();
    symlink("a.txt", srv.join("e2e/tree/link.txt")).unwrap();
    w("e2e/big.bin", &big());
    let conf = env.conf_dir.join("master");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "file_roots:\n  base:\n    - {}\nfile_buffer_size: {CHUNK}\n",
        srv.display()
    ));
    std::fs::write(&conf, text).unwrap();
    let mut master = env.start();
    master.wait_ready();

    let mroot = root.join("minion");
    let mconf = mroot.join("conf");
    std::fs::create_dir_all(&mconf).unwrap();
    std::fs::write(
        mconf.join("minion"),
        format!(
            "master: 127.0.0.1\nmaster_port: {}\npublish_port: {}\nid: e2e-{version}\nroot_dir: {}\nuser: {}\n\
             log_level_logfile: debug\nacceptance_wait_time: 1\nauth_timeout: 10\n",
            env.ret_port,
            env.publish_port,
            mroot.display(),
            current_user()
        ),
    )
    .unwrap();
    let salt_call = |args: &[&str]| {
        let o = Command::new(venv(version).join("bin/salt-call"))
            .arg("-c")
            .arg(&mconf)
            .args(["--out", "json", "--retcode-passthrough"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "salt-call {args:?} failed ({}):\n{text}\n{}\nminion log:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            read(&mroot.join("var/log/salt/minion"))
        );
        text
    };
    let ret = salt_call(&["state.apply"]);
    assert_eq!(
        std::fs::read_to_string(out.join("managed.conf")).unwrap(),
        "answer = 42\n",
        "{ret}"
    );
    assert_eq!(std::fs::read(out.join("tree/a.txt")).unwrap(), b"a\n");
    assert_eq!(std::fs::read(out.join("tree/sub/b.txt")).unwrap(), b"b\n");
    assert!(out.join("tree/emptydir").is_dir(), "{ret}");
    assert_eq!(
        std::fs::read_link(out.join("tree/link.txt")).unwrap(),
        std::path::PathBuf::from("a.txt"),
        "{ret}"
    );
    // Unchanged on a second run (hashes match, nothing fetched again).
    let again = salt_call(&["state.apply"]);
    let states: serde_json::Value = serde_json::from_str(&again).unwrap();
    let states = states["local"].as_object().expect("state results");
    assert_eq!(states.len(), 2, "{again}");
    for st in states.values() {
        assert_eq!(st["result"], serde_json::Value::Bool(true), "{again}");
        assert_eq!(st["changes"], serde_json::json!({}), "{again}");
    }
    let dest = out.join("big.bin");
    salt_call(&[
        "cp.get_file",
        "salt://e2e/big.bin",
        &dest.display().to_string(),
        "gzip=5",
    ]);
    assert!(
        std::fs::read(&dest).unwrap() == big(),
        "gzip chunks reassembled by the minion"
    );
    let missing = salt_call(&[
        "cp.get_file",
        "salt://e2e/nope",
        &out.join("nope").display().to_string(),
    ]);
    assert!(missing.contains("\"\""), "{missing}");
    master.remember_tree();
}

#[test]
fn salt_call_3007_state_apply_against_brine() {
    salt_call_state_apply("3007.17");
}

#[test]
fn salt_call_3006_state_apply_against_brine() {
    salt_call_state_apply("3006.30");
}

#[test]
fn same_answers_as_python_salt_3007_with_env_roots_and_ignores() {
    let env = env_with_roots(
        2,
        "  __env__:\n    - {root}/srv/envs/__env__\n",
        "file_ignore_glob: '*.bak'\nfile_ignore_regex:\n  - '/\\.git($|/)'\nfileserver_ignoresymlinks: True\n",
    );
    let srv = env.root().join("srv");
    for (rel, data) in [
        ("envs/feature1/x.sls", &b"x: {}\n"[..]),
        ("envs/feature1/sub/y.sls", b"y: {}\n"),
        ("a/.git/config", b"[core]\n"),
        ("a/web/.git/HEAD", b"ref\n"),
        ("a/old.bak", b"old\n"),
    ] {
        let p = srv.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let mut c = Vec::new();
    let mut add = |label: &str, cmd: &str, pairs: &[(&str, Value)], expect: Expect| {
        c.push((format!("{cmd} {label}"), load(cmd, pairs), expect));
    };
    add("", "_file_envs", &[], Expect::Same);
    add("", "_master_opts", &[], Expect::Same);
    for cmd in ["_file_list", "_dir_list", "_file_list_emptydirs", "_symlink_list"] {
        for saltenv in ["base", "feature1", "nope", "dev"] {
            add(
                saltenv,
                cmd,
                &[("saltenv", s(saltenv)), ("prefix", s(""))],
                Expect::Same,
            );
        }
        // `srv/envs/../a` is srv/a to Salt (no symlinks are listed here:
        // fileserver_ignoresymlinks).
        let expect = if cmd == "_symlink_list" {
            Expect::Same
        } else {
            Expect::BrineRefuses
        };
        add("../a", cmd, &[("saltenv", s("../a")), ("prefix", s(""))], expect);
    }
    for cmd in ["_file_find", "_file_hash", "_file_hash_and_stat", "_serve_file"] {
        let mut path = |label: &str, path: &str, saltenv: &str, expect: Expect| {
            let l = [("path", s(path)), ("saltenv", s(saltenv)), ("loc", Value::Int(0))];
            add(label, cmd, &l, expect);
        };
        path("x.sls feature1", "x.sls", "feature1", Expect::Same);
        path("sub/y.sls feature1", "sub/y.sls", "feature1", Expect::Same);
        path("x.sls nope", "x.sls", "nope", Expect::Same);
        path("x.sls?saltenv=feature1", "x.sls?saltenv=feature1", "base", Expect::Same);
        path(".git/config", ".git/config", "base", Expect::Same);
        path("web/.git/HEAD", "web/.git/HEAD", "base", Expect::Same);
        path("old.bak", "old.bak", "base", Expect::Same);
        path("leak (ignored symlinks are still served)", "leak", "base", Expect::Same);
        path("../feature1", "../feature1/x.sls", "base", Expect::Same);
        path("saltenv ../a", "top.sls", "../a", Expect::BrineRefuses);
        path("saltenv ..", "a/top.sls", "..", Expect::BrineRefuses);
    }
    compare_on("3007.17", &env, c);
}
