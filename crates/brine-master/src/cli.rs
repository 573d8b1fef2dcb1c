//! `salt-master` command line, read as Salt's optparse parser reads it:
//! short options bundled or apart (`-dl debug`, `-cDIR`, `-c DIR`), long
//! options by any unambiguous prefix (`--config-dir=DIR`, `--conf DIR`),
//! `--` ending the options. Arguments are taken as bytes, so no argument
//! (non-ASCII, not UTF-8, empty, huge) can make the parser panic; anything
//! it does not accept is a usage error.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::Result;
use brine_config::MasterConfig;

pub const USAGE: &str = "Usage: salt-master [options]
       salt-master [options] status [--out=json]

The Salt Master, controls the Salt minions (Brine: a Rust salt-master).
`salt-master status` tells how the running master of the configuration is:
each process with its pid, uptime, restarts, CPU and memory, the request
and reactor queues, the connected minions and the job cache. Its exit
status is 0 while the master serves, 1 when one of its processes is down,
being replaced or not ready, 3 when the master is not running, 4 when its
state cannot be read.

Options:
  --version             show program's version number and exit
  -V, --versions-report
                        show program's version number and exit.
  -h, --help            show this help message and exit
  -c CONFIG_DIR, --config-dir=CONFIG_DIR
                        Pass in an alternative configuration directory.
                        Default: '/etc/salt'.
  -u USER, --user=USER  Specify user to run salt-master.
  -d, --daemon          Run the salt-master as a daemon.
  --pid-file=PIDFILE    Specify the location of the pidfile. Default:
                        '/var/run/salt-master.pid'.
  --out=OUTPUT          With status: 'json' prints the status as JSON,
                        'table' (the default) for people.

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

/// What optparse's `error()` prints before the message: the usage line.
pub const USAGE_LINE: &str = "Usage: salt-master [options]";

/// The exit status of a usage error: Salt's `OptionParser.error` exits
/// with `salt.defaults.exitcodes.EX_USAGE` (64, sysexits' value), not
/// optparse's 2.
pub const EX_USAGE: i32 = 64;

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
    /// `--out` (for `status`).
    pub out: Option<String>,
}

