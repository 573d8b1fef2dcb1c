//! `MasterConfig` as Salt's `master_config()` builds it. Expected values
//! were checked against Salt 3007.17 run on the same files.

use super::*;
use serde_json::json;
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

fn load(files: &[(&str, &str)]) -> MasterConfig {
    let d = conf(files);
    MasterConfig::load(d.path()).unwrap()
}

fn load_err(files: &[(&str, &str)]) -> String {
    let d = conf(files);
    MasterConfig::load(d.path()).unwrap_err().to_string()
}

fn over(v: Value) -> MasterConfig {
    MasterConfig::from_overrides(Path::new("/etc/salt"), crate::object(v)).unwrap()
}

#[test]
fn missing_file_means_salt_defaults() {
    let c = load(&[]);
    assert_eq!(c.interface, "0.0.0.0");
    assert_eq!(c.ipv6, None);
    assert_eq!((c.publish_port, c.ret_port, c.worker_threads), (4505, 4506, 5));
    assert_eq!(c.root_dir, PathBuf::from("/"));
    assert_eq!(c.pki_dir, PathBuf::from("/etc/salt/pki/master"));
    assert_eq!(c.cachedir, PathBuf::from("/var/cache/salt/master"));
    assert_eq!(c.sock_dir, PathBuf::from("/var/run/salt/master"));
    assert_eq!(c.pidfile, PathBuf::from("/var/run/salt-master.pid"));
    assert_eq!(c.log_file, "/var/log/salt/master");
    assert_eq!(
        (c.log_level.as_str(), c.log_level_logfile.as_str()),
        ("warning", "warning")
    );
    assert_eq!(
        c.log_fmt_logfile,
        "%(asctime)s,%(msecs)03d [%(name)-17s:%(lineno)-4d][%(levelname)-8s][%(process)d] %(message)s"
    );
    assert_eq!(c.log_datefmt_logfile, "%Y-%m-%d %H:%M:%S");
    assert_eq!((c.keep_jobs, c.loop_interval, c.max_open_files), (24, 60, 100000));
    assert_eq!(c.user, current_user());
    let expect = json!({
        "root_dir": "/", "log_level": "warning", "log_level_logfile": null,
        "log_fmt_console": "[%(levelname)-8s] %(message)s", "log_datefmt": "%H:%M:%S",
        "auto_accept": false, "open_mode": false, "keysize": 2048,
        "file_roots": {"base": ["/srv/salt", "/srv/spm/salt"]},
        "pillar_roots": {"base": ["/srv/pillar", "/srv/spm/pillar"]},
        "hash_type": "sha256", "file_buffer_size": 1048576, "sign_pub_messages": true,
        "zmq_filtering": false, "timeout": 5, "default_include": "master.d/*.conf",
        "job_cache": true, "keep_acl_in_token": false, "minimum_auth_version": 3,
        "publish_session": 86400, "transport": "zeromq", "cluster_id": null, "cluster_peers": [],
        "conf_file": "/etc/salt/master", "keep_jobs_seconds": 86400, "ipc_mode": "ipc",
    });
    let derived = json!({
        "publish_signing_algorithm": "PKCS1v15-SHA1", "nodegroups": {}, "ssl": null,
        "discovery": false, "key_logfile": "/var/log/salt/key",
        "token_dir": "/var/cache/salt/master/tokens", "syndic_dir": "/var/cache/salt/master/syndics",
        "extension_modules": "/var/cache/salt/master/extmods",
        "utils_dirs": ["/var/cache/salt/master/extmods/utils"],
        "sqlite_queue_dir": "/var/cache/salt/master/queues",
        "__role": "master", "__fs_update": true, "ipc_write_buffer": 0,
        "loop_interval": 60, "publish_drain_timeout": 60.0, "pub_hwm": 1000,
    });
    for (k, v) in expect.as_object().unwrap().iter().chain(derived.as_object().unwrap()) {
        assert_eq!(c.get(k), Some(v), "{k}");
    }
    // Salt has no default for these: they are read with opts.get().
    for k in ["presence_events", "autosign_file", "autoreject_file", "include"] {
        assert_eq!(c.get(k), None, "{k}");
    }
    assert!(c.raw.len() > 340, "every DEFAULT_MASTER_OPTS key");
    assert!(c.get_str("id").unwrap().ends_with("_master"));
    assert!(c.get("publish_drain_timeout").unwrap().is_f64(), "floats stay floats");
}

