//! `salt`: parse Salt's command line, publish the job with
//! `brine_client::LocalClient` (the user key the master wrote in cachedir,
//! the returns as they arrive on the event bus) and print them in Salt's
//! outputs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use brine_client::{ClientError, Publish};
use brine_config::MasterConfig;
use brine_output::progress::ProgressBar;
use brine_output::{summary, Opts as OutOpts, OutputFlags};
use brine_proto::Value;

pub const USAGE: &str = "Usage: salt [options] '<target>' <function> [arguments]

Options:
  -c CONFIG_DIR, --config-dir=CONFIG_DIR
                        configuration directory (default /etc/salt)
  -t TIMEOUT, --timeout=TIMEOUT
                        seconds to wait for returns (default: master `timeout`, 5)
  -E, --pcre            target is a regular expression
  -L, --list            target is a comma-separated list
  -G, --grain           target is a grain (key:glob)
  -C, --compound        target is a compound expression
  --async               print the job id and do not wait
  -v, --verbose         print the job id and missing minions
  -s, --static          return the data from minions as a group after they
                        all return
  -p, --progress        display a progress bar (on stderr)
  --summary             display summary information about the returns
  -a EAUTH, --auth=EAUTH, --eauth=EAUTH, --external-auth=EAUTH
                        authenticate by this external authentication backend
  -T, --make-token      generate and save an authentication token for re-use
  --username=USERNAME   username for external authentication
  --password=PASSWORD   password for external authentication
";

pub(crate) struct Opts {
    config_dir: PathBuf,
    timeout: Option<u64>,
    tgt_type: &'static str,
    output: OutputFlags,
    is_async: bool,
    verbose: bool,
    static_out: bool,
    progress: bool,
    summary: bool,
    auth: crate::eauth::EauthOpts,
    positional: Vec<String>,
}

/// What `salt --help` prints: the usage and Salt's output options.
pub fn help() -> String {
    format!("{USAGE}\n{}", brine_output::cli::HELP)
}

pub(crate) fn parse(args: &[String]) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        config_dir: PathBuf::from("/etc/salt"),
        timeout: None,
        tgt_type: "glob",
        output: OutputFlags::default(),
        is_async: false,
        verbose: false,
        static_out: false,
        progress: false,
        summary: false,
        auth: Default::default(),
        positional: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        // Options may appear anywhere (optparse's interspersed arguments);
        // after `--`, everything is positional.
        if args[i] == "--" {
            o.positional.extend(args[i + 1..].iter().cloned());
            break;
        }
        match o.output.take(args, i)? {
            0 => {}
            n => {
                i += n;
                continue;
            }
        }
        let a = &args[i];
        i += 1;
        let (flag, inline) = crate::optparse::split(a, &["-c", "-t", "-a"]);
        let mut value = |name: &str, inline: Option<&str>| crate::optparse::value(args, &mut i, name, inline);
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
            "--async" => o.is_async = true,
            "-v" | "--verbose" => o.verbose = true,
            "-s" | "--static" => o.static_out = true,
            "-p" | "--progress" => o.progress = true,
            "--summary" => o.summary = true,
            f if o.auth.take(f, |n| value(n, inline))? => {}
            f if f.starts_with('-') && f.len() > 1 => return Err(format!("no such option: {f}")),
            _ => o.positional.push(a.clone()),
        }
    }
    if o.positional.len() < 2 {
        return Err("a target and a function are required".into());
    }
    Ok(Some(o))
}

/// `str()` of a value, for messages.
fn scalar(v: &Value) -> String {
    brine_py::to_str(v)
}

/// The return as Salt's `cmd_cli` hands it to the CLI: `ret`, and `out`
/// and `retcode` when the minion sent them.
fn full_return(data: &Value) -> Value {
    let mut full = vec![(Value::from("ret"), data.get("return").cloned().unwrap_or(Value::Nil))];
    for key in ["out", "retcode"] {
        if let Some(v) = data.get(key) {
            full.push((Value::from(key), v.clone()));
        }
    }
    Value::Map(full)
}

/// One minion's return, displayed as Salt's `_output_ret` does: the
/// outputter the return names (`out`) unless `--out` says otherwise, the
/// retcode colouring a failed one.
fn show(id: &str, full: &Value, opts: &OutOpts) -> Result<i64> {
    let retcode = summary::retcode(full);
    let one = Value::Map(vec![(Value::from(id), full.get("ret").cloned().unwrap_or(Value::Nil))]);
    let out = full.get("out").and_then(Value::as_str).unwrap_or("");
    brine_output::write_display(out, &one, opts, retcode)?;
    Ok(retcode)
}

