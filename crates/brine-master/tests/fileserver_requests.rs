//! The fileserver over the real request channel: an accepted minion sends
//! the AES file commands a `RemoteClient` sends during `state.apply`
//! (`_master_opts`, `_file_envs`, `_file_list`, `_file_hash`, `_file_find`,
//! `_serve_file` ...) to a running Brine, including traversal attempts and
//! malformed loads; and the same requests go to Python's salt-master on the
//! same configuration, whose answers must be equal. Also the two other
//! minion commands that write on the master: `_file_recv` (`cp.push`),
//! `revoke_auth`, and peer publishing (`minion_pub`, `pub_ret`,
//! `minion_runner`).

mod common;

use std::io::Read;
use std::os::unix::fs::symlink;
use std::process::{Command, Stdio};
use std::time::Duration;

use brine_proto::Value;
use common::aes::{accepted_minion, AesMinion};
use common::minion::venv;
use common::pysalt::PyMaster;
use common::*;

const CHUNK: usize = 65536;

fn big() -> Vec<u8> {
    (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// The file tree under `<env root>/srv` and the config naming it.
fn tree(root: &std::path::Path, more_roots: &str) -> String {
    let srv = root.join("srv");
    let w = |rel: &str, data: &[u8]| {
        let p = srv.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("a/top.sls", b"base:\n  '*':\n    - web\n");
    w(
        "a/web/init.sls",
        b"/tmp/brine-web:\n  file.managed:\n    - source: salt://web/files/nginx.conf\n",
    );
    w("a/web/files/nginx.conf", b"worker_processes 1;\n");
    w("a/web/files/big.bin", &big());
    w("b/web/files/nginx.conf", b"shadowed by root a\n");
    w("b/only_b.txt", b"from b\n");
    w("dev/dev.sls", b"dev: {}\n");
    std::fs::create_dir_all(srv.join("a/empty")).unwrap();
    std::fs::write(root.join("secret.txt"), b"not for minions\n").unwrap();
    symlink(root.join("secret.txt"), srv.join("a/leak")).unwrap();
    symlink(root.join("secret.txt"), srv.join("a/web/leak2")).unwrap();
    symlink("web/init.sls", srv.join("a/alias.sls")).unwrap();
    format!(
        "file_roots:\n  base:\n    - {s}/a\n    - {s}/b\n  dev:\n    - {s}/dev\n{more_roots}file_buffer_size: {CHUNK}\n",
        s = srv.display()
    )
}

/// An [`Env`] whose config serves [`tree`] (under its own root) plus `extra`.
fn env_with_tree(workers: usize, extra: &str) -> Env {
    env_with_roots(workers, "", extra)
}

/// [`env_with_tree`] with more saltenvs in `file_roots` (`{root}` is the
/// env's root).
fn env_with_roots(workers: usize, more_roots: &str, extra: &str) -> Env {
    let env = Env::with_extra(workers, "");
    let conf = env.conf_dir.join("master");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    let more = more_roots.replace("{root}", &env.root().display().to_string());
    text.push_str(&tree(&env.root(), &more));
    text.push_str(extra);
    std::fs::write(&conf, text).unwrap();
    env
}

fn s(x: &str) -> Value {
    Value::from(x)
}

fn load(cmd: &str, pairs: &[(&str, Value)]) -> Value {
    let mut m = vec![(s("cmd"), s(cmd))];
    m.extend(pairs.iter().map(|(k, v)| (s(k), v.clone())));
    Value::Map(m)
}

fn missing_file() -> Value {
    Value::map([("path", s("")), ("rel", s(""))])
}

fn no_chunk() -> Value {
    Value::map([("data", s("")), ("dest", s(""))])
}

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

fn sha256(data: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(data))
}

fn list(m: &AesMinion, port: u16, saltenv: &str) -> Value {
    m.call(port, &load("_file_list", &[("saltenv", s(saltenv)), ("prefix", s(""))]))
}

fn strs(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|x| s(x)).collect())
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

fn wait_log(env: &Env, needle: &str) -> String {
    wait_until(Duration::from_secs(5), || {
        read(&env.log_file()).matches(needle).count() >= 3
    });
    read(&env.log_file())
}

/// Whether Brine is meant to answer a case as Salt does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Same,
    /// Brine refuses (Salt's answer for a missing file, or an empty list)
    /// where Salt serves: `?index=N` skips Salt's root check, and Salt
    /// substitutes any saltenv into `__env__` roots.
    BrineRefuses,
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

/// Maps in key order, `_file_envs` sorted (Salt's order is a set's), atime
/// masked (reading a file may update it), gzip chunks decompressed with
/// their header bytes but the timestamp kept.
fn norm(cmd: &str, v: Value) -> Value {
    fn canon(v: Value) -> Value {
        match v {
            Value::Map(kv) => {
                let mut kv: Vec<(Value, Value)> = kv.into_iter().map(|(k, v)| (k, canon(v))).collect();
                kv.sort_by_key(|a| a.0.to_network());
                Value::Map(kv)
            }
            Value::Array(a) => Value::Array(a.into_iter().map(canon).collect()),
            other => other,
        }
    }
    fn mask_stat(st: &mut Value) {
        if let Value::Array(a) = st {
            if a.len() == 10 {
                a[7] = Value::Nil;
            }
        }
    }
    let mut v = canon(v);
    if cmd == "minion_pub" && v.get("jid").is_some_and(|j| j.as_str().is_some()) {
        v.set("jid", s("<jid>"));
    }
    if cmd == "_file_envs" {
        if let Value::Array(a) = &mut v {
            a.sort_by_key(|x| x.to_network());
        }
    }
    if let Value::Map(kv) = &mut v {
        for (k, val) in kv.iter_mut() {
            if k.as_str() == Some("stat") {
                mask_stat(val);
            }
        }
    }
    if let Value::Array(a) = &mut v {
        if cmd == "_file_hash_and_stat" && a.len() == 2 {
            mask_stat(&mut a[1]);
        }
    }
    if v.get("gzip").is_some() {
        let data = v.get("data").and_then(Value::as_bytes).unwrap_or_default().to_vec();
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&data[..]).read_to_end(&mut plain).unwrap();
        let mut header = data[..4].to_vec();
        header.extend_from_slice(&data[8..10]);
        v.set("data", Value::Bytes(plain));
        v.set("gzip_header", Value::Bytes(header));
    }
    v
}

