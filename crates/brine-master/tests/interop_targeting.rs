//! Targeting and the mine with real salt-minions 3006.30 and 3007.17 on
//! Brine: compound, grain, nodegroup and ipcidr targets name exactly the
//! minions that answer (the CLI returns as soon as the expected ones
//! have), and `mine.send` / `mine.get` / `mine.delete` / `mine.flush`
//! work between minions, with 3007's `allow_tgt`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::minion::{brine_bin, venv, Minion, READY};
use common::*;
use serde_json::Value as Json;

const MASTER_EXTRA: &str = "auto_accept: True
nodegroups:
  webs: 'G@roles:web'
  dbs: 'G@roles:db'
  both: 'N@webs and N@dbs'
  pair: 't3006 t3007'
";

/// Run a `salt` CLI (Brine's, or Python's `version`: 3007, as Python's
/// 3006 CLI needs `event_publisher_length_prefix`, see interop_python_cli) with `--out json`:
/// the returns as one JSON object, how long it took, and what it printed.
fn salt(env: &Env, python: Option<&str>, args: &[&str]) -> (Json, Duration, String) {
    let bin = match python {
        Some(v) => venv(v).join("bin/salt"),
        None => brine_bin("salt"),
    };
    let start = Instant::now();
    let out = Command::new(bin)
        .arg("-c")
        .arg(&env.conf_dir)
        .args(args)
        .args(["--out", "json", "-t", "30"])
        .output()
        .unwrap();
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // One JSON document per minion (`--static` sends Python's 3006 CLI
    // into its batch code): merged into one object.
    let mut v = serde_json::Map::new();
    for doc in serde_json::Deserializer::from_str(&stdout).into_iter::<Json>() {
        match doc {
            Ok(Json::Object(o)) => v.extend(o),
            _ => break,
        }
    }
    let v = Json::Object(v);
    (v, took, format!("{stdout}{stderr}"))
}

fn ids(v: &Json) -> Vec<String> {
    let mut out: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    out.sort();
    out
}

