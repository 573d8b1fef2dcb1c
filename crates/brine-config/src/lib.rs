#![recursion_limit = "256"]
//! Salt's master configuration, read the way `salt.config.master_config`
//! reads it (checked against Salt 3007.17's `salt/config/__init__.py`):
//!
//! 1. `<conf_dir>/master` (missing = all defaults) parsed with Salt's YAML
//!    rules ([`parse_yaml`]); a non-mapping document is an error.
//! 2. `default_include` (`master.d/*.conf`) and then `include` (string or
//!    list, globs, `~`, relative to the conf dir; included files may include
//!    more) are read in sorted glob order and deep-merged with each other
//!    (lists merged without duplicates); each result then *replaces* the
//!    top-level keys of the main file (a plain `dict.update`).
//! 3. Salt's defaults are overlaid with that (`apply_master_config`):
//!    `log_dir` adjusts `log_file`; a `sock_dir` longer than `cachedir` + 10
//!    becomes `cachedir/.salt-unix`; `token_dir`, `syndic_dir` and
//!    `extension_modules` derive from `cachedir`; `root_dir` is prepended to
//!    the path options (`prepend_root_dir`); `open_mode`/`auto_accept` are
//!    true only when literally `True`; `hash_type` is lowercased.
//!
//! Deviations from Salt, on purpose:
//! * A value of the wrong type for an option Brine itself uses (ports,
//!   `worker_threads`, log levels, …) is a [`ConfigError::Invalid`] naming
//!   the key: Salt only logs a warning and then fails later, obscurely.
//! * `SALT_MASTER_CONFIG` / `SALT_CONFIG_DIR` are not consulted.
//! * `.inf`/`.nan` floats are kept as strings (JSON values cannot hold them).

mod yaml;

use std::path::{Path, PathBuf};

pub use serde_json::{Map, Value};
pub use yaml::parse_yaml;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: line {line}, column {col}: {msg}")]
    Yaml {
        path: PathBuf,
        line: usize,
        col: usize,
        msg: String,
    },
    #[error("{path}: the configuration must be a mapping of options, not {found}")]
    NotAMapping { path: PathBuf, found: &'static str },
    #[error("invalid value for {key}: {msg}")]
    Invalid { key: String, msg: String },
}

/// Salt's log levels (salt/_logging/impl.py), ordered by numeric value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SaltLevel {
    All = 0,
    Garbage = 1,
    Trace = 5,
    Debug = 10,
    Profile = 15,
    Info = 20,
    Warning = 30,
    Error = 40,
    Critical = 50,
    Quiet = 1000,
}

/// Parse a Salt log level name (case-insensitive, `warn` accepted).
pub fn parse_log_level(s: &str) -> Option<SaltLevel> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "all" => SaltLevel::All,
        "garbage" => SaltLevel::Garbage,
        "trace" => SaltLevel::Trace,
        "debug" => SaltLevel::Debug,
        "profile" => SaltLevel::Profile,
        "info" => SaltLevel::Info,
        "warning" | "warn" => SaltLevel::Warning,
        "error" => SaltLevel::Error,
        "critical" => SaltLevel::Critical,
        "quiet" => SaltLevel::Quiet,
        _ => return None,
    })
}

/// The master options Brine uses directly, plus every merged option in `raw`.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    pub conf_dir: PathBuf,
    pub conf_file: PathBuf,
    pub interface: String,
    pub ipv6: Option<bool>,
    pub publish_port: u16,
    pub ret_port: u16,
    pub worker_threads: usize,
    pub root_dir: PathBuf,
    pub pki_dir: PathBuf,
    pub cachedir: PathBuf,
    pub sock_dir: PathBuf,
    pub pidfile: PathBuf,
    /// A path (root_dir applied) or a syslog URL as Salt allows.
    pub log_file: String,
    pub log_level: String,
    /// `log_level_logfile`, or `log_level` when unset (as Salt does).
    pub log_level_logfile: String,
    pub log_fmt_logfile: String,
    pub log_datefmt_logfile: String,
    pub user: String,
    pub max_open_files: u64,
    /// Hours (legacy; `keep_jobs_seconds` is in `raw`).
    pub keep_jobs: u64,
    pub loop_interval: u64,
    /// Every option: Salt's defaults for the keys Brine knows, overlaid with
    /// everything from the files (unknown keys kept).
    pub raw: Map<String, Value>,
}

