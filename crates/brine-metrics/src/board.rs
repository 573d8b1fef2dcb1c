//! The status board: one array of 64-bit counters in a file under
//! `sock_dir`, mapped shared by the ProcessManager before its first fork.
//! Every process of the tree adds to its counters with single atomic
//! operations (no lock, no system call, no message); the supervisors
//! write each child's pid, start, restarts and readiness; the metrics
//! endpoint and `salt-master status` (another program) read it.
//!
//! The layout is fixed but for the per-MWorker slots at the end, whose
//! number the header gives, so a reader computes the same offsets.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use brine_proc::shm::{CountersView, SharedCounters};
use brine_proto::commands::{AesCmd, ClearCmd};

/// "BRINEST1": the file is a status board of this layout.
const MAGIC: u64 = u64::from_le_bytes(*b"BRINEST1");

// Header.
const H_MAGIC: usize = 0;
const H_LEN: usize = 1;
const H_PID: usize = 2;
const H_STARTED_MS: usize = 3;
const H_WORKERS: usize = 4;
const H_SERVING: usize = 5;
const HEADER: usize = 8;

/// Processes the board has a row for (the ProcessManager's children and
/// ReqServer_ProcessManager's).
pub const MAX_ROLES: usize = 64;
/// Bytes of a role's title kept (longer ones are cut).
const NAME_WORDS: usize = 12;
const ROLE_WORDS: usize = NAME_WORDS + 5;
const R_PID: usize = NAME_WORDS;
const R_STARTED_MS: usize = NAME_WORDS + 1;
const R_RESTARTS: usize = NAME_WORDS + 2;
const R_READY: usize = NAME_WORDS + 3;
const R_PARENT: usize = NAME_WORDS + 4;
const ROLES: usize = HEADER;

/// Upper bounds (seconds) of the latency buckets; one more counts the rest.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// A histogram: a count per bucket and +Inf, the sum in microseconds, the count.
const HIST: usize = BUCKETS.len() + 3;

/// What became of a request on ret_port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered.
    Ok,
    /// Refused as malformed, undecryptable, unauthorised or failing.
    Error,
    /// A command the master does not expose (answered `{}`, as Salt does).
    Refused,
    /// Dropped unanswered (a sign-in its minion stopped waiting for).
    Dropped,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Outcome::Ok, Outcome::Error, Outcome::Refused, Outcome::Dropped];
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Refused => "refused",
            Outcome::Dropped => "dropped",
        }
    }
}

/// How a sign-in (`_auth`) was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// The key is accepted: the minion got the AES key.
    Accepted,
    /// The key waits in `minions_pre` for `salt-key -a`.
    Pending,
    /// The key is rejected (`minions_rejected`, `autoreject_file`).
    Rejected,
    /// Another key under an accepted or pending id (`minions_denied`).
    Denied,
    /// Not considered: an invalid id or request, `max_minions`,
    /// `max_pending_keys`.
    Refused,
}

impl AuthResult {
    pub const ALL: [AuthResult; 5] = [
        AuthResult::Accepted,
        AuthResult::Pending,
        AuthResult::Rejected,
        AuthResult::Denied,
        AuthResult::Refused,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Accepted => "accepted",
            AuthResult::Pending => "pending",
            AuthResult::Rejected => "rejected",
            AuthResult::Denied => "denied",
            AuthResult::Refused => "refused",
        }
    }
}

/// The commands counted one by one: Salt's clear and AES commands, then
/// one row for any other name (never the name a peer sent: labels stay
/// a fixed set).
pub fn commands() -> impl Iterator<Item = &'static str> {
    ClearCmd::ALL
        .iter()
        .map(|c| c.as_str())
        .chain(AesCmd::ALL.iter().map(|c| c.as_str()))
        .chain(std::iter::once("other"))
}

fn ncmd() -> usize {
    ClearCmd::ALL.len() + AesCmd::ALL.len() + 1
}

/// The row of a clear command.
pub fn clear_row(c: ClearCmd) -> usize {
    c as usize
}

/// The row of an AES command.
pub fn aes_row(c: AesCmd) -> usize {
    ClearCmd::ALL.len() + c as usize
}

