//! One regression test per Salt master CVE that applies to what Brine
//! serves, named after it. Each performs the attack as an attacker would,
//! with raw requests on ret_port (from a minion whose key is accepted
//! where the attack needs one, or with no credentials at all), and asserts
//! that Brine refuses it: nothing read or written outside its directories,
//! nothing forged recorded or fired on the event bus, the refusal logged,
//! and the master still serving. A real salt-minion (the bystander of
//! `common::attack`) answers `test.ping` throughout every attack and no
//! process of the master is replaced.
//!
//! The CVEs that do not apply (salt-api, PAM, pki eauth, gitfs) are listed
//! in docs/security.md with the feature that will bring them.

mod common;

use std::time::{Duration, Instant, SystemTime};

use brine_client::{BusAddr, Event, EventBus};
use brine_proto::commands::AesCmd;
use brine_proto::crypto::{new_nonce, Crypticle, EncAlgo, PrivateKey};
use brine_proto::Value;
use common::aes::{accepted_minion, ask, ask_within, clear, AesMinion};
use common::attack::{Watch, BYSTANDER};
use common::requests::{env_with_tree, load, s, strs};
use common::{read, wait_until, Env, Master};

/// A jid no master published: forged jobs and returns use it.
const JID: &str = "20250101000000000011";

/// What `tree()` writes beside the file roots, which no minion may read.
const SECRET: &str = "not for minions";

/// A master serving the test tree, the bystander, a subscriber on the
/// event bus, and the attacker: an accepted minion called `hostile`.
struct Attack {
    env: Env,
    master: Master,
    watch: Option<Watch>,
    bus: EventBus,
    m: AesMinion,
    /// Every event read off the bus so far.
    seen: Vec<Event>,
}

impl Attack {
    fn start(workers: usize, extra: &str) -> Attack {
        let env = env_with_tree(workers, extra);
        let mut master = env.start();
        master.wait_ready();
        // Before the bus subscription: the bystander's own sign-in fires
        // `salt/auth` and `salt/key` legitimately.
        let watch = Watch::start(&env, &master);
        let cfg = brine_config::MasterConfig::load(&env.conf_dir).unwrap();
        let bus = EventBus::subscribe(&BusAddr::from_config(&cfg)).unwrap();
        let m = accepted_minion(&env, "hostile");
        Attack {
            env,
            master,
            watch: Some(watch),
            bus,
            m,
            seen: Vec::new(),
        }
    }

    fn port(&self) -> u16 {
        self.env.ret_port
    }

    /// An AES command from the attacker, answered and decrypted.
    fn call(&self, cmd: &str, pairs: &[(&str, Value)]) -> Value {
        self.m.call(self.port(), &load(cmd, pairs))
    }

    /// A clear request (any load) and its decoded answer.
    fn clear(&self, load: Value) -> Value {
        Value::decode(&ask(self.port(), &[clear(load)])).unwrap()
    }

