//! `master_sign_pubkey`: the master vouches for master.pub in its auth
//! replies (`pub_sig`) with a signing key pair, and a real salt-minion
//! 3007.17 with `verify_master_pubkey_sign: True` and the master's
//! `master_sign.pub` in its pki dir checks it. Run against Brine's master
//! and then Python's (3007.17) on the same configuration, comparing what
//! each side shows: the key files and their modes, a minion with the right
//! verification key (accepted, jobs run), one with a wrong key (refuses the
//! master), one that does not verify (refuses a signed reply, as Salt's
//! `check_auth_deps` does); then the same with the ready-made signature
//! file of `master_use_pubkey_signature` (`salt-key --gen-signature`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use brine_proto::crypto::PrivateKey;
use common::minion::{run_cli, Minion, READY};
use common::pysalt::{py, EitherMaster};
use common::*;

const VERSION: &str = "3007.17";
const VERIFIED: &str =
    "Successfully verified signature of master public key with verification public key master_sign.pub";
const BAD_SIGNATURE: &str = "but signature verification failed!";
const NOT_VERIFYING: &str = "The masters sent its public-key signature, but signature verification is not enabled";

fn side(brine: bool) -> &'static str {
    if brine {
        "Brine"
    } else {
        "Python"
    }
}

/// A minion of `env` whose pki dir holds `sign_pub` as master_sign.pub
/// before it starts.
fn minion_with(env: &Env, id: &str, sign_pub: Option<&[u8]>, extra: &str) -> Minion {
    if let Some(key) = sign_pub {
        // Minion::start roots the minion at <env>/minion-<id>.
        let pki = env.root().join(format!("minion-{id}/etc/salt/pki/minion"));
        std::fs::create_dir_all(&pki).unwrap();
        std::fs::write(pki.join("master_sign.pub"), key).unwrap();
    }
    Minion::start(env, VERSION, id, extra)
}

fn mode(path: &std::path::Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{:o}", m.permissions().mode() & 0o7777),
        Err(e) => format!("missing ({e})"),
    }
}

/// What one master (Brine's or Python's) shows, step by step.
fn scenario(brine: bool) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    let env = Env::with_extra(2, "auto_accept: True\nmaster_sign_pubkey: True\n");
    let master = EitherMaster::start(&env, !brine, VERSION);
    let pki = env.root().join("pki");
    for name in ["master_sign.pem", "master_sign.pub"] {
        seen.push((format!("mode of {name}"), mode(&pki.join(name))));
    }
    let sign_pub = std::fs::read(pki.join("master_sign.pub")).unwrap();
    let wrong_pub = PrivateKey::generate(2048).unwrap().public_key().to_pem_spki().unwrap();

    let verify = "verify_master_pubkey_sign: True\n";
    let good = minion_with(&env, "good1", Some(&sign_pub), verify);
    let wrong = minion_with(&env, "wrong1", Some(&wrong_pub), verify);
    let plain = minion_with(&env, "plain1", None, "");
    assert!(
        good.wait_log(READY, Duration::from_secs(90)),
        "{}: {}",
        side(brine),
        good.log()
    );
    seen.push(("good1 verified".into(), good.log().contains(VERIFIED).to_string()));
    for (m, needle) in [(&wrong, BAD_SIGNATURE), (&plain, NOT_VERIFYING)] {
        assert!(
            m.wait_log(needle, Duration::from_secs(60)),
            "{}: {} never said {needle:?}: {}",
            side(brine),
            m.id,
            m.log()
        );
        // Refused for good: it keeps trying and never serves.
        seen.push((format!("{} ready", m.id), m.log().contains(READY).to_string()));
        seen.push((
            format!("{} cached the master key", m.id),
            m.master_pub().is_some().to_string(),
        ));
    }
    std::thread::sleep(Duration::from_secs(2));
    let salt = |args: &[&str]| {
        let (out, err, code) = if brine {
            run_cli(&env.conf_dir, "salt", args)
        } else {
            py(&env, VERSION, "salt", args)
        };
        (format!("{out}{err}"), code)
    };
    let (out, code) = salt(&["good1", "test.ping", "-t", "30"]);
    assert_eq!((code, out.as_str()), (0, "good1:\n    True\n"), "{}", side(brine));
    seen.push(("salt good1 test.ping".into(), out));
    drop((good, wrong, plain));

    // master_use_pubkey_signature: the signature of master.pub made ahead
    // by Python's `salt-key --gen-signature` (with master_sign.pem), sent
    // as it is; no signing key is needed at run time.
    drop(master);
    let (out, err, code) = py(&env, VERSION, "salt-key", &["--gen-signature"]);
    assert_eq!(code, 0, "{out}{err}");
    let conf = env.conf_dir.join("master");
    std::fs::write(&conf, format!("{}master_use_pubkey_signature: True\n", read(&conf))).unwrap();
    let _master = EitherMaster::start(&env, !brine, VERSION);
    let from_file = minion_with(&env, "file1", Some(&sign_pub), verify);
    assert!(
        from_file.wait_log(READY, Duration::from_secs(90)),
        "{}: {}",
        side(brine),
        from_file.log()
    );
    seen.push(("file1 verified".into(), from_file.log().contains(VERIFIED).to_string()));
    seen
}

#[test]
fn master_sign_pubkey_brine_as_python() {
    let brine = scenario(true);
    let python = scenario(false);
    assert_eq!(brine, python);
    let step = |name: &str| brine.iter().find(|(s, _)| s == name).map(|(_, v)| v.as_str());
    // Salt's gen_keys: the private key under umask 0277, the public 0644.
    assert_eq!(step("mode of master_sign.pem"), Some("400"));
    assert_eq!(step("mode of master_sign.pub"), Some("644"));
    for (name, want) in [
        ("good1 verified", "true"),
        ("file1 verified", "true"),
        ("wrong1 ready", "false"),
        ("wrong1 cached the master key", "false"),
        ("plain1 ready", "false"),
        ("plain1 cached the master key", "false"),
    ] {
        assert_eq!(step(name), Some(want), "{name}");
    }
}

/// With `master_use_pubkey_signature` and no signature file, the master
/// does not start, as Salt's does not (it exits with status 1).
#[test]
fn a_missing_pubkey_signature_file_stops_the_master() {
    let env = Env::with_extra(1, "master_sign_pubkey: True\nmaster_use_pubkey_signature: True\n");
    let mut m = env.start();
    let status = m.wait_exit(Duration::from_secs(20)).expect("the master exits");
    assert!(!status.success());
    let err = stderr_of(&env);
    assert!(err.contains("no signature file found"), "{err}");
}
