//! Raw request-channel clients: an accepted minion with a session key (as
//! after `_auth`) that sends v3 AES requests to ret_port and decrypts the
//! answers. Works against Brine and Python's salt-master alike (both read
//! `pki_dir/minions/<id>` and `cachedir/sessions/<id>`).

use std::time::SystemTime;

use brine_proto::crypto::{new_nonce, Crypticle, PrivateKey};
use brine_proto::Value;

use super::Env;

/// The body of a clear request carrying `load` (protocol v3).
pub fn clear(load: Value) -> Vec<u8> {
    Value::map([
        ("enc", Value::from("clear")),
        ("load", load),
        ("version", Value::Int(3)),
    ])
    .to_network()
}

/// One request/reply on ret_port (REQ socket, 10 s timeout).
pub fn ask(port: u16, frames: &[Vec<u8>]) -> Vec<u8> {
    ask_within(port, frames, 10_000).expect("every request gets a reply")
}

/// One request/reply, `None` if no reply came within `ms`.
pub fn ask_within(port: u16, frames: &[Vec<u8>], ms: i32) -> Option<Vec<u8>> {
    let ctx = zmq::Context::new();
    let s = ctx.socket(zmq::REQ).unwrap();
    s.set_rcvtimeo(ms).unwrap();
    s.set_linger(0).unwrap();
    s.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    s.send_multipart(frames, 0).unwrap();
    s.recv_bytes(0).ok()
}

pub struct AesMinion {
    pub id: String,
    pub key: PrivateKey,
    pub session: Crypticle,
}

/// An accepted minion with a current session key, as after `_auth`.
pub fn accepted_minion(env: &Env, id: &str) -> AesMinion {
    let key = PrivateKey::generate(2048).unwrap();
    let pem = String::from_utf8(key.public_key().to_pem_spki().unwrap()).unwrap();
    std::fs::create_dir_all(env.root().join("pki/minions")).unwrap();
    std::fs::write(env.root().join("pki/minions").join(id), pem).unwrap();
    let session = Crypticle::generate();
    std::fs::create_dir_all(env.root().join("cache/sessions")).unwrap();
    std::fs::write(env.root().join("cache/sessions").join(id), session.key_string()).unwrap();
    AesMinion {
        id: id.into(),
        key,
        session,
    }
}

impl AesMinion {
    /// The v3 envelope for `load` (a map; `id`, `nonce`, `ts`, `tok` added).
    pub fn request(&self, load: &Value, nonce: &str) -> Vec<u8> {
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut inner = load.clone();
        inner.set("id", Value::from(self.id.as_str()));
        inner.set("nonce", Value::from(nonce));
        inner.set("ts", Value::Int(ts));
        inner.set("tok", Value::Bytes(self.key.x931_encrypt(b"salt").unwrap()));
        let sealed = self.session.seal(&inner.to_network(), None).unwrap();
        Value::map([
            ("enc", Value::from("aes")),
            ("load", Value::Bytes(sealed)),
            ("version", Value::Int(3)),
            ("id", Value::from(self.id.as_str())),
            ("enc_algo", Value::from("OAEP-SHA1")),
            ("sig_algo", Value::from("PKCS1v15-SHA1")),
        ])
        .to_network()
    }

    /// Send `load` to the master on `port` and return its decrypted answer.
    pub fn call(&self, port: u16, load: &Value) -> Value {
        let nonce = new_nonce();
        let reply = Value::decode(&ask(port, &[self.request(load, &nonce)])).unwrap();
        let ct = match reply.as_bytes() {
            Some(ct) => ct.to_vec(),
            None => panic!("not an encrypted reply to {load:?}: {reply:?}"),
        };
        let plain = match self.session.open(&ct, Some(&nonce)) {
            Ok(Some(p)) => p,
            other => panic!("cannot open the reply to {load:?} ({reply:?}): {other:?}"),
        };
        Value::decode(&plain).unwrap()
    }
}
