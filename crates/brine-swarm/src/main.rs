//! `brine-swarm`: start N simulated minions against a salt-master.
//!
//! Output is JSON lines on stdout: `ready` once every minion is accepted
//! and subscribed, `snapshot` on SIGUSR1 (counters, and the latency samples
//! since the previous snapshot), `peek` on SIGUSR2 (the same without
//! starting a new sample period), `report` at the end (SIGTERM/SIGINT or
//! `--duration`). The minions run in `--procs` child processes (one per
//! 4,000 minions by default: each minion holds two TCP connections, and a
//! process may hold 20,000 descriptors here); the children die with the
//! parent (PR_SET_PDEATHSIG).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brine_swarm::keys;
use brine_swarm::minion::{ramp_delay, source_address, Identity, Minion, MinionOpts};
use brine_swarm::stats::{epoch_us, merge, Stats};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::{fork, pipe, ForkResult, Pid};
use serde_json::{json, Value as Json};

const USAGE: &str = "usage: brine-swarm [options]
  --master HOST            master address (127.0.0.1)
  --ret-port PORT          request port (4506); the publish port comes from the auth reply
  -n, --minions N          number of minions (100)
  --id-prefix P            ids are P00000, P00001, ... (swarm-)
  --keys-dir DIR           cached minion keys (~/.cache/brine/swarm-keys)
  --keysize BITS           RSA key size (2048, as salt-minion)
  --procs P                minion processes (one per 4000 minions)
  --threads T              tokio worker threads per process (cores / procs, at least 1)
  --auth-timeout S         per sign-in try (5)       --auth-tries N (7)
  --acceptance-wait S      wait after pending (10)   --acceptance-wait-max S (0)
  --rejected-retry         keep retrying when rejected
  --return-timeout S       per return try (60)       --return-tries N (3)
  --zmq-filtering          subscribe to broadcast + sha1(id) only
  --spread-sources         connect from 127.0.1.1-200 (by id) when the master is on loopback
  --ramp S                 spread the minions' first contact over S seconds (0: all at once)
  --duration S             stop after S seconds (0: at SIGTERM/SIGINT)
  --report FILE            also write the final report there
  --gen-keys               generate the keys and exit
  -l, --log-level LEVEL    error|warning|info|debug (warning)";

struct Args {
    master: String,
    ret_port: u16,
    minions: usize,
    id_prefix: String,
    keys_dir: PathBuf,
    keysize: u32,
    procs: usize,
    threads: usize,
    opts: MinionOpts,
    ramp: Duration,
    duration: Duration,
    report: Option<PathBuf>,
    gen_keys: bool,
    spread_sources: bool,
    log_level: log::LevelFilter,
}

