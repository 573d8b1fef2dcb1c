//! Real `salt-minion` processes from the venvs `scripts/salt-venv` builds.
//! Each minion runs in its own process group, killed as a group on drop.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::{current_user, output, read, wait_until, Env};

pub const VERSIONS: [&str; 2] = ["3006.30", "3007.17"];

/// What a real minion logs once it is connected and serving.
pub const READY: &str = "Minion is ready to receive requests!";

/// The venv of Python Salt `version`.
pub use brine_testutil::salt_venv as venv;

/// A Brine binary built beside the test (e.g. `salt-key`).
pub fn brine_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(p.exists(), "{} is not built: run cargo build --workspace", p.display());
    p
}

/// Runs one of Brine's CLIs (`salt`, `salt-key`) with `-c <env's config>`:
/// stdout, stderr and the exit status.
pub fn run_cli(conf_dir: &std::path::Path, bin: &str, args: &[&str]) -> (String, String, i32) {
    output(Command::new(brine_bin(bin)).arg("-c").arg(conf_dir).args(args))
}

pub struct Minion {
    pub id: String,
    pub version: String,
    pub root: PathBuf,
    pub conf_dir: PathBuf,
    child: Option<Child>,
}

impl Minion {
    /// Start `salt-minion` `version` with id `id` against `env`'s master.
    pub fn start(env: &Env, version: &str, id: &str, extra: &str) -> Minion {
        Minion::start_to(env, version, id, &format!("'{}'", env.interface), extra)
    }

    /// Start `salt-minion` `version` with `master: <masters>` (a YAML
    /// value: one address, or a list for multi-master and failover), the
    /// ports of `env`, and its root under `env`'s.
    pub fn start_to(env: &Env, version: &str, id: &str, masters: &str, extra: &str) -> Minion {
        let root = env.root().join(format!("minion-{id}"));
        let conf_dir = root.join("conf");
        std::fs::create_dir_all(&conf_dir).unwrap();
        std::fs::write(
            conf_dir.join("minion"),
            format!(
                "master: {masters}\nmaster_port: {}\npublish_port: {}\nid: {id}\nroot_dir: {}\nuser: {}\n{}\
                 log_level_logfile: debug\nacceptance_wait_time: 1\nacceptance_wait_time_max: 1\n\
                 rejected_retry: True\nrandom_reauth_delay: 0\nauth_timeout: 10\n{extra}",
                env.ret_port,
                env.publish_port,
                root.display(),
                current_user(),
                // Salt's minion resolves and connects over IPv6 only with `ipv6`.
                if env.interface.contains(':') {
                    "ipv6: True\n"
                } else {
                    ""
                },
            ),
        )
        .unwrap();
        let mut m = Minion {
            id: id.to_string(),
            version: version.to_string(),
            root,
            conf_dir,
            child: None,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let bin = venv(&self.version).join("bin/salt-minion");
        let out = std::fs::File::create(self.root.join("stdout")).unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&self.conf_dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn pki(&self) -> PathBuf {
        self.root.join("etc/salt/pki/minion")
    }

    pub fn log(&self) -> String {
        read(&self.root.join("var/log/salt/minion"))
    }

    /// The master key the minion cached (`minion_master.pub`), if any.
    pub fn master_pub(&self) -> Option<String> {
        std::fs::read_to_string(self.pki().join("minion_master.pub")).ok()
    }

    pub fn public_key(&self) -> String {
        read(&self.pki().join("minion.pub"))
    }

    /// `salt-call` of this minion's version with its config: (exit
    /// status, stdout + stderr).
    pub fn salt_call(&self, args: &[&str]) -> (i32, String) {
        let (out, err, code) = output(
            Command::new(venv(&self.version).join("bin/salt-call"))
                .arg("-c")
                .arg(&self.conf_dir)
                .args(args),
        );
        (code, format!("{out}{err}"))
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log().contains(needle))
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pgid = Pid::from_raw(c.id() as i32);
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = c.wait();
            // Until the whole group is gone (killpg fails with ESRCH).
            wait_until(Duration::from_secs(5), || killpg(pgid, None).is_err());
        }
        // A SIGKILLed minion leaves its pidfile; a restart would refuse to run.
        let _ = std::fs::remove_file(self.root.join("var/run/salt-minion.pid"));
    }

    /// Restart with the same config (and keys).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Minion {
    fn drop(&mut self) {
        self.stop();
    }
}
