//! `brine-manual OUT_DIR`: the man pages and shell completions of
//! `salt-master`, `salt`, `salt-run` and `salt-key`, generated from the help
//! text each prints (brine_cli::manual), written under OUT_DIR as Debian
//! lays them out under /usr/share:
//!
//!   man/man1/<command>.1
//!   bash-completion/completions/<command>
//!   zsh/vendor-completions/_<command>
//!
//! scripts/package runs it for the .deb.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use brine_cli::manual::{self, Page};

/// salt-master's page: its help text lives in this crate.
fn master_page() -> Page {
    Page {
        name: "salt-master",
        summary: "the Salt master daemon (Brine)",
        help: brine_master::cli::USAGE.to_string(),
        description: &[
            "Brine's salt-master takes Salt's configuration, directories, ports (4505 \
             publish, 4506 requests) and protocol: unmodified salt-minions, Salt's salt, \
             salt-key and salt-run and salt-api work against it. Its processes carry Salt's \
             titles (ProcessManager, MWorkerQueue, MWorker-N, ...).",
            "SIGTERM and SIGINT stop every process in order; SIGHUP reopens the log files. \
             Run as root with the user option (or -u) set, the master hands its directories \
             to that user and drops its privileges, as Salt does.",
        ],
        files: &[
            (
                "/etc/salt/master",
                "The master's configuration (with -c DIR: DIR/master). Salt's options and \
                 defaults; root_dir is prepended to the paths below.",
            ),
            (
                "/etc/salt/master.d/*.conf",
                "More configuration, read after the master file (default_include).",
            ),
            (
                "/etc/salt/pki/master",
                "pki_dir: the master's key pair (master.pem, master.pub) and the minions' keys.",
            ),
            (
                "/var/cache/salt/master",
                "cachedir: the job cache (jobs/), the minion data cache, tokens.",
            ),
            ("/var/run/salt/master", "sock_dir: the event bus sockets."),
            ("/var/run/salt-master.pid", "pidfile: the ProcessManager's pid."),
            ("/var/log/salt/master", "log_file."),
        ],
        see_also: &["salt(1)", "salt-key(1)", "salt-run(1)", "salt-minion(1)"],
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out] = args.as_slice() else {
        bail!("usage: brine-manual OUT_DIR");
    };
    let out = PathBuf::from(out);
    let mut pages = vec![master_page()];
    pages.extend(manual::cli_pages());
    for page in &pages {
        let files = manual::render_all(page, env!("CARGO_PKG_VERSION"))
            .with_context(|| format!("reading the help of {}", page.name))?;
        for (path, text) in files {
            let path = out.join(path);
            std::fs::create_dir_all(path.parent().expect("a file in a directory"))
                .with_context(|| format!("creating the directory of {}", path.display()))?;
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            println!("{}", path.display());
        }
    }
    Ok(())
}
