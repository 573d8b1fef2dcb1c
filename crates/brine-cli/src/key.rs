//! `salt-key`: list, accept, reject, delete and fingerprint minion keys,
//! with Salt's flags, prompts and output (checked against Salt 3007.17).

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Result;
use brine_config::MasterConfig;
use brine_keys::{KeyState, Keys, Listing, Match};
use brine_output::{Opts as OutOpts, OutputFlags};
use brine_proto::event::EventSender;
use brine_proto::Value;

pub const USAGE: &str = "Usage: salt-key [options]

salt-key is used to manage Salt authentication keys

Options:
  --version             show program's version number and exit
  -h, --help            show this help message and exit
  -c CONFIG_DIR, --config-dir=CONFIG_DIR
                        Pass in an alternative configuration directory.
                        Default: '/etc/salt'.
  -q, --quiet           Suppress output.
  -y, --yes             Answer \"Yes\" to all questions presented.
  --include-all         Include rejected keys when accepting, accepted keys
                        when rejecting.
  --include-accepted    Include accepted keys when rejecting.
  --include-rejected    Include rejected keys when accepting.
  --include-denied      Include denied keys when accepting/rejecting.
  --out=OUTPUT          key (default), nested, json, yaml, txt, raw, pprint…
  --out-indent=N, --out-file=FILE, --out-file-append, --no-color,
  --force-color         as salt's output options.

  Actions:
    -l ARG, --list=ARG  List the public keys: pre, un, unaccepted, acc,
                        accepted, rej, rejected, den, denied, all.
    -L, --list-all      List all public keys.
    -a ACCEPT, --accept=ACCEPT
                        Accept the specified public key (globs allowed).
    -A, --accept-all    Accept all pending keys.
    -r REJECT, --reject=REJECT
                        Reject the specified public key (globs allowed).
    -R, --reject-all    Reject all pending keys.
    -p PRINT_, --print=PRINT_
                        Print the specified public key.
    -P, --print-all     Print all public keys.
    -d DELETE, --delete=DELETE
                        Delete the specified key (globs allowed).
    -D, --delete-all    Delete all keys.
    -f FINGER, --finger=FINGER
                        Print the specified key's fingerprint.
    -F, --finger-all    Print all keys' fingerprints.
";

#[derive(Debug, Clone, PartialEq)]
enum Action {
    List(String),
    Accept(String),
    Reject(String),
    Delete(String),
    Print(String),
    Finger(String),
}

#[derive(Debug)]
pub(crate) struct Opts {
    config_dir: PathBuf,
    action: Action,
    yes: bool,
    quiet: bool,
    include_all: bool,
    include_accepted: bool,
    include_rejected: bool,
    include_denied: bool,
    output: OutputFlags,
}

/// What `salt-key --help` prints: the usage alone (its output options are
/// in it).
pub fn help() -> String {
    USAGE.to_string()
}

pub(crate) enum Parsed {
    Run(Box<Opts>),
    Help,
    Version,
}

