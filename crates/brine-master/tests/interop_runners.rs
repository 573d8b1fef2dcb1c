//! Runners on the master. Brine's own `salt-run` against Brine, and
//! Python's `salt-run` against a Python salt-master on the same config,
//! with the same two real minions (3007.17): the same output once jids
//! and times are masked, and the same exit status, for the runner
//! functions operators use every day. Then what only Brine's design
//! shows: a minion's `publish.runner` answered with a single MWorker
//! (the runner runs in a process of its own, not in the worker the
//! minion's own return has to pass through), the runner job's process
//! and its title, `--async`, and the job in the job cache.

mod common;

use std::time::{Duration, Instant};

use common::minion::run_cli;
use common::pysalt::{mask, py, Side};
use common::*;

const VERSION: &str = "3007.17";

fn side(brine: bool, extra: &str) -> Side {
    Side::start(brine, VERSION, extra, "", "", |env| {
        let files = [
            ("srv/salt/top.sls", "base:\n  '*':\n    - common\n"),
            ("srv/salt/common.sls", "hello:\n  test.nop\n"),
            ("srv/salt/sub/thing.txt", "x\n"),
            ("srv/salt/empty/.keep", ""),
            ("srv/pillar/top.sls", "base:\n  'a1':\n    - web\n"),
            ("srv/pillar/web.sls", "tier: frontend\nid_seen: {{ grains['id'] }}\n"),
        ];
        write_tree(
            env,
            &files,
            "file_roots:\n  base:\n    - {r}/srv/salt\npillar_roots:\n  base:\n    - {r}/srv/pillar\n",
        );
    })
}

/// Write `files` under the env's root and add `conf` (`{r}`: the root) to
/// its master config.
fn write_tree(env: &Env, files: &[(&str, &str)], conf: &str) {
    for (path, text) in files {
        let p = env.root().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let path = env.conf_dir.join("master");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&conf.replace("{r}", &env.root().display().to_string()));
    std::fs::write(&path, text).unwrap();
}

/// `salt-run args` on `side`: Brine's salt-run for Brine, Python's for
/// Python.
fn salt_run(s: &Side, brine: bool, args: &[&str]) -> (String, String, i32) {
    if brine {
        run_cli(&s.env.conf_dir, "salt-run", args)
    } else {
        py(&s.env, s.version, "salt-run", args)
    }
}

