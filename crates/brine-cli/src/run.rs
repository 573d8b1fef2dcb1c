//! `salt-run`: Salt's runner front end. The runner runs on the master
//! (the `runner` clear command, as the local user with the key the master
//! keeps for that user in cachedir, or by `--eauth`); this command
//! follows the job's events on the master event bus and prints them as
//! Python's `salt-run` does (`RunnerClient.print_async_event`): each
//! event but `new` as it comes, the return with the outputter the runner
//! asked for or `--out`. The exit status is Python's: the `retcode` of
//! the return (or of its `data`), else 0.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use brine_client::{ClientError, EventBus};
use brine_config::MasterConfig;
use brine_output::{Opts as OutOpts, OutputFlags};
use brine_proto::Value;

pub const USAGE: &str = "Usage: salt-run [options] <function> [arguments]

salt-run is the frontend command for executing Salt Runners.
Salt Runners are modules used to execute convenience functions on the Salt Master

Options:
  --version             show program's version number and exit
  -h, --help            show this help message and exit
  -c CONFIG_DIR, --config-dir=CONFIG_DIR
                        Pass in an alternative configuration directory.
                        Default: '/etc/salt'.
  -t TIMEOUT, --timeout=TIMEOUT
                        Seconds to wait for the runner's return (default: until
                        it returns).
  -d, --doc, --documentation
                        Display documentation for runners, pass a runner or
                        runner.function to see documentation on only that runner
                        or function.
  --jid=JID             Run the job under this job id (20 digits).
  --async               Start the runner operation and immediately return
                        control.
  -a EAUTH, --auth=EAUTH, --eauth=EAUTH, --external-auth=EAUTH
                        Specify an external authentication system to use.
  -T, --make-token      Generate and save an authentication token for re-use.
  --username=USERNAME   Username for external authentication.
  --password=PASSWORD   Password for external authentication.
  -l LOG_LEVEL, --log-level=LOG_LEVEL
                        Console logging log level.
  --no-parse=ARGNAME    Parse all arguments except the named ones.

  --quiet               Do not display the results of the run.
";

pub(crate) struct Opts {
    config_dir: PathBuf,
    timeout: Option<u64>,
    doc: bool,
    is_async: bool,
    quiet: bool,
    auth: crate::eauth::EauthOpts,
    output: OutputFlags,
    no_parse: Vec<String>,
    jid: Option<String>,
    positional: Vec<String>,
}

pub(crate) enum Parsed {
    Run(Box<Opts>),
    Help,
    Version,
}

/// What `salt-run --help` prints: the usage and Salt's output options.
pub fn help() -> String {
    format!("{USAGE}\n{}", brine_output::cli::HELP)
}

pub(crate) fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut o = Opts {
        config_dir: PathBuf::from("/etc/salt"),
        timeout: None,
        doc: false,
        is_async: false,
        quiet: false,
        auth: Default::default(),
        output: OutputFlags::default(),
        no_parse: Vec::new(),
        jid: None,
        positional: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        if args[i] != "--" {
            match o.output.take(args, i)? {
                0 => {}
                n => {
                    i += n;
                    continue;
                }
            }
        }
        let a = &args[i];
        i += 1;
        if a == "--" {
            o.positional.extend(args[i..].iter().cloned());
            break;
        }
        let (flag, inline) = crate::optparse::split(a, &["-c", "-t", "-a", "-l"]);
        let mut value = |name: &str, inline: Option<&str>| crate::optparse::value(args, &mut i, name, inline);
        match flag {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--version" | "-V" => return Ok(Parsed::Version),
            "-c" | "--config-dir" => o.config_dir = PathBuf::from(value(flag, inline)?),
            "-t" | "--timeout" => {
                let v = value(flag, inline)?;
                o.timeout = Some(
                    v.parse()
                        .map_err(|_| format!("option {flag}: invalid integer value: '{v}'"))?,
                )
            }
            "-d" | "--doc" | "--documentation" => o.doc = true,
            "--async" => o.is_async = true,
            "--jid" => {
                let j = value(flag, inline)?;
                if brine_cache::jobs::is_jid(&j) {
                    o.jid = Some(j);
                } else {
                    return Err(format!("option --jid: '{j}' is not a job id (20 digits)"));
                }
            }
            "--quiet" => o.quiet = true,
            f if o.auth.take(f, |n| value(n, inline))? => {}
            "-l" | "--log-level" => {
                value(flag, inline)?;
            }
            "--no-parse" => o
                .no_parse
                .extend(value(flag, inline)?.split(',').map(|s| s.trim().to_string())),
            "--log-file" | "--log-file-level" => {
                value(flag, inline)?;
            }
            "--hard-crash" | "--skip-grains" => {}
            f if f.starts_with('-') && f.len() > 1 => return Err(format!("no such option: {f}")),
            _ => o.positional.push(a.clone()),
        }
    }
    if o.doc && o.positional.len() > 1 {
        return Err("You can only get documentation for one method at one time".into());
    }
    Ok(Parsed::Run(Box::new(o)))
}

