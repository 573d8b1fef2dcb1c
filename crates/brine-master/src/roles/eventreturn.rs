//! EventReturn: Salt's event returner process, started when `event_return`
//! names returners. It follows the master event bus, keeps the events
//! whose tags pass `event_return_whitelist` / `event_return_blacklist`
//! (fnmatch globs; an event a cluster peer forwarded, with `__peer_id`,
//! never), and hands them in batches to each returner's
//! `event_return(events)`, each event `{"tag": ..., "data": ...}`.
//!
//! A batch is flushed when it holds `event_return_queue` events (0: every
//! event at once), when its oldest event is `event_return_queue_max_seconds`
//! old (when set), and at exit. Brine's own event returner is `pgjsonb`;
//! the others run in the Python loader pool. Either way the batches are
//! written by a thread of this process, so a slow returner never stops
//! the bus being read; when a Python returner cannot keep up, batches are
//! dropped and logged (pgjsonb spools them to disk instead).

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use brine_client::BusAddr;
use brine_config::MasterConfig;
use brine_loader::returners::EventReturner;
use brine_proc::supervisor::{poll_fds, ChildSpec};
use brine_proto::Value;
use log::{debug, error, info, warn};

use super::{role, stop_signals, stopping, subscribe_bus};
use crate::loglimit::LogLimiter;
use crate::names;

/// Whether the master runs EventReturn: `event_return` names a returner
/// that can be called (pgjsonb, or one through Python; the others were
/// warned about).
pub fn wanted(cfg: &MasterConfig) -> bool {
    !brine_loader::returners::event_returners(cfg).is_empty()
}

/// What EventReturn keeps between events.
struct Queue {
    events: Vec<Value>,
    oldest: Option<Instant>,
    size: usize,
    max_age: Option<Duration>,
    allow: Vec<String>,
    deny: Vec<String>,
    returners: Vec<EventReturner>,
    dropped: LogLimiter,
}

impl Queue {
    fn new(cfg: &MasterConfig) -> Queue {
        let list = |k: &str| cfg.get_str_list(k).unwrap_or_default();
        Queue {
            events: Vec::new(),
            oldest: None,
            size: cfg.get_u64("event_return_queue").unwrap_or(0) as usize,
            max_age: cfg
                .get_u64("event_return_queue_max_seconds")
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            allow: list("event_return_whitelist"),
            deny: list("event_return_blacklist"),
            returners: EventReturner::open_all(cfg),
            dropped: LogLimiter::new(5, Duration::from_secs(60)),
        }
    }

    /// Salt's `EventReturn._filter`.
    fn keep(&self, tag: &str, data: &Value) -> bool {
        if data.get("__peer_id").is_some() {
            return false;
        }
        let mut ok = self.allow.is_empty() || self.allow.iter().any(|p| brine_py::fnmatch(tag, p));
        if self.deny.iter().any(|p| brine_py::fnmatch(tag, p)) {
            ok = false;
        }
        ok
    }

    fn push(&mut self, tag: String, data: Value) {
        if self.keep(&tag, &data) {
            self.events.push(Value::map([("tag", Value::Str(tag)), ("data", data)]));
            self.oldest.get_or_insert_with(Instant::now);
        }
        self.maybe_flush();
    }

    fn maybe_flush(&mut self) {
        let too_old = matches!((self.max_age, self.oldest), (Some(max), Some(t)) if t.elapsed() >= max);
        if !self.events.is_empty() && (self.events.len() >= self.size || too_old) {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.events.is_empty() {
            return;
        }
        debug!("Flushing {} events.", self.events.len());
        let batch = Value::Array(std::mem::take(&mut self.events));
        self.oldest = None;
        for r in &self.returners {
            if let Err(e) = r.event_return(batch.clone()) {
                if let Some(held) = self.dropped.allow() {
                    error!("Could not store events - {e} ({held} more such lines held back)");
                }
            }
        }
    }

    /// The flush at exit, then the wait for the writes.
    fn finish(&mut self) {
        self.flush();
        for r in &self.returners {
            r.flush();
        }
    }
}

pub fn spec(cfg: Rc<MasterConfig>) -> ChildSpec {
    role(names::EVENT_RETURN, move |ctx| {
        let sig = stop_signals()?;
        if let Some(n) = cfg.get_i64("event_return_niceness").filter(|n| *n != 0) {
            info!("setting EventReturn niceness to {n}");
            // SAFETY: nice(2) only changes this process's priority.
            unsafe { libc::nice(n as i32) };
        }
        let addr = BusAddr::from_config(&cfg);
        let mut queue = Queue::new(&cfg);
        info!(
            "EventReturn: events to {}",
            queue
                .returners
                .iter()
                .map(EventReturner::name)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let started = Instant::now();
        let mut ready = false;
        let tick = queue.max_age.map(|m| m.min(Duration::from_secs(1)));
        loop {
            let Some(mut bus) = subscribe_bus(&addr, &sig, started, ready)? else {
                queue.finish();
                return Ok(());
            };
            if !ready {
                ctx.ready();
                ready = true;
            }
            'conn: loop {
                poll_fds(&[sig.fd(), bus.as_raw_fd()], tick)?;
                sig.drain();
                if stopping() {
                    queue.finish();
                    return Ok(());
                }
                loop {
                    match bus.next_now() {
                        Ok(Some(ev)) => queue.push(ev.tag, ev.data),
                        Ok(None) => break,
                        Err(e) => {
                            warn!("event bus: {e}; subscribing again");
                            break 'conn;
                        }
                    }
                }
                queue.maybe_flush();
            }
        }
    })
}
