//! `jobs.*`: Salt's `jobs` runner over the job cache (and, for
//! `jobs.active`, the minions' `saltutil.running`).

use std::time::Duration;

use brine_cache::jobs::jid_to_time;
use brine_cache::{Jid, JobCache};
use brine_client::low::CallArgs;
use brine_client::{LocalClient, Publish};
use brine_config::MasterConfig;
use brine_loader::returners::job_cache;
use brine_proto::Value;
use brine_py::{fnmatch, split_input, text};

use crate::with_outputter;

pub(crate) fn call(cfg: &MasterConfig, name: &str, args: &CallArgs) -> Result<Value, String> {
    let cache = job_cache(cfg);
    let jid_arg = || {
        args.get(0, "jid")
            .and_then(text)
            .ok_or_else(|| "missing argument: jid".to_string())
    };
    let bool_arg = |i: usize, name: &str, default: bool| args.get(i, name).map_or(default, brine_py::truthy);
    match name {
        "list_jobs" => {
            let filter = Filter {
                metadata: args.get(2, "search_metadata").cloned(),
                function: args.get(3, "search_function").map(split_input),
                target: args.get(4, "search_target").map(split_input),
                start_time: args.get(5, "start_time").and_then(text),
                end_time: args.get(6, "end_time").and_then(text),
            };
            let jobs = list_jobs(cache.as_ref(), &filter)?;
            Ok(with_outputter(args.get(1, "outputter"), Value::Map(jobs)))
        }
        "list_job" => Ok(list_job(cache.as_ref(), &jid_arg()?)),
        "print_job" => Ok(print_job(cache.as_ref(), &jid_arg()?)),
        "lookup_jid" => {
            let jid = jid_arg()?;
            let returned = bool_arg(2, "returned", true);
            let missing = bool_arg(3, "missing", false);
            let data = list_job(cache.as_ref(), &jid);
            let mut ret = Vec::new();
            let mut outputter = None;
            if let Some(Value::Map(results)) = data.get("Result") {
                for (minion, r) in results {
                    if outputter.is_none() {
                        outputter = Some(r.get("out").cloned());
                    }
                    if returned {
                        ret.push((minion.clone(), r.get("return").cloned().unwrap_or(Value::Nil)));
                    }
                }
                if missing {
                    if let Some(Value::Array(targeted)) = data.get("Minions") {
                        for m in targeted {
                            if !results.iter().any(|(k, _)| k == m) {
                                ret.push((m.clone(), Value::from("Minion did not return")));
                            }
                        }
                    }
                }
            }
            Ok(with_outputter(outputter.flatten().as_ref(), Value::Map(ret)))
        }
        "exit_success" => {
            // True per minion whose return is truthy; targeted minions
            // without a return are False.
            let data = list_job(cache.as_ref(), &jid_arg()?);
            let empty = Value::Map(Vec::new());
            let results = data.get("Result").unwrap_or(&empty);
            let mut ret: Vec<(Value, Value)> = Vec::new();
            let mut put = |m: &Value, ok: bool| match ret.iter_mut().find(|(k, _)| k == m) {
                Some(slot) => slot.1 = Value::Bool(ok),
                None => ret.push((m.clone(), Value::Bool(ok))),
            };
            if let Some(Value::Array(minions)) = data.get("Minions") {
                for m in minions {
                    let ok = results
                        .get(&brine_py::to_str(m))
                        .and_then(|r| r.get("return"))
                        .is_some_and(brine_py::truthy);
                    put(m, ok);
                }
            }
            if let Value::Map(res) = results {
                for (m, r) in res {
                    if r.get("return").is_some_and(brine_py::truthy) {
                        put(m, true);
                    }
                }
            }
            Ok(Value::Map(ret))
        }
        "last_run" => {
            let metadata = args.get(2, "metadata").cloned();
            if metadata.as_ref().is_some_and(|m| !m.is_map()) {
                log::info!("The metadata parameter must be specified as a dictionary");
                return Ok(Value::Bool(false));
            }
            let filter = Filter {
                metadata,
                function: args.get(3, "function").map(split_input),
                target: args.get(4, "target").map(split_input),
                start_time: None,
                end_time: None,
            };
            let jobs = list_jobs(cache.as_ref(), &filter)?;
            match jobs.iter().filter_map(|(k, _)| k.as_str()).max() {
                Some(last) => Ok(print_job(cache.as_ref(), last)),
                None => Ok(Value::Bool(false)),
            }
        }
        "active" => active(cfg, cache.as_ref()),
        other => Err(crate::not_available(&format!("jobs.{other}"))),
    }
}

/// What `jobs.list_jobs` keeps.
struct Filter {
    metadata: Option<Value>,
    function: Option<Vec<String>>,
    target: Option<Vec<String>>,
    start_time: Option<String>,
    end_time: Option<String>,
}

