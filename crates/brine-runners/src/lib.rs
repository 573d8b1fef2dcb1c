//! Salt's runner functions, run by the master: for `salt-run` and
//! salt-api (the `runner` clear command, Salt's `ClearFuncs.runner`),
//! for minions (`publish.runner`, allowed by `peer_run`), for the
//! reactor and for orchestrations. Each call is a job as Salt's
//! `RunnerClient.low` makes it: a jid, `salt/run/<jid>/new` and
//! `salt/run/<jid>/ret` on the event bus, and the job in the job cache
//! under the master's id. The master runs each job in a process of its
//! own, never in an MWorker (brine-master's `runjobs`).
//!
//! Outputs are what Python's runners give against the same job cache,
//! minion data cache and minions. `manage.*` publish `test.ping` through
//! the master's own request port, with the master user's key, as Salt's
//! runner LocalClient does.

mod cache;
mod fileserver;
mod jobs;
mod manage;
mod matching;
mod pillar;
mod state;
mod test;

use brine_cache::Jid;
use brine_client::low::CallArgs;
use brine_config::MasterConfig;
use brine_loader::returners::job_cache;
use brine_proto::event::stamp;
use brine_proto::Value;
use brine_py::{fnmatch, text};
use log::{info, warn};

/// The runner functions the master has, each with its documentation
/// (`salt-run --doc`, `doc.runner`).
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("cache.clear_all", "Clear the cached pillar, grains and mine data of the targeted minions: cache.clear_all <tgt> [tgt_type]"),
    ("cache.clear_grains", "Clear the cached grains of the targeted minions: cache.clear_grains <tgt> [tgt_type]"),
    ("cache.clear_mine", "Clear the cached mine data of the targeted minions: cache.clear_mine <tgt> [tgt_type]"),
    ("cache.clear_mine_func", "Clear one mine function's cached data: cache.clear_mine_func <tgt> [tgt_type] clear_mine_func_flag=<function>"),
    ("cache.clear_pillar", "Clear the cached pillar of the targeted minions: cache.clear_pillar <tgt> [tgt_type]"),
    ("cache.grains", "The cached grains of the targeted minions: cache.grains <tgt> [tgt_type]"),
    ("cache.mine", "The cached mine data of the targeted minions: cache.mine [tgt] [tgt_type]"),
    ("cache.pillar", "The cached pillar of the targeted minions: cache.pillar [tgt] [tgt_type]"),
    ("doc.runner", "The documentation of every runner function the master has."),
    ("event.send", "Fire an event on the master event bus: event.send <tag> [data={...}].\nThe data must be a dict; the tag is used as given."),
    ("fileserver.clear_file_list_cache", "Clear the fileserver's file list caches on disk: fileserver.clear_file_list_cache [saltenv] [backend]"),
    ("fileserver.dir_list", "The directories of a fileserver environment: fileserver.dir_list [saltenv=base] [backend]"),
    ("fileserver.empty_dir_list", "The empty directories of a fileserver environment: fileserver.empty_dir_list [saltenv=base] [backend]"),
    ("fileserver.envs", "The fileserver environments: fileserver.envs [backend]"),
    ("fileserver.file_list", "The files of a fileserver environment: fileserver.file_list [saltenv=base] [backend]"),
    ("fileserver.symlink_list", "The symlinks of a fileserver environment: fileserver.symlink_list [saltenv=base] [backend]"),
    ("fileserver.update", "Update the fileserver backends' caches: fileserver.update [backend]"),
    ("jobs.active", "The jobs running on the minions (saltutil.running), with the minions that returned already."),
    ("jobs.exit_success", "Whether each minion's return of a job is a success: jobs.exit_success <jid>"),
    ("jobs.last_run", "The last job in the job cache, optionally by metadata, function or target: jobs.last_run [metadata={...}] [function=glob] [target=glob]"),
    ("jobs.list_job", "The load and the returns of one job from the job cache: jobs.list_job <jid>"),
    ("jobs.list_jobs", "The jobs in the job cache: jobs.list_jobs [search_metadata={...}] [search_function=glob,...] [search_target=glob,...] [start_time=...] [end_time=...]"),
    ("jobs.lookup_jid", "The returns of a job from the job cache: jobs.lookup_jid <jid> [missing=True] [returned=False]"),
    ("jobs.print_job", "The job's load and returns, keyed by jid: jobs.print_job <jid>"),
    ("manage.allowed", "The minions connected to the publish port: manage.allowed [subset] [show_ip]"),
    ("manage.down", "The minions that do not answer a test.ping: manage.down [removekeys=False] [tgt] [tgt_type] [timeout]"),
    ("manage.joined", "The minions connected to the publish port: manage.joined [subset] [show_ip]"),
    ("manage.not_present", "The accepted minions not connected to the publish port: manage.not_present [subset]"),
    ("manage.present", "The minions connected to the publish port: manage.present [subset] [show_ip]"),
    ("manage.status", "The minions that answer a test.ping and those that do not: manage.status [tgt] [tgt_type] [timeout]"),
    ("manage.up", "The minions that answer a test.ping: manage.up [tgt] [tgt_type] [timeout] [show_ip]"),
    ("manage.versions", "The Salt version of each minion against the master's."),
    ("match.compound_matches", "Whether a minion matches a compound expression by the minion data cache:\nmatch.compound_matches <expr> <minion_id> -> {res: minion_id | False}"),
    ("pillar.show_pillar", "The pillar the master compiles for a minion (grains from the minion data cache): pillar.show_pillar [minion] [saltenv=...] [pillarenv=...]"),
    ("salt.cmd", "Run an execution function on the master: salt.cmd <fun> [args...] [key=value...]. Brine's master has test.ping, test.echo, test.arg, test.true, test.false and test.version."),
    ("state.orch", "An alias of state.orchestrate."),
    ("state.orchestrate", "Run an orchestration: the SLS files named, from the master's file_roots, with Salt's requisites; steps are salt.function, salt.state, salt.runner, salt.wheel, salt.wait_for_event and test.* states:\nstate.orchestrate <mods> [saltenv=base] [test=True] [pillar={...}] [pillarenv=...] [exclude=...]"),
    ("state.sls", "An alias of state.orchestrate (on the master)."),
    ("test.arg", "The arguments given, keyword arguments whose names start with __ left out: test.arg [args...] [key=value...]"),
    ("test.get_opts", "The master's configuration options."),
    ("test.metasyntactic", "Common metasyntactic variables: test.metasyntactic [locality=us|uk]"),
    ("test.raw_arg", "The arguments given, every keyword argument kept: test.raw_arg [args...] [key=value...]"),
    ("test.sleep", "Sleep, then return True: test.sleep [s_time=10]"),
    ("test.stdout_print", "Return 'bar' (Salt's also prints 'foo' on the master's stdout)."),
    ("test.stream", "Fire 99 progress events, one every 0.1 s, then return True."),
    ("pillar.show_top", "The pillar top data for a minion: pillar.show_top [minion] [saltenv=base]"),
];

