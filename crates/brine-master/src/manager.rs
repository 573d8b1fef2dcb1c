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
        ports: (cfg.publish_port, cfg.ret_port),
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
    /// publish_port and ret_port, whose connections the dump counts.
    ports: (u16, u16),
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

    fn dump(&mut self, sup: &Supervisor) {
        let mut text = state_dump(sup, self.started.elapsed(), self.board);
        let (publish, ret) = self.ports;
        text += &format!(
            "\nconnections (established TCP, from /proc/net/tcp and tcp6)\n               publish_port {publish}: {} (minions subscribed to jobs)\n  ret_port {ret}: {}\n",
            brine_targeting::connected::connections_to(publish),
            brine_targeting::connected::connections_to(ret)
        );
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

/// The tree as `kill -USR1 <ProcessManager>` reports it: every role with
/// its pid, uptime, restarts and back-off count, and the processes under
/// ReqServer_ProcessManager (MWorkerQueue, the MWorkers) read from /proc.
fn state_dump(sup: &Supervisor, up: Duration, board: &brine_metrics::Board) -> String {
    let mut out = format!(
        "salt-master (Brine {}) ProcessManager pid {}, up {} s\n\n{:<30} {:>8} {:>10} {:>6} {:>9} {:>8}\n",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        up.as_secs(),
        "process",
        "pid",
        "up (s)",
        "ready",
        "restarts",
        "crashes"
    );
    for c in sup.status() {
        let pid = c.pid.map_or("-".into(), |p| p.to_string());
        let up = c.up.map_or("-".into(), |d| d.as_secs().to_string());
        out += &format!(
            "{:<30} {:>8} {:>10} {:>6} {:>9} {:>8}\n",
            c.name, pid, up, c.ready, c.restarts, c.crashes
        );
        if c.name == names::REQ_SERVER {
            if let Some(p) = c.pid {
                for (child, title) in children_titles(p.as_raw()) {
                    out += &format!("  {title:<28} {child:>8}");
                    if let Some(i) = title.strip_prefix(names::WORKER_PREFIX).and_then(|i| i.parse().ok()) {
                        let (handled, since) = board.worker(i);
                        let busy = if since == 0 {
                            "idle".to_string()
                        } else {
                            format!("busy for {} ms", brine_metrics::board::now_ms().saturating_sub(since))
                        };
                        out += &format!("   {handled} requests handled, {busy}");
                    }
                    out += "\n";
                }
            }
        }
    }
    // What the MWorkers hold is the requests in hand; the rest of what
    // was received and not yet answered waits in the queue.
    let received = board.counter(brine_metrics::Counter::Received);
    let answered = board.counter(brine_metrics::Counter::Answered);
    let open = received.saturating_sub(answered);
    let in_hand = board.busy_workers();
    out += &format!(
        "\nrequests on ret_port: {received} received, {answered} answered, {} in the MWorkers, {} queued\n",
        in_hand.min(open),
        open.saturating_sub(in_hand)
    );
    out
}

/// The children of `parent` and the last word of their process titles.
fn children_titles(parent: i32) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The field after the parenthesised comm is the state, then ppid.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let title = text.split_whitespace().last().unwrap_or("?").to_string();
            out.push((pid, title));
        }
    }
    out.sort();
    out
}
