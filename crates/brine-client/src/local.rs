//! Salt's LocalClient (publish a job, wait for its returns), and the
//! runner and wheel calls of its `master_call`, all with the local user's
//! key.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use brine_config::MasterConfig;
use brine_proto::Value;

use crate::{refused, BusAddr, ClientError, EventBus, MasterAddr, ReqChannel, UserKey};

/// How long a request waits for the master's reply unless told otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A job to publish: Salt's `LocalClient._prep_pub` payload without the
/// credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// A string, or a list for the `list` target type.
    pub tgt: Value,
    pub fun: String,
    pub arg: Vec<Value>,
    /// `glob`, `pcre`, `list`, `grain`, `compound`, ...
    pub tgt_type: String,
    /// Returners, comma-separated.
    pub ret: String,
    /// A jid to use, or empty for the master to make one.
    pub jid: String,
    /// The `kwargs` the master keeps with the job and copies into the
    /// publication (`delimiter`, `metadata`, `to`, ...).
    pub kwargs: Vec<(String, Value)>,
}

impl Publish {
    /// `fun` on the minions matching the glob `tgt`, without arguments.
    pub fn new(tgt: impl Into<Value>, fun: &str) -> Publish {
        Publish {
            tgt: tgt.into(),
            fun: fun.to_string(),
            arg: Vec::new(),
            tgt_type: "glob".into(),
            ret: String::new(),
            jid: String::new(),
            kwargs: Vec::new(),
        }
    }

    pub fn args(mut self, arg: Vec<Value>) -> Publish {
        self.arg = arg;
        self
    }

    pub fn tgt_type(mut self, tgt_type: &str) -> Publish {
        self.tgt_type = tgt_type.to_string();
        self
    }

    pub fn kwarg(mut self, key: &str, value: impl Into<Value>) -> Publish {
        self.kwargs.push((key.to_string(), value.into()));
        self
    }

    /// The clear `publish` load, in Salt's field order.
    fn load(&self, key: &UserKey) -> Value {
        let mut load = Value::map([
            ("cmd", Value::from("publish")),
            ("tgt", self.tgt.clone()),
            ("fun", Value::from(self.fun.as_str())),
            ("arg", Value::Array(self.arg.clone())),
            ("key", Value::from(key.key())),
            ("tgt_type", Value::from(self.tgt_type.as_str())),
            ("ret", Value::from(self.ret.as_str())),
            ("jid", Value::from(self.jid.as_str())),
        ]);
        if !self.kwargs.is_empty() {
            let kwargs = self.kwargs.iter().map(|(k, v)| (Value::from(k.as_str()), v.clone()));
            load.set("kwargs", Value::Map(kwargs.collect()));
        }
        load.set("user", Value::from(key.user()));
        load
    }
}

/// A published job, as the master's reply describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub jid: String,
    /// The minions expected to return.
    pub minions: Vec<String>,
    /// Minions a list or compound target named that have no key.
    pub missing: Vec<String>,
}

/// A runner or wheel call the master started: its event tag and jid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub tag: String,
    pub jid: String,
}

/// One minion's return for a job: the `salt/job/<jid>/ret/<id>` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Return {
    pub minion: String,
    /// The whole event data (`return`, `retcode`, `success`, `out`, ...).
    pub data: Value,
}

impl Return {
    /// What the function returned (`None` when the event has none).
    pub fn ret(&self) -> &Value {
        const NIL: &Value = &Value::Nil;
        self.data.get("return").unwrap_or(NIL)
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => Vec::new(),
    }
}

/// The returns of one job as they come on the event bus, until every
/// expected minion has returned or the wait is over.
pub struct JobReturns {
    bus: EventBus,
    job: Job,
    prefix: String,
    deadline: Instant,
    returned: Vec<String>,
    /// The same, to look up (thousands of minions return to one job).
    seen: HashSet<String>,
    /// Expected minions that have not returned.
    waiting: HashSet<String>,
}

impl JobReturns {
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The minions that returned so far, in order of arrival.
    pub fn returned(&self) -> &[String] {
        &self.returned
    }

    /// The expected minions that have not returned (yet).
    pub fn missing(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .job
            .minions
            .iter()
            .filter(|m| self.waiting.contains(*m))
            .cloned()
            .collect();
        out.dedup();
        out
    }

