//! The client against a fake master: a ZeroMQ ROUTER on a free loopback
//! port standing for the request port, and a unix socket standing for the
//! event bus. The fake checks what the client sends and answers what a
//! master answers.

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use brine_client::{BusAddr, ClientError, LocalClient, MasterAddr, Publish, UserKey};
use brine_config::MasterConfig;
use brine_proto::event::{frame, pack_event, prefixed_frame};
use brine_proto::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn has_ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// A ROUTER bound on `url`: for each entry of `replies`, take one request
/// and answer it (`None`: leave it unanswered). `after(i)` runs after
/// answering request `i`. Returns the loads received.
fn fake_master(
    url: &str,
    ipv6: bool,
    replies: Vec<Option<Value>>,
    mut after: impl FnMut(usize) + Send + 'static,
) -> JoinHandle<Vec<Value>> {
    let ctx = zmq::Context::new();
    let router = ctx.socket(zmq::ROUTER).unwrap();
    router.set_ipv6(ipv6).unwrap();
    router.set_linger(0).unwrap();
    router.set_rcvtimeo(20_000).unwrap();
    router.bind(url).unwrap();
    std::thread::spawn(move || {
        let _ctx = ctx;
        let mut got = Vec::new();
        for (i, reply) in replies.into_iter().enumerate() {
            let parts = router.recv_multipart(0).expect("a request");
            let env = Value::decode(parts.last().unwrap()).unwrap();
            assert_eq!(env.get("enc").and_then(Value::as_str), Some("clear"));
            assert_eq!(env.get("version"), Some(&Value::Int(3)));
            got.push(env.get("load").cloned().unwrap());
            if let Some(r) = reply {
                let mut out = parts[..parts.len() - 1].to_vec();
                out.push(r.to_network());
                router.send_multipart(out, 0).unwrap();
            }
            after(i);
        }
        got
    })
}

fn strs(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|s| Value::from(*s)).collect())
}

fn published(jid: Option<&str>, minions: &[&str]) -> Value {
    Value::map([
        ("enc", Value::from("clear")),
        (
            "load",
            Value::map([
                ("jid", jid.map(Value::from).unwrap_or(Value::Nil)),
                ("minions", strs(minions)),
                ("missing", strs(&[])),
            ]),
        ),
    ])
}

fn client(port: u16) -> LocalClient {
    LocalClient::new(
        MasterAddr::new("127.0.0.1", port, None),
        UserKey::new("alice", "s3cret\n"),
    )
    .request_timeout(Duration::from_secs(10))
}

/// A master config on `port` whose sock_dir and cachedir are in `dir`.
fn config(dir: &Path, interface: &str, port: u16, extra: &str) -> MasterConfig {
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(dir.join("sock")).unwrap();
    std::fs::create_dir_all(dir.join("cache")).unwrap();
    std::fs::write(
        conf.join("master"),
        format!(
            "interface: '{interface}'\nret_port: {port}\nsock_dir: {d}/sock\ncachedir: {d}/cache\nuser: salt\n{extra}",
            d = dir.display()
        ),
    )
    .unwrap();
    MasterConfig::load(&conf).unwrap()
}

