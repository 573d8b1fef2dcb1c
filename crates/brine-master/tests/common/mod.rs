//! Harness for tests that run the real `salt-master` binary: a temp root,
//! free loopback ports, a NOTIFY_SOCKET, and /proc helpers. Every process a
//! test starts is killed by pid when the harness drops.

#![allow(dead_code)]

pub mod aes;
pub mod attack;
pub mod minion;
pub mod pysalt;
pub mod requests;
pub mod saltapi;

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[allow(unused_imports)] // each test binary uses its own subset
pub use brine_testutil::{accepts, alive, children_of, free_port, ppid, stat_fields, wait_until};

pub const BIN: &str = env!("CARGO_BIN_EXE_salt-master");

pub fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .unwrap()
        .unwrap()
        .name
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub conf_dir: PathBuf,
    pub publish_port: u16,
    pub ret_port: u16,
    pub workers: usize,
    /// The master's `interface` (an address minions and CLIs reach).
    pub interface: String,
}

impl Env {
    pub fn new(workers: usize) -> Env {
        Env::with_extra(workers, "")
    }

    pub fn with_extra(workers: usize, extra: &str) -> Env {
        Env::with_interface(workers, "127.0.0.1", extra)
    }

    /// A master bound on `interface` (`127.0.0.1`, or `::1` to test IPv6).
    pub fn with_interface(workers: usize, interface: &str, extra: &str) -> Env {
        Env::with_ports(
            workers,
            interface,
            (free_port_on(interface), free_port_on(interface)),
            extra,
        )
    }

    /// A master bound on `interface` with the given `(publish_port,
    /// ret_port)`: several masters on several loopback addresses share
    /// their ports, as Salt's multi-master setups do.
    pub fn with_ports(workers: usize, interface: &str, (publish_port, ret_port): (u16, u16), extra: &str) -> Env {
        // Short paths: unix socket paths are limited to 107 bytes.
        let dir = tempfile::Builder::new().prefix("brine").tempdir_in("/tmp").unwrap();
        let conf_dir = dir.path().join("conf");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let env = Env {
            conf_dir,
            publish_port,
            ret_port,
            workers,
            interface: interface.to_string(),
            dir,
        };
        let root = env.root();
        let master = format!(
            "interface: '{interface}'\npublish_port: {}\nret_port: {}\nworker_threads: {workers}\nroot_dir: {}\n\
             pki_dir: {root}/pki\ncachedir: {root}/cache\nsock_dir: {root}/sock\npidfile: {root}/run/salt-master.pid\n\
             log_file: {root}/log/master\nlog_level_logfile: info\nuser: {}\n{extra}",
            env.publish_port,
            env.ret_port,
            root.display(),
            current_user(),
            root = root.display()
        );
        std::fs::write(env.conf_dir.join("master"), master).unwrap();
        env
    }

