//! Salt's fileserver (`salt/fileserver/__init__.py`) with its `roots`
//! backend (`salt/fileserver/roots.py`) over `file_roots`: what a minion's
//! `RemoteClient` asks with `_file_envs`, `_file_list`,
//! `_file_list_emptydirs`, `_dir_list`, `_symlink_list`, `_file_find`,
//! `_file_hash`, `_file_hash_and_stat` and `_serve_file`.
//!
//! Each method takes the request load and gives Salt's answer, or an
//! [`FsError`] where Salt's function raises (the request channel then
//! answers `""`, as `AESFuncs.run_func` does). Loads are read as Salt reads
//! them: `env` is ignored, a non-text `saltenv` is `str()`-ed (except by
//! `_file_find`), `salt://` escaping (`|`), `?saltenv=` and `?index=` in a
//! path are honoured, `prefix` filters lists, `fsbackend`/`back` select
//! backends, and a saltenv missing from `file_roots` maps to `__env__`
//! (the saltenv's name substituted into those roots) when that is
//! configured. Only the `roots` backend exists; other `fileserver_backend`
//! entries are reported at start and serve nothing.
//!
//! # Security
//!
//! A path is refused — answered exactly as a missing file, with one
//! `warn!` naming the minion and the path — when it is absolute, contains
//! `../` (also after `|` unescaping), or lands outside its root once
//! normalised (`..`). With `fileserver_followsymlinks: False` the check is
//! made on real paths, so a symlink leading out of the root is refused too;
//! with the default `True`, Salt follows symlinks wherever they lead (the
//! administrator put them there), and so does Brine. `serve_file` checks
//! the found path against the roots again before opening it. Brine is
//! stricter than Salt in two places: `?index=N` paths get the same root
//! check (Salt skips it there and would hash a file a refused symlink
//! points to), and with `__env__` roots a saltenv that is empty, `.`,
//! `..` or contains `/` or NUL is refused (Salt substitutes it into the
//! root and serves whatever that names, e.g. `../../etc`). Nothing is
//! written to disk (Salt's hash cache files under `cachedir/roots/hash`
//! take the saltenv from the request).
//!
//! Other differences, none visible to a working minion: `_file_envs`,
//! `_symlink_list` and `_master_opts`' `file_roots` come in sorted order
//! (Salt's follow a Python set or the directory); a symlinked directory
//! that loops back to one of its parents is not walked again (Salt walks
//! it until the kernel's 40-symlink limit); names that are not UTF-8 are
//! left out of lists (Salt's answer would fail to encode); a minion's
//! `fsbackend: "-roots"` does not remove `roots` from the master's options
//! for good, as it does in Salt.
//!
//! # Caches
//!
//! Salt keeps each saltenv's lists in `cachedir/file_lists/roots/<env>.p`
//! for `fileserver_list_cache_time` (20 s), so a new file shows up to 20 s
//! late. Brine keeps them in the MWorker's memory and re-validates them on
//! every request: the walk remembered the `stat` of every directory it read
//! and every symlink target, and any difference (a file added, removed or
//! renamed changes its directory's mtime) means a new walk — so the next
//! request after a change sees it, at the cost of one `stat` per directory.
//! Walks whose timestamps were younger than [`roots::RACY_MARGIN`] are not
//! kept (two changes in one clock tick leave the same mtime). File hashes
//! are cached the same way, by path, device, inode, size, mtime and ctime.
//! Known limit: a file system whose clock runs more than the margin behind
//! the master's (NFS with a skewed server) could hide a change made in the
//! same timestamp tick as the previous one.

pub mod py;
pub mod roots;
#[cfg(test)]
mod tests;

use std::io::{Read, Seek, SeekFrom, Write};

use brine_config::MasterConfig;
use brine_proto::Value;
use log::warn;

use brine_py::{join, normpath, truthy};
use py::{clean_path, is_escaped, isabs, isfile, unescape};
use roots::{HashCache, HashKind, Ignore, ListCache, Lists, WalkOpts};

/// Where Salt's fileserver function raises; the request is answered `""`.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("TypeError: {0}")]
    Type(String),
    #[error("ValueError: {0}")]
    Value(String),
    #[error("AttributeError: {0}")]
    Attribute(String),
    #[error("OSError: {0}")]
    Os(#[from] std::io::Error),
}

impl FsError {
    fn is_type(&self) -> bool {
        matches!(self, FsError::Type(_))
    }
}

