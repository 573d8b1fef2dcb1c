//! Salt's master configuration, read the way `salt-master` reads it
//! (checked against Salt 3007.17 and 3006.30, `salt/config/__init__.py`,
//! `salt/utils/yamlloader.py`, `salt/utils/parsers.py`, `salt/_logging`):
//!
//! 1. `<conf_dir>/master` (`load_config`): missing or unreadable = no
//!    options (a `master.template` next to it is copied first, as Salt does);
//!    `SALT_MASTER_CONFIG`/`SALT_CONFIG_DIR` apply only when `conf_dir` is
//!    `/etc/salt`. A parse error or a non-mapping document is an error (Salt
//!    exits); a false-y document (`0`, `[]`, `''`) is empty; a non-string
//!    `id` becomes a string.
//! 2. `default_include` (`master.d/*.conf`) then `include` (string or list
//!    of globs, `~` expanded, relative to the conf dir; included files may
//!    include more): each pattern's matches in sorted order, deep-merged
//!    together (lists merged without duplicates). Each of the two results
//!    then *replaces* the top-level keys of the main file (`dict.update`),
//!    so master.d beats `master` and `include` beats both. An included file
//!    that does not parse is logged and skipped, as Salt's master does.
//! 3. `apply_master_config`: Salt's `DEFAULT_MASTER_OPTS` (all of them,
//!    Linux paths with root `/`) overlaid with the options; `log_dir`,
//!    `sock_dir` (> `cachedir` + 10 chars → `cachedir/.salt-unix`),
//!    `token_dir`/`syndic_dir`/`extension_modules`/`utils_dirs`, the
//!    master `id` (`<host>_master`), `root_dir` prepending
//!    ([`prepend_root_dir`]), `cluster_*`, `open_mode`/`auto_accept`
//!    (only literal `True`), `file_roots`/`pillar_roots` globs,
//!    `worker_threads` (raised to 3 only when `peer` is set), `hash_type`
//!    lowercased, `ssl`, `discovery`, `publish_signing_algorithm`; then
//!    `_validate_opts` (a wrongly-typed option is a logged warning, as in
//!    Salt) and `nodegroups`.
//! 4. The typed fields follow `salt/utils/parsers.py`: an empty `log_file`
//!    or `log_level` falls back to the default, `log_level_logfile` to
//!    `log_level`, `log_fmt_logfile`/`log_datefmt_logfile` (when `None`) to
//!    the console/`log_datefmt` ones.
//!
//! Deviations from Salt, on purpose:
//! * An option Brine itself reads typed (`interface`, ports,
//!   `worker_threads` ≥ 1, `ipv6`, `user`, `max_open_files`, `keep_jobs`,
//!   `loop_interval`, the path options, `hash_type`, …) with an unusable
//!   value is a [`ConfigError::Invalid`] naming the key, where Salt only
//!   warns and fails later (or dies with a Python traceback).
//! * `warn` is not a level: Salt's `LOG_LEVELS` has no such name; a level
//!   Salt cannot translate is logged and becomes `error`, as in Salt.
//! * `presence_events`, `autosign_file` and `autoreject_file` have no
//!   default in Salt (they are read with `opts.get`), so none is added here.
//! * The defaults are 3007.17's: 3006.30 lacks `cluster_*` and
//!   `ssh_keepalive*`, has `azurefs_update_interval`, and defaults
//!   `gpg_decrypt_must_succeed` to False.
//! * The generated master `id` uses the hostname and `/etc/hosts`, not DNS
//!   or interface addresses; `id_function` is not called.
//! * Python values JSON cannot hold: `.inf`/`.nan` and >64-bit integers
//!   stay strings (see [`brine_py::parse_yaml`]). `sdb://` values are not resolved.
//!   `file_ignore_regex` entries are not checked as Python regexes.

mod master;
mod validate;

use std::path::{Path, PathBuf};

use brine_py::truthy;

