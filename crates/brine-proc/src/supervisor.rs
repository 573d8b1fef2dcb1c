//! Forks named children and keeps them running.
//!
//! * Children are forked in spec order; each one gets its title set, a
//!   parent-death signal (SIGKILL: when its supervisor dies, it dies too, so
//!   a `kill -9` of a supervisor leaves no orphans holding ports) and a
//!   [`ChildContext`] to report readiness or a fatal boot error over a
//!   datagram socket.
//! * Death is noticed on SIGCHLD through the self-pipe, not by polling, and
//!   the child is forked again at once with the same name. Children that keep
//!   dying within [`STABLE_AFTER`] of their start are respawned with an
//!   exponential back-off, and every death is logged.
//! * A child that exits with [`crate::EXIT_FATAL`] or reports
//!   [`ChildContext::fatal`], or that dies before it is ready while the tree
//!   is starting, stops the whole tree: [`Supervisor::run`] returns
//!   [`SupervisorError::Fatal`] and the master exits non-zero.
//! * SIGTERM/SIGINT: every child gets SIGTERM (the `stop_last` ones after the
//!   others are gone), stragglers get SIGKILL after the grace period, and
//!   `run` returns once every child, and every orphaned descendant
//!   reparented to us (we are a child subreaper), has been reaped.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use nix::errno::Errno;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};

use crate::signals::{self, SignalPipe};
use crate::title;

/// A child alive this long is considered stable: its next death respawns it
/// without delay and resets the crash count.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Back-off ceiling for a crash-looping child.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Consecutive deaths before readiness, after start-up, that make us give up.
pub const MAX_BOOT_FAILURES: u32 = 5;

pub type ChildMain = Box<dyn Fn(&ChildContext) -> i32>;

/// One named child.
pub struct ChildSpec {
    pub name: String,
    pub main: ChildMain,
    /// Stop this one after every other child has exited (the log writer).
    pub stop_last: bool,
}

impl ChildSpec {
    pub fn new(name: impl Into<String>, main: impl Fn(&ChildContext) -> i32 + 'static) -> Self {
        ChildSpec {
            name: name.into(),
            main: Box::new(main),
            stop_last: false,
        }
    }

    pub fn stop_last(mut self) -> Self {
        self.stop_last = true;
        self
    }
}

/// What a child gets: its name and the channel to its supervisor.
pub struct ChildContext {
    pub name: String,
    /// 0 for the first start, then 1, 2, … for each respawn.
    pub incarnation: u32,
    status: RawFd,
}

impl ChildContext {
    /// Tell the supervisor this child is serving.
    pub fn ready(&self) {
        self.send(&format!("READY {}", getpid()));
    }

    /// Tell the supervisor this child cannot boot and respawning will not
    /// help; then exit with [`crate::EXIT_FATAL`].
    pub fn fatal(&self, msg: &str) {
        self.send(&format!("FATAL {} {msg}", getpid()));
    }

    /// The fd of the status channel (a nested supervisor closes it in its
    /// own children).
    pub fn status_fd(&self) -> RawFd {
        self.status
    }

