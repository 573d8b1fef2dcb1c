//! Python's `salt-api` from the reference venv in front of a master (Brine
//! or Python's) on an [`Env`]'s config, and a small HTTP/1.1 client for
//! its REST interfaces: `rest_cherrypy` and `rest_tornado` in one
//! salt-api process (each netapi module is a process of its own under
//! salt-api's ProcessManager), both plain HTTP on 127.0.0.1.
//!
//! salt-api reads the master's config file (`salt-api -c <confdir>` reads
//! `<confdir>/master`), so the `rest_*` sections go into the same file the
//! master reads: [`ApiPorts::config`]. It talks to the master as Salt's
//! own clients do: clear `mk_token`/`get_token` requests and publishes on
//! the request port, the event bus through `sock_dir`, and the eauth token
//! files under `cachedir/tokens` directly (LoadAuth in the api process).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::minion::venv;
use super::{accepts, free_port, read, wait_until, Env};

/// The ports of the two REST interfaces of one salt-api.
#[derive(Clone, Copy, Debug)]
pub struct ApiPorts {
    pub cherrypy: u16,
    pub tornado: u16,
}

impl ApiPorts {
    pub fn new() -> ApiPorts {
        ApiPorts {
            cherrypy: free_port(),
            tornado: free_port(),
        }
    }

    /// The master config that enables both interfaces without TLS on
    /// 127.0.0.1, webhooks without authentication, and every client the
    /// tests call (since 3006 salt-api refuses a client that is not in
    /// `netapi_enable_clients`; the master itself ignores the option).
    pub fn config(&self) -> String {
        format!(
            "netapi_enable_clients:\n  - local\n  - local_async\n  - runner\n  - runner_async\n  - wheel\n  - wheel_async\n\
             rest_cherrypy:\n  port: {}\n  host: 127.0.0.1\n  disable_ssl: True\n  webhook_disable_auth: True\n\
             rest_tornado:\n  port: {}\n  address: 127.0.0.1\n  disable_ssl: True\n  webhook_disable_auth: True\n",
            self.cherrypy, self.tornado
        )
    }
}

/// Python's `salt-api` on an [`Env`]'s config, in its own process group
/// (its netapi processes are its children in that group), stopped as a
/// group on drop.
pub struct SaltApi {
    child: Child,
    pub ports: ApiPorts,
    log: std::path::PathBuf,
}

impl SaltApi {
    /// Start salt-api `version` on `env` (whose config has
    /// `ports.config()`) and wait until both interfaces accept connections.
    pub fn start(env: &Env, version: &str, ports: ApiPorts) -> SaltApi {
        // Without CherryPy salt-api starts, logs that rest_cherrypy cannot
        // load and never listens on its port.
        let (_, err, code) =
            super::output(Command::new(venv(version).join("bin/python")).args(["-c", "import cherrypy"]));
        assert_eq!(
            code, 0,
            "CherryPy is not in Salt {version}'s venv: run scripts/salt-venv\n{err}"
        );
        let stderr = env.root().join("salt-api.stderr");
        let child = Command::new(venv(version).join("bin/salt-api"))
            .arg("-c")
            .arg(&env.conf_dir)
            .args(["-l", "warning"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(env.root().join("salt-api.stdout")).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut api = SaltApi {
            child,
            ports,
            log: stderr,
        };
        let up = wait_until(Duration::from_secs(60), || {
            api.child.try_wait().ok().flatten().is_some() || (accepts(ports.cherrypy) && accepts(ports.tornado))
        });
        assert!(
            up && api.child.try_wait().ok().flatten().is_none(),
            "salt-api did not start:\n{}",
            api.log()
        );
        api
    }

    /// What salt-api wrote to stderr (its console log at `warning`).
    pub fn log(&self) -> String {
        read(&self.log)
    }

    pub fn cherrypy(&self) -> Http {
        Http::new(self.ports.cherrypy)
    }

    pub fn tornado(&self) -> Http {
        Http::new(self.ports.tornado)
    }
}

impl Drop for SaltApi {
    fn drop(&mut self) {
        brine_testutil::stop_group(&mut self.child, Duration::from_secs(10));
    }
}

/// One HTTP response: the status, the headers as sent, the body.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// `return[0].token` of a login's answer.
    pub fn token(&self) -> Option<String> {
        self.json()?["return"][0]["token"].as_str().map(String::from)
    }
}

/// A client of one REST interface on 127.0.0.1: each request on a
/// connection of its own (`Connection: close`), answers as JSON
/// (`Accept: application/json`).
#[derive(Clone, Copy, Debug)]
pub struct Http {
    pub port: u16,
}

/// How long a request may take: a synchronous `local` call waits for the
/// minions' returns (Salt's `timeout`, 5 s, and `gather_job_timeout`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

impl Http {
    pub fn new(port: u16) -> Http {
        Http { port }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request("GET", path, &auth(token), b"")
    }