    fn done(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Wait `more` from now on for the returns still missing.
    pub fn wait_more(&mut self, more: Duration) {
        self.deadline = Instant::now() + more;
    }

    /// The next return, or `None` when every expected minion has returned
    /// or the wait is over. A minion's second return for the job is not
    /// reported; a return from a minion that was not expected is.
    pub fn next_return(&mut self) -> Result<Option<Return>, ClientError> {
        while !self.done() {
            let Some(ev) = self.bus.next(self.deadline)? else {
                return Ok(None);
            };
            let Some(id) = ev.tag.strip_prefix(&self.prefix) else {
                continue;
            };
            if id.is_empty() || !self.seen.insert(id.to_string()) {
                continue;
            }
            self.waiting.remove(id);
            self.returned.push(id.to_string());
            return Ok(Some(Return {
                minion: id.to_string(),
                data: ev.data,
            }));
        }
        Ok(None)
    }
}

/// A client of one master for one user.
pub struct LocalClient {
    req: ReqChannel,
    key: UserKey,
    bus: Option<BusAddr>,
    /// `eauth`, `username`, `password` sent instead of the user key
    /// (`--eauth`).
    eauth: Option<Vec<(String, Value)>>,
}

impl LocalClient {
    /// A client of the master configured by `cfg` (request port and event
    /// bus), as `key`'s user.
    pub fn from_config(cfg: &MasterConfig, key: UserKey) -> LocalClient {
        LocalClient {
            req: ReqChannel::new(MasterAddr::ret_port(cfg), REQUEST_TIMEOUT),
            key,
            bus: Some(BusAddr::from_config(cfg)),
            eauth: None,
        }
    }

    /// The master's client of itself (runners, reactions, the ping after
    /// a key rotation): its own request port and event bus, as the
    /// master's `user` with that user's key from cachedir.
    pub fn of_master(cfg: &MasterConfig) -> Result<LocalClient, ClientError> {
        Ok(LocalClient::from_config(cfg, UserKey::of_user(cfg, &cfg.user)?))
    }

    /// A client of the request port at `addr` only (publish without waiting
    /// for returns, runner and wheel calls).
    pub fn new(addr: MasterAddr, key: UserKey) -> LocalClient {
        LocalClient {
            req: ReqChannel::new(addr, REQUEST_TIMEOUT),
            key,
            bus: None,
            eauth: None,
        }
    }

    /// How long each request waits for the master's reply.
    pub fn request_timeout(mut self, timeout: Duration) -> LocalClient {
        self.req = ReqChannel::new(self.req.addr().clone(), timeout);
        self
    }

    pub fn user(&self) -> &str {
        self.key.user()
    }

    /// Authenticate runner and wheel calls by external auth (`eauth`
    /// backend, user name, password) instead of the user key.
    pub fn with_eauth(mut self, eauth: &str, username: &str, password: &str) -> LocalClient {
        self.eauth = Some(vec![
            ("eauth".into(), Value::from(eauth)),
            ("username".into(), Value::from(username)),
            ("password".into(), Value::from(password)),
        ]);
        self
    }

    /// Authenticate every request by an eauth token (`mk_token`'s)
    /// instead of the user key.
    pub fn with_token(mut self, token: &str) -> LocalClient {
        self.eauth = Some(vec![("token".into(), Value::from(token))]);
        self
    }

    /// Salt's `mk_token`: exchange eauth credentials for a token; `None`
    /// when the master refuses them (it answers `""`).
    pub fn mk_token(&mut self, eauth: &str, username: &str, password: &str) -> Result<Option<Value>, ClientError> {
        let load = Value::map([
            ("cmd", Value::from("mk_token")),
            ("eauth", Value::from(eauth)),
            ("username", Value::from(username)),
            ("password", Value::from(password)),
        ]);
        let reply = self.req.send_clear(load)?;
        Ok(reply.get("token").and_then(Value::as_str).is_some().then_some(reply))
    }

    /// Publish `job`: `None` when no minion matched the target (the master
    /// made no job).
    pub fn publish(&mut self, job: &Publish) -> Result<Option<Job>, ClientError> {
        let mut load = job.load(&self.key);
        // eauth credentials or a token travel in the publish's kwargs, as
        // Salt's LocalClient sends them.
        if let Some(creds) = &self.eauth {
            let mut kwargs = load.remove("kwargs").unwrap_or(Value::Map(vec![]));
            for (k, v) in creds {
                kwargs.set(k, v.clone());
            }
            load.set("kwargs", kwargs);
        }
        let reply = self.req.send_clear(load)?;
        if let Some(e) = refused(&reply) {
            return Err(e);
        }
        let Some(load) = reply.get("load").filter(|l| l.is_map()) else {
            return Err(ClientError::Unexpected(reply));
        };
        let Some(jid) = load.get("jid").and_then(Value::as_str).filter(|j| !j.is_empty()) else {
            return Ok(None);
        };
        Ok(Some(Job {
            jid: jid.to_string(),
            minions: strings(load.get("minions")),
            missing: strings(load.get("missing")),
        }))
    }

    /// Publish `job` and follow its returns for `wait` from the master's
    /// reply on; `None` when no minion matched. The event bus is subscribed
    /// before publishing, so no return is missed.
    pub fn run(&mut self, job: &Publish, wait: Duration) -> Result<Option<JobReturns>, ClientError> {
        let bus = EventBus::subscribe(self.bus.as_ref().ok_or(ClientError::NoEventBus)?)?;
        let Some(job) = self.publish(job)? else {
            return Ok(None);
        };
        Ok(Some(JobReturns {
            bus,
            prefix: format!("salt/job/{}/ret/", job.jid),
            deadline: Instant::now() + wait,
            waiting: job.minions.iter().cloned().collect(),
            job,
            returned: Vec::new(),
            seen: HashSet::new(),
        }))
    }

