//! The `pam` eauth backend through the real libpam, against Python
//! Salt's own `salt.auth.pam` (3007.17, from `scripts/salt-venv`).
//!
//! Each test writes its own PAM service, /etc/pam.d/brine-test-<pid>-<n>,
//! whose auth and account steps are pam_exec scripts in a temporary
//! directory: the auth script accepts alice (and jürgen) with the right
//! password, the account script refuses the user "locked", whose
//! password is right. Writing /etc/pam.d needs root (as here and in
//! CI); without it these tests fail, saying so.

use std::path::Path;
use std::time::{Duration, Instant};

use brine_config::MasterConfig;
use brine_testutil::pam::PamService;
use serde_json::{json, Value as Json};

fn cfg(service: &str) -> MasterConfig {
    let tmp = std::env::temp_dir();
    MasterConfig::from_overrides(
        &tmp,
        serde_json::from_value(json!({"auth.pam.service": service, "external_auth": {"pam": {"alice": [".*"]}}}))
            .unwrap(),
    )
    .unwrap()
}

fn brine_auth(service: &str, user: &str, password: &str) -> bool {
    let backend = brine_auth::eauth::backend("pam").expect("the pam backend is registered");
    backend.auth(&cfg(service), user, password)
}

fn python(script: &str, input: &Json) -> Json {
    let out = brine_testutil::salt_python("3007.17", script, input.to_string().as_bytes());
    serde_json::from_slice(&out).expect("python's JSON")
}

/// Salt's `pam.auth` for each `[service, user, password]`. Salt runs
/// its PAM check in a subprocess of `auth.pam.python` (default
/// /usr/bin/python3); the venv's python is given so that the test does
/// not depend on the system's.
const SALT_PAM: &str = r#"
import json, os, sys, logging
logging.disable(logging.CRITICAL)
import salt.auth.pam as pam
pam.__salt_system_encoding__ = "utf-8"
out = []
for service, user, password in json.load(sys.stdin):
    pam.__opts__ = {"auth.pam.service": service, "auth.pam.python": os.environ["BRINE_VENV_PYTHON"]}
    try:
        ok = bool(pam.auth(user, password))
    except Exception:
        ok = False
    out.append(ok)
json.dump(out, sys.stdout)
"#;

#[test]
fn brine_and_salt_agree_through_pam() {
    let quiet = PamService::new(true, "");
    // Without `quiet` pam_exec reports a failing script through the
    // conversation (PAM_ERROR_MSG), and pam_echo sends PAM_TEXT_INFO.
    let loud = PamService::new(false, "auth optional pam_echo.so Welcome to %s\n");
    let missing = format!("brine-test-{}-none", std::process::id());
    assert!(!Path::new("/etc/pam.d").join(&missing).exists());

    let mut cases: Vec<(String, &str, &str, bool)> = Vec::new();
    for s in [&quiet.name, &loud.name] {
        cases.extend([
            (s.clone(), "alice", "s3cret", true),
            (s.clone(), "alice", "wrong", false),
            (s.clone(), "alice", "", false),
            (s.clone(), "alice", "s3cret ", false),
            (s.clone(), "bob", "s3cret", false),
            (s.clone(), "locked", "s3cret", false),
            (s.clone(), "locked", "wrong", false),
            (s.clone(), "jürgen", "pässwörd", true),
            (s.clone(), "jürgen", "passwort", false),
        ]);
    }
    // A service without a file is PAM's "other" stack, which knows no alice.
    cases.push((missing.clone(), "alice", "s3cret", false));

    let input = Json::Array(cases.iter().map(|(s, u, p, _)| json!([s, u, p])).collect());
    let salt = python(SALT_PAM, &input);
    let salt = salt.as_array().unwrap();
    let mut wrong = Vec::new();
    for ((service, user, password, expect), salt) in cases.iter().zip(salt) {
        let salt = salt.as_bool().unwrap();
        let brine = brine_auth(service, user, password);
        if brine != salt || brine != *expect {
            wrong.push(format!(
                "service {service}, {user:?}/{password:?}: brine {brine}, salt {salt}, expected {expect}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases differ:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_service_option_is_honoured() {
    let service = PamService::new(true, "");
    assert!(brine_auth(&service.name, "alice", "s3cret"));
    let missing = format!("brine-test-{}-absent", std::process::id());
    assert!(!brine_auth(&missing, "alice", "s3cret"));
    // Salt's default service is login, which knows no alice either.
    let backend = brine_auth::eauth::backend("pam").unwrap();
    let default = MasterConfig::from_overrides(&std::env::temp_dir(), serde_json::Map::new()).unwrap();
    assert!(!backend.auth(&default, "alice", "s3cret"));
    // A service that is not a string is refused before PAM is asked.
    let odd = MasterConfig::from_overrides(
        &std::env::temp_dir(),
        serde_json::from_value(json!({"auth.pam.service": ["login"]})).unwrap(),
    )
    .unwrap();
    assert!(!backend.auth(&odd, "alice", "s3cret"));
    // C strings cannot carry a NUL: refused.
    assert!(!brine_auth(&service.name, "alice", "s3cret\0"));
    assert!(!brine_auth(&service.name, "alice\0", "s3cret"));
}

#[test]
fn a_wrong_password_does_not_sleep_in_pam() {
    // pam_faildelay asks PAM to wait 3 s after a failure; Brine's
    // PAM_FAIL_DELAY hook skips the wait.
    let service = PamService::new(true, "auth optional pam_faildelay.so delay=3000000\n");
    let start = Instant::now();
    assert!(!brine_auth(&service.name, "alice", "wrong"));
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1500), "a refusal took {took:?}");
    assert!(brine_auth(&service.name, "alice", "s3cret"));
}

/// Salt's `salt.utils.user.get_group_list` for each user.
const SALT_GROUPS: &str = r#"
import json, sys, logging
logging.disable(logging.CRITICAL)
import salt.utils.user
out = []
for user in json.load(sys.stdin):
    try:
        out.append(salt.utils.user.get_group_list(user))
    except Exception:
        out.append(None)
json.dump(out, sys.stdout)
"#;

#[test]
fn groups_are_salts_group_list() {
    let mut users: Vec<String> = std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect();
    assert!(users.iter().any(|u| u == "root"));
    users.extend(["no-such-user-brine".into(), String::new(), "nul\0user".into()]);
    let salt = python(SALT_GROUPS, &json!(users));
    let backend = brine_auth::eauth::backend("pam").unwrap();
    let cfg = cfg("login");
    let mut wrong = Vec::new();
    for (user, salt) in users.iter().zip(salt.as_array().unwrap()) {
        let salt: Option<Vec<String>> = serde_json::from_value(salt.clone()).unwrap();
        let brine = backend.groups(&cfg, user, "");
        if brine != salt {
            wrong.push(format!("{user:?}: brine {brine:?}, salt {salt:?}"));
        }
    }
    assert!(wrong.is_empty(), "groups differ:\n{}", wrong.join("\n"));
    let root = backend.groups(&cfg, "root", "").unwrap();
    assert!(root.contains(&"root".to_string()), "root's primary group: {root:?}");
}

/// CVE-2022-22967: Salt's PAM backend checked the password only, so a
/// locked or expired account kept its access. The account step must
/// refuse a user whose password is right.
#[test]
fn cve_2022_22967_a_locked_account_is_refused() {
    let service = PamService::new(true, "");
    assert!(brine_auth(&service.name, "alice", "s3cret"), "the control login failed");
    assert!(
        !brine_auth(&service.name, "locked", "s3cret"),
        "a locked account logged in"
    );
}
