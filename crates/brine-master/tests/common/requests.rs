//! Raw AES requests from an accepted minion to Brine and to Python's
//! salt-master on the same configuration: the file tree both serve, the
//! loads, and the comparison of their answers.

use std::io::Read;
use std::os::unix::fs::symlink;
use std::time::Duration;

use brine_proto::Value;

use super::aes::{accepted_minion, AesMinion};
use super::pysalt::PyMaster;
use super::{read, wait_until, Env};

pub const CHUNK: usize = 65536;

pub fn big() -> Vec<u8> {
    (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// The file tree under `<env root>/srv` and the config naming it.
pub fn tree(root: &std::path::Path, more_roots: &str) -> String {
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
pub fn env_with_tree(workers: usize, extra: &str) -> Env {
    env_with_roots(workers, "", extra)
}

/// [`env_with_tree`] with more saltenvs in `file_roots` (`{root}` is the
/// env's root).
pub fn env_with_roots(workers: usize, more_roots: &str, extra: &str) -> Env {
    let env = Env::with_extra(workers, "");
    let conf = env.conf_dir.join("master");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    let more = more_roots.replace("{root}", &env.root().display().to_string());
    text.push_str(&tree(&env.root(), &more));
    text.push_str(extra);
    std::fs::write(&conf, text).unwrap();
    env
}

pub fn s(x: &str) -> Value {
    Value::from(x)
}

pub fn load(cmd: &str, pairs: &[(&str, Value)]) -> Value {
    let mut m = vec![(s("cmd"), s(cmd))];
    m.extend(pairs.iter().map(|(k, v)| (s(k), v.clone())));
    Value::Map(m)
}

pub fn missing_file() -> Value {
    Value::map([("path", s("")), ("rel", s(""))])
}

pub fn no_chunk() -> Value {
    Value::map([("data", s("")), ("dest", s(""))])
}

pub fn sha256(data: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(data))
}

pub fn strs(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|x| s(x)).collect())
}

pub fn wait_log(env: &Env, needle: &str) -> String {
    wait_until(Duration::from_secs(5), || {
        read(&env.log_file()).matches(needle).count() >= 3
    });
    read(&env.log_file())
}

/// Whether Brine is meant to answer a case as Salt does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Same,
    /// Brine refuses (Salt's answer for a missing file, or an empty list)
    /// where Salt serves: `?index=N` skips Salt's root check, and Salt
    /// substitutes any saltenv into `__env__` roots.
    BrineRefuses,
}

/// Maps in key order, at every depth.
pub fn canon(v: Value) -> Value {
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

/// Maps in key order, `_file_envs` sorted (Salt's order is a set's), atime
/// masked (reading a file may update it), gzip chunks decompressed with
/// their header bytes but the timestamp kept.
pub fn norm(cmd: &str, v: Value) -> Value {
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

pub fn answers(port: u16, m: &AesMinion, cases: &[(String, Value, Expect)]) -> Vec<Value> {
    cases.iter().map(|(_, l, _)| m.call(port, l)).collect()
}

/// The answers of Brine, then of Python's salt-master of `version`, to
/// `cases` from the accepted minion `cmp1` on the same `env`, each with
/// what `after` reads once its master has answered; `reset` runs before
/// each master starts.
pub fn both_answers<S>(
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
        super::aes::ask_within(env.ret_port, &[warm], 90_000).is_some(),
        "Python salt-master {version} does not answer"
    );
    let python = answers(env.ret_port, &m, cases);
    (brine, (python, after(env)))
}

/// Brine's answers equal Python's, or refuse where [`Expect`] says so.
pub fn check_answers(version: &str, cases: &[(String, Value, Expect)], brine: Vec<Value>, python: Vec<Value>) {
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
