//! `brine-manual`: salt-master's help read back whole, every spelling it
//! documents (and its completions offer) accepted by salt-master's parser,
//! and the generated files checked by the tools that read them: bash and
//! zsh (`-n`, and bash completing for real), man/groff or mandoc.

use std::path::Path;
use std::process::Command;

use brine_cli::manual;
use brine_master::cli;

const MANUAL: &str = env!("CARGO_BIN_EXE_brine-manual");
const COMMANDS: [&str; 4] = ["salt-master", "salt", "salt-run", "salt-key"];

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn salt_master_accepts_every_documented_spelling() {
    let help = manual::parse(cli::USAGE).unwrap();
    assert_eq!(help.name, "salt-master");
    let names: Vec<&str> = help.flags().iter().map(|(f, _)| f.name.as_str()).collect();
    for want in [
        "--version",
        "-V",
        "-h",
        "-c",
        "--config-dir",
        "-u",
        "-d",
        "--pid-file",
        "-l",
        "--log-file-level",
    ] {
        assert!(
            names.contains(&want),
            "{want} not read from salt-master's help: {names:?}"
        );
    }
    let commands: Vec<&str> = help.commands().into_iter().map(|(c, _)| c).collect();
    for command in &commands {
        let parsed = cli::parse(&[command]);
        assert!(parsed.is_ok(), "salt-master {command}: {parsed:?}");
    }
    // Each spelling alone, or with one of the commands (an option of
    // `salt-master status` only).
    for args in manual::invocations(&help) {
        let with = |c: &str| [args.clone(), vec![c.to_string()]].concat();
        let ok = cli::parse(&args).is_ok() || commands.iter().any(|c| cli::parse(&with(c)).is_ok());
        assert!(ok, "salt-master {args:?}: {:?}", cli::parse(&args));
    }
}

fn generate(out: &Path) {
    let o = Command::new(MANUAL).arg(out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for c in COMMANDS {
        for p in [manual::man_path(c), manual::bash_path(c), manual::zsh_path(c)] {
            assert!(out.join(&p).is_file(), "no {p}");
        }
    }
}

#[test]
fn generated_files_pass_their_tools() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    generate(out);
    for c in COMMANDS {
        let bash = out.join(manual::bash_path(c));
        let o = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
        assert!(
            o.status.success(),
            "bash -n {c}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        if have("zsh") {
            let zsh = out.join(manual::zsh_path(c));
            let o = Command::new("zsh").arg("-n").arg(&zsh).output().unwrap();
            assert!(o.status.success(), "zsh -n {c}: {}", String::from_utf8_lossy(&o.stderr));
        } else {
            eprintln!("zsh is not installed: the zsh completions are not checked");
        }
        let man = out.join(manual::man_path(c));
        if have("groff") {
            // Every warning groff has, as errors on stderr.
            let o = Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(&man)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success() && err.trim().is_empty(), "groff {c}: {err}");
        } else if have("mandoc") {
            let o = Command::new("mandoc")
                .args(["-T", "lint", "-W", "warning"])
                .arg(&man)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(o.status.success(), "mandoc -T lint {c}: {text}");
        } else {
            eprintln!("neither groff nor mandoc is installed: the man pages are not checked");
        }
    }
    if have("man") && have("groff") {
        let o = Command::new("man")
            .arg("-l")
            .arg(out.join(manual::man_path("salt-master")))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        for want in [
            "NAME",
            "salt-master - the Salt master daemon",
            "--config-dir=CONFIG_DIR",
            "Logging Options",
            "FILES",
        ] {
            assert!(text.contains(want), "no {want:?} in man -l salt-master.1:\n{text}");
        }
    }
}

/// What bash offers after `words` (the last one being completed), with the
/// generated script loaded as bash-completion would.
fn complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\nfunc=$(complete -p {} | awk '{{print $3}}')\n\"$func\"\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        words[0]
    );
    let o = Command::new("bash").args(["-c", &program]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_options_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    generate(out);
    let master = out.join(manual::bash_path("salt-master"));
    assert_eq!(
        complete(&master, &["salt-master", "--log-f"]),
        ["--log-file=", "--log-file-level="]
    );
    assert_eq!(complete(&master, &["salt-master", "-l", "de"]), ["debug"]);
    // bash splits `--log-level=de` at `=`.
    assert_eq!(complete(&master, &["salt-master", "--log-level", "=", "tr"]), ["trace"]);
    let key = out.join(manual::bash_path("salt-key"));
    assert_eq!(complete(&key, &["salt-key", "--include-r"]), ["--include-rejected"]);
    let salt = out.join(manual::bash_path("salt"));
    assert_eq!(complete(&salt, &["salt", "--out", "js"]), ["json"]);
    assert_eq!(complete(&salt, &["salt", "--state-output=te"]), ["terse"]);
    std::fs::create_dir(out.join("confdir")).unwrap();
    let dirs = complete(&salt, &["salt", "-c", &format!("{}/conf", out.display())]);
    assert_eq!(dirs, [format!("{}/confdir", out.display())]);
}
