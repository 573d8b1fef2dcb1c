//! What the states of an orchestration do outside the engine: publish a
//! job and gather its returns, run a runner or wheel function, watch the
//! event bus. [`Effects`] is the seam; [`ClientEffects`] is the master's
//! own client of itself (brine-client's `LocalClient::of_master` and
//! `EventBus`), with the runner and wheel functions the master supplies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use brine_client::{BusAddr, EventBus, LocalClient, Publish};
use brine_config::MasterConfig;
use brine_proto::Value;

/// The returns of a published job, as Salt's `LocalClient.cmd_iter`
/// (with `full_return`) yields them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CmdReturns {
    /// Each minion that returned, in order of arrival, with its full
    /// return: `ret`, `retcode`, `jid`, and `out` when the minion sent it.
    pub returns: Vec<(String, Value)>,
    /// The minions expected that did not return in time.
    pub missing: Vec<String>,
    /// Minions a list or compound target named that have no key (the
    /// master's `missing`): failed whatever `expect_minions` says.
    pub unknown: Vec<String>,
}

/// Events from the master's bus, from the moment of subscription on.
pub trait EventSource {
    /// The next event (`tag`, `data`), or `None` once `deadline` passed.
    fn next(&mut self, deadline: Instant) -> Option<(String, Value)>;
}

/// The master-side effects of the orchestration states.
pub trait Effects {
    /// Publish `job` and gather the returns for `timeout`; `Err` is the
    /// text of the exception Salt's `saltutil.cmd` would raise. No minion
    /// matching the target is an empty [`CmdReturns`].
    fn cmd(&mut self, job: &Publish, timeout: Duration) -> Result<CmdReturns, String>;
    /// Run runner `fun` (`RunnerClient.cmd(..., full_return=True)`): the
    /// full return (`return`, `success`, `jid`).
    fn runner(&mut self, fun: &str, arg: Vec<Value>, kwarg: Value) -> Value;
    /// Run wheel `fun` (`WheelClient.cmd(..., full_return=True)`): the
    /// full return (`return`, `success`, `jid`).
    fn wheel(&mut self, fun: &str, kwarg: Value) -> Value;
    /// Subscribe to the master's event bus.
    fn subscribe(&mut self) -> Result<Box<dyn EventSource>, String>;
    /// Independent effects for a `parallel` state's thread; `None` runs
    /// parallel states in turn.
    fn fork(&self) -> Option<Box<dyn Effects + Send>>;
    /// The job timeout when a state gives none (the master's `timeout`).
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
}

/// A runner or wheel function the master runs in process: `(fun, arg,
/// kwarg)` to the full return.
pub type MasterCall = Arc<dyn Fn(&str, Vec<Value>, Value) -> Value + Send + Sync>;

/// [`Effects`] through the master's own request port and event bus.
pub struct ClientEffects {
    cfg: Arc<MasterConfig>,
    client: Option<LocalClient>,
    runner: MasterCall,
    wheel: MasterCall,
}

impl ClientEffects {
    /// The master's effects: jobs published as the master's user
    /// (`LocalClient::of_master`), `runner` and `wheel` calls to the
    /// given functions.
    pub fn new(cfg: Arc<MasterConfig>, runner: MasterCall, wheel: MasterCall) -> ClientEffects {
        ClientEffects {
            cfg,
            client: None,
            runner,
            wheel,
        }
    }

    fn client(&mut self) -> Result<&mut LocalClient, String> {
        if self.client.is_none() {
            self.client = Some(LocalClient::of_master(&self.cfg).map_err(|e| e.to_string())?);
        }
        self.client.as_mut().ok_or_else(|| "no client".to_string())
    }
}

struct BusEvents(EventBus);

impl EventSource for BusEvents {
    fn next(&mut self, deadline: Instant) -> Option<(String, Value)> {
        self.0.next(deadline).ok().flatten().map(|e| (e.tag, e.data))
    }
}

/// A minion's return event as `cmd_iter` yields it: `ret` (the
/// `return`), then `out`, `retcode`, `jid` when present.
pub fn full_return(data: &Value) -> Value {
    let mut out = Value::map([("ret", data.get("return").cloned().unwrap_or(Value::Nil))]);
    for key in ["out", "retcode", "jid"] {
        if let Some(v) = data.get(key) {
            out.set(key, v.clone());
        }
    }
    out
}

impl Effects for ClientEffects {
    fn cmd(&mut self, job: &Publish, timeout: Duration) -> Result<CmdReturns, String> {
        let gather = Duration::from_secs(self.cfg.get_u64("gather_job_timeout").unwrap_or(10).max(1));
        let client = self.client()?;
        let Some(mut returns) = client.run(job, timeout).map_err(|e| e.to_string())? else {
            return Ok(CmdReturns::default());
        };
        let mut out = CmdReturns::default();
        // As Salt's cmd_iter: past the timeout, keep waiting while a
        // missing minion still runs the job (saltutil.find_job).
        loop {
            while let Some(r) = returns.next_return().map_err(|e| e.to_string())? {
                out.returns.push((r.minion.clone(), full_return(&r.data)));
            }
            if !client.still_running(&mut returns, gather).map_err(|e| e.to_string())? {
                break;
            }
        }
        out.missing = returns.missing();
        out.unknown = returns
            .job()
            .missing
            .iter()
            .filter(|m| !out.returns.iter().any(|(id, _)| id == *m))
            .cloned()
            .collect();
        Ok(out)
    }

    fn runner(&mut self, fun: &str, arg: Vec<Value>, kwarg: Value) -> Value {
        (self.runner)(fun, arg, kwarg)
    }

    fn wheel(&mut self, fun: &str, kwarg: Value) -> Value {
        (self.wheel)(fun, Vec::new(), kwarg)
    }

    fn subscribe(&mut self) -> Result<Box<dyn EventSource>, String> {
        let bus = EventBus::subscribe(&BusAddr::from_config(&self.cfg)).map_err(|e| e.to_string())?;
        Ok(Box::new(BusEvents(bus)))
    }

    fn fork(&self) -> Option<Box<dyn Effects + Send>> {
        Some(Box::new(ClientEffects::new(
            self.cfg.clone(),
            self.runner.clone(),
            self.wheel.clone(),
        )))
    }

    fn default_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.get_u64("timeout").unwrap_or(5))
    }
}
