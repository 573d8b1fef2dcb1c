//! Salt's returners on the master, through the Python loader pool:
//! `master_job_cache` and `ext_job_cache` naming a returner Brine does not
//! have (a custom one in `extension_modules/returners`, or Salt's `redis`,
//! `mysql`, …), and the `event_return` returners.
//!
//! Writes never wait for Python. Each process that writes (an MWorker, a
//! runner job, the EventReturn process) hands its writes, in order, to one
//! thread of its own, which sends them to the pool in batches; a process
//! that ends waits for the writes it queued (bounded by the loader's
//! timeout). A queue that is full (the returner cannot keep up with the
//! estate) refuses the write with an error the caller logs, so a slow
//! database slows nothing else. Reads (`jobs.lookup_jid`, `list_jobs`)
//! are calls to the pool, made by runner jobs, never by an MWorker.
//!
//! What is called, as Salt's master calls it:
//! * a publication: `prep_jid(nocache=False, passed_jid=jid)`, then
//!   `save_load(jid, load, minions)`;
//! * a return (`salt.utils.job.store_job`): `prep_jid(False,
//!   passed_jid=jid)`, `save_load(jid, return_load)`,
//!   `returner(return_load)`, and `update_endtime(jid, time)` when
//!   `job_cache_store_endtime` is set;
//! * `clean_old_jobs()` from Maintenance, when the returner has it.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use brine_cache::jobs::jid_to_time;
use brine_cache::{CacheError, Cleaned, Jid, JobCache, LocalCache, PgJsonb, LOCAL_CACHE, PGJSONB};
use brine_config::MasterConfig;
use brine_proto::Value;
use log::{error, warn};

use crate::client::{Client, LoaderError};
use crate::resolve::{self, ModuleType};

/// Writes a process may have queued for the pool before it refuses more.
const QUEUE: usize = 16_384;
/// Writes sent in one request to the pool.
const BATCH: usize = 512;

/// A returner function to call: its name in the module, its positional
/// and its keyword arguments.
pub type Call<'a> = (&'a str, Vec<Value>, Vec<(&'a str, Value)>);

/// One returner function call.
fn call(fun: String, args: Vec<Value>, kwargs: Vec<(&str, Value)>) -> Value {
    Value::map([
        ("fun", Value::Str(fun)),
        ("args", Value::Array(args)),
        ("kwargs", Value::map(kwargs)),
    ])
}

/// A returner module run by the pool: reads answered at once, writes
/// queued for this process's writer thread.
pub struct PyReturner {
    name: String,
    client: Client,
    writer: Mutex<Option<Writer>>,
}

/// What a writer thread is handed.
enum Item {
    Call(Value),
    /// Answered once every call queued before it was sent.
    Barrier(mpsc::Sender<()>),
}

struct Writer {
    tx: SyncSender<Item>,
    thread: JoinHandle<()>,
}

impl PyReturner {
    pub fn new(name: &str, client: Client) -> PyReturner {
        PyReturner {
            name: name.to_string(),
            client,
            writer: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Call `<name>.<fun>` and wait for its answer.
    pub fn read(&self, fun: &str, args: Vec<Value>) -> Result<Value, LoaderError> {
        let mut req = call(format!("{}.{fun}", self.name), args, Vec::new());
        req.set("kind", Value::from("returner"));
        self.client.call(&req)
    }

    /// Queue calls to `<name>.<fun>`, in order, for the writer thread.
    pub fn write(&self, calls: Vec<Call>) -> Result<(), CacheError> {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let writer = guard.get_or_insert_with(|| self.start_writer());
        for (fun, args, kwargs) in calls {
            match writer
                .tx
                .try_send(Item::Call(call(format!("{}.{fun}", self.name), args, kwargs)))
            {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    return Err(CacheError::Backend(format!(
                        "the {} returner is not keeping up ({QUEUE} writes queued in this process): {}.{fun} dropped",
                        self.name, self.name
                    )))
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(CacheError::Backend(format!(
                        "the {} returner's writer is gone: {}.{fun} dropped",
                        self.name, self.name
                    )))
                }
            }
        }
        Ok(())
    }

    fn start_writer(&self) -> Writer {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let client = self.client.clone();
        let name = self.name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("returner-{name}"))
            .spawn(move || write_loop(&name, &client, &rx))
            .expect("spawn a returner writer thread");
        Writer { tx, thread }
    }

    /// A wait for the writes queued so far (bounded by the loader's
    /// timeout, twice: queued behind a batch, then sent); `None` when
    /// nothing was ever written by this process.
    pub fn barrier(&self) -> Option<Box<dyn FnOnce() + Send>> {
        let guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let writer = guard.as_ref()?;
        let (tx, rx) = mpsc::channel();
        writer.tx.send(Item::Barrier(tx)).ok()?;
        let limit = self.client.timeout() * 2;
        Some(Box::new(move || {
            let _ = rx.recv_timeout(limit);
        }))
    }

    /// Wait for the queued writes (at most the loader's timeout).
    pub fn flush(&self) {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(Writer { tx, thread }) = writer {
            drop(tx);
            let _ = thread.join();
        }
    }
}

impl Drop for PyReturner {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The writer thread: the queued calls, in batches, until every sender
/// is gone and the queue is empty.
fn write_loop(name: &str, client: &Client, rx: &Receiver<Item>) {
    let mut barriers = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut calls = Vec::new();
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Item::Call(c) => calls.push(c),
                Item::Barrier(b) => barriers.push(b),
            }
            if calls.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !calls.is_empty() {
            send_batch(name, client, calls);
        }
        for b in barriers.drain(..) {
            let _ = b.send(());
        }
    }
}

