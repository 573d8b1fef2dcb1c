//! `salt-key`: list, accept, reject, delete and fingerprint minion keys,
//! with Salt's flags, prompts and output (checked against Salt 3007.17).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Result;
use brine_config::MasterConfig;
use brine_keys::{FsKeyStore, KeyState, KeyStore};
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
  --include-all         Include rejected/denied keys when accepting/rejecting.
  --include-rejected    Include rejected keys when accepting.
  --include-denied      Include denied keys when accepting/rejecting.
  --out=OUTPUT          nested (default), json, yaml, txt or raw.
  --no-color            Disable all colored output.

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
struct Opts {
    config_dir: PathBuf,
    action: Action,
    yes: bool,
    quiet: bool,
    include_rejected: bool,
    include_denied: bool,
    out: String,
}

fn parse(args: &[String]) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        config_dir: PathBuf::from("/etc/salt"),
        action: Action::List("all".into()),
        yes: false,
        quiet: false,
        include_rejected: false,
        include_denied: false,
        out: "nested".into(),
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].clone();
        i += 1;
        let (flag, inline) = if let Some(l) = a.strip_prefix("--") {
            match l.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (l.to_string(), None),
            }
        } else if a.len() > 1 && a.starts_with('-') {
            let rest = &a[2..];
            (a[1..2].to_string(), (!rest.is_empty()).then(|| rest.to_string()))
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
                | "out"
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
            "h" | "help" => return Ok(None),
            "version" => {
                println!("salt-key {} (Brine)", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "c" | "config-dir" => o.config_dir = PathBuf::from(val),
            "y" | "yes" => o.yes = true,
            "q" | "quiet" => o.quiet = true,
            "no-color" | "force-color" => {}
            "include-rejected" => o.include_rejected = true,
            "include-denied" => o.include_denied = true,
            "include-all" => {
                o.include_rejected = true;
                o.include_denied = true;
            }
            "out" => o.out = val,
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
    Ok(Some(o))
}

/// Salt's display names, in the key outputter's order (by directory name).
fn title(s: KeyState) -> &'static str {
    match s {
        KeyState::Accepted => "Accepted Keys:",
        KeyState::Denied => "Denied Keys:",
        KeyState::Pending => "Unaccepted Keys:",
        KeyState::Rejected => "Rejected Keys:",
    }
}

/// Dict order Salt's `Key.list_keys` returns (json/txt output).
const DICT_ORDER: [KeyState; 4] = [
    KeyState::Accepted,
    KeyState::Pending,
    KeyState::Rejected,
    KeyState::Denied,
];

fn states_for(arg: &str) -> Result<Vec<KeyState>, String> {
    Ok(match arg {
        "pre" | "un" | "unaccepted" => vec![KeyState::Pending],
        "acc" | "accepted" => vec![KeyState::Accepted],
        "rej" | "rejected" => vec![KeyState::Rejected],
        "den" | "denied" => vec![KeyState::Denied],
        "all" => DICT_ORDER.to_vec(),
        other => return Err(format!("\"{other}\" is not a valid argument to '-l' or '--list'")),
    })
}

type Listing = Vec<(KeyState, Vec<(String, String)>)>;

/// Print a listing of (state, [(id, value)]) in `out` format; values empty
/// for plain listings.
fn output(out: &str, listing: &Listing, with_values: bool) -> String {
    let dir = |s: KeyState| s.dir().to_string();
    match out {
        "json" => {
            let mut m = serde_json::Map::new();
            for (s, items) in listing {
                let v = if with_values {
                    serde_json::Value::Object(
                        items
                            .iter()
                            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
                            .collect(),
                    )
                } else {
                    serde_json::Value::Array(items.iter().map(|(k, _)| serde_json::Value::from(k.clone())).collect())
                };
                m.insert(dir(*s), v);
            }
            format!("{}\n", crate::json_pretty(&serde_json::Value::Object(m)))
        }
        "yaml" => {
            let mut sorted: Vec<&(KeyState, Vec<(String, String)>)> = listing.iter().collect();
            sorted.sort_by_key(|(s, _)| s.dir());
            let mut o = String::new();
            for (s, items) in sorted {
                if items.is_empty() {
                    o += &format!("{}: {}\n", s.dir(), if with_values { "{}" } else { "[]" });
                    continue;
                }
                o += &format!("{}:\n", s.dir());
                for (k, v) in items {
                    if with_values {
                        o += &format!("  {k}: {v}\n");
                    } else {
                        o += &format!("- {k}\n");
                    }
                }
            }
            o
        }
        "txt" => {
            let mut o = String::new();
            for (s, items) in listing {
                let body: Vec<String> = if with_values {
                    items.iter().map(|(k, v)| format!("'{k}': '{v}'")).collect()
                } else {
                    items.iter().map(|(k, _)| format!("'{k}'")).collect()
                };
                if with_values {
                    o += &format!("{}: {{{}}}\n", s.dir(), body.join(", "));
                } else {
                    o += &format!("{}: [{}]\n", s.dir(), body.join(", "));
                }
            }
            o
        }
        _ => {
            let mut sorted: Vec<&(KeyState, Vec<(String, String)>)> = listing.iter().collect();
            sorted.sort_by_key(|(s, _)| s.dir());
            let mut o = String::new();
            for (s, items) in sorted {
                o += title(*s);
                o.push('\n');
                for (k, v) in items {
                    if with_values {
                        o += &format!("{k}:  {v}\n");
                    } else {
                        o += &format!("{k}\n");
                    }
                }
            }
            // The nested outputter joins lines and ends with one newline.
            let mut o = o.trim_end_matches('\n').to_string();
            o.push('\n');
            o
        }
    }
}

fn matching(store: &FsKeyStore, states: &[KeyState], pattern: &str) -> Result<Listing> {
    let pat = brine_py::Glob::new(pattern);
    let mut out = Vec::new();
    for &s in states {
        let ids: Vec<(String, String)> = store
            .list(s)?
            .into_iter()
            .filter(|id| id == pattern || pat.matches(id))
            .map(|id| (id, String::new()))
            .collect();
        if !ids.is_empty() {
            out.push((s, ids));
        }
    }
    Ok(out)
}

fn confirm(o: &Opts, verb: &str, listing: &Listing) -> bool {
    print!(
        "The following keys are going to be {verb}:\n{}",
        output("nested", listing, false)
    );
    if o.yes {
        return true;
    }
    print!("Proceed? [n/Y] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    !line.trim().to_lowercase().starts_with('n')
}

/// Ask the master to rotate its AES key (Salt's `.dfn`, mode 0400).
fn write_dfn(cfg: &MasterConfig) {
    if !cfg.get_bool("rotate_aes_key").unwrap_or(true) {
        return;
    }
    let res = brine_keys::drop_rotation_file(&cfg.cachedir, &cfg.master_id());
    if let Err(e) = res {
        eprintln!("Error: {e}");
    }
}

fn fire(cfg: &MasterConfig, act: &str, id: &str) {
    let mut ev = brine_proto::event::EventSender::new(&cfg.sock_dir);
    let data = Value::map([
        ("result", Value::Bool(true)),
        ("act", Value::from(act)),
        ("id", Value::from(id)),
    ]);
    // The master may not be running: salt-key works offline as Salt's does.
    let _ = ev.fire("salt/key", &data);
}

fn run(o: &Opts) -> Result<i32> {
    let cfg = MasterConfig::load(&o.config_dir)?;
    let store = FsKeyStore::new(&cfg.pki_dir);
    let quiet_print = |s: &str| {
        if !o.quiet {
            print!("{s}");
        }
    };
    match &o.action {
        Action::List(arg) => {
            let states = states_for(arg).map_err(anyhow::Error::msg)?;
            let mut listing = Vec::new();
            for s in states {
                listing.push((s, store.list(s)?.into_iter().map(|id| (id, String::new())).collect()));
            }
            quiet_print(&output(&o.out, &listing, false));
        }
        Action::Print(p) | Action::Finger(p) => {
            let hash = cfg.get_str("finger_hash_type").unwrap_or("sha256").to_string();
            let listing = matching(&store, &DICT_ORDER, p)?;
            let mut with_values = Vec::new();
            for (s, ids) in listing {
                let mut items = Vec::new();
                for (id, _) in ids {
                    let pem = store.get(s, &id)?.unwrap_or_default();
                    let v = if matches!(o.action, Action::Finger(_)) {
                        brine_keys::fingerprint(&pem, &hash).unwrap_or_default()
                    } else {
                        pem
                    };
                    items.push((id, v));
                }
                with_values.push((s, items));
            }
            quiet_print(&output(&o.out, &with_values, true));
        }
        Action::Accept(p) | Action::Reject(p) => {
            let accept = matches!(o.action, Action::Accept(_));
            let mut from = vec![KeyState::Pending];
            if o.include_rejected && accept {
                from.push(KeyState::Rejected);
            }
            if o.include_denied {
                from.push(KeyState::Denied);
            }
            if !accept && o.include_rejected {
                // nothing extra: rejected keys are already rejected
            }
            let listing = matching(&store, &from, p)?;
            if listing.is_empty() {
                println!("The key glob '{p}' does not match any unaccepted keys.");
                return Ok(0);
            }
            let verb = if accept { "accepted" } else { "rejected" };
            if !confirm(o, verb, &listing) {
                return Ok(0);
            }
            let to = if accept { KeyState::Accepted } else { KeyState::Rejected };
            for (s, ids) in &listing {
                for (id, _) in ids {
                    store.transfer(*s, to, id)?;
                    fire(&cfg, if accept { "accept" } else { "reject" }, id);
                }
            }
            if !accept {
                write_dfn(&cfg);
            }
            for (_, ids) in &listing {
                for (id, _) in ids {
                    println!("Key for minion {id} {verb}.");
                }
            }
        }
        Action::Delete(p) => {
            let listing = matching(&store, &DICT_ORDER, p)?;
            if listing.is_empty() {
                println!("The key glob '{p}' does not match any accepted, unaccepted or rejected keys.");
                return Ok(0);
            }
            if !confirm(o, "deleted", &listing) {
                return Ok(0);
            }
            let mut deleted = BTreeMap::new();
            for (s, ids) in &listing {
                for (id, _) in ids {
                    store.remove(*s, id)?;
                    deleted.insert(id.clone(), ());
                    fire(&cfg, "delete", id);
                    let _ = std::fs::remove_dir_all(cfg.cachedir.join("minions").join(id));
                }
            }
            write_dfn(&cfg);
            for (_, ids) in &listing {
                for (id, _) in ids {
                    println!("Key for minion {id} deleted.");
                }
            }
        }
    }
    Ok(0)
}

/// Entry point; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    match parse(args) {
        Ok(None) => {
            print!("{USAGE}");
            0
        }
        Err(e) => {
            eprint!("{USAGE}\nsalt-key: error: {e}\n");
            2
        }
        Ok(Some(o)) => match run(&o) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("Error: {e:#}");
                1
            }
        },
    }
}
