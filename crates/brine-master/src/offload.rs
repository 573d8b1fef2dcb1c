//! Slow work taken off an MWorker's request loop: a pillar compiled
//! through a Python `ext_pillar` module, `master_tops` through Salt's
//! loader. Each may wait on the Python pool (and the module on the
//! network) for up to `python_loader_timeout`; the MWorker hands the
//! work to a few threads of its own and goes back to its queue, and the
//! request is answered when the work is done, as a request that waits for
//! a runner job is (`Reply::Later`).
//!
//! The threads are started on the first task, so an MWorker that never
//! offloads has none (and they start long after the fork). A finished
//! task is put on a list and the write end of a pipe is written: the
//! read end joins the MWorker's poll. At most [`MAX_PENDING`] tasks wait
//! per MWorker; past that a task is refused (its request is answered
//! with an error at once) rather than queued without end.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use brine_proto::Value;
use log::error;

use crate::runjobs::Token;

/// Threads per MWorker.
pub const THREADS: usize = 4;

/// Tasks queued or running per MWorker.
pub const MAX_PENDING: usize = 256;

/// Offloaded tasks' tokens have the top bit set, runner jobs' do not:
/// both wait in the same table of the request loop.
const TOKEN_BIT: Token = 1 << 63;

type Task = (Token, Box<dyn FnOnce() -> Value + Send>);

struct Running {
    tx: mpsc::Sender<Task>,
    wake_r: OwnedFd,
}

/// One MWorker's offloaded tasks.
pub struct Offload {
    running: Option<Running>,
    done: Arc<Mutex<Vec<(Token, Value)>>>,
    pending: usize,
    next: Token,
}

impl Default for Offload {
    fn default() -> Self {
        Offload {
            running: None,
            done: Arc::new(Mutex::new(Vec::new())),
            pending: 0,
            next: 0,
        }
    }
}

impl Offload {
    /// Run `task` on one of the threads; its value comes back from
    /// [`Offload::collect`] under the token returned.
    pub fn submit(&mut self, task: Box<dyn FnOnce() -> Value + Send>) -> Result<Token, String> {
        if self.pending >= MAX_PENDING {
            return Err(format!(
                "{MAX_PENDING} slow requests are already waiting in this worker"
            ));
        }
        if self.running.is_none() {
            self.running = Some(
                self.start()
                    .map_err(|e| format!("cannot start the worker's threads: {e}"))?,
            );
        }
        self.next += 1;
        let token = TOKEN_BIT | self.next;
        let running = self.running.as_ref().expect("started");
        running
            .tx
            .send((token, task))
            .map_err(|_| "the worker's threads are gone".to_string())?;
        self.pending += 1;
        Ok(token)
    }

    fn start(&self) -> io::Result<Running> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors this process then owns.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both were just created and are owned here alone.
        let (wake_r, wake_w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let wake_w = Arc::new(wake_w);
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let (rx, done, wake_w) = (rx.clone(), self.done.clone(), wake_w.clone());
            std::thread::Builder::new()
                .name(format!("offload-{i}"))
                .spawn(move || loop {
                    let next = rx.lock().map(|r| r.recv());
                    let Ok(Ok((token, task))) = next else { return };
                    let value = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)) {
                        Ok(v) => v,
                        Err(_) => {
                            error!("an offloaded request panicked; answered with an error");
                            Value::from("Server-side exception handling payload")
                        }
                    };
                    if let Ok(mut d) = done.lock() {
                        d.push((token, value));
                    }
                    // SAFETY: a one-byte write to our own non-blocking pipe;
                    // a full pipe already wakes the reader.
                    unsafe { libc::write(wake_w.as_raw_fd(), b"x".as_ptr() as *const libc::c_void, 1) };
                })?;
        }
        Ok(Running { tx, wake_r })
    }

    /// The pipe to poll, once a task has been submitted.
    pub fn fd(&self) -> Option<RawFd> {
        self.running.as_ref().map(|r| r.wake_r.as_raw_fd())
    }

    /// The tasks that finished since the last call.
    pub fn collect(&mut self) -> Vec<(Token, Value)> {
        let Some(r) = &self.running else { return Vec::new() };
        let mut buf = [0u8; 256];
        // SAFETY: reads from our own non-blocking pipe into a local buffer.
        while unsafe { libc::read(r.wake_r.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len()) } > 0 {}
        let out = std::mem::take(&mut *self.done.lock().unwrap_or_else(|e| e.into_inner()));
        self.pending = self.pending.saturating_sub(out.len());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_all(o: &mut Offload, n: usize) -> Vec<(Token, Value)> {
        let mut got = Vec::new();
        let by = Instant::now() + Duration::from_secs(10);
        while got.len() < n && Instant::now() < by {
            let fd = o.fd().unwrap();
            brine_proc::supervisor::poll_fds(&[fd], Some(Duration::from_millis(100))).unwrap();
            got.extend(o.collect());
        }
        got
    }

    #[test]
    fn tasks_run_beside_the_caller_and_come_back_by_token() {
        let mut o = Offload::default();
        assert_eq!(o.fd(), None, "no thread before the first task");
        let slow = o.submit(Box::new(|| {
            std::thread::sleep(Duration::from_millis(300));
            Value::from("slow")
        }));
        let fast = o.submit(Box::new(|| Value::from("fast"))).unwrap();
        let boom = o.submit(Box::new(|| panic!("a bug"))).unwrap();
        let slow = slow.unwrap();
        assert!(slow & TOKEN_BIT != 0);
        let got = wait_all(&mut o, 3);
        assert_eq!(got.len(), 3);
        // The fast ones are not held behind the slow one.
        assert_eq!(got[2].0, slow);
        let by_token = |t| got.iter().find(|(k, _)| *k == t).map(|(_, v)| v.clone());
        assert_eq!(by_token(slow), Some(Value::from("slow")));
        assert_eq!(by_token(fast), Some(Value::from("fast")));
        assert_eq!(
            by_token(boom),
            Some(Value::from("Server-side exception handling payload"))
        );
        assert_eq!(o.pending, 0);
    }

    #[test]
    fn a_full_queue_refuses() {
        let mut o = Offload::default();
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        for _ in 0..MAX_PENDING {
            let g = gate.clone();
            o.submit(Box::new(move || {
                drop(g.lock());
                Value::Nil
            }))
            .unwrap();
        }
        assert!(o
            .submit(Box::new(|| Value::Nil))
            .unwrap_err()
            .contains("already waiting"));
        drop(held);
        assert_eq!(wait_all(&mut o, MAX_PENDING).len(), MAX_PENDING);
        assert!(o.submit(Box::new(|| Value::Nil)).is_ok());
    }
}
