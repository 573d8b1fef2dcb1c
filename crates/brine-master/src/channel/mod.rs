//! The request channel as the MWorkers serve it (Salt's
//! `ReqServerChannel.handle_message`): validate the envelope, answer
//! `_auth` ([`auth`]), open v3 AES requests with the minion's session key
//! ([`sessions`]) and check its `tok`, hand the command to
//! [`crate::services`], and seal the reply (`send`, or `send_private`
//! for the pillar). Every request gets exactly one reply; anything
//! malformed gets Salt's `"bad load"` and one log line naming the peer.

mod auth;
mod sessions;
pub mod stats;
mod toks;

use std::rc::Rc;

use brine_config::MasterConfig;
use brine_keys::{FsKeyStore, KeyState, KeyStore, MinionId};
use brine_proc::shm::SharedCell;
use brine_proto::commands::{AesCmd, ClearCmd};
use brine_proto::crypto::{Crypticle, EncAlgo, PrivateKey, PublicKey, SigAlgo};
use brine_proto::msgpack::ScanError;
use brine_proto::value::DecodeError;
use brine_proto::Value;
use log::warn;

use crate::runjobs::Token;
use crate::services::{ClearReply, Reply, Services};
pub use sessions::SessionKeys;
pub use toks::{VerifiedToks, SLOTS as TOK_SLOTS};
/// Requests larger than this are refused before decoding, unless the
/// Brine option `request_max_size` says otherwise.
pub const MAX_REQUEST: usize = 100 * 1024 * 1024;

/// How long a sign-in may wait for an MWorker and still be answered
/// (`sign_in_max_wait`, Brine's option, seconds; 0 = no limit): 5 s,
/// salt-minion's default `auth_timeout`. A minion stops waiting for its
/// `_auth` answer after `auth_timeout` and signs in again with a new
/// request; answering the old one costs the master an RSA signature that
/// nobody reads. In an auth storm larger than the master's RSA rate those
/// answers are what the queue fills with, until every answer comes too late
/// and no minion gets in (the collapse Python Salt shows at 10,000
/// minions); dropping them keeps the master's signatures for minions that
/// are still waiting.
pub fn sign_in_max_wait(cfg: &MasterConfig) -> Option<std::time::Duration> {
    match cfg.get_u64("sign_in_max_wait") {
        Some(0) => None,
        Some(s) => Some(std::time::Duration::from_secs(s)),
        None => Some(std::time::Duration::from_secs(5)),
    }
}

/// The largest request accepted on ret_port (`request_max_size`): the
/// ROUTER's `ZMQ_MAXMSGSIZE`, and checked again by the MWorkers.
pub fn max_request(cfg: &MasterConfig) -> usize {
    cfg.get_u64("request_max_size").map_or(MAX_REQUEST, |n| n as usize)
}

/// Salt's reply to a request it cannot handle.
pub fn bad_load() -> Vec<u8> {
    Value::from("bad load").to_network()
}

/// The master AES key, read from the shared cell (cached per generation).
pub struct AesKey {
    cell: Rc<SharedCell>,
    cached: Option<(u64, Crypticle)>,
}

impl AesKey {
    pub fn new(cell: Rc<SharedCell>) -> AesKey {
        AesKey { cell, cached: None }
    }

    pub fn current(&mut self) -> Option<&Crypticle> {
        let generation = self.cell.generation();
        if self.cached.as_ref().map(|c| c.0) != Some(generation) {
            let (bytes, g) = self.cell.load();
            let s = String::from_utf8(bytes).ok()?;
            self.cached = Some((g, Crypticle::from_key_string(&s).ok()?));
        }
        self.cached.as_ref().map(|c| &c.1)
    }
}

