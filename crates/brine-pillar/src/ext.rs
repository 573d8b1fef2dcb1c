//! `ext_pillar`: Salt's `Pillar.ext_pillar` and the external pillar
//! modules Brine runs itself, those that need no Python:
//!
//! * `cmd_yaml` and `cmd_json`: a command run on the master, as the
//!   master's user, its output read as YAML or JSON. `cmd_yaml` runs it
//!   through the shell (`$SHELL`, else `/bin/sh`, as Salt's
//!   `cmd.run_stdout(python_shell=True)`), `cmd_json` splits it as
//!   `shlex.split` does and runs it without a shell, its standard error in
//!   its output (Salt's `cmd.run`). The output has its trailing whitespace
//!   removed; output that does not parse is logged and contributes nothing,
//!   as in Salt.
//! * `file_tree`: `root_dir`'s `hosts/<minion id>/` and `nodegroups/<group>/`
//!   (for the node groups whose compound target names the minion), every
//!   file a key holding its bytes, every directory a dict; `keep_newline`,
//!   `follow_dir_links`, `template` with `render_default`,
//!   `renderer_blacklist`, `renderer_whitelist`; a relative `root_dir`
//!   under the `pillarenv`'s `pillar_roots`.
//! * `extra_minion_data_in_pillar`: what the minion sent as
//!   `extra_minion_data` (its `pass_to_ext_pillars`), whole (`include: '*'`
//!   or `'<all>'`) or the listed keys (`key:subkey`).
//!
//! The configuration forms are Salt's: `{module: value}` entries whose
//! value is given as keyword arguments (a dict), positional arguments (a
//! list) or the one argument; a binding Python would refuse is Python's
//! `TypeError` in `_errors`. `exclude_ext_pillar`, `ext_pillar_first`, and
//! `pillar_source_merging_strategy` for each module's data apply as in
//! Salt. Every other module (and a custom module of the same name as a
//! native one, in `extension_modules/pillar`) runs through Salt's own
//! loader in the Python pool (brine-loader); without a pool it is logged
//! as unavailable, as Salt logs a missing module.
//!
//! Where Brine is stricter than Salt, for safety:
//! * A command runs for at most `ext_pillar_cmd_timeout` seconds (a Brine
//!   option, default 60) and may write at most 16 MiB; past either it is
//!   killed with everything it started, and the minion's pillar gets an
//!   `_errors` entry (Salt would wait without end).
//! * `%s` in a command stands for the minion id in Salt, pasted into the
//!   command line. Brine does so only for ids made of letters, digits and
//!   `.`, `_`, `-` (not starting with `.` or `-`), which no shell reads as
//!   anything but text; for any other id the command is not run (an
//!   `_errors` entry): a minion picks its own id.
//! * `file_tree` refuses an id that is `.`/`..` or holds `/` (its
//!   `hosts/<id>` would leave `hosts/`), and does not walk into a directory
//!   it is already inside (a symlink loop with `follow_dir_links`).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use brine_proc::command::{self, Limits, RunError};
use brine_proto::json::from_json;
use brine_proto::Value;
use brine_py::dict::{self, Pairs};
use log::{debug, error};
use serde_json::{Map, Value as Json};

use super::{py_text, Pillar};
use crate::jinja::JinjaShared;
use crate::merge::{self, Strategy};
use crate::render::{self, Renderers};

/// The most a command may write to its output.
pub const MAX_OUTPUT: usize = 16 << 20;
/// `ext_pillar_cmd_timeout` when not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The external pillar modules Brine runs, by their Salt names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Module {
    CmdYaml,
    CmdJson,
    FileTree,
    ExtraMinionData,
}

