//! Salt's Python extension modules on the master, through Brine's pool of
//! Python workers (PythonLoader-N) running Salt's own loader: a custom
//! `ext_pillar` module (with `__grains__`, `__opts__`, `__salt__` and the
//! pillar so far), one that raises, a missing one, and a custom
//! `master_tops` module, against Brine and, in the same test, against
//! Python's master on the same config with real minions. Then what Brine
//! adds: a hung module is killed after `python_loader_timeout` while the
//! MWorkers go on serving, the worker is replaced; without Python Salt
//! the master starts and says which modules are unavailable.

mod common;

use std::time::{Duration, Instant};

use brine_proto::Value;
use common::minion::{venv, Minion, READY};
use common::pysalt::Side;
use common::*;
use serde_json::Value as Json;

const CUSTOM_PILLAR: &str = r#"
import logging
log = logging.getLogger(__name__)

def ext_pillar(minion_id, pillar, greeting, extra_minion_data=None):
    return {
        "custom": {
            "minion": minion_id,
            "greeting": greeting,
            "role_grain": __grains__.get("role"),
            "role_salt": __salt__["grains.get"]("role"),
            "master_id": __opts__["id"],
            "pillarenv": __opts__.get("pillarenv"),
            "seen_before": sorted(pillar),
            "extra": extra_minion_data,
        }
    }
"#;

const RAISING_PILLAR: &str = r#"
def ext_pillar(minion_id, pillar, *args):
    if minion_id == "a2":
        raise ValueError("boom for " + minion_id)
    return {}
"#;

const CUSTOM_RUNNER: &str = r#"
def hello(name="world", **kwargs):
    """
    Say hello.

    CLI Example:

    .. code-block:: bash

        salt-run custom.hello name=you
    """
    __jid_event__.fire_event({"message": "saying hello to " + name}, "progress")
    return {"hello": name, "user": __user__ is not None, "master_id": __opts__["id"], "extra": sorted(kwargs)}

def boom():
    raise RuntimeError("runner failed")
"#;

const CUSTOM_TOPS: &str = r#"
def top(**kwargs):
    grains = kwargs.get("grains", {})
    states = ["topped"]
    if grains.get("role") == "web":
        states.append("web_only")
    return {"base": states}
"#;

/// Append `text` to the env's master config.
fn add_conf(env: &Env, text: &str) {
    let conf = env.conf_dir.join("master");
    let mut all = std::fs::read_to_string(&conf).unwrap();
    all.push_str(text);
    std::fs::write(&conf, all).unwrap();
}

/// A side of Salt 3007.17 (Brine with the reference venv's Python),
/// minions accepted on sight.
fn side_3007(brine: bool, prepare: impl FnOnce(&Env)) -> Side {
    Side::start(
        brine,
        "3007.17",
        "auto_accept: True\n",
        &brine_extra("3007.17"),
        "",
        prepare,
    )
}

/// Both masters' config: the extension modules and the trees under the
/// env's root.
fn prepare(env: &Env) {
    let root = env.root();
    let ext = root.join("extmods");
    for (dir, name, text) in [
        ("pillar", "custom_pillar.py", CUSTOM_PILLAR),
        ("pillar", "raising.py", RAISING_PILLAR),
        ("tops", "custom_tops.py", CUSTOM_TOPS),
        ("runners", "custom.py", CUSTOM_RUNNER),
    ] {
        std::fs::create_dir_all(ext.join(dir)).unwrap();
        std::fs::write(ext.join(dir).join(name), text).unwrap();
    }
    let pillar = root.join("pillar");
    let states = root.join("states");
    std::fs::create_dir_all(&pillar).unwrap();
    std::fs::create_dir_all(&states).unwrap();
    std::fs::write(pillar.join("top.sls"), "base:\n  '*':\n    - common\n").unwrap();
    std::fs::write(pillar.join("common.sls"), "from_roots: 1\n").unwrap();
    std::fs::write(states.join("top.sls"), "base:\n  'a2':\n    - from_top_file\n").unwrap();
    for sls in ["topped", "web_only", "from_top_file"] {
        std::fs::write(
            states.join(format!("{sls}.sls")),
            format!("{sls}_state:\n  test.succeed_without_changes:\n    - name: {sls}\n"),
        )
        .unwrap();
    }
    add_conf(
        env,
        &format!(
            "extension_modules: {ext}\npillar_roots:\n  base:\n    - {pillar}\nfile_roots:\n  base:\n    - {states}\n\
         ext_pillar:\n  - custom_pillar:\n      greeting: hello\n  - raising: [1]\n  - not_a_module: 1\n\
         master_tops:\n  custom_tops: True\npeer_run:\n  a1:\n    - custom.*\n",
            ext = ext.display(),
            pillar = pillar.display(),
            states = states.display(),
        ),
    );
}

