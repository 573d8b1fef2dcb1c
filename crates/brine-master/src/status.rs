//! `salt-master status`: how the running master of a configuration is,
//! read from its pidfile, its status board and `/proc`, without asking
//! the master anything (a master too busy to answer still shows). Exit
//! status: [`SERVING`], [`DEGRADED`], [`NOT_RUNNING`], [`UNKNOWN`] (LSB's
//! `status` action uses 0, 1 and 3 the same way, and 4 for unknown).

use std::path::Path;

use serde_json::{json, Value as Json};

use brine_config::MasterConfig;
use brine_metrics::board::now_ms;
use brine_metrics::tree::{processes, State};
use brine_metrics::{Board, Counter};
use brine_proc::procstat;

use crate::cli::Options;
use crate::names;

/// Every process runs and is ready.
pub const SERVING: i32 = 0;
/// The master runs but a process is down, being replaced or not ready.
pub const DEGRADED: i32 = 1;
/// No master runs for this configuration.
pub const NOT_RUNNING: i32 = 3;
/// The state cannot be read (configuration, permissions).
pub const UNKNOWN: i32 = 4;

/// Run `salt-master status`; the exit status.
pub fn main(opts: &Options) -> i32 {
    let json = opts.out.as_deref() == Some("json");
    let cfg = match crate::cli::load_config(opts) {
        Ok(c) => c,
        Err(e) => return fail(json, UNKNOWN, &format!("cannot read the configuration: {e:#}")),
    };
    let (code, report) = status(&cfg);
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", table(&report));
    }
    code
}

fn fail(json: bool, code: i32, msg: &str) -> i32 {
    if json {
        println!("{}", json!({"state": "unknown", "exit_code": code, "error": msg}));
    } else {
        eprintln!("salt-master status: {msg}");
    }
    code
}

/// The pid in the pidfile, if a process with it runs.
fn running_pid(pidfile: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    procstat::alive(pid).then_some(pid)
}

/// The exit status and the report (what `--out json` prints; the table is
/// made from it).
pub fn status(cfg: &MasterConfig) -> (i32, Json) {
    let pidfile = cfg.pidfile.display().to_string();
    let Some(pid) = running_pid(&cfg.pidfile) else {
        let report = json!({
            "state": "not running",
            "exit_code": NOT_RUNNING,
            "pidfile": pidfile,
            "error": format!("no salt-master runs with the pid in {pidfile}"),
        });
        return (NOT_RUNNING, report);
    };
    let path = crate::metrics::board_path(cfg);
    let board = match Board::open(&path) {
        Ok(b) if b.manager().0 == pid => b,
        Ok(_) => {
            let msg = format!("{} belongs to another master than pid {pid}", path.display());
            return (
                UNKNOWN,
                json!({"state": "unknown", "exit_code": UNKNOWN, "pid": pid, "error": msg}),
            );
        }
        Err(e) => {
            let msg = format!("salt-master pid {pid} runs, but {} cannot be read: {e}", path.display());
            return (
                UNKNOWN,
                json!({"state": "unknown", "exit_code": UNKNOWN, "pid": pid, "error": msg}),
            );
        }
    };
    let now = now_ms();
    let (_, started) = board.manager();
    let procs: Vec<Json> = processes(&board)
        .into_iter()
        .map(|p| {
            // An MWorker: the requests it handled, and how long it has
            // been busy with the one in hand.
            let worker = p
                .role
                .strip_prefix(names::WORKER_PREFIX)
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|i| *i < board.workers())
                .map(|i| board.worker(i));
            json!({
                "title": p.role,
                "pid": (p.pid != 0).then_some(p.pid),
                "parent": p.parent,
                "state": p.state.as_str(),
                "uptime_seconds": (p.state != State::Down && p.started_ms > 0).then(|| now.saturating_sub(p.started_ms) / 1000),
                "restarts": p.restarts,
                "cpu_seconds": p.cpu_seconds.map(|c| (c * 100.0).round() / 100.0),
                "rss_bytes": p.memory.map(|m| m.0),
                "pss_bytes": p.memory.map(|m| m.1),
                "requests_handled": worker.map(|w| w.0),
                "busy_ms": worker.map(|w| (w.1 > 0).then(|| now.saturating_sub(w.1))),
            })
        })
        .collect();
    let down: Vec<String> = procs
        .iter()
        .filter(|p| p["state"] != State::Running.as_str())
        .filter_map(|p| p["title"].as_str().map(String::from))
        .collect();
    let serving = board.serving() && down.is_empty();
    let (code, state) = match (serving, board.serving()) {
        (true, _) => (SERVING, "serving"),
        (false, true) => (DEGRADED, "degraded"),
        (false, false) => (DEGRADED, "starting"),
    };
    let received = board.counter(Counter::Received);
    let answered = board.counter(Counter::Answered);
    let last_ok = board.counter(Counter::JobCacheLastOk);
    let last_err = board.counter(Counter::JobCacheLastError);
    let age = |ms: u64| (ms > 0).then(|| now.saturating_sub(ms) / 1000);
    let health = if last_err > last_ok {
        "failing"
    } else if last_ok > 0 {
        "ok"
    } else {
        "no writes yet"
    };
    let report = json!({
        "state": state,
        "exit_code": code,
        "version": env!("CARGO_PKG_VERSION"),
        "pid": pid,
        "pidfile": pidfile,
        "uptime_seconds": now.saturating_sub(started) / 1000,
        "not_running": down,
        "processes": procs,
        "connected_minions": brine_targeting::connected::connections_to(cfg.publish_port),
        "ret_port_connections": brine_targeting::connected::connections_to(cfg.ret_port),
        "publish_port": cfg.publish_port,
        "ret_port": cfg.ret_port,
        "requests": {
            "received": received,
            "answered": answered,
            "in_workers": board.busy_workers(),
            "queued": brine_metrics::render::queued(&board),
        },
        "reactor_queue": board.counter(Counter::ReactorQueue),
        "event_bus": {
            "events": board.counter(Counter::Events),
            "subscribers": board.counter(Counter::EventSubscribers),
            "subscribers_dropped": board.counter(Counter::EventSubscribersDropped),
        },
        "job_cache": {
            "backend": cfg.get_str("master_job_cache").unwrap_or("local_cache"),
            "health": health,
            "writes": board.counter(Counter::JobCacheWrites),
            "errors": board.counter(Counter::JobCacheErrors),
            "last_ok_seconds_ago": age(last_ok),
            "last_error_seconds_ago": age(last_err),
        },
    });
    (code, report)
}

