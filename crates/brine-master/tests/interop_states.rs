//! `state.apply` with real minions. The fileserver (`file_roots`),
//! pillar (`pillar_roots`, top matching, jinja|yaml), master-side
//! targeting (compound, nodegroups) and the mine, each exercised through
//! Python Salt's `salt` CLI against Brine and against a Python salt-master
//! given the same file_roots/pillar_roots in the same test, for 3006.30
//! and 3007.17 minions. Outputs are compared once the per-side temp root,
//! jids, timings and pids are masked.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pysalt::{mask, py, Side};
use serde_json::Value as Json;

/// The same trees on both sides, under each side's root.
fn write_trees(root: &Path) {
    let files = [
        // States. The default top matcher is compound.
        (
            "srv/salt/top.sls",
            "base:\n  '*':\n    - motd\n  'G@role:web and a*':\n    - web\n",
        ),
        (
            "srv/salt/motd.sls",
            "motd:\n  file.managed:\n    - name: {{ opts['root_dir'] }}/motd\n    - source: salt://files/motd.j2\n    - template: jinja\n    - mode: '0644'\n",
        ),
        (
            "srv/salt/web.sls",
            "webroot:\n  file.directory:\n    - name: {{ opts['root_dir'] }}/www\n\nindex:\n  file.managed:\n    - name: {{ opts['root_dir'] }}/www/index.html\n    - contents: \"tier {{ pillar['tier'] }}\"\n    - require:\n      - file: webroot\n",
        ),
        (
            "srv/salt/files/motd.j2",
            "Welcome to {{ grains['id'] }} ({{ grains['role'] }}).\n{{ pillar['greeting'] }}, tier {{ pillar.get('tier', 'none') }}\n{% for u in pillar['users'] %}user {{ u }}\n{% endfor %}",
        ),
        (
            "srv/salt/fail.sls",
            "missing-source:\n  file.managed:\n    - name: {{ opts['root_dir'] }}/never\n    - source: salt://files/does-not-exist\n\nexit-three:\n  cmd.run:\n    - name: exit 3\n",
        ),
        // Pillar: per-minion top matching, includes, jinja with grains.
        (
            "srv/pillar/top.sls",
            "base:\n  '*':\n    - common\n  'role:web':\n    - match: grain\n    - web\n  'a2':\n    - db\n",
        ),
        (
            "srv/pillar/common.sls",
            "greeting: Hello {{ grains['id'] }}\nusers:\n  - alice\n  - bob\n",
        ),
        ("srv/pillar/web.sls", "include:\n  - extra\ntier: frontend\n"),
        ("srv/pillar/extra.sls", "ports:\n  - 80\n  - 443\n"),
        ("srv/pillar/db.sls", "tier: backend\n"),
        // A tree for file.recurse (with an empty directory, made below).
        ("srv/salt/files/site/index.html", "<h1>{{ grains['id'] }}</h1>\n"),
        ("srv/salt/files/site/css/main.css", "body { margin: 0 }\n"),
        (
            "srv/salt/tree.sls",
            "site:\n  file.recurse:\n    - name: {{ opts['root_dir'] }}/site\n    - source: salt://files/site\n    - template: jinja\n    - include_empty: True\n",
        ),
        // A second saltenv with its own state.
        (
            "srv/salt-dev/devonly.sls",
            "devfile:\n  file.managed:\n    - name: {{ opts['root_dir'] }}/dev.txt\n    - contents: \"from {{ saltenv }}\"\n",
        ),
        // A file a traversal out of file_roots would reach.
        ("srv/secret.txt", "not for minions\n"),
    ];
    for (rel, text) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::create_dir_all(root.join("srv/salt/files/site/empty")).unwrap();
}

