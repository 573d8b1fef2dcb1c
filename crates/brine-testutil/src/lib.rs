//! Helpers shared by the integration tests of several crates: the Python
//! Salt venvs `scripts/salt-venv` builds, free loopback ports, polling,
//! /proc queries about processes the tests started, and a [`Tmpfs`] to make
//! a directory full or read-only.
//! [`postgres::PgServer`]: a private PostgreSQL server (the pgjsonb job cache).

pub mod pam;
pub mod postgres;
mod tmpfs;

pub use tmpfs::Tmpfs;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// The venv of Python Salt `version` (built by `scripts/salt-venv` under
/// `$BRINE_SALT_CACHE`, default `~/.cache/brine`); panics with the command
/// to run when it is missing.
pub fn salt_venv(version: &str) -> PathBuf {
    let cache = std::env::var_os("BRINE_SALT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/brine"));
    let v = cache.join(format!("salt-{version}"));
    assert!(
        v.join(".brine-complete").exists(),
        "Python Salt {version} is not installed at {}: run scripts/salt-venv (scripts/test does)",
        v.display()
    );
    v
}

/// Run `script` with the Python of Salt `version`'s venv, `input` on its
/// stdin: its stdout. Panics with Python's stderr when it fails. The
/// venv's python is in `$BRINE_VENV_PYTHON` for scripts that start
/// another (Salt's PAM check runs in a subprocess).
pub fn salt_python(version: &str, script: &str, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let python = salt_venv(version).join("bin/python");
    let mut child = Command::new(&python)
        .args(["-c", script])
        .env("BRINE_VENV_PYTHON", &python)
        .env("PYTHONHASHSEED", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the venv's python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to python");
    let out = child.wait_with_output().expect("python's output");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether something accepts connections on 127.0.0.1:port.
pub fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Poll `f` every 5 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}

/// The fields of /proc/PID/stat after the command name.
pub fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(String::from).collect())
}

pub fn ppid(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// Alive and not a zombie.
pub fn alive(pid: i32) -> bool {
    match stat_fields(pid) {
        Some(f) => f.first().map(String::as_str) != Some("Z"),
        None => false,
    }
}

/// Living children of `parent`, sorted.
pub fn children_of(parent: i32) -> Vec<i32> {
    let mut out: Vec<i32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&p| ppid(p) == Some(parent) && alive(p))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Stop a child started with `process_group(0)` and everything in its
/// group: SIGTERM, up to `grace` for the group to go, then SIGKILL.
pub fn stop_group(child: &mut Child, grace: Duration) {
    use nix::sys::signal::{killpg, Signal};
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = killpg(pgid, Signal::SIGTERM);
    if !wait_until(grace, || {
        let _ = child.try_wait();
        killpg(pgid, None).is_err()
    }) {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    let _ = child.wait();
}
