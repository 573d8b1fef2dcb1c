//! Key management as Salt's `salt.key.Key` does it, for `salt-key` and the
//! master's wheel `key.*` functions alike: listing and matching keys,
//! accept / reject / delete with their `salt/key` events, and what follows
//! a key leaving (the minion data cache of minions without a key dropped
//! unless `preserve_minion_cache`, and `.dfn` asking the master to rotate
//! its AES key when `rotate_aes_key`).

use std::path::PathBuf;

use brine_cache::MinionCache;
use brine_config::MasterConfig;
use brine_proto::event::EventSender;
use brine_proto::Value;
use brine_py::Glob;

use crate::{drop_rotation_file, fingerprint, FsKeyStore, KeyError, KeyState, KeyStore};

/// Salt's `{status: [ids]}`: a key directory (`minions`, `minions_pre`,
/// `minions_rejected`, `minions_denied`, or `local` for the master's own
/// key files) and ids, in the order Salt builds the dict.
pub type Listing = Vec<(String, Vec<String>)>;

/// `{status: {id: text}}`: a key or its fingerprint per id.
pub type Detail = Vec<(String, Vec<(String, String)>)>;

/// Which keys an action takes, as Salt's `match` / `match_dict` arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Match {
    /// Globs, matched against every managed key (`name_match`).
    Globs(Vec<String>),
    /// Keys already gathered per status (`match_dict`): taken as given.
    Dict(Listing),
}

/// What an accept, reject or delete did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Salt's return value: where the matched keys are now (`name_match`
    /// again for globs, `dict_match` for a dict).
    pub keys: Listing,
    /// The ids acted on (one `salt/key` event each).
    pub changed: Vec<String>,
    /// Pending keys accept refused: not a PEM public key.
    pub invalid: Vec<String>,
    /// What failed on the way: a key file, the data cache, `.dfn`.
    pub errors: Vec<KeyError>,
}

/// A glob argument as Salt's `name_match` takes a string: split on commas.
pub fn globs(arg: &str) -> Vec<String> {
    arg.split(',').map(String::from).collect()
}

/// Salt's `sorted_ignorecase`.
fn sort_ignorecase(ids: &mut [String]) {
    ids.sort_by_key(|i| i.to_lowercase());
}

/// The key management of one master's `pki_dir` and `cachedir`.
pub struct Keys {
    store: FsKeyStore,
    cachedir: PathBuf,
    master_id: String,
    rotate_aes_key: bool,
    preserve_minion_cache: bool,
    preserve_minions: bool,
}

impl Keys {
    pub fn new(cfg: &MasterConfig) -> Keys {
        Keys {
            store: FsKeyStore::new(&cfg.pki_dir),
            cachedir: cfg.cachedir.clone(),
            master_id: cfg.master_id(),
            rotate_aes_key: cfg.get_bool("rotate_aes_key").unwrap_or(true),
            preserve_minion_cache: cfg.get_bool("preserve_minion_cache").unwrap_or(false),
            // Salt tests `opts.get("preserve_minions") is True`.
            preserve_minions: cfg.get("preserve_minions").and_then(|v| v.as_bool()) == Some(true),
        }
    }

    pub fn store(&self) -> &FsKeyStore {
        &self.store
    }

    /// `list_keys`: every status, ids sorted ignoring case.
    pub fn list_keys(&self) -> Result<Listing, KeyError> {
        KeyState::ALL
            .into_iter()
            .map(|s| {
                let mut ids = self.store.list(s)?;
                sort_ignorecase(&mut ids);
                Ok((s.dir().to_string(), ids))
            })
            .collect()
    }

