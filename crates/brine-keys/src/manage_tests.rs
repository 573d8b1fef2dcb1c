use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::Path;

use super::*;

fn pubkey() -> String {
    let k = openssl::rsa::Rsa::generate(1024).unwrap();
    String::from_utf8(k.public_key_to_pem().unwrap()).unwrap()
}

struct Env {
    dir: tempfile::TempDir,
    events: UnixListener,
}

impl Env {
    fn new(extra: &str, keys: &[(KeyState, &str)]) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().display();
        let conf = dir.path().join("conf");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(
            conf.join("master"),
            format!("root_dir: {r}\npki_dir: {r}/pki\ncachedir: {r}/cache\nsock_dir: {r}/sock\nid: m0\n{extra}"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("sock")).unwrap();
        let events = UnixListener::bind(dir.path().join("sock/master_event_pull.ipc")).unwrap();
        events.set_nonblocking(true).unwrap();
        let store = FsKeyStore::new(dir.path().join("pki"));
        for (state, id) in keys {
            store.put(*state, id, &pubkey()).unwrap();
        }
        Env { dir, events }
    }

    fn keys(&self) -> Keys {
        Keys::new(&MasterConfig::load(&self.dir.path().join("conf")).unwrap())
    }

    fn sender(&self) -> EventSender {
        EventSender::new(&self.dir.path().join("sock"))
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    fn cache(&self, ids: &[&str]) {
        for id in ids {
            let d = self.path(&format!("cache/minions/{id}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("data.p"), b"x").unwrap();
        }
    }

    fn cached(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path("cache/minions"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The `salt/key` events fired so far, as (act, id).
    fn fired(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while let Ok((mut s, _)) = self.events.accept() {
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).unwrap();
            while let Some(f) = brine_proto::event::take_frame(&mut buf, true) {
                let (tag, data) = brine_proto::event::unpack_frame(&f).unwrap();
                assert_eq!(tag, "salt/key");
                assert_eq!(data.get("result"), Some(&Value::Bool(true)));
                let s = |k: &str| data.get(k).and_then(Value::as_str).unwrap().to_string();
                out.push((s("act"), s("id")));
            }
        }
        out
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn ls(pairs: &[(&str, &[&str])]) -> Listing {
    pairs.iter().map(|(s, ids)| (s.to_string(), strings(ids))).collect()
}

#[test]
fn listing_and_matching_as_salt() {
    use KeyState::*;
    let env = Env::new(
        "",
        &[
            (Accepted, "b1"),
            (Accepted, "A2"),
            (Pending, "b3"),
            (Rejected, "r1"),
            (Denied, "d1"),
        ],
    );
    let k = env.keys();
    assert_eq!(
        k.list_keys().unwrap(),
        ls(&[
            ("minions", &["A2", "b1"]),
            ("minions_pre", &["b3"]),
            ("minions_rejected", &["r1"]),
            ("minions_denied", &["d1"]),
        ]),
        "Salt's order, ids sorted ignoring case"
    );
    assert_eq!(k.list_status("un").unwrap(), ls(&[("minions_pre", &["b3"])]));
    assert_eq!(k.list_status("bogus").unwrap(), ls(&[]));
    assert_eq!(globs("a,b*"), strings(&["a", "b*"]));
    // Once per matching pattern, statuses without a match left out.
    assert_eq!(
        k.name_match(&strings(&["b*", "b1"]), false).unwrap(),
        ls(&[("minions", &["b1", "b1"]), ("minions_pre", &["b3"])])
    );
    std::fs::write(env.path("pki/master.pub"), pubkey()).unwrap();
    std::fs::write(env.path("pki/master.pem"), "x").unwrap();
    assert_eq!(
        k.name_match(&strings(&["master*"]), true).unwrap(),
        ls(&[("local", &["master.pem", "master.pub"])])
    );
    assert_eq!(
        k.dict_match(&ls(&[("minions_pre", &["r1", "b*"])])).unwrap(),
        ls(&[
            ("minions", &["b*"]),
            ("minions_pre", &["b*"]),
            ("minions_rejected", &["r1"])
        ])
    );
    let f = k.finger(&strings(&["b1", "master.pub"]), "sha256").unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].0, "minions");
    assert_eq!(f[1].1[0].0, "master.pub");
    assert_eq!(f[1].1[0].1.len(), 95);
    let s = k.key_str(&strings(&["b*", "b1"])).unwrap();
    assert_eq!(s[0].1.len(), 1, "one entry per id");
    assert!(s[0].1[0].1.starts_with("-----BEGIN PUBLIC KEY-----"));
}

#[test]
fn accept_moves_valid_keys_and_fires_events() {
    use KeyState::*;
    let env = Env::new("", &[(Pending, "p1"), (Pending, "p2"), (Rejected, "r1")]);
    std::fs::write(env.path("pki/minions_pre/bad"), "garbage").unwrap();
    let k = env.keys();
    let out = k.accept(
        &mut env.sender(),
        &Match::Globs(strings(&["p1", "bad", "r1"])),
        false,
        false,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.changed, strings(&["p1"]));
    assert_eq!(out.invalid, strings(&["bad"]));
    assert_eq!(
        out.keys,
        ls(&[
            ("minions", &["p1"]),
            ("minions_pre", &["bad"]),
            ("minions_rejected", &["r1"])
        ])
    );
    assert_eq!(env.fired(), vec![("accept".to_string(), "p1".to_string())]);
    // With include_rejected, and through a dict.
    let m = Match::Dict(ls(&[("minions_rejected", &["r1"]), ("minions_pre", &["p2"])]));
    let out = k.accept(&mut env.sender(), &m, true, false);
    // dict_match: the dict in its order, each entry's ids sorted.
    assert_eq!(out.keys, ls(&[("minions", &["r1", "p2"])]));
    assert!(!env.path("cache/.dfn").exists(), "accepting rotates nothing");
}

#[test]
fn reject_and_delete_drop_orphan_caches_and_ask_for_rotation() {
    use KeyState::*;
    let env = Env::new("", &[(Accepted, "a1"), (Accepted, "a2"), (Pending, "p1")]);
    env.cache(&["a1", "a2", "p1", "ghost"]);
    let k = env.keys();
    let out = k.reject(&mut env.sender(), &Match::Globs(strings(&["a1", "p1"])), false, false);
    assert_eq!(
        out.changed,
        strings(&["p1"]),
        "accepted keys only with include_accepted"
    );
    assert_eq!(
        env.cached(),
        strings(&["a1", "a2", "p1"]),
        "a rejected key keeps its cache"
    );
    assert_eq!(std::fs::read_to_string(env.path("cache/.dfn")).unwrap(), "m0");
    std::fs::remove_file(env.path("cache/.dfn")).unwrap();
    let out = k.delete_key(&mut env.sender(), &Match::Globs(strings(&["a1", "p1"])));
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.changed, strings(&["a1", "p1"]));
    assert_eq!(out.keys, ls(&[]));
    assert_eq!(env.cached(), strings(&["a2"]));
    assert!(env.path("cache/.dfn").exists());
    assert_eq!(
        env.fired(),
        [("reject", "p1"), ("delete", "a1"), ("delete", "p1")]
            .map(|(a, i)| (a.to_string(), i.to_string()))
            .to_vec()
    );
    // A status that is not a key directory is never touched.
    let out = k.delete_key(
        &mut env.sender(),
        &Match::Dict(ls(&[("..", &["conf"]), ("local", &["master"])])),
    );
    assert!(out.changed.is_empty());
    assert!(env.path("conf/master").exists());
}

#[test]
fn delete_honours_preserve_minion_cache_and_rotate_aes_key() {
    use KeyState::*;
    for (extra, want) in [
        ("preserve_minion_cache: True\n", &["a1", "a2", "ghost"][..]),
        ("preserve_minion_cache: False\n", &["a2"]),
        ("preserve_minions: True\n", &["a1", "a2"]),
        ("preserve_minions: 'yes'\n", &["a2"]),
    ] {
        let env = Env::new(extra, &[(Accepted, "a1"), (Accepted, "a2")]);
        env.cache(&["a1", "a2", "ghost"]);
        let out = env
            .keys()
            .delete_key(&mut env.sender(), &Match::Globs(strings(&["a1"])));
        assert_eq!(out.changed, strings(&["a1"]));
        assert_eq!(env.cached(), strings(want), "{extra}");
    }
    let env = Env::new("rotate_aes_key: False\n", &[(Accepted, "a1")]);
    env.keys()
        .delete_key(&mut env.sender(), &Match::Globs(strings(&["a1"])));
    assert!(!env.path("cache/.dfn").exists());
    assert!(!Path::new(&env.path("pki/minions/a1")).exists());
}
