//! Salt's `highstate` outputter (`salt/output/highstate.py`): each state
//! of a minion's state run (full, terse, mixed, changes, their `_id`
//! forms, filter), then the Summary block.
//!
//! Where Salt's Python raises (a `KeyError`, `AttributeError`,
//! `TypeError` its caller catches, or an `IndexError` it does not) this
//! answers [`Fallback`] and the caller prints the data `nested`, which is
//! what `salt.output.try_printout` does for the caught ones.

use brine_proto::Value;

use crate::color::{get_colors, strip_esc, Colors};
use crate::{nested, pprint, py, Opts};

/// Salt's outputter raised: show the data with `nested` instead.
#[derive(Debug)]
pub struct Fallback;

type R<T> = Result<T, Fallback>;

/// What `output()` returns: text, or the data itself when it was an int
/// or a str (`output` is recursive and hands those back untouched).
pub enum Printed {
    Text(String),
    Int,
    Str(String),
}

fn is_dict(v: &Value) -> bool {
    matches!(v, Value::Map(_))
}

fn str_of(v: &Value) -> String {
    brine_py::to_str(v)
}

/// `highstate.output(data, indent_level=…)`.
pub fn output(data: &Value, opts: &Opts, indent_level: usize) -> R<Printed> {
    let mut data = data;
    if is_dict(data) {
        if let Some(inner) = data.get("return") {
            data = inner;
        }
    }
    if is_dict(data) {
        if let Some(inner) = data.get("data") {
            data = inner;
        }
    }
    // A lookup_jid envelope: {jid: {"jid", "fun", "return": {"data": …}}}.
    if let Value::Map(pairs) = data {
        if pairs.len() == 1 {
            let only = &pairs[0].1;
            if is_dict(only) && only.get("jid").is_some() && only.get("fun").is_some() {
                match only.get("return") {
                    None => {}
                    Some(r @ Value::Map(_)) => {
                        if let Some(d) = r.get("data") {
                            data = d;
                        }
                    }
                    Some(_) => return Err(Fallback),
                }
            }
        }
    }
    match data {
        Value::Bool(_) | Value::Int(_) | Value::UInt(_) => return Ok(Printed::Int),
        Value::Str(s) => return Ok(Printed::Str(s.clone())),
        Value::Nil => return Ok(Printed::Text("None".into())),
        Value::Map(_) => {}
        _ => return Err(Fallback),
    }
    let Value::Map(pairs) = data else { return Err(Fallback) };
    // The orchestrate runner's `retcode` beside its one `<id>_master`.
    let mut local_masters = 0;
    for (k, _) in pairs {
        match k {
            Value::Str(s) if s.ends_with("_master") => local_masters += 1,
            Value::Str(_) => {}
            _ => return Err(Fallback),
        }
    }
    let drop_retcode = data.get("retcode").is_some() && local_masters == 1;
    let kept: Vec<(Value, Value)> = pairs
        .iter()
        .filter(|(host, _)| !(drop_retcode && host.as_str() == Some("retcode")))
        .cloned()
        .collect();
    let kept = if opts.state_compress_ids {
        compress_ids(&kept).unwrap_or(kept)
    } else {
        kept
    };
    let mut hosts = Vec::new();
    for (host, hostdata) in &kept {
        hosts.push(format_host(host, hostdata, opts, indent_level)?.0);
    }
    Ok(Printed::Text(hosts.join("\n")))
}