    /// POST a JSON body, with `X-Auth-Token` if `token`.
    pub fn post_json(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> Response {
        let mut headers = auth(token);
        headers.push(("Content-Type".into(), "application/json".into()));
        self.request("POST", path, &headers, body.to_string().as_bytes())
    }

    /// POST an `application/x-www-form-urlencoded` body.
    pub fn post_form(&self, path: &str, token: Option<&str>, fields: &[(&str, &str)]) -> Response {
        let mut headers = auth(token);
        headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect();
        self.request("POST", path, &headers, body.join("&").as_bytes())
    }

    /// One request, its whole response. A response that does not come
    /// within [`REQUEST_TIMEOUT`] panics (the test is stuck otherwise).
    pub fn request(&self, method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Response {
        let mut conn = self.send(method, path, headers, body);
        conn.stream.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
        let head = conn
            .head()
            .unwrap_or_else(|e| panic!("{method} {path} on port {}: {e}", self.port));
        let body = conn
            .body(&head)
            .unwrap_or_else(|e| panic!("{method} {path} on port {}: body: {e}", self.port));
        Response {
            status: head.status,
            headers: head.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// `GET /events` with `X-Auth-Token`: the stream if the answer is 200,
    /// else the whole (error) response.
    pub fn events(&self, token: Option<&str>) -> Result<EventStream, Response> {
        let mut conn = self.send("GET", "/events", &auth(token), b"");
        conn.stream.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
        let head = conn.head().unwrap_or_else(|e| panic!("GET /events: {e}"));
        if head.status != 200 {
            let body = conn.body(&head).unwrap_or_default();
            return Err(Response {
                status: head.status,
                headers: head.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        let chunked = head.chunked();
        // Bytes read past the headers are body already.
        let decoded = if chunked {
            Vec::new()
        } else {
            std::mem::take(&mut conn.raw)
        };
        Ok(EventStream {
            chunked,
            head,
            conn,
            decoded,
            lines: Vec::new(),
        })
    }

    fn send(&self, method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Conn {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{}: {e}", self.port));
        stream.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/json\r\nConnection: close\r\n",
            self.port
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        stream
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        Conn {
            stream,
            raw: Vec::new(),
            eof: false,
        }
    }
}

fn auth(token: Option<&str>) -> Vec<(String, String)> {
    token
        .map(|t| vec![("X-Auth-Token".to_string(), t.to_string())])
        .unwrap_or_default()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.get("Transfer-Encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }
}

/// One connection's bytes as they arrive: `raw` holds what was read and
/// not consumed yet, so a read that times out loses nothing.
struct Conn {
    stream: TcpStream,
    raw: Vec<u8>,
    eof: bool,
}

impl Conn {
    /// Read more bytes into `raw`; false at the end of the stream.
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let mut buf = [0u8; 16384];
        let n = self.stream.read(&mut buf)?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.raw.extend_from_slice(&buf[..n]);
        Ok(true)
    }

    /// Take one CRLF-terminated line from `raw` (without the CRLF), if
    /// there is a whole one.
    fn take_line(&mut self) -> Option<String> {
        let at = self.raw.windows(2).position(|w| w == b"\r\n")?;
        let line = String::from_utf8_lossy(&self.raw[..at]).into_owned();
        self.raw.drain(..at + 2);
        Some(line)
    }

    fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(l) = self.take_line() {
                return Ok(l);
            }
            if !self.fill()? {
                return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "connection closed"));
            }
        }
    }

    /// The status line and the headers.
    fn head(&mut self) -> std::io::Result<Head> {
        let status_line = self.line()?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidData, format!("status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let l = self.line()?;
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Ok(Head { status, headers })
    }

    /// The whole body: chunked, by Content-Length, or to the end of the
    /// connection.
    fn body(&mut self, head: &Head) -> std::io::Result<Vec<u8>> {
        if head.chunked() {
            let mut out = Vec::new();
            while self.chunk(&mut out)? {}
            return Ok(out);
        }
        if let Some(len) = head.get("Content-Length").and_then(|v| v.parse::<usize>().ok()) {
            while self.raw.len() < len {
                if !self.fill()? {
                    return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "short body"));
                }
            }
            return Ok(self.raw.drain(..len).collect());
        }
        while self.fill()? {}
        Ok(std::mem::take(&mut self.raw))
    }

    /// Decode one chunk of a chunked body into `out` if `raw` holds all of
    /// it, reading once more if not. Ok(false) after the last chunk.
    /// Nothing is consumed from `raw` until a chunk is whole, so a timed
    /// out read can be retried.
    fn chunk(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        loop {
            if let Some(at) = self.raw.windows(2).position(|w| w == b"\r\n") {
                let size_line = String::from_utf8_lossy(&self.raw[..at]).into_owned();
                let size_hex = size_line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_hex, 16)
                    .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, format!("chunk size {size_line:?}")))?;
                // The size line, the data and its CRLF (the last chunk: no
                // data, no trailers expected, then CRLF).
                let need = at + 2 + size + 2;
                if self.raw.len() >= need {
                    out.extend_from_slice(&self.raw[at + 2..at + 2 + size]);
                    self.raw.drain(..need);
                    return Ok(size > 0);
                }
            }
            if !self.fill()? {
                return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "chunked body cut short"));
            }
        }
    }
}

