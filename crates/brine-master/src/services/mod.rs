//! What the master does for each request, once the channel has opened it:
//! Salt's `ClearFuncs` (`publish`, `runner`, `wheel` and the token
//! commands, from local CLIs and salt-api) and `AESFuncs` (everything an
//! authenticated minion sends). One room per Salt concept:
//!
//! * [`publish`]: a job from a CLI: target, jid, job cache, publication.
//! * [`minion`]: `_pillar`, `_minion_event`, `_return`, `_syndic_return`,
//!   `revoke_auth`.
//! * [`files`] and [`file_recv`]: the fileserver and `cp.push`.
//! * [`mine`]: the Salt mine.
//! * [`peer`]: peer publishing and `publish.runner`.
//! * [`control`]: who may call `runner` and `wheel` (brine-auth), and
//!   runner jobs; [`wheel`]: the wheel functions (runner functions are
//!   brine-runners', run by [`crate::runjobs`]).
//! * [`tokens`]: `mk_token` and `get_token`, eauth tokens for salt-api
//!   and `salt -T`.
//!
//! Each family is a module of functions, not a method of one big struct:
//! a function takes the shared [`Ctx`] (options, keys, event bus, job
//! cache), what its family owns alone (the fileserver, the publish
//! socket), the minion id the channel verified (for AES commands) and the
//! load, and answers with the value Salt's function returns. [`Services`]
//! is only the dispatch table from typed commands to those functions.

mod control;
mod file_recv;
mod files;
mod mine;
mod minion;
mod peer;
mod publish;
mod tokens;
pub(crate) mod wheel;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use brine_auth::LoadAuth;
use brine_cache::JobCache;
use brine_config::MasterConfig;
use brine_fileserver::Fileserver;
use brine_keys::{FsKeyStore, KeyState, KeyStore, MinionId};
use brine_proto::commands::{AesCmd, ClearCmd};
use brine_proto::event::EventSender;
use brine_proto::Value;
use log::{debug, warn};

use crate::offload::Offload;
use crate::runjobs::{RunnerJobs, Token};

/// How an AES command's result goes back (Salt's `req_fun`).
pub enum Reply {
    /// `send`: encrypted with the session key and the request nonce.
    Send(Value),
    /// `send_private`: the `_pillar` reply.
    Private(Value),
    /// `send`, once the runner job or the offloaded work behind this
    /// token has ended (its return is the reply): the MWorker serves
    /// other requests meanwhile.
    Later(crate::runjobs::Token),
    /// `send_private`, once the offloaded pillar behind this token is
    /// compiled.
    PrivateLater(crate::runjobs::Token),
}

/// What every family of commands works with: the options, the key store,
/// the event bus and the job cache. Each family's functions take it (and
/// only what else they own) explicitly.
pub struct Ctx {
    pub cfg: Rc<MasterConfig>,
    pub keys: FsKeyStore,
    pub events: EventSender,
    pub jobs: std::sync::Arc<dyn JobCache>,
    /// `ext_job_cache`: also saves each publication's load; returns are
    /// then not stored by the master (Salt's `store_job`).
    pub ext_jobs: Option<Box<dyn JobCache>>,
    /// Authentication (tokens, eauth backends, user keys).
    pub auth: LoadAuth,
}

impl Ctx {
    pub fn new(cfg: Rc<MasterConfig>) -> Ctx {
        Ctx {
            keys: FsKeyStore::new(&cfg.pki_dir),
            events: brine_client::event_sender(&cfg),
            jobs: std::sync::Arc::from(brine_loader::returners::job_cache(&cfg)),
            ext_jobs: brine_loader::returners::ext_job_cache(&cfg),
            auth: LoadAuth::new(&cfg),
            cfg,
        }
    }
}

