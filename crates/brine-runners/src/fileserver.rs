//! `fileserver.*`: Salt's `fileserver` runner over the master's `roots`
//! backend (`file_roots`), the one Brine serves.

use brine_client::low::CallArgs;
use brine_config::MasterConfig;
use brine_fileserver::{Fileserver, Form};
use brine_proto::Value;
use brine_py::text;

pub(crate) fn call(cfg: &MasterConfig, name: &str, args: &CallArgs) -> Result<Value, String> {
    let mut fs = Fileserver::new(cfg);
    // `backend` names the backends to ask: Brine has `roots` only, so a
    // list without it has nothing to answer.
    let backend_arg = |i: usize| args.get(i, "backend").and_then(text);
    let roots_wanted = |b: Option<String>| {
        b.is_none_or(|b| {
            b.split(',')
                .map(str::trim)
                .any(|x| x == "roots" || x == "+roots" || (x.starts_with('-') && x != "-roots"))
        })
    };
    let saltenv = || args.get(0, "saltenv").and_then(text).unwrap_or_else(|| "base".into());
    let load = |env: String| Value::map([("saltenv", Value::from(env))]);
    let runner = "salt-run";
    match name {
        "envs" => {
            if !roots_wanted(backend_arg(0)) {
                return Ok(Value::Array(Vec::new()));
            }
            let mut envs = fs.envs();
            envs.sort();
            Ok(Value::Array(envs.into_iter().map(Value::from).collect()))
        }
        "file_list" | "dir_list" | "empty_dir_list" | "symlink_list" => {
            if !roots_wanted(backend_arg(1)) {
                return Ok(if name == "symlink_list" {
                    Value::Map(Vec::new())
                } else {
                    Value::Array(Vec::new())
                });
            }
            let l = load(saltenv());
            let got = match name {
                "file_list" => fs.file_list(runner, &l, Form::Files),
                "dir_list" => fs.file_list(runner, &l, Form::Dirs),
                "empty_dir_list" => fs.file_list(runner, &l, Form::EmptyDirs),
                _ => fs.symlink_list(runner, &l),
            };
            got.map_err(|e| e.to_string())
        }
        // The roots backend reads file_roots as they are on every request:
        // there is nothing to fetch.
        "update" => Ok(Value::Bool(true)),
        // Brine keeps the file lists in each MWorker's memory, refreshed
        // as file_roots change (fileserver_list_cache_time), never on
        // disk: no cache file to clear.
        "clear_file_list_cache" => Ok(Value::Map(Vec::new())),
        other => Err(crate::not_available(&format!("fileserver.{other}"))),
    }
}