/// Which list `_file_lists` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `_file_list`
    Files,
    /// `_dir_list`
    Dirs,
    /// `_file_list_emptydirs`
    EmptyDirs,
}

/// What `find_file` found (Salt's `fnd` dict).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    pub path: String,
    pub rel: String,
    /// `list(os.stat(path))`: mode, ino, dev, nlink, uid, gid, size,
    /// atime, mtime, ctime.
    pub stat: Option<Vec<i64>>,
    /// Found by the `roots` backend (`fnd["back"]`).
    pub found: bool,
}

impl Found {
    pub fn to_value(&self) -> Value {
        let mut m = vec![
            (Value::from("path"), Value::from(self.path.as_str())),
            (Value::from("rel"), Value::from(self.rel.as_str())),
        ];
        if let Some(st) = &self.stat {
            m.push((
                Value::from("stat"),
                Value::Array(st.iter().map(|n| Value::Int(*n)).collect()),
            ));
        }
        if self.found {
            m.push((Value::from("back"), Value::from("roots")));
        }
        Value::Map(m)
    }
}

/// Why a request was refused, logged once per request.
type Refusal = Option<String>;

/// The `roots` fileserver of one MWorker.
pub struct Fileserver {
    /// `file_roots`, in configuration order.
    file_roots: Vec<(String, Vec<String>)>,
    /// `fileserver_backend` includes `roots`.
    roots_enabled: bool,
    hash_type: String,
    /// `file_buffer_size`; negative reads to the end, as Python's `read`.
    buffer_size: i64,
    follow: bool,
    ignore_symlinks: bool,
    ignore: Ignore,
    /// The working directory relative roots are taken against.
    cwd: String,
    lists: ListCache,
    hashes: HashCache,
}

