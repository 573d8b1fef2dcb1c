//! `_auth` (Salt's `ReqServerChannel._auth`): decide from the
//! key store whether the minion is pending, accepted, rejected or denied,
//! answer with a reply signed by master.pem, and fire `salt/auth`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use brine_keys::{KeyState, KeyStore};
use brine_metrics::AuthResult;
use brine_proto::crypto::{sha256_hex, EncAlgo, PublicKey, SigAlgo};
use brine_proto::Value;
use brine_py::clean_key;
use log::{error, info, warn};

use super::ReqServerChannel;

/// Decision for one `_auth` request.
enum Outcome {
    /// Reply `ret` (False, True = still pending) and fire `act` (if any);
    /// counted as the third.
    Ret(bool, Option<&'static str>, AuthResult),
    /// Reply `"full"` and fire `full`: the master takes no new minion now.
    Full,
    Accept,
}

/// Brine's own limit on keys waiting in `minions_pre` (Salt has none): a
/// new id past it is answered as `max_minions` answers ("full"; the minion
/// retries), and nothing is written. 0 is no limit.
pub const MAX_PENDING_KEYS: u64 = 1000;

impl ReqServerChannel {
    pub(super) fn auth(&mut self, load: &Value, version: i64) -> Result<Vec<u8>, String> {
        let sign = version > 1;
        let id = load
            .get("id")
            .and_then(Value::as_str)
            .ok_or("_auth without id")?
            .to_string();
        let nonce = load.get("nonce").cloned().unwrap_or(Value::Nil);
        let pub_pem = load.get("pub").and_then(Value::as_str).unwrap_or("").to_string();
        let enc_algo: EncAlgo = match load
            .get("enc_algo")
            .and_then(Value::as_str)
            .unwrap_or("OAEP-SHA1")
            .parse()
        {
            Ok(a) => a,
            Err(_) => {
                brine_metrics::auth(AuthResult::Refused);
                return Ok(unsigned_ret("bad enc algo"));
            }
        };
        let sig_algo: SigAlgo = match load
            .get("sig_algo")
            .and_then(Value::as_str)
            .unwrap_or("PKCS1v15-SHA1")
            .parse()
        {
            Ok(a) => a,
            Err(_) => {
                brine_metrics::auth(AuthResult::Refused);
                return Ok(unsigned_ret("bad sig algo"));
            }
        };
        let reply = |h: &Self, ret: Value| -> Result<Vec<u8>, String> {
            if sign {
                h.clear_signed(&Value::map([("ret", ret), ("nonce", nonce.clone())]), sig_algo)
            } else {
                Ok(Value::map([("enc", Value::from("clear")), ("load", Value::map([("ret", ret)]))]).to_network())
            }
        };
        let reply_ret = |h: &Self, ret: bool| reply(h, Value::Bool(ret));
        if !brine_keys::valid_id(&self.cfg.pki_dir, &id) {
            info!("Authentication request from invalid id {id:?}");
            brine_metrics::auth(AuthResult::Refused);
            return reply_ret(self, false);
        }
        info!("Authentication request from {id}");
        let max_minions = self.cfg.get_i64("max_minions").unwrap_or(0);
        if max_minions > 0 {
            // Salt's check, before the key store is read: while more
            // minions are connected than max_minions, only those may
            // (re)authenticate.
            let minions = brine_targeting::connected_ids(&self.cfg);
            if minions.len() > 1000 {
                info!(
                    "With large numbers of minions it is advised to enable the ConCache with 'con_cache: True' in the masters configuration file."
                );
            }
            if minions.len() as i64 > max_minions && !minions.contains(&id) {
                info!("Too many minions connected (max_minions={max_minions}). Rejecting connection from id {id}");
                self.auth_event(false, Some("full"), &id, &pub_pem);
                brine_metrics::auth(AuthResult::Refused);
                return reply(self, Value::from("full"));
            }
        }
        let outcome = self.decide(&id, &pub_pem, load).map_err(|e| e.to_string())?;
        match outcome {
            Outcome::Full => {
                self.auth_event(false, Some("full"), &id, &pub_pem);
                brine_metrics::auth(AuthResult::Refused);
                reply(self, Value::from("full"))
            }
            Outcome::Ret(ret, act, counted) => {
                self.auth_event(ret, act, &id, &pub_pem);
                brine_metrics::auth(counted);
                reply_ret(self, ret)
            }
            Outcome::Accept => {
                let minion_key = match PublicKey::from_pem(pub_pem.as_bytes()) {
                    Ok(k) => k,
                    Err(e) => {
                        error!("Corrupt public key from {id}: {e}");
                        brine_metrics::auth(AuthResult::Refused);
                        return reply_ret(self, false);
                    }
                };
                let aes = self
                    .aes
                    .current()
                    .ok_or("the master AES key is unavailable")?
                    .key_string()
                    .to_string();
                let session = self.sessions.get(&id);
                let oaep = |data: &[u8]| minion_key.encrypt_oaep(enc_algo, data).map_err(|e| e.to_string());
                let mut r = Value::map([
                    ("enc", Value::from("pub")),
                    ("pub_key", Value::from(self.master_pub.clone())),
                    ("publish_port", Value::Int(i64::from(self.cfg.publish_port))),
                ]);
                // master_sign_pubkey: the signing key vouches for pub_key
                // (minions with verify_master_pubkey_sign check it; those
                // without refuse a reply that has it, as with Salt).
                if let Some(sig) = self.pub_sig(sig_algo)? {
                    r.set("pub_sig", sig);
                }
                if let Some(token) = load.get("token").and_then(Value::as_bytes) {
                    match self.master_key.decrypt_oaep(enc_algo, token) {
                        Ok(t) => r.set("token", Value::Bytes(oaep(&t)?)),
                        Err(e) => warn!("Token from {id} failed to decrypt: {e}"),
                    }
                }
                r.set("aes", Value::Bytes(oaep(aes.as_bytes())?));
                r.set("session", Value::Bytes(oaep(session.key_string().as_bytes())?));
                // Deterministic for a given key: computed once per AES key.
                let sig = match &self.aes_sig {
                    Some((k, sig)) if *k == aes => sig.clone(),
                    _ => {
                        let digest = sha256_hex(aes.as_bytes());
                        let sig = self
                            .master_key
                            .x931_encrypt(digest.as_bytes())
                            .map_err(|e| e.to_string())?;
                        self.aes_sig = Some((aes.clone(), sig.clone()));
                        sig
                    }
                };
                r.set("sig", Value::Bytes(sig));
                self.auth_event(true, Some("accept"), &id, &pub_pem);
                brine_metrics::auth(AuthResult::Accepted);
                if sign {
                    r.set("nonce", nonce.clone());
                    self.clear_signed(&r, sig_algo)
                } else {
                    Ok(r.to_network())
                }
            }
        }
    }

