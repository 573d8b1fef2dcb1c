//! A real salt-minion 3007.17 with two masters, master A on 127.0.0.1 and
//! master B on 127.0.0.2 with the same ports: each scenario runs against
//! two Brine masters and then two Python masters (3007.17) in the same
//! configuration, and what an operator sees through the CLIs is compared.
//!
//! - Hot multi-master (`master: [A, B]`, `master_type: str`): one minion
//!   process keeps a connection to each master. The masters share one
//!   `pki_dir` (and so one key pair; on a shared filesystem in real
//!   life, a symlink here), as Salt's multi-master tutorial allows: the minion's key is pending once, `salt-key -a` on A is seen
//!   by B as it runs, a job published on either master returns to that
//!   master only, and B keeps serving when A stops.
//! - Failover (`master_type: failover`): the minion talks to the first
//!   master that answers. When A stops, the minion moves to B, which then
//!   runs its jobs. Salt 3007's zeromq transport watches the publish
//!   socket and fires `__master_disconnected` as soon as the connection
//!   closes, so the move follows the master's exit closely; the
//!   `status.master` schedule every `master_alive_interval` seconds is
//!   the fallback for a master that vanishes without closing its
//!   connections (a host that is cut off, not tested here). The masters
//!   have their own `pki_dir` with the same master key pair (copied), as
//!   Salt's failover documentation asks.

mod common;

use std::time::{Duration, Instant};

use brine_client::{BusAddr, EventBus};
use common::minion::{run_cli, Minion, READY};
use common::pysalt::{mask, py, EitherMaster};
use common::*;

const VERSION: &str = "3007.17";
const MASTERS: &str = "['127.0.0.1', '127.0.0.2']";

/// A `(publish_port, ret_port)` pair free on both 127.0.0.1 and 127.0.0.2.
fn ports_free_on_both() -> (u16, u16) {
    let free = || loop {
        let p = free_port();
        if std::net::TcpListener::bind(("127.0.0.2", p)).is_ok() {
            return p;
        }
    };
    let publish = free();
    loop {
        let ret = free();
        if ret != publish {
            return (publish, ret);
        }
    }
}

/// One of the CLIs of the side under test against `env`'s master:
/// Brine's own binaries, or Python Salt's. (stdout + stderr, exit status)
fn cli(env: &Env, brine: bool, tool: &str, args: &[&str]) -> (String, i32) {
    let (out, err, code) = if brine {
        run_cli(&env.conf_dir, tool, args)
    } else {
        py(env, VERSION, tool, args)
    };
    (format!("{out}{err}"), code)
}

/// Stop a master by its pid (SIGTERM to Brine's ProcessManager, to
/// Python's process group) and wait until it is gone.
fn stop(master: EitherMaster) {
    match master {
        EitherMaster::Brine(mut m) => {
            m.remember_tree();
            m.signal(nix::sys::signal::Signal::SIGTERM);
            assert!(
                m.wait_exit(Duration::from_secs(20)).is_some(),
                "Brine's master did not stop"
            );
        }
        EitherMaster::Python(p) => drop(p),
    }
}

fn side(brine: bool) -> &'static str {
    if brine {
        "Brine"
    } else {
        "Python"
    }
}

