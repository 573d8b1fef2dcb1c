//! Salt's `pgjsonb` returner as the master's job cache
//! (`master_job_cache: pgjsonb`, `ext_job_cache: pgjsonb`) and event
//! returner (`event_return: pgjsonb`), on Salt's schema (`jids`,
//! `salt_returns`, `salt_events`), so that Python's `salt`, `salt-run
//! jobs.*` and anything else reading those tables see Brine's jobs, and
//! several masters share one job cache.
//!
//! Writes never wait for the database: each process hands them to a
//! writer thread of its own ([`writer`]), which batches them into
//! transactions and spools them to local disk ([`spool`]) while the
//! database is unavailable, replaying them when it is back. The callers
//! that must know a write is made (a publication's load, which Python's
//! `salt` reads as soon as the publication is answered) wait on a
//! [`JobCache::barrier`] off their request loop. Reads are made on a
//! connection of their own, by runner jobs and Maintenance, not by an
//! MWorker's request loop.
//!
//! Where Brine differs from Salt's module on purpose:
//! * a return does not replace the job's load in `jids` with the return
//!   (Salt's `store_job` calls `save_load` with each return, so the row
//!   ends up holding the last return and `jobs.list_jobs` loses the
//!   target and arguments); the return's load is written only for a job
//!   the table does not have;
//! * a database that is down loses nothing (Salt's logs and drops the
//!   return), and the spool replayed when it is back writes no return
//!   twice (a write whose answer was lost was spooled too);
//! * the tables are made when missing.

mod db;
mod options;
pub mod spool;
mod writer;

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use brine_config::MasterConfig;
use brine_proto::json::{from_json, to_json_text};
use brine_proto::Value;
use log::{error, warn};

pub use options::PgOptions;
use spool::{Rec, Spool};
use writer::{Item, Shared};

use crate::{CacheError, Cleaned, Jid, JobCache};

/// The returner's name.
pub const PGJSONB: &str = "pgjsonb";

/// Jobs remembered by [`PgJsonb::first_return_of`].
const RECENT_JOBS: usize = 64;

/// Writes a process may have queued before further ones go straight to
/// the spool.
const QUEUE: usize = 32_768;

/// The job cache and event returner on PostgreSQL.
pub struct PgJsonb {
    shared: Arc<Shared>,
    master_id: String,
    archive: bool,
    writer: Mutex<Option<(SyncSender<Item>, JoinHandle<()>)>>,
    reader: Mutex<Option<postgres::Client>>,
    /// A read that failed was logged: the next ones say nothing until one
    /// succeeds.
    read_failed: std::sync::atomic::AtomicBool,
    /// The jobs whose returns this process wrote lately.
    recent: Mutex<std::collections::VecDeque<Jid>>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn json(v: &Value) -> String {
    to_json_text(v)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).map(|j| from_json(&j)).unwrap_or(Value::Nil)
}

impl PgJsonb {
    /// The cache the configuration describes (`returner.pgjsonb.*`); it
    /// connects on first use.
    pub fn open(cfg: &MasterConfig) -> Result<PgJsonb, CacheError> {
        let opts = PgOptions::from_config(cfg)?;
        Ok(PgJsonb {
            shared: Arc::new(Shared {
                opts,
                spool: Spool::new(&cfg.cachedir),
                // pg_stat_activity then tells which master process holds
                // which connection.
                application: format!("salt-master {}", brine_log::process_name()).trim().to_string(),
            }),
            master_id: cfg.master_id(),
            archive: cfg.get_bool("archive_jobs").unwrap_or(false),
            writer: Mutex::new(None),
            reader: Mutex::new(None),
            read_failed: Default::default(),
            recent: Mutex::new(std::collections::VecDeque::with_capacity(RECENT_JOBS)),
        })
    }

