//! Brine's targeting against Python Salt's, on the same pki dir and
//! minion data cache: `CkMinions.check_minions` (greedy and not) for every
//! target type, and the minion-side matchers (`salt.loader.matchers`) for
//! each minion's grains and pillar. Python Salt 3007.17 and 3006.30 are
//! the oracles; Python returns most minion lists as `list(set)`, so lists
//! are compared sorted, except for `list` targets (kept in the order given)
//! and `missing`.

use std::path::PathBuf;

use brine_keys::{FsKeyStore, KeyState, KeyStore};
use brine_proto::json::from_json;
use brine_proto::Value;
use brine_targeting::{minion_matches, CkMinions, MinionData};
use serde_json::{json, Value as Json};

const NODEGROUPS: &str = r"nodegroups:
  webs: 'web*'
  dbs: [db1, db2]
  dbre: 'db[12]'
  debs: 'G@os:Debian'
  deb_webs: 'N@webs and N@debs'
  nested: ['N@deb_webs', 'or', 'L@mail.example.com']
  cyc1: 'N@cyc2 or web1'
  cyc2: 'N@cyc1'
  unknown_ref: 'N@nosuch or web1'
  bare: 'web1 db2'
  withops: 'web1 or db2'
  notgrp: 'not G@os:Debian'
  ints: [1, web1]
  exprgrp: 'E@web\d'
  qmark: 'web?'
  deep: 'N@nested and not N@dbs'
  listgrp: ['web1', 'N@dbs']
  spaced: 'web1    or   db1'
  empty: ''
  parens: '( web1 or db1 ) and not G@os:Ubuntu'
";

fn s(x: &str) -> Value {
    Value::from(x)
}

fn list(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|x| s(x)).collect())
}

/// Minions with cache data: (id, grains, pillar or None for no pillar key).
fn minions() -> Vec<(&'static str, Value, Option<Value>)> {
    vec![
        (
            "web1",
            Value::map([
                ("id", s("web1")),
                ("os", s("Debian")),
                ("os_family", s("Debian")),
                ("roles", list(&["web", "lb"])),
                ("ipv4", list(&["10.0.0.1", "127.0.0.1"])),
                ("ipv6", list(&["::1", "fe80::1"])),
                ("ip_interfaces", Value::map([("eth0", list(&["10.0.0.1"]))])),
                ("num_cpus", Value::Int(4)),
                ("virtual", Value::Bool(true)),
                (
                    "tags",
                    Value::map([("env", s("prod")), ("team", Value::map([("name", s("ops"))]))]),
                ),
                (
                    "disks",
                    Value::Array(vec![Value::map([("name", s("sda")), ("size", Value::Int(100))])]),
                ),
                ("kernelrelease", s("6.1.0-13-amd64")),
                ("intkeys", Value::Map(vec![(Value::Int(1), s("one"))])),
                ("pi", Value::F64(3.5)),
                ("nothing", Value::Nil),
            ]),
            Some(Value::map([
                ("role", s("web")),
                ("tier", s("front")),
                (
                    "app",
                    Value::map([
                        ("version", s("1.2")),
                        ("ports", Value::Array(vec![Value::Int(80), Value::Int(443)])),
                    ]),
                ),
                ("secret", s("a:b")),
            ])),
        ),
        (
            "web2",
            Value::map([
                ("id", s("web2")),
                ("os", s("RedHat")),
                ("roles", list(&["web"])),
                ("ipv4", list(&["10.0.1.2"])),
                ("ipv6", list(&["2001:db8::2"])),
                ("num_cpus", Value::Int(2)),
                ("virtual", Value::Bool(false)),
                ("tags", Value::map([("env", s("dev"))])),
            ]),
            Some(Value::map([
                ("role", s("web")),
                ("tier", s("front*")),
                (
                    "app",
                    Value::map([("version", s("2.0")), ("ports", Value::Array(vec![Value::Int(8080)]))]),
                ),
            ])),
        ),
        (
            "Web3",
            Value::map([
                ("id", s("Web3")),
                ("os", s("Ubuntu")),
                ("roles", list(&["web", "db"])),
                // A string, not a list: Salt's `in` is a substring test.
                ("ipv4", s("10.1.1.1")),
                ("tags", Value::map([("env", s("prod"))])),
            ]),
            Some(Value::map([("role", s("Web"))])),
        ),
        (
            "db1",
            Value::map([
                ("id", s("db1")),
                ("os", s("Debian")),
                ("roles", list(&["db"])),
                ("ipv4", list(&["192.168.1.5", "10.0.0.9"])),
                ("ipv6", Value::Array(vec![])),
            ]),
            Some(Value::map([("role", s("db")), ("tier", s("back"))])),
        ),
        (
            "db2",
            Value::map([
                ("id", s("db2")),
                ("os", s("Ubuntu")),
                ("roles", list(&["db"])),
                ("ipv4", list(&["192.168.1.6"])),
                ("ipv6", list(&["2001:db8::6", "fe80::6"])),
            ]),
            Some(Value::Map(vec![])),
        ),
        (
            "mail.example.com",
            Value::map([("id", s("mail.example.com")), ("os", s("FreeBSD"))]),
            None,
        ),
        // Cached, but its key is gone.
        (
            "stale",
            Value::map([("id", s("stale")), ("os", s("Debian")), ("ipv4", list(&["10.0.0.50"]))]),
            Some(Value::map([("role", s("web"))])),
        ),
    ]
}