/// What the operator saw in the hot multi-master scenario, step by step.
fn hot_multi_master(brine: bool) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    let ports = ports_free_on_both();
    let a = Env::with_ports(2, "127.0.0.1", ports, "");
    let b = Env::with_ports(2, "127.0.0.2", ports, "");
    // A first: it makes the key pair B then finds in the shared pki_dir.
    let master_a = EitherMaster::start(&a, !brine, VERSION);
    // B's pki_dir is A's. A symlink, not `pki_dir: <A's>` in B's config:
    // Salt prepends root_dir to pki_dir even when it is absolute (a path
    // outside root_dir ends up below it).
    let pki = a.root().join("pki");
    std::os::unix::fs::symlink(&pki, b.root().join("pki")).unwrap();
    let _master_b = EitherMaster::start(&b, !brine, VERSION);

    let minion = Minion::start_to(&a, VERSION, "hot1", MASTERS, "");
    // The minion asks both masters; the key waits once, in the one pki_dir.
    assert!(
        wait_until(Duration::from_secs(60), || pki.join("minions_pre/hot1").exists()),
        "{}: the key never came: {}",
        side(brine),
        minion.log()
    );
    for (name, env) in [("A", &a), ("B", &b)] {
        let (out, code) = cli(env, brine, "salt-key", &["-L"]);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("Unaccepted Keys:\nhot1\n"),
            "{} on {name}: {out}",
            side(brine)
        );
        seen.push((format!("salt-key -L on {name}"), out));
    }
    let (out, code) = cli(&a, brine, "salt-key", &["-a", "hot1", "-y"]);
    assert_eq!(code, 0, "{out}");
    seen.push(("salt-key -a on A".into(), out));
    // B reads the accepted key from the shared pki_dir as it runs: the
    // minion's connection to B authenticates too (one "ready" per master).
    assert!(
        wait_until(Duration::from_secs(90), || minion.log().matches(READY).count() >= 2),
        "{}: the minion did not connect to both masters: {}",
        side(brine),
        minion.log()
    );
    // Give the SUB sockets a moment to connect (as Salt minions do).
    std::thread::sleep(Duration::from_secs(2));
    for (name, env) in [("B", &b), ("A", &a)] {
        let (out, code) = cli(env, brine, "salt", &["hot1", "test.ping", "-t", "30"]);
        assert_eq!(
            (code, out.as_str()),
            (0, "hot1:\n    True\n"),
            "{} on {name}",
            side(brine)
        );
        seen.push((format!("salt test.ping on {name}"), out));
    }

    // A job returns to the master that published it, and only there.
    for (name, env, other) in [("A", &a, &b), ("B", &b, &a)] {
        let (out, code) = cli(env, brine, "salt", &["hot1", "test.echo", name, "--async"]);
        assert_eq!(code, 0, "{out}");
        let jid = out
            .trim()
            .strip_prefix("Executed command with job ID: ")
            .unwrap_or_else(|| panic!("{out}"))
            .to_string();
        let want = format!("hot1:\n    {name}\n");
        let mut got = String::new();
        let back = wait_until(Duration::from_secs(30), || {
            got = cli(env, brine, "salt-run", &["jobs.lookup_jid", &jid]).0;
            got == want
        });
        assert!(
            back,
            "{}: the job of {name} did not return to {name}: {got}",
            side(brine)
        );
        seen.push((format!("jobs.lookup_jid of {name}'s job on {name}"), got));
        let (out, _) = cli(other, brine, "salt-run", &["jobs.lookup_jid", &jid]);
        assert!(
            !out.contains("hot1"),
            "{}: {name}'s job returned elsewhere: {out}",
            side(brine)
        );
        seen.push((format!("jobs.lookup_jid of {name}'s job on the other master"), out));
    }

    // With A stopped, B still serves the minion.
    stop(master_a);
    let (out, code) = cli(&b, brine, "salt", &["hot1", "test.ping", "-t", "30"]);
    assert_eq!((code, out.as_str()), (0, "hot1:\n    True\n"), "{}", side(brine));
    seen.push(("salt test.ping on B with A stopped".into(), out));
    seen
}

#[test]
fn hot_multi_master_brine_as_python() {
    let brine = hot_multi_master(true);
    let python = hot_multi_master(false);
    let show = |v: &[(String, String)]| {
        v.iter()
            .map(|(step, out)| format!("== {step}\n{}", mask(out)))
            .collect::<String>()
    };
    assert_eq!(show(&brine), show(&python));
}

