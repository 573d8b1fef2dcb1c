//! eauth backends Brine does not have (`ldap`, `django`, `rest`, `mysql`,
//! custom ones in `extension_modules/auth` or `auth_dirs`, which also
//! override Brine's own of the same name), through Salt's own auth loader
//! in the Python loader pool.
//!
//! A backend may take its time (a directory server on the network), and
//! the request loop does not wait for it: a request that carries
//! credentials for such a backend is first handed to a thread that asks
//! Python (`auth(...)`, then `groups(...)`), and handled once the answer
//! is in ([`Verdict`], kept by [`crate::LoadAuth`] for that one handling).

use std::sync::Arc;

use brine_config::MasterConfig;
use brine_proto::Value;
use log::warn;

/// Whether the eauth backend `name` runs through Python on this master.
pub fn runs(cfg: &MasterConfig, name: &str) -> bool {
    brine_loader::resolve::python_eauth(&cfg.raw).iter().any(|n| n == name) && brine_loader::available(cfg)
}

/// Where a load's credentials are: at its top (runner, wheel,
/// `mk_token`), or in a publication's `kwargs` (Salt's `extra`).
fn creds(load: &Value) -> &Value {
    match load.get("kwargs") {
        Some(k) if load.get("eauth").is_none() && k.get("eauth").is_some() => k,
        _ => load,
    }
}

/// What the backend answered for one user's credentials.
#[derive(Debug, Clone)]
pub struct Verdict {
    eauth: String,
    user: String,
    password: String,
    pub ok: bool,
    pub groups: Option<Vec<String>>,
}

impl Verdict {
    /// The answer of [`task`] for `load`.
    pub fn of(load: &Value, answer: &Value) -> Option<Verdict> {
        let load = creds(load);
        let text = |k: &str| load.get(k).and_then(Value::as_str).map(String::from);
        Some(Verdict {
            eauth: text("eauth")?,
            user: text("username")?,
            password: text("password")?,
            ok: answer.get("auth").is_some_and(brine_py::truthy),
            groups: match answer.get("groups") {
                Some(Value::Array(g)) => Some(g.iter().map(brine_py::to_str).collect()),
                _ => None,
            },
        })
    }

    pub fn is_for(&self, eauth: &str, user: &str, password: &str) -> bool {
        self.eauth == eauth && self.user == user && self.password == password
    }
}

/// For a load with credentials for a backend that runs through Python
/// (and is enabled in `external_auth`): the question to ask off the
/// request loop. Its answer goes to [`crate::LoadAuth::set_python_verdict`].
pub fn task(cfg: &Arc<MasterConfig>, load: &Value) -> Option<Box<dyn FnOnce() -> Value + Send>> {
    let load = creds(load);
    let eauth = load.get("eauth").and_then(Value::as_str)?;
    load.get("username").and_then(Value::as_str)?;
    load.get("password").and_then(Value::as_str)?;
    cfg.get("external_auth").and_then(|e| e.get(eauth))?;
    if !runs(cfg, eauth) {
        return None;
    }
    let (cfg, load) = (cfg.clone(), load.clone());
    Some(Box::new(move || {
        let req = Value::map([("kind", Value::from("eauth")), ("load", load.clone())]);
        brine_loader::call(&cfg, &req, "LoadAuth").unwrap_or_else(|e| {
            let eauth = load.get("eauth").map(brine_py::to_str).unwrap_or_default();
            warn!("eauth {eauth}: the Python backend did not answer: {e}");
            Value::map([("auth", Value::Bool(false))])
        })
    }))
}