fn answers(port: u16, m: &AesMinion, cases: &[(String, Value, Expect)]) -> Vec<Value> {
    cases.iter().map(|(_, l, _)| m.call(port, l)).collect()
}

fn compare(version: &str, extra: &str, follow: bool) {
    let env = env_with_tree(2, extra);
    compare_on(version, &env, cases(follow));
}

fn compare_on(version: &str, env: &Env, cases: Vec<(String, Value, Expect)>) {
    let ((brine, ()), (python, ())) = both_answers(version, env, &cases, |_| {}, |_| {});
    check_answers(version, &cases, brine, python);
}

/// The answers of Brine, then of Python's salt-master of `version`, to
/// `cases` from the accepted minion `cmp1` on the same `env`, each with
/// what `after` reads once its master has answered; `reset` runs before
/// each master starts.
fn both_answers<S>(
    version: &str,
    env: &Env,
    cases: &[(String, Value, Expect)],
    reset: impl Fn(&Env),
    after: impl Fn(&Env) -> S,
) -> ((Vec<Value>, S), (Vec<Value>, S)) {
    let m = accepted_minion(env, "cmp1");
    reset(env);
    let brine = {
        let mut master = env.start();
        master.wait_ready();
        let a = answers(env.ret_port, &m, cases);
        master.remember_tree();
        (a, after(env))
    };
    // The Brine master is gone (killed by pid); Python gets the same
    // config, keys, session and tree.
    reset(env);
    let _py = PyMaster::start(env, version);
    let warm = m.request(&load("_file_envs", &[]), &brine_proto::crypto::new_nonce());
    assert!(
        common::aes::ask_within(env.ret_port, &[warm], 90_000).is_some(),
        "Python salt-master {version} does not answer"
    );
    let python = answers(env.ret_port, &m, cases);
    (brine, (python, after(env)))
}

