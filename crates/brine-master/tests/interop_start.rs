//! Real salt-minions 3006.30 and 3007.17 finish starting against Brine:
//! after `_auth` they ask for their pillar (answered with `send_private`),
//! fire their start events and send mine data; the master stores their
//! grains in the minion data cache.

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use brine_proto::Value;
use common::minion::{Minion, READY};
use common::*;

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
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let mut tags = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !tags.iter().any(|t: &String| t == &format!("salt/minion/{id}/start")) {
        if let Ok(n) = sub.read(&mut chunk) {
            buf.extend_from_slice(&chunk[..n]);
        }
        while let Ok(Some(len)) = brine_proto::msgpack::value_len(&buf) {
            let frame: Vec<u8> = buf.drain(..len).collect();
            let (tag, _) = brine_proto::event::unpack_frame(&frame).unwrap();
            tags.push(tag);
        }
    }
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