/// Whether the master has the runner function `fun`.
pub fn available(fun: &str) -> bool {
    FUNCTIONS.iter().any(|(f, _)| *f == fun)
}

/// [`docs`], with the functions Salt's Python runs on this master (its
/// other runner modules, custom ones in `extension_modules/runners` or
/// `runner_dirs`, which override Brine's of the same module): their
/// docstrings from Salt's runner loader.
pub fn all_docs(cfg: &MasterConfig, arg: &str) -> Vec<(String, String)> {
    use brine_loader::resolve::{has_custom, ModuleType};
    let overridden = |fun: &str| has_custom(&cfg.raw, ModuleType::Runners, fun.split('.').next().unwrap_or(fun));
    let mut out: Vec<(String, String)> = docs(arg)
        .into_iter()
        .filter(|(f, _)| !overridden(f))
        .map(|(f, d)| (f.to_string(), d.to_string()))
        .collect();
    if (out.is_empty() || python_runners(cfg)) && brine_loader::oneshot::python().is_some() {
        let req = Value::map([("kind", Value::from("runner_doc")), ("arg", Value::from(arg))]);
        match brine_loader::oneshot::call(cfg, &req, brine_loader::timeout(cfg), "salt-run --doc") {
            Ok(Value::Map(more)) => {
                for (f, d) in more {
                    let f = brine_py::to_str(&f);
                    if !out.iter().any(|(g, _)| *g == f) && (!available(&f) || overridden(&f)) {
                        out.push((
                            f,
                            if d.is_nil() {
                                "None".into()
                            } else {
                                brine_py::to_str(&d)
                            },
                        ));
                    }
                }
            }
            Ok(_) => {}
            Err(e) => log::warn!("the documentation of Salt's Python runners is not available: {e}"),
        }
    }
    out.sort();
    out
}

