//! The process tree, supervision, signals, pidfile, sd_notify and logging of
//! the real `salt-master` binary.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const TOP: [&str; 6] = [
    "EventPublisher",
    "Maintenance",
    "MultiprocessingLoggingQueue",
    "Reactor",
    "ReqServer_ProcessManager",
    "ZeroMQPubServerChannel",
];

fn argv(env: &Env) -> String {
    format!("{BIN} -c {}", env.conf_dir.display())
}

fn check_tree(workers: usize) {
    let env = Env::new(workers);
    let mut m = env.start();
    m.wait_ready();
    let argv = argv(&env);
    assert_eq!(cmdline(m.pid), format!("{argv} ProcessManager"));
    let top = m.named_children(m.pid, &argv);
    assert_eq!(
        top.keys().map(String::as_str).collect::<Vec<_>>(),
        TOP.to_vec(),
        "children of ProcessManager: {top:?}"
    );
    let rs = top["ReqServer_ProcessManager"];
    let req = m.named_children(rs, &argv);
    let mut want: BTreeSet<String> = (0..workers).map(|i| format!("MWorker-{i}")).collect();
    want.insert("MWorkerQueue".into());
    assert_eq!(req.keys().cloned().collect::<BTreeSet<_>>(), want);
    // Nothing below the leaves.
    for &p in top.values().chain(req.values()) {
        if p != rs {
            assert!(children_of(p).is_empty(), "{} has children", cmdline(p));
        }
    }
    // comm is salt-master everywhere, so pgrep -x / killall / lsof match.
    for p in std::iter::once(m.pid).chain(descendants(m.pid)) {
        assert_eq!(comm(p), "salt-master", "comm of {}", cmdline(p));
    }
    let pg = std::process::Command::new("pgrep")
        .args(["-x", "salt-master"])
        .output()
        .unwrap();
    let pg = String::from_utf8_lossy(&pg.stdout);
    assert!(
        pg.lines().any(|l| l.trim() == m.pid.to_string()),
        "pgrep -x salt-master finds the ProcessManager"
    );
    // Sockets: which process listens where.
    assert_eq!(listener_pid(env.publish_port), Some(top["ZeroMQPubServerChannel"]));
    assert_eq!(listener_pid(env.ret_port), Some(req["MWorkerQueue"]));
    for (name, mode) in [
        ("publish_pull.ipc", 0o600),
        ("workers.ipc", 0o600),
        ("master_event_pull.ipc", 0o600),
        ("master_event_pub.ipc", 0o660),
    ] {
        let meta = std::fs::metadata(env.sock(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{name} mode");
    }
    assert_eq!(read(&env.pidfile()), m.pid.to_string());
    // verify_env's directories, syndic_dir among them.
    for d in ["pki/minions_denied", "cache/jobs", "cache/syndics", "sock"] {
        assert!(env.root().join(d).is_dir(), "{d} created at start-up");
    }
}

#[test]
fn tree_with_three_workers() {
    check_tree(3);
}

#[test]
fn tree_with_five_workers() {
    check_tree(5);
}

#[test]
fn dead_mworker_is_respawned_with_its_title() {
    let env = Env::new(3);
    let mut m = env.start();
    m.wait_ready();
    let argv = argv(&env);
    let rs = m.named_children(m.pid, &argv)["ReqServer_ProcessManager"];
    let old = m.named_children(rs, &argv)["MWorker-1"];
    kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
    let t = Instant::now();
    let mut new = None;
    assert!(wait_until(Duration::from_secs(1), || {
        new = m
            .named_children(rs, &argv)
            .get("MWorker-1")
            .copied()
            .filter(|&p| p != old);
        new.is_some()
    }));
    eprintln!("MWorker-1 respawned in {:?}", t.elapsed());
    m.remember_tree();
    assert_eq!(cmdline(new.unwrap()), format!("{argv} MWorker-1"));
    // The log tells what happened.
    assert!(wait_until(Duration::from_secs(2), || read(&env.log_file())
        .contains(&format!("MWorker-1 (pid {old}) was killed by SIGKILL"))));
    // Every other process is untouched.
    assert_eq!(m.named_children(rs, &argv).len(), 4);
}

#[test]
fn killing_reqserver_leaves_no_orphans_and_port_is_served_again() {
    let env = Env::new(3);
    let mut m = env.start();
    m.wait_ready();
    let argv = argv(&env);
    let rs = m.named_children(m.pid, &argv)["ReqServer_ProcessManager"];
    let old_kids = children_of(rs);
    assert_eq!(old_kids.len(), 4);
    kill(Pid::from_raw(rs), Signal::SIGKILL).unwrap();
    assert!(
        wait_until(Duration::from_secs(1), || old_kids.iter().all(|&p| !alive(p))),
        "old MWorkerQueue/MWorkers died with their parent"
    );
    let mut new_rs = 0;
    assert!(wait_until(Duration::from_secs(3), || {
        new_rs = m
            .named_children(m.pid, &argv)
            .get("ReqServer_ProcessManager")
            .copied()
            .unwrap_or(0);
        new_rs != 0 && new_rs != rs && children_of(new_rs).len() == 4
    }));
    m.remember_tree();
    let queue = m.named_children(new_rs, &argv)["MWorkerQueue"];
    assert!(
        wait_until(Duration::from_secs(3), || listener_pid(env.ret_port) == Some(queue)),
        "the new MWorkerQueue owns ret_port"
    );
    assert!(accepts(env.ret_port));
    // No salt-master process is left outside the tree.
    let tree: BTreeSet<i32> = std::iter::once(m.pid).chain(descendants(m.pid)).collect();
    for p in old_kids {
        assert!(!tree.contains(&p));
    }
}

#[test]
fn sighup_keeps_children_and_reopens_the_log() {
    let env = Env::new(3);
    let mut m = env.start();
    m.wait_ready();
    let before = descendants(m.pid);
    let rotated = env.log_file().with_extension("1");
    assert!(wait_until(Duration::from_secs(2), || read(&env.log_file())
        .contains("salt-master is serving")));
    std::fs::rename(env.log_file(), &rotated).unwrap();
    m.signal(Signal::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(2), || read(&env.log_file())
            .contains("reopened log file")),
        "a new log file is written after SIGHUP"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(m.exited().is_none(), "the ProcessManager survives SIGHUP");
    assert_eq!(descendants(m.pid), before, "every child kept");
    assert!(!read(&rotated).contains("reopened log file"));
}

/// SIGUSR1 and SIGUSR2 kill a process by default; Salt's master carries
/// on. Sent to every process of the tree, none dies or is replaced, and
/// SIGUSR1 to the ProcessManager writes the tree's state where the log
/// says, and where Salt writes its debug output (`salt-debug-<time>.log`
/// in the temporary directory).
#[test]
fn sigusr1_and_sigusr2_kill_nothing_and_usr1_dumps_the_tree() {
    let env = Env::new(3);
    let tmp = env.root().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut m = env.start_with(&env.args(), &[("TMPDIR", tmp.to_str().unwrap())]);
    m.wait_ready();
    let before = descendants(m.pid);
    // Two peers on publish_port, one on ret_port, for the dump to count.
    let peers: Vec<_> = [env.publish_port, env.publish_port, env.ret_port]
        .iter()
        .map(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).unwrap())
        .collect();
    // One request answered, for the dump's counts.
    let ping = brine_proto::Value::map([("cmd", brine_proto::Value::from("ping"))]);
    common::aes::ask(env.ret_port, &[common::aes::clear(ping)]);
    std::thread::sleep(Duration::from_millis(200));
    // A file already under Salt's name for this second (a minion's dump,
    // or one planted in a shared /tmp) is neither overwritten nor lost.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    for t in now - 1..now + 30 {
        std::fs::write(tmp.join(format!("salt-debug-{t}.log")), "planted").unwrap();
    }
    for sig in [Signal::SIGUSR2, Signal::SIGUSR1] {
        for pid in before.iter().copied().chain([m.pid]) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
    let dump = env.root().join("cache/salt-master.state");
    assert!(
        wait_until(Duration::from_secs(5), || read(&env.log_file()).contains(&format!(
            "SIGUSR1: the state of the process tree is in {}",
            dump.display()
        ))),
        "{}",
        read(&env.log_file())
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(m.exited().is_none(), "the ProcessManager survives");
    assert_eq!(descendants(m.pid), before, "every process kept, none respawned");
    let text = read(&dump);
    // The text of `salt-master status`.
    assert!(
        text.contains(&format!(
            "minions connected  2 on publish_port {} (1 on ret_port)",
            env.publish_port
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "requests           1 received, 1 answered, 0 in the MWorkers, 0 queued (ret_port {})",
            env.ret_port
        )),
        "{text}"
    );
    assert_eq!(text.matches("  1 handled, idle").count(), 1, "{text}");
    assert_eq!(text.matches("  0 handled, idle").count(), 2, "{text}");
    drop(peers);
    for name in [
        "MultiprocessingLoggingQueue",
        "EventPublisher",
        "ReqServer_ProcessManager",
        "MWorkerQueue",
        "MWorker-2",
    ] {
        assert!(text.contains(name), "{name} missing from the dump:\n{text}");
    }
    assert!(text.contains(&m.pid.to_string()), "{text}");
    let debug: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with("salt-debug-") && name.ends_with(".log") && read(p) != "planted"
        })
        .collect();
    assert_eq!(debug.len(), 1, "{debug:?}");
    assert!(
        debug[0].to_string_lossy().ends_with(&format!("-{}.log", m.pid)),
        "{debug:?}"
    );
    assert_eq!(read(&debug[0]), text);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&debug[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn sigterm_stops_everything_quickly_with_status_zero() {
    let env = Env::new(5);
    let mut m = env.start();
    m.wait_ready();
    let all = descendants(m.pid);
    assert_eq!(all.len(), 6 + 1 + 5);
    let t = Instant::now();
    m.signal(Signal::SIGTERM);
    let status = m.wait_exit(Duration::from_secs(2)).expect("exited within 2 s");
    let took = t.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(all.iter().all(|&p| !alive(p)), "no process left");
    assert!(m.wait_notify("STOPPING=1", Duration::from_millis(100)).is_some());
    assert!(!env.pidfile().exists(), "pidfile removed");
    assert!(!accepts(env.publish_port) && !accepts(env.ret_port));
    eprintln!("SIGTERM to exit: {took:?}");
    let log = read(&env.log_file());
    assert!(log.contains("shutting down"), "{log}");
}

/// A child that does not stop in the grace period is killed, and the log
/// writer (stopped last) still gets its turn: the master exits. (With
/// 10,000 subscribers the publisher's context teardown outlasts the grace
/// period; the supervisor used to wait forever in waitpid for the log
/// writer it had not yet told to stop.)
#[test]
fn sigterm_with_a_stuck_child_still_stops() {
    let env = Env::new(2);
    let mut m = env.start();
    m.wait_ready();
    let all = descendants(m.pid);
    let publisher = *m
        .named_children(m.pid, &argv(&env))
        .get("ZeroMQPubServerChannel")
        .expect("publisher");
    kill(Pid::from_raw(publisher), Signal::SIGSTOP).unwrap();
    m.signal(Signal::SIGTERM);
    let status = m
        .wait_exit(Duration::from_secs(8))
        .expect("exited despite a stuck child");
    assert!(status.success(), "{status:?}");
    assert!(all.iter().all(|&p| !alive(p)), "no process left");
    let log = read(&env.log_file());
    assert!(log.contains("did not stop"), "{log}");
}

#[test]
fn sigint_is_an_orderly_shutdown_too() {
    let env = Env::new(3);
    let mut m = env.start();
    m.wait_ready();
    let all = descendants(m.pid);
    m.signal(Signal::SIGINT);
    assert!(m.wait_exit(Duration::from_secs(2)).unwrap().success());
    assert!(all.iter().all(|&p| !alive(p)));
}

#[test]
fn second_master_on_the_same_config_is_refused() {
    let env = Env::new(3);
    let mut first = env.start();
    first.wait_ready();
    let before = read(&env.pidfile());
    let mut second = env.start();
    let status = second.wait_exit(Duration::from_secs(5)).expect("second master exits");
    assert!(!status.success());
    let err = stderr_of(&env);
    assert!(err.contains("another salt-master is running"), "stderr: {err}");
    assert!(err.contains(&first.pid.to_string()));
    assert_eq!(read(&env.pidfile()), before, "pidfile untouched");
    assert!(first.exited().is_none());
    assert!(accepts(env.ret_port));
}

#[test]
fn ready_is_notified_only_when_both_ports_accept() {
    let env = Env::new(5);
    let mut m = env.start();
    // Nothing is ready before READY=1 arrives; when it does, both ports
    // accept and every worker exists.
    assert!(m.wait_notify("READY=1", Duration::from_secs(20)).is_some());
    assert!(accepts(env.publish_port), "publish port accepts at READY=1");
    assert!(accepts(env.ret_port), "ret port accepts at READY=1");
    let argv = argv(&env);
    let rs = m.named_children(m.pid, &argv)["ReqServer_ProcessManager"];
    assert_eq!(children_of(rs).len(), 6);
    assert!(m.messages.iter().any(|s| s.contains(&format!("MAINPID={}", m.pid))));
    m.remember_tree();
}

#[test]
fn watchdog_is_fed_when_enabled() {
    let env = Env::new(3);
    let mut m = env.start_with(&env.args(), &[("WATCHDOG_USEC", "200000")]);
    m.wait_ready();
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_millis(700) {
        m.messages.clear();
        if m.wait_notify("WATCHDOG=1", Duration::from_millis(300)).is_some() {
            n += 1;
        }
    }
    assert!(n >= 3, "WATCHDOG=1 every 100 ms, got {n} in 700 ms");
}

#[test]
fn bad_config_line_is_reported() {
    let env = Env::new(3);
    let master = env.conf_dir.join("master");
    let good = read(&master);
    std::fs::write(
        &master,
        format!("interface: 127.0.0.1\nworker_threads: 3\n  bad: [indent\n{good}"),
    )
    .unwrap();
    let mut m = env.start();
    let status = m.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(!status.success());
    let err = stderr_of(&env);
    assert!(
        err.contains(&master.display().to_string()) && err.contains("line 3"),
        "stderr: {err}"
    );
    assert!(children_of(m.pid).is_empty());
}

#[test]
fn port_in_use_is_fatal_with_a_clear_message() {
    let env = Env::new(3);
    let blocker = std::net::TcpListener::bind(("127.0.0.1", env.publish_port)).unwrap();
    let mut m = env.start();
    let status = m
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("master gives up; stderr: {}", stderr_of(&env)));
    assert!(!status.success());
    let err = stderr_of(&env);
    assert!(
        err.contains("ZeroMQPubServerChannel cannot start") && err.contains(&env.publish_port.to_string()),
        "stderr: {err}"
    );
    assert!(err.to_lowercase().contains("address already in use"), "stderr: {err}");
    assert!(m.known.iter().all(|&p| !alive(p)));
    assert!(!accepts(env.ret_port), "nothing left serving");
    drop(blocker);
}

#[test]
fn log_file_uses_salts_format() {
    let env = Env::new(3);
    let mut m = env.start();
    m.wait_ready();
    assert!(wait_until(Duration::from_secs(2), || read(&env.log_file())
        .contains("salt-master is serving")));
    let log = read(&env.log_file());
    let line = log.lines().find(|l| l.contains("salt-master is serving")).unwrap();
    // 2026-11-25 01:02:03,456 [brine_master.manager:123 ][INFO    ][4242] salt-master is serving …
    let b = line.as_bytes();
    assert!(
        b[4] == b'-' && b[7] == b'-' && b[10] == b' ' && b[13] == b':' && b[19] == b',',
        "{line}"
    );
    assert!(line.contains("[INFO    ]"), "{line}");
    assert!(line.contains(&format!("][{}] salt-master is serving", m.pid)), "{line}");
    // Salt's logging creates it under umask 027.
    let mode = std::fs::metadata(env.log_file()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn title_fits_even_with_an_empty_environment() {
    let env = Env::new(3);
    // env -i: no environment strings to borrow room from; the master
    // re-executes itself once with padding.
    let notify = env.root().join("n-empty");
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(env.args())
        .env_clear()
        .env("NOTIFY_SOCKET", &notify)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut buf = [0u8; 512];
    let got = sock.recv(&mut buf);
    let tree = descendants(pid);
    let argv = argv(&env);
    let title = cmdline(pid);
    let names: Vec<String> = children_of(pid).into_iter().map(cmdline).collect();
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let _ = child.wait();
    for p in tree {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    assert!(got.is_ok());
    assert_eq!(title, format!("{argv} ProcessManager"));
    assert!(
        names.contains(&format!("{argv} MultiprocessingLoggingQueue")),
        "{names:?}"
    );
}

#[test]
fn daemon_mode_detaches_and_writes_its_pid() {
    let env = Env::new(3);
    let mut args = env.args();
    args.push("-d".into());
    let mut m = env.start_with(&args, &[]);
    // The launched process returns at once; the daemon notifies readiness.
    assert!(m
        .wait_exit(Duration::from_secs(5))
        .expect("foreground part exits")
        .success());
    let mut daemon = 0;
    assert!(wait_until(Duration::from_secs(10), || {
        daemon = read(&env.pidfile()).trim().parse().unwrap_or(0);
        daemon != 0 && children_of(daemon).len() == 6
    }));
    m.known.push(daemon);
    m.known.extend(descendants(daemon));
    let argv = format!("{BIN} -c {} -d", env.conf_dir.display());
    assert_eq!(cmdline(daemon), format!("{argv} ProcessManager"));
    assert_ne!(ppid(daemon), Some(m.pid));
    // Detached: a new session (led by the first fork, which has exited).
    let sid = nix::unistd::getsid(Some(Pid::from_raw(daemon))).unwrap();
    assert_ne!(sid, nix::unistd::getsid(None).unwrap());
    kill(Pid::from_raw(daemon), Signal::SIGTERM).unwrap();
    assert!(wait_until(Duration::from_secs(3), || !alive(daemon)));
    assert!(!env.pidfile().exists());
}

#[test]
fn runs_as_an_unprivileged_user() {
    if !nix::unistd::Uid::effective().is_root() {
        // Switching users needs root; as a normal user the master simply
        // runs as that user, which every other test covers.
        return;
    }
    let env = Env::new(3);
    std::fs::set_permissions(env.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let master = env.conf_dir.join("master");
    let conf = read(&master).replace(&format!("user: {}", current_user()), "user: nobody");
    std::fs::write(&master, conf).unwrap();
    let mut m = env.start();
    m.wait_ready();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid.as_raw();
    let argv = argv(&env);
    for p in std::iter::once(m.pid).chain(descendants(m.pid)) {
        let status = read(std::path::Path::new(&format!("/proc/{p}/status")));
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap().to_string();
        let uids: Vec<u32> = uid_line
            .split_whitespace()
            .skip(1)
            .map(|u| u.parse().unwrap())
            .collect();
        assert!(uids.iter().all(|&u| u == nobody), "{} runs as {uid_line}", cmdline(p));
        assert!(
            cmdline(p).starts_with(&argv),
            "title works without privileges: {}",
            cmdline(p)
        );
    }
    let pki = std::fs::metadata(env.root().join("pki")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(pki.uid(), nobody);
    assert_eq!(pki.permissions().mode() & 0o777, 0o700);
    m.signal(Signal::SIGTERM);
    assert!(m.wait_exit(Duration::from_secs(3)).unwrap().success());
}

#[test]
fn crash_loops_back_off_and_are_logged() {
    let env = Env::new(3);
    let mut m = env.start();
    m.wait_ready();
    let argv = argv(&env);
    let pid_of = |m: &Master| m.named_children(m.pid, &argv).get("Maintenance").copied();
    let mut deaths = Vec::new();
    for _ in 0..3 {
        let mut p = None;
        assert!(wait_until(Duration::from_secs(3), || {
            p = pid_of(&m).filter(|p| !deaths.contains(p));
            p.is_some()
        }));
        let p = p.unwrap();
        kill(Pid::from_raw(p), Signal::SIGKILL).unwrap();
        deaths.push(p);
        assert!(wait_until(Duration::from_secs(1), || !alive(p)));
    }
    // First death: immediate; second within 10 s: 100 ms; third: 200 ms.
    assert!(
        wait_until(Duration::from_secs(2), || {
            let log = read(&env.log_file());
            log.contains("2 deaths in a row, respawning in 100 ms")
                && log.contains("3 deaths in a row, respawning in 200 ms")
        }),
        "{}",
        read(&env.log_file())
    );
    assert!(wait_until(Duration::from_secs(2), || pid_of(&m)
        .is_some_and(|p| !deaths.contains(&p))));
    m.remember_tree();
    assert!(m.exited().is_none(), "crash loops of a running master are not fatal");
}