/// The row of a command name (`other` for names not exposed).
pub fn command_index(cmd: &str) -> usize {
    match (cmd.parse::<ClearCmd>(), cmd.parse::<AesCmd>()) {
        (Ok(c), _) => clear_row(c),
        (_, Ok(c)) => aes_row(c),
        _ => ncmd() - 1,
    }
}

/// Single counters, after the role rows.
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Counter {
    /// Requests MWorkerQueue took in on ret_port (each numbered by this
    /// count as it is queued for the MWorkers), and replies it sent.
    Received,
    Answered,
    /// The highest number of a request an MWorker took: the requests
    /// numbered above it still wait in the MWorkers' queues (requests
    /// lost with an MWorker that was killed are below it, not counted).
    Taken,
    /// Publications sent on publish_port.
    Publishes,
    /// Job returns (`_return`, `_syndic_return`) handled.
    Returns,
    /// Events fanned out by EventPublisher.
    Events,
    /// Subscribers EventPublisher disconnected for falling behind.
    EventSubscribersDropped,
    /// Writers EventPublisher disconnected for sending what is not an event.
    EventWritersDropped,
    /// Subscribers connected to the event bus now (a gauge).
    EventSubscribers,
    /// Tasks waiting in the Reactor's queue now (a gauge).
    ReactorQueue,
    /// Reactions the Reactor dropped because its queue was full.
    ReactorDropped,
    /// Reactions the Reactor ran.
    Reactions,
    /// Job cache writes (loads and returns), failed writes, and the time
    /// (ms since the epoch) of the last write that worked and of the last
    /// that failed.
    JobCacheWrites,
    JobCacheErrors,
    JobCacheLastOk,
    JobCacheLastError,
}
const COUNTERS: usize = Counter::JobCacheLastError as usize + 1;

/// Where each part begins, for a board with `workers` MWorkers.
#[derive(Debug, Clone, Copy)]
struct Layout {
    counters: usize,
    auth: usize,
    requests: usize,
    latency: usize,
    cache_latency: usize,
    worker_slots: usize,
    nworkers: usize,
    len: usize,
}

impl Layout {
    fn new(nworkers: usize) -> Layout {
        let counters = ROLES + MAX_ROLES * ROLE_WORDS;
        let auth = counters + COUNTERS;
        let requests = auth + AuthResult::ALL.len();
        let latency = requests + ncmd() * Outcome::ALL.len();
        let cache_latency = latency + ncmd() * HIST;
        let worker_slots = cache_latency + HIST;
        Layout {
            counters,
            auth,
            requests,
            latency,
            cache_latency,
            worker_slots,
            nworkers,
            len: worker_slots + 2 * nworkers,
        }
    }
}

enum Backing {
    Own(SharedCounters),
    View(CountersView),
}

/// The board, as the master writes it or as another program reads it.
pub struct Board {
    backing: Backing,
    layout: Layout,
}

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a status board of this version of salt-master")]
    Foreign,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One row of the process table.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub name: String,
    /// 0 while it is not running.
    pub pid: u32,
    /// When it last started (ms since the epoch).
    pub started_ms: u64,
    /// Starts after the first.
    pub restarts: u64,
    pub ready: bool,
    /// The row of the supervisor that forks it (None: the ProcessManager).
    pub parent: Option<usize>,
}

impl Board {
    /// A new board at `path` for a master with `workers` MWorkers, whose
    /// ProcessManager is this process; map it before the first fork.
    pub fn create(path: &Path, workers: usize) -> Result<Board, BoardError> {
        let layout = Layout::new(workers);
        let c = SharedCounters::create_file(path, layout.len)?;
        c.get(H_LEN).store(layout.len as u64, Relaxed);
        c.get(H_PID).store(u64::from(std::process::id()), Relaxed);
        c.get(H_STARTED_MS).store(now_ms(), Relaxed);
        c.get(H_WORKERS).store(workers as u64, Relaxed);
        c.get(H_MAGIC).store(MAGIC, Relaxed);
        Ok(Board {
            backing: Backing::Own(c),
            layout,
        })
    }

    /// The board of a running master, read only.
    pub fn open(path: &Path) -> Result<Board, BoardError> {
        let v = CountersView::open(path)?;
        let workers = v.load(H_WORKERS) as usize;
        if v.load(H_MAGIC) != MAGIC || workers > 100_000 {
            return Err(BoardError::Foreign);
        }
        let layout = Layout::new(workers);
        if v.load(H_LEN) != layout.len as u64 || v.len() < layout.len {
            return Err(BoardError::Foreign);
        }
        Ok(Board {
            backing: Backing::View(v),
            layout,
        })
    }

