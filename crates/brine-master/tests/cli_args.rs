//! The real `salt-master` binary against a few hundred random command
//! lines: it never panics or dies of a signal; a bad command line is a
//! usage error (exit 64, Salt's EX_USAGE), `--help`/`--version` exit 0, and any command line
//! it accepts goes on to read the configuration, which is broken on
//! purpose here, so no master ever starts.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use brine_master::cli::{self, Parsed};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_salt-master");

/// xorshift64*: deterministic, so a failure is reproducible from its index.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A config dir whose `master` does not parse.
fn bad_config(root: &Path) -> PathBuf {
    let conf = root.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("master"), "worker_threads: 3\n  bad: [indent\n").unwrap();
    conf
}

/// One random command line. It always starts with `-c <bad>`, and every
/// later config-dir option names the same dir, so whatever parses reads
/// the broken config (no generated token is a prefix of `--config-dir`
/// and no random short bundle contains `c`).
fn argv(rng: &mut Rng, bad: &str, tmp: &Path) -> Vec<OsString> {
    const LEVELS: [&str; 8] = ["debug", "info", "warning", "quiet", "TRACE", "loud", "", "é"];
    const UNKNOWN_LONG: [&str; 16] = [
        "--bogus",
        "--frobnicate=1",
        "--daemonize",
        "--daemon=yes",
        "--help=me",
        "--é",
        "--ünknown=ä",
        "--=x",
        "---",
        "--saltfile=x",
        "--hard-crash",
        "--disable-keepalive",
        "--log",
        "--vers",
        "--user-name=x",
        "--pid-file-x",
    ];
    const SHORT_CHARS: [&str; 14] = ["d", "x", "Z", "é", "日", "h", "V", "l", "u", "q", "-", "=", "ḋ", "0"];
    const JUNK: [&str; 10] = ["", "-", "stray", "é", "日本語", "=", "a=b", "--", "\u{7f}", " "];
    // Built in groups (an option and its value) so that junk is only ever
    // inserted between groups, never between an option and its value.
    let mut groups: Vec<Vec<OsString>> = vec![vec!["-c".into(), bad.into()]];
    for _ in 0..rng.below(7) {
        let mut v: Vec<OsString> = Vec::new();
        match rng.below(14) {
            0 => v.push(rng.pick(&["-d", "--daemon", "--dae", "-dd"]).into()),
            1 => {
                if rng.below(3) == 0 {
                    v.push(
                        rng.pick(&["-h", "--help", "--he", "--version", "-V", "--versions-report"])
                            .into(),
                    );
                }
            }
            2 => match rng.below(4) {
                0 => v.push(format!("-c{bad}").into()),
                1 => v.push(format!("--config-dir={bad}").into()),
                2 => v.extend(["--conf".into(), bad.into()]),
                _ => v.extend(["-dc".into(), bad.into()]),
            },
            3 => {
                let lvl = rng.pick(&LEVELS);
                match rng.below(4) {
                    0 => v.extend(["-l".into(), lvl.into()]),
                    1 => v.push(format!("-l{lvl}").into()),
                    2 => v.push(format!("--log-level={lvl}").into()),
                    _ => v.extend(["--log-file-level".into(), lvl.into()]),
                }
            }
            4 => v.push(format!("--log-file={}", tmp.join("log").display()).into()),
            5 => v.extend(["--pid-file".into(), tmp.join("pid").into_os_string()]),
            6 => v.extend(["-u".into(), rng.pick(&["nobody", "", "ünï", "root"]).into()]),
            7 => v.push(rng.pick(&UNKNOWN_LONG).into()),
            8 => {
                let s: String = (0..1 + rng.below(4)).map(|_| rng.pick(&SHORT_CHARS)).collect();
                v.push(format!("-{s}").into());
            }
            9 => v.push(rng.pick(&JUNK).into()),
            10 => {
                // Very long arguments (one argument may be up to 128 KiB).
                let n = 1 + rng.below(100_000);
                v.push(
                    match rng.below(3) {
                        0 => format!("--{}", "x".repeat(n)),
                        1 => format!("--log-file={}", "a".repeat(n)),
                        _ => format!("-{}", "d".repeat(n)),
                    }
                    .into(),
                );
            }
            11 => {
                // Not UTF-8 at all.
                let mut b = vec![b'-'];
                b.extend((0..1 + rng.below(3)).map(|_| 0x80 + rng.below(0x80) as u8));
                v.push(OsString::from_vec(b));
            }
            12 => v.extend(["-u".into(), OsString::from_vec(vec![0xff, b'x'])]),
            _ => {
                // An option that needs a value, last, without one.
                if rng.below(2) == 0 {
                    groups.push(vec![rng
                        .pick(&["-l", "-u", "--pid-file", "--log-file", "--config-dir"])
                        .into()]);
                    break;
                }
            }
        }
        groups.push(v);
    }
    if rng.below(4) == 0 {
        let i = rng.below(groups.len() + 1);
        groups.insert(i, vec![rng.pick(&JUNK).into()]);
    }
    groups.concat()
}