#[test]
fn file_values_yaml_11_scalars_and_unknown_keys() {
    let c = load(&[(
        "master",
        "interface: 127.0.0.1\npublish_port: 14505\nret_port: '14506'\nauto_accept: yes\nopen_mode: 1\n\
         my_custom_key: {a: [1, 2]}\nlog_level_logfile: DEBUG\nhash_type: SHA512\nfile_mode: 0644\n\
         ipv6: off\nid: 12345\nuser: salt\nzmq_filtering: on\n",
    )]);
    assert_eq!(c.interface, "127.0.0.1");
    assert_eq!(
        (c.publish_port, c.ret_port),
        (14505, 14506),
        "a quoted port is accepted"
    );
    assert_eq!(c.get("ret_port"), Some(&json!("14506")), "and kept as Salt keeps it");
    assert_eq!(c.get("auto_accept"), Some(&json!(true)));
    assert_eq!(
        c.get("open_mode"),
        Some(&json!(false)),
        "open_mode only when literally True"
    );
    assert_eq!(c.get("my_custom_key"), Some(&json!({"a": [1, 2]})));
    assert_eq!(c.get("file_mode"), Some(&json!(644)), "Salt reads 0644 as decimal 644");
    assert_eq!(c.ipv6, Some(false));
    assert_eq!(c.log_level_logfile, "debug");
    assert_eq!(c.get_str("hash_type"), Some("sha512"));
    assert_eq!(c.get_str("id"), Some("12345"), "a numeric id becomes a string");
    assert_eq!(c.user, "salt");
    assert_eq!(c.get_bool("zmq_filtering"), Some(true));
    let conf_file = c.conf_dir.join("master");
    assert_eq!(c.get_str("conf_file"), Some(conf_file.to_str().unwrap()));
}

#[test]
fn master_d_overrides_master_and_merges_in_order() {
    let c = load(&[
        (
            "master",
            "worker_threads: 7\nfile_roots: {base: [/a]}\nnodegroups: {g1: 'L@x'}\nkeep_jobs: 2\n",
        ),
        (
            "master.d/10-a.conf",
            "worker_threads: 8\nfile_roots: {base: [/b], dev: [/d]}\n",
        ),
        (
            "master.d/20-b.conf",
            "worker_threads: 9\nfile_roots: {base: [/c, /b]}\n",
        ),
        ("master.d/.hidden.conf", "worker_threads: 99\n"),
        ("master.d/ignored.txt", "worker_threads: 98\n"),
        ("master.d/30-broken.conf", "keep_jobs: [1\n"),
        ("master.d/40-list.conf", "- a\n- b\n"),
    ]);
    assert_eq!(
        c.worker_threads, 9,
        "later master.d files win; hidden and non-.conf ignored"
    );
    // master.d files deep-merge among themselves (lists merged without
    // duplicates); the result replaces the main file's top-level key.
    assert_eq!(
        c.get("file_roots").unwrap(),
        &json!({"base": ["/b", "/c"], "dev": ["/d"]})
    );
    assert_eq!(c.get("nodegroups").unwrap()["g1"], json!("L@x"));
    // Salt's master logs an included file that does not parse and goes on.
    assert_eq!(c.keep_jobs, 2);
}

#[test]
fn include_globs_nested_and_default_include_override() {
    let c = load(&[
        (
            "master",
            "default_include: extra/*.yml\ninclude: [more.conf, 'inc/*.conf', 'none/*.conf']\nret_port: 1\n",
        ),
        ("extra/a.yml", "ret_port: 2\nloop_interval: 7\n"),
        ("master.d/x.conf", "ret_port: 3\ntimeout: 1\n"),
        ("more.conf", "ret_port: 4\ninclude: deeper.conf\n"),
        ("deeper.conf", "timeout: 42\n"),
        ("inc/z.conf", "keep_jobs: 5\n"),
        ("inc/y.conf", "keep_jobs: 6\nmax_open_files: 9\n"),
    ]);
    assert_eq!(c.ret_port, 4, "include beats default_include beats master");
    assert_eq!(c.loop_interval, 7, "default_include replaced master.d/*.conf");
    assert_eq!(c.get("timeout"), Some(&json!(42)), "nested include; master.d not read");
    assert_eq!(
        (c.keep_jobs, c.max_open_files),
        (5, 9),
        "sorted glob order: z.conf last"
    );
    assert_eq!(
        c.get("include"),
        Some(&json!("deeper.conf")),
        "the merged `include` key"
    );

    let d = conf(&[("abs.conf", "keep_jobs: 11\n")]);
    let abs = d.path().join("abs.conf");
    let c = load(&[("master", &format!("include: {}\n", abs.display()))]);
    assert_eq!(c.keep_jobs, 11, "an absolute include, as a plain string");
}

