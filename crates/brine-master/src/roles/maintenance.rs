//! Maintenance: the master's timed loop (every `loop_interval` seconds).
//!
//! Done: job cache cleanup (`cachedir/jobs`, entries whose `jid` file is
//! older than `keep_jobs_seconds`, or `keep_jobs` hours, as Salt's
//! local_cache `clean_old_jobs`); AES key rotation when `salt-key` leaves
//! `cachedir/.dfn` (mode 0400, content = the master's id, as Salt 3007's
//! `handle_key_rotate`): a new key in the shared cell, serial back to 0,
//! event `key` `{"rotate_aes_key": True}`; minions notice at their next
//! publication and re-authenticate. Presence events come later.

use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use brine_config::MasterConfig;
use brine_proc::shm::SharedCell;
use brine_proc::supervisor::{poll_fds, ChildSpec};
use brine_proto::crypto::Crypticle;
use brine_proto::event::EventSender;
use brine_proto::Value;
use log::{debug, error, info, warn};

use super::{role, stop_signals, stopping};
use crate::names;

/// How long job cache entries are kept; None = forever (Salt: 0).
pub fn keep_jobs(cfg: &MasterConfig) -> Option<Duration> {
    // keep_jobs_seconds wins unless only the legacy hours were changed.
    let secs = cfg.get("keep_jobs_seconds").and_then(|v| v.as_u64());
    let hours = cfg.keep_jobs;
    let s = match secs {
        Some(s) if s != 86_400 || hours == 24 => s,
        _ => hours * 3600,
    };
    (s > 0).then(|| Duration::from_secs(s))
}

/// Remove job directories older than `keep`; returns how many were removed.
pub fn clean_jobs(jobs: &Path, keep: Duration, now: SystemTime) -> usize {
    let mut removed = 0;
    let Ok(tops) = std::fs::read_dir(jobs) else {
        return 0;
    };
    for top in tops.flatten() {
        let top = top.path();
        if !top.is_dir() {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&top) else {
            continue;
        };
        for e in entries.flatten() {
            let dir = e.path();
            if !dir.is_dir() {
                continue;
            }
            // Salt drops entries without a jid file (corrupt) too; give a
            // fresh one a moment, it may be being written.
            let stamp = std::fs::metadata(dir.join("jid")).and_then(|m| m.modified());
            let expired = match stamp {
                Ok(t) => now.duration_since(t).is_ok_and(|age| age > keep),
                Err(_) => std::fs::metadata(&dir)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > Duration::from_secs(60))),
            };
            if expired {
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => removed += 1,
                    Err(e) => warn!("cannot remove old job {}: {e}", dir.display()),
                }
            }
        }
        // Empty hash-prefix directories go too.
        let _ = std::fs::remove_dir(&top);
    }
    removed
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

pub fn spec(cfg: Rc<MasterConfig>, aes: Rc<SharedCell>) -> ChildSpec {
    role(names::MAINTENANCE, move |ctx| {
        let sig = stop_signals()?;
        let interval = Duration::from_secs(cfg.loop_interval.max(1));
        let jobs = cfg.cachedir.join("jobs");
        let master_id = cfg.master_id();
        let mut events = crate::event_sender(&cfg);
        ctx.ready();
        let mut next = Instant::now();
        loop {
            if Instant::now() >= next {
                if take_dropfile(&cfg.cachedir, &master_id) {
                    if let Err(e) = rotate_aes(&aes, &mut events) {
                        error!("cannot rotate the AES key: {e}");
                    }
                    if cfg.get_bool("ping_on_rotate").unwrap_or(false) {
                        warn!("ping_on_rotate is not implemented: minions pick the new key up at their next job");
                    }
                }
                if let Some(keep) = keep_jobs(&cfg) {
                    let n = clean_jobs(&jobs, keep, SystemTime::now());
                    if n > 0 {
                        info!("removed {n} jobs older than {}s from the job cache", keep.as_secs());
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
    fn old_jobs_go_fresh_jobs_stay() {
        let t = tempfile::tempdir().unwrap();
        let jobs = t.path();
        let old = jobs.join("ab/cdef");
        let new = jobs.join("ab/0123");
        let corrupt = jobs.join("cd/4567");
        for d in [&old, &new, &corrupt] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(old.join("jid"), "20240101000000000000").unwrap();
        std::fs::write(new.join("jid"), "20990101000000000000").unwrap();
        let two_days = SystemTime::now() + Duration::from_secs(2 * 86_400);
        // Pretend "new" was written just now relative to the clock we pass.
        let f = std::fs::File::options().write(true).open(new.join("jid")).unwrap();
        f.set_modified(two_days).unwrap();
        let n = clean_jobs(jobs, Duration::from_secs(86_400), two_days);
        assert_eq!(n, 2, "old and corrupt removed");
        assert!(!old.exists());
        assert!(!corrupt.exists());
        assert!(!jobs.join("cd").exists(), "empty prefix dir removed");
        assert!(new.exists());
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
}
