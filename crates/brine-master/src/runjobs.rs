//! Runner jobs run in processes of their own, as Salt's
//! `AsyncClientMixin.asynchronous` starts one per job: never in an
//! MWorker, which goes back to its queue as soon as the job has started.
//!
//! An MWorker cannot `fork` (its ZeroMQ context has threads), so it
//! starts the job by executing its own binary (`/proc/self/exe`, which
//! stays valid when the file on disk is replaced) with [`JOB_ENV`] set:
//! `main` sees the variable and runs [`child_main`] instead of a master.
//! The job comes on the child's stdin (msgpack: the config dir, the
//! function, its low data, the user and the jid), the child inherits the
//! logging channel as fd 3 and dies with its MWorker (`PR_SET_PDEATHSIG`),
//! and the function's return goes back on its stdout. `ps` shows it as
//! Salt titles it: `salt-master ProcessFunc(AsyncClientMixin._proc_function,
//! fun=<fun> jid=<jid>)`.
//!
//! The MWorker keeps the children in a [`RunnerJobs`]: their stdout pipes
//! join its poll, so a job whose caller waits for the return (a minion's
//! `publish.runner`) is answered when the pipe closes, and every child is
//! reaped. At most [`MAX_PER_WORKER`] jobs run per MWorker; more are
//! refused with an error the caller sees.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

use brine_config::MasterConfig;
use brine_proto::Value;
use log::{error, info, warn};

/// Set in the environment of a runner job's process.
pub const JOB_ENV: &str = "BRINE_RUNNER_JOB";

/// Runner jobs one MWorker runs at once.
pub const MAX_PER_WORKER: usize = 16;

/// The fd a job's process finds the logging channel on.
const LOG_FD: RawFd = 3;

/// Largest job description a child reads from its stdin.
const MAX_JOB: u64 = 64 * 1024 * 1024;

/// A job to start: `fun` with its low data (`{arg, kwarg}`), for `user`,
/// under `jid`.
pub struct JobSpec {
    pub fun: String,
    pub low: Value,
    pub user: String,
    pub jid: String,
}

/// What the caller of a job waits for, handed back with its return.
pub type Token = u64;

struct Running {
    child: Child,
    out: Option<ChildStdout>,
    buf: Vec<u8>,
    token: Option<Token>,
    fun: String,
    jid: String,
    started: Instant,
}

/// The runner jobs an MWorker started and has not reaped yet.
#[derive(Default)]
pub struct RunnerJobs {
    running: Vec<Running>,
    next_token: Token,
}