#[test]
fn schedule_jobs_from_includes_replace_each_other() {
    let c = load(&[
        ("master", "schedule: {j: {function: a, x: 1}}\n"),
        ("master.d/1.conf", "schedule: {j: {function: b, y: 2}}\n"),
        ("master.d/2.conf", "schedule: {j: {minutes: 5}, k: {function: c}}\n"),
    ]);
    // Salt first `update()`s the schedule shallowly, then deep-merges.
    assert_eq!(
        c.get("schedule").unwrap(),
        &json!({"j": {"minutes": 5}, "k": {"function": "c"}})
    );
}

#[test]
fn root_dir_is_prepended_as_salt_does() {
    let c = load(&[(
        "master",
        "root_dir: /srv/r\npki_dir: /srv/r/keys\ncachedir: cache\nlog_file: udp://localhost:514\n\
         sock_dir: /run/s\nautosign_file: /etc/salt/autosign.conf\nautoreject_file: ''\n\
         sqlite_queue_dir: /srv/r\nkey_logfile: file:///dev/log\nsyndic_log_file: /x/y\n",
    )]);
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
    assert_eq!(c.get_str("key_logfile"), Some("file:///dev/log"));
    assert_eq!(
        c.get_str("token_dir"),
        Some("/srv/r/cache/tokens"),
        "derived from cachedir first"
    );
    assert_eq!(
        c.get_str("extension_modules"),
        Some("/srv/r/var/cache/salt/master/extmods")
    );
    assert_eq!(c.get_str("autosign_file"), Some("/srv/r/etc/salt/autosign.conf"));
    assert_eq!(
        c.get_str("autoreject_file"),
        Some("/srv/r"),
        "an empty path is the root"
    );
    assert_eq!(
        c.get_str("sqlite_queue_dir"),
        Some("/srv/r/srv/r"),
        "root_dir itself is doubled"
    );
    assert_eq!(c.get_str("syndic_log_file"), Some("/x/y"), "not a prepended option");
    assert_eq!(
        c.get("utils_dirs"),
        Some(&json!(["/var/cache/salt/master/extmods/utils"])),
        "computed before prepending, and never prepended"
    );

    // Default root: relative paths land under /, absolute ones stay.
    let c = load(&[(
        "master",
        "pki_dir: keys\ncachedir: /var/cache/salt/master/\npidfile: /a/../b.pid\n",
    )]);
    assert_eq!(c.pki_dir, PathBuf::from("/keys"));
    assert_eq!(c.cachedir, PathBuf::from("/var/cache/salt/master"));
    assert_eq!(c.pidfile, PathBuf::from("/b.pid"));
}

#[test]
fn relative_root_dir_is_made_absolute_for_prepending_only() {
    let c = load(&[("master", "root_dir: var\ncachedir: ../up\n")]);
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(c.root_dir, cwd.join("var"));
    assert_eq!(c.get_str("root_dir"), Some("var"), "Salt's opts keep the text");
    assert_eq!(c.pki_dir, cwd.join("var/etc/salt/pki/master"));
    assert_eq!(c.cachedir, cwd.join("up"), "normalised like os.path.normpath");
}

#[test]
fn sock_dir_log_dir_and_derived_paths() {
    let c = load(&[("master", "cachedir: /c\nsock_dir: /a/very/long/socket/directory/path\n")]);
    assert_eq!(c.sock_dir, PathBuf::from("/c/.salt-unix"), "longer than cachedir + 10");
    let c = load(&[("master", "cachedir: /c\nsock_dir: /a/short/s\n")]);
    assert_eq!(c.sock_dir, PathBuf::from("/a/short/s"));
    assert_eq!(
        c.get_str("extension_modules"),
        Some("/var/cache/salt/master/extmods"),
        "kept when set"
    );

    assert_eq!(load(&[("master", "log_dir: /logs\n")]).log_file, "/logs/master");
    assert_eq!(
        load(&[("master", "log_dir: /logs\nlog_file: m.log\n")]).log_file,
        "/logs/m.log"
    );
    assert_eq!(
        load(&[("master", "log_dir: /logs\nlog_file: /abs.log\n")]).log_file,
        "/abs.log"
    );
    assert_eq!(load(&[("master", "log_file: ~\n")]).log_file, "/var/log/salt/master");
    // An empty path is prepended like any other: Salt ends up with "/".
    assert_eq!(load(&[("master", "log_file: ''\n")]).log_file, "/");
}

