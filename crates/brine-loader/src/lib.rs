//! Salt's Python extension modules on the master, without Python on the
//! hot path.
//!
//! Estates carry master-side Python: custom modules in
//! `extension_modules` (`pillar/`, `tops/`, `runners/`, …) and Salt's own
//! built-in modules that Brine does not rewrite (`git_pillar`, `vault`,
//! `reclass`, …). Brine runs them in a pool of long-lived Python worker
//! processes, `PythonLoader-0..N-1` under the ProcessManager, each running
//! Salt's own loader (`salt.loader.pillars`, `tops`, …) with the master's
//! options, so `__opts__`, `__salt__`, `__grains__` and `__context__`
//! behave as in Salt's master.
//!
//! * [`resolve`]: which modules go to Python. A native implementation
//!   where Brine has one, else the Python module; a custom module of the
//!   same name in `extension_modules` (or `<type>_dirs`) overrides a
//!   native one, as it overrides Salt's built-in one; `loader_source`
//!   forces either per module type. The pool is started only when the
//!   configuration names a module Brine lacks (or `python_loader: always`).
//! * [`python`]: which Python: `python_loader_executable`, else Salt's
//!   onedir package, else the interpreter of an installed Salt CLI, else
//!   `python3`; checked to import Salt before the pool starts. Without
//!   Python Salt the master starts as before and logs once which
//!   configured modules are unavailable.
//! * [`worker`]: executing a worker (the code in
//!   `python/brine_loader_worker.py`, passed on the command line) in a
//!   process the ProcessManager forked.
//! * [`client`]: one request to the pool over its unix socket, msgpack
//!   frames, with a timeout; a worker that holds a request past it is
//!   killed (the ProcessManager respawns it) and the request fails with a
//!   clear error.

pub mod client;
pub mod datacache;
pub mod oneshot;
pub mod python;
pub mod resolve;
pub mod returners;
pub mod worker;

pub use client::{Client, LoaderError};
pub use resolve::{ModuleType, Plan};

/// Set (to the pool's socket) in the master's processes when the pool
/// runs: then pillars are compiled off the MWorkers' request loop, and
/// their renderers may call it.
pub const POOL_ENV: &str = "BRINE_PYTHON_POOL";

/// The pool, when this master runs one.
pub fn pool(cfg: &brine_config::MasterConfig) -> Option<Client> {
    std::env::var_os(POOL_ENV)
        .filter(|p| !p.is_empty())
        .map(|_| Client::of(cfg))
}

/// Whether Salt's Python can be asked here: the pool runs, or a Python
/// with Salt was found for processes of their own.
pub fn available(cfg: &brine_config::MasterConfig) -> bool {
    pool(cfg).is_some() || oneshot::python().is_some()
}

/// One request to the pool when it runs, else to a Python process of its
/// own titled `title` (bounded by `python_loader_timeout` either way).
pub fn call(
    cfg: &brine_config::MasterConfig,
    req: &brine_proto::Value,
    title: &str,
) -> Result<brine_proto::Value, LoaderError> {
    match pool(cfg) {
        Some(client) => client.call(req),
        None => oneshot::call(cfg, req, timeout(cfg), title),
    }
}

/// The pool's socket, in `sock_dir`.
pub const SOCKET_NAME: &str = "python_loader.ipc";

/// The workers' titles: `PythonLoader-0`, `PythonLoader-1`, …
pub const WORKER_PREFIX: &str = "PythonLoader-";

/// `python_loader_workers` when not set.
pub const DEFAULT_WORKERS: usize = 2;

/// `python_loader_timeout` when not set, in seconds: how long a request
/// may take (and how long it may wait for an idle worker).
pub const DEFAULT_TIMEOUT_SECS: f64 = 60.0;

/// The pool's socket for a master configuration.
pub fn socket_path(cfg: &brine_config::MasterConfig) -> std::path::PathBuf {
    cfg.sock_dir.join(SOCKET_NAME)
}

/// How many workers the pool has (`python_loader_workers`, at least 1).
pub fn workers(cfg: &brine_config::MasterConfig) -> usize {
    cfg.get_u64("python_loader_workers")
        .map_or(DEFAULT_WORKERS, |n| n as usize)
        .clamp(1, 64)
}

/// The request timeout (`python_loader_timeout`).
pub fn timeout(cfg: &brine_config::MasterConfig) -> std::time::Duration {
    let secs = cfg
        .get("python_loader_timeout")
        .and_then(|v| v.as_f64())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    std::time::Duration::from_secs_f64(secs.min(86_400.0))
}