/// The failover scenario: the time from master A's stop until master B
/// sees the minion start, and what the operator saw.
fn failover(brine: bool, alive_interval: u64) -> (Duration, Vec<(String, String)>) {
    let mut seen = Vec::new();
    let ports = ports_free_on_both();
    let a = Env::with_ports(2, "127.0.0.1", ports, "auto_accept: True\n");
    let b = Env::with_ports(2, "127.0.0.2", ports, "auto_accept: True\n");
    let master_a = EitherMaster::start(&a, !brine, VERSION);
    // Both masters need the same key pair: the minion caches the first
    // master's public key and refuses one that differs.
    let pki_b = b.root().join("pki");
    std::fs::create_dir_all(&pki_b).unwrap();
    for (name, mode) in [("master.pem", 0o400), ("master.pub", 0o644)] {
        std::fs::copy(a.root().join("pki").join(name), pki_b.join(name)).unwrap();
        std::fs::set_permissions(pki_b.join(name), std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let _master_b = EitherMaster::start(&b, !brine, VERSION);

    // retry_dns: 0, or Salt's minion sets it (and says so) for failover.
    let minion = Minion::start_to(
        &a,
        VERSION,
        "fo1",
        MASTERS,
        &format!("master_type: failover\nmaster_alive_interval: {alive_interval}\nretry_dns: 0\n"),
    );
    assert!(
        minion.wait_log(READY, Duration::from_secs(90)),
        "{}: {}",
        side(brine),
        minion.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let (out, code) = cli(&a, brine, "salt", &["fo1", "test.ping", "-t", "30"]);
    assert_eq!((code, out.as_str()), (0, "fo1:\n    True\n"), "{}", side(brine));
    seen.push(("salt test.ping on A".into(), out));
    // The minion talks to A only: B has not even seen its key.
    let (out, code) = cli(&b, brine, "salt-key", &["-L"]);
    assert_eq!(code, 0, "{out}");
    seen.push(("salt-key -L on B".into(), out));

    // B's event bus, read from before A stops: the minion's start event on
    // B marks the moment it moved (Salt's failover tests wait for it too).
    let cfg = brine_config::MasterConfig::load(&b.conf_dir).unwrap();
    let mut bus = EventBus::subscribe(&BusAddr::from_config(&cfg)).unwrap();
    let stopped = Instant::now();
    stop(master_a);
    // The minion sees its publish connection close (or, at the latest,
    // its status.master schedule notices within master_alive_interval),
    // authenticates with B and fires its start event there; then B's jobs
    // reach it. The bound leaves room for a loaded 2-core box.
    let bound = Duration::from_secs(alive_interval * 3 + 30);
    let deadline = stopped + bound;
    let mut moved = None;
    while let Ok(Some(ev)) = bus.next(deadline) {
        if ev.tag == "salt/minion/fo1/start" {
            moved = Some(stopped.elapsed());
            break;
        }
    }
    let Some(took) = moved else {
        panic!(
            "{}: master B saw no start event of the minion within {bound:?}: {}",
            side(brine),
            minion.log()
        )
    };
    // Its first job through B: the publish may still race the minion's
    // new SUB connection, so a few short tries.
    let mut last = String::new();
    let answered = wait_until(Duration::from_secs(30), || {
        let (out, code) = cli(&b, brine, "salt", &["fo1", "test.ping", "-t", "5"]);
        last = out;
        code == 0 && last == "fo1:\n    True\n"
    });
    assert!(
        answered,
        "{}: the minion moved to B but does not answer its jobs; last answer {last:?}: {}",
        side(brine),
        minion.log()
    );
    seen.push(("salt test.ping on B after failover".into(), last));
    let (out, code) = cli(&b, brine, "salt", &["fo1", "cmd.run", "echo moved", "-t", "30"]);
    assert_eq!((code, out.as_str()), (0, "fo1:\n    moved\n"), "{}", side(brine));
    seen.push(("salt cmd.run on B".into(), out));
    assert!(
        minion
            .log()
            .contains("Trying to tune in to next master from master-list"),
        "{}",
        minion.log()
    );
    (took, seen)
}

#[test]
fn failover_brine_as_python() {
    // As Salt's own failover tests (any positive interval schedules
    // status.master).
    let interval = 5;
    let (brine_took, brine) = failover(true, interval);
    let (python_took, python) = failover(false, interval);
    eprintln!(
        "failover with master_alive_interval {interval}s, from A's stop to the minion's start event on B: Brine {:.1}s, Python {:.1}s",
        brine_took.as_secs_f64(),
        python_took.as_secs_f64()
    );
    assert_eq!(brine, python);
}
