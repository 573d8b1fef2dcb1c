//! Bounded requests on ret_port: what a request may cost the master, and
//! how many keys and minions a flood of sign-ins may leave. In each attack
//! a real salt-minion (the bystander) keeps answering `test.ping`, and no
//! process of the master is replaced.

mod common;

use std::time::{Duration, Instant};

use brine_proto::crypto::{new_nonce, PrivateKey};
use brine_proto::Value;
use common::aes::{ask, ask_within, clear};
use common::attack::{Watch, BYSTANDER};
use common::*;

/// The MWorkers' pids, by title.
fn workers(env: &Env, master: &Master) -> Vec<i32> {
    let argv = format!("{BIN} -c {}", env.conf_dir.display());
    let rs = master.named_children(master.pid, &argv)["ReqServer_ProcessManager"];
    master
        .named_children(rs, &argv)
        .into_iter()
        .filter(|(title, _)| title.starts_with("MWorker-"))
        .map(|(_, pid)| pid)
        .collect()
}

/// A process's peak resident memory (VmHWM), in KiB.
fn vm_hwm(pid: i32) -> u64 {
    read(std::path::Path::new(&format!("/proc/{pid}/status")))
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM")
}

/// A clear `_auth` for `id` with `pem`; the `ret` of the signed answer.
fn auth_ret(port: u16, id: &str, pem: &str) -> Value {
    let req = clear(Value::map([
        ("cmd", Value::from("_auth")),
        ("id", Value::from(id)),
        ("nonce", Value::from(new_nonce())),
        ("pub", Value::from(pem)),
        ("enc_algo", Value::from("OAEP-SHA1")),
        ("sig_algo", Value::from("PKCS1v15-SHA1")),
    ]));
    let reply = Value::decode(&ask(port, &[req])).unwrap();
    let load = reply.get("load").and_then(Value::as_bytes).expect("a signed answer");
    Value::decode(load).unwrap().get("ret").cloned().unwrap_or(Value::Nil)
}

fn pem() -> String {
    let k = PrivateKey::generate(2048).unwrap();
    String::from_utf8(k.public_key().to_pem_spki().unwrap()).unwrap()
}

/// 100 MB of empty msgpack arrays (under the default request_max_size of
/// 100 MiB) once took an MWorker ~3 GB for 13 s: it is now refused by the
/// decoder's memory budget before anything is decoded.
#[test]
fn a_request_of_empty_arrays_costs_no_worker_and_bounded_memory() {
    let env = Env::new(2);
    let mut master = env.start();
    master.wait_ready();
    let watch = Watch::start(&env, &master);
    let pids = workers(&env, &master);
    let before: Vec<u64> = pids.iter().map(|p| vm_hwm(*p)).collect();
    let n = 100_000_000usize;
    // {"enc": "clear", "load": {"cmd": "ping", "x": [[], [], …]}, "version": 3}
    let text = |t: &str| Value::from(t).to_network();
    let mut body = vec![0x83];
    for t in ["enc", "clear", "load"] {
        body.extend(text(t));
    }
    body.push(0x82);
    for t in ["cmd", "ping", "x"] {
        body.extend(text(t));
    }
    body.push(0xdd);
    body.extend_from_slice(&(n as u32).to_be_bytes());
    body.resize(body.len() + n, 0x90);
    body.extend(text("version"));
    body.push(3);
    assert!(body.len() > 100_000_000 && body.len() < 100 << 20);
    let started = Instant::now();
    assert_eq!(ask(env.ret_port, &[body]), Value::from("bad load").to_network());
    let took = started.elapsed();
    let grown: Vec<u64> = pids
        .iter()
        .zip(&before)
        .map(|(p, b)| vm_hwm(*p).saturating_sub(*b))
        .collect();
    // The 100 MB message itself reaches one MWorker; decoding it adds
    // nothing (it took ~3 GB before).
    assert!(grown.iter().all(|g| *g < 300 << 10), "VmHWM grew by {grown:?} KiB");
    let log = wait_log_line(&env, "msgpack refused: decoding would take more than");
    assert!(log.contains("bad request from 127.0.0.1: msgpack refused"), "{log}");
    // Still serving, with the same processes.
    watch.finish();
    eprintln!("100 MB of empty arrays: answered in {took:?}; MWorkers' VmHWM grew by {grown:?} KiB");
}

