//! The ProcessManager: the process that was started, once `main` has read
//! the configuration and prepared the environment. It forks the roles and
//! supervises them, telling systemd how it goes (`sd_notify`).

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use log::{error, info, warn};
use nix::sys::signal::{kill, Signal};

use brine_config::MasterConfig;
use brine_proc::notify::{self, Notifier};
use brine_proc::pidfile::Pidfile;
use brine_proc::supervisor::{Hooks, Supervisor};

use crate::names;
use crate::pki::MasterKeys;
use crate::roles;

/// Become the ProcessManager and run the tree until SIGTERM/SIGINT (Ok)
/// or a fatal error (Err). Every record logged from here on goes through
/// `log_rx` to the MultiprocessingLoggingQueue this forks first.
pub fn run(
    cfg: Rc<MasterConfig>,
    keys: MasterKeys,
    logging: roles::logging::Settings,
    log_rx: OwnedFd,
    pidfile: &Pidfile,
) -> Result<()> {
    brine_proc::title::set(names::PROCESS_MANAGER);
    let _ = brine_proc::title::set_comm("salt-master");
    brine_log::set_process_name(names::PROCESS_MANAGER);
    let log_rx = Rc::new(log_rx);

    let notifier = Notifier::from_env().context("NOTIFY_SOCKET")?;
    let watchdog = notify::watchdog_interval();

    // The master AES key: made fresh at every start, shared with every
    // process through memory mapped before the first fork.
    let aes = Rc::new(brine_proc::shm::SharedCell::new(256).context("cannot map shared memory")?);
    aes.store(brine_proto::crypto::Crypticle::generate_key_string().as_bytes(), 0)?;

    // Salt's Python modules: found and checked here, before the first
    // fork (it runs Python once, no thread).
    let pyloader = roles::pyloader::prepare(&cfg);
    brine_loader::returners::warn_unavailable(&cfg);
    let mut specs = vec![
        roles::logging::spec(logging, log_rx.clone()),
        roles::publisher::spec(cfg.clone(), aes.clone(), keys.clone()),
        roles::events::spec(cfg.clone()),
        roles::maintenance::spec(cfg.clone(), aes.clone()),
        roles::reactor::spec(cfg.clone()),
        roles::reqserver::spec(cfg.clone(), aes.clone(), keys),
    ];
    if let Some(pool) = &pyloader {
        specs.extend(roles::pyloader::specs(&cfg, pool));
    }
    if roles::eventreturn::wanted(&cfg) {
        specs.push(roles::eventreturn::spec(cfg.clone()));
    }
    // The status board, mapped before the first fork: every process
    // counts into it, `salt-master status` and the metrics endpoint read it.
    let board = crate::metrics::create(&cfg, &specs)
        .with_context(|| format!("cannot make {}", crate::metrics::board_path(&cfg).display()))?;
    let mut sup = Supervisor::new(names::PROCESS_MANAGER, specs)?;
    sup.close_in_child(pidfile.raw_fd());
    info!(
        "salt-master (Brine {}) starting: {} worker threads, publish port {}, ret port {}",
        env!("CARGO_PKG_VERSION"),
        cfg.worker_threads,
        cfg.publish_port,
        cfg.ret_port
    );
    let mut hooks = ManagerHooks {
        dump_path: cfg.cachedir.join("salt-master.state"),
        cfg: cfg.clone(),
        board,
        rows: Default::default(),
        notifier,
        watchdog,
        next_watchdog: Instant::now(),
        started: Instant::now(),
    };
    let res = sup.run(&mut hooks);
    let _ = std::fs::remove_file(crate::metrics::board_path(&cfg));
    drop(log_rx);
    match res {
        Ok(()) => Ok(()),
        Err(e) => {
            error!("{e}");
            Err(e.into())
        }
    }
}

struct ManagerHooks {
    /// Where SIGUSR1 writes the state of the tree.
    dump_path: std::path::PathBuf,
    cfg: Rc<MasterConfig>,
    /// The status board, and the rows of this supervisor's children.
    board: &'static brine_metrics::Board,
    rows: crate::metrics::TreeRows,
    notifier: Option<Notifier>,
    watchdog: Option<Duration>,
    next_watchdog: Instant,
    started: Instant,
}

impl ManagerHooks {
    fn notify(&self, state: &str) {
        if let Some(n) = &self.notifier {
            if let Err(e) = n.notify(state) {
                warn!("sd_notify({state:?}) failed: {e}");
            }
        }
    }
}

impl Hooks for ManagerHooks {
    fn all_ready(&mut self, sup: &Supervisor) {
        info!(
            "salt-master is serving ({} processes ready in {} ms)",
            sup.children().len(),
            self.started.elapsed().as_millis()
        );
        self.notify(&format!("READY=1\nSTATUS=serving\nMAINPID={}", std::process::id()));
        self.board.set_serving();
    }

    fn state(&mut self, sup: &Supervisor) {
        self.rows.write(sup);
    }

    fn hangup(&mut self, sup: &Supervisor) {
        info!("SIGHUP: reopening log files");
        if let Some(pid) = sup.pid_of(names::LOGGING) {
            let _ = kill(pid, Signal::SIGHUP);
        }
    }

    fn dump(&mut self, _sup: &Supervisor) {
        // What `salt-master status` prints, from the same board.
        let text = crate::status::table(&crate::status::status(&self.cfg).1);
        match brine_cache::fs::write_atomic(&self.dump_path, text.as_bytes(), 0o600) {
            Ok(()) => info!(
                "SIGUSR1: the state of the process tree is in {}",
                self.dump_path.display()
            ),
            Err(e) => warn!("SIGUSR1: cannot write {}: {e}", self.dump_path.display()),
        }
        // Where Salt's SIGUSR1 handler writes its debug output
        // (salt.utils.debug: `salt-debug-<unix time>.log` in the temporary
        // directory), which operators and Salt's tests look for. Created
        // new and 0600: a file or link someone planted under that name in
        // a shared /tmp is never followed nor overwritten.
        // Salt names the file by the second alone, so a minion's and the
        // master's dump in the same second share a name (Salt overwrites
        // the first); Brine then adds its pid rather than lose either.
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let create = |name: String| {
            let path = std::env::temp_dir().join(name);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            (path, file)
        };
        let (debug, file) = match create(format!("salt-debug-{secs}.log")) {
            (_, Err(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                create(format!("salt-debug-{secs}-{}.log", std::process::id()))
            }
            other => other,
        };
        let written = file.and_then(|mut f| f.write_all(text.as_bytes()));
        match written {
            Ok(()) => info!("SIGUSR1: wrote {}", debug.display()),
            Err(e) => warn!("SIGUSR1: cannot write {}: {e}", debug.display()),
        }
    }

    fn stopping(&mut self) {
        self.notify("STOPPING=1");
    }

    fn tick(&mut self, now: Instant) -> Option<Instant> {
        let interval = self.watchdog?;
        if now >= self.next_watchdog {
            self.notify("WATCHDOG=1");
            self.next_watchdog = now + interval;
        }
        Some(self.next_watchdog)
    }
}