/// The jobs of the job cache `filter` keeps, each as
/// `_format_jid_instance` shows it.
fn list_jobs(cache: &dyn JobCache, filter: &Filter) -> Result<Vec<(Value, Value)>, String> {
    let start = filter.start_time.as_deref().map(parse_time).transpose()?;
    let end = filter.end_time.as_deref().map(parse_time).transpose()?;
    let mut out = Vec::new();
    for (jid, job) in cache.get_jids() {
        let jid = jid.to_string();
        let inst = format_jid_instance(&jid, &job, false);
        if let Some(wanted) = &filter.metadata {
            // Salt: a job matches when any one key has the value asked.
            let Some(have) = inst.get("Metadata") else { continue };
            let Value::Map(pairs) = wanted else {
                log::info!("The search_metadata parameter must be specified as a dictionary.  Ignoring.");
                continue;
            };
            if !pairs
                .iter()
                .any(|(k, v)| k.as_str().and_then(|k| have.get(k)) == Some(v))
            {
                continue;
            }
        }
        if let Some(t) = &filter.target {
            let tv: Vec<String> = match inst.get("Target") {
                Some(Value::Array(a)) => a.iter().filter_map(text).collect(),
                Some(v) => text(v).into_iter().collect(),
                None => vec![],
            };
            if !tv.iter().any(|x| t.iter().any(|p| fnmatch(x, p))) {
                continue;
            }
        }
        if let Some(f) = &filter.function {
            let fv = inst.get("Function").and_then(Value::as_str).unwrap_or("");
            if !f.iter().any(|p| fnmatch(fv, p)) {
                continue;
            }
        }
        if start.is_some() || end.is_some() {
            let started = parse_time(&jid_to_time(&jid))?;
            if start.is_some_and(|s| started < s) || end.is_some_and(|e| started > e) {
                continue;
            }
        }
        out.push((Value::from(jid), inst));
    }
    Ok(out)
}

/// (year, month, day, hour, minute, second, microsecond)
type Stamp = (u32, u32, u32, u32, u32, u32, u32);

/// A time as `dateutil.parser.parse` reads the forms Salt's jobs use:
/// Salt's own `2026, Dec 06 15:28:16.038651`, ISO `2026-12-06
/// 15:28[:16[.038651]]` (or with a `T`), or a date alone; as
/// (year, month, day, hour, minute, second, microsecond).
fn parse_time(s: &str) -> Result<Stamp, String> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let bad = || format!("cannot read the time {s:?} (use e.g. '2026-12-06 15:28' or '2026, Dec 06 15:28:16')");
    let t = s.trim().replace([',', 'T'], " ");
    let words: Vec<&str> = t.split_whitespace().collect();
    let (date, clock) = match words.as_slice() {
        [y, m, d, rest @ ..] if m.len() >= 3 && m.chars().all(|c| c.is_ascii_alphabetic()) => {
            let month = MONTHS
                .iter()
                .position(|x| m[..3].eq_ignore_ascii_case(x))
                .ok_or_else(bad)? as u32
                + 1;
            (
                (y.parse().map_err(|_| bad())?, month, d.parse().map_err(|_| bad())?),
                rest.first().copied(),
            )
        }
        [d, rest @ ..] => {
            let parts: Vec<&str> = d.split(['-', '/']).collect();
            let [y, m, dd] = parts.as_slice() else {
                return Err(bad());
            };
            (
                (
                    y.parse().map_err(|_| bad())?,
                    m.parse().map_err(|_| bad())?,
                    dd.parse().map_err(|_| bad())?,
                ),
                rest.first().copied(),
            )
        }
        [] => return Err(bad()),
    };
    let (mut h, mut mi, mut sec, mut us) = (0, 0, 0, 0);
    if let Some(c) = clock {
        let (hms, frac) = c.split_once('.').unwrap_or((c, ""));
        let p: Vec<&str> = hms.split(':').collect();
        h = p.first().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
        mi = p.get(1).map_or(Ok(0), |x| x.parse().map_err(|_| bad()))?;
        sec = p.get(2).map_or(Ok(0), |x| x.parse().map_err(|_| bad()))?;
        if !frac.is_empty() {
            let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
            us = digits.parse().map_err(|_| bad())?;
        }
    }
    Ok((date.0, date.1, date.2, h, mi, sec, us))
}

fn print_job(cache: &dyn JobCache, jid: &str) -> Value {
    let mut job = list_job(cache, jid);
    job.remove("jid");
    Value::Map(vec![(Value::from(jid), job)])
}