/// Accepted keys: all cached minions but `stale`, plus `nocache` (no
/// cache dir) and `emptydir` (a cache dir without data.p).
const ACCEPTED: [&str; 8] = [
    "web1",
    "web2",
    "Web3",
    "db1",
    "db2",
    "mail.example.com",
    "nocache",
    "emptydir",
];

struct Fixture {
    _dir: tempfile::TempDir,
    conf: PathBuf,
    root: PathBuf,
}

/// `extra`: master options to add; `raw`: more accepted minions with
/// these bytes as their data.p.
fn fixture(extra: &str, raw: &[(&str, Vec<u8>)]) -> Fixture {
    let dir = tempfile::Builder::new().prefix("brine-tgt").tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let pki = root.join("pki/minions");
    std::fs::create_dir_all(&pki).unwrap();
    for id in ACCEPTED {
        std::fs::write(pki.join(id), "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n").unwrap();
    }
    std::fs::write(pki.join(".hidden"), "").unwrap();
    for (id, grains, pillar) in minions() {
        let d = root.join("cache/minions").join(id);
        std::fs::create_dir_all(&d).unwrap();
        let mut data = Value::map([("grains", grains)]);
        if let Some(p) = pillar {
            data.set("pillar", p);
        }
        std::fs::write(d.join("data.p"), data.to_file()).unwrap();
    }
    std::fs::create_dir_all(root.join("cache/minions/emptydir")).unwrap();
    for (id, bytes) in raw {
        std::fs::write(pki.join(id), "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n").unwrap();
        let d = root.join("cache/minions").join(id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("data.p"), bytes).unwrap();
    }
    let conf = root.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("master"),
        format!(
            "root_dir: {r}\npki_dir: {r}/pki\ncachedir: {r}/cache\nsock_dir: {r}/sock\nlog_file: {r}/master.log\n{NODEGROUPS}{extra}",
            r = root.display()
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("minion"),
        format!(
            "root_dir: {r}/m\npki_dir: {r}/m/pki\ncachedir: {r}/m/cache\nsock_dir: {r}/m/sock\nlog_file: {r}/m/minion.log\n",
            r = root.display()
        ),
    )
    .unwrap();
    Fixture { _dir: dir, conf, root }
}