fn parse_args() -> Result<Args> {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    let mut a = Args {
        master: "127.0.0.1".into(),
        ret_port: 4506,
        minions: 100,
        id_prefix: "swarm-".into(),
        keys_dir: home.join(".cache/brine/swarm-keys"),
        keysize: 2048,
        procs: 0,
        threads: 0,
        opts: MinionOpts::default(),
        ramp: Duration::ZERO,
        duration: Duration::ZERO,
        report: None,
        gen_keys: false,
        spread_sources: false,
        log_level: log::LevelFilter::Warn,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        let secs = |s: String| -> Result<Duration> { Ok(Duration::from_secs_f64(s.parse()?)) };
        match flag.as_str() {
            "--master" => a.master = val()?,
            "--ret-port" => a.ret_port = val()?.parse()?,
            "-n" | "--minions" => a.minions = val()?.parse()?,
            "--id-prefix" => a.id_prefix = val()?,
            "--keys-dir" => a.keys_dir = val()?.into(),
            "--keysize" => a.keysize = val()?.parse()?,
            "--procs" => a.procs = val()?.parse()?,
            "--threads" => a.threads = val()?.parse()?,
            "--auth-timeout" => a.opts.auth_timeout = secs(val()?)?,
            "--auth-tries" => a.opts.auth_tries = val()?.parse()?,
            "--acceptance-wait" => a.opts.acceptance_wait = secs(val()?)?,
            "--acceptance-wait-max" => a.opts.acceptance_wait_max = secs(val()?)?,
            "--rejected-retry" => a.opts.rejected_retry = true,
            "--return-timeout" => a.opts.return_timeout = secs(val()?)?,
            "--return-tries" => a.opts.return_tries = val()?.parse()?,
            "--zmq-filtering" => a.opts.zmq_filtering = true,
            "--ramp" => a.ramp = secs(val()?)?,
            "--duration" => a.duration = secs(val()?)?,
            "--report" => a.report = Some(val()?.into()),
            "--gen-keys" => a.gen_keys = true,
            "--spread-sources" => a.spread_sources = true,
            "-l" | "--log-level" => {
                a.log_level = match val()?.as_str() {
                    "error" => log::LevelFilter::Error,
                    "warning" => log::LevelFilter::Warn,
                    "info" => log::LevelFilter::Info,
                    "debug" => log::LevelFilter::Debug,
                    other => bail!("unknown log level {other:?}"),
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    if a.minions == 0 {
        bail!("--minions must be at least 1");
    }
    if a.procs == 0 {
        a.procs = a.minions.div_ceil(4000);
    }
    a.procs = a.procs.min(a.minions);
    if a.threads == 0 {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        a.threads = (cores / a.procs).max(1);
    }
    let addr = format!("{}:{}", a.master, a.ret_port);
    a.opts.ret_addr = std::net::ToSocketAddrs::to_socket_addrs(&addr)?
        .next()
        .with_context(|| format!("cannot resolve {addr}"))?;
    Ok(a)
}

struct StderrLog;
impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            eprintln!("[brine-swarm {}] {} {}", std::process::id(), r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

static TERM: AtomicBool = AtomicBool::new(false);
static USR1: AtomicBool = AtomicBool::new(false);
static USR2: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGUSR1 {
        USR1.store(true, Ordering::SeqCst);
    } else if sig == libc::SIGUSR2 {
        USR2.store(true, Ordering::SeqCst);
    } else {
        TERM.store(true, Ordering::SeqCst);
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    log::set_logger(&StderrLog).ok();
    log::set_max_level(args.log_level);
    let t = Instant::now();
    keys::ensure(&args.keys_dir, args.keysize, args.minions).context("minion keys")?;
    if args.gen_keys {
        eprintln!("{} keys ready in {:.1} s", args.minions, t.elapsed().as_secs_f64());
        return Ok(());
    }
    // Signals are handled by flags in the parent; children reset them.
    let act = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGUSR1, Signal::SIGUSR2] {
        // SAFETY: the handler only stores to atomics.
        unsafe { sigaction(s, &act) }?;
    }
    // The start barrier: children load their keys, say "loaded", and block
    // reading `go` until the parent closes its end, so that every minion of
    // every process starts together (an auth storm is an auth storm).
    let (go_r, go_w) = pipe()?;
    let mut go_w = Some(go_w);
    let mut children: Vec<(Pid, OwnedFd)> = Vec::new();
    for k in 0..args.procs {
        let (r, w) = pipe()?;
        // SAFETY: no threads exist at this point (key generation joined its own).
        match unsafe { fork() }? {
            ForkResult::Child => {
                drop(r);
                // SAFETY: plain prctl with integer arguments.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
                if nix::unistd::getppid() == Pid::from_raw(1) {
                    std::process::exit(1);
                }
                let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
                for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGUSR1, Signal::SIGUSR2] {
                    // SAFETY: restoring the default disposition.
                    let _ = unsafe { sigaction(s, &dfl) };
                }
                for (_, fd) in children.drain(..) {
                    drop(fd);
                }
                drop(go_w.take());
                let code = match child(&args, k, w, go_r) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("brine-swarm child {k}: {e:#}");
                        1
                    }
                };
                std::process::exit(code);
            }
            ForkResult::Parent { child } => {
                drop(w);
                children.push((child, r));
            }
        }
    }
    drop(go_r);
    parent(&args, children, go_w.take().expect("parent keeps go"))
}

fn emit(out: &Mutex<std::fs::File>, v: &Json) {
    let mut f = out.lock().expect("output lock");
    let _ = writeln!(f, "{v}");
    let _ = f.flush();
}

fn parent(args: &Args, children: Vec<(Pid, OwnedFd)>, go: OwnedFd) -> Result<()> {
    let mut go = Some(go);
    let mut start_us = epoch_us();
    let n = children.len();
    let (tx, rx) = mpsc::channel::<(usize, Option<Json>)>();
    let pids: Vec<Pid> = children.iter().map(|(p, _)| *p).collect();
    for (k, (_, fd)) in children.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let f = std::fs::File::from(fd);
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Json>(&line) {
                    Ok(v) => {
                        if tx.send((k, Some(v))).is_err() {
                            return;
                        }
                    }
                    Err(_) => eprintln!("{line}"),
                }
            }
            let _ = tx.send((k, None));
        });
    }
    let stdout = Mutex::new(std::fs::File::from(
        nix::unistd::dup(std::io::stdout().as_raw_fd()).map(
            // SAFETY: dup returned a fresh descriptor we own.
            |fd| unsafe { OwnedFd::from_raw_fd(fd) },
        )?,
    ));
    let t0 = Instant::now();
    let mut loaded = vec![false; n];
    let mut ready: Vec<Option<Json>> = vec![None; n];
    let mut snaps: Vec<Option<Json>> = vec![None; n];
    let mut peeks: Vec<Option<Json>> = vec![None; n];
    let mut reports: Vec<Option<Json>> = vec![None; n];
    let mut done = vec![false; n];
    let mut stopping = false;
    let signal_all = |s: Signal| {
        for p in &pids {
            let _ = kill(*p, s);
        }
    };
    loop {
        if !stopping && (TERM.load(Ordering::SeqCst) || (!args.duration.is_zero() && t0.elapsed() >= args.duration)) {
            stopping = true;
            signal_all(Signal::SIGTERM);
        }
        if USR1.swap(false, Ordering::SeqCst) {
            signal_all(Signal::SIGUSR1);
        }
        if USR2.swap(false, Ordering::SeqCst) {
            signal_all(Signal::SIGUSR2);
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((k, Some(v))) => match v["event"].as_str() {
                Some("loaded") => {
                    loaded[k] = true;
                    if loaded.iter().all(|l| *l) {
                        start_us = epoch_us();
                        drop(go.take());
                    }
                }
                Some("ready") => {
                    ready[k] = Some(v);
                    if ready.iter().all(Option::is_some) {
                        let parts: Vec<Json> = ready.iter().flatten().map(|r| r["stats"].clone()).collect();
                        let elapsed = ready
                            .iter()
                            .flatten()
                            .filter_map(|r| r["elapsed_ms"].as_f64())
                            .fold(0.0, f64::max);
                        let mut m = merge(&parts);
                        m["event"] = json!("ready");
                        m["elapsed_ms"] = json!(elapsed);
                        emit(&stdout, &m);
                    }
                }
                Some(ev @ ("snapshot" | "peek")) => {
                    let slots = if ev == "snapshot" { &mut snaps } else { &mut peeks };
                    slots[k] = Some(v["stats"].clone());
                    if slots.iter().all(Option::is_some) {
                        let parts: Vec<Json> = slots.iter_mut().filter_map(Option::take).collect();
                        let mut m = merge(&parts);
                        m["event"] = json!(ev);
                        m["elapsed_ms"] = json!((epoch_us() - start_us) as f64 / 1e3);
                        emit(&stdout, &m);
                    }
                }
                Some("report") => reports[k] = Some(v["stats"].clone()),
                _ => {}
            },
            Ok((k, None)) => {
                done[k] = true;
                loaded[k] = true;
                if loaded.iter().all(|l| *l) {
                    drop(go.take());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if done.iter().all(|d| *d) {
            break;
        }
    }
    let mut failed = 0;
    for p in &pids {
        match nix::sys::wait::waitpid(*p, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => {}
            _ => failed += 1,
        }
    }
    let parts: Vec<Json> = reports.into_iter().flatten().collect();
    let mut m = merge(&parts);
    m["event"] = json!("report");
    m["elapsed_ms"] = json!((epoch_us() - start_us) as f64 / 1e3);
    m["processes"] = json!(n);
    m["failed_processes"] = json!(failed);
    emit(&stdout, &m);
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&m)?)?;
    }
    if failed > 0 {
        bail!("{failed} swarm process(es) failed");
    }
    Ok(())
}