    fn load(&self, i: usize) -> u64 {
        match &self.backing {
            Backing::Own(c) => c.get(i).load(Relaxed),
            Backing::View(v) => v.load(i),
        }
    }

    fn add(&self, i: usize, n: u64) {
        if let Backing::Own(c) = &self.backing {
            c.get(i).fetch_add(n, Relaxed);
        }
    }

    fn store(&self, i: usize, n: u64) {
        if let Backing::Own(c) = &self.backing {
            c.get(i).store(n, Relaxed);
        }
    }

    /// The ProcessManager's pid and start (ms since the epoch).
    pub fn manager(&self) -> (u32, u64) {
        (self.load(H_PID) as u32, self.load(H_STARTED_MS))
    }

    pub fn workers(&self) -> usize {
        self.layout.nworkers
    }

    /// Whether the tree reported ready (every process serving) once.
    pub fn serving(&self) -> bool {
        self.load(H_SERVING) != 0
    }

    pub fn set_serving(&self) {
        self.store(H_SERVING, 1);
    }

    pub fn add_counter(&self, c: Counter, n: u64) {
        self.add(self.layout.counters + c as usize, n);
    }

    pub fn set_counter(&self, c: Counter, n: u64) {
        self.store(self.layout.counters + c as usize, n);
    }

    /// Add one to counter `c` and return its new value.
    pub fn next(&self, c: Counter) -> u64 {
        match &self.backing {
            Backing::Own(counters) => counters.get(self.layout.counters + c as usize).fetch_add(1, Relaxed) + 1,
            Backing::View(_) => 0,
        }
    }

    /// Raise counter `c` to `n` if it is lower.
    pub fn raise(&self, c: Counter, n: u64) {
        if let Backing::Own(counters) = &self.backing {
            counters.get(self.layout.counters + c as usize).fetch_max(n, Relaxed);
        }
    }

    /// Every single counter, by `Counter as usize`.
    pub fn counters(&self) -> Vec<u64> {
        (0..COUNTERS).map(|i| self.load(self.layout.counters + i)).collect()
    }

    pub fn counter(&self, c: Counter) -> u64 {
        self.load(self.layout.counters + c as usize)
    }

    pub fn auth(&self, r: AuthResult) {
        self.add(self.layout.auth + r as usize, 1);
    }

    pub fn auths(&self, r: AuthResult) -> u64 {
        self.load(self.layout.auth + r as usize)
    }

    fn observe(&self, at: usize, took: std::time::Duration) {
        let secs = took.as_secs_f64();
        let b = BUCKETS.iter().position(|le| secs <= *le).unwrap_or(BUCKETS.len());
        self.add(at + b, 1);
        self.add(at + BUCKETS.len() + 1, took.as_micros() as u64);
        self.add(at + BUCKETS.len() + 2, 1);
    }