/// What Salt's `get_cli_event_returns` yields for a minion that did not
/// return in time.
fn no_response(jid: &str) -> Value {
    let msg = format!(
        "Minion did not return. [No response]\nThe minions may not have all finished running and any remaining minions will return upon completion. To look up the return data for this job later, run the following command:\n\nsalt-run jobs.lookup_jid {jid}"
    );
    Value::map([
        ("out", Value::from("no_return")),
        ("ret", Value::from(msg)),
        ("retcode", Value::Int(1)),
    ])
}

fn run(o: &Opts) -> Result<i32> {
    let cfg = MasterConfig::load(&o.config_dir)?;
    let mut out = OutOpts::from_config(&cfg);
    if let Err(e) = o.output.apply(&mut out) {
        eprint!("{USAGE}\nsalt: error: {e}\n");
        return Ok(2);
    }
    out.static_ = o.static_out;
    out.fun = o.positional[1].clone();
    out.cli_summary |= o.summary;
    let timeout = Duration::from_secs(o.timeout.unwrap_or_else(|| cfg.get_u64("timeout").unwrap_or(5)));
    let mut client = match crate::eauth::client(&cfg, &o.auth) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", e.message);
            return Ok(e.status);
        }
    };
    // Salt's CLI sends its texts through `parse_input`.
    let texts: Vec<Value> = o.positional[2..].iter().map(|a| Value::from(a.as_str())).collect();
    let args = brine_py::parse_input(&texts, &[]);
    out.arg = args.clone();
    let job = Publish::new(o.positional[0].as_str(), &o.positional[1])
        .args(args)
        .tgt_type(o.tgt_type)
        .kwarg("show_timeout", false)
        .kwarg("show_jid", false)
        .kwarg("delimiter", ":");
    let published = if o.is_async {
        client.publish(&job).map(|j| j.map(Waiting::No))
    } else {
        client.run(&job, timeout).map(|r| r.map(|r| Waiting::Yes(Box::new(r))))
    };
    let waiting = match published {
        Ok(Some(w)) => w,
        Ok(None) => {
            println!("No minions matched the target. No command was sent, no jid was assigned.");
            eprintln!("ERROR: No return received");
            return Ok(2);
        }
        Err(ClientError::Refused { message, .. }) => {
            // Python's salt prints an authentication, authorization or
            // invocation error as its return, through the outputter, and
            // ends normally.
            brine_output::write_display("", &Value::from(message), &out, 1)?;
            return Ok(0);
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
        Waiting::Yes(r) => *r,
    };
    let jid = returns.job().jid.clone();
    if o.verbose && !o.static_out {
        println!("Executing job with jid {jid}");
        println!("-------------------------------------------\n");
    }
    // Every full return (the minions that did not return included), for
    // --static and the summary.
    let mut got: Vec<(String, Value)> = Vec::new();
    let mut codes = Vec::new();
    let mut bar = o.progress.then(|| ProgressBar::start(returns.job().minions.len()));
    while let Some(r) = returns.next_return()? {
        let full = full_return(&r.data);
        if let Some(bar) = bar.as_mut() {
            bar.update(got.len() + 1);
        } else if !o.static_out {
            codes.push(show(&r.minion, &full, &out)?);
        }
        got.push((r.minion.clone(), full));
    }
    for id in returns.missing() {
        let full = no_response(&jid);
        if bar.is_none() && !o.static_out {
            codes.push(show(&id, &full, &out)?);
        }
        got.push((id, full));
    }
    if let Some(bar) = bar.take() {
        // Salt's progress mode shows no returns, only the bar and the
        // summary, and exits 0.
        bar.finish();
        print!("{}", summary::returns_summary(&got, o.verbose));
        return Ok(0);
    }
    if o.static_out {
        // Salt's --static (its batch code, quiet): everything at once,
        // with the outputter --out names, highstate for state functions.
        let all = Value::Map(
            got.iter()
                .map(|(k, v)| (Value::from(k.as_str()), v.get("ret").cloned().unwrap_or(Value::Nil)))
                .collect(),
        );
        brine_output::write_display("", &all, &out, 0)?;
        return Ok(0);
    }
    if out.cli_summary && out.output.is_none() {
        print!("{}", summary::returns_summary(&got, o.verbose));
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
    Yes(Box<brine_client::JobReturns>),
}

pub fn main(args: &[String]) -> i32 {
    match parse(args) {
        Ok(None) => {
            print!("{}", help());
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
