//! ReqServer_ProcessManager and its children: MWorkerQueue owns the ROUTER
//! minions and CLIs talk to (`interface:ret_port`, 4506) and a DEALER on
//! `sock_dir/workers.ipc`; the MWorkers connect REP sockets to it.
//!
//! ReqServer_ProcessManager is itself a supervisor: its children die with it
//! (PR_SET_PDEATHSIG), and it reports ready to the ProcessManager only once
//! the queue is bound and every MWorker is ready.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use brine_config::MasterConfig;
use brine_metrics::Counter;
use brine_proc::shm::SharedCell;
use brine_proc::supervisor::{ChildContext, ChildSpec, Hooks, Supervisor, SupervisorError};

use super::portmonitor::PortMonitor;
use super::{role, stop_signals, wait_readable_with, RoleError};
use crate::channel::{ReqServerChannel, VerifiedToks};
use crate::names;
use crate::runjobs::Token;
use crate::zmqutil::{bind, bind_retry, bind_tcp, listen_backlog, size_connection_buffers, ConnectionBuffers};

pub fn spec(cfg: Rc<MasterConfig>, aes: Rc<SharedCell>, keys: crate::pki::MasterKeys) -> ChildSpec {
    role(names::REQ_SERVER, move |ctx| {
        // Children of a respawned ReqServer may race their dying
        // predecessors for the port: let them retry.
        let respawned = ctx.incarnation;
        // Mapped here, before the MWorkers are forked, so that every
        // MWorker (and a respawned one) shares it.
        let toks = Rc::new(VerifiedToks::new(crate::channel::TOK_SLOTS)?);
        let mut specs = vec![queue_spec(cfg.clone(), respawned)];
        for i in 0..cfg.worker_threads {
            let (aes, toks) = (aes.clone(), toks.clone());
            specs.push(worker_spec(cfg.clone(), aes, toks, keys.clone(), i));
        }
        let mut sup = Supervisor::new(names::REQ_SERVER, specs)?;
        sup.close_in_child(ctx.status_fd());
        match sup.run(&mut ReadyUpstream(ctx, Default::default())) {
            Ok(()) => Ok(()),
            Err(SupervisorError::Fatal { name, msg }) => Err(RoleError::Fatal(format!("{name} cannot start: {msg}"))),
            Err(e) => Err(RoleError::Failed(e.to_string())),
        }
    })
}

/// Tells the ProcessManager when every child is ready, and keeps the
/// children's rows on the status board.
struct ReadyUpstream<'a>(&'a ChildContext, crate::metrics::TreeRows);

impl Hooks for ReadyUpstream<'_> {
    fn all_ready(&mut self, _sup: &Supervisor) {
        self.0.ready();
    }

    fn state(&mut self, sup: &Supervisor) {
        self.1.write(sup);
    }
}