/// Brine's answers equal Python's, or refuse where [`Expect`] says so.
fn check_answers(version: &str, cases: &[(String, Value, Expect)], brine: Vec<Value>, python: Vec<Value>) {
    let mut diffs = Vec::new();
    for (((label, _, expect), b), p) in cases.iter().zip(brine).zip(python) {
        let cmd = label.split(' ').next().unwrap();
        let (b, p) = (norm(cmd, b), norm(cmd, p));
        match expect {
            Expect::Same if b != p => diffs.push(format!("{label}:\n  brine  {b:?}\n  python {p:?}")),
            Expect::BrineRefuses => {
                let refused = [
                    missing_file(),
                    no_chunk(),
                    s(""),
                    Value::Array(vec![s(""), Value::Nil]),
                    Value::Array(vec![]),
                ]
                .map(|v| norm(cmd, v));
                if !refused.contains(&b) || b == p {
                    diffs.push(format!(
                        "{label} (Brine should refuse, Salt serves):\n  brine  {b:?}\n  python {p:?}"
                    ));
                }
            }
            _ => {}
        }
    }
    assert!(
        diffs.is_empty(),
        "{} of {} answers differ from Python salt-master {version}:\n{}",
        diffs.len(),
        cases.len(),
        diffs.join("\n")
    );
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

/// `_file_recv` (`cp.push`) requests in order (later ones see the files
/// earlier ones wrote), with `file_recv: True` and a 1 MiB limit.
fn recv_cases() -> Vec<(String, Value, Expect)> {
    let mut c: Vec<(String, Value, Expect)> = Vec::new();
    let mut add = |label: &str, path: Value, loc: Option<Value>, data: Option<Value>| {
        let mut pairs = vec![("path", path)];
        pairs.extend(loc.map(|l| ("loc", l)));
        pairs.extend(data.map(|d| ("data", d)));
        c.push((format!("_file_recv {label}"), load("_file_recv", &pairs), Expect::Same));
    };
    let at = |i: i64| Some(Value::Int(i));
    let text = |t: &str| Some(s(t));
    add("first chunk", strs(&["etc", "hosts"]), at(0), text("line1\n"));
    add(
        "next chunk",
        strs(&["etc", "hosts"]),
        at(6),
        Some(Value::Bytes(b"line2\n".to_vec())),
    );
    add("pushed again", strs(&["etc", "hosts"]), at(0), text("new\n"));
    add(
        "nested",
        strs(&["a", "b", "c.txt"]),
        at(0),
        Some(Value::Bytes(big()[..1000].to_vec())),
    );
    add("first chunk at an offset", strs(&["sparse"]), at(4), text("x"));
    add("unicode", strs(&["u.txt"]), at(0), text("\u{e9}t\u{e9}\n"));
    add("loc True", strs(&["u.txt"]), Some(Value::Bool(true)), text("+"));
    add("dot-dot", strs(&["..", "..", "..", "escape.txt"]), at(0), text("x"));
    add("../ element", strs(&["../", "escape.txt"]), at(0), text("x"));
    add("absolute", strs(&["/tmp", "brine-escape.txt"]), at(0), text("x"));
    add("collapsing", strs(&["x/../../../../escape.txt"]), at(0), text("x"));
    add("through a symlink", strs(&["out", "pwned"]), at(0), text("x"));
    add("dangling symlink", strs(&["dangling"]), at(0), text("x"));
    add("path as text", s("etc/hosts"), at(0), text("x"));
    add("no loc", strs(&["etc", "hosts"]), None, text("x"));
    add("loc -1", strs(&["etc", "hosts"]), at(-1), text("x"));
    add("past the limit", strs(&["big"]), at(1024 * 1024), text("x"));
    add(
        "larger than the limit",
        strs(&["big"]),
        at(0),
        Some(Value::Bytes(vec![7; 1024 * 1024 + 1])),
    );
    add("up to the limit", strs(&["big"]), at(1024 * 1024 - 1), text("x"));
    add("no data", strs(&["etc", "hosts"]), at(0), None);
    add("data nil", strs(&["etc", "hosts"]), at(0), Some(Value::Nil));
    add(
        "number in the path",
        Value::Array(vec![Value::Int(1)]),
        at(0),
        text("x"),
    );
    add("empty path", Value::Array(vec![]), at(0), text("x"));
    add("loc as text", strs(&["etc", "hosts"]), text("0"), text("x"));
    add("a directory", strs(&["a", "b"]), at(0), text("x"));
    c
}

/// The minion's files directory with a link out and a dangling link, and
/// an empty directory outside it.
fn recv_reset(env: &Env) {
    let files = env.root().join("cache/minions/cmp1/files");
    let outside = env.root().join("outside");
    let _ = std::fs::remove_dir_all(&files);
    let _ = std::fs::remove_dir_all(&outside);
    std::fs::create_dir_all(&files).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    symlink(&outside, files.join("out")).unwrap();
    symlink(outside.join("made"), files.join("dangling")).unwrap();
}

/// Every path under the env root's `cache/minions/cmp1/files` and
/// `outside`, with a file's content or a link's target.
fn recv_snapshot(env: &Env) -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<(String, String)>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.push((rel, format!("-> {}", std::fs::read_link(&p).unwrap().display())));
            } else if meta.is_dir() {
                out.push((rel, "dir".into()));
                walk(&p, base, out);
            } else {
                let data = std::fs::read(&p).unwrap();
                out.push((rel, format!("{} bytes, sha256 {}", data.len(), sha256(&data))));
            }
        }
    }
    let mut out = Vec::new();
    let root = env.root();
    for d in ["cache/minions/cmp1/files", "outside"] {
        walk(&root.join(d), &root, &mut out);
    }
    out.sort();
    out
}