/// One MWorker's end of the request channel (Salt's
/// `ReqServerChannel`), with the services it hands requests to.
pub struct ReqServerChannel {
    cfg: Rc<MasterConfig>,
    master_key: PrivateKey,
    master_pub: String,
    aes: AesKey,
    keys: FsKeyStore,
    sessions: SessionKeys,
    services: Services,
    minimum_auth_version: i64,
    max_request: usize,
    /// The `_auth` reply's `sig` (X9.31 over sha256_hex(AES key)) for the
    /// current AES key: one private-key operation saved per sign-in.
    aes_sig: Option<(String, Vec<u8>)>,
    /// `master_sign_pubkey`: what signs master.pub in `_auth` replies, and
    /// the `pub_sig` made so far per `sig_algo` (it never changes).
    pubkey_signature: Option<crate::pki::PubkeySignature>,
    pub_sigs: Vec<(brine_proto::crypto::SigAlgo, Value)>,
    /// The `tok`s verified by any MWorker.
    toks: Rc<VerifiedToks>,
    /// The TCP address of the request being handled (empty if unknown).
    peer: String,
    /// `max_pending_keys` (0: no limit) and its refusals' log lines.
    max_pending_keys: u64,
    pending_log: crate::loglimit::LogLimiter,
    /// `sign_in_max_wait`: a sign-in that waited longer than this for an
    /// MWorker is dropped unanswered (None: never); how long the request
    /// being handled waited; whether it was dropped; the drops' log lines.
    sign_in_max_wait: Option<std::time::Duration>,
    queued: std::time::Duration,
    unanswered: bool,
    stale_log: crate::loglimit::LogLimiter,
    /// `master_stats`: counts per command, None when off.
    stats: Option<stats::MasterStats>,
    /// The command row ([`brine_metrics::board::clear_row`], `aes_row`;
    /// past them: a command not exposed) and result of
    /// the request being handled, for the status board.
    outcome: (usize, brine_metrics::Outcome),
    /// The request just handled waits for a runner job (its reply is not
    /// the bytes [`ReqServerChannel::handle`] returned).
    deferred: Option<Token>,
    /// Per waiting request, what seals its reply.
    waiting: std::collections::HashMap<Token, Seal>,
}

/// No request handled yet: no known command, an error.
const NO_OUTCOME: (usize, brine_metrics::Outcome) = (usize::MAX, brine_metrics::Outcome::Error);

/// How a reply that comes later is sealed.
enum Seal {
    /// A clear command's answer, already encoded (`Value::Bytes`).
    Clear,
    /// `send`: the session key and the request's nonce.
    Session(Crypticle, Option<String>),
    /// `send_private` (a pillar): the minion, its key, the request's nonce
    /// and algorithms.
    Private {
        id: String,
        pem: String,
        nonce: Option<String>,
        enc: String,
        sig: String,
    },
}

/// The sender as its request names it (never trusted, only logged) and
/// as the network does: the minion id of an AES request, or the id or user
/// and command of a clear one, then the TCP address the request came from
/// (`addr`, empty when unknown); Debug formatting escapes control
/// characters. Made only for the log line of a refusal.
/// A command name a peer sent, as a log line shows it: Salt prints it
/// bare; at most 128 characters (the log escapes control characters).
fn shown_cmd(cmd: &str) -> String {
    cmd.chars().take(128).collect()
}

fn describe_peer(env: Option<&Value>, addr: &str) -> String {
    let at = if addr.is_empty() {
        String::new()
    } else {
        format!(" at {addr}")
    };
    let Some(env) = env else {
        return if addr.is_empty() {
            "an unidentified peer".into()
        } else {
            addr.to_string()
        };
    };
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(|s| s.chars().take(128).collect::<String>())
    };
    let load = env.get("load").unwrap_or(&Value::Nil);
    if env.get("enc").and_then(Value::as_str) == Some("aes") {
        return match text(env.get("id")) {
            Some(id) => format!("minion {id:?}{at}"),
            None => format!("an AES request without id{at}"),
        };
    }
    let cmd = text(load.get("cmd")).unwrap_or_default();
    match (text(load.get("id")), text(load.get("user"))) {
        (Some(id), _) => format!("{id:?} ({cmd:?}){at}"),
        (None, Some(user)) => format!("local user {user:?} ({cmd:?}){at}"),
        (None, None) if addr.is_empty() => format!("a client ({cmd:?})"),
        (None, None) => format!("{addr} ({cmd:?})"),
    }
}

/// " (from ADDR)", or nothing when the address is unknown.
fn describe_addr(addr: &str) -> String {
    if addr.is_empty() {
        String::new()
    } else {
        format!(" (from {addr})")
    }
}

