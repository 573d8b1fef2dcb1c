//! Salt's `wheel.config`: `values` (the master's configuration as read
//! from its files now) and `update_config(file_name, yaml_contents)`
//! (`<config dir>/<dirname of default_include>/<file_name>.conf`, by
//! default `master.d/<file_name>.conf`).
//!
//! `update_config` answers as Salt's: `Wrote <file_name>.conf`, `Invalid
//! path` when the file would not sit directly in that directory (`../x`,
//! `a/b`, a symlink leading elsewhere), or the text of the `OSError`
//! (`[Errno 13] Permission denied: '…'`) or YAML error. It writes the
//! path it checked, symlinks resolved, without following a symlink put
//! there since. `config.apply` (which rewrites the whole master file) is
//! not served.

use brine_config::MasterConfig;
use brine_fileserver::py::clean_real;
use brine_proto::Value;
use brine_py::{dirname, join, os_error};
use log::{debug, info, warn};

use super::super::Ctx;
use super::{cwd, write_checked};
use brine_client::low::CallArgs;

pub(super) fn call(ctx: &Ctx, fun: &str, args: &CallArgs) -> Result<Value, String> {
    match fun {
        "values" => values(&ctx.cfg),
        "update_config" => {
            let file_name = args.get(0, "file_name").ok_or("missing argument: file_name")?;
            let contents = args.get(1, "yaml_contents").ok_or("missing argument: yaml_contents")?;
            Ok(Value::from(update_config(&ctx.cfg, file_name, contents)?))
        }
        other => Err(format!("config.{other} is not implemented")),
    }
}

/// `salt.config.master_config(conf_file)`: the files read again, Salt's
/// defaults applied.
fn values(cfg: &MasterConfig) -> Result<Value, String> {
    let mut now = MasterConfig::load(&cfg.conf_dir).map_err(|e| e.to_string())?;
    // `__cli` is the program's name, which the loader takes from argv:
    // the MWorker's argv area now holds its process title, so keep the
    // name read at start.
    if let Some(cli) = cfg.get("__cli") {
        now.raw.insert("__cli".into(), cli.clone());
    }
    Ok(brine_proto::json::from_json(&brine_config::Value::Object(now.raw)))
}

/// The answer of Salt's `update_config`; `Err` where it raises.
fn update_config(cfg: &MasterConfig, file_name: &Value, contents: &Value) -> Result<String, String> {
    let file_name = format!("{}.conf", brine_py::to_str(file_name));
    let include = match cfg.get("default_include") {
        Some(brine_config::Value::String(s)) => s.clone(),
        other => {
            return Err(format!(
                "TypeError: default_include is {}, not a path",
                other.map_or("missing".into(), brine_py::repr)
            ))
        }
    };
    let config_dir = brine_py::abspath(&cfg.conf_dir.to_string_lossy());
    let dir_path = join(&config_dir, &dirname(&include));
    let yaml = match brine_py::yaml_safe_dump(contents) {
        Ok(y) => y,
        Err(e) => return Ok(e.to_string()),
    };
    if !std::path::Path::new(&dir_path).exists() {
        debug!("Creating directory {dir_path}");
        use std::os::unix::fs::DirBuilderExt;
        if let Err(e) = std::fs::DirBuilder::new().recursive(true).mode(0o755).create(&dir_path) {
            return Ok(os_error(&e, &dir_path));
        }
    }
    let file_path = join(&dir_path, &file_name);
    let Some(target) = clean_real(&cwd(), &dir_path, &file_path, false) else {
        warn!(
            "wheel config.update_config: {:?} is not a file directly in {dir_path}: refused (Invalid path)",
            file_name
        );
        return Ok("Invalid path".into());
    };
    if let Err(e) = write_checked(&target, yaml.as_bytes()) {
        return Ok(os_error(&e, &file_path));
    }
    info!("wheel config.update_config: wrote {target:?}");
    Ok(format!("Wrote {file_name}"))
}
