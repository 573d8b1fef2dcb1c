//! An external command run to completion within limits: a deadline for the
//! whole run and a bound on what it may write, so a hung or chatty command
//! cannot hold the calling process (an MWorker) forever or fill its
//! memory.
//!
//! The command runs in a process group of its own, with stdin from
//! `/dev/null` and the signal dispositions a fresh process has; when a
//! limit is hit the whole group is killed (SIGKILL), so a shell and the
//! pipeline it started go together. Its standard error is kept up to a
//! bound of its own, for the caller to log.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::supervisor::poll_fds;

/// How long a command may run and how much it may write.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    /// Standard output beyond this many bytes fails the run.
    pub max_stdout: usize,
    /// Standard error beyond this many bytes is read and dropped.
    pub max_stderr: usize,
}

/// A finished command.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// The first `max_stderr` bytes.
    pub stderr: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the command: {0}")]
    Spawn(io::Error),
    #[error("the command did not finish within {0:?} and was killed")]
    Timeout(Duration),
    #[error("the command wrote more than {0} bytes and was killed")]
    TooLarge(usize),
    #[error("reading the command's output: {0}")]
    Io(io::Error),
}

/// Signals a process may have been told to ignore or handle (Brine's
/// processes ignore SIGINT, for one); an ignored signal stays ignored
/// across exec, so they are put back to their defaults in the child.
const RESET: [libc::c_int; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCHLD,
];

/// Put the signals in [`RESET`] back to their defaults: for a child
/// between fork and exec (only `signal`, async-signal-safe).
pub fn reset_signals() {
    for sig in RESET {
        // SAFETY: signal(2) with SIG_DFL, async-signal-safe.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// Run `cmd` (its stdin, stdout, stderr and process group are set here)
/// and wait for it within `limits`.
pub fn run(cmd: &mut Command, limits: &Limits) -> Result<Output, RunError> {
    run_with(cmd, limits, false, None)
}

/// [`run`], with `stdin` (a file, a memfd) as the command's standard
/// input instead of `/dev/null`.
pub fn run_with_stdin(cmd: &mut Command, limits: &Limits, stdin: Stdio) -> Result<Output, RunError> {
    run_with(cmd, limits, false, Some(stdin))
}

/// [`run`], with standard error written into standard output (as a
/// shell's `2>&1`); `Output::stderr` is empty.
pub fn run_merged(cmd: &mut Command, limits: &Limits) -> Result<Output, RunError> {
    run_with(cmd, limits, true, None)
}

fn run_with(cmd: &mut Command, limits: &Limits, merged: bool, stdin: Option<Stdio>) -> Result<Output, RunError> {
    let mut merged_out = None;
    if merged {
        let (r, w) = io::pipe().map_err(RunError::Spawn)?;
        cmd.stdout(w.try_clone().map_err(RunError::Spawn)?).stderr(w);
        merged_out = Some(r);
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    cmd.stdin(stdin.unwrap_or_else(Stdio::null)).process_group(0);
    // SAFETY: only async-signal-safe calls (signal) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            reset_signals();
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    // The command keeps the write ends of a merged pipe: drop them here, or
    // the pipe never ends.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = spawned.map_err(RunError::Spawn)?;
    let deadline = Instant::now() + limits.timeout;
    let pipes: Pipes = match merged_out {
        Some(r) => (Some(Box::new(r)), None),
        None => (
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Pipe>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Pipe>),
        ),
    };
    match collect(pipes, limits, deadline) {
        Ok((stdout, stderr)) => {
            let status = wait_until(&mut child, deadline).ok_or_else(|| {
                kill(&mut child);
                RunError::Timeout(limits.timeout)
            })?;
            Ok(Output { status, stdout, stderr })
        }
        Err(e) => {
            kill(&mut child);
            Err(e)
        }
    }
}

/// A pipe from the child.
trait Pipe: Read + AsRawFd {}
impl<T: Read + AsRawFd> Pipe for T {}

/// The child's stdout and stderr (or one merged pipe and `None`).
type Pipes = (Option<Box<dyn Pipe>>, Option<Box<dyn Pipe>>);

/// Both pipes read to their end (or a limit).
fn collect(
    (mut out_pipe, mut err_pipe): Pipes,
    limits: &Limits,
    deadline: Instant,
) -> Result<(Vec<u8>, Vec<u8>), RunError> {
    for fd in [
        out_pipe.as_ref().map(|p| p.as_raw_fd()),
        err_pipe.as_ref().map(|p| p.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        set_nonblocking(fd).map_err(RunError::Io)?;
    }
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    while out_pipe.is_some() || err_pipe.is_some() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RunError::Timeout(limits.timeout));
        }
        let fds: Vec<i32> = [
            out_pipe.as_ref().map(|p| p.as_raw_fd()),
            err_pipe.as_ref().map(|p| p.as_raw_fd()),
        ]
        .into_iter()
        .flatten()
        .collect();
        poll_fds(&fds, Some(left)).map_err(RunError::Io)?;
        if let Some(p) = out_pipe.as_mut() {
            if drain(p.as_mut(), &mut buf, &mut stdout, limits.max_stdout).map_err(RunError::Io)? {
                out_pipe = None;
            }
            if stdout.len() > limits.max_stdout {
                return Err(RunError::TooLarge(limits.max_stdout));
            }
        }
        if let Some(p) = err_pipe.as_mut() {
            if drain(p.as_mut(), &mut buf, &mut stderr, limits.max_stderr).map_err(RunError::Io)? {
                err_pipe = None;
            }
        }
    }
    stderr.truncate(limits.max_stderr);
    Ok((stdout, stderr))
}