/// Run the binary; a process that is still there after 20 s is killed
/// (with its group) and fails the test.
fn run(args: &[OsString]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(out) => return out.unwrap(),
            Err(_) if Instant::now() < deadline => {}
            Err(_) => {
                let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                panic!("salt-master {args:?} still running after 20 s (killed)");
            }
        }
    }
}

#[test]
fn random_command_lines_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = bad_config(tmp.path());
    let bad = conf.display().to_string();
    let master = conf.join("master").display().to_string();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seen = [0usize; 3];
    for i in 0..400 {
        let args = argv(&mut rng, &bad, tmp.path());
        let parsed = cli::parse(&args);
        // Never start a master on another config: that is a bug of argv().
        if let Ok(Parsed::Run(o)) = &parsed {
            assert_eq!(o.config_dir, conf, "generator bug, not run: {args:?}");
        }
        let out = run(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = || format!("#{i}: salt-master {args:?}\nstdout: {stdout}\nstderr: {stderr}");
        assert!(!stderr.contains("panicked"), "{}", what());
        let code = out
            .status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {}", what()));
        match parsed {
            Ok(Parsed::Help | Parsed::Version) => {
                assert_eq!(code, 0, "{}", what());
                assert!(
                    stdout.starts_with("Usage: salt-master") || stdout.starts_with("salt-master "),
                    "{}",
                    what()
                );
                seen[0] += 1;
            }
            Err(e) => {
                assert_eq!(code, cli::EX_USAGE, "{}", what());
                assert_eq!(
                    stderr,
                    format!("Usage: salt-master [options]\n\nsalt-master: error: {e}\n"),
                    "{}",
                    what()
                );
                seen[1] += 1;
            }
            // `status` on the broken configuration: its state is unknown.
            Ok(Parsed::Status(_)) => {
                assert_eq!(code, brine_master::status::UNKNOWN, "{}", what());
                assert!(stderr.contains(&master), "{}", what());
            }
            Ok(Parsed::Run(_)) => {
                assert_eq!(code, 1, "{}", what());
                assert!(
                    stderr.contains("salt-master: error:") && stderr.contains(&master),
                    "{}",
                    what()
                );
                seen[2] += 1;
            }
        }
    }
    // Every outcome was exercised.
    eprintln!("help/version, usage errors, config errors: {seen:?}");
    assert!(seen.iter().all(|&n| n >= 10), "every outcome exercised");
    // Nothing was started: no pidfile, no log file, no pki dir.
    for name in ["pid", "log", "pki"] {
        assert!(!tmp.path().join(name).exists(), "{name} was created");
    }
}

#[test]
fn usage_errors_as_salt_words_them() {
    for (args, msg) in [
        (&["-é"][..], "no such option: -é"),
        (&["--bogus"], "no such option: --bogus"),
        (&["-c"], "-c option requires 1 argument"),
        (&["--daemon=yes"], "--daemon option does not take a value"),
        (
            &["--log"],
            "ambiguous option: --log (--log-file, --log-file-level, --log-level?)",
        ),
    ] {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let out = run(&args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("Usage: salt-master [options]\n\nsalt-master: error: {msg}\n")
        );
        assert!(out.stdout.is_empty());
    }
    let out = run(&["-dh".into()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Usage: salt-master [options]\n"));
}

/// Python's salt-master (3006.30 and 3007.17) against the same bad command
/// lines: the same status and the same stderr. Its parser stops at the
/// first error, before it reads any configuration.
#[test]
fn usage_errors_match_python_salt_master() {
    let cases: [&[&str]; 6] = [
        &["-é"],
        &["--bogus"],
        &["-c"],
        &["--daemon=yes"],
        &["--log"],
        &["-d", "--nope", "-c", "/nonexistent"],
    ];
    for version in ["3006.30", "3007.17"] {
        let python = brine_testutil::salt_venv(version).join("bin/salt-master");
        for args in cases {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            let theirs = Command::new(&python).args(&args).stdin(Stdio::null()).output().unwrap();
            let ours = run(&args);
            assert_eq!(ours.status.code(), theirs.status.code(), "{version} {args:?}");
            assert_eq!(
                String::from_utf8_lossy(&ours.stderr),
                String::from_utf8_lossy(&theirs.stderr),
                "{version} {args:?}"
            );
        }
    }
}