    /// Salt's check of a job whose wait is over (`get_iter_returns`):
    /// `saltutil.find_job` to the minions that have not returned; when
    /// one still runs the job, the wait of `returns` is extended by
    /// `gather` and the answer is true (wait again), else false.
    pub fn still_running(&mut self, returns: &mut JobReturns, gather: Duration) -> Result<bool, ClientError> {
        let missing = returns.missing();
        if missing.is_empty() {
            return Ok(false);
        }
        let jid = returns.job().jid.clone();
        let check = Publish::new(
            Value::Array(missing.iter().map(|m| Value::from(m.as_str())).collect()),
            "saltutil.find_job",
        )
        .tgt_type("list")
        .args(vec![Value::from(jid)]);
        let Some(mut found) = self.run(&check, gather)? else {
            return Ok(false);
        };
        let mut running = false;
        while let Some(r) = found.next_return()? {
            running |= matches!(r.ret(), Value::Map(m) if !m.is_empty());
        }
        if running {
            returns.wait_more(gather);
        }
        Ok(running)
    }

    /// A clear `cmd` request with the user's credentials; Salt's error
    /// replies as [`ClientError::Refused`].
    fn master_call(&mut self, cmd: &str, mut load: Value) -> Result<Value, ClientError> {
        load.set("cmd", Value::from(cmd));
        match &self.eauth {
            Some(creds) => {
                for (k, v) in creds {
                    load.set(k, v.clone());
                }
            }
            None => {
                load.set("key", Value::from(self.key.key()));
                load.set("user", Value::from(self.key.user()));
            }
        }
        let reply = self.req.send_clear(load)?;
        match refused(&reply) {
            Some(e) => Err(e),
            None => Ok(reply),
        }
    }

    /// Start runner `fun` on the master (`RunnerClient.cmd_async`'s load:
    /// the arguments under `kwarg` as `{arg, kwarg}`); its return comes as
    /// `<tag>/ret` on the event bus.
    pub fn runner(&mut self, fun: &str, arg: Vec<Value>, kwarg: Vec<(String, Value)>) -> Result<Started, ClientError> {
        self.runner_as(fun, arg, kwarg, None)
    }

    /// [`LocalClient::runner`] under the jid `jid` when given (`salt-run
    /// --jid`).
    pub fn runner_as(
        &mut self,
        fun: &str,
        arg: Vec<Value>,
        kwarg: Vec<(String, Value)>,
        jid: Option<&str>,
    ) -> Result<Started, ClientError> {
        let kwarg = kwarg.into_iter().map(|(k, v)| (Value::from(k), v)).collect();
        let mut load = Value::map([
            ("fun", Value::from(fun)),
            (
                "kwarg",
                Value::map([("arg", Value::Array(arg)), ("kwarg", Value::Map(kwarg))]),
            ),
        ]);
        if let Some(j) = jid {
            load.set("jid", Value::from(j));
        }
        let reply = self.master_call("runner", load)?;
        match (
            reply.get("tag").and_then(Value::as_str),
            reply.get("jid").and_then(Value::as_str),
        ) {
            (Some(tag), Some(jid)) => Ok(Started {
                tag: tag.to_string(),
                jid: jid.to_string(),
            }),
            _ => Err(ClientError::Unexpected(reply)),
        }
    }

    /// Start runner `fun` as [`LocalClient::runner`] does, subscribed to
    /// the event bus first: the bus then has the job's events (`new`,
    /// progress, `ret`) from its start.
    pub fn runner_followed(
        &mut self,
        fun: &str,
        arg: Vec<Value>,
        kwarg: Vec<(String, Value)>,
        jid: Option<&str>,
    ) -> Result<(Started, EventBus), ClientError> {
        let bus = EventBus::subscribe(self.bus.as_ref().ok_or(ClientError::NoEventBus)?)?;
        let started = self.runner_as(fun, arg, kwarg, jid)?;
        Ok((started, bus))
    }

    /// Run wheel `fun` with keyword arguments `kwarg` (`WheelClient`'s
    /// low data): the wheel job's data (`return`, `success`, `jid`, ...).
    pub fn wheel(&mut self, fun: &str, kwarg: Vec<(String, Value)>) -> Result<Value, ClientError> {
        let mut load = Value::map([("fun", Value::from(fun))]);
        for (k, v) in kwarg {
            load.set(&k, v);
        }
        let mut reply = self.master_call("wheel", load)?;
        match reply.remove("data") {
            Some(data) if data.is_map() => Ok(data),
            _ => Err(ClientError::Unexpected(reply)),
        }
    }
}