/// `_compress_ids`: per host, the states of one function, ID, SLS and
/// result become one entry `<fun>_|-<id> (<n>)_|-state_compressed_<sls>_<id>_<result>_|-…`
/// with the lowest `__run_num__`, the durations summed, the earliest
/// start and the changes keyed by name. `None` where Salt's try fails
/// (it then shows the data uncompressed).
fn compress_ids(hosts: &[(Value, Value)]) -> Option<Vec<(Value, Value)>> {
    let key = |tname: &str, info: &Value| -> Option<String> {
        let first = tname.split("_|-").next().unwrap_or("");
        Some(format!(
            "{first}_{}_{}_{}",
            str_of(info.get("__id__")?),
            str_of(info.get("__sls__")?),
            str_of(info.get("result")?)
        ))
    };
    let mut out = Vec::new();
    for (host, hostdata) in hosts {
        let Value::Map(states) = hostdata else { return None };
        let mut counts: Vec<(String, usize)> = Vec::new();
        for (tname, info) in states {
            let k = key(tname.as_str()?, info)?;
            match counts.iter_mut().find(|(x, _)| *x == k) {
                Some(slot) => slot.1 += 1,
                None => counts.push((k, 1)),
            }
        }
        let mut compressed: Vec<(Value, Value)> = Vec::new();
        for (tname, info) in states {
            let tname = tname.as_str()?;
            let k = key(tname, info)?;
            let count = counts.iter().find(|(x, _)| *x == k).map_or(1, |c| c.1);
            if count == 1 {
                compressed.push((Value::from(tname), info.clone()));
                continue;
            }
            let mut comps: Vec<String> = tname.split("_|-").map(str::to_string).collect();
            if comps.len() < 3 {
                return None;
            }
            let (id, sls, result) = (
                str_of(info.get("__id__")?),
                str_of(info.get("__sls__")?),
                str_of(info.get("result")?),
            );
            comps[2] = format!("state_compressed_{sls}_{id}_{result}");
            comps[1] = format!("{id} ({count})");
            let name = comps.join("_|-");
            let Some(slot) = compressed.iter_mut().find(|(t, _)| t.as_str() == Some(name.as_str())) else {
                compressed.push((Value::from(name), info.clone()));
                continue;
            };
            let entry = &mut slot.1;
            let num = |v: Option<&Value>| -> Option<f64> {
                match v? {
                    Value::Int(i) => Some(*i as f64),
                    Value::UInt(u) => Some(*u as f64),
                    Value::F64(f) => Some(*f),
                    Value::F32(f) => Some(f64::from(*f)),
                    Value::Bool(b) => Some(f64::from(u8::from(*b))),
                    _ => None,
                }
            };
            let run = if num(info.get("__run_num__"))? < num(entry.get("__run_num__"))? {
                info.get("__run_num__")?.clone()
            } else {
                entry.get("__run_num__")?.clone()
            };
            entry.set("__run_num__", run);
            let total = num(info.get("duration"))? + num(entry.get("duration"))?;
            entry.set("duration", Value::F64(format!("{total:.3}").parse().ok()?));
            let (a, b) = (info.get("start_time")?.as_str()?, entry.get("start_time")?.as_str()?);
            entry.set("start_time", Value::from(a.min(b)));
            let theirs = info.get("changes").filter(|c| brine_py::truthy(*c)).cloned();
            let ours = entry.get("changes").filter(|c| brine_py::truthy(*c)).cloned();
            match (ours, theirs) {
                (Some(ours), Some(theirs)) => {
                    let mut by_name = match ours.get("compressed changes") {
                        Some(Value::Map(m)) if !m.is_empty() => m.clone(),
                        _ => vec![(entry.get("name")?.clone(), ours.clone())],
                    };
                    let n = info.get("name")?.clone();
                    match by_name.iter_mut().find(|(k, _)| brine_py::eq(k, &n)) {
                        Some(s) => s.1 = theirs,
                        None => by_name.push((n, theirs)),
                    }
                    entry.set("changes", Value::map([("compressed changes", Value::Map(by_name))]));
                }
                (None, Some(theirs)) => {
                    let by_name = vec![(info.get("name")?.clone(), theirs)];
                    entry.set("changes", Value::map([("compressed changes", Value::Map(by_name))]));
                }
                _ => {}
            }
        }
        out.push((host.clone(), Value::Map(compressed)));
    }
    Some(out)
}

/// `float(x)` of a duration, `None` where Python logs and skips it.
fn duration(v: &Value) -> R<Option<f64>> {
    let parse = |s: &str| -> Option<f64> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
            "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
            "nan" | "+nan" | "-nan" => return Some(f64::NAN),
            _ => {}
        }
        if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || "+-.eE_".contains(c)) {
            return None;
        }
        t.replace('_', "").parse().ok()
    };
    Ok(match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Int(i) => Some(*i as f64),
        Value::UInt(u) => Some(*u as f64),
        Value::F32(f) => Some(f64::from(*f)),
        Value::F64(f) => Some(*f),
        Value::Str(s) => parse(s).or_else(|| parse(s.split(" ms").next().unwrap_or(""))),
        _ => return Err(Fallback),
    })
}