pub(crate) fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut o = Opts {
        config_dir: PathBuf::from("/etc/salt"),
        action: Action::List("all".into()),
        yes: false,
        quiet: false,
        include_all: false,
        include_accepted: false,
        include_rejected: false,
        include_denied: false,
        output: OutputFlags::default(),
    };
    let mut i = 0;
    while i < args.len() {
        match o.output.take(args, i)? {
            0 => {}
            n => {
                i += n;
                continue;
            }
        }
        let a = args[i].clone();
        i += 1;
        let (flag, inline) = if let Some(l) = a.strip_prefix("--") {
            match l.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (l.to_string(), None),
            }
        } else if let Some(short) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let flag = chars.next().map(String::from).unwrap_or_default();
            let rest = chars.as_str();
            (flag, (!rest.is_empty()).then(|| rest.to_string()))
        } else {
            return Err(format!("unexpected argument: {a}"));
        };
        let needs = matches!(
            flag.as_str(),
            "c" | "config-dir"
                | "l"
                | "list"
                | "a"
                | "accept"
                | "r"
                | "reject"
                | "d"
                | "delete"
                | "p"
                | "print"
                | "f"
                | "finger"
        );
        let val = if needs {
            match inline {
                Some(v) => v,
                None => {
                    let v = args
                        .get(i)
                        .cloned()
                        .ok_or_else(|| format!("{a} option requires an argument"))?;
                    i += 1;
                    v
                }
            }
        } else {
            if inline.is_some() {
                return Err(format!("no such option: {a}"));
            }
            String::new()
        };
        match flag.as_str() {
            "h" | "help" => return Ok(Parsed::Help),
            "version" => return Ok(Parsed::Version),
            "c" | "config-dir" => o.config_dir = PathBuf::from(val),
            "y" | "yes" => o.yes = true,
            "q" | "quiet" => o.quiet = true,
            "include-rejected" => o.include_rejected = true,
            "include-denied" => o.include_denied = true,
            "include-all" => o.include_all = true,
            "include-accepted" => o.include_accepted = true,
            "l" | "list" => o.action = Action::List(val),
            "L" | "list-all" => o.action = Action::List("all".into()),
            "a" | "accept" => o.action = Action::Accept(val),
            "A" | "accept-all" => o.action = Action::Accept("*".into()),
            "r" | "reject" => o.action = Action::Reject(val),
            "R" | "reject-all" => o.action = Action::Reject("*".into()),
            "d" | "delete" => o.action = Action::Delete(val),
            "D" | "delete-all" => o.action = Action::Delete("*".into()),
            "p" | "print" => o.action = Action::Print(val),
            "P" | "print-all" => o.action = Action::Print("*".into()),
            "f" | "finger" => o.action = Action::Finger(val),
            "F" | "finger-all" => o.action = Action::Finger("*".into()),
            _ => return Err(format!("no such option: {a}")),
        }
    }
    Ok(Parsed::Run(Box::new(o)))
}

/// What is printed: per status, ids with a value (a key or fingerprint)
/// or without (a plain listing).
type Shown = Vec<(String, Vec<(String, String)>)>;

fn plain(l: Listing) -> Shown {
    l.into_iter()
        .map(|(s, ids)| (s, ids.into_iter().map(|id| (id, String::new())).collect()))
        .collect()
}

/// The data salt-key hands its outputter: `{status: [ids]}`, or
/// `{status: {id: text}}` for keys and fingerprints.
fn data(listing: &Shown, with_values: bool) -> Value {
    Value::Map(
        listing
            .iter()
            .map(|(s, items)| {
                let v = if with_values {
                    let mut items = items.clone();
                    items.sort();
                    Value::Map(
                        items
                            .into_iter()
                            .map(|(k, v)| (Value::from(k), Value::from(v)))
                            .collect(),
                    )
                } else {
                    Value::Array(items.iter().map(|(k, _)| Value::from(k.as_str())).collect())
                };
                (Value::from(s.as_str()), v)
            })
            .collect(),
    )
}

/// What `display_output(ret, "key", opts)` prints: the key outputter
/// unless `--out` names another.
fn output(opts: &OutOpts, listing: &Shown, with_values: bool) -> String {
    brine_output::display("key", &data(listing, with_values), opts)
}

/// Salt's `-l` argument check (`process_list`).
fn check_list_arg(arg: &str) -> Result<(), String> {
    if ["acc", "pre", "un", "rej", "den", "all"]
        .iter()
        .any(|p| arg.starts_with(p))
    {
        Ok(())
    } else {
        Err(format!("\"{arg}\" is not a valid argument to '-l' or '--list'"))
    }
}

/// Salt's `KeyCLI` prompt: accept and reject proceed unless told no,
/// delete only when told yes.
fn confirm(o: &Opts, opts: &OutOpts, verb: &str, listing: &Listing) -> bool {
    print!(
        "The following keys are going to be {verb}:\n{}",
        output(opts, &plain(listing.clone()), false)
    );
    if o.yes {
        return true;
    }
    let delete = verb == "deleted";
    print!("{}", if delete { "Proceed? [N/y] " } else { "Proceed? [n/Y] " });
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    let answer = line.trim_end_matches(['\n', '\r']).to_lowercase();
    if answer.is_empty() {
        !delete
    } else {
        answer.starts_with('y')
    }
}

