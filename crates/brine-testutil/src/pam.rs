//! A PAM service for tests: /etc/pam.d/brine-test-<pid>-<n>, whose auth
//! and account steps are pam_exec scripts in a temporary directory. The
//! auth script accepts alice, locked, nobody (password `s3cret`) and
//! jürgen (`pässwörd`); the account script refuses the user "locked".
//! Writing /etc/pam.d needs root (as in CI); without it the test fails,
//! saying so.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const CHECK_AUTH: &str = r#"#!/bin/sh
# pam_exec: the user in PAM_USER, the password on stdin (NUL-terminated).
pw=$(tr -d '\000')
case "$PAM_USER:$pw" in
    alice:s3cret|locked:s3cret|jürgen:pässwörd|nobody:s3cret) exit 0 ;;
esac
exit 1
"#;

const CHECK_ACCOUNT: &str = r#"#!/bin/sh
[ "$PAM_USER" = locked ] && exit 1
exit 0
"#;

/// A PAM service file in /etc/pam.d and its scripts, removed when
/// dropped (also while a failing test unwinds).
pub struct PamService {
    /// The service name, for `auth.pam.service`.
    pub name: String,
    path: PathBuf,
    _scripts: tempfile::TempDir,
}

impl PamService {
    /// `extra` lines go before the auth step.
    pub fn new(quiet: bool, extra: &str) -> PamService {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("brine-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let scripts = tempfile::tempdir().unwrap();
        let script = |file: &str, body: &str| -> String {
            let p = scripts.path().join(file);
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p.to_str().unwrap().to_string()
        };
        let auth = script("check-auth", CHECK_AUTH);
        let account = script("check-account", CHECK_ACCOUNT);
        let q = if quiet { " quiet" } else { "" };
        let path = Path::new("/etc/pam.d").join(&name);
        let body = format!(
            "{extra}auth required pam_exec.so expose_authtok{q} {auth}\naccount required pam_exec.so{q} {account}\n"
        );
        if let Err(e) = std::fs::write(&path, body) {
            panic!(
                "cannot write the PAM service {}: {e}. The PAM tests need root (to write /etc/pam.d); run them as root, as CI does",
                path.display()
            );
        }
        PamService {
            name,
            path,
            _scripts: scripts,
        }
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