    fn send(&self, msg: &str) {
        // SAFETY: status is a datagram socket fd owned by this process.
        let rc = unsafe { libc::send(self.status, msg.as_ptr() as *const libc::c_void, msg.len(), 0) };
        if rc < 0 {
            warn!(
                "{}: cannot report to supervisor: {}",
                self.name,
                io::Error::last_os_error()
            );
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("{name} cannot start: {msg}")]
    Fatal { name: String, msg: String },
    #[error("supervisor I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Callbacks from the supervision loop.
pub trait Hooks {
    /// Every child reported ready for the first time.
    fn all_ready(&mut self, _sup: &Supervisor) {}
    /// SIGHUP arrived.
    fn hangup(&mut self, _sup: &Supervisor) {}
    /// SIGUSR1 arrived (Salt writes a debug dump then; nothing stops).
    fn dump(&mut self, _sup: &Supervisor) {}
    /// Shutdown begins (before children are signalled).
    fn stopping(&mut self) {}
    /// After the children were started and after every wake-up of the
    /// loop (a start, a death, a readiness report, a signal): the state
    /// [`Supervisor::status`] shows, for a status board.
    fn state(&mut self, _sup: &Supervisor) {}
    /// Called on every loop iteration; returns when to be called again.
    fn tick(&mut self, _now: Instant) -> Option<Instant> {
        None
    }
}

/// Hooks that do nothing.
pub struct NoHooks;
impl Hooks for NoHooks {}

/// One child as a status dump shows it.
#[derive(Debug, Clone)]
pub struct ChildStatus {
    pub name: String,
    pub pid: Option<Pid>,
    /// Since its last start, while it runs.
    pub up: Option<Duration>,
    pub ready: bool,
    /// Starts after the first.
    pub restarts: u32,
    /// Deaths counted towards the respawn back-off.
    pub crashes: u32,
}

struct Slot {
    spec: ChildSpec,
    pid: Option<Pid>,
    started: Instant,
    ready: bool,
    crashes: u32,
    boot_failures: u32,
    respawn_at: Option<Instant>,
    fatal_msg: Option<String>,
    spawned: u32,
}

pub struct Supervisor {
    name: String,
    slots: Vec<Slot>,
    sig: SignalPipe,
    status_rx: OwnedFd,
    status_tx: OwnedFd,
    close_in_child: Vec<RawFd>,
    grace: Duration,
    all_ready: bool,
    stopping: bool,
}

impl Supervisor {
    /// `name` is used in log messages ("ProcessManager",
    /// "ReqServer_ProcessManager"). Installs SIGCHLD/SIGTERM/SIGINT/SIGHUP
    /// handlers and makes this process a child subreaper.
    pub fn new(name: &str, specs: Vec<ChildSpec>) -> io::Result<Supervisor> {
        let sig = SignalPipe::install(&[
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
        ])?;
        let (rx, tx) = UnixDatagram::pair()?;
        rx.set_nonblocking(true)?;
        // SAFETY: plain prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let slots = specs
            .into_iter()
            .map(|spec| Slot {
                spec,
                pid: None,
                started: Instant::now(),
                ready: false,
                crashes: 0,
                boot_failures: 0,
                respawn_at: None,
                fatal_msg: None,
                spawned: 0,
            })
            .collect();
        Ok(Supervisor {
            name: name.to_string(),
            slots,
            sig,
            status_rx: rx.into(),
            status_tx: tx.into(),
            close_in_child: Vec::new(),
            grace: Duration::from_millis(1500),
            all_ready: false,
            stopping: false,
        })
    }

    /// Fds that children must not inherit (pidfile lock, the parent's own
    /// status channel, …).
    pub fn close_in_child(&mut self, fd: RawFd) {
        self.close_in_child.push(fd);
    }

    /// How long children get between SIGTERM and SIGKILL.
    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// Pid of the live child called `name`.
    pub fn pid_of(&self, name: &str) -> Option<Pid> {
        self.slots.iter().find(|s| s.spec.name == name).and_then(|s| s.pid)
    }

    /// Each child's state, in spec order, for a status dump.
    pub fn status(&self) -> Vec<ChildStatus> {
        self.slots
            .iter()
            .map(|s| ChildStatus {
                name: s.spec.name.clone(),
                pid: s.pid,
                up: s.pid.map(|_| s.started.elapsed()),
                ready: s.ready,
                restarts: s.spawned.saturating_sub(1),
                crashes: s.crashes,
            })
            .collect()
    }

    /// Names and pids of the live children.
    pub fn children(&self) -> Vec<(String, Pid)> {
        self.slots
            .iter()
            .filter_map(|s| s.pid.map(|p| (s.spec.name.clone(), p)))
            .collect()
    }

    fn spawn(&mut self, idx: usize) -> io::Result<()> {
        let parent = getpid();
        // Block signals across fork: one arriving in the child before it
        // resets its handlers would run ours and be lost. The child unblocks
        // in reset_in_child; the parent restores its mask below.
        let mut old = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), Some(&mut old)).map_err(io::Error::from)?;
        // SAFETY: the contract of this crate is that supervisors run
        // single-threaded; the child only runs its own code and _exits.
        let forked = unsafe { fork() };
        if !matches!(forked, Ok(ForkResult::Child)) {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        }
        match forked.map_err(io::Error::from)? {
            ForkResult::Child => {
                let code = self.child_side(idx, parent);
                // SAFETY: leave without running the parent's atexit handlers.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                let s = &mut self.slots[idx];
                s.pid = Some(child);
                s.started = Instant::now();
                s.ready = false;
                s.respawn_at = None;
                s.spawned += 1;
                debug!("{}: started {} (pid {child})", self.name, s.spec.name);
                Ok(())
            }
        }
    }