    /// The `pub_sig` for `algo` with `master_sign_pubkey`, made once per
    /// algorithm (PKCS#1 v1.5 signatures of one text are all the same).
    fn pub_sig(&mut self, algo: SigAlgo) -> Result<Option<Value>, String> {
        let Some(signer) = &self.pubkey_signature else {
            return Ok(None);
        };
        if let Some((_, sig)) = self.pub_sigs.iter().find(|(a, _)| *a == algo) {
            return Ok(Some(sig.clone()));
        }
        let sig = signer.sign(&self.master_pub, algo)?;
        self.pub_sigs.push((algo, sig.clone()));
        Ok(Some(sig))
    }

    /// `{"enc": "clear", "load": N(load), "sig": PKCS1v15(master.pem, N(load))}`.
    fn clear_signed(&self, load: &Value, algo: SigAlgo) -> Result<Vec<u8>, String> {
        let tosign = load.to_network();
        let sig = self.master_key.sign(algo, &tosign).map_err(|e| e.to_string())?;
        Ok(Value::map([
            ("enc", Value::from("clear")),
            ("load", Value::Bytes(tosign)),
            ("sig", Value::Bytes(sig)),
        ])
        .to_network())
    }

    fn auth_event(&mut self, result: bool, act: Option<&str>, id: &str, pub_pem: &str) {
        if !self.cfg.get_bool("auth_events").unwrap_or(true) {
            return;
        }
        let mut data = Value::map([("result", Value::Bool(result))]);
        if let Some(a) = act {
            data.set("act", Value::from(a));
        }
        data.set("id", Value::from(id));
        data.set("pub", Value::from(pub_pem));
        if let Err(e) = self.services.events().fire("salt/auth", &data) {
            warn!("cannot fire salt/auth for {id}: {e}");
        }
    }

