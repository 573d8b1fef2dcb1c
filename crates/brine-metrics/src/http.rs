//! The metrics endpoint: a minimal HTTP/1.x server for Prometheus's
//! scrapes. One connection at a time, each closed after its answer; a
//! request is read for at most [`READ_TIMEOUT`] and [`MAX_REQUEST`] bytes,
//! and anything but `GET`/`HEAD` of `/metrics` or `/` gets an error
//! status. A scrape is a few kilobytes computed in a millisecond, so one
//! thread serves any number of Prometheus servers.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// The longest request head read.
pub const MAX_REQUEST: usize = 8192;
/// How long a client has to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// What OpenMetrics text is served as (Prometheus asks for it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serve `listener` until it fails, answering scrapes with `scrape()`.
pub fn serve(listener: TcpListener, scrape: impl Fn() -> String) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let peer = stream.peer_addr().map_or_else(|_| "?".to_string(), |a| a.to_string());
                if let Err(e) = answer(stream, &scrape) {
                    log::debug!("metrics endpoint: connection from {peer}: {e}");
                }
            }
            Err(e) => {
                log::warn!("metrics endpoint: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn answer(mut stream: TcpStream, scrape: &impl Fn() -> String) -> std::io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
                false,
            );
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n",
            head_only,
        );
    }
    match path {
        "/metrics" => respond(&mut stream, "200 OK", CONTENT_TYPE, &scrape(), head_only),
        "/" => respond(
            &mut stream,
            "200 OK",
            "text/plain; charset=utf-8",
            "salt-master (Brine): metrics at /metrics\n",
            head_only,
        ),
        _ => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            "not found: see /metrics\n",
            head_only,
        ),
    }
}

fn respond(stream: &mut TcpStream, status: &str, ctype: &str, body: &str, head_only: bool) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Shutdown;

    fn server() -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || serve(l, || "x_total 1\n# EOF\n".to_string()));
        addr
    }

    fn ask(addr: std::net::SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(req).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn scrapes_and_refusals() {
        let addr = server();
        let ok = ask(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(CONTENT_TYPE) && ok.ends_with("x_total 1\n# EOF\n"), "{ok}");
        let head = ask(addr, b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"), "{head}");
        assert!(ask(addr, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(ask(addr, b"GET /../../etc/passwd HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(ask(addr, b"\x00\xff garbage\n\n").starts_with("HTTP/1.1 405"));
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 3 * MAX_REQUEST));
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(&huge);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    }

    #[test]
    fn a_silent_client_does_not_hold_the_endpoint() {
        let addr = server();
        let idle = TcpStream::connect(addr).unwrap();
        let t = std::time::Instant::now();
        let ok = ask(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200"));
        assert!(t.elapsed() < READ_TIMEOUT + Duration::from_secs(2));
        idle.shutdown(Shutdown::Both).unwrap();
    }
}
