//! A ZMTP 3.0 client (NULL mechanism) on tokio, enough to be a salt-minion's
//! REQ (as DEALER plus the empty delimiter) and SUB socket.
//!
//! libzmq costs two file descriptors and an I/O-thread pipe per socket; a
//! swarm of 10,000 minions needs 20,000 connections, so each connection
//! here is one TCP stream and one small task. The wire format is RFC 23
//! (ZMTP 3.0): a 64-byte greeting, a READY command with `Socket-Type`
//! (and `Identity`), then frames of `flags, size, body`.

use std::net::SocketAddr;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Frames larger than this are refused (a publication or reply this large
/// is a protocol error, not a job).
pub const MAX_FRAME: u64 = 256 * 1024 * 1024;

const FLAG_MORE: u8 = 0x01;
const FLAG_LONG: u8 = 0x02;
const FLAG_COMMAND: u8 = 0x04;

#[derive(Debug, Error)]
pub enum ZmtpError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("peer is not ZMTP 3: {0}")]
    Greeting(String),
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(u64),
    #[error("peer sent ERROR: {0}")]
    PeerError(String),
}

/// The socket type announced in READY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketType {
    Dealer,
    Sub,
}

impl SocketType {
    fn name(self) -> &'static [u8] {
        match self {
            SocketType::Dealer => b"DEALER",
            SocketType::Sub => b"SUB",
        }
    }
}

fn greeting() -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3; // major
    g[11] = 0; // minor: 3.0 (subscriptions as messages, no heartbeats asked)
    g[12..16].copy_from_slice(b"NULL");
    g
}

fn encode_frame(out: &mut Vec<u8>, flags: u8, body: &[u8]) {
    if body.len() > 255 {
        out.push(flags | FLAG_LONG);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    } else {
        out.push(flags);
        out.push(body.len() as u8);
    }
    out.extend_from_slice(body);
}

fn ready_command(socket_type: SocketType, identity: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    body.push(5);
    body.extend_from_slice(b"READY");
    let mut prop = |name: &[u8], value: &[u8]| {
        body.push(name.len() as u8);
        body.extend_from_slice(name);
        body.extend_from_slice(&(value.len() as u32).to_be_bytes());
        body.extend_from_slice(value);
    };
    prop(b"Socket-Type", socket_type.name());
    if let Some(id) = identity {
        prop(b"Identity", id);
    }
    let mut out = Vec::with_capacity(body.len() + 9);
    encode_frame(&mut out, FLAG_COMMAND, &body);
    out
}

/// The reading half: yields whole messages, answers nothing itself (PINGs
/// are reported to the caller through [`Incoming::Ping`]).
pub struct Reader {
    rd: BufReader<OwnedReadHalf>,
}

/// The writing half.
pub struct Writer {
    wr: OwnedWriteHalf,
}

pub enum Incoming {
    Message(Vec<Vec<u8>>),
    /// A ZMTP 3.1 PING: the caller should send [`Writer::pong`] with this context.
    Ping(Vec<u8>),
}

/// Connect, exchange greetings and READY commands.
pub async fn connect(
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    socket_type: SocketType,
    identity: Option<&[u8]>,
) -> Result<(Reader, Writer), ZmtpError> {
    let stream = match source {
        None => TcpStream::connect(addr).await?,
        Some(ip) => {
            let sock = if ip.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            sock.bind(SocketAddr::new(ip, 0))?;
            sock.connect(addr).await?
        }
    };
    stream.set_nodelay(true)?;
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(16 * 1024, rd);
    let mut hello = greeting().to_vec();
    hello.extend_from_slice(&ready_command(socket_type, identity));
    wr.write_all(&hello).await?;
    let mut peer = [0u8; 64];
    rd.read_exact(&mut peer).await?;
    if peer[0] != 0xFF || peer[9] != 0x7F || peer[10] < 3 {
        return Err(ZmtpError::Greeting(format!("signature {:02x?}", &peer[..12])));
    }
    if &peer[12..16] != b"NULL" {
        return Err(ZmtpError::Greeting("mechanism is not NULL".into()));
    }
    let mut reader = Reader { rd };
    // The peer's READY (ignore its properties).
    loop {
        let (flags, body) = reader.frame().await?;
        if flags & FLAG_COMMAND != 0 {
            if body.starts_with(b"\x05READY") {
                break;
            }
            if body.starts_with(b"\x05ERROR") {
                return Err(ZmtpError::PeerError(String::from_utf8_lossy(&body[6..]).into_owned()));
            }
        } else {
            return Err(ZmtpError::Greeting("message before READY".into()));
        }
    }
    Ok((reader, Writer { wr }))
}

