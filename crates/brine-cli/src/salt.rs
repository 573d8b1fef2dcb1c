//! `salt`: parse Salt's command line, publish the job with
//! `brine_client::LocalClient` (the user key the master wrote in cachedir,
//! the returns as they arrive on the event bus) and print them in Salt's
//! outputs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use brine_client::{ClientError, LocalClient, Publish, UserKey};
use brine_config::MasterConfig;
use brine_proto::Value;

pub const USAGE: &str = "Usage: salt [options] '<target>' <function> [arguments]

Options:
  -c CONFIG_DIR         configuration directory (default /etc/salt)
  -t TIMEOUT            seconds to wait for returns (default: master `timeout`, 5)
  -E, --pcre            target is a regular expression
  -L, --list            target is a comma-separated list
  -G, --grain           target is a grain (key:glob)
  -C, --compound        target is a compound expression
  --out=OUTPUTTER       nested (default), json, yaml, txt, raw
  --async               print the job id and do not wait
  -v, --verbose         print the job id and missing minions
  --static              print all returns at the end
  --progress            (accepted, no bar)
";

struct Opts {
    config_dir: PathBuf,
    timeout: Option<u64>,
    tgt_type: &'static str,
    out: String,
    is_async: bool,
    verbose: bool,
    static_out: bool,
    positional: Vec<String>,
}

fn parse(args: &[String]) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        config_dir: PathBuf::from("/etc/salt"),
        timeout: None,
        tgt_type: "glob",
        out: "nested".into(),
        is_async: false,
        verbose: false,
        static_out: false,
        positional: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        // Options may appear anywhere (optparse's interspersed arguments);
        // after `--`, everything is positional.
        if a == "--" {
            o.positional.extend(args[i..].iter().cloned());
            break;
        }
        let mut value = |name: &str, inline: Option<&str>| -> Result<String, String> {
            if let Some(v) = inline {
                return Ok(v.to_string());
            }
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| format!("{name} requires an argument"))?;
            i += 1;
            Ok(v)
        };
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if a.starts_with("--") => (f, Some(v)),
            _ => (a.as_str(), None),
        };
        match flag {
            "-h" | "--help" => return Ok(None),
            "-c" | "--config-dir" => o.config_dir = PathBuf::from(value(flag, inline)?),
            "-t" | "--timeout" => {
                o.timeout = Some(value(flag, inline)?.parse().map_err(|_| "timeout must be a number")?)
            }
            "-E" | "--pcre" => o.tgt_type = "pcre",
            "-L" | "--list" => o.tgt_type = "list",
            "-G" | "--grain" => o.tgt_type = "grain",
            "-C" | "--compound" => o.tgt_type = "compound",
            "--out" | "--output" => o.out = value(flag, inline)?,
            "--async" => o.is_async = true,
            "-v" | "--verbose" => o.verbose = true,
            "--static" => o.static_out = true,
            "--progress" | "--no-color" | "--force-color" => {}
            f if f.starts_with("-c") && f.len() > 2 => o.config_dir = PathBuf::from(&f[2..]),
            f if f.starts_with("-t") && f.len() > 2 => {
                o.timeout = Some(f[2..].parse().map_err(|_| "timeout must be a number")?)
            }
            f if f.starts_with('-') && f.len() > 1 => return Err(format!("no such option: {f}")),
            _ => o.positional.push(a.clone()),
        }
    }
    if o.positional.len() < 2 {
        return Err("a target and a function are required".into());
    }
    Ok(Some(o))
}

/// Salt's `nested` outputter (no colour).
pub fn nested(v: &Value, indent: usize, prefix: &str, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    match v {
        Value::Map(pairs) => {
            if indent > 0 {
                out.push(format!("{pad}----------"));
            }
            let mut sorted: Vec<&(Value, Value)> = pairs.iter().collect();
            sorted.sort_by_key(|(k, _)| scalar(k));
            for (k, val) in sorted {
                out.push(format!("{pad}{prefix}{}:", scalar(k)));
                nested(val, indent + 4, "", out);
            }
        }
        Value::Array(items) => {
            for item in items {
                if matches!(item, Value::Array(_) | Value::Map(_)) {
                    out.push(format!("{pad}|_"));
                    nested(item, indent + 2, if item.is_map() { "" } else { "- " }, out);
                } else {
                    nested(item, indent, "- ", out);
                }
            }
        }
        Value::Str(s) => {
            let mut first = true;
            for line in s.lines() {
                let p = if first {
                    prefix.to_string()
                } else {
                    " ".repeat(prefix.len())
                };
                out.push(format!("{pad}{p}{line}"));
                first = false;
            }
            if s.is_empty() {
                out.push(format!("{pad}{prefix}"));
            }
        }
        other => out.push(format!("{pad}{prefix}{}", scalar(other))),
    }
}

/// Python's `str()` of a scalar.
fn scalar(v: &Value) -> String {
    match v {
        Value::Nil => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::F64(f) => brine_py::float_repr(*f),
        Value::F32(f) => brine_py::float_repr(f64::from(*f)),
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => format!(
            "b'{}'",
            b.iter()
                .map(|c| if c.is_ascii_graphic() || *c == b' ' {
                    (*c as char).to_string()
                } else {
                    format!("\\x{c:02x}")
                })
                .collect::<String>()
        ),
        other => format!("{other:?}"),
    }
}