impl Module {
    fn name(self) -> &'static str {
        match self {
            Module::CmdYaml => "cmd_yaml",
            Module::CmdJson => "cmd_json",
            Module::FileTree => "file_tree",
            Module::ExtraMinionData => "extra_minion_data_in_pillar",
        }
    }

    fn named(name: &str) -> Option<Module> {
        Some(match name {
            "cmd_yaml" => Module::CmdYaml,
            "cmd_json" => Module::CmdJson,
            "file_tree" => Module::FileTree,
            "extra_minion_data_in_pillar" => Module::ExtraMinionData,
            _ => return None,
        })
    }

    /// The parameters of its `ext_pillar(minion_id, pillar, …)` after the
    /// first two, and how many of them are required.
    fn params(self) -> (&'static [&'static str], usize) {
        match self {
            Module::CmdYaml | Module::CmdJson => (&["command"], 1),
            Module::FileTree => (
                &[
                    "root_dir",
                    "follow_dir_links",
                    "debug",
                    "keep_newline",
                    "render_default",
                    "renderer_blacklist",
                    "renderer_whitelist",
                    "template",
                ],
                0,
            ),
            Module::ExtraMinionData => (&["include", "extra_minion_data"], 1),
        }
    }
}

/// Whether Brine runs the `ext_pillar` module `name` itself.
pub fn is_native(name: &str) -> bool {
    Module::named(name).is_some()
}

/// Python's binding of `ext_pillar(minion_id, pillar, **val)` (a dict),
/// `(minion_id, pillar, *val)` (a list) or `(minion_id, pillar, val)`,
/// with `extra_minion_data=` added when the module takes it and there is
/// some. `Err` is the `TypeError`'s text.
fn bind(module: Module, val: &Value, extra: Option<&Value>) -> Result<Vec<Option<Value>>, String> {
    let (params, required) = module.params();
    let mut out: Vec<Option<Value>> = vec![None; params.len()];
    let slot = |name: &str| params.iter().position(|p| *p == name);
    let mut given = 2;
    match val {
        Value::Map(pairs) => {
            if extra.is_some() && pairs.iter().any(|(k, _)| k.as_str() == Some("extra_minion_data")) {
                // A call-site error: Python names the function in full.
                return Err(format!(
                    "salt.loaded.int.pillar.{}.ext_pillar() got multiple values for keyword argument 'extra_minion_data'",
                    module.name()
                ));
            }
            for (k, v) in pairs {
                let Some(k) = k.as_str() else {
                    return Err("keywords must be strings".into());
                };
                if k == "minion_id" || k == "pillar" {
                    return Err(format!("ext_pillar() got multiple values for argument '{k}'"));
                }
                let i = slot(k).ok_or_else(|| format!("ext_pillar() got an unexpected keyword argument '{k}'"))?;
                out[i] = Some(v.clone());
            }
        }
        Value::Array(items) => {
            given += items.len();
            for (i, v) in items.iter().enumerate().take(params.len()) {
                out[i] = Some(v.clone());
            }
        }
        other => {
            given += 1;
            if let Some(first) = out.first_mut() {
                *first = Some(other.clone());
            }
        }
    }
    if let Some(extra) = extra {
        let i = slot("extra_minion_data").expect("a module taking extra_minion_data");
        if out[i].is_some() && given > 2 + i {
            return Err("ext_pillar() got multiple values for argument 'extra_minion_data'".into());
        }
        out[i] = Some(extra.clone());
    }
    let max = 2 + params.len();
    if given > max {
        let min = 2 + required;
        return Err(if min == max {
            format!("ext_pillar() takes {max} positional arguments but {given} were given")
        } else {
            format!("ext_pillar() takes from {min} to {max} positional arguments but {given} were given")
        });
    }
    if let Some(missing) = params[..required].iter().zip(&out).find(|(_, v)| v.is_none()) {
        return Err(format!(
            "ext_pillar() missing 1 required positional argument: '{}'",
            missing.0
        ));
    }
    Ok(out)
}

