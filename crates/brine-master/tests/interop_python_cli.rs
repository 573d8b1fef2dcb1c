//! Python Salt's own CLIs (`salt`, `salt-key`, `salt-run`) against Brine,
//! compared with what they print against a Python salt-master in the same
//! test: same minion ids (real salt-minions), same commands, outputs equal
//! once jids and timings are masked (Python 3006.30 and 3007.17).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::minion::{venv, Minion, READY};
use common::pysalt::{mask, py, Side};
use common::*;

/// `state.event pretty=True` output as tag → pretty-printed data (the
/// runner's own return line dropped).
fn events(out: &str) -> std::collections::BTreeMap<String, String> {
    let mut map = std::collections::BTreeMap::new();
    let mut cur: Option<(String, String)> = None;
    for line in out.lines() {
        if let Some((tag, rest)) = line.split_once('\t') {
            if let Some((t, body)) = cur.take() {
                map.insert(t, body);
            }
            cur = Some((tag.to_string(), format!("{rest}\n")));
        } else if let Some((_, body)) = cur.as_mut() {
            if line.starts_with(' ') || line == "}" {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    if let Some((t, body)) = cur {
        map.insert(t, body);
    }
    map
}

/// One side of the comparison: a master (Brine or Python) with two real
/// minions of the CLI version, `a1` (grain role: web) and `a2` (role: db).
fn side(brine: bool, version: &'static str, brine_extra: &str) -> Side {
    // `auto` eauth for the `runner`/`wheel` commands the CLIs send to the
    // master with --eauth; user `nobody` may only run manage functions.
    let common = "auto_accept: True\nexternal_auth:\n  auto:\n    brine:\n      - '@runner'\n      - '@wheel'\n    nobody:\n      - '@manage'\n";
    Side::start(brine, version, common, brine_extra, "", |_| {})
}

fn both(cmds: &[(&str, Vec<&str>)], brine: &Side, python: &Side, check: impl Fn(&str, &str, &str, &str)) {
    for (tool, args) in cmds {
        let (bo, be, bc) = py(&brine.env, brine.version, tool, args);
        let (po, pe, pc) = py(&python.env, python.version, tool, args);
        let what = format!("{tool} {}", args.join(" "));
        assert_eq!(bc, pc, "{what}: exit codes differ\nbrine: {bo}{be}\npython: {po}{pe}");
        eprintln!("== {what}\n-- brine:\n{}\n-- python:\n{}", mask(&bo), mask(&po));
        check(&what, &mask(&bo), &mask(&po), &be);
    }
}

fn same(what: &str, brine: &str, python: &str, err: &str) {
    assert_eq!(brine, python, "{what}: output differs (brine stderr: {err})");
}

/// Same lines in any order (returns arrive in either order).
fn same_lines(what: &str, brine: &str, python: &str, err: &str) {
    let sort = |s: &str| {
        let mut v: Vec<String> = s.lines().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(
        sort(brine),
        sort(python),
        "{what}: output differs (brine stderr: {err})"
    );
}

#[test]
fn python_3007_cli_prints_the_same_against_brine_and_python_salt() {
    compare("3007.17", "");
}

/// 3006.26+ CLIs read the master event bus with a length prefix on each
/// publication: Brine's `event_publisher_length_prefix: True` (a
/// per-deployment setting, as the subscribers never speak).
#[test]
fn python_3006_cli_prints_the_same_against_brine_and_python_salt() {
    compare("3006.30", "event_publisher_length_prefix: True\n");
}

fn compare(version: &'static str, brine_extra: &str) {
    let mut brine = side(true, version, brine_extra);
    let mut python = side(false, version, "");

    // Ids sort, outputs are per-minion blocks: compare as JSON/sorted lines.
    both(
        &[
            ("salt", vec!["*", "test.ping", "--out", "json", "--static", "-t", "30"]),
            (
                "salt",
                vec![
                    "-L", "a1,a2", "cmd.run", "echo hi", "--out", "json", "--static", "-t", "30",
                ],
            ),
            ("salt", vec!["a1", "test.arg", "1", "two", "k=v", "-t", "30"]),
            ("salt", vec!["nomatch*", "test.ping", "-t", "5"]),
            // Grain targets resolve on the master from the data cache: a
            // greedy master would expect a2 too and print it as silent.
            (
                "salt",
                vec!["-G", "role:web", "test.ping", "--out", "json", "--static", "-t", "30"],
            ),
            (
                "salt",
                vec!["-G", "role:*", "test.ping", "--out", "json", "--static", "-t", "30"],
            ),
            (
                "salt",
                vec!["-P", "role:^d", "test.ping", "--out", "json", "--static", "-t", "30"],
            ),
            ("salt", vec!["-G", "role:mail", "test.ping", "-t", "5"]),
            ("salt", vec!["-I", "role:web", "test.ping", "-t", "5"]),
        ],
        &brine,
        &python,
        |what, b, p, e| {
            if what.contains("--out json") {
                let bj: serde_json::Value = serde_json::from_str(b).unwrap_or_else(|x| panic!("{what}: {x}: {b}{e}"));
                let pj: serde_json::Value = serde_json::from_str(p).unwrap_or_else(|x| panic!("{what}: {x}: {p}"));
                assert_eq!(bj, pj, "{what}");
            } else {
                same(what, b, p, e)
            }
        },
    );
    both(
        &[
            ("salt", vec!["*", "test.ping", "-t", "30"]),
            ("salt", vec!["-v", "*", "test.ping", "-t", "30"]),
            ("salt-run", vec!["manage.up", "timeout=10"]),
            ("salt-run", vec!["manage.down", "timeout=10"]),
            ("salt-run", vec!["manage.status", "timeout=10"]),
            ("salt-run", vec!["jobs.active"]),
        ],
        &brine,
        &python,
        same_lines,
    );
    both(
        &[("salt-key", vec!["-L"]), ("salt-key", vec!["-f", "a1"])],
        &brine,
        &python,
        |w, b, p, e| {
            // Fingerprints differ (different keys per side); the shape must not.
            let fp = regex::Regex::new(r"([0-9a-f]{2}:){31}[0-9a-f]{2}").unwrap();
            same(w, &fp.replace_all(b, "<fp>"), &fp.replace_all(p, "<fp>"), e)
        },
    );

    // Brine's own `salt` reads the bus in either framing (3006 side:
    // length-prefixed).
    let out = Command::new(common::minion::brine_bin("salt"))
        .arg("-c")
        .arg(&brine.env.conf_dir)
        .args(["*", "test.ping", "-t", "30"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("a1:\n    True") && text.contains("a2:\n    True"),
        "brine salt: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // --async prints the job id; the job then shows in the job cache
    // through salt-run jobs.lookup_jid.
    for s in [&brine, &python] {
        let (out, err, code) = py(&s.env, s.version, "salt", &["--async", "*", "test.ping"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(mask(&out).contains("Executed command with job ID: <jid>"), "{out}{err}");
    }
    let jid_of = |s: &Side| {
        let (out, err, code) = py(&s.env, s.version, "salt", &["--async", "a1", "test.echo", "hello"]);
        assert_eq!(code, 0, "{out}{err}");
        let jid = jid_in(&out);
        std::thread::sleep(Duration::from_secs(5));
        jid
    };
    let (bj, pj) = (jid_of(&brine), jid_of(&python));
    let (bo, be, bc) = py(&brine.env, brine.version, "salt-run", &["jobs.lookup_jid", &bj]);
    let (po, pe, pc) = py(&python.env, python.version, "salt-run", &["jobs.lookup_jid", &pj]);
    assert_eq!(
        (bc, mask(&bo)),
        (pc, mask(&po)),
        "jobs.lookup_jid\nbrine: {be}\npython: {pe}"
    );
    assert!(bo.contains("hello"), "{bo}{be}");

    // The same lookups sent to the master (`runner` command, --eauth).
    let (bo, be, bc) = py(&brine.env, brine.version, "salt-run", &eauth(&["jobs.lookup_jid", &bj]));
    let (po, pe, pc) = py(
        &python.env,
        python.version,
        "salt-run",
        &eauth(&["jobs.lookup_jid", &pj]),
    );
    assert_eq!(
        (bc, mask(&bo)),
        (pc, mask(&po)),
        "eauth jobs.lookup_jid\nbrine: {be}\npython: {pe}"
    );
    assert!(bo.contains("hello"), "{bo}{be}");
    for args in [
        &["jobs.list_job", bj.as_str()] as &[&str],
        &["jobs.lookup_jid", bj.as_str(), "--out", "json"],
    ] {
        let (b2, e2, _) = py(&brine.env, brine.version, "salt-run", &eauth(args));
        let local = py(&brine.env, brine.version, "salt-run", args);
        assert_eq!(
            mask(&b2),
            mask(&local.0),
            "{args:?} via the master vs locally: {e2}{}",
            local.1
        );
    }
    let eauth_cmds: Vec<(&str, Vec<&str>)> = vec![
        ("salt-run", eauth(&["manage.up", "timeout=10"])),
        ("salt-run", eauth(&["manage.status", "timeout=10"])),
        ("salt-key", eauth(&["-L"])),
        ("salt-key", eauth(&["-L", "--out", "json"])),
        ("salt-key", eauth(&["-l", "acc"])),
        ("salt-key", eauth(&["-f", "a1"])),
        ("salt-key", eauth(&["-F"])),
        // Refused by the ACL / the eauth check on both masters.
        ("salt-run", as_user("nobody", &["jobs.list_jobs"])),
        ("salt-key", as_user("nobody", &["-L"])),
        ("salt-run", as_user("stranger", &["manage.up"])),
    ];
    both(&eauth_cmds, &brine, &python, |w, b, p, e| {
        let fp = regex::Regex::new(r"([0-9a-f]{2}:){31}[0-9a-f]{2}").unwrap();
        same_lines(w, &fp.replace_all(b, "<fp>"), &fp.replace_all(p, "<fp>"), e)
    });
    // A runner function Brine's master does not have fails at once with
    // Salt's text naming it, instead of leaving the CLI waiting.
    let t0 = std::time::Instant::now();
    let (bo, be, _) = py(
        &brine.env,
        brine.version,
        "salt-run",
        &eauth(&["jobs.list_jobs_filter"]),
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "jobs.list_jobs_filter over the master took {:?}",
        t0.elapsed()
    );
    assert!(
        format!("{bo}{be}").contains("'jobs.list_jobs_filter' is not available."),
        "{bo}{be}"
    );

    // Publishing by eauth: user `brine` may run runners and wheel
    // functions only, so the publish fails Salt's ACL check with its
    // words, as on Python's master.
    let t0 = std::time::Instant::now();
    let args = eauth(&["*", "test.ping", "-t", "10"]);
    let (bo, be, bc) = py(&brine.env, brine.version, "salt", &args);
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "eauth publish took {:?}",
        t0.elapsed()
    );
    let (po, pe, pc) = py(&python.env, python.version, "salt", &args);
    assert_eq!((bc, &bo), (pc, &po), "eauth publish\nbrine: {be}\npython: {pe}");
    assert!(
        format!("{bo}{be}").contains("Authorization error occurred."),
        "{bo}{be}"
    );

    let (bo, be, bc) = py(
        &brine.env,
        brine.version,
        "salt-run",
        &["jobs.list_jobs", "--out", "json"],
    );
    assert_eq!(bc, 0, "{bo}{be}");
    let v: serde_json::Value = serde_json::from_str(&bo).unwrap_or_else(|e| panic!("{e}: {bo}{be}"));
    let funs: Vec<&str> = v
        .as_object()
        .unwrap()
        .values()
        .filter_map(|j| j["Function"].as_str())
        .collect();
    assert!(funs.contains(&"test.echo") && funs.contains(&"test.ping"), "{bo}");

    // The event bus as `salt-run state.event` shows it: same tags and data.
    let watch = |s: &Side| {
        Command::new(venv(s.version).join("bin/salt-run"))
            .arg("-c")
            .arg(&s.env.conf_dir)
            .args(["state.event", "pretty=True", "count=4"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (bw, pw) = (watch(&brine), watch(&python));
    std::thread::sleep(Duration::from_secs(4));
    for s in [&brine, &python] {
        let (out, err, code) = py(&s.env, s.version, "salt", &["a1", "test.echo", "evt", "-t", "30"]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let collect = |mut c: Child| {
        let pid = c.id() as i32;
        if !wait_until(Duration::from_secs(12), || !alive(pid)) {
            let _ = c.kill();
        }
        let out = c.wait_with_output().unwrap();
        let stamp = regex::Regex::new(r#""_stamp": "[^"]*""#).unwrap();
        let ts = regex::Regex::new(r#""ts": \d+"#).unwrap();
        let text = mask(&String::from_utf8_lossy(&out.stdout));
        let text = stamp.replace_all(&text, r#""_stamp": "<time>""#);
        ts.replace_all(&text, r#""ts": <ts>"#).into_owned()
    };
    let (be, pe) = (collect(bw), collect(pw));
    eprintln!("== state.event\n-- brine:\n{be}\n-- python:\n{pe}");
    let (mut bev, pev) = (events(&be), events(&pe));
    assert!(bev.contains_key("salt/job/<jid>/ret/a1"), "{be}");
    if version.starts_with("3006") {
        // Brine fires salt/job/<jid>/publish as 3007 does; a 3006 master
        // does not (docs/compatibility.md). Everything else is the same.
        assert!(bev.remove("salt/job/<jid>/publish").is_some(), "{be}");
    }
    assert_eq!(bev, pev, "salt-run state.event pretty=True");

    // A minion that went away: manage.down names it on both masters.
    brine.minions[1].stop();
    python.minions[1].stop();
    both(
        &[
            ("salt-run", vec!["manage.down", "timeout=3", "gather_job_timeout=3"]),
            ("salt-run", vec!["manage.status", "timeout=3", "gather_job_timeout=3"]),
        ],
        &brine,
        &python,
        |what, b, p, e| {
            same_lines(what, b, p, e);
            assert!(b.contains("a2"), "{what}: {b}");
        },
    );
    both(
        &[
            ("salt-run", eauth(&["manage.down", "timeout=3", "gather_job_timeout=3"])),
            ("salt-key", eauth(&["-d", "a2", "-y"])),
            ("salt-key", eauth(&["-L"])),
        ],
        &brine,
        &python,
        |what, b, p, e| {
            same_lines(what, b, p, e);
            if what.contains("-d a2") {
                assert!(b.contains("Key for minion a2 deleted."), "{what}: {b}");
            }
        },
    );
}

/// `args` sent through the master with `auto` eauth as user `brine`.
fn eauth<'a>(args: &[&'a str]) -> Vec<&'a str> {
    as_user("brine", args)
}

fn as_user<'a>(user: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--eauth", "auto", "--username", user, "--password", "x"];
    v.extend_from_slice(args);
    v
}

/// Python's salt-key edits Brine's pki_dir while Brine runs, and Brine
/// acts on it at once: a pending minion accepted with `salt-key -a` comes
/// up; `salt-key -d` (its .dfn) makes Brine rotate the AES key.
#[test]
fn python_salt_key_drives_a_running_brine() {
    for (version, id, extra) in [
        ("3006.30", "k3006", "event_publisher_length_prefix: True\n"),
        ("3007.17", "k3007", ""),
    ] {
        let env = Env::with_extra(2, &format!("loop_interval: 1\n{extra}"));
        let mut m = env.start();
        m.wait_ready();
        let minion = Minion::start(&env, version, id, "");
        assert!(
            minion.wait_log("The Salt Master has cached the public key", Duration::from_secs(90)),
            "{}",
            minion.log()
        );
        let (out, err, code) = py(&env, version, "salt-key", &["-L"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains(&format!("Unaccepted Keys:\n{id}\n")) || out.contains(&format!("{id}\nRejected")),
            "{out}"
        );
        let (out, err, code) = py(&env, version, "salt-key", &["-a", id, "-y"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(minion.wait_log(READY, Duration::from_secs(90)), "{}", minion.log());
        let (out, err, code) = py(&env, version, "salt", &[id, "test.ping", "-t", "30"]);
        assert_eq!(
            (code, out.as_str()),
            (0, format!("{id}:\n    True\n").as_str()),
            "{err}"
        );
        let dfn = env.root().join("cache/.dfn");
        let (out, err, code) = py(&env, version, "salt-key", &["-d", id, "-y"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            wait_until(Duration::from_secs(90), || !dfn.exists()),
            "Brine's Maintenance did not consume {version}'s .dfn"
        );
        assert!(!env.root().join("pki/minions").join(id).exists());
        drop(minion);
        m.signal(nix::sys::signal::Signal::SIGTERM);
        assert!(m.wait_exit(Duration::from_secs(10)).is_some());
    }
}
