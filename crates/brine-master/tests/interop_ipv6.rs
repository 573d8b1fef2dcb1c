//! `interface: '::1'` end to end: the master binds 4505 and 4506 on ::1
//! only, Brine's `salt` and `salt-key` work against it, a real
//! salt-minion 3007.17 (`master: '::1'`, `ipv6: True`) authenticates, takes
//! a job and returns it, and the master's own `manage.up` runner reaches
//! its request port over ::1. Skipped, with the reason printed, on a
//! machine without an IPv6 loopback.

mod common;

use std::time::{Duration, Instant};

use brine_client::{BusAddr, EventBus, LocalClient, UserKey};
use brine_proto::Value;
use common::minion::{run_cli, Minion, READY};
use common::*;

fn run(env: &Env, bin: &str, args: &[&str]) -> (String, String, i32) {
    run_cli(&env.conf_dir, bin, args)
}

/// Whether something listens on `[::1]:port` (`/proc/net/tcp6`).
fn listens_on_ipv6_loopback(port: u16) -> bool {
    let tcp6 = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let want = format!("00000000000000000000000001000000:{port:04X}");
    tcp6.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&want.as_str()) && f.get(3) == Some(&"0A")
    })
}

#[test]
fn master_on_ipv6_loopback_serves_cli_minion_and_runner() {
    if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
        eprintln!("skipped: this machine has no IPv6 loopback (binding [::1]: {e})");
        return;
    }
    let env = Env::with_interface(2, "::1", "");
    let mut m = env.start();
    m.wait_ready();
    for port in [env.publish_port, env.ret_port] {
        assert!(listens_on_ipv6_loopback(port), "nothing listens on [::1]:{port}");
        assert!(!accepts(port), "the master also listens on 127.0.0.1:{port}");
    }

    // A publish that matches no minion still goes through 4506 and back.
    let (out, err, code) = run(&env, "salt", &["nobody", "test.ping", "-t", "5"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("No minions matched the target."), "{out}{err}");

    let mut minion = Minion::start(&env, "3007.17", "v6m", "");
    assert!(
        wait_until(Duration::from_secs(60), || {
            run(&env, "salt-key", &["-L"]).0.contains("Unaccepted Keys:\nv6m\n")
        }),
        "the minion's key never came over ::1: {}",
        minion.log()
    );
    let (out, err, code) = run(&env, "salt-key", &["-a", "v6m", "-y"]);
    assert_eq!(code, 0, "{out}{err}");
    let (out, _, _) = run(&env, "salt-key", &["-L"]);
    assert!(out.starts_with("Accepted Keys:\nv6m\n"), "{out}");
    assert!(minion.wait_log(READY, Duration::from_secs(90)), "{}", minion.log());
    // Give the SUB socket a moment to connect (as Salt minions do).
    std::thread::sleep(Duration::from_secs(2));

    let (out, err, code) = run(&env, "salt", &["v6m", "test.ping", "-t", "30"]);
    assert_eq!((code, out.as_str()), (0, "v6m:\n    True\n"), "{err}");
    let (out, err, code) = run(&env, "salt", &["*", "test.ping", "--async"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("Executed command with job ID: "), "{out}{err}");

    // manage.up publishes test.ping through the master's own request port.
    let cfg = brine_config::MasterConfig::load(&env.conf_dir).unwrap();
    let mut bus = EventBus::subscribe(&BusAddr::from_config(&cfg)).unwrap();
    let mut client = LocalClient::from_config(&cfg, UserKey::current(&cfg).unwrap());
    let started = client
        .runner("manage.up", vec![], vec![("timeout".into(), Value::Int(20))])
        .unwrap();
    let ret_tag = format!("{}/ret", started.tag);
    let deadline = Instant::now() + Duration::from_secs(40);
    let ret = loop {
        let ev = bus.next(deadline).unwrap().expect("manage.up returned in time");
        if ev.tag == ret_tag {
            break ev.data;
        }
    };
    assert_eq!(
        ret.get("return"),
        Some(&Value::Array(vec![Value::from("v6m")])),
        "{ret:?}"
    );
    minion.stop();
}