/// A master (Brine or Python) with two real minions, `a1` (grain role:
/// web) and `a2` (role: db), both publishing `grains.item role` to the
/// mine, and the trees of [`write_trees`] in its file_roots/pillar_roots.
fn side(brine: bool, version: &'static str, brine_extra: &str) -> Side {
    let common = "auto_accept: True\nfile_recv: True\n\
                  peer:\n  a1:\n    - test\\..*\n    - grains.item\npeer_run:\n  a1:\n    - jobs.list_job\n\
                  nodegroups:\n  webs: 'G@role:web'\n  both: 'N@webs or L@a2'\n";
    let mine = "mine_functions:\n  grains.item:\n    - role\nmine_interval: 60\n";
    Side::start(brine, version, common, brine_extra, mine, |env| {
        let root = env.root();
        write_trees(&root);
        // Same keys as the common part, with this side's paths.
        let roots = format!(
            "file_roots:\n  base:\n    - {r}/srv/salt\n  dev:\n    - {r}/srv/salt-dev\npillar_roots:\n  base:\n    - {r}/srv/pillar\n",
            r = root.display()
        );
        let conf = env.conf_dir.join("master");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&roots);
        std::fs::write(&conf, text).unwrap();
    })
}

impl Side {
    /// A Python Salt CLI against this side: (masked stdout, stderr, status).
    fn run(&self, tool: &str, args: &[&str]) -> (String, String, i32) {
        let (out, err, code) = py(&self.env, self.version, tool, args);
        let root = self.env.root().display().to_string();
        (mask(&out.replace(&root, "<root>")), err, code)
    }

    /// Python's `salt` against this side.
    fn salt(&self, args: &[&str]) -> (String, String, i32) {
        self.run("salt", args)
    }

    /// `tool … --out json` plus `extra`, parsed, volatile fields removed.
    fn json(&self, tool: &str, args: &[&str], extra: &[&str]) -> Json {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--out", "json"]);
        all.extend(extra);
        let (out, err, _) = self.run(tool, &all);
        let mut v: Json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{tool} {args:?}: {e}: {out}\n{err}"));
        scrub(&mut v);
        v
    }

    /// `salt … --out json --static`, parsed, with volatile fields removed.
    fn salt_scrubbed(&self, args: &[&str]) -> Json {
        self.json("salt", args, &["--static", "-t", "60"])
    }
}