#[test]
fn parse_errors_name_file_and_line() {
    let e = load_err(&[("master", "interface: 127.0.0.1\nworker_threads: 3\n  bad: [indent\n")]);
    assert!(
        e.contains("/master: line 3, column 6: mapping values are not allowed"),
        "{e}"
    );
    let e = load_err(&[("master", "a: 1\nb: 2\na: 3\n")]);
    assert!(e.contains("master: line 3") && e.contains("conflicting ID 'a'"), "{e}");
    let e = load_err(&[("master", "a: 1\nb:\n\t- x\n")]);
    assert!(e.contains("master: line 3"), "{e}");
    let e = load_err(&[("master", "- a\n- b\n")]);
    assert!(e.contains("must be a mapping of options, not a list"), "{e}");
    let e = load_err(&[("master", "just text\n")]);
    assert!(e.contains("not a string"), "{e}");
    // A false-y document is no options at all (`safe_load(f) or {}`).
    for text in ["", "# nothing\n", "0\n", "[]\n", "''\n", "false\n", "~\n"] {
        assert_eq!(load(&[("master", text)]).interface, "0.0.0.0", "{text:?}");
    }
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("master")).unwrap();
    assert!(matches!(MasterConfig::load(d.path()), Err(ConfigError::Io { .. })));
}

#[test]
fn wrong_typed_values_brine_uses_are_reported_by_key() {
    for (text, key) in [
        ("publish_port: abc\n", "publish_port"),
        ("publish_port: true\n", "publish_port"),
        ("ret_port: 70000\n", "ret_port"),
        ("ret_port: 0\n", "ret_port"),
        ("worker_threads: 0\n", "worker_threads"),
        ("worker_threads: '5'\n", "worker_threads"),
        ("ipv6: maybe\n", "ipv6"),
        ("max_open_files: [1]\n", "max_open_files"),
        ("keep_jobs: -1\n", "keep_jobs"),
        ("loop_interval: soon\n", "loop_interval"),
        ("interface: [a]\n", "interface"),
        ("user: 5\n", "user"),
        ("pki_dir: 12\n", "pki_dir"),
        ("autosign_file:\n", "autosign_file"),
        ("log_file: 5\n", "log_file"),
        ("log_level: 1.5\n", "log_level"),
        ("root_dir: ~\n", "root_dir"),
        ("hash_type: 5\n", "hash_type"),
        ("publish_signing_algorithm: RSA\n", "publish_signing_algorithm"),
        ("ssl: {cert_reqs: MAYBE}\n", "ssl"),
        ("discovery: {bogus: 1}\n", "discovery"),
        ("include: 5\n", "include"),
        ("external_auth:\n", "external_auth"),
    ] {
        let e = load_err(&[("master", text)]);
        assert!(e.starts_with(&format!("invalid value for {key}: ")), "{text} -> {e}");
    }
}

#[test]
fn wrong_typed_values_salt_only_warns_about_are_kept() {
    let c = load(&[(
        "master",
        "auto_accept: 'yes'\nfile_buffer_size: '1_000'\nmax_event_size: true\nkeep_jobs: 1.5\n\
         loop_interval: 0.5\nnodegroups:\n",
    )]);
    assert_eq!(c.get("auto_accept"), Some(&json!(false)), "a string is not True");
    assert_eq!(c.get("file_buffer_size"), Some(&json!("1_000")));
    assert_eq!(c.get_u64("file_buffer_size"), Some(1000));
    assert_eq!(c.get("max_event_size"), Some(&json!(true)));
    assert_eq!(
        (c.keep_jobs, c.loop_interval),
        (1, 0),
        "int() truncates, as Salt's int() does"
    );
    assert_eq!(c.get("nodegroups"), Some(&json!({})), "an empty nodegroups: is {{}}");
    let mut opts = c.raw.clone();
    let warnings = validate_opts(&mut opts);
    assert_eq!(
        warnings,
        vec![
            "Config option 'keep_jobs' with value 1.5 has an invalid type of float, a int is required for this option",
            "Config option 'max_event_size' with value True has an invalid type of bool, a int is required for this option",
        ]
    );
}