/// An id that `%s` may put into a command line: text no shell expands.
fn shell_safe_id(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Pillar<'_> {
    /// `ext_pillar(pillar, errors)`: each configured module's data merged
    /// over `pillar` (after `pillar_override`), in order.
    pub(crate) fn ext_pillar(&self, mut pillar: Pairs, errors: &mut Vec<String>) -> Pairs {
        let Some(ext) = self.opts.get("ext_pillar") else {
            return pillar;
        };
        let Json::Array(runs) = ext else {
            let msg = "The \"ext_pillar\" option is malformed".to_string();
            error!(critical = true; "{msg}");
            errors.push(msg);
            return pillar;
        };
        if !self.pillar_override.is_empty() {
            pillar = self.merge(pillar, self.pillar_override.clone());
        }
        let exclude: Vec<String> = match self.opts.get("exclude_ext_pillar") {
            Some(Json::Array(a)) => a.iter().map(py_text).collect(),
            _ => Vec::new(),
        };
        // Salt's `ext` outlives a failed module: what the last one that
        // answered gave is merged once per entry.
        let mut ext: Option<Value> = None;
        for run in runs {
            let Json::Object(run) = run else {
                let msg = "The \"ext_pillar\" option is malformed".to_string();
                error!(critical = true; "{msg}");
                errors.push(msg);
                return Vec::new();
            };
            if run.keys().next().is_some_and(|k| exclude.contains(k)) {
                continue;
            }
            for (key, val) in run {
                let native = Module::named(key);
                // The Python traceback of a module that raised, for the
                // one line that reports it (as Salt's).
                let mut traceback = None;
                let result = if brine_loader::resolve::use_python(
                    &self.opts,
                    brine_loader::ModuleType::Pillar,
                    key,
                    native.is_some(),
                ) {
                    match self.run_python(key, &from_json(val), &pillar) {
                        Some(Ok(v)) => Ok(v),
                        Some(Err(e)) => {
                            traceback = e.traceback().map(String::from);
                            Err(e.to_string())
                        }
                        None => continue,
                    }
                } else if let Some(module) = native {
                    self.run_ext(module, key, &from_json(val), &pillar)
                } else {
                    error!(critical = true; "Specified ext_pillar interface {key} is unavailable");
                    continue;
                };
                match result {
                    Ok(v) => ext = Some(v),
                    Err(e) => {
                        error!(
                            "Exception caught loading ext_pillar '{key}' for minion {:?}: {e}{}",
                            self.req.id,
                            traceback.map(|t| format!("\n{}", t.trim_end())).unwrap_or_default()
                        );
                        errors.push(format!("Failed to load ext_pillar {key}: {e}"));
                    }
                }
            }
            match ext.take().filter(brine_py::truthy) {
                Some(Value::Map(data)) => pillar = self.merge(pillar, data),
                // Salt's merge raises on anything but a dict (and the whole
                // compilation fails).
                Some(other) => {
                    let msg = format!(
                        "ext_pillar data is a {}, not a dictionary: not merged",
                        brine_py::type_name(&other)
                    );
                    error!("{msg} (minion {:?})", self.req.id);
                    errors.push(msg);
                }
                None => {}
            }
        }
        pillar
    }

    /// One module through Salt's own loader in the Python pool: its
    /// answer, `Err` with the exception's text as Salt reports it, or
    /// `None` when the module is not there (logged as Salt logs a
    /// missing module; without a pool, also why).
    fn run_python(&self, key: &str, val: &Value, pillar: &Pairs) -> Option<Result<Value, brine_loader::LoaderError>> {
        use brine_loader::LoaderError;
        let Some(loader) = self.req.loader else {
            error!(critical = true; "Specified ext_pillar interface {key} is unavailable");
            return None;
        };
        let req = Value::map([
            ("kind", Value::from("ext_pillar")),
            ("module", Value::from(key)),
            ("minion_id", Value::from(self.req.id)),
            ("grains", self.req.grains.clone()),
            ("pillar", Value::Map(pillar.clone())),
            ("val", val.clone()),
            (
                "extra_minion_data",
                self.req.extra_minion_data.cloned().unwrap_or(Value::Nil),
            ),
            ("saltenv", self.req.saltenv.map_or(Value::Nil, Value::from)),
            ("pillarenv", self.req.pillarenv.map_or(Value::Nil, Value::from)),
        ]);
        debug!("ext_pillar {key} for minion {:?} through Python", self.req.id);
        match loader.call(&req) {
            Ok(v) => Some(Ok(v)),
            Err(LoaderError::Missing(_)) => {
                error!(critical = true; "Specified ext_pillar interface {key} is unavailable");
                None
            }
            Err(e @ LoaderError::Unavailable(_)) => {
                error!(critical = true; "Specified ext_pillar interface {key} is unavailable ({e})");
                None
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// `_external_pillar_data`: one module's answer; `Err` is the
    /// exception Salt's call would raise.
    fn run_ext(&self, module: Module, key: &str, val: &Value, _pillar: &Pairs) -> Result<Value, String> {
        let extra = self
            .req
            .extra_minion_data
            .filter(|e| module == Module::ExtraMinionData && brine_py::truthy(*e) && e.is_map());
        let args = bind(module, val, extra)?;
        debug!("ext_pillar {key} for minion {:?}", self.req.id);
        match module {
            Module::CmdYaml | Module::CmdJson => self.cmd(module, args[0].as_ref().expect("bound")),
            Module::FileTree => self.file_tree(&args),
            Module::ExtraMinionData => Ok(extra_minion_data(
                args[0].as_ref().expect("bound"),
                args[1].as_ref().unwrap_or(&Value::Nil),
            )),
        }
    }

    fn cmd_limits(&self) -> Limits {
        let timeout = match self.opts.get("ext_pillar_cmd_timeout").and_then(Json::as_f64) {
            Some(t) if t > 0.0 && t.is_finite() => Duration::from_secs_f64(t.min(86_400.0)),
            _ => DEFAULT_TIMEOUT,
        };
        Limits {
            timeout,
            max_stdout: MAX_OUTPUT,
            max_stderr: 64 * 1024,
        }
    }

    /// `cmd_yaml` / `cmd_json`.
    fn cmd(&self, module: Module, command: &Value) -> Result<Value, String> {
        let name = if module == Module::CmdYaml { "YAML" } else { "JSON" };
        let Some(command) = command.as_str() else {
            // `command.replace` fails inside Salt's try; cmd_yaml's handler
            // then trips over its unset `output`.
            if module == Module::CmdJson {
                error!(critical = true; "JSON data from {} failed to parse", brine_py::to_str(command));
                return Ok(Value::Map(Vec::new()));
            }
            return Err("cannot access local variable 'output' where it is not associated with a value".into());
        };
        let id = self.req.id;
        if command.contains("%s") && !shell_safe_id(id) {
            return Err(format!(
                "the command has %s, and the minion id {id:?} is not safe in a command line: not run"
            ));
        }
        let command = command.replace("%s", id);
        let mut cmd = match module {
            Module::CmdYaml => {
                let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into());
                let mut c = Command::new(shell);
                c.arg("-c").arg(&command);
                c
            }
            _ => {
                let argv = match brine_py::shlex_split(&command) {
                    Ok(a) if !a.is_empty() => a,
                    _ => {
                        error!(critical = true; "JSON data from {command:?} failed to parse");
                        return Ok(Value::Map(Vec::new()));
                    }
                };
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        // Salt's cmd.run: the user's home as the working directory, and
        // the C locale unless the environment says otherwise.
        let home = std::env::var("HOME").ok().filter(|h| Path::new(h).is_dir());
        cmd.current_dir(home.as_deref().unwrap_or("/"));
        for var in [
            "LC_CTYPE",
            "LC_NUMERIC",
            "LC_TIME",
            "LC_COLLATE",
            "LC_MONETARY",
            "LC_MESSAGES",
            "LC_PAPER",
            "LC_NAME",
            "LC_ADDRESS",
            "LC_TELEPHONE",
            "LC_MEASUREMENT",
            "LC_IDENTIFICATION",
            "LANGUAGE",
        ] {
            if std::env::var_os(var).is_none() {
                cmd.env(var, "C");
            }
        }
        let limits = self.cmd_limits();
        let run = if module == Module::CmdYaml {
            command::run(&mut cmd, &limits)
        } else {
            command::run_merged(&mut cmd, &limits)
        };
        let out = match run {
            Ok(out) => out,
            Err(RunError::Spawn(e)) if module == Module::CmdJson => {
                // Salt's cmd.run raises, inside cmd_json's try.
                error!(critical = true; "JSON data from {command:?} failed to parse ({e})");
                return Ok(Value::Map(Vec::new()));
            }
            // The `_errors` entry reaches the minion: the command line (it
            // may hold a secret) stays in the master's log.
            Err(e) => {
                error!("ext_pillar command {command:?} for minion {id:?}: {e}");
                return Err(e.to_string());
            }
        };
        if !out.stderr.is_empty() {
            debug!(
                "ext_pillar command {command:?} for minion {id:?} wrote to stderr: {:?}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let text = text.trim_end();
        let parsed = match module {
            Module::CmdYaml => brine_py::parse_yaml_value(text, Path::new("<cmd_yaml>")).map_err(|e| e.to_string()),
            _ => serde_json::from_str::<Json>(text)
                .map(|j| from_json(&j))
                .map_err(|e| e.to_string()),
        };
        match parsed {
            Ok(v) => Ok(v),
            Err(e) => {
                let shown: String = text.chars().take(4096).collect();
                error!(
                    critical = true;
                    "{name} data from {command:?} failed to parse for minion {id:?}: {e}. Command output:\n{shown:?}"
                );
                Ok(Value::Map(Vec::new()))
            }
        }
    }

    /// `file_tree.ext_pillar`.
    fn file_tree(&self, args: &[Option<Value>]) -> Result<Value, String> {
        let arg = |i: usize| args[i].clone().unwrap_or(Value::Nil);
        let root_dir = arg(0);
        if !brine_py::truthy(&root_dir) {
            error!("file_tree: no root_dir specified");
            return Ok(Value::Map(Vec::new()));
        }
        let Some(root_dir) = root_dir.as_str().map(String::from) else {
            return Err(format!(
                "expected str, bytes or os.PathLike object, not {}",
                brine_py::type_name(&root_dir)
            ));
        };
        let opts = FileTreeOpts {
            follow_dir_links: brine_py::truthy(&arg(1)),
            debug: arg(2) == Value::Bool(true),
            keep_newline: args[3].clone().unwrap_or(Value::Bool(false)),
            renderers: Renderers {
                default: arg(4).as_str().map(String::from),
                blacklist: text_list(&arg(5)),
                whitelist: text_list(&arg(6)),
            },
            template: arg(7) == Value::Bool(true),
        };
        let dirs: Vec<String> = if root_dir.starts_with('/') {
            vec![root_dir]
        } else {
            let Some(pillarenv) = super::opt_str(&self.opts, "pillarenv") else {
                error!("file_tree: root_dir is relative but pillarenv is not set");
                return Ok(Value::Map(Vec::new()));
            };
            debug!("file_tree: pillarenv = {pillarenv}");
            let Some((_, env_roots)) = self.roots.iter().find(|(e, _)| e == pillarenv) else {
                error!("file_tree: root_dir is relative but no pillar_roots are specified  for pillarenv {pillarenv}");
                return Ok(Value::Map(Vec::new()));
            };
            let mut env_dirs: Vec<String> = Vec::new();
            for env_root in env_roots {
                let d = brine_py::normpath(&brine_py::join(&env_root.to_string_lossy(), &root_dir));
                if !env_dirs.contains(&d) || env_dirs.last() != Some(&d) {
                    env_dirs.push(d);
                }
            }
            env_dirs
        };
        let mut result: Pairs = Vec::new();
        for root in dirs {
            let dir_pillar = self.file_tree_root(Path::new(&root), &opts)?;
            result = merge::merge(result, dir_pillar, Strategy::Recurse, false);
        }
        Ok(Value::Map(result))
    }

    /// `file_tree._ext_pillar` for one root directory.
    fn file_tree_root(&self, root: &Path, o: &FileTreeOpts) -> Result<Pairs, String> {
        debug!("file_tree: reading {}", root.display());
        if !root.is_dir() {
            error!(
                "file_tree: root_dir {} does not exist or is not a directory",
                root.display()
            );
            return Ok(Vec::new());
        }
        if !matches!(o.keep_newline, Value::Bool(_) | Value::Array(_)) {
            error!(
                "file_tree: keep_newline must be either True/False or a list of file globs. Skipping this ext_pillar for root_dir {}",
                root.display()
            );
            return Ok(Vec::new());
        }
        let mut ngroup_pillar: Pairs = Vec::new();
        let nodegroups_dir = root.join("nodegroups");
        let groups = match self.opts.get("nodegroups") {
            Some(Json::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        if nodegroups_dir.exists() && !groups.is_empty() {
            let entries = std::fs::read_dir(&nodegroups_dir)
                .map_err(|e| brine_py::os_error(&e, &nodegroups_dir.to_string_lossy()))?;
            let names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if names.is_empty() && o.debug {
                debug!("file_tree: no nodegroups found in file tree directory {names:?}, skipping...");
            }
            // The master's view of its minions, read once for all groups.
            let mut ck = None;
            for group in names {
                let Some(expr) = groups.get(&group) else { continue };
                let ck = ck.get_or_insert_with(|| self.ckminions());
                let named = ck
                    .check_minions(&from_json(expr), "compound", ":", true)
                    .minions
                    .iter()
                    .any(|m| m == self.req.id);
                if !named {
                    continue;
                }
                let tree = self.construct(&nodegroups_dir.join(&group), o)?;
                ngroup_pillar = merge::merge(ngroup_pillar, tree, Strategy::Recurse, false);
            }
        } else if o.debug {
            debug!("file_tree: no nodegroups found in master configuration");
        }
        let id = self.req.id;
        if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\0']) {
            error!("file_tree: minion id {id:?} cannot name a directory under hosts/: not read");
            return Ok(ngroup_pillar);
        }
        let host_dir = root.join("hosts").join(id);
        if !host_dir.exists() {
            if o.debug {
                debug!(
                    "file_tree: no pillar data for minion {id:?} found in file tree directory {}",
                    host_dir.display()
                );
            }
            return Ok(ngroup_pillar);
        }
        if !host_dir.is_dir() {
            error!("file_tree: {} exists, but is not a directory", host_dir.display());
            return Ok(ngroup_pillar);
        }
        let host_pillar = self.construct(&host_dir, o)?;
        Ok(merge::merge(ngroup_pillar, host_pillar, Strategy::Recurse, false))
    }

    /// Salt's `CkMinions(__opts__)`: the accepted keys and the minion data
    /// cache, for `check_minions(nodegroup, "compound")`.
    fn ckminions(&self) -> brine_targeting::CkMinions {
        let accepted = self.req.accepted.map(|f| f()).unwrap_or_default();
        brine_targeting::CkMinions::new(
            accepted,
            super::opt_str(&self.opts, "cachedir").unwrap_or("/var/cache/salt/master"),
            self.opts.get("minion_data_cache").is_none_or(brine_py::truthy),
            self.opts
                .get("nodegroups")
                .map(from_json)
                .unwrap_or(Value::Map(Vec::new())),
        )
    }

    /// `_construct_pillar`: the tree under `top` as dicts of file contents.
    fn construct(&self, top: &Path, o: &FileTreeOpts) -> Result<Pairs, String> {
        let shared = o.template.then(|| self.ext_jinja());
        let mut pillar: Pairs = Vec::new();
        let mut ancestors = HashSet::new();
        if let Ok(m) = std::fs::metadata(top) {
            ancestors.insert((m.dev(), m.ino()));
        }
        self.walk(top, ".", &mut pillar, o, shared.as_ref(), &mut ancestors)?;
        Ok(pillar)
    }

    /// One directory of `os.walk(top, followlinks=follow_dir_links)`:
    /// its subdirectories become empty dicts, its files their contents,
    /// then each subdirectory is walked (a symlinked one only when
    /// following links).
    fn walk(
        &self,
        dir: &Path,
        prefix: &str,
        node: &mut Pairs,
        o: &FileTreeOpts,
        shared: Option<&JinjaShared>,
        ancestors: &mut HashSet<(u64, u64)>,
    ) -> Result<(), String> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                error!("{}: {e}", dir.display());
                return Ok(());
            }
        };
        let (mut dirs, mut files) = (Vec::new(), Vec::new());
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            // `is_dir` follows a symlink, as os.walk's `entry.is_dir()`.
            if e.path().is_dir() {
                dirs.push(name);
            } else {
                files.push(name);
            }
        }
        for d in &dirs {
            dict::insert(node, Value::from(d.as_str()), Value::Map(Vec::new()));
        }
        for f in files {
            let path = dir.join(&f);
            if !path.is_file() {
                error!("file_tree: {}: not a regular file", path.display());
                continue;
            }
            let mut contents = match std::fs::read(&path) {
                Ok(c) => c,
                Err(e) => {
                    error!("file_tree: Error reading {}: {e}", path.display());
                    continue;
                }
            };
            if contents.ends_with(b"\n") && strip_newline(prefix, &f, &o.keep_newline) {
                contents.pop();
            }
            let data = match shared {
                Some(shared) => render::compile_bytes(shared, &contents, &path, "base", "", &Vec::new(), &o.renderers)?,
                None => Value::Bytes(contents),
            };
            dict::insert(node, Value::from(f.as_str()), data);
        }
        for d in dirs {
            let path = dir.join(&d);
            let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
            if is_link && !o.follow_dir_links {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let key = (meta.dev(), meta.ino());
            if !ancestors.insert(key) {
                error!("file_tree: {} leads back into itself: not walked again", path.display());
                continue;
            }
            let sub_prefix = if prefix == "." {
                d.clone()
            } else {
                format!("{prefix}/{d}")
            };
            let at = dict::position(node, &Value::from(d.as_str())).expect("inserted above");
            let mut sub = match std::mem::replace(&mut node[at].1, Value::Nil) {
                Value::Map(m) => m,
                _ => Vec::new(),
            };
            let walked = self.walk(&path, &sub_prefix, &mut sub, o, shared, ancestors);
            node[at].1 = Value::Map(sub);
            ancestors.remove(&key);
            walked?;
        }
        Ok(())
    }

    /// The renderers' view for `file_tree` templates: the options an
    /// ext_pillar module sees (the master's id as `id`).
    fn ext_jinja(&self) -> JinjaShared {
        let mut opts = self.opts.clone();
        if let Some(id) = &self.master_id {
            opts.insert("id".into(), Json::from(id.as_str()));
        }
        JinjaShared::new(
            Json::Object(opts),
            self.shared.grains.as_ref().clone(),
            self.shared.pillar.as_ref().clone(),
            self.shared.match_pillar().clone(),
            self.roots.clone(),
        )
    }
}

/// `file_tree`'s arguments after `root_dir`.
struct FileTreeOpts {
    follow_dir_links: bool,
    debug: bool,
    keep_newline: Value,
    renderers: Renderers,
    template: bool,
}

/// `_check_newline`: drop a file's final newline unless `keep_newline` is
/// true or one of its globs matches `prefix/name`.
fn strip_newline(prefix: &str, name: &str, keep_newline: &Value) -> bool {
    match keep_newline {
        Value::Bool(b) => !b,
        Value::Array(globs) => {
            let full = brine_py::join(prefix, name);
            !globs.iter().any(|g| brine_py::fnmatch(&full, &brine_py::to_str(g)))
        }
        _ => true,
    }
}

fn text_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(brine_py::to_str).collect(),
        _ => Vec::new(),
    }
}

/// `extra_minion_data_in_pillar.ext_pillar`.
fn extra_minion_data(include: &Value, extra: &Value) -> Value {
    if !brine_py::truthy(extra) {
        return Value::Map(Vec::new());
    }
    if matches!(include.as_str(), Some("*" | "<all>")) {
        return extra.clone();
    }
    let keys: Vec<String> = match include {
        Value::Array(a) => a.iter().map(brine_py::to_str).collect(),
        // A text is iterated by character, as Python does.
        Value::Str(s) => s.chars().map(String::from).collect(),
        _ => Vec::new(),
    };
    let mut data: Pairs = Vec::new();
    for key in keys {
        for (k, v) in subtree(&key, extra) {
            dict::insert(&mut data, k, v);
        }
    }
    Value::Map(data)
}

/// `get_subtree`: `{a: {b: value}}` for `a:b`, `{}` when a part is missing.
fn subtree(key: &str, source: &Value) -> Pairs {
    let parts: Vec<&str> = key.split(':').collect();
    let (last, path) = parts.split_last().expect("split gives one part");
    let mut node = source;
    for p in path {
        match node {
            Value::Map(m) => match dict::get_str(m, p) {
                Some(v) => node = v,
                None => return Vec::new(),
            },
            _ => return Vec::new(),
        }
    }
    let Value::Map(m) = node else { return Vec::new() };
    let Some(v) = dict::get_str(m, last) else {
        return Vec::new();
    };
    let mut out = Value::Map(vec![(Value::from(*last), v.clone())]);
    for p in path.iter().rev() {
        out = Value::Map(vec![(Value::from(*p), out)]);
    }
    match out {
        Value::Map(m) => m,
        _ => unreachable!("built as a map"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_as_python() {
        let cmd = |v: Value| bind(Module::CmdYaml, &v, None);
        assert_eq!(cmd(Value::from("cat x")).unwrap(), [Some(Value::from("cat x"))]);
        assert_eq!(
            cmd(Value::Array(vec![Value::from("a"), Value::from("b")])).unwrap_err(),
            "ext_pillar() takes 3 positional arguments but 4 were given"
        );
        assert_eq!(
            cmd(Value::map([("cmd", Value::from("x"))])).unwrap_err(),
            "ext_pillar() got an unexpected keyword argument 'cmd'"
        );
        assert_eq!(
            cmd(Value::Map(Vec::new())).unwrap_err(),
            "ext_pillar() missing 1 required positional argument: 'command'"
        );
        assert_eq!(
            cmd(Value::map([("pillar", Value::from("x"))])).unwrap_err(),
            "ext_pillar() got multiple values for argument 'pillar'"
        );
        let tree = bind(Module::FileTree, &Value::Array(vec![Value::Nil; 9]), None).unwrap_err();
        assert_eq!(
            tree,
            "ext_pillar() takes from 2 to 10 positional arguments but 11 were given"
        );
        let extra = Value::map([("hi", Value::from("there"))]);
        let b = bind(Module::ExtraMinionData, &Value::from("*"), Some(&extra)).unwrap();
        assert_eq!(b, [Some(Value::from("*")), Some(extra)]);
    }

    #[test]
    fn ids_safe_in_a_command_line() {
        for ok in ["web1", "web-1.example.com", "_x", "A_b-c.d"] {
            assert!(shell_safe_id(ok), "{ok}");
        }
        for bad in ["", "-n", ".hidden", "a b", "$(id)", "a;b", "a'b", "x*", "a\nb", "é"] {
            assert!(!shell_safe_id(bad), "{bad}");
        }
    }

    #[test]
    fn extra_minion_data_subtrees() {
        let extra = Value::map([
            ("hi", Value::from("there")),
            ("deep", Value::map([("a", Value::Int(1)), ("b", Value::Int(2))])),
        ]);
        assert_eq!(extra_minion_data(&Value::from("<all>"), &extra), extra);
        let got = extra_minion_data(
            &Value::Array(vec![Value::from("deep:b"), Value::from("nope"), Value::from("hi")]),
            &extra,
        );
        assert_eq!(
            got,
            Value::map([
                ("deep", Value::map([("b", Value::Int(2))])),
                ("hi", Value::from("there"))
            ])
        );
        assert_eq!(
            extra_minion_data(&Value::from("*"), &Value::Nil),
            Value::Map(Vec::new())
        );
    }
}
