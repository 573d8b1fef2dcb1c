//! What a peer holding one accepted minion key may send on ret_port, and
//! what the master must do with it: answer as Salt does (or refuse and log
//! it), keep every MWorker alive, and record nothing forged.

mod common;

use brine_proto::Value;
use common::aes::accepted_minion;
use common::attack::{Watch, BYSTANDER};
use common::read;
use common::requests::{env_with_tree, load, s};

/// Compound and grain targets a hostile minion can put in `_mine_get`:
/// parentheses nested far past Python's 200 levels, a long `not` run, and
/// a grain target of 100,000 parts. Salt answers `{}`; a recursive parser
/// without a limit overflows the MWorker's stack (SIGABRT) instead.
#[test]
fn deep_and_long_targets_cost_no_worker() {
    let env = env_with_tree(2, "");
    let mut master = env.start();
    master.wait_ready();
    let watch = Watch::start(&env, &master);
    let m = accepted_minion(&env, "hostile");
    let port = env.ret_port;
    let mine_get = |tgt: &str, tgt_type: &str| {
        m.call(
            port,
            &load(
                "_mine_get",
                &[("tgt", s(tgt)), ("fun", s("test.ping")), ("tgt_type", s(tgt_type))],
            ),
        )
    };
    let deep = format!("{}hostile{}", "( ".repeat(5000), " )".repeat(5000));
    let nots = format!("{}hostile", "not ".repeat(100_000));
    let long_grain = format!("os:{}", vec!["x"; 100_000].join(":"));
    let chain = vec!["hostile"; 20_000].join(" and ");
    for (tgt, tgt_type) in [
        (deep.as_str(), "compound"),
        (nots.as_str(), "compound"),
        (chain.as_str(), "compound"),
        (long_grain.as_str(), "grain"),
        (long_grain.as_str(), "pillar"),
    ] {
        for _ in 0..3 {
            assert_eq!(mine_get(tgt, tgt_type), Value::Map(Vec::new()), "{tgt_type}");
        }
    }
    // Still serving, with the same workers: none died and was respawned.
    assert_eq!(mine_get("hostile", "glob"), Value::Map(Vec::new()));
    watch.finish();
    assert!(
        read(&env.log_file()).contains("deeper than 200 levels"),
        "the refusal is logged"
    );
}

