//! The minion requests that change the master, over the real request
//! channel, answered by Brine and by Python's salt-master on the same
//! configuration: `_file_recv` (`cp.push`), `revoke_auth`, and peer
//! publishing (`minion_pub`, `pub_ret`, `minion_runner`). Both masters
//! must answer alike and leave the same files, keys and caches behind.

mod common;

use std::os::unix::fs::symlink;

use brine_proto::Value;
use common::requests::*;
use common::Env;

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
