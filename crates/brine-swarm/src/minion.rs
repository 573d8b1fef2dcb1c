//! One simulated salt-minion: authenticate as `salt/crypt.py AsyncAuth`
//! does (timeouts, tries, acceptance wait with doubling), subscribe to the
//! publisher, decrypt and target-match publications, run a few functions
//! and return them over the request channel, re-authenticating when the
//! master's AES key rotates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brine_proto::crypto::{new_nonce, sha256_hex, Crypticle, EncAlgo, PrivateKey, PublicKey, SigAlgo};
use brine_proto::Value;
use log::{debug, warn};
use tokio::sync::watch;

use crate::funcs;
use crate::stats::{epoch_us, jid_epoch_us, Stats};
use crate::zmtp::{self, Incoming, SocketType};

/// Behaviour shared by every minion of a swarm (the minion config keys in
/// parentheses, with Salt 3007's defaults).
#[derive(Debug, Clone)]
pub struct MinionOpts {
    pub ret_addr: SocketAddr,
    /// `auth_timeout` (5 s) per try, `auth_tries` (7).
    pub auth_timeout: Duration,
    pub auth_tries: u32,
    /// `acceptance_wait_time` (10 s), doubled up to `acceptance_wait_time_max`.
    pub acceptance_wait: Duration,
    pub acceptance_wait_max: Duration,
    /// `rejected_retry` (False): a rejected minion stops.
    pub rejected_retry: bool,
    /// `request_channel_timeout` (60 s) × `request_channel_tries` (3) for returns.
    pub return_timeout: Duration,
    pub return_tries: u32,
    /// `zmq_filtering`: subscribe to `broadcast` and sha1(id) only.
    pub zmq_filtering: bool,
    pub enc_algo: EncAlgo,
    pub sig_algo: SigAlgo,
}

impl Default for MinionOpts {
    fn default() -> Self {
        MinionOpts {
            ret_addr: "127.0.0.1:4506".parse().expect("literal"),
            auth_timeout: Duration::from_secs(5),
            auth_tries: 7,
            acceptance_wait: Duration::from_secs(10),
            acceptance_wait_max: Duration::ZERO,
            rejected_retry: false,
            return_timeout: Duration::from_secs(60),
            return_tries: 3,
            zmq_filtering: false,
            enc_algo: EncAlgo::OaepSha1,
            sig_algo: SigAlgo::Pkcs1v15Sha1,
        }
    }
}

/// A minion's identity: id, key and the X9.31 `tok` (deterministic per key).
pub struct Identity {
    pub id: String,
    pub key: PrivateKey,
    pub pub_pem: String,
    pub tok: Vec<u8>,
    /// The address this minion's connections come from (None: the
    /// kernel's choice). See [`source_address`].
    pub source: Option<std::net::IpAddr>,
}

/// The source address of minion `id` when the master is on loopback.
/// 127.0.0.1 has 28,232 ephemeral ports (Linux's default range) and a
/// minion holds two connections to the master's one address: past ~10,000
/// minions (with the reconnects' TIME_WAITs) the kernel spends most of a
/// `connect` searching for a free port (`__inet_hash_connect`), which a
/// real estate, whose minions each have their own address, never pays.
/// Each minion comes from one of 127.0.1.1–127.0.1.200 by a hash of its id,
/// so that swarms with different id prefixes spread the same way
/// (`--spread-sources`; off by default, because Salt's `connected_ids`
/// counts only 127.0.0.1 as standing for the host's own addresses).
pub fn source_address(master: std::net::IpAddr, id: &str) -> Option<std::net::IpAddr> {
    match master {
        std::net::IpAddr::V4(v4) if v4.is_loopback() => {
            // FNV-1a: stable across processes and runs.
            let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            Some(std::net::IpAddr::V4(std::net::Ipv4Addr::new(
                127,
                0,
                1,
                1 + (h % 200) as u8,
            )))
        }
        _ => None,
    }
}

impl Identity {
    pub fn new(id: String, key: PrivateKey) -> Result<Identity, String> {
        let pem = key.public_key().to_pem_spki().map_err(|e| e.to_string())?;
        let pub_pem = brine_py::clean_key(&String::from_utf8_lossy(&pem));
        let tok = key.x931_encrypt(b"salt").map_err(|e| e.to_string())?;
        Ok(Identity {
            id,
            key,
            pub_pem,
            tok,
            source: None,
        })
    }
}