/// `accept`, `reject` or `delete` as Salt's `KeyCLI.run`: match, keep the
/// statuses the action takes, show them, ask, act on exactly those keys.
fn change(o: &Opts, opts: &OutOpts, keys: &Keys, events: &mut EventSender, pattern: &str) -> Result<i32> {
    let (verb, include_accepted, include_rejected) = match o.action {
        Action::Accept(_) => ("accepted", false, o.include_all || o.include_rejected),
        Action::Reject(_) => ("rejected", o.include_all || o.include_accepted, false),
        _ => ("deleted", o.include_accepted, o.include_rejected),
    };
    let mut matches = keys.name_match(&brine_keys::globs(pattern), false)?;
    if verb != "deleted" {
        let mut take = vec![KeyState::Pending.dir()];
        for (yes, s) in [
            (include_accepted, KeyState::Accepted),
            (include_rejected, KeyState::Rejected),
            (o.include_denied, KeyState::Denied),
        ] {
            if yes {
                take.push(s.dir());
            }
        }
        matches.retain(|(s, ids)| take.contains(&s.as_str()) && !ids.is_empty());
    }
    if matches.is_empty() {
        let mut statuses = vec!["unaccepted"];
        for (yes, name) in [
            (include_accepted, "accepted"),
            (include_rejected, "rejected"),
            (o.include_denied, "denied"),
        ] {
            if yes {
                statuses.push(name);
            }
        }
        let last = statuses.pop().unwrap_or_default();
        let stat = if statuses.is_empty() {
            last.to_string()
        } else {
            format!("{} or {last}", statuses.join(", "))
        };
        println!("The key glob '{pattern}' does not match any {stat} keys.");
        return Ok(0);
    }
    if !confirm(o, opts, verb, &matches) {
        return Ok(0);
    }
    let m = Match::Dict(matches.clone());
    let out = match o.action {
        Action::Accept(_) => keys.accept(events, &m, include_rejected, o.include_denied),
        Action::Reject(_) => keys.reject(events, &m, include_accepted, o.include_denied),
        _ => keys.delete_key(events, &m),
    };
    for id in &out.invalid {
        eprintln!("[ERROR   ] Invalid RSA public key: {id}");
        eprintln!("Unable to accept invalid key for {id}.");
    }
    for e in &out.errors {
        eprintln!("Error: {e}");
    }
    // Salt prints the keys where they are now; for delete, those it took.
    let shown = if verb == "deleted" { matches } else { out.keys };
    for (_, ids) in &shown {
        for id in ids {
            println!("Key for minion {id} {verb}.");
        }
    }
    Ok(if out.errors.is_empty() { 0 } else { 1 })
}

fn run(o: &Opts) -> Result<i32> {
    let cfg = MasterConfig::load(&o.config_dir)?;
    let mut opts = OutOpts::from_config(&cfg);
    o.output.apply(&mut opts).map_err(anyhow::Error::msg)?;
    let keys = Keys::new(&cfg);
    // The master may not be running: salt-key works without it, as Salt's.
    let mut events = EventSender::new(&cfg.sock_dir);
    let quiet_print = |s: &str| {
        if !o.quiet {
            print!("{s}");
        }
    };
    match &o.action {
        Action::List(arg) => {
            check_list_arg(arg).map_err(anyhow::Error::msg)?;
            let mut listing = keys.list_status(arg)?;
            // salt-key shows the master's own keys only with fingerprints.
            listing.retain(|(s, _)| s != "local");
            quiet_print(&output(&opts, &plain(listing), false));
        }
        Action::Print(p) => {
            let shown = keys.key_str(&brine_keys::globs(p))?;
            quiet_print(&output(&opts, &shown, true));
        }
        Action::Finger(p) => {
            let hash = cfg
                .get_str("finger_hash_type")
                .unwrap_or(brine_config::DEFAULT_HASH_TYPE)
                .to_string();
            let shown = keys.finger(&brine_keys::globs(p), &hash)?;
            quiet_print(&output(&opts, &shown, true));
        }
        Action::Accept(p) | Action::Reject(p) | Action::Delete(p) => return change(o, &opts, &keys, &mut events, p),
    }
    Ok(0)
}

/// Entry point; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    match parse(args) {
        Ok(Parsed::Help) => {
            print!("{}", help());
            0
        }
        Ok(Parsed::Version) => {
            println!("salt-key {} (Brine)", env!("CARGO_PKG_VERSION"));
            0
        }
        Err(e) => {
            eprint!("{USAGE}\nsalt-key: error: {e}\n");
            2
        }
        Ok(Parsed::Run(o)) => match run(&o) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("Error: {e:#}");
                1
            }
        },
    }
}
