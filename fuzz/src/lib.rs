//! Set-up shared by the fuzz targets: a master's directories under a temp
//! root (made once per fuzzing process), and the checks each target makes
//! on what the master answers.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use brine_config::MasterConfig;
use brine_proto::Value;

/// Written outside `file_roots` and `pki_dir`; never in any answer.
pub const SECRET: &[u8] = b"TOPSECRET-outside-every-root";

/// A master's root: config, pki, cache, sock and a small file tree with a
/// secret beside it.
pub struct Root {
    pub dir: tempfile::TempDir,
    pub cfg: Rc<MasterConfig>,
}

impl Root {
    /// The default master config over the tree.
    pub fn new() -> Root {
        Root::with(false, "")
    }

    /// `leaks`: the tree also holds symlinks pointing at the secret, as
    /// only an administrator can place them (with Salt's default
    /// `fileserver_followsymlinks: True` they are followed, by design;
    /// with `False` they must be refused). `extra`: more config.
    pub fn with(leaks: bool, extra: &str) -> Root {
        let dir = tempfile::Builder::new()
            .prefix("brine-fuzz")
            .tempdir_in("/tmp")
            .unwrap();
        let r = dir.path();
        let w = |rel: &str, data: &[u8]| {
            let p = r.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        };
        w("secret.txt", SECRET);
        w("srv/base/top.sls", b"base:\n  '*':\n    - web\n");
        w("srv/base/web/init.sls", b"pkg.installed: []\n");
        w("srv/base/web/files/a.conf", b"worker_processes 1;\n");
        w("srv/dev/dev.sls", b"dev: {}\n");
        std::os::unix::fs::symlink("web/init.sls", r.join("srv/base/alias.sls")).unwrap();
        if leaks {
            std::os::unix::fs::symlink(r.join("secret.txt"), r.join("srv/base/leak")).unwrap();
            std::os::unix::fs::symlink("../../secret.txt", r.join("srv/base/web/leak2")).unwrap();
        }
        for d in ["pki/minions", "cache/sessions", "sock", "log", "conf"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        let conf = format!(
            "interface: 127.0.0.1\nroot_dir: {r}\npki_dir: {r}/pki\ncachedir: {r}/cache\nsock_dir: {r}/sock\n\
             log_file: {r}/log/master\nfile_roots:\n  base:\n    - {r}/srv/base\n  dev:\n    - {r}/srv/dev\n\
             peer:\n  .*:\n    - test.*\nnodegroups:\n  webs: 'web*'\n  loop: 'N@loop'\n{extra}",
            r = r.display()
        );
        std::fs::write(r.join("conf/master"), conf).unwrap();
        let cfg = Rc::new(MasterConfig::load(&r.join("conf")).unwrap());
        Root { dir, cfg }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Root {
    fn default() -> Root {
        Root::new()
    }
}

/// Does `v`, encoded, carry `needle` anywhere?
pub fn carries(v: &Value, needle: &[u8]) -> bool {
    v.to_network().windows(needle.len()).any(|w| w == needle)
}

pub mod targets {
    use super::*;
    use brine_cache::MinionCache;
    use brine_targeting::{minion_matches, CkMinions, MinionData, TargetType};

    pub const TGT_TYPES: [TargetType; 14] = TargetType::ALL;

    pub const IDS: [&str; 4] = ["web1", "web2", "db1", "loop"];

    struct State {
        _root: Root,
        ck: CkMinions,
        data: Vec<(Value, Value)>,
        nodegroups: Value,
    }

    thread_local! {
        static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    }

    fn grains(id: &str, n: i64) -> Value {
        Value::map([
            ("id", Value::from(id)),
            ("os", Value::from(if n % 2 == 0 { "Debian" } else { "RedHat" })),
            ("ipv4", Value::Array(vec![Value::from(format!("10.0.0.{n}").as_str())])),
            ("roles", Value::Array(vec![Value::from("web"), Value::from("db")])),
            ("nested", Value::map([("a", Value::map([("b", Value::Int(n))]))])),
        ])
    }

    fn state() -> State {
        let root = Root::new();
        let cache = MinionCache::new(&root.cfg.cachedir);
        let mut data = Vec::new();
        for (n, id) in IDS.iter().enumerate() {
            let g = grains(id, n as i64);
            let p = Value::map([("role", Value::from("web")), ("n", Value::Int(n as i64))]);
            cache
                .store(id, "data", &Value::map([("grains", g.clone()), ("pillar", p.clone())]))
                .unwrap();
            data.push((g, p));
        }
        let ck = CkMinions::from_config(&root.cfg, IDS.iter().map(|s| s.to_string()).collect());
        let nodegroups = Value::map([("webs", Value::from("web*")), ("loop", Value::from("N@loop"))]);
        State {
            _root: root,
            ck,
            data,
            nodegroups,
        }
    }

    /// `check_minions` over the accepted minions, and each minion's own
    /// matcher; both as a string target and as a list of words.
    pub fn check(tgt: &str, tgt_type: TargetType, delimiter: &str) {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let s = s.get_or_insert_with(state);
            let expr = Value::from(tgt);
            let words = Value::Array(tgt.split(' ').map(Value::from).collect());
            for e in [&expr, &words] {
                let m = s.ck.check_minions(e, tgt_type.as_str(), delimiter, true);
                for id in &m.minions {
                    assert!(IDS.contains(&id.as_str()), "{id:?} is not an accepted minion");
                }
            }
            for (id, (g, p)) in IDS.iter().zip(&s.data) {
                let m = MinionData {
                    id,
                    grains: g,
                    pillar: p,
                };
                minion_matches(&m, &expr, tgt_type.as_str(), delimiter, &s.nodegroups);
            }
        })
    }
}

pub mod files {
    use super::*;
    use brine_fileserver::{Fileserver, Form};