#[test]
fn publish_sends_salts_load_and_reads_the_job() {
    let port = free_port();
    let server = fake_master(
        &format!("tcp://127.0.0.1:{port}"),
        false,
        vec![Some(published(Some("20260101000000000001"), &["a", "b"]))],
        |_| {},
    );
    let job = Publish::new("web*", "test.arg")
        .args(vec![Value::Int(1), Value::from("two")])
        .tgt_type("pcre")
        .kwarg("delimiter", ":");
    let got = client(port).publish(&job).unwrap().unwrap();
    assert_eq!(got.jid, "20260101000000000001");
    assert_eq!(got.minions, ["a", "b"]);
    assert!(got.missing.is_empty());
    let loads = server.join().unwrap();
    let keys: Vec<&str> = match &loads[0] {
        Value::Map(p) => p.iter().filter_map(|(k, _)| k.as_str()).collect(),
        _ => panic!(),
    };
    assert_eq!(
        keys,
        ["cmd", "tgt", "fun", "arg", "key", "tgt_type", "ret", "jid", "kwargs", "user"]
    );
    let l = &loads[0];
    assert_eq!(l.get("cmd").and_then(Value::as_str), Some("publish"));
    assert_eq!(l.get("tgt").and_then(Value::as_str), Some("web*"));
    assert_eq!(l.get("tgt_type").and_then(Value::as_str), Some("pcre"));
    assert_eq!(
        l.get("arg"),
        Some(&Value::Array(vec![Value::Int(1), Value::from("two")]))
    );
    assert_eq!(l.get("key").and_then(Value::as_str), Some("s3cret"));
    assert_eq!(l.get("user").and_then(Value::as_str), Some("alice"));
    assert_eq!(
        l.get("kwargs").and_then(|k| k.get("delimiter")).and_then(Value::as_str),
        Some(":")
    );
}

#[test]
fn no_matched_minion_and_refusals() {
    let port = free_port();
    let refusal = Value::map([(
        "error",
        Value::map([
            ("name", Value::from("AuthenticationError")),
            ("message", Value::from("Authentication error occurred.")),
        ]),
    )]);
    let server = fake_master(
        &format!("tcp://127.0.0.1:{port}"),
        false,
        vec![
            Some(published(None, &[])),
            Some(refusal),
            Some(Value::from("payload and load must be a dict")),
        ],
        |_| {},
    );
    let mut c = client(port);
    let job = Publish::new("nobody", "test.ping");
    assert_eq!(c.publish(&job).unwrap(), None);
    match c.publish(&job) {
        Err(ClientError::Refused { name, message }) => {
            assert_eq!(
                (name.as_str(), message.as_str()),
                ("AuthenticationError", "Authentication error occurred.")
            )
        }
        other => panic!("{other:?}"),
    }
    match c.publish(&job) {
        Err(ClientError::Unexpected(v)) => assert_eq!(v.as_str(), Some("payload and load must be a dict")),
        other => panic!("{other:?}"),
    }
    server.join().unwrap();
}

#[test]
fn a_timeout_is_reported_and_the_next_request_reconnects() {
    let port = free_port();
    let server = fake_master(
        &format!("tcp://127.0.0.1:{port}"),
        false,
        vec![None, Some(published(Some("20260101000000000002"), &["a"]))],
        |_| {},
    );
    let mut c = client(port).request_timeout(Duration::from_millis(300));
    let job = Publish::new("*", "test.ping");
    let t0 = Instant::now();
    match c.publish(&job) {
        Err(ClientError::Timeout { timeout, .. }) => assert_eq!(timeout, Duration::from_millis(300)),
        other => panic!("{other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(c.publish(&job).unwrap().unwrap().jid, "20260101000000000002");
    assert_eq!(server.join().unwrap().len(), 2);
}

#[test]
fn ipv6_master_is_reached_in_brackets() {
    if !has_ipv6_loopback() {
        eprintln!("skipped: this machine has no ::1");
        return;
    }
    let port = free_port();
    let server = fake_master(
        &format!("tcp://[::1]:{port}"),
        true,
        vec![Some(published(Some("20260101000000000003"), &["a"]))],
        |_| {},
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "::1", port, "");
    let addr = MasterAddr::ret_port(&cfg);
    assert_eq!(addr.url(), format!("tcp://[::1]:{port}"));
    let mut c = LocalClient::new(addr, UserKey::new("root", "k")).request_timeout(Duration::from_secs(10));
    assert_eq!(
        c.publish(&Publish::new("*", "test.ping")).unwrap().unwrap().minions,
        ["a"]
    );
    server.join().unwrap();
}

#[test]
fn user_keys_come_from_cachedir() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "0.0.0.0", 4506, "");
    assert_eq!(MasterAddr::ret_port(&cfg).url(), "tcp://127.0.0.1:4506");
    assert!(matches!(
        UserKey::of_user(&cfg, "salt"),
        Err(ClientError::UserKey { .. })
    ));
    std::fs::write(cfg.cachedir.join(".salt_key"), "abc\n").unwrap();
    let k = UserKey::of_user(&cfg, "salt").unwrap();
    assert_eq!(k.user(), "salt");
    // The key itself is not shown in debug output.
    assert!(!format!("{k:?}").contains("abc"));
}

