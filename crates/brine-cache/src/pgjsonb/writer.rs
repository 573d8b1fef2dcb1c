//! The writer: one thread per process that writes to the database, fed
//! by a bounded queue. It takes what is queued in batches of up to
//! [`BATCH`] and writes each batch in one transaction. When the database
//! cannot be reached, or stops answering, the batch goes to the spool and
//! the writer tries again every [`RETRY`]; once it is back, the spool is
//! replayed (this process's records first, then those of processes that
//! are gone) before anything newer is written.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use super::db::{Conn, DbError};
use super::options::PgOptions;
use super::spool::{Rec, Spool};

/// Records written in one transaction.
pub const BATCH: usize = 2000;
/// A batch smaller than this waits up to [`LINGER`] for more records.
const LINGER_BELOW: usize = 256;
const LINGER: Duration = Duration::from_millis(5);
/// How often a writer that lost the database tries it again.
pub const RETRY: Duration = Duration::from_secs(1);
/// How often a writer says that the database is still unavailable.
const REMIND: Duration = Duration::from_secs(60);

/// What a writer thread is handed.
pub enum Item {
    Rec(Rec),
    /// Answered once every record queued before it is written or spooled.
    Barrier(Sender<()>),
    /// Salt's `clean_old_jobs` (when `keep` is set), after the spools of
    /// processes that are gone are replayed.
    Tend {
        keep: Option<Duration>,
        archive: bool,
    },
}

/// What the writer and the process's callers share.
pub struct Shared {
    pub opts: PgOptions,
    pub spool: Spool,
    pub application: String,
}

struct Writer {
    shared: Arc<Shared>,
    conn: Option<Conn>,
    retry_at: Instant,
    /// Since when the database has been unavailable, and the last line
    /// that said so.
    down: Option<(Instant, Instant)>,
    spooled: u64,
}