    /// Queue `items` for this process's writer; what the queue cannot
    /// take goes to the spool, to be written after it.
    fn queue(&self, items: Vec<Rec>) -> Result<(), CacheError> {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let (tx, _) = guard.get_or_insert_with(|| self.start_writer());
        let mut overflow = Vec::new();
        for r in items {
            match tx.try_send(Item::Rec(r)) {
                Ok(()) => {}
                Err(TrySendError::Full(Item::Rec(r)) | TrySendError::Disconnected(Item::Rec(r))) => overflow.push(r),
                Err(_) => unreachable!("a record was sent"),
            }
        }
        drop(guard);
        self.shared.spool.append(&overflow)
    }

    fn start_writer(&self) -> (SyncSender<Item>, JoinHandle<()>) {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name("pgjsonb-writer".into())
            .spawn(move || writer::run(shared, rx))
            .expect("spawn the pgjsonb writer thread");
        (tx, thread)
    }

    /// Salt's `event_return`: each event `{"tag": ..., "data": ...}` a
    /// row of `salt_events` with this master's id.
    pub fn event_return(&self, events: &[Value]) -> Result<(), CacheError> {
        let t = now();
        self.queue(
            events
                .iter()
                .map(|e| Rec::Event {
                    tag: e.get("tag").and_then(Value::as_str).unwrap_or("").to_string(),
                    data: json(e.get("data").unwrap_or(&Value::Str(String::new()))),
                    master: self.master_id.clone(),
                    time: t,
                })
                .collect(),
        )
    }

    /// Wait for the writes queued so far to be written or spooled (at
    /// most twice the connection timeout and a minute: a query that does
    /// not come back is left to the thread).
    pub fn flush(&self) {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((tx, thread)) = writer {
            let limit = self.shared.opts.connect_timeout * 2 + Duration::from_secs(60);
            let (done_tx, done) = mpsc::channel();
            let answered = tx.send(Item::Barrier(done_tx)).is_ok() && done.recv_timeout(limit).is_ok();
            drop(tx);
            if answered {
                let _ = thread.join();
            } else {
                error!("pgjsonb: the writer did not finish within {limit:?}; the writes it holds may be lost");
            }
        }
    }

    /// Run `f` on the read connection (made when there is none); a failure
    /// drops the connection, is logged once until a read succeeds, and
    /// reads as nothing.
    fn read<T>(&self, what: &str, f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>) -> Option<T> {
        use std::sync::atomic::Ordering;
        let mut guard = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            match db::Conn::reader(&self.shared.opts, &self.shared.application) {
                Ok(c) => *guard = Some(c),
                Err(e) => {
                    if !self.read_failed.swap(true, Ordering::Relaxed) {
                        error!(
                            "pgjsonb: cannot read {what} from PostgreSQL at {}: {}",
                            self.shared.opts.describe(),
                            e.text
                        );
                    }
                    return None;
                }
            }
        }
        match f(guard.as_mut().expect("connected above")) {
            Ok(v) => {
                self.read_failed.store(false, Ordering::Relaxed);
                Some(v)
            }
            Err(e) => {
                *guard = None;
                if !self.read_failed.swap(true, Ordering::Relaxed) {
                    error!("pgjsonb: cannot read {what}: {}", db::DbError::from(e).text);
                }
                None
            }
        }
    }
}

impl Drop for PgJsonb {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A return's `success` as Salt's module writes it: the Python value
/// adapted to SQL, then text (`true`, `false`).
fn success_text(ret: &Value) -> String {
    match ret.get("success") {
        None | Some(Value::Nil) => "false".into(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Str(s)) => s.chars().take(10).collect(),
        Some(other) => json(other).chars().take(10).collect(),
    }
}

impl JobCache for PgJsonb {
    fn save_load(&self, jid: &Jid, load: &Value, _minions: &[String]) -> Result<(), CacheError> {
        // Salt's pgjsonb keeps no minion list (its save_minions does
        // nothing): the jobs runners read the returns.
        self.queue(vec![Rec::Load {
            jid: jid.to_string(),
            load: json(load),
            replace: true,
        }])
    }

    fn save_load_if_missing(&self, jid: &Jid, load: &Value, _minions: &[String]) -> Result<(), CacheError> {
        // Decided by the database (ON CONFLICT DO NOTHING), not by a read
        // the caller would wait for.
        self.queue(vec![Rec::Load {
            jid: jid.to_string(),
            load: json(load),
            replace: false,
        }])
    }

