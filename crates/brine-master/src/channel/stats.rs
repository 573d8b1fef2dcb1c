//! `master_stats: True`: what Salt's MWorker counts per command
//! (`MWorker._post_stats`). Each command a worker runs (a clear `publish`,
//! `runner`, `wheel`, `ping`, … or an AES command of a minion; not
//! `_auth`, which the channel answers before the MWorker's handlers, and
//! not a refused command) adds one run and its duration to the command's
//! running mean. When a command ends more than `master_stats_event_iter`
//! seconds after the worker started counting, the worker fires
//! `salt/stats/<worker>` (`MWorker-0`, … : Salt's
//! `tagify(self.name, "stats")`) with `{time: seconds counted, worker:
//! <name>, stats: {<cmd>: {mean: seconds, runs: n}}}`, and counts anew.
//! There is no timer: a worker without requests fires nothing.

use std::time::{Duration, Instant};

use brine_proto::Value;

/// One worker's counts since its last stats event.
#[derive(Debug, Clone)]
pub struct MasterStats {
    worker: String,
    every: Duration,
    since: Instant,
    /// Per command in first-run order (Salt's dict): mean seconds, runs.
    stats: Vec<(String, f64, u64)>,
}

impl MasterStats {
    /// Counting for `worker` from `now`, an event every `every_secs`
    /// (`master_stats_event_iter`) at most.
    pub fn new(worker: &str, every_secs: u64, now: Instant) -> MasterStats {
        MasterStats {
            worker: worker.to_string(),
            every: Duration::from_secs(every_secs),
            since: now,
            stats: Vec::new(),
        }
    }

    /// `cmd` ran for `took` and ended at `end`: the event to fire
    /// (`tag`, data), if it is time for one.
    pub fn record(&mut self, cmd: &str, took: Duration, end: Instant) -> Option<(String, Value)> {
        let i = match self.stats.iter().position(|(c, ..)| c == cmd) {
            Some(i) => i,
            None => {
                self.stats.push((cmd.to_string(), 0.0, 0));
                self.stats.len() - 1
            }
        };
        let (_, mean, runs) = &mut self.stats[i];
        *runs += 1;
        *mean = (*mean * (*runs - 1) as f64 + took.as_secs_f64()) / *runs as f64;
        let counted = end.saturating_duration_since(self.since);
        if counted <= self.every {
            return None;
        }
        let stats = self.stats.drain(..).map(|(cmd, mean, runs)| {
            let one = Value::map([("mean", Value::F64(mean)), ("runs", Value::Int(runs as i64))]);
            (Value::from(cmd), one)
        });
        let data = Value::map([
            ("time", Value::F64(counted.as_secs_f64())),
            ("worker", Value::from(self.worker.as_str())),
            ("stats", Value::Map(stats.collect())),
        ]);
        self.since = end;
        Some((format!("salt/stats/{}", self.worker), data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_and_runs_per_command_then_an_event_and_a_new_count() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = MasterStats::new("MWorker-1", 60, t0);
        assert_eq!(s.record("_return", ms(10), t0 + ms(100)), None);
        assert_eq!(s.record("_return", ms(30), t0 + ms(200)), None);
        assert_eq!(s.record("publish", ms(5), t0 + ms(300)), None);
        // Exactly 60 s counted is not more than 60 s: no event yet.
        assert_eq!(s.record("_return", ms(20), t0 + Duration::from_secs(60)), None);
        let (tag, data) = s.record("_pillar", ms(40), t0 + ms(60_500)).expect("an event");
        assert_eq!(tag, "salt/stats/MWorker-1");
        assert_eq!(data.get("time"), Some(&Value::F64(60.5)));
        assert_eq!(data.get("worker"), Some(&Value::from("MWorker-1")));
        let stats = data.get("stats").unwrap();
        let Value::Map(pairs) = stats else { panic!("{stats:?}") };
        let cmds: Vec<_> = pairs.iter().map(|(k, _)| k.as_str().unwrap()).collect();
        assert_eq!(cmds, ["_return", "publish", "_pillar"], "first-run order");
        let ret = stats.get("_return").unwrap();
        assert_eq!(ret.get("runs"), Some(&Value::Int(3)));
        let Some(Value::F64(mean)) = ret.get("mean") else {
            panic!()
        };
        assert!((mean - 0.020).abs() < 1e-9, "{mean}");
        assert_eq!(stats.get("_pillar").unwrap().get("runs"), Some(&Value::Int(1)));
        // Counting starts again from the event.
        assert_eq!(s.record("publish", ms(1), t0 + ms(61_000)), None);
        let (_, data) = s.record("publish", ms(3), t0 + ms(121_000)).unwrap();
        let publish = data.get("stats").unwrap().get("publish").unwrap();
        assert_eq!(publish.get("runs"), Some(&Value::Int(2)));
        assert_eq!(data.get("stats").unwrap().get("_return"), None);
        assert_eq!(data.get("time"), Some(&Value::F64(60.5)));
    }
}
