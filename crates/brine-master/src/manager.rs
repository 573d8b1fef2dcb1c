//! The ProcessManager: the process that was started. It prepares the
//! environment, takes the pidfile lock, forks the roles and supervises them.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use log::{error, info, warn};
use nix::sys::signal::{kill, Signal};

use brine_config::MasterConfig;
use brine_proc::notify::{self, Notifier};
use brine_proc::pidfile::Pidfile;
use brine_proc::supervisor::{Hooks, Supervisor};

use crate::cli::Options;
use crate::names;
use crate::roles;
use crate::setup;

/// Load the configuration and apply the command-line overrides.
pub fn load_config(opts: &Options) -> Result<MasterConfig> {
    let dir = std::path::absolute(&opts.config_dir).unwrap_or_else(|_| opts.config_dir.clone());
    let mut cfg = MasterConfig::load(&dir)?;
    if let Some(p) = &opts.pid_file {
        cfg.pidfile = std::path::absolute(p).unwrap_or_else(|_| p.clone());
    }
    if let Some(l) = &opts.log_level {
        cfg.log_level = l.clone();
        // Salt: the logfile level follows -l unless set on its own.
        if opts.log_file_level.is_none() && cfg.get("log_level_logfile").is_none_or(|v| v.is_null()) {
            cfg.log_level_logfile = l.clone();
        }
    }
    if let Some(l) = &opts.log_file_level {
        cfg.log_level_logfile = l.clone();
    }
    if let Some(f) = &opts.log_file {
        cfg.log_file = f.clone();
    }
    if let Some(u) = &opts.user {
        cfg.user = u.clone();
    }
    Ok(cfg)
}

/// Run the master until SIGTERM/SIGINT (Ok) or a fatal error (Err).
pub fn run(opts: Options) -> Result<()> {
    brine_log::init(setup::level_filter(opts.log_level.as_deref().unwrap_or("warning")));
    let cfg = load_config(&opts)?;
    let console = setup::level_filter(&cfg.log_level);
    let file = setup::level_filter(&cfg.log_level_logfile);
    brine_log::set_level(console.max(file));
    brine_log::to_stderr(brine_log::Format::new(&console_fmt(&cfg), &console_datefmt(&cfg)));

    setup::prepare_dirs(&cfg)?;
    let mut pidfile = Pidfile::acquire(&cfg.pidfile)?;
    if opts.daemon {
        setup::daemonize().context("cannot daemonize")?;
    }
    // master.pem is read and checked once, here: the children inherit it
    // through fork (loading it costs a PEM parse and a consistency test).
    let keys = Rc::new(crate::pki::ensure_master_keys(&cfg).map_err(anyhow::Error::msg)?);
    crate::pki::ensure_user_keys(&cfg).map_err(anyhow::Error::msg)?;
    // ReqServer deletes a stale AES-rotation marker at start-up, as Salt's does.
    let _ = std::fs::remove_file(cfg.cachedir.join(".dfn"));
    let mut chown = vec![cfg.pidfile.clone()];
    if let Some(f) = setup::log_file_path(&cfg) {
        chown.push(f);
    }
    setup::switch_user(&cfg, &chown)?;
    setup::raise_nofile(cfg.max_open_files);
    pidfile
        .write_pid(std::process::id())
        .with_context(|| format!("cannot write {}", cfg.pidfile.display()))?;

    brine_proc::title::set(names::PROCESS_MANAGER);
    let _ = brine_proc::title::set_comm("salt-master");
    brine_log::set_process_name(names::PROCESS_MANAGER);

    let result = supervise(Rc::new(cfg), keys, &pidfile, !opts.daemon);
    pidfile.remove();
    result
}

fn console_fmt(cfg: &MasterConfig) -> String {
    cfg.get("log_fmt_console")
        .and_then(|v| v.as_str())
        .unwrap_or("[%(levelname)-8s] %(message)s")
        .to_string()
}

fn console_datefmt(cfg: &MasterConfig) -> String {
    cfg.get("log_datefmt")
        .and_then(|v| v.as_str())
        .unwrap_or("%H:%M:%S")
        .to_string()
}

fn supervise(cfg: Rc<MasterConfig>, keys: crate::pki::MasterKeys, pidfile: &Pidfile, console: bool) -> Result<()> {
    let (log_tx, log_rx) = brine_log::channel().context("cannot create the logging channel")?;
    let log_rx: Rc<OwnedFd> = Rc::new(log_rx.into());
    brine_log::forward_to(log_tx.into());

    let notifier = Notifier::from_env().context("NOTIFY_SOCKET")?;
    let watchdog = notify::watchdog_interval();

    // The master AES key: made fresh at every start, shared with every
    // process through memory mapped before the first fork.
    let aes = Rc::new(brine_proc::shm::SharedCell::new(256).context("cannot map shared memory")?);
    aes.store(brine_proto::crypto::Crypticle::generate_key_string().as_bytes(), 0)?;

    let logging = roles::logging::Settings::from_config(&cfg, console);
    let specs = vec![
        roles::logging::spec(logging, log_rx.clone()),
        roles::publisher::spec(cfg.clone(), aes.clone(), keys.clone()),
        roles::events::spec(cfg.clone()),
        roles::maintenance::spec(cfg.clone(), aes.clone()),
        roles::reactor::spec(cfg.clone()),
        roles::reqserver::spec(cfg.clone(), aes.clone(), keys),
    ];
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
        notifier,
        watchdog,
        next_watchdog: Instant::now(),
        started: Instant::now(),
    };
    let res = sup.run(&mut hooks);
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
    }

    fn hangup(&mut self, sup: &Supervisor) {
        info!("SIGHUP: reopening log files");
        if let Some(pid) = sup.pid_of(names::LOGGING) {
            let _ = kill(pid, Signal::SIGHUP);
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

/// The pid a running master wrote to `pidfile`, if any.
pub fn read_pidfile(pidfile: &Path) -> Option<i32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}