impl ReqServerChannel {
    pub fn new(
        cfg: Rc<MasterConfig>,
        aes: Rc<SharedCell>,
        toks: Rc<VerifiedToks>,
        keys: &crate::pki::MasterKeys,
        zctx: &zmq::Context,
    ) -> Result<ReqServerChannel, String> {
        let (master_key, master_pub) = (keys.key.clone(), keys.public.clone());
        let publish_session = cfg.get_u64("publish_session").unwrap_or(86_400);
        Ok(ReqServerChannel {
            keys: FsKeyStore::new(&cfg.pki_dir),
            sessions: SessionKeys::new(cfg.cachedir.join("sessions"), publish_session, &master_key),
            minimum_auth_version: cfg.get_i64("minimum_auth_version").unwrap_or(3),
            max_request: max_request(&cfg),
            aes_sig: None,
            pubkey_signature: keys.pub_sig.clone(),
            pub_sigs: Vec::new(),
            toks,
            peer: String::new(),
            max_pending_keys: cfg.get_u64("max_pending_keys").unwrap_or(auth::MAX_PENDING_KEYS),
            pending_log: crate::loglimit::LogLimiter::new(10, std::time::Duration::from_secs(60)),
            sign_in_max_wait: sign_in_max_wait(&cfg),
            queued: std::time::Duration::ZERO,
            unanswered: false,
            stale_log: crate::loglimit::LogLimiter::new(3, std::time::Duration::from_secs(60)),
            aes: AesKey::new(aes),
            services: Services::new(cfg.clone(), zctx)?,
            stats: None,
            outcome: NO_OUTCOME,
            deferred: None,
            waiting: std::collections::HashMap::new(),
            master_key,
            master_pub,
            cfg,
        })
    }

    /// Count the commands this channel runs (`master_stats: True`) as the
    /// MWorker `worker` (`MWorker-0`, …), with a stats event every
    /// `master_stats_event_iter` seconds at most.
    pub fn master_stats(&mut self, worker: &str) {
        let every = self.cfg.get_u64("master_stats_event_iter").unwrap_or(60);
        self.stats = Some(stats::MasterStats::new(worker, every, std::time::Instant::now()));
    }

    /// Run `cmd` with the services, counted when `master_stats` is on
    /// (the command's own work, as Salt times it: not the decryption of
    /// the request nor the sealing of the reply).
    fn run<T>(&mut self, cmd: &str, f: impl FnOnce(&mut Services) -> T) -> T {
        let Some(stats) = self.stats.as_mut() else {
            return f(&mut self.services);
        };
        let start = std::time::Instant::now();
        let out = f(&mut self.services);
        let end = std::time::Instant::now();
        if let Some((tag, data)) = stats.record(cmd, end - start, end) {
            let _ = self.services.events().fire(&tag, &data);
        }
        out
    }

    /// Whether the request [`ReqServerChannel::handle`] just took waits
    /// for a runner job: then its reply comes from
    /// [`ReqServerChannel::finished_jobs`] under this token, and what
    /// `handle` returned is not sent.
    pub fn take_deferred(&mut self) -> Option<Token> {
        self.deferred.take()
    }

    /// How long the next request waited between MWorkerQueue and this
    /// worker.
    pub fn set_queued(&mut self, waited: std::time::Duration) {
        self.queued = waited;
    }

    /// The command row and result of the request just handled (a request
    /// that never reached [`ReqServerChannel::handle`] counts as an error
    /// of no known command).
    pub fn take_outcome(&mut self) -> (usize, brine_metrics::Outcome) {
        std::mem::replace(&mut self.outcome, NO_OUTCOME)
    }

    /// Whether the request just handled is to be dropped without an
    /// answer (a sign-in its minion has stopped waiting for).
    pub fn take_unanswered(&mut self) -> bool {
        std::mem::take(&mut self.unanswered)
    }

    /// Whether the last request's eauth credentials were refused: its
    /// answer should wait (Salt's `time_auth`), in the worker's queue of
    /// delayed replies rather than by sleeping.
    pub fn take_auth_failure(&mut self) -> bool {
        self.services.take_auth_failure()
    }

    /// The runner jobs' pipes, to poll beside the request socket.
    pub fn job_fds(&self) -> Vec<std::os::fd::RawFd> {
        let mut fds = self.services.runner_jobs.fds();
        fds.extend(self.services.offload_fd());
        fds
    }