/// One MWorker's dispatch table: a typed command to the function of its
/// family, with the shared [`Ctx`] and what that family owns alone (the
/// fileserver's caches; the PUSH socket publications leave by).
pub struct Services {
    ctx: Ctx,
    /// The `roots` fileserver (`file_roots`), for [`files`].
    files: Fileserver,
    /// PUSH to ZeroMQPubServerChannel's `publish_pull.ipc`, for
    /// [`publish`] and [`peer`].
    push: zmq::Socket,
    /// The runner jobs this MWorker started (`runner`, `minion_runner`).
    pub runner_jobs: RunnerJobs,
    /// Work that may wait on Salt's Python modules, off the request loop.
    offload: Offload,
    /// What to do on the request loop once an offloaded task is done,
    /// before its reply is sent.
    after: HashMap<Token, After>,
    /// Clear requests waiting for a Python eauth backend's answer, to be
    /// handled again once it is in.
    reauth: HashMap<Token, (ClearCmd, Value)>,
    /// A request handled again that waits once more (a publication for
    /// its load to be written): its new token → the one its caller holds.
    alias: HashMap<Token, Token>,
    /// The options, shareable with the offload threads.
    shared_cfg: Arc<MasterConfig>,
    /// Whether the Python loader pool runs: then any pillar may call it
    /// (an `ext_pillar` module, a renderer, `salt[...]`), and pillars are
    /// compiled off the request loop.
    pillar_offload: bool,
}

/// How a clear command is answered.
pub enum ClearReply {
    /// These bytes, now.
    Now(Vec<u8>),
    /// The offloaded task's value (`Value::Bytes` of the encoded answer)
    /// once it is done.
    Later(Token),
}

/// The step an offloaded task leaves to the request loop.
type After = Box<dyn FnOnce(&mut Ctx, &Value)>;

impl Services {
    pub fn new(cfg: Rc<MasterConfig>, zctx: &zmq::Context) -> Result<Services, String> {
        let push = zctx.socket(zmq::PUSH).map_err(|e| e.to_string())?;
        push.set_linger(1000).map_err(|e| e.to_string())?;
        push.connect(&format!("ipc://{}", cfg.sock_dir.join("publish_pull.ipc").display()))
            .map_err(|e| e.to_string())?;
        Ok(Services {
            files: Fileserver::new(&cfg),
            shared_cfg: Arc::new((*cfg).clone()),
            pillar_offload: brine_loader::pool(&cfg).is_some(),
            ctx: Ctx::new(cfg),
            push,
            runner_jobs: RunnerJobs::default(),
            offload: Offload::default(),
            after: HashMap::new(),
            reauth: HashMap::new(),
            alias: HashMap::new(),
        })
    }

    /// The offload threads' wake-up pipe, once they run.
    pub fn offload_fd(&self) -> Option<std::os::fd::RawFd> {
        self.offload.fd()
    }

    /// The offloaded tasks that are done, their last step taken: the
    /// values their requests are answered with.
    pub fn finished(&mut self) -> Vec<(Token, Value)> {
        let mut done = self.offload.collect();
        let mut out = Vec::with_capacity(done.len());
        for (token, mut value) in done.drain(..) {
            if let Some(after) = self.after.remove(&token) {
                after(&mut self.ctx, &value);
            }
            if let Some((cmd, load)) = self.reauth.remove(&token) {
                // The eauth backend answered: the request, handled again.
                self.ctx.auth.set_python_verdict(&load, &value);
                let reply = self.clear_now(cmd, &load);
                self.ctx.auth.clear_python_verdict();
                // Its answer goes now: a refusal is not delayed again
                // (the backend took its time) nor left for the next one.
                let _ = self.ctx.auth.take_eauth_failure();
                value = match reply {
                    Ok(ClearReply::Now(bytes)) => Value::Bytes(bytes),
                    Ok(ClearReply::Later(next)) => {
                        self.alias.insert(next, token);
                        continue;
                    }
                    Err(e) => {
                        warn!("{} request refused: {e}", cmd.as_str());
                        Value::map([("error", Value::from(e))])
                    }
                };
            }
            let token = self.alias.remove(&token).unwrap_or(token);
            out.push((token, value));
        }
        out
    }