/// In a process the master did not start (`salt-run --doc`): find Salt's
/// Python when [`all_docs`] for `arg` needs it. Call it while the
/// process has one thread.
pub fn find_python_for_docs(cfg: &MasterConfig, arg: &str) {
    if docs(arg).is_empty() || python_runners(cfg) {
        brine_loader::oneshot::ensure_python(cfg);
    }
}

/// The functions `arg` names and their documentation, as Salt's
/// `get_docs`: every function for an empty `arg`, those matching a glob
/// with `*`, else the function `arg` and those of the module `arg`.
pub fn docs(arg: &str) -> Vec<(&'static str, &'static str)> {
    let prefix = if arg.ends_with('.') {
        arg.to_string()
    } else {
        format!("{arg}.")
    };
    let mut out: Vec<(&str, &str)> = FUNCTIONS
        .iter()
        .filter(|(f, _)| {
            arg.is_empty()
                || if arg.contains('*') {
                    fnmatch(f, arg)
                } else {
                    *f == arg || f.starts_with(&prefix)
                }
        })
        .copied()
        .collect();
    out.sort();
    out
}

/// Salt's text for a runner function it lacks (`verify_fun`).
pub fn not_available(fun: &str) -> String {
    format!("'{fun}' is not available.")
}

/// Run a runner function under a new jid (a reaction's, a minion's
/// `publish.runner`): its return.
pub fn run_now(cfg: &MasterConfig, fun: &str, low: &Value, user: &str) -> Value {
    let jid = Jid::generate().to_string();
    run(cfg, fun, low, user, &jid)
}

/// Run the job `jid`: `fun` with its low data (`{arg, kwarg}`, or the
/// arguments by name), for `user`. Fires `salt/run/<jid>/new` and `/ret`,
/// stores the job in the job cache under the master's id, as Salt's
/// `RunnerClient.low` does, and returns the function's return.
pub fn run(cfg: &MasterConfig, fun: &str, load: &Value, user: &str, jid: &str) -> Value {
    run_full(cfg, fun, load, user, jid)
        .remove("return")
        .unwrap_or(Value::Nil)
}

/// [`run`], answering the job's whole data (`fun`, `jid`, `user`,
/// `fun_args`, `return`, `success`, `retcode` on failure), as
/// `RunnerClient.low(full_return=True)`.
pub fn run_full(cfg: &MasterConfig, fun: &str, load: &Value, user: &str, jid: &str) -> Value {
    let tag = format!("salt/run/{jid}");
    let mut events = brine_client::event_sender(cfg);
    let args = CallArgs::from_load(load);
    let mut data = Value::map([
        ("fun", Value::from(format!("runner.{fun}"))),
        ("jid", Value::from(jid)),
        ("user", Value::from(user)),
        ("fun_args", args.fun_args(load)),
    ]);
    stamp(&mut data);
    let _ = events.fire(&format!("{tag}/new"), &data);
    info!("runner {fun} ({jid}) for {user}");
    // The function's return, whether it succeeded by its own account,
    // and whether it raised.
    let (ret, success, raised) = match python_runner(cfg, fun, &args, load.get("__opts__"), user, jid, &tag) {
        Some(Ok(mut v)) => {
            let success = v.get("success").and_then(Value::as_bool).unwrap_or(true);
            (v.remove("return").unwrap_or(Value::Nil), success, false)
        }
        Some(Err(text)) => {
            warn!("runner {fun} ({jid}) through Python failed");
            (Value::from(text), false, true)
        }
        None if !available(fun) => {
            // Salt's `Runner.run` when `verify_fun` refuses the name.
            warn!("runner {fun} ({jid}) for {user}: not available in Brine");
            data.set("success", Value::Bool(false));
            data.set("return", Value::from(not_available(fun)));
            data.set("retcode", Value::Int(254));
            stamp(&mut data);
            let _ = events.fire(&format!("{tag}/ret"), &data);
            return data;
        }
        None => match call(cfg, fun, &args, user, jid, &mut events) {
            Ok(v) => (v, true, false),
            Err(e) => {
                warn!("runner {fun} ({jid}): {e}");
                (
                    Value::from(format!("Exception occurred in runner {fun}: {e}")),
                    false,
                    true,
                )
            }
        },
    };
    // Salt: a return with `data` (an orchestration's) succeeds when its
    // states did (`check_result`).
    let success = match ret.get("data") {
        Some(d) if ret.is_map() => success && brine_state::states::check_result(d, false),
        _ => success,
    };
    data.set("return", ret);
    data.set("success", Value::Bool(success));
    if raised {
        data.set("retcode", Value::Int(1));
    }
    store_job(cfg, jid, &data);
    stamp(&mut data);
    let _ = events.fire(&format!("{tag}/ret"), &data);
    data
}