/// Salt's `jobs.active`: `saltutil.running` on every minion, each running
/// job with the minions running it (and their pids) and those that have
/// returned already.
fn active(cfg: &MasterConfig, cache: &dyn JobCache) -> Result<Value, String> {
    let mut client = LocalClient::of_master(cfg).map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(cfg.get_u64("timeout").unwrap_or(5).max(1));
    let job = Publish::new("*", "saltutil.running").kwarg("delimiter", ":");
    let mut returns = match client.run(&job, timeout).map_err(|e| e.to_string())? {
        Some(r) => r,
        None => return Ok(Value::Map(Vec::new())),
    };
    // jid → (the job as _format_jid_instance shows it, Running, Returned)
    let mut jobs: Vec<(String, Value, Vec<Value>, Vec<Value>)> = Vec::new();
    while let Some(r) = returns.next_return().map_err(|e| e.to_string())? {
        let Value::Array(running) = r.ret() else { continue };
        for job in running {
            let Some(jid) = job.get("jid").and_then(text) else {
                continue;
            };
            let pid = job.get("pid").cloned().unwrap_or(Value::Nil);
            let who = Value::map([(r.minion.as_str(), pid)]);
            match jobs.iter_mut().find(|(j, ..)| *j == jid) {
                Some((_, _, running, _)) => running.push(who),
                None => {
                    let shown = format_jid_instance(&jid, job, false);
                    jobs.push((jid, shown, vec![who], Vec::new()));
                }
            }
        }
    }
    let mut ret = Vec::new();
    for (jid, mut shown, running, mut returned) in jobs {
        if let Some(Value::Map(got)) = Jid::parse(&jid).map(|j| cache.get_jid(&j)) {
            for (m, _) in got {
                if !returned.contains(&m) {
                    returned.push(m);
                }
            }
        }
        shown.set("Running", Value::Array(running));
        shown.set("Returned", Value::Array(returned));
        ret.push((Value::from(jid), shown));
    }
    Ok(Value::Map(ret))
}

/// Salt's `jobs._format_jid_instance` (`with_minions`) /
/// `utils.jid.format_jid_instance`.
fn format_jid_instance(jid: &str, job: &Value, with_minions: bool) -> Value {
    if !job.is_map() || matches!(job, Value::Map(p) if p.is_empty()) {
        return Value::map([
            ("Error", Value::from("Cannot contact returner or no job with this jid")),
            ("StartTime", Value::from(jid_to_time(jid))),
        ]);
    }
    let mut ret = Value::map([
        (
            "Function",
            job.get("fun").cloned().unwrap_or(Value::from("unknown-function")),
        ),
        ("Arguments", job.get("arg").cloned().unwrap_or(Value::Array(vec![]))),
        (
            "Target",
            job.get("tgt").cloned().unwrap_or(Value::from("unknown-target")),
        ),
        (
            "Target-type",
            job.get("tgt_type").cloned().unwrap_or(Value::from("list")),
        ),
        ("User", job.get("user").cloned().unwrap_or(Value::from("root"))),
    ]);
    if let Some(m) = job.get("metadata") {
        ret.set("Metadata", m.clone());
    } else if let Some(m) = job.get("kwargs").and_then(|k| k.get("metadata")) {
        ret.set("Metadata", m.clone());
    } else if let Some(Value::Array(a)) = job.get("arg") {
        if let Some(m) = a
            .iter()
            .find(|x| x.get("__kwarg__").and_then(Value::as_bool) == Some(true) && x.get("metadata").is_some())
        {
            ret.set("Metadata", m.get("metadata").cloned().unwrap_or(Value::Nil));
        }
    }
    if with_minions {
        if let Some(m) = job.get("Minions") {
            ret.set("Minions", m.clone());
        }
    }
    ret.set("StartTime", Value::from(jid_to_time(jid)));
    ret
}

/// `jobs.list_job`: the job's description and its returns.
fn list_job(cache: &dyn JobCache, jid: &str) -> Value {
    let jid_ok = Jid::parse(jid);
    let load = jid_ok.as_ref().map_or(Value::Map(Vec::new()), |j| cache.get_load(j));
    let mut ret = Value::map([("jid", Value::from(jid))]);
    if let Value::Map(pairs) = format_jid_instance(jid, &load, true) {
        for (k, v) in pairs {
            if let Some(k) = k.as_str() {
                ret.set(k, v);
            }
        }
    }
    ret.set("Result", jid_ok.map_or(Value::Map(Vec::new()), |j| cache.get_jid(&j)));
    ret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jid_to_time_is_salts() {
        assert_eq!(jid_to_time("20261125103000123456"), "2026, Nov 25 10:30:00.123456");
        assert_eq!(jid_to_time("bad"), "");
    }

    #[test]
    fn times_read_as_dateutil_reads_salts_forms() {
        assert_eq!(
            parse_time("2026, Dec 06 15:28:16.038651").unwrap(),
            (2026, 12, 6, 15, 28, 16, 38651)
        );
        assert_eq!(parse_time("2026-12-06 15:28").unwrap(), (2026, 12, 6, 15, 28, 0, 0));
        assert_eq!(
            parse_time("2026-12-06T15:28:01.5").unwrap(),
            (2026, 12, 6, 15, 28, 1, 500000)
        );
        assert_eq!(parse_time("2026/12/06").unwrap(), (2026, 12, 6, 0, 0, 0, 0));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("").is_err());
    }
}
