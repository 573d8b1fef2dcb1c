//! The reactor's classic cases end to end, with real salt-minions 3006
//! and 3007, against Brine and against Python's salt-master on the same
//! config, comparing what each master did:
//!
//! * a new minion's key accepted by a `salt/auth` reaction
//!   (`wheel.key.accept` with `match: {{ data['id'] }}` when pending);
//! * `state.apply` on `salt/minion/<id>/start` (a `salt://` reaction file);
//! * `salt-call event.send` and `event.fire_master` driving a
//!   `local.cmd.run` on the sender with values from `data['data']`, next
//!   to a reaction file that fails to render;
//! * a `runner.event.send` reaction whose event drives a legacy
//!   `cmd.cmd.run` (`arg:`) reaction;
//! * no reaction to the reactor's own wheel events (`user: Reactor`).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brine_client::{BusAddr, EventBus};
use brine_proto::Value;
use common::minion::{Minion, READY};
use common::pysalt::{py, EitherMaster};
use common::*;

const REACTOR_CONF: &str = "\
reactor:
  - 'salt/auth':
    - {root}/reactor/auth.sls
  - 'salt/minion/*/start':
    - salt://reactor/start.sls
  - 'myapp/*':
    - {root}/reactor/broken.sls
    - {root}/reactor/deploy.sls
  - 'chain/*':
    - {root}/reactor/chain.sls
  - 'salt/wheel/*/ret':
    - {root}/reactor/loop.sls
file_roots:
  base:
    - {root}/states
";

fn write(root: &std::path::Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text.replace("{root}", &root.display().to_string())).unwrap();
}

fn prepare(env: &Env) {
    let root = env.root();
    let conf = std::fs::read_to_string(env.conf_dir.join("master")).unwrap();
    std::fs::write(
        env.conf_dir.join("master"),
        format!("{conf}{}", REACTOR_CONF.replace("{root}", &root.display().to_string())),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("out")).unwrap();
    write(
        &root,
        "reactor/auth.sls",
        "{% if data.get('act') == 'pend' and data['id'].startswith('r') %}\nminion_add:\n  wheel.key.accept:\n    - args:\n      - match: {{ data['id'] }}\n{% endif %}\n",
    );
    write(
        &root,
        "states/reactor/start.sls",
        "highstate_run:\n  local.state.apply:\n    - tgt: {{ data['id'] }}\n    - args:\n      - mods: started\n",
    );
    write(
        &root,
        "states/started.sls",
        "started:\n  file.managed:\n    - name: {root}/out/started-{{ grains['id'] }}\n    - contents: started\n",
    );
    write(
        &root,
        "reactor/broken.sls",
        "x:\n  local.test.ping:\n    - tgt: {{ data['nope']['deeper'] }}\n",
    );
    write(
        &root,
        "reactor/deploy.sls",
        "deploy:\n  local.cmd.run:\n    - tgt: {{ data['id'] }}\n    - args:\n      - cmd: echo {{ data['data']['version'] }} > {root}/out/deployed-{{ data['id'] }}-{{ tag.split('/')[1] }}\n      - python_shell: True\nchain:\n  runner.event.send:\n    - args:\n      - tag: chain/{{ data['id'] }}\n      - data:\n          id: {{ data['id'] }}\n          version: '{{ data['data']['version'] }}'\n",
    );
    write(
        &root,
        "reactor/chain.sls",
        "legacy_chain:\n  cmd.cmd.run:\n    - tgt: {{ data['id'] }}\n    - arg:\n      - echo {{ data['version'] }} > {root}/out/chained-{{ data['id'] }}\n    - kwarg:\n        python_shell: True\n",
    );
    write(
        &root,
        "reactor/loop.sls",
        "loop:\n  local.cmd.run:\n    - tgt: '*'\n    - arg:\n      - touch {root}/out/loop\n    - kwarg:\n        python_shell: True\n",
    );
}

fn salt_call(minion: &Minion, args: &[&str]) {
    let (code, out) = minion.salt_call(args);
    assert_eq!(code, 0, "salt-call {args:?}: {out}");
}

/// What one master did: the files the reactions wrote, and the jobs,
/// runner and wheel calls fired on its bus (tag kind, function, user or
/// target) without jids.
#[derive(Debug, PartialEq)]
struct Seen {
    files: Vec<(String, String)>,
    actions: BTreeSet<String>,
}

fn action(tag: &str, data: &Value) -> Option<String> {
    let parts: Vec<&str> = tag.split('/').collect();
    let s = |k: &str| data.get(k).map(brine_py::to_str).unwrap_or_default();
    match parts.as_slice() {
        ["salt", "job", _, "new"] => Some(format!(
            "job {} {} {}",
            s("fun"),
            s("tgt"),
            brine_py::repr(data.get("arg").unwrap_or(&Value::Nil))
        )),
        ["salt", "run", _, "new"] => Some(format!("run {} user={}", s("fun"), s("user"))),
        ["salt", "wheel", _, "new"] => Some(format!("wheel {} user={}", s("fun"), s("user"))),
        _ => None,
    }
}