    /// Reap the runner jobs that ended and the offloaded work that is
    /// done; the sealed replies of the requests that waited for them.
    pub fn finished_jobs(&mut self) -> Vec<(Token, Vec<u8>)> {
        let mut out = Vec::new();
        let mut done = self.services.runner_jobs.collect();
        done.extend(self.services.finished());
        for (token, ret) in done {
            let sealed = match self.waiting.remove(&token) {
                None => continue,
                Some(Seal::Clear) => match ret {
                    Value::Bytes(b) => Ok(b),
                    other => Ok(other.to_network()),
                },
                Some(Seal::Session(session, nonce)) => session
                    .seal(&ret.to_network(), nonce.as_deref())
                    .map(|sealed| Value::Bytes(sealed).to_network())
                    .map_err(|e| e.to_string()),
                Some(Seal::Private {
                    id,
                    pem,
                    nonce,
                    enc,
                    sig,
                }) => self.encrypt_private(&id, ret, nonce.as_deref(), &pem, &enc, &sig),
            };
            match sealed {
                Ok(bytes) => out.push((token, bytes)),
                Err(e) => warn!("cannot encrypt a reply that waited: {e}"),
            }
        }
        out
    }

    /// Handle one request body from `peer` (its TCP address as
    /// MWorkerQueue saw it; empty when unknown).
    pub fn handle(&mut self, body: &[u8], peer: &str) -> Vec<u8> {
        self.peer.clear();
        self.peer.push_str(peer);
        self.outcome = (NO_OUTCOME.0, brine_metrics::Outcome::Ok);
        let mut env = None;
        // A bug must cost one request, not the worker: answer as Salt does
        // when a handler raises.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.try_handle(body, &mut env))) {
            Ok(Ok(reply)) => reply,
            Ok(Err(why)) => {
                self.outcome.1 = brine_metrics::Outcome::Error;
                warn!("bad request from {}: {why}", describe_peer(env.as_ref(), &self.peer));
                bad_load()
            }
            Err(_) => {
                self.outcome.1 = brine_metrics::Outcome::Error;
                log::error!(
                    "request from {} raised an internal error; answered with an error",
                    describe_peer(env.as_ref(), &self.peer)
                );
                Value::from("Server-side exception handling payload").to_network()
            }
        }
    }

    /// A sign-in older than `sign_in_max_wait`: logged (a few lines a
    /// minute, the rest counted) and left unanswered.
    fn drop_stale_sign_in(&mut self, load: &Value) {
        self.unanswered = true;
        self.outcome.1 = brine_metrics::Outcome::Dropped;
        if let Some(more) = self.stale_log.allow() {
            let id = load.get("id").and_then(Value::as_str).unwrap_or("");
            warn!(
                "sign-in of {:?} from {} waited {:.1} s for an MWorker, over sign_in_max_wait ({} s): dropped \
                 unanswered, its minion has stopped waiting and signs in again{}",
                id.chars().take(128).collect::<String>(),
                if self.peer.is_empty() {
                    "an unidentified peer"
                } else {
                    &self.peer
                },
                self.queued.as_secs_f64(),
                self.sign_in_max_wait.map_or(0, |d| d.as_secs()),
                crate::loglimit::held_note(more)
            );
        }
    }

    /// The decoded envelope is left in `slot`, so that a refusal can name
    /// the sender as the request does.
    fn try_handle(&mut self, body: &[u8], slot: &mut Option<Value>) -> Result<Vec<u8>, String> {
        if body.len() > self.max_request {
            return Err(format!(
                "{} bytes is over the {} byte limit (request_max_size)",
                body.len(),
                self.max_request
            ));
        }
        let env: &Value = slot.insert(Value::decode(body).map_err(|e| match e {
            DecodeError::Scan(ScanError::OverBudget { .. }) => format!("msgpack refused: {e}"),
            e => format!("malformed msgpack: {e}"),
        })?);
        let (Some(enc), Some(load)) = (env.get("enc").and_then(Value::as_str), env.get("load")) else {
            return Err("no enc/load in the envelope".into());
        };
        let version = match env.get("version") {
            None | Some(Value::Nil) => 0,
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0),
        };
        if version < self.minimum_auth_version {
            return Err(format!(
                "request protocol version {version} is below minimum_auth_version"
            ));
        }
        match enc {
            "clear" => {
                if !load.is_map() {
                    return Ok(Value::from("payload and load must be a dict").to_network());
                }
                let cmd = load.get("cmd").and_then(Value::as_str).unwrap_or("");
                let parsed = cmd.parse::<ClearCmd>();
                if let Ok(c) = parsed {
                    self.outcome.0 = brine_metrics::board::clear_row(c);
                }
                if load
                    .get("id")
                    .and_then(Value::as_bytes)
                    .is_some_and(|id| id.contains(&0))
                {
                    return Ok(Value::from("bad load: id contains a null byte").to_network());
                }
                match parsed {
                    Ok(ClearCmd::Auth) if self.sign_in_max_wait.is_some_and(|max| self.queued > max) => {
                        self.drop_stale_sign_in(load);
                        Ok(Vec::new())
                    }
                    Ok(ClearCmd::Auth) => self.auth(load, version),
                    Ok(c) => match self.run(c.as_str(), |s| s.clear(c, load))? {
                        ClearReply::Now(bytes) => Ok(bytes),
                        ClearReply::Later(token) => {
                            self.waiting.insert(token, Seal::Clear);
                            self.deferred = Some(token);
                            Ok(Vec::new())
                        }
                    },
                    // Salt answers an unknown clear command with {} and
                    // logs "Requested method not exposed" (an error).
                    Err(e) => {
                        self.outcome.1 = brine_metrics::Outcome::Refused;
                        log::error!(
                            "Requested method not exposed: {} (clear request from {} refused: {e})",
                            shown_cmd(cmd),
                            describe_peer(Some(env), &self.peer)
                        );
                        Ok(Value::Map(Vec::new()).to_network())
                    }
                }
            }
            "aes" => self.aes_request(env, load, version),
            other => Err(format!("unknown enc {other:?}")),
        }
    }

    /// v3 AES request: session key of `id`, nonce, tok.
    fn aes_request(&mut self, env: &Value, load: &Value, version: i64) -> Result<Vec<u8>, String> {
        let raw_id = env.get("id").and_then(Value::as_str).ok_or("aes request without id")?;
        let id = MinionId::new(&self.cfg.pki_dir, raw_id).ok_or_else(|| format!("invalid id {raw_id:?}"))?;
        let ct = load.as_bytes().ok_or("aes load is not bytes")?;
        // Salt reads the minion's key file for every request; its stamp
        // (one stat) says the same: whether the minion is accepted, and
        // whether the key changed since its `tok` was last verified.
        let stamp = self
            .keys
            .stamp(KeyState::Accepted, &id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("request from {id}, which is not accepted"))?;
        let accepted_pem = |keys: &FsKeyStore| {
            keys.get(KeyState::Accepted, &id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("request from {id}, which is not accepted"))
        };
        // The session file's key if there is a fresh one, else (or if it
        // does not open the request) the key derived for this period,
        // which `_auth` hands out when it cannot write the file. Neither
        // opening it makes the minion re-authenticate.
        // Only the key the file has now: a request captured under a key
        // the minion has since replaced must not open (CVE-2024-38823).
        let from_file = self.sessions.existing(&id);
        let opened = from_file.and_then(|k| Some((k.open(ct, None).ok()?, k)));
        let (plain, session) = match opened {
            Some(found) => found,
            None => {
                let k = self.sessions.derived(&id);
                let plain = k
                    .open(ct, None)
                    .map_err(|e| format!("cannot decrypt request from {id} with a current session key: {e}"))?;
                (plain, k)
            }
        };
        let plain = plain.ok_or("decrypted request has no pickle:: prefix")?;
        let mut inner = Value::decode(&plain).map_err(|e| format!("inner load from {id} refused: {e}"))?;
        if !inner.is_map() {
            return Ok(Value::from("payload and load must be a dict").to_network());
        }
        let nonce = inner.remove("nonce").and_then(|n| n.as_str().map(String::from));
        if inner.get("id").and_then(Value::as_str) != Some(id.as_str()) {
            return Err(format!("envelope id {id:?} does not match the load's id"));
        }
        if version > 2 {
            let tok = inner.remove("tok").ok_or("request without tok")?;
            let tok = tok.as_bytes().ok_or("tok is not bytes")?;
            // `tok` is deterministic per key: once an MWorker verified it
            // against the key file, the read, the PEM parse and the RSA
            // operation (~100 µs with OpenSSL 3) are skipped while the
            // file's stamp stays the same (see `toks`).
            if !self.toks.contains(&id, stamp, tok) {
                let pem = accepted_pem(&self.keys)?;
                let key = PublicKey::from_pem(pem.as_bytes()).map_err(|e| format!("key of {id}: {e}"))?;
                match key.x931_decrypt(tok) {
                    Ok(t) if t == b"salt" => {
                        self.toks.insert(&id, stamp, tok);
                    }
                    _ => return Err(format!("bad tok from {id}")),
                }
            }
        }
        if let Some(ttl) = self.cfg.get_i64("request_server_ttl").filter(|t| *t > 0) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let ts = inner.get("ts").and_then(Value::as_i64).unwrap_or(0);
            if now - ts > ttl {
                return Err(format!(
                    "request from {id} is {}s old (request_server_ttl {ttl})",
                    now - ts
                ));
            }
        }
        let cmd = inner.get("cmd").and_then(Value::as_str).unwrap_or("");
        let ret = match cmd.parse::<AesCmd>() {
            Ok(c) => {
                self.outcome.0 = brine_metrics::board::aes_row(c);
                self.run(c.as_str(), |s| s.aes(c, &id, &mut inner))
            }
            Err(e) => {
                self.outcome.1 = brine_metrics::Outcome::Refused;
                // Salt's words (an error in its log), then who asked.
                log::error!(
                    "Requested method not exposed: {} (AES request from {} refused: {e})",
                    shown_cmd(cmd),
                    describe_peer(Some(env), &self.peer)
                );
                Reply::Send(Value::Map(Vec::new()))
            }
        };
        let ret = match ret {
            Reply::Send(v) => v,
            Reply::Later(token) => {
                self.waiting.insert(token, Seal::Session(session, nonce));
                self.deferred = Some(token);
                return Ok(Vec::new());
            }
            Reply::PrivateLater(token) => {
                let algo = |k: &str, default: &str| env.get(k).and_then(Value::as_str).unwrap_or(default).to_string();
                let pem = accepted_pem(&self.keys)?;
                self.waiting.insert(
                    token,
                    Seal::Private {
                        id: id.to_string(),
                        pem,
                        nonce,
                        enc: algo("enc_algo", "OAEP-SHA1"),
                        sig: algo("sig_algo", "PKCS1v15-SHA1"),
                    },
                );
                self.deferred = Some(token);
                return Ok(Vec::new());
            }
            Reply::Private(pillar) => {
                let enc = env.get("enc_algo").and_then(Value::as_str).unwrap_or("OAEP-SHA1");
                let sig = env.get("sig_algo").and_then(Value::as_str).unwrap_or("PKCS1v15-SHA1");
                let pem = accepted_pem(&self.keys)?;
                return self.encrypt_private(&id, pillar, nonce.as_deref(), &pem, enc, sig);
            }
        };
        let sealed = session
            .seal(&ret.to_network(), nonce.as_deref())
            .map_err(|e| format!("cannot encrypt reply: {e}"))?;
        Ok(Value::Bytes(sealed).to_network())
    }

    /// `send_private` (Salt's `_encrypt_private`): a one-time key, OAEP'd to
    /// the minion, under which the signed `{key, pillar, nonce}` travels.
    fn encrypt_private(
        &mut self,
        id: &str,
        pillar: Value,
        nonce: Option<&str>,
        minion_pem: &str,
        enc_algo: &str,
        sig_algo: &str,
    ) -> Result<Vec<u8>, String> {
        let enc: EncAlgo = enc_algo.parse().map_err(|e| format!("{id}: {e}"))?;
        let sig: SigAlgo = sig_algo.parse().map_err(|e| format!("{id}: {e}"))?;
        let minion = PublicKey::from_pem(minion_pem.as_bytes()).map_err(|e| format!("key of {id}: {e}"))?;
        let one_time = Crypticle::generate();
        let key = minion
            .encrypt_oaep(enc, one_time.key_string().as_bytes())
            .map_err(|e| e.to_string())?;
        let Some(nonce) = nonce else {
            return Ok(Value::map([("error", Value::from("Nonce not included in request"))]).to_network());
        };
        let tosign = Value::map([
            ("key", Value::Bytes(key.clone())),
            ("pillar", pillar),
            ("nonce", Value::from(nonce)),
        ])
        .to_network();
        let signature = self.master_key.sign(sig, &tosign).map_err(|e| e.to_string())?;
        let signed = Value::map([("data", Value::Bytes(tosign)), ("sig", Value::Bytes(signature))]);
        let sealed = one_time.seal(&signed.to_network(), None).map_err(|e| e.to_string())?;
        Ok(Value::map([("key", Value::Bytes(key)), ("pillar", Value::Bytes(sealed))]).to_network())
    }
}
