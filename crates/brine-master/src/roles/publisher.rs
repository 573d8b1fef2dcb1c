//! ZeroMQPubServerChannel: owns the PUB socket minions subscribe to
//! (`interface:publish_port`, 4505) and the PULL socket the MWorkers push
//! publications to (`sock_dir/publish_pull.ipc`, mode 0600).
//!
//! Encrypting, signing and publishing a job's load arrives with the wire
//! protocol (issues 3 and 4); until then a load pushed here is logged and
//! dropped, never sent in clear text.

use std::os::unix::fs::PermissionsExt;
use std::rc::Rc;

use brine_config::MasterConfig;
use brine_proc::supervisor::ChildSpec;
use log::{debug, warn};

use super::{role, stop_signals, wait_readable, RoleError};
use crate::names;
use crate::zmqutil::{bind, bind_retry, tcp_endpoint};

fn opt_i64(cfg: &MasterConfig, key: &str, default: i64) -> i64 {
    cfg.get(key).and_then(|v| v.as_i64()).unwrap_or(default)
}

fn opt_bool(cfg: &MasterConfig, key: &str, default: bool) -> bool {
    cfg.get(key).and_then(|v| v.as_bool()).unwrap_or(default)
}

pub fn spec(cfg: Rc<MasterConfig>) -> ChildSpec {
    role(names::PUBLISHER, move |ctx| {
        let sig = stop_signals()?;
        let zctx = zmq::Context::new();
        let publ = zctx.socket(zmq::PUB)?;
        let hwm = opt_i64(&cfg, "pub_hwm", 1000) as i32;
        publ.set_sndhwm(hwm)?;
        publ.set_rcvhwm(hwm)?;
        publ.set_backlog(opt_i64(&cfg, "zmq_backlog", 1000) as i32)?;
        publ.set_linger(0)?;
        if cfg.ipv6 == Some(true) {
            publ.set_ipv6(true)?;
        }
        if opt_bool(&cfg, "tcp_keepalive", true) {
            publ.set_tcp_keepalive(1)?;
            publ.set_tcp_keepalive_idle(opt_i64(&cfg, "tcp_keepalive_idle", 300) as i32)?;
            publ.set_tcp_keepalive_cnt(opt_i64(&cfg, "tcp_keepalive_cnt", -1) as i32)?;
            publ.set_tcp_keepalive_intvl(opt_i64(&cfg, "tcp_keepalive_intvl", -1) as i32)?;
        }
        publ.set_heartbeat_ivl(opt_i64(&cfg, "zmq_heartbeat_ivl", 10_000) as i32)?;
        publ.set_heartbeat_timeout(opt_i64(&cfg, "zmq_heartbeat_timeout", 30_000) as i32)?;
        let endpoint = tcp_endpoint(&cfg.interface, cfg.publish_port);
        bind(&publ, &endpoint, bind_retry(ctx.incarnation)).map_err(RoleError::Fatal)?;

        let pull = zctx.socket(zmq::PULL)?;
        pull.set_linger(0)?;
        let pull_path = cfg.sock_dir.join("publish_pull.ipc");
        bind(
            &pull,
            &format!("ipc://{}", pull_path.display()),
            bind_retry(ctx.incarnation),
        )
        .map_err(RoleError::Fatal)?;
        std::fs::set_permissions(&pull_path, std::fs::Permissions::from_mode(0o600))?;
        ctx.ready();

        let mut warned = false;
        loop {
            if wait_readable(&[&pull], &sig)?.is_none() {
                return Ok(());
            }
            while let Ok(msg) = pull.recv_multipart(zmq::DONTWAIT) {
                let size: usize = msg.iter().map(Vec::len).sum();
                if !warned {
                    warn!(
                        "publication of {size} bytes dropped: publishing needs the wire protocol (not implemented yet)"
                    );
                    warned = true;
                } else {
                    debug!("publication of {size} bytes dropped");
                }
            }
        }
    })
}
