//! `manage.*`: Salt's `manage` runner. `up`, `down`, `status` and
//! `versions` publish to the minions through the master's own request
//! port as the master user (Salt's runner LocalClient); `present`,
//! `not_present`, `joined` and `allowed` read the connections to the
//! publish port (`CkMinions.connected_ids`).

use std::time::Duration;

use brine_client::low::CallArgs;
use brine_client::{LocalClient, Publish};
use brine_config::MasterConfig;
use brine_keys::{Keys, Match};
use brine_proto::Value;
use brine_py::text;

pub(crate) fn call(cfg: &MasterConfig, name: &str, args: &CallArgs) -> Result<Value, String> {
    let list = |v: &[String]| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
    match name {
        "status" | "up" | "down" => {
            // status(output, tgt, tgt_type, timeout, gather_job_timeout),
            // up(tgt, tgt_type, timeout, gather_job_timeout, show_ip),
            // down(removekeys, tgt, tgt_type, timeout, gather_job_timeout).
            let first = usize::from(name != "up");
            let tgt = args.get(first, "tgt").and_then(text).unwrap_or_else(|| "*".into());
            let tgt_type = args
                .get(first + 1, "tgt_type")
                .and_then(text)
                .unwrap_or_else(|| "glob".into());
            let timeout = args
                .get(first + 2, "timeout")
                .and_then(Value::as_i64)
                .filter(|t| *t > 0)
                .unwrap_or_else(|| cfg.get_i64("timeout").unwrap_or(5));
            let (up, down) = ping(cfg, &tgt, &tgt_type, timeout)?;
            Ok(match name {
                "up" => {
                    if args.get(4, "show_ip").is_some_and(brine_py::truthy) {
                        let ips = brine_targeting::connected::connected_with_ip(cfg);
                        Value::Map(
                            up.iter()
                                .map(|m| {
                                    let ip = ips.iter().find(|(id, _)| id == m).map(|(_, ip)| ip.as_str());
                                    (Value::from(m.as_str()), ip.map_or(Value::Nil, Value::from))
                                })
                                .collect(),
                        )
                    } else {
                        list(&up)
                    }
                }
                "down" => {
                    if args.get(0, "removekeys").is_some_and(brine_py::truthy) {
                        remove_keys(cfg, &down)?;
                    }
                    list(&down)
                }
                _ => Value::map([("up", list(&up)), ("down", list(&down))]),
            })
        }
        "present" | "joined" | "allowed" | "not_present" => {
            let subset: Option<Vec<String>> = match args.get(0, "subset") {
                Some(Value::Array(a)) => Some(a.iter().filter_map(text).collect()),
                Some(v) => text(v).map(|s| s.split(',').map(|x| x.trim().to_string()).collect()),
                None => None,
            };
            let show_ip = args.get(1, "show_ip").is_some_and(brine_py::truthy);
            let mut connected = brine_targeting::connected::connected_with_ip(cfg);
            connected.sort();
            if name == "not_present" {
                let listing = Keys::new(cfg).list_keys().map_err(|e| e.to_string())?;
                let accepted = listing.iter().find(|(status, _)| status == "minions");
                let down: Vec<String> = accepted
                    .map_or(&[][..], |(_, ids)| ids.as_slice())
                    .iter()
                    .filter(|m| !connected.iter().any(|(id, _)| id == *m))
                    .filter(|m| subset.as_ref().is_none_or(|s| s.contains(m)))
                    .cloned()
                    .collect();
                return Ok(list(&down));
            }
            if let Some(s) = &subset {
                connected.retain(|(id, _)| s.contains(id));
            }
            Ok(if show_ip {
                Value::Map(
                    connected
                        .into_iter()
                        .map(|(id, ip)| (Value::from(id), Value::from(ip)))
                        .collect(),
                )
            } else {
                list(&connected.into_iter().map(|(id, _)| id).collect::<Vec<_>>())
            })
        }
        "versions" => versions(cfg),
        other => Err(crate::not_available(&format!("manage.{other}"))),
    }
}