    /// `_pillar` compiled on an offload thread, the minion data cache
    /// written when it is done.
    fn pillar_later(&mut self, id: &MinionId, load: &Value) -> Reply {
        let Some(grains) = minion::pillar_grains(id, load) else {
            return Reply::Private(Value::Map(Vec::new()));
        };
        let cfg = self.shared_cfg.clone();
        let (task_id, task_grains, task_load) = (id.to_string(), grains.clone(), load.clone());
        let task = Box::new(move || {
            let keys = FsKeyStore::new(&cfg.pki_dir);
            let accepted = || keys.list(KeyState::Accepted).unwrap_or_default();
            let pillar = brine_pillar::compile(&cfg, &task_id, &task_grains, &task_load, &accepted);
            minion::store_pillar_through_driver(&cfg, &task_id, &task_grains, pillar)
        });
        match self.offload.submit(task) {
            Ok(token) => {
                let id = id.clone();
                self.after.insert(
                    token,
                    Box::new(move |ctx, pillar| {
                        // A driver that raised answered Salt's error text.
                        if pillar.is_map() {
                            minion::store_pillar(ctx, &id, grains, pillar)
                        }
                    }),
                );
                Reply::PrivateLater(token)
            }
            Err(e) => {
                warn!("pillar for {id} refused: {e}");
                Reply::Private(Value::map([(
                    "_errors",
                    Value::Array(vec![Value::from(format!(
                        "The master is too busy to compile the pillar: {e}"
                    ))]),
                )]))
            }
        }
    }

    /// `_master_tops`: Salt's `master_tops` modules, through the Python
    /// pool on an offload thread (Brine has none natively).
    fn master_tops_later(&mut self, id: &MinionId, load: &Value) -> Reply {
        let Some(task) = files::master_tops_task(&self.shared_cfg, id, load) else {
            return Reply::Send(Value::Map(Vec::new()));
        };
        match self.offload.submit(task) {
            Ok(token) => Reply::Later(token),
            Err(e) => {
                warn!("master_tops for {id} refused: {e}");
                Reply::Send(Value::Map(Vec::new()))
            }
        }
    }

    /// This worker's event bus writer (the channel fires `salt/auth` on
    /// it too: one connection to the EventPublisher per worker).
    pub fn events(&mut self) -> &mut EventSender {
        &mut self.ctx.events
    }

    /// Whether the last request's eauth credentials were refused (its
    /// answer is then delayed, see [`brine_auth::LoadAuth::take_eauth_failure`]).
    pub fn take_auth_failure(&mut self) -> bool {
        self.ctx.auth.take_eauth_failure()
    }

    /// A clear command other than `_auth` (which the channel answers).
    /// One with credentials for an eauth backend that runs through Python
    /// waits (off the request loop) for the backend's answer first.
    pub fn clear(&mut self, cmd: ClearCmd, load: &Value) -> Result<ClearReply, String> {
        if !matches!(cmd, ClearCmd::Ping | ClearCmd::GetToken) {
            if let Some(task) = brine_auth::eauth::python::task(&self.shared_cfg, load) {
                return match self.offload.submit(task) {
                    Ok(token) => {
                        self.reauth.insert(token, (cmd, load.clone()));
                        Ok(ClearReply::Later(token))
                    }
                    Err(e) => Ok(ClearReply::Now(
                        Value::map([(
                            "error",
                            brine_client::low::error("SaltMasterError", &format!("authentication refused: {e}")),
                        )])
                        .to_network(),
                    )),
                };
            }
        }
        self.clear_now(cmd, load)
    }