const PY: &str = r#"
import json, logging, sys
logging.basicConfig(level=logging.CRITICAL)
import salt.config, salt.loader, salt.payload, salt.utils.minions
req = json.load(sys.stdin)
opts = salt.config.master_config(req["conf"] + "/master")
ck = salt.utils.minions.CkMinions(opts)
out = {"master": [], "minion": []}
for c in req["cases"]:
    r = ck.check_minions(c["expr"], c["type"], c["delimiter"], greedy=c["greedy"])
    out["master"].append({"minions": r["minions"], "missing": r["missing"]})
for m in req["minions"]:
    try:
        with open(m["data"], "rb") as f:
            data = salt.payload.load(f)
    except Exception:
        data = {}
    if not isinstance(data, dict):
        data = {}
    mopts = salt.config.minion_config(req["conf"] + "/minion")
    mopts["id"] = m["id"]
    mopts["grains"] = data.get("grains", {})
    mopts["pillar"] = data.get("pillar", {})
    mopts["nodegroups"] = opts["nodegroups"]
    matchers = salt.loader.matchers(mopts)
    res = []
    for c in req["minion_cases"]:
        try:
            fn = matchers[c["type"] + "_match.match"]
            if c["type"] == "nodegroup":
                v = fn(c["expr"], opts["nodegroups"])
            elif c["delimiter"] != ":":
                v = fn(c["expr"], delimiter=c["delimiter"])
            else:
                v = fn(c["expr"])
            res.append(bool(v))
        except Exception as e:
            res.append("exc")
    out["minion"].append(res)
print(json.dumps(out))
"#;

fn python(version: &str, request: &Json) -> Json {
    let out = brine_testutil::salt_python(version, PY, request.to_string().as_bytes());
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("bad python output ({e}): {}", String::from_utf8_lossy(&out)))
}

