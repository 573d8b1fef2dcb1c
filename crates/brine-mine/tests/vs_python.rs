//! The mine compared with Python Salt's `RemoteFuncs._mine*` on the same
//! master config and minion data cache (3006.30 and 3007.17).

use brine_cache::MinionCache;
use brine_config::MasterConfig;
use brine_keys::{KeyState, KeyStore};
use brine_mine::{delete, flush, get, store, ACL_DATA, ACL_ID};
use brine_proto::Value;

use serde_json::{json, Value as Json};
use std::path::Path;

/// A master root: accepted web1, web2, db1, db2; data cache for web1
/// (Debian), web2 (RedHat), db1 (Debian).
fn root(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("brine-mine").tempdir().unwrap();
    let r = dir.path();
    std::fs::create_dir_all(r.join("pki/minions")).unwrap();
    for id in ["web1", "web2", "db1", "db2"] {
        std::fs::write(r.join("pki/minions").join(id), "key").unwrap();
    }
    for (id, os, role) in [
        ("web1", "Debian", "web"),
        ("web2", "RedHat", "web"),
        ("db1", "Debian", "db"),
    ] {
        let d = r.join("cache/minions").join(id);
        std::fs::create_dir_all(&d).unwrap();
        let data = Value::map([
            ("grains", Value::map([("os", Value::from(os))])),
            ("pillar", Value::map([("role", Value::from(role))])),
        ]);
        std::fs::write(d.join("data.p"), data.to_file()).unwrap();
    }
    std::fs::create_dir_all(r.join("conf")).unwrap();
    std::fs::write(
            r.join("conf/master"),
            format!(
                "root_dir: {r}\npki_dir: {r}/pki\ncachedir: {r}/cache\nsock_dir: {r}/sock\nlog_file: {r}/master.log\n{extra}",
                r = r.display()
            ),
        )
        .unwrap();
    dir
}

fn cfg(root: &Path) -> MasterConfig {
    MasterConfig::load(&root.join("conf")).unwrap()
}

fn accepted(cfg: &MasterConfig) -> Vec<String> {
    brine_keys::FsKeyStore::new(&cfg.pki_dir)
        .list(KeyState::Accepted)
        .unwrap()
}

fn run(cfg: &MasterConfig, cmd: &str, load: &Value) -> Value {
    let id = load.get("id").and_then(Value::as_str).unwrap_or("");
    match cmd {
        "_mine" => store(cfg, id, load),
        "_mine_get" => get(cfg, accepted(cfg), id, load),
        "_mine_delete" => delete(cfg, id, load),
        "_mine_flush" => flush(cfg, id, load),
        other => panic!("{other}"),
    }
}

/// A value as Python's `json.dumps` writes it.
fn to_json(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::UInt(u) => json!(u),
        Value::F32(f) => json!(f),
        Value::F64(f) => json!(f),
        Value::Str(s) => json!(s),
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => Json::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::Str(s) => s.clone(),
                        Value::Bool(b) => b.to_string(),
                        other => to_json(other).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        other => json!(format!("{other:?}")),
    }
}

/// Every minion's mine.p, decoded.
fn mines(cfg: &MasterConfig) -> Json {
    let mut out = serde_json::Map::new();
    for e in std::fs::read_dir(cfg.cachedir.join("minions")).unwrap().flatten() {
        let p = e.path().join("mine.p");
        if let Ok(b) = std::fs::read(&p) {
            out.insert(
                e.file_name().to_string_lossy().into_owned(),
                to_json(&Value::decode(&b).unwrap()),
            );
        }
    }
    Json::Object(out)
}

fn acl_entry(data: Value, tgt: Option<(&str, Option<&str>)>) -> Value {
    let mut e = Value::map([(ACL_DATA, data), (ACL_ID, Value::Int(1))]);
    if let Some((t, ty)) = tgt {
        e.set("allow_tgt", Value::from(t));
        if let Some(ty) = ty {
            e.set("allow_tgt_type", Value::from(ty));
        }
    }
    e
}

fn load(pairs: Vec<(&str, Value)>) -> Value {
    Value::map(pairs)
}

fn strs(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|s| Value::from(*s)).collect())
}