fn compare_recv(version: &str, extra: &str) {
    let env = env_with_tree(2, &format!("file_recv: True\nfile_recv_max_size: 1\n{extra}"));
    let cases = recv_cases();
    let ((brine, brine_files), (python, python_files)) = both_answers(version, &env, &cases, recv_reset, recv_snapshot);
    let log = std::fs::read_to_string(env.log_file()).unwrap_or_default();
    assert!(
        log.contains("cmp1: _file_recv refused: attempt to write received file outside"),
        "no refusal in Brine's log:\n{log}"
    );
    check_answers(version, &cases, brine, python);
    assert_eq!(brine_files, python_files, "files written differ from Python's");
    assert!(
        brine_files.iter().any(|(p, _)| p.ends_with("files/etc/hosts")),
        "{brine_files:?}"
    );
    assert!(!env.root().join("escape.txt").exists() && !std::path::Path::new("/tmp/brine-escape.txt").exists());
}

#[test]
fn file_recv_same_as_python_salt_3007_without_following_symlinks() {
    compare_recv("3007.17", "fileserver_followsymlinks: False\n");
}

#[test]
fn file_recv_same_as_python_salt_3006_with_default_options() {
    compare_recv("3006.30", "");
}

/// Before each master: `cmp1`'s key accepted again (as `accepted_minion`
/// wrote it), cached data for it and for `ghost` (no key), no `.dfn`.
fn revoke_reset(env: &Env, pem: &str) {
    let root = env.root();
    std::fs::write(root.join("pki/minions/cmp1"), pem).unwrap();
    for id in ["cmp1", "ghost"] {
        let d = root.join("cache/minions").join(id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("data.p"),
            Value::map([("grains", Value::Map(vec![]))]).to_network(),
        )
        .unwrap();
    }
    let _ = std::fs::remove_file(root.join("cache/.dfn"));
}

/// Which keys are accepted, which minions have cached data, and whether an
/// AES rotation was asked for.
fn revoke_snapshot(env: &Env) -> (Vec<String>, Vec<String>, bool) {
    let names = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(env.root().join(d))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    (
        names("pki/minions"),
        names("cache/minions"),
        env.root().join("cache/.dfn").exists(),
    )
}

fn compare_revoke(version: &str, extra: &str) -> (Vec<Value>, (Vec<String>, Vec<String>, bool)) {
    // Maintenance must not consume the .dfn before it is looked at.
    let env = env_with_tree(2, &format!("loop_interval: 600\n{extra}"));
    let cases = vec![(
        "revoke_auth".to_string(),
        load("revoke_auth", &[("preserve_minion_cache", Value::Bool(false))]),
        Expect::Same,
    )];
    let pem = std::cell::OnceCell::new();
    let reset = |env: &Env| {
        let pem = pem.get_or_init(|| std::fs::read_to_string(env.root().join("pki/minions/cmp1")).unwrap());
        revoke_reset(env, pem);
    };
    let ((brine, brine_state), (python, python_state)) = both_answers(version, &env, &cases, reset, revoke_snapshot);
    // The load comes back when revoking is off: its ts is the request's own.
    let no_ts = |v: Vec<Value>| -> Vec<Value> {
        v.into_iter()
            .map(|mut a| {
                if a.is_map() {
                    a.remove("ts");
                }
                a
            })
            .collect()
    };
    check_answers(version, &cases, no_ts(brine.clone()), no_ts(python));
    assert_eq!(
        brine_state, python_state,
        "keys, caches and rotation after revoke_auth differ from Python's"
    );
    (brine, brine_state)
}

#[test]
fn revoke_auth_same_as_python_salt_3007() {
    let (answers, (keys, cached, rotate)) = compare_revoke("3007.17", "");
    assert_eq!(answers, vec![Value::Bool(true)]);
    assert!(!keys.contains(&"cmp1".to_string()), "{keys:?}");
    assert!(cached.is_empty(), "{cached:?}");
    assert!(rotate);
}

#[test]
fn revoke_auth_refused_as_python_salt_3006_does() {
    let (answers, (keys, cached, rotate)) = compare_revoke("3006.30", "allow_minion_key_revoke: False\n");
    assert!(answers[0].is_map(), "{answers:?}");
    assert!(keys.contains(&"cmp1".to_string()), "{keys:?}");
    assert_eq!(cached, ["cmp1", "ghost"]);
    assert!(!rotate);
}