/// Master-side cases: (expr, type, delimiter).
fn master_cases() -> Vec<(Json, &'static str, &'static str)> {
    let mut c: Vec<(Json, &str, &str)> = Vec::new();
    let mut add = |ty: &'static str, exprs: &[&str]| {
        for e in exprs {
            c.push((json!(e), ty, ":"));
        }
    };
    add(
        "glob",
        &[
            "*", "web*", "web?", "[wd]*", "W*", "*1", "nomatch", "", "web[!1]", "[z-a]*", "[!z-a]*", "*.com", "mail.*",
            "db[0-9]", "emptydir", "stale",
        ],
    );
    add(
        "pcre",
        &[
            "web",
            "^web\\d$",
            "(web|db)1",
            ".*",
            "(",
            "W",
            "db[12]$",
            "web1|Web3",
            "",
            "[[]",
            "mail\\.",
            "e",
            ".*\\.com\\Z",
            "a{",
            "db{1,}",
            "web1$",
            "(?i)WEB",
            "web{1}",
            "we{,1}b",
            "[^w]",
            "\\w+\\d\\b",
            "(?P<n>web)\\d",
        ],
    );
    add(
        "list",
        &[
            "web1,db1",
            "web1, db1",
            "zz,web1,,db2,web1",
            "",
            "stale",
            "Web3",
            "web3",
            ",",
        ],
    );
    add(
        "grain",
        &[
            "os:Debian",
            "os:debian",
            "os:Deb*",
            "roles:web",
            "roles:*",
            "roles:0:web",
            "roles:-1:lb",
            "ip_interfaces:eth0:10.0.0.*",
            "ip_interfaces:eth0",
            "tags:team:name:ops",
            "tags:env:prod",
            "tags:*",
            "tags:team",
            "disks:name:sda",
            "disks:0:name:sda",
            "disks:size:100",
            "num_cpus:4",
            "num_cpus:[24]",
            "virtual:True",
            "virtual:false",
            "*:Debian",
            "*:Ubuntu",
            "nosuch:x",
            "os",
            "intkeys:1:one",
            "pi:3.5",
            "nothing:None",
            "kernelrelease:6.1*",
            "id:web1",
            "os:*",
            "os:",
        ],
    );
    add(
        "grain_pcre",
        &[
            "os:^Deb",
            "os:(",
            "roles:w.b",
            "tags:team:name:o.s",
            "os:ubuntu|redhat",
            "num_cpus:\\d",
            "roles:^d",
            "kernelrelease:6\\.1\\.0-{",
            "kernelrelease:.*amd64$",
            "os:DEB",
            "os:[[]",
        ],
    );
    add(
        "pillar",
        &[
            "role:web",
            "role:WEB",
            "app:ports:443",
            "secret:a:b",
            "app:version:1.*",
            "tier:*",
            "tier:front",
            "app:*",
        ],
    );
    add(
        "pillar_pcre",
        &["app:version:1\\.2", "role:^w", "tier:(", "app:ports:80"],
    );
    add(
        "pillar_exact",
        &[
            "tier:front",
            "tier:fr*",
            "tier:front*",
            "role:Web",
            "role:web",
            "app:ports:443",
        ],
    );
    add(
        "ipcidr",
        &[
            "10.0.0.0/8",
            "10.0.0.1",
            "192.168.0.0/16",
            "2001:db8::/32",
            "2001:db8::6",
            "10.0.0.1/8",
            "bad",
            "0.0.0.0/0",
            "::/0",
            "10.1.1.1",
            "0.1.1.1",
            "10.0.0.0/255.0.0.0",
            "10.0.0.0/0.255.255.255",
            "010.0.0.1",
            "fe80::1",
            "FE80::1",
            "127.0.0.1/32",
            "",
        ],
    );
    add("range", &["%cluster", ""]);
    add("nosuch_type", &["web1"]);
    let groups = [
        "webs",
        "dbs",
        "dbre",
        "debs",
        "deb_webs",
        "nested",
        "cyc1",
        "cyc2",
        "unknown_ref",
        "bare",
        "withops",
        "notgrp",
        "ints",
        "exprgrp",
        "qmark",
        "deep",
        "listgrp",
        "spaced",
        "empty",
        "parens",
        "nosuch",
    ];
    add("nodegroup", &groups);
    let compound = [
        "web1",
        "web*",
        "G@os:Debian",
        "G@os:Debian and web*",
        "G@os:Debian or G@os:Ubuntu",
        "not G@os:Debian",
        "web* and not G@os:Debian",
        "web* not G@os:Debian",
        "not web* and not db*",
        "( web1 or db1 ) and G@os:Debian",
        "web1 or ( db1 and G@os:RedHat )",
        "web1 or db1 and G@os:RedHat",
        "( ( web1 ) )",
        "not ( web1 or db1 )",
        "not ( not web1 )",
        "not ( not ( web1 or db1 ) and db1 )",
        "( web1",
        "( web1 or ( db1",
        "web1 )",
        "( )",
        "",
        "and web1",
        "or web1",
        ")",
        "( and web1 )",
        "( or web1 )",
        "web1 and",
        "web1 db1",
        "web1 or web2 ( db1 )",
        "not not web1",
        "web1 and ( )",
        "not",
        "( not web1 )",
        "L@web1,db1",
        "L@web1,zz",
        "not L@zz,web1",
        "L@zz and not L@yy",
        "web1 or L@qq,rr",
        "( L@qq ) or web1",
        "not ( L@qq )",
        "L@web1,stale",
        "E@web\\d",
        "E@(",
        "E@^db",
        "E@.*\\.com$",
        "E@(?i)WEB1",
        "P@os:^(Deb|Ubu)",
        "P@roles:^d",
        "P@os:(",
        "I@role:web",
        "I@tier:front*",
        "I@role:WEB",
        "J@app:version:^1",
        "I@app:ports:443",
        "I@secret:a:b",
        "J@tier:(",
        "G@tags:team:name:ops",
        "G|@tags|env|prod",
        "G@roles:*b*",
        "G@ipv4:10.*",
        "G@os:Debian and not L@db1",
        "S@10.0.0.0/8",
        "S@10.0.0.1",
        "S@192.168.0.0/16 or S@2001:db8::/32",
        "S@10.0.0.1/8",
        "S@bogus or web1",
        "not S@10.0.0.0/8",
        "S@0.1.1.1",
        "N@webs",
        "N@dbs",
        "N@deb_webs",
        "N@nested",
        "N@cyc1",
        "N@unknown_ref",
        "N@bare",
        "N@withops and G@os:Debian",
        "N@notgrp",
        "N@ints",
        "N@exprgrp",
        "N@qmark",
        "N@deep",
        "N@listgrp",
        "N@nosuch",
        "N@nosuch or web1",
        "web1 or N@nosuch",
        "N@dbre",
        "N@empty",
        "N@parens",
        "not N@webs",
        "R@%cluster",
        "web1 or R@x",
        "X@foo",
        "G@",
        "nocache",
        "emptydir or nocache",
        "stale",
        "G@os:Debian and stale",
        "*",
        "not *",
        "G@os:Debian and G@os:Ubuntu",
    ];
    add("compound", &compound);
    add(
        "compound_pillar_exact",
        &[
            "I@tier:fr* or J@tier:front",
            "I@tier:front",
            "J@tier:front*",
            "G@os:Deb* and I@role:web",
        ],
    );
    c.push((json!(["web1", "or", "G@os:Ubuntu"]), "compound", ":"));
    c.push((json!(["N@dbs"]), "compound", ":"));
    c.push((json!([1, "or", "web1"]), "compound", ":"));
    c.push((
        json!(["(", "web1", "or", "db1", ")", "and", "not", "G@os:Ubuntu"]),
        "compound",
        ":",
    ));
    c.push((json!(["web1", "zz"]), "list", ":"));
    c.push((json!(["web1", "zz"]), "glob", ":"));
    c.push((json!(null), "glob", ":"));
    c.push((json!(5), "compound", ":"));
    c.push((json!("tags|team|name|ops"), "grain", "|"));
    c.push((json!("tags|env|pr.*"), "grain_pcre", "|"));
    c.push((json!("os:Debian"), "grain", ""));
    c
}