struct Creds {
    aes: Crypticle,
    session: Crypticle,
    publish_port: u16,
    last_serial: i64,
}

enum ReqFail {
    Timeout,
}

/// A REQ-like client: one outstanding request, reply awaited with a
/// timeout; a timed-out connection is dropped and a new one made, as
/// Salt's request client does.
struct ReqClient {
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    conn: Option<(zmtp::Reader, zmtp::Writer)>,
}

impl ReqClient {
    async fn request(
        &mut self,
        body: &[u8],
        per_try: Duration,
        tries: u32,
        stats: &Stats,
        auth: bool,
    ) -> Result<Vec<u8>, ReqFail> {
        for _ in 0..tries.max(1) {
            let deadline = tokio::time::Instant::now() + per_try;
            loop {
                match tokio::time::timeout_at(deadline, self.try_once(body)).await {
                    Ok(Ok(reply)) => return Ok(reply),
                    Ok(Err(e)) => {
                        // A dropped connection (master restarting): the
                        // request is lost with it; reconnect and resend.
                        debug!("request to {}: {e}", self.addr);
                        self.conn = None;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        if tokio::time::Instant::now() < deadline {
                            continue;
                        }
                    }
                    Err(_) => self.conn = None,
                }
                break;
            }
            if auth {
                stats.inc(&stats.auth_timeouts);
            } else {
                stats.inc(&stats.return_timeouts);
            }
        }
        Err(ReqFail::Timeout)
    }

