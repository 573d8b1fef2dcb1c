//! Finding the Python that has Salt.
//!
//! In order: `python_loader_executable`; the `BRINE_PYTHON_LOADER`
//! environment variable (set for a master started by a tool that knows
//! its Python, such as a test harness); the interpreter of Salt's onedir
//! packages (`/opt/saltstack/salt/bin/python3`); the interpreter named on
//! the `#!` line of an installed Salt CLI on `PATH` (`salt-call`,
//! `salt-minion`, `salt-run`, `salt`; pip and distribution packages
//! write it there); `python3` on `PATH`. The first that imports Salt wins.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use brine_config::MasterConfig;
use brine_proc::command::{self, Limits};

/// A Python with Salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Python {
    pub executable: PathBuf,
    /// `salt.version.__version__`.
    pub salt_version: String,
}

/// Where Salt's onedir packages put their Python.
pub const ONEDIR_PYTHON: &str = "/opt/saltstack/salt/bin/python3";

/// The CLIs whose `#!` line names a Python with Salt.
const SALT_SCRIPTS: [&str; 4] = ["salt-call", "salt-minion", "salt-run", "salt"];

/// The candidates, in the order they are tried.
pub fn candidates(cfg: &MasterConfig) -> Vec<PathBuf> {
    if let Some(p) = cfg.get_str("python_loader_executable").filter(|s| !s.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os(crate::worker::PYTHON_ENV).filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    out.push(PathBuf::from(ONEDIR_PYTHON));
    let path = std::env::var_os("PATH").unwrap_or_default();
    for script in SALT_SCRIPTS {
        for dir in std::env::split_paths(&path) {
            if let Some(py) = shebang(&dir.join(script)) {
                out.push(py);
            }
        }
    }
    for dir in std::env::split_paths(&path) {
        out.push(dir.join("python3"));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| p.is_file() && seen.insert(p.clone()));
    out
}

/// The interpreter a script's `#!` line names (`#!/usr/bin/env python3`
/// is left to the `python3` candidate).
fn shebang(script: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(script).ok()?.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?.lines().next()?;
    let interp = line.strip_prefix("#!")?.split_whitespace().next()?;
    let p = PathBuf::from(interp);
    let name = p.file_name()?.to_str()?;
    (name.starts_with("python") && p.is_absolute()).then_some(p)
}

/// Salt's version as `exe` imports it, or why it cannot.
pub fn salt_version(exe: &Path) -> Result<String, String> {
    let mut cmd = Command::new(exe);
    cmd.args([
        "-c",
        "import sys, salt.version; sys.stdout.write(salt.version.__version__)",
    ])
    .stdin(Stdio::null())
    .env_remove("PYTHONHOME");
    let limits = Limits {
        timeout: Duration::from_secs(30),
        max_stdout: 4096,
        max_stderr: 64 * 1024,
    };
    let out = command::run(&mut cmd, &limits).map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        return Err(format!("it cannot import salt ({last})"));
    }
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if v.is_empty() {
        return Err("it printed no Salt version".into());
    }
    Ok(v)
}

/// The first candidate that imports Salt, or what was tried.
pub fn find(cfg: &MasterConfig) -> Result<Python, String> {
    let cands = candidates(cfg);
    if cands.is_empty() {
        return Err(match cfg.get_str("python_loader_executable") {
            Some(p) => format!("python_loader_executable {p} is not a file"),
            None => "no Python found (python_loader_executable is not set, no Salt onedir, no python3 on PATH)".into(),
        });
    }
    let mut tried = Vec::new();
    for exe in cands {
        match salt_version(&exe) {
            Ok(salt_version) => {
                return Ok(Python {
                    executable: exe,
                    salt_version,
                })
            }
            Err(e) => tried.push(format!("{}: {e}", exe.display())),
        }
    }
    Err(format!("no Python with Salt: {}", tried.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_names_absolute_pythons_only() {
        let d = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str| {
            let p = d.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        assert_eq!(
            shebang(&w("a", "#!/opt/venv/bin/python3.11\nimport salt\n")),
            Some(PathBuf::from("/opt/venv/bin/python3.11"))
        );
        assert_eq!(shebang(&w("b", "#!/usr/bin/env python3\n")), None);
        assert_eq!(shebang(&w("c", "#!/bin/sh\nexec python3\n")), None);
        assert_eq!(shebang(&w("d", "\x7fELF")), None);
        assert_eq!(shebang(&d.path().join("missing")), None);
    }
}