/// Print `data` with `outputter` (Salt's `display_output`: `--out`
/// wins, nested when neither names one).
fn display(data: &Value, outputter: Option<&str>, out: &OutOpts) -> Result<()> {
    brine_output::write_display(outputter.unwrap_or(""), data, out, 0)?;
    Ok(())
}

/// `--doc`: each function matching the argument (a module, a function,
/// or nothing for all) with its documentation, as Salt's `print_docs`.
fn print_docs(cfg: Option<&MasterConfig>, arg: Option<&str>) {
    let arg = arg.unwrap_or("");
    let docs = match cfg {
        Some(cfg) => brine_runners::all_docs(cfg, arg),
        None => brine_runners::docs(arg)
            .into_iter()
            .map(|(f, d)| (f.to_string(), d.to_string()))
            .collect(),
    };
    for (fun, doc) in docs {
        println!("{fun}:");
        println!("{doc}");
    }
}

/// The positional arguments and keyword arguments of the command line,
/// as Salt's `parse_input` and `load_args_and_kwargs` split them.
fn split_args(texts: &[String], no_parse: &[String]) -> (Vec<Value>, Vec<(String, Value)>) {
    let texts: Vec<Value> = texts.iter().map(|a| Value::from(a.as_str())).collect();
    let mut arg = Vec::new();
    let mut kwarg = Vec::new();
    for v in brine_py::parse_input(&texts, no_parse) {
        match v {
            Value::Map(pairs)
                if pairs
                    .iter()
                    .any(|(k, v)| k.as_str() == Some("__kwarg__") && *v == Value::Bool(true)) =>
            {
                for (k, v) in pairs {
                    match k.as_str() {
                        Some("__kwarg__") | None => {}
                        Some(k) => kwarg.push((k.to_string(), v)),
                    }
                }
            }
            other => arg.push(other),
        }
    }
    (arg, kwarg)
}

/// Python's exit status for a runner job's data: the `retcode` of the
/// return (or of its `data`), else 0. A name that is no runner exits 0,
/// as Python's `salt-run` does when its own check refuses the name
/// before running anything (here the master refused it: the name may have
/// been a Python runner).
fn exit_code(data: &Value) -> i32 {
    if let (Some(Value::Str(r)), Some(Value::Str(fun))) = (data.get("return"), data.get("fun")) {
        let fun = fun.strip_prefix("runner.").unwrap_or(fun);
        if data.get("retcode").and_then(Value::as_i64) == Some(254) && *r == brine_runners::not_available(fun) {
            return 0;
        }
    }
    let ret = match (data.get("return"), data.get("retcode")) {
        (Some(r), None) => r,
        _ => data,
    };
    let code = ret
        .get("retcode")
        .or_else(|| ret.get("data").and_then(|d| d.get("retcode")));
    code.and_then(Value::as_i64).map_or(0, |c| c as i32)
}

fn run(o: &Opts) -> Result<i32> {
    if o.doc {
        let cfg = MasterConfig::load(&o.config_dir).ok();
        if let Some(cfg) = &cfg {
            brine_runners::find_python_for_docs(cfg, o.positional.first().map_or("", String::as_str));
        }
        print_docs(cfg.as_ref(), o.positional.first().map(String::as_str));
        return Ok(0);
    }
    let cfg = MasterConfig::load(&o.config_dir)?;
    let mut out = OutOpts::from_config(&cfg);
    o.output.apply(&mut out).map_err(anyhow::Error::msg)?;
    let Some(fun) = o.positional.first() else {
        // Salt's verify_fun for an empty name.
        println!("Must specify a function to run!\nex: manage.up");
        return Ok(0);
    };
    if !brine_runners::available(fun) && !brine_runners::python_runners(&cfg) {
        // Salt's salt-run checks the name before it runs anything: the
        // documentation of what the name starts, else Salt's message.
        let docs = brine_runners::docs(&format!("{fun}*"));
        if docs.is_empty() {
            display(&Value::from(brine_runners::not_available(fun)), Some("nested"), &out)?;
        } else {
            let docs = docs
                .into_iter()
                .map(|(f, d)| (Value::from(f), Value::from(d)))
                .collect();
            display(&Value::Map(docs), Some("nested"), &out)?;
        }
        return Ok(0);
    }
    let mut client = match crate::eauth::client(&cfg, &o.auth) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", e.message);
            return Ok(e.status);
        }
    };
    let (arg, kwarg) = split_args(&o.positional[1..], &o.no_parse);
    let started = if o.is_async {
        client.runner_as(fun, arg, kwarg, o.jid.as_deref()).map(|s| (s, None))
    } else {
        client
            .runner_followed(fun, arg, kwarg, o.jid.as_deref())
            .map(|(s, b)| (s, Some(b)))
    };
    let (started, bus) = match started {
        Ok(s) => s,
        Err(ClientError::Refused { message, .. }) => {
            // Python's salt-run prints the exception's text and ends
            // normally.
            display(&Value::from(message), Some("nested"), &out)?;
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    };
    let Some(mut bus) = bus else {
        eprintln!(
            "[WARNING ] Running in asynchronous mode. Results of this execution may be collected by attaching to the master event bus or by examining the master job cache, if configured. This execution is running under tag {}",
            started.tag
        );
        return Ok(0);
    };
    follow(o, &out, &mut bus, &started.tag)
}

