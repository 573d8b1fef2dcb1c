//! ReqServer_ProcessManager and its children: MWorkerQueue owns the ROUTER
//! minions and CLIs talk to (`interface:ret_port`, 4506) and a DEALER on
//! `sock_dir/workers.ipc`; the MWorkers connect REP sockets to it.
//!
//! ReqServer_ProcessManager is itself a supervisor: its children die with it
//! (PR_SET_PDEATHSIG), and it reports ready to the ProcessManager only once
//! the queue is bound and every MWorker is ready.

use std::os::unix::fs::PermissionsExt;
use std::rc::Rc;

use brine_config::MasterConfig;
use brine_proc::shm::SharedCell;
use brine_proc::supervisor::{ChildContext, ChildSpec, Hooks, Supervisor, SupervisorError};

use super::{role, stop_signals, wait_readable, RoleError};
use crate::channel::ReqServerChannel;
use crate::names;
use crate::zmqutil::{bind, bind_retry, bind_tcp};

pub fn spec(cfg: Rc<MasterConfig>, aes: Rc<SharedCell>, keys: crate::pki::MasterKeys) -> ChildSpec {
    role(names::REQ_SERVER, move |ctx| {
        // Children of a respawned ReqServer may race their dying
        // predecessors for the port: let them retry.
        let respawned = ctx.incarnation;
        let mut specs = vec![queue_spec(cfg.clone(), respawned)];
        for i in 0..cfg.worker_threads {
            specs.push(worker_spec(cfg.clone(), aes.clone(), keys.clone(), i));
        }
        let mut sup = Supervisor::new(names::REQ_SERVER, specs)?;
        sup.close_in_child(ctx.status_fd());
        match sup.run(&mut ReadyUpstream(ctx)) {
            Ok(()) => Ok(()),
            Err(SupervisorError::Fatal { name, msg }) => Err(RoleError::Fatal(format!("{name} cannot start: {msg}"))),
            Err(e) => Err(RoleError::Failed(e.to_string())),
        }
    })
}

struct ReadyUpstream<'a>(&'a ChildContext);

impl Hooks for ReadyUpstream<'_> {
    fn all_ready(&mut self, _sup: &Supervisor) {
        self.0.ready();
    }
}

fn queue_spec(cfg: Rc<MasterConfig>, parent_incarnation: u32) -> ChildSpec {
    role(names::WORKER_QUEUE, move |ctx| {
        let sig = stop_signals()?;
        let zctx = zmq::Context::new();
        let retry = bind_retry(ctx.incarnation.max(parent_incarnation));
        let front = zctx.socket(zmq::ROUTER)?;
        front.set_linger(0)?;
        front.set_router_handover(true)?;
        front.set_tcp_keepalive(1)?;
        front.set_tcp_keepalive_idle(60)?;
        front.set_tcp_keepalive_intvl(15)?;
        front.set_tcp_keepalive_cnt(3)?;
        front.set_backlog(cfg.get("zmq_backlog").and_then(|v| v.as_i64()).unwrap_or(1000) as i32)?;
        bind_tcp(&front, &cfg, cfg.ret_port, retry).map_err(RoleError::Fatal)?;
        let back = zctx.socket(zmq::DEALER)?;
        back.set_linger(0)?;
        let workers = cfg.sock_dir.join("workers.ipc");
        bind(&back, &format!("ipc://{}", workers.display()), retry).map_err(RoleError::Fatal)?;
        std::fs::set_permissions(&workers, std::fs::Permissions::from_mode(0o600))?;
        ctx.ready();

        let mut msg = zmq::Message::new();
        loop {
            let Some(ready) = wait_readable(&[&front, &back], &sig)? else {
                return Ok(());
            };
            let (f, b) = (ready[0], ready[1]);
            if f {
                forward(&front, &back, &mut msg)?;
            }
            if b {
                forward(&back, &front, &mut msg)?;
            }
        }
    })
}

/// Move every whole multipart message waiting on `from` to `to`.
fn forward(from: &zmq::Socket, to: &zmq::Socket, msg: &mut zmq::Message) -> Result<(), RoleError> {
    loop {
        match from.recv(msg, zmq::DONTWAIT) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => return Ok(()),
            Err(zmq::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        loop {
            let more = msg.get_more();
            to.send(
                std::mem::replace(msg, zmq::Message::new()),
                if more { zmq::SNDMORE } else { 0 },
            )?;
            if !more {
                break;
            }
            from.recv(msg, 0)?;
        }
    }
}

fn worker_spec(cfg: Rc<MasterConfig>, aes: Rc<SharedCell>, keys: crate::pki::MasterKeys, index: usize) -> ChildSpec {
    role(format!("{}{index}", names::WORKER_PREFIX), move |ctx| {
        let sig = stop_signals()?;
        let zctx = zmq::Context::new();
        let rep = zctx.socket(zmq::REP)?;
        rep.set_linger(0)?;
        rep.connect(&format!("ipc://{}", cfg.sock_dir.join("workers.ipc").display()))?;
        let mut handler = ReqServerChannel::new(cfg.clone(), aes.clone(), &keys, &zctx).map_err(RoleError::Fatal)?;
        ctx.ready();
        let mut msg = zmq::Message::new();
        loop {
            if wait_readable(&[&rep], &sig)?.is_none() {
                return Ok(());
            }
            loop {
                match rep.recv(&mut msg, zmq::DONTWAIT) {
                    Ok(()) => {}
                    Err(zmq::Error::EAGAIN) => break,
                    Err(zmq::Error::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
                // A request is one frame; extra frames are drained and refused.
                let mut reply = if msg.get_more() {
                    None
                } else {
                    Some(handler.handle(&msg))
                };
                while msg.get_more() {
                    rep.recv(&mut msg, 0)?;
                }
                if reply.is_none() {
                    log::warn!("multi-frame request refused");
                    reply = Some(crate::channel::bad_load());
                }
                rep.send(reply.unwrap(), 0)?;
            }
        }
    })
}