fn queue_spec(cfg: Rc<MasterConfig>, parent_incarnation: u32) -> ChildSpec {
    role(names::WORKER_QUEUE, move |ctx| {
        let sig = stop_signals()?;
        let zctx = zmq::Context::new();
        let retry = bind_retry(ctx.incarnation.max(parent_incarnation));
        let mut front = zctx.socket(zmq::ROUTER)?;
        size_connection_buffers(&mut front, ConnectionBuffers::MINIONS).map_err(RoleError::Fatal)?;
        front.set_linger(0)?;
        front.set_router_handover(true)?;
        front.set_tcp_keepalive(1)?;
        front.set_tcp_keepalive_idle(60)?;
        front.set_tcp_keepalive_intvl(15)?;
        front.set_tcp_keepalive_cnt(3)?;
        front.set_backlog(listen_backlog(&cfg))?;
        // Oversized requests are refused by ZeroMQ as the frame header
        // arrives: the connection is dropped, nothing reaches an MWorker.
        let max_request = crate::channel::max_request(&cfg);
        front.set_maxmsgsize(i64::try_from(max_request).unwrap_or(i64::MAX))?;
        let mut monitor = PortMonitor::new(
            &zctx,
            &mut front,
            "ret_port",
            Some(("request_max_size", max_request as u64)),
        )?;
        bind_tcp(&front, &cfg, cfg.ret_port, retry).map_err(RoleError::Fatal)?;
        let back = zctx.socket(zmq::DEALER)?;
        back.set_linger(0)?;
        // The queue of requests no MWorker has taken yet lives here, where
        // each is stamped with its arrival (a sign-in that waited longer
        // than its minion does is dropped unanswered), rather than
        // unstamped in ret_port's per-connection pipes.
        back.set_sndhwm(i32::try_from(REQUEST_QUEUE / cfg.worker_threads.max(1)).unwrap_or(i32::MAX))?;
        let workers = cfg.sock_dir.join("workers.ipc");
        bind(&back, &format!("ipc://{}", workers.display()), retry).map_err(RoleError::Fatal)?;
        std::fs::set_permissions(&workers, std::fs::Permissions::from_mode(0o600))?;
        ctx.ready();

        let mut msg = zmq::Message::new();
        let mut addr = Vec::with_capacity(64);
        loop {
            // Requests are taken from ret_port only while the workers' side
            // can queue one more (each MWorker's pipe holds its high-water
            // mark): a blocking send here would stop this loop from moving
            // the workers' replies, and a worker whose replies are not read
            // blocks in turn, each waiting for the other. Until a worker
            // takes one, requests wait in ret_port's own queues (and the
            // minions' TCP buffers), and the loop looks again every 20 ms
            // (a worker that drops a request does not answer).
            let room = back.get_events()?.contains(zmq::POLLOUT);
            let polled = if room {
                wait_readable_with(&[&back, monitor.socket(), &front], &[], &sig, None)?
            } else {
                wait_readable_with(&[&back, monitor.socket()], &[], &sig, Some(Duration::from_millis(20)))?
            };
            let Some(ready) = polled else {
                return Ok(());
            };
            let (b, f) = (ready[0], ready.get(2).copied().unwrap_or(false));
            if ready[1] {
                monitor.turn()?;
            }
            if f {
                forward(&front, &back, &mut msg, Some(&mut addr))?;
            }
            if b {
                let n = forward(&back, &front, &mut msg, None)?;
                brine_metrics::count(Counter::Answered, n);
            }
        }
    })
}

/// Requests queued for the MWorkers at most (each MWorker's pipe holds its
/// share): a 20,000-minion auth storm fits, and a sign-in is ~1 KiB.
const REQUEST_QUEUE: usize = 20_000;

/// Milliseconds on the system's monotonic clock (the same in every
/// process of the machine).
fn monotonic_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |t| (t.tv_sec() as u64) * 1000 + (t.tv_nsec() as u64) / 1_000_000)
}

