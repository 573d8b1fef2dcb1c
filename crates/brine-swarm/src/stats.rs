//! Counters and latency samples of one swarm process, and their merge.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value as Json};
use tokio::sync::Notify;

pub fn epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A Salt jid (`%Y%m%d%H%M%S%f`, UTC) as epoch microseconds; 0 if not one.
pub fn jid_epoch_us(jid: &str) -> u64 {
    let d = jid.as_bytes();
    if d.len() < 20 || !d[..20].iter().all(u8::is_ascii_digit) {
        return 0;
    }
    let n = |a: usize, b: usize| jid[a..b].parse::<i64>().unwrap_or(0);
    let (y, m, day) = (n(0, 4), n(4, 6), n(6, 8));
    // days from civil (Howard Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(8, 10) * 3600 + n(10, 12) * 60 + n(12, 14);
    (secs * 1_000_000 + n(14, 20)).max(0) as u64
}

#[derive(Default)]
struct Samples {
    auth_ms: Vec<f64>,
    job_recv_ms: Vec<f64>,
    return_ms: Vec<f64>,
    /// jid → (returns acknowledged, latest ack in ms after the jid's time)
    jobs: BTreeMap<String, (u64, f64)>,
}

#[derive(Default)]
pub struct Stats {
    pub minions: AtomicU64,
    pub ready: AtomicU64,
    pub auth_requests: AtomicU64,
    pub auth_accepted: AtomicU64,
    pub auth_pending: AtomicU64,
    pub auth_rejected: AtomicU64,
    pub auth_errors: AtomicU64,
    /// Individual request timeouts while signing in (auth_timeout each).
    pub auth_timeouts: AtomicU64,
    /// Sign-ins abandoned after auth_tries timeouts.
    pub auth_giveups: AtomicU64,
    pub reauths: AtomicU64,
    pub sub_reconnects: AtomicU64,
    pub pubs_received: AtomicU64,
    pub pubs_bad: AtomicU64,
    pub pubs_stale: AtomicU64,
    pub jobs_run: AtomicU64,
    pub jobs_ignored: AtomicU64,
    pub returns_ok: AtomicU64,
    pub return_timeouts: AtomicU64,
    pub return_errors: AtomicU64,
    samples: Mutex<Samples>,
    pub all_ready: Notify,
}

const COUNTERS: &[&str] = &[
    "minions",
    "ready",
    "auth_requests",
    "auth_accepted",
    "auth_pending",
    "auth_rejected",
    "auth_errors",
    "auth_timeouts",
    "auth_giveups",
    "reauths",
    "sub_reconnects",
    "pubs_received",
    "pubs_bad",
    "pubs_stale",
    "jobs_run",
    "jobs_ignored",
    "returns_ok",
    "return_timeouts",
    "return_errors",
];

