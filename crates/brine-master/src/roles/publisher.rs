//! ZeroMQPubServerChannel: owns the PUB socket minions subscribe to
//! (`interface:publish_port`, 4505) and the PULL socket the MWorkers push
//! publications to (`sock_dir/publish_pull.ipc`, mode 0600).
//!
//! Each publication pushed by an MWorker gets the next serial (shared
//! counter of the AES key), is encrypted with the master AES key and, with
//! `sign_pub_messages` (default True), signed with master.pem over the
//! ciphertext (Salt's `PubServerChannel.wrap_payload`). With `zmq_filtering`, it goes out once per
//! matched minion under `sha1(id)` topics (glob/pcre/list) or `broadcast`.

use std::os::unix::fs::PermissionsExt;
use std::rc::Rc;

use brine_config::MasterConfig;
use brine_proc::shm::SharedCell;
use brine_proto::crypto::{PrivateKey, SigAlgo};
use brine_proto::Value;

use crate::channel::AesKey;
use brine_proc::supervisor::ChildSpec;
use log::warn;

use super::portmonitor::PortMonitor;
use super::{role, stop_signals, wait_readable, RoleError};
use crate::names;
use crate::zmqutil::{bind, bind_retry, bind_tcp, listen_backlog, size_connection_buffers, ConnectionBuffers};

/// Serial, encrypt and sign one publication pushed by an MWorker.
fn wrap(
    msg: &[u8],
    aes: &mut AesKey,
    cell: &SharedCell,
    key: &PrivateKey,
    sig_algo: Option<SigAlgo>,
) -> Result<(Vec<u8>, Vec<String>, String), String> {
    let env = Value::decode(msg).map_err(|e| format!("malformed publication: {e}"))?;
    let mut load = env
        .get("load")
        .filter(|l| l.is_map())
        .cloned()
        .ok_or("publication without a load")?;
    let minions = match env.get("minions") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => Vec::new(),
    };
    let tgt_type = env
        .get("tgt_type")
        .and_then(Value::as_str)
        .unwrap_or("glob")
        .to_string();
    load.set("serial", Value::Int(cell.next_counter() as i64));
    let crypticle = aes.current().ok_or("the master AES key is unavailable")?;
    let ct = crypticle.seal(&load.to_network(), None).map_err(|e| e.to_string())?;
    let mut frame = Value::map([("enc", Value::from("aes")), ("load", Value::Bytes(ct.clone()))]);
    if let Some(algo) = sig_algo {
        let sig = key.sign(algo, &ct).map_err(|e| e.to_string())?;
        frame.set("sig", Value::Bytes(sig));
        frame.set("sig_algo", Value::from(algo.as_str()));
    }
    Ok((frame.to_network(), minions, tgt_type))
}

fn opt_i64(cfg: &MasterConfig, key: &str, default: i64) -> i64 {
    cfg.get(key).and_then(|v| v.as_i64()).unwrap_or(default)
}

fn opt_bool(cfg: &MasterConfig, key: &str, default: bool) -> bool {
    cfg.get(key).and_then(|v| v.as_bool()).unwrap_or(default)
}

pub fn spec(cfg: Rc<MasterConfig>, aes: Rc<SharedCell>, keys: crate::pki::MasterKeys) -> ChildSpec {
    role(names::PUBLISHER, move |ctx| {
        let sig = stop_signals()?;
        let zctx = zmq::Context::new();
        let mut publ = zctx.socket(zmq::PUB)?;
        size_connection_buffers(&mut publ, ConnectionBuffers::MINIONS).map_err(RoleError::Fatal)?;
        let hwm = opt_i64(&cfg, "pub_hwm", 1000) as i32;
        publ.set_sndhwm(hwm)?;
        publ.set_rcvhwm(hwm)?;
        publ.set_backlog(listen_backlog(&cfg))?;
        publ.set_linger(0)?;
        if opt_bool(&cfg, "tcp_keepalive", true) {
            publ.set_tcp_keepalive(1)?;
            publ.set_tcp_keepalive_idle(opt_i64(&cfg, "tcp_keepalive_idle", 300) as i32)?;
            publ.set_tcp_keepalive_cnt(opt_i64(&cfg, "tcp_keepalive_cnt", -1) as i32)?;
            publ.set_tcp_keepalive_intvl(opt_i64(&cfg, "tcp_keepalive_intvl", -1) as i32)?;
        }
        publ.set_heartbeat_ivl(opt_i64(&cfg, "zmq_heartbeat_ivl", 10_000) as i32)?;
        publ.set_heartbeat_timeout(opt_i64(&cfg, "zmq_heartbeat_timeout", 30_000) as i32)?;
        let mut monitor = PortMonitor::new(&zctx, &mut publ, "publish_port", None)?;
        bind_tcp(&publ, &cfg, cfg.publish_port, bind_retry(ctx.incarnation)).map_err(RoleError::Fatal)?;

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

        let master_key = keys.key.clone();
        let mut aes_key = AesKey::new(aes.clone());
        let sign = cfg.get_bool("sign_pub_messages").unwrap_or(true);
        let sig_algo_name = cfg
            .get_str("publish_signing_algorithm")
            .unwrap_or("PKCS1v15-SHA1")
            .to_string();
        let sig_algo: SigAlgo = sig_algo_name
            .parse()
            .map_err(|e| RoleError::Fatal(format!("publish_signing_algorithm: {e}")))?;
        let filtering = cfg.get_bool("zmq_filtering").unwrap_or(false);
        loop {
            let Some(ready) = wait_readable(&[&pull, monitor.socket()], &sig)? else {
                return Ok(());
            };
            if ready[1] {
                monitor.turn()?;
            }
            while let Ok(msg) = pull.recv_bytes(zmq::DONTWAIT) {
                match wrap(&msg, &mut aes_key, &aes, &master_key, sign.then_some(sig_algo)) {
                    Ok((frame, minions, tgt_type)) => {
                        brine_metrics::count(brine_metrics::Counter::Publishes, 1);
                        if filtering {
                            let topics: Vec<Vec<u8>> = if matches!(tgt_type.as_str(), "glob" | "pcre" | "list") {
                                minions
                                    .iter()
                                    .map(|m| hex::encode(openssl::sha::sha1(m.as_bytes())).into_bytes())
                                    .collect()
                            } else {
                                vec![b"broadcast".to_vec()]
                            };
                            for t in topics {
                                publ.send_multipart([t, frame.clone()], 0)?;
                            }
                        } else {
                            publ.send(frame, 0)?;
                        }
                    }
                    Err(e) => warn!("publication dropped: {e}"),
                }
            }
        }
    })
}