    /// Whether the master accepts connections on `port` of its interface.
    pub fn accepts(&self, port: u16) -> bool {
        let ip: std::net::IpAddr = self.interface.parse().expect("an IP address as interface");
        std::net::TcpStream::connect_timeout(&(ip, port).into(), Duration::from_millis(200)).is_ok()
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
    pub fn sock(&self, name: &str) -> PathBuf {
        self.root().join("sock").join(name)
    }
    pub fn log_file(&self) -> PathBuf {
        self.root().join("log/master")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.root().join("run/salt-master.pid")
    }
    pub fn args(&self) -> Vec<String> {
        vec!["-c".into(), self.conf_dir.display().to_string()]
    }

    /// Start the master in the foreground with NOTIFY_SOCKET set.
    pub fn start(&self) -> Master {
        self.start_with(&self.args(), &[])
    }

    pub fn start_with(&self, args: &[String], env: &[(&str, &str)]) -> Master {
        let notify_path = self.dir.path().join(format!("notify-{}", rand_suffix()));
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        // Like systemd's: writable by a master that dropped privileges.
        std::fs::set_permissions(&notify_path, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        notify.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let stderr = std::fs::File::create(self.dir.path().join(format!("stderr-{}", rand_suffix()))).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        Master {
            pid: child.id() as i32,
            child: Some(child),
            notify,
            messages: Vec::new(),
            started: Instant::now(),
            known: Vec::new(),
        }
    }
}

/// A free port on `interface` (loopback IPv4, or `::1`).
fn free_port_on(interface: &str) -> u16 {
    if interface.contains(':') {
        std::net::TcpListener::bind((interface, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port on the IPv6 interface")
    } else {
        free_port()
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

pub struct Master {
    pub pid: i32,
    pub child: Option<Child>,
    pub notify: UnixDatagram,
    pub messages: Vec<String>,
    pub started: Instant,
    /// Every pid seen in the tree, killed on drop if still alive.
    pub known: Vec<i32>,
}

impl Master {
    /// Wait for a notify message containing `needle`; returns when it came.
    pub fn wait_notify(&mut self, needle: &str, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        if self.messages.iter().any(|m| m.contains(needle)) {
            return Some(Instant::now());
        }
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = m.contains(needle);
                self.messages.push(m);
                if hit {
                    return Some(Instant::now());
                }
            }
            if self.exited().is_some() {
                return None;
            }
        }
        None
    }

    pub fn wait_ready(&mut self) {
        assert!(
            self.wait_notify("READY=1", Duration::from_secs(20)).is_some(),
            "master did not become ready; messages {:?}",
            self.messages
        );
        self.remember_tree();
    }

    /// Exit status if the master process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid), sig).unwrap();
    }

    pub fn remember_tree(&mut self) {
        for p in descendants(self.pid) {
            if !self.known.contains(&p) {
                self.known.push(p);
            }
        }
    }

    /// Children of the ProcessManager by title name (the part after argv).
    pub fn named_children(&self, parent: i32, argv: &str) -> BTreeMap<String, i32> {
        children_of(parent)
            .into_iter()
            .map(|p| {
                (
                    cmdline(p).strip_prefix(&format!("{argv} ")).unwrap_or("?").to_string(),
                    p,
                )
            })
            .collect()
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.remember_tree();
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        for p in &self.known {
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

/// /proc/PID/cmdline as `ps` shows it.
pub fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let s: String = String::from_utf8_lossy(&raw).replace('\0', " ");
    s.trim_end().to_string()
}

pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// The pid whose open files include the socket listening on 127.0.0.1:port.
pub fn listener_pid(port: u16) -> Option<i32> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let want = format!(":{port:04X}");
    let inode = tcp.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1)?.ends_with(&want) && f.get(3)? == &"0A").then(|| f.get(9).map(|s| s.to_string()))?
    })?;
    let target = format!("socket:[{inode}]");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path())
                .map(|l| l.to_string_lossy() == target)
                .unwrap_or(false)
            {
                return Some(pid);
            }
        }
    }
    None
}

/// Everything the masters started by `env` wrote to stderr.
pub fn stderr_of(env: &Env) -> String {
    let mut files: Vec<_> = std::fs::read_dir(env.root())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("stderr-"))
        .map(|e| e.path())
        .collect();
    files.sort();
    files.iter().map(|p| read(p)).collect()
}

/// The first job id (20 digits) in a CLI's output.
pub fn jid_in(out: &str) -> String {
    let jid = regex::Regex::new(r"\d{20}").unwrap();
    jid.find(out)
        .unwrap_or_else(|| panic!("no jid in {out:?}"))
        .as_str()
        .to_string()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A TCP connection from `source` (a 127.0.0.x address) to
/// 127.0.0.1:`port`: a minion's connection as the master sees it (its
/// remote address is `source`).
pub fn connect_from(source: &str, port: u16) -> std::net::TcpStream {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::{AsRawFd, OwnedFd};
    let fd: OwnedFd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    let src: std::net::SocketAddrV4 = format!("{source}:0").parse().unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::from(src)).unwrap();
    let dst: std::net::SocketAddrV4 = format!("127.0.0.1:{port}").parse().unwrap();
    connect(fd.as_raw_fd(), &SockaddrIn::from(dst)).unwrap();
    std::net::TcpStream::from(fd)
}

/// Run `cmd` (stdin from /dev/null) to its end: stdout, stderr and the
/// exit status (-1 when killed by a signal).
pub fn output(cmd: &mut Command) -> (String, String, i32) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}