/// Result counts keyed as Python's dict keys them (`True == 1`).
#[derive(Default)]
struct Counts(Vec<(Value, i64)>);

impl Counts {
    fn add(&mut self, k: &Value, n: i64) {
        match self.0.iter_mut().find(|(x, _)| brine_py::eq(x, k)) {
            Some(slot) => slot.1 += n,
            None => self.0.push((k.clone(), n)),
        }
    }
    fn get(&self, k: &Value) -> i64 {
        self.0.iter().find(|(x, _)| brine_py::eq(x, k)).map_or(0, |(_, n)| *n)
    }
    fn has(&self, k: &Value) -> bool {
        self.0.iter().any(|(x, _)| brine_py::eq(x, k))
    }
    fn sum(&self) -> i64 {
        self.0.iter().map(|(_, n)| n).sum()
    }
}

/// Python's `round(x, 2)`.
fn round2(x: f64) -> f64 {
    format!("{x:.2}").parse().unwrap_or(x)
}

/// `_format_host(host, data)`: the minion's text and whether anything
/// changed.
pub fn format_host(host: &Value, data: &Value, opts: &Opts, indent_level: usize) -> R<(String, bool)> {
    let c = get_colors(opts.color);
    let mut rcounts = Counts::default();
    let mut rdurations: Vec<f64> = Vec::new();
    let mut pdurations: Vec<f64> = Vec::new();
    let mut hcolor = c.green;
    let mut hstrs: Vec<String> = Vec::new();
    let mut nchanges: i64 = 0;

    match data {
        Value::Bool(_) | Value::Int(_) | Value::UInt(_) => {
            nchanges = 1;
            hstrs.push(format!("{hcolor}    {}{}", str_of(data), c.endc));
            hcolor = c.cyan;
        }
        // Data of this form comes from saltmod.function: always a change.
        Value::Str(s) => {
            nchanges = 1;
            for line in py::splitlines(s, false) {
                hstrs.push(format!("{hcolor}    {line}{}", c.endc));
            }
            hcolor = c.cyan;
        }
        Value::Array(errors) => {
            hcolor = c.light_red;
            hstrs.push(format!("    {hcolor}Data failed to compile:{}", c.endc));
            for err in errors {
                let err = match err {
                    Value::Str(s) if opts.strip_colors => strip_esc(s),
                    other => str_of(other),
                };
                hstrs.push(format!("{hcolor}----------\n    {err}{}", c.endc));
            }
        }
        Value::Map(pairs) => {
            let mut states: Vec<(&Value, &Value)> = Vec::new();
            for (tname, info) in pairs {
                if let Value::Map(fields) = info {
                    if tname.as_str() != Some("changes") && !fields.is_empty() && info.get("__run_num__").is_none() {
                        hstrs.insert(0, pprint::pformat(info, 1));
                        hstrs.insert(
                            0,
                            "The State execution failed to record the order in which all states were executed. \
                             The state return missing data is:"
                                .into(),
                        );
                    }
                    if info.get("result").is_some() {
                        states.push((tname, info));
                    }
                }
            }
            let mut keyed = Vec::with_capacity(states.len());
            for (tname, info) in states {
                let n = match info.get("__run_num__") {
                    None => 0.0,
                    Some(v) => match v {
                        Value::Bool(b) => f64::from(u8::from(*b)),
                        Value::Int(i) => *i as f64,
                        Value::UInt(u) => *u as f64,
                        Value::F64(f) => *f,
                        Value::F32(f) => f64::from(*f),
                        _ => return Err(Fallback),
                    },
                };
                keyed.push((n, tname, info));
            }
            keyed.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
            for (_, tname, ret) in keyed {
                state(
                    tname,
                    ret,
                    opts,
                    &c,
                    indent_level,
                    &mut hcolor,
                    &mut hstrs,
                    &mut rcounts,
                    &mut nchanges,
                    &mut rdurations,
                    &mut pdurations,
                )?;
            }
            summary(host, opts, &c, &rcounts, &rdurations, &pdurations, nchanges, &mut hstrs);
        }
        _ => {}
    }
    let host = str_of(host);
    let host = if opts.strip_colors { strip_esc(&host) } else { host };
    hstrs.insert(0, format!("{hcolor}{host}:{}", c.endc));
    Ok((hstrs.join("\n"), nchanges > 0))
}

