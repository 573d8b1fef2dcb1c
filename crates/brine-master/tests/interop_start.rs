//! Real salt-minions 3006.30 and 3007.17 finish starting against Brine:
//! after `_auth` they ask for their pillar (answered with `send_private`),
//! fire their start events and send mine data; the master stores their
//! grains in the minion data cache.

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use brine_proto::Value;
use common::minion::{run_cli, Minion, READY};
use common::*;

/// The tags of the events read from `sub` until `want` is among them or
/// `timeout` passes.
fn tags_until(sub: &mut UnixStream, want: &str, timeout: Duration) -> Vec<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let mut tags = Vec::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && !tags.iter().any(|t: &String| t == want) {
        if let Ok(n) = sub.read(&mut chunk) {
            buf.extend_from_slice(&chunk[..n]);
        }
        while let Ok(Some(len)) = brine_proto::msgpack::value_len(&buf) {
            let frame: Vec<u8> = buf.drain(..len).collect();
            let (tag, _) = brine_proto::event::unpack_frame(&frame).unwrap();
            tags.push(tag);
        }
    }
    tags
}

fn starts(version: &str) {
    let env = Env::with_extra(3, "auto_accept: True\n");
    let mut m = env.start();
    m.wait_ready();
    let mut sub = UnixStream::connect(env.sock("master_event_pub.ipc")).unwrap();
    sub.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let id = format!("start{}", &version[..4]);
    let minion = Minion::start(&env, version, &id, "");
    assert!(
        minion.wait_log(READY, Duration::from_secs(90)),
        "minion {version} never became ready:\n{}",
        minion.log()
    );
    assert!(!minion.log().contains("Pillar"), "no pillar errors:\n{}", minion.log());

    // salt/minion/<id>/start reached the bus with the minion's data.
    let tags = tags_until(&mut sub, &format!("salt/minion/{id}/start"), Duration::from_secs(20));
    assert!(
        tags.contains(&format!("salt/minion/{id}/start")),
        "events seen: {tags:?}"
    );
    assert!(tags.contains(&"minion_start".to_string()), "events seen: {tags:?}");

    // Grains in the minion data cache, as Salt's CLIs read them.
    let data = std::fs::read(env.root().join(format!("cache/minions/{id}/data.p"))).expect("data.p");
    let data = Value::decode(&data).unwrap();
    let grains = data.get("grains").expect("grains");
    assert_eq!(grains.get("id").and_then(Value::as_str), Some(id.as_str()));
    assert!(grains.get("os").is_some() && grains.get("saltversion").and_then(Value::as_str) == Some(version));
    assert_eq!(data.get("pillar"), Some(&Value::Map(vec![])));
    m.remember_tree();
}

#[test]
fn minion_3006_starts() {
    starts("3006.30");
}

#[test]
fn minion_3007_starts() {
    starts("3007.17");
}

/// Boot order does not matter (Salt's scenarios/reauth test): master and
/// minion stopped, the minion started first and left retrying `_auth`
/// for 30 seconds, then the master. The minion authenticates, fires its
/// start event and answers jobs.
#[test]
fn a_minion_started_before_the_master_is_served_once_it_is_up() {
    let env = Env::with_extra(3, "auto_accept: True\n");
    let mut m = env.start();
    m.wait_ready();
    let mut minion = Minion::start(&env, "3007.17", "early", "");
    assert!(minion.wait_log(READY, Duration::from_secs(90)), "{}", minion.log());
    let ping = || run_cli(&env.conf_dir, "salt", &["early", "test.ping", "-t", "10"]);
    let (out, err, code) = ping();
    assert_eq!((code, out.as_str()), (0, "early:\n    True\n"), "{err}");

    m.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(
        m.wait_exit(Duration::from_secs(20)).is_some(),
        "the master did not stop"
    );
    minion.restart();
    std::thread::sleep(Duration::from_secs(30));
    let mut m = env.start();
    m.wait_ready();
    let mut sub = UnixStream::connect(env.sock("master_event_pub.ipc")).unwrap();
    sub.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let tags = tags_until(&mut sub, "salt/minion/early/start", Duration::from_secs(60));
    assert!(
        tags.iter().any(|t| t == "salt/minion/early/start"),
        "events seen: {tags:?}\n{}",
        minion.log()
    );
    let answered = wait_until(Duration::from_secs(60), || ping().2 == 0);
    assert!(answered, "{:?}\n{}", ping(), minion.log());
    m.remember_tree();
}
