use super::*;
use std::fs;

fn conf(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = d.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    d
}

#[test]
fn missing_file_means_salt_defaults() {
    let d = conf(&[]);
    let c = MasterConfig::load(d.path()).unwrap();
    assert_eq!(c.interface, "0.0.0.0");
    assert_eq!((c.publish_port, c.ret_port, c.worker_threads), (4505, 4506, 5));
    assert_eq!(c.pki_dir, PathBuf::from("/etc/salt/pki/master"));
    assert_eq!(c.cachedir, PathBuf::from("/var/cache/salt/master"));
    assert_eq!(c.sock_dir, PathBuf::from("/var/run/salt/master"));
    assert_eq!(c.pidfile, PathBuf::from("/var/run/salt-master.pid"));
    assert_eq!(c.log_file, "/var/log/salt/master");
    assert_eq!(
        (c.log_level.as_str(), c.log_level_logfile.as_str()),
        ("warning", "warning")
    );
    assert_eq!((c.keep_jobs, c.loop_interval, c.max_open_files), (24, 60, 100000));
    assert_eq!(c.user, current_user());
    assert_eq!(c.get("keysize"), Some(&Value::from(2048)));
    assert_eq!(c.get("token_dir"), Some(&Value::from("/var/cache/salt/master/tokens")));
    assert_eq!(c.get("minimum_auth_version"), Some(&Value::from(3)));
    assert_eq!(c.get_bool("sign_pub_messages"), Some(true));
    assert!(c
        .log_fmt_logfile
        .starts_with("%(asctime)s,%(msecs)03d [%(name)-17s:%(lineno)-4d]"));
}

#[test]
fn values_unknown_keys_and_yaml_11_scalars() {
    let d = conf(&[("master", "interface: 127.0.0.1\npublish_port: 14505\nauto_accept: yes\nopen_mode: 1\nmy_custom_key: {a: [1, 2]}\nlog_level_logfile: debug\nhash_type: SHA512\n")]);
    let c = MasterConfig::load(d.path()).unwrap();
    assert_eq!(c.interface, "127.0.0.1");
    assert_eq!(c.publish_port, 14505);
    assert_eq!(c.get("auto_accept"), Some(&Value::Bool(true)));
    assert_eq!(
        c.get("open_mode"),
        Some(&Value::Bool(false)),
        "open_mode only when literally True"
    );
    assert_eq!(c.get("my_custom_key").unwrap()["a"][1], Value::from(2));
    assert_eq!(c.log_level_logfile, "debug");
    assert_eq!(c.get_str("hash_type"), Some("sha512"));
    assert_eq!(
        c.get("conf_file"),
        Some(&Value::String(d.path().join("master").display().to_string()))
    );
}

#[test]
fn master_d_overrides_master_and_merges_in_order() {
    let d = conf(&[
        (
            "master",
            "worker_threads: 7\nfile_roots: {base: [/a]}\nnodegroups: {g1: 'L@x'}\n",
        ),
        (
            "master.d/10-a.conf",
            "worker_threads: 8\nfile_roots: {base: [/b], dev: [/d]}\n",
        ),
        (
            "master.d/20-b.conf",
            "worker_threads: 9\nfile_roots: {base: [/c, /b]}\n",
        ),
        ("master.d/ignored.txt", "worker_threads: 99\n"),
    ]);
    let c = MasterConfig::load(d.path()).unwrap();
    assert_eq!(c.worker_threads, 9, "later master.d files win");
    // master.d files deep-merge among themselves (lists merged without
    // duplicates); the result replaces the main file's top-level key.
    assert_eq!(
        c.get("file_roots").unwrap(),
        &serde_json::json!({"base": ["/b", "/c"], "dev": ["/d"]})
    );
    assert_eq!(c.get("nodegroups").unwrap()["g1"], Value::from("L@x"));
}

#[test]
fn include_globs_nested_and_default_include_override() {
    let d = conf(&[
        (
            "master",
            "default_include: extra/*.yml\ninclude: [more.conf, 'inc/*.conf']\nret_port: 1\n",
        ),
        ("extra/a.yml", "ret_port: 2\n"),
        ("master.d/x.conf", "ret_port: 3\n"),
        ("more.conf", "ret_port: 4\ninclude: deeper.conf\n"),
        ("deeper.conf", "timeout: 42\n"),
        ("inc/z.conf", "keep_jobs: 5\n"),
    ]);
    let c = MasterConfig::load(d.path()).unwrap();
    assert_eq!(c.ret_port, 4, "include beats default_include beats master");
    assert_eq!(c.get("timeout"), Some(&Value::from(42)), "nested include");
    assert_eq!(c.keep_jobs, 5);
}

