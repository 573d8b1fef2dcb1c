//! One request in a Python process of its own: a runner job's Python.
//!
//! Salt runs each runner job in a process of its own; a Python runner can
//! take minutes (an orchestration's waits, a cloud call), so it does not
//! hold a worker of the pool that compiles pillars. The runner job's
//! process (already off the MWorkers) starts Python with the worker's code
//! in one-shot mode: the request on its standard input, the answer on its
//! standard output, both as the pool's frames. Python is the one the
//! ProcessManager found at start ([`crate::worker::PYTHON_ENV`]).

use std::io::Seek;
use std::os::fd::FromRawFd;
use std::process::Stdio;
use std::time::Duration;

use brine_config::MasterConfig;
use brine_proc::command::{self, Limits, RunError};
use brine_proto::Value;

use crate::client::{answer_value, write_frame, LoaderError, MAX_ANSWER};
use crate::worker::{self, PYTHON_ENV};

/// The Python the ProcessManager found, if any.
pub fn python() -> Option<std::path::PathBuf> {
    std::env::var_os(PYTHON_ENV).filter(|p| !p.is_empty()).map(Into::into)
}

/// The Python for a process the ProcessManager did not start (a CLI):
/// found as the master finds it, once, and remembered in the
/// environment. Call it while the process has one thread.
pub fn ensure_python(cfg: &MasterConfig) -> bool {
    if python().is_some() {
        return true;
    }
    match crate::python::find(cfg) {
        Ok(p) => {
            std::env::set_var(PYTHON_ENV, &p.executable);
            true
        }
        Err(_) => false,
    }
}

/// Run `req` in a Python process titled `title`, for at most `timeout`.
pub fn call(cfg: &MasterConfig, req: &Value, timeout: Duration, title: &str) -> Result<Value, LoaderError> {
    let python = python().ok_or_else(|| LoaderError::Unavailable("no Python with Salt was found at start".into()))?;
    let body = req.to_network();
    let mut input = memfd().map_err(|e| LoaderError::Protocol(format!("cannot hold the request: {e}")))?;
    write_frame(&mut input, &body)
        .and_then(|()| input.rewind())
        .map_err(|e| LoaderError::Protocol(format!("cannot hold the request: {e}")))?;
    let base = brine_proc::title::original_command_line();
    let mut cmd = worker::command(&python, &cfg.conf_file, title, &base);
    cmd.env("BRINE_LOADER_ONESHOT", "1");
    if let Some(fd) = brine_log::forward_fd() {
        cmd.env("BRINE_LOG_FD", fd.to_string());
        use std::os::unix::process::CommandExt;
        // SAFETY: fcntl only, between fork and exec.
        unsafe { cmd.pre_exec(move || worker::inherit(fd)) };
    }
    let limits = Limits {
        timeout,
        max_stdout: MAX_ANSWER,
        max_stderr: 64 * 1024,
    };
    let out = command::run_with_stdin(&mut cmd, &limits, Stdio::from(input)).map_err(|e| match e {
        RunError::Timeout(t) => LoaderError::ProcessTimeout(t),
        e => LoaderError::Protocol(format!("{}: {e}", python.display())),
    })?;
    let stdout = out.stdout;
    if stdout.len() < 4 {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        return Err(LoaderError::Protocol(format!(
            "Python exited ({}) without an answer: {last}",
            out.status
        )));
    }
    let n = u32::from_be_bytes([stdout[0], stdout[1], stdout[2], stdout[3]]) as usize;
    let body = stdout
        .get(4..4 + n)
        .ok_or_else(|| LoaderError::Protocol("the answer was cut short".into()))?;
    let answer = Value::decode(body).map_err(|e| LoaderError::Protocol(format!("the answer is not msgpack: {e}")))?;
    answer_value(answer, 0)
}

fn memfd() -> std::io::Result<std::fs::File> {
    // SAFETY: memfd_create with a static NUL-terminated name; the new
    // descriptor is owned by the File.
    let fd = unsafe { libc::memfd_create(c"brine-loader-request".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}
