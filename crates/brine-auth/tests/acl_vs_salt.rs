//! Brine's ACL checks against Python Salt's on the same cases: several
//! hundred combinations of access lists, users, groups, functions,
//! arguments and targets, generated here and answered by both
//! `salt.utils.minions.CkMinions` (`fill_auth_list`, `spec_check`,
//! `auth_check`, Salt 3007.17 from the reference venv) and brine-auth, on
//! the same pki dir.

use brine_auth::acl::{auth_check, fill_auth_list, spec_check, Spec, Target};
use brine_proto::json::from_json;
use serde_json::{json, Value as Json};

const ACCEPTED: &[&str] = &["a1", "a2", "b1", "web1"];

/// A deterministic generator, so that a failure names a case that comes
/// back on the next run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
    fn subset(&mut self, xs: &[Json], max: usize) -> Vec<Json> {
        let n = (self.next() % (max as u64 + 1)) as usize;
        (0..n).map(|_| self.pick(xs).clone()).collect()
    }
}

const PY: &str = r#"
import json, logging, sys
logging.basicConfig(level=logging.CRITICAL)
import salt.config, salt.utils.minions
req = json.load(sys.stdin)
opts = salt.config.master_config(req["conf"])
out = {"fill": [], "spec": [], "auth": []}
for c in req["fill"]:
    opts["permissive_acl"] = c["permissive"]
    ck = salt.utils.minions.CkMinions(opts)
    out["fill"].append(ck.fill_auth_list(c["provider"], c["name"], c["groups"]))
opts["permissive_acl"] = False
ck = salt.utils.minions.CkMinions(opts)
for c in req["spec"]:
    r = ck.spec_check(c["auth_list"], c["fun"], c["args"], c["form"])
    out["spec"].append("syntax" if isinstance(r, dict) else bool(r))
for c in req["auth"]:
    r = ck.auth_check(c["auth_list"], c["fun"], c["arg"], c["tgt"], c["tgt_type"],
                      publish_validate=c["validate"], whitelist=c["whitelist"] or None)
    out["auth"].append(bool(r))
print(json.dumps(out))
"#;