fn send_batch(name: &str, client: &Client, calls: Vec<Value>) {
    let n = calls.len();
    let req = Value::map([("kind", Value::from("returner_batch")), ("calls", Value::Array(calls))]);
    let started = Instant::now();
    match client.call(&req) {
        Ok(answer) => {
            let failed = answer.get("failed").and_then(Value::as_i64).unwrap_or(0);
            if failed > 0 {
                let why = answer.get("error").and_then(Value::as_str).unwrap_or("");
                error!("returner {name}: {failed} of {n} calls failed (the first: {why})");
            }
        }
        Err(e) => error!(
            "returner {name}: {n} calls were not made after {:.1?}: {e}",
            started.elapsed()
        ),
    }
}

/// A job cache kept by a Python returner (`master_job_cache` or
/// `ext_job_cache`).
pub struct PyJobCache {
    ret: PyReturner,
    store_endtime: bool,
}

impl PyJobCache {
    pub fn new(cfg: &MasterConfig, name: &str) -> PyJobCache {
        PyJobCache {
            ret: PyReturner::new(name, Client::of(cfg)),
            store_endtime: cfg.get_bool("job_cache_store_endtime").unwrap_or(false),
        }
    }

    fn read_or_empty(&self, fun: &str, jid: &Jid) -> Value {
        match self.ret.read(fun, vec![Value::from(jid)]) {
            Ok(Value::Nil) => Value::Map(Vec::new()),
            Ok(v) => v,
            Err(e) => {
                error!("returner {}: {fun}({jid}) failed: {e}", self.ret.name());
                Value::Map(Vec::new())
            }
        }
    }
}

impl JobCache for PyJobCache {
    fn save_load(&self, jid: &Jid, load: &Value, minions: &[String]) -> Result<(), CacheError> {
        let minions = Value::Array(minions.iter().map(|m| Value::from(m.as_str())).collect());
        self.ret.write(vec![
            (
                "prep_jid",
                vec![],
                vec![("nocache", Value::Bool(false)), ("passed_jid", Value::from(jid))],
            ),
            ("save_load", vec![Value::from(jid), load.clone(), minions], vec![]),
        ])
    }

    fn store_return(&self, jid: &Jid, _id: &str, ret: &Value) -> Result<bool, CacheError> {
        let load = brine_cache::jobs::return_load(ret);
        let mut calls = vec![
            (
                "prep_jid",
                vec![Value::Bool(false)],
                vec![("passed_jid", Value::from(jid))],
            ),
            ("save_load", vec![Value::from(jid), load.clone()], vec![]),
            ("returner", vec![load], vec![]),
        ];
        if self.store_endtime {
            calls.push((
                "update_endtime",
                vec![Value::from(jid), Value::Str(jid_to_time(Jid::generate().as_str()))],
                vec![],
            ));
        }
        self.ret.write(calls).map(|()| true)
    }

    fn load(&self, jid: &Jid) -> Option<Value> {
        let v = self.get_load(jid);
        brine_py::truthy(&v).then_some(v)
    }

    fn get_load(&self, jid: &Jid) -> Value {
        self.read_or_empty("get_load", jid)
    }

    fn get_jid(&self, jid: &Jid) -> Value {
        self.read_or_empty("get_jid", jid)
    }

    fn get_jids(&self) -> Vec<(Jid, Value)> {
        match self.ret.read("get_jids", vec![]) {
            Ok(Value::Map(jobs)) => jobs
                .into_iter()
                .filter_map(|(k, v)| Some((Jid::parse(k.as_str()?)?, v)))
                .collect(),
            // Some returners answer a list of jids.
            Ok(Value::Array(jids)) => jids
                .iter()
                .filter_map(|j| Jid::parse(j.as_str()?))
                .map(|j| {
                    let load = self.get_load(&j);
                    (j, load)
                })
                .collect(),
            Ok(_) => Vec::new(),
            Err(e) => {
                error!("returner {}: get_jids failed: {e}", self.ret.name());
                Vec::new()
            }
        }
    }

    fn barrier(&self) -> Option<Box<dyn FnOnce() + Send>> {
        self.ret.barrier()
    }

    fn clean_old_jobs(&self, _keep: Duration) -> Cleaned {
        // Salt's Maintenance calls the returner's own clean_old_jobs, which
        // reads keep_jobs_seconds itself; a returner without one keeps all.
        match self.ret.read("clean_old_jobs", vec![]) {
            Ok(_) | Err(LoaderError::Missing(_)) => {}
            Err(e) => warn!("returner {}: clean_old_jobs failed: {e}", self.ret.name()),
        }
        Cleaned::default()
    }
}

