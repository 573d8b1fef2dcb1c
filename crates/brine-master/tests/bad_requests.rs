//! Hostile and malformed requests on ret_port: each gets Salt's refusal
//! (or an empty answer), is logged, and the MWorkers keep serving. The v3
//! AES path is exercised end to end with a positive control.

mod common;

use std::time::{Duration, SystemTime};

use brine_proto::crypto::{new_nonce, Crypticle, PrivateKey};
use brine_proto::Value;
use common::attack::Watch;
use common::*;

fn ask(env: &Env, frames: &[Vec<u8>]) -> Vec<u8> {
    let ctx = zmq::Context::new();
    let s = ctx.socket(zmq::REQ).unwrap();
    s.set_rcvtimeo(10_000).unwrap();
    s.set_linger(0).unwrap();
    s.connect(&format!("tcp://127.0.0.1:{}", env.ret_port)).unwrap();
    s.send_multipart(frames, 0).unwrap();
    s.recv_bytes(0).expect("every request gets a reply")
}

fn one(env: &Env, body: Vec<u8>) -> Vec<u8> {
    ask(env, &[body])
}

fn bad_load() -> Vec<u8> {
    Value::from("bad load").to_network()
}

struct Minion {
    id: String,
    key: PrivateKey,
    session: Crypticle,
}

/// An accepted minion with a current session key, as after `_auth`.
fn accepted_minion(env: &Env, id: &str) -> Minion {
    let key = PrivateKey::generate(2048).unwrap();
    let pem = String::from_utf8(key.public_key().to_pem_spki().unwrap()).unwrap();
    std::fs::write(env.root().join("pki/minions").join(id), pem).unwrap();
    let session = Crypticle::generate();
    std::fs::create_dir_all(env.root().join("cache/sessions")).unwrap();
    std::fs::write(env.root().join("cache/sessions").join(id), session.key_string()).unwrap();
    Minion {
        id: id.into(),
        key,
        session,
    }
}

fn aes_request(m: &Minion, env_id: &str, inner_id: &str, tok_key: &PrivateKey, nonce: &str) -> Vec<u8> {
    let ts = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let inner = Value::map([
        ("cmd", Value::from("_no_such_command")),
        ("id", Value::from(inner_id)),
        ("nonce", Value::from(nonce)),
        ("ts", Value::Int(ts)),
        ("tok", Value::Bytes(tok_key.x931_encrypt(b"salt").unwrap())),
    ]);
    let load = m.session.seal(&inner.to_network(), None).unwrap();
    Value::map([
        ("enc", Value::from("aes")),
        ("load", Value::Bytes(load)),
        ("version", Value::Int(3)),
        ("id", Value::from(env_id)),
        ("enc_algo", Value::from("OAEP-SHA1")),
        ("sig_algo", Value::from("PKCS1v15-SHA1")),
    ])
    .to_network()
}