    /// Salt's key-state machine for one `_auth`.
    fn decide(&mut self, id: &str, pub_pem: &str, load: &Value) -> Result<Outcome, brine_keys::KeyError> {
        let keys = &self.keys;
        let open_mode = self.cfg.get("open_mode") == Some(&brine_config::Value::Bool(true));
        let same = |stored: &str| clean_key(stored) == clean_key(pub_pem);
        if open_mode {
            if !pub_pem.is_empty() && keys.get(KeyState::Accepted, id)?.as_deref() != Some(pub_pem) {
                keys.put(KeyState::Accepted, id, pub_pem)?;
            }
            return Ok(Outcome::Accept);
        }
        if keys.get(KeyState::Rejected, id)?.is_some() {
            info!("Public key rejected for {id}: key is present in the rejection key dir");
            return Ok(Outcome::Ret(false, None, AuthResult::Rejected));
        }
        if let Some(stored) = keys.get(KeyState::Accepted, id)? {
            if !same(&stored) {
                error!("Authentication attempt from {id} failed, the public keys did not match. This may be an attempt to compromise the Salt cluster.");
                keys.put(KeyState::Denied, id, pub_pem)?;
                return Ok(Outcome::Ret(false, Some("denied"), AuthResult::Denied));
            }
            return Ok(Outcome::Accept);
        }
        let auto_reject = self.check_signing_file("autoreject_file", id);
        let auto_sign = self.auto_sign(id, load);
        let keys = &self.keys;
        match keys.get(KeyState::Pending, id)? {
            None => {
                if auto_reject {
                    info!("New public key for {id} rejected via autoreject_file");
                    keys.put(KeyState::Rejected, id, pub_pem)?;
                    return Ok(Outcome::Ret(false, Some("reject"), AuthResult::Rejected));
                }
                if !auto_sign {
                    if self.pending_full() {
                        if let Some(held) = self.pending_log.allow() {
                            warn!(
                                "Too many pending keys (max_pending_keys={}). Rejecting connection from id {id}{}{}",
                                self.max_pending_keys,
                                super::describe_addr(&self.peer),
                                if held > 0 {
                                    format!("; {held} more refused since the last such line")
                                } else {
                                    String::new()
                                }
                            );
                        }
                        return Ok(Outcome::Full);
                    }
                    let keys = &self.keys;
                    keys.put(KeyState::Pending, id, pub_pem)?;
                    return Ok(Outcome::Ret(true, Some("pend"), AuthResult::Pending));
                }
            }
            Some(stored) => {
                if auto_reject {
                    keys.transfer(KeyState::Pending, KeyState::Rejected, id)?;
                    info!("Pending public key for {id} rejected via autoreject_file");
                    return Ok(Outcome::Ret(false, Some("reject"), AuthResult::Rejected));
                }
                if !same(&stored) {
                    error!("Authentication attempt from {id} failed, the public key in pending did not match. This may be an attempt to compromise the Salt cluster.");
                    keys.put(KeyState::Denied, id, pub_pem)?;
                    return Ok(Outcome::Ret(
                        false,
                        if auto_sign { None } else { Some("denied") },
                        AuthResult::Denied,
                    ));
                }
                if !auto_sign {
                    info!("Authentication failed from host {id}, the key is in pending and needs to be accepted with salt-key -a {id}");
                    return Ok(Outcome::Ret(true, Some("pend"), AuthResult::Pending));
                }
                keys.remove(KeyState::Pending, id)?;
            }
        }
        keys.put(KeyState::Accepted, id, pub_pem)?;
        Ok(Outcome::Accept)
    }