/// Seconds as `2d 3h`, `3h 4m`, `4m 5s` or `5s`.
fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// The report for people.
pub fn table(r: &Json) -> String {
    let s = |v: &Json| v.as_str().unwrap_or("").to_string();
    let n = |v: &Json| v.as_u64().unwrap_or(0);
    let state = s(&r["state"]);
    if state == "not running" || state == "unknown" {
        return format!("salt-master: {state}: {}\n", s(&r["error"]));
    }
    let mut out = format!(
        "salt-master (Brine {}) is {state}: ProcessManager pid {}, up {}\n",
        s(&r["version"]),
        n(&r["pid"]),
        duration(n(&r["uptime_seconds"]))
    );
    if let Some(down) = r["not_running"].as_array().filter(|d| !d.is_empty()) {
        let names: Vec<String> = down.iter().map(s).collect();
        out += &format!("not running or not ready: {}\n", names.join(", "));
    }
    out += &format!(
        "\n{:<32} {:>8}  {:<9} {:>8} {:>8} {:>8} {:>8}  {}\n",
        "process", "pid", "state", "up", "restarts", "cpu s", "PSS MiB", "requests (MWorkers)"
    );
    for p in r["processes"].as_array().into_iter().flatten() {
        let indent = if p["parent"].is_string() { "  " } else { "" };
        let title = format!("{indent}{}", s(&p["title"]));
        let opt = |v: &Json, f: &dyn Fn(&Json) -> String| if v.is_null() { "-".to_string() } else { f(v) };
        let requests = match (p["requests_handled"].as_u64(), p["busy_ms"].as_u64()) {
            (Some(h), Some(ms)) => format!("{h} handled, busy for {ms} ms"),
            (Some(h), None) => format!("{h} handled, idle"),
            _ => String::new(),
        };
        let line = format!(
            "{:<32} {:>8}  {:<9} {:>8} {:>8} {:>8} {:>8}  {requests}",
            title,
            opt(&p["pid"], &|v| n(v).to_string()),
            s(&p["state"]),
            opt(&p["uptime_seconds"], &|v| duration(n(v))),
            opt(&p["restarts"], &|v| n(v).to_string()),
            opt(&p["cpu_seconds"], &|v| format!("{:.2}", v.as_f64().unwrap_or(0.0))),
            opt(&p["pss_bytes"], &|v| format!("{:.1}", n(v) as f64 / 1048576.0)),
        );
        out += line.trim_end();
        out.push('\n');
    }
    let q = &r["requests"];
    let jc = &r["job_cache"];
    let last = |k: &str| match jc[k].as_u64() {
        Some(a) => format!("{} ago", duration(a)),
        None => "never".into(),
    };
    out += &format!(
        "\nminions connected  {} on publish_port {} ({} on ret_port)\nrequests           {} received, {} answered, {} in the MWorkers, {} queued (ret_port {})\nreactor queue      {}\nevent bus          {} events, {} subscribers, {} dropped for falling behind\njob cache          {}: {}, {} writes, {} failed; last write {}, last failure {}\n",
        n(&r["connected_minions"]),
        n(&r["publish_port"]),
        n(&r["ret_port_connections"]),
        n(&q["received"]),
        n(&q["answered"]),
        n(&q["in_workers"]),
        n(&q["queued"]),
        n(&r["ret_port"]),
        n(&r["reactor_queue"]),
        n(&r["event_bus"]["events"]),
        n(&r["event_bus"]["subscribers"]),
        n(&r["event_bus"]["subscribers_dropped"]),
        s(&jc["backend"]),
        s(&jc["health"]),
        n(&jc["writes"]),
        n(&jc["errors"]),
        last("last_ok_seconds_ago"),
        last("last_error_seconds_ago"),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(65), "1m 5s");
        assert_eq!(duration(3 * 3600 + 120), "3h 2m");
        assert_eq!(duration(2 * 86400 + 3 * 3600), "2d 3h");
    }

    #[test]
    fn the_table_of_a_master_that_is_down() {
        let t = table(&json!({"state": "not running", "error": "no salt-master runs with the pid in /p"}));
        assert_eq!(t, "salt-master: not running: no salt-master runs with the pid in /p\n");
    }
}
