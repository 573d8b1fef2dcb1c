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
//! * [`eauth`]: who may call `runner` and `wheel`; [`wheel`]: the wheel
//!   functions (runner functions are [`crate::runners`]).
//!
//! A function gets the minion id the channel verified (for AES commands)
//! and the load; it answers with the value Salt's function returns.

mod eauth;
mod file_recv;
mod files;
mod mine;
mod minion;
mod peer;
mod publish;
mod wheel;

use std::rc::Rc;

use brine_cache::JobCache;
use brine_config::MasterConfig;
use brine_fileserver::Fileserver;
use brine_keys::{FsKeyStore, MinionId};
use brine_proto::commands::{AesCmd, ClearCmd};
use brine_proto::event::EventSender;
use brine_proto::Value;
use log::{debug, warn};

/// How an AES command's result goes back (Salt's `req_fun`).
pub enum Reply {
    /// `send`: encrypted with the session key and the request nonce.
    Send(Value),
    /// `send_private`: the `_pillar` reply.
    Private(Value),
}

/// The master's functions, with what they work on: one per MWorker.
pub struct Services {
    cfg: Rc<MasterConfig>,
    keys: FsKeyStore,
    events: EventSender,
    jobs: Box<dyn JobCache + Send>,
    /// The `roots` fileserver (`file_roots`).
    files: Fileserver,
    /// PUSH to ZeroMQPubServerChannel's `publish_pull.ipc`.
    push: zmq::Socket,
}

impl Services {
    pub fn new(cfg: Rc<MasterConfig>, zctx: &zmq::Context) -> Result<Services, String> {
        let push = zctx.socket(zmq::PUSH).map_err(|e| e.to_string())?;
        push.set_linger(1000).map_err(|e| e.to_string())?;
        push.connect(&format!("ipc://{}", cfg.sock_dir.join("publish_pull.ipc").display()))
            .map_err(|e| e.to_string())?;
        Ok(Services {
            keys: FsKeyStore::new(&cfg.pki_dir),
            events: EventSender::new(&cfg.sock_dir),
            jobs: crate::backends::job_cache(&cfg),
            files: Fileserver::new(&cfg),
            push,
            cfg,
        })
    }

    /// A clear command other than `_auth` (which the channel answers).
    pub fn clear(&mut self, cmd: ClearCmd, load: &Value) -> Result<Vec<u8>, String> {
        match cmd {
            ClearCmd::Publish => self.publish(load),
            ClearCmd::Runner => Ok(self.control(load, "runner")),
            ClearCmd::Wheel => Ok(self.control(load, "wheel")),
            // Salt's `ping` sends the load back.
            ClearCmd::Ping => Ok(load.to_network()),
            // Brine issues no eauth tokens: Salt's answers for a failed
            // mk_token ("") and an unknown token (False).
            ClearCmd::MkToken => {
                warn!("mk_token refused: Brine does not issue eauth tokens (use --eauth with credentials)");
                Ok(Value::from("").to_network())
            }
            ClearCmd::GetToken => Ok(Value::Bool(false).to_network()),
            ClearCmd::Auth => Err("_auth reached the services; the channel answers it".into()),
        }
    }

    /// An AES command from the minion `id`.
    pub fn aes(&mut self, cmd: AesCmd, id: &MinionId, load: &mut Value) -> Reply {
        match cmd {
            AesCmd::Pillar => Reply::Private(self.pillar(id, load)),
            AesCmd::MinionEvent => Reply::Send(self.minion_event(id, load)),
            AesCmd::Mine => Reply::Send(self.mine(id, load)),
            AesCmd::MineGet => Reply::Send(self.mine_get(id, load)),
            AesCmd::MineDelete => Reply::Send(self.mine_delete(id, load)),
            AesCmd::MineFlush => Reply::Send(self.mine_flush(id, load)),
            AesCmd::MasterOpts
            | AesCmd::MasterTops
            | AesCmd::FileEnvs
            | AesCmd::FileList
            | AesCmd::FileListEmptydirs
            | AesCmd::DirList
            | AesCmd::SymlinkList
            | AesCmd::FileFind
            | AesCmd::FileHash
            | AesCmd::FileHashAndStat
            | AesCmd::ServeFile => Reply::Send(self.file_cmd(cmd, id, load)),
            AesCmd::FileRecv => Reply::Send(self.file_recv(id, load)),
            AesCmd::RevokeAuth => Reply::Send(self.revoke_auth(id, load)),
            AesCmd::MinionPub => Reply::Send(self.minion_pub(id, load)),
            AesCmd::PubRet => Reply::Send(self.pub_ret(id, load)),
            AesCmd::MinionRunner => Reply::Send(self.minion_runner(id, load)),
            AesCmd::MinionPublish => {
                // Sent by no current minion (publish.* use minion_pub and
                // pub_ret); Salt's would hold this MWorker until the job's
                // timeout.
                warn!("{id}: minion_publish is not implemented by Brine (publish.publish uses minion_pub)");
                Reply::Send(Value::Map(Vec::new()))
            }
            AesCmd::Return => Reply::Send(self.job_return(id, load)),
            AesCmd::SyndicReturn => Reply::Send(self.syndic_return(load)),
            other => {
                debug!("{id}: AES command {} is not served yet", other.as_str());
                Reply::Send(Value::Map(Vec::new()))
            }
        }
    }
}