fn str_list(v: Option<&brine_config::Value>) -> Vec<String> {
    match v {
        Some(brine_config::Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(brine_config::Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    }
}

/// `file_roots`: each saltenv with its directories, in configuration
/// order (an entry that is not a path is logged and skipped).
pub fn file_roots(cfg: &MasterConfig) -> Vec<(String, Vec<String>)> {
    let mut file_roots = Vec::new();
    if let Some(brine_config::Value::Object(m)) = cfg.get("file_roots") {
        for (env, dirs) in m {
            let mut roots = Vec::new();
            if let brine_config::Value::Array(a) = dirs {
                for d in a {
                    match d.as_str() {
                        Some(s) => roots.push(s.to_string()),
                        None => warn!("file_roots: {env}: {d} is not a path; ignored"),
                    }
                }
            }
            file_roots.push((env.clone(), roots));
        }
    }
    file_roots
}

/// [`file_roots`] as paths: where master-side templates (reactions,
/// orchestrations) find their Jinja imports.
pub fn file_root_paths(cfg: &MasterConfig) -> Vec<(String, Vec<std::path::PathBuf>)> {
    file_roots(cfg)
        .into_iter()
        .map(|(env, dirs)| (env, dirs.into_iter().map(Into::into).collect()))
        .collect()
}

impl Fileserver {
    pub fn new(cfg: &MasterConfig) -> Fileserver {
        let file_roots = file_roots(cfg);
        let backends: Vec<String> = match cfg.get("fileserver_backend") {
            Some(brine_config::Value::String(s)) => s.split(',').map(|b| b.trim().to_string()).collect(),
            v => str_list(v),
        };
        let others: Vec<&String> = backends.iter().filter(|b| *b != "roots").collect();
        if !others.is_empty() {
            warn!("fileserver_backend {others:?}: Brine serves only the roots backend; these serve nothing");
        }
        let hash_type = cfg.hash_type().to_string();
        if hash_kind_ok(&hash_type).is_err() {
            warn!("hash_type {hash_type:?} is not a hash Python's hashlib has: file hashes will fail");
        }
        let buffer_size = match cfg.get("file_buffer_size") {
            None => 1_048_576,
            Some(_) => cfg.get_i64("file_buffer_size").unwrap_or_else(|| {
                warn!("file_buffer_size is not an integer; using 1048576");
                1_048_576
            }),
        };
        let cwd = std::env::current_dir()
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "/".into());
        Fileserver {
            file_roots,
            roots_enabled: backends.iter().any(|b| b == "roots"),
            hash_type,
            buffer_size,
            follow: cfg.get_bool("fileserver_followsymlinks").unwrap_or(true),
            ignore_symlinks: cfg.get_bool("fileserver_ignoresymlinks").unwrap_or(false),
            ignore: Ignore::new(
                &str_list(cfg.get("file_ignore_regex")),
                &str_list(cfg.get("file_ignore_glob")),
            ),
            cwd,
            lists: ListCache::default(),
            hashes: HashCache::default(),
        }
    }

    /// The configured saltenvs, sorted (`roots.envs`).
    pub fn envs(&self) -> Vec<String> {
        if !self.roots_enabled {
            return Vec::new();
        }
        let mut e: Vec<String> = self.file_roots.iter().map(|(k, _)| k.clone()).collect();
        e.sort();
        e.dedup();
        e
    }

    /// `_file_envs`: the saltenvs, or `{backend: saltenvs}` with `sources`.
    pub fn file_envs(&self, load: &Value) -> Value {
        let selected = self.roots_selected(load.get("back"));
        let envs = || Value::Array(self.envs().into_iter().map(Value::from).collect());
        if load.get("sources").is_some_and(truthy) {
            if selected {
                Value::map([("roots", envs())])
            } else {
                Value::Map(Vec::new())
            }
        } else if selected {
            envs()
        } else {
            Value::Array(Vec::new())
        }
    }

    /// `_file_list`, `_dir_list`, `_file_list_emptydirs`.
    pub fn file_list(&mut self, id: &str, load: &Value, form: Form) -> Result<Value, FsError> {
        let Some(saltenv) = load.get("saltenv") else {
            return Ok(Value::Array(Vec::new()));
        };
        let saltenv = brine_py::to_str(saltenv);
        // `file_list_emptydirs` asks every backend, whatever `fsbackend` says.
        let back = if form == Form::EmptyDirs {
            None
        } else {
            load.get("fsbackend")
        };
        let lists = if self.roots_selected(back) {
            self.lists_of(id, &saltenv)
        } else {
            None
        };
        let prefix = prefix(load)?;
        let items = match (&lists, form) {
            (None, _) => &[][..],
            (Some(l), Form::Files) => &l.files[..],
            (Some(l), Form::Dirs) => &l.dirs[..],
            (Some(l), Form::EmptyDirs) => &l.empty_dirs[..],
        };
        Ok(Value::Array(
            items
                .iter()
                .filter(|f| f.starts_with(&prefix))
                .map(|f| Value::from(f.as_str()))
                .collect(),
        ))
    }

    /// `_symlink_list`: link → target for the saltenv's symlinks.
    pub fn symlink_list(&mut self, id: &str, load: &Value) -> Result<Value, FsError> {
        let Some(saltenv) = load.get("saltenv") else {
            return Ok(Value::Map(Vec::new()));
        };
        let saltenv = brine_py::to_str(saltenv);
        let lists = if self.roots_selected(load.get("fsbackend")) {
            self.lists_of(id, &saltenv)
        } else {
            None
        };
        let prefix = prefix(load)?;
        Ok(Value::Map(
            lists
                .iter()
                .flat_map(|l| l.links.iter())
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
                .collect(),
        ))
    }

    /// `_file_find`: where `path` is, and its `stat`.
    pub fn file_find(&mut self, id: &str, load: &Value) -> Result<Value, FsError> {
        let path = match load.get("path") {
            Some(p) if truthy(p) => p,
            _ => return Ok(Found::default().to_value()),
        };
        let saltenv = load.get("saltenv").cloned().unwrap_or_else(|| Value::from("base"));
        let fnd = self.find_logged(id, path, &saltenv)?;
        Ok(fnd.to_value())
    }

    /// `_file_hash`: `{hash_type, hsum}`, or `""` for a missing file.
    pub fn file_hash(&mut self, id: &str, load: &Value) -> Result<Value, FsError> {
        match self.hash_and_stat(id, load) {
            Ok((h, _)) => Ok(h),
            Err(e) if e.is_type() => Ok(Value::from("")),
            Err(e) => Err(e),
        }
    }

    /// `_file_hash_and_stat`: `[hash, stat]`.
    pub fn file_hash_and_stat(&mut self, id: &str, load: &Value) -> Result<Value, FsError> {
        match self.hash_and_stat(id, load) {
            Ok((h, st)) => Ok(Value::Array(vec![h, st])),
            Err(e) if e.is_type() => Ok(Value::Array(vec![Value::from(""), Value::Nil])),
            Err(e) => Err(e),
        }
    }

    fn hash_and_stat(&mut self, id: &str, load: &Value) -> Result<(Value, Value), FsError> {
        let missing = || (Value::from(""), Value::Nil);
        let (Some(path), Some(saltenv)) = (load.get("path"), load.get("saltenv")) else {
            return Ok(missing());
        };
        let saltenv = Value::from(brine_py::to_str(saltenv));
        let fnd = self.find_logged(id, path, &saltenv)?;
        if !fnd.found {
            return Ok(missing());
        }
        let stat = match &fnd.stat {
            Some(st) => Value::Array(st.iter().map(|n| Value::Int(*n)).collect()),
            None => Value::Nil,
        };
        if fnd.path.is_empty() || !isfile(&fnd.path) {
            return Ok((Value::Map(Vec::new()), stat));
        }
        let digest = hash_kind_ok(&self.hash_type)?;
        let hsum = self.hashes.hash(&fnd.path, digest)?;
        let ret = Value::map([
            ("hash_type", Value::from(self.hash_type.as_str())),
            ("hsum", Value::from(hsum)),
        ]);
        Ok((ret, stat))
    }

    /// `_serve_file`: the `file_buffer_size` bytes of `path` at `loc`.
    pub fn serve_file(&mut self, id: &str, load: &Value) -> Result<Value, FsError> {
        let empty = |dest: &str| Value::map([("data", Value::from("")), ("dest", Value::from(dest))]);
        let (Some(path), Some(loc), Some(saltenv)) = (load.get("path"), load.get("loc"), load.get("saltenv")) else {
            return Ok(empty(""));
        };
        let saltenv = brine_py::to_str(saltenv);
        let mut refused = None;
        let fnd = self.find(path, &Value::from(saltenv.as_str()), &mut refused)?;
        if !fnd.found {
            self.log_refusal(id, path, &saltenv, refused);
            return Ok(empty(""));
        }
        // roots.serve_file: the found file must be under one of the roots
        // of the requested saltenv.
        let fpath = normpath(&fnd.path);
        let Some((roots, template)) = self.env_roots(&saltenv, &mut refused) else {
            // Salt answers with `fnd` itself here (a `?saltenv=` path
            // found in another saltenv than the load's unknown one).
            self.log_refusal(id, path, &saltenv, refused);
            return Ok(fnd.to_value());
        };
        let in_root = roots.iter().any(|root| {
            let root = if template {
                root.replace("__env__", &saltenv)
            } else {
                root.clone()
            };
            clean_path(&self.cwd, &root, &fpath, !self.follow)
        });
        if !in_root {
            let why = format!("{fpath} is outside the roots of saltenv {saltenv:?}");
            self.log_refusal(id, path, &saltenv, Some(why));
            return Ok(empty(&fnd.rel));
        }
        let offset = match loc {
            Value::Int(i) if *i < 0 => {
                return Err(FsError::Os(std::io::Error::from_raw_os_error(libc::EINVAL)));
            }
            Value::Int(i) => *i as u64,
            Value::Bool(b) => u64::from(*b),
            Value::UInt(_) => return Err(FsError::Value("cannot fit 'int' into an offset-sized integer".into())),
            other => {
                return Err(FsError::Type(format!(
                    "'{}' object cannot be interpreted as an integer",
                    brine_py::type_name(other)
                )))
            }
        };
        let mut f = std::fs::File::open(&fpath)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut data = Vec::new();
        if self.buffer_size < 0 {
            f.read_to_end(&mut data)?;
        } else {
            f.take(self.buffer_size as u64).read_to_end(&mut data)?;
        }
        let gzip = load.get("gzip").filter(|g| truthy(*g));
        let mut ret = vec![
            (Value::from("data"), Value::from("")),
            (Value::from("dest"), Value::from(fnd.rel.as_str())),
        ];
        if let (Some(g), false) = (gzip, data.is_empty()) {
            data = gzip_compress(&data, g)?;
            ret.push((Value::from("gzip"), g.clone()));
        }
        ret[0].1 = Value::Bytes(data);
        Ok(Value::Map(ret))
    }

    /// `find_file`, logging a refusal (once) when nothing was found.
    fn find_logged(&mut self, id: &str, path: &Value, saltenv: &Value) -> Result<Found, FsError> {
        let mut refused = None;
        let fnd = self.find(path, saltenv, &mut refused)?;
        if !fnd.found {
            self.log_refusal(id, path, &brine_py::to_str(saltenv), refused);
        }
        Ok(fnd)
    }

    fn log_refusal(&self, id: &str, path: &Value, saltenv: &str, refused: Refusal) {
        if let Some(why) = refused {
            // Escaped: the path is the minion's text, kept to one log line.
            warn!(
                "fileserver: refused salt://{} (saltenv {saltenv:?}) asked by minion {id}: {why}",
                brine_py::to_str(path).escape_debug()
            );
        }
    }

    /// `Fileserver.find_file` + `roots.find_file`.
    fn find(&mut self, path: &Value, saltenv: &Value, refused: &mut Refusal) -> Result<Found, FsError> {
        let mut path = to_unicode(path)?;
        let mut saltenv = to_unicode(saltenv)?;
        let mut kwargs: Vec<(String, String)> = Vec::new();
        if is_escaped(&path) {
            path = unescape(&path);
        } else if path.contains('?') {
            let mut parts = path.split('?');
            let head = parts.next().unwrap_or("").to_string();
            for comp in parts.next().unwrap_or("").split('&') {
                if let Some((k, v)) = comp.split_once('=') {
                    kwargs.retain(|(key, _)| key != k);
                    kwargs.push((k.to_string(), v.to_string()));
                }
            }
            path = head;
        }
        if isabs(&path) || path.contains("../") {
            *refused = Some("absolute path or '../' in the path".into());
            return Ok(Found::default());
        }
        if let Some((_, e)) = kwargs.iter().find(|(k, _)| k == "saltenv") {
            saltenv = e.clone();
        }
        if !self.roots_enabled {
            return Ok(Found::default());
        }
        let index = kwargs.iter().find(|(k, _)| k == "index").map(|(_, v)| v.clone());
        Ok(self.roots_find(&path, &saltenv, index.as_deref(), refused))
    }

    /// `roots.find_file`.
    fn roots_find(&mut self, path: &str, saltenv: &str, index: Option<&str>, refused: &mut Refusal) -> Found {
        let path = normpath(path);
        if isabs(&path) {
            return Found::default();
        }
        let Some((roots, template)) = self.env_roots(saltenv, refused) else {
            return Found::default();
        };
        let found = |full: String| -> Found {
            let stat = std::fs::metadata(&full).ok().map(|m| stat_list(&m));
            Found {
                path: full,
                rel: path.clone(),
                stat,
                found: true,
            }
        };
        let inside = |root: &str, full: &str, refused: &mut Refusal| -> bool {
            let ok = clean_path(&self.cwd, root, full, !self.follow);
            if !ok {
                let how = if self.follow { "is" } else { "leads" };
                *refused = Some(format!("{full} {how} outside the root {root}"));
            }
            ok
        };
        if let Some(index) = index {
            // `root = file_roots[saltenv][int(index)]` (negative indexes
            // count from the end; `__env__` is not substituted here).
            let Some(i) = brine_py::int_str(index) else {
                return Found::default();
            };
            let n = roots.len() as i128;
            let i = if i < 0 { i + n } else { i };
            let Some(root) = usize::try_from(i).ok().and_then(|i| roots.get(i)) else {
                return Found::default();
            };
            let full = join(root, &path);
            // Salt does not check the root here; Brine does.
            if inside(root, &full, refused) && isfile(&full) && !self.ignore.matches(&full) {
                return found(full);
            }
            return Found::default();
        }
        for root in &roots {
            let root = if template {
                root.replace("__env__", saltenv)
            } else {
                root.clone()
            };
            let full = join(&root, &path);
            if !inside(&root, &full, refused) {
                continue;
            }
            if isfile(&full) && !self.ignore.matches(&full) {
                return found(full);
            }
        }
        Found::default()
    }

    /// The roots of `saltenv`, and whether they are `__env__` templates.
    fn env_roots(&self, saltenv: &str, refused: &mut Refusal) -> Option<(Vec<String>, bool)> {
        if let Some((_, roots)) = self.file_roots.iter().find(|(e, _)| e == saltenv) {
            return Some((roots.clone(), false));
        }
        let (_, roots) = self.file_roots.iter().find(|(e, _)| e == "__env__")?;
        if saltenv.is_empty() || saltenv == "." || saltenv == ".." || saltenv.contains(['/', '\0']) {
            *refused = Some(format!("saltenv {saltenv:?} cannot name an __env__ root"));
            return None;
        }
        Some((roots.clone(), true))
    }

    /// The lists of `saltenv` (`None` if it is not served).
    fn lists_of(&mut self, id: &str, saltenv: &str) -> Option<std::rc::Rc<Lists>> {
        let mut refused = None;
        let Some((roots, template)) = self.env_roots(saltenv, &mut refused) else {
            if let Some(why) = refused {
                warn!("fileserver: refused a file list for minion {id}: {why}");
            }
            return None;
        };
        let roots: Vec<String> = if template {
            roots.iter().map(|r| r.replace("__env__", saltenv)).collect()
        } else {
            roots
        };
        let o = WalkOpts {
            follow: self.follow,
            ignore_symlinks: self.ignore_symlinks,
            ignore: &self.ignore,
        };
        Some(self.lists.get(saltenv, &roots, &o))
    }

    /// `Fileserver.backends(back)` includes `roots`.
    fn roots_selected(&self, back: Option<&Value>) -> bool {
        let back = match back {
            Some(b) if truthy(b) => b,
            _ => return self.roots_enabled,
        };
        let items: Vec<Option<String>> = match back {
            Value::Array(a) => a.iter().map(|x| x.as_str().map(String::from)).collect(),
            other => brine_py::to_str(other)
                .split(',')
                .map(|s| Some(s.to_string()))
                .collect(),
        };
        let subtract_only = items.iter().all(|i| i.as_deref().is_some_and(|s| s.starts_with('-')));
        if subtract_only {
            // Salt also removes them from its own options for good (a bug
            // a minion could trigger); Brine does not.
            self.roots_enabled && !items.iter().any(|i| i.as_deref() == Some("-roots"))
        } else {
            self.roots_enabled && items.iter().any(|i| i.as_deref() == Some("roots"))
        }
    }
}

/// `load.get("prefix", "").strip("/")`.
fn prefix(load: &Value) -> Result<String, FsError> {
    match load.get("prefix") {
        None => Ok(String::new()),
        Some(Value::Str(s)) => Ok(s.trim_matches('/').to_string()),
        Some(other) => Err(FsError::Attribute(format!(
            "'{}' object has no attribute 'strip'",
            brine_py::type_name(other)
        ))),
    }
}

/// `salt.utils.stringutils.to_unicode`.
fn to_unicode(v: &Value) -> Result<String, FsError> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        Value::Bytes(b) => {
            String::from_utf8(b.clone()).map_err(|e| FsError::Value(format!("'utf-8' codec can't decode bytes: {e}")))
        }
        other => Err(FsError::Type(format!(
            "expected str, bytes, or bytearray not <class '{}'>",
            brine_py::type_name(other)
        ))),
    }
}