fn child(args: &Args, k: usize, out: OwnedFd, go: OwnedFd) -> Result<()> {
    let out = Arc::new(Mutex::new(std::fs::File::from(out)));
    let mine: Vec<usize> = (k..args.minions).step_by(args.procs).collect();
    let mut idents = Vec::with_capacity(mine.len());
    for &i in &mine {
        let key = keys::load(&args.keys_dir, args.keysize, i).with_context(|| format!("key {i}"))?;
        let id = format!("{}{i:05}", args.id_prefix);
        let mut ident = Identity::new(id, key).map_err(anyhow::Error::msg)?;
        if args.spread_sources {
            ident.source = source_address(args.opts.ret_addr.ip(), &ident.id);
        }
        idents.push(Arc::new(ident));
    }
    emit(&out, &json!({"event": "loaded"}));
    let mut byte = [0u8; 1];
    let _ = std::io::Read::read(&mut std::fs::File::from(go), &mut byte);
    let start_us = epoch_us();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    let stats = Arc::new(Stats::default());
    stats.minions.store(mine.len() as u64, Ordering::SeqCst);
    let opts = Arc::new(args.opts.clone());
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
        let mut usr2 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2())?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::with_capacity(idents.len());
        for (j, ident) in idents.into_iter().enumerate() {
            let m = Minion::new(ident, opts.clone(), stats.clone());
            let delay = ramp_delay(mine[j], args.minions, args.ramp);
            let stop = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                m.run(stop).await
            }));
        }
        {
            let stats = stats.clone();
            let out = out.clone();
            tokio::spawn(async move {
                stats.all_ready.notified().await;
                let elapsed = (epoch_us() - start_us) as f64 / 1e3;
                let snap = stats.snapshot_keep();
                emit(&out, &json!({"event": "ready", "elapsed_ms": elapsed, "stats": snap}));
            });
        }
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = usr1.recv() => emit(&out, &json!({"event": "snapshot", "stats": stats.snapshot()})),
                _ = usr2.recv() => emit(&out, &json!({"event": "peek", "stats": stats.snapshot_keep()})),
            }
        }
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        emit(&out, &json!({"event": "report", "stats": stats.snapshot()}));
        anyhow::Ok(())
    })?;
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}
