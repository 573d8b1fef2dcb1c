//! One request to the Python loader pool.
//!
//! The pool's workers share one listening unix socket; whichever is idle
//! accepts the connection and writes a hello frame with its pid. The
//! caller then writes the request and waits for the answer. A frame is a
//! 4-byte big-endian length and a msgpack body.
//!
//! Two waits, each bounded by the timeout: for an idle worker (its
//! hello), and for the answer. A worker that holds a request past the
//! timeout is killed (SIGKILL; the ProcessManager respawns it), so a hung
//! module costs one request, never a stuck caller or a worker that stays
//! wedged.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use brine_config::MasterConfig;
use brine_proto::Value;

/// The largest answer read from a worker.
pub const MAX_ANSWER: usize = 128 << 20;

/// Why a request to the pool failed.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// No pool runs (no Python with Salt, or `python_loader: never`).
    #[error("Salt's Python modules are not available on this master (no Python loader pool: {0})")]
    Unavailable(String),
    #[error("no Python loader worker became free within {0:.0?}")]
    Busy(Duration),
    #[error("Python loader worker {pid} did not answer within {timeout:.0?}; it was killed and is being replaced")]
    Timeout { pid: i32, timeout: Duration },
    #[error("the Python process did not finish within {0:.0?}; it was killed")]
    ProcessTimeout(Duration),
    #[error("Python loader worker {pid} went away before answering (it is being replaced)")]
    Died { pid: i32 },
    #[error("Python loader: {0}")]
    Protocol(String),
    /// The module (or Salt's loader) raised: Salt's text.
    #[error("{0}")]
    Module(String),
    /// The module raised: Salt's text, and the traceback for the log.
    #[error("{text}")]
    Raised { text: String, traceback: String },
    /// The module asked for is not there: Salt's text.
    #[error("{0}")]
    Missing(String),
}

impl LoaderError {
    /// The Python traceback of a module that raised, for the one log
    /// line that reports it.
    pub fn traceback(&self) -> Option<&str> {
        match self {
            LoaderError::Raised { traceback, .. } => Some(traceback),
            _ => None,
        }
    }
}

/// A client of the pool at one socket.
#[derive(Debug, Clone)]
pub struct Client {
    path: PathBuf,
    timeout: Duration,
}

impl Client {
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> Client {
        Client {
            path: path.into(),
            timeout,
        }
    }

    /// The pool of a master configuration, with its `python_loader_timeout`.
    pub fn of(cfg: &MasterConfig) -> Client {
        Client::new(crate::socket_path(cfg), crate::timeout(cfg))
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Send `req` (a map with `kind`) and wait for its answer: the `ret`
    /// of the worker's answer, or its `error`.
    pub fn call(&self, req: &Value) -> Result<Value, LoaderError> {
        let mut conn = UnixStream::connect(&self.path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                LoaderError::Unavailable(format!("{}: {e}", self.path.display()))
            }
            _ => LoaderError::Protocol(format!("cannot connect to {}: {e}", self.path.display())),
        })?;
        let hello_by = Instant::now() + self.timeout;
        let hello = match read_frame(&mut conn, hello_by) {
            Ok(v) => v,
            Err(FrameError::TimedOut) => return Err(LoaderError::Busy(self.timeout)),
            Err(FrameError::Closed) => {
                return Err(LoaderError::Protocol(
                    "the pool closed the connection before a worker took it".into(),
                ))
            }
            Err(FrameError::Bad(e)) => return Err(LoaderError::Protocol(e)),
        };
        let pid = hello
            .get("pid")
            .and_then(Value::as_i64)
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 1)
            .ok_or_else(|| LoaderError::Protocol("the worker's hello has no pid".into()))?;
        let body = req.to_network();
        let answer_by = Instant::now() + self.timeout;
        conn.set_write_timeout(Some(self.timeout)).map_err(io_err)?;
        let sent = write_frame(&mut conn, &body);
        if let Err(e) = sent {
            return Err(match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.kill(pid),
                _ => LoaderError::Died { pid },
            });
        }
        let answer = match read_frame(&mut conn, answer_by) {
            Ok(v) => v,
            Err(FrameError::TimedOut) => return Err(self.kill(pid)),
            Err(FrameError::Closed) => return Err(LoaderError::Died { pid }),
            Err(FrameError::Bad(e)) => return Err(LoaderError::Protocol(format!("worker {pid}: {e}"))),
        };
        answer_value(answer, pid)
    }

    fn kill(&self, pid: i32) -> LoaderError {
        log::error!(
            "Python loader worker {pid} held a request for more than {:.0?} (python_loader_timeout): killing it",
            self.timeout
        );
        // SAFETY: kill(2) with a pid the worker itself reported.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        LoaderError::Timeout {
            pid,
            timeout: self.timeout,
        }
    }
}

/// One frame: the body's u32 big-endian length, then the body.
pub(crate) fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    w.write_all(&(body.len() as u32).to_be_bytes())?;
    w.write_all(body)
}

/// A worker's answer: its `ret`, or its `error` (`missing` when the
/// module is not there).
pub(crate) fn answer_value(answer: Value, pid: i32) -> Result<Value, LoaderError> {
    if let Some(err) = answer.get("error") {
        let text = err.as_str().map_or_else(|| format!("{err:?}"), str::to_string);
        return Err(if answer.get("missing").is_some_and(|m| m.as_bool() == Some(true)) {
            LoaderError::Missing(text)
        } else if let Some(tb) = answer.get("traceback").and_then(Value::as_str) {
            LoaderError::Raised {
                text,
                traceback: tb.to_string(),
            }
        } else {
            LoaderError::Module(text)
        });
    }
    match answer {
        Value::Map(pairs) => pairs
            .into_iter()
            .find(|(k, _)| k.as_str() == Some("ret"))
            .map(|(_, v)| v)
            .ok_or_else(|| LoaderError::Protocol(format!("worker {pid} answered without ret"))),
        _ => Err(LoaderError::Protocol(format!("worker {pid} answered with a non-map"))),
    }
}

