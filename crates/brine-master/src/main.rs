//! `salt-master`: the start-up sequence. Each step is one call, in the
//! order Salt's master takes them: parse the command line, read the
//! configuration, prepare the environment (directories, pidfile, daemon,
//! keys, user), start logging, then fork the process tree and supervise it.

use std::ffi::OsString;
use std::rc::Rc;

use anyhow::{Context, Result};
use brine_master::cli::{self, Options, Parsed};
use brine_master::{manager, names, pki, roles, setup};
use brine_proc::pidfile::Pidfile;

fn main() {
    std::process::exit(run());
}

/// The exit status: 0, `cli::EX_USAGE` for a bad command line, 1 when the
/// master cannot start or stops on a fatal error.
fn run() -> i32 {
    // A runner job the master started (runjobs): not a master.
    if std::env::var_os(brine_master::runjobs::JOB_ENV).is_some() {
        return brine_master::runjobs::child_main();
    }
    // First, while argv and environ are untouched and nothing else runs:
    // room for the process titles (this may re-exec with a bigger area).
    if brine_proc::title::init().is_ok() {
        let _ = brine_proc::title::ensure_capacity(names::LONGEST);
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let opts = match cli::parse(&args) {
        Ok(Parsed::Run(opts)) => opts,
        Ok(Parsed::Status(opts)) => return brine_master::status::main(&opts),
        Ok(Parsed::Help) => {
            print!("{}", cli::USAGE);
            return 0;
        }
        Ok(Parsed::Version) => {
            println!("salt-master {} (Brine)", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Err(e) => {
            eprint!("{}\n\nsalt-master: error: {e}\n", cli::USAGE_LINE);
            return cli::EX_USAGE;
        }
    };
    match start(&opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("salt-master: error: {e:#}");
            1
        }
    }
}

/// Run the master until SIGTERM/SIGINT (Ok) or a fatal error (Err).
fn start(opts: &Options) -> Result<()> {
    // Configuration. Until it is read, log to stderr at -l's level.
    brine_log::init(setup::level_filter(opts.log_level.as_deref().unwrap_or("warning")));
    let cfg = cli::load_config(opts)?;
    let mut logging = roles::logging::Settings::from_config(&cfg, !opts.daemon);
    brine_log::set_level(logging.console_level.max(logging.file_level));
    brine_log::to_stderr(logging.console_fmt.clone());

    // Directories, pidfile lock, daemon.
    setup::prepare_dirs(&cfg)?;
    let mut pidfile = Pidfile::acquire(&cfg.pidfile)?;
    if opts.daemon {
        setup::daemonize().context("cannot daemonize")?;
    }

    // Keys. master.pem is read and checked once, here: the children
    // inherit it through fork (loading it costs a PEM parse and a
    // consistency test).
    let keys = Rc::new(pki::ensure_master_keys(&cfg).map_err(anyhow::Error::msg)?);
    pki::ensure_user_keys(&cfg).map_err(anyhow::Error::msg)?;
    // A stale AES-rotation request is dropped at start-up, as Salt's
    // ReqServer does: the AES key is new anyway.
    let _ = std::fs::remove_file(cfg.cachedir.join(".dfn"));

    // The log file is opened as root, as Salt does; then user, limits, and
    // the pid (written as the user).
    logging
        .open_file()
        .with_context(|| format!("cannot open the log file {}", cfg.log_file))?;
    setup::switch_user(&cfg)?;
    setup::raise_nofile(cfg.max_open_files);
    pidfile
        .write_pid(std::process::id())
        .with_context(|| format!("cannot write {}", cfg.pidfile.display()))?;

    // Logging: from here every process sends its records over this channel
    // to the MultiprocessingLoggingQueue, the first child forked.
    let (log_tx, log_rx) = brine_log::channel().context("cannot create the logging channel")?;
    brine_log::forward_to(log_tx.into());

    // The process tree.
    let result = manager::run(Rc::new(cfg), keys, logging, log_rx.into(), &pidfile);
    pidfile.remove();
    result
}