/// Output lines sorted (minions answer in either order).
fn sorted(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn brine_salt_run_prints_what_python_salt_run_prints() {
    // file_roots and pillar_roots are Salt's defaults under each side's
    // root_dir.
    let brine = side(true, "auto_accept: True\n");
    let python = side(false, "auto_accept: True\n");
    // A job in each job cache to look up.
    let echo = |s: &Side, brine: bool| {
        let (o, e, c) = if brine {
            run_cli(
                &s.env.conf_dir,
                "salt",
                &["*", "test.echo", "hi", "--out", "json", "-v"],
            )
        } else {
            py(
                &s.env,
                s.version,
                "salt",
                &["*", "test.echo", "hi", "--out", "json", "-v"],
            )
        };
        assert_eq!(c, 0, "{o}{e}");
        jid_in(&o)
    };
    let bj = echo(&brine, true);
    let pj = echo(&python, false);

    let cases: Vec<Vec<String>> = [
        vec!["manage.up"],
        vec!["manage.status"],
        vec!["manage.down"],
        vec!["manage.present"],
        vec!["manage.not_present"],
        vec!["manage.versions"],
        vec!["manage.up", "tgt=a1", "--out", "json"],
        vec!["jobs.lookup_jid", "JID"],
        vec!["jobs.lookup_jid", "JID", "--out", "json"],
        vec!["jobs.exit_success", "JID"],
        vec!["jobs.list_job", "JID"],
        vec!["jobs.print_job", "JID"],
        vec!["jobs.list_jobs", "search_function=test.echo"],
        vec!["jobs.list_jobs", "search_target=nobody"],
        vec!["jobs.last_run", "function=test.echo"],
        vec!["cache.grains", "a1", "--out", "json"],
        vec!["cache.pillar", "--out", "json"],
        vec!["cache.mine"],
        vec!["fileserver.envs"],
        vec!["fileserver.file_list"],
        vec!["fileserver.dir_list"],
        vec!["fileserver.file_list", "saltenv=nope"],
        vec!["fileserver.update"],
        vec!["pillar.show_pillar", "a1"],
        vec!["pillar.show_top", "a1"],
        vec!["match.compound_matches", "G@role:web", "a1"],
        vec!["event.send", "brine/test", "data={\"x\": 1}"],
        vec!["cache.clear_pillar", "a2"],
        vec!["cache.pillar", "a2"],
        vec!["salt.cmd", "test.ping"],
        vec!["salt.cmd", "test.echo", "hi"],
        vec!["salt.cmd", "test.arg", "1", "a=b", "--out", "json"],
        vec!["manage.joined"],
        vec![
            "jobs.list_jobs",
            "start_time=2000-01-01",
            "search_function=test.echo",
            "--out",
            "json",
        ],
        vec!["jobs.list_jobs", "end_time=2000-01-01"],
        vec!["nope.fun"],
    ]
    .iter()
    .map(|c| c.iter().map(|s| s.to_string()).collect())
    .collect();
    let mut failed = Vec::new();
    let pid = regex::Regex::new(r#""pid": \d+"#).unwrap();
    for case in cases {
        let args = |jid: &str| -> Vec<String> {
            case.iter()
                .map(|a| if a == "JID" { jid.to_string() } else { a.clone() })
                .collect()
        };
        let (ba, pa) = (args(&bj), args(&pj));
        let ba: Vec<&str> = ba.iter().map(String::as_str).collect();
        let pa: Vec<&str> = pa.iter().map(String::as_str).collect();
        let (bo, be, bc) = salt_run(&brine, true, &ba);
        let (po, pe, pc) = salt_run(&python, false, &pa);
        let what = case.join(" ");
        let mask_root = |s: &str, side: &Side| {
            let s = mask(s).replace(&side.env.root().display().to_string(), "<root>");
            pid.replace_all(&s, "\"pid\": <pid>").into_owned()
        };
        let (bo, po) = (mask_root(&bo, &brine), mask_root(&po, &python));
        eprintln!("== salt-run {what}\n-- brine ({bc}):\n{bo}\n-- python ({pc}):\n{po}");
        if bc != pc || sorted(&bo) != sorted(&po) {
            failed.push(format!(
                "salt-run {what}: exit {bc} vs {pc}\nbrine stderr: {be}\npython stderr: {pe}"
            ));
        }
    }
    assert!(failed.is_empty(), "differences (outputs above):\n{}", failed.join("\n"));
}

#[test]
fn publish_runner_is_answered_by_the_one_mworker_it_asks_and_runs_outside_it() {
    // One MWorker: the runner publishes test.ping to the very minion that
    // asked, whose return has to pass through that same worker.
    let env = Env::with_extra(
        1,
        "auto_accept: True\npeer_run:\n  .*:\n    - manage.up\n    - jobs.list_jobs\n",
    );
    let mut master = env.start();
    master.wait_ready();
    let m = common::minion::Minion::start(&env, VERSION, "p1", "");
    assert!(
        m.wait_log(common::minion::READY, Duration::from_secs(120)),
        "{}",
        m.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    let (code, out) = m.salt_call(&["publish.runner", "manage.up", "--out", "json"]);
    assert_eq!(code, 0, "{out}");
    let ret: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(ret["local"], serde_json::json!(["p1"]), "{out}");
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "publish.runner took {:?}",
        t0.elapsed()
    );

    // The runner job as its own process, titled as Salt titles it, child
    // of the MWorker; gone once it has returned.
    let (o, e, c) = run_cli(&env.conf_dir, "salt-run", &["--async", "manage.up", "timeout=3"]);
    assert_eq!(c, 0, "{o}{e}");
    assert!(
        e.contains("Running in asynchronous mode") && e.contains("salt/run/"),
        "{e}"
    );
    let jid = regex::Regex::new(r"salt/run/(\d{20})").unwrap().captures(&e).unwrap()[1].to_string();
    let title = format!("ProcessFunc(AsyncClientMixin._proc_function, fun=manage.up jid={jid})");
    let mut seen = None;
    for _ in 0..40 {
        seen = descendants(master.pid)
            .into_iter()
            .find(|p| cmdline(*p).contains(&title));
        if seen.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = seen.unwrap_or_else(|| panic!("no process titled {title}"));
    assert_eq!(comm(pid), "salt-master");
    let deadline = Instant::now() + Duration::from_secs(30);
    while descendants(master.pid).contains(&pid) {
        assert!(Instant::now() < deadline, "the runner job's process is still there");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Reaped, not a zombie; the job is in the job cache under the
    // master's id, as Python's jobs.lookup_jid reads it.
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "runner job {pid} left a zombie"
    );
    let (o, e, c) = py(&env, VERSION, "salt-run", &["jobs.list_job", &jid, "--out", "json"]);
    assert_eq!(c, 0, "{o}{e}");
    let job: serde_json::Value = serde_json::from_str(&o).unwrap_or_else(|x| panic!("{x}: {o}{e}"));
    assert_eq!(job["Function"], "runner.manage.up", "{o}");
    let result = job["Result"].as_object().unwrap();
    let (_, ret) = result.iter().next().expect("the runner's return");
    assert_eq!(ret["return"]["return"], serde_json::json!(["p1"]), "{o}");

    // `--jid`: the job runs under the id the caller chose.
    let chosen = "20261206000000000001";
    let (o, e, c) = run_cli(&env.conf_dir, "salt-run", &["--jid", chosen, "event.send", "brine/jid"]);
    assert_eq!((c, o.trim()), (0, "True"), "{e}");
    let (o, e, _) = run_cli(&env.conf_dir, "salt-run", &["jobs.list_job", chosen, "--out", "json"]);
    let job: serde_json::Value = serde_json::from_str(&o).unwrap_or_else(|x| panic!("{x}: {o}{e}"));
    assert_eq!(job["Function"], "runner.event.send", "{o}");
    let (_, e, c) = run_cli(&env.conf_dir, "salt-run", &["--jid", "12", "event.send", "x"]);
    assert_eq!(c, 2, "{e}");
    drop(m);
}

/// The orchestration of the acceptance: a function on every minion, a
/// state on one, a failing step, an `onfail` step that runs and a
/// `require` on the failing step that does not.
fn orchestration_side(brine: bool) -> Side {
    Side::start(brine, VERSION, "", "", "", |env| {
        let files = [
            (
                "srv/salt/orch/deploy.sls",
                "{% set root = opts['root_dir'] %}\n\
                 ping:\n  salt.function:\n    - name: test.ping\n    - tgt: '*'\n\n\
                 deploy:\n  salt.state:\n    - tgt: a1\n    - sls: web\n    - pillar:\n        motd: {{ pillar.get('motd', 'plain') }}\n    - require:\n      - salt: ping\n\n\
                 broken:\n  salt.function:\n    - name: cmd.run\n    - tgt: a2\n    - arg:\n      - 'exit 3'\n\n\
                 cleanup:\n  salt.function:\n    - name: file.touch\n    - tgt: a2\n    - arg:\n      - {{ root }}/a2-cleanup\n    - onfail:\n      - salt: broken\n\n\
                 after-broken:\n  salt.function:\n    - name: file.touch\n    - tgt: a2\n    - arg:\n      - {{ root }}/never\n    - require:\n      - salt: broken\n\n\
                 report:\n  test.succeed_with_changes:\n    - require:\n      - salt: deploy\n",
            ),
            (
                "srv/salt/web.sls",
                "web-file:\n  file.managed:\n    - name: {{ opts['root_dir'] }}/../web-a1\n    - contents: {{ pillar.get('motd', 'none') }}\n",
            ),
        ];
        write_tree(
            env,
            &files,
            "auto_accept: True\nfile_roots:\n  base:\n    - {r}/srv/salt\n",
        );
    })
}

/// An orchestration's JSON return with what differs run to run masked:
/// durations, start times, jids, pids, the side's root.
fn orch_json(out: &str, root: &std::path::Path) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for k in ["duration", "start_time", "__jid__", "jid", "pid"] {
                    if m.contains_key(k) {
                        m.insert(k.to_string(), serde_json::Value::from("<masked>"));
                    }
                }
                m.values_mut().for_each(walk);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let text = mask(out).replace(&root.display().to_string(), "<root>");
    // Minions are named in the order they returned: sorted here.
    let ran_on = regex::Regex::new(r"ran on ([^.]+)\.").unwrap();
    let text = ran_on.replace_all(&text, |c: &regex::Captures| {
        let mut ids: Vec<&str> = c[1].split(", ").collect();
        ids.sort();
        format!("ran on {}.", ids.join(", "))
    });
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {out}"));
    walk(&mut v);
    v
}

#[test]
fn orchestrate_runs_as_python_salt_runs_it() {
    let brine = orchestration_side(true);
    let python = orchestration_side(false);
    for args in [
        vec!["state.orchestrate", "orch.deploy", "test=True", "--out", "json"],
        vec![
            "state.orchestrate",
            "orch.deploy",
            "pillar={\"motd\": \"hello\"}",
            "--out",
            "json",
        ],
    ] {
        let (bo, be, bc) = salt_run(&brine, true, &args);
        let (po, pe, pc) = salt_run(&python, false, &args);
        let what = args.join(" ");
        eprintln!("== salt-run {what}\n-- brine ({bc}):\n{bo}\n{be}\n-- python ({pc}):\n{po}\n{pe}");
        assert_eq!(bc, pc, "salt-run {what}: exit status");
        let real = what.contains("hello");
        // A failing step fails the run; in test mode nothing failed.
        assert_eq!(bc, i32::from(real), "exit status of salt-run {what}");
        assert_eq!(
            orch_json(&bo, &brine.env.root()),
            orch_json(&po, &python.env.root()),
            "salt-run {what}"
        );
        // test=True changed nothing; the real run made the same files.
        for s in [&brine, &python] {
            let made = |name: &str| s.env.root().join(name).exists();
            assert_eq!(made("a2-cleanup"), real, "{what}: onfail step");
            assert!(!made("never"), "{what}: the step requiring the failed one ran");
        }
    }
    // The state's file on a1, with the pillar the orchestration passed.
    for s in [&brine, &python] {
        let web = s.minions[0].root.join("../web-a1");
        assert_eq!(read(&web), "hello\n", "{}", web.display());
    }
}

#[test]
fn a_reaction_runs_an_orchestration_with_pillar_from_the_event() {
    // The same reactor, orchestration and event on both masters: the
    // reaction passes the event's data as the orchestration's pillar,
    // and the orchestration has the minion touch the file it names.
    let start = |brine: bool| {
        Side::start(brine, VERSION, "", "", "", |env| {
            let files = [
                (
                    "srv/reactor/orch.sls",
                    "run-orch:\n  runner.state.orchestrate:\n    - args:\n      - mods: orch.touch\n      - pillar:\n          target_file: {{ data['file'] }}\n",
                ),
                (
                    "srv/salt/orch/touch.sls",
                    "touch:\n  salt.function:\n    - name: file.touch\n    - tgt: a1\n    - arg:\n      - {{ pillar['target_file'] }}\n",
                ),
            ];
            write_tree(
                env,
                &files,
                "auto_accept: True\nfile_roots:\n  base:\n    - {r}/srv/salt\nreactor:\n  - 'deploy/go':\n    - {r}/srv/reactor/orch.sls\n",
            );
        })
    };
    for brine in [true, false] {
        let s = start(brine);
        let target = s.env.root().join("from-reactor");
        let data = format!("data={{\"file\": \"{}\"}}", target.display());
        let (o, e, c) = salt_run(&s, brine, &["event.send", "deploy/go", &data]);
        assert_eq!(c, 0, "{o}{e}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !target.exists() {
            assert!(
                Instant::now() < deadline,
                "{}: the orchestration's file never appeared\n{}",
                if brine { "Brine" } else { "Python" },
                read(&s.env.log_file())
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