    /// `local_keys`: the `.pub`/`.pem` files of `pki_dir` itself (none
    /// before the master first started).
    pub fn local_keys(&self) -> Result<Vec<String>, KeyError> {
        let dir = self.store.pki_dir();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(KeyError::Io {
                    path: dir.to_owned(),
                    source,
                })
            }
        };
        let mut v: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".pub") || n.ends_with(".pem"))
            .collect();
        sort_ignorecase(&mut v);
        Ok(v)
    }

    /// `all_keys`: the managed keys and `local`.
    pub fn all_keys(&self) -> Result<Listing, KeyError> {
        let mut l = self.list_keys()?;
        l.push(("local".into(), self.local_keys()?));
        Ok(l)
    }

    /// `list_status`: one status by the start of its name (`acc…`,
    /// `pre…`/`un…`, `rej…`, `den…`), or `all…`; anything else is empty.
    pub fn list_status(&self, name: &str) -> Result<Listing, KeyError> {
        let state = if name.starts_with("acc") {
            KeyState::Accepted
        } else if name.starts_with("pre") || name.starts_with("un") {
            KeyState::Pending
        } else if name.starts_with("rej") {
            KeyState::Rejected
        } else if name.starts_with("den") {
            KeyState::Denied
        } else if name.starts_with("all") {
            return self.all_keys();
        } else {
            return Ok(Vec::new());
        };
        let mut ids = self.store.list(state)?;
        sort_ignorecase(&mut ids);
        Ok(vec![(state.dir().to_string(), ids)])
    }

    /// `name_match`: the keys matching any of `patterns`, per status
    /// (`full` adds `local`). An id is listed once per matching pattern,
    /// as Salt's loop lists it.
    pub fn name_match(&self, patterns: &[String], full: bool) -> Result<Listing, KeyError> {
        let all = if full { self.all_keys()? } else { self.list_keys()? };
        let globs: Vec<Glob> = patterns.iter().map(|p| Glob::new(p)).collect();
        Ok(all
            .into_iter()
            .filter_map(|(status, ids)| {
                let hits: Vec<String> = ids
                    .iter()
                    .flat_map(|id| globs.iter().filter(|g| g.matches(id)).map(|_| id.clone()))
                    .collect();
                (!hits.is_empty()).then_some((status, hits))
            })
            .collect())
    }

    /// `dict_match`: for each wanted key (taken as a glob), the statuses
    /// it is found in now.
    pub fn dict_match(&self, wanted: &Listing) -> Result<Listing, KeyError> {
        let cur = self.list_keys()?;
        let mut out: Listing = Vec::new();
        for (_, keys) in wanted {
            let mut keys = keys.clone();
            sort_ignorecase(&mut keys);
            for key in keys {
                let glob = Glob::new(&key);
                for (status, ids) in &cur {
                    if ids.iter().any(|i| glob.matches(i)) {
                        match out.iter_mut().find(|(s, _)| s == status) {
                            Some((_, v)) => v.push(key.clone()),
                            None => out.push((status.clone(), vec![key.clone()])),
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn matches(&self, m: &Match) -> Result<Listing, KeyError> {
        match m {
            Match::Globs(p) => self.name_match(p, false),
            Match::Dict(d) => Ok(d.clone()),
        }
    }

    /// Salt's return of an action: the matched keys as they are now.
    fn now(&self, m: &Match, matches: &Listing) -> Result<Listing, KeyError> {
        match m {
            Match::Globs(p) => self.name_match(p, false),
            Match::Dict(_) => self.dict_match(matches),
        }
    }

    /// The matched keys of the statuses in `from`, with their state.
    fn picked(matches: &Listing, from: &[KeyState]) -> Vec<(KeyState, String)> {
        let mut out = Vec::new();
        for &state in from {
            for (status, ids) in matches {
                if status == state.dir() {
                    for id in ids {
                        // An id matched by several globs is acted on once.
                        if !out.contains(&(state, id.clone())) {
                            out.push((state, id.clone()));
                        }
                    }
                }
            }
        }
        out
    }

    /// `accept`: pending keys (and rejected / denied ones when asked) move
    /// to accepted. A key that is not a PEM public key stays where it is.
    pub fn accept(&self, events: &mut EventSender, m: &Match, include_rejected: bool, include_denied: bool) -> Outcome {
        let mut out = Outcome::default();
        let mut matches = match self.matches(m) {
            Ok(l) => l,
            Err(e) => return out.failed(e),
        };
        let mut from = vec![KeyState::Pending];
        if include_rejected {
            from.push(KeyState::Rejected);
        }
        if include_denied {
            from.push(KeyState::Denied);
        }
        for (state, id) in Self::picked(&matches, &from) {
            match self.store.get(state, &id) {
                Ok(Some(pem)) if !is_public_key(&pem) => {
                    if !out.invalid.contains(&id) {
                        out.invalid.push(id.clone());
                    }
                    for (_, ids) in matches.iter_mut().filter(|(s, _)| s == state.dir()) {
                        ids.retain(|i| *i != id);
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    out.errors.push(e);
                    continue;
                }
            }
            self.transfer(events, &mut out, state, KeyState::Accepted, &id, "accept");
        }
        out.finish(self.now(m, &matches))
    }

    /// `reject`: pending keys (and accepted / denied ones when asked) move
    /// to rejected; then the after-removal steps.
    pub fn reject(&self, events: &mut EventSender, m: &Match, include_accepted: bool, include_denied: bool) -> Outcome {
        let mut out = Outcome::default();
        let matches = match self.matches(m) {
            Ok(l) => l,
            Err(e) => return out.failed(e),
        };
        let mut from = vec![KeyState::Pending];
        if include_accepted {
            from.push(KeyState::Accepted);
        }
        if include_denied {
            from.push(KeyState::Denied);
        }
        for (state, id) in Self::picked(&matches, &from) {
            self.transfer(events, &mut out, state, KeyState::Rejected, &id, "reject");
        }
        self.after_removal(&mut out, &[]);
        out.finish(self.now(m, &matches))
    }

    /// `delete_key`: the matched keys removed, whatever their status; then
    /// the after-removal steps (with `preserve_minions: True`, the data
    /// cache of the deleted accepted minions is kept).
    pub fn delete_key(&self, events: &mut EventSender, m: &Match) -> Outcome {
        let mut out = Outcome::default();
        let matches = match self.matches(m) {
            Ok(l) => l,
            Err(e) => return out.failed(e),
        };
        for (state, id) in Self::picked(&matches, &KeyState::ALL) {
            match self.store.remove(state, &id) {
                Ok(true) => out.changed(events, "delete", &id),
                Ok(false) => {}
                Err(e) => out.errors.push(e),
            }
        }
        let keep: Vec<String> = if self.preserve_minions {
            Self::picked(&matches, &[KeyState::Accepted])
                .into_iter()
                .map(|(_, id)| id)
                .collect()
        } else {
            Vec::new()
        };
        self.after_removal(&mut out, &keep);
        out.finish(self.now(m, &matches))
    }

    fn transfer(&self, events: &mut EventSender, out: &mut Outcome, from: KeyState, to: KeyState, id: &str, act: &str) {
        match self.store.transfer(from, to, id) {
            Ok(true) => out.changed(events, act, id),
            Ok(false) => {}
            Err(e) => out.errors.push(e),
        }
    }

    /// What Salt's `reject` and `delete_key` do once keys are gone:
    /// `check_minion_cache`, then `.dfn` when `rotate_aes_key`.
    fn after_removal(&self, out: &mut Outcome, keep: &[String]) {
        if let Err(e) = self.check_minion_cache(keep) {
            out.errors.push(e);
        }
        if self.rotate_aes_key {
            if let Err(source) = drop_rotation_file(&self.cachedir, &self.master_id) {
                out.errors.push(KeyError::Io {
                    path: self.cachedir.join(".dfn"),
                    source,
                });
            }
        }
    }

    /// `check_minion_cache`: unless `preserve_minion_cache`, drop the data
    /// cache (`cachedir/minions/<id>`) of every minion that has no key in
    /// any status and is not in `keep`. Nothing is dropped when the keys
    /// cannot be listed.
    pub fn check_minion_cache(&self, keep: &[String]) -> Result<(), KeyError> {
        if self.preserve_minion_cache {
            return Ok(());
        }
        let known: Vec<String> = self.list_keys()?.into_iter().flat_map(|(_, ids)| ids).collect();
        let cache = MinionCache::new(&self.cachedir);
        for id in cache.list()? {
            if !known.contains(&id) && !keep.contains(&id) {
                cache.flush(&id)?;
            }
        }
        Ok(())
    }

    /// `key_str`: the keys matching `patterns` (no `local`), sorted
    /// ignoring case.
    pub fn key_str(&self, patterns: &[String]) -> Result<Detail, KeyError> {
        self.detail(self.name_match(patterns, false)?, true, |pem| pem)
    }

    /// `finger`: the fingerprints of the keys matching `patterns`,
    /// `local` ones included; an unknown `hash_type` gives empty strings.
    pub fn finger(&self, patterns: &[String], hash_type: &str) -> Result<Detail, KeyError> {
        self.detail(self.name_match(patterns, true)?, false, |pem| {
            fingerprint(&pem, hash_type).unwrap_or_default()
        })
    }

    fn detail(&self, matches: Listing, sort: bool, f: impl Fn(String) -> String) -> Result<Detail, KeyError> {
        let mut out = Vec::new();
        for (status, mut ids) in matches {
            if sort {
                sort_ignorecase(&mut ids);
            }
            // A dict: an id matched by several patterns appears once.
            let mut items: Vec<(String, String)> = Vec::new();
            for id in ids {
                if items.iter().any(|(i, _)| *i == id) {
                    continue;
                }
                let pem = match KeyState::from_dir(&status) {
                    Some(state) => self.store.get(state, &id)?.unwrap_or_default(),
                    None => self.local_key(&id)?,
                };
                items.push((id, f(pem)));
            }
            out.push((status, items));
        }
        Ok(out)
    }

    fn local_key(&self, name: &str) -> Result<String, KeyError> {
        let path = self.store.pki_dir().join(name);
        std::fs::read_to_string(&path).map_err(|source| KeyError::Io { path, source })
    }
}

impl Outcome {
    fn failed(mut self, e: KeyError) -> Outcome {
        self.errors.push(e);
        self
    }

    fn finish(mut self, now: Result<Listing, KeyError>) -> Outcome {
        match now {
            Ok(keys) => self.keys = keys,
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// Record `id` as acted on and fire Salt's `salt/key` event (the
    /// master may not be running: `salt-key` works without it).
    fn changed(&mut self, events: &mut EventSender, act: &str, id: &str) {
        let data = Value::map([
            ("result", Value::Bool(true)),
            ("act", Value::from(act)),
            ("id", Value::from(id)),
        ]);
        let _ = events.fire("salt/key", &data);
        self.changed.push(id.to_string());
    }
}

/// Salt's `get_rsa_pub_key` check before accepting: a PEM public key
/// (SubjectPublicKeyInfo, or PKCS#1 RSA).
fn is_public_key(pem: &str) -> bool {
    openssl::pkey::PKey::public_key_from_pem(pem.as_bytes()).is_ok()
        || openssl::rsa::Rsa::public_key_from_pem_pkcs1(pem.as_bytes()).is_ok()
}

#[cfg(test)]
#[path = "manage_tests.rs"]
mod tests;
