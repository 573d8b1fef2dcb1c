//! `salt-master` command line, as Salt's optparse accepts it.

use std::path::PathBuf;

use crate::manager;

pub const USAGE: &str = "Usage: salt-master [options]

The Salt Master, controls the Salt minions (Brine: a Rust salt-master).

Options:
  --version             show program's version number and exit
  -h, --help            show this help message and exit
  -c CONFIG_DIR, --config-dir=CONFIG_DIR
                        Pass in an alternative configuration directory.
                        Default: '/etc/salt'.
  -u USER, --user=USER  Specify user to run salt-master.
  -d, --daemon          Run the salt-master as a daemon.
  --pid-file=PIDFILE    Specify the location of the pidfile. Default:
                        '/var/run/salt-master.pid'.

  Logging Options:
    -l LOG_LEVEL, --log-level=LOG_LEVEL
                        Console logging log level. One of 'all', 'garbage',
                        'trace', 'debug', 'profile', 'info', 'warning',
                        'error', 'critical', 'quiet'. Default: 'warning'.
    --log-file=LOG_FILE
                        Log file path. Default: '/var/log/salt/master'.
    --log-file-level=LOG_LEVEL_LOGFILE
                        Logfile logging log level. One of 'all', 'garbage',
                        'trace', 'debug', 'profile', 'info', 'warning',
                        'error', 'critical', 'quiet'. Default: 'warning'.
";

/// What the command line asked for.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Options {
    pub config_dir: PathBuf,
    pub daemon: bool,
    pub pid_file: Option<PathBuf>,
    pub log_level: Option<String>,
    pub log_file: Option<String>,
    pub log_file_level: Option<String>,
    pub user: Option<String>,
}

#[derive(Debug, PartialEq)]
pub enum Parsed {
    Run(Options),
    Help,
    Version,
}

/// Parse argv (without argv[0]) the way optparse does: `-cDIR`, `-c DIR`,
/// `--config-dir=DIR`, `--config-dir DIR`.
pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut o = Options {
        config_dir: PathBuf::from("/etc/salt"),
        ..Default::default()
    };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let (flag, inline): (&str, Option<String>) = if let Some(long) = a.strip_prefix("--") {
            match long.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (long, None),
            }
        } else if a.starts_with('-') && a.len() > 1 {
            let short = &a[1..2];
            let rest = &a[2..];
            (short, if rest.is_empty() { None } else { Some(rest.to_string()) })
        } else {
            return Err(format!("unexpected argument: {a}"));
        };
        let takes_value = matches!(
            flag,
            "c" | "config-dir" | "pid-file" | "l" | "log-level" | "log-file" | "log-file-level" | "u" | "user"
        );
        let value = if takes_value {
            match inline {
                Some(v) => Some(v),
                None => {
                    let v = args
                        .get(i)
                        .cloned()
                        .ok_or_else(|| format!("option {a} requires an argument"))?;
                    i += 1;
                    Some(v)
                }
            }
        } else {
            if let Some(v) = inline {
                if a.starts_with("--") {
                    return Err(format!("option --{flag} does not take a value ({v})"));
                }
                // Bundled short flags (-dh): only -d is a flag we know.
                return Err(format!("no such option: {a}"));
            }
            None
        };
        match flag {
            "h" | "help" => return Ok(Parsed::Help),
            "version" | "V" => return Ok(Parsed::Version),
            "d" | "daemon" => o.daemon = true,
            "c" | "config-dir" => o.config_dir = PathBuf::from(value.unwrap()),
            "pid-file" => o.pid_file = value.map(PathBuf::from),
            "l" | "log-level" => o.log_level = value,
            "log-file" => o.log_file = value,
            "log-file-level" => o.log_file_level = value,
            "u" | "user" => o.user = value,
            _ => return Err(format!("no such option: {a}")),
        }
    }
    for lvl in [&o.log_level, &o.log_file_level].into_iter().flatten() {
        if brine_config::parse_log_level(lvl).is_none() {
            return Err(format!("invalid log level: {lvl:?} (choose from 'all', 'garbage', 'trace', 'debug', 'profile', 'info', 'warning', 'error', 'critical', 'quiet')"));
        }
    }
    Ok(Parsed::Run(o))
}

/// The binary's entry point; returns the exit status.
pub fn main() -> i32 {
    // First, while argv and environ are untouched and nothing else runs.
    let title_ok = brine_proc::title::init().is_ok();
    if title_ok {
        let _ = brine_proc::title::ensure_capacity(crate::names::LONGEST);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            0
        }
        Ok(Parsed::Version) => {
            println!("salt-master {} (Brine)", env!("CARGO_PKG_VERSION"));
            0
        }
        Err(e) => {
            eprint!("{USAGE}\nsalt-master: error: {e}\n");
            2
        }
        Ok(Parsed::Run(opts)) => match manager::run(opts) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("salt-master: error: {e:#}");
                1
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn salt_style_options() {
        let Parsed::Run(o) = p(&[
            "-c",
            "/tmp/x",
            "-d",
            "--pid-file=/tmp/p",
            "-ldebug",
            "--log-file-level",
            "info",
            "-u",
            "salt",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(o.config_dir, PathBuf::from("/tmp/x"));
        assert!(o.daemon);
        assert_eq!(o.pid_file, Some(PathBuf::from("/tmp/p")));
        assert_eq!(o.log_level.as_deref(), Some("debug"));
        assert_eq!(o.log_file_level.as_deref(), Some("info"));
        assert_eq!(o.user.as_deref(), Some("salt"));
        let Parsed::Run(o) = p(&["--config-dir=/c"]).unwrap() else {
            panic!()
        };
        assert_eq!(o.config_dir, PathBuf::from("/c"));
        assert_eq!(p(&["--version"]).unwrap(), Parsed::Version);
        assert_eq!(p(&["-h"]).unwrap(), Parsed::Help);
    }

    #[test]
    fn bad_options() {
        assert!(p(&["-c"]).is_err());
        assert!(p(&["--bogus"]).is_err());
        assert!(p(&["stray"]).is_err());
        assert!(p(&["-l", "loud"]).is_err());
        assert!(p(&["--daemon=yes"]).is_err());
    }
}
