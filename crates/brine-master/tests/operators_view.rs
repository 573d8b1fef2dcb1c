//! What operators see of a running master beside `ps`: the Prometheus
//! endpoint (`metrics_port`) and `salt-master status`, with a real
//! salt-minion signing in and returning.

mod common;

use std::process::Command;
use std::time::Duration;

use common::minion::{run_cli, Minion, READY};
use common::{free_port, output, wait_until, Env, BIN};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// One scrape of `http://127.0.0.1:port/metrics`: the status line and body.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    out
}

/// The value of the sample `series` (name and labels exactly as
/// exposed); None when the scrape does not have it.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{series}: {v:?}")))
}

fn val(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[test]
fn metrics_move_when_a_real_minion_signs_in_and_returns() {
    let port = free_port();
    let env = Env::with_extra(2, &format!("metrics_port: {port}\n"));
    let mut master = env.start();
    master.wait_ready();

    let first = scrape(port);
    for role in [
        "ProcessManager",
        "EventPublisher",
        "MWorkerQueue",
        "MWorker-0",
        "MWorker-1",
    ] {
        assert_eq!(val(&first, &format!("salt_master_process_up{{role=\"{role}\"}}")), 1.0);
        assert!(val(&first, &format!("salt_master_process_pss_bytes{{role=\"{role}\"}}")) > 0.0);
    }
    assert_eq!(val(&first, "salt_master_auth_total{result=\"accepted\"}"), 0.0);
    assert_eq!(val(&first, "salt_master_returns_total"), 0.0);
    assert_eq!(val(&first, "salt_master_connected_minions"), 0.0);
    assert!(first.trim_end().ends_with("# EOF"), "{first}");
    // Bound to 127.0.0.1 only (metrics_interface's default).
    assert!(std::net::TcpStream::connect(("127.0.0.2", port)).is_err());

    // Signing in: pending until salt-key accepts the key, then accepted.
    let minion = Minion::start(&env, "3007.17", "metered", "");
    assert!(
        wait_until(Duration::from_secs(60), || val(
            &scrape(port),
            "salt_master_auth_total{result=\"pending\"}"
        ) >= 1.0),
        "no pending sign-in counted"
    );
    let (out, err, code) = run_cli(&env.conf_dir, "salt-key", &["-y", "-a", "metered"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(minion.wait_log(READY, Duration::from_secs(60)), "{}", minion.log());
    let signed_in = scrape(port);
    assert!(val(&signed_in, "salt_master_auth_total{result=\"accepted\"}") >= 1.0);
    assert!(val(&signed_in, "salt_master_requests_total{cmd=\"_auth\",result=\"ok\"}") >= 2.0);
    assert!(val(&signed_in, "salt_master_request_duration_seconds_count{cmd=\"_auth\"}") >= 2.0);
    assert!(wait_until(Duration::from_secs(10), || val(
        &scrape(port),
        "salt_master_connected_minions"
    ) >= 1.0));

    // A job: a publication, a return, job cache writes, events.
    let (out, err, code) = run_cli(&env.conf_dir, "salt", &["metered", "test.ping"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("True"), "{out}");
    let after = scrape(port);
    assert!(val(&after, "salt_master_publishes_total") >= 1.0, "{after}");
    assert!(val(&after, "salt_master_returns_total") >= 1.0, "{after}");
    assert!(val(&after, "salt_master_requests_total{cmd=\"publish\",result=\"ok\"}") >= 1.0);
    assert!(val(&after, "salt_master_requests_total{cmd=\"_return\",result=\"ok\"}") >= 1.0);
    assert!(val(&after, "salt_master_request_duration_seconds_count{cmd=\"_return\"}") >= 1.0);
    // The job's load and the minion's return.
    assert!(val(&after, "salt_master_job_cache_writes_total") >= 2.0, "{after}");
    assert_eq!(val(&after, "salt_master_job_cache_write_errors_total"), 0.0);
    assert!(
        val(
            &after,
            "salt_master_job_cache_write_duration_seconds_count{backend=\"local_cache\"}"
        ) >= 2.0
    );
    assert!(val(&after, "salt_master_events_total") > val(&first, "salt_master_events_total"));
    let cpu = |t: &str| val(t, "salt_master_process_cpu_seconds_total{role=\"MWorkerQueue\"}");
    assert!(cpu(&after) >= cpu(&first));
    drop(minion);
}

fn status(env: &Env, json: bool) -> (i32, String, serde_json::Value) {
    let mut cmd = Command::new(BIN);
    cmd.arg("-c").arg(&env.conf_dir).arg("status");
    if json {
        cmd.arg("--out=json");
    }
    let (out, err, code) = output(&mut cmd);
    let parsed = if json {
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"))
    } else {
        serde_json::Value::Null
    };
    (code, format!("{out}{err}"), parsed)
}

fn process<'a>(report: &'a serde_json::Value, title: &str) -> &'a serde_json::Value {
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("no {title} in {report}"))
}

#[test]
fn status_tells_serving_degraded_and_not_running() {
    let env = Env::new(2);
    let mut master = env.start();
    master.wait_ready();

    let (code, text, _) = status(&env, false);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("is serving: ProcessManager pid"), "{text}");
    for title in [
        "MultiprocessingLoggingQueue",
        "ZeroMQPubServerChannel",
        "EventPublisher",
        "Maintenance",
        "Reactor",
        "ReqServer_ProcessManager",
        "  MWorkerQueue",
        "  MWorker-0",
        "  MWorker-1",
        "minions connected  0",
        "job cache          local_cache",
    ] {
        assert!(text.contains(title), "no {title:?} in:\n{text}");
    }
    let (code, _, report) = status(&env, true);
    assert_eq!((code, report["state"].as_str()), (0, Some("serving")));
    assert_eq!(report["pid"], master.pid);
    assert_eq!(report["processes"].as_array().unwrap().len(), 10);
    assert_eq!(process(&report, "MWorker-1")["parent"], "ReqServer_ProcessManager");
    let maintenance = process(&report, "Maintenance")["pid"].as_i64().unwrap() as i32;
    assert_eq!(process(&report, "Maintenance")["restarts"], 0);

    // A role dies while the ProcessManager cannot replace it yet (stopped):
    // it shows as down, and the master as degraded.
    master.signal(Signal::SIGSTOP);
    kill(Pid::from_raw(maintenance), Signal::SIGKILL).unwrap();
    assert!(wait_until(Duration::from_secs(5), || !common::alive(maintenance)));
    let (code, text, _) = status(&env, false);
    master.signal(Signal::SIGCONT);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("is degraded") && text.contains("not running or not ready: Maintenance"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Maintenance") && l.contains(" down ")),
        "{text}"
    );
    // Replaced: serving again, with one restart counted.
    assert!(
        wait_until(Duration::from_secs(10), || status(&env, false).0 == 0),
        "{}",
        status(&env, false).1
    );
    let (_, _, report) = status(&env, true);
    assert_eq!(process(&report, "Maintenance")["restarts"], 1);
    assert_ne!(process(&report, "Maintenance")["pid"], maintenance);

    // Stopped: not running, exit status 3.
    master.signal(Signal::SIGTERM);
    assert!(master.wait_exit(Duration::from_secs(10)).is_some());
    let (code, text, _) = status(&env, false);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("not running"), "{text}");
    let (code, _, report) = status(&env, true);
    assert_eq!((code, report["state"].as_str()), (3, Some("not running")));
}
