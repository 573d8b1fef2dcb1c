//! Jobs end to end with real salt-minions 3006.30 and 3007.17 and Brine's
//! `salt` CLI: publish on 4506, publication on 4505, returns on 4506, job
//! cache and event bus.

mod common;

use std::time::Duration;

use brine_proto::Value;
use common::minion::{run_cli, venv, Minion, READY};
use common::*;

fn salt(env: &Env, args: &[&str]) -> (String, String, i32) {
    run_cli(&env.conf_dir, "salt", args)
}

#[test]
fn jobs_reach_real_minions_and_come_back() {
    // The master trims every event it fires at its own max_event_size (1
    // MiB), returns included, as Salt's does: raised for the 3 MB return.
    let env = Env::with_extra(3, "auto_accept: True\nmax_event_size: 10485760\n");
    let mut m = env.start();
    m.wait_ready();
    let a = Minion::start(&env, "3006.30", "j3006", "");
    let mut b = Minion::start(&env, "3007.17", "j3007", "");
    // A minion trims job returns above its own max_event_size (1 MiB) on
    // its internal event bus; raise it for the 3 MB return below.
    let c = Minion::start(&env, "3007.17", "k3007", "max_event_size: 10485760\n");
    for x in [&a, &b, &c] {
        assert!(x.wait_log(READY, Duration::from_secs(90)), "{}", x.log());
    }
    // Give the SUB sockets a moment to connect (as Salt minions do).
    std::thread::sleep(Duration::from_secs(2));

    let (out, err, code) = salt(&env, &["j*", "test.ping", "-t", "30"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("j3006:\n    True") && out.contains("j3007:\n    True"),
        "{out}{err}"
    );

    let (out, err, code) = salt(&env, &["*", "cmd.run", "echo hi", "-t", "30"]);
    assert_eq!(code, 0, "{out}{err}");
    for id in ["j3006", "j3007", "k3007"] {
        assert!(out.contains(&format!("{id}:\n    hi\n")), "{out}");
    }
    let (out, err, code) = salt(&env, &["-L", "j3007", "cmd.run", "echo hi", "-t", "30"]);
    assert_eq!((code, out.as_str()), (0, "j3007:\n    hi\n"), "{err}");

    // Arguments round-trip with their types, through both minion versions.
    for id in ["j3006", "j3007"] {
        let args = [
            "1",
            "2.5",
            "[1, two]",
            "{a: 1, b: [x]}",
            "héllo ☃",
            "!!binary aGk=",
            "kw=3",
            "f=0.5",
            "d={k: v}",
            "u=ünï",
        ];
        let mut cmd = vec!["-L", id, "test.arg"];
        cmd.extend(args);
        cmd.extend(["--out", "json", "-t", "30"]);
        let (out, err, code) = salt(&env, &cmd);
        assert_eq!(code, 0, "{out}{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        // bytes (b"hi") come back as bytes and print as their text
        let want_args = serde_json::json!([1, 2.5, [1, "two"], {"a": 1, "b": ["x"]}, "héllo ☃", "hi"]);
        assert_eq!(v[id]["args"], want_args, "{id}");
        let kw = &v[id]["kwargs"];
        assert_eq!(kw["kw"], serde_json::json!(3), "{id}");
        assert_eq!(kw["f"], serde_json::json!(0.5), "{id}");
        assert_eq!(kw["d"], serde_json::json!({"k": "v"}), "{id}");
        assert_eq!(kw["u"], serde_json::json!("ünï"), "{id}");
    }

    // Targets select the right minions (glob, pcre, list).
    let ids = |out: &str| -> Vec<String> {
        let mut v: Vec<String> = out
            .lines()
            .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
            .map(|l| l.trim_end_matches(':').to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        ids(&salt(&env, &["*", "test.ping", "-t", "30"]).0),
        ["j3006", "j3007", "k3007"]
    );
    assert_eq!(ids(&salt(&env, &["j*", "test.ping", "-t", "30"]).0), ["j3006", "j3007"]);
    assert_eq!(
        ids(&salt(&env, &["-E", ".*7$", "test.ping", "-t", "30"]).0),
        ["j3007", "k3007"]
    );
    assert_eq!(
        ids(&salt(&env, &["-L", "j3006,k3007", "test.ping", "-t", "30"]).0),
        ["j3006", "k3007"]
    );

    // A 3 MB return.
    let (out, err, code) = salt(
        &env,
        &["k3007", "cmd.run", "printf %03000000d 0", "--out", "json", "-t", "60"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["k3007"].as_str().map(str::len),
        Some(3_000_000),
        "{}",
        &out[..out.len().min(300)]
    );

    // --out yaml
    let (out, _, code) = salt(
        &env,
        &["-L", "j3006", "test.arg", "1", "a b", "--out", "yaml", "-t", "30"],
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("j3006:\n  args:\n  - 1\n  - a b\n"), "{out}");

    // --async: the jid now, the returns in the job cache later.
    let (out, _, code) = salt(&env, &["j3006", "test.ping", "--async"]);
    assert_eq!(code, 0);
    let jid = out
        .trim()
        .strip_prefix("Executed command with job ID: ")
        .expect(&out)
        .to_string();
    let h = hex::encode(openssl::sha::sha256(jid.as_bytes()));
    let dir = env.root().join("cache/jobs").join(&h[..2]).join(&h[2..]);
    assert!(
        wait_until(Duration::from_secs(30), || dir.join("j3006/return.p").exists()),
        "no return for {jid}"
    );
    let ret = Value::decode(&std::fs::read(dir.join("j3006/return.p")).unwrap()).unwrap();
    assert_eq!(ret.get("return"), Some(&Value::Bool(true)));
    let load = Value::decode(&std::fs::read(dir.join(".load.p")).unwrap()).unwrap();
    assert_eq!(load.get("fun").and_then(Value::as_str), Some("test.ping"));
    assert_eq!(read(&dir.join("jid")), jid);

    // `salt-call` sends its own return to the master with the jid "req":
    // as Salt's master, Brine gives it a new jid, a glob target naming the
    // minion, and stores load and return.
    for x in [&a, &b] {
        let out = std::process::Command::new(venv(&x.version).join("bin/salt-call"))
            .arg("-c")
            .arg(&x.conf_dir)
            .args(["test.echo", "from-salt-call", "--out", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let id = x.id.as_str();
        let found = wait_until(Duration::from_secs(20), || {
            find_job(&env, "test.echo", id).is_some_and(|(_, dir)| dir.join(id).join("return.p").exists())
        });
        assert!(found, "no job of {id}'s salt-call in the job cache");
        let (load, dir) = find_job(&env, "test.echo", id).unwrap();
        let jid = load.get("jid").and_then(Value::as_str).unwrap().to_string();
        assert!(brine_cache::jobs::is_jid(&jid), "{load:?}");
        assert_eq!(load.get("tgt_type").and_then(Value::as_str), Some("glob"));
        assert_eq!(
            load.get("arg"),
            Some(&Value::Array(vec![Value::from("from-salt-call")]))
        );
        let ret = Value::decode(&std::fs::read(dir.join(id).join("return.p")).unwrap()).unwrap();
        assert_eq!(ret.get("return").and_then(Value::as_str), Some("from-salt-call"));
    }
    assert!(
        !read(&env.log_file()).contains("invalid jid"),
        "{}",
        read(&env.log_file())
    );

    // No match, and a minion that does not answer.
    let (_, err, code) = salt(&env, &["nomatch*", "test.ping"]);
    assert_eq!((code, err.trim()), (2, "ERROR: No return received"));
    b.stop();
    let (out, err, code) = salt(&env, &["j3007", "test.ping", "-t", "3"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("j3007:\n    Minion did not return. [No response]"),
        "{out}"
    );
    m.remember_tree();
}

/// The job in the job cache whose load has `fun` and targets `tgt`:
/// its load and its directory.
fn find_job(env: &Env, fun: &str, tgt: &str) -> Option<(Value, std::path::PathBuf)> {
    let jobs = env.root().join("cache/jobs");
    for top in std::fs::read_dir(jobs).ok()?.flatten() {
        for dir in std::fs::read_dir(top.path()).ok()?.flatten() {
            let Ok(bytes) = std::fs::read(dir.path().join(".load.p")) else {
                continue;
            };
            let Ok(load) = Value::decode(&bytes) else {
                continue;
            };
            if load.get("fun").and_then(Value::as_str) == Some(fun)
                && load.get("tgt").and_then(Value::as_str) == Some(tgt)
            {
                return Some((load, dir.path()));
            }
        }
    }
    None
}

#[test]
fn a_rejected_minion_never_runs_a_job() {
    let env = Env::with_extra(3, "autoreject_file: AUTOREJECT\nauto_accept: True\n");
    let autoreject = env.root().join("autoreject.conf");
    std::fs::write(&autoreject, "bad*\n").unwrap();
    std::fs::set_permissions(&autoreject, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let master = env.conf_dir.join("master");
    std::fs::write(
        &master,
        read(&master).replace("AUTOREJECT", &autoreject.display().to_string()),
    )
    .unwrap();
    let mut m = env.start();
    m.wait_ready();
    let good = Minion::start(&env, "3007.17", "good1", "");
    let bad = Minion::start(&env, "3007.17", "bad1", "");
    assert!(good.wait_log(READY, Duration::from_secs(90)), "{}", good.log());
    assert!(
        bad.wait_log("has rejected this minion's public key", Duration::from_secs(90)),
        "{}",
        bad.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let (out, err, code) = salt(&env, &["*", "cmd.run", "touch ran-here", "-t", "30"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("good1:") && !out.contains("bad1"), "{out}");
    assert!(!bad.log().contains("Executing command"), "{}", bad.log());
    assert!(bad.master_pub().is_none());
    m.remember_tree();
}