    /// Whether `minions_pre` holds `max_pending_keys` keys already (counted
    /// up to the limit; several MWorkers may each add one past it).
    fn pending_full(&self) -> bool {
        let max = self.max_pending_keys;
        if max == 0 {
            return false;
        }
        let Ok(dir) = std::fs::read_dir(self.cfg.pki_dir.join("minions_pre")) else {
            return false;
        };
        let keys = dir
            .flatten()
            .filter(|e| !e.file_name().as_encoded_bytes().starts_with(b"."))
            .take(max as usize)
            .count();
        keys as u64 >= max
    }

    /// `auto_accept`, `autosign_file`, a `minions_autosign/<id>` stub, or
    /// `autosign_grains_dir` (Salt's `AutoKey.check_autosign`).
    fn auto_sign(&self, id: &str, load: &Value) -> bool {
        if self.cfg.get("auto_accept") == Some(&brine_config::Value::Bool(true)) {
            return true;
        }
        if self.check_signing_file("autosign_file", id) {
            return true;
        }
        let stub = self.cfg.pki_dir.join("minions_autosign").join(id);
        if let Ok(meta) = std::fs::metadata(&stub) {
            let timeout = Duration::from_secs(self.cfg.get_u64("autosign_timeout").unwrap_or(120) * 60);
            let fresh = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age < timeout);
            let _ = std::fs::remove_file(&stub);
            if fresh {
                return true;
            }
        }
        if let (Some(dir), Some(Value::Map(grains))) =
            (self.cfg.get_str("autosign_grains_dir"), load.get("autosign_grains"))
        {
            for (k, v) in grains {
                let (Some(name), value) = (k.as_str(), v) else { continue };
                if !brine_keys::valid_id(Path::new(dir), name) {
                    continue;
                }
                let text = match value {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
                    _ => continue,
                };
                if let Some(lines) = read_signing_file(&Path::new(dir).join(name), self.permissive()) {
                    if lines.contains(&text) {
                        return true;
                    }
                }
            }
        }
        false
    }

    fn permissive(&self) -> bool {
        self.cfg.get_bool("permissive_pki_access").unwrap_or(false)
    }

    /// Whether `id` matches a line of the file named by option `key`.
    fn check_signing_file(&self, key: &str, id: &str) -> bool {
        let Some(path) = self.cfg.get_str(key) else {
            return false;
        };
        let Some(lines) = read_signing_file(Path::new(path), self.permissive()) else {
            return false;
        };
        lines.iter().any(|line| line == id || brine_py::fnmatch(id, line))
    }
}

/// The non-comment lines of an autosign/autoreject file; `None` when it is
/// missing or writable by others (or by the group, unless permissive).
fn read_signing_file(path: &Path, permissive: bool) -> Option<Vec<String>> {
    let meta = std::fs::metadata(path).ok()?;
    let mode = meta.permissions().mode();
    if mode & 0o002 != 0 || (!permissive && mode & 0o020 != 0) {
        warn!("Wrong permissions for {}, ignoring content", path.display());
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect(),
    )
}

fn unsigned_ret(ret: &str) -> Vec<u8> {
    Value::map([
        ("enc", Value::from("clear")),
        ("load", Value::map([("ret", Value::from(ret))])),
    ])
    .to_network()
}
