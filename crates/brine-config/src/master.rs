//! `salt.config.master_config` and what it calls, step by step, on
//! `serde_json` maps (salt/config/__init__.py of Salt 3007.17; 3006.x only
//! lacks the `cluster_*` handling).

use serde_json::{json, Map, Value};

use crate::ConfigError;
use brine_py::truthy;

/// The default `conf_file` (`salt.syspaths.CONFIG_DIR` + `master`).
pub const DEFAULT_CONF_FILE: &str = "/etc/salt/master";
/// The default `log_file`.
pub const DEFAULT_LOG_FILE: &str = "/var/log/salt/master";
/// `salt.crypt.VALID_SIGNING_ALGORITHMS`.
const SIGNING_ALGORITHMS: [&str; 2] = ["PKCS1v15-SHA1", "PKCS1v15-SHA224"];

static DEFAULTS_JSON: &str = include_str!("master_defaults.json");

fn invalid(key: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        msg: msg.into(),
    }
}

/// Salt's `_MASTER_USER`: whoever runs the master.
pub fn current_user() -> String {
    let uid = nix::unistd::Uid::effective();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

/// `_DFLT_IPC_WBUFFER`: half of max(5 % of the memory, 10 MiB).
fn dynamic_ipc_write_buffer() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb * 1024.0);
    ((total * 0.05).max(f64::from(10u32 << 20)) * 0.5) as u64
}

/// Salt's `DEFAULT_MASTER_OPTS` (Linux, root `/`), every option.
pub fn defaults() -> Map<String, Value> {
    let mut d: Map<String, Value> = serde_json::from_str(DEFAULTS_JSON).expect("master_defaults.json is valid JSON");
    d.insert("user".into(), Value::String(current_user()));
    d.insert("ipc_write_buffer".into(), Value::from(dynamic_ipc_write_buffer()));
    let home = brine_py::expanduser("~");
    d.insert(
        "ssh_config_file".into(),
        Value::String(brine_py::join(&home, ".ssh/config")),
    );
    d
}

fn found(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "nothing",
        Value::Object(_) => "a mapping",
    }
}

/// `_read_conf_file`: a YAML mapping (a false-y document counts as empty).
pub fn read_conf_file(path: &str) -> Result<Map<String, Value>, ConfigError> {
    log::debug!("Reading configuration from {path}");
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.into(),
        source,
    })?;
    let doc = brine_py::parse_yaml(&text, path.as_ref())?;
    let mut opts = match doc {
        Value::Object(m) => m,
        v if !truthy(&v) => Map::new(),
        v => {
            return Err(ConfigError::NotAMapping {
                path: path.into(),
                found: found(&v),
            })
        }
    };
    // Numeric ids are allowed: they become strings.
    if let Some(id) = opts.get("id") {
        if !id.is_string() {
            let s = brine_py::to_str(id);
            opts.insert("id".into(), Value::String(s));
        }
    }
    Ok(opts)
}

fn is_readable(path: &str) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::R_OK).is_ok()
}

/// Which file `load_config` reads for `path`: `SALT_MASTER_CONFIG` (or
/// `SALT_CONFIG_DIR/master`) only when `path` is the default one.
pub fn effective_path(path: &str) -> String {
    let is_file = |p: &str| std::path::Path::new(p).is_file();
    let mut env = std::env::var("SALT_MASTER_CONFIG").ok().filter(|v| !v.is_empty());
    if env.is_none() {
        if let Ok(dir) = std::env::var("SALT_CONFIG_DIR") {
            let candidate = brine_py::join(&dir, "master");
            if !dir.is_empty() && is_file(&candidate) {
                env = Some(candidate);
            }
        }
    }
    match env {
        Some(e) if path == DEFAULT_CONF_FILE && is_file(&e) => e,
        _ => path.to_string(),
    }
}