#[test]
fn targets_and_the_mine_with_real_minions() {
    let env = Env::with_extra(2, MASTER_EXTRA);
    let mut m = env.start();
    m.wait_ready();
    let a = Minion::start(&env, "3006.30", "t3006", "grains:\n  roles: [web]\n");
    let b = Minion::start(
        &env,
        "3007.17",
        "t3007",
        "grains:\n  roles: [db]\nmine_functions:\n  test.ping: []\n",
    );
    let c = Minion::start(&env, "3007.17", "u3007", "grains:\n  roles: [web, db]\n");
    for x in [&a, &b, &c] {
        assert!(x.wait_log(READY, Duration::from_secs(120)), "{}", x.log());
    }
    std::thread::sleep(Duration::from_secs(2));

    // (CLI, target args, the minions that must answer)
    let cases: Vec<(Option<&str>, Vec<&str>, Vec<&str>)> = vec![
        (None, vec!["-C", "G@roles:web and not L@u3007"], vec!["t3006"]),
        (None, vec!["-C", "G@roles:db or t3006"], vec!["t3006", "t3007", "u3007"]),
        (None, vec!["-C", "( t* or u* ) and not G@roles:web"], vec!["t3007"]),
        (None, vec!["-C", "E@^t\\d+ and G@roles:*"], vec!["t3006", "t3007"]),
        (None, vec!["-G", "roles:db"], vec!["t3007", "u3007"]),
        (Some("3007.17"), vec!["-N", "webs"], vec!["t3006", "u3007"]),
        (Some("3007.17"), vec!["-N", "both"], vec!["u3007"]),
        (Some("3007.17"), vec!["-N", "pair"], vec!["t3006", "t3007"]),
        (
            Some("3007.17"),
            vec!["-S", "127.0.0.1"],
            vec!["t3006", "t3007", "u3007"],
        ),
        (
            Some("3007.17"),
            vec!["-S", "127.0.0.0/8"],
            vec!["t3006", "t3007", "u3007"],
        ),
        (None, vec!["-C", "S@127.0.0.0/8 and G@roles:db"], vec!["t3007", "u3007"]),
        (Some("3007.17"), vec!["-C", "N@webs and not N@dbs"], vec!["t3006"]),
    ];
    for (cli, tgt, want) in &cases {
        let mut args = tgt.clone();
        args.push("test.ping");
        let (v, took, out) = salt(&env, *cli, &args);
        assert_eq!(ids(&v), *want, "{cli:?} {tgt:?}: {out}");
        // Everyone expected answered: no wait for the timeout.
        assert!(took < Duration::from_secs(20), "{cli:?} {tgt:?} took {took:?}: {out}");
    }
    let (_, _, out) = salt(&env, Some("3007.17"), &["-S", "10.255.255.0/24", "test.ping"]);
    assert!(out.contains("No minions matched the target"), "{out}");

    // The mine: t3007 sent test.ping at start (mine_functions).
    let mine_get = |who: &str, args: &[&str]| -> Json {
        let mut a = vec!["-L", who, "mine.get"];
        a.extend(args);
        salt(&env, None, &a).0[who].clone()
    };
    assert!(
        wait_until(Duration::from_secs(30), || mine_get("t3006", &["*", "test.ping"])
            == serde_json::json!({"t3007": true})),
        "{}",
        mine_get("t3006", &["*", "test.ping"])
    );
    // mine.send from both versions; mine.get by compound and grain.
    for who in ["t3006", "u3007"] {
        let (v, _, out) = salt(
            &env,
            None,
            &["-L", who, "mine.send", "roles", "mine_function=grains.get", "roles"],
        );
        assert_eq!(v[who], Json::Bool(true), "{out}");
    }
    let want = serde_json::json!({"t3006": ["web"], "u3007": ["web", "db"]});
    assert!(
        wait_until(Duration::from_secs(10), || mine_get(
            "t3007",
            &["G@roles:web", "roles", "compound"]
        ) == want),
        "{}",
        mine_get("t3007", &["G@roles:web", "roles", "compound"])
    );
    assert_eq!(
        mine_get("t3007", &["roles:db", "roles", "grain"]),
        serde_json::json!({"u3007": ["web", "db"]})
    );
    assert_eq!(
        mine_get("t3006", &["*", "roles,test.ping"]),
        serde_json::json!({"roles": want, "test.ping": {"t3007": true}})
    );

    // 3007's minion-side ACL: only t3006 may read u3007's secret.
    let (v, _, out) = salt(
        &env,
        None,
        &[
            "-L",
            "u3007",
            "mine.send",
            "secret",
            "mine_function=test.echo",
            "hush",
            "allow_tgt=t3006",
        ],
    );
    assert_eq!(v["u3007"], Json::Bool(true), "{out}");
    assert!(
        wait_until(Duration::from_secs(10), || mine_get("t3006", &["u3007", "secret"])
            == serde_json::json!({"u3007": "hush"})),
        "{}",
        mine_get("t3006", &["u3007", "secret"])
    );
    assert_eq!(mine_get("t3007", &["u3007", "secret"]), serde_json::json!({}));

    // mine.delete and mine.flush.
    let (v, _, out) = salt(&env, None, &["-L", "u3007", "mine.delete", "roles"]);
    assert_eq!(v["u3007"], Json::Bool(true), "{out}");
    assert!(
        wait_until(Duration::from_secs(10), || mine_get("t3007", &["*", "roles"])
            == serde_json::json!({"t3006": ["web"]})),
        "{}",
        mine_get("t3007", &["*", "roles"])
    );
    let (v, _, out) = salt(&env, None, &["-L", "t3006", "mine.flush"]);
    assert_eq!(v["t3006"], Json::Bool(true), "{out}");
    assert!(
        wait_until(Duration::from_secs(10), || mine_get("t3007", &["*", "roles"])
            == serde_json::json!({})),
        "{}",
        mine_get("t3007", &["*", "roles"])
    );
    assert!(
        !env.root().join("cache/minions/t3006/mine.p").exists(),
        "flushed mine still on disk"
    );
}