#[test]
fn worker_threads_minimum_only_with_peer() {
    let c = load(&[("master", "worker_threads: 1\npeer: {'.*': ['test.*']}\n")]);
    assert_eq!(c.worker_threads, 3);
    assert_eq!(c.get("worker_threads"), Some(&json!(3)));
    assert_eq!(load(&[("master", "worker_threads: 1\n")]).worker_threads, 1);
    assert_eq!(load(&[("master", "worker_threads: 2\npeer: {}\n")]).worker_threads, 2);
}

#[test]
fn log_levels_and_formats_as_salt_resolves_them() {
    assert_eq!(parse_log_level("WARNING"), Some(SaltLevel::Warning));
    assert_eq!(parse_log_level("warn"), None, "not one of Salt's LOG_LEVELS");
    assert_eq!(parse_log_level("garbage").map(SaltLevel::value), Some(1));
    assert_eq!(parse_log_level("quiet").map(SaltLevel::value), Some(1000));
    assert_eq!(parse_log_level("all").map(SaltLevel::value), Some(0));
    assert!(parse_log_level("trace") < parse_log_level("debug"));
    assert!(parse_log_level("profile") < parse_log_level("info"));
    assert_eq!(SaltLevel::from_value(25), SaltLevel::Warning);

    let c = load(&[("master", "log_level: DEBUG\n")]);
    assert_eq!((c.log_level.as_str(), c.log_level_logfile.as_str()), ("debug", "debug"));
    let c = load(&[("master", "log_level: loud\nlog_level_logfile: info\n")]);
    assert_eq!((c.log_level.as_str(), c.log_level_logfile.as_str()), ("error", "info"));
    assert_eq!(load(&[("master", "log_level: 10\n")]).log_level, "debug");
    assert_eq!(load(&[("master", "log_level: ''\n")]).log_level, "warning");
    let c = load(&[(
        "master",
        "log_fmt_logfile: ~\nlog_fmt_console: '%(message)s'\nlog_datefmt_logfile: ~\nlog_datefmt: '%H'\n",
    )]);
    assert_eq!(
        (c.log_fmt_logfile.as_str(), c.log_datefmt_logfile.as_str()),
        ("%(message)s", "%H")
    );
}

#[test]
fn template_is_copied_when_the_file_is_missing() {
    let d = conf(&[("master.template", "# header line, dropped\ninterface: 10.1.2.3\n")]);
    let c = MasterConfig::load(d.path()).unwrap();
    assert_eq!(c.interface, "10.1.2.3");
    assert_eq!(
        fs::read_to_string(d.path().join("master")).unwrap(),
        "interface: 10.1.2.3\n"
    );
}

#[test]
fn apply_master_config_rules() {
    let c = over(json!({
        "fileserver_backend": ["roots", "git", "minion"],
        "environment": "dev",
        "external_auth": {"rest": {"^url": "https://x"}},
        "keep_acl_in_token": false,
        "file_ignore_regex": "\\.git",
        "file_ignore_glob": "*.pyc",
        "pillar_roots": ["not", "a", "dict"],
        "file_roots": {"base": "not-a-list", "dev": ["/d"]},
        "ssl": true,
        "discovery": true,
        "ssh_minion_opts": {"gitfs_remotes": [], "pillar_roots": {}, "ssh_merge_pillar": true, "x": 1},
        "return": ["a", "b"],
        "nodegroups": [{"g1": "L@a"}, {"g2": "G@b"}],
        "cluster_peers": ["p"],
        "ipc_write_buffer": "dynamic",
    }));
    assert_eq!(
        c.get("fileserver_backend"),
        Some(&json!(["roots", "gitfs", "minionfs"]))
    );
    assert_eq!(c.get("saltenv"), Some(&json!("dev")));
    assert_eq!(c.get("keep_acl_in_token"), Some(&json!(true)));
    assert_eq!(c.get("file_ignore_regex"), Some(&json!(["\\.git"])));
    assert_eq!(c.get("file_ignore_glob"), Some(&json!(["*.pyc"])));
    assert_eq!(
        c.get("pillar_roots"),
        Some(&json!({"base": ["/srv/salt"]})),
        "Salt's quirk"
    );
    assert_eq!(c.get("file_roots"), Some(&json!({"base": [], "dev": ["/d"]})));
    assert_eq!(c.get("ssl"), Some(&json!({})));
    assert_eq!(c.get("discovery"), Some(&json!({"port": 4520, "mapping": {}})));
    assert_eq!(
        c.get("ssh_minion_opts"),
        Some(&json!({"ssh_merge_pillar": true, "x": 1}))
    );
    assert_eq!(c.get("return"), Some(&json!("a,b")));
    assert_eq!(c.get("nodegroups"), Some(&json!({"g1": "L@a", "g2": "G@b"})));
    assert_eq!(c.get("cluster_peers"), Some(&json!([])), "no cluster_id: peers ignored");
    assert!(c.get_u64("ipc_write_buffer").unwrap() >= 5 << 20);

    let c = over(json!({"cluster_id": "c1", "pki_dir": "/p"}));
    assert_eq!(c.get("cluster_pki_dir"), Some(&json!("/p")));
    let c = over(json!({"ssl": {"cert_reqs": "CERT_REQUIRED", "ssl_version": "PROTOCOL_TLSv1_2"}}));
    assert_eq!(c.get("ssl"), Some(&json!({"cert_reqs": 2, "ssl_version": 5})));
    let c = over(json!({"id": "m1", "append_domain": "example.com"}));
    assert_eq!(c.get_str("id"), Some("m1.example.com"));
    let c = over(json!({"id": "m1.example.com", "append_domain": "example.com"}));
    assert_eq!(c.get_str("id"), Some("m1.example.com"));
}