/// Read what is there (at most 16 reads, so the caller's deadline is
/// looked at between bursts); `true` at the end of the stream. `into`
/// keeps at most `keep + 1` bytes: one past the bound is enough to tell.
fn drain(pipe: &mut dyn Pipe, buf: &mut [u8], into: &mut Vec<u8>, keep: usize) -> io::Result<bool> {
    for _ in 0..16 {
        match pipe.read(buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                let room = (keep + 1).saturating_sub(into.len()).min(n);
                into.extend_from_slice(&buf[..room]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Make `fd` non-blocking (the pipes a caller polls).
pub fn set_nonblocking(fd: i32) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    fcntl(
        fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(io::Error::from)?;
    Ok(())
}

/// The exit status, if the child ends before `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return None,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Kill the child's process group and reap the child.
fn kill(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    fn limits(timeout_ms: u64, max: usize) -> Limits {
        Limits {
            timeout: Duration::from_millis(timeout_ms),
            max_stdout: max,
            max_stderr: 16,
        }
    }

    #[test]
    fn output_status_and_stderr_bound() {
        let out = run(
            &mut sh("printf 'a: 1\\n'; printf '%0100d' 0 >&2; exit 3"),
            &limits(10_000, 1 << 20),
        )
        .unwrap();
        assert_eq!(out.stdout, b"a: 1\n");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stderr.len(), 16, "stderr is kept up to its bound");
        // stdin is /dev/null: `cat` ends at once.
        let out = run(&mut sh("cat; echo done"), &limits(10_000, 1 << 20)).unwrap();
        assert_eq!(out.stdout, b"done\n");
        let out = run_merged(&mut sh("echo out; echo err >&2; echo out2"), &limits(10_000, 1 << 20)).unwrap();
        assert_eq!(out.stdout, b"out\nerr\nout2\n");
        assert!(out.stderr.is_empty());
    }

    #[test]
    fn a_hung_command_and_its_children_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let script = format!("sleep 30 & sleep 1 && touch {}; wait", marker.display());
        let t = Instant::now();
        let e = run(&mut sh(&script), &limits(300, 1 << 20)).unwrap_err();
        assert!(matches!(e, RunError::Timeout(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!marker.exists(), "the group was killed with the shell");
    }

    #[test]
    fn too_much_output_is_refused() {
        let e = run(&mut sh("yes"), &limits(10_000, 100_000)).unwrap_err();
        assert!(matches!(e, RunError::TooLarge(100_000)), "{e}");
        let e = run(&mut Command::new("/nonexistent/cmd"), &limits(1000, 10)).unwrap_err();
        assert!(matches!(e, RunError::Spawn(_)), "{e}");
    }
}