    async fn try_once(&mut self, body: &[u8]) -> Result<Vec<u8>, zmtp::ZmtpError> {
        if self.conn.is_none() {
            // Like libzmq's reconnect: keep trying until the try's deadline.
            let mut wait = Duration::from_millis(100);
            loop {
                match zmtp::connect(self.addr, self.source, SocketType::Dealer, None).await {
                    Ok(c) => {
                        self.conn = Some(c);
                        break;
                    }
                    Err(e) => {
                        debug!("connect {}: {e}", self.addr);
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        let (rd, wr) = self.conn.as_mut().expect("connected above");
        wr.send(&[b"", body]).await?;
        loop {
            match rd.recv().await? {
                Incoming::Ping(ctx) => wr.pong(&ctx).await?,
                Incoming::Message(mut parts) => {
                    // [b"", body]: the delimiter REQ would strip.
                    if parts.len() >= 2 && parts[0].is_empty() {
                        return Ok(parts.pop().expect("len >= 2"));
                    }
                }
            }
        }
    }
}

pub struct Minion {
    ident: Arc<Identity>,
    opts: Arc<MinionOpts>,
    stats: Arc<Stats>,
    req: ReqClient,
    master_pub: Option<PublicKey>,
    master_pub_pem: Option<String>,
    creds: Option<Creds>,
}

pub enum Outcome {
    Stopped,
    Rejected,
}

impl Minion {
    pub fn new(ident: Arc<Identity>, opts: Arc<MinionOpts>, stats: Arc<Stats>) -> Minion {
        let req = ReqClient {
            addr: opts.ret_addr,
            source: ident.source,
            conn: None,
        };
        Minion {
            ident,
            opts,
            stats,
            req,
            master_pub: None,
            master_pub_pem: None,
            creds: None,
        }
    }

    /// Run until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Outcome {
        let t0 = Instant::now();
        tokio::select! {
            ok = self.authenticate() => if !ok { return Outcome::Rejected; },
            _ = stop.changed() => return Outcome::Stopped,
        }
        self.stats.record_auth(t0.elapsed());
        let mut sub = tokio::select! {
            s = self.subscribe() => s,
            _ = stop.changed() => return Outcome::Stopped,
        };
        self.stats.minion_ready();
        loop {
            let msg = tokio::select! {
                m = sub.0.recv() => m,
                _ = stop.changed() => return Outcome::Stopped,
            };
            match msg {
                Ok(Incoming::Ping(ctx)) => {
                    let _ = sub.1.pong(&ctx).await;
                }
                Ok(Incoming::Message(parts)) => {
                    if let Some(body) = parts.last() {
                        tokio::select! {
                            _ = self.publication(body) => {},
                            _ = stop.changed() => return Outcome::Stopped,
                        }
                    }
                }
                Err(e) => {
                    debug!("{}: publisher connection lost: {e}", self.ident.id);
                    self.stats.inc(&self.stats.sub_reconnects);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    sub = tokio::select! {
                        s = self.subscribe() => s,
                        _ = stop.changed() => return Outcome::Stopped,
                    };
                }
            }
        }
    }

    async fn subscribe(&mut self) -> (zmtp::Reader, zmtp::Writer) {
        let port = self.creds.as_ref().map_or(4505, |c| c.publish_port);
        let addr = SocketAddr::new(self.opts.ret_addr.ip(), port);
        let mut wait = Duration::from_millis(100);
        loop {
            match zmtp::connect(addr, self.ident.source, SocketType::Sub, None).await {
                Ok((rd, mut wr)) => {
                    let ok = if self.opts.zmq_filtering {
                        let hash = hex_sha1(self.ident.id.as_bytes());
                        wr.subscribe(b"broadcast").await.is_ok() && wr.subscribe(hash.as_bytes()).await.is_ok()
                    } else {
                        wr.subscribe(b"").await.is_ok()
                    };
                    if ok {
                        return (rd, wr);
                    }
                }
                Err(e) => debug!("{}: connect {addr}: {e}", self.ident.id),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// `AsyncAuth._authenticate`: loop until accepted; false when rejected
    /// (and `rejected_retry` is off).
    async fn authenticate(&mut self) -> bool {
        let mut wait = self.opts.acceptance_wait;
        let wait_max = self.opts.acceptance_wait_max.max(wait);
        loop {
            match self.sign_in().await {
                SignIn::Accepted(c) => {
                    self.creds = Some(c);
                    return true;
                }
                SignIn::Rejected => {
                    self.stats.inc(&self.stats.auth_rejected);
                    if !self.opts.rejected_retry {
                        return false;
                    }
                }
                SignIn::Pending => self.stats.inc(&self.stats.auth_pending),
                SignIn::Error(e) => {
                    self.stats.inc(&self.stats.auth_errors);
                    warn!("{}: sign-in failed: {e}", self.ident.id);
                }
                SignIn::TimedOut => self.stats.inc(&self.stats.auth_giveups),
            }
            tokio::time::sleep(wait).await;
            if wait < wait_max {
                wait = (wait * 2).min(wait_max);
            }
        }
    }

    async fn sign_in(&mut self) -> SignIn {
        let nonce = new_nonce();
        let mut load = Value::map([
            ("cmd", Value::from("_auth")),
            ("id", Value::from(self.ident.id.as_str())),
            ("nonce", Value::from(nonce.as_str())),
            ("enc_algo", Value::from(self.opts.enc_algo.as_str())),
            ("sig_algo", Value::from(self.opts.sig_algo.as_str())),
        ]);
        let token = Crypticle::generate_key_string();
        if let Some(mp) = &self.master_pub {
            match mp.encrypt_oaep(self.opts.enc_algo, token.as_bytes()) {
                Ok(t) => load.set("token", Value::Bytes(t)),
                Err(e) => return SignIn::Error(format!("token: {e}")),
            }
        }
        load.set("pub", Value::from(self.ident.pub_pem.as_str()));
        let sent_token = load.get("token").is_some();
        let env = Value::map([
            ("enc", Value::from("clear")),
            ("load", load),
            ("version", Value::Int(3)),
        ]);
        self.stats.inc(&self.stats.auth_requests);
        let reply = match self
            .req
            .request(
                &env.to_network(),
                self.opts.auth_timeout,
                self.opts.auth_tries,
                &self.stats,
                true,
            )
            .await
        {
            Ok(r) => r,
            Err(ReqFail::Timeout) => return SignIn::TimedOut,
        };
        // The reply costs RSA work (two or three private-key decryptions):
        // done off the runtime's worker, as each real minion does it on a
        // CPU of its own, so that it does not hold up the other simulated
        // minions' network traffic and timers.
        tokio::task::block_in_place(|| self.sign_in_reply(&reply, &nonce, sent_token.then_some(token.as_str())))
    }

    fn sign_in_reply(&mut self, reply: &[u8], nonce: &str, token: Option<&str>) -> SignIn {
        let reply = match Value::decode(reply) {
            Ok(v) => v,
            Err(e) => return SignIn::Error(format!("undecodable reply: {e}")),
        };
        let Some(load) = reply.get("load") else {
            return SignIn::Error(format!("reply without load: {reply:?}"));
        };
        if let Some(ret) = load.get("ret") {
            return SignIn::Error(format!("master says {ret:?}"));
        }
        let (Some(signed), Some(sig)) = (load.as_bytes(), reply.get("sig").and_then(Value::as_bytes)) else {
            return SignIn::Error("reply is not signed".into());
        };
        let payload = match Value::decode(signed) {
            Ok(v) => v,
            Err(e) => return SignIn::Error(format!("undecodable signed load: {e}")),
        };
        // First contact trusts the offered key (as a minion without
        // minion_master.pub does); later the cached one must match.
        let offered = payload.get("pub_key").and_then(Value::as_str).map(String::from);
        let verify_key = match (&self.master_pub, &offered) {
            (Some(k), _) => k.clone(),
            (None, Some(pem)) => match PublicKey::from_pem(pem.as_bytes()) {
                Ok(k) => k,
                Err(e) => return SignIn::Error(format!("master pub_key: {e}")),
            },
            (None, None) => {
                // pending/rejected before first contact: nothing to verify with.
                return match payload.get("ret") {
                    Some(Value::Bool(true)) => SignIn::Pending,
                    Some(Value::Bool(false)) => SignIn::Rejected,
                    other => SignIn::Error(format!("unexpected reply {other:?}")),
                };
            }
        };
        match verify_key.verify(self.opts.sig_algo, signed, sig) {
            Ok(true) => {}
            _ => return SignIn::Error("bad signature on the sign-in reply".into()),
        }
        if payload.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return SignIn::Error("nonce mismatch".into());
        }
        match payload.get("ret") {
            Some(Value::Bool(true)) => return SignIn::Pending,
            Some(Value::Bool(false)) => return SignIn::Rejected,
            Some(other) => return SignIn::Error(format!("master says {other:?}")),
            None => {}
        }
        let Some(pem) = offered else {
            return SignIn::Error("reply without pub_key".into());
        };
        if let Some(known) = &self.master_pub_pem {
            if brine_py::clean_key(known) != brine_py::clean_key(&pem) {
                return SignIn::Error("the master's public key changed".into());
            }
        }
        let dec = |field: &str| -> Result<Vec<u8>, String> {
            let ct = payload
                .get(field)
                .and_then(Value::as_bytes)
                .ok_or_else(|| format!("reply without {field}"))?;
            self.ident
                .key
                .decrypt_oaep(self.opts.enc_algo, ct)
                .map_err(|e| format!("{field}: {e}"))
        };
        let aes = match dec("aes") {
            Ok(a) => a,
            Err(e) => return SignIn::Error(e),
        };
        let x931 = payload.get("sig").and_then(Value::as_bytes).unwrap_or_default();
        match verify_key.x931_decrypt(x931) {
            Ok(d) if d == sha256_hex(&aes).as_bytes() => {}
            _ => return SignIn::Error("the AES key signature does not verify".into()),
        }
        if let Some(t) = token {
            match dec("token") {
                Ok(back) if back == t.as_bytes() => {}
                _ => return SignIn::Error("token mismatch".into()),
            }
        }
        let session = match dec("session") {
            Ok(s) => s,
            Err(e) => return SignIn::Error(e),
        };
        let (aes, session) = match (Crypticle::from_key_bytes(&aes), Crypticle::from_key_bytes(&session)) {
            (Ok(a), Ok(s)) => (a, s),
            _ => return SignIn::Error("malformed key strings".into()),
        };
        let publish_port = payload
            .get("publish_port")
            .and_then(Value::as_i64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(4505);
        self.master_pub = Some(verify_key);
        self.master_pub_pem = Some(pem);
        self.stats.inc(&self.stats.auth_accepted);
        SignIn::Accepted(Creds {
            aes,
            session,
            publish_port,
            last_serial: 0,
        })
    }

    /// Re-authenticate because a key no longer works (AES rotation or an
    /// expired session).
    async fn reauth(&mut self) -> bool {
        self.stats.inc(&self.stats.reauths);
        self.authenticate().await
    }

    async fn publication(&mut self, body: &[u8]) {
        let recv_us = epoch_us();
        let frame = match Value::decode(body) {
            Ok(v) => v,
            Err(_) => return self.stats.inc(&self.stats.pubs_bad),
        };
        let Some(ct) = frame.get("load").and_then(Value::as_bytes).map(<[u8]>::to_vec) else {
            return self.stats.inc(&self.stats.pubs_bad);
        };
        self.stats.inc(&self.stats.pubs_received);
        let mut plain = None;
        for attempt in 0..2 {
            let creds = self.creds.as_ref().expect("authenticated before subscribing");
            match creds.aes.open(&ct, None) {
                Ok(p) => {
                    plain = p;
                    break;
                }
                Err(_) if attempt == 0 => {
                    if !self.reauth().await {
                        return;
                    }
                }
                Err(_) => {}
            }
        }
        let Some(plain) = plain else {
            return self.stats.inc(&self.stats.pubs_bad);
        };
        let Ok(mut load) = Value::decode(&plain) else {
            return self.stats.inc(&self.stats.pubs_bad);
        };
        if let Some(serial) = load.remove("serial").and_then(|s| s.as_i64()) {
            let creds = self.creds.as_mut().expect("authenticated");
            if serial <= creds.last_serial {
                return self.stats.inc(&self.stats.pubs_stale);
            }
            creds.last_serial = serial;
        }
        let (Some(jid), Some(fun)) = (
            load.get("jid").and_then(Value::as_str).map(String::from),
            load.get("fun").and_then(Value::as_str).map(String::from),
        ) else {
            return self.stats.inc(&self.stats.pubs_bad);
        };
        if !funcs::target_matches(&load, &self.ident.id) {
            return self.stats.inc(&self.stats.jobs_ignored);
        }
        let jid_us = jid_epoch_us(&jid);
        self.stats.record_job_recv(jid_us, recv_us);
        let args = load.get("arg").cloned().unwrap_or(Value::Array(Vec::new()));
        let result = funcs::run(&fun, &args);
        let mut ret = Value::map([
            ("cmd", Value::from("_return")),
            ("id", Value::from(self.ident.id.as_str())),
            ("success", Value::Bool(result.success)),
            ("return", result.ret),
            ("retcode", Value::Int(result.retcode)),
            ("jid", Value::from(jid.as_str())),
            ("fun", Value::from(fun.as_str())),
            ("fun_args", args),
        ]);
        if let Some(out) = result.out {
            ret.set("out", Value::from(out));
        }
        if self.aes_request(ret).await.is_some() {
            self.stats.record_return(&jid, jid_us, epoch_us());
        }
    }

    /// A v3 AES request (nonce, ts, tok added); the decrypted reply, or
    /// None after timeouts/errors. A reply that does not decrypt means the
    /// session expired: re-authenticate and send once more.
    async fn aes_request(&mut self, mut inner: Value) -> Option<Value> {
        for attempt in 0..2 {
            let nonce = new_nonce();
            inner.set("nonce", Value::from(nonce.as_str()));
            inner.set("ts", Value::Int((epoch_us() / 1_000_000) as i64));
            inner.set("tok", Value::Bytes(self.ident.tok.clone()));
            let creds = self.creds.as_ref()?;
            let sealed = creds.session.seal(&inner.to_network(), None).ok()?;
            let env = Value::map([
                ("enc", Value::from("aes")),
                ("load", Value::Bytes(sealed)),
                ("version", Value::Int(3)),
                ("id", Value::from(self.ident.id.as_str())),
                ("enc_algo", Value::from(self.opts.enc_algo.as_str())),
                ("sig_algo", Value::from(self.opts.sig_algo.as_str())),
            ]);
            let reply = self
                .req
                .request(
                    &env.to_network(),
                    self.opts.return_timeout,
                    self.opts.return_tries,
                    &self.stats,
                    false,
                )
                .await
                .ok()?;
            let opened = match Value::decode(&reply) {
                Ok(Value::Bytes(ct)) => creds.session.open(&ct, Some(&nonce)).ok().flatten(),
                Ok(Value::Str(s)) => {
                    debug!("{}: master answered {s:?}", self.ident.id);
                    None
                }
                _ => None,
            };
            match opened.map(|p| Value::decode(&p)) {
                Some(Ok(v)) => return Some(v),
                _ if attempt == 0 && !self.reauth().await => return None,
                _ => {}
            }
        }
        self.stats.inc(&self.stats.return_errors);
        None
    }
}

enum SignIn {
    Accepted(Creds),
    Pending,
    Rejected,
    TimedOut,
    Error(String),
}

fn hex_sha1(data: &[u8]) -> String {
    openssl::sha::sha1(data).iter().map(|x| format!("{x:02x}")).collect()
}

/// Time to sleep before the minion's first contact, spreading a ramp.
pub fn ramp_delay(index: usize, total: usize, ramp: Duration) -> Duration {
    if total <= 1 || ramp.is_zero() {
        return Duration::ZERO;
    }
    ramp.mul_f64(index as f64 / total as f64)
}