/// One server-sent event of salt-api's `/events`: the tag and the event
/// (`{"tag": ..., "data": ...}` as salt-api serialised it).
#[derive(Clone, Debug)]
pub struct Event {
    pub tag: String,
    pub event: serde_json::Value,
}

/// The stream of `GET /events` (rest_cherrypy sends it chunked): `tag: `
/// and `data: ` lines, a blank line after each event, `retry: 400` first.
pub struct EventStream {
    conn: Conn,
    head: Head,
    chunked: bool,
    /// Decoded body bytes not yet split into lines.
    decoded: Vec<u8>,
    /// Lines of the event being read.
    lines: Vec<String>,
}

impl EventStream {
    pub fn status(&self) -> u16 {
        self.head.status
    }

    pub fn content_type(&self) -> Option<&str> {
        self.head.get("Content-Type")
    }

    /// The next event for which `pred` holds, skipping the others; None
    /// if none came within `timeout` or the stream ended.
    pub fn wait_for(&mut self, timeout: Duration, mut pred: impl FnMut(&Event) -> bool) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(ev) = self.next_buffered() {
                if pred(&ev) {
                    return Some(ev);
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.conn
                .stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let more = if self.chunked {
                let mut out = Vec::new();
                match self.conn.chunk(&mut out) {
                    Ok(more) => {
                        self.decoded.extend_from_slice(&out);
                        more
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
                    Err(_) => false,
                }
            } else {
                match self.conn.fill() {
                    Ok(more) => {
                        self.decoded.append(&mut self.conn.raw);
                        more
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
                    Err(_) => false,
                }
            };
            if !more {
                // Whatever was complete has been looked at above.
                return self.next_buffered().filter(|ev| pred(ev));
            }
        }
    }

    /// The next whole event among the bytes decoded so far.
    fn next_buffered(&mut self) -> Option<Event> {
        loop {
            let at = self.decoded.iter().position(|&b| b == b'\n')?;
            let line = String::from_utf8_lossy(&self.decoded[..at])
                .trim_end_matches('\r')
                .to_string();
            self.decoded.drain(..=at);
            if !line.is_empty() {
                self.lines.push(line);
                continue;
            }
            let lines = std::mem::take(&mut self.lines);
            let tag = lines.iter().find_map(|l| l.strip_prefix("tag: "));
            let data = lines.iter().find_map(|l| l.strip_prefix("data: "));
            if let (Some(tag), Some(data)) = (tag, data) {
                let event = serde_json::from_str(data).unwrap_or(serde_json::Value::String(data.to_string()));
                return Some(Event {
                    tag: tag.to_string(),
                    event,
                });
            }
        }
    }
}