/// Print the job's events until its return; the exit status.
fn follow(o: &Opts, out: &OutOpts, bus: &mut EventBus, tag: &str) -> Result<i32> {
    let deadline = o
        .timeout
        .map(|t| Instant::now() + Duration::from_secs(t))
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600));
    let prefix = format!("{tag}/");
    loop {
        let Some(ev) = bus.next(deadline)? else {
            eprintln!(
                "[ERROR   ] The runner did not return within {} seconds; its return will be in the job cache (salt-run jobs.lookup_jid {})",
                o.timeout.unwrap_or(0),
                tag.rsplit('/').next().unwrap_or("")
            );
            return Ok(1);
        };
        let Some(suffix) = ev.tag.strip_prefix(&prefix) else {
            continue;
        };
        if suffix == "new" || o.quiet || !ev.data.is_map() {
            if suffix == "ret" {
                return Ok(exit_code(&ev.data));
            }
            continue;
        }
        // `--out` wins inside brine_output (except over highstate).
        let chosen = ev
            .data
            .get("outputter")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| {
                ev.data
                    .get("return")
                    .and_then(|r| r.get("outputter"))
                    .and_then(Value::as_str)
                    .map(String::from)
            });
        if suffix == "ret" {
            let ret = ev.data.get("return").cloned().unwrap_or(Value::Nil);
            match &ret {
                Value::Map(pairs)
                    if pairs.len() == 2 && ret.get("data").is_some() && ret.get("outputter").is_some() =>
                {
                    let outputter = ret.get("outputter").and_then(Value::as_str).map(String::from);
                    display(ret.get("data").unwrap_or(&Value::Nil), outputter.as_deref(), out)?;
                }
                _ => display(&ret, chosen.as_deref(), out)?,
            }
            return Ok(exit_code(&ev.data));
        }
        let event = Value::map([("suffix", Value::from(suffix)), ("event", ev.data.clone())]);
        display(&event, chosen.as_deref(), out)?;
    }
}

pub fn main(args: &[String]) -> i32 {
    match parse(args) {
        Ok(Parsed::Help) => {
            print!("{}", help());
            0
        }
        Ok(Parsed::Version) => {
            println!("salt-run {} (Brine)", env!("CARGO_PKG_VERSION"));
            0
        }
        Err(e) => {
            eprint!("Usage: salt-run [options] <function> [arguments]\n\nsalt-run: error: {e}\n");
            2
        }
        Ok(Parsed::Run(o)) => match run(&o) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e:#}");
                1
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_split_as_salt_parses_them() {
        let (arg, kwarg) = split_args(&strs(&["a1", "3", "timeout=10", "pillar={'x': 1}", "test=True"]), &[]);
        assert_eq!(arg, vec![Value::from("a1"), Value::Int(3)]);
        let names: Vec<&str> = kwarg.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["timeout", "pillar", "test"]);
        assert_eq!(kwarg[0].1, Value::Int(10));
        assert_eq!(kwarg[1].1, Value::map([("x", Value::Int(1))]));
        assert_eq!(kwarg[2].1, Value::Bool(true));
        let (_, kwarg) = split_args(&strs(&["name=007"]), &strs(&["name"]));
        assert_eq!(kwarg[0].1, Value::from("007"));
    }

    #[test]
    fn exit_code_is_pythons() {
        let data = |ret: Value| Value::map([("return", ret), ("success", Value::Bool(true))]);
        assert_eq!(exit_code(&data(Value::Bool(true))), 0);
        assert_eq!(exit_code(&data(Value::map([("retcode", Value::Int(2))]))), 2);
        assert_eq!(
            exit_code(&data(Value::map([("data", Value::map([("retcode", Value::Int(3))]))]))),
            3
        );
        // A failed runner: the data's own retcode.
        let failed = Value::map([("return", Value::from("boom")), ("retcode", Value::Int(1))]);
        assert_eq!(exit_code(&failed), 1);
    }

    #[test]
    fn flags_parse_as_optparse() {
        let Ok(Parsed::Run(o)) = parse(&strs(&[
            "-c/tmp/x",
            "jobs.list_jobs",
            "--out=json",
            "-t",
            "5",
            "--async",
        ])) else {
            panic!()
        };
        assert_eq!(o.config_dir, PathBuf::from("/tmp/x"));
        assert_eq!(o.output.output.as_deref(), Some("json"));
        assert_eq!(o.timeout, Some(5));
        assert!(o.is_async);
        assert_eq!(o.positional, ["jobs.list_jobs"]);
        assert!(parse(&strs(&["--bogus"])).is_err());
        assert!(parse(&strs(&["-d", "a", "b"])).is_err());
    }
}