impl RunnerJobs {
    /// Start `job` in a process of its own. With `wait`, the caller
    /// wants the return: the token [`RunnerJobs::collect`] hands back
    /// with it.
    pub fn start(&mut self, cfg: &MasterConfig, job: JobSpec, wait: bool) -> Result<Option<Token>, String> {
        if self.running.len() >= MAX_PER_WORKER {
            return Err(format!(
                "{} runner jobs are already running in this MWorker (at most {MAX_PER_WORKER}); try again when one has finished",
                self.running.len()
            ));
        }
        let log_fd = brine_log::forward_fd();
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg0("salt-master")
            .env(JOB_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec:
        // signal, prctl, dup2 (which leaves the copy without FD_CLOEXEC).
        unsafe {
            cmd.pre_exec(move || {
                brine_proc::command::reset_signals();
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(fd) = log_fd {
                    if libc::dup2(fd, LOG_FD) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start a process for the runner job: {e}"))?;
        let input = Value::map([
            ("conf_dir", Value::from(cfg.conf_dir.to_string_lossy().as_ref())),
            // What the command line may have set over the files (`-u`).
            ("master_user", Value::from(cfg.user.as_str())),
            ("log_level", Value::from(cfg.log_level.as_str())),
            ("log_level_logfile", Value::from(cfg.log_level_logfile.as_str())),
            ("fun", Value::from(job.fun.as_str())),
            ("low", job.low),
            ("user", Value::from(job.user.as_str())),
            ("jid", Value::from(job.jid.as_str())),
            ("log", Value::Bool(log_fd.is_some())),
        ]);
        // The pipe's buffer takes small jobs at once; a big one is written
        // by a thread so that this MWorker never blocks on its child.
        let mut stdin = child.stdin.take().expect("piped stdin");
        let bytes = input.to_network();
        if bytes.len() <= 32 * 1024 {
            if let Err(e) = stdin.write_all(&bytes) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cannot hand the job to its process: {e}"));
            }
        } else {
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let out = child.stdout.take().expect("piped stdout");
        // A blocking pipe would hold the MWorker in `collect`.
        if let Err(e) = brine_proc::command::set_nonblocking(out.as_raw_fd()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot watch the runner job's pipe: {e}"));
        }
        info!("runner {} ({}) started in process {}", job.fun, job.jid, child.id());
        let token = wait.then(|| {
            self.next_token += 1;
            self.next_token
        });
        self.running.push(Running {
            child,
            out: Some(out),
            buf: Vec::new(),
            token,
            fun: job.fun,
            jid: job.jid,
            started: Instant::now(),
        });
        Ok(token)
    }

    /// The stdout pipes to poll (readable: a job wrote or ended).
    pub fn fds(&self) -> Vec<RawFd> {
        self.running
            .iter()
            .filter_map(|r| r.out.as_ref().map(AsRawFd::as_raw_fd))
            .collect()
    }

    /// Read what the jobs wrote; reap the ones that ended. Returns the
    /// returns the callers wait for.
    pub fn collect(&mut self) -> Vec<(Token, Value)> {
        let mut done = Vec::new();
        for r in &mut self.running {
            let Some(out) = r.out.as_mut() else { continue };
            let mut chunk = [0u8; 64 * 1024];
            loop {
                match out.read(&mut chunk) {
                    Ok(0) => {
                        r.out = None;
                        break;
                    }
                    Ok(n) => r.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        warn!("runner {} ({}): reading its return: {e}", r.fun, r.jid);
                        r.out = None;
                        break;
                    }
                }
            }
        }
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].out.is_some() {
                i += 1;
                continue;
            }
            let mut r = self.running.swap_remove(i);
            let status = r.child.wait();
            let ret = match Value::decode(&r.buf) {
                Ok(v) if status.as_ref().is_ok_and(|s| s.success()) => v,
                _ => {
                    let how = match &status {
                        Ok(s) => s.to_string(),
                        Err(e) => e.to_string(),
                    };
                    error!(
                        "runner {} ({}): its process ended without a return ({how})",
                        r.fun, r.jid
                    );
                    Value::from(format!(
                        "Exception occurred in runner {}: the job's process ended ({how})",
                        r.fun
                    ))
                }
            };
            info!(
                "runner {} ({}) finished in {:.3} s",
                r.fun,
                r.jid,
                r.started.elapsed().as_secs_f64()
            );
            if let Some(t) = r.token {
                done.push((t, ret));
            }
        }
        done
    }
}

/// The body of a runner job's process (`main` calls it when [`JOB_ENV`]
/// is set): read the job, run it, write its return. The exit status.
pub fn child_main() -> i32 {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().take(MAX_JOB).read_to_end(&mut bytes) {
        eprintln!("runner job: cannot read the job: {e}");
        return 1;
    }
    let Ok(job) = Value::decode(&bytes) else {
        eprintln!("runner job: the job is not msgpack");
        return 1;
    };
    let text = |k: &str| job.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (fun, jid, user) = (text("fun"), text("jid"), text("user"));
    let title = format!("ProcessFunc(AsyncClientMixin._proc_function, fun={fun} jid={jid})");
    if brine_proc::title::init().is_ok() {
        let _ = brine_proc::title::ensure_capacity(title.len());
    }
    std::env::remove_var(JOB_ENV);
    brine_proc::title::set(&title);
    let _ = brine_proc::title::set_comm("salt-master");
    let level = |k: &str| crate::setup::level_filter(&text(k));
    brine_log::init(level("log_level").max(level("log_level_logfile")));
    if job.get("log").and_then(Value::as_bool) == Some(true) {
        // SAFETY: fd 3 is the logging channel the MWorker put there
        // before exec; nothing else in this process owns it.
        brine_log::forward_to(unsafe { OwnedFd::from_raw_fd(LOG_FD) });
    }
    brine_log::set_process_name(&title);
    brine_log::log_panics();
    let cfg = match MasterConfig::load(Path::new(&text("conf_dir"))) {
        Ok(mut c) => {
            c.user = text("master_user");
            c
        }
        Err(e) => {
            error!("runner {fun} ({jid}): cannot read the configuration: {e}");
            return 1;
        }
    };
    let low = job.get("low").cloned().unwrap_or(Value::Map(Vec::new()));
    let ret = brine_runners::run(&cfg, &fun, &low, &user, &jid);
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(&ret.to_network())
        .and_then(|_| stdout.flush())
        .is_err()
    {
        // The MWorker is gone; the events and the job cache have it.
        return 0;
    }
    0
}
