//! The board as Prometheus reads it (the OpenMetrics text format, through
//! `prometheus-client`): a snapshot is taken at each scrape, with each
//! process's CPU time and memory from `/proc` and the minions connected.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::board::{commands, AuthResult, Board, Counter, Outcome};
use crate::tree::{processes, Proc, State};

type Hist = (f64, u64, Vec<(f64, u64)>);
/// A metric with one sample per process: name, help, type, value.
type PerProc = (&'static str, &'static str, MetricType, fn(&Proc) -> f64);

/// Everything one scrape shows, copied out of the board.
#[derive(Debug, Clone)]
pub struct Snapshot {
    version: String,
    started_ms: u64,
    procs: Vec<Proc>,
    requests: Vec<(String, &'static str, u64)>,
    latency: Vec<(String, Hist)>,
    auth: Vec<(&'static str, u64)>,
    /// The board's single counters, by `Counter as usize`.
    counters: Vec<u64>,
    queued: u64,
    connected: u64,
    cache_latency: Hist,
    cache_backend: String,
}

impl Snapshot {
    /// The board now; `connected`: minions connected to publish_port;
    /// `cache_backend`: `master_job_cache`.
    pub fn take(board: &Board, connected: u64, cache_backend: &str) -> Snapshot {
        let (_, started_ms) = board.manager();
        let procs = processes(board);
        let mut requests = Vec::new();
        let mut latency = Vec::new();
        for (i, cmd) in commands().enumerate() {
            for o in Outcome::ALL {
                let n = board.requests(i, o);
                if n > 0 {
                    requests.push((cmd.to_string(), o.as_str(), n));
                }
            }
            let h = board.request_latency(i);
            if h.1 > 0 {
                latency.push((cmd.to_string(), h));
            }
        }
        Snapshot {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_ms,
            procs,
            requests,
            latency,
            auth: AuthResult::ALL.iter().map(|r| (r.as_str(), board.auths(*r))).collect(),
            counters: board.counters(),
            queued: queued(board),
            connected,
            cache_latency: board.cache_latency(),
            cache_backend: cache_backend.to_string(),
        }
    }

    fn counter(&self, c: Counter) -> u64 {
        self.counters.get(c as usize).copied().unwrap_or(0)
    }

    /// The text a scrape gets.
    pub fn render(self) -> String {
        let mut registry = Registry::with_prefix("salt_master");
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing into a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// Requests received on ret_port that no MWorker has taken yet: what
/// waits in the MWorkers' queues (those queued after the last one taken).
pub fn queued(board: &Board) -> u64 {
    board
        .counter(Counter::Received)
        .saturating_sub(board.counter(Counter::Taken))
}

/// A metric without labels: name, help, type, value.
#[derive(Debug)]
struct One<'a>(&'a str, &'a str, MetricType, f64);

fn counter(m: &mut MetricEncoder, v: f64) -> Result<(), std::fmt::Error> {
    m.encode_counter::<NoLabelSet, f64, f64>(&v, None::<&Exemplar<NoLabelSet, f64>>)
}

fn value(m: &mut MetricEncoder, t: MetricType, v: f64) -> Result<(), std::fmt::Error> {
    match t {
        MetricType::Counter => counter(m, v),
        _ => m.encode_gauge(&v),
    }
}

fn histogram(m: &mut MetricEncoder, h: &Hist) -> Result<(), std::fmt::Error> {
    m.encode_histogram::<NoLabelSet>(h.0, h.1, &h.2, None)
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut m = enc.encode_descriptor("build", "The running salt-master (Brine)", None, MetricType::Info)?;
            m.encode_info(&[("version", self.version.as_str())])?;
        }
        let per_proc: [PerProc; 5] = [
            (
                "process_cpu_seconds",
                "CPU time (user and system) of each process of the tree, by its title",
                MetricType::Counter,
                |p| p.cpu_seconds.unwrap_or(0.0),
            ),
            (
                "process_resident_memory_bytes",
                "Resident set size of each process (shared pages counted in each)",
                MetricType::Gauge,
                |p| p.memory.map_or(0.0, |m| m.0 as f64),
            ),
            (
                "process_pss_bytes",
                "Proportional set size of each process (shared pages divided among their users: the sum is the tree's use)",
                MetricType::Gauge,
                |p| p.memory.map_or(0.0, |m| m.1 as f64),
            ),
            (
                "process_up",
                "1 while the process runs and reported ready, 0 while it is down or being replaced",
                MetricType::Gauge,
                |p| if p.state == State::Running { 1.0 } else { 0.0 },
            ),
            (
                "process_restarts",
                "Times the process was started again after it died",
                MetricType::Counter,
                |p| p.restarts.unwrap_or(0) as f64,
            ),
        ];
        for (name, help, t, f) in per_proc {
            let mut d = enc.encode_descriptor(name, help, None, t)?;
            for p in &self.procs {
                let labels = [("role", p.role.as_str())];
                let mut m = d.encode_family(&labels)?;
                value(&mut m, t, f(p))?;
            }
        }
        {
            let mut d = enc.encode_descriptor(
                "requests",
                "Requests on ret_port by command and result (ok; error: refused as malformed, undecryptable, unauthorised or failing; refused: a command not exposed; dropped: a sign-in that waited past sign_in_max_wait)",
                None,
                MetricType::Counter,
            )?;
            for (cmd, result, n) in &self.requests {
                let labels = [("cmd", cmd.as_str()), ("result", result)];
                counter(&mut d.encode_family(&labels)?, *n as f64)?;
            }
        }
        {
            let mut d = enc.encode_descriptor(
                "request_duration_seconds",
                "From a request's arrival on ret_port to its answer (for a runner or a pillar handed off, to the hand-off), by command",
                None,
                MetricType::Histogram,
            )?;
            for (cmd, h) in &self.latency {
                let labels = [("cmd", cmd.as_str())];
                histogram(&mut d.encode_family(&labels)?, h)?;
            }
        }
        {
            let mut d = enc.encode_descriptor(
                "auth",
                "Sign-ins (_auth) by how they were answered",
                None,
                MetricType::Counter,
            )?;
            for (result, n) in &self.auth {
                let labels = [("result", *result)];
                counter(&mut d.encode_family(&labels)?, *n as f64)?;
            }
        }
        let c = |k| self.counter(k) as f64;
        let ones = [
            One(
                "start_time_seconds",
                "When the ProcessManager started (seconds since the epoch)",
                MetricType::Gauge,
                self.started_ms as f64 / 1000.0,
            ),
            One(
                "publishes",
                "Publications sent to the minions on publish_port",
                MetricType::Counter,
                c(Counter::Publishes),
            ),
            One(
                "returns",
                "Job returns received from minions (_return, _syndic_return)",
                MetricType::Counter,
                c(Counter::Returns),
            ),
            One(
                "connected_minions",
                "TCP connections established to publish_port (minions subscribed to jobs)",
                MetricType::Gauge,
                self.connected as f64,
            ),
            One(
                "request_queue_depth",
                "Requests received on ret_port waiting for an MWorker",
                MetricType::Gauge,
                self.queued as f64,
            ),
            One(
                "events",
                "Events fanned out on the event bus",
                MetricType::Counter,
                c(Counter::Events),
            ),
            One(
                "event_subscribers",
                "Programs subscribed to the event bus",
                MetricType::Gauge,
                c(Counter::EventSubscribers),
            ),
            One(
                "event_subscribers_dropped",
                "Event bus subscribers disconnected for falling too far behind (they lose events)",
                MetricType::Counter,
                c(Counter::EventSubscribersDropped),
            ),
            One(
                "event_writers_dropped",
                "Event bus writers disconnected for sending what is not an event",
                MetricType::Counter,
                c(Counter::EventWritersDropped),
            ),
            One(
                "reactor_queue_depth",
                "Reactions waiting for a Reactor worker thread",
                MetricType::Gauge,
                c(Counter::ReactorQueue),
            ),
            One(
                "reactions",
                "Reactions the Reactor ran",
                MetricType::Counter,
                c(Counter::Reactions),
            ),
            One(
                "reactions_dropped",
                "Reactions dropped because the Reactor's queue was full (reactor_worker_hwm)",
                MetricType::Counter,
                c(Counter::ReactorDropped),
            ),
            One(
                "job_cache_writes",
                "Writes to the job cache: job loads and returns on local disk; with pgjsonb, batches written to PostgreSQL (event_return's batches too)",
                MetricType::Counter,
                c(Counter::JobCacheWrites),
            ),
            One(
                "job_cache_write_errors",
                "Job cache writes that failed",
                MetricType::Counter,
                c(Counter::JobCacheErrors),
            ),
        ];
        for One(name, help, t, v) in ones {
            let mut m = enc.encode_descriptor(name, help, None, t)?;
            value(&mut m, t, v)?;
        }
        {
            let mut d = enc.encode_descriptor(
                "job_cache_write_duration_seconds",
                "Time of each job cache write, by backend (master_job_cache)",
                None,
                MetricType::Histogram,
            )?;
            let labels = [("backend", self.cache_backend.as_str())];
            histogram(&mut d.encode_family(&labels)?, &self.cache_latency)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::{command_index, AuthResult};
    use std::time::Duration;

    #[test]
    fn a_scrape_shows_what_the_board_holds() {
        let dir = tempfile::tempdir().unwrap();
        let b = Board::create(&dir.path().join("b"), 2).unwrap();
        b.name_role(0, "EventPublisher", None);
        b.set_role(0, Some(std::process::id()), 1, 3, true);
        b.auth(AuthResult::Accepted);
        b.request(command_index("_return"), Outcome::Ok, Duration::from_millis(2));
        b.add_counter(Counter::Returns, 1);
        b.add_counter(Counter::Received, 3);
        b.add_counter(Counter::Answered, 1);
        b.raise(Counter::Taken, 2);
        b.raise(Counter::Taken, 1);
        b.worker_busy(0, Some(5));
        b.request(command_index("_return"), Outcome::Ok, Duration::from_secs(3));
        let text = Snapshot::take(&b, 7, "local_cache").render();
        for want in [
            "salt_master_build_info{version=\"",
            "salt_master_process_restarts_total{role=\"EventPublisher\"} 3",
            "salt_master_process_up{role=\"EventPublisher\"} 1",
            "salt_master_auth_total{result=\"accepted\"} 1",
            "salt_master_auth_total{result=\"pending\"} 0",
            "salt_master_requests_total{cmd=\"_return\",result=\"ok\"} 2",
            "salt_master_request_duration_seconds_bucket{le=\"0.0025\",cmd=\"_return\"} 1",
            "salt_master_request_duration_seconds_bucket{le=\"2.5\",cmd=\"_return\"} 1",
            "salt_master_request_duration_seconds_bucket{le=\"5.0\",cmd=\"_return\"} 2",
            "salt_master_request_duration_seconds_bucket{le=\"+Inf\",cmd=\"_return\"} 2",
            "salt_master_request_duration_seconds_count{cmd=\"_return\"} 2",
            "salt_master_returns_total 1",
            "salt_master_connected_minions 7",
            "salt_master_request_queue_depth 1",
            "salt_master_job_cache_write_duration_seconds_count{backend=\"local_cache\"} 0",
            "# TYPE salt_master_requests counter",
            "# EOF",
        ] {
            assert!(text.contains(want), "no {want:?} in:\n{text}");
        }
        let cpu = text
            .lines()
            .find(|l| l.starts_with("salt_master_process_cpu_seconds_total{role=\"ProcessManager\"}"))
            .expect("the ProcessManager's CPU");
        assert!(cpu.split(' ').nth(1).unwrap().parse::<f64>().unwrap() >= 0.0);
    }
}