/// `load_config`: a missing file may be created from `<path>.template`; an
/// unreadable or missing one means no options.
pub fn load_config(path: &str) -> Result<Map<String, Value>, ConfigError> {
    let path = effective_path(path);
    let p = std::path::Path::new(&path);
    if !p.is_file() {
        let template = format!("{path}.template");
        if std::path::Path::new(&template).is_file() {
            log::debug!("Writing {path} based on {template}");
            let text = std::fs::read_to_string(&template).map_err(|source| ConfigError::Io {
                path: template.clone().into(),
                source,
            })?;
            let body = text.split_once('\n').map_or("", |(_, rest)| rest);
            std::fs::write(p, body).map_err(|source| ConfigError::Io {
                path: path.clone().into(),
                source,
            })?;
        }
    }
    if p.exists() && is_readable(&path) {
        let mut opts = read_conf_file(&path)?;
        opts.insert("conf_file".into(), Value::String(path));
        Ok(opts)
    } else {
        if p.exists() {
            log::warn!("Configuration file {path} is not readable; using the defaults");
        } else {
            log::debug!("Missing configuration file: {path}");
        }
        Ok(Map::new())
    }
}

/// `salt.utils.dictupdate.update(dest, upd, recursive_update=True, merge_lists)`.
pub fn dict_update(dest: &mut Map<String, Value>, upd: Map<String, Value>, merge_lists: bool) {
    if !upd.keys().any(|k| dest.contains_key(k)) {
        dest.extend(upd);
        return;
    }
    for (k, v) in upd {
        match (dest.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(u)) => dict_update(d, u, merge_lists),
            (Some(Value::Array(d)), Value::Array(u)) if merge_lists => {
                for item in u {
                    if !d.iter().any(|x| brine_py::eq(x, &item)) {
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

/// `include_config`: every file matching `include` (a string or a list of
/// globs, `~` expanded, relative to the directory of `orig_path`), in
/// sorted order per pattern, deep-merged (lists merged) into one mapping.
/// A file that does not parse is logged and skipped, as Salt's master does.
pub fn include_config(include: &Value, orig_path: &str, verbose: bool) -> Result<Map<String, Value>, ConfigError> {
    let mut configuration = Map::new();
    if !truthy(include) {
        return Ok(configuration);
    }
    let patterns: Vec<&Value> = match include {
        Value::String(_) => vec![include],
        Value::Array(items) => items.iter().collect(),
        other => {
            return Err(invalid(
                "include",
                format!("expected a path or a list of paths, got {}", brine_py::repr(other)),
            ))
        }
    };
    for pat in patterns {
        let Value::String(pat) = pat else {
            return Err(invalid(
                "include",
                format!("expected a path, got {}", brine_py::repr(pat)),
            ));
        };
        let mut path = brine_py::expanduser(pat);
        if !path.starts_with('/') {
            path = brine_py::join(&brine_py::dirname(orig_path), &path);
        }
        let mut matches = brine_py::glob(&path);
        if matches.is_empty() && verbose {
            log::warn!("Warning parsing configuration file: \"include\" path/glob '{path}' matches no files");
        }
        matches.sort();
        for file in matches {
            log::debug!("Including configuration from '{file}'");
            let mut opts = match read_conf_file(&file) {
                Ok(o) => o,
                Err(e @ (ConfigError::Yaml(_) | ConfigError::NotAMapping { .. })) => {
                    log::error!("Error parsing configuration file: {e}");
                    Map::new()
                }
                Err(e) => return Err(e),
            };
            // Salt first replaces the jobs of an already-seen `schedule`.
            if let (Some(Value::Object(s)), Some(Value::Object(cur))) =
                (opts.get("schedule").cloned(), configuration.get_mut("schedule"))
            {
                cur.extend(s);
            }
            if let Some(inc) = opts.get("include").cloned().filter(truthy) {
                let nested = include_config(&inc, &file, verbose)?;
                opts.extend(nested);
            }
            dict_update(&mut configuration, opts, true);
        }
    }
    Ok(configuration)
}

/// `_adjust_log_file_override`.
fn adjust_log_file_override(overrides: &mut Map<String, Value>) -> Result<(), ConfigError> {
    let Some(log_dir) = overrides.get("log_dir").filter(|v| truthy(*v)).cloned() else {
        return Ok(());
    };
    let Value::String(log_dir) = log_dir else {
        return Err(invalid("log_dir", "expected a directory path"));
    };
    let log_file = match overrides.get("log_file").filter(|v| truthy(*v)) {
        Some(Value::String(f)) if f.starts_with('/') => return Ok(()),
        Some(Value::String(f)) => brine_py::join(&log_dir, f),
        Some(_) => return Err(invalid("log_file", "expected a path")),
        None => brine_py::join(&log_dir, "master"),
    };
    overrides.insert("log_file".into(), Value::String(log_file));
    Ok(())
}

fn str_opt<'a>(opts: &'a Map<String, Value>, key: &str) -> Result<&'a str, ConfigError> {
    match opts.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(invalid(key, format!("expected a string, got {}", brine_py::repr(v)))),
        None => Err(invalid(key, "missing")),
    }
}

/// `prepend_root_dir`: put each path option under `root_dir`, whether it
/// is relative, absolute elsewhere, or already under `root_dir` (then it
/// stays where it is).
pub fn prepend_root_dir(opts: &mut Map<String, Value>, keys: &[&str]) -> Result<(), ConfigError> {
    let root_dir = brine_py::abspath(str_opt(opts, "root_dir")?);
    // salt.syspaths.ROOT_DIR ("/") without its trailing separator.
    let def_root_dir = "";
    for key in keys {
        let Some(v) = opts.get(*key) else { continue };
        let Value::String(path) = v else {
            return Err(invalid(key, format!("expected a path, got {}", brine_py::repr(v))));
        };
        let strip = |prefix: &str| {
            (path == prefix || path.starts_with(&format!("{prefix}/"))).then(|| path[prefix.len()..].to_string())
        };
        let tmp_def = strip(def_root_dir);
        let tmp_root = if root_dir.is_empty() { None } else { strip(&root_dir) };
        let t = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
        let rel = match (t(&tmp_def), t(&tmp_root)) {
            (true, false) => tmp_def.unwrap_or_default(),
            (false, true) => tmp_root.unwrap_or_default(),
            // The default root ("") is inside every root: the root wins.
            (true, true) => tmp_root.unwrap_or_default(),
            (false, false) => path.clone(),
        };
        let joined = brine_py::salt_join(&root_dir, &rel);
        opts.insert(key.to_string(), Value::String(joined));
    }
    Ok(())
}

/// `should_prepend_root_dir`: set, not `None`, and not a URL.
fn should_prepend_root_dir(opts: &Map<String, Value>, key: &str) -> Result<bool, ConfigError> {
    match opts.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(s)) => Ok(brine_py::url_scheme(s).is_empty()),
        Some(v) => Err(invalid(
            key,
            format!("expected a path or a URL, got {}", brine_py::repr(v)),
        )),
    }
}