fn side(python: bool, version: &str) -> (Seen, String) {
    let env = Env::with_extra(2, "");
    prepare(&env);
    let root = env.root();
    let _master = EitherMaster::start(&env, python, version);
    // Read the bus all along (a subscriber that stops reading may miss
    // events on Python's master).
    let cfg = brine_config::MasterConfig::load(&env.conf_dir).unwrap();
    let mut bus = EventBus::subscribe(&BusAddr::from_config(&cfg)).unwrap();
    // Python's master may not relay events for a moment after its ports
    // open: wait for one fired with Python's own tool before going on.
    let mut relayed = false;
    for _ in 0..10 {
        let (_, err, code) = py(&env, version, "salt-run", &["event.send", "probe/ready"]);
        assert_eq!(code, 0, "{err}");
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Ok(Some(ev)) = bus.next(deadline) {
            relayed |= ev.tag == "probe/ready";
        }
        if relayed {
            break;
        }
    }
    assert!(relayed, "python={python}: the event bus relays nothing");
    let stop = Arc::new(AtomicBool::new(false));
    let (root_s, stop_r) = (root.display().to_string(), stop.clone());
    let reader = std::thread::spawn(move || {
        let mut actions = BTreeSet::new();
        while !stop_r.load(Ordering::Relaxed) {
            match bus.next(Instant::now() + Duration::from_millis(200)) {
                Ok(Some(ev)) => {
                    if let Some(a) = action(&ev.tag, &ev.data) {
                        actions.insert(a.replace(&root_s, "{root}"));
                    }
                }
                Ok(None) => {}
                Err(e) => panic!("event bus: {e}"),
            }
        }
        actions
    });
    let minions: Vec<Minion> = ["r1", "r2"]
        .iter()
        .map(|id| Minion::start(&env, version, id, ""))
        .collect();
    for m in &minions {
        assert!(
            m.wait_log(READY, Duration::from_secs(120)),
            "python={python}: {}",
            m.log()
        );
    }
    let out = |name: &str| root.join("out").join(name);
    // Both start reactions ran their state.
    assert!(
        wait_until(Duration::from_secs(90), || out("started-r1").exists()
            && out("started-r2").exists()),
        "python={python}: no state.apply on start"
    );
    salt_call(&minions[0], &["event.send", "myapp/deploy", r#"{"version": "1.2"}"#]);
    salt_call(
        &minions[1],
        &["event.fire_master", r#"{"version": "2.0"}"#, "myapp/fire"],
    );
    let want = ["deployed-r1-deploy", "deployed-r2-fire", "chained-r1", "chained-r2"];
    assert!(
        wait_until(Duration::from_secs(60), || want.iter().all(|f| out(f).exists())),
        "python={python}: missing reactions: {:?}",
        std::fs::read_dir(root.join("out"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect::<Vec<_>>()
    );
    // Whatever else was coming has come: a wheel reaction's events would
    // have started the loop reaction by now.
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    let actions = reader.join().unwrap();
    let mut files: Vec<(String, String)> = std::fs::read_dir(root.join("out"))
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap_or_default().trim().to_string(),
            )
        })
        .collect();
    files.sort();
    let log = if python {
        read(&root.join("py-master.stderr"))
    } else {
        read(&env.log_file())
    };
    (Seen { files, actions }, log)
}

fn reactions_match_python(version: &str) {
    let (brine, log) = side(false, version);
    let (python, _) = side(true, version);
    let want: Vec<(String, String)> = [
        ("chained-r1", "1.2"),
        ("chained-r2", "2.0"),
        ("deployed-r1-deploy", "1.2"),
        ("deployed-r2-fire", "2.0"),
        ("started-r1", "started"),
        ("started-r2", "started"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(
        brine.files, want,
        "no `loop` file: the reactor's own wheel events start nothing"
    );
    assert_eq!(
        brine.files, python.files,
        "Brine and Python's master took the same actions"
    );
    if version.starts_with("3006") {
        // Python's 3006 master does not relay to a subscriber some of the
        // events fired while minions first connect (the key acceptance,
        // the start reaction's job), though it runs them (the files
        // above): what it did relay, Brine fired too.
        assert!(python.actions.is_subset(&brine.actions), "{python:?}");
    } else {
        assert_eq!(brine.actions, python.actions, "and fired the same events");
    }
    for a in [
        "wheel wheel.key.accept user=Reactor",
        "run runner.event.send user=Reactor",
    ] {
        assert!(brine.actions.contains(a), "{a} in {:?}", brine.actions);
    }
    // The broken file was reported with its event's tag and its path.
    assert!(
        log.lines()
            .any(|l| l.contains("Failed to render") && l.contains("broken.sls") && l.contains("myapp/deploy")),
        "{log}"
    );
}

#[test]
fn reactions_with_3006_minions_match_python() {
    reactions_match_python("3006.30");
}

#[test]
fn reactions_with_3007_minions_match_python() {
    reactions_match_python("3007.17");
}