    /// The same tree served twice: with Salt's defaults, and with
    /// `fileserver_followsymlinks: False` over symlinks leading out.
    struct State {
        servers: Vec<(Root, Fileserver, Vec<Vec<u8>>)>,
    }

    thread_local! {
        static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    }

    fn state() -> State {
        let servers = [Root::new(), Root::with(true, "fileserver_followsymlinks: False\n")]
            .into_iter()
            .map(|root| {
                let fs = Fileserver::new(&root.cfg);
                // Its content and its hash; not its path, which
                // `_symlink_list` names as Salt's does (a link's target).
                let secret_hashes = vec![brine_proto::crypto::sha256_hex(SECRET).into_bytes()];
                (root, fs, secret_hashes)
            })
            .collect();
        State { servers }
    }

    /// Input: a selector byte (command, `loc`, which server, whether the
    /// saltenv is given), then `saltenv NUL path [NUL prefix]`.
    pub fn check(data: &[u8]) {
        let Some((&sel, rest)) = data.split_first() else {
            return;
        };
        let mut parts = rest.splitn(3, |b| *b == 0);
        let saltenv = String::from_utf8_lossy(parts.next().unwrap_or(b"base")).into_owned();
        let path = String::from_utf8_lossy(parts.next().unwrap_or(b"")).into_owned();
        let prefix = String::from_utf8_lossy(parts.next().unwrap_or(b"")).into_owned();
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let s = s.get_or_insert_with(state);
            let (_root, fs, secret_hashes) = &mut s.servers[usize::from(sel & 0x40 != 0)];
            let saltenv = if sel & 0x80 != 0 {
                Value::from("base")
            } else {
                Value::from(saltenv.as_str())
            };
            let load = Value::map([
                ("path", Value::from(path.as_str())),
                ("saltenv", saltenv),
                ("loc", Value::Int((sel & 0x0f) as i64)),
                ("prefix", Value::from(prefix.as_str())),
                ("gzip", Value::Nil),
            ]);
            let answer = match sel % 7 {
                0 => fs.serve_file("fuzz", &load),
                1 => fs.file_hash("fuzz", &load),
                2 => fs.file_hash_and_stat("fuzz", &load),
                3 => fs.file_find("fuzz", &load),
                4 => fs.file_list("fuzz", &load, Form::Files),
                5 => fs.file_list("fuzz", &load, Form::Dirs),
                _ => fs.symlink_list("fuzz", &load),
            };
            if let Ok(v) = answer {
                assert!(!carries(&v, SECRET), "the secret served for {load:?}: {v:?}");
                for h in secret_hashes.iter() {
                    assert!(!carries(&v, h), "the secret's hash in the answer to {load:?}: {v:?}");
                }
            }
        })
    }
}