/// Salt's default `user`: whoever runs the master (`salt.utils.user.get_user`).
fn current_user() -> String {
    let uid = nix::unistd::Uid::effective();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

/// Salt's defaults (DEFAULT_MASTER_OPTS, Linux syspaths with root `/`) for
/// the options Brine reads.
pub fn defaults() -> Map<String, Value> {
    let v = serde_json::json!({
        "interface": "0.0.0.0",
        "ipv6": null,
        "publish_port": 4505,
        "ret_port": 4506,
        "zmq_backlog": 1000,
        "pub_hwm": 1000,
        "worker_threads": 5,
        "root_dir": "/",
        "pki_dir": "/etc/salt/pki/master",
        "cachedir": "/var/cache/salt/master",
        "sock_dir": "/var/run/salt/master",
        "pidfile": "/var/run/salt-master.pid",
        "extension_modules": "/var/cache/salt/master/extmods",
        "sqlite_queue_dir": "/var/cache/salt/master/queues",
        "conf_file": "/etc/salt/master",
        "log_file": "/var/log/salt/master",
        "key_logfile": "/var/log/salt/key",
        "log_level": "warning",
        "log_level_logfile": null,
        "log_datefmt": "%H:%M:%S",
        "log_datefmt_logfile": "%Y-%m-%d %H:%M:%S",
        "log_fmt_console": "[%(levelname)-8s] %(message)s",
        "log_fmt_logfile": "%(asctime)s,%(msecs)03d [%(name)-17s:%(lineno)-4d][%(levelname)-8s][%(process)d] %(message)s",
        "log_granular_levels": {},
        "user": current_user(),
        "max_open_files": 100000,
        "keep_jobs": 24,
        "keep_jobs_seconds": 86400,
        "loop_interval": 60,
        "maintenance_interval": 3600,
        "timeout": 5,
        "gather_job_timeout": 10,
        "auto_accept": false,
        "open_mode": false,
        "keysize": 2048,
        "hash_type": "sha256",
        "file_buffer_size": 1048576,
        "file_roots": {"base": ["/srv/salt", "/srv/spm/salt"]},
        "pillar_roots": {"base": ["/srv/pillar", "/srv/spm/pillar"]},
        "fileserver_backend": ["roots"],
        "file_ignore_regex": [],
        "file_ignore_glob": [],
        "pillar_source_merging_strategy": "smart",
        "sign_pub_messages": true,
        "publish_signing_algorithm": "PKCS1v15-SHA1",
        "zmq_filtering": false,
        "job_cache": true,
        "keep_acl_in_token": false,
        "minimum_auth_version": 3,
        "publish_session": 86400,
        "presence_events": false,
        "transport": "zeromq",
        "ipc_mode": "ipc",
        "cluster_id": null,
        "max_event_size": 1048576,
        "nodegroups": {},
        "default_include": "master.d/*.conf",
        "tcp_keepalive": true,
        "tcp_keepalive_idle": 300,
        "tcp_keepalive_cnt": -1,
        "tcp_keepalive_intvl": -1,
        "zmq_heartbeat_ivl": 10000,
        "zmq_heartbeat_timeout": 30000,
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn read_conf_file(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    match parse_yaml(&text, path)? {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m),
        other => Err(ConfigError::NotAMapping {
            path: path.to_owned(),
            found: match other {
                Value::Array(_) => "a list",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                _ => "a boolean",
            },
        }),
    }
}

/// `salt.utils.dictupdate.update(dest, upd, recursive_update=True, merge_lists=True)`.
fn deep_update(dest: &mut Map<String, Value>, upd: Map<String, Value>) {
    let overlap = upd.keys().any(|k| dest.contains_key(k));
    for (k, v) in upd {
        if !overlap {
            dest.insert(k, v);
            continue;
        }
        match (dest.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(u)) => deep_update(d, u),
            (Some(Value::Array(d)), Value::Array(u)) => {
                for item in u {
                    if !d.contains(&item) {
                        d.push(item);
                    }
                }
            }
            (_, v) => {
                dest.insert(k, v);
            }
        }
    }
}

fn expand_user(p: &str) -> String {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return format!("{}/{rest}", home.to_string_lossy());
        }
    }
    p.to_string()
}

/// `include_config`: read every file matching `include` (relative to the
/// directory of `orig_path`), deep-merged in order.
fn include_config(include: &Value, orig_path: &Path) -> Result<Map<String, Value>, ConfigError> {
    let patterns: Vec<String> = match include {
        Value::String(s) if !s.is_empty() => vec![s.clone()],
        Value::Array(items) => items.iter().filter_map(|i| i.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    };
    let base = orig_path.parent().unwrap_or(Path::new("/"));
    let mut configuration = Map::new();
    for pat in patterns {
        let pat = expand_user(&pat);
        let full = if Path::new(&pat).is_absolute() {
            PathBuf::from(&pat)
        } else {
            base.join(&pat)
        };
        let mut matches: Vec<PathBuf> = match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(e) => {
                return Err(ConfigError::Invalid {
                    key: "include".into(),
                    msg: format!("bad glob {pat:?}: {e}"),
                })
            }
        };
        matches.sort();
        if matches.is_empty() {
            log::debug!("include {} matches no files", full.display());
        }
        for file in matches {
            let mut opts = read_conf_file(&file)?;
            if let Some(inc) = opts.get("include").cloned() {
                let nested = include_config(&inc, &file)?;
                for (k, v) in nested {
                    opts.insert(k, v);
                }
            }
            deep_update(&mut configuration, opts);
        }
    }
    Ok(configuration)
}