pub use master::{current_user, defaults, dict_update, prepend_root_dir};
pub use serde_json::{Map, Value};
pub use validate::validate_opts;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Yaml(#[from] brine_py::Error),
    #[error("{path}: the configuration must be a mapping of options, not {found}")]
    NotAMapping { path: PathBuf, found: &'static str },
    #[error("invalid value for {key}: {msg}")]
    Invalid { key: String, msg: String },
}

/// Salt's default `hash_type`.
pub const DEFAULT_HASH_TYPE: &str = "sha256";

/// Salt's log levels (`salt/_logging/impl.py` `LOG_LEVELS`), ordered by
/// their numeric value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

impl SaltLevel {
    const ALL: [SaltLevel; 10] = [
        SaltLevel::All,
        SaltLevel::Garbage,
        SaltLevel::Trace,
        SaltLevel::Debug,
        SaltLevel::Profile,
        SaltLevel::Info,
        SaltLevel::Warning,
        SaltLevel::Error,
        SaltLevel::Critical,
        SaltLevel::Quiet,
    ];

    /// Salt's name for the level.
    pub fn name(self) -> &'static str {
        match self {
            SaltLevel::All => "all",
            SaltLevel::Garbage => "garbage",
            SaltLevel::Trace => "trace",
            SaltLevel::Debug => "debug",
            SaltLevel::Profile => "profile",
            SaltLevel::Info => "info",
            SaltLevel::Warning => "warning",
            SaltLevel::Error => "error",
            SaltLevel::Critical => "critical",
            SaltLevel::Quiet => "quiet",
        }
    }

    /// The numeric level (Python `logging` scale).
    pub fn value(self) -> u32 {
        self as u32
    }

    /// The named level a handler at numeric level `n` behaves as (the
    /// smallest named level at or above it).
    pub fn from_value(n: i64) -> SaltLevel {
        Self::ALL
            .into_iter()
            .find(|l| i64::from(l.value()) >= n)
            .unwrap_or(SaltLevel::Quiet)
    }
}

/// A Salt level name, case-insensitively (as `get_logging_level_from_string`
/// looks it up); `None` for anything else, `warn` included.
pub fn parse_log_level(s: &str) -> Option<SaltLevel> {
    let lower = s.to_lowercase();
    SaltLevel::ALL.into_iter().find(|l| l.name() == lower)
}

/// The Salt release whose behaviour Brine's master follows, as it reports
/// itself (`saltversion` in pillar opts, `manage.versions`).
pub const SALT_VERSION: &str = "3007.17";

/// The master options Brine uses directly, plus every merged option in `raw`.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// The `-c` directory, as given.
    pub conf_dir: PathBuf,
    /// `conf_dir/master` (`raw["conf_file"]` is the file actually read).
    pub conf_file: PathBuf,
    pub interface: String,
    pub ipv6: Option<bool>,
    pub publish_port: u16,
    pub ret_port: u16,
    pub worker_threads: usize,
    /// `root_dir` made absolute, as `prepend_root_dir` uses it (`raw`
    /// keeps the configured text, as Salt's opts do).
    pub root_dir: PathBuf,
    pub pki_dir: PathBuf,
    pub cachedir: PathBuf,
    pub sock_dir: PathBuf,
    pub pidfile: PathBuf,
    /// A path (root_dir applied) or a URL (`udp://`, `tcp://`, `file://`).
    pub log_file: String,
    /// A Salt level name, lowercase.
    pub log_level: String,
    /// `log_level_logfile`, or `log_level` when unset (as Salt does).
    pub log_level_logfile: String,
    pub log_fmt_logfile: String,
    pub log_datefmt_logfile: String,
    pub user: String,
    pub max_open_files: u64,
    /// Hours (`keep_jobs_seconds` is in `raw`).
    pub keep_jobs: u64,
    /// Seconds.
    pub loop_interval: u64,
    /// Every option, as Salt's `master_config()` returns its opts: all of
    /// Salt's defaults overlaid with the files (unknown keys kept).
    pub raw: Map<String, Value>,
}