/// Salt's `manage._ping`: the targeted minions that answered
/// `test.ping` within `timeout` and those that did not, each sorted.
fn ping(cfg: &MasterConfig, tgt: &str, tgt_type: &str, timeout: i64) -> Result<(Vec<String>, Vec<String>), String> {
    let mut client = LocalClient::of_master(cfg).map_err(|e| e.to_string())?;
    let job = Publish::new(tgt, "test.ping")
        .tgt_type(tgt_type)
        .kwarg("delimiter", ":");
    let wait = Duration::from_secs(timeout.max(1) as u64);
    let mut returns = match client.run(&job, wait) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok((vec![], vec![])),
        Err(e) => return Err(e.to_string()),
    };
    while returns.next_return().map_err(|e| e.to_string())?.is_some() {}
    let mut up = returns.returned().to_vec();
    let mut down = returns.missing();
    up.sort();
    down.sort();
    Ok((up, down))
}

/// `manage.down removekeys=True`: the keys of the minions that did not
/// answer are deleted, as `salt-key -d` would (with its events).
fn remove_keys(cfg: &MasterConfig, ids: &[String]) -> Result<(), String> {
    if ids.is_empty() {
        return Ok(());
    }
    let keys = Keys::new(cfg);
    // The ids as they are (no glob), whatever their key's status.
    let all = keys.all_keys().map_err(|e| e.to_string())?;
    let m = Match::Dict(
        all.into_iter()
            .map(|(status, list)| (status, list.into_iter().filter(|id| ids.contains(id)).collect()))
            .collect(),
    );
    let mut events = brine_client::event_sender(cfg);
    keys.delete_key(&mut events, &m);
    Ok(())
}

/// Salt's `manage.versions`: `test.version` on every minion, grouped by
/// how each compares with the master's version.
fn versions(cfg: &MasterConfig) -> Result<Value, String> {
    let mut client = LocalClient::of_master(cfg).map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(cfg.get_u64("timeout").unwrap_or(5).max(1));
    let job = Publish::new("*", "test.version").kwarg("delimiter", ":");
    let mut groups: Vec<(&str, Vec<(String, Value)>)> = Vec::new();
    let mut add = |label: &'static str, id: String, v: Value| match groups.iter_mut().find(|(l, _)| *l == label) {
        Some((_, list)) => list.push((id, v)),
        None => groups.push((label, vec![(id, v)])),
    };
    if let Some(mut returns) = client.run(&job, timeout).map_err(|e| e.to_string())? {
        while let Some(r) = returns.next_return().map_err(|e| e.to_string())? {
            let failed = r.data.get("retcode").and_then(Value::as_i64).is_some_and(|c| c != 0);
            match r.ret().as_str().filter(|_| !failed) {
                Some(v) => {
                    let label = match compare_versions(v, brine_config::SALT_VERSION) {
                        std::cmp::Ordering::Less => "Minion requires update",
                        std::cmp::Ordering::Equal => "Up to date",
                        std::cmp::Ordering::Greater => "Minion newer than master",
                    };
                    add(label, r.minion.clone(), Value::from(v));
                }
                None => add("Minion offline", r.minion.clone(), Value::Bool(false)),
            }
        }
        for m in returns.missing() {
            add("Minion offline", m, Value::Bool(false));
        }
    }
    let mut ret = vec![(Value::from("Master"), Value::from(brine_config::SALT_VERSION))];
    for (label, mut list) in groups {
        list.sort_by(|a, b| a.0.cmp(&b.0));
        ret.push((
            Value::from(label),
            Value::Map(list.into_iter().map(|(k, v)| (Value::from(k), v)).collect()),
        ));
    }
    Ok(Value::Map(ret))
}

/// Salt versions compared by their numbers (`3006.30` < `3007.17`; a
/// release candidate `3007.0rc1` before `3007.0`).
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |v: &str| -> (Vec<u64>, u64) {
        let (nums, rc) = match v.split_once("rc") {
            Some((n, rc)) => (
                n,
                rc.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0),
            ),
            None => (v, u64::MAX),
        };
        let nums = nums
            .split(['.', '+', '-'])
            .map_while(|p| p.parse::<u64>().ok())
            .collect();
        (nums, rc)
    };
    key(a).cmp(&key(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn versions_compare_as_salts() {
        assert_eq!(compare_versions("3006.30", "3007.17"), Less);
        assert_eq!(compare_versions("3007.17", "3007.17"), Equal);
        assert_eq!(compare_versions("3008.1", "3007.17"), Greater);
        assert_eq!(compare_versions("3007.0rc1", "3007.0"), Less);
        assert_eq!(compare_versions("3007.9", "3007.17"), Less);
    }
}