/// What Salt's client mixins keep for themselves out of a call's keyword
/// arguments (`CLIENT_INTERNAL_KEYWORDS`).
const CLIENT_INTERNAL_KEYWORDS: [&str; 14] = [
    "client",
    "cmd",
    "eauth",
    "fun",
    "kwarg",
    "match",
    "token",
    "__jid__",
    "__tag__",
    "__user__",
    "username",
    "password",
    "full_return",
    "print_event",
];

/// Whether runner functions Brine lacks may exist in Salt's Python on
/// this master (the Python loader runs: custom runner modules, or
/// `python_loader: always`); then only the master can say whether a
/// name is a runner.
pub fn python_runners(cfg: &MasterConfig) -> bool {
    brine_loader::resolve::plan(&cfg.raw, &brine_pillar::ext_pillar_is_native).pool
}

/// `python_loader_runner_timeout` when not set: a day.
const PYTHON_RUNNER_TIMEOUT: f64 = 86_400.0;

/// A runner function Salt's Python runs: one Brine lacks, or one of a
/// custom module that overrides Brine's (`extension_modules/runners`,
/// `runner_dirs`). Run in a Python process of its own (the job's), with
/// the job's jid, user and tag as `RunnerClient.low` sets them, and
/// `opts` (`__opts__` of the low data) over the master's options. `None`
/// when Brine runs it natively or no Python with Salt was found (then
/// Brine's own answer, "not available", stands); `Err` is Salt's text for
/// the exception.
fn python_runner(
    cfg: &MasterConfig,
    fun: &str,
    args: &CallArgs,
    opts: Option<&Value>,
    user: &str,
    jid: &str,
    tag: &str,
) -> Option<Result<Value, String>> {
    use brine_loader::resolve::{use_python, ModuleType};
    use brine_loader::LoaderError;
    let module = fun.split('.').next().unwrap_or(fun);
    if !use_python(&cfg.raw, ModuleType::Runners, module, available(fun)) {
        return None;
    }
    brine_loader::oneshot::python()?;
    let kwarg = args
        .named()
        .iter()
        .filter(|(k, _)| !CLIENT_INTERNAL_KEYWORDS.contains(&k.as_str()))
        .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
        .collect();
    let req = Value::map([
        ("kind", Value::from("runner")),
        ("fun", Value::from(fun)),
        ("arg", Value::Array(args.positional().to_vec())),
        ("kwarg", Value::Map(kwarg)),
        ("jid", Value::from(jid)),
        ("user", Value::from(user)),
        ("tag", Value::from(tag)),
        // What the caller changes in the runner's `__opts__` (a peer's id).
        ("opts", opts.filter(|o| o.is_map()).cloned().unwrap_or(Value::Nil)),
    ]);
    let secs = cfg
        .get("python_loader_runner_timeout")
        .and_then(|v| v.as_f64())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(PYTHON_RUNNER_TIMEOUT);
    let title = format!("ProcessFunc(AsyncClientMixin._proc_function, fun={fun} jid={jid})");
    match brine_loader::oneshot::call(cfg, &req, std::time::Duration::from_secs_f64(secs.min(1e7)), &title) {
        Ok(v) => Some(Ok(v)),
        Err(LoaderError::Missing(_)) => None,
        Err(LoaderError::Module(text) | LoaderError::Raised { text, .. }) => Some(Err(text)),
        Err(e) => Some(Err(format!("Exception occurred in runner {fun}: {e}"))),
    }
}