#[test]
fn root_dir_is_prepended_as_salt_does() {
    let d = conf(&[(
        "master",
        "root_dir: /srv/r\npki_dir: /srv/r/keys\ncachedir: cache\nlog_file: udp://localhost:514\nsock_dir: /run/s\n",
    )]);
    let c = MasterConfig::load(d.path()).unwrap();
    assert_eq!(c.root_dir, PathBuf::from("/srv/r"));
    assert_eq!(c.pki_dir, PathBuf::from("/srv/r/keys"), "already under root_dir");
    assert_eq!(c.cachedir, PathBuf::from("/srv/r/cache"), "relative joins root_dir");
    assert_eq!(
        c.sock_dir,
        PathBuf::from("/srv/r/run/s"),
        "absolute elsewhere is re-rooted"
    );
    assert_eq!(
        c.pidfile,
        PathBuf::from("/srv/r/var/run/salt-master.pid"),
        "defaults re-rooted"
    );
    assert_eq!(c.log_file, "udp://localhost:514", "URLs untouched");
    assert_eq!(c.get_str("token_dir"), Some("/srv/r/cache/tokens"));
    assert_eq!(c.get_str("key_logfile"), Some("/srv/r/var/log/salt/key"));
}

#[test]
fn relative_root_dir_is_made_absolute() {
    let d = conf(&[("master", "root_dir: var\n")]);
    let c = MasterConfig::load(d.path()).unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(c.root_dir, cwd.join("var"));
    assert_eq!(c.pki_dir, cwd.join("var/etc/salt/pki/master"));
}

#[test]
fn long_sock_dir_falls_back_like_salt() {
    let d = conf(&[("master", "cachedir: /c\nsock_dir: /a/very/long/socket/directory/path\n")]);
    let c = MasterConfig::load(d.path()).unwrap();
    assert_eq!(c.sock_dir, PathBuf::from("/c/.salt-unix"));
}

#[test]
fn log_dir_sets_log_file() {
    let d = conf(&[("master", "log_dir: /logs\n")]);
    assert_eq!(MasterConfig::load(d.path()).unwrap().log_file, "/logs/master");
    let d = conf(&[("master", "log_dir: /logs\nlog_file: m.log\n")]);
    assert_eq!(MasterConfig::load(d.path()).unwrap().log_file, "/logs/m.log");
}

#[test]
fn errors_name_file_line_or_key() {
    let d = conf(&[("master", "interface: 127.0.0.1\nworker_threads: 3\n  bad: [indent\n")]);
    let e = MasterConfig::load(d.path()).unwrap_err().to_string();
    assert!(e.contains("master: line 3"), "{e}");

    let d = conf(&[("master", "ok: 1\n"), ("master.d/broken.conf", "a: 1\na: 2\n")]);
    let e = MasterConfig::load(d.path()).unwrap_err().to_string();
    assert!(e.contains("broken.conf: line 2") && e.contains("conflicting ID"), "{e}");

    let d = conf(&[("master", "- a\n- b\n")]);
    let e = MasterConfig::load(d.path()).unwrap_err().to_string();
    assert!(e.contains("must be a mapping"), "{e}");

    for (text, key) in [
        ("publish_port: abc\n", "publish_port"),
        ("ret_port: 70000\n", "ret_port"),
        ("worker_threads: 0\n", "worker_threads"),
        ("log_level: loud\n", "log_level"),
        ("ipv6: maybe\n", "ipv6"),
        ("max_open_files: [1]\n", "max_open_files"),
    ] {
        let d = conf(&[("master", text)]);
        let e = MasterConfig::load(d.path()).unwrap_err().to_string();
        assert!(e.contains(key), "{text} -> {e}");
    }
    // Ports given as strings are accepted (Salt formats them into URIs).
    let d = conf(&[("master", "publish_port: '4600'\n")]);
    assert_eq!(MasterConfig::load(d.path()).unwrap().publish_port, 4600);
}

#[test]
fn worker_threads_minimum_with_peer() {
    let d = conf(&[("master", "worker_threads: 1\npeer: {'.*': ['test.*']}\n")]);
    assert_eq!(MasterConfig::load(d.path()).unwrap().worker_threads, 3);
    let d = conf(&[("master", "worker_threads: 1\n")]);
    assert_eq!(MasterConfig::load(d.path()).unwrap().worker_threads, 1);
}

#[test]
fn log_levels() {
    assert_eq!(parse_log_level("WARN"), Some(SaltLevel::Warning));
    assert!(parse_log_level("garbage") < parse_log_level("debug"));
    assert_eq!(parse_log_level("nope"), None);
}
