//! Pillar end to end: real salt-minions 3006.30 and 3007.17 get the pillar
//! Brine compiles from `pillar_roots` (`_pillar` at start, `pillar.items`,
//! `pillar.get`, `saltutil.refresh_pillar`), and the minion data cache
//! holds it.

mod common;

use std::process::Command;
use std::time::Duration;

use brine_proto::Value;
use common::minion::{brine_bin, Minion, READY};
use common::*;
use serde_json::Value as Json;

fn salt_json(env: &Env, args: &[&str]) -> Json {
    let out = Command::new(brine_bin("salt"))
        .arg("-c")
        .arg(&env.conf_dir)
        .args(args)
        .args(["--out", "json", "--static", "-t", "60"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn minions_get_their_pillar() {
    let env = Env::with_extra(2, "auto_accept: True\n");
    let pillar = env.root().join("pillar");
    std::fs::create_dir_all(pillar.join("app")).unwrap();
    let write = |rel: &str, text: &str| std::fs::write(pillar.join(rel), text).unwrap();
    write(
        "top.sls",
        "base:\n  '*':\n    - match: glob\n    - common\n    - ints\n  'p3007':\n    - match: glob\n    - app\n  'kernel:Linux':\n    - match: grain\n    - linux\n",
    );
    write(
        "common.sls",
        "who: {{ grains['id'] }}\nnested:\n  a: 1\n  list: {{ [grains['kernel'], saltenv] }}\nversion: 1\n",
    );
    write("app/init.sls", "include:\n  - .db\napp: {{ sls }}\n");
    write("app/db.sls", "db: {{ tpldir }}\nnested: {b: 2}\n");
    write("linux.sls", "linux: true\n");
    // Salt's test_pillar_get_integer_key: the key is the integer 12345.
    write("ints.sls", "12345:\n  code:\n    - luggage\n'678': text\n");
    // A state whose template reads the pillar (rendered by the minion).
    let states = env.root().join("states");
    std::fs::create_dir_all(&states).unwrap();
    std::fs::write(
        states.join("pillar_test.sls"),
        "show_pillar:\n  test.succeed_without_changes:\n    - name: {{ pillar['who'] }}-{{ salt['pillar.get']('nested:a') }}-{{ pillar.get('app', 'none') }}\n",
    )
    .unwrap();
    // An external pillar as Salt's test master has it (cmd_yaml), with a
    // per-minion file through `%s`.
    let ext = env.root().join("ext");
    std::fs::create_dir_all(&ext).unwrap();
    std::fs::write(ext.join("ext.yaml"), "ext_spam: eggs\n").unwrap();
    std::fs::write(ext.join("p3007.yaml"), "only_3007: 1\n").unwrap();
    let conf = env.conf_dir.join("master");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "pillar_roots:\n  base:\n    - {}\nfile_roots:\n  base:\n    - {}\n\
         ext_pillar:\n  - cmd_yaml: cat {ext}/ext.yaml\n  - cmd_yaml: cat {ext}/%s.yaml 2>/dev/null\n",
        pillar.display(),
        states.display(),
        ext = ext.display(),
    ));
    std::fs::write(&conf, text).unwrap();

    let mut m = env.start();
    m.wait_ready();
    let a = Minion::start(&env, "3006.30", "p3006", "");
    let b = Minion::start(&env, "3007.17", "p3007", "");
    for x in [&a, &b] {
        assert!(x.wait_log(READY, Duration::from_secs(90)), "{}", x.log());
    }
    std::thread::sleep(Duration::from_secs(2));

    let items = salt_json(&env, &["p*", "pillar.items"]);
    for id in ["p3006", "p3007"] {
        let p = &items[id];
        assert_eq!(p["who"], id, "{items}");
        assert_eq!(p["nested"]["list"], serde_json::json!(["Linux", "base"]), "{items}");
        assert_eq!(p["linux"], true, "{items}");
        assert!(p.get("_errors").is_none(), "{items}");
    }
    assert_eq!(items["p3007"]["app"], "app");
    assert_eq!(items["p3006"]["ext_spam"], "eggs", "{items}");
    assert_eq!(items["p3007"]["ext_spam"], "eggs", "{items}");
    assert_eq!(items["p3007"]["only_3007"], 1, "{items}");
    assert!(items["p3006"].get("only_3007").is_none(), "{items}");
    assert_eq!(items["p3007"]["db"], "app");
    assert_eq!(items["p3007"]["nested"]["b"], 2);
    assert!(items["p3006"].get("app").is_none(), "{items}");

    // Pillar values in state templates, once Brine serves state files.
    let listed = salt_json(&env, &["p3007", "cp.list_states"]);
    if listed["p3007"]
        .as_array()
        .is_some_and(|l| l.iter().any(|s| s == "pillar_test"))
    {
        let shown = salt_json(&env, &["p*", "state.show_sls", "pillar_test"]);
        for (id, want) in [("p3006", "p3006-1-none"), ("p3007", "p3007-1-app")] {
            let name = &shown[id]["show_pillar"]["test"];
            assert!(
                name.as_array().is_some_and(|a| a.iter().any(|x| x["name"] == want)),
                "{id}: {shown}"
            );
        }
    } else {
        eprintln!("state templates not checked: the master serves no state files yet ({listed})");
    }

    // pillar.get reads the pillar the minion holds (compiled at start).
    let got = salt_json(&env, &["p*", "pillar.get", "nested:a"]);
    assert_eq!(got, serde_json::json!({"p3006": 1, "p3007": 1}));
    // The minion finds an integer key only if the master sent one: its
    // traverse_dict_and_list looks up `12345`, the int the CLI's argument
    // became. The text key `'678'` is therefore not found that way (the
    // default, "", as with Salt's master).
    let got = salt_json(&env, &["p*", "pillar.get", "12345"]);
    let luggage = serde_json::json!({"code": ["luggage"]});
    assert_eq!(got, serde_json::json!({"p3006": luggage, "p3007": luggage}));
    let got = salt_json(&env, &["p*", "pillar.get", "678"]);
    assert_eq!(got, serde_json::json!({"p3006": "", "p3007": ""}));

    // A change on the master reaches the minions after refresh_pillar.
    write(
        "common.sls",
        "who: {{ grains['id'] }}\nnested:\n  a: 1\nversion: 2\n{{ broken\n",
    );
    write("linux.sls", "linux: changed\n");
    // The minions do refresh, but their event.fire reports False (so the
    // CLI exits non-zero) in this setup: only the effect is checked.
    let _ = Command::new(brine_bin("salt"))
        .arg("-c")
        .arg(&env.conf_dir)
        .args(["p*", "saltutil.refresh_pillar", "-t", "60"])
        .output()
        .unwrap();
    let want = serde_json::json!({"p3006": "changed", "p3007": "changed"});
    let mut got = Json::Null;
    for _ in 0..30 {
        got = salt_json(&env, &["p*", "pillar.get", "linux"]);
        if got == want {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(got, want);
    let errs = salt_json(&env, &["p*", "pillar.get", "_errors"]);
    for id in ["p3006", "p3007"] {
        assert_eq!(
            errs[id],
            serde_json::json!(["Rendering SLS 'common' failed. Please see master log for details."]),
            "{errs}"
        );
    }

    // The minion data cache has grains and the compiled pillar.
    let data = std::fs::read(env.root().join("cache/minions/p3007/data.p")).unwrap();
    let data = Value::decode(&data).unwrap();
    let pillar = data.get("pillar").unwrap();
    assert_eq!(pillar.get("linux"), Some(&Value::from("changed")));
    assert_eq!(pillar.get("app"), Some(&Value::from("app")));
    let Value::Map(pairs) = pillar else {
        panic!("{pillar:?}")
    };
    assert!(
        pairs.iter().any(|(k, _)| *k == Value::Int(12345)),
        "the data cache keeps the integer key: {pillar:?}"
    );
}