/// The operations both masters go through, in order.
fn ops() -> Vec<(&'static str, Value)> {
    let s = Value::from;
    let ips = |ip: &str| strs(&[ip]);
    let get = |id: &str, tgt: Value, fun: Value, extra: Vec<(&str, Value)>| {
        let mut l = load(vec![("id", Value::from(id)), ("tgt", tgt), ("fun", fun)]);
        for (k, v) in extra {
            l.set(k, v);
        }
        ("_mine_get", l)
    };
    vec![
        (
            "_mine",
            load(vec![
                ("id", s("web1")),
                (
                    "data",
                    Value::map([
                        ("network.ip_addrs", ips("10.0.0.1")),
                        ("grains.item", Value::map([("os", s("Debian"))])),
                    ]),
                ),
            ]),
        ),
        (
            "_mine",
            load(vec![
                ("id", s("web2")),
                ("data", Value::map([("network.ip_addrs", ips("10.0.1.2"))])),
                ("clear", Value::Bool(false)),
            ]),
        ),
        (
            "_mine",
            load(vec![
                ("id", s("web1")),
                (
                    "data",
                    Value::map([("network.ip_addrs", ips("10.0.0.11")), ("test.ping", Value::Bool(true))]),
                ),
            ]),
        ),
        (
            "_mine",
            load(vec![
                ("id", s("web1")),
                ("data", Value::map([("x", Value::Int(1))])),
                ("clear", Value::Bool(true)),
            ]),
        ),
        (
            "_mine",
            load(vec![
                ("id", s("db1")),
                (
                    "data",
                    Value::map([
                        ("network.ip_addrs", ips("192.168.1.5")),
                        ("secret", acl_entry(s("s3"), Some(("web1", Some("glob"))))),
                        ("deny_all", acl_entry(Value::Int(1), Some(("nosuch", None)))),
                        (
                            "grain_acl",
                            acl_entry(Value::Int(2), Some(("G@os:RedHat", Some("compound")))),
                        ),
                        ("wrapped", acl_entry(Value::Int(3), None)),
                        ("bad_type", acl_entry(Value::Int(4), Some(("web1", Some("nosuch"))))),
                    ]),
                ),
            ]),
        ),
        (
            "_mine",
            load(vec![
                ("id", s("db2")),
                ("data", Value::Array(vec![strs(&["pairs", "ok"])])),
            ]),
        ),
        ("_mine", load(vec![("id", s("db2")), ("data", s("nonsense"))])),
        ("_mine", load(vec![("id", s("db2"))])),
        get("web2", s("*"), s("network.ip_addrs"), vec![]),
        get("web2", s("*"), s("network.ip_addrs,test.ping"), vec![]),
        get("web2", s("*"), s("network.ip_addrs,network.ip_addrs"), vec![]),
        get("web2", s("*"), strs(&["network.ip_addrs"]), vec![]),
        get("web2", s("*"), strs(&["test.ping", "nosuch"]), vec![]),
        get(
            "web2",
            s("os:Debian"),
            s("network.ip_addrs"),
            vec![("tgt_type", s("grain"))],
        ),
        get(
            "web2",
            s("role:web"),
            s("network.ip_addrs"),
            vec![("tgt_type", s("pillar"))],
        ),
        get(
            "web2",
            s("role:w*"),
            s("network.ip_addrs"),
            vec![("tgt_type", s("Pillar"))],
        ),
        get(
            "web2",
            s("G@os:Debian or web2"),
            s("network.ip_addrs"),
            vec![("tgt_type", s("compound"))],
        ),
        get(
            "web2",
            s("I@role:w*"),
            s("network.ip_addrs"),
            vec![("tgt_type", s("compound"))],
        ),
        get(
            "web2",
            s("web1,db1"),
            s("network.ip_addrs"),
            vec![("expr_form", s("list"))],
        ),
        get(
            "web2",
            s("web1,db1"),
            s("network.ip_addrs"),
            vec![("expr_form", s("list")), ("tgt_type", s("glob"))],
        ),
        get("web2", s("*"), s("network.ip_addrs"), vec![("tgt_type", s("GLOB"))]),
        get("web2", s("*"), s("network.ip_addrs"), vec![("tgt_type", Value::Nil)]),
        get(
            "web2",
            s("10.0.0.0/8"),
            s("network.ip_addrs"),
            vec![("tgt_type", s("ipcidr"))],
        ),
        get("web1", s("db1"), s("secret"), vec![]),
        get("web2", s("db1"), s("secret"), vec![]),
        get("web1", s("db1"), s("deny_all"), vec![]),
        get("web1", s("db1"), s("grain_acl"), vec![]),
        get("web2", s("db1"), s("grain_acl,wrapped,secret,bad_type"), vec![]),
        get("web2", s("*"), s("pairs"), vec![]),
        ("_mine_get", load(vec![("id", s("web2")), ("tgt", s("*"))])),
        get("web2", s("*"), Value::Int(5), vec![]),
        get("../x", s("*"), s("network.ip_addrs"), vec![]),
        ("_mine_delete", load(vec![("id", s("web1")), ("fun", s("test.ping"))])),
        ("_mine_delete", load(vec![("id", s("web1")), ("fun", s("test.ping"))])),
        ("_mine_delete", load(vec![("id", s("nosuch")), ("fun", s("x"))])),
        ("_mine_delete", load(vec![("id", s("web1"))])),
        ("_mine_flush", load(vec![("id", s("web2"))])),
        ("_mine_flush", load(vec![("id", s("web2"))])),
        ("_mine_flush", load(vec![("fun", s("x"))])),
        get("web2", s("*"), s("network.ip_addrs"), vec![]),
    ]
}