// ---------------------------------------------------------------- id

fn is_localhost_like(name: &str) -> bool {
    let b = name.as_bytes();
    name.starts_with("localhost")
        || name.starts_with("ip6-")
        || (b.len() >= 5 && name.starts_with("127.") && b[4].is_ascii_digit())
        || name.starts_with("0.0.0.0")
        || name.starts_with("::1")
        || name.starts_with("ipv6-")
        || name.starts_with("fe00::")
        || name.starts_with("fe02::")
        || (name.starts_with('1') && name.contains("ip6") && name.contains("arpa"))
}

/// `/etc/hosts` as `(address, names)`.
fn hosts_entries() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('#').next()?.split_whitespace();
            let addr = f.next()?.to_string();
            let names: Vec<String> = f.map(String::from).collect();
            (!names.is_empty()).then_some((addr, names))
        })
        .collect()
}

/// `socket.getfqdn(name)` through the `files` name service only: the
/// canonical name or first dotted alias of the address `name` maps to.
fn getfqdn(name: &str) -> String {
    let entries = hosts_entries();
    let Some(addr) = entries
        .iter()
        .find(|(_, n)| n.iter().any(|x| x == name))
        .map(|(a, _)| a)
    else {
        return name.to_string();
    };
    let Some((_, names)) = entries.iter().find(|(a, _)| a == addr) else {
        return name.to_string();
    };
    names.iter().find(|n| n.contains('.')).unwrap_or(&names[0]).clone()
}