/// An object from a `json!` literal.
pub(crate) fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn invalid(key: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        msg: msg.into(),
    }
}

fn string(raw: &Map<String, Value>, key: &str) -> Result<String, ConfigError> {
    match raw.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(invalid(key, format!("expected a string, got {}", brine_py::repr(v)))),
        None => Err(invalid(key, "missing")),
    }
}

fn non_negative(raw: &Map<String, Value>, key: &str) -> Result<u64, ConfigError> {
    let v = raw.get(key).unwrap_or(&Value::Null);
    brine_py::int(v).and_then(|n| u64::try_from(n).ok()).ok_or_else(|| {
        invalid(
            key,
            format!("expected a non-negative integer, got {}", brine_py::repr(v)),
        )
    })
}

fn port(raw: &Map<String, Value>, key: &str) -> Result<u16, ConfigError> {
    let v = raw.get(key).unwrap_or(&Value::Null);
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    };
    n.and_then(|n| u16::try_from(n).ok())
        .filter(|&p| p > 0)
        .ok_or_else(|| invalid(key, format!("{} is not a port number (1-65535)", brine_py::repr(v))))
}

/// `get_logging_level_from_string`, as a level name.
fn level(raw: &Map<String, Value>, key: &str) -> Result<String, ConfigError> {
    match raw.get(key).unwrap_or(&Value::Null) {
        Value::String(s) => Ok(match parse_log_level(s) {
            Some(l) => l.name().to_string(),
            None => {
                log::warn!(
                    "Could not translate the logging level string '{s}' into an actual logging level integer. Returning 'logging.ERROR'."
                );
                "error".into()
            }
        }),
        v @ (Value::Bool(_) | Value::Number(_)) if v.is_boolean() || v.is_i64() || v.is_u64() => {
            let n = brine_py::int(v).unwrap_or(0).clamp(i64::MIN.into(), i64::MAX.into()) as i64;
            Ok(SaltLevel::from_value(n).name().to_string())
        }
        v => Err(invalid(key, format!("{} is not a log level", brine_py::repr(v)))),
    }
}

/// A string option that falls back along `chain` when `None`/absent.
fn fallback(raw: &Map<String, Value>, chain: &[&str], default: &str) -> Result<String, ConfigError> {
    for key in chain {
        match raw.get(*key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => return Ok(s.clone()),
            Some(v) => return Err(invalid(key, format!("expected a string, got {}", brine_py::repr(v)))),
        }
    }
    Ok(default.to_string())
}

impl MasterConfig {
    /// Read `conf_dir/master` and its includes, then apply Salt's defaults
    /// (`salt.config.master_config`).
    pub fn load(conf_dir: &Path) -> Result<MasterConfig, ConfigError> {
        let dir = brine_py::abspath(&brine_py::expanduser(&conf_dir.to_string_lossy()));
        let path = brine_py::join(&dir, "master");
        let mut overrides = master::load_config(&path)?;
        let default_include = overrides
            .get("default_include")
            .cloned()
            .unwrap_or_else(|| Value::String("master.d/*.conf".into()));
        let include = overrides.get("include").cloned().unwrap_or(Value::Array(Vec::new()));
        let from_default = master::include_config(&default_include, &path, false)?;
        overrides.extend(from_default);
        let from_include = master::include_config(&include, &path, true)?;
        overrides.extend(from_include);
        MasterConfig::from_overrides(conf_dir, overrides)
    }

