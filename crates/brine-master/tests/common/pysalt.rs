//! Python Salt beside Brine: its `salt-master` on an [`Env`]'s config and
//! its CLIs, for tests that compare the two masters on the same work.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::minion::{venv, Minion, READY};
use super::{output, wait_until, Env, Master};

/// Python's salt-master on an [`Env`]'s config, in its own process group.
pub struct PyMaster(Child);

impl PyMaster {
    pub fn start(env: &Env, version: &str) -> PyMaster {
        PyMaster::start_with(env, version, &[])
    }

    /// With more environment variables (`SALT_MASTER_CONFIG`, for the
    /// LocalClient the master itself makes without a config path).
    pub fn start_with(env: &Env, version: &str, vars: &[(&str, &str)]) -> PyMaster {
        let log = std::fs::File::create(env.root().join("py-master.stderr")).unwrap();
        let child = Command::new(venv(version).join("bin/salt-master"))
            .arg("-c")
            .arg(&env.conf_dir)
            .args(["-l", "warning"])
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        assert!(
            wait_until(Duration::from_secs(60), || env.accepts(env.ret_port)
                && env.accepts(env.publish_port)),
            "Python salt-master did not start"
        );
        PyMaster(child)
    }
}

impl Drop for PyMaster {
    fn drop(&mut self) {
        brine_testutil::stop_group(&mut self.0, Duration::from_secs(10));
    }
}

/// A master for a side-by-side test, alive while held: Brine's (started
/// and ready) or Python's of some version.
pub enum EitherMaster {
    Brine(Master),
    Python(PyMaster),
}

impl EitherMaster {
    /// Python's master of `version` on `env` if `python`, else Brine's.
    pub fn start(env: &Env, python: bool, version: &str) -> EitherMaster {
        if python {
            EitherMaster::Python(PyMaster::start(env, version))
        } else {
            let mut m = env.start();
            m.wait_ready();
            EitherMaster::Brine(m)
        }
    }
}

/// Run a Python Salt CLI with the env's config dir: (stdout, stderr, status).
pub fn py(env: &Env, version: &str, tool: &str, args: &[&str]) -> (String, String, i32) {
    output(
        Command::new(venv(version).join("bin").join(tool))
            .arg("-c")
            .arg(&env.conf_dir)
            .args(args),
    )
}

/// Jids (20 digits) and times masked; lines sorted where the order is the
/// minions' arrival order.
pub fn mask(s: &str) -> String {
    let jid = regex::Regex::new(r"\b\d{20}\b").unwrap();
    let time = regex::Regex::new(r"\d{4}, \w{3} \d{2} \d{2}:\d{2}:\d{2}\.\d{6}").unwrap();
    let s = jid.replace_all(s, "<jid>");
    time.replace_all(&s, "<time>").into_owned()
}

/// One side of a Brine-vs-Python comparison: a master (Brine, or Python
/// Salt's of `version`) on a fresh [`Env`] with two real minions of that
/// version, `a1` (grain role: web) and `a2` (role: db). Fields drop in
/// order: the env's processes go before its directory.
pub struct Side {
    pub env: Env,
    pub version: &'static str,
    _py: Option<PyMaster>,
    _brine: Option<Master>,
    pub minions: Vec<Minion>,
}

impl Side {
    /// `extra` goes into both masters' config, `brine_extra` into Brine's
    /// only, `minion_extra` into both minions'; `prepare` runs on the env
    /// before the master starts (trees to serve, more config).
    pub fn start(
        brine: bool,
        version: &'static str,
        extra: &str,
        brine_extra: &str,
        minion_extra: &str,
        prepare: impl FnOnce(&Env),
    ) -> Side {
        let extra = if brine {
            format!("{extra}{brine_extra}")
        } else {
            extra.to_string()
        };
        let env = Env::with_extra(2, &extra);
        prepare(&env);
        let (py_master, brine_master) = if brine {
            let mut m = env.start();
            m.wait_ready();
            (None, Some(m))
        } else {
            (Some(PyMaster::start(&env, version)), None)
        };
        // Grains for `-G`: the master targets from its minion data cache.
        let minions: Vec<Minion> = [("a1", "web"), ("a2", "db")]
            .iter()
            .map(|(id, role)| Minion::start(&env, version, id, &format!("grains:\n  role: {role}\n{minion_extra}")))
            .collect();
        for m in &minions {
            assert!(m.wait_log(READY, Duration::from_secs(120)), "{}", m.log());
        }
        std::thread::sleep(Duration::from_secs(2));
        Side {
            env,
            version,
            _py: py_master,
            _brine: brine_master,
            minions,
        }
    }
}

impl Side {
    /// What Python's `salt` of the side's version prints as JSON.
    pub fn salt_json(&self, args: &[&str]) -> serde_json::Value {
        let (out, err, code) = py(
            &self.env,
            self.version,
            "salt",
            &[args, &["--out", "json", "--static", "-t", "60"]].concat(),
        );
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"))
    }

    /// Publish with Python's `salt --async`: the job's id.
    pub fn salt_async(&self, args: &[&str]) -> String {
        let (out, err, code) = py(&self.env, self.version, "salt", &[&["--async"], args].concat());
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        super::jid_in(&out)
    }
}