/// `salt.utils.network.generate_minion_id` without DNS or interface
/// addresses: hostname (and its `/etc/hosts` FQDN), then the host files.
fn generate_minion_id() -> String {
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut hosts: Vec<String> = Vec::new();
    let add = |h: &str, hosts: &mut Vec<String>| {
        if !h.is_empty() && !hosts.iter().any(|x| x == h) && !is_localhost_like(h) {
            hosts.push(h.to_string());
        }
    };
    if !hostname.is_empty() {
        add(&getfqdn(&hostname), &mut hosts);
    }
    add(&hostname, &mut hosts);
    for f in ["/etc/hostname", "/etc/nodename", "/etc/hosts"] {
        for line in std::fs::read_to_string(f).unwrap_or_default().lines() {
            let hst: Vec<&str> = line.trim().split('#').next().unwrap_or("").split_whitespace().collect();
            if let Some(first) = hst.first() {
                if first.starts_with("127.") || first.starts_with("::1") || hst.len() == 1 {
                    for h in &hst {
                        add(h, &mut hosts);
                    }
                }
            }
        }
    }
    hosts.into_iter().next().unwrap_or_else(|| "localhost".into())
}

/// `get_id` for the master: the cached `minion_id` under `root_dir`, or a
/// generated one; and whether it is an IPv4 address.
fn get_id(opts: &Map<String, Value>) -> (String, bool) {
    let root = match opts.get("root_dir") {
        Some(Value::String(r)) => r.clone(),
        _ => "/".into(),
    };
    if opts.get("minion_id_caching").is_none_or(truthy) {
        let cache = brine_py::join(&brine_py::join(&root, "etc/salt"), "minion_id");
        if let Ok(text) = std::fs::read_to_string(&cache) {
            let name = text.lines().next().unwrap_or("").trim().trim_start_matches('\u{feff}');
            if !name.is_empty() && name != "localhost" {
                log::debug!("Using cached minion ID from {cache}: {name}");
                return (name.to_string(), false);
            }
        }
    }
    let mut id = generate_minion_id();
    if opts.get("minion_id_lowercase").is_some_and(truthy) {
        id = id.to_lowercase();
    }
    if let Some(remove) = opts.get("minion_id_remove_domain").filter(|v| truthy(*v)) {
        // remove_domain_from_fqdn: a given domain, or any domain (True).
        id = match remove {
            Value::String(d) => id.strip_suffix(&format!(".{d}")).map(String::from).unwrap_or(id),
            _ => id.split('.').next().unwrap_or(&id).to_string(),
        };
    }
    let ip = id.parse::<std::net::Ipv4Addr>().is_ok();
    (id, ip)
}

// ---------------------------------------------------------------- apply

