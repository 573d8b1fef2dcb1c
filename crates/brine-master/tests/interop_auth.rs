//! Real salt-minions (3006.30 and 3007.17, from `scripts/salt-venv`)
//! authenticating against Brine: pending, accepted with Brine's salt-key,
//! rejected, denied, auto_accept, autosign_file, and the salt/auth events.

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use brine_py::clean_key;
use common::minion::{run_cli, venv, Minion};
use common::*;

const PENDING: &str = "The Salt Master has cached the public key for this node";
const ACCEPTED: &str = "Got new master aes key";
const REJECTED: &str = "The Salt Master has rejected this minion's public key";

fn salt_key(env: &Env, args: &[&str]) -> String {
    let (out, err, code) = run_cli(&env.conf_dir, "salt-key", args);
    assert_eq!(code, 0, "salt-key {args:?}: {err}");
    out
}

fn python_salt_key(env: &Env, args: &[&str]) -> String {
    let out = Command::new(venv("3007.17").join("bin/salt-key"))
        .arg("-c")
        .arg(&env.conf_dir)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Keys listed under `section` ("Accepted Keys:", "Unaccepted Keys:", …).
fn listed(out: &str, section: &str) -> Vec<String> {
    let mut in_section = false;
    let mut ids = Vec::new();
    for line in out.lines() {
        if line.ends_with("Keys:") {
            in_section = line == section;
        } else if in_section && !line.trim().is_empty() {
            ids.push(line.trim().to_string());
        }
    }
    ids
}

fn pending_then_accepted(version: &str) {
    let env = Env::new(3);
    let mut m = env.start();
    m.wait_ready();
    let minion = Minion::start(&env, version, "m1", "");
    assert!(
        minion.wait_log(PENDING, Duration::from_secs(60)),
        "minion {version} pending:\n{}",
        minion.log()
    );
    let out = salt_key(&env, &["-L"]);
    assert_eq!(listed(&out, "Unaccepted Keys:"), vec!["m1"], "{out}");
    assert!(minion.master_pub().is_none(), "no master key before acceptance");
    assert_eq!(
        clean_key(&read(&env.root().join("pki/minions_pre/m1"))),
        clean_key(&minion.public_key()),
        "pending key stored as the minion sent it"
    );

    salt_key(&env, &["-y", "-a", "m1"]);
    assert!(
        minion.wait_log(ACCEPTED, Duration::from_secs(30)),
        "minion {version} accepted:\n{}",
        minion.log()
    );
    let master_pub = read(&env.root().join("pki/master.pub"));
    assert_eq!(clean_key(&minion.master_pub().unwrap()), clean_key(&master_pub));
    assert_eq!(listed(&salt_key(&env, &["-L"]), "Accepted Keys:"), vec!["m1"]);
    // Python Salt's salt-key sees the same state on the same pki_dir.
    assert_eq!(listed(&python_salt_key(&env, &["-L"]), "Accepted Keys:"), vec!["m1"]);
    // The session key Salt keeps per minion.
    assert!(env.root().join("cache/sessions/m1").exists());
    m.remember_tree();
}

#[test]
fn minion_3006_pending_then_accepted() {
    pending_then_accepted("3006.30");
}

#[test]
fn minion_3007_pending_then_accepted() {
    pending_then_accepted("3007.17");
}

#[test]
fn rejected_minion_never_gets_the_master_key() {
    let env = Env::new(3);
    let mut m = env.start();
    m.wait_ready();
    let minion = Minion::start(&env, "3007.17", "bad1", "");
    assert!(minion.wait_log(PENDING, Duration::from_secs(60)), "{}", minion.log());
    salt_key(&env, &["-y", "-r", "bad1"]);
    assert!(minion.wait_log(REJECTED, Duration::from_secs(30)), "{}", minion.log());
    std::thread::sleep(Duration::from_secs(3));
    assert!(minion.master_pub().is_none());
    assert!(!minion.log().contains(ACCEPTED));
    assert_eq!(listed(&salt_key(&env, &["-L"]), "Rejected Keys:"), vec!["bad1"]);
    m.remember_tree();
}

#[test]
fn a_new_key_for_an_accepted_id_is_denied() {
    let env = Env::with_extra(3, "auto_accept: True\n");
    let mut m = env.start();
    m.wait_ready();
    let mut minion = Minion::start(&env, "3006.30", "dup", "");
    assert!(minion.wait_log(ACCEPTED, Duration::from_secs(60)), "{}", minion.log());
    let first_key = read(&env.root().join("pki/minions/dup"));
    // Same id, new key pair (and no cached master key): an impostor.
    minion.stop();
    for f in ["minion.pem", "minion.pub", "minion_master.pub"] {
        std::fs::remove_file(minion.pki().join(f)).unwrap();
    }
    std::fs::write(minion.root.join("var/log/salt/minion"), "").unwrap();
    minion.restart();
    assert!(minion.wait_log(REJECTED, Duration::from_secs(60)), "{}", minion.log());
    assert_eq!(
        read(&env.root().join("pki/minions/dup")),
        first_key,
        "accepted key untouched"
    );
    assert_eq!(
        clean_key(&read(&env.root().join("pki/minions_denied/dup"))),
        clean_key(&minion.public_key())
    );
    assert!(minion.master_pub().is_none(), "the impostor never gets the master key");
    m.remember_tree();
}

#[test]
fn autosign_file_accepts_matching_ids_only() {
    let env = Env::new(3);
    let autosign = env.root().join("autosign.conf");
    std::fs::write(&autosign, "# comment\nweb*\nexact1\n").unwrap();
    std::fs::set_permissions(&autosign, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let master = env.conf_dir.join("master");
    std::fs::write(
        &master,
        format!("{}autosign_file: {}\n", read(&master), autosign.display()),
    )
    .unwrap();
    let mut m = env.start();
    m.wait_ready();
    let web = Minion::start(&env, "3007.17", "web1", "");
    let other = Minion::start(&env, "3007.17", "db1", "");
    assert!(web.wait_log(ACCEPTED, Duration::from_secs(60)), "{}", web.log());
    assert!(other.wait_log(PENDING, Duration::from_secs(60)), "{}", other.log());
    assert!(other.master_pub().is_none());
    let out = salt_key(&env, &["-L"]);
    assert_eq!(listed(&out, "Accepted Keys:"), vec!["web1"]);
    assert_eq!(listed(&out, "Unaccepted Keys:"), vec!["db1"]);
    m.remember_tree();
}

#[test]
fn auth_events_reach_the_event_bus() {
    let env = Env::with_extra(3, "auto_accept: True\n");
    let mut m = env.start();
    m.wait_ready();
    let mut sub = UnixStream::connect(env.sock("master_event_pub.ipc")).unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let minion = Minion::start(&env, "3007.17", "ev1", "");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let mut seen = None;
    while seen.is_none() {
        let n = sub.read(&mut chunk).expect("an event within 60 s");
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(Some(len)) = brine_proto::msgpack::value_len(&buf) {
            let frame: Vec<u8> = buf.drain(..len).collect();
            let (tag, data) = brine_proto::event::unpack_frame(&frame).unwrap();
            if tag == "salt/auth" && data.get("act").and_then(|v| v.as_str()) == Some("accept") {
                seen = Some(data);
            }
        }
    }
    let data = seen.unwrap();
    assert_eq!(data.get("id").and_then(|v| v.as_str()), Some("ev1"));
    assert_eq!(data.get("result").and_then(|v| v.as_bool()), Some(true));
    assert_eq!(
        clean_key(data.get("pub").and_then(|v| v.as_str()).unwrap()),
        clean_key(&minion.public_key())
    );
    m.remember_tree();
}
