//! The swarm's conformance test: a few hundred swarm minions against the
//! Python salt-master 3007.17 (from the venv `scripts/salt-venv` builds) and
//! against Brine, unchanged: all authenticate, answer test.ping, test.arg,
//! a 10 KB payload, pcre/list targets, re-authenticate when the master's
//! AES key changes, and leave no process behind.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use brine_testutil::{accepts, alive, children_of, free_port, salt_venv as venv, wait_until};
use serde_json::Value as Json;

const N: usize = 300;

fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_brine-swarm"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Brine,
    Python,
}

/// A master in its own process group (killed as a group on drop).
struct MasterProc {
    child: Child,
    dir: PathBuf,
}

impl MasterProc {
    fn start(kind: Kind, dir: &Path) -> MasterProc {
        let bin = match kind {
            Kind::Brine => target_dir().join("salt-master"),
            Kind::Python => venv("3007.17").join("bin/salt-master"),
        };
        assert!(bin.exists(), "{} is not built", bin.display());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("master.stderr"))
            .unwrap();
        let child = Command::new(bin)
            .args(["-c", &dir.join("conf").display().to_string(), "-l", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        MasterProc {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn stop(&mut self) {
        brine_testutil::stop_group(&mut self.child, Duration::from_secs(15));
    }
}

impl Drop for MasterProc {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Swarm {
    child: Child,
    pid: i32,
    lines: mpsc::Receiver<Json>,
    procs: Vec<i32>,
}

impl Swarm {
    fn start(ret_port: u16, n: usize, procs: usize) -> Swarm {
        let mut child = Command::new(env!("CARGO_BIN_EXE_brine-swarm"))
            .args([
                "--ret-port",
                &ret_port.to_string(),
                "-n",
                &n.to_string(),
                "--procs",
                &procs.to_string(),
            ])
            .args([
                "--acceptance-wait",
                "1",
                "--auth-timeout",
                "10",
                "--return-timeout",
                "20",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Json>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let pid = child.id() as i32;
        Swarm {
            child,
            pid,
            lines: rx,
            procs: Vec::new(),
        }
    }

    fn event(&self, name: &str, timeout: Duration) -> Json {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if v["event"] == name => return v,
                Ok(_) => {}
                Err(e) => panic!("no {name:?} event from the swarm: {e}"),
            }
        }
    }

    fn snapshot(&self) -> Json {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), nix::sys::signal::Signal::SIGUSR1).unwrap();
        self.event("snapshot", Duration::from_secs(10))
    }

    /// Peek (SIGUSR2, samples kept) until counter `name` reaches `min`.
    fn wait_counter(&self, name: &str, min: u64, timeout: Duration) -> Json {
        let end = Instant::now() + timeout;
        loop {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), nix::sys::signal::Signal::SIGUSR2).unwrap();
            let v = self.event("peek", Duration::from_secs(10));
            if counter(&v, name) >= min || Instant::now() >= end {
                return v;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop(&mut self) -> Json {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), nix::sys::signal::Signal::SIGTERM).unwrap();
        let report = self.event("report", Duration::from_secs(20));
        let status = self.child.wait().unwrap();
        assert!(status.success(), "swarm exited with {status}");
        report
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for p in &self.procs {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Brine's `salt` CLI (it speaks the protocol to either master).
fn salt(conf: &Path, args: &[&str]) -> Json {
    let out = Command::new(target_dir().join("salt"))
        .arg("-c")
        .arg(conf)
        .args(args)
        .args(["--out", "json", "--static", "-t", "30"])
        .output()
        .unwrap();
    // One document, or one per late/missing minion: merge them.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut merged = serde_json::Map::new();
    for doc in serde_json::Deserializer::from_str(&text).into_iter::<Json>() {
        match doc {
            Ok(Json::Object(m)) => merged.extend(m),
            other => panic!("salt {args:?}: {other:?}: {text}"),
        }
    }
    Json::Object(merged)
}

fn counter(v: &Json, name: &str) -> u64 {
    v["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {v}"))
}

fn setup(kind: Kind) -> (tempfile::TempDir, u16, u16) {
    let dir = tempfile::Builder::new()
        .prefix("brine-swarm")
        .tempdir_in("/tmp")
        .unwrap();
    let (pubp, retp) = (free_port(), free_port());
    let root = dir.path();
    std::fs::create_dir_all(root.join("conf")).unwrap();
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let mut conf = format!(
        "interface: 127.0.0.1\npublish_port: {pubp}\nret_port: {retp}\nworker_threads: 5\nroot_dir: {r}\n\
         pki_dir: {r}/pki\ncachedir: {r}/cache\nsock_dir: {r}/sock\npidfile: {r}/run/master.pid\n\
         log_file: {r}/log/master\nuser: {user}\nauto_accept: True\nloop_interval: 1\n",
        r = root.display()
    );
    if kind == Kind::Python {
        // The Python master's own start-up checks, kept quiet and quick.
        conf.push_str("max_open_files: 20000\n");
    }
    std::fs::write(root.join("conf/master"), conf).unwrap();
    (dir, pubp, retp)
}

fn all_true(v: &Json, n: usize) -> usize {
    let m = v.as_object().unwrap_or_else(|| panic!("not a map: {v}"));
    assert!(m.len() <= n);
    m.values().filter(|x| **x == Json::Bool(true)).count()
}

/// test.ping to all until at least `expect` answer (a minion that missed a
/// publication while re-subscribing gets another chance).
fn ping_all(conf: &Path, expect: usize, when: &str) {
    let mut got = 0;
    for _ in 0..3 {
        got = all_true(&salt(conf, &["*", "test.ping"]), N);
        if got >= expect {
            return;
        }
    }
    panic!("{got} returns {when}, expected {expect}");
}

fn conformance(kind: Kind) {
    let (dir, _pubp, retp) = setup(kind);
    let conf = dir.path().join("conf");
    let mut master = MasterProc::start(kind, dir.path());
    assert!(
        wait_until(Duration::from_secs(60), || accepts(retp)),
        "master did not listen: {}",
        std::fs::read_to_string(master.dir.join("master.stderr")).unwrap_or_default()
    );
    // Two processes of minions, to exercise the fan-out and the merge.
    let mut swarm = Swarm::start(retp, N, 2);
    let ready = swarm.event("ready", Duration::from_secs(240));
    assert_eq!(counter(&ready, "auth_accepted"), N as u64, "{ready}");
    assert_eq!(counter(&ready, "auth_errors"), 0);
    swarm.procs = children_of(swarm.pid);
    assert_eq!(swarm.procs.len(), 2, "two minion processes");
    // Subscriptions travel asynchronously; give them a moment.
    std::thread::sleep(Duration::from_secs(1));

    ping_all(&conf, N, "once ready");

    let arg = salt(&conf, &["swarm-00001", "test.arg", "1", "two", "a=b"]);
    assert_eq!(arg["swarm-00001"]["args"], serde_json::json!([1, "two"]), "{arg}");
    assert_eq!(arg["swarm-00001"]["kwargs"], serde_json::json!({"a": "b"}), "{arg}");

    let big = salt(&conf, &["-L", "swarm-00002,swarm-00003", "swarm.payload", "10000"]);
    for id in ["swarm-00002", "swarm-00003"] {
        assert_eq!(big[id].as_str().map(str::len), Some(10_000), "{id}");
    }
    let some = salt(&conf, &["-E", "swarm-0000[0-4]", "test.ping"]);
    assert_eq!(all_true(&some, 5), 5, "{some}");

    // A return is on the bus (and at the CLI) before its reply reaches the minion.
    swarm.wait_counter("returns_ok", (N + 1 + 2 + 5) as u64, Duration::from_secs(20));
    let snap = swarm.snapshot();
    assert!(counter(&snap, "returns_ok") >= (N + 1 + 2 + 5) as u64, "{snap}");
    assert_eq!(counter(&snap, "pubs_bad"), 0, "{snap}");
    assert!(snap["latency_ms"]["return"]["n"].as_u64().unwrap() >= N as u64);

    // A new AES key: the minions must notice at the next publication and
    // re-authenticate. Both masters rotate when salt-key deletes a key
    // (`.dfn`, consumed by Maintenance within loop_interval).
    let salt_key = match kind {
        Kind::Python => venv("3007.17").join("bin/salt-key"),
        Kind::Brine => target_dir().join("salt-key"),
    };
    let st = Command::new(salt_key)
        .args([
            "-c",
            &conf.display().to_string(),
            "-d",
            &format!("swarm-{:05}", N - 1),
            "-y",
        ])
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let dfn = dir.path().join("cache/.dfn");
    assert!(
        wait_until(Duration::from_secs(30), || !dfn.exists()),
        "the master did not rotate"
    );
    ping_all(&conf, N - 1, "after the AES key rotated");
    swarm.wait_counter("reauths", (N - 1) as u64, Duration::from_secs(20));
    let snap = swarm.snapshot();
    assert!(counter(&snap, "reauths") >= (N - 1) as u64, "{snap}");

    if kind == Kind::Brine {
        // A restart makes a new AES key too; sessions survive it.
        let before = counter(&snap, "reauths");
        master.stop();
        master = MasterProc::start(kind, dir.path());
        assert!(wait_until(Duration::from_secs(30), || accepts(retp)));
        std::thread::sleep(Duration::from_secs(3)); // publishers reconnect
        ping_all(&conf, N - 1, "after a restart");
        let want = before + (N - 1) as u64;
        swarm.wait_counter("reauths", want, Duration::from_secs(20));
        let snap = swarm.snapshot();
        assert!(counter(&snap, "reauths") >= want, "{snap}");
    }

    let report = swarm.stop();
    assert_eq!(report["failed_processes"], 0);
    assert!(swarm.procs.iter().all(|p| !alive(*p)), "swarm processes left behind");
    drop(master);
}

#[test]
fn swarm_against_python_salt_3007() {
    conformance(Kind::Python);
}

#[test]
fn swarm_against_brine() {
    conformance(Kind::Brine);
}

/// kill -9 of the swarm's parent takes its minion processes with it.
#[test]
fn children_die_with_the_parent() {
    let port = free_port(); // nothing listens: minions keep retrying
    let mut swarm = Swarm::start(port, 4, 2);
    assert!(wait_until(Duration::from_secs(60), || children_of(swarm.pid).len() == 2));
    swarm.procs = children_of(swarm.pid);
    swarm.child.kill().unwrap();
    swarm.child.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || swarm.procs.iter().all(|p| !alive(*p))),
        "minion processes outlived the parent"
    );
}