fn sorted(v: &Json) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap_or("?").to_string())
        .collect();
    out.sort();
    out
}

fn compare(version: &str, extra: &str, raw: &[(&str, Vec<u8>)], greedy_modes: &[bool]) {
    let fx = fixture(extra, raw);
    let cfg = brine_config::MasterConfig::load(&fx.conf).unwrap();
    let accepted = FsKeyStore::new(&cfg.pki_dir).list(KeyState::Accepted).unwrap();
    let ck = CkMinions::from_config(&cfg, accepted);

    let mut cases = Vec::new();
    for greedy in greedy_modes {
        for (expr, ty, delim) in master_cases() {
            cases.push(json!({"expr": expr, "type": ty, "delimiter": delim, "greedy": greedy}));
        }
    }
    // Minion-side: every matcher type over a selection of targets.
    let mut minion_cases = Vec::new();
    for (expr, ty, delim) in master_cases() {
        let ty = match ty {
            "nosuch_type" => "nosuch",
            other => other,
        };
        minion_cases.push(json!({"expr": expr, "type": ty, "delimiter": delim}));
    }
    let ids: Vec<&str> = minions()
        .iter()
        .map(|(id, _, _)| *id)
        .chain(["nocache", "emptydir"])
        .chain(raw.iter().map(|(id, _)| *id))
        .collect();
    let data_path = |id: &str| fx.root.join("cache/minions").join(id).join("data.p");
    let request = json!({
        "conf": fx.conf,
        "cases": cases,
        "minions": ids.iter().map(|id| json!({"id": id, "data": data_path(id)})).collect::<Vec<_>>(),
        "minion_cases": minion_cases,
    });
    let py = python(version, &request);
    if let Ok(path) = std::env::var("BRINE_TGT_DUMP") {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&json!({"request": request, "salt": py})).unwrap(),
        )
        .unwrap();
    }
    // The oracle said something: many targets name minions, many don't.
    let named = py["master"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["minions"].as_array().unwrap().is_empty())
        .count();
    assert!(
        named > cases.len() / 10 && named < cases.len(),
        "{named} of {} targets name minions",
        cases.len()
    );

    let mut failures = Vec::new();
    for (case, want) in cases.iter().zip(py["master"].as_array().unwrap()) {
        let expr = from_json(&case["expr"]);
        let ty = case["type"].as_str().unwrap();
        let got = ck.check_minions(
            &expr,
            ty,
            case["delimiter"].as_str().unwrap(),
            case["greedy"].as_bool().unwrap(),
        );
        let want_minions = if ty == "list" {
            want["minions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect()
        } else {
            sorted(&want["minions"])
        };
        let mut got_minions = got.minions.clone();
        if ty != "list" {
            got_minions.sort();
        }
        let want_missing: Vec<String> = want["missing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
            .collect();
        if got_minions != want_minions || got.missing != want_missing {
            failures.push(format!(
                "{version} check_minions({}, {ty}, greedy={}): brine {:?} / {:?}, salt {:?} / {:?}",
                case["expr"], case["greedy"], got_minions, got.missing, want_minions, want_missing
            ));
        }
    }

    let nodegroups = from_json(cfg.get("nodegroups").unwrap());
    for (id, results) in ids.iter().zip(py["minion"].as_array().unwrap()) {
        let data = std::fs::read(data_path(id))
            .ok()
            .and_then(|b| Value::decode(&b).ok())
            .unwrap_or(Value::Map(vec![]));
        let empty = Value::Map(vec![]);
        let grains = data.get("grains").unwrap_or(&empty);
        let pillar = data.get("pillar").unwrap_or(&empty);
        let m = MinionData { id, grains, pillar };
        for (case, want) in minion_cases.iter().zip(results.as_array().unwrap()) {
            let got = minion_matches(
                &m,
                &from_json(&case["expr"]),
                case["type"].as_str().unwrap(),
                case["delimiter"].as_str().unwrap(),
                &nodegroups,
            );
            // A matcher that raises is no match for Brine.
            let want_bool = want.as_bool().unwrap_or(false);
            if got != want_bool {
                failures.push(format!(
                    "{version} {id}: {}_match({}) brine {got}, salt {want}",
                    case["type"].as_str().unwrap(),
                    case["expr"]
                ));
            }
        }
    }
    let total = cases.len() + ids.len() * minion_cases.len();
    assert!(
        failures.is_empty(),
        "{} of {total} comparisons differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{version}: {total} comparisons agree");
}

#[test]
fn check_minions_and_matchers_agree_with_salt_3007() {
    compare("3007.17", "", &[], &[true, false]);
}

#[test]
fn check_minions_and_matchers_agree_with_salt_3006() {
    compare("3006.30", "", &[], &[true, false]);
}

#[test]
fn without_minion_data_cache_agrees_with_salt() {
    compare("3007.17", "minion_data_cache: False\n", &[], &[true, false]);
}

/// Cache data Salt trips over: an `ipv4` grain that is no address (every
/// network target raises once it is reached), data that is not a dict,
/// a data.p that is not msgpack.
#[test]
fn broken_cache_data_agrees_with_salt() {
    let badip = Value::map([(
        "grains",
        Value::map([("os", s("Debian")), ("ipv4", list(&["not-an-ip", "10.0.0.77"]))]),
    )]);
    compare("3007.17", "", &[("badip", badip.to_file())], &[true, false]);
    let listdata = Value::Array(vec![Value::Int(1)]);
    compare("3007.17", "", &[("listdata", listdata.to_file())], &[true, false]);
    compare("3007.17", "", &[("corrupt", vec![0xc1, 0x00])], &[true, false]);
}
