//! One clear request on the master's request port and its reply, over a
//! ZeroMQ REQ socket (Salt's `ReqChannel` with `crypt="clear"`).

use std::time::Duration;

use brine_proto::Value;

use crate::{ClientError, MasterAddr};

/// The largest reply taken from the master; a bigger one drops the
/// connection (and the call times out).
const MAX_REPLY: i64 = 256 * 1024 * 1024;

/// A REQ socket to the master's request port, made at the first request.
/// After a timeout the socket is dropped (a REQ socket without its reply
/// cannot send again) and the next request connects anew.
pub struct ReqChannel {
    addr: MasterAddr,
    timeout: Duration,
    ctx: Option<zmq::Context>,
    sock: Option<zmq::Socket>,
}

impl ReqChannel {
    /// A channel whose requests wait `timeout` for their reply.
    pub fn new(addr: MasterAddr, timeout: Duration) -> ReqChannel {
        ReqChannel {
            addr,
            timeout,
            ctx: None,
            sock: None,
        }
    }

    pub fn addr(&self) -> &MasterAddr {
        &self.addr
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn zmq_err(&self, source: zmq::Error) -> ClientError {
        ClientError::Zmq {
            url: self.addr.url(),
            source,
        }
    }

    fn socket(&mut self) -> Result<&zmq::Socket, ClientError> {
        if self.sock.is_none() {
            let ctx = self.ctx.get_or_insert_with(zmq::Context::new);
            let url = self.addr.url();
            let ms = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX).max(1);
            let sock = ctx
                .socket(zmq::REQ)
                .and_then(|s| {
                    s.set_linger(0)?;
                    s.set_rcvtimeo(ms)?;
                    s.set_sndtimeo(ms)?;
                    s.set_maxmsgsize(MAX_REPLY)?;
                    s.set_ipv6(self.addr.ipv6())?;
                    s.connect(&url)?;
                    Ok(s)
                })
                .map_err(|e| self.zmq_err(e))?;
            self.sock = Some(sock);
        }
        Ok(self.sock.as_ref().expect("set above"))
    }

    /// Send `load` as a clear request (`{enc: clear, load, version: 3}`)
    /// and return the decoded reply.
    pub fn send_clear(&mut self, load: Value) -> Result<Value, ClientError> {
        let request = Value::map([
            ("enc", Value::from("clear")),
            ("load", load),
            ("version", Value::Int(3)),
        ]);
        let sock = self.socket()?;
        let sent = sock.send(request.to_network(), 0);
        let reply = sent.and_then(|()| sock.recv_bytes(0));
        match reply {
            Ok(bytes) => Value::decode(&bytes).map_err(|e| ClientError::Malformed(e.to_string())),
            Err(e) => {
                self.sock = None;
                Err(match e {
                    zmq::Error::EAGAIN => ClientError::Timeout {
                        url: self.addr.url(),
                        timeout: self.timeout,
                    },
                    e => self.zmq_err(e),
                })
            }
        }
    }
}
