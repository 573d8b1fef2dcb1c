//! Brine's salt-key against Python Salt's (3006.30 and 3007.17, from
//! `scripts/salt-venv`) on identical copies of a pki dir: same output, same
//! resulting key state, and each tool sees what the other did.

use std::path::{Path, PathBuf};
use std::process::Command;

fn venv_bin(version: &str) -> PathBuf {
    brine_testutil::salt_venv(version).join("bin/salt-key")
}

fn privkey() -> String {
    let k = openssl::rsa::Rsa::generate(2048).unwrap();
    String::from_utf8(k.private_key_to_pem().unwrap()).unwrap()
}

fn pubkey() -> String {
    let k = openssl::rsa::Rsa::generate(2048).unwrap();
    String::from_utf8(k.public_key_to_pem().unwrap()).unwrap()
}

/// A config dir + pki dir with keys in every state.
fn setup(root: &Path, keys: &[(&str, &str, &str)]) -> PathBuf {
    let conf = root.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    let r = root.display();
    std::fs::write(
        conf.join("master"),
        format!("root_dir: {r}\npki_dir: {r}/pki\ncachedir: {r}/cache\nsock_dir: {r}/sock\nlog_file: {r}/log\nkey_logfile: {r}/keylog\nuser: {}\n", whoami()),
    )
    .unwrap();
    for d in ["minions", "minions_pre", "minions_rejected", "minions_denied"] {
        std::fs::create_dir_all(root.join("pki").join(d)).unwrap();
    }
    std::fs::create_dir_all(root.join("cache")).unwrap();
    for (dir, id, pem) in keys {
        std::fs::write(root.join("pki").join(dir).join(id), pem).unwrap();
    }
    conf
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn run(bin: &Path, conf: &Path, args: &[&str]) -> (String, i32) {
    let out = Command::new(bin).arg("-c").arg(conf).args(args).output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn compare(version: &str) {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_salt-key"));
    let python = venv_bin(version);
    let keys: Vec<(String, String, String)> = [
        ("minions", "a1"),
        ("minions", "a2"),
        ("minions_pre", "p1"),
        ("minions_pre", "p2"),
        ("minions_pre", "web3"),
        ("minions_rejected", "r1"),
        ("minions_denied", "d1"),
    ]
    .iter()
    .map(|(d, id)| (d.to_string(), id.to_string(), pubkey()))
    .chain([
        ("minions_pre".to_string(), "bad".to_string(), "not a key\n".to_string()),
        (".".to_string(), "master.pem".to_string(), privkey()),
        (".".to_string(), "master.pub".to_string(), pubkey()),
    ])
    .collect();
    let keys: Vec<(&str, &str, &str)> = keys
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let conf_a = setup(a.path(), &keys);
    let conf_b = setup(b.path(), &keys);
    for args in [
        &["-L"][..],
        &["-L", "--out", "json"],
        &["-L", "--out", "yaml"],
        &["-L", "--out", "txt"],
        &["-l", "un"],
        &["-l", "acc"],
        &["-l", "rej"],
        &["-l", "den"],
        &["-f", "a1"],
        &["-F"],
        &["-F", "--out", "json"],
        &["-p", "p1"],
        &["-P"],
        &["-a", "p1", "-y"],
        &["-a", "nope", "-y"],
        &["-r", "p2", "-y"],
        &["-a", "r1", "-y", "--include-rejected"],
        &["-a", "web*", "-y"],
        &["-a", "bad", "-y"],
        &["-F", "--out", "yaml"],
        &["-p", "a*"],
        &["-r", "a1", "--include-all", "-y"],
        &["-r", "nope", "--include-all", "-y"],
        &["-d", "nope", "-y"],
        &["-a", "r1,a1", "-y", "--include-rejected"],
        &["-d", "a2", "-y"],
        &["-L"],
        &["-D", "-y"],
        &["-L", "--out", "json"],
    ] {
        let (py, py_rc) = run(&python, &conf_a, args);
        let (rs, rs_rc) = run(&ours, &conf_b, args);
        assert_eq!(rs, py, "salt-key {args:?} differs from Python Salt {version}");
        assert_eq!(rs_rc, py_rc, "exit code of salt-key {args:?}");
    }
}

#[test]
fn same_output_as_salt_3006() {
    compare("3006.30");
}

#[test]
fn same_output_as_salt_3007() {
    compare("3007.17");
}

#[test]
fn each_tool_sees_the_others_changes() {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_salt-key"));
    let python = venv_bin("3007.17");
    let (k1, k2) = (pubkey(), pubkey());
    let d = tempfile::tempdir().unwrap();
    let conf = setup(d.path(), &[("minions_pre", "m1", &k1), ("minions_pre", "m2", &k2)]);
    run(&ours, &conf, &["-a", "m1", "-y"]);
    assert!(run(&python, &conf, &["-l", "acc"]).0.contains("m1"));
    run(&python, &conf, &["-a", "m2", "-y"]);
    assert_eq!(run(&ours, &conf, &["-l", "acc"]).0, "Accepted Keys:\nm1\nm2\n");
    assert_eq!(
        std::fs::read_to_string(d.path().join("pki/minions/m1")).unwrap(),
        k1,
        "key content untouched"
    );
}

#[test]
fn bad_arguments_are_refused() {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_salt-key"));
    let d = tempfile::tempdir().unwrap();
    let conf = setup(d.path(), &[]);
    let out = Command::new(&ours)
        .arg("-c")
        .arg(&conf)
        .args(["-l", "bogus"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = Command::new(&ours).args(["--frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // An id that would escape the pki dir never reaches the filesystem.
    let out = Command::new(&ours)
        .arg("-c")
        .arg(&conf)
        .args(["-a", "../../etc/passwd", "-y"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("does not match any unaccepted keys"));
}

/// The minion data caches left under `cachedir/minions`.
fn caches(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("cache/minions"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `salt-key -d` drops the data cache of every minion left without a key
/// unless `preserve_minion_cache`, and asks for an AES rotation: the same
/// as Python's salt-key, for both values.
#[test]
fn delete_honours_preserve_minion_cache() {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_salt-key"));
    let python = venv_bin("3007.17");
    let keys: Vec<(String, String)> = [("minions", "a1"), ("minions", "a2"), ("minions_pre", "p1")]
        .iter()
        .map(|(d, id)| (d.to_string(), id.to_string()))
        .collect();
    let pems: Vec<String> = keys.iter().map(|_| pubkey()).collect();
    let keys: Vec<(&str, &str, &str)> = keys
        .iter()
        .zip(&pems)
        .map(|((d, id), pem)| (d.as_str(), id.as_str(), pem.as_str()))
        .collect();
    for preserve in [false, true] {
        let mut results = Vec::new();
        for bin in [&python, &ours] {
            let d = tempfile::tempdir().unwrap();
            let conf = setup(d.path(), &keys);
            let mut master = std::fs::read_to_string(conf.join("master")).unwrap();
            master += &format!("preserve_minion_cache: {}\n", if preserve { "True" } else { "False" });
            std::fs::write(conf.join("master"), master).unwrap();
            for id in ["a1", "a2", "p1", "ghost"] {
                let dir = d.path().join("cache/minions").join(id);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("data.p"), b"\x80").unwrap();
            }
            let (out, rc) = run(bin, &conf, &["-d", "a2", "-y"]);
            assert_eq!(rc, 0, "{}: {out}", bin.display());
            let dfn = d.path().join("cache/.dfn").exists();
            results.push((out, caches(d.path()), dfn));
        }
        let want: &[&str] = if preserve {
            &["a1", "a2", "ghost", "p1"]
        } else {
            &["a1", "p1"]
        };
        assert_eq!(
            results[0].1, want,
            "Python's salt-key, preserve_minion_cache={preserve}"
        );
        assert!(results[0].2, "Python's salt-key asked for an AES rotation");
        assert_eq!(
            results[1], results[0],
            "preserve_minion_cache={preserve}: Brine differs from Python"
        );
    }
}