/// A frame over request_max_size never reaches an MWorker: ZeroMQ drops
/// the connection at its header, and MWorkerQueue logs the drop with the
/// peer's address, a few lines a minute however many come.
#[test]
fn an_oversized_frame_is_dropped_at_the_socket_and_logged() {
    let env = Env::with_extra(2, "request_max_size: 1048576\n");
    let mut master = env.start();
    master.wait_ready();
    let watch = Watch::start(&env, &master);
    let pids = workers(&env, &master);
    let before: Vec<u64> = pids.iter().map(|p| vm_hwm(*p)).collect();
    let big = clear(Value::map([
        ("cmd", Value::from("ping")),
        ("x", Value::Bytes(vec![7; 16 << 20])),
    ]));
    assert_eq!(
        ask_within(env.ret_port, std::slice::from_ref(&big), 3000),
        None,
        "no answer"
    );
    let log = wait_log_line(&env, "Dropped the connection from 127.0.0.1:");
    assert!(log.contains("a frame over request_max_size (1048576 bytes)"), "{log}");
    // A flood of them: at most 10 lines a minute.
    let ctx = zmq::Context::new();
    let socks: Vec<zmq::Socket> = (0..40)
        .map(|_| {
            let s = ctx.socket(zmq::DEALER).unwrap();
            s.set_linger(0).unwrap();
            s.connect(&format!("tcp://127.0.0.1:{}", env.ret_port)).unwrap();
            s.send_multipart([&b""[..], &big[..]], 0).unwrap();
            s
        })
        .collect();
    // Time for ZeroMQ to drop them all (the log lines are the only sign).
    std::thread::sleep(Duration::from_secs(2));
    drop(socks);
    let ping = Value::map([("cmd", Value::from("ping"))]);
    assert_eq!(ask(env.ret_port, &[clear(ping.clone())]), ping.to_network());
    let log = read(&env.log_file());
    let lines = log.matches("Dropped the connection from").count();
    assert!((1..=10).contains(&lines), "{lines} lines:\n{log}");
    // No MWorker saw those frames: none logged a refusal, none grew.
    assert!(!log.contains("byte limit (request_max_size)"), "{log}");
    let grown: Vec<u64> = pids
        .iter()
        .zip(&before)
        .map(|(p, b)| vm_hwm(*p).saturating_sub(*b))
        .collect();
    assert!(grown.iter().all(|g| *g < 8 << 10), "VmHWM grew by {grown:?} KiB");
    watch.finish();
}

/// Bytes that are not ZMTP framing: ZeroMQ drops the connection, and the
/// drop is logged with the peer's address and why.
#[test]
fn bytes_that_are_not_zeromq_are_dropped_and_logged() {
    use std::io::Write;
    let env = Env::new(1);
    let mut master = env.start();
    master.wait_ready();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", env.ret_port)).unwrap();
    // Not 0xff first: libzmq reads a ZMTP 1.0 peer; a frame of length 0
    // is malformed there.
    conn.write_all(&[1, 0, 0, 0]).unwrap();
    let local = conn.local_addr().unwrap();
    let log = wait_log_line(&env, &format!("Dropped the connection from {local} to ret_port"));
    assert!(log.contains("not ZeroMQ (its bytes are not ZMTP frames)"), "{log}");
    let ping = Value::map([("cmd", Value::from("ping"))]);
    assert_eq!(ask(env.ret_port, &[clear(ping.clone())]), ping.to_network());
}