#[derive(Debug, PartialEq)]
pub enum Parsed {
    Run(Options),
    /// `salt-master status`.
    Status(Options),
    Help,
    Version,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Opt {
    Version,
    Help,
    ConfigDir,
    User,
    Daemon,
    PidFile,
    LogLevel,
    LogFile,
    LogFileLevel,
    Out,
}

impl Opt {
    fn takes_value(self) -> bool {
        !matches!(self, Opt::Version | Opt::Help | Opt::Daemon)
    }
}

const LONG: [(&str, Opt); 11] = [
    ("version", Opt::Version),
    ("versions-report", Opt::Version),
    ("help", Opt::Help),
    ("config-dir", Opt::ConfigDir),
    ("user", Opt::User),
    ("daemon", Opt::Daemon),
    ("pid-file", Opt::PidFile),
    ("log-level", Opt::LogLevel),
    ("log-file", Opt::LogFile),
    ("log-file-level", Opt::LogFileLevel),
    ("out", Opt::Out),
];

const SHORT: [(u8, Opt); 6] = [
    (b'V', Opt::Version),
    (b'h', Opt::Help),
    (b'c', Opt::ConfigDir),
    (b'u', Opt::User),
    (b'd', Opt::Daemon),
    (b'l', Opt::LogLevel),
];

/// Salt's level names, in the order its "invalid choice" message lists them.
const LEVEL_CHOICES: &str =
    "'all', 'debug', 'error', 'critical', 'garbage', 'info', 'profile', 'quiet', 'trace', 'warning'";

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// optparse's `_match_abbrev`: an exact name, else the one name it prefixes.
fn match_long(name: &[u8]) -> Result<(&'static str, Opt), String> {
    if let Some(&(full, opt)) = LONG.iter().find(|(l, _)| l.as_bytes() == name) {
        return Ok((full, opt));
    }
    let mut hits: Vec<(&'static str, Opt)> = LONG
        .iter()
        .copied()
        .filter(|(l, _)| l.as_bytes().starts_with(name))
        .collect();
    match hits.len() {
        0 => Err(format!("no such option: --{}", lossy(name))),
        1 => Ok(hits[0]),
        _ => {
            hits.sort_by_key(|(l, _)| *l);
            let names: Vec<String> = hits.iter().map(|(l, _)| format!("--{l}")).collect();
            Err(format!("ambiguous option: --{} ({}?)", lossy(name), names.join(", ")))
        }
    }
}

fn utf8(name: &str, v: OsString) -> Result<String, String> {
    v.into_string()
        .map_err(|v| format!("option {name}: not valid UTF-8: {}", v.to_string_lossy()))
}

fn level(name: &str, v: OsString) -> Result<String, String> {
    let v = utf8(name, v)?;
    if brine_config::parse_log_level(&v).is_none() {
        return Err(format!(
            "option {name}: invalid choice: '{v}' (choose from {LEVEL_CHOICES})"
        ));
    }
    Ok(v)
}

/// Apply one option (`name` as the user wrote it, for messages); Some when
/// it ends the parse (`--help`, `--version`).
fn apply(o: &mut Options, opt: Opt, name: &str, value: Option<OsString>) -> Result<Option<Parsed>, String> {
    let value = value.unwrap_or_default();
    match opt {
        Opt::Help => return Ok(Some(Parsed::Help)),
        Opt::Version => return Ok(Some(Parsed::Version)),
        Opt::Daemon => o.daemon = true,
        Opt::ConfigDir => o.config_dir = PathBuf::from(value),
        Opt::PidFile => o.pid_file = Some(PathBuf::from(value)),
        Opt::User => o.user = Some(utf8(name, value)?),
        Opt::LogFile => o.log_file = Some(utf8(name, value)?),
        Opt::LogLevel => o.log_level = Some(level(name, value)?),
        Opt::LogFileLevel => o.log_file_level = Some(level(name, value)?),
        Opt::Out => {
            let v = utf8(name, value)?;
            if !matches!(v.as_str(), "json" | "table") {
                return Err(format!(
                    "option {name}: invalid choice: '{v}' (choose from 'json', 'table')"
                ));
            }
            o.out = Some(v);
        }
    }
    Ok(None)
}

/// Parse argv (without argv[0]).
pub fn parse<A: AsRef<OsStr>>(args: &[A]) -> Result<Parsed, String> {
    let mut o = Options {
        config_dir: PathBuf::from("/etc/salt"),
        ..Default::default()
    };
    let mut status = false;
    let mut rest = args.iter().map(|a| a.as_ref().as_bytes());
    while let Some(arg) = rest.next() {
        if arg == b"--" {
            // The end of the options: salt-master takes no arguments.
            return match rest.next() {
                Some(a) => Err(format!("unexpected argument: {}", lossy(a))),
                None => finish(o, status),
            };
        }
        if arg == b"status" && !status {
            status = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix(b"--") {
            let (name, inline) = match long.iter().position(|&c| c == b'=') {
                Some(i) => (&long[..i], Some(&long[i + 1..])),
                None => (long, None),
            };
            let (full, opt) = match_long(name)?;
            let name = format!("--{full}");
            let value = match (opt.takes_value(), inline) {
                (true, Some(v)) => Some(v),
                (true, None) => Some(
                    rest.next()
                        .ok_or_else(|| format!("{name} option requires 1 argument"))?,
                ),
                (false, Some(_)) => return Err(format!("{name} option does not take a value")),
                (false, None) => None,
            };
            if let Some(done) = apply(&mut o, opt, &name, value.map(|v| OsStr::from_bytes(v).to_owned()))? {
                return Ok(done);
            }
        } else if arg.len() > 1 && arg[0] == b'-' {
            let mut i = 1;
            while i < arg.len() {
                let Some(&(c, opt)) = SHORT.iter().find(|(c, _)| *c == arg[i]) else {
                    let ch = lossy(&arg[i..]).chars().next().unwrap_or('?');
                    return Err(format!("no such option: -{ch}"));
                };
                let name = format!("-{}", c as char);
                i += 1;
                let value = if !opt.takes_value() {
                    None
                } else if i < arg.len() {
                    // The rest of this argument is the value (`-cDIR`).
                    let v = &arg[i..];
                    i = arg.len();
                    Some(v)
                } else {
                    Some(
                        rest.next()
                            .ok_or_else(|| format!("{name} option requires 1 argument"))?,
                    )
                };
                if let Some(done) = apply(&mut o, opt, &name, value.map(|v| OsStr::from_bytes(v).to_owned()))? {
                    return Ok(done);
                }
            }
        } else {
            return Err(format!("unexpected argument: {}", lossy(arg)));
        }
    }
    finish(o, status)
}

fn finish(o: Options, status: bool) -> Result<Parsed, String> {
    if status {
        return Ok(Parsed::Status(o));
    }
    if o.out.is_some() {
        return Err("--out is an option of salt-master status".into());
    }
    Ok(Parsed::Run(o))
}

/// Load the configuration of `-c` and apply the command-line overrides.
pub fn load_config(opts: &Options) -> Result<MasterConfig> {
    let dir = std::path::absolute(&opts.config_dir).unwrap_or_else(|_| opts.config_dir.clone());
    let mut cfg = MasterConfig::load(&dir)?;
    if let Some(p) = &opts.pid_file {
        cfg.pidfile = std::path::absolute(p).unwrap_or_else(|_| p.clone());
    }
    if let Some(l) = &opts.log_level {
        cfg.log_level = l.clone();
        // Salt: the logfile level follows -l unless set on its own.
        if opts.log_file_level.is_none() && cfg.get("log_level_logfile").is_none_or(|v| v.is_null()) {
            cfg.log_level_logfile = l.clone();
        }
    }
    if let Some(l) = &opts.log_file_level {
        cfg.log_level_logfile = l.clone();
    }
    if let Some(f) = &opts.log_file {
        cfg.log_file = f.clone();
    }
    if let Some(u) = &opts.user {
        cfg.user = u.clone();
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn p(args: &[&str]) -> Result<Parsed, String> {
        parse(args)
    }

    fn run(args: &[&str]) -> Options {
        match p(args) {
            Ok(Parsed::Run(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn salt_style_options() {
        let o = run(&[
            "-c",
            "/tmp/x",
            "-d",
            "--pid-file=/tmp/p",
            "-ldebug",
            "--log-file-level",
            "info",
            "-u",
            "salt",
        ]);
        assert_eq!(o.config_dir, PathBuf::from("/tmp/x"));
        assert!(o.daemon);
        assert_eq!(o.pid_file, Some(PathBuf::from("/tmp/p")));
        assert_eq!(o.log_level.as_deref(), Some("debug"));
        assert_eq!(o.log_file_level.as_deref(), Some("info"));
        assert_eq!(o.user.as_deref(), Some("salt"));
        assert_eq!(run(&["--config-dir=/c"]).config_dir, PathBuf::from("/c"));
        assert_eq!(p(&["--version"]).unwrap(), Parsed::Version);
        assert_eq!(p(&["-V"]).unwrap(), Parsed::Version);
        assert_eq!(p(&["-h"]).unwrap(), Parsed::Help);
        assert_eq!(run(&[]).config_dir, PathBuf::from("/etc/salt"));
    }

    #[test]
    fn optparse_forms() {
        // Bundled short flags, the last one taking the rest or the next arg.
        let o = run(&["-dl", "info", "-dcé/conf"]);
        assert!(o.daemon);
        assert_eq!(o.log_level.as_deref(), Some("info"));
        assert_eq!(o.config_dir, PathBuf::from("é/conf"));
        assert_eq!(p(&["-dh"]).unwrap(), Parsed::Help);
        // Unambiguous prefixes of long options; an exact name wins.
        assert_eq!(run(&["--conf=/c"]).config_dir, PathBuf::from("/c"));
        assert_eq!(run(&["--pid", "/p"]).pid_file, Some(PathBuf::from("/p")));
        assert_eq!(run(&["--log-file", "/l"]).log_file.as_deref(), Some("/l"));
        assert_eq!(run(&["--log-file=a=b"]).log_file.as_deref(), Some("a=b"));
        // A value may look like an option, be empty or non-ASCII.
        assert_eq!(run(&["-c", "--daemon"]).config_dir, PathBuf::from("--daemon"));
        assert_eq!(run(&["-u", ""]).user.as_deref(), Some(""));
        assert_eq!(run(&["--user=ünï"]).user.as_deref(), Some("ünï"));
        // `--` ends the options.
        assert!(run(&["-d", "--"]).daemon);
        // Processed in order, as optparse does: --help before a bad option wins.
        assert_eq!(p(&["--help", "--bogus"]).unwrap(), Parsed::Help);
    }

    #[test]
    fn status_and_its_output() {
        let status = |args: &[&str]| match p(args) {
            Ok(Parsed::Status(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(status(&["status"]).out, None);
        let o = status(&["-c", "/c", "status", "--out=json"]);
        assert_eq!((o.config_dir, o.out.as_deref()), (PathBuf::from("/c"), Some("json")));
        assert_eq!(status(&["--out", "table", "status"]).out.as_deref(), Some("table"));
        let err = |args: &[&str]| p(args).unwrap_err();
        assert_eq!(err(&["--out=json"]), "--out is an option of salt-master status");
        assert_eq!(err(&["status", "status"]), "unexpected argument: status");
        assert_eq!(
            err(&["status", "--out=yaml"]),
            "option --out: invalid choice: 'yaml' (choose from 'json', 'table')"
        );
        assert_eq!(err(&["--", "status"]), "unexpected argument: status");
    }

    #[test]
    fn bad_options() {
        let err = |args: &[&str]| p(args).unwrap_err();
        assert_eq!(err(&["-c"]), "-c option requires 1 argument");
        assert_eq!(err(&["--config-dir"]), "--config-dir option requires 1 argument");
        assert_eq!(err(&["--bogus"]), "no such option: --bogus");
        assert_eq!(err(&["-é"]), "no such option: -é");
        assert_eq!(err(&["-dé"]), "no such option: -é");
        assert_eq!(err(&["--é=1"]), "no such option: --é");
        assert_eq!(err(&["stray"]), "unexpected argument: stray");
        assert_eq!(err(&[""]), "unexpected argument: ");
        assert_eq!(err(&["-"]), "unexpected argument: -");
        assert_eq!(err(&["--", "x"]), "unexpected argument: x");
        assert_eq!(err(&["--daemon=yes"]), "--daemon option does not take a value");
        assert_eq!(
            err(&["--log"]),
            "ambiguous option: --log (--log-file, --log-file-level, --log-level?)"
        );
        assert_eq!(
            err(&["--vers"]),
            "ambiguous option: --vers (--version, --versions-report?)"
        );
        assert!(err(&["-l", "loud"]).starts_with("option -l: invalid choice: 'loud' (choose from 'all',"));
        assert!(err(&["--log-file-level=x"]).starts_with("option --log-file-level: invalid choice: 'x'"));
        let not_utf8 = OsString::from_vec(vec![b'-', b'u', 0xff]);
        assert_eq!(parse(&[not_utf8]).unwrap_err(), "option -u: not valid UTF-8: \u{fffd}");
        let not_utf8 = OsString::from_vec(vec![b'-', 0xff]);
        assert_eq!(parse(&[not_utf8]).unwrap_err(), "no such option: -\u{fffd}");
        // A path need not be UTF-8.
        let dir = OsString::from_vec(vec![b'/', 0xff]);
        match parse(&[OsString::from("-c"), dir.clone()]) {
            Ok(Parsed::Run(o)) => assert_eq!(o.config_dir.as_os_str(), dir.as_os_str()),
            other => panic!("{other:?}"),
        }
    }
}