pub mod channel {
    use super::*;
    use brine_master::channel::{ReqServerChannel, VerifiedToks, TOK_SLOTS};
    use brine_proc::shm::SharedCell;
    use brine_proto::crypto::{Crypticle, PrivateKey};

    pub const MINION: &str = "fuzzer";

    struct State {
        root: Root,
        chan: ReqServerChannel,
        session: Crypticle,
        pem: String,
        tok: Vec<u8>,
        secrets: Vec<Vec<u8>>,
        _zctx: zmq::Context,
    }

    thread_local! {
        static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    }

    fn state() -> State {
        let root = Root::new();
        let cfg = root.cfg.clone();
        let keys = Rc::new(brine_master::pki::ensure_master_keys(&cfg).unwrap());
        let aes = Crypticle::generate();
        let cell = Rc::new(SharedCell::new(4096).unwrap());
        cell.store(aes.key_string().as_bytes(), cell.next_counter()).unwrap();
        let minion = PrivateKey::generate(2048).unwrap();
        let pem = String::from_utf8(minion.public_key().to_pem_spki().unwrap()).unwrap();
        std::fs::write(cfg.pki_dir.join("minions").join(MINION), pem).unwrap();
        let session = Crypticle::generate();
        std::fs::write(cfg.cachedir.join("sessions").join(MINION), session.key_string()).unwrap();
        let zctx = zmq::Context::new();
        let toks = Rc::new(VerifiedToks::new(TOK_SLOTS).unwrap());
        let chan = ReqServerChannel::new(cfg.clone(), cell, toks, &keys, &zctx).unwrap();
        let master_pem = std::fs::read(cfg.pki_dir.join("master.pem")).unwrap();
        let secrets = vec![master_pem, aes.key_string().as_bytes().to_vec(), SECRET.to_vec()];
        State {
            root,
            chan,
            session,
            pem: std::fs::read_to_string(cfg.pki_dir.join("minions").join(MINION)).unwrap(),
            tok: minion.x931_encrypt(b"salt").unwrap(),
            secrets,
            _zctx: zctx,
        }
    }

    fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            f(s.get_or_insert_with(state))
        })
    }

    /// Raw bytes as one request body.
    pub fn clear(data: &[u8]) {
        with(|s| {
            let reply = s.chan.handle(data, "127.0.0.1");
            let v = Value::decode(&reply).expect("every reply is msgpack");
            // A secret the request itself carries may come back (the
            // `_auth` reply echoes the nonce, say): only one the peer did
            // not send is a leak.
            for secret in &s.secrets {
                let sent = data.windows(secret.len()).any(|w| w == &secret[..]);
                assert!(sent || !carries(&v, secret), "a secret in the reply to {data:?}");
            }
            let _ = s.root.path();
        })
    }

    /// `data` as the decrypted load of an accepted minion: a msgpack map
    /// gets the minion's own `id` and `tok` (so the command runs), anything
    /// else is sent as it is.
    pub fn aes(data: &[u8]) {
        with(|s| {
            let plain = match Value::decode(data) {
                Ok(mut v) if v.is_map() => {
                    v.set("id", Value::from(MINION));
                    v.set("tok", Value::Bytes(s.tok.clone()));
                    v.set("nonce", Value::from("0123456789abcdef0123456789abcdef"));
                    v.to_network()
                }
                _ => data.to_vec(),
            };
            let sealed = s.session.seal(&plain, None).unwrap();
            let env = Value::map([
                ("enc", Value::from("aes")),
                ("load", Value::Bytes(sealed)),
                ("version", Value::Int(3)),
                ("id", Value::from(MINION)),
            ])
            .to_network();
            let reply = s.chan.handle(&env, "127.0.0.1");
            Value::decode(&reply).expect("every reply is msgpack");
            // `revoke_auth` deletes the minion's key: put it back so the
            // next input runs as an accepted minion again.
            let key = s.root.cfg.pki_dir.join("minions").join(MINION);
            if !key.exists() {
                std::fs::write(key, &s.pem).unwrap();
            }
        })
    }
}