pub fn run(shared: Arc<Shared>, rx: Receiver<Item>) {
    let mut w = Writer {
        shared,
        conn: None,
        retry_at: Instant::now(),
        down: None,
        spooled: 0,
    };
    loop {
        let first = match rx.recv_timeout(RETRY) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) => {
                if w.shared.spool.pending() {
                    w.catch_up();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut recs = Vec::new();
        let mut barriers = Vec::new();
        let mut tends = Vec::new();
        let mut next = Some(first);
        let mut linger_until = None;
        while let Some(item) = next.take() {
            match item {
                Item::Rec(r) => recs.push(r),
                Item::Barrier(b) => barriers.push(b),
                Item::Tend { keep, archive } => tends.push((keep, archive)),
            }
            if recs.len() >= BATCH {
                break;
            }
            next = rx.try_recv().ok();
            if next.is_none() && barriers.is_empty() && !recs.is_empty() && recs.len() < LINGER_BELOW {
                // A small batch while records are coming: wait a moment
                // for more, so that a busy estate makes fewer, larger
                // transactions (each costs the database a commit and the
                // round trips of its statements). Not when someone waits
                // on a barrier (a publication's answer).
                let until = *linger_until.get_or_insert_with(|| Instant::now() + LINGER);
                next = rx.recv_timeout(until.saturating_duration_since(Instant::now())).ok();
            }
        }
        if !recs.is_empty() {
            w.write(recs);
        }
        for b in barriers {
            let _ = b.send(());
        }
        for (keep, archive) in tends {
            w.tend(keep, archive);
        }
    }
    // The process is ending: what could not be written stays spooled for
    // another process to replay.
    if w.shared.spool.pending() {
        w.catch_up();
    }
}

impl Writer {
    /// A connection, made when there is none and a try is due; the spool
    /// is replayed on a new one.
    fn connect(&mut self) -> bool {
        if self.conn.is_some() {
            return true;
        }
        if Instant::now() < self.retry_at {
            return false;
        }
        match Conn::open(&self.shared.opts, &self.shared.application) {
            Ok(c) => {
                self.conn = Some(c);
                true
            }
            Err(e) => {
                self.lost(&e);
                false
            }
        }
    }

    fn lost(&mut self, e: &DbError) {
        self.conn = None;
        let now = Instant::now();
        self.retry_at = now + RETRY;
        let opts = &self.shared.opts;
        match self.down {
            None => {
                error!(
                    "pgjsonb: PostgreSQL at {} is unavailable ({}); the job cache's writes are spooled to {} and written when it is back",
                    opts.describe(),
                    e.text,
                    self.shared.spool.dir().display(),
                );
                self.down = Some((now, now));
            }
            Some((since, said)) if now.duration_since(said) >= REMIND => {
                warn!(
                    "pgjsonb: PostgreSQL at {} still unavailable after {}s ({}); {} writes spooled by this process",
                    opts.describe(),
                    now.duration_since(since).as_secs(),
                    e.text,
                    self.spooled
                );
                self.down = Some((since, now));
            }
            Some(_) => {}
        }
    }

    /// Replay what this process, then processes that are gone, spooled.
    /// True when nothing of this process's is left spooled.
    fn catch_up(&mut self) -> bool {
        if !self.connect() {
            return false;
        }
        let spool = Arc::clone(&self.shared);
        let mut failed = None;
        let own = spool
            .spool
            .replay_own(BATCH, |b| self.write_now(&b, true).map_err(|e| failed = Some(e)));
        let orphans = if own.is_ok() {
            spool
                .spool
                .replay_orphans(BATCH, |b| self.write_now(&b, true).map_err(|e| failed = Some(e)))
        } else {
            Ok(0)
        };
        if let Some(e) = failed {
            self.lost(&e);
            return false;
        }
        let n = own.unwrap_or(0) + orphans.unwrap_or(0);
        if let Some((since, _)) = self.down.take() {
            info!(
                "pgjsonb: PostgreSQL at {} is back after {}s; {n} spooled writes written",
                self.shared.opts.describe(),
                since.elapsed().as_secs()
            );
            self.spooled = 0;
        } else if n > 0 {
            info!("pgjsonb: {n} spooled writes written to {}", self.shared.opts.describe());
        }
        true
    }

    /// Write `recs` on the connection (`replay`: records that may have
    /// been written before, whose returns are written only when the table
    /// does not have them); a record the database refuses for its data
    /// (not for the connection) is logged and dropped, the others written.
    /// The error is the connection's, and then nothing is written.
    fn write_now(&mut self, recs: &[Rec], replay: bool) -> Result<(), DbError> {
        let conn = self.conn.as_mut().ok_or_else(|| DbError {
            text: "not connected".into(),
            transient: true,
        })?;
        match conn.write(recs, replay) {
            Ok(()) => Ok(()),
            Err(e) if e.transient => Err(e),
            Err(e) if recs.len() == 1 => {
                log_refused(&recs[0], &e);
                Ok(())
            }
            Err(_) => {
                for r in recs {
                    self.write_now(std::slice::from_ref(r), replay)?;
                }
                Ok(())
            }
        }
    }

    fn write(&mut self, recs: Vec<Rec>) {
        // Anything spooled before goes first.
        let live = if self.shared.spool.pending() {
            self.catch_up()
        } else {
            self.connect()
        };
        if live {
            match crate::jobs::observed(|| self.write_now(&recs, false)) {
                Ok(()) => return,
                Err(e) => self.lost(&e),
            }
        } else {
            crate::jobs::unwritten();
        }
        self.spooled += recs.len() as u64;
        if let Err(e) = self.shared.spool.append(&recs) {
            error!(
                "pgjsonb: {} writes lost: the database is unavailable and the spool cannot be written: {e}",
                recs.len()
            );
        }
    }

    fn tend(&mut self, keep: Option<Duration>, archive: bool) {
        if !self.catch_up() {
            return;
        }
        let Some(keep) = keep else {
            return;
        };
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match conn.clean(keep, archive) {
            Ok(0) => {}
            Ok(n) => info!(
                "removed {n} jobs older than {}s from the job cache{}",
                keep.as_secs(),
                if archive { " (archived)" } else { "" }
            ),
            Err(e) if e.transient => self.lost(&e),
            Err(e) => error!("pgjsonb: clean_old_jobs failed: {}", e.text),
        }
    }
}

/// Salt's line for a return it could not store, and its like for the
/// other rows.
fn log_refused(r: &Rec, e: &DbError) {
    match r {
        Rec::Return { jid, id, .. } => error!("pgjsonb: failed to store return for jid={jid} id={id}: {}", e.text),
        Rec::Load { jid, .. } => error!("pgjsonb: failed to save the load of jid={jid}: {}", e.text),
        Rec::Event { tag, .. } => error!("pgjsonb: failed to store event {tag}: {}", e.text),
    }
}
