//! The bystander of an attack test: a real `salt-minion` that must keep
//! answering `test.ping` (published with Brine's `salt` CLI) for the whole
//! attack, and the master's process tree, which must come out of it with
//! the same pids (no MWorker died and was respawned).
//!
//! ```ignore
//! let env = Env::new(2);
//! let mut master = env.start();
//! master.wait_ready();
//! let watch = Watch::start(&env, &master);
//! // … the attack …
//! watch.finish();
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::minion::{run_cli, Minion, READY};
use super::{children_of, Env, Master};

/// The bystander's minion id.
pub const BYSTANDER: &str = "bystander";

/// How long one `test.ping` may take to come back, attack or not.
const PING_TIMEOUT: &str = "20";

/// One `test.ping` to the bystander: `Ok` when it answered `True`.
fn ping(conf_dir: &std::path::Path) -> Result<(), String> {
    let (out, err, code) = run_cli(
        conf_dir,
        "salt",
        &[BYSTANDER, "test.ping", "--out", "json", "-t", PING_TIMEOUT],
    );
    let answered = serde_json::from_str::<serde_json::Value>(&out)
        .map(|v| v[BYSTANDER] == serde_json::Value::Bool(true))
        .unwrap_or(false);
    if code == 0 && answered {
        Ok(())
    } else {
        Err(format!("exit {code}: {out}{err}"))
    }
}

/// When each ping started (since the watch began) and how it went.
type Pings = Vec<(Duration, Result<(), String>)>;

pub struct Watch {
    conf_dir: std::path::PathBuf,
    /// Title (after argv) → pid, for the ProcessManager's children and the
    /// ReqServer_ProcessManager's (MWorkerQueue, MWorker-N).
    tree: BTreeMap<String, i32>,
    master_pid: i32,
    argv: String,
    stop: Arc<AtomicBool>,
    pinger: Option<JoinHandle<Pings>>,
    started: Instant,
    _minion: Minion,
}

/// The master's named processes: the ProcessManager's children and the
/// ReqServer_ProcessManager's children, by title.
fn tree(master: i32, argv: &str) -> BTreeMap<String, i32> {
    let title = |p: i32| {
        super::cmdline(p)
            .strip_prefix(&format!("{argv} "))
            .unwrap_or("?")
            .to_string()
    };
    let mut out = BTreeMap::new();
    for p in children_of(master) {
        let t = title(p);
        if t == "ReqServer_ProcessManager" {
            for w in children_of(p) {
                out.insert(title(w), w);
            }
        }
        out.insert(t, p);
    }
    out
}

impl Watch {
    /// Starts the bystander (Salt 3007.17), accepts its key with Brine's
    /// `salt-key`, waits until it answers a ping, notes the process tree,
    /// and pings it every 300 ms in the background until [`Watch::finish`].
    pub fn start(env: &Env, master: &Master) -> Watch {
        let argv = format!("{} -c {}", super::BIN, env.conf_dir.display());
        let minion = Minion::start(env, "3007.17", BYSTANDER, "");
        let pki = brine_config::MasterConfig::load(&env.conf_dir).unwrap().pki_dir;
        let pre = pki.join("minions_pre").join(BYSTANDER);
        let accepted = pki.join("minions").join(BYSTANDER);
        assert!(
            super::wait_until(Duration::from_secs(60), || pre.exists() || accepted.exists()),
            "the bystander never asked to be accepted: {}",
            minion.log()
        );
        if !accepted.exists() {
            let (out, err, code) = run_cli(&env.conf_dir, "salt-key", &["-y", "-a", BYSTANDER]);
            assert_eq!(code, 0, "salt-key -a: {out}{err}");
        }
        assert!(
            minion.wait_log(READY, Duration::from_secs(90)),
            "the bystander did not start: {}",
            minion.log()
        );
        // Its SUB socket connects shortly after it logs ready.
        let ready = super::wait_until(Duration::from_secs(30), || ping(&env.conf_dir).is_ok());
        assert!(ready, "the bystander never answered a ping: {}", minion.log());
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let pinger = {
            let stop = stop.clone();
            let conf_dir = env.conf_dir.clone();
            std::thread::spawn(move || {
                let mut results = Vec::new();
                // At least one ping overlaps the attack, however short.
                loop {
                    results.push((started.elapsed(), ping(&conf_dir)));
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
                results
            })
        };
        Watch {
            conf_dir: env.conf_dir.clone(),
            tree: tree(master.pid, &argv),
            master_pid: master.pid,
            argv,
            stop,
            pinger: Some(pinger),
            started,
            _minion: minion,
        }
    }

    /// Ends the watch: one last ping after the attack, then asserts that
    /// every ping during it was answered (and that there was at least one)
    /// and that every named process of the master kept its pid.
    pub fn finish(mut self) {
        let last = ping(&self.conf_dir);
        self.stop.store(true, Ordering::SeqCst);
        let results = self.pinger.take().unwrap().join().unwrap();
        let missed: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
        assert!(
            missed.is_empty(),
            "the bystander missed {} of {} pings during the attack: {missed:?}",
            missed.len(),
            results.len()
        );
        assert!(
            !results.is_empty(),
            "no ping ran during the attack ({:?})",
            self.started.elapsed()
        );
        assert!(
            last.is_ok(),
            "the bystander stopped answering after the attack: {last:?}"
        );
        let now = tree(self.master_pid, &self.argv);
        assert_eq!(now, self.tree, "a process of the master was replaced");
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(p) = self.pinger.take() {
            let _ = p.join();
        }
    }
}