/// Drop what differs run to run: durations, start times, pids.
fn scrub(v: &mut Json) {
    match v {
        Json::Object(m) => {
            for k in ["duration", "start_time", "pid"] {
                m.remove(k);
            }
            m.values_mut().for_each(scrub);
        }
        Json::Array(a) => a.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// The state results of one minion in a `state.apply` JSON answer:
/// state id → (result, comment).
fn results(v: &Json, minion: &str) -> Vec<(String, Json, String)> {
    let Some(Json::Object(states)) = v.get(minion) else {
        panic!("no state results for {minion}: {v}")
    };
    let mut out: Vec<(String, Json, String)> = states
        .iter()
        .map(|(k, s)| {
            (
                k.clone(),
                s.get("result").cloned().unwrap_or(Json::Null),
                s.get("comment").and_then(Json::as_str).unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn state_apply_pillar_targeting_and_mine_3007() {
    compare("3007.17", "");
}

#[test]
fn state_apply_pillar_targeting_and_mine_3006() {
    compare("3006.30", "event_publisher_length_prefix: True\n");
}

fn compare(version: &'static str, brine_extra: &str) {
    let brine = side(true, version, brine_extra);
    let python = side(false, version, "");
    let both = |args: &[&str]| -> Json {
        let b = brine.salt_scrubbed(args);
        let p = python.salt_scrubbed(args);
        eprintln!("== salt {args:?}\n-- brine: {b}\n-- python: {p}");
        assert_eq!(b, p, "salt {args:?}: Brine and Python Salt differ");
        b
    };

    // Python's salt-run reads the master's caches itself: the minion data
    // cache Brine writes must read as Salt's own.
    let run = |args: &[&str]| -> Json {
        let (b, p) = (brine.json("salt-run", args, &[]), python.json("salt-run", args, &[]));
        eprintln!("== salt-run {args:?}\n-- brine: {b}\n-- python: {p}");
        assert_eq!(b, p, "salt-run {args:?}: Brine and Python Salt differ");
        b
    };

    // Pillar differs per minion by top matching.
    let pillar = both(&["*", "pillar.items"]);
    assert_eq!(pillar["a1"]["tier"], "frontend", "{pillar}");
    assert_eq!(pillar["a1"]["ports"], serde_json::json!([80, 443]), "{pillar}");
    assert_eq!(pillar["a2"]["tier"], "backend", "{pillar}");
    assert_eq!(pillar["a2"]["greeting"], "Hello a2", "{pillar}");
    assert!(pillar["a2"].get("ports").is_none(), "{pillar}");
    let got = both(&["a1", "pillar.get", "greeting"]);
    assert_eq!(got["a1"], "Hello a1");
    both(&["*", "saltutil.refresh_pillar"]);
    let grains = run(&["cache.grains", "tgt=*"]);
    assert_eq!(grains["a1"]["role"], "web", "{grains}");
    assert_eq!(grains["a2"]["role"], "db", "{grains}");
    let cached = run(&["cache.pillar", "tgt=a1"]);
    assert_eq!(cached["a1"]["tier"], "frontend", "{cached}");

    // Compound and grain targets, nodegroups: the master expects exactly
    // the matching minions (a greedy master would list the others as not
    // returning).
    for args in [
        vec!["-C", "G@role:web and a*", "test.ping"],
        vec!["-C", "a* and not G@role:web", "test.ping"],
        vec!["-C", "( a1 or L@a2 ) and not E@a[2-9]", "test.ping"],
        vec!["-C", "G@role:db or I@tier:frontend", "test.ping"],
        vec!["-G", "role:db", "test.ping"],
        vec!["-N", "webs", "test.ping"],
        vec!["-N", "both", "test.ping"],
    ] {
        let v = both(&args);
        assert!(v.as_object().is_some_and(|m| !m.is_empty()), "{args:?}: {v}");
    }
    let (bo, be, _) = brine.salt(&["-C", "G@role:web and not a1", "test.ping", "-t", "10"]);
    let (po, _, _) = python.salt(&["-C", "G@role:web and not a1", "test.ping", "-t", "10"]);
    assert_eq!(bo, po, "no-match compound: {be}");
    // A list naming only unknown minions is no job on either master.
    let (bo, be, bc) = brine.salt(&["-L", "nosuch,other", "test.ping", "-t", "5"]);
    let (po, _, pc) = python.salt(&["-L", "nosuch,other", "test.ping", "-t", "5"]);
    assert_eq!((bc, bo), (pc, po), "list of unknown minions: {be}");

    // state.apply: the file from salt:// rendered with a pillar value and
    // a grain, on disk with the expected content, Result True throughout.
    let applied = both(&["*", "state.apply"]);
    for (id, role, tier) in [("a1", "web", "frontend"), ("a2", "db", "backend")] {
        let res = results(&applied, id);
        assert!(res.iter().all(|r| r.1 == Json::Bool(true)), "{id}: {res:?}");
        let motd = brine.env.root().join(format!("minion-{id}/motd"));
        assert_eq!(
            std::fs::read_to_string(&motd).unwrap_or_default(),
            format!("Welcome to {id} ({role}).\nHello {id}, tier {tier}\nuser alice\nuser bob\n"),
            "{}",
            motd.display()
        );
    }
    // Only a1 matched the compound top entry.
    assert_eq!(results(&applied, "a1").len(), 3, "{applied}");
    assert_eq!(results(&applied, "a2").len(), 1, "{applied}");
    let index = brine.env.root().join("minion-a1/www/index.html");
    assert_eq!(std::fs::read_to_string(index).unwrap_or_default(), "tier frontend\n");

    // test=True after the apply: nothing to change, all True.
    let dry = both(&["*", "state.apply", "test=True"]);
    for id in ["a1", "a2"] {
        let res = results(&dry, id);
        assert!(res.iter().all(|r| r.1 == Json::Bool(true)), "{id}: {res:?}");
    }
    // test=True with a change pending: result None, file untouched.
    std::fs::write(brine.env.root().join("minion-a2/motd"), "edited\n").unwrap();
    std::fs::write(python.env.root().join("minion-a2/motd"), "edited\n").unwrap();
    let dry = both(&["a2", "state.apply", "test=True"]);
    assert!(results(&dry, "a2").iter().all(|r| r.1.is_null()), "{dry}");
    assert_eq!(
        std::fs::read_to_string(brine.env.root().join("minion-a2/motd")).unwrap(),
        "edited\n"
    );

    // A failing state reports it (missing salt:// source, non-zero exit).
    let failed = both(&["a1", "state.apply", "fail"]);
    let res = results(&failed, "a1");
    assert_eq!(res.len(), 2, "{failed}");
    assert!(res.iter().all(|r| r.1 == Json::Bool(false)), "{res:?}");
    let (_, _, bc) = brine.salt(&["a1", "state.apply", "fail", "-t", "60"]);
    let (_, _, pc) = python.salt(&["a1", "state.apply", "fail", "-t", "60"]);
    assert_eq!(bc, pc, "exit status of a failed state.apply");

    // file.recurse (file lists, directory lists, empty directories, each
    // file templated) and a state from another saltenv.
    let tree = both(&["a1", "state.apply", "tree"]);
    assert!(results(&tree, "a1").iter().all(|r| r.1 == Json::Bool(true)), "{tree}");
    let site = brine.env.root().join("minion-a1/site");
    assert_eq!(
        std::fs::read_to_string(site.join("index.html")).unwrap_or_default(),
        "<h1>a1</h1>\n"
    );
    assert_eq!(
        std::fs::read_to_string(site.join("css/main.css")).unwrap_or_default(),
        "body { margin: 0 }\n"
    );
    assert!(
        site.join("empty").is_dir(),
        "include_empty: no {}/empty",
        site.display()
    );
    let dev = both(&["a2", "state.apply", "devonly", "saltenv=dev"]);
    assert!(results(&dev, "a2").iter().all(|r| r.1 == Json::Bool(true)), "{dev}");
    assert_eq!(
        std::fs::read_to_string(brine.env.root().join("minion-a2/dev.txt")).unwrap_or_default(),
        "from dev\n"
    );

    // cp.push: the minion's file lands in the master's cachedir/minions/
    // <id>/files/<its absolute path>.
    let motd = format!("{}/minion-a1/motd", "{root}");
    let pushed = |side: &Side| {
        let root = side.env.root().display().to_string();
        let path = motd.replace("{root}", &root);
        let got = side.salt_scrubbed(&["a1", "cp.push", &path]);
        let copy = side
            .env
            .root()
            .join("cache/minions/a1/files")
            .join(path.trim_start_matches('/'));
        (got, std::fs::read_to_string(copy).unwrap_or_default())
    };
    let (b, p) = (pushed(&brine), pushed(&python));
    assert_eq!(b, p, "cp.push: Brine and Python Salt differ");
    assert_eq!(b.0["a1"], Json::Bool(true), "{b:?}");
    assert!(b.1.starts_with("Welcome to a1 (web)."), "{b:?}");

    // Files and listings straight from the fileserver.
    both(&["a1", "cp.list_master"]);
    both(&["a1", "cp.list_states"]);
    both(&["a1", "cp.list_master_dirs"]);
    both(&["a1", "cp.list_states", "saltenv=dev"]);
    let got = both(&["a1", "cp.get_file_str", "salt://files/motd.j2"]);
    assert!(got["a1"].as_str().is_some_and(|s| s.starts_with("Welcome")), "{got}");
    // A traversal out of file_roots gets nothing on either master.
    let got = both(&["a1", "cp.get_file_str", "salt://../secret.txt"]);
    assert_ne!(got["a1"], "not for minions\n", "{got}");

    // The mine between minions: each minion's grains.item role, read by
    // the other; then deleted.
    both(&["*", "mine.update"]);
    std::thread::sleep(Duration::from_secs(2));
    let mine = both(&["a1", "mine.get", "*", "grains.item"]);
    assert_eq!(mine["a1"]["a2"]["role"], "db", "{mine}");
    let cached = run(&["cache.mine", "tgt=*"]);
    assert_eq!(cached["a2"]["grains.item"]["role"], "db", "{cached}");
    assert_eq!(mine["a1"]["a1"]["role"], "web", "{mine}");
    let mine = both(&["a2", "mine.get", "G@role:web", "grains.item", "compound"]);
    assert_eq!(mine["a2"], serde_json::json!({"a1": {"role": "web"}}), "{mine}");
    both(&["a2", "mine.delete", "grains.item"]);
    let mine = both(&["a1", "mine.get", "*", "grains.item"]);
    assert!(mine["a1"].get("a2").is_none(), "{mine}");
    both(&["a1", "mine.flush"]);
    let mine = both(&["a2", "mine.get", "*", "grains.item"]);
    assert_eq!(mine["a2"], serde_json::json!({}), "{mine}");

    // Peer publishing: a1 may publish test.* and grains.item (and run
    // jobs.list_job); a2 may do neither.
    let got = both(&["a1", "publish.publish", "a2", "test.ping", "timeout=3"]);
    assert_eq!(got["a1"], serde_json::json!({"a2": true}), "{got}");
    let got = both(&[
        "a1",
        "publish.publish",
        "G@role:db",
        "grains.item",
        "role",
        "compound",
        "timeout=3",
    ]);
    assert_eq!(got["a1"], serde_json::json!({"a2": {"role": "db"}}), "{got}");
    let got = both(&[
        "a1",
        "publish.publish",
        "webs",
        "grains.item",
        "role",
        "nodegroup",
        "timeout=3",
    ]);
    // None on both: Salt's minion_pub expands the nodegroup for the
    // publish but names the expected minions by matching the group's
    // name as a compound target, which matches none; publish.publish's
    // wait loop then never runs and returns None. Brine answers the same.
    assert_eq!(got["a1"], Json::Null, "{got}");
    let got = both(&["a1", "publish.full_data", "a2", "test.echo", "hi", "timeout=3"]);
    assert_eq!(got["a1"]["a2"]["ret"], "hi", "{got}");
    let got = both(&["a1", "publish.publish", "a2", "cmd.run", "id", "timeout=1"]);
    assert_eq!(
        got["a1"],
        serde_json::json!({}),
        "a function peer does not allow: {got}"
    );
    let got = both(&["a2", "publish.publish", "a1", "test.ping", "timeout=1"]);
    assert_eq!(got["a2"], serde_json::json!({}), "a minion peer does not name: {got}");
    // (A runner that publishes, such as manage.up, holds its MWorker
    // while it waits, and the returns it waits for may be queued to that
    // very worker, on Salt's master as on Brine's: not tested here.)
    let jid = "20200101010101010101";
    let got = both(&["a1", "publish.runner", "jobs.list_job", jid]);
    assert_eq!(
        got["a1"]["Error"], "Cannot contact returner or no job with this jid",
        "{got}"
    );
    let got = both(&["a2", "publish.runner", "jobs.list_job", jid]);
    assert_eq!(got["a2"], serde_json::json!({}), "{got}");

    // Last: saltutil.revoke_auth deletes the minion's own key and cached
    // grains/pillar on the master. (Its job return then makes it sign in
    // again, and auto_accept takes the key back.)
    let revoked = both(&["a2", "saltutil.revoke_auth"]);
    assert_eq!(revoked["a2"], Json::Bool(true), "{revoked}");
    for side in [&brine, &python] {
        let root = side.env.root();
        assert!(!root.join("cache/minions/a2/data.p").exists(), "{}", root.display());
        assert!(root.join("cache/minions/a1/data.p").exists(), "{}", root.display());
    }
    let log = std::fs::read_to_string(brine.env.log_file()).unwrap_or_default();
    assert!(log.contains("a2 revoked its own key (Accepted)"), "{log}");
}