    fn clear_now(&mut self, cmd: ClearCmd, load: &Value) -> Result<ClearReply, String> {
        let bytes = match cmd {
            ClearCmd::Publish => {
                let answer = publish::publish(&mut self.ctx, &self.push, load)?;
                // A job cache that writes later: the answer waits (off the
                // request loop) until the job's load is written.
                if let Some(wait) = self.ctx.jobs.barrier() {
                    let later = answer.clone();
                    let task = Box::new(move || {
                        wait();
                        Value::Bytes(later)
                    });
                    match self.offload.submit(task) {
                        Ok(token) => return Ok(ClearReply::Later(token)),
                        Err(e) => warn!("publish answered before its load is written: {e}"),
                    }
                }
                Ok(answer)
            }
            ClearCmd::Runner | ClearCmd::Wheel => {
                let form = if cmd == ClearCmd::Runner { "runner" } else { "wheel" };
                match control::control(&mut self.ctx, &mut self.runner_jobs, load, form) {
                    control::Control::Now(bytes) => Ok(bytes),
                    control::Control::PythonWheel { fun, load, username } => {
                        let call = wheel::python_task(&self.shared_cfg, &fun, &load, &username);
                        let task = Box::new(move || Value::Bytes(call().to_network()));
                        match self.offload.submit(task) {
                            Ok(token) => return Ok(ClearReply::Later(token)),
                            Err(e) => Ok(Value::map([(
                                "error",
                                brine_client::low::error("SaltMasterError", &format!("wheel {fun} refused: {e}")),
                            )])
                            .to_network()),
                        }
                    }
                }
            }
            // Salt's `ping` sends the load back.
            ClearCmd::Ping => Ok(load.to_network()),
            ClearCmd::MkToken => Ok(tokens::mk_token(&self.ctx, load).to_network()),
            ClearCmd::GetToken => Ok(tokens::get_token(&self.ctx, load).to_network()),
            ClearCmd::Auth => Err("_auth reached the services; the channel answers it".into()),
        };
        bytes.map(ClearReply::Now)
    }

    /// An AES command from the minion `id`.
    pub fn aes(&mut self, cmd: AesCmd, id: &MinionId, load: &mut Value) -> Reply {
        let ctx = &mut self.ctx;
        match cmd {
            AesCmd::Pillar if self.pillar_offload => self.pillar_later(id, load),
            AesCmd::Pillar => Reply::Private(minion::pillar(ctx, id, load)),
            AesCmd::MasterTops => self.master_tops_later(id, load),
            AesCmd::MinionEvent => Reply::Send(minion::minion_event(ctx, id, load)),
            AesCmd::Mine => Reply::Send(mine::mine(ctx, id, load)),
            AesCmd::MineGet => Reply::Send(mine::mine_get(ctx, id, load)),
            AesCmd::MineDelete => Reply::Send(mine::mine_delete(ctx, id, load)),
            AesCmd::MineFlush => Reply::Send(mine::mine_flush(ctx, id, load)),
            AesCmd::MasterOpts
            | AesCmd::FileEnvs
            | AesCmd::FileList
            | AesCmd::FileListEmptydirs
            | AesCmd::DirList
            | AesCmd::SymlinkList
            | AesCmd::FileFind
            | AesCmd::FileHash
            | AesCmd::FileHashAndStat
            | AesCmd::ServeFile => Reply::Send(files::file_cmd(ctx, &mut self.files, cmd, id, load)),
            AesCmd::FileRecv => Reply::Send(file_recv::file_recv(ctx, id, load)),
            AesCmd::RevokeAuth => Reply::Send(minion::revoke_auth(ctx, id, load)),
            AesCmd::MinionPub => Reply::Send(peer::minion_pub(ctx, &self.push, id, load)),
            AesCmd::PubRet => match peer::pub_ret(ctx, id, load) {
                Ok(answer) => Reply::Send(answer),
                // The job cache is read off the request loop: a database
                // or a Python returner may take its time.
                Err(read) => match self.offload.submit(read) {
                    Ok(token) => Reply::Later(token),
                    Err(e) => {
                        warn!("{id}: pub_ret refused: {e}");
                        Reply::Send(Value::Map(Vec::new()))
                    }
                },
            },
            AesCmd::MinionRunner => peer::minion_runner(ctx, &mut self.runner_jobs, id, load),
            AesCmd::MinionPublish => {
                // Sent by no current minion (publish.* use minion_pub and
                // pub_ret); Salt's would hold this MWorker until the job's
                // timeout.
                warn!("{id}: minion_publish is not implemented by Brine (publish.publish uses minion_pub)");
                Reply::Send(Value::Map(Vec::new()))
            }
            AesCmd::Return => Reply::Send(minion::job_return(ctx, id, load)),
            AesCmd::SyndicReturn => Reply::Send(minion::syndic_return(ctx, id, load)),
            other => {
                debug!("{id}: AES command {} is not served yet", other.as_str());
                Reply::Send(Value::Map(Vec::new()))
            }
        }
    }
}