#[test]
fn malformed_and_hostile_requests_are_refused_and_workers_survive() {
    let env = Env::with_extra(3, "request_max_size: 1048576\nrequest_server_ttl: 60\n");
    let mut m = env.start();
    m.wait_ready();
    let watch = Watch::start(&env, &m);
    let argv = format!("{BIN} -c {}", env.conf_dir.display());
    let rs = m.named_children(m.pid, &argv)["ReqServer_ProcessManager"];
    let workers_before = children_of(rs);

    // Not msgpack; not a map; no load; a bad marker inside.
    assert_eq!(one(&env, vec![0xc1, 0xff, 0x00]), bad_load());
    assert_eq!(one(&env, Value::Array(vec![Value::Int(1)]).to_network()), bad_load());
    assert_eq!(
        one(&env, Value::map([("enc", Value::from("clear"))]).to_network()),
        bad_load()
    );
    assert_eq!(one(&env, vec![0x82, 0xa3, b'e', b'n', b'c', 0xc1]), bad_load());
    // Protocol version below minimum_auth_version (v2 minions and CLIs).
    let v2 = Value::map([
        ("enc", Value::from("clear")),
        ("load", Value::map([("cmd", Value::from("_auth"))])),
        ("version", Value::Int(2)),
    ]);
    assert_eq!(one(&env, v2.to_network()), bad_load());
    // load not a map; unknown clear command; unknown enc.
    let clear = |load: Value| {
        Value::map([
            ("enc", Value::from("clear")),
            ("load", load),
            ("version", Value::Int(3)),
        ])
        .to_network()
    };
    assert_eq!(
        one(&env, clear(Value::from("x"))),
        Value::from("payload and load must be a dict").to_network()
    );
    assert_eq!(
        one(&env, clear(Value::map([("cmd", Value::from("frobnicate"))]))),
        vec![0x80]
    );
    // Clear commands a local tool may send: Salt's answers, or an error
    // the Python clients raise and print.
    let ping = Value::map([("cmd", Value::from("ping")), ("x", Value::Int(1))]);
    assert_eq!(one(&env, clear(ping.clone())), ping.to_network());
    assert_eq!(
        one(&env, clear(Value::map([("cmd", Value::from("mk_token"))]))),
        Value::from("").to_network()
    );
    let err = |load: Value| {
        let reply = Value::decode(&one(&env, clear(load))).unwrap();
        let e = reply.get("error").unwrap_or_else(|| panic!("no error in {reply:?}"));
        let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap().to_string();
        (field("name"), field("message"))
    };
    let err_name = |load: Value| err(load).0;
    for cmd in ["wheel", "runner"] {
        let load = Value::map([
            ("cmd", Value::from(cmd)),
            ("fun", Value::from("key.list_all")),
            ("key", Value::from("not-the-key")),
        ]);
        assert_eq!(err_name(load), "UserAuthenticationError");
        let load = Value::map([
            ("cmd", Value::from(cmd)),
            ("fun", Value::from("key.list_all")),
            ("eauth", Value::from("pam")),
            ("username", Value::from("u")),
            ("password", Value::from("p")),
        ]);
        // Salt's words exactly (clients and tests compare them); why it
        // was refused is in the log.
        assert_eq!(
            err(load),
            (
                "EauthAuthenticationError".to_string(),
                "Authentication failure of type \"eauth\" occurred for user u.".to_string()
            )
        );
        // The log says why: this master enables no eauth backend.
        assert!(wait_until(Duration::from_secs(5), || read(&env.log_file())
            .contains("The eauth system 'pam' is not enabled")));
    }
    // With the master's user key (as WheelClient/RunnerClient send it).
    let key = std::fs::read_to_string(env.root().join("cache/.root_key")).unwrap();
    let with_key = |cmd: &str, fun: &str| {
        Value::map([
            ("cmd", Value::from(cmd)),
            ("fun", Value::from(fun)),
            ("key", Value::from(key.trim())),
            ("user", Value::from("root")),
        ])
    };
    let reply = Value::decode(&one(&env, clear(with_key("wheel", "key.list_all")))).unwrap();
    let data = reply.get("data").unwrap_or_else(|| panic!("{reply:?}"));
    assert_eq!(data.get("success"), Some(&Value::Bool(true)), "{reply:?}");
    let local = data.get("return").and_then(|r| r.get("local")).unwrap();
    assert!(
        matches!(local, Value::Array(a) if a.contains(&Value::from("master.pub"))),
        "{reply:?}"
    );
    // A runner function Brine lacks starts a job as Salt's does; its return
    // (on the bus) says `'nope.fun' is not available.`.
    let reply = Value::decode(&one(&env, clear(with_key("runner", "nope.fun")))).unwrap();
    let jid = reply
        .get("jid")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{reply:?}"));
    assert_eq!(
        reply.get("tag").and_then(Value::as_str),
        Some(format!("salt/run/{jid}").as_str())
    );
    // Publishing by eauth (Salt ignores the key then) on a master without
    // external_auth: Salt's answer to any failed authentication of a
    // publish, and the reason in the log.
    let mut by_eauth = with_key("publish", "test.ping");
    by_eauth.set("tgt", Value::from("*"));
    by_eauth.set(
        "kwargs",
        Value::map([("eauth", Value::from("auto")), ("username", Value::from("u"))]),
    );
    assert_eq!(
        err(by_eauth),
        (
            "AuthenticationError".to_string(),
            "Authentication error occurred.".to_string()
        )
    );
    assert!(wait_until(Duration::from_secs(5), || read(&env.log_file()).contains(
        "publish of test.ping refused: Authentication failure of type \"eauth\" occurred"
    )));
    assert_eq!(err_name(with_key("wheel", "config.apply")), "SaltMasterError");
    let weird = Value::map([
        ("enc", Value::from("rot13")),
        ("load", Value::Map(vec![])),
        ("version", Value::Int(3)),
    ]);
    assert_eq!(one(&env, weird.to_network()), bad_load());
    // Oversized (request_max_size 1 MiB): ZeroMQ drops the connection at
    // the frame's header (no reply), the drop is logged with the peer's
    // address, and the master keeps serving. Multi-frame requests are
    // refused.
    let big = clear(Value::map([
        ("cmd", Value::from("ping")),
        ("x", Value::Bytes(vec![0; 2 << 20])),
    ]));
    assert_eq!(aes::ask_within(env.ret_port, &[big], 3000), None);
    assert!(
        wait_until(Duration::from_secs(5), || read(&env.log_file())
            .contains("Dropped the connection from 127.0.0.1:")),
        "{}",
        read(&env.log_file())
    );
    let ping = Value::map([("cmd", Value::from("ping"))]);
    assert_eq!(one(&env, clear(ping.clone())), ping.to_network());
    assert_eq!(
        ask(&env, &[clear(Value::map([("cmd", Value::from("ping"))])), vec![1]]),
        bad_load()
    );
    // _auth with an id that would escape the pki dir: refused, nothing written.
    let evil = clear(Value::map([
        ("cmd", Value::from("_auth")),
        ("id", Value::from("../../evil")),
        ("nonce", Value::from(new_nonce())),
        ("pub", Value::from("junk")),
    ]));
    let reply = Value::decode(&one(&env, evil)).unwrap();
    let load = Value::decode(reply.get("load").unwrap().as_bytes().unwrap()).unwrap();
    assert_eq!(load.get("ret"), Some(&Value::Bool(false)));
    assert!(!env.root().join("evil").exists() && !env.root().join("pki/evil").exists());
    // _auth with an unsupported algorithm.
    let algo = clear(Value::map([
        ("cmd", Value::from("_auth")),
        ("id", Value::from("m9")),
        ("nonce", Value::from(new_nonce())),
        ("pub", Value::from("junk")),
        ("enc_algo", Value::from("OAEP-MD5")),
    ]));
    let reply = Value::decode(&one(&env, algo)).unwrap();
    assert_eq!(
        reply.get("load").unwrap().get("ret"),
        Some(&Value::from("bad enc algo"))
    );

    // publish without the right user key.
    let publish = |key: &str| {
        clear(Value::map([
            ("cmd", Value::from("publish")),
            ("tgt", Value::from("*")),
            ("fun", Value::from("test.ping")),
            ("arg", Value::Array(vec![])),
            ("key", Value::from(key)),
            ("user", Value::from("root")),
        ]))
    };
    let reply = Value::decode(&one(&env, publish("not-the-key"))).unwrap();
    assert_eq!(
        reply.get("error").and_then(|e| e.get("name")).and_then(Value::as_str),
        Some("AuthenticationError")
    );
    let reply = Value::decode(&one(&env, publish(""))).unwrap();
    assert!(reply.get("error").is_some());

    // The v3 AES path: a positive control, then each way to get it wrong.
    let good = accepted_minion(&env, "m1");
    let nonce = new_nonce();
    let reply = Value::decode(&one(&env, aes_request(&good, "m1", "m1", &good.key, &nonce))).unwrap();
    let ct = reply.as_bytes().expect("an encrypted reply");
    let plain = good.session.open(ct, Some(&nonce)).unwrap().expect("pickle:: + nonce");
    assert_eq!(
        Value::decode(&plain).unwrap(),
        Value::Map(vec![]),
        "unknown AES command -> {{}}"
    );

    let mut env_map = Value::decode(&aes_request(&good, "m1", "m1", &good.key, &nonce)).unwrap();
    let mut load = env_map.get("load").unwrap().as_bytes().unwrap().to_vec();
    load[20] ^= 0x55;
    env_map.set("load", Value::Bytes(load));
    assert_eq!(one(&env, env_map.to_network()), bad_load(), "bad MAC");
    let impostor = PrivateKey::generate(2048).unwrap();
    assert_eq!(
        one(&env, aes_request(&good, "m1", "m1", &impostor, &nonce)),
        bad_load(),
        "tok from another key"
    );
    assert_eq!(
        one(&env, aes_request(&good, "m1", "other", &good.key, &nonce)),
        bad_load(),
        "id mismatch"
    );
    // A return for a job the master never published, with a valid jid, is
    // stored as Salt's store_job does (prep_jid with the passed jid).
    let ts = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ret = Value::map([
        ("cmd", Value::from("_return")),
        ("id", Value::from("m1")),
        ("nonce", Value::from(nonce.as_str())),
        ("ts", Value::Int(ts)),
        ("tok", Value::Bytes(good.key.x931_encrypt(b"salt").unwrap())),
        ("jid", Value::from("20200101000000000000")),
        ("return", Value::Bool(true)),
    ]);
    let envl = Value::map([
        ("enc", Value::from("aes")),
        (
            "load",
            Value::Bytes(good.session.seal(&ret.to_network(), None).unwrap()),
        ),
        ("version", Value::Int(3)),
        ("id", Value::from("m1")),
    ]);
    let reply = Value::decode(&one(&env, envl.to_network())).unwrap();
    assert!(reply.as_bytes().is_some(), "answered (encrypted None), not crashed");
    assert!(
        env.root()
            .join("cache/jobs")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "stored under its jid"
    );

    // A minion that is not accepted (or denied) gets nothing, and no session
    // file is created for it.
    let pending = accepted_minion(&env, "p1");
    std::fs::rename(env.root().join("pki/minions/p1"), env.root().join("pki/minions_pre/p1")).unwrap();
    assert_eq!(
        one(&env, aes_request(&pending, "p1", "p1", &pending.key, &nonce)),
        bad_load()
    );
    let stranger = Minion {
        id: "ghost".into(),
        key: PrivateKey::generate(2048).unwrap(),
        session: Crypticle::generate(),
    };
    assert_eq!(
        one(&env, aes_request(&stranger, "ghost", "ghost", &stranger.key, &nonce)),
        bad_load()
    );
    assert!(!env.root().join("cache/sessions/ghost").exists());
    assert_eq!(stranger.id, "ghost");

    // What the MWorkers remember of a minion (its verified tok, shared
    // by all of them, and its session key) follows its files. Requests
    // are sent a few times over, so that every MWorker sees one.
    let answered = |m: &Minion, key: &PrivateKey| {
        (0..6).all(|_| one(&env, aes_request(m, &m.id, &m.id, key, &nonce)) != bad_load())
    };
    let refused = |m: &Minion, key: &PrivateKey| {
        (0..6).all(|_| one(&env, aes_request(m, &m.id, &m.id, key, &nonce)) == bad_load())
    };
    let mut r1 = accepted_minion(&env, "r1");
    let (accepted, rejected) = (
        env.root().join("pki/minions/r1"),
        env.root().join("pki/minions_rejected/r1"),
    );
    assert!(answered(&r1, &r1.key));
    // Rejected: refused at once, though its tok was verified.
    std::fs::rename(&accepted, &rejected).unwrap();
    assert!(refused(&r1, &r1.key));
    std::fs::rename(&rejected, &accepted).unwrap();
    assert!(answered(&r1, &r1.key));
    // Its key replaced by another under the same id: the old key's tok
    // is refused, the new one's answered.
    let other = PrivateKey::generate(2048).unwrap();
    std::fs::write(&accepted, other.public_key().to_pem_spki().unwrap()).unwrap();
    assert!(refused(&r1, &r1.key));
    assert!(answered(&r1, &other));
    // A new session key (another MWorker's `_auth`): requests sealed with
    // it are opened by every MWorker, though each knew the old one.
    r1.session = Crypticle::generate();
    std::fs::write(env.root().join("cache/sessions/r1"), r1.session.key_string()).unwrap();
    assert!(answered(&r1, &other));

    // Garbage pushed straight into publish_pull.ipc is dropped by the
    // publisher, which keeps running.
    let publisher = m.named_children(m.pid, &argv)["ZeroMQPubServerChannel"];
    {
        let ctx = zmq::Context::new();
        let push = ctx.socket(zmq::PUSH).unwrap();
        push.set_linger(2000).unwrap();
        push.connect(&format!("ipc://{}", env.sock("publish_pull.ipc").display()))
            .unwrap();
        push.send(&b"\xc1 not msgpack"[..], 0).unwrap();
        push.send(Value::map([("no", Value::from("load"))]).to_network(), 0)
            .unwrap();
    }
    assert!(wait_until(Duration::from_secs(3), || read(&env.log_file())
        .matches("publication dropped")
        .count()
        >= 2));
    assert!(alive(publisher));

    // Every worker is the one we started with, and they still answer.
    assert_eq!(children_of(rs), workers_before, "no worker crashed");
    let reply = Value::decode(&one(&env, aes_request(&good, "m1", "m1", &good.key, &nonce))).unwrap();
    assert!(reply.as_bytes().is_some());
    // Logged with a reason.
    assert!(
        wait_until(Duration::from_secs(2), || {
            let log = read(&env.log_file());
            // Unidentified peers are named by their TCP address.
            log.contains("bad request from 127.0.0.1: malformed msgpack")
                && log.contains("bad request from minion \"m1\" at 127.0.0.1: bad tok from m1")
                && log.contains("which is not accepted")
        }),
        "{}",
        read(&env.log_file())
    );
    watch.finish();
    m.remember_tree();
}