/// Peer publishing requests from `cmp1`, which `peer:` lets publish
/// `test.*` and `peer_run:` lets run `jobs.list_job`: refusals, malformed
/// loads, `pub_ret` and runners. (Publishes that go through are checked
/// with real minions in `interop_states`: here, Python's master sometimes
/// never answered a peer publish its MWorker forwards to itself.)
fn peer_cases() -> Vec<(String, Value, Expect)> {
    let mut c: Vec<(String, Value, Expect)> = Vec::new();
    let mut add = |label: &str, cmd: &str, pairs: &[(&str, Value)]| {
        c.push((format!("{cmd} {label}"), load(cmd, pairs), Expect::Same));
    };
    let publ = |fun: Value, arg: Value, tgt: &str, tgt_type: &str| {
        vec![
            ("fun", fun),
            ("arg", arg),
            ("tgt", s(tgt)),
            ("tgt_type", s(tgt_type)),
            ("ret", s("")),
            ("tmo", Value::Int(5)),
            ("form", s("clean")),
        ]
    };
    let none = || Value::Array(vec![]);
    add(
        "a function peer does not allow",
        "minion_pub",
        &publ(s("cmd.run"), strs(&["id"]), "cmp1", "glob"),
    );
    add(
        "a publish of publish",
        "minion_pub",
        &publ(s("publish.publish"), none(), "cmp1", "glob"),
    );
    add(
        "comma form",
        "minion_pub",
        &publ(s("test.ping,test.echo"), strs(&["", "hi there"]), "cmp1", "glob"),
    );
    add(
        "comma form, args not text",
        "minion_pub",
        &publ(
            s("test.ping,test.echo"),
            Value::Array(vec![Value::Int(1), Value::Int(2)]),
            "cmp1",
            "glob",
        ),
    );
    add(
        "fun not text",
        "minion_pub",
        &publ(Value::Int(5), none(), "cmp1", "glob"),
    );
    add(
        "unknown nodegroup",
        "minion_pub",
        &publ(s("test.ping"), none(), "nogroup", "nodegroup"),
    );
    let mut no_ret = publ(s("test.ping"), none(), "cmp1", "glob");
    no_ret.retain(|(k, _)| *k != "ret");
    add("without ret", "minion_pub", &no_ret);
    // publish_auth/0 names cmp1, as a publish that matched nothing leaves it.
    add("own job 0", "pub_ret", &[("jid", s("0"))]);
    add("another minion's job", "pub_ret", &[("jid", s("20200101010101010102"))]);
    add("unknown job", "pub_ret", &[("jid", s("20200101010101010103"))]);
    add("traversal", "pub_ret", &[("jid", s("../../pki/master.pem"))]);
    add("no jid", "pub_ret", &[]);
    let run = |fun: Value, arg: Value| vec![("fun", fun), ("arg", arg)];
    add(
        "allowed",
        "minion_runner",
        &run(s("jobs.list_job"), strs(&["20200101010101010101"])),
    );
    add("not allowed", "minion_runner", &run(s("manage.up"), none()));
    add("no arg", "minion_runner", &[("fun", s("jobs.list_job"))]);
    c
}

#[test]
fn peer_requests_same_as_python_salt_3007() {
    let env = env_with_tree(
        2,
        "peer:\n  cmp.*:\n    - test\\..*\npeer_run:\n  cmp1:\n    - jobs.list_job\n",
    );
    let cases = peer_cases();
    let reset = |env: &Env| {
        let auth = env.root().join("cache/publish_auth");
        let _ = std::fs::remove_dir_all(&auth);
        std::fs::create_dir_all(&auth).unwrap();
        std::fs::write(auth.join("20200101010101010102"), "other").unwrap();
        std::fs::write(auth.join("0"), "cmp1").unwrap();
    };
    let owners = |env: &Env| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(env.root().join("cache/publish_auth"))
            .unwrap()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        v.sort();
        v
    };
    let ((brine, brine_owners), (python, python_owners)) = both_answers("3007.17", &env, &cases, reset, owners);
    let refused = brine.iter().filter(|a| **a == Value::Map(vec![])).count();
    let raised = brine.iter().filter(|a| **a == s("")).count();
    check_answers("3007.17", &cases, brine, python);
    assert_eq!((refused, raised), (9, 5), "refusals ({{}}) and raises (\"\")");
    assert_eq!(brine_owners, python_owners, "publish_auth records differ");
}