    /// The events on the bus up to now: the attacker fires a tag of its
    /// own last (minions may), and everything before it is returned.
    fn events(&mut self) -> &[Event] {
        let mark = format!("cve/sentinel/{}", new_nonce());
        self.call("_minion_event", &[("tag", s(&mark)), ("data", Value::Map(vec![]))]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(e) = self.bus.next(deadline).unwrap() {
            let done = e.tag == mark;
            self.seen.push(e);
            if done {
                return &self.seen;
            }
        }
        panic!("the sentinel {mark} never reached the bus: {:?}", self.tags());
    }

    fn tags(&self) -> Vec<&str> {
        self.seen.iter().map(|e| e.tag.as_str()).collect()
    }

    /// Fails if an event whose tag contains `needle` was on the bus.
    fn assert_never_fired(&mut self, needle: &str) {
        self.events();
        let hits: Vec<&str> = self.tags().into_iter().filter(|t| t.contains(needle)).collect();
        assert!(hits.is_empty(), "forged events on the bus: {hits:?}");
    }

    fn log(&self) -> String {
        read(&self.env.log_file())
    }

    /// Waits (5 s at most) for `needle` in the master's log.
    fn logged(&self, needle: &str) {
        let found = wait_until(Duration::from_secs(5), || self.log().contains(needle));
        assert!(found, "not logged: {needle:?}\n{}", self.log());
    }

    /// The bystander answered throughout, no process was replaced, and the
    /// master still serves the attacker's ordinary requests.
    /// Returns every event the bus carried, the bystander's last ping
    /// included.
    fn finish(mut self) -> Vec<Event> {
        assert_eq!(self.call("_file_envs", &[]), strs(&["base", "dev"]));
        self.watch.take().unwrap().finish();
        assert!(self.master.exited().is_none(), "the master exited");
        self.events();
        self.seen
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A v3 AES request with every field in the attacker's hands: the
/// envelope id, the session key it is sealed with, the inner load (which
/// gets `nonce`), `tok` (or none) and `ts`.
fn forged_request(session: &Crypticle, env_id: &str, inner: &Value, tok: Option<Vec<u8>>, ts: i64) -> Vec<u8> {
    let mut inner = inner.clone();
    inner.set("nonce", s(&new_nonce()));
    inner.set("ts", Value::Int(ts));
    if let Some(tok) = tok {
        inner.set("tok", Value::Bytes(tok));
    }
    Value::map([
        ("enc", s("aes")),
        ("load", Value::Bytes(session.seal(&inner.to_network(), None).unwrap())),
        ("version", Value::Int(3)),
        ("id", s(env_id)),
        ("enc_algo", s("OAEP-SHA1")),
        ("sig_algo", s("PKCS1v15-SHA1")),
    ])
    .to_network()
}

fn bad_load() -> Value {
    s("bad load")
}

/// The master user's key, which only local root-equivalent users hold.
fn user_key(env: &Env) -> String {
    read(&env.root().join("cache/.root_key")).trim().to_string()
}

/// Every file and directory under `dir`, as paths relative to it.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Names under the temp root that an attack might have created: none of
/// the tests' markers may exist anywhere in it.
fn assert_no_marker(env: &Env, marker: &str) {
    let hits: Vec<String> = listing(&env.root())
        .into_iter()
        .filter(|p| p.contains(marker))
        .collect();
    assert!(hits.is_empty(), "written outside its place: {hits:?}");
}

/// The `error.name` of a clear answer.
fn error_name(reply: &Value) -> String {
    reply
        .get("error")
        .and_then(|e| e.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("not an error: {reply:?}"))
        .to_string()
}

/// The `send_private` answer to `_pillar`, opened as the minion does:
/// the one-time key OAEP'd to the minion's key, then the signed data.
fn pillar_of(m: &AesMinion, port: u16, pairs: &[(&str, Value)]) -> Value {
    let nonce = new_nonce();
    let reply = Value::decode(&ask(port, &[m.request(&load("_pillar", pairs), &nonce)])).unwrap();
    let key = reply.get("key").and_then(Value::as_bytes).expect("a private reply");
    let key = m.key.decrypt_oaep(EncAlgo::OaepSha1, key).unwrap();
    let one_time = Crypticle::from_key_string(std::str::from_utf8(&key).unwrap()).unwrap();
    let sealed = reply.get("pillar").and_then(Value::as_bytes).unwrap();
    let signed = Value::decode(&one_time.open(sealed, None).unwrap().unwrap()).unwrap();
    let data = Value::decode(signed.get("data").and_then(Value::as_bytes).unwrap()).unwrap();
    assert_eq!(data.get("nonce"), Some(&s(&nonce)));
    data.get("pillar").cloned().unwrap()
}

/// A publication for the bystander, as a forged job would carry it.
fn publication(marker: &str) -> Value {
    Value::map([
        ("fun", s("test.echo")),
        ("arg", strs(&[marker])),
        ("tgt", s(BYSTANDER)),
        ("tgt_type", s("glob")),
        ("jid", s(JID)),
        ("ret", s("")),
        ("user", s("root")),
    ])
}

/// Whether the job cache holds a job with `jid`.
fn job_cached(env: &Env, jid: &str) -> bool {
    listing(&env.root().join("cache/jobs"))
        .iter()
        .filter(|p| p.ends_with("/jid"))
        .any(|p| read(&env.root().join("cache/jobs").join(p)).trim() == jid)
}

/// CVE-2020-11651: Salt's `ClearFuncs` dispatched any method name a
/// request carried, so an unauthenticated peer called `_prep_auth_info`
/// (the master's root key in the answer) and `_send_pub` (a job on every
/// minion, no key asked). Brine serves an explicit list of commands:
/// every other name, clear or AES, gets `{}` and a log line, and
/// `publish` without the user key publishes nothing.
#[test]
fn cve_2020_11651_unexposed_methods() {
    let mut a = Attack::start(1, "");
    let key = user_key(&a.env);
    assert!(!key.is_empty());
    let marker = "cve-2020-11651";
    for cmd in [
        "_prep_auth_info",
        "_send_pub",
        "_send_ssh_pub",
        "_prep_jid",
        "_prep_pub",
        "get_method",
        "__init__",
        "process_token",
        "destroy",
    ] {
        let mut load = publication(marker);
        load.set("cmd", s(cmd));
        let reply = a.clear(load);
        assert_eq!(reply, Value::Map(vec![]), "{cmd}");
    }
    // `publish` itself: no key, a wrong one, another user's key that is
    // not root's or the master's. (Root's key itself passes whatever user
    // the load names, as in Salt: it proves root access.)
    for (user, k) in [("root", ""), ("root", "not-the-key"), ("nobody", "0123456789abcdef")] {
        let mut load = publication(marker);
        load.set("cmd", s("publish"));
        load.set("user", s(user));
        if !k.is_empty() {
            load.set("key", s(k));
        }
        assert_eq!(error_name(&a.clear(load)), "AuthenticationError", "{user}");
    }
    // The AES side: AESFuncs' private methods by name.
    for cmd in [
        "_send_pub",
        "_prep_auth_info",
        "_AESFuncs__verify_load",
        "run_func",
        "__init__",
    ] {
        assert_eq!(a.call(cmd, &[("jid", s(JID))]), Value::Map(vec![]), "{cmd}");
    }
    a.assert_never_fired(JID);
    assert!(!job_cached(&a.env, JID), "the forged job was stored");
    // Salt's words first (operators and Salt's own tests look for them).
    a.logged(r#"Requested method not exposed: _prep_auth_info (clear request from"#);
    a.logged(r#"("_prep_auth_info") at 127.0.0.1 refused: unknown or unexposed command "_prep_auth_info""#);
    a.logged(r#"Requested method not exposed: _send_pub (AES request from minion "hostile" at 127.0.0.1"#);
    a.logged(r#"refused: Authentication failure of type "user" occurred"#);
    a.finish();
}

/// CVE-2020-11652: with the root key from CVE-2020-11651, Salt's wheel
/// `file_roots.write`/`read` joined a caller's path onto the root
/// unchecked (any file read or written as the master's user), and
/// `get_token`'s token was a file name. Brine's `file_roots` and
/// `pillar_roots` check every path against its root (`..`, absolute,
/// symlinks out): writes answer Salt's "Invalid path" texts, reads find
/// nothing. Its key functions take ids, never paths: names that climb out
/// of the pki dir read, move and delete nothing. A token is a hex digest:
/// any other name is refused before it reaches the filesystem.
#[test]
fn cve_2020_11652_wheel_and_token_paths() {
    let holder = tempfile::Builder::new().prefix("brine").tempdir_in("/tmp").unwrap();
    let pillar = holder.path().join("pillar");
    std::fs::create_dir_all(&pillar).unwrap();
    let mut a = Attack::start(1, &format!("pillar_roots:\n  base:\n    - {}\n", pillar.display()));
    let key = user_key(&a.env);
    let secret = a.env.root().join("secret.txt");
    std::os::unix::fs::symlink(&secret, pillar.join("leak")).unwrap();
    let wheel = |fun: &str, pairs: &[(&str, Value)]| {
        let mut l = load("wheel", &[("fun", s(fun)), ("key", s(&key)), ("user", s("root"))]);
        for (k, v) in pairs {
            l.set(k, v.clone());
        }
        let r = a.clear(l);
        let data = r.get("data").cloned().unwrap_or_else(|| panic!("{fun}: {r:?}"));
        assert_eq!(data.get("success"), Some(&Value::Bool(true)), "{fun}: {r:?}");
        data.get("return").cloned().unwrap()
    };
    let climb = "../../secret.txt";
    let write_to = "../../../cve-2020-11652.sls";
    let write = |fun: &str, path: &str| wheel(fun, &[("path", s(path)), ("data", s("owned")), ("saltenv", s("base"))]);
    assert_eq!(
        write("file_roots.write", write_to),
        s(&format!("Invalid path: {write_to}"))
    );
    assert_eq!(write("pillar_roots.write", write_to), s("Invalid path"));
    let abs = a.env.root().join("cve-2020-11652-abs.sls").display().to_string();
    for fun in ["file_roots.write", "pillar_roots.write"] {
        assert_eq!(
            write(fun, &abs),
            s(&format!(
                "The path passed in {abs} is not relative to the environment base"
            ))
        );
        assert!(
            matches!(write(fun, "leak"), Value::Str(t) if t.starts_with("Invalid path")),
            "{fun}"
        );
    }
    let secret_path = secret.display().to_string();
    for fun in [
        "file_roots.read",
        "pillar_roots.read",
        "file_roots.find",
        "pillar_roots.find",
    ] {
        // Up and out, absolute, through the links to the secret.
        for path in [climb, "../../../secret.txt", &secret_path, "leak", "web/leak2"] {
            let r = wheel(fun, &[("path", s(path)), ("saltenv", s("base"))]);
            assert_eq!(r, Value::Array(vec![]), "{fun} {path}");
        }
    }
    // Key functions with ids that climb out of the pki dir, as globs and
    // in the dict form (names taken as given).
    let dict = |state: &str| Value::map([(state, strs(&[climb, "../../../secret.txt"]))]);
    let mut answers = Vec::new();
    for (fun, m) in [
        ("key.key_str", strs(&[climb])),
        ("key.finger", strs(&[climb])),
        ("key.print", s(climb)),
        ("key.accept_dict", dict("minions_pre")),
        ("key.reject_dict", dict("minions_pre")),
        ("key.delete_dict", dict("minions")),
        ("key.delete", s(climb)),
    ] {
        answers.push(wheel(fun, &[("match", m)]).to_network());
    }
    // Token "files".
    assert_eq!(a.clear(load("get_token", &[("token", s(climb))])), Value::Map(vec![]));
    let r = a.clear(load("runner", &[("fun", s("jobs.list_jobs")), ("token", s(climb))]));
    assert_eq!(error_name(&r), "TokenAuthenticationError");
    assert_eq!(read(&secret), format!("{SECRET}\n"), "the file outside was changed");
    for ans in &answers {
        assert!(!String::from_utf8_lossy(ans).contains(SECRET), "read through the wheel");
    }
    assert_no_marker(&a.env, "cve-2020-11652");
    assert!(
        listing(holder.path()).iter().all(|p| !p.contains("cve-2020-11652")),
        "written beside the pillar root"
    );
    assert!(
        listing(&a.env.root().join("pki")).iter().all(|p| !p.contains("secret")),
        "a file outside was moved into the pki dir"
    );
    a.logged(r#"wheel file_roots.write: "../../../cve-2020-11652.sls" leads out of the root"#);
    a.logged(r#"wheel pillar_roots.find: "leak" leads out of the root"#);
    a.logged("get_token for a name that cannot be a token: refused");
    a.assert_never_fired("salt/key");
    a.finish();
}

/// CVE-2021-25281: salt-api's `wheel_async` ran wheel functions without
/// checking eauth, so anyone reaching salt-api accepted keys (and, with
/// CVE-2021-25282, wrote files). Brine has no salt-api; the master's half
/// of it is the `wheel` clear command, which must refuse every caller
/// without the user key or an eauth ACL that allows the function: a
/// pending key stays pending.
#[test]
fn cve_2021_25281_wheel_without_credentials() {
    let mut a = Attack::start(1, "external_auth:\n  auto:\n    alice:\n      - '@runner'\n");
    let pem = {
        let k = PrivateKey::generate(2048).unwrap();
        String::from_utf8(k.public_key().to_pem_spki().unwrap()).unwrap()
    };
    let pre = a.env.root().join("pki/minions_pre/newbie");
    std::fs::write(&pre, &pem).unwrap();
    let accept = |pairs: &[(&str, Value)]| {
        let mut l = load("wheel", &[("fun", s("key.accept")), ("match", s("newbie"))]);
        for (k, v) in pairs {
            l.set(k, v.clone());
        }
        error_name(&a.clear(l))
    };
    assert_eq!(accept(&[]), "UserAuthenticationError");
    assert_eq!(
        accept(&[("key", s("guess")), ("user", s("root"))]),
        "UserAuthenticationError"
    );
    let eauth = |backend: &str, user: &str| {
        [
            ("eauth", s(backend)),
            ("username", s(user)),
            ("password", s("anything")),
        ]
    };
    // Not in external_auth; in it without @wheel; a backend Brine lacks;
    // a token.
    assert_eq!(accept(&eauth("auto", "mallory")), "EauthAuthenticationError");
    assert_eq!(accept(&eauth("auto", "alice")), "EauthAuthenticationError");
    assert_eq!(accept(&eauth("pam", "root")), "EauthAuthenticationError");
    assert_eq!(accept(&[("token", s("0123456789abcdef"))]), "TokenAuthenticationError");
    assert_eq!(read(&pre), pem, "the pending key was touched");
    assert!(
        !a.env.root().join("pki/minions/newbie").exists(),
        "the key was accepted"
    );
    a.assert_never_fired("salt/wheel/");
    a.assert_never_fired("salt/key");
    a.logged(r#"wheel key.accept: Authentication failure of type "user" occurred"#);
    a.logged(r#"wheel key.accept: eauth user alice is not allowed by the ACL"#);
    a.finish();
}

/// CVE-2020-25592: salt-api handed eauth credentials and tokens to
/// clients that did not check them. Every command Brine serves checks
/// them itself: a token is refused for what its user's ACL does not
/// allow (runner, wheel and publish alike), an unknown token, an expired
/// one (removed on the way) and one of a backend `external_auth` no
/// longer names are refused everywhere, and a runner call without
/// credentials starts no job (the `runner_async` half of CVE-2021-25281).
#[test]
fn cve_2020_25592_credentials_checked_on_every_command() {
    let mut a = Attack::start(
        1,
        "external_auth:\n  auto:\n    fred:\n      - 'test.*'\n      - '@runner'\n      - '@wheel'\n    bob:\n      - test.ping\n",
    );
    let pem = {
        let k = PrivateKey::generate(2048).unwrap();
        String::from_utf8(k.public_key().to_pem_spki().unwrap()).unwrap()
    };
    let pre = a.env.root().join("pki/minions_pre/newbie");
    std::fs::write(&pre, &pem).unwrap();
    let bob = a.clear(load(
        "mk_token",
        &[("eauth", s("auto")), ("username", s("bob")), ("password", s("x"))],
    ));
    let bob = bob
        .get("token")
        .and_then(Value::as_str)
        .expect("bob's token")
        .to_string();
    // Tokens planted in the store: fred's, expired; fred's of a backend
    // external_auth does not name.
    let tokens = a.env.root().join("cache/tokens");
    let plant = |name: &str, expire: f64, eauth: &str| {
        let data = Value::map([
            ("start", Value::F64(1.0)),
            ("expire", Value::F64(expire)),
            ("name", s("fred")),
            ("eauth", s(eauth)),
            ("token", s(name)),
        ]);
        std::fs::write(tokens.join(name), data.to_network()).unwrap();
    };
    let expired = "e".repeat(64);
    let other_backend = "b".repeat(64);
    plant(&expired, 2.0, "auto");
    plant(&other_backend, 4e9, "pam");
    let unknown = "0".repeat(64);
    let with = |cmd: &str, fun: &str, tok: &str| {
        let mut l = load(cmd, &[("fun", s(fun)), ("token", s(tok))]);
        if cmd == "wheel" {
            l.set("match", s("newbie"));
        }
        error_name(&a.clear(l))
    };
    let publish = |tok: &str, fun: &str| {
        let mut l = load(
            "publish",
            &[("fun", s(fun)), ("tgt", s("*")), ("arg", Value::Array(vec![]))],
        );
        l.set("tgt_type", s("glob"));
        l.set("user", s("root"));
        l.set("kwargs", Value::map([("token", s(tok))]));
        error_name(&a.clear(l))
    };
    // Bob's token, beyond bob's ACL.
    assert_eq!(with("wheel", "key.accept", &bob), "TokenAuthenticationError");
    assert_eq!(with("runner", "manage.up", &bob), "TokenAuthenticationError");
    assert_eq!(publish(&bob, "cmd.run"), "AuthorizationError");
    for tok in [&expired, &other_backend, &unknown] {
        assert_eq!(with("wheel", "key.accept", tok), "TokenAuthenticationError", "{tok}");
        assert_eq!(with("runner", "manage.up", tok), "TokenAuthenticationError", "{tok}");
        assert_eq!(publish(tok, "test.ping"), "AuthenticationError", "{tok}");
    }
    assert_eq!(
        a.clear(load("get_token", &[("token", s(&expired))])),
        Value::Map(vec![])
    );
    assert!(!tokens.join(&expired).exists(), "the expired token was kept");
    // No credentials at all.
    assert_eq!(
        error_name(&a.clear(load("runner", &[("fun", s("manage.up"))]))),
        "UserAuthenticationError"
    );
    assert_eq!(read(&pre), pem, "the pending key was touched");
    a.assert_never_fired("salt/run/");
    a.assert_never_fired("salt/wheel/");
    a.assert_never_fired("salt/key");
    a.logged("Authentication failure of type \"token\" occurred.");
    a.finish();
}

/// CVE-2021-25282: Salt's wheel `pillar_roots.write` joined the caller's
/// path onto the pillar root unchecked: an eauth user with `@wheel` (or
/// anyone, through CVE-2021-25281) wrote any file the master's user
/// could. Brine's `pillar_roots.write` and `file_roots.write` answer
/// Salt's refusals for paths that climb out or are absolute, write
/// nothing there, and still write inside the root.
#[test]
fn cve_2021_25282_pillar_roots_write_traversal() {
    let holder = tempfile::Builder::new().prefix("brine").tempdir_in("/tmp").unwrap();
    let pillar = holder.path().join("pillar");
    let extra = format!(
        "external_auth:\n  auto:\n    alice:\n      - '@wheel'\npillar_roots:\n  base:\n    - {}\n",
        pillar.display()
    );
    let a = Attack::start(1, &extra);
    let write = |fun: &str, path: &str| {
        let l = load(
            "wheel",
            &[
                ("fun", s(fun)),
                ("eauth", s("auto")),
                ("username", s("alice")),
                ("password", s("x")),
                ("path", s(path)),
                ("data", s("pwned: True")),
                ("saltenv", s("base")),
            ],
        );
        let r = a.clear(l);
        r.get("data")
            .and_then(|d| d.get("return"))
            .cloned()
            .unwrap_or_else(|| panic!("{r:?}"))
    };
    let abs = format!("{}/cve-2021-25282-c", a.env.root().display());
    for path in [
        "../../../../cve-2021-25282-a",
        "../cve-2021-25282-b.sls",
        "x/../../cve-2021-25282-d",
    ] {
        assert_eq!(write("pillar_roots.write", path), s("Invalid path"), "{path}");
        assert_eq!(
            write("file_roots.write", path),
            s(&format!("Invalid path: {path}")),
            "{path}"
        );
    }
    for fun in ["pillar_roots.write", "file_roots.write"] {
        assert_eq!(
            write(fun, &abs),
            s(&format!(
                "The path passed in {abs} is not relative to the environment base"
            ))
        );
    }
    assert_no_marker(&a.env, "cve-2021-25282");
    assert!(
        listing(holder.path()).iter().all(|p| !p.contains("cve-2021-25282")),
        "written beside the pillar root"
    );
    assert_eq!(
        write("pillar_roots.write", "sub/ok.sls"),
        s(&format!("Wrote data to file {}/sub/ok.sls", pillar.display()))
    );
    assert_eq!(read(&pillar.join("sub/ok.sls")), "pwned: True");
    a.logged(r#"wheel pillar_roots.write: "../cve-2021-25282-b.sls" leads out of the root"#);
    a.finish();
}

/// CVE-2021-25283: Salt's Jinja renderer was not sandboxed, so template
/// text reaching it ran Python (`{{ [].__class__ ... }}`). The master
/// renders pillar SLS, and a minion controls the grains they see. Brine's
/// templates have no Python objects, data from grains is never rendered
/// again, and a path built from grains cannot import a file outside the
/// pillar roots.
#[test]
fn cve_2021_25283_template_injection() {
    let root_holder = tempfile::Builder::new().prefix("brine").tempdir_in("/tmp").unwrap();
    let pillar = root_holder.path();
    std::fs::write(
        pillar.join("top.sls"),
        "base:\n  '*':\n    - echo\n    - climb\n    - klass\n",
    )
    .unwrap();
    std::fs::write(pillar.join("echo.sls"), "echo: {{ grains['payload'] | json }}\n").unwrap();
    std::fs::write(
        pillar.join("climb.sls"),
        "{% import_text grains['inc'] as leaked %}\nleak: {{ leaked | json }}\n",
    )
    .unwrap();
    std::fs::write(
        pillar.join("klass.sls"),
        "klass: {{ ([].__class__ ~ ''.__class__.__mro__ ~ cycler.__init__.__globals__) | json }}\n",
    )
    .unwrap();
    let extra = format!("pillar_roots:\n  base:\n    - {}\n", pillar.display());
    let a = Attack::start(1, &extra);
    let secret = a.env.root().join("secret.txt");
    let payload = "{{ 7*7 }}{% include '/etc/hostname' %}";
    for inc in [
        "../../../../../../../../".to_string() + secret.to_str().unwrap(),
        secret.display().to_string(),
        "../secret.txt".into(),
    ] {
        let grains = Value::map([("payload", s(payload)), ("inc", s(&inc))]);
        let p = pillar_of(&a.m, a.port(), &[("grains", grains), ("saltenv", s("base"))]);
        let text = String::from_utf8_lossy(&p.to_network()).into_owned();
        assert!(
            !text.contains(SECRET),
            "{inc}: a file outside pillar_roots was read: {p:?}"
        );
        assert!(!text.contains("class '"), "Python objects reached the template: {p:?}");
        assert_eq!(p.get("echo"), Some(&s(payload)), "grain data was rendered: {p:?}");
        assert!(p.get("leak").is_none(), "{p:?}");
    }
    a.logged("climb");
    a.finish();
}

/// CVE-2022-22936: a man in the middle replayed the master's answers
/// (fileserver replies, job results) to other requests. Each answer is
/// sealed with the request's nonce; the minion opens it with the nonce
/// it sent, so an answer cannot stand in for another.
#[test]
fn cve_2022_22936_replies_bound_to_their_request() {
    let a = Attack::start(1, "");
    let asked = |path: &str, nonce: &str| {
        let l = load(
            "_serve_file",
            &[("path", s(path)), ("saltenv", s("base")), ("loc", Value::Int(0))],
        );
        let reply = Value::decode(&ask(a.port(), &[a.m.request(&l, nonce)])).unwrap();
        reply.as_bytes().expect("a sealed answer").to_vec()
    };
    let (n1, n2) = (new_nonce(), new_nonce());
    let r1 = asked("web/files/nginx.conf", &n1);
    let r2 = asked("only_b.txt", &n2);
    let open = |ct: &[u8], n: &str| a.m.session.open(ct, Some(n));
    assert!(open(&r1, &n1).unwrap().is_some() && open(&r2, &n2).unwrap().is_some());
    // Swapped, each answer fails the minion's nonce check.
    assert!(open(&r1, &n2).is_err(), "an answer opens under another request's nonce");
    assert!(open(&r2, &n1).is_err(), "an answer opens under another request's nonce");
    a.finish();
}

/// CVE-2022-22941: an eauth/ACL user restricted to some minions targeted
/// others by a target the master resolved to no minion at all (minions
/// behind a syndic): the ACL check passed on the empty list and the job
/// was published, every minion then matching itself. In Brine the
/// target-restricted ACL is `peer:`; a pcre target with look-ahead
/// resolves to no minion on the master (Rust's regex refuses it) while
/// the Python minion matches it. The publish must be refused, no job
/// stored, and the bystander must not run it.
#[test]
fn cve_2022_22941_acl_target_resolving_to_nothing() {
    let peer = "peer:\n  hostile:\n    - hostile:\n      - test.*\n";
    let mut a = Attack::start(1, peer);
    let marker = "cve-2022-22941";
    let reply = a.call(
        "minion_pub",
        &[
            ("fun", s("test.echo")),
            ("arg", strs(&[marker])),
            ("tgt", s(&format!("(?={BYSTANDER}){BYSTANDER}"))),
            ("tgt_type", s("pcre")),
            ("ret", s("")),
            ("tmo", Value::Int(5)),
        ],
    );
    let minions = reply.get("minions").cloned().unwrap_or(Value::Array(vec![]));
    assert_eq!(minions, Value::Array(vec![]), "{reply:?}");
    // The control: its own id, which the ACL allows, is published.
    let own = a.call(
        "minion_pub",
        &[
            ("fun", s("test.ping")),
            ("arg", Value::Array(vec![])),
            ("tgt", s("hostile")),
            ("tgt_type", s("glob")),
            ("ret", s("")),
        ],
    );
    assert_eq!(own.get("minions"), Some(&strs(&["hostile"])), "{own:?}");
    a.events();
    let echoed: Vec<&Event> = a
        .seen
        .iter()
        .filter(|e| e.tag.ends_with("/new") && e.data.get("fun") == Some(&s("test.echo")))
        .collect();
    assert!(echoed.is_empty(), "the refused job was published: {echoed:?}");
    a.logged("peer publish of test.echo refused: Master could not resolve minions");
    // Through the bystander's last ping: no return of the refused job.
    let after = a.finish();
    assert!(
        !after.iter().any(|e| e.data.get("fun") == Some(&s("test.echo"))),
        "the bystander ran the refused job"
    );
}

/// CVE-2023-20897: a message that did not decode stopped Salt's request
/// server from answering (the exception broke the connection). Every
/// malformed body gets Salt's "bad load", one log line, and the worker
/// goes on serving.
#[test]
fn cve_2023_20897_malformed_messages() {
    let a = Attack::start(1, "");
    let mut deep = vec![0x91u8; 100_000];
    deep.push(0xc0);
    let bodies: Vec<Vec<u8>> = vec![
        vec![0xc1],
        vec![0x82, 0xa3, b'e', b'n'],
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],
        vec![0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'x'],
        deep,
        b"\x00\xff garbage \xfe".to_vec(),
        Value::map([("enc", s("aes")), ("load", Value::Int(5)), ("version", Value::Int(3))]).to_network(),
        Value::map([
            ("enc", s("aes")),
            ("load", Value::Bytes(vec![1; 33])),
            ("id", s("hostile")),
            ("version", Value::Int(3)),
        ])
        .to_network(),
        Value::Array(vec![s("enc"), s("clear")]).to_network(),
        Vec::new(),
    ];
    for body in &bodies {
        let reply = Value::decode(&ask(a.port(), std::slice::from_ref(body))).unwrap();
        assert!(
            reply == bad_load() || reply == s("payload and load must be a dict"),
            "{:?}: {reply:?}",
            &body[..body.len().min(16)]
        );
    }
    a.logged("malformed msgpack");
    a.finish();
}

/// CVE-2024-22231: Salt's `_syndic_return` created
/// `cachedir/syndics/<id>` from the load's syndic `id` unchecked, so an
/// id with `..` made files and directories anywhere. With
/// `order_masters: True` Brine registers only ids that stay in
/// `syndics/`, and records returns only under valid minion ids.
#[test]
fn cve_2024_22231_syndic_cache_traversal() {
    let a = Attack::start(1, "order_masters: True\n");
    let ret = |minion: &str| Value::map([(minion, Value::map([("return", Value::Bool(true))]))]);
    for (syndic, minion) in [
        ("../cve-2024-22231-a", "m1"),
        ("../../cve-2024-22231-b", "m1"),
        ("x/../../../cve-2024-22231-c", "m1"),
        ("syn", "../../../cve-2024-22231-d"),
        ("syn", "../cve-2024-22231-e"),
    ] {
        a.call(
            "_syndic_return",
            &[
                ("id", s(syndic)),
                ("jid", s(JID)),
                ("return", ret(minion)),
                ("fun", s("test.ping")),
            ],
        );
        let batch = Value::map([("id", s(syndic)), ("jid", s(JID)), ("return", ret(minion))]);
        a.call("_syndic_return", &[("load", Value::Array(vec![batch]))]);
    }
    assert_no_marker(&a.env, "cve-2024-22231");
    assert!(a.env.root().join("cache/syndics/syn").exists(), "the control syndic");
    a.logged(r#"syndic id "../cve-2024-22231-a" from minion "hostile" is not valid: not registered"#);
    a.logged(r#"return for invalid id Str("../cve-2024-22231-e") dropped"#);
    a.finish();
}

/// CVE-2024-22232: Salt's `_serve_file` (and the other fileserver
/// commands) found paths with `..` outside the file roots. Every spelling
/// of a climb out of the roots answers as a missing file, is logged, and
/// returns nothing of the file outside.
#[test]
fn cve_2024_22232_fileserver_traversal() {
    let a = Attack::start(1, "");
    let abs = a.env.root().join("secret.txt").display().to_string();
    let paths = [
        "../../secret.txt".to_string(),
        "../../../secret.txt".into(),
        "web/../../../secret.txt".into(),
        "web/files/../../../../secret.txt".into(),
        abs.clone(),
        format!("..{abs}"),
        "|../../secret.txt".into(),
        "../../secret.txt?saltenv=base".into(),
        "salt://../../secret.txt".into(),
    ];
    let mut answers = Vec::new();
    for p in &paths {
        for saltenv in ["base", "../..", "../../../"] {
            for cmd in ["_serve_file", "_file_hash", "_file_find", "_file_hash_and_stat"] {
                let r = a.call(cmd, &[("path", s(p)), ("saltenv", s(saltenv)), ("loc", Value::Int(0))]);
                answers.push((format!("{cmd} {p} {saltenv}"), r));
            }
        }
    }
    for (what, r) in &answers {
        let text = String::from_utf8_lossy(&r.to_network()).into_owned();
        assert!(!text.contains(SECRET), "{what}: {r:?}");
        assert!(!text.contains("secret.txt"), "{what} found the file: {r:?}");
    }
    a.logged("fileserver: refused salt://../../secret.txt");
    a.finish();
}

/// CVE-2024-38822: several of Salt's AES methods did not check the
/// request's `tok`, so a minion (with the shared key of v2 requests)
/// acted as any other minion. Every command Brine serves needs the
/// session key of the envelope's id, the same id inside, and a `tok` made
/// with that minion's private key. The attacker holds the victim's
/// session key here but not its private key: every command is refused
/// before it runs, and nothing is recorded under the victim.
#[test]
fn cve_2024_38822_token_on_every_command() {
    let mut a = Attack::start(1, "file_recv: True\n");
    let victim = accepted_minion(&a.env, "victim");
    let mut body = load(
        "",
        &[
            ("id", s("victim")),
            ("jid", s(JID)),
            ("return", Value::Bool(true)),
            ("fun", s("test.ping")),
            ("tag", s("cve/forged")),
            ("data", Value::map([("mine.cve", Value::Bool(true))])),
            ("grains", Value::map([("os", s("forged"))])),
            ("path", strs(&["cve-2024-38822"])),
            ("loc", Value::Int(0)),
            ("tgt", s("*")),
            ("arg", Value::Array(vec![])),
            ("saltenv", s("base")),
        ],
    );
    let own_tok = a.m.key.x931_encrypt(b"salt").unwrap();
    let mut refused = 0;
    for cmd in AesCmd::ALL {
        body.set("cmd", s(cmd.as_str()));
        let forged = [
            // The victim's session, the attacker's tok.
            forged_request(&victim.session, "victim", &body, Some(own_tok.clone()), now()),
            // No tok at all.
            forged_request(&victim.session, "victim", &body, None, now()),
            // The attacker's own session and envelope, the victim inside.
            forged_request(&a.m.session, "hostile", &body, Some(own_tok.clone()), now()),
            // A v2 request, which carries no session.
            Value::map([
                ("enc", s("aes")),
                (
                    "load",
                    Value::Bytes(a.m.session.seal(&body.to_network(), None).unwrap()),
                ),
                ("version", Value::Int(2)),
                ("id", s("victim")),
            ])
            .to_network(),
        ];
        for (n, req) in forged.iter().enumerate() {
            let reply = Value::decode(&ask(a.port(), std::slice::from_ref(req))).unwrap();
            assert_eq!(reply, bad_load(), "{} (form {n})", cmd.as_str());
            refused += 1;
        }
    }
    assert_eq!(refused, 4 * AesCmd::ALL.len());
    assert!(
        !a.env.root().join("cache/minions/victim").exists(),
        "data recorded for the victim"
    );
    assert_no_marker(&a.env, "cve-2024-38822");
    assert!(!job_cached(&a.env, JID), "a return recorded for the victim");
    a.assert_never_fired("cve/forged");
    a.assert_never_fired("victim");
    a.logged(r#"bad tok from victim"#);
    a.logged("request without tok");
    a.logged("does not match the load's id");
    a.logged("below minimum_auth_version");
    a.finish();
}

/// CVE-2024-38823: Salt's request server took a captured request again
/// (a replay) as long as the session lasted. With `request_server_ttl`
/// set, a request older than that is refused; and a request captured
/// under a session key the minion has since replaced (it signed in
/// again) no longer opens.
#[test]
fn cve_2024_38823_replayed_requests() {
    let mut a = Attack::start(1, "request_server_ttl: 60\n");
    let tok = a.m.key.x931_encrypt(b"salt").unwrap();
    let event = |tag: &str| {
        load(
            "_minion_event",
            &[("id", s("hostile")), ("tag", s(tag)), ("data", Value::Map(vec![]))],
        )
    };
    let old = forged_request(
        &a.m.session,
        "hostile",
        &event("cve/replay/old"),
        Some(tok.clone()),
        now() - 3600,
    );
    assert_eq!(Value::decode(&ask(a.port(), &[old])).unwrap(), bad_load());
    // Captured while valid: served once.
    let captured = forged_request(&a.m.session, "hostile", &event("cve/replay/fresh"), Some(tok), now());
    assert!(Value::decode(&ask(a.port(), std::slice::from_ref(&captured)))
        .unwrap()
        .as_bytes()
        .is_some());
    // The minion signs in again: a new session key replaces the old one.
    let renewed = Crypticle::generate();
    std::fs::write(a.env.root().join("cache/sessions/hostile"), renewed.key_string()).unwrap();
    a.m.session = renewed;
    assert_eq!(Value::decode(&ask(a.port(), &[captured])).unwrap(), bad_load());
    a.events();
    let fresh = a.tags().iter().filter(|t| **t == "cve/replay/fresh").count();
    assert_eq!(fresh, 1, "{:?}", a.tags());
    assert!(!a.tags().contains(&"cve/replay/old"));
    a.logged("s old (request_server_ttl 60)");
    a.logged("cannot decrypt request from hostile");
    a.finish();
}

/// CVE-2024-38824: Salt's `_file_recv` (`cp.push`) joined the minion's
/// path onto `cachedir/minions/<id>/files` with a check that missed
/// some climbs: any file the master's user could write. Every climb out
/// of the minion's own directory is answered `False`, logged, and writes
/// nothing.
#[test]
fn cve_2024_38824_file_recv_traversal() {
    let a = Attack::start(1, "file_recv: True\n");
    let abs = a.env.root().join("cve-2024-38824-abs").display().to_string();
    let paths: Vec<Vec<&str>> = vec![
        vec!["..", "..", "..", "..", "cve-2024-38824-a"],
        vec!["../../../../cve-2024-38824-b"],
        vec!["x/../../../../../cve-2024-38824-c"],
        vec!["..", "bystander", "files", "cve-2024-38824-d"],
        vec!["../", "cve-2024-38824-e"],
        vec![abs.as_str()],
        vec!["a", "..", "..", "..", "..", "..", "cve-2024-38824-f"],
    ];
    for p in &paths {
        let r = a.call(
            "_file_recv",
            &[
                ("path", strs(p)),
                ("loc", Value::Int(0)),
                ("data", Value::Bytes(b"owned".to_vec())),
            ],
        );
        assert_eq!(r, Value::Bool(false), "{p:?}");
    }
    // The control: inside its own directory.
    let ok = a.call(
        "_file_recv",
        &[
            ("path", strs(&["etc", "hosts"])),
            ("loc", Value::Int(0)),
            ("data", s("ok")),
        ],
    );
    assert_eq!(ok, Value::Bool(true));
    assert_eq!(read(&a.env.root().join("cache/minions/hostile/files/etc/hosts")), "ok");
    assert_no_marker(&a.env, "cve-2024-38824");
    a.logged("hostile: _file_recv refused");
    a.finish();
}

/// CVE-2025-22236: on Salt 3007 a minion's `_minion_event` with a
/// `salt/job/<jid>/publish` tag (and a `__peer_id`) was taken by the
/// master's EventMonitor for a cluster peer's publication and sent to
/// the minions: a job on every minion from one minion key. Brine refuses
/// the tags only the master fires; the forged publication reaches
/// neither the bus nor the bystander.
#[test]
fn cve_2025_22236_minion_event_publishes_a_job() {
    let mut a = Attack::start(1, "");
    let mut job = publication("cve-2025-22236");
    job.set("__peer_id", s("master2"));
    let tag = format!("salt/job/{JID}/publish");
    a.call("_minion_event", &[("tag", s(&tag)), ("data", job.clone())]);
    let ev = Value::map([("tag", s(&tag)), ("data", job.clone())]);
    a.call("_minion_event", &[("events", Value::Array(vec![ev]))]);
    let tail = Value::map([("tag", s(&format!("{JID}/publish"))), ("data", job)]);
    a.call(
        "_minion_event",
        &[("events", Value::Array(vec![tail])), ("pretag", s("salt/job"))],
    );
    // Only the tails stripped of the pretag arrive, as tags no master
    // acts on (`<jid>/publish`).
    a.assert_never_fired(&format!("salt/job/{JID}"));
    a.logged("refused: a tag only the master fires (salt/job/*/publish)");
    assert!(!job_cached(&a.env, JID));
    let after = a.finish();
    assert!(
        !after.iter().any(|e| e.tag.starts_with(&format!("salt/job/{JID}"))),
        "the bystander ran the job"
    );
}

/// The on-demand ext_pillar of `_pillar` (`ext`, Salt's `pillar.ext`):
/// Salt ran the ext_pillar modules a minion named, within
/// `on_demand_ext_pillar`. Brine runs none: the request is answered with
/// the ordinary pillar, and the refusal is logged.
fn on_demand_pillar(a: &Attack, ext: Value) -> Value {
    let grains = Value::map([("os", s("Linux"))]);
    pillar_of(
        &a.m,
        a.port(),
        &[("grains", grains), ("ext", ext), ("saltenv", s("base"))],
    )
}

/// CVE-2025-22237: `_pillar` with an on-demand `git` ext_pillar whose
/// remote was crafted so that git ran a command on the master. Brine runs
/// no ext_pillar module for a minion, git included: no command runs.
#[test]
fn cve_2025_22237_on_demand_git_pillar() {
    let a = Attack::start(1, "");
    let marker = a.env.root().join("cve-2025-22237");
    let remote = format!(
        "master file:///nonexistent --upload-pack=touch${{IFS}}{}",
        marker.display()
    );
    for ext in [
        Value::Array(vec![Value::map([("git", s(&remote))])]),
        Value::Array(vec![Value::map([("git", strs(&[&remote]))])]),
        Value::map([(
            "git",
            strs(&[&remote, &format!("-c core.sshCommand='touch {}'", marker.display())]),
        )]),
    ] {
        let p = on_demand_pillar(&a, ext);
        assert!(p.is_map(), "{p:?}");
    }
    assert!(!marker.exists(), "a command ran on the master");
    assert_no_marker(&a.env, "cve-2025-22237");
    a.logged("on-demand ext_pillar (pillar.ext) is not implemented by Brine: ignored");
    a.finish();
}

/// CVE-2025-22238: Salt's minion data cache (`localfs`) joined banks and
/// keys built from request fields onto cachedir unchecked, so `..` wrote
/// cache files elsewhere. Brine's caches are keyed by the verified
/// minion id and by jids that must parse as jids: `..` in a jid, a
/// pillar environment or a mine function writes nothing outside.
#[test]
fn cve_2025_22238_cache_paths_from_request_fields() {
    let extra = "pillar_roots:\n  __env__:\n    - /tmp/brine-cve-none/__env__\n";
    let a = Attack::start(1, extra);
    let m = "cve-2025-22238";
    for jid in [
        format!("../../../{m}-a"),
        format!("{JID}/../../../../{m}-b"),
        format!("../../{m}-c/{JID}"),
        format!("{JID}/../{m}-d"),
    ] {
        a.call(
            "_return",
            &[("jid", s(&jid)), ("return", Value::Bool(true)), ("fun", s("test.ping"))],
        );
        let batch = Value::map([("id", s("syn")), ("jid", s(&jid)), ("return", Value::Map(vec![]))]);
        a.call("_syndic_return", &[("load", Value::Array(vec![batch]))]);
        a.call("pub_ret", &[("jid", s(&jid))]);
    }
    for env in [format!("../../../{m}-e"), format!("../{m}-f")] {
        let grains = Value::map([("os", s("Linux"))]);
        pillar_of(
            &a.m,
            a.port(),
            &[("grains", grains), ("saltenv", s(&env)), ("pillarenv", s(&env))],
        );
    }
    let mine = Value::map([(format!("../../../{m}-g"), Value::Bool(true))]);
    a.call("_mine", &[("data", mine)]);
    a.call("_mine_delete", &[("fun", s(&format!("../../{m}-h")))]);
    assert_no_marker(&a.env, m);
    a.logged(&format!("hostile: return with an invalid jid \"../../../{m}-a\""));
    a.finish();
}

/// CVE-2025-22239: Salt's `_minion_event` put any tag a minion sent on
/// the master's bus: forged key, auth, job and runner events that
/// reactors and clients act on. The tags only the master fires (Salt's
/// blacklist and more), whole, in `events` or under a `pretag`, are
/// refused and logged; the minion's own events pass.
#[test]
fn cve_2025_22239_minion_event_injection() {
    let mut a = Attack::start(1, "");
    let forged: Vec<String> = [
        "salt/job/J/new",
        "salt/job/J/return",
        "salt/job/J/ret/bystander",
        "salt/job/J/publish",
        "salt/key",
        "salt/auth",
        "salt/cloud/vm1/created",
        "salt/run/J/new",
        "salt/run/J/ret",
        "salt/cluster/peer/join",
        "salt/wheel/J/new",
        "salt/wheel/J/ret",
        "salt/minion/bystander/start",
        "minion/refresh/bystander",
    ]
    .iter()
    .map(|t| t.replace('J', JID))
    .collect();
    let ev = |tag: &str| Value::map([("tag", s(tag)), ("data", Value::map([("forged", Value::Bool(true))]))]);
    a.call(
        "_minion_event",
        &[("events", Value::Array(forged.iter().map(|t| ev(t)).collect()))],
    );
    for t in &forged {
        a.call(
            "_minion_event",
            &[("tag", s(t)), ("data", Value::map([("forged", Value::Bool(true))]))],
        );
        if let Some((pre, tail)) = t.split_once('/') {
            a.call(
                "_minion_event",
                &[("events", Value::Array(vec![ev(tail)])), ("pretag", s(pre))],
            );
        }
    }
    a.call(
        "_minion_event",
        &[("tag", s("salt/minion/hostile/cve")), ("data", Value::Map(vec![]))],
    );
    a.events();
    let on_bus: Vec<&Event> = a
        .seen
        .iter()
        .filter(|e| forged.contains(&e.tag) || e.data.get("forged").is_some() && e.tag.starts_with("salt/"))
        .collect();
    assert!(on_bus.is_empty(), "forged events on the bus: {on_bus:?}");
    assert!(a.tags().contains(&"salt/minion/hostile/cve"), "the control");
    a.logged(r#"Filtering blacklisted event tag "salt/key": refused: a tag only the master fires (salt/key*)"#);
    a.logged(r#"refused: a tag naming another minion ("bystander")"#);
    a.finish();
}

/// CVE-2025-22241: the `virtkey` on-demand ext_pillar wrote an
/// "authorization file" under `pki_dir/virtkeys/` from request fields
/// unchecked: a path of the minion's choosing, and an auto-accepted key
/// later. Brine runs no ext_pillar for a minion: nothing is written in
/// or beside the pki dir.
#[test]
fn cve_2025_22241_virtkey_pillar() {
    let a = Attack::start(1, "");
    let before = listing(&a.env.root().join("pki"));
    for ext in [
        Value::Array(vec![Value::map([(
            "virtkey",
            strs(&["../../../cve-2025-22241-a", "victim"]),
        )])]),
        Value::Array(vec![Value::map([(
            "virtkey",
            Value::map([("hyper", s("../../cve-2025-22241-b")), ("name", s("../x"))]),
        )])]),
        Value::map([("virtkey", strs(&["hv", "../../../../cve-2025-22241-c"]))]),
    ] {
        assert!(on_demand_pillar(&a, ext).is_map());
    }
    assert_eq!(listing(&a.env.root().join("pki")), before, "the pki dir changed");
    assert_no_marker(&a.env, "cve-2025-22241");
    a.logged("on-demand ext_pillar (pillar.ext) is not implemented by Brine: ignored");
    a.finish();
}

/// CVE-2025-22242: Salt's `pub_ret` opened `publish_auth/<jid>` with the
/// minion's jid unchecked, so a jid leading to a FIFO (or a /proc node)
/// held the worker in `open()` forever. Brine takes only a file directly
/// in `publish_auth`: with one MWorker, every such request is answered
/// at once and the bystander keeps answering.
#[test]
fn cve_2025_22242_pub_ret_blocking_read() {
    let a = Attack::start(1, "");
    let fifo = a.env.root().join("cve-2025-22242.fifo");
    let ok = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(ok.success());
    let abs = fifo.display().to_string();
    for jid in [
        "../../cve-2025-22242.fifo".to_string(),
        "x/../../../cve-2025-22242.fifo".to_string(),
        format!("../../../../../../../..{abs}"),
        abs.clone(),
        "..".into(),
        ".".into(),
    ] {
        let nonce = new_nonce();
        let req = a.m.request(&load("pub_ret", &[("jid", s(&jid))]), &nonce);
        let reply = ask_within(a.port(), &[req], 10_000).unwrap_or_else(|| panic!("pub_ret {jid:?} held the worker"));
        let ct = Value::decode(&reply).unwrap();
        let plain = a.m.session.open(ct.as_bytes().unwrap(), Some(&nonce)).unwrap().unwrap();
        assert_eq!(Value::decode(&plain).unwrap(), s(""), "{jid}");
    }
    a.logged("hostile: pub_ret for an invalid jid");
    a.finish();
}