/// A master of masters (`order_masters: True`) stores a syndic's returns
/// per minion below it; any other master refuses `_syndic_return`, which
/// would let one minion record returns under other minions' ids.
#[test]
fn syndic_returns_are_stored_per_minion() {
    syndic_return(true);
}

#[test]
fn syndic_returns_are_refused_without_order_masters() {
    syndic_return(false);
}

fn syndic_return(order_masters: bool) {
    let env = Env::with_extra(
        3,
        &format!("order_masters: {}\n", if order_masters { "True" } else { "False" }),
    );
    let mut m = env.start();
    m.wait_ready();
    let watch = Watch::start(&env, &m);
    let syndic = accepted_minion(&env, "syn1");
    let jid = "20250101000000000001";
    let ts = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let nonce = new_nonce();
    let inner = Value::map([
        ("cmd", Value::from("_syndic_return")),
        ("id", Value::from("syn1")),
        ("nonce", Value::from(nonce.as_str())),
        ("ts", Value::Int(ts)),
        ("tok", Value::Bytes(syndic.key.x931_encrypt(b"salt").unwrap())),
        (
            "load",
            Value::Array(vec![Value::map([
                ("id", Value::from("syn1")),
                ("jid", Value::from(jid)),
                ("fun", Value::from("test.ping")),
                (
                    "load",
                    Value::map([
                        ("fun", Value::from("test.ping")),
                        ("jid", Value::from(jid)),
                        ("tgt", Value::from("*")),
                    ]),
                ),
                (
                    "return",
                    Value::map([
                        (
                            "below1",
                            Value::map([("return", Value::Bool(true)), ("retcode", Value::Int(0))]),
                        ),
                        ("../evil", Value::map([("return", Value::Bool(true))])),
                    ]),
                ),
            ])]),
        ),
    ]);
    let envl = Value::map([
        ("enc", Value::from("aes")),
        (
            "load",
            Value::Bytes(syndic.session.seal(&inner.to_network(), None).unwrap()),
        ),
        ("version", Value::Int(3)),
        ("id", Value::from("syn1")),
    ]);
    let reply = Value::decode(&one(&env, envl.to_network())).unwrap();
    assert!(reply.as_bytes().is_some());
    let h = hex::encode(openssl::sha::sha256(jid.as_bytes()));
    let dir = env.root().join("cache/jobs").join(&h[..2]).join(&h[2..]);
    if !order_masters {
        assert!(!dir.exists(), "nothing recorded for a refused _syndic_return");
        assert!(!env.root().join("cache/syndics/syn1").exists());
        assert!(wait_until(Duration::from_secs(2), || read(&env.log_file())
            .contains("order_masters is False): refused")));
        watch.finish();
        m.remember_tree();
        return;
    }
    let ret =
        Value::decode(&std::fs::read(dir.join("below1/return.p")).expect("return.p of the minion below the syndic"))
            .unwrap();
    assert_eq!(ret.get("return"), Some(&Value::Bool(true)));
    assert!(dir.join(".load.p").exists(), "the syndic's job load saved");
    assert!(env.root().join("cache/syndics/syn1").exists(), "syndic registered");
    assert!(!dir.join("../evil").exists() && !env.root().join("cache/jobs/evil").exists());
    watch.finish();
    m.remember_tree();
}