/// MWorkerQueue out of file descriptors: the listener cannot accept, and
/// says so (not a word from ZeroMQ itself); once descriptors are free
/// again, minions connect as before.
#[test]
fn ret_port_out_of_descriptors_is_logged_plainly() {
    let env = Env::new(1);
    let mut master = env.start();
    master.wait_ready();
    let argv = format!("{BIN} -c {}", env.conf_dir.display());
    let rs = master.named_children(master.pid, &argv)["ReqServer_ProcessManager"];
    let queue = master.named_children(rs, &argv)["MWorkerQueue"];
    let open = std::fs::read_dir(format!("/proc/{queue}/fd")).unwrap().count() as u64;
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit with no new limit only writes `old`.
    assert_eq!(
        unsafe { libc::prlimit(queue, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) },
        0
    );
    let set_nofile = |n: u64| {
        let lim = libc::rlimit {
            rlim_cur: n,
            rlim_max: old.rlim_max,
        };
        // SAFETY: prlimit reads `lim`.
        let rc = unsafe { libc::prlimit(queue, libc::RLIMIT_NOFILE, &lim, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    };
    set_nofile(open + 2);
    let conns: Vec<_> = (0..8)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", env.ret_port)).unwrap())
        .collect();
    let log = wait_log_line(&env, "ret_port cannot accept connections: Too many open files");
    assert!(log.contains("Raise max_open_files"), "{log}");
    let lines = log.matches("cannot accept connections").count();
    assert!((1..=3).contains(&lines), "{lines} lines:\n{log}");
    drop(conns);
    set_nofile(old.rlim_cur);
    let ping = Value::map([("cmd", Value::from("ping"))]);
    assert_eq!(ask(env.ret_port, &[clear(ping.clone())]), ping.to_network());
}

/// An auth storm bigger than the master's RSA rate: sign-ins that waited
/// longer than `sign_in_max_wait` for an MWorker (their minions have
/// stopped waiting) are dropped unanswered, without an RSA signature, and
/// the worker goes on with the fresh ones; a few log lines say so.
#[test]
fn sign_ins_that_waited_too_long_are_dropped_unanswered() {
    let env = Env::with_extra(1, "sign_in_max_wait: 1\nauto_accept: True\n");
    let mut master = env.start();
    master.wait_ready();
    let pem = pem();
    let ctx = zmq::Context::new();
    let s = ctx.socket(zmq::DEALER).unwrap();
    s.set_linger(0).unwrap();
    s.set_sndhwm(0).unwrap();
    s.connect(&format!("tcp://127.0.0.1:{}", env.ret_port)).unwrap();
    // One MWorker, one RSA signature per answer: far more than a second's
    // worth of sign-ins, all queued at once.
    let sent = 4000;
    for _ in 0..sent {
        let req = clear(Value::map([
            ("cmd", Value::from("_auth")),
            ("id", Value::from("stormy")),
            ("nonce", Value::from(new_nonce())),
            ("pub", Value::from(pem.as_str())),
            ("enc_algo", Value::from("OAEP-SHA1")),
            ("sig_algo", Value::from("PKCS1v15-SHA1")),
        ]));
        s.send_multipart([&b""[..], &req[..]], 0).unwrap();
    }
    s.set_rcvtimeo(3000).unwrap();
    let mut answered = 0;
    let start = Instant::now();
    while s.recv_multipart(0).is_ok() {
        answered += 1;
    }
    eprintln!("{answered} of {sent} sign-ins answered in {:?}", start.elapsed());
    assert!(answered > 0 && answered < sent, "{answered} of {sent} answered");
    let log = wait_log_line(&env, "over sign_in_max_wait (1 s): dropped unanswered");
    assert!(log.contains("sign-in of \"stormy\" from 127.0.0.1 waited"), "{log}");
    let lines = log.matches("over sign_in_max_wait").count();
    assert!((1..=3).contains(&lines), "{lines} lines:\n{log}");
    // The worker is free again: a sign-in now is answered, with the
    // accepted minion's keys (an answer without `ret`).
    assert_eq!(auth_ret(env.ret_port, "stormy", &pem), Value::Nil);
}

/// Thousands of new ids in `_auth` would each leave a key in
/// `minions_pre`: past max_pending_keys a new id is answered "full" (as
/// max_minions answers), nothing is written, and the refusals are logged
/// a few lines a minute.
#[test]
fn a_flood_of_new_ids_stops_at_max_pending_keys() {
    let env = Env::with_extra(2, "max_pending_keys: 20\n");
    let mut master = env.start();
    master.wait_ready();
    let watch = Watch::start(&env, &master);
    let pem = pem();
    let mut rets = Vec::new();
    for i in 0..300 {
        rets.push(auth_ret(env.ret_port, &format!("flood{i}"), &pem));
    }
    let pending = std::fs::read_dir(env.root().join("pki/minions_pre")).unwrap().count();
    // Two MWorkers may each add one past the limit.
    assert!((20..=21).contains(&pending), "{pending} pending keys");
    assert_eq!(rets.iter().filter(|r| **r == Value::Bool(true)).count(), pending);
    assert_eq!(
        rets.iter().filter(|r| **r == Value::from("full")).count(),
        300 - pending
    );
    // A pending id asking again is still answered as pending.
    assert_eq!(auth_ret(env.ret_port, "flood0", &pem), Value::Bool(true));
    let log = wait_log_line(
        &env,
        "Too many pending keys (max_pending_keys=20). Rejecting connection from id flood",
    );
    let lines = log.matches("Too many pending keys").count();
    assert!((1..=20).contains(&lines), "{lines} lines");
    assert!(log.contains("(from 127.0.0.1)"), "{log}");
    watch.finish();
}

/// `max_minions` as Salt has it: while more minions are connected than
/// the limit, a minion that is not among them gets `{'ret': 'full'}`,
/// `salt/auth` fires with `act: full`, and Salt's line is logged.
/// Connected minions are those of the data cache whose ipv4/ipv6 grain is
/// the peer of a connection to publish_port.
#[test]
fn max_minions_answers_full() {
    let env = Env::with_extra(2, "max_minions: 2\n");
    let mut master = env.start();
    master.wait_ready();
    let watch = Watch::start(&env, &master);
    // Three cached minions at 127.0.0.9, and a connection to publish_port
    // from there.
    for id in ["ghost1", "ghost2", "ghost3"] {
        let dir = env.root().join("cache/minions").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let data = Value::map([
            (
                "grains",
                Value::map([
                    ("id", Value::from(id)),
                    ("ipv4", Value::Array(vec![Value::from("127.0.0.9")])),
                ]),
            ),
            ("pillar", Value::Map(vec![])),
        ]);
        std::fs::write(dir.join("data.p"), data.to_file()).unwrap();
    }
    let mut bus = brine_client::EventBus::subscribe(&brine_client::BusAddr {
        path: env.sock("master_event_pub.ipc"),
        length_prefixed: false,
    })
    .unwrap();
    let pem = pem();
    // Not over the limit yet: nothing is connected from 127.0.0.9.
    assert_eq!(auth_ret(env.ret_port, "early", &pem), Value::Bool(true));
    let conn = connect_from("127.0.0.9", env.publish_port);
    assert_eq!(auth_ret(env.ret_port, "newcomer", &pem), Value::from("full"));
    assert!(!env.root().join("pki/minions_pre/newcomer").exists());
    // A connected minion may still authenticate (pending, here).
    assert_eq!(auth_ret(env.ret_port, "ghost1", &pem), Value::Bool(true));
    let deadline = Instant::now() + Duration::from_secs(10);
    let event = loop {
        let e = bus.next(deadline).unwrap().expect("salt/auth with act full");
        if e.tag == "salt/auth" && e.data.get("act") == Some(&Value::from("full")) {
            break e;
        }
    };
    assert_eq!(event.data.get("id"), Some(&Value::from("newcomer")));
    assert_eq!(event.data.get("result"), Some(&Value::Bool(false)));
    assert_eq!(event.data.get("pub"), Some(&Value::from(pem.as_str())));
    wait_log_line(
        &env,
        "Too many minions connected (max_minions=2). Rejecting connection from id newcomer",
    );
    drop(conn);
    // The bystander (accepted before) keeps answering.
    watch.finish();
    assert!(env.root().join("pki/minions").join(BYSTANDER).exists());
}

/// The log once it holds `needle` (within 10 s).
fn wait_log_line(env: &Env, needle: &str) -> String {
    let found = wait_until(Duration::from_secs(10), || read(&env.log_file()).contains(needle));
    let log = read(&env.log_file());
    assert!(found, "no {needle:?} in the log:\n{log}");
    log
}