/// One state of the run, added to `hstrs` and the counts.
#[allow(clippy::too_many_arguments)]
fn state(
    tname: &Value,
    ret: &Value,
    opts: &Opts,
    c: &Colors,
    indent_level: usize,
    hcolor: &mut &'static str,
    hstrs: &mut Vec<String>,
    rcounts: &mut Counts,
    nchanges: &mut i64,
    rdurations: &mut Vec<f64>,
    pdurations: &mut Vec<f64>,
) -> R<()> {
    let result = ret.get("result").ok_or(Fallback)?;
    // A compressed entry counts the states it stands for.
    let mut compressed_count = 1;
    if let Value::Str(t) = tname {
        if opts.state_compress_ids && t.contains("_|-state_compressed_") {
            let parts: Vec<&str> = t.split("_|-").collect();
            if parts.len() != 4 {
                return Err(Fallback);
            }
            if let Some(n) = parts[1]
                .strip_suffix(')')
                .and_then(|p| p.rsplit_once('('))
                .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|(_, n)| n.parse().ok())
            {
                compressed_count = n;
            }
        }
    }
    rcounts.add(result, compressed_count);
    let durations = if ret.get("__parallel__").is_some() {
        pdurations
    } else {
        rdurations
    };
    if let Some(d) = duration(ret.get("duration").unwrap_or(&Value::Int(0)))? {
        durations.push(d);
    }
    let changes = ret.get("changes").ok_or(Fallback)?;
    let name = ret.get("name").and_then(Value::as_str);
    let (schanged, ctext) = if matches!(name, Some("state.orch" | "state.orchestrate" | "state.sls")) {
        let nested = match output(changes, opts, indent_level + 1)? {
            Printed::Text(t) | Printed::Str(t) => t,
            Printed::Int => return Err(Fallback),
        };
        // re.sub("^", …, "\n" + nested, flags=re.MULTILINE)
        let pad = " ".repeat(14 * indent_level);
        let text = format!("\n{nested}")
            .split('\n')
            .map(|l| format!("{pad}{l}"))
            .collect::<Vec<_>>()
            .join("\n");
        *nchanges += 1;
        (true, text)
    } else {
        let (changed, text) = format_changes(changes, opts)?;
        if changed && compressed_count > 1 {
            // Compressed changes are keyed by name.
            let n = match changes.get("compressed changes") {
                Some(Value::Map(m)) => m.len(),
                _ => 0,
            };
            *nchanges += if n > 0 { n as i64 } else { 1 };
        } else if changed {
            *nchanges += 1;
        }
        (changed, text)
    };
    let ok = brine_py::truthy(result);
    if opts.state_output_diff && ok && !schanged {
        return Ok(());
    }
    if !opts.state_verbose && ok && !schanged {
        return Ok(());
    }
    let mut tcolor = c.green;
    if schanged {
        tcolor = c.cyan;
    }
    if matches!(result, Value::Bool(false)) {
        *hcolor = c.red;
        tcolor = c.red;
    }
    if result.is_nil() {
        *hcolor = c.light_yellow;
        tcolor = c.light_yellow;
    }
    let state_output = opts.state_output.to_lowercase();
    let Value::Str(tname) = tname else { return Err(Fallback) };
    let mut comps: Vec<String> = tname.split("_|-").map(str::to_string).collect();
    if state_output.ends_with("_id") {
        if comps.len() < 3 {
            return Err(Fallback);
        }
        comps[2] = comps[1].clone();
    }
    if comps.len() < 3 {
        return Err(Fallback);
    }
    if state_output.starts_with("filter") {
        // The command line's `exclude=`/`terse=` win over the options.
        let clikwargs = opts
            .arg
            .iter()
            .rev()
            .find(|a| is_dict(a) && a.get("__kwarg__").is_some());
        let list = |name: &str, cfg: &[String]| -> R<Vec<String>> {
            Ok(match clikwargs.and_then(|k| k.get(name)) {
                None => cfg.to_vec(),
                Some(Value::Str(s)) => s.split(',').map(str::to_string).collect(),
                Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                Some(Value::Map(m)) => m.iter().filter_map(|(k, _)| k.as_str().map(str::to_string)).collect(),
                Some(_) => return Err(Fallback),
            })
        };
        let res = str_of(result);
        if list("terse", &opts.state_output_terse)?.contains(&res) {
            hstrs.push(format_terse(tcolor, &comps, ret, c, opts)?);
            return Ok(());
        }
        if list("exclude", &opts.state_output_exclude)?.contains(&res) {
            return Ok(());
        }
    } else if state_output.starts_with("terse")
        || (state_output.starts_with("mixed") && !matches!(result, Value::Bool(false)))
        || (state_output.starts_with("changes") && ok && !schanged)
    {
        hstrs.push(format_terse(tcolor, &comps, ret, c, opts)?);
        return Ok(());
    }
    if comps.len() < 4 {
        return Err(Fallback);
    }
    let endc = c.endc;
    let mut lines = vec![
        format!("{tcolor}----------{endc}"),
        format!("    {tcolor}      ID: {}{endc}", comps[1]),
        format!("    {tcolor}Function: {}.{}{endc}", comps[0], comps[3]),
        format!("    {tcolor}  Result: {}{endc}", str_of(result)),
    ];
    if comps[1] != comps[2] {
        lines.insert(3, format!("    {tcolor}    Name: {}{endc}", comps[2]));
    }
    let comment = ret.get("comment").ok_or(Fallback)?;
    let mut comment = py::strip(&str_of(comment)).replace('\n', &format!("\n{}", " ".repeat(14)));
    match ret.get("data") {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                comment = format!("{comment} {}", str_of(item));
            }
        }
        Some(Value::Map(pairs)) => {
            for (k, v) in pairs {
                comment = format!("{comment}\n\t\t{}: {}", str_of(k), str_of(v));
            }
        }
        Some(other) => comment = format!("{comment} {}", str_of(other)),
    }
    lines.push(format!("    {tcolor} Comment: {comment}{endc}"));
    if opts.state_output_profile {
        if let Some(start) = ret.get("start_time") {
            let duration = match ret.get("duration") {
                None => String::new(),
                Some(Value::Str(s)) if s.is_empty() => String::new(),
                Some(d) => format!("{} ms", str_of(d)),
            };
            lines.push(format!("    {tcolor} Started: {}{endc}", str_of(start)));
            lines.push(format!("    {tcolor}Duration: {duration}{endc}"));
        }
    }
    hstrs.extend(lines);
    hstrs.push(format!("{tcolor}     Changes:   {ctext}{endc}"));
    if let Some(warnings) = ret.get("warnings") {
        rcounts.add(&Value::from("warnings"), 1);
        let joined = join_strs(warnings)?;
        hstrs.push(format!(
            "   {} Warnings: {}{endc}",
            c.light_red,
            fill(&joined, 80, 14).trim_start()
        ));
    }
    Ok(())
}

