//! Maintenance: the master's timed loop, one pass every `loop_interval`
//! seconds, doing what Salt's `Maintenance.run` does on a master without
//! a scheduler or git_pillar:
//!
//! * **Expired eauth tokens**: Salt's `clean_expired_tokens`; every token
//!   past its `expire` (or without one, or unreadable) is removed from the
//!   token store, so a token file never outlives its session for long
//!   (each use of an expired token refuses and removes it too).
//! * **Job cache cleanup**: [`JobCache::clean_old_jobs`] on the configured
//!   job cache (`keep_jobs_seconds`, or the older `keep_jobs` hours; 0
//!   keeps jobs forever), as Salt's `masterapi.clean_old_jobs` calls the
//!   `master_job_cache` returner's `clean_old_jobs`.
//! * **Presence** (`presence_events: True`): Salt's `handle_presence`. Each
//!   pass fires `salt/presence/change` `{new, lost}` when the connected
//!   minions ([`connected_ids`], Salt's `CkMinions.connected_ids`) differ
//!   from the previous pass, then `salt/presence/present` `{present}`,
//!   and writes the set to `cachedir/presence-data` in Salt's `CacheDisk`
//!   format, which also seeds the first pass (if under an hour old), so
//!   a restarted master does not report every connected minion as new. A
//!   Python master and Brine read each other's file.
//! * **AES rotation**: Salt's `handle_key_rotate`. When `salt-key` leaves
//!   `cachedir/.dfn` (mode 0400, content = the master's id as 3007 writes
//!   it, or empty as 3006 does), and every `publish_session` seconds as
//!   3006 does it ([`RotateClock`]: restarted by every rotation and every
//!   `maintenance_interval`, so never with Salt's defaults; 3007 does not
//!   rotate on `publish_session` outside cluster mode): a new key in the
//!   shared cell, the publication serial back to 0, the event `key`
//!   `{"rotate_aes_key": True}`. Minions notice at their next publication
//!   and re-authenticate. With `ping_on_rotate: True` a `test.ping` goes
//!   to the connected minions right away (Salt's
//!   `ping_all_connected_minions`), so that they re-authenticate now
//!   rather than at the next job.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use brine_cache::fs::{read_p, write_atomic};
use brine_cache::JobCache;
use brine_config::MasterConfig;
use brine_proc::shm::SharedCell;
use brine_proc::supervisor::{poll_fds, ChildSpec};
use brine_proto::crypto::Crypticle;
use brine_proto::event::EventSender;
use brine_proto::Value;
use log::{debug, error, info, warn};

use super::{role, stop_signals, stopping, RoleError};
use crate::names;
use brine_client::low::strs;
use brine_targeting::connected_ids;

/// How long job cache entries are kept; None = forever (Salt: 0).
pub fn keep_jobs(cfg: &MasterConfig) -> Option<Duration> {
    // Salt's get_keep_jobs_seconds: keep_jobs_seconds wins unless only the
    // older keep_jobs (hours) was changed from its default.
    let secs = cfg.get("keep_jobs_seconds").and_then(|v| v.as_u64());
    let hours = cfg.keep_jobs;
    let s = match secs {
        Some(s) if s != 86_400 || hours == 24 => s,
        _ => hours * 3600,
    };
    (s > 0).then(|| Duration::from_secs(s))
}

/// One cleanup pass on `jobs`, logged.
fn clean_old_jobs(jobs: &dyn JobCache, keep: Duration) {
    let done = jobs.clean_old_jobs(keep);
    if done.removed > 0 {
        info!(
            "removed {} jobs older than {}s from the job cache",
            done.removed,
            keep.as_secs()
        );
    }
    for e in &done.failed {
        warn!("job cache cleanup: {e}");
    }
}

/// Salt's `handle_key_rotate` test: `.dfn` with mode exactly 0400 whose
/// content is the master's id (3007) or empty (3006) is consumed (removed)
/// and means "rotate"; a `.dfn` with other permissions is reported and
/// left alone, one naming another master is ignored.
pub fn take_dropfile(cachedir: &Path, master_id: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let dfn = cachedir.join(".dfn");
    let Ok(meta) = std::fs::metadata(&dfn) else {
        return false;
    };
    if meta.mode() != 0o100400 {
        error!("Found dropfile with incorrect permissions, ignoring...");
        return false;
    }
    // 3007's salt-key writes the master's id; 3006's writes nothing and
    // its master rotates on the mode alone: both are honoured.
    let content = std::fs::read_to_string(&dfn).unwrap_or_default();
    if !content.is_empty() && content != master_id {
        return false;
    }
    let _ = std::fs::remove_file(&dfn);
    true
}

