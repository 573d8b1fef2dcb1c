//! The Maintenance process and the MWorkers' stats against Python Salt's
//! master on the same configuration: presence events (minions in the data
//! cache whose address holds a connection to publish_port, made here from
//! 127.0.0.x source addresses), AES rotation every `publish_session` with
//! `ping_on_rotate`, and `master_stats` events.

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use brine_proto::Value;
use common::pysalt::PyMaster;
use common::*;

/// A subscriber to either master's event bus: frames bare (Brine, and
/// Python 3007.17) or length-prefixed, told apart by the first byte (an
/// event is a msgpack map).
struct Bus {
    sock: UnixStream,
    buf: Vec<u8>,
    prefixed: Option<bool>,
}

impl Bus {
    fn connect(env: &Env) -> Bus {
        let path = env.sock("master_event_pub.ipc");
        let mut sock = None;
        assert!(
            wait_until(Duration::from_secs(20), || {
                sock = UnixStream::connect(&path).ok();
                sock.is_some()
            }),
            "no event bus at {}",
            path.display()
        );
        Bus {
            sock: sock.unwrap(),
            buf: Vec::new(),
            prefixed: None,
        }
    }

    fn next(&mut self, deadline: Instant) -> Option<(String, Value)> {
        let mut chunk = [0u8; 65536];
        loop {
            if self.prefixed.is_none() && !self.buf.is_empty() {
                self.prefixed = Some(!matches!(self.buf[0], 0x80..=0x8f | 0xde | 0xdf));
            }
            if let Some(prefixed) = self.prefixed {
                if let Some(frame) = brine_proto::event::take_frame(&mut self.buf, prefixed) {
                    match brine_proto::event::unpack_frame(&frame) {
                        Ok(event) => return Some(event),
                        Err(_) => continue,
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }

    /// The first event within `timeout` for which `want` holds.
    fn wait(&mut self, timeout: Duration, mut want: impl FnMut(&str, &Value) -> bool) -> Option<(String, Value)> {
        let deadline = Instant::now() + timeout;
        while let Some((tag, data)) = self.next(deadline) {
            if want(&tag, &data) {
                return Some((tag, without_stamp(data)));
            }
        }
        None
    }
}

/// Event data without `_stamp`, lists of text sorted (Salt's come in set
/// order).
fn without_stamp(mut data: Value) -> Value {
    data.remove("_stamp");
    if let Value::Map(pairs) = &mut data {
        for (_, v) in pairs.iter_mut() {
            if let Value::Array(items) = v {
                items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    data
}

fn list(ids: &[&str]) -> Value {
    Value::Array(ids.iter().map(|s| Value::from(*s)).collect())
}

/// A minion in the data cache with `ip` as its only `ipv4` grain.
fn cache_minion(env: &Env, id: &str, ip: &str) {
    let dir = env.root().join("cache/minions").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let data = Value::map([
        ("grains", Value::map([("id", Value::from(id)), ("ipv4", list(&[ip]))])),
        ("pillar", Value::Map(vec![])),
    ]);
    std::fs::write(dir.join("data.p"), data.to_file()).unwrap();
}

/// An accepted key for `id` (so that a `list` target names it).
fn accept_key(env: &Env, id: &str) {
    use std::os::unix::fs::PermissionsExt;
    let pki = env.root().join("pki");
    std::fs::create_dir_all(pki.join("minions")).unwrap();
    std::fs::set_permissions(&pki, std::fs::Permissions::from_mode(0o700)).unwrap();
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    std::fs::write(pki.join("minions").join(id), rsa.public_key_to_pem().unwrap()).unwrap();
}

/// One master, Brine's or Python's of `version`, started on `env`.
enum Running {
    Brine(#[allow(dead_code)] Master),
    Python(#[allow(dead_code)] PyMaster),
}

fn start(env: &Env, python: Option<&str>, vars: &[(&str, &str)]) -> Running {
    match python {
        None => {
            let mut m = env.start();
            m.wait_ready();
            Running::Brine(m)
        }
        Some(version) => Running::Python(PyMaster::start_with(env, version, vars)),
    }
}

const PRESENCE: &str = "presence_events: True\nloop_interval: 1\n";

/// The presence events one master fires as a minion connects and goes,
/// and its `presence-data` while the minion is connected.
fn presence_run(python: Option<&str>, source: &str) -> (Vec<(String, Value)>, Vec<u8>) {
    let env = Env::with_extra(2, PRESENCE);
    cache_minion(&env, "pa", source);
    cache_minion(&env, "pz", "127.0.0.254");
    let _master = start(&env, python, &[]);
    let mut bus = Bus::connect(&env);
    let presence = |tag: &str, _: &Value| tag.starts_with("salt/presence/");
    let mut seen = Vec::new();
    // Nothing connected: `present` only, every pass.
    let first = bus.wait(Duration::from_secs(30), presence).expect("a presence event");
    seen.push(first);
    let conn = connect_from(source, env.publish_port);
    let change = bus
        .wait(Duration::from_secs(30), |t, _| t == "salt/presence/change")
        .expect("salt/presence/change");
    seen.push(change);
    seen.push(bus.wait(Duration::from_secs(10), presence).expect("present"));
    // presence-data is written after the events of a pass.
    std::thread::sleep(Duration::from_millis(300));
    let file = std::fs::read(env.root().join("cache/presence-data")).expect("presence-data");
    drop(conn);
    let lost = bus
        .wait(Duration::from_secs(30), |t, _| t == "salt/presence/change")
        .expect("salt/presence/change when the minion goes");
    seen.push(lost);
    seen.push(bus.wait(Duration::from_secs(10), presence).expect("present"));
    (seen, file)
}

#[test]
fn presence_events_are_salts() {
    let (brine, file) = presence_run(None, "127.0.0.21");
    let want = vec![
        (
            "salt/presence/present".to_string(),
            Value::map([("present", list(&[]))]),
        ),
        (
            "salt/presence/change".into(),
            Value::map([("new", list(&["pa"])), ("lost", list(&[]))]),
        ),
        ("salt/presence/present".into(), Value::map([("present", list(&["pa"]))])),
        (
            "salt/presence/change".into(),
            Value::map([("new", list(&[])), ("lost", list(&["pa"]))]),
        ),
        ("salt/presence/present".into(), Value::map([("present", list(&[]))])),
    ];
    assert_eq!(brine, want);
    // presence-data as Salt's CacheDisk writes it, which Python reads.
    let cache = Value::decode(&file).unwrap();
    assert_eq!(
        cache.get("CacheDisk_data"),
        Some(&Value::map([("present", list(&["pa"]))]))
    );
    assert!(matches!(
        cache.get("CacheDisk_cachetime").and_then(|t| t.get("present")),
        Some(Value::F64(_))
    ));
    let copy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(copy.path(), &file).unwrap();
    let out = std::process::Command::new(common::minion::venv("3007.17").join("bin/python"))
        .args([
            "-c",
            "import sys, salt.utils.cache as c; \
             print(sorted(c.CacheFactory.factory('disk', 3600, minion_cache_path=sys.argv[1])['present']))",
        ])
        .arg(copy.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "['pa']", "{out:?}");

    // Python's master on the same work: the same events, a file of the
    // same shape.
    let (python, py_file) = presence_run(Some("3007.17"), "127.0.0.22");
    assert_eq!(python, want);
    let py_cache = Value::decode(&py_file).unwrap();
    assert_eq!(py_cache.get("CacheDisk_data"), cache.get("CacheDisk_data"));
    assert!(matches!(
        py_cache.get("CacheDisk_cachetime").and_then(|t| t.get("present")),
        Some(Value::F64(_))
    ));
}

/// The master's AES key rotations and the jobs it publishes within
/// `timeout`, with `publish_session: 2` and `ping_on_rotate: True`, and a
/// connected minion `ra` (accepted key, cached grains).
fn rotation_run(python: Option<&str>, source: &str, timeout: Duration) -> (usize, Vec<Value>) {
    let env = Env::with_extra(2, "publish_session: 2\nloop_interval: 1\nping_on_rotate: True\n");
    cache_minion(&env, "ra", source);
    accept_key(&env, "ra");
    let conf = env.conf_dir.join("master").display().to_string();
    let _master = start(&env, python, &[("SALT_MASTER_CONFIG", &conf)]);
    let mut bus = Bus::connect(&env);
    let _conn = connect_from(source, env.publish_port);
    let (mut rotations, mut jobs) = (0, Vec::new());
    let deadline = Instant::now() + timeout;
    while let Some((tag, data)) = bus.next(deadline) {
        if tag == "key" {
            assert_eq!(without_stamp(data), Value::map([("rotate_aes_key", Value::Bool(true))]));
            rotations += 1;
        } else if tag.starts_with("salt/job/") && tag.ends_with("/new") {
            jobs.push(without_stamp(data));
        }
        if rotations >= 2 && jobs.len() >= 2 {
            break;
        }
    }
    (rotations, jobs)
}

#[test]
fn publish_session_rotates_the_aes_key_and_pings() {
    let (rotations, jobs) = rotation_run(None, "127.0.0.23", Duration::from_secs(30));
    assert!(rotations >= 2, "rotations every 2 s: {rotations}");
    assert!(jobs.len() >= 2, "a test.ping after each rotation: {jobs:?}");
    for job in &jobs {
        assert_eq!(job.get("fun"), Some(&Value::from("test.ping")), "{job:?}");
        assert_eq!(job.get("tgt"), Some(&list(&["ra"])), "{job:?}");
        assert_eq!(job.get("tgt_type"), Some(&Value::from("list")), "{job:?}");
        assert_eq!(job.get("minions"), Some(&list(&["ra"])), "{job:?}");
        assert_eq!(job.get("arg"), Some(&list(&[])), "{job:?}");
    }

    // Salt 3006 rotates on publish_session and pings the same way (its
    // LocalClient reads the config SALT_MASTER_CONFIG names).
    let (rotations, py_jobs) = rotation_run(Some("3006.30"), "127.0.0.24", Duration::from_secs(30));
    assert!(rotations >= 2, "3006.30 rotations: {rotations}");
    assert!(!py_jobs.is_empty(), "3006.30 pings");
    for key in ["fun", "tgt", "tgt_type", "minions", "arg"] {
        assert_eq!(py_jobs[0].get(key), jobs[0].get(key), "{key}: {py_jobs:?}");
    }
    // Salt 3007 does not (outside cluster mode).
    let (rotations, py_jobs) = rotation_run(Some("3007.17"), "127.0.0.25", Duration::from_secs(8));
    assert_eq!((rotations, py_jobs.len()), (0, 0));
}

/// No periodic rotation with `publish_session: 0`, nor when
/// `maintenance_interval` is shorter than `publish_session` (Salt 3006's
/// Maintenance process is replaced, and its clock restarted, first; the
/// defaults, 86400 and 3600, are such a case).
#[test]
fn no_rotation_when_publish_session_is_off_or_outlives_maintenance() {
    for extra in ["publish_session: 0\n", "publish_session: 2\nmaintenance_interval: 1\n"] {
        let env = Env::with_extra(2, &format!("{extra}loop_interval: 1\n"));
        let mut m = env.start();
        m.wait_ready();
        let mut bus = Bus::connect(&env);
        assert_eq!(bus.wait(Duration::from_secs(5), |t, _| t == "key"), None, "{extra}");
    }
}

/// The first stats event of a master with one MWorker, `master_stats:
/// True` and `master_stats_event_iter: 1`, while clear `ping` requests
/// come in.
fn stats_run(python: Option<&str>) -> (String, Value) {
    let env = Env::with_extra(1, "master_stats: True\nmaster_stats_event_iter: 1\n");
    let _master = start(&env, python, &[]);
    let mut bus = Bus::connect(&env);
    let addr = brine_client::MasterAddr::new("127.0.0.1", env.ret_port, None);
    let mut req = brine_client::ReqChannel::new(addr, Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let ping = Value::map([("cmd", Value::from("ping")), ("x", Value::Int(1))]);
        let reply = req.send_clear(ping).expect("a reply to ping");
        assert_eq!(reply.get("x"), Some(&Value::Int(1)), "{reply:?}");
        let found = bus.wait(Duration::from_millis(400), |t, _| t.starts_with("salt/stats/"));
        if let Some(found) = found {
            return found;
        }
    }
    panic!("no stats event");
}

#[test]
fn master_stats_events_are_salts() {
    let (tag, data) = stats_run(None);
    assert_eq!(tag, "salt/stats/MWorker-0");
    assert_eq!(data.get("worker"), Some(&Value::from("MWorker-0")));
    assert!(matches!(data.get("time"), Some(Value::F64(t)) if *t > 1.0), "{data:?}");
    let ping = data.get("stats").and_then(|s| s.get("ping")).expect("ping counted");
    assert!(matches!(ping.get("mean"), Some(Value::F64(m)) if *m >= 0.0), "{data:?}");
    assert!(matches!(ping.get("runs"), Some(Value::Int(n)) if *n >= 1), "{data:?}");

    let (py_tag, py_data) = stats_run(Some("3007.17"));
    assert_eq!(py_tag, tag);
    let keys = |v: &Value| match v {
        Value::Map(pairs) => pairs.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        _ => vec![],
    };
    assert_eq!(keys(&py_data), keys(&data), "{py_data:?}");
    assert_eq!(py_data.get("worker"), data.get("worker"));
    let py_ping = py_data.get("stats").and_then(|s| s.get("ping")).expect("ping counted");
    assert_eq!(keys(py_ping), keys(ping), "{py_data:?}");
}

/// With a real minion: presence names it, and after a rotation asked for
/// with `.dfn` the ping makes it re-authenticate at once (the ping itself
/// is lost on it: it was sealed with the key the minion did not have yet),
/// after which jobs reach it again.
#[test]
fn a_real_minion_is_present_and_reauthenticates_after_ping_on_rotate() {
    use common::minion::{run_cli, Minion, READY};
    let env = Env::with_extra(
        2,
        "auto_accept: True\nid: m_maint\npresence_events: True\nloop_interval: 1\nping_on_rotate: True\n",
    );
    let mut m = env.start();
    m.wait_ready();
    let mut bus = Bus::connect(&env);
    let minion = Minion::start(&env, "3007.17", "rm1", "");
    assert!(minion.wait_log(READY, Duration::from_secs(90)), "{}", minion.log());
    let change = bus.wait(Duration::from_secs(30), |t, d| {
        t == "salt/presence/change" && d.get("new") == Some(&list(&["rm1"]))
    });
    assert!(change.is_some(), "rm1 is new");

    // salt-key's drop file: mode 0400, the master's id.
    let dfn = env.root().join("cache/.dfn");
    std::fs::write(&dfn, "m_maint").unwrap();
    std::fs::set_permissions(&dfn, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
    assert!(
        bus.wait(Duration::from_secs(10), |t, _| t == "key").is_some(),
        "rotated"
    );
    let ping = bus.wait(Duration::from_secs(10), |t, d| {
        t.ends_with("/new") && d.get("fun") == Some(&Value::from("test.ping"))
    });
    let (_, ping) = ping.expect("test.ping after the rotation");
    assert_eq!(ping.get("tgt"), Some(&list(&["rm1"])));
    let reauth = bus.wait(Duration::from_secs(30), |t, d| {
        t == "salt/auth" && d.get("id") == Some(&Value::from("rm1")) && d.get("act") == Some(&Value::from("accept"))
    });
    assert!(reauth.is_some(), "rm1 re-authenticates: {}", minion.log());
    let (out, err, code) = run_cli(&env.conf_dir, "salt", &["rm1", "test.ping", "-t", "30"]);
    assert_eq!((code, out.as_str()), (0, "rm1:\n    True\n"), "{err}");
    m.remember_tree();
}