    fn child_side(&self, idx: usize, parent: Pid) -> i32 {
        // SAFETY: plain prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
        if getppid() != parent {
            return 1; // the parent died before PDEATHSIG was armed
        }
        signals::reset_in_child();
        let _ = signals::ignore(Signal::SIGINT);
        let _ = signals::ignore(Signal::SIGHUP);
        // Their default action kills; a stray `kill -USR1` must not (a
        // nested supervisor installs its own handlers again).
        let _ = signals::ignore(Signal::SIGUSR1);
        let _ = signals::ignore(Signal::SIGUSR2);
        signals::unblock_all();
        let mut close: Vec<RawFd> = self.sig.raw_fds().to_vec();
        close.push(self.status_rx.as_raw_fd());
        close.extend(&self.close_in_child);
        for fd in close {
            // SAFETY: closing fds this child must not keep.
            unsafe { libc::close(fd) };
        }
        let spec = &self.slots[idx].spec;
        title::set(&spec.name);
        let ctx = ChildContext {
            name: spec.name.clone(),
            incarnation: self.slots[idx].spawned,
            status: self.status_tx.as_raw_fd(),
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (spec.main)(&ctx))).unwrap_or(101)
    }

    /// Fork every child, then supervise until SIGTERM/SIGINT (Ok) or a
    /// fatal child error (Err). Either way every child is gone on return.
    pub fn run(&mut self, hooks: &mut dyn Hooks) -> Result<(), SupervisorError> {
        for i in 0..self.slots.len() {
            self.spawn(i)?;
        }
        hooks.state(self);
        let mut fatal: Option<SupervisorError> = None;
        loop {
            let now = Instant::now();
            let mut deadline = hooks.tick(now);
            for s in &self.slots {
                if let Some(at) = s.respawn_at {
                    deadline = Some(deadline.map_or(at, |d| d.min(at)));
                }
            }
            let timeout = deadline.map(|d| d.saturating_duration_since(now));
            poll_fds(&[self.sig.fd(), self.status_rx.as_raw_fd()], timeout)?;
            self.sig.drain();
            if signals::take(Signal::SIGTERM) | signals::take(Signal::SIGINT) {
                info!("{}: shutting down", self.name);
                break;
            }
            if signals::take(Signal::SIGHUP) {
                hooks.hangup(self);
            }
            if signals::take(Signal::SIGUSR1) {
                hooks.dump(self);
            }
            signals::take(Signal::SIGUSR2);
            self.read_status();
            // Reap on every wake-up: SIGCHLD coalesces, and a status message
            // may race with the death it announces.
            signals::take(Signal::SIGCHLD);
            if let Err(e) = self.reap() {
                fatal = Some(e);
                break;
            }
            if let Some(e) = self.fatal_reported() {
                fatal = Some(e);
                break;
            }
            let now = Instant::now();
            for i in 0..self.slots.len() {
                if self.slots[i].pid.is_none() && self.slots[i].respawn_at.is_some_and(|at| at <= now) {
                    self.spawn(i)?;
                }
            }
            if !self.all_ready && self.slots.iter().all(|s| s.ready) {
                self.all_ready = true;
                hooks.all_ready(self);
            }
            hooks.state(self);
        }
        if let Some(e) = &fatal {
            error!("{}: {e}; stopping every process", self.name);
        }
        hooks.stopping();
        self.stop_all();
        match fatal {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn read_status(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reading into a local buffer from our socket fd.
            let n = unsafe {
                libc::recv(
                    self.status_rx.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                break;
            }
            let msg = String::from_utf8_lossy(&buf[..n as usize]).into_owned();
            let mut parts = msg.splitn(3, ' ');
            let kind = parts.next().unwrap_or("");
            let pid: i32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let Some(slot) = self.slots.iter_mut().find(|s| s.pid == Some(Pid::from_raw(pid))) else {
                continue;
            };
            match kind {
                "READY" => {
                    slot.ready = true;
                    if self.all_ready {
                        info!("{}: {} (pid {pid}) is ready again", self.name, slot.spec.name);
                    } else {
                        debug!("{}: {} (pid {pid}) is ready", self.name, slot.spec.name);
                    }
                }
                "FATAL" => slot.fatal_msg = Some(parts.next().unwrap_or("").to_string()),
                _ => {}
            }
        }
    }

    fn fatal_reported(&mut self) -> Option<SupervisorError> {
        self.slots.iter_mut().find_map(|s| {
            s.fatal_msg.take().map(|msg| SupervisorError::Fatal {
                name: s.spec.name.clone(),
                msg,
            })
        })
    }

    fn reap(&mut self) -> Result<(), SupervisorError> {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(io::Error::from(e).into()),
                Ok(s) => s,
            };
            let Some(pid) = status.pid() else { continue };
            let Some(idx) = self.slots.iter().position(|s| s.pid == Some(pid)) else {
                debug!("{}: reaped orphaned descendant {pid} ({status:?})", self.name);
                continue;
            };
            if self.stopping {
                self.slots[idx].pid = None;
                continue;
            }
            self.child_died(idx, pid, status)?;
        }
    }

    fn child_died(&mut self, idx: usize, pid: Pid, status: WaitStatus) -> Result<(), SupervisorError> {
        // Pick up a FATAL sent just before exiting.
        self.read_status();
        let all_ready = self.all_ready;
        let s = &mut self.slots[idx];
        s.pid = None;
        let name = s.spec.name.clone();
        let how = describe(status);
        if let Some(msg) = s.fatal_msg.take() {
            return Err(SupervisorError::Fatal { name, msg });
        }
        if matches!(status, WaitStatus::Exited(_, code) if code == crate::EXIT_FATAL) {
            return Err(SupervisorError::Fatal {
                name,
                msg: format!(
                    "exited with status {} (fatal start-up error, see its log)",
                    crate::EXIT_FATAL
                ),
            });
        }
        let lived = s.started.elapsed();
        if !s.ready {
            if !all_ready {
                return Err(SupervisorError::Fatal {
                    name,
                    msg: format!("{how} while starting"),
                });
            }
            s.boot_failures += 1;
            if s.boot_failures >= MAX_BOOT_FAILURES {
                return Err(SupervisorError::Fatal {
                    name,
                    msg: format!("{how} before becoming ready, {} times in a row", s.boot_failures),
                });
            }
        } else {
            s.boot_failures = 0;
        }
        if lived >= STABLE_AFTER {
            s.crashes = 0;
        }
        s.crashes += 1;
        let delay = if s.crashes <= 1 {
            Duration::ZERO
        } else {
            (Duration::from_millis(100) * 2u32.saturating_pow(s.crashes - 2)).min(MAX_BACKOFF)
        };
        if delay.is_zero() {
            warn!(
                "{}: {name} (pid {pid}) {how} after {:.1}s; respawning",
                self.name,
                lived.as_secs_f64()
            );
            self.spawn(idx)?;
        } else {
            error!(
                "{}: {name} (pid {pid}) {how} after {:.1}s; {} deaths in a row, respawning in {} ms",
                self.name,
                lived.as_secs_f64(),
                s.crashes,
                delay.as_millis()
            );
            s.respawn_at = Some(Instant::now() + delay);
        }
        Ok(())
    }

    fn live(&self, last: bool) -> Vec<Pid> {
        self.slots
            .iter()
            .filter(|s| s.spec.stop_last == last)
            .filter_map(|s| s.pid)
            .collect()
    }

    fn stop_all(&mut self) {
        self.stopping = true;
        for s in &mut self.slots {
            s.respawn_at = None;
        }
        for last in [false, true] {
            let pids = self.live(last);
            for &p in &pids {
                let _ = kill(p, Signal::SIGTERM);
            }
            let deadline = Instant::now() + self.grace;
            while !self.live(last).is_empty() {
                let now = Instant::now();
                if now >= deadline {
                    let stuck = self.live(last);
                    for &p in &stuck {
                        let name = self
                            .slots
                            .iter()
                            .find(|s| s.pid == Some(p))
                            .map(|s| s.spec.name.clone());
                        warn!(
                            "{}: {} (pid {p}) did not stop in {:?}; killing it",
                            self.name,
                            name.unwrap_or_default(),
                            self.grace
                        );
                        let _ = kill(p, Signal::SIGKILL);
                    }
                    self.reap_pids(&stuck, Duration::from_secs(2));
                    break;
                }
                let _ = poll_fds(&[self.sig.fd()], Some((deadline - now).min(Duration::from_millis(50))));
                self.sig.drain();
                let _ = self.reap();
            }
        }
        // Descendants re-parented to us (children of a child that died).
        self.kill_orphans();
    }

    /// Reap until none of `pids` is left or `limit` passes. Never blocks
    /// in waitpid: the other children (the `stop_last` ones, still
    /// running) must not keep a shutdown waiting forever.
    fn reap_pids(&mut self, pids: &[Pid], limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.slots.iter().any(|s| s.pid.is_some_and(|p| pids.contains(&p))) && Instant::now() < deadline {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(5)),
                Ok(st) => {
                    if let Some(pid) = st.pid() {
                        for s in &mut self.slots {
                            if s.pid == Some(pid) {
                                s.pid = None;
                            }
                        }
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
    }

    fn kill_orphans(&mut self) {
        let me = getpid().as_raw();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let orphans = children_of(me);
            if orphans.is_empty() || Instant::now() >= deadline {
                break;
            }
            for p in &orphans {
                let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
            }
            loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => {
                        std::thread::sleep(Duration::from_millis(5));
                        break;
                    }
                    Ok(_) => continue,
                    Err(Errno::EINTR) => continue,
                    Err(_) => break,
                }
            }
        }
    }
}

/// Pids whose parent is `ppid`, from /proc.
pub fn children_of(ppid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if crate::procstat::stat(pid as u32).is_some_and(|s| s.ppid as i32 == ppid) {
            out.push(pid);
        }
    }
    out
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, core) => {
            format!("was killed by {sig}{}", if core { " (core dumped)" } else { "" })
        }
        other => format!("changed state ({other:?})"),
    }
}

/// poll(2) for readability on `fds`; EINTR counts as a wake-up.
pub fn poll_fds(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.map_or(-1, |t| {
        t.as_millis().min(i32::MAX as u128) as i32 + i32::from(t.subsec_nanos() % 1_000_000 != 0)
    });
    // SAFETY: p is a valid array of pollfd for the duration of the call.
    let rc = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    Ok(p.iter().map(|x| x.revents != 0).collect())
}