/// Serve the event bus at `path`: accept one subscriber and hand it to
/// the returned channel's receiver.
fn fake_bus(path: &Path) -> std::sync::mpsc::Receiver<std::os::unix::net::UnixStream> {
    let listener = UnixListener::bind(path).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((s, _)) = listener.accept() {
            let _ = tx.send(s);
        }
    });
    rx
}

fn ret_event(jid: &str, id: &str, ret: Value, prefixed: bool) -> Vec<u8> {
    let ev = pack_event(
        &format!("salt/job/{jid}/ret/{id}"),
        &Value::map([("id", Value::from(id)), ("return", ret), ("retcode", Value::Int(0))]),
    );
    if prefixed {
        prefixed_frame(&ev)
    } else {
        frame(&ev)
    }
}

fn returns_as_they_come(prefixed: bool) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let extra = if prefixed {
        "event_publisher_length_prefix: True\n"
    } else {
        ""
    };
    let cfg = config(dir.path(), "127.0.0.1", port, extra);
    let bus = BusAddr::from_config(&cfg);
    assert_eq!(bus.length_prefixed, prefixed);
    let subscribers = fake_bus(&bus.path);
    let jid = "20260101000000000004";
    let server = fake_master(
        &format!("tcp://127.0.0.1:{port}"),
        false,
        vec![Some(published(Some(jid), &["a", "b", "c"]))],
        move |_| {
            let mut s = subscribers
                .recv_timeout(Duration::from_secs(5))
                .expect("subscribed first");
            let other = pack_event(
                "salt/job/20260101000000000009/ret/a",
                &Value::map([("return", Value::Bool(false))]),
            );
            let mut bytes = if prefixed {
                prefixed_frame(&other)
            } else {
                frame(&other)
            };
            bytes.extend(ret_event(jid, "b", Value::from("bee"), prefixed));
            bytes.extend(ret_event(jid, "b", Value::from("again"), prefixed));
            bytes.extend(ret_event(jid, "a", Value::Bool(true), prefixed));
            // Split mid-frame: the subscriber reassembles.
            let (one, two) = bytes.split_at(bytes.len() - 7);
            s.write_all(one).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(two).unwrap();
            // Keep the connection open past the client's wait.
            std::thread::sleep(Duration::from_secs(2));
        },
    );
    let mut c = LocalClient::from_config(&cfg, UserKey::new("root", "k"));
    let t0 = Instant::now();
    let mut run = c
        .run(&Publish::new("*", "test.ping"), Duration::from_millis(800))
        .unwrap()
        .unwrap();
    assert_eq!(run.job().jid, jid);
    let mut got = Vec::new();
    while let Some(r) = run.next_return().unwrap() {
        got.push((r.minion.clone(), r.ret().clone()));
    }
    assert_eq!(
        got,
        [
            ("b".to_string(), Value::from("bee")),
            ("a".to_string(), Value::Bool(true))
        ]
    );
    assert_eq!(run.returned(), ["b", "a"]);
    assert_eq!(run.missing(), ["c"]);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    server.join().unwrap();
}

#[test]
fn returns_as_they_come_bare_frames() {
    returns_as_they_come(false);
}

#[test]
fn returns_as_they_come_length_prefixed_frames() {
    returns_as_they_come(true);
}