/// Move every whole multipart message waiting on `from` to `to`. With
/// `peer_addr` (requests from ret_port), one more frame follows each
/// message: when MWorkerQueue took it (8 bytes, little-endian
/// [`monotonic_ms`]), its number (8 bytes, little-endian: the status
/// board's count of requests received) and the TCP address it came from
/// (ZeroMQ's `Peer-Address` property of the last frame, empty if it has
/// none), so that the MWorker can tell how long it waited, mark how far
/// the queue has been taken, and name the peer. The REP socket of the MWorker strips the routing
/// envelope and hands over the request's frames, then this one. Returns
/// how many whole messages moved.
fn forward(
    from: &zmq::Socket,
    to: &zmq::Socket,
    msg: &mut zmq::Message,
    mut peer_addr: Option<&mut Vec<u8>>,
) -> Result<u64, RoleError> {
    let mut moved = 0;
    loop {
        // Requests (the caller saw room for the first): after each one,
        // whether the workers' DEALER still has room, i.e. not every
        // MWorker's pipe is at its high-water mark. Replies need no look:
        // a ROUTER always has room (it drops what a gone peer cannot take).
        if moved > 0 && peer_addr.is_some() && !to.get_events()?.contains(zmq::POLLOUT) {
            return Ok(moved);
        }
        match from.recv(msg, zmq::DONTWAIT) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => return Ok(moved),
            Err(zmq::Error::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        loop {
            let more = msg.get_more();
            let addr = match peer_addr.as_deref_mut() {
                Some(buf) if !more => {
                    // The request's number (the status board's count of
                    // requests received), for the queue depth.
                    let seq = brine_metrics::board().map_or(0, |b| b.next(Counter::Received));
                    buf.clear();
                    buf.extend_from_slice(&monotonic_ms().to_le_bytes());
                    buf.extend_from_slice(&seq.to_le_bytes());
                    buf.extend_from_slice(msg.gets("Peer-Address").unwrap_or("").as_bytes());
                    Some(&buf[..])
                }
                _ => None,
            };
            to.send(
                std::mem::replace(msg, zmq::Message::new()),
                if more || addr.is_some() { zmq::SNDMORE } else { 0 },
            )?;
            if let Some(addr) = addr {
                to.send(addr, 0)?;
            }
            if !more {
                moved += 1;
                break;
            }
            from.recv(msg, 0)?;
        }
    }
}

fn worker_spec(
    cfg: Rc<MasterConfig>,
    aes: Rc<SharedCell>,
    toks: Rc<VerifiedToks>,
    keys: crate::pki::MasterKeys,
    index: usize,
) -> ChildSpec {
    role(format!("{}{index}", names::WORKER_PREFIX), move |ctx| {
        let sig = stop_signals()?;
        let zctx = zmq::Context::new();
        // A DEALER, not a REP: a request waiting for a runner job keeps
        // its routing envelope here while the worker serves the next ones,
        // and is answered when the job ends.
        let sock = zctx.socket(zmq::DEALER)?;
        sock.set_linger(0)?;
        sock.connect(&format!("ipc://{}", cfg.sock_dir.join("workers.ipc").display()))?;
        let mut handler =
            ReqServerChannel::new(cfg.clone(), aes.clone(), toks.clone(), &keys, &zctx).map_err(RoleError::Fatal)?;
        if cfg.get_bool("master_stats").unwrap_or(false) {
            handler.master_stats(&format!("{}{index}", names::WORKER_PREFIX));
        }
        let board = brine_metrics::board();
        // A predecessor that died mid-request left its busy mark.
        if let Some(b) = board {
            b.worker_busy(index, Some(0));
        }
        ctx.ready();
        let mut waiting: HashMap<Token, Vec<zmq::Message>> = HashMap::new();
        // Answers to refused eauth credentials, each sent at its time.
        let mut delayed: Vec<(Instant, Vec<zmq::Message>, Vec<u8>)> = Vec::new();
        let mut envelope: Vec<zmq::Message> = Vec::new();
        let mut msg = zmq::Message::new();
        let mut last = zmq::Message::new();
        loop {
            let fds = handler.job_fds();
            let next = delayed.iter().map(|d| d.0).min();
            let timeout = next.map(|t| t.saturating_duration_since(Instant::now()));
            let Some(ready) = wait_readable_with(&[&sock], &fds, &sig, timeout)? else {
                return Ok(());
            };
            if next.is_some_and(|t| t <= Instant::now()) {
                let now = Instant::now();
                let (due, later): (Vec<_>, Vec<_>) = delayed.drain(..).partition(|d| d.0 <= now);
                delayed = later;
                for (_, env, reply) in due {
                    send_reply(&sock, env, reply)?;
                }
            }
            if !fds.is_empty() {
                for (token, reply) in handler.finished_jobs() {
                    if let Some(env) = waiting.remove(&token) {
                        send_reply(&sock, env, reply)?;
                    }
                }
            }
            if !ready[0] {
                continue;
            }
            loop {
                // The routing envelope: the frames up to the empty
                // delimiter, as a REP socket would strip them.
                envelope.clear();
                let mut first = true;
                let complete = loop {
                    let mut frame = zmq::Message::new();
                    match sock.recv(&mut frame, if first { zmq::DONTWAIT } else { 0 }) {
                        Ok(()) => {}
                        Err(zmq::Error::EAGAIN) if first => break None,
                        Err(zmq::Error::EINTR) => continue,
                        Err(e) => return Err(e.into()),
                    }
                    first = false;
                    let (empty, more) = (frame.is_empty(), frame.get_more());
                    envelope.push(frame);
                    if empty {
                        break Some(more);
                    }
                    if !more {
                        break Some(false);
                    }
                };
                match complete {
                    None => break,
                    Some(false) => {
                        log::warn!("a request without a routing envelope or body was dropped");
                        continue;
                    }
                    Some(true) => {}
                }
                sock.recv(&mut msg, 0)?;
                // A request is one frame, followed by the frame with the
                // peer's address that MWorkerQueue adds; a request of more
                // frames is drained and refused.
                let mut frames = 1;
                if msg.get_more() {
                    sock.recv(&mut last, 0)?;
                    frames += 1;
                    while last.get_more() {
                        sock.recv(&mut last, 0)?;
                        frames += 1;
                    }
                }
                let (peer, waited, seq) = match (frames > 1).then(|| last.split_at_checked(16)).flatten() {
                    Some((stamps, addr)) => {
                        let (at, seq) = stamps.split_at(8);
                        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
                        let a = std::str::from_utf8(addr).unwrap_or("");
                        (
                            a.strip_prefix("::ffff:").unwrap_or(a),
                            monotonic_ms().saturating_sub(word(at)),
                            word(seq),
                        )
                    }
                    None => ("", 0, 0),
                };
                handler.set_queued(Duration::from_millis(waited));
                if let Some(b) = board {
                    b.raise(Counter::Taken, seq);
                    b.worker_busy(index, Some(brine_metrics::board::now_ms()));
                }
                let arrived = Instant::now();
                let reply = if frames <= 2 {
                    handler.handle(&msg, peer)
                } else {
                    log::warn!(
                        "multi-frame request from {} refused",
                        if peer.is_empty() { "an unidentified peer" } else { peer }
                    );
                    crate::channel::bad_load()
                };
                if let Some(b) = board {
                    b.worker_busy(index, None);
                    let (cmd, outcome) = handler.take_outcome();
                    b.request(cmd, outcome, arrived.elapsed() + Duration::from_millis(waited));
                }
                let env = std::mem::take(&mut envelope);
                match handler.take_deferred() {
                    Some(token) => {
                        waiting.insert(token, env);
                    }
                    None if handler.take_unanswered() => {}
                    None if handler.take_auth_failure() => delayed.push((arrived + failure_delay(), env, reply)),
                    None => send_reply(&sock, env, reply)?,
                }
            }
        }
    })
}

/// How long after its arrival a request with refused eauth credentials
/// is answered: 0.75 to 1.25 s at random, as Salt's `time_auth` spreads
/// its failures around its first one second, so that a failure's timing
/// tells nothing and guessing passwords is slow. The worker serves other
/// requests meanwhile.
fn failure_delay() -> Duration {
    let r = brine_proto::crypto::random_bytes(2);
    let frac = f64::from(u16::from_le_bytes([r[0], r[1]])) / f64::from(u16::MAX);
    Duration::from_secs_f64(0.75 + 0.5 * frac)
}

/// A reply, after the routing envelope of its request.
fn send_reply(sock: &zmq::Socket, envelope: Vec<zmq::Message>, reply: Vec<u8>) -> Result<(), RoleError> {
    for frame in envelope {
        sock.send(frame, zmq::SNDMORE)?;
    }
    sock.send(reply, 0)?;
    Ok(())
}