#[test]
fn file_roots_globs_expand() {
    let d = conf(&[("roots/one/x", ""), ("roots/two/x", ""), ("roots/.hid/x", "")]);
    let pat = format!("{}/roots/*", d.path().display());
    let c = over(json!({"file_roots": {"base": [pat, "/missing/*", "/literal"]}}));
    let mut got = c.get_str_list("file_roots").unwrap_or_default();
    assert!(got.is_empty(), "file_roots is a mapping, not a list");
    got = c.get("file_roots").unwrap()["base"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    got.sort();
    let root = d.path().display();
    assert_eq!(
        got,
        vec![
            "/literal".to_string(),
            format!("{root}/roots/one"),
            format!("{root}/roots/two")
        ]
    );
}

#[test]
fn cached_minion_id_under_root_dir() {
    let d = conf(&[("etc/salt/minion_id", "\u{feff}Cached-ID\n")]);
    let root = d.path().to_str().unwrap();
    let c = over(json!({"root_dir": root}));
    assert_eq!(c.get_str("id"), Some("Cached-ID_master"));
    let c = over(json!({"root_dir": root, "minion_id_caching": false}));
    assert_ne!(c.get_str("id"), Some("Cached-ID_master"));
}

#[test]
fn typed_getters() {
    let c = over(json!({"a": "12", "b": 7, "c": true, "d": "x", "e": ["x", 1, "y"], "f": -3, "g": 2.9, "h": ""}));
    assert_eq!(c.get_u64("a"), Some(12));
    assert_eq!(c.get_u64("b"), Some(7));
    assert_eq!(c.get_u64("f"), None);
    assert_eq!(c.get_i64("f"), Some(-3));
    assert_eq!(c.get_u64("g"), Some(2));
    assert_eq!(c.get_u64("d"), None);
    assert_eq!(c.get_bool("c"), Some(true));
    assert_eq!(c.get_bool("d"), Some(true), "Python truthiness");
    assert_eq!(c.get_bool("h"), Some(false));
    assert_eq!(c.get_bool("nope"), None);
    assert_eq!(c.get_str("d"), Some("x"));
    assert_eq!(c.get_str_list("d"), Some(vec!["x".to_string()]));
    assert_eq!(c.get_str_list("e"), Some(vec!["x".to_string(), "y".to_string()]));
}

#[test]
fn prepend_root_dir_cases() {
    let run = |root: &str, path: &str| {
        let mut o = crate::object(json!({"root_dir": root, "p": path}));
        prepend_root_dir(&mut o, &["p"]).unwrap();
        o["p"].as_str().unwrap().to_string()
    };
    assert_eq!(run("/", "/etc/salt/pki"), "/etc/salt/pki");
    assert_eq!(run("/", "rel/x"), "/rel/x");
    assert_eq!(run("/srv/r", "/etc/x"), "/srv/r/etc/x");
    assert_eq!(run("/srv/r", "/srv/r/etc/x"), "/srv/r/etc/x");
    assert_eq!(run("/srv/r/", "/srv/r/etc/x"), "/srv/r/etc/x");
    assert_eq!(run("/srv/r", "/srv/rx/y"), "/srv/r/srv/rx/y", "a prefix, not a parent");
    assert_eq!(run("/srv/r", "x/../y"), "/srv/r/y");
    assert_eq!(run("/srv/r", "/srv/r"), "/srv/r/srv/r");
}