#[test]
fn the_wait_ends_when_every_expected_minion_returned() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), "127.0.0.1", port, "");
    let subscribers = fake_bus(&BusAddr::from_config(&cfg).path);
    let jid = "20260101000000000005";
    let server = fake_master(
        &format!("tcp://127.0.0.1:{port}"),
        false,
        vec![Some(published(Some(jid), &["a"]))],
        move |_| {
            let mut s = subscribers.recv_timeout(Duration::from_secs(5)).unwrap();
            s.write_all(&ret_event(jid, "a", Value::Bool(true), false)).unwrap();
            std::thread::sleep(Duration::from_secs(3));
        },
    );
    let mut c = LocalClient::from_config(&cfg, UserKey::new("root", "k"));
    let t0 = Instant::now();
    let mut run = c
        .run(&Publish::new("a", "test.ping"), Duration::from_secs(30))
        .unwrap()
        .unwrap();
    assert_eq!(run.next_return().unwrap().unwrap().minion, "a");
    assert!(run.next_return().unwrap().is_none());
    assert!(run.missing().is_empty());
    assert!(t0.elapsed() < Duration::from_secs(2));
    server.join().unwrap();
}

#[test]
fn a_bus_that_sends_garbage_or_closes_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "127.0.0.1", 4506, "");
    let addr = BusAddr::from_config(&cfg);
    let subscribers = fake_bus(&addr.path);
    let mut bus = brine_client::EventBus::subscribe(&addr).unwrap();
    let mut s = subscribers.recv_timeout(Duration::from_secs(5)).unwrap();
    s.write_all(&[0xc1, 0, 0]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    assert!(matches!(bus.next(deadline), Err(ClientError::BusGarbage(_))));

    std::fs::remove_file(&addr.path).unwrap();
    let subscribers = fake_bus(&addr.path);
    let mut bus = brine_client::EventBus::subscribe(&addr).unwrap();
    drop(subscribers.recv_timeout(Duration::from_secs(5)).unwrap());
    assert!(matches!(bus.next(deadline), Err(ClientError::BusClosed)));

    std::fs::remove_file(&addr.path).unwrap();
    assert!(matches!(
        brine_client::EventBus::subscribe(&addr),
        Err(ClientError::BusConnect { .. })
    ));
    let mut c = LocalClient::new(MasterAddr::new("127.0.0.1", 1, None), UserKey::new("root", "k"));
    assert!(matches!(
        c.run(&Publish::new("*", "test.ping"), Duration::from_secs(1)),
        Err(ClientError::NoEventBus)
    ));
}

#[test]
fn runner_and_wheel_loads() {
    let port = free_port();
    let server = fake_master(
        &format!("tcp://127.0.0.1:{port}"),
        false,
        vec![
            Some(Value::map([
                ("tag", Value::from("salt/run/20260101000000000006")),
                ("jid", Value::from("20260101000000000006")),
            ])),
            Some(Value::map([
                ("tag", Value::from("salt/wheel/20260101000000000007")),
                (
                    "data",
                    Value::map([
                        ("return", Value::map([("minions", strs(&["a"]))])),
                        ("success", Value::Bool(true)),
                    ]),
                ),
            ])),
        ],
        |_| {},
    );
    let mut c = client(port);
    let started = c
        .runner("manage.up", vec![], vec![("timeout".into(), Value::Int(3))])
        .unwrap();
    assert_eq!(started.jid, "20260101000000000006");
    assert_eq!(started.tag, "salt/run/20260101000000000006");
    let data = c.wheel("key.list_all", vec![]).unwrap();
    assert_eq!(data.get("success"), Some(&Value::Bool(true)));
    let loads = server.join().unwrap();
    let runner = &loads[0];
    assert_eq!(runner.get("cmd").and_then(Value::as_str), Some("runner"));
    assert_eq!(runner.get("fun").and_then(Value::as_str), Some("manage.up"));
    assert_eq!(
        runner
            .get("kwarg")
            .and_then(|k| k.get("kwarg"))
            .and_then(|k| k.get("timeout")),
        Some(&Value::Int(3))
    );
    assert_eq!(runner.get("key").and_then(Value::as_str), Some("s3cret"));
    let wheel = &loads[1];
    assert_eq!(wheel.get("cmd").and_then(Value::as_str), Some("wheel"));
    assert_eq!(wheel.get("fun").and_then(Value::as_str), Some("key.list_all"));
    assert_eq!(wheel.get("user").and_then(Value::as_str), Some("alice"));
}