    fn store_return(&self, jid: &Jid, id: &str, ret: &Value) -> Result<bool, CacheError> {
        let (load, value) = crate::jobs::return_load_parts(ret);
        let ret_text = json(value.unwrap_or(&Value::Nil));
        // The whole return with its value written once: the other keys,
        // then the value's text.
        let mut full = json(&load);
        if value.is_some() {
            full.pop();
            if full.len() > 1 {
                full.push(',');
            }
            full.push_str("\"return\":");
            full.push_str(&ret_text);
            full.push('}');
        }
        let fun = load.get("fun").and_then(Value::as_str).unwrap_or("").to_string();
        let mut recs = Vec::with_capacity(2);
        if self.first_return_of(jid) {
            // A job this process has not seen: its row in `jids` is made
            // from the return when the table has none.
            recs.push(Rec::Load {
                jid: jid.to_string(),
                load: full.clone(),
                replace: false,
            });
        }
        recs.push(Rec::Return {
            fun,
            jid: jid.to_string(),
            id: id.to_string(),
            success: success_text(&load),
            ret: ret_text,
            full,
            time: now(),
        });
        self.queue(recs)?;
        Ok(true)
    }

    fn load(&self, jid: &Jid) -> Option<Value> {
        self.read("a job's load", |c| {
            c.query_opt("SELECT load::text FROM jids WHERE jid = $1", &[&jid.as_str()])
        })
        .flatten()
        .map(|row| parse(row.get(0)))
    }

    fn get_load(&self, jid: &Jid) -> Value {
        self.load(jid).unwrap_or_else(|| Value::Map(Vec::new()))
    }

    fn get_jid(&self, jid: &Jid) -> Value {
        let rows = self
            .read("a job's returns", |c| {
                c.query(
                    "SELECT id, full_ret::text FROM salt_returns WHERE jid = $1 ORDER BY alter_time",
                    &[&jid.as_str()],
                )
            })
            .unwrap_or_default();
        let mut out = Value::Map(Vec::new());
        for row in rows {
            out.set(row.get::<_, &str>(0), parse(row.get(1)));
        }
        out
    }

    fn get_jids(&self) -> Vec<(Jid, Value)> {
        self.read("the jobs", |c| c.query("SELECT jid, load::text FROM jids", &[]))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|row| Some((Jid::parse(row.get(0))?, parse(row.get(1)))))
            .collect()
    }

    fn clean_old_jobs(&self, keep: Duration) -> Cleaned {
        self.tend_now(Some(keep));
        Cleaned::default()
    }

    fn tend(&self) {
        self.tend_now(None);
    }

    fn barrier(&self) -> Option<Box<dyn FnOnce() + Send>> {
        let guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let (tx, _) = guard.as_ref()?;
        let (done_tx, done) = mpsc::channel();
        // A full queue has sent this process's latest writes to the spool,
        // where they are already safe.
        tx.try_send(Item::Barrier(done_tx)).ok()?;
        let limit = self.shared.opts.connect_timeout + Duration::from_secs(5);
        Some(Box::new(move || {
            let _ = done.recv_timeout(limit);
        }))
    }
}

impl PgJsonb {
    /// Whether `jid` is new to this process's recent jobs (it is then
    /// remembered): a job's row is written with its first return here,
    /// not with each.
    fn first_return_of(&self, jid: &Jid) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.contains(jid) {
            return false;
        }
        if recent.len() >= RECENT_JOBS {
            recent.pop_front();
        }
        recent.push_back(jid.clone());
        true
    }

    /// Maintenance's periodic pass, on the writer thread: replay the
    /// spools of processes that are gone, then clean when `keep` is set.
    fn tend_now(&self, keep: Option<Duration>) {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let (tx, _) = guard.get_or_insert_with(|| self.start_writer());
        if tx
            .try_send(Item::Tend {
                keep,
                archive: self.archive,
            })
            .is_err()
        {
            warn!("pgjsonb: the writer is busy; the job cache's cleanup waits for the next pass");
        }
    }
}
