//! Salt's `LoadAuth`: authenticating a request by token, eauth
//! credentials or a local user's key, and the access list that then
//! applies to it.
//!
//! The three ways a request proves who sent it (Salt's
//! `_prep_auth_info`): a `token` (minted by `mk_token` after an eauth
//! login), `eauth` with `username` and `password`, or a `key`, the
//! contents of `cachedir/.<user>_key` that only that local user can read.
//! Failures are Salt's error dicts, word for word: callers (salt-api,
//! Python's clients) raise them by name.

use std::time::{SystemTime, UNIX_EPOCH};

use brine_config::MasterConfig;
use brine_proto::crypto::secret_eq;
use brine_proto::Value;
use log::{debug, warn};
use serde_json::Value as Json;

use crate::acl;
use crate::eauth;
use crate::tokens::{self, LocalFs, TokenError, TokenStore};

/// How a request authenticates (Salt's `_prep_auth_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    Token,
    Eauth,
    User,
}

impl AuthType {
    /// A `token` wins over `eauth`; neither is a user key.
    pub fn of(load: &Value) -> AuthType {
        if load.get("token").is_some() {
            AuthType::Token
        } else if load.get("eauth").is_some() {
            AuthType::Eauth
        } else {
            AuthType::User
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Token => "token",
            AuthType::Eauth => "eauth",
            AuthType::User => "user",
        }
    }

    /// The exception name Salt gives an authorization refusal of a
    /// runner or wheel call.
    pub fn err_name(self) -> &'static str {
        match self {
            AuthType::Token => "TokenAuthenticationError",
            AuthType::Eauth => "EauthAuthenticationError",
            AuthType::User => "UserAuthenticationError",
        }
    }

    /// The load keys that carry this kind's secrets, removed once the
    /// request is authorized.
    pub fn sensitive_keys(self) -> &'static [&'static str] {
        match self {
            AuthType::Token => &["token"],
            AuthType::Eauth => &["username", "password"],
            AuthType::User => &[],
        }
    }
}

/// A Salt error dict: `{name, message}`, raised by the caller as the
/// exception of that name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub name: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(name: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            name,
            message: message.into(),
        }
    }

    pub fn to_value(&self) -> Value {
        Value::map([
            ("name", Value::from(self.name)),
            ("message", Value::from(self.message.as_str())),
        ])
    }
}

/// An authenticated request.
#[derive(Debug, Clone, PartialEq)]
pub struct Authed {
    pub kind: AuthType,
    /// The eauth user, the token's user, or (user keys) the `username`
    /// of the load, `UNKNOWN` without one (Salt's).
    pub username: String,
    /// What the ACL lets this caller do. For a user key: empty for root
    /// and the master's user (no ACL applies), else the caller's
    /// `publisher_acl` entries.
    pub auth_list: Vec<Json>,
    /// A user key of a local user other than root and the master's user:
    /// the ACL applies to them.
    pub acl_user: Option<String>,
}

/// What a user key proves (Salt's `authenticate_key`).
#[derive(Debug, PartialEq, Eq)]
enum KeyAuth {
    /// Root, the master's user, or a user Salt lets through without an
    /// ACL.
    Full,
    /// A local user the publisher ACL applies to (`sudo_<name>` gives
    /// `<name>`).
    As(String),
    Refused,
}

/// Seconds since the epoch, as Python's `time.time()`.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::F64(f) => Some(*f),
        Value::F32(f) => Some(f64::from(*f)),
        Value::Int(i) => Some(*i as f64),
        Value::UInt(u) => Some(*u as f64),
        _ => None,
    }
}

/// The users whose `.<user>_key` the master accepts (Salt's
/// `access_keys`): the master's user, root (whose key exists when the
/// master was started as root, before it became its user), the user this
/// process runs as, and every user named in `publisher_acl`.
pub fn key_users(cfg: &MasterConfig) -> Vec<String> {
    let mut users = vec![cfg.user.clone(), "root".to_string()];
    if let Some(me) = running_user() {
        users.push(me);
    }
    if let Some(Json::Object(acl)) = cfg.get("publisher_acl") {
        users.extend(acl.keys().filter(|u| is_user_name(u)).cloned());
    }
    users.sort();
    users.dedup();
    users
}

/// Whether `user` can name a key file (`cachedir/.<user>_key`): a name,
/// not a pattern or a path.
pub fn is_user_name(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 256
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | '$'))
        && !user.starts_with('.')
        && !user.starts_with('-')
}