/// `os.path.normpath` for absolute or relative POSIX paths.
fn normpath(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// `prepend_root_dir` for one value: a path already under `root_dir` keeps
/// its place; any other path, absolute or relative, is put under it
/// (`salt.utils.path.join` semantics, so `/` leaves absolute paths alone).
fn prepend_root(root_dir: &str, path: &str) -> String {
    let rel = if root_dir != "/" && path.starts_with(&format!("{root_dir}/")) {
        &path[root_dir.len()..]
    } else {
        path
    };
    let root = normpath(root_dir);
    let rel = normpath(rel);
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() || rel == "." {
        root
    } else if root.ends_with('/') {
        format!("{root}{rel}")
    } else {
        format!("{root}/{rel}")
    }
}

fn is_url(s: &str) -> bool {
    // urlparse(...).scheme != "": letters, digits, + - . then ':'
    match s.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

fn as_str(raw: &Map<String, Value>, key: &str) -> Result<String, ConfigError> {
    match raw.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(ConfigError::Invalid {
            key: key.into(),
            msg: format!("expected a string, got {other}"),
        }),
        None => Err(ConfigError::Invalid {
            key: key.into(),
            msg: "missing".into(),
        }),
    }
}

fn as_u64(raw: &Map<String, Value>, key: &str) -> Result<u64, ConfigError> {
    let bad = |v: &Value| ConfigError::Invalid {
        key: key.into(),
        msg: format!("expected a non-negative integer, got {v}"),
    };
    match raw.get(key) {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| bad(&Value::Number(n.clone()))),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| bad(&Value::String(s.clone()))),
        Some(v) => Err(bad(v)),
        None => Err(bad(&Value::Null)),
    }
}

fn port(raw: &Map<String, Value>, key: &str) -> Result<u16, ConfigError> {
    let n = as_u64(raw, key)?;
    u16::try_from(n)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| ConfigError::Invalid {
            key: key.into(),
            msg: format!("{n} is not a port number (1-65535)"),
        })
}

fn level(raw: &Map<String, Value>, key: &str) -> Result<String, ConfigError> {
    let s = as_str(raw, key)?;
    parse_log_level(&s)
        .map(|_| s.clone())
        .ok_or_else(|| ConfigError::Invalid {
            key: key.into(),
            msg: format!(
                "{s:?} is not a log level (all, garbage, trace, debug, profile, info, warning, error, critical, quiet)"
            ),
        })
}

impl MasterConfig {
    /// Read `conf_dir/master` and its includes, then apply Salt's defaults.
    pub fn load(conf_dir: &Path) -> Result<MasterConfig, ConfigError> {
        let conf_file = conf_dir.join("master");
        let mut overrides = if conf_file.is_file() {
            let mut m = read_conf_file(&conf_file)?;
            m.insert(
                "conf_file".into(),
                Value::String(conf_file.to_string_lossy().into_owned()),
            );
            m
        } else {
            log::debug!("missing configuration file {}", conf_file.display());
            Map::new()
        };
        let default_include = overrides
            .get("default_include")
            .cloned()
            .unwrap_or_else(|| Value::String("master.d/*.conf".into()));
        let include = overrides.get("include").cloned().unwrap_or(Value::Null);
        for (k, v) in include_config(&default_include, &conf_file)? {
            overrides.insert(k, v);
        }
        for (k, v) in include_config(&include, &conf_file)? {
            overrides.insert(k, v);
        }
        MasterConfig::from_overrides(conf_dir, overrides)
    }