/// `"\n".join(v)`: a list of texts, else `TypeError`.
fn join_strs(v: &Value) -> R<String> {
    match v {
        Value::Array(items) => Ok(items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or(Fallback))
            .collect::<R<Vec<_>>>()?
            .join("\n")),
        Value::Str(s) => Ok(s.chars().map(String::from).collect::<Vec<_>>().join("\n")),
        _ => Err(Fallback),
    }
}

/// `_format_changes(changes)`.
fn format_changes(changes: &Value, opts: &Opts) -> R<(bool, String)> {
    if !brine_py::truthy(changes) {
        return Ok((false, String::new()));
    }
    if !is_dict(changes) {
        return Ok((true, format!("Invalid Changes data: {}", str_of(changes))));
    }
    match changes.get("ret") {
        Some(ret) if !ret.is_nil() && changes.get("out").and_then(Value::as_str) == Some("highstate") => {
            let Value::Map(hosts) = ret else { return Err(Fallback) };
            let mut ctext = String::new();
            let mut changed = false;
            for (host, hostdata) in hosts {
                let (s, ch) = format_host(host, hostdata, opts, 1)?;
                ctext.push('\n');
                ctext.push_str(
                    &py::splitlines(&s, false)
                        .iter()
                        .map(|l| format!("{}{l}", " ".repeat(14)))
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
                changed = changed || ch;
            }
            Ok((changed, ctext))
        }
        _ => {
            let text = nested::output(changes, get_colors(opts.color), opts.strip_colors, 14, 0);
            Ok((true, format!("\n{}", text.trim_end())))
        }
    }
}

/// `_format_terse`.
fn format_terse(tcolor: &str, comps: &[String], ret: &Value, c: &Colors, opts: &Opts) -> R<String> {
    let result = ret.get("result").ok_or(Fallback)?;
    let changes = ret.get("changes").ok_or(Fallback)?;
    let mut status = "Clean";
    if brine_py::truthy(changes) {
        status = "Changed";
    }
    if matches!(result, Value::Bool(false)) {
        status = "Failed";
    } else if result.is_nil() {
        status = "Differs";
    }
    let warnings = match ret.get("warnings") {
        Some(w) => Some(join_strs(w)?),
        None => None,
    };
    let profile = opts.state_output_profile && ret.get("start_time").is_some();
    let start = || str_of(ret.get("start_time").unwrap_or(&Value::Nil));
    let dur = || str_of(ret.get("duration").unwrap_or(&Value::Nil));
    let name = &comps[2];
    let fun = &comps[0];
    let last = comps.last().map_or("", String::as_str);
    let mut s = String::new();
    if opts.state_tabular {
        if let Some(w) = warnings {
            s += &format!("{}Warnings:\n{w}{}\n", c.light_red, c.endc);
        }
        s += tcolor;
        if profile {
            s += &format!("{} [{} ms] ", start(), py::rjust(&dur(), 7));
        }
        s += &format!(
            "{}.{} {}   Name: {name}{}",
            py::rjust(fun, 10),
            py::ljust(last, 10),
            py::ljust(status, 7),
            c.endc
        );
    } else {
        if let Some(w) = warnings {
            s += &format!("{}Warnings:\n{w}{}", c.light_red, c.endc);
        }
        s += &format!(" {tcolor} Name: {name} - Function: {fun}.{last} - Result: {status}");
        if profile {
            s += &format!(" - Started: {} - Duration: {} ms", start(), dur());
        }
        s += c.endc;
    }
    Ok(s)
}

/// The Summary block after a minion's states.
#[allow(clippy::too_many_arguments)]
fn summary(
    host: &Value,
    opts: &Opts,
    c: &Colors,
    rcounts: &Counts,
    rdurations: &[f64],
    pdurations: &[f64],
    nchanges: i64,
    hstrs: &mut Vec<String>,
) {
    let endc = c.endc;
    let count_max_len = rcounts.0.iter().map(|(_, n)| n.to_string().len()).max().unwrap_or(0);
    // The longest label, "Succeeded".
    let line_max_len = 9 + count_max_len + 2;
    let counts = |label: &str, count: &str| format!("{label}: {}", py::rjust(count, line_max_len - (label.len() + 2)));
    hstrs.push(format!(
        "{}\nSummary for {}\n{}{endc}",
        c.cyan,
        str_of(host),
        "-".repeat(line_max_len)
    ));
    let t = Value::Bool(true);
    let f = Value::Bool(false);
    let none = Value::Nil;
    let mut changestats = Vec::new();
    if rcounts.has(&none) && rcounts.get(&none) > 0 {
        changestats.push(format!("{}unchanged={}{endc}", c.light_yellow, rcounts.get(&none)));
    }
    if nchanges > 0 {
        changestats.push(format!("{}changed={nchanges}{endc}", c.green));
    }
    let changestats = if changestats.is_empty() {
        String::new()
    } else {
        format!(" ({})", changestats.join(", "))
    };
    let succeeded = rcounts.get(&t) + rcounts.get(&none);
    hstrs.push(format!(
        "{}{}{endc}{changestats}",
        c.green,
        counts("Succeeded", &succeeded.to_string())
    ));
    let num_failed = rcounts.get(&f);
    let fcolor = if num_failed > 0 { c.red } else { c.cyan };
    hstrs.push(format!("{fcolor}{}{endc}", counts("Failed", &num_failed.to_string())));
    let warnings = rcounts.get(&Value::from("warnings"));
    let total = rcounts.sum() - warnings;
    if opts.state_output_pct && total != 0 {
        let success = round2(succeeded as f64 / total as f64 * 100.0);
        hstrs.push(format!(
            "{}{}{endc}",
            c.green,
            counts("Success %", &brine_py::float_repr(success))
        ));
        let failure = round2(num_failed as f64 / total as f64 * 100.0);
        hstrs.push(format!(
            "{fcolor}{}{endc}",
            counts("Failure %", &brine_py::float_repr(failure))
        ));
    }
    if warnings > 0 {
        hstrs.push(format!(
            "{}{}{endc}",
            c.light_red,
            counts("Warnings", &warnings.to_string())
        ));
    }
    hstrs.push(format!(
        "{}{}\nTotal states run: {}{endc}",
        c.cyan,
        "-".repeat(line_max_len),
        py::rjust(&total.to_string(), line_max_len - 7)
    ));
    if opts.state_output_profile {
        let mut sum: f64 = 0.0;
        for d in rdurations {
            sum += d;
        }
        if let Some(max) = pdurations.iter().cloned().reduce(f64::max) {
            sum += max;
        }
        let (sum, unit) = if sum > 999.0 { (sum / 1000.0, "s") } else { (sum, "ms") };
        hstrs.push(format!(
            "{}Total run time: {} {unit}{endc}",
            c.cyan,
            py::rjust(&format!("{sum:.3}"), line_max_len - 5)
        ));
    }
}

/// `str.expandtabs(8)`: a tab moves to the next multiple of 8 columns,
/// counted from the last line break.
fn expandtabs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut col = 0;
    for c in s.chars() {
        match c {
            '\t' => {
                let n = 8 - col % 8;
                out.push_str(&" ".repeat(n));
                col += n;
            }
            '\n' | '\r' => {
                out.push(c);
                col = 0;
            }
            c => {
                out.push(c);
                col += 1;
            }
        }
    }
    out
}