impl Reader {
    async fn frame(&mut self) -> Result<(u8, Vec<u8>), ZmtpError> {
        let flags = self.rd.read_u8().await?;
        let len = if flags & FLAG_LONG != 0 {
            self.rd.read_u64().await?
        } else {
            u64::from(self.rd.read_u8().await?)
        };
        if len > MAX_FRAME {
            return Err(ZmtpError::TooLarge(len));
        }
        let mut body = vec![0u8; len as usize];
        self.rd.read_exact(&mut body).await?;
        Ok((flags, body))
    }

    /// The next message (all its frames) or PING.
    pub async fn recv(&mut self) -> Result<Incoming, ZmtpError> {
        let mut parts = Vec::new();
        loop {
            let (flags, body) = self.frame().await?;
            if flags & FLAG_COMMAND != 0 {
                if let Some(rest) = body.strip_prefix(b"\x04PING") {
                    // 2-byte TTL, then the context to echo.
                    return Ok(Incoming::Ping(rest.get(2..).unwrap_or_default().to_vec()));
                }
                if body.starts_with(b"\x05ERROR") {
                    return Err(ZmtpError::PeerError(String::from_utf8_lossy(&body[6..]).into_owned()));
                }
                continue;
            }
            parts.push(body);
            if flags & FLAG_MORE == 0 {
                return Ok(Incoming::Message(parts));
            }
        }
    }
}

impl Writer {
    pub async fn send(&mut self, parts: &[&[u8]]) -> Result<(), ZmtpError> {
        let total: usize = parts.iter().map(|p| p.len() + 9).sum();
        let mut out = Vec::with_capacity(total);
        for (i, p) in parts.iter().enumerate() {
            let more = if i + 1 < parts.len() { FLAG_MORE } else { 0 };
            encode_frame(&mut out, more, p);
        }
        self.wr.write_all(&out).await?;
        Ok(())
    }

    /// ZMTP 3.0 subscription: a message whose first byte is 1.
    pub async fn subscribe(&mut self, topic: &[u8]) -> Result<(), ZmtpError> {
        let mut m = Vec::with_capacity(topic.len() + 1);
        m.push(1);
        m.extend_from_slice(topic);
        self.send(&[&m]).await
    }

    pub async fn pong(&mut self, context: &[u8]) -> Result<(), ZmtpError> {
        let mut body = b"\x04PONG".to_vec();
        body.extend_from_slice(context);
        let mut out = Vec::new();
        encode_frame(&mut out, FLAG_COMMAND, &body);
        self.wr.write_all(&out).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_short_and_long() {
        let mut out = Vec::new();
        encode_frame(&mut out, FLAG_MORE, b"");
        assert_eq!(out, [1, 0]);
        out.clear();
        encode_frame(&mut out, 0, &[7u8; 300]);
        assert_eq!(out[0], FLAG_LONG);
        assert_eq!(&out[1..9], &300u64.to_be_bytes());
        assert_eq!(out.len(), 309);
    }

    #[test]
    fn ready_has_socket_type_and_identity() {
        let r = ready_command(SocketType::Dealer, Some(b"m1"));
        assert_eq!(r[0], FLAG_COMMAND);
        let body = &r[2..];
        assert!(body.starts_with(b"\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER"));
        assert!(body.ends_with(b"\x08Identity\x00\x00\x00\x02m1"));
    }

    /// Against libzmq itself: a ROUTER echoes and a PUB publishes to us.
    #[test]
    fn talks_to_libzmq() {
        let ctx = zmq::Context::new();
        let router = ctx.socket(zmq::ROUTER).unwrap();
        router.bind("tcp://127.0.0.1:*").unwrap();
        let raddr = router.get_last_endpoint().unwrap().unwrap();
        let pubs = ctx.socket(zmq::PUB).unwrap();
        pubs.bind("tcp://127.0.0.1:*").unwrap();
        let paddr = pubs.get_last_endpoint().unwrap().unwrap();
        let parse = |e: &str| e.trim_start_matches("tcp://").parse::<SocketAddr>().unwrap();
        let (raddr, paddr) = (parse(&raddr), parse(&paddr));
        let echo = std::thread::spawn(move || {
            let msg = router.recv_multipart(0).unwrap();
            router.send_multipart(&msg, 0).unwrap();
            for _ in 0..50 {
                pubs.send(&b"hello"[..], 0).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut rd, mut wr) = connect(paddr, None, SocketType::Sub, None).await.unwrap();
            wr.subscribe(b"").await.unwrap();
            let (mut qr, mut qw) = connect(raddr, None, SocketType::Dealer, Some(b"id1")).await.unwrap();
            qw.send(&[b"", &[9u8; 1000]]).await.unwrap();
            match qr.recv().await.unwrap() {
                Incoming::Message(m) => assert_eq!(m, vec![Vec::new(), vec![9u8; 1000]]),
                Incoming::Ping(_) => panic!("ping"),
            }
            match rd.recv().await.unwrap() {
                Incoming::Message(m) => assert_eq!(m, vec![b"hello".to_vec()]),
                Incoming::Ping(_) => panic!("ping"),
            }
        });
        echo.join().unwrap();
    }
}