fn io_err(e: io::Error) -> LoaderError {
    LoaderError::Protocol(e.to_string())
}

enum FrameError {
    TimedOut,
    Closed,
    Bad(String),
}

fn read_exact_by(conn: &mut UnixStream, buf: &mut [u8], by: Instant) -> Result<(), FrameError> {
    let mut got = 0;
    while got < buf.len() {
        let left = by.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FrameError::TimedOut);
        }
        conn.set_read_timeout(Some(left))
            .map_err(|e| FrameError::Bad(e.to_string()))?;
        match conn.read(&mut buf[got..]) {
            Ok(0) => return Err(FrameError::Closed),
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(FrameError::TimedOut)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(FrameError::Closed),
            Err(e) => return Err(FrameError::Bad(e.to_string())),
        }
    }
    Ok(())
}

fn read_frame(conn: &mut UnixStream, by: Instant) -> Result<Value, FrameError> {
    let mut len = [0u8; 4];
    read_exact_by(conn, &mut len, by)?;
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_ANSWER {
        return Err(FrameError::Bad(format!(
            "an answer of {n} bytes is over the {MAX_ANSWER} byte limit"
        )));
    }
    let mut body = vec![0u8; n];
    read_exact_by(conn, &mut body, by)?;
    Value::decode(&body).map_err(|e| FrameError::Bad(format!("the answer is not msgpack: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn frame(v: &Value) -> Vec<u8> {
        let b = v.to_network();
        let mut out = (b.len() as u32).to_be_bytes().to_vec();
        out.extend(b);
        out
    }

    /// A fake worker answering one connection with `script`.
    fn serve(l: UnixListener, script: impl FnOnce(UnixStream) + Send + 'static) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let (c, _) = l.accept().unwrap();
            script(c)
        })
    }

    fn read_req(c: &mut UnixStream) -> Value {
        let mut len = [0u8; 4];
        c.read_exact(&mut len).unwrap();
        let mut b = vec![0u8; u32::from_be_bytes(len) as usize];
        c.read_exact(&mut b).unwrap();
        Value::decode(&b).unwrap()
    }

    #[test]
    fn answers_errors_and_a_missing_pool() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        let client = Client::new(&p, Duration::from_secs(5));
        assert!(matches!(client.call(&Value::Nil), Err(LoaderError::Unavailable(_))));

        let l = UnixListener::bind(&p).unwrap();
        let h = serve(l.try_clone().unwrap(), |mut c| {
            c.write_all(&frame(&Value::map([("pid", Value::from(4242))]))).unwrap();
            let req = read_req(&mut c);
            assert_eq!(req.get("kind").and_then(Value::as_str), Some("ping"));
            c.write_all(&frame(&Value::map([("ret", Value::from("pong"))])))
                .unwrap();
        });
        let got = client.call(&Value::map([("kind", Value::from("ping"))])).unwrap();
        assert_eq!(got.as_str(), Some("pong"));
        h.join().unwrap();

        let h = serve(l.try_clone().unwrap(), |mut c| {
            c.write_all(&frame(&Value::map([("pid", Value::from(4242))]))).unwrap();
            read_req(&mut c);
            c.write_all(&frame(&Value::map([(
                "error",
                Value::from("Specified ext_pillar interface x is unavailable"),
            )])))
            .unwrap();
        });
        match client.call(&Value::map([("kind", Value::from("ext_pillar"))])) {
            Err(LoaderError::Module(m)) => assert_eq!(m, "Specified ext_pillar interface x is unavailable"),
            other => panic!("{other:?}"),
        }
        h.join().unwrap();

        // A worker that dies mid-request.
        let h = serve(l.try_clone().unwrap(), |mut c| {
            c.write_all(&frame(&Value::map([("pid", Value::from(4242))]))).unwrap();
            read_req(&mut c);
        });
        assert!(matches!(client.call(&Value::Nil), Err(LoaderError::Died { pid: 4242 })));
        h.join().unwrap();

        // An oversized answer is refused before it is read.
        let h = serve(l, |mut c| {
            c.write_all(&frame(&Value::map([("pid", Value::from(4242))]))).unwrap();
            read_req(&mut c);
            let _ = c.write_all(&(u32::MAX).to_be_bytes());
        });
        assert!(matches!(client.call(&Value::Nil), Err(LoaderError::Protocol(m)) if m.contains("over the")));
        h.join().unwrap();
    }

    #[test]
    fn a_busy_pool_and_a_hung_worker_time_out() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        let _l = UnixListener::bind(&p).unwrap();
        // Nobody accepts: the connection waits in the backlog.
        let client = Client::new(&p, Duration::from_millis(200));
        assert!(matches!(client.call(&Value::Nil), Err(LoaderError::Busy(_))));

        // A worker that never answers is killed: a real child process
        // stands in for it.
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i64;
        let p2 = d.path().join("s2");
        let l2 = UnixListener::bind(&p2).unwrap();
        let h = serve(l2, move |mut c| {
            c.write_all(&frame(&Value::map([("pid", Value::from(pid))]))).unwrap();
            read_req(&mut c);
            std::thread::sleep(Duration::from_millis(600));
        });
        let client = Client::new(&p2, Duration::from_millis(200));
        match client.call(&Value::Nil) {
            Err(LoaderError::Timeout { pid: p, .. }) => assert_eq!(i64::from(p), pid),
            other => panic!("{other:?}"),
        }
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        h.join().unwrap();
    }
}