#[test]
fn acl_checks_agree_with_salt_on_generated_cases() {
    let dir = tempfile::Builder::new().prefix("brine-acl").tempdir().unwrap();
    let root = dir.path();
    let pki = root.join("pki/minions");
    std::fs::create_dir_all(&pki).unwrap();
    for id in ACCEPTED {
        std::fs::write(pki.join(id), "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n").unwrap();
    }
    let conf_dir = root.join("conf");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let conf = conf_dir.join("master");
    std::fs::write(
        &conf,
        format!(
            "root_dir: {r}\npki_dir: {r}/pki\ncachedir: {r}/cache\nsock_dir: {r}/sock\nlog_file: {r}/master.log\nminion_data_cache: False\n",
            r = root.display()
        ),
    )
    .unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    // fill_auth_list: user entries, group% entries, `*`, permissive_acl.
    let entries = [
        ("fred", json!(["test.*"])),
        ("fr*", json!(["@runner"])),
        ("dev.*", json!(["@jobs"])),
        ("adm%", json!(["@wheel"])),
        ("ops%", json!([{"a*": ["cmd.run"]}])),
        ("*", json!(["grains.items"])),
        ("bob", json!([{"a1": ["test.ping"]}])),
        ("eve", json!("test.ping")),
    ];
    let names = ["fred", "fr*", "bob", "dev1", "dev.*", "eve", "*", "mallory", "Fred"];
    let groups = ["adm", "ops", "wheel", "users"];
    let mut fill = Vec::new();
    for _ in 0..150 {
        let mut provider = serde_json::Map::new();
        for _ in 0..(1 + rng.next() % 5) {
            let (k, v) = rng.pick(&entries);
            provider.insert((*k).to_string(), v.clone());
        }
        let gs: Vec<Json> = rng.subset(&groups.map(Json::from), 2);
        fill.push(json!({
            "provider": provider,
            "name": rng.pick(&names),
            "groups": gs,
            "permissive": rng.next().is_multiple_of(4),
        }));
    }

    // spec_check: the runner and wheel forms with argument conditions.
    let spec_pool = [
        json!("@wheel"),
        json!("@runner"),
        json!("@runners"),
        json!("@wheels"),
        json!("@jobs"),
        json!("@manage"),
        json!("test.*"),
        json!({"@runner": ["jobs\\..*"]}),
        json!({"@runner": "manage\\.up"}),
        json!({"@jobs": ["list_.*", {"lookup_jid": {"args": ["2024.*"]}}]}),
        json!({"@wheel": [{"key\\..*": {"kwargs": {"match": "a.*"}}}]}),
        json!({"@key": ["list_all", "finger"]}),
        json!({"@wheel": [{"key.accept": [{"args": [null, "x"]}, {"kwargs": {"match": null}}]}]}),
        json!({"@runner": ["(", "jobs.*"]}),
    ];
    let funs = [
        "jobs.list_jobs",
        "jobs.lookup_jid",
        "manage.up",
        "key.list_all",
        "key.accept",
        "key.finger",
        "nodot",
        "a.b.c",
        "test.ping",
    ];
    let spec_args = [
        json!({}),
        json!({"arg": ["20240101"]}),
        json!({"arg": ["1999"]}),
        json!({"kwarg": {"match": "a1"}}),
        json!({"kwarg": {"match": "b1"}}),
        json!({"arg": ["a", "x"], "kwarg": {}}),
        json!({"arg": [5, "x"], "kwarg": {"match": "z"}}),
    ];
    let mut spec = Vec::new();
    for _ in 0..200 {
        spec.push(json!({
            "auth_list": rng.subset(&spec_pool, 3),
            "fun": rng.pick(&funs),
            "args": rng.pick(&spec_args),
            "form": rng.pick(&["runner", "wheel"]),
        }));
    }

    // auth_check: function regexes, target-limited entries, argument
    // conditions, compound jobs, find_job's whitelist, peer validation.
    let auth_pool = [
        json!("test.*"),
        json!("test.ping"),
        json!("cmd\\.run"),
        json!({"a1": ["test.ping"]}),
        json!({"a*": ["test.echo", {"cmd.run": {"args": ["ls.*"]}}]}),
        json!({"L@a1,b1": ["test.*"]}),
        json!({"b*": [{"cmd.run": {"kwargs": {"cwd": "/tmp"}}}]}),
        json!({"web1": "test.ping"}),
        json!({"E@a\\d": [{"test.arg": [{"args": [null, "two"]}]}]}),
        json!({"*": ["saltutil.*"]}),
    ];
    let calls = [
        (json!("test.ping"), json!([])),
        (json!("test.echo"), json!(["hi"])),
        (json!("cmd.run"), json!(["ls -l"])),
        (json!("cmd.run"), json!(["rm -rf /"])),
        (json!("cmd.run"), json!(["ls", {"__kwarg__": true, "cwd": "/tmp"}])),
        (json!("cmd.run"), json!(["ls", {"__kwarg__": true, "cwd": "/etc"}])),
        (json!("test.arg"), json!(["one", "two"])),
        (json!("test.arg"), json!([1])),
        (json!("saltutil.find_job"), json!(["20240101010101010101"])),
        (json!(["test.ping", "test.echo"]), json!([[], ["hi"]])),
        (json!(["test.ping", "cmd.run"]), json!([[], ["ls"]])),
        (json!("state.apply"), json!([])),
    ];
    let targets = [
        ("a1", "glob"),
        ("a2", "glob"),
        ("a*", "glob"),
        ("*", "glob"),
        ("b1", "glob"),
        ("web1", "glob"),
        ("nomatch", "glob"),
        ("a1,b1", "list"),
        ("a\\d", "pcre"),
        ("a1 or b1", "compound"),
    ];
    let mut auth = Vec::new();
    for _ in 0..250 {
        let (fun, arg) = rng.pick(&calls);
        let (tgt, tgt_type) = rng.pick(&targets);
        let tgt = if *tgt_type == "list" {
            json!(tgt.split(',').collect::<Vec<_>>())
        } else {
            json!(tgt)
        };
        auth.push(json!({
            "auth_list": rng.subset(&auth_pool, 3),
            "fun": fun,
            "arg": arg,
            "tgt": tgt,
            "tgt_type": tgt_type,
            "validate": rng.next().is_multiple_of(3),
            "whitelist": if rng.next().is_multiple_of(2) { json!(["saltutil.find_job"]) } else { json!([]) },
        }));
    }

    let request = json!({"conf": conf.display().to_string(), "fill": fill, "spec": spec, "auth": auth});
    let py = python(&request);

    let cfg = brine_config::MasterConfig::load(&conf_dir).unwrap();
    let ck = brine_targeting::CkMinions::from_config(&cfg, ACCEPTED.iter().map(|s| s.to_string()).collect());
    let mut checked = 0;
    for (i, c) in fill.iter().enumerate() {
        let groups: Vec<String> = c["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap().to_string())
            .collect();
        let ours = fill_auth_list(
            c["provider"].as_object().unwrap(),
            c["name"].as_str().unwrap(),
            &groups,
            c["permissive"].as_bool().unwrap(),
        );
        assert_eq!(Json::Array(ours), py["fill"][i], "fill_auth_list case {i}: {c}");
        checked += 1;
    }
    for (i, c) in spec.iter().enumerate() {
        let ours = match spec_check(
            c["auth_list"].as_array().unwrap(),
            c["fun"].as_str().unwrap(),
            &from_json(&c["args"]),
            c["form"].as_str().unwrap(),
        ) {
            Spec::Allowed => json!(true),
            Spec::Denied => json!(false),
            Spec::Syntax => json!("syntax"),
        };
        assert_eq!(ours, py["spec"][i], "spec_check case {i}: {c}");
        checked += 1;
    }
    for (i, c) in auth.iter().enumerate() {
        let whitelist: Vec<&str> = c["whitelist"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        let tgt = from_json(&c["tgt"]);
        let target = Target {
            tgt: &tgt,
            tgt_type: c["tgt_type"].as_str().unwrap(),
            minions: None,
        };
        let ours = auth_check(
            &ck,
            c["auth_list"].as_array().unwrap(),
            &from_json(&c["fun"]),
            &from_json(&c["arg"]),
            &target,
            c["validate"].as_bool().unwrap(),
            &whitelist,
        );
        assert_eq!(json!(ours), py["auth"][i], "auth_check case {i}: {c}");
        checked += 1;
    }
    assert_eq!(checked, 600);
    // The cases are not all one answer.
    for key in ["spec", "auth"] {
        let answers = py[key].as_array().unwrap();
        assert!(
            answers.contains(&json!(true)) && answers.contains(&json!(false)),
            "{key}: {answers:?}"
        );
    }
}

fn python(request: &Json) -> Json {
    let out = brine_testutil::salt_python("3007.17", PY, request.to_string().as_bytes());
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("bad python output ({e}): {}", String::from_utf8_lossy(&out)))
}