/// `textwrap.TextWrapper(width, initial_indent=indent*" ",
/// subsequent_indent=indent*" ").fill(text)`: tabs expanded, whitespace
/// made spaces, words wrapped greedily, a word longer than a line broken
/// to fill the line it starts on (after a hyphen when one fits). Python
/// also splits hyphenated words into chunks of their own; this does not.
fn fill(text: &str, width: usize, indent: usize) -> String {
    let text: String = expandtabs(text)
        .chars()
        .map(|ch| if py::is_space(ch) { ' ' } else { ch })
        .collect();
    // Chunks: runs of spaces and runs of other characters, last first.
    let mut chunks: Vec<String> = Vec::new();
    for ch in text.chars() {
        match chunks.last_mut() {
            Some(last) if (last.starts_with(' ')) == (ch == ' ') => last.push(ch),
            _ => chunks.push(ch.to_string()),
        }
    }
    chunks.reverse();
    let pad = " ".repeat(indent);
    let room = width.saturating_sub(indent).max(1);
    let mut lines: Vec<String> = Vec::new();
    while !chunks.is_empty() {
        let mut cur: Vec<String> = Vec::new();
        let mut cur_len = 0;
        if !lines.is_empty() && chunks.last().is_some_and(|c| c.starts_with(' ')) {
            chunks.pop();
        }
        while let Some(chunk) = chunks.last() {
            let l = py::len(chunk);
            if cur_len + l > room {
                break;
            }
            cur_len += l;
            cur.push(chunks.pop().unwrap_or_default());
        }
        // `_handle_long_word`: the rest of this line gets the word's head.
        if chunks.last().is_some_and(|c| py::len(c) > room) {
            let chunk: Vec<char> = chunks.pop().unwrap_or_default().chars().collect();
            let space_left = room - cur_len;
            let mut end = space_left;
            if let Some(h) = chunk[..space_left.min(chunk.len())].iter().rposition(|c| *c == '-') {
                if h > 0 && chunk[..h].iter().any(|c| *c != '-') {
                    end = h + 1;
                }
            }
            cur.push(chunk[..end].iter().collect());
            chunks.push(chunk[end..].iter().collect());
        }
        if cur.last().is_some_and(|c| c.starts_with(' ')) {
            cur.pop();
        }
        if !cur.is_empty() {
            lines.push(format!("{pad}{}", cur.concat()));
        }
    }
    lines.join("\n")
}
