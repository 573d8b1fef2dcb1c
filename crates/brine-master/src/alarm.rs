//! Write failures of the stores the MWorkers write on a request's path:
//! the job cache, session keys, the minion data cache, `publish_auth`. A
//! full or read-only disk must not stop the master (jobs are still
//! published, returns still fired on the event bus, minions still
//! authenticated), but an operator must see it: each kind of failure is
//! logged at CRITICAL with the path and the OS error at most once per
//! [`INTERVAL`] per process and cause (full, read-only, other), not once
//! per request; the first success after
//! a failure is logged once (at WARNING, same interval) when writing works
//! again. Nothing here retries: every request simply tries to write, so
//! caching resumes by itself when space returns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use log::warn;

/// At most one CRITICAL line per kind of failure per process this often.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// What could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// A published job's load (`save_load`).
    JobLoad,
    /// A minion's return (`store_return`).
    JobReturn,
    /// A minion's session key (`cachedir/sessions/<id>`).
    SessionKey,
    /// The minion data cache (`cachedir/minions/<id>/data.p`).
    MinionData,
    /// The owner of a peer-published job (`cachedir/publish_auth/<jid>`).
    PublishAuth,
}

impl Store {
    const COUNT: usize = 5;

    fn index(self) -> usize {
        self as usize
    }

    /// What the failure means for the master's users.
    fn consequence(self) -> &'static str {
        match self {
            Store::JobLoad => "jobs are published but not cached (jobs.* cannot list them)",
            Store::JobReturn => "returns are fired on the event bus but not cached (jobs.lookup_jid cannot show them)",
            Store::SessionKey => "minions are given session keys derived from the master key instead",
            Store::MinionData => "grains and pillar are not cached (targeting by grain/pillar uses older data)",
            Store::PublishAuth => "peer-published jobs run, but the publishing minion cannot fetch their returns",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Store::JobLoad => "job cache (loads)",
            Store::JobReturn => "job cache (returns)",
            Store::SessionKey => "session keys",
            Store::MinionData => "minion data cache",
            Store::PublishAuth => "publish_auth",
        }
    }
}

/// Why a write failed, as far as the operator's remedy goes: no space or
/// inodes (or quota), a read-only file system, anything else.
fn cause(kind: Option<std::io::ErrorKind>) -> usize {
    use std::io::ErrorKind::*;
    match kind {
        Some(StorageFull | QuotaExceeded | FileTooLarge) => 0,
        Some(ReadOnlyFilesystem) => 1,
        _ => 2,
    }
}

const CAUSES: usize = 3;

/// One kind of failure (a store and a cause): when it was last logged
/// (seconds since the process's first use of this module, plus one; 0 =
/// never).
struct Gate(AtomicU64);

static GATES: [Gate; Store::COUNT * CAUSES] = [const { Gate(AtomicU64::new(0)) }; Store::COUNT * CAUSES];

/// Per store: whether its last write failed, and when "works again" was
/// last logged.
static FAILING: [AtomicBool; Store::COUNT] = [const { AtomicBool::new(false) }; Store::COUNT];
static RECOVERED: [Gate; Store::COUNT] = [const { Gate(AtomicU64::new(0)) }; Store::COUNT];

fn now() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs() + 1
}

/// Whether a line last logged at `last` may be logged at `now`, claiming
/// it if so (one winner among threads).
fn due(last: &AtomicU64, now: u64, interval: u64) -> bool {
    let prev = last.load(Ordering::Relaxed);
    (prev == 0 || now.saturating_sub(prev) >= interval)
        && last
            .compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// A write to `store` failed with `err` (which names the path and the OS
/// error; `kind` is that error's): CRITICAL, once per [`INTERVAL`] for
/// each store and cause (full, read-only, other).
pub fn failed(store: Store, kind: Option<std::io::ErrorKind>, err: &dyn std::fmt::Display) {
    FAILING[store.index()].store(true, Ordering::Relaxed);
    let gate = &GATES[store.index() * CAUSES + cause(kind)];
    if due(&gate.0, now(), INTERVAL.as_secs()) {
        brine_log::critical!(
            "{}: {err}; {} (logged at most once every {}s while it lasts)",
            store.name(),
            store.consequence(),
            INTERVAL.as_secs()
        );
    }
}

/// A write to `store` worked: after failures, say so (at most once per
/// [`INTERVAL`]).
pub fn ok(store: Store) {
    let failing = &FAILING[store.index()];
    if failing.load(Ordering::Relaxed)
        && failing.swap(false, Ordering::Relaxed)
        && due(&RECOVERED[store.index()].0, now(), INTERVAL.as_secs())
    {
        warn!("{}: writing works again", store.name());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_interval() {
        let last = AtomicU64::new(0);
        assert!(due(&last, 5, 60), "the first failure is logged");
        assert!(!due(&last, 5, 60));
        assert!(!due(&last, 64, 60), "not again within the interval");
        assert!(due(&last, 65, 60));
        assert!(!due(&last, 100, 60));
        assert!(due(&last, 1000, 60));
    }

    #[test]
    fn every_store_has_its_own_gate() {
        let all = [
            Store::JobLoad,
            Store::JobReturn,
            Store::SessionKey,
            Store::MinionData,
            Store::PublishAuth,
        ];
        let idx: Vec<usize> = all.iter().map(|s| s.index()).collect();
        assert_eq!(idx, (0..Store::COUNT).collect::<Vec<_>>());
        use std::io::ErrorKind::*;
        assert_eq!(cause(Some(StorageFull)), cause(Some(QuotaExceeded)));
        assert_ne!(cause(Some(StorageFull)), cause(Some(ReadOnlyFilesystem)));
        assert_eq!(cause(Some(PermissionDenied)), cause(None));
        assert!(cause(None) < CAUSES);
    }
}