    /// (sum in seconds, count, the count of each bucket by its upper
    /// bound: not cumulative, as prometheus-client's encoder adds them up).
    fn histogram(&self, at: usize) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .enumerate()
            .map(|(i, le)| (*le, self.load(at + i)))
            .collect();
        buckets.push((f64::INFINITY, self.load(at + BUCKETS.len())));
        let sum = self.load(at + BUCKETS.len() + 1) as f64 / 1e6;
        (sum, self.load(at + BUCKETS.len() + 2), buckets)
    }

    /// A request for command row `cmd` ([`command_index`]) ended so,
    /// `took` after it reached ret_port.
    pub fn request(&self, cmd: usize, outcome: Outcome, took: std::time::Duration) {
        let cmd = cmd.min(ncmd() - 1);
        self.add(self.layout.requests + cmd * Outcome::ALL.len() + outcome as usize, 1);
        self.observe(self.layout.latency + cmd * HIST, took);
    }

    /// Requests of command row `cmd` that ended with `outcome`.
    pub fn requests(&self, cmd: usize, outcome: Outcome) -> u64 {
        self.load(self.layout.requests + cmd.min(ncmd() - 1) * Outcome::ALL.len() + outcome as usize)
    }

    /// The latency histogram of command row `cmd`.
    pub fn request_latency(&self, cmd: usize) -> (f64, u64, Vec<(f64, u64)>) {
        self.histogram(self.layout.latency + cmd.min(ncmd() - 1) * HIST)
    }

    /// A job cache write that took `took`, and whether it worked.
    pub fn cache_write(&self, ok: bool, took: std::time::Duration) {
        self.add_counter(Counter::JobCacheWrites, 1);
        if ok {
            self.set_counter(Counter::JobCacheLastOk, now_ms());
        } else {
            self.add_counter(Counter::JobCacheErrors, 1);
            self.set_counter(Counter::JobCacheLastError, now_ms());
        }
        self.observe(self.layout.cache_latency, took);
    }

    pub fn cache_latency(&self) -> (f64, u64, Vec<(f64, u64)>) {
        self.histogram(self.layout.cache_latency)
    }

    fn worker_slot(&self, i: usize) -> usize {
        self.layout.worker_slots + 2 * i.min(self.layout.nworkers.saturating_sub(1))
    }

    /// MWorker `i`: requests handled, and when (ms since the epoch) it
    /// started the one in hand, 0 when idle.
    pub fn worker(&self, i: usize) -> (u64, u64) {
        if i >= self.layout.nworkers {
            return (0, 0);
        }
        let s = self.worker_slot(i);
        (self.load(s), self.load(s + 1))
    }

    /// MWorker `i` took a request (`Some(now)`) or is done with it (`None`).
    pub fn worker_busy(&self, i: usize, since: Option<u64>) {
        if i >= self.layout.nworkers {
            return;
        }
        let s = self.worker_slot(i);
        match since {
            Some(ms) => self.store(s + 1, ms),
            None => {
                self.store(s + 1, 0);
                self.add(s, 1);
            }
        }
    }

    /// How many MWorkers have a request in hand.
    pub fn busy_workers(&self) -> u64 {
        (0..self.layout.nworkers).filter(|i| self.worker(*i).1 != 0).count() as u64
    }

    fn role_at(&self, row: usize) -> usize {
        ROLES + row * ROLE_WORDS
    }

    /// Give row `row` to the process titled `name` under the supervisor in
    /// row `parent` (None: the ProcessManager). Rows are named by the
    /// ProcessManager before its first fork.
    pub fn name_role(&self, row: usize, name: &str, parent: Option<usize>) {
        if row >= MAX_ROLES {
            return;
        }
        let at = self.role_at(row);
        let mut bytes = [0u8; NAME_WORDS * 8];
        let n = name.len().min(bytes.len());
        bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
        for (w, chunk) in bytes.chunks(8).enumerate() {
            self.store(at + w, u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        self.store(at + R_PARENT, parent.map_or(0, |p| p as u64 + 1));
    }

    /// The row named `name`.
    pub fn role_row(&self, name: &str) -> Option<usize> {
        (0..MAX_ROLES).find(|r| self.role_name(*r).as_deref() == Some(name))
    }

    fn role_name(&self, row: usize) -> Option<String> {
        let at = self.role_at(row);
        let mut bytes = Vec::with_capacity(NAME_WORDS * 8);
        for w in 0..NAME_WORDS {
            bytes.extend_from_slice(&self.load(at + w).to_le_bytes());
        }
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        (end > 0).then(|| String::from_utf8_lossy(&bytes[..end]).into_owned())
    }

    /// A supervisor's view of its child in row `row`: its pid (None: not
    /// running), when it started, restarts, readiness.
    pub fn set_role(&self, row: usize, pid: Option<u32>, started_ms: u64, restarts: u64, ready: bool) {
        if row >= MAX_ROLES {
            return;
        }
        let at = self.role_at(row);
        self.store(at + R_PID, pid.map_or(0, u64::from));
        self.store(at + R_STARTED_MS, started_ms);
        self.store(at + R_RESTARTS, restarts);
        self.store(at + R_READY, u64::from(ready));
    }

    /// Every named row, in order.
    pub fn roles(&self) -> Vec<Role> {
        (0..MAX_ROLES)
            .filter_map(|row| {
                let name = self.role_name(row)?;
                let at = self.role_at(row);
                Some(Role {
                    name,
                    pid: self.load(at + R_PID) as u32,
                    started_ms: self.load(at + R_STARTED_MS),
                    restarts: self.load(at + R_RESTARTS),
                    ready: self.load(at + R_READY) != 0,
                    parent: self.load(at + R_PARENT).checked_sub(1).map(|p| p as usize),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn what_the_master_writes_another_program_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("board");
        let b = Board::create(&path, 3).unwrap();
        b.name_role(0, "EventPublisher", None);
        b.name_role(1, "ReqServer_ProcessManager", None);
        b.name_role(2, "MWorker-0", Some(1));
        b.set_role(2, Some(4242), 1000, 2, true);
        b.add_counter(Counter::Returns, 5);
        b.auth(AuthResult::Pending);
        let publish = command_index("publish");
        b.request(publish, Outcome::Ok, Duration::from_millis(3));
        b.request(publish, Outcome::Ok, Duration::from_secs(20));
        b.request(command_index("nonsense"), Outcome::Refused, Duration::ZERO);
        b.worker_busy(1, Some(77));
        b.cache_write(false, Duration::from_millis(1));

        let r = Board::open(&path).unwrap();
        assert_eq!(r.manager().0, std::process::id());
        assert_eq!(r.workers(), 3);
        assert_eq!(r.counter(Counter::Returns), 5);
        assert_eq!(r.auths(AuthResult::Pending), 1);
        assert_eq!(r.auths(AuthResult::Accepted), 0);
        assert_eq!(r.requests(publish, Outcome::Ok), 2);
        assert_eq!(r.requests(command_index("other"), Outcome::Refused), 1);
        let (sum, count, buckets) = r.request_latency(publish);
        assert_eq!(count, 2);
        assert!((sum - 20.003).abs() < 1e-6, "{sum}");
        assert_eq!(buckets[BUCKETS.iter().position(|b| *b == 0.005).unwrap()].1, 1);
        assert_eq!(buckets[BUCKETS.len() - 1], (10.0, 0));
        assert_eq!(
            buckets.last().unwrap(),
            &(f64::INFINITY, 1),
            "20 s is past the last bound"
        );
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), count);
        assert_eq!(r.worker(1), (0, 77));
        assert_eq!(r.busy_workers(), 1);
        b.worker_busy(1, None);
        assert_eq!(r.worker(1), (1, 0));
        assert_eq!(r.worker(9), (0, 0), "past the MWorkers: nothing");
        assert_eq!(r.counter(Counter::JobCacheErrors), 1);
        assert!(r.counter(Counter::JobCacheLastError) > 0);
        let roles = r.roles();
        assert_eq!(roles.len(), 3);
        assert_eq!(
            roles[2],
            Role {
                name: "MWorker-0".into(),
                pid: 4242,
                started_ms: 1000,
                restarts: 2,
                ready: true,
                parent: Some(1)
            }
        );
        assert_eq!(r.role_row("MWorker-0"), Some(2));
        // A reader cannot write.
        r.add_counter(Counter::Returns, 1);
        assert_eq!(b.counter(Counter::Returns), 5);
    }

    #[test]
    fn each_command_has_the_row_of_its_name() {
        for (row, name) in commands().enumerate() {
            assert_eq!(command_index(name), row, "{name}");
        }
        assert_eq!(command_index("_send_pub"), ncmd() - 1);
    }

    #[test]
    fn a_file_that_is_not_a_board_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, [7u8; 4096]).unwrap();
        assert!(matches!(Board::open(&path), Err(BoardError::Foreign)));
        assert!(matches!(Board::open(&dir.path().join("none")), Err(BoardError::Io(_))));
    }

    #[test]
    fn long_titles_are_cut_not_spilled() {
        let dir = tempfile::tempdir().unwrap();
        let b = Board::create(&dir.path().join("b"), 1).unwrap();
        let long = format!("Engine({})", "x".repeat(200));
        b.name_role(0, &long, None);
        b.name_role(1, "Next", None);
        let roles = b.roles();
        assert_eq!(roles[0].name.len(), NAME_WORDS * 8);
        assert_eq!(roles[1].name, "Next");
        b.name_role(MAX_ROLES, "past the end", None);
        assert_eq!(b.roles().len(), 2);
    }
}