/// The effective user of this process (Salt's `get_user()`).
pub fn running_user() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Salt's `LoadAuth` over the master's options.
pub struct LoadAuth {
    tokens: Box<dyn TokenStore>,
    /// Whether eauth credentials were refused since the last
    /// [`LoadAuth::take_eauth_failure`].
    failed: std::cell::Cell<bool>,
    /// What an eauth backend run through Python answered for the request
    /// being handled ([`crate::eauth::python`]), asked off the request
    /// loop before the request is handled again.
    verdict: std::cell::RefCell<Option<crate::eauth::python::Verdict>>,
}

impl LoadAuth {
    /// The token store `eauth_tokens` names (Brine has `localfs`; with
    /// any other, tokens are neither minted nor accepted, and the
    /// master logs why).
    pub fn new(cfg: &MasterConfig) -> LoadAuth {
        let dir = cfg
            .get_str("token_dir")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| cfg.cachedir.join("tokens"));
        LoadAuth::with_store(Box::new(LocalFs::new(&dir, cfg.hash_type())))
    }

    pub fn with_store(tokens: Box<dyn TokenStore>) -> LoadAuth {
        LoadAuth {
            tokens,
            failed: std::cell::Cell::new(false),
            verdict: std::cell::RefCell::new(None),
        }
    }

    /// The Python backend's answer for `load`, for the next handling of
    /// that load.
    pub fn set_python_verdict(&self, load: &Value, answer: &Value) {
        *self.verdict.borrow_mut() = crate::eauth::python::Verdict::of(load, answer);
    }

    /// Forget the Python backend's answer (the request was handled).
    pub fn clear_python_verdict(&self) {
        self.verdict.borrow_mut().take();
    }

    /// The Python backend's answer, if it was for these credentials.
    fn python_verdict(&self, eauth: &str, user: &str, password: &str) -> Option<(bool, Option<Vec<String>>)> {
        self.verdict
            .borrow()
            .as_ref()
            .filter(|v| v.is_for(eauth, user, password))
            .map(|v| (v.ok, v.groups.clone()))
    }

    /// Whether eauth credentials were refused since the last call. Salt
    /// makes every such failure take about as long as the slowest one
    /// (`time_auth`, a second or more, so that timing tells a guesser
    /// nothing and guessing is slow); the master delays the answer the
    /// same way, without holding the worker.
    pub fn take_eauth_failure(&self) -> bool {
        self.failed.replace(false)
    }

    /// Whether the token store `eauth_tokens` names is one Brine has.
    pub fn store_supported(cfg: &MasterConfig) -> bool {
        cfg.get_str("eauth_tokens").unwrap_or("localfs") == "localfs"
    }

    /// The eauth backend and credentials of a load, when all are there
    /// (Salt calls `auth(username, password)`: a missing argument is a
    /// failure).
    fn creds(load: &Value) -> Option<(&str, &str, &str)> {
        Some((
            load.get("eauth")?.as_str()?,
            load.get("username")?.as_str()?,
            load.get("password")?.as_str()?,
        ))
    }

    /// Salt's `authenticate_eauth`: the backend is enabled in
    /// `external_auth`, Brine has it, and it accepts the credentials.
    pub fn authenticate_eauth(&self, cfg: &MasterConfig, load: &Value) -> bool {
        let Some(eauth) = load.get("eauth").map(brine_py::to_str) else {
            warn!("Authentication failure of type \"eauth\" occurred.");
            return false;
        };
        if cfg.get("external_auth").and_then(|e| e.get(&eauth)).is_none() {
            warn!("The eauth system {} is not enabled", brine_py::str_repr(&eauth));
            warn!("Authentication failure of type \"eauth\" occurred.");
            return false;
        }
        let python = eauth::python::runs(cfg, &eauth);
        let backend = eauth::backend(&eauth).filter(|_| !python);
        if backend.is_none() && !python {
            warn!(
                "The eauth system {} is not available (Brine has {}, and no Python with Salt runs the others)",
                brine_py::str_repr(&eauth),
                eauth::NAMES.join(", ")
            );
            warn!("Authentication failure of type \"eauth\" occurred.");
            return false;
        }
        let ok = match (Self::creds(load), backend) {
            (Some((_, user, password)), Some(backend)) => backend.auth(cfg, user, password),
            (Some((_, user, password)), None) => match self.python_verdict(&eauth, user, password) {
                Some((ok, _)) => ok,
                None => {
                    warn!("eauth {eauth}: the Python backend was not asked for this request");
                    false
                }
            },
            (None, _) => {
                debug!("Authentication request for eauth {eauth:?} is missing required arguments");
                false
            }
        };
        if !ok {
            self.failed.set(true);
            let user = load.get("username").map(brine_py::to_str).unwrap_or_default();
            warn!(
                "Authentication failure of type \"eauth\" occurred (backend {}, user {}).",
                eauth,
                brine_py::str_repr(&user)
            );
        }
        ok
    }

    /// Salt's `get_groups`: the backend's groups for the load's user.
    fn groups(&self, cfg: &MasterConfig, load: &Value) -> Vec<String> {
        let Some((eauth, user, password)) = Self::creds(load) else {
            return Vec::new();
        };
        if eauth::python::runs(cfg, eauth) {
            return self
                .python_verdict(eauth, user, password)
                .and_then(|(_, groups)| groups)
                .unwrap_or_default();
        }
        eauth::backend(eauth)
            .and_then(|b| b.groups(cfg, user, password))
            .unwrap_or_default()
    }

    /// Salt's `_allow_custom_expire`.
    fn allow_custom_expire(cfg: &MasterConfig, load: &Value) -> bool {
        match cfg.get("token_expire_user_override") {
            Some(Json::Bool(true)) => true,
            Some(Json::Object(by_eauth)) => {
                let eauth = load.get("eauth").map(brine_py::to_str).unwrap_or_default();
                let user = load.get("username").map(brine_py::to_str).unwrap_or_default();
                match by_eauth.get(&eauth) {
                    Some(Json::Array(users)) => users.iter().any(|u| u.as_str() == Some(user.as_str())),
                    Some(Json::Object(users)) => users.contains_key(&user),
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// Salt's `mk_token`: authenticate, then store `{start, expire, name,
    /// eauth, [groups], [auth_list]}` under a new token. `None` for a
    /// failure (the master answers `""`).
    pub fn mk_token(&self, cfg: &MasterConfig, load: &Value) -> Option<Value> {
        if !Self::store_supported(cfg) {
            warn!(
                "eauth_tokens: {:?} is not a token store Brine has (it has localfs): no token minted",
                cfg.get_str("eauth_tokens").unwrap_or("")
            );
            return None;
        }
        if !self.authenticate_eauth(cfg, load) {
            return None;
        }
        let default_expire = cfg.get("token_expire").and_then(Json::as_f64).unwrap_or(43200.0);
        let expire = if Self::allow_custom_expire(cfg, load) {
            num(load.get("token_expire")).unwrap_or(default_expire)
        } else {
            default_expire
        };
        let start = now();
        let name = load.get("username").cloned().unwrap_or(Value::from(""));
        let mut tdata = Value::map([
            ("start", Value::F64(start)),
            ("expire", Value::F64(start + expire)),
            ("name", name),
            ("eauth", load.get("eauth").cloned().unwrap_or(Value::Nil)),
        ]);
        if cfg.get_bool("keep_acl_in_token").unwrap_or(false) {
            // Salt stores what the backend's own `acl` function gives;
            // the backends Brine has have none, so the token carries
            // None and the ACL is looked up from the config at each use.
            tdata.set("auth_list", Value::Nil);
        }
        let groups = self.groups(cfg, load);
        if !groups.is_empty() {
            tdata.set(
                "groups",
                Value::Array(groups.iter().map(|g| Value::from(g.as_str())).collect()),
            );
        }
        self.tokens.mk_token(tdata)
    }

    /// Salt's `get_tok`: the token's data, or `None` for an unknown,
    /// expired (removed) or corrupt (removed) token.
    pub fn get_tok(&self, tok: &str) -> Option<Value> {
        if !tokens::is_token_name(tok) {
            return None;
        }
        let tdata = match self.tokens.get_token(tok) {
            Ok(Some(t)) => t,
            Ok(None) => return None,
            Err(TokenError::Corrupt(e)) => {
                warn!(
                    "Token {} could not be deserialized ({e}); removing it from the store.",
                    tokens::short(tok)
                );
                self.tokens.rm_token(tok);
                return None;
            }
            Err(TokenError::Io(e)) => {
                warn!(
                    "Token store transient error reading {} ({e}); treating as not-authenticated for this request without removing the token from the store.",
                    tokens::short(tok)
                );
                return None;
            }
        };
        // The store finds the token by name; the token it holds is then
        // compared in constant time, so a store that matched loosely (a
        // case-folding filesystem, another backend) cannot let a near
        // guess through, and the comparison's timing tells nothing.
        if let Some(stored) = tdata.get("token").and_then(Value::as_str) {
            if !secret_eq(stored.as_bytes(), tok.as_bytes()) {
                warn!("Token {} holds another token's data: refused", tokens::short(tok));
                return None;
            }
        }
        if num(tdata.get("expire")).unwrap_or(0.0) < now() {
            self.tokens.rm_token(tok);
            return None;
        }
        Some(tdata)
    }

    /// Salt's `clean_expired_tokens` (Maintenance): every token that is
    /// expired, has no expiry or cannot be read is removed. The number
    /// removed.
    pub fn clean_expired(&self) -> usize {
        let mut removed = 0;
        for tok in self.tokens.list_tokens() {
            if !tokens::is_token_name(&tok) {
                continue;
            }
            let keep = match self.tokens.get_token(&tok) {
                Ok(Some(t)) => num(t.get("expire")).is_some_and(|e| e >= now()),
                Ok(None) => true,
                Err(TokenError::Io(_)) => true,
                Err(TokenError::Corrupt(_)) => false,
            };
            if !keep {
                self.tokens.rm_token(&tok);
                removed += 1;
            }
        }
        removed
    }

    /// Salt's `authenticate_token`.
    fn authenticate_token(&self, cfg: &MasterConfig, load: &Value) -> Option<Value> {
        let tok = load.get("token").and_then(Value::as_str).unwrap_or("");
        let token = self.get_tok(tok).filter(|t| {
            let eauth = t.get("eauth").map(brine_py::to_str).unwrap_or_default();
            cfg.get("external_auth").and_then(|e| e.get(&eauth)).is_some()
        });
        if token.is_none() {
            warn!("Authentication failure of type \"token\" occurred.");
        }
        token
    }

    /// Salt's `get_auth_list`: the ACL entries for an eauth load or a
    /// token. `None` when the backend is not enabled (nothing allowed).
    fn auth_list(&self, cfg: &MasterConfig, load: &Value, token: Option<&Value>) -> Option<Vec<Json>> {
        let keep = cfg.get_bool("keep_acl_in_token").unwrap_or(false);
        if let (Some(t), true) = (token, keep) {
            if let Some(list) = t.get("auth_list") {
                return match list {
                    Value::Nil => None,
                    other => match brine_proto::json::to_json(other) {
                        Json::Array(a) => Some(a),
                        _ => None,
                    },
                };
            }
        }
        let eauth = match token {
            Some(t) => t.get("eauth"),
            None => load.get("eauth"),
        }
        .map(brine_py::to_str)
        .unwrap_or_default();
        let Some(provider) = cfg.get("external_auth").and_then(|e| e.get(&eauth)) else {
            debug!("The eauth system {eauth:?} is not enabled");
            warn!("Authorization failure occurred.");
            return None;
        };
        let (name, groups) = match token {
            Some(t) => (
                t.get("name").map(brine_py::to_str).unwrap_or_default(),
                match t.get("groups") {
                    Some(Value::Array(g)) => g.iter().map(brine_py::to_str).collect(),
                    _ => Vec::new(),
                },
            ),
            None => (
                load.get("username").map(brine_py::to_str).unwrap_or_default(),
                self.groups(cfg, load),
            ),
        };
        let permissive = cfg.get_bool("permissive_acl").unwrap_or(false);
        match provider {
            Json::Object(p) => Some(acl::fill_auth_list(p, &name, &groups, permissive)),
            _ => {
                debug!("eauth {eauth:?} configuration is empty");
                Some(Vec::new())
            }
        }
    }

    /// Salt's `authenticate_key`: the load's `key` against the key files
    /// of the users the master accepts.
    fn authenticate_key(cfg: &MasterConfig, load: &Value) -> KeyAuth {
        let Some(auth_key) = load.get("key").and_then(Value::as_str).map(str::trim) else {
            warn!("Authentication failure of type \"user\" occurred.");
            return KeyAuth::Refused;
        };
        let key_of = |user: &str| -> Option<String> {
            if !is_user_name(user) {
                return None;
            }
            std::fs::read_to_string(cfg.cachedir.join(format!(".{user}_key")))
                .ok()
                .map(|k| k.trim().to_string())
        };
        let is = |user: &str| key_of(user).is_some_and(|k| secret_eq(k.as_bytes(), auth_key.as_bytes()));
        let users = key_users(cfg);
        let any = || users.iter().any(|u| is(u));
        let Some(user) = load.get("user").and_then(Value::as_str) else {
            return if any() { KeyAuth::Full } else { KeyAuth::Refused };
        };
        if let Some(name) = user.strip_prefix("sudo_") {
            return if any() {
                KeyAuth::As(name.to_string())
            } else {
                KeyAuth::Refused
            };
        }
        if user == cfg.user || user == "root" {
            if any() {
                return KeyAuth::Full;
            }
            warn!(
                "Master runs as {:?}, but user in payload is {}",
                cfg.user,
                brine_py::str_repr(user)
            );
            return KeyAuth::Refused;
        }
        if running_user().as_deref() == Some(user) {
            return if is(user) { KeyAuth::Full } else { KeyAuth::Refused };
        }
        if is("root") || is("salt") {
            return KeyAuth::Full;
        }
        if users.iter().any(|u| u == user) {
            return if is(user) {
                KeyAuth::As(user.to_string())
            } else {
                KeyAuth::Refused
            };
        }
        warn!("Authentication failure of type \"user\" occurred.");
        KeyAuth::Refused
    }

    /// Salt's `check_authentication`: who sent `load` and what they may
    /// do, or Salt's error dict. `show_username` adds the user to a user
    /// key failure, as Salt's wheel/runner paths do not and some callers
    /// do.
    pub fn check_authentication(
        &self,
        cfg: &MasterConfig,
        load: &Value,
        kind: AuthType,
        show_username: bool,
    ) -> Result<Authed, Failure> {
        let username = load
            .get("username")
            .map(brine_py::to_str)
            .unwrap_or_else(|| "UNKNOWN".into());
        match kind {
            AuthType::Token => {
                let Some(token) = self.authenticate_token(cfg, load) else {
                    return Err(Failure::new(
                        "TokenAuthenticationError",
                        "Authentication failure of type \"token\" occurred.",
                    ));
                };
                let username = token.get("name").map(brine_py::to_str).unwrap_or_default();
                Ok(Authed {
                    kind,
                    username,
                    auth_list: self.auth_list(cfg, load, Some(&token)).unwrap_or_default(),
                    acl_user: None,
                })
            }
            AuthType::Eauth => {
                if !self.authenticate_eauth(cfg, load) {
                    return Err(Failure::new(
                        "EauthAuthenticationError",
                        format!("Authentication failure of type \"eauth\" occurred for user {username}."),
                    ));
                }
                Ok(Authed {
                    kind,
                    username,
                    auth_list: self.auth_list(cfg, load, None).unwrap_or_default(),
                    acl_user: None,
                })
            }
            AuthType::User => {
                let mut msg = "Authentication failure of type \"user\" occurred".to_string();
                if show_username {
                    msg = format!("{msg} for user {username}.");
                }
                let refused = || Failure::new("UserAuthenticationError", msg.clone());
                let name = match Self::authenticate_key(cfg, load) {
                    KeyAuth::Refused => return Err(refused()),
                    KeyAuth::Full => None,
                    KeyAuth::As(name) => {
                        let sudo = load
                            .get("user")
                            .and_then(Value::as_str)
                            .is_some_and(|u| u.starts_with("sudo_"));
                        let acl_set = cfg
                            .get("publisher_acl")
                            .is_some_and(|a| a.as_object().is_some_and(|o| !o.is_empty()));
                        if sudo && !(cfg.get_bool("sudo_acl").unwrap_or(false) && acl_set) {
                            None
                        } else {
                            Some(name)
                        }
                    }
                };
                let Some(name) = name else {
                    return Ok(Authed {
                        kind,
                        username,
                        auth_list: Vec::new(),
                        acl_user: None,
                    });
                };
                let auth_list = match cfg.get("publisher_acl") {
                    Some(Json::Object(acl)) => acl::matching_values(acl, &name),
                    _ => Vec::new(),
                };
                if auth_list.is_empty() {
                    return Err(refused());
                }
                Ok(Authed {
                    kind,
                    username,
                    auth_list,
                    acl_user: Some(name),
                })
            }
        }
    }
}