    /// Salt's `apply_master_config` (and the rest of `master_config`) over
    /// already-merged `overrides`.
    pub fn from_overrides(conf_dir: &Path, overrides: Map<String, Value>) -> Result<MasterConfig, ConfigError> {
        let raw = master::apply_master_config(overrides)?;

        let worker_threads = match raw.get("worker_threads").and_then(brine_py::int) {
            Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => {
                return Err(invalid(
                    "worker_threads",
                    format!("must be at least 1, got {}", brine_py::repr(&raw["worker_threads"])),
                ))
            }
        };
        let ipv6 = match raw.get("ipv6") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                return Err(invalid(
                    "ipv6",
                    format!("expected True, False or None, got {}", brine_py::repr(v)),
                ))
            }
        };
        let log_file = match raw.get("log_file") {
            Some(v) if truthy(v) => string(&raw, "log_file")?,
            _ => master::DEFAULT_LOG_FILE.to_string(),
        };
        let log_level = if raw.get("log_level").is_some_and(truthy) {
            level(&raw, "log_level")?
        } else {
            "warning".to_string()
        };
        let log_level_logfile = if raw.get("log_level_logfile").is_some_and(truthy) {
            level(&raw, "log_level_logfile")?
        } else {
            log_level.clone()
        };
        let log_fmt_logfile = fallback(
            &raw,
            &["log_fmt_logfile", "log_fmt_console", "log_fmt"],
            "[%(levelname)-8s] %(message)s",
        )?;
        let log_datefmt_logfile = fallback(
            &raw,
            &["log_datefmt_logfile", "log_datefmt_console", "log_datefmt"],
            "%Y-%m-%d %H:%M:%S",
        )?;
        let path = |k: &str| string(&raw, k).map(PathBuf::from);
        Ok(MasterConfig {
            conf_dir: conf_dir.to_owned(),
            conf_file: conf_dir.join("master"),
            interface: string(&raw, "interface")?,
            ipv6,
            publish_port: port(&raw, "publish_port")?,
            ret_port: port(&raw, "ret_port")?,
            worker_threads,
            root_dir: PathBuf::from(brine_py::abspath(&string(&raw, "root_dir")?)),
            pki_dir: path("pki_dir")?,
            cachedir: path("cachedir")?,
            sock_dir: path("sock_dir")?,
            pidfile: path("pidfile")?,
            log_file,
            log_level,
            log_level_logfile,
            log_fmt_logfile,
            log_datefmt_logfile,
            user: string(&raw, "user")?,
            max_open_files: non_negative(&raw, "max_open_files")?,
            keep_jobs: non_negative(&raw, "keep_jobs")?,
            loop_interval: non_negative(&raw, "loop_interval")?,
            raw,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.raw.get(key)
    }

    /// An option's Python truthiness (`if opts.get(key):`); `None` if unset.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.raw.get(key).map(truthy)
    }

    /// A non-negative integer option (numbers, bools and integer strings,
    /// as Python's `int()` takes them).
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.raw
            .get(key)
            .and_then(brine_py::int)
            .and_then(|n| u64::try_from(n).ok())
    }

    /// An integer option (numbers, bools and integer strings).
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.raw
            .get(key)
            .and_then(brine_py::int)
            .and_then(|n| i64::try_from(n).ok())
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.raw.get(key)?.as_str()
    }

    /// `hash_type`, the digest Salt uses for file hashes and job cache
    /// paths (`sha256` unless the config says otherwise).
    pub fn hash_type(&self) -> &str {
        self.get_str("hash_type").unwrap_or(DEFAULT_HASH_TYPE)
    }

    /// The master's `id` as Salt computes it (`id`, else `<hostname>_master`):
    /// the content `salt-key` writes into `.dfn` to ask for AES rotation.
    pub fn master_id(&self) -> String {
        if let Some(id) = self.get_str("id") {
            return id.to_string();
        }
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        format!("{host}_master")
    }

    /// A list of strings; a single string counts as a one-item list;
    /// non-string items are skipped.
    pub fn get_str_list(&self, key: &str) -> Option<Vec<String>> {
        match self.raw.get(key)? {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(a) => Some(a.iter().filter_map(|v| v.as_str().map(String::from)).collect()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