/// Whether the returner `name` runs through Python here: Brine does not
/// have it natively (or `loader_source` says so), and a Python with Salt
/// was found when the master started.
fn through_python(cfg: &MasterConfig, name: &str) -> bool {
    resolve::use_python(&cfg.raw, ModuleType::Returners, name, resolve::native_returner(name))
        && crate::oneshot::python().is_some()
}

/// The `event_return` returners that can be called: Brine's `pgjsonb`,
/// and the others through Python when a Python with Salt was found.
pub fn event_returners(cfg: &MasterConfig) -> Vec<String> {
    resolve::event_returners(&cfg.raw)
        .into_iter()
        .filter(|n| {
            if resolve::use_python(&cfg.raw, ModuleType::Returners, n, resolve::native_returner(n)) {
                crate::oneshot::python().is_some()
            } else {
                n == PGJSONB
            }
        })
        .collect()
}

/// An `event_return` returner: Brine's own or one the pool runs. Both
/// take the batches without waiting for them to be written.
pub enum EventReturner {
    Native(Box<PgJsonb>),
    Python(PyReturner),
}

impl EventReturner {
    /// The returners [`event_returners`] names, ready to be called.
    pub fn open_all(cfg: &MasterConfig) -> Vec<EventReturner> {
        let client = Client::of(cfg);
        event_returners(cfg)
            .into_iter()
            .filter_map(|n| {
                if through_python(cfg, &n) {
                    return Some(EventReturner::Python(PyReturner::new(&n, client.clone())));
                }
                match PgJsonb::open(cfg) {
                    Ok(pg) => Some(EventReturner::Native(Box::new(pg))),
                    Err(e) => {
                        error!("event_return: {n}: {e}");
                        None
                    }
                }
            })
            .collect()
    }

    pub fn name(&self) -> &str {
        match self {
            EventReturner::Native(_) => PGJSONB,
            EventReturner::Python(r) => r.name(),
        }
    }

    /// `event_return(events)`, each event `{"tag": ..., "data": ...}`.
    pub fn event_return(&self, events: Value) -> Result<(), CacheError> {
        match self {
            EventReturner::Native(pg) => match &events {
                Value::Array(list) => pg.event_return(list),
                _ => Ok(()),
            },
            EventReturner::Python(r) => r.write(vec![("event_return", vec![events], vec![])]),
        }
    }

    /// Wait for the batches handed over so far.
    pub fn flush(&self) {
        match self {
            EventReturner::Native(pg) => pg.flush(),
            EventReturner::Python(r) => r.flush(),
        }
    }
}

/// The job cache a returner name selects: Brine's own, or the Python
/// returner; `None` when neither is available.
pub fn open_job_cache(cfg: &MasterConfig, name: &str) -> Option<Box<dyn JobCache>> {
    if through_python(cfg, name) {
        return Some(Box::new(PyJobCache::new(cfg, name)));
    }
    brine_cache::jobs::open(name, cfg).ok()
}

/// The master's job cache (`master_job_cache`, default `local_cache`); a
/// returner that is not available leaves the jobs in `local_cache`, as
/// the start-up warning says.
pub fn job_cache(cfg: &MasterConfig) -> Box<dyn JobCache> {
    let name = cfg.get_str("master_job_cache").unwrap_or(LOCAL_CACHE);
    open_job_cache(cfg, name).unwrap_or_else(|| Box::new(LocalCache::new(&cfg.cachedir, cfg.hash_type())))
}

/// `ext_job_cache`, when set: the returner the master also saves each
/// publication's load in; returns are then the minions' to send it, and
/// the master does not store them (Salt's `store_job`).
pub fn ext_job_cache(cfg: &MasterConfig) -> Option<Box<dyn JobCache>> {
    let name = cfg.get_str("ext_job_cache").filter(|s| !s.is_empty())?;
    open_job_cache(cfg, name)
}

/// Start-up warnings for returners asked for that cannot be called.
pub fn warn_unavailable(cfg: &MasterConfig) {
    let name = cfg.get_str("master_job_cache").unwrap_or(LOCAL_CACHE);
    if open_job_cache(cfg, name).is_none() {
        warn!(
            "master_job_cache: the {name:?} returner is not available (not in Brine, and no Python with Salt); jobs are kept in local_cache under {}",
            cfg.cachedir.join("jobs").display()
        );
    }
    if let Some(name) = cfg.get_str("ext_job_cache").filter(|s| !s.is_empty()) {
        if open_job_cache(cfg, name).is_none() {
            warn!("ext_job_cache: the {name:?} returner is not available (not in Brine, and no Python with Salt); publications are not saved to it");
        }
    }
    let callable = event_returners(cfg);
    let events: Vec<String> = resolve::event_returners(&cfg.raw)
        .into_iter()
        .filter(|n| !callable.contains(n))
        .collect();
    if !events.is_empty() {
        warn!(
            "event_return: {} not available (no Python with Salt); events are not sent to them",
            events.join(", ")
        );
    }
}