/// `_auth` with ids carrying control characters: an id with a newline
/// would write a forged line into the master log and list a fake minion in
/// `salt-key -L`. Refused as an invalid id (`ret: False`), no key written,
/// and the log line shows the id escaped.
#[test]
fn ids_with_control_characters_are_refused_at_auth() {
    let env = env_with_tree(1, "");
    let mut master = env.start();
    master.wait_ready();
    let watch = Watch::start(&env, &master);
    let pem = {
        let k = brine_proto::crypto::PrivateKey::generate(2048).unwrap();
        String::from_utf8(k.public_key().to_pem_spki().unwrap()).unwrap()
    };
    for id in ["x\nminion1", "x\r[CRITICAL] forged", "a\u{1b}[31mred"] {
        let auth = Value::map([
            ("enc", Value::from("clear")),
            (
                "load",
                Value::map([
                    ("cmd", Value::from("_auth")),
                    ("id", Value::from(id)),
                    ("nonce", Value::from(brine_proto::crypto::new_nonce())),
                    ("pub", Value::from(pem.as_str())),
                ]),
            ),
            ("version", Value::Int(3)),
        ]);
        let reply = Value::decode(&common::aes::ask(env.ret_port, &[auth.to_network()])).unwrap();
        let load = Value::decode(reply.get("load").unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(load.get("ret"), Some(&Value::Bool(false)), "{id:?}");
    }
    for dir in ["minions", "minions_pre", "minions_rejected", "minions_denied"] {
        let listed: Vec<_> = std::fs::read_dir(env.root().join("pki").join(dir))
            .map(|d| d.flatten().map(|e| e.file_name()).filter(|n| n != BYSTANDER).collect())
            .unwrap_or_default();
        assert!(listed.is_empty(), "{dir}: {listed:?}");
    }
    common::wait_until(std::time::Duration::from_secs(5), || {
        read(&env.log_file()).contains("invalid id")
    });
    let log = read(&env.log_file());
    assert!(log.contains(r#"invalid id "x\nminion1""#), "{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("minion1") || l.contains("\u{1b}")),
        "{log}"
    );
    assert!(!log.contains("\r"), "{log}");
    watch.finish();
}

/// A master with `extra` config and its bystander, a subscription to its
/// event bus made after the bystander signed in (its `salt/auth` and
/// `salt/key` are legitimate), and the hostile minion.
fn on_the_bus(
    extra: &str,
) -> (
    common::Env,
    common::Master,
    Watch,
    brine_client::EventBus,
    common::aes::AesMinion,
) {
    let env = env_with_tree(1, extra);
    let mut master = env.start();
    master.wait_ready();
    let watch = Watch::start(&env, &master);
    let cfg = brine_config::MasterConfig::load(&env.conf_dir).unwrap();
    let bus = brine_client::EventBus::subscribe(&brine_client::BusAddr::from_config(&cfg)).unwrap();
    let m = accepted_minion(&env, "hostile");
    (env, master, watch, bus, m)
}

/// `_minion_event` from a hostile minion: reserved tags given whole, built
/// with `pretag`, or naming another minion reach nothing on the master's
/// bus; the minion's own tags do.
#[test]
fn forged_events_never_reach_the_bus() {
    let (env, _master, watch, mut bus, m) = on_the_bus("");
    let ev = |tag: &str| {
        Value::map([
            ("tag", Value::from(tag)),
            ("data", Value::map([("forged", Value::Bool(true))])),
        ])
    };
    let jid = "20250101000000000001";
    let forged = [
        "salt/key",
        "salt/auth",
        &format!("salt/job/{jid}/publish"),
        &format!("salt/job/{jid}/ret/victim"),
        "salt/minion/victim/start",
        "",
    ]
    .map(String::from);
    // Each whole, and as the tail of a pretag that makes it reserved.
    let mut events: Vec<Value> = forged.iter().map(|t| ev(t)).collect();
    events.push(ev("key"));
    events.push(ev(&format!("{jid}/ret/victim")));
    m.call(
        env.ret_port,
        &load(
            "_minion_event",
            &[("events", Value::Array(events)), ("pretag", s("salt"))],
        ),
    );
    let under = |pretag: &str, tails: &[String]| {
        let events = tails.iter().map(|t| ev(t)).collect();
        m.call(
            env.ret_port,
            &load(
                "_minion_event",
                &[("events", Value::Array(events)), ("pretag", s(pretag))],
            ),
        );
    };
    under("salt/job", &[format!("{jid}/publish"), format!("{jid}/ret/victim")]);
    under("salt/minion", &["victim/start".to_string()]);
    for t in &forged {
        m.call(
            env.ret_port,
            &load("_minion_event", &[("tag", s(t)), ("data", Value::Map(vec![]))]),
        );
    }
    // The control: the minion's own start event arrives.
    m.call(
        env.ret_port,
        &load(
            "_minion_event",
            &[("tag", s("salt/minion/hostile/start")), ("data", Value::Map(vec![]))],
        ),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = Vec::new();
    while let Some(e) = bus.next(deadline).unwrap() {
        let done = e.tag == "salt/minion/hostile/start";
        seen.push(e.tag);
        if done {
            break;
        }
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("salt/minion/hostile/start"),
        "{seen:?}"
    );
    for t in &seen {
        assert!(
            !forged.contains(t) && t != "salt/",
            "forged event on the bus: {t:?} (all: {seen:?})"
        );
    }
    assert!(read(&env.log_file()).contains("refused: a tag only the master fires"));
    watch.finish();
}

/// Events a minion sends larger than `max_event_size` reach the bus
/// trimmed as Salt trims them (`salt.utils.dicttrim`: large values become
/// "VALUE_TRIMMED"), small ones whole; the first 1000 events of a
/// request, the rest dropped and logged.
#[test]
fn big_events_are_trimmed_and_counted() {
    let (env, _master, watch, mut bus, m) = on_the_bus("max_event_size: 65536\n");
    let big = "x".repeat(1 << 20);
    m.call(
        env.ret_port,
        &load(
            "_minion_event",
            &[
                ("tag", s("custom/big")),
                ("data", Value::map([("blob", s(&big)), ("keep", s("small"))])),
            ],
        ),
    );
    let many: Vec<Value> = (0..1500)
        .map(|i| {
            Value::map([
                ("tag", s(&format!("custom/many/{i}"))),
                ("data", Value::Map(Vec::new())),
            ])
        })
        .collect();
    m.call(env.ret_port, &load("_minion_event", &[("events", Value::Array(many))]));
    m.call(
        env.ret_port,
        &load(
            "_minion_event",
            &[("tag", s("custom/done")), ("data", Value::Map(Vec::new()))],
        ),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut big_seen, mut many_seen) = (None, 0);
    while let Some(e) = bus.next(deadline).unwrap() {
        match e.tag.as_str() {
            "custom/big" => big_seen = Some(e.data),
            "custom/done" => break,
            t if t.starts_with("custom/many/") => many_seen += 1,
            _ => {}
        }
    }
    // With `tag`, Salt fires the whole load: the minion's data under "data".
    let load = big_seen.expect("the big event arrives, trimmed");
    let data = load.get("data").expect("the load's data");
    assert_eq!(data.get("blob"), Some(&s("VALUE_TRIMMED")));
    assert_eq!(data.get("keep"), Some(&s("small")));
    assert_eq!(many_seen, 1000, "the first 1000 events of a request, no more");
    assert!(read(&env.log_file()).contains("1500 events"), "the refusal is logged");
    watch.finish();
}