const PY: &str = r#"
import json, logging, os, sys
logging.basicConfig(level=logging.CRITICAL)
import salt.config, salt.master, salt.payload
req = json.load(sys.stdin)
opts = salt.config.master_config(req["conf"] + "/master")
aes = salt.master.AESFuncs(opts)
def mines():
    out = {}
    base = os.path.join(opts["cachedir"], "minions")
    for id_ in os.listdir(base):
        p = os.path.join(base, id_, "mine.p")
        if os.path.isfile(p):
            with open(p, "rb") as f:
                out[id_] = salt.payload.load(f)
    return out
res = []
for op in req["ops"]:
    ret = aes.run_func(op["cmd"], op["load"])[0]
    res.append({"ret": ret, "mines": mines()})
print(json.dumps(res, default=repr))
"#;

fn python(version: &str, conf: &Path, ops: &[(&str, Value)]) -> Vec<Json> {
    let request = json!({
        "conf": conf,
        "ops": ops.iter().map(|(c, l)| json!({"cmd": c, "load": to_json(l)})).collect::<Vec<_>>(),
    });
    let out = brine_testutil::salt_python(version, PY, request.to_string().as_bytes());
    serde_json::from_slice(&out).unwrap()
}

fn agree(version: &str, extra: &str) {
    let ops = ops();
    let py_root = root(extra);
    let want = python(version, &py_root.path().join("conf"), &ops);
    if let Ok(path) = std::env::var("BRINE_MINE_DUMP") {
        std::fs::write(path, serde_json::to_string_pretty(&want).unwrap()).unwrap();
    }
    let rs_root = root(extra);
    let cfg = cfg(rs_root.path());
    let mut failures = Vec::new();
    for ((cmd, l), want) in ops.iter().zip(&want) {
        let got = json!({"ret": to_json(&run(&cfg, cmd, l)), "mines": mines(&cfg)});
        if got != *want {
            failures.push(format!("{cmd} {l:?}:\n  brine {got}\n  salt  {want}"));
        }
    }
    assert!(failures.is_empty(), "{version} {extra:?}:\n{}", failures.join("\n"));
}

#[test]
fn mine_agrees_with_salt_3007() {
    agree("3007.17", "");
}

#[test]
fn mine_agrees_with_salt_3006() {
    agree("3006.30", "");
}

#[test]
fn mine_get_acl_agrees_with_salt() {
    agree(
        "3007.17",
        "mine_get:\n  'web.*': ['network\\..*', 'grains\\.item']\n  'db1': notalist\n",
    );
    agree("3007.17", "mine_get: []\n");
}

#[test]
fn mine_without_the_data_cache_agrees_with_salt() {
    agree("3007.17", "minion_data_cache: False\n");
    agree("3007.17", "minion_data_cache: False\nenforce_mine_cache: True\n");
}

#[test]
fn store_merges_and_get_shapes_as_salt_does() {
    let dir = root("");
    let cfg = cfg(dir.path());
    let s = Value::from;
    let put = |id: &str, data: Value| store(&cfg, id, &load(vec![("id", Value::from(id)), ("data", data)]));
    assert_eq!(
        put("web1", Value::map([("a", Value::Int(1)), ("b", Value::Int(2))])),
        Value::Bool(true)
    );
    assert_eq!(
        put("web1", Value::map([("a", Value::Int(3)), ("c", Value::Int(4))])),
        Value::Bool(true)
    );
    let mine = MinionCache::new(&cfg.cachedir).fetch("web1", "mine").unwrap();
    assert_eq!(
        mine,
        Value::map([("a", Value::Int(3)), ("b", Value::Int(2)), ("c", Value::Int(4))]),
        "updated in place, new keys last"
    );
    let g = |fun: Value| {
        get(
            &cfg,
            accepted(&cfg),
            "web2",
            &load(vec![("id", s("web2")), ("tgt", s("web*")), ("fun", fun)]),
        )
    };
    assert_eq!(g(s("a")), Value::map([("web1", Value::Int(3))]));
    assert_eq!(
        g(s("a,b")),
        Value::map([
            ("a", Value::map([("web1", Value::Int(3))])),
            ("b", Value::map([("web1", Value::Int(2))]))
        ])
    );
    assert_eq!(flush(&cfg, "web1", &load(vec![("id", s("web1"))])), Value::Bool(true));
    assert_eq!(g(s("a")), Value::Map(vec![]));
}