/// Brine's own options: the reference venv's Python; for 3006's CLIs,
/// length-prefixed event bus publications (see interop_python_cli).
fn brine_extra(version: &str) -> String {
    format!(
        "python_loader_executable: {}\n{}",
        venv(version).join("bin/python").display(),
        if version.starts_with("3006") {
            "event_publisher_length_prefix: True\n"
        } else {
            ""
        }
    )
}

/// `salt-run` of the side's own kind (Brine's against Brine, Python's
/// against Python's master): (stdout, exit status).
fn salt_run(side: &Side, brine: bool, args: &[&str]) -> (String, i32) {
    let (out, err, code) = if brine {
        common::minion::run_cli(&side.env.conf_dir, "salt-run", args)
    } else {
        common::pysalt::py(&side.env, side.version, "salt-run", args)
    };
    let _ = err;
    let stamp = regex::Regex::new(r#""_stamp": "[^"]*""#).unwrap();
    (stamp.replace_all(&out, r#""_stamp": "<time>""#).into_owned(), code)
}

fn observe(side: &Side, brine: bool) -> Vec<(String, Json)> {
    let mut seen = Vec::new();
    let (out, code) = salt_run(side, brine, &["custom.hello", "name=you", "other=1", "--out", "json"]);
    seen.push(("salt-run custom.hello".into(), serde_json::json!([out, code])));
    let (out, code) = salt_run(side, brine, &["custom.nope"]);
    seen.push(("salt-run custom.nope".into(), serde_json::json!([out, code])));
    // The traceback's frames differ (Salt's client mixins vs Brine's
    // worker); its first and last lines are compared.
    let (out, code) = salt_run(side, brine, &["custom.boom"]);
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    let ends = (lines.first().map(|l| l.trim()), lines.last().map(|l| l.trim()));
    seen.push(("salt-run custom.boom".into(), serde_json::json!([ends.0, ends.1, code])));
    for args in [
        // A minion's publish.runner reaches the custom runner too.
        vec!["a1", "publish.runner", "custom.hello"],
        vec!["*", "pillar.items"],
        vec!["*", "state.show_top"],
        vec!["*", "state.show_highstate"],
    ] {
        seen.push((args.join(" "), side.salt_json(&args)));
    }
    // The custom runner's documentation (Salt's strip_rst of its
    // docstring).
    let (out, code) = salt_run(side, brine, &["--doc", "custom"]);
    assert!(out.contains("custom.hello:") && out.contains("Say hello"), "{out}");
    seen.push(("salt-run --doc custom".into(), serde_json::json!([out, code])));
    seen
}

#[test]
fn custom_ext_pillar_and_master_tops_as_python_runs_them() {
    for version in ["3007.17", "3006.30"] {
        let extra = "auto_accept: True\n";
        let brine = Side::start(true, version, extra, &brine_extra(version), "", prepare);
        let b = observe(&brine, true);
        let log = read(&brine.env.log_file());
        let python = Side::start(false, version, extra, "", "", prepare);
        let p = observe(&python, false);
        for ((what, got), (_, want)) in b.iter().zip(&p) {
            assert_eq!(got, want, "{version}: {what}: Brine vs Python\nBrine's log:\n{log}");
        }
        // What the comparison stands on.
        // The progress event, then the return.
        let text = b[0].1[0].as_str().unwrap();
        assert!(text.contains(r#""message": "saying hello to you""#), "{text}");
        let hello: Json = serde_json::from_str(&text[text.rfind("\n{").unwrap()..]).unwrap();
        assert_eq!(hello["hello"], "you", "{hello}");
        assert_eq!(hello["extra"], serde_json::json!(["other"]), "{hello}");
        assert_eq!(b[0].1[1], 0);
        assert_eq!(b[2].1[1], "RuntimeError: runner failed", "{:?}", b[2]);
        let b = &b[3..];
        assert_eq!(b[0].1["a1"]["hello"], "world", "{}", b[0].1);
        let b = &b[1..];
        let pillar = &b[0].1;
        let custom = &pillar["a1"]["custom"];
        assert_eq!(custom["greeting"], "hello", "{pillar}");
        assert_eq!(custom["role_grain"], "web", "{pillar}");
        assert_eq!(custom["role_salt"], "web", "{pillar}");
        assert_eq!(custom["seen_before"], serde_json::json!(["from_roots"]), "{pillar}");
        assert_eq!(pillar["a2"]["custom"]["role_grain"], "db", "{pillar}");
        assert_eq!(
            pillar["a2"]["_errors"],
            serde_json::json!(["Failed to load ext_pillar raising: boom for a2"]),
            "{pillar}"
        );
        assert!(pillar["a1"].get("_errors").is_none(), "{pillar}");
        assert_eq!(
            b[1].1["a1"],
            serde_json::json!({"base": ["topped", "web_only"]}),
            "{version}: show_top: {}",
            b[1].1
        );
        // A pillar with errors stops a2's state functions, on both masters.
        assert!(
            b[1].1["a2"]
                .as_str()
                .is_some_and(|t| t.contains("Failed to load ext_pillar raising: boom for a2")),
            "{}",
            b[1].1
        );
        assert!(
            log.contains("Specified ext_pillar interface not_a_module is unavailable"),
            "{log}"
        );
        // The pillar compiled off the request loop reached the minion
        // data cache.
        let data = std::fs::read(brine.env.root().join("cache/minions/a1/data.p")).unwrap();
        let data = Value::decode(&data).unwrap();
        let cached = data
            .get("pillar")
            .and_then(|p| p.get("custom"))
            .and_then(|c| c.get("greeting"));
        assert_eq!(cached, Some(&Value::from("hello")));
    }
}

const HANGING_PILLAR: &str = r#"
import time

def ext_pillar(minion_id, pillar, *args):
    if __grains__.get("role") == "hang":
        time.sleep(3600)
    return {"answered_for": minion_id}
"#;

/// The PythonLoader-N children of the master: title → pid.
fn loaders(env: &Env, m: &Master) -> std::collections::BTreeMap<String, i32> {
    m.named_children(m.pid, &format!("{BIN} -c {}", env.conf_dir.display()))
        .into_iter()
        .filter(|(t, _)| t.starts_with("PythonLoader-"))
        .collect()
}

#[test]
fn a_hung_module_is_killed_its_worker_replaced_and_the_mworkers_keep_serving() {
    let env = Env::with_extra(
        2,
        &format!(
            "auto_accept: True\npython_loader_timeout: 4\npython_loader_workers: 2\n{}",
            brine_extra("3007.17")
        ),
    );
    let ext = env.root().join("extmods/pillar");
    std::fs::create_dir_all(&ext).unwrap();
    std::fs::write(ext.join("hanging.py"), HANGING_PILLAR).unwrap();
    add_conf(
        &env,
        &format!(
            "extension_modules: {}\next_pillar:\n  - hanging: []\n",
            env.root().join("extmods").display()
        ),
    );
    let mut m = env.start();
    m.wait_ready();
    let before = loaders(&env, &m);
    assert_eq!(before.keys().collect::<Vec<_>>(), ["PythonLoader-0", "PythonLoader-1"]);
    for pid in before.values() {
        assert_eq!(comm(*pid), "salt-master");
        assert!(cmdline(*pid).ends_with(&format!(
            "PythonLoader-{}",
            if *pid == before["PythonLoader-0"] { 0 } else { 1 }
        )));
    }
    let ok = Minion::start(&env, "3007.17", "fine", "grains:\n  role: ok\n");
    assert!(ok.wait_log(READY, Duration::from_secs(120)), "{}", ok.log());
    let hung = Minion::start(&env, "3007.17", "stuck", "grains:\n  role: hang\n");
    // The hung minion's start-up pillar holds one worker for the timeout;
    // meanwhile the other minion's pillar and jobs are served.
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let (code, out) = ok.salt_call(&["--out", "json", "pillar.items"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"answered_for\": \"fine\""), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "served behind the hung module"
    );
    let (out, err, code) = common::minion::run_cli(&env.conf_dir, "salt", &["fine", "test.ping", "--out", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("true"), "{out}");
    // The hung request failed with a clear error and its worker was
    // replaced.
    assert!(
        wait_until(Duration::from_secs(30), || read(&env.log_file())
            .contains("did not answer within")),
        "{}",
        read(&env.log_file())
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            let now = loaders(&env, &m);
            now.len() == 2 && now.values().filter(|p| before.values().any(|b| b == *p)).count() == 1
        }),
        "one worker replaced: {before:?} → {:?}",
        loaders(&env, &m)
    );
    let (_, out) = hung.salt_call(&["--out", "json", "pillar.item", "_errors"]);
    assert!(
        out.contains("Failed to load ext_pillar hanging: Python loader worker"),
        "{out}"
    );
    assert!(out.contains("did not answer within 4s"), "{out}");
}

#[test]
fn without_python_salt_the_master_starts_and_names_what_is_unavailable() {
    let env = Env::with_extra(
        1,
        "auto_accept: True\npython_loader_executable: /nonexistent/python3\next_pillar:\n  - vault: path=secret/x\n  - cmd_yaml: \"echo 'native: yes'\"\nmaster_tops:\n  reclass: {}\n",
    );
    let mut m = env.start();
    m.wait_ready();
    assert!(loaders(&env, &m).is_empty());
    let log = read(&env.log_file());
    assert!(
        log.contains("Salt's Python modules are unavailable")
            && log.contains("pillar:vault")
            && log.contains("tops:reclass"),
        "{log}"
    );
    let mn = Minion::start(&env, "3007.17", "alone", "");
    assert!(mn.wait_log(READY, Duration::from_secs(120)), "{}", mn.log());
    let (code, out) = mn.salt_call(&["--out", "json", "pillar.items"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"native\": true"), "{out}");
    assert!(!out.contains("_errors"), "{out}");
    assert!(read(&env.log_file()).contains("Specified ext_pillar interface vault is unavailable"));
}

const TICK_ENGINE: &str = r#"
import time
import salt.utils.event

def start(interval=1, tag="custom/engine/tick"):
    event = salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False)
    n = 0
    while True:
        n += 1
        event.fire_event({"n": n, "master": __opts__["id"]}, tag)
        time.sleep(interval)
"#;

#[test]
fn an_engine_fires_events_the_reactor_sees() {
    let prepare = |env: &Env| {
        let root = env.root();
        let ext = root.join("extmods/engines");
        std::fs::create_dir_all(&ext).unwrap();
        std::fs::write(ext.join("tick.py"), TICK_ENGINE).unwrap();
        std::fs::create_dir_all(root.join("out")).unwrap();
        let reaction = root.join("tick.sls");
        std::fs::write(
            &reaction,
            format!(
                "touch_on_tick:\n  local.cmd.run:\n    - tgt: a1\n    - arg:\n      - touch {}/out/tick-{{{{ data['master'] }}}}\n",
                root.display()
            ),
        )
        .unwrap();
        add_conf(env, &format!(
            "extension_modules: {}\nengines:\n  - tick:\n      interval: 1\nreactor:\n  - 'custom/engine/tick':\n    - {}\n",
            root.join("extmods").display(),
            reaction.display()
        ));
    };
    let mut made = Vec::new();
    for brine in [true, false] {
        let side = side_3007(brine, prepare);
        let out = side.env.root().join("out");
        let touched = wait_until(Duration::from_secs(60), || {
            std::fs::read_dir(&out).is_ok_and(|mut d| d.next().is_some())
        });
        let names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            touched,
            "{}: the engine's events did not reach the reactor\n{}",
            if brine { "Brine" } else { "Python" },
            read(&side.env.log_file())
        );
        if brine {
            // The engine is a child of the ProcessManager, titled as Salt
            // titles it.
            let engine = descendants(std::process::id() as i32)
                .into_iter()
                .find(|p| cmdline(*p).ends_with("Engine(salt.loaded.ext.engines.tick)"));
            let engine = engine.expect("an Engine(salt.loaded.ext.engines.tick) process");
            assert_eq!(comm(engine), "salt-master");
        }
        made.push(names);
    }
    assert_eq!(made[0], made[1], "the same file, named after the master's id, on both");
}

const FILE_JOBS_RETURNER: &str = r#"
import json
import os

import salt.utils.jid


def _path(*parts):
    path = os.path.join(__opts__["filejobs.dir"], *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def prep_jid(nocache=False, passed_jid=None):
    return passed_jid or salt.utils.jid.gen_jid(__opts__)


def save_load(jid, load, minions=None):
    # The publication's load (with its minions) wins over the return
    # loads Salt's store_job saves again with each return.
    path = _path(jid, "load.json")
    if minions is not None or not os.path.exists(path):
        with open(path, "w") as f:
            json.dump(load, f)
    if minions is not None:
        with open(_path(jid, "minions.json"), "w") as f:
            json.dump(sorted(minions), f)


def get_load(jid):
    try:
        with open(os.path.join(__opts__["filejobs.dir"], jid, "load.json")) as f:
            return json.load(f)
    except OSError:
        return {}


def returner(ret):
    with open(_path(ret["jid"], "returns", ret["id"] + ".json"), "w") as f:
        json.dump(ret, f)


def get_jid(jid):
    out = {}
    d = os.path.join(__opts__["filejobs.dir"], jid, "returns")
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        with open(os.path.join(d, name)) as f:
            ret = json.load(f)
        out[ret["id"]] = {"return": ret["return"], "retcode": ret.get("retcode", 0)}
    return out


def get_jids():
    d = __opts__["filejobs.dir"]
    return {j: get_load(j) for j in os.listdir(d) if j.isdigit()} if os.path.isdir(d) else {}


def event_return(events):
    with open(_path("events.log"), "a") as f:
        for event in events:
            f.write(event["tag"] + "\n")
"#;

const CUSTOM_WHEEL: &str = r#"
def hello(who="world"):
    return {"hello": who, "master": __opts__["id"]}


def touch(path):
    with open(path, "w") as f:
        f.write(__opts__["id"])
    return True
"#;

/// A custom returner as the job cache and the event returner, and a
/// custom wheel module (called from an orchestration).
#[test]
fn a_custom_returner_keeps_the_jobs_and_the_events() {
    let prepare = |env: &Env| {
        let root = env.root();
        let ext = root.join("extmods/returners");
        std::fs::create_dir_all(&ext).unwrap();
        std::fs::write(ext.join("filejobs.py"), FILE_JOBS_RETURNER).unwrap();
        std::fs::create_dir_all(root.join("extmods/wheel")).unwrap();
        std::fs::write(root.join("extmods/wheel/custom.py"), CUSTOM_WHEEL).unwrap();
        std::fs::create_dir_all(root.join("states/orch")).unwrap();
        std::fs::write(
            root.join("states/orch/wheel.sls"),
            "call_wheel:\n  salt.wheel:\n    - name: custom.hello\n    - who: you\n",
        )
        .unwrap();
        // A wheel reaction calls the custom wheel function too.
        std::fs::write(
            root.join("wheel_react.sls"),
            format!(
                "touch_it:\n  wheel.custom.touch:\n    - path: {}\n",
                root.join("wheel-touched").display()
            ),
        )
        .unwrap();
        add_conf(env, &format!(
            "extension_modules: {}\nmaster_job_cache: filejobs\nfilejobs.dir: {}\n\
             event_return: filejobs\nevent_return_whitelist:\n  - 'salt/job/*'\nevent_return_blacklist:\n  - 'salt/job/*/new'\n\
             file_roots:\n  base:\n    - {}\nreactor:\n  - 'custom/wheel/go':\n    - {}\n",
            root.join("extmods").display(),
            root.join("filejobs").display(),
            root.join("states").display(),
            root.join("wheel_react.sls").display()
        ));
    };
    let mut seen = Vec::new();
    for brine in [true, false] {
        let side = side_3007(brine, prepare);
        let what = if brine { "Brine" } else { "Python" };
        let log = || read(&side.env.log_file());
        // Python's salt reads the job's load through the returner as soon
        // as the publication is answered: it must be there by then.
        let pinged = side.salt_json(&["*", "test.ping"]);
        let jid = side.salt_async(&["*", "test.arg", "1", "two=2"]);
        let jobs = side.env.root().join("filejobs");
        let returned = wait_until(Duration::from_secs(60), || {
            ["a1", "a2"]
                .iter()
                .all(|m| jobs.join(&jid).join(format!("returns/{m}.json")).is_file())
        });
        assert!(returned, "{what}: the returns did not reach the returner\n{}", log());
        let load: Json = serde_json::from_str(&read(&jobs.join(&jid).join("load.json"))).unwrap();
        assert_eq!(load["fun"], "test.arg", "{what}: {load}");
        assert_eq!(read(&jobs.join(&jid).join("minions.json")), r#"["a1", "a2"]"#, "{what}");
        let (lookup, code) = salt_run(&side, brine, &["jobs.lookup_jid", &jid, "--out", "json"]);
        assert_eq!(code, 0, "{what}: {lookup}\n{}", log());
        let lookup: Json = serde_json::from_str(&lookup).unwrap_or_else(|e| panic!("{what}: {e}: {lookup}"));
        assert_eq!(lookup["a1"]["args"][0], 1, "{what}: {lookup}");
        // The events, filtered by the white and black lists.
        let events = jobs.join("events.log");
        assert!(
            wait_until(Duration::from_secs(30), || read(&events)
                .contains(&format!("salt/job/{jid}/ret/a2"))),
            "{what}: {}\n{}",
            read(&events),
            log()
        );
        let tags = read(&events);
        assert!(
            !tags.contains("/new\n") && !tags.contains("salt/auth"),
            "{what}: {tags}"
        );
        if brine {
            // Nothing in local_cache: the returner is the job cache.
            let local = side.env.root().join("cache/jobs");
            let cached = std::fs::read_dir(&local).map_or(0, |d| d.count());
            assert_eq!(cached, 0, "local_cache written beside the returner");
            let event_return = descendants(std::process::id() as i32)
                .into_iter()
                .find(|p| cmdline(*p).ends_with("EventReturn"));
            assert!(event_return.is_some(), "an EventReturn process");
        }
        let (orch, code) = salt_run(&side, brine, &["state.orchestrate", "orch.wheel", "--out", "json"]);
        assert_eq!(code, 0, "{what}: {orch}\n{}", log());
        assert!(
            orch.contains(r#""hello": "you""#) && orch.contains(r#""result": true"#),
            "{what}: {orch}\n{}",
            log()
        );
        let (code, out) = side.minions[0].salt_call(&["event.send", "custom/wheel/go"]);
        assert_eq!(code, 0, "{what}: {out}");
        let touched = side.env.root().join("wheel-touched");
        assert!(
            wait_until(Duration::from_secs(30), || touched.is_file()),
            "{what}: the wheel reaction did not run\n{}",
            log()
        );
        let lookup: Json = serde_json::from_str(&lookup.to_string().replace(&jid, "<jid>")).unwrap();
        seen.push((pinged, lookup));
    }
    assert_eq!(seen[0], seen[1], "Brine vs Python");
}

/// gpg's home for a test: a key without a passphrase, its agent killed
/// (by gpgconf, which knows its pid) when dropped.
struct GpgHome(std::path::PathBuf);

impl GpgHome {
    fn new(dir: &std::path::Path) -> GpgHome {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let home = GpgHome(dir.to_path_buf());
        home.gpg(
            &[
                "--passphrase",
                "",
                "--quick-gen-key",
                "Brine Test <brine@test.invalid>",
                "default",
                "default",
                "never",
            ],
            b"",
        );
        home
    }

    fn gpg(&self, args: &[&str], input: &[u8]) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("gpg")
            .arg("--homedir")
            .arg(&self.0)
            .args(["--batch", "--yes", "--pinentry-mode", "loopback"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("gpg (Debian's gnupg) on PATH");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn encrypt(&self, text: &str) -> String {
        self.gpg(
            &[
                "--armor",
                "--trust-model",
                "always",
                "--encrypt",
                "-r",
                "brine@test.invalid",
            ],
            text.as_bytes(),
        )
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = std::process::Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.0)
            .args(["--kill", "all"])
            .status();
    }
}

#[test]
fn pillar_renderers_and_functions_brine_lacks_run_as_salt_runs_them() {
    let scratch = tempfile::tempdir().unwrap();
    let gpg = GpgHome::new(&scratch.path().join("gpgkeys"));
    let secret = gpg.encrypt("s3cret value");
    let indented: String = secret.lines().map(|l| format!("  {l}\n")).collect();
    let keydir = scratch.path().join("gpgkeys");
    let content = scratch.path().join("content.txt");
    std::fs::write(&content, "from a file").unwrap();
    let prepare = |env: &Env| {
        let pillar = env.root().join("pillar");
        std::fs::create_dir_all(&pillar).unwrap();
        std::fs::write(
            pillar.join("top.sls"),
            "base:\n  '*':\n    - secret\n    - frompy\n    - ex\n    - withcp\n    - plainenc\n",
        )
        .unwrap();
        std::fs::write(
            pillar.join("secret.sls"),
            format!("#!yaml|gpg\nplain: visible\nsecret: |\n{indented}"),
        )
        .unwrap();
        std::fs::write(
            pillar.join("frompy.sls"),
            "#!py\ndef run():\n    return {'from_py': {'role': __grains__['role'], 'id': __opts__['id'], 'sls': sls}}\n",
        )
        .unwrap();
        // Encrypted, in a file the gpg renderer does not read:
        // decrypt_pillar names the key.
        let nested: String = secret.lines().map(|l| format!("    {l}\n")).collect();
        std::fs::write(pillar.join("plainenc.sls"), format!("nested:\n  enc: |\n{nested}")).unwrap();
        std::fs::write(
            pillar.join("ex.sls"),
            "#!yamlex\nyamlex_agg: !aggregate first\nyamlex_agg: !aggregate second\n",
        )
        .unwrap();
        std::fs::write(
            pillar.join("withcp.sls"),
            format!(
                "{{%- set text = salt['cp.get_file_str']('{}') %}}\nfile_content: {{{{ text }}}}\n",
                content.display()
            ),
        )
        .unwrap();
        add_conf(
            env,
            &format!(
                "pillar_roots:\n  base:\n    - {}\ngpg_keydir: {}\ndecrypt_pillar:\n  - 'nested:enc': gpg\n",
                pillar.display(),
                keydir.display()
            ),
        );
    };
    let mut seen = Vec::new();
    for brine in [true, false] {
        let side = side_3007(brine, prepare);
        let pillar = side.salt_json(&["*", "pillar.items"]);
        seen.push(pillar);
        if brine {
            let log = read(&side.env.log_file());
            assert!(
                log.contains("renderer:gpg") && log.contains("execution:cp.get_file_str"),
                "{log}"
            );
        }
    }
    let a1 = &seen[0]["a1"];
    assert_eq!(a1["secret"], "s3cret value", "{}", seen[0]);
    assert_eq!(a1["plain"], "visible");
    assert_eq!(a1["nested"]["enc"], "s3cret value", "{}", seen[0]);
    assert_eq!(a1["from_py"]["role"], "web", "{}", seen[0]);
    assert_eq!(a1["file_content"], "from a file", "{}", seen[0]);
    assert_eq!(a1["yamlex_agg"], serde_json::json!(["first", "second"]), "{}", seen[0]);
    assert!(a1.get("_errors").is_none(), "{}", seen[0]);
    assert_eq!(seen[0], seen[1], "Brine vs Python");
}

const CUSTOM_EAUTH: &str = r#"
def auth(username, password, **kwargs):
    return username == "carol" and password == "letmein"


def groups(username, **kwargs):
    return ["devs"] if username == "carol" else []
"#;

/// A custom eauth backend (`extension_modules/auth`), with groups, for
/// Python's `salt -a`: allowed, refused by the ACL, wrong password.
#[test]
fn a_custom_eauth_backend_authenticates_as_salt_does() {
    let prepare = |env: &Env| {
        let root = env.root();
        std::fs::create_dir_all(root.join("extmods/auth")).unwrap();
        std::fs::write(root.join("extmods/auth/myauth.py"), CUSTOM_EAUTH).unwrap();
        add_conf(
            env,
            &format!(
                "extension_modules: {}\nexternal_auth:\n  myauth:\n    'devs%':\n      - 'test.ping'\n",
                root.join("extmods").display()
            ),
        );
    };
    let mut seen = Vec::new();
    for brine in [true, false] {
        let side = side_3007(brine, prepare);
        let mut got = Vec::new();
        for (password, fun) in [
            ("letmein", "test.ping"),
            ("letmein", "test.version"),
            ("wrong", "test.ping"),
        ] {
            let (out, err, code) = common::pysalt::py(
                &side.env,
                side.version,
                "salt",
                &[
                    "-a",
                    "myauth",
                    "--username",
                    "carol",
                    "--password",
                    password,
                    "*",
                    fun,
                    "--out",
                    "json",
                    "--static",
                    "-t",
                    "60",
                ],
            );
            // The minions' answers in the order they came: compared as
            // JSON.
            let out = serde_json::from_str::<Json>(&out).unwrap_or_else(|_| Json::from(common::pysalt::mask(&out)));
            got.push((out, common::pysalt::mask(&err), code));
        }
        let what = if brine { "Brine" } else { "Python" };
        assert!(
            got[0].0["a1"] == Json::Bool(true),
            "{what}: {got:?}\n{}",
            read(&side.env.log_file())
        );
        seen.push(got);
    }
    assert_eq!(seen[0], seen[1], "Brine vs Python");
}
