//! `PythonLoader-0..N-1`: the pool of Python workers that run Salt's own
//! loader for the modules Brine does not have natively (brine-loader).
//!
//! The ProcessManager decides at start whether the pool runs (a module
//! the configuration names needs it, or `python_loader: always`), finds a
//! Python that imports Salt, and binds the pool's socket
//! (`sock_dir/python_loader.ipc`, mode 0600) before the first fork. Each
//! worker is a child of the ProcessManager like the other roles: forked,
//! then executing Python with the worker's code, supervised and respawned
//! as they are. Every worker accepts on the one socket, so whichever is
//! idle takes the next request.
//!
//! Without Python Salt the master starts as without the pool, and logs
//! once which configured modules are unavailable.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::rc::Rc;

use brine_config::MasterConfig;
use brine_loader::python::Python;
use brine_proc::supervisor::{ChildContext, ChildSpec};
use log::{error, info, warn};

/// What the pool's workers (and the Python engines) are started with,
/// made before the first fork.
pub struct Pool {
    pub python: Python,
    /// The pool's socket; `None` when only engines need Python.
    listener: Option<Rc<OwnedFd>>,
    workers: usize,
    /// The engines (`engines:` but `reactor`), each a process of its own.
    engines: Vec<(String, serde_json::Value)>,
}

/// Whether the pool runs, and with what; `None` (logged) when it does not.
pub fn prepare(cfg: &MasterConfig) -> Option<Pool> {
    let plan = brine_loader::resolve::plan_with(
        &cfg.raw,
        &brine_pillar::ext_pillar_is_native,
        brine_pillar::python_needs(&cfg.raw),
    );
    if !plan.pool && plan.engines.is_empty() {
        if !plan.modules.is_empty() {
            warn!(
                "python_loader is off: these configured modules are unavailable: {}",
                plan.modules.join(", ")
            );
        }
        return None;
    }
    let python = match brine_loader::python::find(cfg) {
        Ok(p) => p,
        Err(why) => {
            error!(
                "Salt's Python modules are unavailable ({why}): {}",
                if plan.modules.is_empty() {
                    "python_loader is set to always".to_string()
                } else {
                    format!("these configured modules do nothing: {}", plan.modules.join(", "))
                }
            );
            return None;
        }
    };
    // Runner jobs and the Reactor start Python runners themselves, with
    // the Python found here (set before the first fork, single-threaded).
    std::env::set_var(brine_loader::worker::PYTHON_ENV, &python.executable);
    let engines = plan.engines.clone();
    if !plan.pool {
        info!(
            "Python loader: engines {} with Salt {} ({})",
            engine_names(&engines),
            python.salt_version,
            python.executable.display()
        );
        return Some(Pool {
            python,
            listener: None,
            workers: 0,
            engines,
        });
    }
    let path = brine_loader::socket_path(cfg);
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            error!(
                "cannot bind the Python loader socket {}: {e}; Salt's Python modules are unavailable",
                path.display()
            );
            return None;
        }
    };
    if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        warn!("cannot make {} private: {e}", path.display());
    }
    // The MWorkers compile pillars off their request loop, and their
    // renderers call the pool (set before the first fork).
    std::env::set_var(brine_loader::POOL_ENV, &path);
    let workers = brine_loader::workers(cfg);
    info!(
        "Python loader: {workers} workers with Salt {} ({}) for {}",
        python.salt_version,
        python.executable.display(),
        if plan.modules.is_empty() {
            "python_loader: always".to_string()
        } else {
            plan.modules.join(", ")
        }
    );
    Some(Pool {
        python,
        listener: Some(Rc::new(OwnedFd::from(listener))),
        workers,
        engines,
    })
}

fn engine_names(engines: &[(String, serde_json::Value)]) -> String {
    engines.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
}

/// The pool's workers and the engines, as children of the
/// ProcessManager.
pub fn specs(cfg: &Rc<MasterConfig>, pool: &Pool) -> Vec<ChildSpec> {
    let mut specs = workers(cfg, pool);
    specs.extend(
        pool.engines
            .iter()
            .map(|(name, opts)| engine(cfg, &pool.python, name, opts)),
    );
    specs
}

/// An engine (Salt's `Engine` process): Python running the engine's
/// `start(**opts)` from Salt's engines loader; it retitles itself as Salt
/// titles it (`Engine(salt.loaded.ext.engines.<name>)`), and is respawned
/// when `start` returns or raises, as Salt's ProcessManager restarts it.
fn engine(cfg: &Rc<MasterConfig>, python: &Python, name: &str, opts: &serde_json::Value) -> ChildSpec {
    let (cfg, python) = (cfg.clone(), python.clone());
    let spec = serde_json::json!({"name": name, "opts": opts}).to_string();
    ChildSpec::new(format!("Engine({name})"), move |ctx: &ChildContext| {
        brine_log::set_process_name(&ctx.name);
        let base = brine_proc::title::original_command_line();
        let err = brine_loader::worker::exec_engine(
            &brine_loader::worker::WorkerExec {
                python: &python.executable,
                conf_file: &cfg.conf_file,
                title: &ctx.name,
                title_base: &base,
                listen_fd: -1,
                status_fd: ctx.status_fd(),
                log_fd: brine_log::forward_fd(),
            },
            &spec,
        );
        error!("{}: cannot execute {}: {err}", ctx.name, python.executable.display());
        1
    })
}

fn workers(cfg: &Rc<MasterConfig>, pool: &Pool) -> Vec<ChildSpec> {
    let Some(listener) = &pool.listener else {
        return Vec::new();
    };
    (0..pool.workers)
        .map(|i| {
            let (cfg, listener, python) = (cfg.clone(), listener.clone(), pool.python.clone());
            ChildSpec::new(
                format!("{}{i}", brine_loader::WORKER_PREFIX),
                move |ctx: &ChildContext| {
                    brine_log::set_process_name(&ctx.name);
                    let base = brine_proc::title::original_command_line();
                    let err = brine_loader::worker::exec(&brine_loader::worker::WorkerExec {
                        python: &python.executable,
                        conf_file: &cfg.conf_file,
                        title: &ctx.name,
                        title_base: &base,
                        listen_fd: listener.as_raw_fd(),
                        status_fd: ctx.status_fd(),
                        log_fd: brine_log::forward_fd(),
                    });
                    error!("{}: cannot execute {}: {err}", ctx.name, python.executable.display());
                    1
                },
            )
        })
        .collect()
}