impl Stats {
    pub fn inc(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn counter(&self, name: &str) -> &AtomicU64 {
        match name {
            "minions" => &self.minions,
            "ready" => &self.ready,
            "auth_requests" => &self.auth_requests,
            "auth_accepted" => &self.auth_accepted,
            "auth_pending" => &self.auth_pending,
            "auth_rejected" => &self.auth_rejected,
            "auth_errors" => &self.auth_errors,
            "auth_timeouts" => &self.auth_timeouts,
            "auth_giveups" => &self.auth_giveups,
            "reauths" => &self.reauths,
            "sub_reconnects" => &self.sub_reconnects,
            "pubs_received" => &self.pubs_received,
            "pubs_bad" => &self.pubs_bad,
            "pubs_stale" => &self.pubs_stale,
            "jobs_run" => &self.jobs_run,
            "jobs_ignored" => &self.jobs_ignored,
            "returns_ok" => &self.returns_ok,
            "return_timeouts" => &self.return_timeouts,
            _ => &self.return_errors,
        }
    }

    pub fn record_auth(&self, d: Duration) {
        self.samples
            .lock()
            .expect("stats lock")
            .auth_ms
            .push(d.as_secs_f64() * 1e3);
    }

    pub fn minion_ready(&self) {
        let n = self.ready.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.minions.load(Ordering::SeqCst) {
            self.all_ready.notify_one();
        }
    }

    pub fn record_job_recv(&self, jid_us: u64, recv_us: u64) {
        self.inc(&self.jobs_run);
        if jid_us > 0 {
            let ms = recv_us.saturating_sub(jid_us) as f64 / 1e3;
            self.samples.lock().expect("stats lock").job_recv_ms.push(ms);
        }
    }

    pub fn record_return(&self, jid: &str, jid_us: u64, now_us: u64) {
        self.inc(&self.returns_ok);
        let ms = if jid_us > 0 {
            now_us.saturating_sub(jid_us) as f64 / 1e3
        } else {
            0.0
        };
        let mut s = self.samples.lock().expect("stats lock");
        s.return_ms.push(ms);
        let e = s.jobs.entry(jid.to_string()).or_insert((0, 0.0));
        e.0 += 1;
        e.1 = e.1.max(ms);
    }

    /// Like [`Stats::snapshot`] but leaves the samples in place.
    pub fn snapshot_keep(&self) -> Json {
        let s = self.samples.lock().expect("stats lock");
        let copy = Samples {
            auth_ms: s.auth_ms.clone(),
            job_recv_ms: s.job_recv_ms.clone(),
            return_ms: s.return_ms.clone(),
            jobs: s.jobs.clone(),
        };
        drop(s);
        self.render(copy)
    }

    /// Counters (cumulative) and the samples taken since the last snapshot.
    pub fn snapshot(&self) -> Json {
        let s = std::mem::take(&mut *self.samples.lock().expect("stats lock"));
        self.render(s)
    }

    fn render(&self, s: Samples) -> Json {
        let mut counters = Map::new();
        for name in COUNTERS {
            counters.insert((*name).into(), json!(self.counter(name).load(Ordering::Relaxed)));
        }
        let jobs: Map<String, Json> = s.jobs.into_iter().map(|(k, (n, ms))| (k, json!([n, ms]))).collect();
        json!({
            "counters": counters,
            "auth_ms": s.auth_ms,
            "job_recv_ms": s.job_recv_ms,
            "return_ms": s.return_ms,
            "jobs": jobs,
        })
    }
}

/// Merge snapshots of several processes into one report with percentiles.
pub fn merge(parts: &[Json]) -> Json {
    let mut counters = Map::new();
    let mut series: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut jobs: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for p in parts {
        if let Some(c) = p["counters"].as_object() {
            for (k, v) in c {
                let e = counters.entry(k.clone()).or_insert(json!(0));
                *e = json!(e.as_u64().unwrap_or(0) + v.as_u64().unwrap_or(0));
            }
        }
        for name in ["auth_ms", "job_recv_ms", "return_ms"] {
            if let Some(a) = p[name].as_array() {
                series
                    .entry(name)
                    .or_default()
                    .extend(a.iter().filter_map(Json::as_f64));
            }
        }
        if let Some(j) = p["jobs"].as_object() {
            for (jid, v) in j {
                let e = jobs.entry(jid.clone()).or_insert((0, 0.0));
                e.0 += v[0].as_u64().unwrap_or(0);
                e.1 = e.1.max(v[1].as_f64().unwrap_or(0.0));
            }
        }
    }
    let mut latency = Map::new();
    for (name, mut v) in series {
        latency.insert(name.trim_end_matches("_ms").to_string(), percentiles(&mut v));
    }
    let jobs: Map<String, Json> = jobs
        .into_iter()
        .map(|(k, (n, ms))| (k, json!({"returns": n, "last_ms": round(ms)})))
        .collect();
    json!({"counters": counters, "latency_ms": latency, "jobs": jobs})
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn percentiles(v: &mut [f64]) -> Json {
    if v.is_empty() {
        return json!({"n": 0});
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| round(v[((v.len() - 1) as f64 * q).round() as usize]);
    json!({
        "n": v.len(),
        "p50": at(0.5),
        "p90": at(0.9),
        "p99": at(0.99),
        "max": at(1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jid_time() {
        // 2024-01-01T12:00:00.123456Z
        assert_eq!(jid_epoch_us("20240101120000123456"), 1_704_110_400_123_456);
        assert_eq!(jid_epoch_us("req"), 0);
    }

    #[test]
    fn merge_sums_and_percentiles() {
        let a = Stats::default();
        a.inc(&a.returns_ok);
        a.record_return("20240101120000123456", 0, 0);
        let b = Stats::default();
        b.record_return("20240101120000123456", 0, 0);
        let m = merge(&[a.snapshot(), b.snapshot()]);
        assert_eq!(m["counters"]["returns_ok"], 3);
        assert_eq!(m["jobs"]["20240101120000123456"]["returns"], 2);
        assert_eq!(m["latency_ms"]["return"]["n"], 2);
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentiles(&mut v)["p50"], 51.0);
    }
}