    /// Salt's `apply_master_config` over already-merged `overrides`.
    pub fn from_overrides(conf_dir: &Path, mut overrides: Map<String, Value>) -> Result<MasterConfig, ConfigError> {
        let mut raw = defaults();
        // _adjust_log_file_override
        if let Some(Value::String(log_dir)) = overrides.get("log_dir").cloned() {
            if !log_dir.is_empty() {
                let lf = match overrides.get("log_file") {
                    Some(Value::String(f)) if !f.is_empty() => {
                        if f.starts_with('/') {
                            f.clone()
                        } else {
                            format!("{}/{f}", log_dir.trim_end_matches('/'))
                        }
                    }
                    _ => format!("{}/master", log_dir.trim_end_matches('/')),
                };
                overrides.insert("log_file".into(), Value::String(lf));
            }
        }
        for (k, v) in overrides {
            raw.insert(k, v);
        }
        let cachedir = as_str(&raw, "cachedir")?;
        let sock_dir = as_str(&raw, "sock_dir")?;
        if sock_dir.len() > cachedir.len() + 10 {
            raw.insert("sock_dir".into(), Value::String(format!("{cachedir}/.salt-unix")));
        }
        raw.insert("token_dir".into(), Value::String(format!("{cachedir}/tokens")));
        raw.insert("syndic_dir".into(), Value::String(format!("{cachedir}/syndics")));
        if !raw.get("extension_modules").is_some_and(truthy) {
            raw.insert("extension_modules".into(), Value::String(format!("{cachedir}/extmods")));
        }
        // prepend_root_dir
        let root = as_str(&raw, "root_dir")?;
        let root_abs = std::path::absolute(&root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or(root);
        let root_abs = normpath(&root_abs);
        raw.insert("root_dir".into(), Value::String(root_abs.clone()));
        let mut keys: Vec<&str> = vec![
            "pki_dir",
            "cachedir",
            "pidfile",
            "sock_dir",
            "extension_modules",
            "autosign_file",
            "autoreject_file",
            "token_dir",
            "syndic_dir",
            "sqlite_queue_dir",
            "autosign_grains_dir",
        ];
        for k in ["log_file", "key_logfile", "ssh_log_file"] {
            if raw.get(k).and_then(Value::as_str).is_some_and(|v| !is_url(v)) {
                keys.push(k);
            }
        }
        for k in keys {
            if let Some(Value::String(p)) = raw.get(k) {
                let p = prepend_root(&root_abs, p);
                raw.insert(k.into(), Value::String(p));
            }
        }
        for k in ["open_mode", "auto_accept"] {
            let on = raw.get(k) == Some(&Value::Bool(true));
            raw.insert(k.into(), Value::Bool(on));
        }
        let hash = as_str(&raw, "hash_type")?.to_ascii_lowercase();
        raw.insert("hash_type".into(), Value::String(hash));
        if raw.get("nodegroups").is_none_or(Value::is_null) {
            raw.insert("nodegroups".into(), Value::Object(Map::new()));
        }

        let mut worker_threads = as_u64(&raw, "worker_threads")? as usize;
        if worker_threads == 0 {
            return Err(ConfigError::Invalid {
                key: "worker_threads".into(),
                msg: "must be at least 1".into(),
            });
        }
        if worker_threads < 3 && raw.get("peer").is_some_and(truthy) {
            log::warn!("worker_threads cannot be lower than 3 when peer is set; using 3");
            worker_threads = 3;
            raw.insert("worker_threads".into(), Value::from(3));
        }
        let log_level = level(&raw, "log_level")?;
        let log_level_logfile = match raw.get("log_level_logfile") {
            None | Some(Value::Null) => log_level.clone(),
            Some(_) => level(&raw, "log_level_logfile")?,
        };
        let ipv6 = match raw.get("ipv6") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                return Err(ConfigError::Invalid {
                    key: "ipv6".into(),
                    msg: format!("expected True, False or None, got {v}"),
                })
            }
        };
        let path = |k: &str| as_str(&raw, k).map(PathBuf::from);
        Ok(MasterConfig {
            conf_dir: conf_dir.to_owned(),
            conf_file: conf_dir.join("master"),
            interface: as_str(&raw, "interface")?,
            ipv6,
            publish_port: port(&raw, "publish_port")?,
            ret_port: port(&raw, "ret_port")?,
            worker_threads,
            root_dir: path("root_dir")?,
            pki_dir: path("pki_dir")?,
            cachedir: path("cachedir")?,
            sock_dir: path("sock_dir")?,
            pidfile: path("pidfile")?,
            log_file: as_str(&raw, "log_file")?,
            log_level,
            log_level_logfile,
            log_fmt_logfile: as_str(&raw, "log_fmt_logfile")?,
            log_datefmt_logfile: as_str(&raw, "log_datefmt_logfile")?,
            user: as_str(&raw, "user")?,
            max_open_files: as_u64(&raw, "max_open_files")?,
            keep_jobs: as_u64(&raw, "keep_jobs")?,
            loop_interval: as_u64(&raw, "loop_interval")?,
            raw,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.raw.get(key)
    }

    /// A boolean option; Salt-style truthiness for non-bools.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.raw.get(key).map(truthy)
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        match self.raw.get(key)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn get_i64(&self, key: &str) -> Option<i64> {
        match self.raw.get(key)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.raw.get(key)?.as_str()
    }

    /// A list of strings; a single string counts as a one-item list.
    pub fn get_str_list(&self, key: &str) -> Option<Vec<String>> {
        match self.raw.get(key)? {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(a) => Some(a.iter().filter_map(|v| v.as_str().map(String::from)).collect()),
            _ => None,
        }
    }
}

/// Python truthiness of a config value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests;