/// A new master AES key for every process (publisher, MWorkers), with the
/// publication serial back to 0, and the `key` event.
pub fn rotate_aes(aes: &SharedCell, events: &mut EventSender) -> std::io::Result<()> {
    aes.store(Crypticle::generate_key_string().as_bytes(), 0)?;
    info!("Rotating master AES key");
    let _ = events.fire("key", &Value::map([("rotate_aes_key", Value::Bool(true))]));
    Ok(())
}

/// The periodic rotation's clock (`publish_session`), as Salt 3006's
/// Maintenance keeps it: due once `publish_session` seconds have passed
/// since the last rotation of any kind, or since the process started.
/// Salt's Maintenance process ends itself every `maintenance_interval`
/// seconds (3600) and its ProcessManager starts a new one, whose clock
/// starts over: so 3006 rotates only when `publish_session` is shorter
/// than `maintenance_interval`, never with the defaults (86400 and 3600).
/// This process lives on, and its clock starts over at the same
/// boundaries, so that a Brine master rotates when a 3006 master would.
/// Salt 3007 rotates on `publish_session` only in cluster mode (by the age
/// of the cluster's `.aes` file); a 3007 master alone keeps its key until
/// `salt-key` asks.
#[derive(Debug, Clone)]
pub struct RotateClock {
    period: Option<Duration>,
    restart: Option<Duration>,
    started: Instant,
    last: Instant,
}

impl RotateClock {
    /// `publish_session` seconds (0 or unset: never due), from `start`,
    /// starting over every `maintenance_interval` seconds (0 or unset:
    /// never).
    pub fn new(publish_session: Option<u64>, maintenance_interval: Option<u64>, start: Instant) -> RotateClock {
        let secs = |s: Option<u64>| s.filter(|s| *s > 0).map(Duration::from_secs);
        RotateClock {
            period: secs(publish_session),
            restart: secs(maintenance_interval),
            started: start,
            last: start,
        }
    }

    /// Whether a periodic rotation is due at `now` (a pass of the loop).
    pub fn due(&mut self, now: Instant) -> bool {
        if self
            .restart
            .is_some_and(|r| now.saturating_duration_since(self.started) >= r)
        {
            // Where Salt's Maintenance process would have been replaced.
            self.started = now;
            self.last = now;
        }
        self.period
            .is_some_and(|p| now.saturating_duration_since(self.last) >= p)
    }

    /// A rotation happened at `now` (periodic or asked for with `.dfn`).
    pub fn rotated(&mut self, now: Instant) {
        self.last = now;
    }
}

/// Salt's `ping_all_connected_minions`, after a rotation: `test.ping` to
/// the connected minions (a `list` target; `*` as a glob without
/// `minion_data_cache`), published through the master's own request port
/// as its user, without waiting for the returns. It runs on a thread of
/// its own so that the loop is not held while the request is answered.
fn ping_all_connected_minions(cfg: &MasterConfig) {
    debug!("Pinging all connected minions due to key rotation");
    let cfg = cfg.clone();
    let spawned = std::thread::Builder::new()
        .name("ping_on_rotate".into())
        .spawn(move || {
            let (tgt, tgt_type) = if cfg.get_bool("minion_data_cache").unwrap_or(true) {
                let mut ids: Vec<String> = connected_ids(&cfg).into_iter().collect();
                ids.sort();
                (Value::Array(ids.into_iter().map(Value::from).collect()), "list")
            } else {
                (Value::from("*"), "glob")
            };
            let mut client = match brine_client::LocalClient::of_master(&cfg) {
                Ok(c) => c.request_timeout(PING_TIMEOUT),
                Err(e) => return warn!("ping_on_rotate: {e}"),
            };
            let job = brine_client::Publish::new(tgt, "test.ping").tgt_type(tgt_type);
            match client.publish(&job) {
                Ok(Some(job)) => debug!("ping_on_rotate: job {} to {} minions", job.jid, job.minions.len()),
                Ok(None) => debug!("ping_on_rotate: no minion to ping"),
                Err(e) => warn!("ping_on_rotate: cannot publish test.ping: {e}"),
            }
        });
    if let Err(e) = spawned {
        warn!("ping_on_rotate: cannot start a thread: {e}");
    }
}