/// Salt's `store_job` for a runner or wheel job (`low` in Salt's client
/// mixins): the load (`id` and `tgt` the master's id, the job's data as
/// `return`) and the return under the master's id, so `jobs.lookup_jid`
/// and `jobs.list_jobs` find runner and wheel jobs too.
pub fn store_job(cfg: &MasterConfig, jid: &str, data: &Value) {
    let Some(jid) = Jid::parse(jid) else { return };
    if !cfg.get_bool("job_cache").unwrap_or(true) {
        return;
    }
    let id = cfg.master_id();
    let mut load = Value::map([
        ("id", Value::from(id.as_str())),
        ("tgt", Value::from(id.as_str())),
        ("jid", Value::from(jid.as_str())),
        ("return", data.clone()),
    ]);
    for k in ["fun", "user"] {
        if let Some(v) = data.get(k) {
            load.set(k, v.clone());
        }
    }
    let cache = job_cache(cfg);
    if cache.load(&jid).is_none() {
        if let Err(e) = cache.save_load(&jid, &load, &[]) {
            warn!("runner job {jid}: cannot store its load: {e}");
        }
    }
    if let Err(e) = cache.store_return(&jid, &id, &Value::map([("return", data.clone())])) {
        warn!("runner job {jid}: cannot store its return: {e}");
    }
}

/// `fun` with `args` for the job `jid` of `user`; `events` is the job's
/// own connection to the event bus.
fn call(
    cfg: &MasterConfig,
    fun: &str,
    args: &CallArgs,
    user: &str,
    jid: &str,
    events: &mut brine_proto::event::EventSender,
) -> Result<Value, String> {
    let (module, name) = fun.split_once('.').unwrap_or((fun, ""));
    match module {
        "jobs" => jobs::call(cfg, name, args),
        "manage" => manage::call(cfg, name, args),
        "match" => matching::call(cfg, name, args),
        "cache" => cache::call(cfg, name, args),
        "fileserver" => fileserver::call(cfg, name, args),
        "pillar" => pillar::call(cfg, name, args),
        "state" => state::call(cfg, name, args, user, jid),
        "event" if name == "send" => {
            // Salt's event.send: `data` (a dict, default {}) fired under
            // `tag` as is, with no runner namespace on the tag.
            let tag = args.get(0, "tag").and_then(text).ok_or("missing argument: tag")?;
            let data = match args.get(1, "data") {
                None => Value::Map(Vec::new()),
                Some(d @ Value::Map(_)) => d.clone(),
                Some(other) => return Err(format!("event data must be a dict, not {}", brine_py::type_name(other))),
            };
            events
                .fire(&tag, &data)
                .map_err(|e| format!("cannot fire {}: {e}", tag.escape_debug()))?;
            Ok(Value::Bool(true))
        }
        "salt" if name == "cmd" => salt_cmd(args),
        "test" => test::call(cfg, name, args, jid, events),
        "doc" if name == "runner" => Ok(Value::Map(
            all_docs(cfg, "")
                .into_iter()
                .map(|(f, d)| (Value::from(f), Value::from(d)))
                .collect(),
        )),
        _ => Err(not_available(fun)),
    }
}

/// Salt's `salt.cmd` runner: an execution function run on the master.
/// Brine's master has the `test` module's pure ones; any other answers
/// Salt's text for a function it lacks.
fn salt_cmd(args: &CallArgs) -> Result<Value, String> {
    let fun = args.get(0, "fun").and_then(text).ok_or("missing argument: fun")?;
    let rest: Vec<Value> = args.positional().iter().skip(1).cloned().collect();
    let kwargs: Vec<(Value, Value)> = args
        .named()
        .iter()
        .filter(|(k, _)| k != "fun" && !k.starts_with("__"))
        .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
        .collect();
    Ok(match fun.as_str() {
        "test.ping" | "test.true" => Value::Bool(true),
        "test.false" => Value::Bool(false),
        "test.version" => Value::from(brine_config::SALT_VERSION),
        "test.echo" => {
            let t = rest
                .first()
                .or_else(|| args.get(usize::MAX, "text"))
                .ok_or("missing argument: text")?;
            Value::from(brine_py::to_str(t))
        }
        "test.arg" => Value::map([("args", Value::Array(rest)), ("kwargs", Value::Map(kwargs))]),
        other => return Err(not_available(other)),
    })
}

/// `{"outputter": o, "data": data}` when the caller named an outputter.
pub(crate) fn with_outputter(outputter: Option<&Value>, data: Value) -> Value {
    match outputter.and_then(Value::as_str) {
        Some(o) if !o.is_empty() => Value::map([("outputter", Value::from(o)), ("data", data)]),
        _ => data,
    }
}
