//! `salt --summary`: Salt's `_print_returns_summary` after the returns.

use brine_proto::Value;

/// `SaltCMD._get_retcode` of a full return (`{"ret", "retcode", …}`) or
/// a bare one: a non-zero `retcode` (the largest of a dict of them),
/// `False` as 1.
pub fn retcode(ret: &Value) -> i64 {
    if let Some(rc) = ret.get("retcode") {
        if !brine_py::eq(rc, &Value::Int(0)) {
            return match rc {
                Value::Map(pairs) => pairs.iter().filter_map(|(_, v)| brine_py::int(v)).max().unwrap_or(0) as i64,
                // A non-numeric retcode is still not success.
                other => brine_py::int(other).map_or(1, |n| n as i64),
            };
        }
        return 0;
    }
    match ret {
        Value::Bool(false) => 1,
        _ => 0,
    }
}

/// The summary block `salt --summary` prints after the returns, for the
/// full returns gathered (`(minion id, {"ret": …, "retcode": …})`, the
/// ones that did not return included); `verbose` (`-v`) names the
/// minions that did not connect, respond, or succeed.
pub fn returns_summary(returns: &[(String, Value)], verbose: bool) -> String {
    let mut returned = 0;
    let mut not_returned = 0;
    let mut not_response = Vec::new();
    let mut not_connected = Vec::new();
    let mut failed = Vec::new();
    for (id, full) in returns {
        let ret = match full {
            Value::Map(_) => full.get("ret").unwrap_or(full),
            other => other,
        };
        match ret.as_str() {
            Some(s) if s.starts_with("Minion did not return") => {
                if s.contains("Not connected") {
                    not_connected.push(id.as_str());
                } else if s.contains("No response") {
                    not_response.push(id.as_str());
                }
                not_returned += 1;
            }
            _ => {
                returned += 1;
                if retcode(full) != 0 {
                    failed.push(id.as_str());
                }
            }
        }
    }
    let rule = "-------------------------------------------";
    let mut out = format!(
        "\n\n{rule}\nSummary\n{rule}\n# of minions targeted: {}\n# of minions returned: {returned}\n\
         # of minions that did not return: {not_returned}\n# of minions with errors: {}\n",
        returned + not_returned,
        failed.len()
    );
    if verbose {
        for (label, ids) in [
            ("Minions not connected", &not_connected),
            ("Minions not responding", &not_response),
            ("Minions with failures", &failed),
        ] {
            if !ids.is_empty() {
                out += &format!("{label}: {}\n", ids.join(" "));
            }
        }
    }
    out += rule;
    out.push('\n');
    out
}