/// How long the ping's publish request waits for the master's reply.
const PING_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a `presence-data` entry seeds the next start (Salt's
/// `CacheDisk` TTL for it).
const PRESENCE_TTL: Duration = Duration::from_secs(3600);

/// The events one presence pass fires, in Salt's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresencePass {
    /// `salt/presence/change` `{new, lost}`, when the set changed.
    pub change: Option<(Vec<String>, Vec<String>)>,
    /// `salt/presence/present` `{present}`, every pass.
    pub present: Vec<String>,
}

/// Salt's `handle_presence` state: the minions connected at the last pass.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    previous: BTreeSet<String>,
}

impl Presence {
    /// Seeded with `previous` (from `presence-data`).
    pub fn new(previous: BTreeSet<String>) -> Presence {
        Presence { previous }
    }

    /// A pass with the minions connected now: who came and went since the
    /// previous one (lists sorted; Salt's come in set order).
    pub fn pass(&mut self, present: impl IntoIterator<Item = String>) -> PresencePass {
        let present: BTreeSet<String> = present.into_iter().collect();
        let new: Vec<String> = present.difference(&self.previous).cloned().collect();
        let lost: Vec<String> = self.previous.difference(&present).cloned().collect();
        let change = (!new.is_empty() || !lost.is_empty()).then_some((new, lost));
        let out = PresencePass {
            change,
            present: present.iter().cloned().collect(),
        };
        self.previous = present;
        out
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `cachedir/presence-data`.
pub fn presence_data_path(cachedir: &Path) -> PathBuf {
    cachedir.join("presence-data")
}

/// The file Salt's `CacheDisk` writes for `presence_cache["present"] =
/// [...]`: `{"CacheDisk_data": {"present": [ids]}, "CacheDisk_cachetime":
/// {"present": <unix time, float>}}`, msgpack with bin types.
pub fn presence_data(present: &[String], now: SystemTime) -> Value {
    Value::map([
        ("CacheDisk_data", Value::map([("present", strs(present))])),
        ("CacheDisk_cachetime", Value::map([("present", Value::F64(unix(now)))])),
    ])
}

/// The minions `presence-data` at `path` names, if it was written less
/// than an hour before `now` (Salt's TTL); its older format (the data map
/// alone, timed by the file's mtime) is read too. Missing or unreadable:
/// none.
pub fn read_presence_data(path: &Path, now: SystemTime) -> BTreeSet<String> {
    let Some(cache) = read_p(path).filter(Value::is_map) else {
        return BTreeSet::new();
    };
    let (data, stamp) = match (cache.get("CacheDisk_data"), cache.get("CacheDisk_cachetime")) {
        (Some(data), Some(times)) => {
            let stamp = match times.get("present") {
                Some(Value::F64(f)) => Some(*f),
                Some(Value::F32(f)) => Some(f64::from(*f)),
                Some(v) => v.as_i64().map(|i| i as f64),
                None => None,
            };
            (data.clone(), stamp)
        }
        _ => {
            let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            (cache, mtime.map(unix))
        }
    };
    // Salt drops an entry past its TTL; one without a time never expires.
    if stamp.is_some_and(|t| unix(now) - t > PRESENCE_TTL.as_secs_f64()) {
        return BTreeSet::new();
    }
    match data.get("present") {
        Some(Value::Array(ids)) => ids.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
        _ => BTreeSet::new(),
    }
}

/// Whether this master fires presence events: `presence_events` set, and
/// (as Salt) a transport other than `tcp`, whose own server reports
/// presence instead.
pub fn presence_enabled(cfg: &MasterConfig) -> bool {
    cfg.get_bool("presence_events").unwrap_or(false) && cfg.get_str("transport") != Some("tcp")
}

/// One presence pass: the events, then the file.
fn handle_presence(cfg: &MasterConfig, presence: &mut Presence, events: &mut EventSender) {
    let pass = presence.pass(connected_ids(cfg));
    if let Some((new, lost)) = &pass.change {
        let data = Value::map([("new", strs(new)), ("lost", strs(lost))]);
        let _ = events.fire("salt/presence/change", &data);
    }
    let _ = events.fire("salt/presence/present", &Value::map([("present", strs(&pass.present))]));
    let path = presence_data_path(&cfg.cachedir);
    let data = presence_data(&pass.present, SystemTime::now());
    if let Err(e) = write_atomic(&path, &data.to_file(), 0o644) {
        warn!("cannot write {}: {e}", path.display());
    }
}

pub fn spec(cfg: Rc<MasterConfig>, aes: Rc<SharedCell>) -> ChildSpec {
    role(names::MAINTENANCE, move |ctx| {
        let sig = stop_signals()?;
        let interval = Duration::from_secs(cfg.loop_interval.max(1));
        let jobs = brine_loader::returners::job_cache(&cfg);
        let auth = brine_auth::LoadAuth::new(&cfg);
        let master_id = cfg.master_id();
        let mut events = brine_client::event_sender(&cfg);
        let mut clock = RotateClock::new(
            cfg.get_u64("publish_session"),
            cfg.get_u64("maintenance_interval"),
            Instant::now(),
        );
        let presence_on = presence_enabled(&cfg);
        let mut presence = Presence::new(read_presence_data(
            &presence_data_path(&cfg.cachedir),
            SystemTime::now(),
        ));
        if let Some(listener) = crate::metrics::bind_endpoint(&cfg).map_err(RoleError::Fatal)? {
            crate::metrics::serve_endpoint(&cfg, listener)?;
        }
        ctx.ready();
        let mut next = Instant::now();
        loop {
            if Instant::now() >= next {
                match keep_jobs(&cfg) {
                    Some(keep) => clean_old_jobs(jobs.as_ref(), keep),
                    None => jobs.tend(),
                }
                let removed = auth.clean_expired();
                if removed > 0 {
                    info!("removed {removed} expired eauth token(s)");
                }
                if presence_on {
                    handle_presence(&cfg, &mut presence, &mut events);
                }
                let now = Instant::now();
                if take_dropfile(&cfg.cachedir, &master_id) || clock.due(now) {
                    clock.rotated(now);
                    match rotate_aes(&aes, &mut events) {
                        Ok(()) if cfg.get_bool("ping_on_rotate").unwrap_or(false) => ping_all_connected_minions(&cfg),
                        Ok(()) => {}
                        Err(e) => error!("cannot rotate the AES key: {e}"),
                    }
                }
                debug!("maintenance pass done");
                next = Instant::now() + interval;
            }
            poll_fds(&[sig.fd()], Some(next.saturating_duration_since(Instant::now())))?;
            sig.drain();
            if stopping() {
                return Ok(());
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_jobs_seconds_wins_unless_only_keep_jobs_changed() {
        let keep = |o: serde_json::Value| {
            let serde_json::Value::Object(o) = o else {
                unreachable!()
            };
            keep_jobs(&MasterConfig::from_overrides(Path::new("/etc/salt"), o).unwrap())
        };
        let h = |n: u64| Some(Duration::from_secs(n * 3600));
        assert_eq!(keep(serde_json::json!({})), h(24), "Salt's default: 86400 s");
        assert_eq!(
            keep(serde_json::json!({"keep_jobs_seconds": 60})),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            keep(serde_json::json!({"keep_jobs": 2})),
            h(2),
            "the older option, alone"
        );
        assert_eq!(
            keep(serde_json::json!({"keep_jobs": 2, "keep_jobs_seconds": 90})),
            Some(Duration::from_secs(90))
        );
        assert_eq!(keep(serde_json::json!({"keep_jobs_seconds": 0})), None, "0: forever");
        assert_eq!(keep(serde_json::json!({"keep_jobs": 0})), None);
    }

    #[test]
    fn dropfile_needs_mode_0400_and_the_master_id() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let dfn = t.path().join(".dfn");
        assert!(!take_dropfile(t.path(), "m_master"), "no file");
        std::fs::write(&dfn, "m_master").unwrap();
        std::fs::set_permissions(&dfn, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(!take_dropfile(t.path(), "m_master"), "wrong mode");
        assert!(dfn.exists(), "left alone");
        std::fs::set_permissions(&dfn, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(!take_dropfile(t.path(), "other_master"), "another master's");
        assert!(take_dropfile(t.path(), "m_master"));
        assert!(!dfn.exists(), "consumed");
        // 3006's salt-key: empty content, mode 0400.
        std::fs::write(&dfn, "").unwrap();
        std::fs::set_permissions(&dfn, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(take_dropfile(t.path(), "m_master"));
        assert!(!dfn.exists());
    }

    #[test]
    fn rotation_changes_the_key_and_resets_the_serial() {
        let cell = SharedCell::new(256).unwrap();
        cell.store(b"old", 41).unwrap();
        let g = cell.generation();
        let t = tempfile::tempdir().unwrap();
        rotate_aes(&cell, &mut EventSender::new(t.path())).unwrap();
        let (key, g2) = cell.load();
        assert_ne!(g, g2);
        assert_ne!(key, b"old");
        assert!(Crypticle::from_key_string(std::str::from_utf8(&key).unwrap()).is_ok());
        assert_eq!(cell.next_counter(), 1, "serial restarts");
    }

    #[test]
    fn the_rotate_clock_runs_from_the_last_rotation() {
        let start = Instant::now();
        let s = Duration::from_secs;
        let mut c = RotateClock::new(Some(1000), Some(3600), start);
        assert!(!c.due(start));
        assert!(!c.due(start + s(999)));
        assert!(c.due(start + s(1000)));
        c.rotated(start + s(1000));
        // A rotation asked for with .dfn restarts the clock too.
        c.rotated(start + s(1500));
        assert!(!c.due(start + s(2000)));
        assert!(c.due(start + s(2500)));
        c.rotated(start + s(2500));
        // Salt's Maintenance is replaced at 3600 s: its clock starts over.
        assert!(!c.due(start + s(3600)));
        assert!(!c.due(start + s(4599)));
        assert!(c.due(start + s(4600)));
        // The defaults: the clock starts over before it is ever due.
        let mut c = RotateClock::new(Some(86_400), Some(3600), start);
        assert!((0..=30 * 24).all(|h| !c.due(start + s(h * 3600))));
        // Without maintenance_interval, every publish_session.
        let mut c = RotateClock::new(Some(86_400), Some(0), start);
        assert!(!c.due(start + s(86_399)));
        assert!(c.due(start + s(86_400)));
        // publish_session 0 (or unset): never.
        for mut off in [
            RotateClock::new(Some(0), None, start),
            RotateClock::new(None, None, start),
        ] {
            assert!(!off.due(start + s(10 * 86_400)));
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn presence_reports_changes_against_the_previous_pass() {
        // Seeded from presence-data: a1 was connected before a restart.
        let mut p = Presence::new(ids(&["a1"]).into_iter().collect());
        let pass = p.pass(ids(&["b2", "a1"]));
        assert_eq!(pass.change, Some((ids(&["b2"]), vec![])));
        assert_eq!(pass.present, ids(&["a1", "b2"]));
        // Nothing changed: present only.
        let pass = p.pass(ids(&["a1", "b2"]));
        assert_eq!(pass.change, None);
        assert_eq!(pass.present, ids(&["a1", "b2"]));
        let pass = p.pass(ids(&["c3", "b2"]));
        assert_eq!(pass.change, Some((ids(&["c3"]), ids(&["a1"]))));
        let pass = p.pass(Vec::new());
        assert_eq!(pass.change, Some((vec![], ids(&["b2", "c3"]))));
        assert!(pass.present.is_empty());
        // Not seeded: the first pass reports every connected minion as new.
        let pass = Presence::default().pass(ids(&["a1"]));
        assert_eq!(pass.change, Some((ids(&["a1"]), vec![])));
    }

    #[test]
    fn presence_data_is_salts_cache_disk_file() {
        let t = tempfile::tempdir().unwrap();
        let path = presence_data_path(t.path());
        let now = SystemTime::now();
        assert!(read_presence_data(&path, now).is_empty(), "no file");
        let data = presence_data(&ids(&["a1", "b2"]), now);
        // What Salt's CacheDisk._write dumps (msgpack, bin types).
        let want = Value::map([
            (
                "CacheDisk_data",
                Value::map([("present", Value::Array(vec!["a1".into(), "b2".into()]))]),
            ),
            ("CacheDisk_cachetime", Value::map([("present", Value::F64(unix(now)))])),
        ]);
        assert_eq!(data, want);
        write_atomic(&path, &data.to_file(), 0o644).unwrap();
        let set = read_presence_data(&path, now + Duration::from_secs(3600));
        assert_eq!(set.into_iter().collect::<Vec<_>>(), ids(&["a1", "b2"]));
        assert!(
            read_presence_data(&path, now + Duration::from_secs(3601)).is_empty(),
            "past the TTL"
        );
        // The older format: the data alone, timed by the file's mtime.
        write_atomic(&path, &Value::map([("present", strs(&ids(&["c3"])))]).to_file(), 0o644).unwrap();
        assert_eq!(read_presence_data(&path, SystemTime::now()).len(), 1);
        // Garbage and a wrong shape: nothing.
        std::fs::write(&path, b"\xc1garbage").unwrap();
        assert!(read_presence_data(&path, now).is_empty());
        std::fs::write(&path, Value::Array(vec![]).to_file()).unwrap();
        assert!(read_presence_data(&path, now).is_empty());
    }
}
