//! A job cache and a sessions dir that are full (no space, no inodes),
//! then read-only, then writable again, for real (tmpfs mounts; needs
//! root, as CI runs): publishing with Brine's `salt`, peer publishing,
//! returns and the authentication of a new minion go on; each kind of
//! failure is logged CRITICAL once per MWorker, not per request; caching
//! resumes by itself; no MWorker is replaced.

mod common;

use std::path::Path;
use std::time::Duration;

use brine_cache::{Jid, JobCache, LocalCache};
use brine_proto::Value;
use brine_testutil::Tmpfs;
use common::attack::{Watch, BYSTANDER};
use common::minion::{run_cli, Minion, READY};
use common::{read, wait_until, Env};

/// MWorkers (Salt raises `worker_threads` to 3 when `peer` is set).
const WORKERS: usize = 3;

fn salt(env: &Env, args: &[&str]) -> (String, String, i32) {
    run_cli(&env.conf_dir, "salt", args)
}

/// `id` answers `test.ping` published with Brine's `salt`.
fn pings(env: &Env, id: &str) -> bool {
    let (out, _, code) = salt(env, &[id, "test.ping", "--out", "json", "-t", "20"]);
    code == 0 && serde_json::from_str::<serde_json::Value>(&out).is_ok_and(|v| v[id] == serde_json::Value::Bool(true))
}

/// The master log's CRITICAL lines that contain every one of `needles`.
fn critical(env: &Env, needles: &[&str]) -> Vec<String> {
    read(&env.log_file())
        .lines()
        .filter(|l| l.contains("[CRITICAL]") && needles.iter().all(|n| l.contains(n)))
        .map(String::from)
        .collect()
}

/// The job directories (`<h[:2]>/<h[2:]>`) of a job cache, sorted.
fn job_dirs(jobs: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for top in std::fs::read_dir(jobs).unwrap().flatten() {
        let name = top.file_name().to_string_lossy().into_owned();
        if name.starts_with(".filler-") {
            continue;
        }
        for job in std::fs::read_dir(top.path()).unwrap().flatten() {
            out.push(format!("{name}/{}", job.file_name().to_string_lossy()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_full_or_read_only_cache_stops_nothing() {
    let env = Env::with_extra(WORKERS, "auto_accept: True\npeer:\n  newcomer:\n    - test\\..*\n");
    let cache = env.root().join("cache");
    let Some(mut jobs) = Tmpfs::mount(&cache.join("jobs"), "4m", 4000) else {
        return;
    };
    let Some(mut sessions) = Tmpfs::mount(&cache.join("sessions"), "256k", 200) else {
        return;
    };
    let mut master = env.start();
    master.wait_ready();
    let watch = Watch::start(&env, &master);
    let published_before = read(&env.log_file()).matches("test.ping for 1 minions").count();

    // Full: no blocks and no inodes left in either.
    jobs.fill();
    sessions.fill();
    // A new minion authenticates: its session key cannot be written, the
    // key every MWorker derives is used (its requests land on all three).
    let newcomer = Minion::start(&env, "3007.17", "newcomer", "");
    assert!(newcomer.wait_log(READY, Duration::from_secs(90)), "{}", newcomer.log());
    assert!(
        wait_until(Duration::from_secs(40), || pings(&env, "newcomer")),
        "the new minion does not answer: {}",
        newcomer.log()
    );
    assert!(!cache.join("sessions/newcomer").exists());
    // The jobs cached before the disk filled up (a save under way then
    // has finished by now).
    let cached_before = job_dirs(jobs.path());
    // A peer publish from it reaches the bystander.
    let (out, err, code) = salt(
        &env,
        &[
            "newcomer",
            "publish.publish",
            BYSTANDER,
            "test.echo",
            "peer-during-full",
            "-t",
            "30",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let bystander_log = env.root().join(format!("minion-{BYSTANDER}/var/log/salt/minion"));
    assert!(
        wait_until(Duration::from_secs(20), || read(&bystander_log)
            .contains("peer-during-full")),
        "the peer publish did not reach the bystander"
    );
    // Nothing was cached, and the bystander's pings (Watch) came back
    // from the event bus all along.
    assert_eq!(job_dirs(jobs.path()), cached_before);
    let published = read(&env.log_file()).matches("test.ping for 1 minions").count() - published_before;
    assert!(published > 2 * WORKERS, "only {published} publishes while full");
    let jobs_dir = jobs.path().display().to_string();
    for what in ["job cache (loads)", "job cache (returns)"] {
        let lines = critical(&env, &[what, "No space left on device"]);
        assert!(
            (1..=WORKERS).contains(&lines.len()),
            "{what}: {} CRITICAL lines for {published} jobs: {lines:#?}",
            lines.len()
        );
        assert!(lines.iter().all(|l| l.contains(&jobs_dir)), "{lines:#?}");
    }
    let lines = critical(&env, &["session keys", "sessions/newcomer", "No space left on device"]);
    assert!((1..=WORKERS).contains(&lines.len()), "{lines:#?}");

    // Read-only (with space): the same, reported once more for the cause.
    jobs.free();
    sessions.free();
    jobs.read_only(true);
    sessions.read_only(true);
    // A ping between the two steps may have been cached while there was
    // space: what counts is that nothing is cached from here on.
    let cached_before = job_dirs(jobs.path());
    assert!(
        wait_until(Duration::from_secs(20), || {
            !critical(&env, &["job cache (returns)", "Read-only file system"]).is_empty()
        }),
        "no CRITICAL line for the read-only job cache"
    );
    assert!(pings(&env, "newcomer") && pings(&env, BYSTANDER));
    assert_eq!(job_dirs(jobs.path()), cached_before);

    // Writable again: caching resumes without a restart.
    jobs.read_only(false);
    sessions.read_only(false);
    let (out, err, code) = salt(&env, &["-v", BYSTANDER, "test.ping", "-t", "20"]);
    assert_eq!(code, 0, "{out}{err}");
    let jid = out
        .lines()
        .find_map(|l| l.strip_prefix("Executing job with jid "))
        .and_then(Jid::parse)
        .unwrap_or_else(|| panic!("no jid in {out}"));
    let cached = LocalCache::new(&cache, "sha256");
    assert!(
        wait_until(Duration::from_secs(10), || cached
            .get_jid(&jid)
            .get(BYSTANDER)
            .is_some()),
        "the return of {jid} was not cached"
    );
    assert_eq!(
        cached.get_jid(&jid).get(BYSTANDER).and_then(|r| r.get("return")),
        Some(&Value::Bool(true))
    );
    let load = cached.get_load(&jid);
    assert_eq!(load.get("fun"), Some(&Value::from("test.ping")));
    assert_eq!(load.get("Minions"), Some(&Value::Array(vec![Value::from(BYSTANDER)])));
    assert!(
        wait_until(Duration::from_secs(10), || {
            read(&env.log_file()).contains("job cache (loads): writing works again")
        }),
        "the recovery is not logged"
    );
    assert!(pings(&env, "newcomer"));
    watch.finish();
}