fn hash_kind_ok(name: &str) -> Result<&'static str, FsError> {
    match roots::hash_kind(name) {
        HashKind::Digest(d) => Ok(d),
        HashKind::Shake => Err(FsError::Type(
            "hexdigest() missing required argument 'length' (pos 1)".into(),
        )),
        HashKind::Unknown => Err(FsError::Value(format!("Invalid hash type: {name}"))),
    }
}

fn stat_list(m: &std::fs::Metadata) -> Vec<i64> {
    use std::os::unix::fs::MetadataExt;
    vec![
        i64::from(m.mode()),
        m.ino() as i64,
        m.dev() as i64,
        m.nlink() as i64,
        i64::from(m.uid()),
        i64::from(m.gid()),
        m.size() as i64,
        m.atime(),
        m.mtime(),
        m.ctime(),
    ]
}

/// `salt.utils.gzip_util.compress(data, level)`: one gzip member framed as
/// Python's `GzipFile` writes it (no name, the current time, XFL by level,
/// OS 255).
pub fn gzip_compress(data: &[u8], level: &Value) -> Result<Vec<u8>, FsError> {
    let level = match level {
        Value::Bool(b) => i64::from(*b),
        Value::Int(i) => *i,
        Value::UInt(_) => return Err(FsError::Value("Bad compression level".into())),
        other => {
            return Err(FsError::Type(format!(
                "'{}' object cannot be interpreted as an integer",
                brine_py::type_name(other)
            )))
        }
    };
    let zlevel = match level {
        -1 => 6,
        0..=9 => level as u32,
        _ => return Err(FsError::Value("Bad compression level".into())),
    };
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    let mut out = vec![0x1f, 0x8b, 8, 0];
    out.extend_from_slice(&mtime.to_le_bytes());
    out.extend_from_slice(&[xfl, 255]);
    let mut enc = flate2::write::DeflateEncoder::new(out, flate2::Compression::new(zlevel));
    enc.write_all(data)?;
    let mut out = enc.finish()?;
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(out)
}