/// A Value as JSON (bytes as text, as Salt's json outputter shows them).
pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::UInt(u) => (*u).into(),
        Value::F64(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::F32(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        Value::Str(s) => s.clone().into(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned().into(),
        Value::Array(a) => a.iter().map(to_json).collect(),
        Value::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (scalar(k), to_json(v))).collect()),
        Value::Ext(_, _) => serde_json::Value::Null,
    }
}

fn print_ret(out: &str, id: &str, ret: &Value) {
    let one = Value::Map(vec![(Value::from(id), ret.clone())]);
    match out {
        "json" => {
            println!("{}", crate::json_pretty(&to_json(&one)));
        }
        "raw" => println!("{}", to_json(&one)),
        // Salt's yaml outputter: safe_dump, block style.
        "yaml" => match brine_py::yaml_safe_dump(&one) {
            Ok(text) => print!("{text}"),
            Err(e) => eprintln!("cannot write the return of {id} as YAML: {e}"),
        },
        "txt" => println!("{id}: {}", scalar(ret)),
        _ => {
            let mut lines = Vec::new();
            nested(&one, 0, "", &mut lines);
            println!("{}", lines.join("\n"));
        }
    }
}

fn retcode_of(data: &Value) -> i64 {
    match data.get("retcode") {
        Some(Value::Int(i)) if *i != 0 => *i,
        _ => match data.get("return") {
            Some(Value::Bool(false)) => 1,
            _ => 0,
        },
    }
}

fn run(o: &Opts) -> Result<i32> {
    let cfg = MasterConfig::load(&o.config_dir)?;
    let timeout = Duration::from_secs(o.timeout.unwrap_or_else(|| cfg.get_u64("timeout").unwrap_or(5)));
    let mut client = LocalClient::from_config(&cfg, UserKey::current(&cfg)?);
    // Salt's CLI sends its texts through `parse_input`.
    let texts: Vec<Value> = o.positional[2..].iter().map(|a| Value::from(a.as_str())).collect();
    let args = brine_py::parse_input(&texts, &[]);
    let job = Publish::new(o.positional[0].as_str(), &o.positional[1])
        .args(args)
        .tgt_type(o.tgt_type)
        .kwarg("show_timeout", false)
        .kwarg("show_jid", false)
        .kwarg("delimiter", ":");
    let published = if o.is_async {
        client.publish(&job).map(|j| j.map(Waiting::No))
    } else {
        client.run(&job, timeout).map(|r| r.map(Waiting::Yes))
    };
    let waiting = match published {
        Ok(Some(w)) => w,
        Ok(None) => {
            println!("No minions matched the target. No command was sent, no jid was assigned.");
            eprintln!("ERROR: No return received");
            return Ok(2);
        }
        Err(ClientError::Refused { message, .. }) => {
            eprintln!("{message}");
            return Ok(1);
        }
        Err(ClientError::Unexpected(reply)) => {
            eprintln!("Salt request refused: {}", scalar(&reply));
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    let mut returns = match waiting {
        Waiting::No(job) => {
            println!("Executed command with job ID: {}", job.jid);
            return Ok(0);
        }
        Waiting::Yes(r) => r,
    };
    let jid = returns.job().jid.clone();
    if o.verbose {
        println!("Executing job with jid {jid}");
        println!("-------------------------------------------\n");
    }
    let mut got: Vec<(String, Value)> = Vec::new();
    let mut codes = Vec::new();
    while let Some(r) = returns.next_return()? {
        codes.push(retcode_of(&r.data));
        if !o.static_out {
            print_ret(&o.out, &r.minion, r.ret());
        }
        got.push((r.minion.clone(), r.ret().clone()));
    }
    if o.static_out {
        let all = Value::Map(got.iter().map(|(k, v)| (Value::from(k.as_str()), v.clone())).collect());
        if o.out == "json" {
            println!("{}", crate::json_pretty(&to_json(&all)));
        } else {
            let mut lines = Vec::new();
            nested(&all, 0, "", &mut lines);
            println!("{}", lines.join("\n"));
        }
    }
    for id in returns.missing() {
        let msg = format!(
            "Minion did not return. [No response]\nThe minions may not have all finished running and any remaining minions will return upon completion. To look up the return data for this job later, run the following command:\n\nsalt-run jobs.lookup_jid {jid}"
        );
        print_ret(&o.out, &id, &Value::from(msg));
        codes.push(1);
    }
    if codes.iter().any(|c| *c != 0) {
        eprintln!("ERROR: Minions returned with non-zero exit code");
        return Ok(1);
    }
    Ok(0)
}

/// A published job: followed on the event bus, or only announced (`--async`).
enum Waiting {
    No(brine_client::Job),
    Yes(brine_client::JobReturns),
}

pub fn main(args: &[String]) -> i32 {
    match parse(args) {
        Ok(None) => {
            print!("{USAGE}");
            0
        }
        Err(e) => {
            eprint!("{USAGE}\nsalt: error: {e}\n");
            2
        }
        Ok(Some(o)) => match run(&o) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("Salt request failed: {e:#}");
                2
            }
        },
    }
}