/// `apply_master_config` then the rest of `master_config` (ssh_minion_opts
/// check, type warnings, `nodegroups`).
pub fn apply_master_config(mut overrides: Map<String, Value>) -> Result<Map<String, Value>, ConfigError> {
    let mut opts = defaults();
    opts.insert("__role".into(), json!("master"));
    opts.insert("__fs_update".into(), json!(true));
    adjust_log_file_override(&mut overrides)?;
    let ipc_override = overrides.get("ipc_write_buffer").cloned();
    opts.extend(overrides);

    // The REST eauth backend needs the ACL in the token.
    let rest = match opts.get("external_auth") {
        None => false,
        Some(Value::Object(m)) => m.contains_key("rest"),
        Some(Value::Array(a)) => a.iter().any(|v| v == "rest"),
        Some(Value::String(s)) => s.contains("rest"),
        Some(v) => {
            return Err(invalid(
                "external_auth",
                format!("expected a mapping, got {}", brine_py::repr(v)),
            ))
        }
    };
    if rest {
        if opts.get("keep_acl_in_token") == Some(&Value::Bool(false)) {
            log::warn!(
                "The 'rest' external_auth backend requires 'keep_acl_in_token' to be True. Setting 'keep_acl_in_token' to True."
            );
        }
        opts.insert("keep_acl_in_token".into(), json!(true));
    }

    let cli = std::env::args().next().unwrap_or_default();
    opts.insert(
        "__cli".into(),
        Value::String(brine_py::split(&brine_py::expanduser(&cli)).1),
    );

    if let Some(env) = opts.get("environment").cloned() {
        match opts.get("saltenv").cloned().unwrap_or(Value::Null) {
            Value::Null => {
                log::warn!(
                    "The 'environment' master config option has been renamed to 'saltenv'. Using {} as the 'saltenv' config value.",
                    brine_py::to_str(&env)
                );
                opts.insert("saltenv".into(), env);
            }
            saltenv => {
                log::warn!("The 'saltenv' and 'environment' master config options cannot both be used. Ignoring 'environment' in favor of 'saltenv'.");
                opts.insert("environment".into(), saltenv);
            }
        }
    }

    match opts.get_mut("fileserver_backend") {
        Some(Value::Array(items)) => {
            for v in items.iter_mut() {
                if let Value::String(s) = v {
                    if matches!(s.as_str(), "git" | "hg" | "svn" | "minion") {
                        log::debug!("Changed {s} to {s}fs in master opts' fileserver_backend list");
                        s.push_str("fs");
                    }
                }
            }
        }
        Some(Value::String(_) | Value::Object(_)) => {}
        Some(v) => {
            let r = brine_py::repr(v);
            return Err(invalid("fileserver_backend", format!("expected a list, got {r}")));
        }
        None => {}
    }

    let cachedir = str_opt(&opts, "cachedir")?.to_string();
    let sock_dir = str_opt(&opts, "sock_dir")?;
    if sock_dir.chars().count() > cachedir.chars().count() + 10 {
        opts.insert(
            "sock_dir".into(),
            Value::String(brine_py::join(&cachedir, ".salt-unix")),
        );
    }
    opts.insert("token_dir".into(), Value::String(brine_py::join(&cachedir, "tokens")));
    opts.insert("syndic_dir".into(), Value::String(brine_py::join(&cachedir, "syndics")));
    if !opts.get("extension_modules").is_some_and(truthy) {
        opts.insert(
            "extension_modules".into(),
            Value::String(brine_py::join(&cachedir, "extmods")),
        );
    }
    if !opts.get("utils_dirs").is_some_and(truthy) {
        let ext = str_opt(&opts, "extension_modules")?;
        let dirs = json!([brine_py::join(ext, "utils")]);
        opts.insert("utils_dirs".into(), dirs);
    }

    if ipc_override.as_ref().and_then(Value::as_str) == Some("dynamic") {
        opts.insert("ipc_write_buffer".into(), Value::from(dynamic_ipc_write_buffer()));
    }
    if ipc_override.is_none() {
        opts.insert("ipc_write_buffer".into(), json!(0));
    }

    let mut using_ip_for_id = false;
    let mut append_master = false;
    if !opts.get("id").is_some_and(truthy) {
        let (id, ip) = get_id(&opts);
        opts.insert("id".into(), Value::String(id));
        using_ip_for_id = ip;
        append_master = true;
    }
    if !using_ip_for_id && opts.contains_key("append_domain") {
        let domain = str_opt(&opts, "append_domain")?.to_string();
        let id = str_opt(&opts, "id")?.to_string();
        if !id.ends_with(&domain) && !id.ends_with('.') {
            opts.insert("id".into(), Value::String(format!("{id}.{domain}")));
        }
    }
    if append_master {
        let id = format!("{}_master", str_opt(&opts, "id")?);
        opts.insert("id".into(), Value::String(id));
    }

    let mut keys = vec![
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
    for key in ["log_file", "key_logfile", "ssh_log_file"] {
        if should_prepend_root_dir(&opts, key)? {
            keys.push(key);
        }
    }
    prepend_root_dir(&mut opts, &keys)?;

    if !opts.contains_key("cluster_id") {
        opts.insert("cluster_id".into(), Value::Null);
    }
    if !opts["cluster_id"].is_null() {
        if !opts.get("cluster_peers").is_some_and(truthy) {
            log::warn!("Cluster id defined without defining cluster peers");
            opts.insert("cluster_peers".into(), json!([]));
        }
        if !opts.get("cluster_pki_dir").is_some_and(truthy) {
            log::warn!("Cluster id defined without defining cluster pki, falling back to pki_dir");
            let pki = opts["pki_dir"].clone();
            opts.insert("cluster_pki_dir".into(), pki);
        }
    } else {
        if opts.get("cluster_peers").is_some_and(truthy) {
            log::warn!("Cluster peers defined without a cluster_id, ignoring.");
            opts.insert("cluster_peers".into(), json!([]));
        }
        if opts.get("cluster_pki_dir").is_some_and(truthy) {
            log::warn!("Cluster pki dir defined without a cluster_id, ignoring.");
            opts.insert("cluster_pki_dir".into(), Value::Null);
        }
    }

    // Open mode and auto-accept need literally True.
    for key in ["open_mode", "auto_accept"] {
        let on = opts.get(key) == Some(&Value::Bool(true));
        opts.insert(key.into(), Value::Bool(on));
    }
    for key in ["file_roots", "pillar_roots"] {
        let roots = validate_file_roots(opts.get(key).cloned().unwrap_or(Value::Null));
        opts.insert(key.into(), Value::Object(roots));
    }

    if opts.get("file_ignore_regex").is_some_and(truthy) {
        let list = match &opts["file_ignore_regex"] {
            Value::String(s) => vec![Value::String(s.clone())],
            Value::Array(a) => a.clone(),
            v => {
                return Err(invalid(
                    "file_ignore_regex",
                    format!("expected a list, got {}", brine_py::repr(v)),
                ))
            }
        };
        let kept: Vec<Value> = list
            .into_iter()
            .filter(|r| {
                let ok = r.is_string();
                if !ok {
                    log::warn!("Unable to parse file_ignore_regex. Skipping: {}", brine_py::to_str(r));
                }
                ok
            })
            .collect();
        opts.insert("file_ignore_regex".into(), Value::Array(kept));
    }
    if let Some(Value::String(g)) = opts.get("file_ignore_glob") {
        if !g.is_empty() {
            let list = json!([g]);
            opts.insert("file_ignore_glob".into(), list);
        }
    }

    let wt = match &opts["worker_threads"] {
        v @ (Value::Number(_) | Value::Bool(_)) => brine_py::int(v).unwrap_or(0),
        v => {
            return Err(invalid(
                "worker_threads",
                format!("expected an integer, got {}", brine_py::repr(v)),
            ))
        }
    };
    if wt < 3 && opts.get("peer").is_some_and(truthy) {
        log::warn!(
            "The 'worker_threads' setting in '{}' cannot be lower than 3. Resetting it to the default value of 3.",
            brine_py::to_str(opts.get("conf_file").unwrap_or(&Value::Null))
        );
        opts.insert("worker_threads".into(), json!(3));
    }

    if !opts.contains_key("pillar_source_merging_strategy") {
        opts.insert("pillar_source_merging_strategy".into(), json!("smart"));
    }
    let hash = str_opt(&opts, "hash_type")?.to_lowercase();
    opts.insert("hash_type".into(), Value::String(hash));

    update_ssl_config(&mut opts)?;
    update_discovery_config(&mut opts)?;

    let alg = opts.get("publish_signing_algorithm").cloned().unwrap_or(Value::Null);
    if !alg.as_str().is_some_and(|a| SIGNING_ALGORITHMS.contains(&a)) {
        return Err(invalid(
            "publish_signing_algorithm",
            format!(
                "The publish signing algorithm '{}' is not valid. Please specify one of {}.",
                brine_py::to_str(&alg),
                SIGNING_ALGORITHMS.join(",")
            ),
        ));
    }

    // --- master_config, after apply_master_config:
    validate_ssh_minion_opts(&mut opts);
    crate::validate::validate_opts(&mut opts);
    if opts.get("nodegroups").is_none_or(Value::is_null) {
        opts.insert("nodegroups".into(), json!({}));
    }
    if let Some(Value::Array(items)) = opts.get("nodegroups") {
        let dictlist = items.iter().all(|i| matches!(i, Value::Object(o) if o.len() == 1));
        if dictlist {
            let mut packed = Map::new();
            for item in items {
                if let Value::Object(o) = item {
                    packed.extend(o.clone());
                }
            }
            opts.insert("nodegroups".into(), Value::Object(packed));
        }
    }
    Ok(opts)
}

/// `_validate_file_roots` (used for `pillar_roots` too, defaults and all).
fn validate_file_roots(roots: Value) -> Map<String, Value> {
    let Value::Object(roots) = roots else {
        log::warn!("The file_roots parameter is not properly formatted, using defaults");
        return crate::object(json!({"base": ["/srv/salt"]}));
    };
    roots
        .into_iter()
        .map(|(env, dirs)| {
            let mut out = Vec::new();
            if let Value::Array(dirs) = dirs {
                for d in dirs {
                    match &d {
                        Value::String(p) if brine_py::has_magic(p) => {
                            out.extend(brine_py::glob(p).into_iter().map(Value::String));
                        }
                        _ => out.push(d),
                    }
                }
            }
            (env, Value::Array(out))
        })
        .collect()
}

/// `_update_ssl_config`: `True` is `{}`, `None`/`False` is `None`, and
/// `cert_reqs`/`ssl_version` names become Python's `ssl` constants.
fn update_ssl_config(opts: &mut Map<String, Value>) -> Result<(), ConfigError> {
    let ssl = opts.get("ssl").cloned().unwrap_or(Value::Null);
    match ssl {
        Value::Null | Value::Bool(false) => {
            opts.insert("ssl".into(), Value::Null);
        }
        Value::Number(ref n) if n.as_f64() == Some(0.0) => {
            opts.insert("ssl".into(), Value::Null);
        }
        Value::Bool(true) => {
            opts.insert("ssl".into(), json!({}));
        }
        Value::Object(mut m) => {
            const CERT: [(&str, i64); 3] = [("CERT_NONE", 0), ("CERT_OPTIONAL", 1), ("CERT_REQUIRED", 2)];
            const PROTO: [(&str, i64); 7] = [
                ("PROTOCOL_SSLv23", 2),
                ("PROTOCOL_TLS", 2),
                ("PROTOCOL_TLS_CLIENT", 16),
                ("PROTOCOL_TLS_SERVER", 17),
                ("PROTOCOL_TLSv1", 3),
                ("PROTOCOL_TLSv1_1", 4),
                ("PROTOCOL_TLSv1_2", 5),
            ];
            for (key, table) in [("cert_reqs", &CERT[..]), ("ssl_version", &PROTO[..])] {
                let Some(val) = m.get(key).filter(|v| !v.is_null()) else {
                    continue;
                };
                let found = val.as_str().and_then(|s| table.iter().find(|(n, _)| *n == s));
                match found {
                    Some((_, n)) => {
                        m.insert(key.into(), json!(n));
                    }
                    None => {
                        let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
                        return Err(invalid(
                            "ssl",
                            format!(
                                "SSL option '{key}' must be set to one of the following values: '{}'.",
                                names.join("', '")
                            ),
                        ));
                    }
                }
            }
            opts.insert("ssl".into(), Value::Object(m));
        }
        v => {
            return Err(invalid(
                "ssl",
                format!("expected a mapping or a boolean, got {}", brine_py::repr(&v)),
            ))
        }
    }
    Ok(())
}

/// `_update_discovery_config` for the master role.
fn update_discovery_config(opts: &mut Map<String, Value>) -> Result<(), ConfigError> {
    let d = opts.get("discovery").cloned().unwrap_or(Value::Null);
    let off = matches!(d, Value::Null | Value::Bool(false)) || (d.is_number() && d.as_f64() == Some(0.0));
    if off {
        return Ok(());
    }
    let d = match d {
        Value::Bool(true) => Map::new(),
        Value::Object(m) => m,
        v => {
            return Err(invalid(
                "discovery",
                format!("expected a mapping, got {}", brine_py::repr(&v)),
            ))
        }
    };
    for key in d.keys() {
        if !["attempts", "pause", "port", "match", "mapping"].contains(&key.as_str()) {
            return Err(invalid("discovery", format!("Unknown discovery option: {key}")));
        }
    }
    let mut config = crate::object(json!({"port": 4520, "mapping": {}}));
    dict_update(&mut config, d, true);
    opts.insert("discovery".into(), Value::Object(config));
    Ok(())
}

/// `_validate_ssh_minion_opts`: no fileserver or pillar options in there.
fn validate_ssh_minion_opts(opts: &mut Map<String, Value>) {
    match opts.get_mut("ssh_minion_opts") {
        None => {}
        Some(Value::Object(m)) => {
            let bad: Vec<String> = m
                .keys()
                .filter(|name| {
                    let lower = name.to_ascii_lowercase();
                    let fs = lower
                        .split_once("fs_")
                        .is_some_and(|(pre, _)| !pre.is_empty() && pre.chars().all(|c| c.is_ascii_alphanumeric()));
                    fs || (name.contains("pillar") && name.as_str() != "ssh_merge_pillar")
                        || name.as_str() == "fileserver_backend"
                })
                .cloned()
                .collect();
            for name in bad {
                log::warn!("'{name}' is not a valid ssh_minion_opts parameter, ignoring");
                m.remove(&name);
            }
        }
        Some(_) => {
            log::error!("Invalidly-formatted ssh_minion_opts");
            opts.remove("ssh_minion_opts");
        }
    }
}
